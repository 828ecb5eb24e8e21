//! Outputs: `bench-results/{latest,combined}.{json,md,png}`.

use std::path::{Path, PathBuf};

use dal_bench::chart::{ratio_chart, Bar};
use dal_bench::report::{combine, markdown_report, speed_factor, Report};
use dal_bench::{results_dir, Result};

use crate::names::short_name;

fn chart_bars(report: &Report) -> Vec<Bar> {
    let mut bars = Vec::new();
    for w in &report.workloads {
        for row in w.rows() {
            let label = format!(
                "{}: vs {}",
                w.id,
                short_name(&row.alternative.series.contender)
            );
            bars.push(Bar {
                label,
                factor: row.speed_factor().unwrap_or(f64::NAN),
                target: row
                    .alternative
                    .target
                    .and_then(|t| speed_factor(t.ratio, w.direction)),
                met: row.met,
            });
        }
    }
    bars
}

/// Writes `name.json`, `name.md` and `name.png`; returns the directory.
pub fn write_outputs(report: &Report, name: &str) -> Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join(format!("{name}.md")), markdown_report(report))?;
    let title = format!(
        "dal vs alternatives: {} CPUs, {}",
        report.machine.cpus,
        report
            .machine
            .postgres
            .as_deref()
            .and_then(|v| v.split(" on ").next())
            .unwrap_or("PostgreSQL")
    );
    if let Err(e) = ratio_chart(
        &dir.join(format!("{name}.png")),
        &title,
        &chart_bars(report),
    ) {
        eprintln!("chart not written: {e}");
    }
    Ok(dir)
}

/// `--combine`: medians of several runs' `latest.json`, written as `combined.*`.
pub fn combine_runs(paths: &[impl AsRef<Path>]) -> Result<()> {
    let reports = paths
        .iter()
        .map(|p| -> Result<Report> { Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?) })
        .collect::<Result<Vec<_>>>()?;
    let combined = combine(&reports).ok_or("nothing to combine")?;
    let dir = write_outputs(&combined, "combined")?;
    println!("{}", markdown_report(&combined));
    eprintln!("written: {}/combined.{{json,md,png}}", dir.display());
    Ok(())
}

/// The URL with its password masked, for progress lines.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
