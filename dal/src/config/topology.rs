//! The servers behind one configuration: a host list for failover (with libpq's
//! `target_session_attrs`), read replicas, and how reads see earlier writes.

use std::fmt;
use std::time::Duration;

use super::DatabaseConfig;
use crate::error::{Error, Result};

/// Default [`max_replica_lag`](DatabaseConfig::max_replica_lag): 10 s.
pub const DEFAULT_MAX_REPLICA_LAG: Duration = Duration::from_secs(10);

/// Which server of a host list a connection may use, as libpq's `target_session_attrs`
/// (URL option of that name on PostgreSQL and MySQL/MariaDB URLs).
///
/// At connect, dal asks the server its role in the same round trip that reads its session id:
/// PostgreSQL `pg_is_in_recovery()` and `transaction_read_only`, MySQL/MariaDB `@@read_only`
/// (a replica runs with `read_only=ON`; it counts as both read-only and standby). Servers
/// whose role does not match are skipped, in list order starting with the last one that
/// matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server that accepts the connection (the default).
    #[default]
    Any,
    /// A server that accepts writes (`transaction_read_only` off / `@@read_only` = 0).
    ReadWrite,
    /// A server that does not accept writes.
    ReadOnly,
    /// A server not in recovery (PostgreSQL) / not read-only (MySQL).
    Primary,
    /// A server in recovery (a standby) / read-only (MySQL).
    Standby,
    /// A standby if one is reachable, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// Parses libpq's spelling (`any`, `read-write`, `read-only`, `primary`, `standby`,
    /// `prefer-standby`).
    pub fn parse(v: &str) -> Result<Self> {
        Ok(match v {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            other => {
                return Err(Error::Config(format!(
                    "target_session_attrs: {other:?} is not one of any, read-write, read-only, \
                     primary, standby, prefer-standby"
                )))
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "any",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby => "standby",
            TargetSessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    #[cfg(any(feature = "postgres", feature = "mysql"))]
    /// Whether a server with this role is acceptable (for `PreferStandby`: on the first pass,
    /// which looks for a standby).
    pub(crate) fn accepts(self, role: ServerRole) -> bool {
        match self {
            TargetSessionAttrs::Any => true,
            TargetSessionAttrs::ReadWrite => !role.read_only,
            TargetSessionAttrs::ReadOnly => role.read_only,
            TargetSessionAttrs::Primary => !role.in_recovery,
            TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => role.in_recovery,
        }
    }

    /// True when a server turning read-only (a write refused as read-only) means the pool is
    /// on the wrong server and must look again.
    pub(crate) fn wants_writes(self) -> bool {
        matches!(
            self,
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary
        )
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server said about itself at connect.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ServerRole {
    /// New transactions are read-only (a standby, `read_only=ON`, `default_transaction_read_only`).
    pub read_only: bool,
    /// PostgreSQL: in recovery (a standby). MySQL: the same as `read_only`.
    pub in_recovery: bool,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.in_recovery, self.read_only) {
            (true, _) => "a standby (read-only)",
            (false, true) => "read-only",
            (false, false) => "read-write",
        })
    }
}

/// How a [`read_connection`](crate::Database::read_connection) sees writes made earlier
/// through the same [`Database`](crate::Database) handle (and its clones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadYourWrites {
    /// After a write, reads come only from replicas that have replayed it (checked against
    /// the primary's WAL position / GTID), else from the primary. The default.
    #[default]
    Session,
    /// For this long after a write, reads go to the primary (no position checks: cheaper,
    /// but a replica lagging more than the window can serve stale data after it).
    Window(Duration),
    /// No tracking: reads may see data older than the handle's own writes.
    Off,
}

/// What a pool's sessions are for (the hash tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SessionKind {
    /// Reads and writes (every pool users create).
    #[default]
    ReadWrite,
    /// Read-only sessions on the primary (reads no replica can serve).
    PrimaryRead,
    /// Read-only sessions on a replica.
    Replica,
}

/// A read replica of the primary: same settings except where it is, or its own configuration.
#[derive(Debug, Clone)]
pub(crate) enum ReplicaSpec {
    /// Host and port; everything else from the primary's configuration.
    At(String, u16),
    /// A configuration of its own (user, password, TLS, … may differ).
    Config(Box<DatabaseConfig>),
}

impl DatabaseConfig {
    /// Adds a read replica at `host:port` with the same database, user, password, TLS and
    /// timeouts as this configuration (repeatable). Each replica gets its own pool, sized
    /// like the primary's; [`Database::read_connection`](crate::Database::read_connection)
    /// lends connections to the replicas. URL: `replicas=10.0.0.2:5432,10.0.0.3:5432`.
    ///
    /// ```
    /// let cfg = dal::DatabaseConfig::from_url("postgres://app@10.0.0.1:5432/shop")?
    ///     .replica("10.0.0.2", 5432)
    ///     .replica("10.0.0.3", 5432);
    /// assert_eq!(cfg.get_replicas().len(), 2);
    /// # Ok::<(), dal::Error>(())
    /// ```
    pub fn replica(mut self, host: impl Into<String>, port: u16) -> Self {
        self.replicas.push(ReplicaSpec::At(host.into(), port));
        self
    }

    /// Adds a read replica with a configuration of its own (another user, password or TLS
    /// setting). Its backend is the primary's; its own replicas and host list are ignored.
    pub fn replica_config(mut self, replica: DatabaseConfig) -> Self {
        self.replicas.push(ReplicaSpec::Config(Box::new(replica)));
        self
    }

    /// The replicas' configurations, as their pools will use them (read-only sessions).
    pub fn get_replicas(&self) -> Vec<DatabaseConfig> {
        (0..self.replicas.len())
            .filter_map(|i| self.replica_at(i))
            .collect()
    }

    /// Several hosts to choose from at connect, in order (failover); which one is chosen is
    /// decided by [`target_session_attrs`](Self::target_session_attrs). A port of `None` is
    /// the backend's default. Replaces [`host`](Self::host)/[`port`](Self::port) (the first
    /// entry becomes them). URL: `postgres://u@h1:5433,h2:5434/db`. Part of
    /// [`hash`](Self::hash).
    pub fn hosts<H: Into<String>>(
        mut self,
        hosts: impl IntoIterator<Item = (H, Option<u16>)>,
    ) -> Self {
        self.hosts = hosts.into_iter().map(|(h, p)| (h.into(), p)).collect();
        if let Some((h, p)) = self.hosts.first() {
            self.host = h.clone();
            self.port = *p;
        }
        if self.hosts.len() < 2 {
            self.hosts.clear();
        }
        self
    }

    /// Which server of the host list a connection may use (default
    /// [`TargetSessionAttrs::Any`]). Part of [`hash`](Self::hash). URL:
    /// `target_session_attrs=read-write`.
    pub fn target_session_attrs(mut self, t: TargetSessionAttrs) -> Self {
        self.target_session_attrs = t;
        self
    }

    /// How read connections see this handle's own writes (default
    /// [`ReadYourWrites::Session`]). URL: `read_your_writes=session|off|<seconds>`.
    pub fn read_your_writes(mut self, mode: ReadYourWrites) -> Self {
        self.read_your_writes = mode;
        self
    }

    /// Replicas lagging more than this behind the primary are taken out of rotation until
    /// they catch up (default 10 s). URL: `max_replica_lag` (seconds).
    pub fn max_replica_lag(mut self, lag: Duration) -> Self {
        self.max_replica_lag = lag;
        self
    }

    /// The host list (empty unless several hosts were given).
    pub fn get_hosts(&self) -> &[(String, Option<u16>)] {
        &self.hosts
    }

    /// The `target_session_attrs` in effect.
    pub fn get_target_session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs
    }

    /// The read-your-writes mode.
    pub fn get_read_your_writes(&self) -> ReadYourWrites {
        self.read_your_writes
    }

    /// The replica lag limit.
    pub fn get_max_replica_lag(&self) -> Duration {
        self.max_replica_lag
    }

    /// Whether sessions are opened read-only (replica pools and the primary's read pool).
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn is_read_only_session(&self) -> bool {
        self.session != SessionKind::ReadWrite
    }

    /// What this configuration's sessions are for.
    pub(crate) fn session_kind(&self) -> SessionKind {
        self.session
    }

    /// Where to connect, in order: the host list, or the single host.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn endpoints(&self, default_port: u16) -> Vec<(String, u16)> {
        if self.hosts.is_empty() {
            vec![(self.host.clone(), self.port.unwrap_or(default_port))]
        } else {
            self.hosts
                .iter()
                .map(|(h, p)| (h.clone(), p.unwrap_or(default_port)))
                .collect()
        }
    }

    /// The configuration of replica `i`'s pool: read-only sessions, no replicas nor host list
    /// of its own, its own alias (`<alias>@replica:<host>:<port>`).
    pub(crate) fn replica_at(&self, i: usize) -> Option<DatabaseConfig> {
        let base = match self.replicas.get(i)? {
            ReplicaSpec::At(host, port) => {
                let mut c = self.clone();
                c.host = host.clone();
                c.port = Some(*port);
                c.alias = None;
                c
            }
            ReplicaSpec::Config(c) => {
                let mut c = (**c).clone();
                c.backend = self.backend;
                c
            }
        };
        let port = base.port.or_else(|| {
            base.backend
                .map(|b| crate::backend::dialect(b).default_port())
        });
        let alias = match &base.alias {
            Some(a) => a.clone(),
            None => format!(
                "{}@replica:{}:{}",
                self.get_alias(),
                base.host,
                port.map_or_else(String::new, |p| p.to_string())
            ),
        };
        let mut c = base.alias(alias);
        c.replicas.clear();
        c.hosts.clear();
        c.target_session_attrs = TargetSessionAttrs::Any;
        c.session = SessionKind::Replica;
        Some(c)
    }

    /// The configuration of the primary's read pool: the primary (host list included) with
    /// read-only sessions, for reads that cannot go to a replica.
    pub(crate) fn primary_read_config(&self) -> DatabaseConfig {
        let mut c = self
            .clone()
            .alias(format!("{}@primary-read", self.get_alias()));
        c.replicas.clear();
        c.session = SessionKind::PrimaryRead;
        // Its own sessions are read-only, so `read-write` would refuse every server: it looks
        // for the server that is not a standby instead.
        if c.target_session_attrs == TargetSessionAttrs::ReadWrite {
            c.target_session_attrs = TargetSessionAttrs::Primary;
        }
        c
    }

    /// The hash's part for the topology settings: empty when they are the defaults, so
    /// configurations without them keep their hash.
    pub(super) fn topology_canonical(&self) -> String {
        let mut s = String::new();
        if !self.hosts.is_empty() {
            s.push_str(&format!("|hosts={:?}", self.hosts));
        }
        if self.target_session_attrs != TargetSessionAttrs::Any {
            s.push_str(&format!(
                "|target_session_attrs={}",
                self.target_session_attrs
            ));
        }
        match self.session {
            SessionKind::ReadWrite => {}
            SessionKind::PrimaryRead => s.push_str("|session=primary_read"),
            SessionKind::Replica => s.push_str("|session=replica"),
        }
        s
    }
}

/// Parses a `replicas=h1:p1,h2:p2` URL option (a port is required: replicas often listen on
/// other ports than the primary).
pub(super) fn parse_replicas(value: &str) -> Result<Vec<(String, u16)>> {
    value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            let (host, port) = super::connect::split_host_port(entry)?;
            match port {
                Some(p) if !host.is_empty() => Ok((host, p)),
                _ => Err(Error::Config(format!(
                    "option replicas: {entry:?} is not host:port"
                ))),
            }
        })
        .collect()
}

/// Parses a `read_your_writes` URL option: `session`, `off`, or a window in seconds.
pub(super) fn parse_read_your_writes(value: &str) -> Result<ReadYourWrites> {
    match value {
        "session" => Ok(ReadYourWrites::Session),
        "off" => Ok(ReadYourWrites::Off),
        secs => secs
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .map(ReadYourWrites::Window)
            .ok_or_else(|| {
                Error::Config(format!(
                    "option read_your_writes: {value:?} is not session, off or a number of seconds"
                ))
            }),
    }
}
