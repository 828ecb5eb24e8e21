//! The measurement methods a workload's contenders share (the timed part of a round).
//!
//! - [`ClosedLoop`]: `clients` tasks call the operation back to back; ops/s over the measured
//!   window after the warm-up, with this process's CPU time per op.
//! - [`Checkout`]: one task; median ns per operation over batches of 64, after the warm-up.
//! - [`Storm`]: 1 000 tasks released at once on a pool of 50; p99 of the timed waits.
//! - [`Batches`]: one untimed warm batch, then `reps` timed batches; rows/s of their total.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dal_bench::machine::cpu_time;
use dal_bench::stats::{ideal_fifo_quantile, mean, median, percentile, Rng};
use dal_bench::{BoxError, Result};

use crate::contender::{Measure, Op, Sample, Timing};
use crate::sql::Person;

/// `clients` tasks, each calling the operation with a random number back to back.
pub struct ClosedLoop {
    pub clients: usize,
    pub timing: Timing,
}

/// Ops per second and client CPU µs per op from a measured window.
pub fn rate(ops: u64, elapsed: Duration, cpu: Duration) -> Sample {
    Sample {
        value: ops as f64 / elapsed.as_secs_f64(),
        cpu_us: Some(cpu.as_secs_f64() * 1e6 / ops.max(1) as f64),
        extra: None,
    }
}

impl<S, O> Measure<S, O> for ClosedLoop
where
    S: Send + Sync + 'static,
    O: Op<S, u64, Out = ()>,
{
    async fn measure(&self, state: &Arc<S>, op: &Arc<O>) -> Result<Sample> {
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(self.clients);
        for i in 0..self.clients {
            let (state, op) = (state.clone(), op.clone());
            let (count, stop) = (count.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(i as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    op.call(&state, rng.next_u64()).await?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), BoxError>(())
            }));
        }
        tokio::time::sleep(self.timing.warmup).await;
        let (c0, t0, cpu0) = (count.load(Ordering::Relaxed), Instant::now(), cpu_time());
        tokio::time::sleep(self.timing.measure).await;
        let (c1, elapsed, cpu1) = (count.load(Ordering::Relaxed), t0.elapsed(), cpu_time());
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await??;
        }
        Ok(rate(c1 - c0, elapsed, cpu1 - cpu0))
    }
}

/// One task running the operation (checkout + return) in batches of [`Checkout::BATCH`].
pub struct Checkout {
    pub timing: Timing,
}

impl Checkout {
    pub const BATCH: usize = 64;

    async fn batch<S, O: Op<S, (), Out = ()>>(state: &S, op: &O) -> Result<()> {
        for _ in 0..Self::BATCH {
            op.call(state, ()).await?;
        }
        Ok(())
    }
}

impl<S, O> Measure<S, O> for Checkout
where
    S: Send + Sync + 'static,
    O: Op<S, (), Out = ()>,
{
    const SPAWN: bool = true;

    async fn measure(&self, state: &Arc<S>, op: &Arc<O>) -> Result<Sample> {
        let (state, op) = (&**state, &**op);
        let end = Instant::now() + self.timing.warmup;
        while Instant::now() < end {
            Self::batch(state, op).await?;
        }
        let mut per = Vec::new();
        let end = Instant::now() + self.timing.measure;
        while Instant::now() < end {
            let t = Instant::now();
            Self::batch(state, op).await?;
            per.push(t.elapsed().as_nanos() as f64 / Self::BATCH as f64);
        }
        let ns = median(&per).ok_or_else(|| BoxError::from("no samples"))?;
        Ok(Sample::plain(ns))
    }
}

/// `tasks` tasks released at once on a pool of `conns`; the operation returns (wait, hold).
/// The sample is the p99 wait in ms; its extra, the ideal FIFO p99 for the mean hold.
pub struct Storm {
    pub tasks: usize,
    pub conns: usize,
}

impl Storm {
    /// p99 wait and ideal FIFO p99 (ms) from the waits and holds (ms) of the tasks.
    pub fn figures(&self, waits: &[f64], holds: &[f64]) -> Result<Sample> {
        let p99 = percentile(waits, 0.99).ok_or("no waits")?;
        let hold = mean(holds).ok_or("no holds")?;
        Ok(Sample {
            value: p99,
            cpu_us: None,
            extra: Some(ideal_fifo_quantile(self.tasks, self.conns, hold, 0.99)),
        })
    }
}

impl<S, O> Measure<S, O> for Storm
where
    S: Send + Sync + 'static,
    O: Op<S, (), Out = (Duration, Duration)>,
{
    async fn measure(&self, state: &Arc<S>, op: &Arc<O>) -> Result<Sample> {
        // Open every connection first, so the storm measures queueing, not connecting.
        let warm: Vec<_> = (0..self.conns)
            .map(|_| {
                let (state, op) = (state.clone(), op.clone());
                tokio::spawn(async move { op.call(&state, ()).await })
            })
            .collect();
        for t in warm {
            t.await??;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(self.tasks + 1));
        let tasks: Vec<_> = (0..self.tasks)
            .map(|_| {
                let (b, state, op) = (barrier.clone(), state.clone(), op.clone());
                tokio::spawn(async move {
                    b.wait().await;
                    op.call(&state, ()).await
                })
            })
            .collect();
        barrier.wait().await;
        let mut waits = Vec::with_capacity(self.tasks);
        let mut holds = Vec::with_capacity(self.tasks);
        for t in tasks {
            let (w, h) = t.await??;
            waits.push(w.as_secs_f64() * 1e3);
            holds.push(h.as_secs_f64() * 1e3);
        }
        self.figures(&waits, &holds)
    }
}

/// One untimed batch of `warm_rows` (so every statement is prepared), then `reps` batches of
/// `rows`; the operation saves a batch and returns its (wall, client CPU) time, taken around
/// the database work only. People are numbered from the shared `seq`.
pub struct Batches {
    pub reps: usize,
    pub rows: usize,
    pub warm_rows: usize,
    pub seq: Arc<AtomicU64>,
}

impl Batches {
    fn batch(&self, n: usize) -> Vec<Person> {
        let base = self.seq.fetch_add(n as u64, Ordering::Relaxed);
        (0..n as u64).map(|i| Person::new(base + i)).collect()
    }

    /// Rows per second and client CPU µs per row over the timed batches.
    pub fn figures(&self, wall: Duration, cpu: Duration) -> Sample {
        let rows = (self.rows * self.reps) as f64;
        Sample {
            value: rows / wall.as_secs_f64(),
            cpu_us: Some(cpu.as_secs_f64() * 1e6 / rows),
            extra: None,
        }
    }
}

impl<S, O> Measure<S, O> for Batches
where
    S: Send + Sync + 'static,
    O: Op<S, Vec<Person>, Out = (Duration, Duration)>,
{
    const SPAWN: bool = true;

    async fn measure(&self, state: &Arc<S>, op: &Arc<O>) -> Result<Sample> {
        let warm = self.batch(self.warm_rows);
        let sets: Vec<Vec<Person>> = (0..self.reps).map(|_| self.batch(self.rows)).collect();
        op.call(state, warm).await?;
        let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
        for people in sets {
            let (w, c) = op.call(state, people).await?;
            (wall, cpu) = (wall + w, cpu + c);
        }
        Ok(self.figures(wall, cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_rate_and_cpu_per_op() {
        let s = rate(500, Duration::from_millis(250), Duration::from_millis(100));
        assert_eq!(s.value, 2000.0);
        assert_eq!(s.cpu_us, Some(200.0));
        // No completed op: a rate of 0 and the CPU of the whole window.
        let s = rate(0, Duration::from_secs(1), Duration::from_micros(7));
        assert_eq!((s.value, s.cpu_us), (0.0, Some(7.0)));
    }

    #[test]
    fn storm_reports_p99_wait_and_ideal_fifo() {
        let storm = Storm {
            tasks: 1000,
            conns: 50,
        };
        let waits: Vec<f64> = (1..=1000).map(f64::from).collect();
        let s = storm.figures(&waits, &[5.0; 1000]).unwrap();
        assert_eq!(s.value, 990.0);
        assert_eq!(s.extra, Some(ideal_fifo_quantile(1000, 50, 5.0, 0.99)));
        assert_eq!(s.extra, Some(95.0), "floor(989 / 50) × 5 ms");
        assert!(storm.figures(&[], &[]).is_err());
    }

    #[test]
    fn batches_count_every_timed_row() {
        let b = Batches {
            reps: 3,
            rows: 10_000,
            warm_rows: 2_000,
            seq: Arc::new(AtomicU64::new(1_000_000)),
        };
        let s = b.figures(Duration::from_secs(2), Duration::from_millis(300));
        assert_eq!(s.value, 15_000.0);
        assert_eq!(s.cpu_us, Some(10.0));
        let (x, y) = (b.batch(2), b.batch(3));
        assert_eq!((x.len(), y.len()), (2, 3));
        assert_eq!(
            y[0].name, "user 1000002",
            "numbered on from the previous batch"
        );
    }
}
