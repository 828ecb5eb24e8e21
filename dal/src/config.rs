//! [`DatabaseConfig`]: where a database is and how long to wait for it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::migrate::SchemaMode;
use crate::resilience::{BreakerConfig, RetryPolicy};
use crate::sql::Backend;

mod connect;
mod credentials;
mod map;
mod tls;
mod topology;
mod url;

#[cfg(feature = "mysql")]
pub(crate) use connect::check_charset;
pub(crate) use credentials::CredentialTag;
use credentials::{hmac_sha256, process_key, Secret};
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use tls::map_connect_error;
pub use tls::SslMode;
use tls::TlsSettings;
use topology::ReplicaSpec;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use topology::ServerRole;
pub(crate) use topology::SessionKind;
pub use topology::{ReadYourWrites, TargetSessionAttrs, DEFAULT_MAX_REPLICA_LAG};

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
    tls: TlsSettings,
    // Not part of `hash()` (they do not change what the pool connects to): a pool keeps those
    // of the configuration that created it; see `hash()`.
    slow_query_threshold: Duration,
    log_parameter_values: bool,
    // Part of `hash()` when on: it changes the statements the pool sends.
    sql_comments: bool,
    // Part of `hash()` when `Migrations`: whether the entity layer may run DDL.
    schema_mode: SchemaMode,
    retry_policy: RetryPolicy,
    circuit_breaker: BreakerConfig,
    // What a connection is (part of `hash()` when set).
    application_name: Option<String>,
    pg_options: Vec<(String, String)>,
    charset: Option<String>,
    // Topology (see `topology.rs`): a host list and which of them to use (part of `hash()`
    // when set), read replicas (each its own pool, not part of this hash), how reads see
    // earlier writes, and whether sessions are read-only (replica and read pools).
    /// Set: the pool's maximum is computed from the server's `max_connections` (see
    /// [`expected_app_servers`](Self::expected_app_servers)) unless `pool_size` was set.
    expected_app_servers: Option<usize>,
    pool_size_set: bool,
    hosts: Vec<(String, Option<u16>)>,
    target_session_attrs: TargetSessionAttrs,
    replicas: Vec<ReplicaSpec>,
    read_your_writes: ReadYourWrites,
    max_replica_lag: Duration,
    session: SessionKind,
}

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
            tls: TlsSettings::default(),
            slow_query_threshold: DEFAULT_SLOW_QUERY_THRESHOLD,
            log_parameter_values: false,
            sql_comments: false,
            schema_mode: SchemaMode::Auto,
            retry_policy: RetryPolicy::default(),
            circuit_breaker: BreakerConfig::default(),
            application_name: None,
            pg_options: Vec::new(),
            charset: None,
            expected_app_servers: None,
            pool_size_set: false,
            hosts: Vec::new(),
            target_session_attrs: TargetSessionAttrs::Any,
            replicas: Vec::new(),
            read_your_writes: ReadYourWrites::Session,
            max_replica_lag: DEFAULT_MAX_REPLICA_LAG,
            session: SessionKind::ReadWrite,
        }
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
        self.pool_size_set = true;
        self
    }

    /// Sizes the pool automatically for `servers` application servers (processes) sharing the
    /// database, unless [`pool_size`](Self::pool_size) is set explicitly: on first use the pool
    /// reads the server's `max_connections` and takes
    /// `max = (max_connections − reserve) / servers`, where the reserve is a tenth of
    /// `max_connections` (at least 3) for administrators, migrations and monitoring; `max` is
    /// kept between 2 and 100, and `min` at most `max`. The seed's guidance: leave headroom,
    /// split the rest between app servers. Without it the pool keeps the default bounds
    /// (1, 20). SQLite ignores it. Part of [`hash`](Self::hash). URL:
    /// `expected_app_servers=4`.
    ///
    /// ```
    /// // 4 app servers against a PostgreSQL with max_connections = 100:
    /// // (100 − 10) / 4 = 22 connections at most per app server.
    /// let cfg = dal::DatabaseConfig::new("shop").expected_app_servers(4);
    /// assert_eq!(cfg.get_expected_app_servers(), Some(4));
    /// ```
    pub fn expected_app_servers(mut self, servers: usize) -> Self {
        self.expected_app_servers = Some(servers.max(1));
        self
    }

    /// The number of app servers the pool is sized for, if set.
    pub fn get_expected_app_servers(&self) -> Option<usize> {
        self.expected_app_servers
    }

    /// The automatic maximum for a server accepting `max_connections`, when the pool is sized
    /// automatically (see [`expected_app_servers`](Self::expected_app_servers)).
    pub(crate) fn auto_pool_max(&self, max_connections: usize) -> Option<usize> {
        let servers = self.expected_app_servers.filter(|_| !self.pool_size_set)?;
        let reserve = (max_connections / 10).max(3);
        Some((max_connections.saturating_sub(reserve) / servers).clamp(2, 100))
    }
    /// Whether and how connections use TLS (default [`SslMode::Prefer`], as libpq). Part of
    /// [`hash`](Self::hash). URL: `sslmode=…` (PostgreSQL), `ssl-mode=…` (MySQL).
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.tls.mode = mode;
        self
    }
    /// A PEM file of the CA certificate(s) that `VerifyCa` and `VerifyFull` trust (default:
    /// the built-in Mozilla root store). Part of [`hash`](Self::hash). URL: `sslrootcert`
    /// (PostgreSQL), `ssl-ca` (MySQL).
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.root_cert = Some(path.into());
        self
    }
    /// A client certificate and its private key (PEM files), for servers that authenticate
    /// clients by certificate. Part of [`hash`](Self::hash). URL: `sslcert` and `sslkey`
    /// (PostgreSQL), `ssl-cert` and `ssl-key` (MySQL).
    pub fn ssl_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.client_cert = Some(cert.into());
        self.tls.client_key = Some(key.into());
        self
    }
    /// TLS mode.
    pub fn get_ssl_mode(&self) -> SslMode {
        self.tls.mode
    }
    /// CA certificate file, if set.
    pub fn get_ssl_root_cert(&self) -> Option<&Path> {
        self.tls.root_cert.as_deref()
    }
    /// Client certificate file, if set.
    pub fn get_ssl_client_cert(&self) -> Option<&Path> {
        self.tls.client_cert.as_deref()
    }
    /// Client private key file, if set.
    pub fn get_ssl_client_key(&self) -> Option<&Path> {
        self.tls.client_key.as_deref()
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

    /// Whether a statement's tags (`.tag(k, v)` on [`execute`](crate::Connection::execute)
    /// and [`executemany`](crate::Connection::executemany), [`QueryOptions::tag`](crate::QueryOptions::tag)
    /// on the blocking twin) are sent to the server too, as a trailing
    /// [sqlcommenter](https://google.github.io/sqlcommenter/spec/) comment (default `false`).
    /// URL: `sql_comments=true` (every backend).
    ///
    /// ```text
    /// SELECT * FROM orders WHERE id = $1 /*app='api',route='%2Forders'*/
    /// ```
    ///
    /// The server then shows the tags wherever it shows the statement: PostgreSQL's
    /// `pg_stat_activity` and its logs (`log_min_duration_statement`), MySQL/MariaDB's process
    /// list and slow-query log, and tools that read sqlcommenter comments from them.
    ///
    /// * **Format**: keys and values percent-encoded (every byte but `A-Z a-z 0-9 - . _ ~`
    ///   becomes `%XX`, so the comment can hold no `*/`, quote, backslash, newline or `--`:
    ///   no tag can end the comment or change the statement), values in single quotes, pairs
    ///   sorted by key and joined by commas; a key tagged twice keeps its last value.
    /// * **Placement**: appended to the statement after its translation to native SQL (it is
    ///   never read by the translator), before a final `;`, on a line of its own when the
    ///   statement may end in a line comment. A statement without tags is sent unchanged;
    ///   dal's own statements (entity operations, transaction control) carry no tags.
    /// * **Cost**: prepared statements are cached per connection *by their text*, so each
    ///   distinct set of tag values is a distinct statement, prepared once per connection and
    ///   competing for the statement cache (512 per connection). Tag with low-cardinality
    ///   values (route, job, feature), never with ids or timestamps. The statement-cache
    ///   metrics (`PoolMetrics::statement_cache_hits` / `_misses`) count the text as sent, so
    ///   they show that cost.
    /// * Part of [`hash`](Self::hash) when on: a pool that tags statements never serves a
    ///   configuration that asked for them to be sent as written.
    ///
    /// ```
    /// use dal::DatabaseConfig;
    /// let config = DatabaseConfig::new("app").sql_comments(true);
    /// assert!(config.get_sql_comments());
    /// assert_ne!(config.hash(), DatabaseConfig::new("app").hash());
    /// let from_url = DatabaseConfig::from_url("sqlite::memory:?sql_comments=true")?;
    /// assert!(from_url.get_sql_comments());
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn sql_comments(mut self, on: bool) -> Self {
        self.sql_comments = on;
        self
    }

    /// Who changes the schema of entity tables (default [`SchemaMode::Auto`]: the entity
    /// layer creates tables and adds columns as saves need them). With
    /// [`SchemaMode::Migrations`] the entity layer never runs DDL: a save that would need a
    /// table or column fails with [`Error::Entity`](crate::Error::Entity), and
    /// [`Migrator`](crate::migrate::Migrator) makes the schema. URL:
    /// `schema_mode=auto|migrations`. Part of [`hash`](Self::hash) when `Migrations`.
    ///
    /// ```
    /// use dal::{migrate::SchemaMode, DatabaseConfig};
    /// let config = DatabaseConfig::new("app").schema_mode(SchemaMode::Migrations);
    /// assert_eq!(config.get_schema_mode(), SchemaMode::Migrations);
    /// let from_url = DatabaseConfig::from_url("sqlite::memory:?schema_mode=migrations")?;
    /// assert_eq!(from_url.get_schema_mode(), SchemaMode::Migrations);
    /// assert_ne!(config.hash(), DatabaseConfig::new("app").hash());
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn schema_mode(mut self, mode: SchemaMode) -> Self {
        self.schema_mode = mode;
        self
    }
    /// The [`SchemaMode`] in effect.
    pub fn get_schema_mode(&self) -> SchemaMode {
        self.schema_mode
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
    /// Whether statement tags are sent as a trailing SQL comment (see
    /// [`sql_comments`](Self::sql_comments)).
    pub fn get_sql_comments(&self) -> bool {
        self.sql_comments
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
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
    /// [`pool_size`](Self::pool_size) (min and max); the TLS settings
    /// ([`ssl_mode`](Self::ssl_mode), [`ssl_root_cert`](Self::ssl_root_cert),
    /// [`ssl_client_cert`](Self::ssl_client_cert); they add to the hash only when they differ
    /// from the defaults, so configurations without them keep their hash: two configurations
    /// that differ only in TLS never share a pool); and, when set, what the session is:
    /// [`application_name`](Self::application_name), [`pg_option`](Self::pg_option)s (in
    /// order) and [`charset`](Self::charset) (each adds to the hash only when set, so
    /// configurations that leave them alone keep their hash; setting one to its default value
    /// still changes the hash); the host list ([`hosts`](Self::hosts)) and
    /// [`target_session_attrs`](Self::target_session_attrs), when set. MySQL's `timezone` URL
    /// option is not a setting: only UTC is accepted, which is what every connection uses.
    /// Replicas ([`replica`](Self::replica)) are not part of it: each has a pool (and hash) of
    /// its own.
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
    ///   backend's pool is refused with [`Error::Config`](crate::Error::Config) (give it another alias).
    /// * The **slow-query threshold** ([`slow_query_threshold`](Self::slow_query_threshold)),
    ///   the **retry policy** ([`retry_policy`](Self::retry_policy)) and the **circuit breaker**
    ///   ([`circuit_breaker`](Self::circuit_breaker)). Configurations that differ only in these
    ///   share one pool, which keeps the settings of the configuration that created it. A
    ///   `Database` joining a pool whose retry policy or breaker settings differ from its own
    ///   logs a WARN (target `dal::pool`) naming the setting and the value the pool keeps.
    ///
    /// [`log_parameter_values(true)`](Self::log_parameter_values) *is* covered (it adds to the
    /// hash only when on, so default configurations keep their hash): parameter values never
    /// reach the logs of a database that asked for them to be redacted. So is
    /// [`sql_comments(true)`](Self::sql_comments) (also only when on): it changes the text of
    /// the statements the pool sends.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dal::{DatabaseConfig, RetryPolicy};
    /// let base = DatabaseConfig::new("app").host("db1").user("app");
    /// // Covered: where the pool connects, how it waits, how big it is.
    /// assert_ne!(base.hash(), base.clone().port(5432).hash());
    /// assert_ne!(base.hash(), base.clone().pool_size(1, 5).hash());
    /// // ... and how it secures the connection.
    /// assert_ne!(base.hash(), base.clone().ssl_mode(dal::SslMode::VerifyFull).hash());
    /// assert_ne!(base.hash(), base.clone().ssl_root_cert("ca.pem").hash());
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
    /// // ... and so is sending tags to the server as a SQL comment.
    /// assert_ne!(base.hash(), base.clone().sql_comments(true).hash());
    /// assert_eq!(base.hash(), base.clone().sql_comments(false).hash());
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
        if let Some(n) = self.expected_app_servers {
            canonical.push_str(&format!("|expected_app_servers={n}"));
        }
        if self.sql_comments {
            canonical.push_str("|sql_comments");
        }
        if self.schema_mode == SchemaMode::Migrations {
            canonical.push_str("|schema_mode=migrations");
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
        canonical.push_str(&self.tls.canonical());
        canonical.push_str(&self.topology_canonical());
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
        if self.hosts.is_empty() {
            write!(f, "{}", self.host)?;
            if let Some(p) = self.port {
                write!(f, ":{p}")?;
            }
        } else {
            let list: Vec<String> = self
                .hosts
                .iter()
                .map(|(h, p)| p.map_or_else(|| h.clone(), |p| format!("{h}:{p}")))
                .collect();
            write!(f, "{}", list.join(","))?;
        }
        write!(f, "/{})", self.database)
    }
}

#[cfg(test)]
mod tests;
