//! [`DatabaseConfig::to_map`]: every setting as text, the password masked.

use std::collections::BTreeMap;
use std::time::Duration;

use super::tls::TlsSettings;
use super::{DatabaseConfig, ReadYourWrites};
use crate::sql::Backend;

/// What [`DatabaseConfig::to_map`] shows for a password that is set.
const MASKED_PASSWORD: &str = "***";

/// Seconds, as URL options take them (`10`, `0.25`).
fn secs(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// `host[:port]` entries, comma-separated.
fn host_list<'a>(hosts: impl Iterator<Item = (&'a str, Option<u16>)>) -> String {
    hosts
        .map(|(h, p)| p.map_or_else(|| h.to_owned(), |p| format!("{h}:{p}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// libpq's `options` form (`-c name=value …`), spaces and backslashes escaped.
fn pg_options(options: &[(String, String)]) -> String {
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if c == '\\' || c.is_whitespace() {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    options
        .iter()
        .map(|(k, v)| format!("-c {}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl DatabaseConfig {
    /// Every setting as text, keyed by the name of the method that sets it (`pool_min` and
    /// `pool_max` for [`pool_size`](Self::pool_size), `retry_policy.*` and
    /// `circuit_breaker.*` for the parts of those), for diagnostics and support requests. The
    /// password is never in it: `password` is `***` when one is set, empty otherwise (replica
    /// configurations' passwords are not shown at all).
    ///
    /// Values are those in effect: the defaults dal fills in (port and user for the backend,
    /// alias, application name, charset) are shown; a setting that is unset and has no default
    /// is an empty string. Durations are in seconds (`10`, `0.25`), as URL options take them;
    /// booleans are `true`/`false`; `hosts` and `replicas` are `host:port` lists separated by
    /// commas; `pg_options` is libpq's `-c name=value …` form; `read_your_writes` is
    /// `session`, `off` or a number of seconds. `pool_min`/`pool_max` are the configured
    /// bounds: with [`expected_app_servers`](Self::expected_app_servers) and no `pool_size`,
    /// the pool computes its maximum when it is created.
    ///
    /// ```
    /// let config = dal::DatabaseConfig::from_url("postgres://app:s3cret@db.internal/shop")?;
    /// let map = config.to_map();
    /// assert_eq!(map["host"], "db.internal");
    /// assert_eq!(map["port"], "5432");
    /// assert_eq!(map["password"], "***");
    /// assert_eq!(map["query_execution_timeout"], "60");
    /// assert!(map.values().all(|v| !v.contains("s3cret")));
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn to_map(&self) -> BTreeMap<String, String> {
        // Destructured in full: a setting added to the struct does not compile until it is
        // shown here (or explicitly left out).
        let DatabaseConfig {
            database,
            host,
            port,
            user,
            password,
            alias: _,
            env,
            backend,
            connection_acquisition_timeout,
            pool_creation_timeout,
            query_execution_timeout,
            connection_creation_timeout,
            pool_size,
            expected_app_servers,
            sql_comments,
            schema_mode,
            // Whether `pool_size` was called: it decides whether `expected_app_servers`
            // applies, which `pool_max` below already shows as configured.
            pool_size_set: _,
            tls,
            slow_query_threshold,
            log_parameter_values,
            retry_policy,
            circuit_breaker,
            application_name: _,
            pg_options: pg,
            charset: _,
            hosts,
            target_session_attrs,
            replicas: _,
            read_your_writes,
            max_replica_lag,
            // Internal: which kind of pool (read-write, replica, primary reads) a derived
            // configuration is for; not something users set.
            session: _,
        } = self;
        let TlsSettings {
            mode,
            root_cert,
            client_cert,
            client_key,
        } = tls;
        let server = backend.filter(|b| *b != Backend::Sqlite);
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_owned(), v);
        };
        put(
            "backend",
            backend.map(|b| b.as_str().to_owned()).unwrap_or_default(),
        );
        put("database", database.clone());
        put("host", host.clone());
        let default_port = server.map(|b| crate::backend::dialect(b).default_port());
        put(
            "port",
            port.or(default_port)
                .map(|p| p.to_string())
                .unwrap_or_default(),
        );
        put(
            "user",
            match (user, server) {
                (Some(u), _) => u.clone(),
                (None, Some(Backend::Postgres)) => "postgres".to_owned(),
                (None, Some(Backend::MySql)) => "root".to_owned(),
                (None, _) => String::new(),
            },
        );
        put(
            "password",
            match password.expose() {
                Some(_) => MASKED_PASSWORD.to_owned(),
                None => String::new(),
            },
        );
        put("alias", self.get_alias().to_owned());
        put("env", env.clone());
        put(
            "connection_acquisition_timeout",
            secs(*connection_acquisition_timeout),
        );
        put("pool_creation_timeout", secs(*pool_creation_timeout));
        put("query_execution_timeout", secs(*query_execution_timeout));
        put(
            "connection_creation_timeout",
            secs(*connection_creation_timeout),
        );
        put("pool_min", pool_size.0.to_string());
        put("pool_max", pool_size.1.to_string());
        put(
            "expected_app_servers",
            expected_app_servers
                .map(|n| n.to_string())
                .unwrap_or_default(),
        );
        put("ssl_mode", mode.as_str().to_owned());
        put("ssl_root_cert", path(root_cert));
        put("ssl_client_cert", path(client_cert));
        put("ssl_client_key", path(client_key));
        put("slow_query_threshold", secs(*slow_query_threshold));
        put("log_parameter_values", log_parameter_values.to_string());
        put("sql_comments", sql_comments.to_string());
        put("schema_mode", schema_mode.as_str().to_owned());
        put(
            "retry_policy.max_retries",
            retry_policy.get_max_retries().to_string(),
        );
        put(
            "retry_policy.base_delay",
            secs(retry_policy.get_base_delay()),
        );
        put("retry_policy.max_delay", secs(retry_policy.get_max_delay()));
        put("retry_policy.budget", secs(retry_policy.get_budget()));
        let cb = circuit_breaker;
        put("circuit_breaker.enabled", cb.is_enabled().to_string());
        put(
            "circuit_breaker.failure_rate",
            cb.get_failure_rate().to_string(),
        );
        put(
            "circuit_breaker.minimum_calls",
            cb.get_minimum_calls().to_string(),
        );
        put(
            "circuit_breaker.failure_threshold",
            cb.get_failure_threshold().to_string(),
        );
        put(
            "circuit_breaker.failure_window",
            secs(cb.get_failure_window()),
        );
        put(
            "circuit_breaker.open_duration",
            secs(cb.get_open_duration()),
        );
        put(
            "circuit_breaker.max_open_duration",
            secs(cb.get_max_open_duration()),
        );
        put(
            "circuit_breaker.success_threshold",
            cb.get_success_threshold().to_string(),
        );
        put(
            "circuit_breaker.half_open_calls",
            cb.get_half_open_calls().to_string(),
        );
        put("application_name", self.get_application_name().to_owned());
        put("pg_options", pg_options(pg));
        put("charset", self.get_charset().to_owned());
        put(
            "hosts",
            host_list(hosts.iter().map(|(h, p)| (h.as_str(), p.or(default_port)))),
        );
        put(
            "target_session_attrs",
            target_session_attrs.as_str().to_owned(),
        );
        let replicas = self.get_replicas();
        put(
            "replicas",
            host_list(
                replicas
                    .iter()
                    .map(|r| (r.get_host(), r.get_port().or(default_port))),
            ),
        );
        put(
            "read_your_writes",
            match read_your_writes {
                ReadYourWrites::Session => "session".to_owned(),
                ReadYourWrites::Off => "off".to_owned(),
                ReadYourWrites::Window(d) => secs(*d),
            },
        );
        put("max_replica_lag", secs(*max_replica_lag));
        m
    }
}
