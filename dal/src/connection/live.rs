//! A live connection for the pipeline's stage 3 (retry): before a try, a connection suspected
//! stale is pinged and a lost one replaced by a fresh one from the pool (also used when an
//! interrupted call is settled).

use std::panic::Location;
use std::time::{Duration, Instant};

use super::Connection;
use crate::error::{Error, Result, TimeoutKind};
use crate::pool::PooledRaw;

/// Bound for the ping that checks a connection suspected stale (also bounded by
/// `connection_creation_timeout`).
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Before a statement is sent: while the pool suspects stale connections (one was lost
    /// recently), pings a connection not yet proven alive on this checkout before a write goes
    /// out on it; replaces a connection known to be lost. An error from here means the
    /// statement never left the client.
    pub(super) async fn ensure_live(&mut self, read: bool) -> Result<()> {
        if !self.broken && !read && self.pool.resilience.should_validate(self.verified) {
            let limit = self.validation_timeout();
            // `busy` while the ping is in flight: dropped now, the connection is closed.
            self.busy = true;
            let alive = match self.conn.as_mut() {
                Some(c) => ping_within(c, limit).await,
                None => false,
            };
            self.busy = false;
            if alive {
                self.verified = Some(self.pool.resilience.losses());
            } else {
                self.broken = true;
                self.pool.resilience.note_loss();
            }
        }
        if self.broken {
            if self.session_bound {
                return Err(Error::Connection(
                    "the connection was lost, and with it the session state set on it (SET, USE, temporary tables, …); get a new connection".into(),
                ));
            }
            self.replace().await?;
        }
        Ok(())
    }

    /// Closes the lost physical connection and takes another from the pool, all within
    /// `connection_acquisition_timeout`. While the pool suspects stale connections, each
    /// candidate is pinged first and dead ones are closed, so after at most `max` rounds the
    /// pool opens a new one.
    pub(super) async fn replace(&mut self) -> Result<()> {
        if let Some(old) = self.conn.take() {
            self.pool.release_broken(old);
        }
        let limit = self.pool.config.get_connection_acquisition_timeout();
        let start = Instant::now();
        let replaced = match tokio::time::timeout(limit, self.replace_within()).await {
            Ok(r) => r,
            Err(_) => Err(Error::timeout(TimeoutKind::Acquire, limit, start.elapsed())),
        };
        match replaced {
            // A replica's read connection: the read goes on on the primary.
            Err(e) if self.fall_back_to_primary(&e).await? => Ok(()),
            other => other,
        }
    }

    async fn replace_within(&mut self) -> Result<()> {
        let limit = self.validation_timeout();
        let (_, max) = self.pool.bounds();
        for _ in 0..=max {
            // `broken` stays set until the candidate proved alive: dropped meanwhile, it is
            // closed rather than put back.
            self.conn = Some(self.pool.acquire(Location::caller()).await?);
            self.verified = None;
            if !self.pool.resilience.suspects_stale() {
                self.broken = false;
                return Ok(());
            }
            let alive = match self.conn.as_mut() {
                Some(c) => ping_within(c, limit).await,
                None => false,
            };
            if alive {
                self.broken = false;
                self.verified = Some(self.pool.resilience.losses());
                return Ok(());
            }
            if let Some(dead) = self.conn.take() {
                self.pool.release_broken(dead);
            }
        }
        Err(Error::Connection(
            format!(
                "no live connection could be found in the pool of {}",
                self.pool.alias
            )
            .into(),
        ))
    }

    fn validation_timeout(&self) -> Duration {
        self.pool
            .config
            .get_connection_creation_timeout()
            .min(VALIDATION_TIMEOUT)
    }
}

/// One round trip within `limit`: true when the connection answered.
async fn ping_within(conn: &mut PooledRaw, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, conn.raw.ping()).await,
        Ok(Ok(()))
    )
}
