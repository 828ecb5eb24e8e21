//! What a statement does, told from its keywords while the translator reads it: the statement
//! pipeline's first stage (translate) hands this to the next ones (breaker admission, retry,
//! transaction and session tracking) so that nothing scans the text again.

/// What a statement does, as far as admitting, retrying and tracking it is concerned; see
/// [`Translated::kind`](super::Translated::kind).
///
/// Told from the statement's keywords (a simple check, erring towards `Write`): a statement
/// that starts with `SELECT`, `WITH`, `SHOW`, `EXPLAIN`, `VALUES`, `TABLE`, `DESCRIBE` or
/// `DESC` and contains none of `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `INTO`, `CREATE`, `DROP`,
/// `ALTER`, `TRUNCATE` outside quotes and comments is a read. Functions with side effects
/// called from a `SELECT` are not detected.
///
/// Quotes and comments are those of the backend the statement is translated for (see
/// [the module documentation](super)): a MySQL `#` comment or a PostgreSQL dollar-quoted
/// string hides its words, a MySQL executable comment (`/*! … */`) does not (its version
/// number is not a word). A word is a run of identifier characters, numbers included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// Reads only: running it twice is harmless.
    Read,
    /// May change data (or do anything else we cannot tell).
    Write,
    /// Changes the state of the session: starts with `SET`, `USE`, `PREPARE`, `DEALLOCATE`,
    /// `LISTEN`, `UNLISTEN`, `LOCK`, `UNLOCK`, `DECLARE`, `PRAGMA`, `ATTACH`, `DETACH`,
    /// `RESET` or `DISCARD`, or creates a temporary table (`CREATE TEMP`/`TEMPORARY`,
    /// `CREATE GLOBAL`/`LOCAL TEMP`/`TEMPORARY`). A connection is bound to its session from
    /// then on and never silently replaced.
    Session,
    /// Begins, ends or marks a transaction: starts with `BEGIN`, `START`, `SAVEPOINT`,
    /// `RELEASE`, `XA`, `COMMIT`, `END`, `ROLLBACK` or `ABORT`.
    Transaction {
        /// `BEGIN`, `START TRANSACTION`.
        begins: bool,
        /// `COMMIT`, `END`, `ROLLBACK` (not `ROLLBACK TO`), `ABORT`.
        ends: bool,
    },
}

impl StatementKind {
    /// True for [`StatementKind::Read`].
    pub fn is_read(self) -> bool {
        self == StatementKind::Read
    }

    /// True when the statement opens a transaction (`BEGIN`, `START TRANSACTION`).
    pub fn begins_transaction(self) -> bool {
        matches!(self, StatementKind::Transaction { begins: true, .. })
    }

    /// True when the statement ends the open transaction (`COMMIT`, `END`, `ROLLBACK` but
    /// not `ROLLBACK TO`, `ABORT`).
    pub fn ends_transaction(self) -> bool {
        matches!(self, StatementKind::Transaction { ends: true, .. })
    }
}

/// First keywords of a read.
const READS: &[&str] = &[
    "SELECT", "WITH", "SHOW", "EXPLAIN", "VALUES", "TABLE", "DESCRIBE", "DESC",
];
/// Keywords that make a statement starting like a read a write.
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "CREATE", "DROP", "ALTER", "TRUNCATE",
];
/// First keywords of a statement that ends the transaction (`ROLLBACK` aside).
const ENDS: &[&str] = &["COMMIT", "END", "ABORT"];
/// First keywords of other transaction control.
const TRANSACTION: &[&str] = &["BEGIN", "START", "SAVEPOINT", "RELEASE", "XA"];
/// First keywords of a session change.
const SESSION: &[&str] = &[
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
];

/// First keywords reported as the statement's operation name
/// ([`Translated::operation`](super::Translated::operation)), in upper case.
const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "REPLACE",
    "UPSERT",
    "WITH",
    "VALUES",
    "TABLE",
    "SHOW",
    "EXPLAIN",
    "DESCRIBE",
    "DESC",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "RENAME",
    "COMMENT",
    "GRANT",
    "REVOKE",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "XA",
    "SET",
    "USE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "LOCK",
    "UNLOCK",
    "DECLARE",
    "FETCH",
    "MOVE",
    "CLOSE",
    "PRAGMA",
    "ATTACH",
    "DETACH",
    "RESET",
    "DISCARD",
    "CALL",
    "DO",
    "ANALYZE",
    "ANALYSE",
    "VACUUM",
    "REINDEX",
    "CLUSTER",
    "COPY",
    "REFRESH",
    "LOAD",
    "HANDLER",
    "KILL",
    "OPTIMIZE",
    "CHECKPOINT",
    "CHECK",
    "REPAIR",
    "FLUSH",
    "PURGE",
    "INSTALL",
    "UNINSTALL",
    "IMPORT",
];

/// `word` is one of `list` (ASCII case-insensitive).
fn is(word: &str, list: &[&str]) -> bool {
    list.iter().any(|k| word.eq_ignore_ascii_case(k))
}

/// Collects the words the translator meets outside literals, quoted identifiers and
/// comments: the translator hands it every byte of an unquoted word, in order.
pub(super) struct Classifier<'a> {
    src: &'a str,
    /// The word being read: its start and end (exclusive) in `src`.
    word: Option<(usize, usize)>,
    /// The first three words (empty while there are fewer).
    head: [&'a str; 3],
    /// Words seen so far.
    seen: usize,
    /// A word after the first is one of [`WRITES`].
    writes: bool,
    /// A word after the first is `TO`.
    to: bool,
}

impl<'a> Classifier<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Classifier {
            src,
            word: None,
            head: [""; 3],
            seen: 0,
            writes: false,
            to: false,
        }
    }

    /// The byte at `at` belongs to an unquoted word (identifier, keyword or number); it
    /// continues the current word when it directly follows it.
    pub(super) fn word_byte(&mut self, at: usize) {
        match self.word {
            Some((start, end)) if end == at => self.word = Some((start, at + 1)),
            _ => {
                self.end_word();
                self.word = Some((at, at + 1));
            }
        }
    }

    fn end_word(&mut self) {
        let Some((start, end)) = self.word.take() else {
            return;
        };
        let src = self.src;
        if let Some(w) = src.get(start..end) {
            self.word(w);
        }
    }

    fn word(&mut self, w: &'a str) {
        if let Some(slot) = self.head.get_mut(self.seen) {
            *slot = w;
        }
        if self.seen > 0 {
            self.writes |= is(w, WRITES);
            self.to |= w.eq_ignore_ascii_case("TO");
        }
        self.seen = self.seen.saturating_add(1);
    }

    /// The kind of the whole statement, once the translator has read all of it, and its
    /// operation name: its first keyword, upper case, when it is one of [`OPERATIONS`].
    pub(super) fn finish(mut self) -> (StatementKind, Option<&'static str>) {
        self.end_word();
        let first = self.head[0];
        let operation = OPERATIONS
            .iter()
            .find(|k| first.eq_ignore_ascii_case(k))
            .copied();
        (self.kind(), operation)
    }

    fn kind(&self) -> StatementKind {
        let [first, second, third] = self.head;
        if is(first, READS) {
            return if self.writes {
                StatementKind::Write
            } else {
                StatementKind::Read
            };
        }
        if is(first, ENDS) || (is(first, &["ROLLBACK"]) && !self.to) {
            return StatementKind::Transaction {
                begins: false,
                ends: true,
            };
        }
        if is(first, &["ROLLBACK"]) || is(first, TRANSACTION) {
            let begins =
                is(first, &["BEGIN"]) || (is(first, &["START"]) && is(second, &["TRANSACTION"]));
            return StatementKind::Transaction {
                begins,
                ends: false,
            };
        }
        let temporary = is(first, &["CREATE"])
            && (is(second, &["TEMP", "TEMPORARY"])
                || (is(second, &["GLOBAL", "LOCAL"]) && is(third, &["TEMP", "TEMPORARY"])));
        if is(first, SESSION) || temporary {
            return StatementKind::Session;
        }
        StatementKind::Write
    }
}

#[cfg(test)]
mod tests {
    use super::StatementKind::{self, *};
    use crate::sql::{translate, Backend};

    fn kind(sql: &str, backend: Backend) -> StatementKind {
        match translate(sql, backend) {
            Ok(t) => t.kind,
            Err(e) => panic!("{backend}: translating {sql:?} failed: {e}"),
        }
    }

    fn operation(sql: &str, backend: Backend) -> Option<&'static str> {
        match translate(sql, backend) {
            Ok(t) => t.operation,
            Err(e) => panic!("{backend}: translating {sql:?} failed: {e}"),
        }
    }

    /// The operation name is the first keyword as the backend lexes the statement, upper
    /// case; a first word that is not a known statement keyword gives none.
    #[test]
    fn operation_is_the_first_keyword() {
        for b in Backend::ALL {
            for (sql, op) in [
                ("SELECT 1", Some("SELECT")),
                ("  select * from t", Some("SELECT")),
                (
                    "/* INSERT */ -- DELETE\n update t set a = 1",
                    Some("UPDATE"),
                ),
                (
                    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                    Some("WITH"),
                ),
                ("insert into t values (?)", Some("INSERT")),
                ("Begin", Some("BEGIN")),
                ("(SELECT 1) UNION (SELECT 2)", Some("SELECT")),
                ("PRAGMA foreign_keys = ON", Some("PRAGMA")),
                ("", None),
                ("1 SELECT", None),
                ("[select] FROM t", None),
                ("selectx 1", None),
                ("'SELECT'", None),
            ] {
                assert_eq!(operation(sql, b), op, "{b}: {sql}");
            }
        }
        // Each backend's comments: `#` hides a word on MySQL only.
        assert_eq!(
            operation("# DELETE\nSELECT 1", Backend::MySql),
            Some("SELECT")
        );
        assert_eq!(
            operation("/*!40101 SET NAMES utf8mb4 */", Backend::MySql),
            Some("SET")
        );
        assert_eq!(
            operation("/*!40101 SET NAMES utf8mb4 */", Backend::Postgres),
            None
        );
    }

    /// Asserts the kind of `sql` on every backend.
    fn everywhere(sql: &str, expected: StatementKind) {
        for b in Backend::ALL {
            assert_eq!(kind(sql, b), expected, "{b}: {sql}");
        }
    }

    const BEGINS: StatementKind = Transaction {
        begins: true,
        ends: false,
    };
    const ENDS: StatementKind = Transaction {
        begins: false,
        ends: true,
    };
    const MARKS: StatementKind = Transaction {
        begins: false,
        ends: false,
    };

    /// The rules `resilience::statement_kind` had, now told by the translator's pass.
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
            "SELECT pg_sleep(20)",
        ] {
            everywhere(sql, Read);
        }
        // Backticks quote on MySQL and SQLite; on PostgreSQL they are not quotes (and the
        // statement is not valid there), so the word counts and the check errs towards Write.
        assert_eq!(kind("SELECT `into` FROM t", Backend::MySql), Read);
        assert_eq!(kind("SELECT `into` FROM t", Backend::Sqlite), Read);
        assert_eq!(kind("SELECT `into` FROM t", Backend::Postgres), Write);
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
            everywhere(sql, Write);
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
            everywhere(sql, Session);
        }
        everywhere("BEGIN", BEGINS);
        everywhere("START TRANSACTION", BEGINS);
        everywhere("commit", ENDS);
        everywhere("ROLLBACK", ENDS);
        everywhere("ROLLBACK TO SAVEPOINT a", MARKS);
        everywhere("SAVEPOINT a", MARKS);
    }

    #[test]
    fn transaction_control_tells_begin_and_end() {
        for sql in [
            "  begin",
            "BEGIN WORK",
            "BEGIN IMMEDIATE",
            "start transaction read only",
            "START /* c */ TRANSACTION",
            "-- note\nBEGIN",
        ] {
            everywhere(sql, BEGINS);
        }
        for sql in [
            "END",
            "ABORT",
            "COMMIT WORK",
            "rollback work",
            "ROLLBACK AND CHAIN",
        ] {
            everywhere(sql, ENDS);
        }
        for sql in [
            "rollback to a",
            "ROLLBACK WORK TO SAVEPOINT a",
            "RELEASE SAVEPOINT a",
            "START SLAVE",
            "XA START 'x'",
        ] {
            everywhere(sql, MARKS);
        }
        assert!(BEGINS.begins_transaction() && !BEGINS.ends_transaction());
        assert!(ENDS.ends_transaction() && !ENDS.begins_transaction());
        assert!(!MARKS.begins_transaction() && !MARKS.ends_transaction());
        assert!(Read.is_read() && !Write.is_read() && !Read.ends_transaction());
    }

    #[test]
    fn keywords_are_read_with_each_backends_lexical_rules() {
        // Portable quoted identifiers are identifiers, not keywords.
        everywhere("SELECT [into], [update] FROM [t] WHERE [a] = ?", Read);
        everywhere("SELECT 'it''s' AS [delete]", Read);
        // Numbers are words, never keywords.
        everywhere("SELECT 1e10, 0xff, 1into", Read);
        everywhere("1 SELECT", Write);
        // MySQL: `#` comments; executable comments are SQL.
        assert_eq!(kind("SELECT 1 # DELETE", Backend::MySql), Read);
        assert_eq!(kind("SELECT 1 # DELETE", Backend::Postgres), Write);
        assert_eq!(
            kind("SELECT /*! SQL_NO_CACHE */ a FROM t", Backend::MySql),
            Read
        );
        assert_eq!(
            kind("/*!40101 SET NAMES utf8mb4 */", Backend::MySql),
            Session
        );
        assert_eq!(
            kind("/*!40101 SET NAMES utf8mb4 */", Backend::Postgres),
            Write
        );
        assert_eq!(kind("SELECT /*!50100 INTO @x */ 1", Backend::MySql), Write);
        assert_eq!(kind("SELECT /*!50100 INTO @x */ 1", Backend::Sqlite), Read);
        // PostgreSQL: dollar quotes, E-strings, nested comments.
        assert_eq!(kind("SELECT $$ DELETE FROM t $$", Backend::Postgres), Read);
        assert_eq!(kind("SELECT $t$ DROP $t$, $1", Backend::Postgres), Read);
        assert_eq!(kind("SELECT E'it\\'s', 'drop'", Backend::Postgres), Read);
        assert_eq!(
            kind("/* a /* b */ DELETE */ SELECT 1", Backend::Postgres),
            Read
        );
        // MySQL: backslash escapes in strings.
        assert_eq!(
            kind(r#"SELECT "a\" DROP", 'b\' DELETE'"#, Backend::MySql),
            Read
        );
        // SQLite: native bracket-quoted identifiers.
        assert_eq!(kind("SELECT [a-into] FROM t", Backend::Sqlite), Read);
        // Non-ASCII words are words.
        everywhere("SELECT 名前 FROM テーブル", Read);
        everywhere("SELECT ñinto FROM t", Read);
    }
}
