//! Helpers for tests that start private database servers: commands, temporary directories,
//! spare loopback ports and polling with a deadline.
//!
//! Private servers run only on loopback ports 5433–5440 (PostgreSQL) and 3307–3310
//! (MariaDB), in temporary directories, and are always torn down by their owner's Drop guard.
//! The shared services on 5432 and 3306 are never touched.
#![allow(dead_code)] // each test binary uses its own subset

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where Debian keeps the PostgreSQL 15 programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Loopback ports for private PostgreSQL servers.
pub const PG_PORTS: std::ops::RangeInclusive<u16> = 5433..=5440;

/// Loopback ports for private MariaDB servers.
pub const MY_PORTS: std::ops::RangeInclusive<u16> = 3307..=3310;

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) {
    output(cmd);
}

/// Runs a command and returns its trimmed standard output, panicking with its output when it
/// fails.
pub fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A command that runs the PostgreSQL program `tool` (`initdb`, `pg_ctl`, `psql`, …) as the
/// `postgres` user: the server refuses to run as root.
pub fn pg_command(tool: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"])
        .arg(Path::new(PG_BIN).join(tool));
    cmd
}

/// The last `lines` lines of a log file, for failure messages (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/dal-{tag}-{pid}-{n}`: unique within and across test processes.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("dal-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port reserved for one private server until dropped.
///
/// The reservation is an exclusive lock on `$TMPDIR/dal-test-port-{port}.lock`, so test
/// threads and test processes that use these helpers never pick the same port; the kernel
/// releases it when the process ends, however it ends. Beyond that, the port is free at the
/// time of the call (nothing accepts connections on it and it can be bound).
pub struct PortLease {
    port: u16,
    _lock: File,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }

    fn try_take(port: u16) -> Option<PortLease> {
        let path = std::env::temp_dir().join(format!("dal-test-port-{port}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok()?;
        file.try_lock().ok()?;
        let free = TcpStream::connect(("127.0.0.1", port)).is_err()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        free.then_some(PortLease { port, _lock: file })
    }
}

/// How long [`spare_ports`] waits for other tests to release ports.
pub const PORT_WAIT: Duration = Duration::from_secs(180);

/// Reserves `n` spare loopback ports in `range`, all or none: while fewer are free (other
/// tests hold them), waits for them to be released, panicking after [`PORT_WAIT`]. Taking
/// them together means two tests that each need two ports never hold one each and wait
/// forever for the other.
pub fn spare_ports(range: std::ops::RangeInclusive<u16>, n: usize) -> Vec<PortLease> {
    let mut leases = Vec::new();
    wait_until(
        PORT_WAIT,
        || format!("no {n} spare loopback ports in {range:?} (other tests or servers hold them)"),
        || {
            leases = range
                .clone()
                .filter_map(PortLease::try_take)
                .take(n)
                .collect();
            leases.len() == n
        },
    );
    leases
}

/// Reserves one spare loopback port in `range`, waiting as [`spare_ports`] does.
pub fn spare_port(range: std::ops::RangeInclusive<u16>) -> PortLease {
    spare_ports(range, 1).remove(0)
}

/// Polls `done` every 20 ms until it returns true, panicking with `what()` after `limit`.
pub fn wait_until(limit: Duration, what: impl Fn() -> String, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?}: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (60 s at most) until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, what: &str) {
    wait_until(
        Duration::from_secs(60),
        || format!("{what} did not come up on port {port}"),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// Stops a server process: SIGTERM (a clean shutdown), then SIGKILL if it is still running
/// after `grace`. Returns once the process has exited.
pub fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
