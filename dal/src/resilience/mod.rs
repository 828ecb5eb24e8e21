//! Resilience: retries with backoff, circuit breakers, and detection of stale connections.
//!
//! Layers around the one statement path ([`Connection`](crate::Connection)'s executor), from
//! the outside in:
//!
//! 1. **Circuit breaker** (one per pool, [`BreakerConfig`]): opens when a large enough share
//!    of enough recent calls failed; while open, acquisitions and statements are rejected at
//!    once with [`Error::CircuitOpen`]. Failures are infrastructure failures: connection
//!    errors, acquisition/creation timeouts, and query timeouts whose cancellation the server
//!    did not confirm. A call is recorded once, after its retries: a read that succeeded on a
//!    fresh connection after its first one was found dead is a success.
//! 2. **Retry** ([`RetryPolicy`], [`classify`]): transient failures of statements outside a
//!    transaction are run again after a jittered exponential delay. Conflicts the server rolled
//!    back (deadlock, serialization failure, lock wait timeout, SQLite BUSY/LOCKED) are retried
//!    for any statement; a lost connection is retried for reads and for statements that never
//!    left the client, on a fresh connection.
//! 3. **Timeout with server-side cancel**: in the executor itself (see `Connection`).
//!
//! Stale connections: after a pool has seen a connection loss, replacement connections are
//! checked with a ping before use, and so is the first write of each checkout for
//! [`STALE_SUSPICION`], so that a write is not sent into a connection that died while idle.

mod breaker;
mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, CircuitStatus, Transition, DEFAULT_FAILURE_RATE,
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_FAILURE_WINDOW, DEFAULT_HALF_OPEN_CALLS,
    DEFAULT_MAX_OPEN_DURATION, DEFAULT_MINIMUM_CALLS, DEFAULT_OPEN_DURATION,
    DEFAULT_SUCCESS_THRESHOLD,
};
pub use retry::{
    classify, Backoff, FailureClass, RetryPolicy, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY,
    DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BUDGET,
};

use crate::error::{Error, Result, TimeoutKind};
use crate::sql::Backend;

/// After a pool saw a connection loss, how long the first write of each checkout is preceded
/// by a ping (a connection that died while idle is then replaced before the write is sent).
pub const STALE_SUSPICION: Duration = Duration::from_secs(60);

/// Per-pool resilience state: the breaker and when a connection was last lost.
#[derive(Debug)]
pub(crate) struct PoolResilience {
    pub breaker: CircuitBreaker,
    /// Milliseconds since `epoch` of the last connection loss, plus one (0: never).
    last_loss: AtomicU64,
    /// Connection losses noted so far.
    losses: AtomicU64,
    epoch: tokio::time::Instant,
}

impl PoolResilience {
    pub(crate) fn new(config: &crate::config::DatabaseConfig) -> Self {
        PoolResilience {
            breaker: CircuitBreaker::new(*config.get_circuit_breaker()),
            last_loss: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
        }
    }

    /// A connection of this pool was found lost.
    pub(crate) fn note_loss(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_loss.store(ms, Ordering::Relaxed);
        self.losses.fetch_add(1, Ordering::AcqRel);
    }

    /// Connection losses noted so far: a connection proven alive when this was `n` has not
    /// been proven alive since a later loss while it is still `n`.
    pub(crate) fn losses(&self) -> u64 {
        self.losses.load(Ordering::Acquire)
    }

    /// True when a write on a connection last proven alive at loss count `verified` (`None`:
    /// not on this checkout) should be preceded by a ping.
    pub(crate) fn should_validate(&self, verified: Option<u64>) -> bool {
        self.suspects_stale() && verified != Some(self.losses())
    }

    /// True within [`STALE_SUSPICION`] of a connection loss: idle connections may be dead too.
    pub(crate) fn suspects_stale(&self) -> bool {
        match self.last_loss.load(Ordering::Relaxed) {
            0 => false,
            ms => {
                let since = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1));
                since <= STALE_SUSPICION
            }
        }
    }
}

/// What the resilience layer needs from the pool it guards — its resilience state, its name,
/// its backend, and where breaker transitions are counted — so that this module does not
/// depend on the pool (the pool implements it and holds a [`PoolResilience`]; the dependency
/// runs one way, `pool → resilience`). Implemented for `Arc<G>` too, so callers holding an
/// `Arc` of the pool pass it as it is.
pub(crate) trait Guarded {
    /// The breaker and connection-loss tracking of the guarded pool.
    fn resilience(&self) -> &PoolResilience;
    /// The pool's alias, for logs and [`Error::CircuitOpen`].
    fn alias(&self) -> &str;
    /// The pool's backend, to classify its errors.
    fn backend(&self) -> Backend;
    /// Counts a breaker state change in the pool's metrics (it is logged here).
    fn breaker_transition(&self, to: BreakerState);
}

impl<G: Guarded + ?Sized> Guarded for Arc<G> {
    fn resilience(&self) -> &PoolResilience {
        (**self).resilience()
    }
    fn alias(&self) -> &str {
        (**self).alias()
    }
    fn backend(&self) -> Backend {
        (**self).backend()
    }
    fn breaker_transition(&self, to: BreakerState) {
        (**self).breaker_transition(to);
    }
}

/// Lets a call in, or rejects it at once while the pool's breaker is open.
pub(crate) fn admit(pool: &impl Guarded) -> Result<()> {
    match pool.resilience().breaker.try_acquire() {
        Ok(None) => Ok(()),
        Ok(Some(t)) => {
            report(pool, t);
            Ok(())
        }
        Err(retry_in) => Err(Error::CircuitOpen {
            pool: pool.alias().to_owned(),
            retry_in,
        }),
    }
}

/// True when `e` says the infrastructure failed (and so counts for the breaker).
pub(crate) fn is_infrastructure(backend: Backend, e: &Error) -> bool {
    e.is_infrastructure() || classify(backend, e) == FailureClass::ConnectionLost
}

/// Records the final outcome of one call (after its retries) with the pool's breaker.
/// `connection_usable`: the connection the call ended on is still fit for use — after a query
/// timeout, that means the server confirmed the cancellation (see [`record_error`]).
pub(crate) fn record<T>(pool: &impl Guarded, result: &Result<T>, connection_usable: bool) {
    match result {
        Ok(_) => {
            if let Some(t) = pool.resilience().breaker.on_success() {
                report(pool, t);
            }
        }
        Err(e) => record_error(pool, e, connection_usable),
    }
}

/// Records the end of a call that never got as far as the server (its connection was known
/// lost and could not be replaced here): no signal, but a half-open breaker's trial place is
/// given up.
pub(crate) fn record_ignored(pool: &impl Guarded) {
    pool.resilience().breaker.on_ignored();
}

/// Records a failed acquisition. Waiting in vain for a connection while every connection of
/// the pool is lent out (`all_lent`) is back-pressure, not an infrastructure failure, and is
/// not counted.
pub(crate) fn record_acquire_failure(pool: &impl Guarded, e: &Error, all_lent: bool) {
    if e.timeout_kind() == Some(TimeoutKind::Acquire) && all_lent {
        pool.resilience().breaker.on_ignored();
        return;
    }
    record_error(pool, e, false);
}

/// What one failed call says about the server:
///
/// - a connection error or a timeout is a failure — except a query timeout whose
///   cancellation the server confirmed (the connection is still usable): the statement was
///   slow, the server answered;
/// - a database error is a success: the server answered, whatever it thought of the statement;
/// - anything raised before reaching the server (bad input, closed pool, open circuit) says
///   nothing.
fn record_error(pool: &impl Guarded, e: &Error, connection_usable: bool) {
    let state = pool.resilience();
    let backend = pool.backend();
    let answered_cancel = e.timeout_kind() == Some(TimeoutKind::Query) && connection_usable;
    let transition = if is_infrastructure(backend, e) && !answered_cancel {
        if classify(backend, e) == FailureClass::ConnectionLost {
            state.note_loss();
        }
        state.breaker.on_failure()
    } else if answered_cancel || matches!(e, Error::Database { .. }) {
        state.breaker.on_success()
    } else {
        state.breaker.on_ignored();
        None
    };
    if let Some(t) = transition {
        report(pool, t);
    }
}

/// Logs a breaker state change and has the pool count it in its metrics.
fn report(pool: &impl Guarded, t: Transition) {
    tracing::warn!(
        target: "dal::circuit_breaker",
        alias = %pool.alias(),
        backend = pool.backend().as_str(),
        from = t.from.as_str(),
        to = t.to.as_str(),
        "circuit breaker of pool {} changed from {} to {}",
        pool.alias(),
        t.from,
        t.to
    );
    pool.breaker_transition(t.to);
}

/// What a statement does, as far as retrying it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatementKind {
    /// Reads only: running it twice is harmless.
    Read,
    /// May change data (or do anything else we cannot tell).
    Write,
    /// Changes the state of the session (`SET`, `USE`, temporary tables, …): the connection
    /// is bound to this session from then on and is never silently replaced.
    Session,
    /// Begins, ends or marks a transaction.
    Transaction {
        /// `COMMIT`, `END`, `ROLLBACK` (not `ROLLBACK TO`), `ABORT`.
        ends: bool,
    },
}

/// Classifies a statement by its keywords (a simple check, erring towards `Write`): a
/// statement that starts with `SELECT`, `WITH`, `SHOW`, `EXPLAIN`, `VALUES`, `TABLE`,
/// `DESCRIBE` or `DESC` and contains none of `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `INTO`,
/// `CREATE`, `DROP`, `ALTER`, `TRUNCATE` outside quotes and comments is a read. Functions with
/// side effects called from a `SELECT` are not detected.
pub(crate) fn statement_kind(sql: &str) -> StatementKind {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return StatementKind::Write;
    };
    let is = |w: &str, list: &[&str]| list.iter().any(|k| w.eq_ignore_ascii_case(k));
    if is(
        first,
        &[
            "SELECT", "WITH", "SHOW", "EXPLAIN", "VALUES", "TABLE", "DESCRIBE", "DESC",
        ],
    ) {
        const WRITES: &[&str] = &[
            "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "CREATE", "DROP", "ALTER", "TRUNCATE",
        ];
        return if words.any(|w| is(w, WRITES)) {
            StatementKind::Write
        } else {
            StatementKind::Read
        };
    }
    if is(first, &["COMMIT", "END", "ABORT"]) {
        return StatementKind::Transaction { ends: true };
    }
    if is(first, &["ROLLBACK"]) {
        let to = words.any(|w| is(w, &["TO"]));
        return StatementKind::Transaction { ends: !to };
    }
    if is(first, &["BEGIN", "START", "SAVEPOINT", "RELEASE", "XA"]) {
        return StatementKind::Transaction { ends: false };
    }
    if is(
        first,
        &[
            "SET",
            "USE",
            "PREPARE",
            "DEALLOCATE",
            "LISTEN",
            "UNLISTEN",
            "LOCK",
            "UNLOCK",
            "DECLARE",
            "PRAGMA",
            "ATTACH",
            "DETACH",
            "RESET",
            "DISCARD",
        ],
    ) {
        return StatementKind::Session;
    }
    if is(first, &["CREATE"]) {
        let second = words.next().unwrap_or("");
        let third = words.next().unwrap_or("");
        if is(second, &["TEMP", "TEMPORARY"])
            || (is(second, &["GLOBAL", "LOCAL"]) && is(third, &["TEMP", "TEMPORARY"]))
        {
            return StatementKind::Session;
        }
    }
    StatementKind::Write
}

/// The words of a statement outside string literals, quoted identifiers and comments.
struct Words<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Words { sql, pos: 0 }
    }

    /// Moves past a quoted section starting at `self.pos` (quote doubled to escape it).
    fn skip_quoted(&mut self, quote: u8) {
        let b = self.sql.as_bytes();
        self.pos += 1;
        while self.pos < b.len() {
            if b[self.pos] == quote {
                if b.get(self.pos + 1) == Some(&quote) {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                return;
            }
            if b[self.pos] == b'\\' && quote == b'\'' {
                self.pos += 1;
            }
            self.pos += 1;
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.sql.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        while self.pos < b.len() {
            let c = b[self.pos];
            match c {
                b'\'' | b'"' | b'`' => self.skip_quoted(c),
                b'-' if b.get(self.pos + 1) == Some(&b'-') => {
                    while self.pos < b.len() && b[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if b.get(self.pos + 1) == Some(&b'*') => {
                    self.pos += 2;
                    while self.pos < b.len()
                        && !(b[self.pos] == b'*' && b.get(self.pos + 1) == Some(&b'/'))
                    {
                        self.pos += 1;
                    }
                    self.pos = (self.pos + 2).min(b.len());
                }
                c if word(c) => {
                    let start = self.pos;
                    while self.pos < b.len() && word(b[self.pos]) {
                        self.pos += 1;
                    }
                    return Some(&self.sql[start..self.pos]);
                }
                _ => self.pos += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::StatementKind::*;
    use super::*;

    #[test]
    fn statements_are_classified_by_their_keywords() {
        for sql in [
            "SELECT 1",
            "  select * from t where name = 'delete me'",
            "(SELECT 1) UNION (SELECT 2)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SHOW TABLES",
            "EXPLAIN SELECT 1",
            "VALUES (1), (2)",
            "/* INSERT */ SELECT \"update\" FROM t -- DELETE\n",
            "SELECT `into` FROM t",
            "SELECT pg_sleep(20)",
        ] {
            assert_eq!(statement_kind(sql), Read, "{sql}");
        }
        for sql in [
            "INSERT INTO t VALUES (1)",
            "update t set a = 1",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * INTO new_t FROM t",
            "SELECT * FROM t FOR UPDATE",
            "EXPLAIN ANALYZE DELETE FROM t",
            "CREATE TABLE t (a INT)",
            "DROP TABLE t",
            "CALL p()",
            "",
            "   ",
        ] {
            assert_eq!(statement_kind(sql), Write, "{sql}");
        }
        for sql in [
            "SET search_path = x",
            "USE other",
            "CREATE TEMPORARY TABLE t (a INT)",
            "create temp table t (a int)",
            "CREATE GLOBAL TEMPORARY TABLE t (a INT)",
            "PRAGMA foreign_keys = ON",
            "LOCK TABLES t WRITE",
        ] {
            assert_eq!(statement_kind(sql), Session, "{sql}");
        }
        assert_eq!(statement_kind("BEGIN"), Transaction { ends: false });
        assert_eq!(
            statement_kind("START TRANSACTION"),
            Transaction { ends: false }
        );
        assert_eq!(statement_kind("commit"), Transaction { ends: true });
        assert_eq!(statement_kind("ROLLBACK"), Transaction { ends: true });
        assert_eq!(
            statement_kind("ROLLBACK TO SAVEPOINT a"),
            Transaction { ends: false }
        );
        assert_eq!(statement_kind("SAVEPOINT a"), Transaction { ends: false });
    }
}
