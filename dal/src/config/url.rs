//! Building a [`DatabaseConfig`] from a URL or the environment: the URL's parts and the query
//! options each backend accepts.

use std::time::Duration;

use super::credentials::Secret;
use super::{connect, topology, DatabaseConfig, SslMode, TargetSessionAttrs};
use crate::error::{Error, Result};
use crate::sql::Backend;

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
    "expected_app_servers",
    "sql_comments",
    "schema_mode",
];
impl DatabaseConfig {
    /// Parses a URL: `postgres://user:pw@host:5432/db` (or `postgresql://`), `mysql://…`,
    /// `mariadb://…`, `sqlite://path/to/file.db`, `sqlite:relative.db`, `sqlite::memory:`.
    ///
    /// User, password and database name are percent-decoded (`p%40ss` is `p@ss`; a `+` is a
    /// plus). Query options (values percent-decoded the same way):
    ///
    /// * every backend: `alias`, `env`, `connection_acquisition_timeout`,
    ///   `pool_creation_timeout`, `query_execution_timeout`, `connection_creation_timeout`
    ///   (seconds, may be fractional), `pool_min`, `pool_max`, `expected_app_servers`,
    ///   `sql_comments` (`true` or `false`; see [`sql_comments`](Self::sql_comments)),
    ///   `schema_mode` (`auto` or `migrations`; see [`schema_mode`](Self::schema_mode));
    /// * PostgreSQL (as libpq): `application_name` (default `dal`), `connect_timeout` (seconds,
    ///   sets `connection_creation_timeout`), `options` (run-time parameters,
    ///   `-c name=value …`), `user`, `password`, `host`, `port`, `dbname` (they override the
    ///   URL's parts), `target_session_attrs` (`any`, `read-write`, `read-only`, `primary`,
    ///   `standby`, `prefer-standby`; also on MySQL URLs);
    /// * PostgreSQL and MySQL/MariaDB: `replicas` (`host:port,host:port`, see
    ///   [`replica`](Self::replica)), `read_your_writes` (`session`, `off` or a window in
    ///   seconds), `max_replica_lag` (seconds);
    /// * MySQL/MariaDB: `charset` (default `utf8mb4`), `timezone` (only UTC: dal stores
    ///   timestamps as naive UTC, so any other zone is refused).
    ///
    /// Any other option is an [`Error::Config`] that names it and lists the supported ones.
    /// Host lists (`postgres://u@h1:5433,h2:5434/db`) choose a server at connect (see
    /// [`hosts`](Self::hosts) and [`target_session_attrs`](Self::target_session_attrs)).
    /// Errors never show the password.
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
            // `url::Url` does not take host lists: take them out of the authority first, and
            // parse the URL with the first host in their place.
            let mut host_list = None;
            let mut single = None;
            if let Some(after) = rest.strip_prefix("//") {
                let end = after.find(['/', '?']).unwrap_or(after.len());
                let authority = &after[..end];
                let (userinfo, hosts) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h),
                    None => (None, authority),
                };
                if let Some(list) = connect::parse_host_list(hosts)? {
                    let first = hosts.split(',').next().unwrap_or_default();
                    single = Some(format!(
                        "{scheme}://{}{first}{}",
                        userinfo.map(|u| format!("{u}@")).unwrap_or_default(),
                        &after[end..]
                    ));
                    host_list = Some(list);
                }
            }
            let parsed = url::Url::parse(single.as_deref().unwrap_or(url))
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
            if let Some(list) = host_list {
                c = c.hosts(list);
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
        } else if config.password.expose().is_none()
            && config
                .backend
                .is_some_and(|b| crate::backend::dialect(b).reads_pgpass())
        {
            if let Some(path) = var("PGPASSFILE")?.filter(|f| !f.is_empty()) {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Config(format!("PGPASSFILE: cannot read {path:?}: {e}")))?;
                let found = connect::pgpass_lookup(
                    &text,
                    &config.host,
                    config.backend.map_or(0, |b| config.effective_port(b)),
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
        // Only the options every backend takes and the backend's own.
        let dialect = self.backend.map(crate::backend::dialect);
        if !COMMON_OPTIONS.contains(&key)
            && !dialect.is_some_and(|d| d.url_options().contains(&key))
        {
            return Err(self.unknown_option(key));
        }
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
            "expected_app_servers" => match count()? {
                0 => {
                    return Err(Error::Config(
                        "option expected_app_servers: 0 is not a number of app servers".into(),
                    ))
                }
                n => self.expected_app_servers(n),
            },
            "sql_comments" => self.sql_comments(connect::parse_bool(key, value)?),
            "schema_mode" => self.schema_mode(value.parse()?),
            // Standard PostgreSQL (libpq) options.
            "application_name" => self.application_name(value),
            "connect_timeout" => {
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
            "options" => {
                let mut c = self;
                for (k, v) in connect::parse_pg_options(value)? {
                    c = c.pg_option(k, v);
                }
                c
            }
            "user" => self.user(value),
            "password" => self.password(value),
            "host" => {
                connect::check_single_host(value, None)?;
                self.host(value)
            }
            "port" => {
                connect::check_single_host(&self.host, Some(value))?;
                self.port(connect::parse_port(value)?)
            }
            "dbname" => DatabaseConfig {
                database: value.to_owned(),
                ..self
            },
            "target_session_attrs" => self.target_session_attrs(TargetSessionAttrs::parse(value)?),
            // Replicas and how reads see writes (PostgreSQL and MySQL/MariaDB).
            "replicas" => {
                let mut c = self;
                for (host, port) in topology::parse_replicas(value)? {
                    c = c.replica(host, port);
                }
                c
            }
            "read_your_writes" => self.read_your_writes(topology::parse_read_your_writes(value)?),
            "max_replica_lag" => self.max_replica_lag(secs()?),
            // Standard MySQL/MariaDB options.
            "charset" => {
                connect::check_charset(value)?;
                self.charset(value)
            }
            "timezone" => {
                connect::check_mysql_timezone(value)?;
                self
            }
            // TLS, each backend with its own client's option names.
            "sslmode" | "sslrootcert" | "sslcert" | "sslkey" | "ssl-mode" | "ssl-ca"
            | "ssl-cert" | "ssl-key" => {
                let mut c = self;
                match key {
                    "sslmode" => c.tls.mode = SslMode::parse_postgres(key, value)?,
                    "ssl-mode" => c.tls.mode = SslMode::parse_mysql(key, value)?,
                    "sslrootcert" | "ssl-ca" => c.tls.root_cert = Some(value.into()),
                    "sslcert" | "ssl-cert" => c.tls.client_cert = Some(value.into()),
                    _ => c.tls.client_key = Some(value.into()),
                }
                c
            }
            other => return Err(self.unknown_option(other)),
        })
    }

    /// The error for an option this configuration's backend does not take.
    fn unknown_option(&self, key: &str) -> Error {
        let (name, specific): (&str, &[&str]) = match self.backend.map(crate::backend::dialect) {
            Some(d) => (d.name(), d.url_options()),
            None => ("this backend", &[]),
        };
        let supported = COMMON_OPTIONS
            .iter()
            .chain(specific)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let elsewhere = crate::backend::all_dialects()
            .into_iter()
            .find(|d| d.url_options().contains(&key))
            .map(|d| format!(" (it is a {} option)", d.name()))
            .unwrap_or_default();
        Error::Config(format!(
            "unknown URL option {key:?} for {name}{elsewhere}; supported: {supported}"
        ))
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
