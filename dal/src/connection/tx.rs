//! Transactions: `begin`/`commit`/`rollback`, what a statement's kind does to the
//! transaction and session state (the tracking half of stage 2, breaker), and settling what an
//! interrupted or abandoned call left behind before anything else is sent.
//!
//! `BEGIN` enters the pipeline at stage 3 (retry: it changes nothing, so it is sent again on a
//! fresh connection when the first was found lost); `COMMIT` and `ROLLBACK` enter at stage 4
//! (timeout), so that ending a transaction is never refused by an open breaker nor retried.

use super::exec::Op;
use super::{Connection, QueryOptions};
use crate::error::{Error, Result};
use crate::resilience;
use crate::sql::StatementKind;

impl Connection {
    /// Begins a transaction. Nested `begin_transaction` is an error: use
    /// `#[auto_transaction]` or check [`in_transaction`](Self::in_transaction) to join one.
    pub async fn begin_transaction(&mut self) -> Result<()> {
        self.settle_abandoned().await?;
        if self.in_tx {
            return Err(Error::Transaction(
                "a transaction is already open on this connection".into(),
            ));
        }
        let begin = crate::backend::dialect(self.backend()).begin();
        // BEGIN changes nothing: when it fails on a lost connection it is sent again on a
        // fresh one, so a transaction never starts on a connection that died while idle.
        resilience::admit(&self.pool)?;
        self.call(Op::Control(begin), &QueryOptions::default(), true, true)
            .await?;
        self.in_tx = true;
        self.tx_wrote = false;
        self.schema_changed_in_tx = false;
        Ok(())
    }

    /// Commits the open transaction. If the commit fails, the transaction is rolled back and
    /// the error returned; either way no transaction is open afterwards.
    pub async fn commit_transaction(&mut self) -> Result<()> {
        self.settle_abandoned().await?;
        if !self.in_tx {
            return Err(Error::Transaction(
                "commit without an open transaction".into(),
            ));
        }
        let result = self.control("COMMIT").await;
        // Noted whatever the outcome: a failed commit may still have been applied.
        self.note_commit();
        if result.is_err() && !self.broken {
            let _ = self.control("ROLLBACK").await;
        }
        self.in_tx = false;
        self.schema_changed_in_tx = false;
        result
    }

    /// Rolls back the open transaction; without one, does nothing.
    pub async fn rollback_transaction(&mut self) -> Result<()> {
        self.settle(true).await?;
        if !self.in_tx {
            return Ok(());
        }
        let result = self.control("ROLLBACK").await;
        // Noted too: on MySQL, DDL in the transaction committed it implicitly.
        self.note_commit();
        self.in_tx = false;
        self.schema_changed_in_tx = false;
        if result.is_err() {
            // We cannot be sure the server rolled back: never lend this connection again.
            self.broken = true;
        }
        result
    }

    /// MySQL ended the caller's transaction implicitly (DDL): open a new one so that what
    /// follows is still atomic and the caller's commit/rollback still applies to it.
    pub(crate) async fn reopen_transaction_after_ddl(&mut self) -> Result<()> {
        if self.in_tx {
            self.control("START TRANSACTION").await?;
        }
        Ok(())
    }

    /// A transaction control statement, straight to stage 4 (timeout) of the pipeline.
    async fn control(&mut self, sql: &'static str) -> Result<()> {
        self.exec(Op::Control(sql), &QueryOptions::default())
            .await
            .map(|_| ())
    }

    /// What a statement of `kind` does to this connection's state: users may write
    /// `BEGIN`/`START TRANSACTION` and `COMMIT`/`END`/`ROLLBACK` (not `ROLLBACK TO`)/`ABORT` as
    /// plain statements, and a session change binds the connection to its session.
    pub(super) fn track(&mut self, kind: StatementKind) {
        track_transaction(kind, &mut self.in_tx);
        if kind == StatementKind::Session {
            self.session_bound = true;
        }
    }

    /// Before anything is sent: deals with what an earlier, interrupted call left behind.
    ///
    /// * A statement future dropped mid-flight (`busy` still set: a timeout or `select!` around
    ///   a call that owns `&mut` this connection) left the protocol in an unknown state: the
    ///   statement is cancelled on the server and the physical connection closed (the server
    ///   rolls back what it had open), then a fresh one is taken from the pool. If a
    ///   transaction of the caller was open, it is gone: that is an error, except for a
    ///   rollback, which has then happened.
    /// * A transaction abandoned by a panicking or cancelled `#[auto_transaction]` is rolled back.
    pub(super) async fn settle_abandoned(&mut self) -> Result<()> {
        self.settle(false).await
    }

    async fn settle(&mut self, rolling_back: bool) -> Result<()> {
        // A stream dropped mid-statement parked the physical connection: take it back.
        if self.draining.is_some() {
            self.finish_draining().await;
        }
        self.check_reclaimed()?;
        if self.busy {
            return self.settle_interrupted(rolling_back).await;
        }
        if self.take_abandoned() && self.in_tx {
            self.in_tx = false;
            self.schema_changed_in_tx = false;
            if let Err(e) = self
                .exec(Op::Control("ROLLBACK"), &QueryOptions::default())
                .await
            {
                self.broken = true;
                return Err(e);
            }
        }
        Ok(())
    }

    /// A statement future was dropped mid-flight: cancel it on the server, close the physical
    /// connection and take a fresh one (see [`settle_abandoned`](Self::settle_abandoned)).
    async fn settle_interrupted(&mut self, rolling_back: bool) -> Result<()> {
        self.busy = false;
        if let Some(old) = self.conn.take() {
            let token = old.raw.cancel_token();
            self.pool.release_broken(old);
            tokio::spawn(async move {
                let _ = token.cancel().await;
            });
        }
        let abandoned = self.take_abandoned();
        let lost_tx = self.in_tx && !abandoned;
        self.in_tx = false;
        self.schema_changed_in_tx = false;
        self.broken = true;
        if self.session_bound {
            return Err(Error::Connection(
                "an earlier statement was cancelled mid-flight, so the connection was closed, and with it the session state set on it; get a new connection".into(),
            ));
        }
        self.replace().await?;
        if lost_tx && !rolling_back {
            return Err(Error::Transaction(
                "an earlier statement of this transaction was cancelled mid-flight: the connection was closed and the transaction rolled back".into(),
            ));
        }
        Ok(())
    }
}

/// Keeps `in_tx` right when users write transaction control as plain statements.
fn track_transaction(kind: StatementKind, in_tx: &mut bool) {
    if kind.begins_transaction() {
        *in_tx = true;
    } else if kind.ends_transaction() {
        *in_tx = false;
    }
}

#[cfg(test)]
mod tests {
    use super::track_transaction;
    use crate::sql::{translate, Backend};

    fn track(sql: &str, backend: Backend, in_tx: &mut bool) {
        match translate(sql, backend) {
            Ok(t) => track_transaction(t.kind, in_tx),
            Err(e) => panic!("{backend}: translating {sql:?} failed: {e}"),
        }
    }

    #[test]
    fn plain_transaction_statements_update_the_flag() {
        for b in Backend::ALL {
            let mut t = false;
            track("  begin", b, &mut t);
            assert!(t, "{b}");
            track("ROLLBACK TO SAVEPOINT a", b, &mut t);
            assert!(t, "{b}");
            track("commit", b, &mut t);
            assert!(!t, "{b}");
            track("START TRANSACTION", b, &mut t);
            assert!(t, "{b}");
            track("SELECT 1", b, &mut t);
            assert!(t, "{b}");
            // Found past comments too, and `ROLLBACK` ends the transaction.
            track("/* undo */ ROLLBACK", b, &mut t);
            assert!(!t, "{b}");
            track("-- go\nSTART TRANSACTION READ WRITE", b, &mut t);
            assert!(t, "{b}");
            track("END", b, &mut t);
            assert!(!t, "{b}");
            // Neither begins nor ends one.
            track("START SLAVE", b, &mut t);
            assert!(!t, "{b}");
            track("SAVEPOINT a", b, &mut t);
            assert!(!t, "{b}");
        }
    }
}
