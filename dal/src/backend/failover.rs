//! Choosing a server from a host list at connect (libpq's `target_session_attrs`), written
//! once for the drivers that have host lists (PostgreSQL, MySQL/MariaDB).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Arc;

use super::RawConn;
use crate::config::{DatabaseConfig, ServerRole, TargetSessionAttrs};
use crate::error::{Error, Result};
use crate::sql::Backend;

/// A driver's connect options for each server of `config` (its host list, or its one host):
/// `template` with each server's host and port set by `at`, and the host list over them.
pub(crate) fn per_server<O>(
    config: &DatabaseConfig,
    backend: Backend,
    template: O,
    at: impl Fn(O, &str, u16) -> O,
) -> (Vec<Arc<O>>, HostList)
where
    O: Clone,
{
    let servers = config.endpoints(crate::backend::dialect(backend).default_port());
    let options = servers
        .iter()
        .map(|(h, p)| Arc::new(at(template.clone(), h, *p)))
        .collect();
    let hosts = HostList::new(
        servers.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
        config.get_target_session_attrs(),
        config.get_connection_creation_timeout(),
    );
    (options, hosts)
}

/// Server `i`'s options (an internal error if the host list has no such server).
pub(crate) fn server<O>(options: &[Arc<O>], i: usize) -> Result<&Arc<O>> {
    options
        .get(i)
        .ok_or_else(|| Error::Internal(format!("no server {i} in the host list")))
}

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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::backend::{CancelToken, QueryOutput};
    use crate::value::Value;

    /// A connection that knows which server it is on and records being closed.
    struct Fake {
        server: usize,
        closed: Arc<Mutex<Vec<usize>>>,
    }

    struct NoCancel;

    #[async_trait]
    impl CancelToken for NoCancel {
        async fn cancel(&self) -> Result<()> {
            Ok(())
        }
    }

    #[async_trait]
    impl RawConn for Fake {
        async fn query(&mut self, _: &str, _: &[Value]) -> Result<QueryOutput> {
            // The server index, so the test can tell which one it got.
            Ok(QueryOutput {
                rows: Vec::new(),
                rows_affected: self.server as u64,
            })
        }
        async fn fetch<'a>(
            &'a mut self,
            _: &'a str,
            _: &'a [Value],
        ) -> Result<crate::backend::RowStream<'a>> {
            Ok(Box::pin(futures_util::stream::empty()))
        }
        async fn simple(&mut self, _: &str) -> Result<()> {
            Ok(())
        }
        fn cancel_token(&self) -> std::sync::Arc<dyn CancelToken> {
            Arc::new(NoCancel)
        }
        fn system_name(&self) -> &'static str {
            "other_sql"
        }
        async fn ping(&mut self) -> Result<()> {
            Ok(())
        }
        async fn close(self: Box<Self>) {
            self.closed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.server);
        }
    }

    const PRIMARY: ServerRole = ServerRole {
        read_only: false,
        in_recovery: false,
    };
    const STANDBY: ServerRole = ServerRole {
        read_only: true,
        in_recovery: true,
    };

    /// Connects through a host list whose servers have `roles` (`None`: down); returns the
    /// server chosen (or the error) and the servers whose connections were closed.
    async fn pick(
        list: &HostList,
        roles: &[Option<ServerRole>],
    ) -> (std::result::Result<u64, String>, Vec<usize>) {
        let closed = Arc::new(Mutex::new(Vec::new()));
        let r = list
            .connect(|i| {
                let closed = closed.clone();
                let role = roles[i];
                async move {
                    match role {
                        Some(role) => Ok((
                            Box::new(Fake { server: i, closed }) as Box<dyn RawConn>,
                            role,
                        )),
                        None => Err(Error::Connection("Connection refused".into())),
                    }
                }
            })
            .await;
        let chosen = match r {
            Ok(mut c) => Ok(c
                .query("", &[])
                .await
                .map(|o| o.rows_affected)
                .unwrap_or(99)),
            Err(e) => Err(e.to_string()),
        };
        let closed = closed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (chosen, closed)
    }

    fn list(n: usize, target: TargetSessionAttrs) -> HostList {
        HostList::new(
            (0..n).map(|i| format!("h{i}:5432")).collect(),
            target,
            Duration::from_secs(4),
        )
    }

    #[tokio::test]
    async fn the_first_server_with_the_wanted_role_is_chosen_and_preferred_next_time() {
        let l = list(3, TargetSessionAttrs::ReadWrite);
        let (got, closed) = pick(&l, &[Some(STANDBY), None, Some(PRIMARY)]).await;
        assert_eq!(got, Ok(2));
        assert_eq!(closed, vec![0], "the standby's connection is closed");
        // Next time it starts with the server that matched: no round trip to the others.
        let (got, closed) = pick(&l, &[Some(STANDBY), None, Some(PRIMARY)]).await;
        assert_eq!((got, closed), (Ok(2), vec![]));
        // After a failover it goes round the list.
        let (got, _) = pick(&l, &[Some(PRIMARY), None, None]).await;
        assert_eq!(got, Ok(0));
    }

    #[tokio::test]
    async fn no_matching_server_is_an_error_naming_each() {
        let l = list(2, TargetSessionAttrs::ReadWrite);
        let (got, closed) = pick(&l, &[None, Some(STANDBY)]).await;
        let e = got.unwrap_err();
        assert!(e.contains("no server accepts read-write sessions"), "{e}");
        assert!(e.contains("h0:5432") && e.contains("refused"), "{e}");
        assert!(e.contains("h1:5432: a standby"), "{e}");
        assert_eq!(closed, vec![1]);
    }

    #[tokio::test]
    async fn prefer_standby_falls_back_to_any_server() {
        let l = list(2, TargetSessionAttrs::PreferStandby);
        let (got, closed) = pick(&l, &[Some(PRIMARY), Some(STANDBY)]).await;
        assert_eq!(got, Ok(1));
        assert_eq!(closed, vec![0], "the primary kept as fallback is closed");
        let l = list(2, TargetSessionAttrs::PreferStandby);
        let (got, closed) = pick(&l, &[Some(PRIMARY), None]).await;
        assert_eq!((got, closed), (Ok(0), vec![]));
    }

    #[test]
    fn roles_accepted_per_target() {
        use TargetSessionAttrs as T;
        let read_only_primary = ServerRole {
            read_only: true,
            in_recovery: false,
        };
        for (t, primary, standby, ro_primary) in [
            (T::Any, true, true, true),
            (T::ReadWrite, true, false, false),
            (T::ReadOnly, false, true, true),
            (T::Primary, true, false, true),
            (T::Standby, false, true, false),
        ] {
            assert_eq!(t.accepts(PRIMARY), primary, "{t}");
            assert_eq!(t.accepts(STANDBY), standby, "{t}");
            assert_eq!(t.accepts(read_only_primary), ro_primary, "{t}");
        }
    }
}
