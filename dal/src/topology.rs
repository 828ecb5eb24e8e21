//! Read replicas: which server a read goes to, read-your-writes, replica health, and what
//! [`Database::topology`](crate::Database::topology) reports.
//!
//! A [`Database`] with replicas has, besides its primary pool, one pool per replica and a
//! read pool on the primary, all with read-only sessions. [`Database::read_connection`] lends
//! a replica's connection when one is in rotation (least busy first) and — after a write
//! through the same handle — has applied that write; otherwise a connection of the primary's
//! read pool.
//!
//! Read-your-writes ([`ReadYourWrites::Session`]): every statement that may write, and every
//! commit of a transaction that wrote, bumps the handle's write counter ([`WriteLog`]). The
//! next read asks the primary for its write position (`pg_current_wal_lsn()`,
//! `@@gtid_binlog_pos`) once — a position at least as far as every write noted before — and
//! serves the read from a replica only if it has replayed that position (checked on the
//! replica: `pg_last_wal_replay_lsn()`, `MASTER_GTID_WAIT(…, 0.01)`; remembered per replica,
//! so later reads with no write in between need no check).
//!
//! Health: at most once a second per replica (on the read path, in the background), dal
//! measures the replica's lag; a replica lagging more than
//! [`max_replica_lag`](crate::DatabaseConfig::max_replica_lag), not replicating, or
//! unreachable is out of rotation until a check finds it well. A replica's read connection
//! lost mid-use is replaced by one of the primary's read pool (the read is retried there).

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{DatabaseConfig, ReadYourWrites};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pool::{DropGuard, PoolInner, PoolSlot, PoolStatus};
use crate::sql::Backend;
use crate::value::Value;
use crate::Database;

/// How often a replica's lag is measured (at most).
const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// Bound for one health check (connect and query).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Which server a [`Connection`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The primary (the server that takes writes).
    Primary,
    /// A read replica.
    Replica,
}

impl Role {
    /// `primary` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One server of a [`Topology`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The pool's alias (`<alias>@replica:<host>:<port>` for replicas).
    pub alias: String,
    /// `host:port` (the host list for a primary with several hosts).
    pub address: String,
    /// `primary` or `replica`.
    pub role: Role,
    /// Whether reads are sent there (always true for the primary).
    pub in_rotation: bool,
    /// Why a replica is out of rotation.
    pub out_reason: Option<String>,
    /// The replica's last measured lag (`None`: not measured yet, or unknown).
    pub lag: Option<Duration>,
    /// Read connections lent on this server (the primary: reads no replica could serve).
    pub routed_reads: u64,
    /// Its pool's size and use (for the primary: its read-write pool).
    pub pool: PoolStatus,
}

/// The servers of a [`Database`]: its primary and its replicas, with their state.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Topology {
    /// The primary.
    pub primary: NodeStatus,
    /// The replicas, in configuration order.
    pub replicas: Vec<NodeStatus>,
}

/// The writes made through one [`Database`] handle, for read-your-writes.
#[derive(Default)]
pub(crate) struct WriteLog {
    /// Writes (and commits of transactions that wrote) noted so far.
    seq: AtomicU64,
    /// When the last one was noted. Poisoning: replaced whole, recovered.
    last: Mutex<Option<Instant>>,
    /// The primary's write position read after `seq` writes had been noted.
    resolved: Mutex<(u64, Option<String>)>,
}

impl WriteLog {
    pub(crate) fn note(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    fn wrote_within(&self, window: Duration) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < window)
    }

    /// The resolved position if it covers the first `seq` writes.
    fn covering(&self, seq: u64) -> Option<Option<String>> {
        if seq == 0 {
            return Some(None);
        }
        let r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        (r.0 >= seq).then(|| r.1.clone())
    }

    /// The resolved position if it covers every write noted so far.
    #[cfg(test)]
    fn current(&self) -> Option<Option<String>> {
        self.covering(self.seq.load(Ordering::Acquire))
    }
}

/// A pool created on first use (and again after it was closed).
struct Slot {
    config: DatabaseConfig,
    pool: Mutex<PoolSlot>,
}

impl Slot {
    fn new(config: DatabaseConfig) -> Self {
        Slot {
            config,
            pool: Mutex::default(),
        }
    }

    fn get(&self, backend: Backend) -> Result<Arc<PoolInner>> {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open(backend, &self.config)
    }

    fn opened(&self) -> Option<Arc<PoolInner>> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).last()
    }
}

/// A `Database`'s replicas, its primary read pool and its write log.
pub(crate) struct Routing {
    replicas: Vec<Slot>,
    primary_read: Slot,
    pub(crate) writes: Arc<WriteLog>,
    mode: ReadYourWrites,
    max_lag: Duration,
}

impl Routing {
    pub(crate) fn new(config: &DatabaseConfig) -> Self {
        Routing {
            replicas: config.get_replicas().into_iter().map(Slot::new).collect(),
            primary_read: Slot::new(config.primary_read_config()),
            writes: Arc::new(WriteLog::default()),
            mode: config.get_read_your_writes(),
            max_lag: config.get_max_replica_lag(),
        }
    }

    /// The read pools opened so far (replicas, then the primary's read pool).
    pub(crate) fn opened_pools(&self) -> Vec<Arc<PoolInner>> {
        self.replicas
            .iter()
            .chain(std::iter::once(&self.primary_read))
            .filter_map(Slot::opened)
            .filter(|p| !p.is_closed())
            .collect()
    }

    /// The write log connections of the primary note their writes in: only when there are
    /// replicas to keep in step with (otherwise noting costs nothing and is skipped).
    pub(crate) fn write_log(&self) -> Option<Arc<WriteLog>> {
        (!self.replicas.is_empty() && self.mode != ReadYourWrites::Off).then(|| self.writes.clone())
    }
}

/// What a read must see.
enum Need {
    /// Anything (no write noted, or read-your-writes off).
    Nothing,
    /// A replica that applied this position.
    Position(String),
    /// Only the primary will do.
    Primary,
}

impl Database {
    /// Lends a read connection: to a healthy replica (the least busy one) that has applied
    /// every write made earlier through this handle, else to the primary. Statements that may
    /// write fail on it with [`Error::ReadOnly`] before they are sent, and its session is
    /// opened read-only, so the server refuses the rest. [`Connection::role`] says where it
    /// is. Entity reads (`get_entity`, `find_entities`, typed `get`/`find`/`count`, history)
    /// work on it.
    ///
    /// Without replicas it is a read-only connection to the primary (on SQLite: a connection
    /// of the database's pool on which dal refuses writes).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let mut r = db.read_connection().await?;
    /// assert_eq!(r.role(), dal::Role::Primary);
    /// let err = r.execute("CREATE TABLE [t] ([x] INTEGER)", ()).await.unwrap_err();
    /// assert!(matches!(err, dal::Error::ReadOnly(_)));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn read_connection(
        &self,
    ) -> impl std::future::Future<Output = Result<Connection>> + Send + '_ {
        self.read_connection_at(Location::caller())
    }

    /// The blocking twin of [`read_connection`](Self::read_connection) (see
    /// [`sync_connection`](Self::sync_connection) for how blocking calls run).
    #[track_caller]
    pub fn sync_read_connection(&self) -> Result<crate::SyncConnection> {
        let location = Location::caller();
        let conn = crate::blocking::block_on(self.read_connection_at(location))??;
        Ok(crate::SyncConnection::new(conn))
    }

    /// The primary and the replicas, with rotation state, lag, reads routed and pool use.
    pub fn topology(&self) -> Topology {
        let routing = self.routing();
        let primary_status = self.pool_status();
        let config = self.config();
        let address = match config.get_hosts() {
            [] => format!(
                "{}:{}",
                config.get_host(),
                config.effective_port(self.backend())
            ),
            hosts => hosts
                .iter()
                .map(|(h, p)| p.map_or_else(|| h.clone(), |p| format!("{h}:{p}")))
                .collect::<Vec<_>>()
                .join(","),
        };
        let primary = NodeStatus {
            alias: config.get_alias().to_owned(),
            address,
            role: Role::Primary,
            in_rotation: true,
            out_reason: None,
            lag: Some(Duration::ZERO),
            routed_reads: routing
                .primary_read
                .opened()
                .map_or(0, |p| p.replica.routed()),
            pool: primary_status,
        };
        let replicas = routing
            .replicas
            .iter()
            .map(|slot| {
                let c = &slot.config;
                let pool = slot.opened();
                NodeStatus {
                    alias: c.get_alias().to_owned(),
                    address: format!("{}:{}", c.get_host(), c.effective_port(self.backend())),
                    role: Role::Replica,
                    in_rotation: pool.as_ref().is_none_or(|p| p.replica.in_rotation()),
                    out_reason: pool.as_ref().and_then(|p| p.replica.out_reason()),
                    lag: pool.as_ref().and_then(|p| p.replica.lag()),
                    routed_reads: pool.as_ref().map_or(0, |p| p.replica.routed()),
                    pool: match &pool {
                        Some(p) => PoolStatus::of(p),
                        None => PoolStatus::unopened(c, self.backend()),
                    },
                }
            })
            .collect();
        Topology { primary, replicas }
    }

    async fn read_connection_at(&self, location: &'static Location<'static>) -> Result<Connection> {
        let backend = self.backend();
        let routing = self.routing();
        if crate::backend::dialect(backend)
            .write_position_sql()
            .is_none()
        {
            if !routing.replicas.is_empty() {
                return Err(Error::Config(format!(
                    "{} has no replicas: remove .replica(…) from its configuration",
                    crate::backend::dialect(backend).name()
                )));
            }
            // SQLite: no replicas, no read-only sessions; dal refuses writes on it.
            let conn = self.connection_at(location).await?;
            return Ok(conn.for_reads(Role::Primary, None, None));
        }
        if !routing.replicas.is_empty() {
            let need = self.need(routing).await;
            if !matches!(need, Need::Primary) {
                if let Some(conn) = self.replica_connection(routing, &need, location).await {
                    return Ok(conn);
                }
            }
        }
        let primary = routing.primary_read.get(backend)?;
        let conn = acquire(&primary, location).await?;
        primary.replica.count_routed();
        Ok(conn.for_reads(Role::Primary, None, self.schema_cache()))
    }

    /// What a read must see, from the read-your-writes mode and the handle's writes.
    async fn need(&self, routing: &Routing) -> Need {
        match routing.mode {
            ReadYourWrites::Off => Need::Nothing,
            ReadYourWrites::Window(w) if routing.writes.wrote_within(w) => Need::Primary,
            ReadYourWrites::Window(_) => Need::Nothing,
            ReadYourWrites::Session => match self.position_required(routing).await {
                Ok(Some(pos)) => Need::Position(pos),
                Ok(None) => Need::Nothing,
                // The primary's position is unknown: only the primary is sure to be current.
                Err(_) => Need::Primary,
            },
        }
    }

    /// The primary's write position covering every write noted through this handle (`None`:
    /// none noted). Asks the primary once after each batch of writes; readers that need a
    /// newer position than the one known ask in parallel (waiting for another reader's answer
    /// would not help: it may not cover the writes this reader must see), and the answer that
    /// covers the most writes is kept.
    async fn position_required(&self, routing: &Routing) -> Result<Option<String>> {
        let log = &routing.writes;
        // The writes this read must see: those noted before it started. Any answer covering
        // them will do, also one asked for by another reader.
        let seq = log.seq.load(Ordering::Acquire);
        if let Some(known) = log.covering(seq) {
            return Ok(known);
        }
        let sql = crate::backend::dialect(self.backend())
            .write_position_sql()
            .ok_or_else(|| Error::Internal("no write position on this backend".into()))?;
        let mut conn = self.connection_at(Location::caller()).await?;
        let rows = conn.query_rows(sql, Vec::new()).await?;
        let pos: String = rows
            .first()
            .ok_or_else(|| Error::Internal("the primary gave no write position".into()))?
            .try_get("pos")?;
        let mut resolved = log.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if seq > resolved.0 {
            *resolved = (seq, Some(pos.clone()));
        }
        Ok(Some(pos))
    }

    /// The primary pool's entity schema cache, which read connections share.
    fn schema_cache(&self) -> Option<Arc<crate::pool::SchemaCache>> {
        self.pool().ok().map(|p| p.schema_cache.clone())
    }

    /// A read connection on a replica in rotation that satisfies `need`, least busy first;
    /// `None` when none does.
    async fn replica_connection(
        &self,
        routing: &Routing,
        need: &Need,
        location: &'static Location<'static>,
    ) -> Option<Connection> {
        let backend = self.backend();
        let mut pools: Vec<Arc<PoolInner>> = routing
            .replicas
            .iter()
            .filter_map(|slot| slot.get(backend).ok())
            .collect();
        for p in &pools {
            check_health(p, routing.max_lag);
        }
        pools.retain(|p| p.replica.in_rotation());
        pools.sort_by_key(|p| p.in_use());
        let fallback = routing.primary_read.get(backend).ok();
        for pool in pools {
            let mut conn = match acquire(&pool, location).await {
                Ok(c) => c,
                Err(Error::CircuitOpen { .. }) => continue,
                Err(e) => {
                    pool.replica
                        .take_out(&pool.alias, format!("no connection: {e}"));
                    continue;
                }
            };
            if let Need::Position(pos) = need {
                if !pool.replica.has_applied(pos) {
                    match replayed(&mut conn, backend, pos).await {
                        Ok(true) => pool.replica.applied(pos),
                        Ok(false) => continue,
                        Err(e) => {
                            pool.replica
                                .take_out(&pool.alias, format!("position check failed: {e}"));
                            continue;
                        }
                    }
                }
            }
            pool.replica.count_routed();
            return Some(conn.for_reads(Role::Replica, fallback, self.schema_cache()));
        }
        None
    }
}

/// A connection of `pool`, admitted by its circuit breaker, failures recorded with it.
async fn acquire(
    pool: &Arc<PoolInner>,
    location: &'static Location<'static>,
) -> Result<Connection> {
    crate::resilience::admit(pool)?;
    match pool.acquire(location).await {
        Ok(raw) => Ok(Connection::new(pool.clone(), raw)),
        Err(e) => {
            let (_, max) = pool.bounds();
            crate::resilience::record_acquire_failure(pool, &e, pool.in_use() >= max);
            Err(e)
        }
    }
}

/// Whether the replica behind `conn` has applied `pos`.
async fn replayed(conn: &mut Connection, backend: Backend, pos: &str) -> Result<bool> {
    let sql = crate::backend::dialect(backend)
        .replayed_sql()
        .ok_or_else(|| Error::Internal("no replay check on this backend".into()))?;
    let rows = conn
        .query_rows(sql, vec![Value::Text(pos.to_owned())])
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Internal("the replay check returned no row".into()))?;
    // PostgreSQL answers a boolean, MariaDB a number.
    Ok(match row.get("ok") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => *i == 1,
        _ => false,
    })
}

/// Starts a health check of replica `pool` in the background if the last one is older than
/// [`HEALTH_EVERY`] and none is running.
fn check_health(pool: &Arc<PoolInner>, max_lag: Duration) {
    if !pool.replica.claim_check(HEALTH_EVERY) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        pool.replica.check_done();
        return;
    };
    let pool = pool.clone();
    handle.spawn(async move {
        // Released however the task ends (also when its runtime is dropped mid-check).
        let done = pool.clone();
        let _done = DropGuard::new(move || done.replica.check_done());
        let measured = tokio::time::timeout(HEALTH_TIMEOUT, measure_lag(&pool)).await;
        match measured {
            Ok(Ok(lag)) => pool.replica.record_lag(&pool.alias, lag, max_lag),
            Ok(Err(e)) => pool
                .replica
                .take_out(&pool.alias, format!("health check failed: {e}")),
            Err(_) => pool.replica.take_out(
                &pool.alias,
                format!("health check got no answer within {HEALTH_TIMEOUT:?}"),
            ),
        }
    });
}

/// The replica's lag (`None`: not replicating).
async fn measure_lag(pool: &Arc<PoolInner>) -> Result<Option<Duration>> {
    let (sql, column) = crate::backend::dialect(pool.backend)
        .replica_lag_sql()
        .ok_or_else(|| Error::Internal("no lag measure on this backend".into()))?;
    let mut conn = acquire(pool, Location::caller()).await?;
    let rows = conn.query_rows(sql, Vec::new()).await?;
    let Some(row) = rows.first() else {
        // Not (or no longer) a replica, e.g. promoted: nothing to lag behind.
        return Ok(Some(Duration::ZERO));
    };
    Ok(match row.get(column) {
        Some(Value::Float(s)) => Duration::try_from_secs_f64(s.max(0.0)).ok(),
        Some(Value::Int(s)) => Some(Duration::from_secs(u64::try_from(*s).unwrap_or(0))),
        Some(Value::Decimal(d)) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok()),
        Some(Value::Text(t)) => t
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn sqlite_read_connections_refuse_writes_and_sqlite_has_no_replicas() -> Result<()> {
        let db = Database::from_url("sqlite::memory:?alias=topology-sqlite")?;
        let mut w = db.async_connection().await?;
        w.execute("CREATE TABLE [t] ([x] INTEGER)", ()).await?;
        w.execute("INSERT INTO [t] ([x]) VALUES (1)", ()).await?;
        drop(w);
        let mut r = db.read_connection().await?;
        assert_eq!((r.role(), r.is_read_only()), (Role::Primary, true));
        assert_eq!(r.execute("SELECT [x] FROM [t]", ()).await?.len(), 1);
        let e = r.execute("DELETE FROM [t]", ()).await.err();
        assert!(matches!(e, Some(Error::ReadOnly(_))), "{e:?}");
        let e = r
            .save_entity("things", serde_json::json!({"id": "a"}))
            .await
            .err();
        assert!(matches!(e, Some(Error::ReadOnly(_))), "{e:?}");
        drop(r);
        let t = db.topology();
        assert!(t.replicas.is_empty());
        assert_eq!(t.primary.role, Role::Primary);

        let with_replica = Database::new(
            Backend::Sqlite,
            DatabaseConfig::from_url("sqlite::memory:?alias=topology-sqlite-replica")?
                .replica("h", 1),
        );
        let e = with_replica.read_connection().await.err();
        assert!(
            matches!(&e, Some(Error::Config(m)) if m.contains("no replicas")),
            "{e:?}"
        );
        Ok(())
    }

    #[test]
    fn the_write_log_covers_writes_until_resolved_again() {
        let log = WriteLog::default();
        assert_eq!(log.current(), Some(None), "no write: nothing to wait for");
        assert!(!log.wrote_within(Duration::from_secs(60)));
        log.note();
        assert_eq!(log.current(), None, "a write not yet resolved");
        assert!(log.wrote_within(Duration::from_secs(60)));
        *log.resolved.lock().unwrap_or_else(|p| p.into_inner()) = (1, Some("0/10".into()));
        assert_eq!(log.current(), Some(Some("0/10".into())));
        log.note();
        assert_eq!(log.current(), None, "a newer write needs a newer position");
    }
}
