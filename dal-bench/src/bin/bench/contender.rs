//! The contender abstraction and the measuring loop, written once for every workload.
//!
//! A [`Contender`] is one side of a comparison: a [`Resource`] (setup opens its pool before a
//! round, teardown closes it after; neither is timed) and an [`Op`], the operation that a
//! [`Measure`] times on that pool. A [`Spec`] is one workload: its contenders (one row of the
//! workloads × contenders table), the [`Measure`] they share, and how its figures are reported.
//! [`Spec::run`] alternates: every round runs each contender once (setup, measure, teardown),
//! the order rotated by one each round, so at most one benchmark pool is open at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dal_bench::report::{fmt_num, Alternative, Direction, Series, Target, Workload};
use dal_bench::Result;

use crate::names::DAL;
use crate::opts::Ctx;

pub type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

/// Warm-up and measured window of one contender's round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// One contender's figure in one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// In the workload's unit.
    pub value: f64,
    /// Client CPU µs per operation, when measured.
    pub cpu_us: Option<f64>,
    /// A side figure of the round (acquire wait: the ideal FIFO p99 for the measured hold).
    pub extra: Option<f64>,
}

impl Sample {
    pub fn plain(value: f64) -> Self {
        Sample {
            value,
            cpu_us: None,
            extra: None,
        }
    }
}

/// The operation a contender's round times, run on the state its setup built (`S`) with an
/// input chosen by the measurement (`In`: a random number, a batch of rows, nothing).
///
/// Closures `Fn(&S, In) -> impl Future` implement it; they clone the pool handle they need
/// (one cheap handle clone per operation, for every contender alike). Operations whose future
/// must borrow the state instead (a checkout that must not add a clone) implement it on a type.
pub trait Op<S, In>: Send + Sync + 'static {
    type Out: Send;
    fn call<'a>(
        &'a self,
        state: &'a S,
        input: In,
    ) -> impl Future<Output = Result<Self::Out>> + Send;
}

impl<S, In, T, F, Fut> Op<S, In> for F
where
    F: Fn(&S, In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T>> + Send,
    T: Send,
{
    type Out = T;
    fn call<'a>(
        &'a self,
        state: &'a S,
        input: In,
    ) -> impl Future<Output = Result<Self::Out>> + Send {
        self(state, input)
    }
}

/// What a contender's round opens before measuring and closes after (neither is timed).
pub struct Resource<S> {
    pub setup: Box<dyn Fn() -> BoxFut<S> + Send + Sync>,
    pub teardown: fn(S) -> BoxFut<()>,
}

/// One side of a comparison: setup and teardown (its [`Resource`]) and the timed operation.
pub struct Contender<S, O> {
    pub name: &'static str,
    pub resource: Resource<S>,
    pub op: Arc<O>,
}

impl<S, O> Contender<S, O> {
    pub fn new(name: &'static str, resource: Resource<S>, op: O) -> Self {
        Contender {
            name,
            resource,
            op: Arc::new(op),
        }
    }
}

/// How a round turns a contender's operation on its open pool into one [`Sample`].
pub trait Measure<S, O>: Send + Sync + 'static {
    /// Whether the whole round (setup, measurement, teardown) runs in a task of its own
    /// (single-task measurements: checkout, bulk) rather than in the caller's.
    const SPAWN: bool = false;
    fn measure(&self, state: &Arc<S>, op: &Arc<O>) -> impl Future<Output = Result<Sample>> + Send;
}

/// One round of one contender: setup, measure, teardown.
async fn round<S, O, M>(c: Arc<Contender<S, O>>, m: Arc<M>) -> Result<Sample>
where
    S: Send + Sync + 'static,
    O: Send + Sync + 'static,
    M: Measure<S, O>,
{
    let state = Arc::new((c.resource.setup)().await?);
    let sample = m.measure(&state, &c.op).await?;
    let state = Arc::into_inner(state).ok_or("a contender's pool outlived its round")?;
    (c.resource.teardown)(state).await?;
    Ok(sample)
}

/// A contender with its measurement, its types erased: what the alternation runs.
pub struct Entry {
    pub name: &'static str,
    run: Box<dyn Fn() -> BoxFut<Sample> + Send + Sync>,
}

impl Entry {
    pub fn new<S, O, M>(c: Contender<S, O>, m: Arc<M>) -> Self
    where
        S: Send + Sync + 'static,
        O: Send + Sync + 'static,
        M: Measure<S, O>,
    {
        let name = c.name;
        let c = Arc::new(c);
        Entry {
            name,
            run: Box::new(move || {
                let round = round(c.clone(), m.clone());
                if M::SPAWN {
                    Box::pin(async move { tokio::spawn(round).await? })
                } else {
                    Box::pin(round)
                }
            }),
        }
    }
}

/// The order contenders run in round `r` (0-based) of `n`: rotated by one each round.
pub fn rotation(n: usize, r: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |j| (j + r) % n)
}

/// One contender's figures over the rounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub values: Vec<f64>,
    pub cpu: Vec<f64>,
    pub extras: Vec<f64>,
}

impl Figures {
    fn push(&mut self, s: Sample) {
        self.values.push(s.value);
        self.cpu.extend(s.cpu_us);
        self.extras.extend(s.extra);
    }
}

/// Runs every entry once per round in [`rotation`] order and prints one line per round;
/// returns the figures per entry, in the entries' order.
async fn alternate(
    label: &str,
    unit: &str,
    rounds: usize,
    entries: &[Entry],
) -> Result<Vec<Figures>> {
    let n = entries.len();
    let mut figures = vec![Figures::default(); n];
    if n == 0 {
        return Ok(figures);
    }
    for r in 0..rounds {
        let mut line = format!("  {label} round {}/{rounds}:", r + 1);
        for i in rotation(n, r) {
            let e = &entries[i];
            let s = (e.run)()
                .await
                .map_err(|err| format!("{label}, {}: {err}", e.name))?;
            line.push_str(&format!(" {} {} {unit};", e.name, fmt_num(s.value)));
            figures[i].push(s);
        }
        eprintln!("{line}");
    }
    Ok(figures)
}

/// How a workload is reported (the [`Workload`] fields other than the figures).
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub title: &'static str,
    pub backend: &'static str,
    pub clients: usize,
    pub unit: &'static str,
    pub direction: Direction,
    /// The alternatives in report order, with their targets on dal / alternative.
    pub alternatives: Vec<(&'static str, Option<Target>)>,
}

/// One workload: what is reported, and its contenders with their measurement.
pub struct Spec {
    pub meta: Meta,
    /// Label of the progress lines (`point_select c=20`).
    pub label: String,
    /// Unit in the progress lines (the workload's unit unless set).
    pub log_unit: &'static str,
    pub entries: Vec<Entry>,
}

/// A workload's report and every contender's figures.
pub struct Outcome {
    pub workload: Workload,
    pub figures: Vec<(&'static str, Figures)>,
}

impl Outcome {
    /// The side figures of contender `name`'s rounds (empty if it did not run).
    pub fn extras(&self, name: &str) -> Vec<f64> {
        self.figures
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.extras.clone())
            .unwrap_or_default()
    }
}

impl Spec {
    pub fn new(meta: Meta, label: impl Into<String>) -> Self {
        let log_unit = meta.unit;
        Spec {
            meta,
            label: label.into(),
            log_unit,
            entries: Vec::new(),
        }
    }

    /// Adds a contender measured by `m` (the workload's shared measurement).
    pub fn with<S, O, M>(mut self, c: Contender<S, O>, m: &Arc<M>) -> Self
    where
        S: Send + Sync + 'static,
        O: Send + Sync + 'static,
        M: Measure<S, O>,
    {
        self.entries.push(Entry::new(c, m.clone()));
        self
    }

    /// Runs the contenders `--contender` selects, alternating rounds, and assembles the report.
    pub async fn run(mut self, ctx: &Ctx) -> Result<Outcome> {
        self.entries.retain(|e| ctx.wants_contender(e.name));
        let figures = alternate(&self.label, self.log_unit, ctx.o.rounds, &self.entries).await?;
        let figures: Vec<_> = self.entries.iter().map(|e| e.name).zip(figures).collect();
        Ok(Outcome {
            workload: assemble(&self.meta, &figures),
            figures,
        })
    }
}

/// The report of a workload from its contenders' figures; a contender that did not run
/// (filtered out) is reported as "not run".
pub fn assemble(meta: &Meta, figures: &[(&'static str, Figures)]) -> Workload {
    let get = |name: &str| -> Series {
        match figures.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => Series::new(name, f.values.clone()).with_cpu(f.cpu.clone()),
            None => Series::missing(name, "not run"),
        }
    };
    Workload {
        id: meta.id.clone(),
        title: meta.title.into(),
        backend: meta.backend.into(),
        clients: meta.clients,
        unit: meta.unit.into(),
        direction: meta.direction,
        dal: get(DAL),
        alternatives: meta
            .alternatives
            .iter()
            .map(|(name, target)| Alternative {
                series: get(name),
                target: *target,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn rounds_rotate_the_order() {
        let orders: Vec<Vec<usize>> = (0..4).map(|r| rotation(3, r).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
        assert_eq!(rotation(0, 3).count(), 0);
        // Over n rounds every contender runs once in every position.
        for pos in 0..3 {
            let mut seen: Vec<usize> = orders[..3].iter().map(|o| o[pos]).collect();
            seen.sort();
            assert_eq!(seen, [0, 1, 2]);
        }
    }

    /// A measurement that records the order of the rounds and returns a counter.
    struct Counting(Arc<Mutex<Vec<&'static str>>>, AtomicUsize);

    impl Measure<&'static str, ()> for Counting {
        async fn measure(&self, state: &Arc<&'static str>, _: &Arc<()>) -> Result<Sample> {
            self.0.lock().unwrap().push(**state);
            let n = self.1.fetch_add(1, Ordering::Relaxed) as f64;
            Ok(Sample {
                value: n,
                cpu_us: (**state == DAL).then_some(n / 10.0),
                extra: Some(-n),
            })
        }
    }

    fn named(name: &'static str) -> Contender<&'static str, ()> {
        let setup: Box<dyn Fn() -> BoxFut<&'static str> + Send + Sync> =
            Box::new(move || Box::pin(async move { Ok(name) }));
        Contender::new(
            name,
            Resource {
                setup,
                teardown: |_| Box::pin(async { Ok(()) }),
            },
            (),
        )
    }

    fn meta() -> Meta {
        Meta {
            id: "w".into(),
            title: "W",
            backend: "PostgreSQL",
            clients: 2,
            unit: "q/s",
            direction: Direction::HigherIsBetter,
            alternatives: vec![("a", Some(Target::at_least(1.0))), ("b", None), ("c", None)],
        }
    }

    #[tokio::test]
    async fn alternation_runs_each_contender_once_per_round_and_keeps_its_figures() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let m = Arc::new(Counting(log.clone(), AtomicUsize::new(0)));
        let mut spec = Spec::new(meta(), "w c=2");
        for n in [DAL, "a", "b"] {
            spec = spec.with(named(n), &m);
        }
        let ctx = Ctx {
            o: crate::opts::parse(
                ["--rounds", "3", "--contender", "=dal,a"].map(String::from),
                String::new(),
                String::new(),
            )
            .unwrap()
            .unwrap(),
            people: Arc::new(vec![]),
        };
        let out = spec.run(&ctx).await.unwrap();
        // "b" is filtered out; dal and "a" alternate.
        assert_eq!(*log.lock().unwrap(), [DAL, "a", "a", DAL, DAL, "a"]);
        let w = &out.workload;
        assert_eq!(w.dal.samples, [0.0, 3.0, 4.0]);
        assert_eq!(w.dal.median, Some(3.0));
        assert_eq!(w.dal.cpu_samples, [0.0, 0.3, 0.4]);
        assert_eq!(w.alternatives[0].series.samples, [1.0, 2.0, 5.0]);
        assert!(w.alternatives[0].series.cpu_samples.is_empty());
        assert_eq!(w.alternatives[0].target, Some(Target::at_least(1.0)));
        assert_eq!(w.alternatives[1].series.note.as_deref(), Some("not run"));
        assert_eq!(w.alternatives[2].series.median, None);
        assert_eq!(out.extras(DAL), [-0.0, -3.0, -4.0]);
        assert!(out.extras("b").is_empty());
    }

    #[tokio::test]
    async fn a_failing_round_names_the_workload_and_contender() {
        struct Fails;
        impl Measure<&'static str, ()> for Fails {
            const SPAWN: bool = true;
            async fn measure(&self, _: &Arc<&'static str>, _: &Arc<()>) -> Result<Sample> {
                Err("boom".into())
            }
        }
        let spec = Spec::new(meta(), "w c=2").with(named("a"), &Arc::new(Fails));
        let ctx = Ctx {
            o: crate::opts::parse([], String::new(), String::new())
                .unwrap()
                .unwrap(),
            people: Arc::new(vec![]),
        };
        let err = spec.run(&ctx).await.err().unwrap().to_string();
        assert_eq!(err, "w c=2, a: boom");
    }
}
