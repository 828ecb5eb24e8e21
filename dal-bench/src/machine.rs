//! What machine a run came from, and the process's peak memory.

use crate::report::Machine;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `field: value` lines (as in /proc files): the value of the first line named `key`.
pub fn proc_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// A `/proc` size in kB (`123456 kB`) as bytes.
pub fn parse_kb(v: &str) -> Option<u64> {
    v.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// CPUs, CPU model, memory and OS of this machine (database versions are filled in later).
pub fn describe() -> Machine {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = proc_field(&cpuinfo, "model name")
        .unwrap_or("unknown CPU")
        .to_owned();
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let memory = proc_field(&meminfo, "MemTotal")
        .and_then(parse_kb)
        .map(|b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "unknown".into());
    let os = read("/etc/os-release")
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let kernel = read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned());
    Machine {
        cpus,
        cpu_model,
        memory,
        os: match kernel {
            Some(k) => format!("{os}, Linux {k}"),
            None => os,
        },
        ..Default::default()
    }
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    proc_field(&read("/proc/self/status")?, "VmHWM").and_then(parse_kb)
}

/// Resets the peak-RSS mark (Linux: `5` written to `/proc/self/clear_refs`), so the next
/// [`peak_rss`] covers only what follows. Returns whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time (user + system) this process has used so far, all threads included.
pub fn cpu_time() -> std::time::Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(ru) => {
            let tv = |t: nix::sys::time::TimeVal| {
                std::time::Duration::new(
                    u64::try_from(t.tv_sec()).unwrap_or(0),
                    u32::try_from(t.tv_usec()).unwrap_or(0) * 1000,
                )
            };
            tv(ru.user_time()) + tv(ru.system_time())
        }
        Err(_) => std::time::Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let status = "Name:\tbench\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\n";
        assert_eq!(proc_field(status, "VmHWM"), Some("2048 kB"));
        assert_eq!(proc_field(status, "Missing"), None);
        assert_eq!(parse_kb("2048 kB"), Some(2 * 1024 * 1024));
        assert_eq!(parse_kb("x kB"), None);
    }

    #[test]
    fn cpu_time_moves_forward() {
        let a = cpu_time();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time() >= a);
    }
}
