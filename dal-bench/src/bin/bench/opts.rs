//! Command line: the options, `--help`, and the filters `--only` / `--contender`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dal_bench::{BoxError, Result};

use crate::contender::Timing;

/// Without TLS: tokio-postgres (through deadpool) connects with `NoTls`, so every contender
/// uses the same plain transport (with the server's `ssl = on`, sqlx and libpq would otherwise
/// negotiate TLS under the default `sslmode=prefer`, and pay for encryption the other does not).
pub const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable";
pub const MY_DEFAULT: &str = "mysql://root@127.0.0.1:3306/dal_test";

pub const HELP: &str = "cargo run --release -p dal-bench --bin bench -- [options]
  --quick               short rounds (about a minute in all)
  --rounds N            rounds per workload (default 5)
  --seconds S           measured seconds per contender and round (default 1, quick 0.2)
  --warmup S            warm-up seconds before each measurement (default 0.25, quick 0.06)
  --only ID[,ID..]      workloads whose id contains one of these (point_select_c20, point_select_c1,
                        insert, entity_save, entity_get, find_limit10, bulk_save, checkout,
                        acquire_wait, mysql_point_select, mysql_entity_get, mysql_entity_save,
                        mysql_bulk_save, sqlite_point_select, sqlite_entity_get,
                        sqlite_entity_save, sqlite_bulk_save)
  --contender NAME[,..] contenders whose name contains one of these; =NAME for an exact name
                        (e.g. --contender =dal to profile dal alone)
  --no-mysql, --no-sqlite, --no-pgbench
  --combine A.json B.json ..  medians of several runs -> bench-results/combined.{json,md,png}
  --explain-bulk        time each statement kind of dal's bulk save, done by raw sqlx (server cost)
Environment: DAL_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable:
               tokio-postgres runs without TLS, so every contender does),
             DAL_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/dal_test)";

#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    pub quick: bool,
    pub rounds: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub only: Vec<String>,
    pub contenders: Vec<String>,
    pub mysql: bool,
    pub sqlite: bool,
    pub pgbench: bool,
    pub combine: Vec<PathBuf>,
    pub explain_bulk: bool,
    pub pg_url: String,
    pub my_url: String,
}

impl Opts {
    /// The defaults, with the two server URLs.
    fn defaults(pg_url: String, my_url: String) -> Self {
        Opts {
            quick: false,
            rounds: 5,
            warmup: Duration::from_millis(250),
            measure: Duration::from_millis(1000),
            only: vec![],
            contenders: vec![],
            mysql: true,
            sqlite: true,
            pgbench: true,
            combine: vec![],
            explain_bulk: false,
            pg_url,
            my_url,
        }
    }

    /// Warm-up and measured window of one contender's round.
    pub fn timing(&self) -> Timing {
        Timing {
            warmup: self.warmup,
            measure: self.measure,
        }
    }
}

/// The process's options (URLs from the environment); `None` for `--help`.
pub fn from_env() -> Result<Option<Opts>> {
    parse(
        std::env::args().skip(1),
        std::env::var("DAL_BENCH_POSTGRES_URL").unwrap_or_else(|_| PG_DEFAULT.into()),
        std::env::var("DAL_BENCH_MYSQL_URL").unwrap_or_else(|_| MY_DEFAULT.into()),
    )
}

fn list(s: String) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

/// Parses `args` (without the program name); `None` when `-h`/`--help` was given. `--quick`
/// sets short windows; `--rounds`, `--seconds` and `--warmup` override them in any order.
/// `--combine` takes every argument after it as a file.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    pg_url: String,
    my_url: String,
) -> Result<Option<Opts>> {
    let mut o = Opts::defaults(pg_url, my_url);
    let (mut rounds, mut seconds, mut warmup) = (None, None, None);
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .ok_or_else(|| BoxError::from(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => rounds = Some(val("--rounds")?.parse::<usize>()?),
            "--seconds" => seconds = Some(val("--seconds")?.parse::<f64>()?),
            "--warmup" => warmup = Some(val("--warmup")?.parse::<f64>()?),
            "--only" => o.only = list(val("--only")?),
            "--contender" => o.contenders = list(val("--contender")?),
            "--no-mysql" => o.mysql = false,
            "--no-sqlite" => o.sqlite = false,
            "--no-pgbench" => o.pgbench = false,
            "--explain-bulk" => o.explain_bulk = true,
            "--combine" => o.combine.extend(args.by_ref().map(PathBuf::from)),
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown option {other:?} (see --help)").into()),
        }
    }
    if o.quick {
        o.measure = Duration::from_millis(200);
        o.warmup = Duration::from_millis(60);
    }
    if let Some(r) = rounds {
        o.rounds = r.max(1);
    }
    if let Some(s) = seconds {
        o.measure = Duration::from_secs_f64(s);
    }
    if let Some(w) = warmup {
        o.warmup = Duration::from_secs_f64(w);
    }
    Ok(Some(o))
}

/// The options and what PostgreSQL's setup produced, shared by the workloads.
pub struct Ctx {
    pub o: Opts,
    /// Ids of the entities read by entity get (PostgreSQL).
    pub people: Arc<Vec<String>>,
}

impl Ctx {
    /// Whether `--only` selects the workload `id` (substring match; everything without it).
    pub fn wants(&self, id: &str) -> bool {
        self.o.only.is_empty() || self.o.only.iter().any(|o| id.contains(o.as_str()))
    }

    /// Whether `--contender` selects `name` (substring, or exact with a leading `=`).
    pub fn wants_contender(&self, name: &str) -> bool {
        self.o.contenders.is_empty()
            || self.o.contenders.iter().any(|c| match c.strip_prefix('=') {
                Some(exact) => name == exact,
                None => name.contains(c.as_str()),
            })
    }

    /// `--only mysql_entity_get` should not also run PostgreSQL's entity_get.
    pub fn wants_only_other_backends(&self) -> bool {
        !self.o.only.is_empty()
            && self
                .o
                .only
                .iter()
                .all(|o| o.starts_with("mysql") || o.starts_with("sqlite"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Option<Opts>> {
        parse(
            args.iter().map(|s| s.to_string()),
            PG_DEFAULT.into(),
            MY_DEFAULT.into(),
        )
    }

    fn ctx(args: &[&str]) -> Ctx {
        Ctx {
            o: opts(args).unwrap().unwrap(),
            people: Arc::new(vec![]),
        }
    }

    #[test]
    fn defaults_and_quick() {
        let o = opts(&[]).unwrap().unwrap();
        assert_eq!((o.rounds, o.quick), (5, false));
        assert_eq!(o.measure, Duration::from_millis(1000));
        assert_eq!(o.warmup, Duration::from_millis(250));
        assert!(o.mysql && o.sqlite && o.pgbench && !o.explain_bulk);
        let q = opts(&["--quick"]).unwrap().unwrap();
        assert_eq!(q.measure, Duration::from_millis(200));
        assert_eq!(q.warmup, Duration::from_millis(60));
    }

    #[test]
    fn explicit_windows_override_quick_in_any_order() {
        let o = opts(&[
            "--seconds",
            "0.05",
            "--quick",
            "--warmup",
            "0.01",
            "--rounds",
            "0",
        ])
        .unwrap()
        .unwrap();
        assert!(o.quick);
        assert_eq!(o.measure, Duration::from_millis(50));
        assert_eq!(o.warmup, Duration::from_millis(10));
        assert_eq!(o.rounds, 1, "at least one round");
        assert_eq!(o.timing().measure, o.measure);
    }

    #[test]
    fn flags_lists_and_combine() {
        let o = opts(&[
            "--no-mysql",
            "--no-sqlite",
            "--no-pgbench",
            "--explain-bulk",
            "--only",
            "checkout, insert,",
            "--contender",
            "=dal",
            "--combine",
            "a.json",
            "--quick",
        ])
        .unwrap()
        .unwrap();
        assert!(!o.mysql && !o.sqlite && !o.pgbench && o.explain_bulk);
        assert_eq!(o.only, ["checkout", "insert"]);
        assert_eq!(o.contenders, ["=dal"]);
        assert!(!o.quick, "everything after --combine is a file");
        assert_eq!(
            o.combine,
            [PathBuf::from("a.json"), PathBuf::from("--quick")]
        );
        assert_eq!(opts(&["--quick", "--help"]).unwrap(), None);
        assert!(opts(&["--bogus"]).is_err());
        assert!(opts(&["--rounds"]).is_err());
        assert!(opts(&["--rounds", "x"]).is_err());
    }

    #[test]
    fn workload_and_contender_filters() {
        let all = ctx(&[]);
        assert!(all.wants("anything") && all.wants_contender("anyone"));
        assert!(!all.wants_only_other_backends());
        let c = ctx(&["--only", "entity_get", "--contender", "sqlx,=dal"]);
        assert!(c.wants("entity_get") && c.wants("mysql_entity_get"));
        assert!(!c.wants("entity_save"));
        assert!(c.wants_contender("dal") && !c.wants_contender("dal-ish"));
        assert!(c.wants_contender("raw sqlx, same statements"));
        assert!(!c.wants_contender("SeaORM find_by_id"));
        assert!(!c.wants_only_other_backends());
        let m = ctx(&["--only", "mysql_entity_get,sqlite_point_select"]);
        assert!(m.wants_only_other_backends());
        assert!(m.wants("mysql_entity_get") && !m.wants("entity_get"));
    }
}
