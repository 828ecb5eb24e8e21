//! [`DatabaseConfig`]: where a database is and how long to wait for it.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::resilience::{BreakerConfig, RetryPolicy};
use crate::sql::Backend;

mod connect;
mod credentials;

pub(crate) use connect::check_charset;
pub(crate) use credentials::CredentialTag;
use credentials::{hmac_sha256, process_key, Secret};

/// Default `connection_acquisition_timeout`: 10 s.
pub const DEFAULT_ACQUISITION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `pool_creation_timeout`: 30 s.
pub const DEFAULT_POOL_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `query_execution_timeout`: 60 s.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `connection_creation_timeout`: 15 s.
pub const DEFAULT_CONNECTION_CREATION_TIMEOUT: Duration = Duration::from_secs(15);
/// Default pool size bounds (min, max): about 20 connections per application server.
pub const DEFAULT_POOL_SIZE: (usize, usize) = (1, 20);
/// Default `slow_query_threshold`: statements slower than 2 s are logged at WARN.
pub const DEFAULT_SLOW_QUERY_THRESHOLD: Duration = Duration::from_secs(2);

/// Where a database is and how long to wait for it.
///
/// ```
/// use std::time::Duration;
/// use dal::DatabaseConfig;
/// let config = DatabaseConfig::new("my_database")
///     .host("localhost").port(5432)
///     .user("postgres").password("secret")
///     .alias("main_db").env("dev")
///     .query_execution_timeout(Duration::from_secs(5));
/// assert!(!format!("{config:?}").contains("secret"));
/// assert_eq!(config.hash(), config.clone().password("other").hash());
/// ```
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    database: String,
    host: String,
    port: Option<u16>,
    user: Option<String>,
    password: Secret,
    alias: Option<String>,
    env: String,
    backend: Option<Backend>,
    connection_acquisition_timeout: Duration,
    pool_creation_timeout: Duration,
    query_execution_timeout: Duration,
    connection_creation_timeout: Duration,
    pool_size: (usize, usize),
    // Not part of `hash()` (they do not change what the pool connects to): a pool keeps those
    // of the configuration that created it; see `hash()`.
    slow_query_threshold: Duration,
    log_parameter_values: bool,
    retry_policy: RetryPolicy,
    circuit_breaker: BreakerConfig,
    // What a connection is (part of `hash()` when set).
    application_name: Option<String>,
    pg_options: Vec<(String, String)>,
    charset: Option<String>,
}

/// URL options every backend accepts.
const COMMON_OPTIONS: &[&str] = &[
    "alias",
    "env",
    "connection_acquisition_timeout",
    "pool_creation_timeout",
    "query_execution_timeout",
    "connection_creation_timeout",
    "pool_min",
    "pool_max",
];
/// URL options only PostgreSQL accepts.
const POSTGRES_OPTIONS: &[&str] = &[
    "application_name",
    "connect_timeout",
    "options",
    "user",
    "password",
    "host",
    "port",
    "dbname",
    "target_session_attrs",
];
/// URL options only MySQL/MariaDB accept.
const MYSQL_OPTIONS: &[&str] = &["charset", "timezone"];

impl DatabaseConfig {
    /// A configuration for `database`: a database name, or for SQLite a file path or `:memory:`.
    /// Host defaults to `localhost`, the port to the backend's default, env to `prod`.
    pub fn new(database: impl Into<String>) -> Self {
        DatabaseConfig {
            database: database.into(),
            host: "localhost".to_owned(),
            port: None,
            user: None,
            password: Secret::default(),
            alias: None,
            env: "prod".to_owned(),
            backend: None,
            connection_acquisition_timeout: DEFAULT_ACQUISITION_TIMEOUT,
            pool_creation_timeout: DEFAULT_POOL_CREATION_TIMEOUT,
            query_execution_timeout: DEFAULT_QUERY_TIMEOUT,
            connection_creation_timeout: DEFAULT_CONNECTION_CREATION_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            slow_query_threshold: DEFAULT_SLOW_QUERY_THRESHOLD,
            log_parameter_values: false,
            retry_policy: RetryPolicy::default(),
            circuit_breaker: BreakerConfig::default(),
            application_name: None,
            pg_options: Vec::new(),
            charset: None,
        }
    }

    /// Parses a URL: `postgres://user:pw@host:5432/db` (or `postgresql://`), `mysql://…`,
    /// `mariadb://…`, `sqlite://path/to/file.db`, `sqlite:relative.db`, `sqlite::memory:`.
    ///
    /// User, password and database name are percent-decoded (`p%40ss` is `p@ss`; a `+` is a
    /// plus). Query options (values percent-decoded the same way):
    ///
    /// * every backend: `alias`, `env`, `connection_acquisition_timeout`,
    ///   `pool_creation_timeout`, `query_execution_timeout`, `connection_creation_timeout`
    ///   (seconds, may be fractional), `pool_min`, `pool_max`;
    /// * PostgreSQL (as libpq): `application_name` (default `dal`), `connect_timeout` (seconds,
    ///   sets `connection_creation_timeout`), `options` (run-time parameters,
    ///   `-c name=value …`), `user`, `password`, `host`, `port`, `dbname` (they override the
    ///   URL's parts), `target_session_attrs` (only `any` for now);
    /// * MySQL/MariaDB: `charset` (default `utf8mb4`), `timezone` (only UTC: dal stores
    ///   timestamps as naive UTC, so any other zone is refused).
    ///
    /// Any other option is an [`Error::Config`] that names it and lists the supported ones.
    /// Host lists (`postgres://u@h1:5433,h2:5434/db`) are parsed and refused with a clear
    /// [`Error::Config`] until multi-host connections exist. Errors never show the password.
    pub fn from_url(url: &str) -> Result<Self> {
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| Error::Config(format!("not a database URL: {}", redact_url(url))))?;
        let backend: Backend = scheme.parse()?;
        let (mut config, query) = if crate::backend::dialect(backend).is_embedded() {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q.to_owned())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(Error::Config(format!(
                    "SQLite URL without a path: {url} (use sqlite::memory: or sqlite://file.db)"
                )));
            }
            let path = url::form_urlencoded::parse(path.as_bytes())
                .map(|(k, v)| {
                    if v.is_empty() {
                        k
                    } else {
                        format!("{k}={v}").into()
                    }
                })
                .collect::<Vec<_>>()
                .join("&");
            (DatabaseConfig::new(path), query)
        } else {
            // `url::Url` does not take host lists: look at the authority first.
            if let Some(after) = rest.strip_prefix("//") {
                let authority = after.find(['/', '?']).map_or(after, |i| &after[..i]);
                let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                connect::check_single_host(hosts, None)?;
            }
            let parsed = url::Url::parse(url)
                .map_err(|e| Error::Config(format!("malformed URL {}: {e}", redact_url(url))))?;
            let database = parsed.path().trim_start_matches('/');
            let mut c = DatabaseConfig::new(connect::percent_decode(database, "database name")?);
            if let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) {
                c.host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
            }
            c.port = parsed.port();
            if !parsed.username().is_empty() {
                c.user = Some(connect::percent_decode(parsed.username(), "user name")?);
            }
            if let Some(pw) = parsed.password() {
                c.password = Secret(Some(connect::percent_decode(pw, "password")?));
            }
            (c, parsed.query().map(str::to_owned))
        };
        config.backend = Some(backend);
        if let Some(q) = query {
            for (k, v) in connect::query_pairs(&q)? {
                config = config.apply_option(&k, &v)?;
            }
        }
        if config.database.is_empty() {
            return Err(Error::Config(format!(
                "URL names no database: {}",
                redact_url(url)
            )));
        }
        Ok(config)
    }

    /// A configuration from the environment: the URL in `DATABASE_URL` (see
    /// [`from_url`](Self::from_url)); unset or empty, it is an [`Error::Config`].
    ///
    /// When the URL carries no password, it may come from a file:
    ///
    /// * `DAL_PASSWORD_FILE`: the whole file is the password (one trailing newline trimmed),
    ///   as with Docker or Kubernetes secrets. Setting it while the URL has a password is an
    ///   error (give the password one way only).
    /// * otherwise, PostgreSQL only, `PGPASSFILE`: a libpq password file, lines
    ///   `host:port:database:user:password` with `*` matching anything and `\:`, `\\`
    ///   escapes; the first line matching the host, port, database and user (`postgres` if not
    ///   given) wins, and no matching line means no password. The default `~/.pgpass` is not
    ///   read, nor are the file's permissions checked.
    ///
    /// Files are read here, once. Errors name the variable and the file, never the password.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|name| match std::env::var(name) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::Config(format!("{name} is not valid UTF-8")))
            }
        })
    }

    /// [`from_env`](Self::from_env) with the variables read through `var`.
    pub(crate) fn from_env_with(var: impl Fn(&str) -> Result<Option<String>>) -> Result<Self> {
        let url = var("DATABASE_URL")?
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "DATABASE_URL is not set: set it to a database URL such as \
                 postgres://user@host:5432/db (see DatabaseConfig::from_url)"
                        .into(),
                )
            })?;
        let mut config = Self::from_url(&url)?;
        if let Some(path) = var("DAL_PASSWORD_FILE")?.filter(|f| !f.is_empty()) {
            if config.password.expose().is_some() {
                return Err(Error::Config(
                    "DATABASE_URL carries a password and DAL_PASSWORD_FILE is set: give the \
                     password one way only"
                        .into(),
                ));
            }
            let pw = connect::read_password_file(&path, "DAL_PASSWORD_FILE")?;
            config.password = Secret(Some(pw));
        } else if config.password.expose().is_none() && config.backend == Some(Backend::Postgres) {
            if let Some(path) = var("PGPASSFILE")?.filter(|f| !f.is_empty()) {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Config(format!("PGPASSFILE: cannot read {path:?}: {e}")))?;
                let found = connect::pgpass_lookup(
                    &text,
                    &config.host,
                    config.effective_port(Backend::Postgres),
                    &config.database,
                    config.get_user().unwrap_or("postgres"),
                );
                if let Some(pw) = found {
                    config.password = Secret(Some(pw));
                }
            }
        }
        Ok(config)
    }

    fn apply_option(self, key: &str, value: &str) -> Result<Self> {
        let secs = || -> Result<Duration> {
            value
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "option {key}: {value:?} is not a number of seconds"
                    ))
                })
        };
        let count = || -> Result<usize> {
            value
                .parse::<usize>()
                .map_err(|_| Error::Config(format!("option {key}: {value:?} is not a count")))
        };
        let pg = self.backend == Some(Backend::Postgres);
        let my = self.backend == Some(Backend::MySql);
        Ok(match key {
            "alias" => self.alias(value),
            "env" => self.env(value),
            "connection_acquisition_timeout" => self.connection_acquisition_timeout(secs()?),
            "pool_creation_timeout" => self.pool_creation_timeout(secs()?),
            "query_execution_timeout" => self.query_execution_timeout(secs()?),
            "connection_creation_timeout" => self.connection_creation_timeout(secs()?),
            "pool_min" => {
                let max = self.pool_size.1;
                self.pool_size(count()?, max)
            }
            "pool_max" => {
                let min = self.pool_size.0;
                self.pool_size(min, count()?)
            }
            // Standard PostgreSQL (libpq) options.
            "application_name" if pg => self.application_name(value),
            "connect_timeout" if pg => {
                let t = secs()?;
                if t.is_zero() {
                    return Err(Error::Config(
                        "option connect_timeout: 0 (wait forever) is not supported: dal always \
                         bounds opening a connection; give a number of seconds"
                            .into(),
                    ));
                }
                self.connection_creation_timeout(t)
            }
            "options" if pg => {
                let mut c = self;
                for (k, v) in connect::parse_pg_options(value)? {
                    c = c.pg_option(k, v);
                }
                c
            }
            "user" if pg => self.user(value),
            "password" if pg => self.password(value),
            "host" if pg => {
                connect::check_single_host(value, None)?;
                self.host(value)
            }
            "port" if pg => {
                connect::check_single_host(&self.host, Some(value))?;
                self.port(connect::parse_port(value)?)
            }
            "dbname" if pg => DatabaseConfig {
                database: value.to_owned(),
                ..self
            },
            "target_session_attrs" if pg => {
                connect::check_target_session_attrs(value)?;
                self
            }
            // Standard MySQL/MariaDB options.
            "charset" if my => {
                connect::check_charset(value)?;
                self.charset(value)
            }
            "timezone" if my => {
                connect::check_mysql_timezone(value)?;
                self
            }
            other => return Err(self.unknown_option(other)),
        })
    }

    /// The error for an option this configuration's backend does not take.
    fn unknown_option(&self, key: &str) -> Error {
        let (name, specific): (&str, &[&str]) = match self.backend {
            Some(Backend::Postgres) => ("PostgreSQL", POSTGRES_OPTIONS),
            Some(Backend::MySql) => ("MySQL/MariaDB", MYSQL_OPTIONS),
            _ => ("SQLite", &[]),
        };
        let supported = COMMON_OPTIONS
            .iter()
            .chain(specific)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let elsewhere = if POSTGRES_OPTIONS.contains(&key) && !specific.contains(&key) {
            " (it is a PostgreSQL option)"
        } else if MYSQL_OPTIONS.contains(&key) && !specific.contains(&key) {
            " (it is a MySQL/MariaDB option)"
        } else {
            ""
        };
        Error::Config(format!(
            "unknown URL option {key:?} for {name}{elsewhere}; supported: {supported}"
        ))
    }

    /// Server host name or address (default `localhost`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }
    /// Server port (default: 5432 for PostgreSQL, 3306 for MySQL).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// User name (default: `postgres` on PostgreSQL, `root` on MySQL).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
    /// Password. It never appears in `Debug`, `Display`, logs, metrics or errors.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Secret(Some(password.into()));
        self
    }
    /// Friendly name used in logs and metrics (default: the database name).
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }
    /// Environment label: `prod` (default), `dev`, `test`, `staging`, …
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = env.into();
        self
    }
    /// How long a caller waits for a connection from a busy pool (default 10 s).
    pub fn connection_acquisition_timeout(mut self, t: Duration) -> Self {
        self.connection_acquisition_timeout = t;
        self
    }
    /// How long the first use may wait for the pool to be set up (default 30 s).
    pub fn pool_creation_timeout(mut self, t: Duration) -> Self {
        self.pool_creation_timeout = t;
        self
    }
    /// Default limit for one statement, overridable per query with `.timeout()` (default 60 s).
    pub fn query_execution_timeout(mut self, t: Duration) -> Self {
        self.query_execution_timeout = t;
        self
    }
    /// How long opening one physical connection may take (default 15 s).
    pub fn connection_creation_timeout(mut self, t: Duration) -> Self {
        self.connection_creation_timeout = t;
        self
    }
    /// Pool bounds: connections kept open at least, and at most (default 1 and 20).
    /// `min > max` or `max == 0` is reported as a configuration error when the pool is created.
    ///
    /// Sizing: `max` is per process (per application server) and per configuration. The default
    /// of 20 follows the seed: enough for a typical app server, a small share of what one
    /// PostgreSQL or MySQL server accepts (100–500), so several app servers can share one
    /// database. Size it as `servers × max ≤ database max_connections − headroom`; a larger
    /// `max` rarely helps once the database's cores are busy. `min` connections are opened on
    /// first use and kept open (reopened by the pool's housekeeper after they are retired).
    /// When the pool's `timeout_rate()` climbs, [`PoolMetrics::scaling_advice`](crate::PoolMetrics::scaling_advice)
    /// says whether to look at slow queries, scale vertically, or add app servers.
    pub fn pool_size(mut self, min: usize, max: usize) -> Self {
        self.pool_size = (min, max);
        self
    }
    /// Statements slower than this are logged at WARN (target `dal::slow_query`) with their
    /// SQL, tags and timing (default 2 s). Not part of [`hash`](Self::hash): configurations
    /// that differ only here share one pool, which uses the setting of the one that created it
    /// (silently: unlike a different retry policy or breaker, this is not logged).
    pub fn slow_query_threshold(mut self, t: Duration) -> Self {
        self.slow_query_threshold = t;
        self
    }
    /// Whether the slow-query log shows parameter values (default `false`: they are redacted,
    /// as they may hold personal data or secrets). Turning it on is part of
    /// [`hash`](Self::hash): a configuration that keeps values redacted never shares a pool
    /// (and so a log setting) with one that logs them.
    pub fn log_parameter_values(mut self, on: bool) -> Self {
        self.log_parameter_values = on;
        self
    }

    /// How transient failures are retried (default: 3 retries, 100 ms base delay, 10 s cap,
    /// 30 s budget; see [`RetryPolicy`]). Not part of [`hash`](Self::hash): the pool takes the
    /// policy of the configuration that created it, and a `Database` joining it with another
    /// policy logs a WARN (target `dal::pool`) saying which policy the pool keeps.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }
    /// The pool's circuit breaker (default: opens when at least 50 % of at least 20 calls
    /// within 10 s failed on the infrastructure, lets a trial call through after 1 s (longer
    /// while an outage lasts, at most 30 s), closes on one successful trial; see
    /// [`BreakerConfig`]). Not part of [`hash`](Self::hash): the pool takes the settings of the
    /// configuration that created it, and a `Database` joining it with other settings logs a
    /// WARN (target `dal::pool`) saying which settings the pool keeps.
    pub fn circuit_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.circuit_breaker = breaker;
        self
    }
    /// PostgreSQL: the `application_name` the server shows for the session (in
    /// `pg_stat_activity` and logs). Default `dal`. Part of [`hash`](Self::hash).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }
    /// PostgreSQL: a run-time parameter set when each connection starts (what libpq's
    /// `options=-c name=value` does), e.g. `.pg_option("search_path", "app")`. May be called
    /// several times. Part of [`hash`](Self::hash).
    pub fn pg_option(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.pg_options.push((name.into(), value.into()));
        self
    }
    /// MySQL/MariaDB: the connection character set (default `utf8mb4`). Part of
    /// [`hash`](Self::hash).
    pub fn charset(mut self, charset: impl Into<String>) -> Self {
        self.charset = Some(charset.into());
        self
    }
    /// The `application_name` in effect on PostgreSQL (`dal` unless set).
    pub fn get_application_name(&self) -> &str {
        self.application_name.as_deref().unwrap_or("dal")
    }
    /// The PostgreSQL run-time parameters set at connection start.
    pub fn get_pg_options(&self) -> &[(String, String)] {
        &self.pg_options
    }
    /// The character set in effect on MySQL/MariaDB (`utf8mb4` unless set).
    pub fn get_charset(&self) -> &str {
        self.charset.as_deref().unwrap_or("utf8mb4")
    }

    /// Retry policy.
    pub fn get_retry_policy(&self) -> &RetryPolicy {
        &self.retry_policy
    }
    /// Circuit breaker settings.
    pub fn get_circuit_breaker(&self) -> &BreakerConfig {
        &self.circuit_breaker
    }

    /// Database name (or SQLite path).
    pub fn database(&self) -> &str {
        &self.database
    }
    /// Host.
    pub fn get_host(&self) -> &str {
        &self.host
    }
    /// Port, if set explicitly.
    pub fn get_port(&self) -> Option<u16> {
        self.port
    }
    /// User, if set.
    pub fn get_user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// Alias, defaulting to the database name.
    pub fn get_alias(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.database)
    }
    /// Environment label.
    pub fn get_env(&self) -> &str {
        &self.env
    }
    /// The backend named by the URL this config came from, if any.
    pub fn backend(&self) -> Option<Backend> {
        self.backend
    }
    /// Acquisition timeout.
    pub fn get_connection_acquisition_timeout(&self) -> Duration {
        self.connection_acquisition_timeout
    }
    /// Pool creation timeout.
    pub fn get_pool_creation_timeout(&self) -> Duration {
        self.pool_creation_timeout
    }
    /// Default query timeout.
    pub fn get_query_execution_timeout(&self) -> Duration {
        self.query_execution_timeout
    }
    /// Connection creation timeout.
    pub fn get_connection_creation_timeout(&self) -> Duration {
        self.connection_creation_timeout
    }
    /// Pool bounds (min, max).
    pub fn get_pool_size(&self) -> (usize, usize) {
        self.pool_size
    }
    /// Slow-query log threshold.
    pub fn get_slow_query_threshold(&self) -> Duration {
        self.slow_query_threshold
    }
    /// Whether the slow-query log shows parameter values.
    pub fn get_log_parameter_values(&self) -> bool {
        self.log_parameter_values
    }

    pub(crate) fn password_secret(&self) -> Option<&str> {
        self.password.expose()
    }

    /// The keyed digest of the password that, with [`hash`](Self::hash), identifies the pool
    /// this configuration uses (see [`CredentialTag`]). No password and an empty password
    /// differ.
    pub(crate) fn credential_tag(&self) -> CredentialTag {
        let tag = match self.password.expose() {
            None => hmac_sha256(process_key(), &[b"none"]),
            Some(pw) => hmac_sha256(process_key(), &[b"some:", pw.as_bytes()]),
        };
        CredentialTag(tag)
    }

    pub(crate) fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The port in effect for `backend`.
    pub(crate) fn effective_port(&self, backend: Backend) -> u16 {
        self.port
            .unwrap_or_else(|| crate::backend::dialect(backend).default_port())
    }

    /// A stable key for this configuration, safe to show in logs, metrics labels and
    /// dashboards: 32 hex digits (the first 128 bits of a SHA-256), the same in every process
    /// and run for the same settings.
    ///
    /// **What it covers**, each exactly as set (no default filled in, nothing normalised):
    /// [`database`](Self::database) (name, or SQLite path), [`host`](Self::host),
    /// [`port`](Self::port) (left unset and set to the backend's default port hash
    /// differently), [`user`](Self::user), [`alias`](Self::alias), [`env`](Self::env), the four
    /// timeouts ([`connection_acquisition_timeout`](Self::connection_acquisition_timeout),
    /// [`pool_creation_timeout`](Self::pool_creation_timeout),
    /// [`query_execution_timeout`](Self::query_execution_timeout),
    /// [`connection_creation_timeout`](Self::connection_creation_timeout)) and
    /// [`pool_size`](Self::pool_size) (min and max), and, when set, what the session is:
    /// [`application_name`](Self::application_name), [`pg_option`](Self::pg_option)s (in
    /// order) and [`charset`](Self::charset) (each adds to the hash only when set, so
    /// configurations that leave them alone keep their hash; setting one to its default value
    /// still changes the hash). MySQL's `timezone` URL option is not a setting: only UTC is
    /// accepted, which is what every connection uses.
    ///
    /// **What it leaves out:**
    ///
    /// * The **password**, so that the hash can be shown. Pools are nevertheless separated by
    ///   credentials: the pool a [`Database`](crate::Database) uses is keyed by this hash *and*
    ///   by a keyed digest of the password held only in memory, so configurations that differ
    ///   only in their password have the same `hash()` but never share a pool or a connection.
    ///   Lookups that take a hash ([`PoolManager`](crate::PoolManager)) cover every pool with
    ///   that hash; see there for what each one does when there are several.
    /// * The **backend**: the same settings used for two backends give one hash, and the second
    ///   backend's pool is refused with [`Error::Config`] (give it another alias).
    /// * The **slow-query threshold** ([`slow_query_threshold`](Self::slow_query_threshold)),
    ///   the **retry policy** ([`retry_policy`](Self::retry_policy)) and the **circuit breaker**
    ///   ([`circuit_breaker`](Self::circuit_breaker)). Configurations that differ only in these
    ///   share one pool, which keeps the settings of the configuration that created it. A
    ///   `Database` joining a pool whose retry policy or breaker settings differ from its own
    ///   logs a WARN (target `dal::pool`) naming the setting and the value the pool keeps.
    ///
    /// [`log_parameter_values(true)`](Self::log_parameter_values) *is* covered (it adds to the
    /// hash only when on, so default configurations keep their hash): parameter values never
    /// reach the logs of a database that asked for them to be redacted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dal::{DatabaseConfig, RetryPolicy};
    /// let base = DatabaseConfig::new("app").host("db1").user("app");
    /// // Covered: where the pool connects, how it waits, how big it is.
    /// assert_ne!(base.hash(), base.clone().port(5432).hash());
    /// assert_ne!(base.hash(), base.clone().pool_size(1, 5).hash());
    /// // ... and what the session is: its name, run-time parameters, character set.
    /// assert_ne!(base.hash(), base.clone().application_name("api").hash());
    /// assert_ne!(base.hash(), base.clone().pg_option("search_path", "app").hash());
    /// assert_ne!(base.hash(), base.clone().charset("latin1").hash());
    /// // Not covered: the password (pools are still separated by it) ...
    /// assert_eq!(base.hash(), base.clone().password("secret").hash());
    /// // ... nor observability, retry and breaker settings (the pool keeps its creator's) ...
    /// let tuned = base
    ///     .clone()
    ///     .slow_query_threshold(Duration::from_millis(10))
    ///     .retry_policy(RetryPolicy::none())
    ///     .circuit_breaker(dal::BreakerConfig::disabled());
    /// assert_eq!(base.hash(), tuned.hash());
    /// // ... but logging parameter values is: redacted and logged never share a pool.
    /// assert_ne!(base.hash(), base.clone().log_parameter_values(true).hash());
    /// assert_eq!(base.hash(), base.clone().log_parameter_values(false).hash());
    /// ```
    pub fn hash(&self) -> String {
        let mut canonical = format!(
            "v1|db={}|host={}|port={:?}|user={:?}|alias={:?}|env={}|acq={}|pool={}|query={}|conn={}|size={}-{}",
            self.database,
            self.host,
            self.port,
            self.user,
            self.alias,
            self.env,
            self.connection_acquisition_timeout.as_nanos(),
            self.pool_creation_timeout.as_nanos(),
            self.query_execution_timeout.as_nanos(),
            self.connection_creation_timeout.as_nanos(),
            self.pool_size.0,
            self.pool_size.1,
        );
        if self.log_parameter_values {
            canonical.push_str("|log_parameter_values");
        }
        if let Some(name) = &self.application_name {
            canonical.push_str(&format!("|application_name={name:?}"));
        }
        for (k, v) in &self.pg_options {
            canonical.push_str(&format!("|pg_option={k:?}={v:?}"));
        }
        if let Some(cs) = &self.charset {
            canonical.push_str(&format!("|charset={cs:?}"));
        }
        let digest = Sha256::digest(canonical.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for DatabaseConfig {
    /// `alias (backend://user@host:port/database)`, never with the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.backend.map_or("db", |b| b.as_str());
        if self
            .backend
            .is_some_and(|b| crate::backend::dialect(b).is_embedded())
        {
            return write!(f, "{} (sqlite:{})", self.get_alias(), self.database);
        }
        write!(f, "{} ({scheme}://", self.get_alias())?;
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
            if self.password.expose().is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{})", self.database)
    }
}

/// A URL with any password replaced by `***`, safe to put in an error message.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            return format!("{scheme}://{masked}@{host}{tail}");
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_url_parses_every_part_and_hides_the_password() {
        let c = DatabaseConfig::from_url(
            "postgres://bob:s%40cret@127.0.0.1:5433/app?alias=main&query_execution_timeout=1.5",
        )
        .unwrap();
        assert_eq!(c.database(), "app");
        assert_eq!(c.get_host(), "127.0.0.1");
        assert_eq!(c.get_port(), Some(5433));
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.password_secret(), Some("s@cret"));
        assert_eq!(c.get_alias(), "main");
        assert_eq!(c.get_query_execution_timeout(), Duration::from_millis(1500));
        assert!(!format!("{c:?}").contains("s@cret"));
        assert!(!format!("{c}").contains("s@cret"));
    }

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            DatabaseConfig::from_url("sqlite::memory:")
                .unwrap()
                .database(),
            ":memory:"
        );
        assert_eq!(
            DatabaseConfig::from_url("sqlite://data/app.db")
                .unwrap()
                .database(),
            "data/app.db"
        );
        assert_eq!(
            DatabaseConfig::from_url("sqlite:app.db")
                .unwrap()
                .database(),
            "app.db"
        );
        assert!(DatabaseConfig::from_url("sqlite://").is_err());
    }

    #[test]
    fn bad_urls_are_clear_errors_without_password() {
        let e = DatabaseConfig::from_url("oracle://u:pw@h/db").unwrap_err();
        assert!(e.to_string().contains("oracle"), "{e}");
        let e = DatabaseConfig::from_url("postgres://u:topsecret@h:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("topsecret"), "{e}");
        assert!(DatabaseConfig::from_url("postgres://h:5432/db?bogus=1").is_err());
        assert!(DatabaseConfig::from_url("no-scheme").is_err());
    }

    #[test]
    fn credential_tag_tells_passwords_apart_and_never_prints() {
        let c = DatabaseConfig::new("db").host("h").user("u");
        let right = c.clone().password("right-pw");
        let wrong = c.clone().password("wrong-pw");
        assert_eq!(right.hash(), wrong.hash());
        assert_ne!(right.credential_tag(), wrong.credential_tag());
        assert_ne!(c.credential_tag(), c.clone().password("").credential_tag());
        assert_eq!(right.credential_tag(), right.clone().credential_tag());
        assert_eq!(format!("{:?}", right.credential_tag()), "CredentialTag(..)");
    }

    #[test]
    fn hash_is_stable_and_ignores_password() {
        let a = DatabaseConfig::new("db").host("h").password("a");
        let b = DatabaseConfig::new("db").host("h").password("b");
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), a.clone().alias("x").hash());
        // Pinned: the hash must not change between processes or releases of the same format.
        assert_eq!(DatabaseConfig::new("db").hash().len(), 32);
        assert_eq!(
            DatabaseConfig::new("db").hash(),
            DatabaseConfig::new("db").hash()
        );
    }

    /// The issue's example without its TLS options (`sslmode=verify-full&sslrootcert=ca.pem`),
    /// which belong to the TLS work and are unknown options until it lands.
    #[test]
    fn issue_example_without_tls_options() {
        let c = DatabaseConfig::from_url("postgres://u:p%40ss@host:5432/db?application_name=api")
            .unwrap();
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.password_secret(), Some("p@ss"));
        assert_eq!(c.get_host(), "host");
        assert_eq!(c.get_port(), Some(5432));
        assert_eq!(c.database(), "db");
        assert_eq!(c.get_application_name(), "api");
        assert!(!format!("{c:?}{c}").contains("p@ss"));
    }

    #[test]
    fn postgres_standard_options() {
        let c = DatabaseConfig::from_url(
            "postgresql://ignored@urlhost/urldb?user=bob&password=a%2Bb+c%3D&host=h2&port=6432\
             &dbname=real&connect_timeout=7&options=-c%20search_path%3Dapp%20-cwork_mem=4MB\
             &target_session_attrs=any",
        )
        .unwrap();
        assert_eq!(c.backend(), Some(Backend::Postgres));
        assert_eq!(c.get_user(), Some("bob"));
        assert_eq!(c.password_secret(), Some("a+b+c="));
        assert_eq!(c.get_host(), "h2");
        assert_eq!(c.get_port(), Some(6432));
        assert_eq!(c.database(), "real");
        assert_eq!(c.get_connection_creation_timeout(), Duration::from_secs(7));
        assert_eq!(
            c.get_pg_options(),
            [
                ("search_path".to_owned(), "app".to_owned()),
                ("work_mem".to_owned(), "4MB".to_owned())
            ]
        );
        assert_eq!(c.get_application_name(), "dal");
        assert!(!format!("{c:?}{c}").contains("a+b+c="));
        // Host and database only as options.
        let c = DatabaseConfig::from_url("postgres:///?host=/run/postgresql&dbname=x").unwrap();
        assert_eq!((c.get_host(), c.database()), ("/run/postgresql", "x"));
        assert!(DatabaseConfig::from_url("postgres://h/?application_name=a").is_err());
    }

    #[test]
    fn mysql_standard_options() {
        let c = DatabaseConfig::from_url("mysql://root@h/db?charset=latin1&timezone=UTC").unwrap();
        assert_eq!(c.get_charset(), "latin1");
        assert_eq!(DatabaseConfig::new("db").get_charset(), "utf8mb4");
        let e = DatabaseConfig::from_url("mariadb://root@h/db?timezone=Europe%2FParis")
            .unwrap_err()
            .to_string();
        assert!(e.contains("naive UTC"), "{e}");
        assert!(DatabaseConfig::from_url("mysql://h/db?charset=utf8mb4;x").is_err());
        // PostgreSQL options are not MySQL options, and the reverse.
        let e = DatabaseConfig::from_url("mysql://h/db?application_name=a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PostgreSQL option") && e.contains("charset"),
            "{e}"
        );
        let e = DatabaseConfig::from_url("postgres://h/db?charset=latin1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("MySQL/MariaDB option"), "{e}");
    }

    #[test]
    fn option_errors_name_the_option_and_list_the_supported_ones() {
        let e = DatabaseConfig::from_url("postgres://u:hunter2@h/db?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"bogus\""), "{e}");
        for known in ["application_name", "options", "dbname", "pool_max", "alias"] {
            assert!(e.contains(known), "{e}");
        }
        assert!(!e.contains("hunter2"), "{e}");
        let e = DatabaseConfig::from_url("sqlite::memory:?charset=x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SQLite") && e.contains("pool_min"), "{e}");
        for bad in [
            "postgres://h/db?connect_timeout=0",
            "postgres://h/db?connect_timeout=soon",
            "postgres://h/db?options=-D%20/data",
            "postgres://h/db?port=0",
            "postgres://h/db?target_session_attrs=fastest",
            "postgres://u:p%zz@h/db",
        ] {
            assert!(
                matches!(DatabaseConfig::from_url(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        // A TLS option is unknown until the TLS work lands.
        assert!(DatabaseConfig::from_url("postgres://h/db?sslmode=require").is_err());
    }

    #[test]
    fn host_lists_are_parsed_and_refused_for_now() {
        let e = DatabaseConfig::from_url("postgres://u:secretpw@h1:5433,h2:5434/db").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Config(_)));
        assert!(
            msg.contains("multi-host") && msg.contains("h1:5433, h2:5434"),
            "{msg}"
        );
        assert!(!msg.contains("secretpw"), "{msg}");
        for bad in [
            "postgres://[::1]:5433,h2/db",
            "postgres://h/db?host=a,b",
            "postgres://h/db?port=1,2",
            "postgres://h/db?target_session_attrs=read-write",
        ] {
            let e = DatabaseConfig::from_url(bad).unwrap_err().to_string();
            assert!(e.contains("not supported yet"), "{bad}: {e}");
        }
        assert!(DatabaseConfig::from_url("postgres://h1:x,h2/db").is_err());
    }

    #[test]
    fn session_settings_are_part_of_the_hash() {
        let base = DatabaseConfig::from_url("postgres://h/db").unwrap();
        let named = DatabaseConfig::from_url("postgres://h/db?application_name=api").unwrap();
        let opts = DatabaseConfig::from_url("postgres://h/db?options=-c%20a=b").unwrap();
        assert_ne!(base.hash(), named.hash());
        assert_ne!(base.hash(), opts.hash());
        let my = DatabaseConfig::from_url("mysql://h/db").unwrap();
        assert_ne!(my.hash(), my.clone().charset("latin1").hash());
        // timezone=UTC is what every connection uses anyway.
        let utc = DatabaseConfig::from_url("mysql://h/db?timezone=UTC").unwrap();
        assert_eq!(my.hash(), utc.hash());
    }

    fn temp_file(name: &str, contents: &str) -> String {
        let path = std::env::temp_dir().join(format!("dal-{name}-{}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| Ok(vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn from_env_reads_database_url_and_password_files() {
        let e = DatabaseConfig::from_env_with(env_of(&[])).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("DATABASE_URL is not set")),
            "{e}"
        );
        let c = DatabaseConfig::from_env_with(env_of(&[(
            "DATABASE_URL",
            "mysql://root@h/db?charset=latin1",
        )]))
        .unwrap();
        assert_eq!(
            (c.backend(), c.get_charset()),
            (Some(Backend::MySql), "latin1")
        );
        assert_eq!(c.password_secret(), None);

        let file = temp_file("pwfile", "from-file-pw\n");
        let c = DatabaseConfig::from_env_with(env_of(&[
            ("DATABASE_URL", "postgres://app@h/db"),
            ("DAL_PASSWORD_FILE", &file),
        ]))
        .unwrap();
        assert_eq!(c.password_secret(), Some("from-file-pw"));
        assert!(!format!("{c:?}{c}").contains("from-file-pw"));
        let e = DatabaseConfig::from_env_with(env_of(&[
            ("DATABASE_URL", "postgres://app:urlpw@h/db"),
            ("DAL_PASSWORD_FILE", &file),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("one way only") && !e.contains("urlpw"), "{e}");
        assert!(!e.contains("from-file-pw"), "{e}");
        let e = DatabaseConfig::from_env_with(env_of(&[
            ("DATABASE_URL", "postgres://app@h/db"),
            ("DAL_PASSWORD_FILE", "/nonexistent/dal-pw"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("DAL_PASSWORD_FILE") && e.contains("/nonexistent/dal-pw"),
            "{e}"
        );
        let _ = std::fs::remove_file(&file);

        let pgpass = temp_file("pgpass", "h:5432:db:app:pgpass-pw\n*:*:*:*:other\n");
        let with_pgpass = |url: &str| {
            DatabaseConfig::from_env_with(env_of(&[("DATABASE_URL", url), ("PGPASSFILE", &pgpass)]))
                .unwrap()
        };
        assert_eq!(
            with_pgpass("postgres://app@h/db").password_secret(),
            Some("pgpass-pw")
        );
        assert_eq!(
            with_pgpass("postgres://app@h:5433/db").password_secret(),
            Some("other")
        );
        // The URL's password wins; MySQL ignores PGPASSFILE.
        assert_eq!(
            with_pgpass("postgres://app:mine@h/db").password_secret(),
            Some("mine")
        );
        assert_eq!(with_pgpass("mysql://app@h/db").password_secret(), None);
        let c = with_pgpass("postgres://app@h/db");
        assert!(!format!("{c:?}{c}").contains("pgpass-pw"));
        let _ = std::fs::remove_file(&pgpass);
    }
}
