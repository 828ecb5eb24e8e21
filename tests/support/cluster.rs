//! Private replicated clusters for integration tests: a PostgreSQL primary with a streaming
//! standby ([`PgCluster`]) and a MariaDB primary with a GTID replica ([`MyCluster`]).
//!
//! Each cluster lives in its own temporary directory on spare loopback ports (PostgreSQL
//! 5433–5440, MariaDB 3307–3310) and is torn down by its Drop guard, also when a test panics.
//! The methods block (they run the servers' command-line tools); calling them from a
//! multi-thread tokio test is fine, or wrap them in `tokio::task::spawn_blocking`. Every wait
//! polls with a deadline and panics with the servers' state when it runs out.
//!
//! Pools are shared by configuration (see `DatabaseConfig::hash`): give each `Database` a
//! distinct alias, so that a later cluster on the same port never joins a pool whose
//! connections went to a server that is gone.
//!
//! [`Replicated`] is what the replica tests and the replicas benchmark use of either cluster.
#![allow(dead_code)] // each test binary uses its own subset

#[path = "servers.rs"]
pub mod servers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dal::Backend;
use servers::{
    log_tail, output, pg_command, run, spare_ports, terminate, wait_until, PortLease, TempDir,
    MY_PORTS, PG_PORTS,
};

/// How long a wait for replication (or a server) may take before the harness panics.
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A private PostgreSQL 15 primary with a streaming standby (physical replication through a
/// replication slot, hot standby), both on loopback with trust authentication for `postgres`.
pub struct PgCluster {
    /// The unix socket directory (and parent of both data directories and logs).
    dir: PathBuf,
    primary: PgNode,
    standby: PgNode,
    // Dropped after `drop` stopped the servers, in declaration order.
    _ports: [PortLease; 2],
    _dir: TempDir,
}

struct PgNode {
    name: &'static str,
    data: PathBuf,
    log: PathBuf,
    port: u16,
}

impl PgCluster {
    /// Starts the primary, creates `dal_test`, clones the standby from it with `pg_basebackup`
    /// and returns once the standby is streaming and sees `dal_test` (about a second).
    pub fn start() -> PgCluster {
        let dir = TempDir::new("pg-cluster");
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path()));
        let [primary, standby]: [PortLease; 2] = spare_ports(PG_PORTS, 2).try_into().ok().unwrap();
        let node = |name: &'static str, port: u16| PgNode {
            name,
            data: dir.path().join(name),
            log: dir.path().join(format!("{name}.log")),
            port,
        };
        let c = PgCluster {
            dir: dir.path().to_owned(),
            primary: node("primary", primary.port()),
            standby: node("standby", standby.port()),
            _ports: [primary, standby],
            _dir: dir,
        };
        // From here on a panic stops whatever has started (Drop).
        run(pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-N", "-D"])
            .arg(&c.primary.data));
        let conf = format!(
            "\n# dal test cluster\n\
             port = {}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             max_connections = 100\n\
             shared_buffers = 32MB\n\
             wal_level = replica\n\
             max_wal_senders = 5\n\
             max_replication_slots = 5\n\
             hot_standby = on\n\
             hot_standby_feedback = on\n\
             wal_receiver_status_interval = 1s\n\
             wal_retrieve_retry_interval = 200ms\n\
             fsync = off\n",
            c.primary.port,
            c.dir.display()
        );
        append(&c.primary.data.join("postgresql.conf"), &conf);
        append(
            &c.primary.data.join("pg_hba.conf"),
            "host replication postgres 127.0.0.1/32 trust\n",
        );
        c.pg_ctl_start(&c.primary);
        c.psql_in(c.primary.port, "postgres", "CREATE DATABASE dal_test");
        // The standby: a copy of the primary (configuration included, so max_connections is
        // the same), with standby.signal and primary_conninfo (-R) and a slot of its own (-C -S).
        run(pg_command("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &c.primary.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                "dal_standby",
            ])
            .args(["-c", "fast", "-D"])
            .arg(&c.standby.data));
        append(
            &c.standby.data.join("postgresql.conf"),
            &format!("port = {}\n", c.standby.port),
        );
        c.pg_ctl_start(&c.standby);
        c.wait_streaming();
        assert_eq!(
            c.psql_in(
                c.standby.port,
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'dal_test'"
            ),
            "1",
            "the standby does not see dal_test"
        );
        c
    }

    pub fn primary_port(&self) -> u16 {
        self.primary.port
    }

    pub fn standby_port(&self) -> u16 {
        self.standby.port
    }

    /// `postgres://postgres@127.0.0.1:{primary}/dal_test?sslmode=disable`
    pub fn primary_url(&self) -> String {
        pg_url(self.primary.port)
    }

    /// `postgres://postgres@127.0.0.1:{standby}/dal_test?sslmode=disable`
    pub fn standby_url(&self) -> String {
        pg_url(self.standby.port)
    }

    /// Runs `sql` with `psql -At` as `postgres` in `dal_test` on the server at `port` (over its
    /// unix socket) and returns the trimmed output; panics with the output on failure.
    pub fn psql(&self, port: u16, sql: &str) -> String {
        self.psql_in(port, "dal_test", sql)
    }

    /// Pauses WAL replay on the standby (`pg_wal_replay_pause()`) and returns once it is
    /// paused: WAL still arrives, nothing more is applied.
    pub fn pause_replay(&self) {
        self.psql(self.standby.port, "SELECT pg_wal_replay_pause()");
        wait_until(
            DEADLINE,
            || format!("standby replay did not pause\n{}", self.state()),
            || self.psql(self.standby.port, "SELECT pg_get_wal_replay_pause_state()") == "paused",
        );
    }

    /// Resumes WAL replay on the standby (`pg_wal_replay_resume()`).
    pub fn resume_replay(&self) {
        self.psql(self.standby.port, "SELECT pg_wal_replay_resume()");
    }

    /// Stops the standby (`pg_ctl stop -m fast`).
    pub fn stop_standby(&self) {
        self.pg_ctl_stop(&self.standby, "fast");
    }

    /// Starts the standby again and returns once it accepts connections and streams.
    pub fn start_standby(&self) {
        self.pg_ctl_start(&self.standby);
        self.wait_streaming();
    }

    /// Stops the primary (`pg_ctl stop -m fast`): a clean shutdown, after which the walsender
    /// has shipped all WAL, the shutdown checkpoint included, to the standby.
    pub fn stop_primary(&self) {
        self.pg_ctl_stop(&self.primary, "fast");
    }

    /// Promotes the standby (`pg_ctl promote -w`; it first replays all WAL it has received,
    /// also when replay was paused) and returns once `pg_is_in_recovery()` is false.
    pub fn promote_standby(&self) {
        run(pg_command("pg_ctl")
            .args(["promote", "-w", "-t", "60", "-D"])
            .arg(&self.standby.data)
            .stdin(Stdio::null()));
        wait_until(
            DEADLINE,
            || format!("the standby is still in recovery\n{}", self.state()),
            || self.psql(self.standby.port, "SELECT pg_is_in_recovery()") == "f",
        );
    }

    /// Returns once the standby has replayed all WAL the primary has written so far
    /// (`pg_last_wal_replay_lsn()` ≥ the primary's `pg_current_wal_lsn()`); panics after 30 s
    /// (e.g. while replay is paused).
    pub fn wait_replayed(&self) {
        self.wait_standby_lsn("pg_last_wal_replay_lsn()", "replayed");
    }

    /// Returns once the standby has received (written and flushed, not necessarily replayed)
    /// all WAL the primary has written so far; works while replay is paused.
    pub fn wait_received(&self) {
        self.wait_standby_lsn("pg_last_wal_receive_lsn()", "received");
    }

    /// The primary's and the standby's logs (their last lines), for failure messages.
    pub fn logs(&self) -> String {
        [&self.primary, &self.standby]
            .iter()
            .map(|n| format!("--- {} log:\n{}", n.name, log_tail(&n.log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_standby_lsn(&self, function: &str, what: &str) {
        let target = self.psql(self.primary.port, "SELECT pg_current_wal_lsn()");
        let sql = format!("SELECT {function} >= '{target}'::pg_lsn");
        wait_until(
            DEADLINE,
            || {
                format!(
                    "the standby has not {what} WAL up to {target}\n{}",
                    self.state()
                )
            },
            || self.psql(self.standby.port, &sql) == "t",
        );
    }

    fn wait_streaming(&self) {
        wait_until(
            DEADLINE,
            || format!("the standby is not streaming\n{}", self.state()),
            || {
                self.psql_try(
                    self.standby.port,
                    "postgres",
                    "SELECT status FROM pg_stat_wal_receiver",
                )
                .is_ok_and(|s| s == "streaming")
            },
        );
    }

    /// Replication state of both servers and their logs, for failure messages.
    fn state(&self) -> String {
        let ask = |port, sql| {
            self.psql_try(port, "postgres", sql)
                .unwrap_or_else(|e| format!("({e})"))
        };
        format!(
            "primary: current {} | standby: receive {} replay {} paused {} receiver {}\n{}",
            ask(self.primary.port, "SELECT pg_current_wal_lsn()"),
            ask(self.standby.port, "SELECT pg_last_wal_receive_lsn()"),
            ask(self.standby.port, "SELECT pg_last_wal_replay_lsn()"),
            ask(self.standby.port, "SELECT pg_get_wal_replay_pause_state()"),
            ask(self.standby.port, "SELECT status FROM pg_stat_wal_receiver"),
            self.logs()
        )
    }

    fn psql_in(&self, port: u16, database: &str, sql: &str) -> String {
        self.psql_try(port, database, sql)
            .unwrap_or_else(|e| panic!("psql on port {port}: {sql}\n{e}"))
    }

    fn psql_try(&self, port: u16, database: &str, sql: &str) -> Result<String, String> {
        let out = pg_command("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &port.to_string(), "-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn pg_ctl_start(&self, node: &PgNode) {
        let out = pg_command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-l"])
            .arg(&node.log)
            .arg("-D")
            .arg(&node.data)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("pg_ctl: {e}"));
        assert!(
            out.status.success(),
            "the {} did not start: {}{}\n{}",
            node.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log_tail(&node.log, 30)
        );
    }

    fn pg_ctl_stop(&self, node: &PgNode, mode: &str) {
        run(pg_command("pg_ctl")
            .args(["stop", "-w", "-t", "60", "-m", mode, "-D"])
            .arg(&node.data)
            .stdin(Stdio::null()));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        for node in [&self.standby, &self.primary] {
            let _ = pg_command("pg_ctl")
                .args(["stop", "-w", "-t", "30", "-m", "immediate", "-D"])
                .arg(&node.data)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn pg_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/dal_test?sslmode=disable")
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.write_all(text.as_bytes()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// MariaDB

/// A private MariaDB primary and a read-only replica replicating from it by GTID
/// (`MASTER_USE_GTID=slave_pos`), both with ROW binary logs (so the replica can be promoted).
///
/// Users, created on each server without being binary-logged: `root` over each server's unix
/// socket (used by [`sql`](Self::sql)), `repl`@`127.0.0.1` (REPLICATION SLAVE) for the replica,
/// and the TCP user `dal`@`%` of the URLs, without password, with ALL on `dal_test.*` plus
/// BINLOG MONITOR (REPLICATION CLIENT) and SLAVE MONITOR (`SHOW SLAVE STATUS`, `SHOW MASTER
/// STATUS`); it lacks READ_ONLY ADMIN, so `read_only=1` refuses its writes (error 1290).
pub struct MyCluster {
    primary: MyNode,
    replica: MyNode,
    // Dropped after `drop` stopped the servers, in declaration order.
    _dir: TempDir,
}

struct MyNode {
    name: &'static str,
    server_id: u32,
    data: PathBuf,
    socket: PathBuf,
    err_log: PathBuf,
    tmp: PathBuf,
    port: u16,
    /// Whether the server starts with `--read-only=1` (the replica until promoted).
    read_only: AtomicBool,
    child: Mutex<Option<Child>>,
    _port: PortLease,
}

/// Created on each server with `sql_log_bin=0`, so that nothing of it replicates.
const MY_USERS: &str = "SET SESSION sql_log_bin = 0; \
    CREATE USER 'repl'@'127.0.0.1'; \
    GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'; \
    CREATE USER 'dal'@'%'; \
    GRANT ALL ON dal_test.* TO 'dal'@'%'; \
    GRANT BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'dal'@'%'; \
    SET SESSION sql_log_bin = 1;";

impl MyCluster {
    /// Creates both data directories, starts both servers, sets up replication, creates
    /// `dal_test` on the primary and returns once the replica has it and both replication
    /// threads run (a couple of seconds).
    pub fn start() -> MyCluster {
        let dir = TempDir::new("my-cluster");
        let mut leases = spare_ports(MY_PORTS, 2).into_iter();
        let mut node = |name: &'static str, server_id: u32, read_only: bool| {
            let lease = leases.next().unwrap();
            MyNode {
                name,
                server_id,
                data: dir.path().join(name),
                socket: dir.path().join(format!("{name}.sock")),
                err_log: dir.path().join(format!("{name}.err")),
                tmp: dir.path().join(format!("{name}.tmp")),
                port: lease.port(),
                read_only: AtomicBool::new(read_only),
                child: Mutex::new(None),
                _port: lease,
            }
        };
        let primary = node("primary", 1, false);
        let replica = node("replica", 2, true);
        // Both data directories at once (each takes about a second).
        let installs: Vec<(Child, String)> = [&primary, &replica]
            .iter()
            .map(|n| {
                // Temporary files of its own: two bootstraps sharing /tmp collide.
                std::fs::create_dir_all(&n.tmp).unwrap();
                let mut cmd = Command::new("mariadb-install-db");
                cmd.args(["--no-defaults", "--user=root", "--skip-test-db"])
                    .arg(format!("--datadir={}", n.data.display()))
                    .arg(format!("--tmpdir={}", n.tmp.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let what = format!("{cmd:?}");
                (cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}")), what)
            })
            .collect();
        for (child, what) in installs {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{what} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let c = MyCluster {
            primary,
            replica,
            _dir: dir,
        };
        // From here on a panic stops whatever has started (Drop).
        c.spawn(&c.primary);
        c.spawn(&c.replica);
        c.wait_up(&c.primary);
        c.wait_up(&c.replica);
        c.root_sql(&c.primary, None, MY_USERS);
        c.root_sql(&c.replica, None, MY_USERS);
        c.root_sql(
            &c.replica,
            None,
            &format!(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
                 MASTER_USER = 'repl', MASTER_CONNECT_RETRY = 1, \
                 MASTER_USE_GTID = slave_pos; \
                 START SLAVE;",
                c.primary.port
            ),
        );
        c.root_sql(&c.primary, None, "CREATE DATABASE dal_test");
        wait_until(
            DEADLINE,
            || format!("the replica did not get dal_test\n{}", c.state()),
            || {
                c.root_sql(
                    &c.replica,
                    None,
                    "SELECT COUNT(*) FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME = 'dal_test'",
                ) == "1"
            },
        );
        c.wait_threads_running();
        c
    }

    pub fn primary_port(&self) -> u16 {
        self.primary.port
    }

    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// `mysql://dal@127.0.0.1:{primary}/dal_test?ssl-mode=disabled`
    pub fn primary_url(&self) -> String {
        my_url(self.primary.port)
    }

    /// `mysql://dal@127.0.0.1:{replica}/dal_test?ssl-mode=disabled`
    pub fn replica_url(&self) -> String {
        my_url(self.replica.port)
    }

    /// Runs `sql` (several statements allowed) with the `mariadb` client as `root` over the
    /// unix socket of the server at `port`, in `dal_test`, with `-N -B` (tab-separated, no
    /// column names); returns the trimmed output and panics with it on failure.
    pub fn sql(&self, port: u16, sql: &str) -> String {
        self.root_sql(self.node(port), Some("dal_test"), sql)
    }

    /// `STOP SLAVE SQL_THREAD` on the replica: it keeps receiving, applies nothing.
    pub fn stop_replica_sql(&self) {
        self.root_sql(&self.replica, None, "STOP SLAVE SQL_THREAD");
    }

    /// `START SLAVE SQL_THREAD` on the replica; returns once the SQL thread runs.
    pub fn start_replica_sql(&self) {
        self.root_sql(&self.replica, None, "START SLAVE SQL_THREAD");
        self.wait_threads_running();
    }

    /// Stops the replica's server process (a clean shutdown).
    pub fn stop_replica(&self) {
        self.stop(&self.replica);
    }

    /// Starts the replica's server again, on the same port and data directory; returns once
    /// it accepts connections and both replication threads run (it resumes from its GTID
    /// position).
    pub fn start_replica(&self) {
        self.spawn(&self.replica);
        self.wait_up(&self.replica);
        if self.replica.read_only.load(Ordering::Relaxed) {
            self.wait_threads_running();
        }
    }

    /// Stops the primary cleanly with `SHUTDOWN WAIT FOR ALL SLAVES`: the replica has
    /// received every binary log event before the primary goes away.
    pub fn stop_primary(&self) {
        // The client may or may not see an error as the server goes away: what counts is
        // that the process ends, which `stop` waits for.
        let _ = self.root_sql_try(&self.primary, None, "SHUTDOWN WAIT FOR ALL SLAVES");
        self.stop(&self.primary);
    }

    /// Promotes the replica: applies every event it has received (restarting the SQL thread
    /// if it was stopped, as PostgreSQL's promotion replays all received WAL), then
    /// `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`.
    pub fn promote_replica(&self) {
        self.root_sql(&self.replica, None, "START SLAVE SQL_THREAD");
        let received = self.replica_status()["Gtid_IO_Pos"].clone();
        wait_until(
            DEADLINE,
            || format!("the replica did not apply {received}\n{}", self.state()),
            || gtid_covers(&self.gtid_slave_pos(), &received),
        );
        self.root_sql(
            &self.replica,
            None,
            "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0",
        );
        self.replica.read_only.store(false, Ordering::Relaxed);
    }

    /// Returns once the replica has applied everything in the primary's binary log
    /// (`@@gtid_slave_pos` covers the primary's `@@gtid_binlog_pos`); panics after 30 s
    /// (e.g. while the SQL thread is stopped).
    pub fn wait_replayed(&self) {
        let target = self.primary_gtid();
        wait_until(
            DEADLINE,
            || format!("the replica has not applied {target}\n{}", self.state()),
            || gtid_covers(&self.gtid_slave_pos(), &target),
        );
    }

    /// Returns once the replica has received (in its relay log, `Gtid_IO_Pos`) everything in
    /// the primary's binary log; works while the SQL thread is stopped.
    pub fn wait_received(&self) {
        let target = self.primary_gtid();
        wait_until(
            DEADLINE,
            || format!("the replica has not received {target}\n{}", self.state()),
            || {
                self.replica_status()
                    .get("Gtid_IO_Pos")
                    .is_some_and(|io| gtid_covers(io, &target))
            },
        );
    }

    /// `SHOW SLAVE STATUS` on the replica as column → value (empty when it is no replica).
    pub fn replica_status(&self) -> HashMap<String, String> {
        let out = output(
            self.client(&self.replica, None)
                .args(["-E", "-e", "SHOW SLAVE STATUS"]),
        );
        out.lines()
            .filter_map(|l| l.trim_start().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// Both servers' error logs (their last lines), for failure messages.
    pub fn logs(&self) -> String {
        [&self.primary, &self.replica]
            .iter()
            .map(|n| format!("--- {} error log:\n{}", n.name, log_tail(&n.err_log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn primary_gtid(&self) -> String {
        self.root_sql(&self.primary, None, "SELECT @@GLOBAL.gtid_binlog_pos")
    }

    fn gtid_slave_pos(&self) -> String {
        self.root_sql(&self.replica, None, "SELECT @@GLOBAL.gtid_slave_pos")
    }

    fn wait_threads_running(&self) {
        wait_until(
            DEADLINE,
            || format!("replication threads are not running\n{}", self.state()),
            || {
                let s = self.replica_status();
                s.get("Slave_IO_Running").is_some_and(|v| v == "Yes")
                    && s.get("Slave_SQL_Running").is_some_and(|v| v == "Yes")
            },
        );
    }

    /// Replication state and logs, for failure messages.
    fn state(&self) -> String {
        let ask = |n: &MyNode, sql: &str| {
            self.root_sql_try(n, None, sql)
                .unwrap_or_else(|e| format!("({e})"))
        };
        let status = self
            .client(&self.replica, None)
            .args(["-E", "-e", "SHOW SLAVE STATUS"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!(
            "primary gtid_binlog_pos {} | replica gtid_slave_pos {}\n{status}\n{}",
            ask(&self.primary, "SELECT @@GLOBAL.gtid_binlog_pos"),
            ask(&self.replica, "SELECT @@GLOBAL.gtid_slave_pos"),
            self.logs()
        )
    }

    fn node(&self, port: u16) -> &MyNode {
        if port == self.primary.port {
            &self.primary
        } else if port == self.replica.port {
            &self.replica
        } else {
            panic!(
                "port {port} is neither the primary ({}) nor the replica ({})",
                self.primary.port, self.replica.port
            )
        }
    }

    fn client(&self, node: &MyNode, database: Option<&str>) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", node.socket.display()))
            .stdin(Stdio::null());
        if let Some(db) = database {
            cmd.arg(format!("--database={db}"));
        }
        cmd
    }

    fn root_sql(&self, node: &MyNode, database: Option<&str>, sql: &str) -> String {
        self.root_sql_try(node, database, sql)
            .unwrap_or_else(|e| panic!("mariadb on the {} ({}): {sql}\n{e}", node.name, node.port))
    }

    fn root_sql_try(
        &self,
        node: &MyNode,
        database: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        let out = self
            .client(node, database)
            .args(["-N", "-B", "-e", sql])
            .output()
            .map_err(|e| format!("mariadb: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Starts `node`'s server process (it must not be running).
    fn spawn(&self, node: &MyNode) {
        let mut child = node.child.lock().unwrap_or_else(|e| e.into_inner());
        assert!(child.is_none(), "the {} is running already", node.name);
        let mut cmd = Command::new("mariadbd");
        cmd.args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg("--skip-name-resolve")
            .arg(format!("--datadir={}", node.data.display()))
            .arg(format!("--port={}", node.port))
            .arg(format!("--socket={}", node.socket.display()))
            .arg(format!(
                "--pid-file={}",
                node.data.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", node.err_log.display()))
            .arg(format!("--tmpdir={}", node.tmp.display()))
            .arg(format!("--server-id={}", node.server_id))
            .arg(format!("--log-bin={}", node.data.join("binlog").display()))
            .arg(format!("--relay-log={}", node.data.join("relay").display()))
            .args(["--binlog-format=ROW", "--log-slave-updates"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args([
                "--innodb-buffer-pool-size=16M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            .args(["--sync-binlog=0"]);
        if node.read_only.load(Ordering::Relaxed) {
            cmd.arg("--read-only=1");
        }
        let spawned = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("mariadbd: {e}"));
        *child = Some(spawned);
    }

    /// Waits until `node` accepts connections over its socket (and so over TCP).
    fn wait_up(&self, node: &MyNode) {
        wait_until(
            Duration::from_secs(60),
            || {
                format!(
                    "the {} did not come up on port {}:\n{}",
                    node.name,
                    node.port,
                    log_tail(&node.err_log, 40)
                )
            },
            || {
                if let Some(c) = node
                    .child
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    if let Ok(Some(status)) = c.try_wait() {
                        panic!(
                            "the {} exited ({status}):\n{}",
                            node.name,
                            log_tail(&node.err_log, 40)
                        );
                    }
                }
                self.root_sql_try(node, None, "SELECT 1").is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", node.port)).is_ok()
            },
        );
    }

    /// Stops `node`'s server process: SIGTERM, SIGKILL after 30 s.
    fn stop(&self, node: &MyNode) {
        let child = node.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut c) = child {
            terminate(&mut c, Duration::from_secs(30));
        }
    }
}

impl Drop for MyCluster {
    fn drop(&mut self) {
        // Both shut down at once; each gets a grace period before SIGKILL.
        let mut children: Vec<Child> = [&self.replica, &self.primary]
            .iter()
            .filter_map(|n| n.child.lock().unwrap_or_else(|e| e.into_inner()).take())
            .collect();
        for c in &children {
            let _ = Command::new("kill")
                .arg(c.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for c in &mut children {
            terminate(c, Duration::from_secs(10));
        }
    }
}

fn my_url(port: u16) -> String {
    format!("mysql://dal@127.0.0.1:{port}/dal_test?ssl-mode=disabled")
}

/// Whether the GTID position `have` (e.g. `0-1-12,1-3-4`) includes every GTID of `want`:
/// for each replication domain of `want`, `have` is at the same or a later sequence number.
pub fn gtid_covers(have: &str, want: &str) -> bool {
    let parse = |pos: &str| -> HashMap<u32, u64> {
        pos.split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(|g| {
                let mut parts = g.split('-');
                let domain = parts.next().and_then(|d| d.parse().ok());
                let seq = parts.nth(1).and_then(|s| s.parse().ok());
                match (domain, seq) {
                    (Some(d), Some(s)) => (d, s),
                    _ => panic!("not a GTID: {g:?} in {pos:?}"),
                }
            })
            .collect()
    };
    let have = parse(have);
    parse(want)
        .iter()
        .all(|(domain, seq)| have.get(domain).is_some_and(|h| h >= seq))
}

// ---------------------------------------------------------------------------------------------
// Either cluster

/// What the replica tests (`tests/replicas.rs`) and the replicas benchmark
/// (`dal-bench/src/bin/replicas.rs`) need of a cluster, whichever backend: "replica" is the
/// PostgreSQL standby or the MariaDB replica. Every method blocks, as the clusters' own do.
pub trait Replicated: Send + Sync {
    fn backend(&self) -> Backend;
    fn primary_port(&self) -> u16;
    fn replica_port(&self) -> u16;
    /// The replica's host and port, for `DatabaseConfig::replica`.
    fn replica_host_port(&self) -> (String, u16);
    fn primary_url(&self) -> String;
    fn replica_url(&self) -> String;
    /// Both servers in one URL (a host list), primary first, with `query` appended.
    fn url_with_hosts(&self, query: &str) -> String;
    /// SQL answering one row, column `r`: 1/true on a replica.
    fn is_replica_sql(&self) -> &'static str;
    /// Stops applying replication on the replica (it still receives), or resumes it.
    fn lag_on(&self);
    fn lag_off(&self);
    fn stop_replica(&self);
    fn start_replica(&self);
    /// Stops the primary cleanly, once the replica has received everything.
    fn stop_primary(&self);
    /// Makes the primary refuse writes (a demotion without a restart), or accept them again.
    fn set_primary_read_only(&self, on: bool);
    /// Promotes the replica (once it has applied everything it received).
    fn promote(&self);
    /// Returns once the replica has applied everything the primary has written.
    fn wait_replayed(&self);
}

impl Replicated for PgCluster {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
    fn primary_port(&self) -> u16 {
        PgCluster::primary_port(self)
    }
    fn replica_port(&self) -> u16 {
        self.standby_port()
    }
    fn replica_host_port(&self) -> (String, u16) {
        ("127.0.0.1".into(), self.standby_port())
    }
    fn primary_url(&self) -> String {
        PgCluster::primary_url(self)
    }
    fn replica_url(&self) -> String {
        self.standby_url()
    }
    fn url_with_hosts(&self, query: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/dal_test?sslmode=disable&{query}",
            PgCluster::primary_port(self),
            self.standby_port()
        )
    }
    fn is_replica_sql(&self) -> &'static str {
        "SELECT pg_is_in_recovery() AS [r]"
    }
    fn lag_on(&self) {
        self.pause_replay()
    }
    fn lag_off(&self) {
        self.resume_replay()
    }
    fn stop_replica(&self) {
        self.stop_standby()
    }
    fn start_replica(&self) {
        self.start_standby()
    }
    fn stop_primary(&self) {
        PgCluster::stop_primary(self)
    }
    fn set_primary_read_only(&self, on: bool) {
        let port = PgCluster::primary_port(self);
        if on {
            self.psql(port, "ALTER SYSTEM SET default_transaction_read_only = on");
        } else {
            self.psql(port, "ALTER SYSTEM RESET default_transaction_read_only");
        }
        self.psql(port, "SELECT pg_reload_conf()");
    }
    fn promote(&self) {
        self.promote_standby()
    }
    fn wait_replayed(&self) {
        PgCluster::wait_replayed(self)
    }
}

impl Replicated for MyCluster {
    fn backend(&self) -> Backend {
        Backend::MySql
    }
    fn primary_port(&self) -> u16 {
        MyCluster::primary_port(self)
    }
    fn replica_port(&self) -> u16 {
        MyCluster::replica_port(self)
    }
    fn replica_host_port(&self) -> (String, u16) {
        ("127.0.0.1".into(), MyCluster::replica_port(self))
    }
    fn primary_url(&self) -> String {
        MyCluster::primary_url(self)
    }
    fn replica_url(&self) -> String {
        MyCluster::replica_url(self)
    }
    fn url_with_hosts(&self, query: &str) -> String {
        format!(
            "mysql://dal@127.0.0.1:{},127.0.0.1:{}/dal_test?ssl-mode=disabled&{query}",
            MyCluster::primary_port(self),
            MyCluster::replica_port(self)
        )
    }
    fn is_replica_sql(&self) -> &'static str {
        "SELECT @@read_only AS [r]"
    }
    fn lag_on(&self) {
        self.stop_replica_sql()
    }
    fn lag_off(&self) {
        self.start_replica_sql()
    }
    fn stop_replica(&self) {
        MyCluster::stop_replica(self)
    }
    fn start_replica(&self) {
        MyCluster::start_replica(self)
    }
    fn stop_primary(&self) {
        MyCluster::stop_primary(self)
    }
    fn set_primary_read_only(&self, on: bool) {
        self.sql(
            MyCluster::primary_port(self),
            &format!("SET GLOBAL read_only = {}", u8::from(on)),
        );
    }
    fn promote(&self) {
        self.promote_replica()
    }
    fn wait_replayed(&self) {
        MyCluster::wait_replayed(self)
    }
}
