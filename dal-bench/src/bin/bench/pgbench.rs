//! `pgbench -S -M prepared`: a separate process, run once per client count in its own
//! database (`dal_bench_pgbench`, created and initialised on first use).

use dal_bench::Result;
use sqlx::Connection as _;

const PGBENCH_DB: &str = "dal_bench_pgbench";

/// pgbench for the PostgreSQL point-select rows: the URL of its database, set up, or why its
/// rows are n/a (shown in the row).
pub type Pgbench<'a> = std::result::Result<&'a str, &'static str>;

pub fn available() -> bool {
    std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn with_database(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_path(&format!("/{db}"));
    u.set_query(None);
    Ok(u.to_string())
}

/// Creates and initialises pgbench's database (scale 1); returns its URL.
pub async fn setup(pg_url: &str) -> Result<String> {
    let mut c = sqlx::PgConnection::connect(pg_url).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(PGBENCH_DB)
        .fetch_optional(&mut c)
        .await?;
    if exists.is_none() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {PGBENCH_DB}")))
            .execute(&mut c)
            .await?;
    }
    c.close().await?;
    let url = with_database(pg_url, PGBENCH_DB)?;
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args(["-i", "-q", "-s", "1", &u])
            .output()
    })
    .await??;
    if !out.status.success() {
        return Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(url)
}

/// `tps = 43210.5 (without initial connection time)` → 43210.5
pub fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("tps = "))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Transactions per second of `pgbench -S -M prepared -c N -j N -T seconds`.
pub async fn run(url: &str, clients: usize, seconds: u64) -> Result<f64> {
    let (u, n, t) = (url.to_owned(), clients.to_string(), seconds.to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("pgbench")
            .args([
                "-S", "-M", "prepared", "-c", &n, "-j", &n, "-T", &t, "-n", &u,
            ])
            .output()
    })
    .await??;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_tps(&text).ok_or_else(|| {
        format!(
            "pgbench printed no tps: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_output_is_parsed() {
        let out = "pgbench (15.20)\ntransaction type: <builtin: select only>\nlatency average = 0.460 ms\n\
                   initial connection time = 12.345 ms\ntps = 43210.987654 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(43210.987654));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn database_swapped_in_url() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/dal_test?sslmode=disable",
                "x"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
    }
}
