//! Choosing a server from a host list at connect (libpq's `target_session_attrs`), written
//! once for the drivers that have host lists (PostgreSQL, MySQL/MariaDB).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::RawConn;
use crate::config::{ServerRole, TargetSessionAttrs};
use crate::error::{Error, Result};

/// The servers of one configuration and which of them a connection may use.
pub(crate) struct HostList {
    /// `host:port` of each server, for messages.
    pub names: Vec<String>,
    pub target: TargetSessionAttrs,
    /// The server the last connection went to: tried first next time.
    preferred: AtomicUsize,
    /// Bound for one server's attempt when there are several (a silent server must leave
    /// time for the next one).
    per_host: Duration,
}

impl HostList {
    pub(crate) fn new(
        names: Vec<String>,
        target: TargetSessionAttrs,
        creation_timeout: Duration,
    ) -> Self {
        let n = u32::try_from(names.len().max(1)).unwrap_or(u32::MAX);
        let per_host = (creation_timeout / n).max(Duration::from_secs(1));
        HostList {
            names,
            target,
            preferred: AtomicUsize::new(0),
            per_host,
        }
    }

    /// Opens a connection with `open(i)` (which connects to server `i` and reads its role),
    /// trying the servers in order from the preferred one, and keeps the first whose role the
    /// target accepts. With one server and no role to look for, `open`'s error is returned
    /// as is; otherwise the error lists what each server said.
    pub(crate) async fn connect<F, Fut>(&self, open: F) -> Result<Box<dyn RawConn>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<(Box<dyn RawConn>, ServerRole)>>,
    {
        let n = self.names.len();
        if n <= 1 && self.target == TargetSessionAttrs::Any {
            return open(0).await.map(|(conn, _)| conn);
        }
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut refused = Vec::with_capacity(n);
        // prefer-standby: a server that is not a standby is kept in case no standby answers.
        let mut fallback: Option<(usize, Box<dyn RawConn>)> = None;
        for k in 0..n {
            let i = (first + k) % n;
            let attempt = if n > 1 {
                match tokio::time::timeout(self.per_host, open(i)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Connection(
                        format!("no answer within {:?}", self.per_host).into(),
                    )),
                }
            } else {
                open(i).await
            };
            match attempt {
                Ok((conn, role)) if self.target.accepts(role) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    if let Some((_, other)) = fallback {
                        other.close().await;
                    }
                    return Ok(conn);
                }
                Ok((conn, role)) => {
                    refused.push(format!("{}: {role}", self.names[i]));
                    if self.target == TargetSessionAttrs::PreferStandby && fallback.is_none() {
                        fallback = Some((i, conn));
                    } else {
                        conn.close().await;
                    }
                }
                Err(e) => refused.push(format!("{}: {e}", self.names[i])),
            }
        }
        if let Some((i, conn)) = fallback {
            self.preferred.store(i, Ordering::Relaxed);
            return Ok(conn);
        }
        Err(Error::Connection(
            format!(
                "no server accepts {} sessions ({})",
                self.target,
                refused.join("; ")
            )
            .into(),
        ))
    }
}
