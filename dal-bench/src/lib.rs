//! `dal-bench`: dal side by side with raw sqlx, SeaORM, tokio-postgres through deadpool and
//! pgbench (`cargo run --release -p dal-bench --bin bench`), the capacity tool
//! (`cargo run --release -p dal-bench --bin capacity`), and read replicas and failover on
//! private replicated clusters (`cargo run --release -p dal-bench --bin replicas`).
//!
//! This library holds the parts that need no database (statistics, the ideal FIFO queueing
//! time, the report and its Markdown table, charts, machine description), so that
//! `cargo test --workspace` checks them. Benchmarks are never timed assertions in tests.

pub mod chart;
pub mod machine;
pub mod replicas;
pub mod report;
pub mod stats;

/// The error type of the benchmark binaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`BoxError`].
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The workspace's `bench-results/` directory (where the binaries write), whatever the
/// current directory.
pub fn results_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("bench-results"))
        .unwrap_or_else(|| "bench-results".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn charts_render_without_system_fonts() {
        use crate::chart::*;
        let dir = std::env::temp_dir().join(format!("dal-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bars = vec![
            Bar {
                label: "Point SELECT c=20 vs sqlx".into(),
                factor: 1.1,
                target: Some(1.0),
                met: Some(true),
            },
            Bar {
                label: "Entity get vs SeaORM".into(),
                factor: 0.8,
                target: Some(1.0),
                met: Some(false),
            },
            Bar {
                label: "n/a".into(),
                factor: f64::NAN,
                target: None,
                met: None,
            },
        ];
        let p = dir.join("ratios.png");
        ratio_chart(&p, "test", &bars).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
        let pts = vec![
            CapacityPoint {
                users: 200,
                throughput: 195.0,
                limit: 200.0,
                timeout_rate: 0.0,
            },
            CapacityPoint {
                users: 5000,
                throughput: 199.0,
                limit: 200.0,
                timeout_rate: 0.45,
            },
        ];
        let p = dir.join("capacity.png");
        capacity_chart(&p, "test", &pts).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
