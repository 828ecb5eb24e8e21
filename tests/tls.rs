//! TLS against private PostgreSQL and MariaDB servers started by the test itself.
//!
//! Each backend gets one `#[tokio::test]` that makes a throwaway CA and a server certificate
//! for `localhost` (`openssl`), starts a private server with TLS on a spare loopback port in a
//! temporary directory, runs every case in turn, restarts the server without TLS for the
//! "`require` against a plain server" case, and tears it all down through a Drop guard (also
//! on failure). The shared services on 5432/3306 are never touched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

#[path = "support/servers.rs"]
mod servers;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dal::{Backend, Database, DatabaseConfig, RetryPolicy, SslMode};
use servers::{
    log_tail, pg_command, run, spare_port, terminate, wait_for_port, wait_until, PortLease,
    TempDir, MY_PORTS, PG_PORTS,
};

/// A CA, a server certificate for `localhost` signed by it, and an unrelated second CA.
/// (The server's certificate and key are `server.pem` and `server.key` beside them.)
struct Certs {
    ca: PathBuf,
    wrong_ca: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let p = |n: &str| dir.join(n);
    for ca in ["ca", "wrong-ca"] {
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=dal-test-{ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                p(&format!("{ca}.key")).to_str().unwrap(),
                "-out",
                p(&format!("{ca}.pem")).to_str().unwrap(),
            ]));
    }
    run(Command::new("openssl")
        .args(["req", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            p("server.key").to_str().unwrap(),
            "-out",
            p("server.csr").to_str().unwrap(),
        ]));
    std::fs::write(
        p("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .args([
            "-in",
            p("server.csr").to_str().unwrap(),
            "-CA",
            p("ca.pem").to_str().unwrap(),
            "-CAkey",
            p("ca.key").to_str().unwrap(),
            "-CAcreateserial",
            "-extfile",
            p("server.ext").to_str().unwrap(),
            "-out",
            p("server.pem").to_str().unwrap(),
        ]));
    Certs {
        ca: p("ca.pem"),
        wrong_ca: p("wrong-ca.pem"),
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

struct PgServer {
    data: PathBuf,
    port: u16,
    // Dropped after the server is stopped (fields drop in declaration order, after `drop`).
    _port: PortLease,
    _dir: TempDir,
}

impl PgServer {
    fn start(tls: bool) -> Self {
        let dir = TempDir::new("tls-pg");
        make_certs(&dir.0);
        let (cert, key) = (dir.0.join("server.pem"), dir.0.join("server.key"));
        let data = dir.0.join("data");
        // The server runs as `postgres`: it owns the directory, and its key must be 0600.
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir.0));
        run(Command::new("chmod").arg("600").arg(&key));
        run(pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-N", "-D"])
            .arg(&data));
        let lease = spare_port(PG_PORTS);
        let port = lease.port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = {}\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            dir.0.display(),
            if tls { "on" } else { "off" },
            cert.display(),
            key.display()
        );
        let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        c.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), c).unwrap();
        let server = PgServer {
            data,
            port,
            _port: lease,
            _dir: dir,
        };
        server.pg_ctl(&["start", "-w", "-t", "60", "-l"], Some("log"));
        wait_for_port(port, "private PostgreSQL");
        server
    }

    fn pg_ctl(&self, args: &[&str], log: Option<&str>) {
        let mut cmd = pg_command("pg_ctl");
        cmd.args(args);
        if let Some(l) = log {
            cmd.arg(self.data.parent().unwrap().join(l));
        }
        cmd.arg("-D").arg(&self.data);
        run(cmd.stdin(Stdio::null()));
    }

    fn certs(&self) -> Certs {
        let d = self.data.parent().unwrap();
        Certs {
            ca: d.join("ca.pem"),
            wrong_ca: d.join("wrong-ca.pem"),
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// MariaDB

struct MyServer {
    child: Option<Child>,
    port: u16,
    _port: PortLease,
    dir: TempDir,
}

impl MyServer {
    fn start(tls: bool) -> Self {
        let dir = TempDir::new("tls-my");
        let data = dir.0.join("data");
        make_certs(&dir.0);
        run(Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .stdin(Stdio::null()));
        let lease = spare_port(MY_PORTS);
        let mut s = MyServer {
            child: None,
            port: lease.port(),
            _port: lease,
            dir,
        };
        s.launch(tls);
        // A TCP user (root@localhost authenticates by unix socket only) and the test database.
        run(Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", s.dir.0.join("sock").display()))
            .args([
                "-e",
                "CREATE USER 'dal'@'%'; GRANT ALL ON *.* TO 'dal'@'%'; CREATE DATABASE dal_test;",
            ]));
        s
    }

    fn launch(&mut self, tls: bool) {
        let d = &self.dir.0;
        let mut cmd = Command::new("mariadbd");
        cmd.args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("err.log").display()))
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"]);
        if tls {
            cmd.arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
                .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
                .arg(format!("--ssl-key={}", d.join("server.key").display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.child = Some(child);
        wait_until(
            Duration::from_secs(60),
            || {
                format!(
                    "private MariaDB did not come up: {}",
                    log_tail(&d.join("err.log"), 40)
                )
            },
            || d.join("sock").exists() && TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(20));
        }
    }

    fn certs(&self) -> Certs {
        let d = &self.dir.0;
        Certs {
            ca: d.join("ca.pem"),
            wrong_ca: d.join("wrong-ca.pem"),
        }
    }
}

impl Drop for MyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// The cases, shared by both backends

/// A configuration for the private server, failing fast (no retries) so errors show at once.
fn cfg(backend: Backend, port: u16, host: &str, case: &str, mode: SslMode) -> DatabaseConfig {
    let database = match backend {
        Backend::MySql => "dal_test",
        _ => "postgres",
    };
    let c = DatabaseConfig::new(database)
        .host(host)
        .port(port)
        .alias(format!("tls-{}-{case}", backend.as_str()))
        .ssl_mode(mode)
        .retry_policy(RetryPolicy::none())
        .connection_creation_timeout(Duration::from_secs(5))
        .pool_creation_timeout(Duration::from_secs(10))
        .connection_acquisition_timeout(Duration::from_secs(10));
    match backend {
        Backend::MySql => c.user("dal"),
        _ => c.user("postgres"),
    }
}

/// Whether the session `db` opens is encrypted, as the server reports it.
async fn encrypted(db: &Database) -> dal::Result<bool> {
    let mut conn = db.async_connection().await?;
    Ok(match db.backend() {
        Backend::Postgres => conn
            .execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                (),
            )
            .await?[0]
            .try_get::<bool, _>(0)?,
        _ => !conn.execute("SHOW STATUS LIKE 'Ssl_cipher'", ()).await?[0]
            .try_get::<String, _>(1)?
            .is_empty(),
    })
}

async fn connect_error(config: DatabaseConfig, backend: Backend) -> dal::Error {
    let db = Database::new(backend, config);
    let e = match db.async_connection().await {
        Ok(_) => panic!("{backend:?}: connected, but should have failed"),
        Err(e) => e,
    };
    let _ = db.close(Duration::from_secs(1)).await;
    e
}

/// Every case against a server with TLS.
async fn tls_cases(backend: Backend, port: u16, certs: &Certs) {
    // require: connects, and the session is encrypted.
    let db = Database::new(
        backend,
        cfg(backend, port, "127.0.0.1", "require", SslMode::Require),
    );
    assert!(encrypted(&db).await.unwrap(), "{backend:?}: require");

    // prefer (the default) uses TLS when offered.
    let db = Database::new(
        backend,
        cfg(backend, port, "127.0.0.1", "prefer", SslMode::Prefer),
    );
    assert!(encrypted(&db).await.unwrap(), "{backend:?}: prefer");

    // disable: never TLS, even though the server offers it.
    let db = Database::new(
        backend,
        cfg(backend, port, "127.0.0.1", "disable", SslMode::Disable),
    );
    assert!(!encrypted(&db).await.unwrap(), "{backend:?}: disable");

    // verify-full with the right CA and the certificate's host name.
    let full = |host: &str, case: &str, ca: &Path| {
        cfg(backend, port, host, case, SslMode::VerifyFull).ssl_root_cert(ca)
    };
    let db = Database::new(backend, full("localhost", "full-ok", &certs.ca));
    assert!(encrypted(&db).await.unwrap(), "{backend:?}: verify-full");

    // verify-ca with the right CA: the host name does not matter.
    let db = Database::new(
        backend,
        cfg(backend, port, "127.0.0.1", "ca-ok", SslMode::VerifyCa).ssl_root_cert(&certs.ca),
    );
    assert!(encrypted(&db).await.unwrap(), "{backend:?}: verify-ca");

    // verify-full with a host the certificate does not name: a certificate error.
    let e = connect_error(full("127.0.0.1", "full-wrong-host", &certs.ca), backend).await;
    let msg = e.to_string();
    assert!(
        msg.contains("TLS: server certificate rejected"),
        "{backend:?} wrong host: {msg}"
    );
    assert!(matches!(e, dal::Error::Connection(_)), "{backend:?}: {e:?}");

    // verify-full with the wrong CA: a certificate error.
    let e = connect_error(full("localhost", "full-wrong-ca", &certs.wrong_ca), backend).await;
    let msg = e.to_string();
    assert!(
        msg.contains("TLS: server certificate rejected"),
        "{backend:?} wrong CA: {msg}"
    );

    // A query timeout on a TLS connection still stops the statement on the server: the cancel
    // connection uses the same (verify-full) settings.
    let db = Database::new(
        backend,
        full("localhost", "timeout", &certs.ca).query_execution_timeout(Duration::from_secs(30)),
    );
    let mut conn = db.async_connection().await.unwrap();
    let (sleep, running) = match backend {
        Backend::Postgres => (
            "SELECT pg_sleep(20)",
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'",
        ),
        _ => (
            "SELECT SLEEP(20)",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO = 'SELECT SLEEP(20)'",
        ),
    };
    let start = Instant::now();
    let e = conn
        .execute(sleep, ())
        .timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{backend:?}: {e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{backend:?}: timeout took {:?}",
        start.elapsed()
    );
    let n: i64 = conn.execute(running, ()).await.unwrap()[0]
        .try_get(0)
        .unwrap();
    assert_eq!(n, 0, "{backend:?}: the statement still runs on the server");
    let two: i64 = conn.execute("SELECT 1 + 1", ()).await.unwrap()[0]
        .try_get(0)
        .unwrap();
    assert_eq!(two, 2);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{backend:?}: {:?}",
        start.elapsed()
    );
}

/// `require` against a server without TLS fails, saying so.
async fn plain_server_cases(backend: Backend, port: u16) {
    let e = connect_error(
        cfg(
            backend,
            port,
            "127.0.0.1",
            "require-plain",
            SslMode::Require,
        ),
        backend,
    )
    .await;
    let msg = e.to_string();
    assert!(msg.contains("TLS"), "{backend:?}: {msg}");
    assert!(msg.contains("does not support"), "{backend:?}: {msg}");
    assert!(matches!(e, dal::Error::Connection(_)), "{backend:?}: {e:?}");
    // prefer falls back to a plain session.
    let db = Database::new(
        backend,
        cfg(backend, port, "127.0.0.1", "prefer-plain", SslMode::Prefer),
    );
    assert!(
        !encrypted(&db).await.unwrap(),
        "{backend:?}: prefer on a plain server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls() {
    let server = PgServer::start(true);
    let certs = server.certs();
    tls_cases(Backend::Postgres, server.port, &certs).await;
    // Same private cluster, restarted without TLS.
    server.pg_ctl(&["stop", "-m", "fast", "-w"], None);
    server.pg_ctl(
        &["start", "-w", "-t", "60", "-o", "-c ssl=off", "-l"],
        Some("log"),
    );
    wait_for_port(server.port, "private PostgreSQL");
    plain_server_cases(Backend::Postgres, server.port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tls() {
    let mut server = MyServer::start(true);
    let certs = server.certs();
    tls_cases(Backend::MySql, server.port, &certs).await;
    server.stop();
    server.launch(false);
    plain_server_cases(Backend::MySql, server.port).await;
}
