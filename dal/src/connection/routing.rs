//! What a connection does for the replicated topology: noting writes so that read connections
//! of the same `Database` see them (read-your-writes), reacting to a server that turned out
//! read-only (failover), and a lost replica connection's fallback to the primary.

use std::panic::Location;

use super::Connection;
use crate::error::{DbErrorKind, Error, Result};
use crate::resilience::{classify, FailureClass};
use crate::topology::Role;

impl Connection {
    /// An entity write on a read connection: refused before anything is done.
    pub(crate) fn refuse_writes_if_read_only(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(
                "this is a read connection (Database::read_connection): entity saves, deletes \
                 and restores need async_connection()"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A statement that may write ran (`in_tx`: inside a transaction, noted at commit).
    pub(super) fn note_write(&mut self, in_tx: bool) {
        if in_tx {
            self.tx_wrote = true;
        } else if let Some(w) = &self.writes {
            w.note();
        }
    }

    /// The open transaction ended (commit or rollback): its writes, if any, are noted.
    pub(super) fn note_commit(&mut self) {
        if std::mem::take(&mut self.tx_wrote) {
            if let Some(w) = &self.writes {
                w.note();
            }
        }
    }

    /// A write refused because the server is read-only becomes [`Error::ReadOnly`]. On a pool
    /// that wants a writable server (`target_session_attrs=read-write`/`primary`), it means
    /// the server was demoted: the connection is closed and the pool looks for the new
    /// primary. A connection lost on a pool with a host list also makes it look again.
    pub(super) fn after_role_error<T>(&mut self, result: Result<T>) -> Result<T> {
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let config = &self.pool.config;
        match &err {
            Error::Database {
                kind: DbErrorKind::ReadOnly,
                message,
                code,
                ..
            } => {
                let code = code
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default();
                let demoted = !self.read_only && config.get_target_session_attrs().wants_writes();
                if demoted {
                    self.broken = true;
                    self.pool.rediscover();
                    tracing::warn!(
                        target: "dal::failover",
                        alias = %self.pool.alias,
                        "the server refused a write as read-only: looking for the primary again"
                    );
                }
                Err(Error::ReadOnly(if demoted {
                    format!("the server is read-only now (demoted primary?){code}: {message}; nothing was written, retry on a new connection")
                } else {
                    format!("the server refused a write{code}: {message}")
                }))
            }
            _ if !config.get_hosts().is_empty()
                && classify(self.backend(), &err) == FailureClass::ConnectionLost =>
            {
                self.pool.rediscover();
                Err(err)
            }
            _ => Err(err),
        }
    }

    /// A lost replica connection that cannot be replaced from the replica's pool: the replica
    /// is taken out of rotation and the read continues on the primary's read pool. `Ok(false)`
    /// when there is no fallback (not a replica's read connection).
    pub(super) async fn fall_back_to_primary(&mut self, why: &Error) -> Result<bool> {
        let Some(primary) = self.fallback.take() else {
            return Ok(false);
        };
        self.pool
            .replica
            .take_out(&self.pool.alias, format!("connection lost: {why}"));
        crate::resilience::admit(&primary)?;
        let raw = primary.acquire(Location::caller()).await?;
        self.pool = primary;
        self.conn = Some(raw);
        self.role = Role::Primary;
        self.broken = false;
        self.verified = None;
        Ok(true)
    }
}
