//! Unit tests of the portable SQL translator.

use super::*;

mod literals;

const PG: Backend = Backend::Postgres;
const MY: Backend = Backend::MySql;
const LITE: Backend = Backend::Sqlite;

fn native(sql: &str, backend: Backend) -> String {
    match to_native(sql, backend) {
        Ok(s) => s,
        Err(e) => panic!("{backend}: translating {sql:?} failed: {e}"),
    }
}

fn count(sql: &str, backend: Backend) -> usize {
    match translate(sql, backend) {
        Ok(t) => t.placeholders,
        Err(e) => panic!("{backend}: translating {sql:?} failed: {e}"),
    }
}

/// Asserts an `Error::Sql` whose message contains `needle`, at `position`.
fn sql_err(sql: &str, backend: Backend, needle: &str, position: usize) {
    match translate(sql, backend) {
        Err(Error::Sql {
            message,
            position: p,
        }) => {
            assert!(
                message.contains(needle),
                "{backend}: {sql:?}: message {message:?} lacks {needle:?}"
            );
            assert_eq!(p, position, "{backend}: {sql:?}: position ({message})");
        }
        other => panic!("{backend}: {sql:?}: expected SQL error, got {other:?}"),
    }
}

/// Asserts the statement is unchanged on every backend.
fn unchanged_everywhere(sql: &str) {
    for b in Backend::ALL {
        assert_eq!(native(sql, b), sql, "{b}");
    }
}

#[test]
fn backend_names() {
    assert_eq!(PG.as_str(), "postgres");
    assert_eq!(MY.as_str(), "mysql");
    assert_eq!(LITE.as_str(), "sqlite");
    assert_eq!(MY.to_string(), "mysql");
}

#[test]
fn brief_example() {
    let sql = "SELECT [a] FROM [t] WHERE [b] = ? AND [c] = ?";
    assert_eq!(
        native(sql, PG),
        r#"SELECT "a" FROM "t" WHERE "b" = $1 AND "c" = $2"#
    );
    assert_eq!(
        native(sql, MY),
        "SELECT `a` FROM `t` WHERE `b` = ? AND `c` = ?"
    );
    assert_eq!(
        native(sql, LITE),
        r#"SELECT "a" FROM "t" WHERE "b" = ? AND "c" = ?"#
    );
    for b in Backend::ALL {
        assert_eq!(count(sql, b), 2);
    }
    assert_eq!(
        translate(sql, PG).ok(),
        Some(Translated {
            sql: r#"SELECT "a" FROM "t" WHERE "b" = $1 AND "c" = $2"#.to_string(),
            placeholders: 2,
            kind: StatementKind::Read,
            operation: Some("SELECT"),
        })
    );
}

#[test]
fn empty_and_plain() {
    for b in Backend::ALL {
        assert_eq!(
            translate("", b).ok(),
            Some(Translated {
                sql: String::new(),
                placeholders: 0,
                kind: StatementKind::Write,
                operation: None,
            })
        );
    }
    unchanged_everywhere("SELECT 1");
    unchanged_everywhere("SELECT a, b FROM t WHERE x > 3 ORDER BY 1 DESC");
    unchanged_everywhere("SELECT 'héllo wörld ✓', 名前 FROM テーブル");
}

#[test]
fn bracket_identifiers() {
    assert_eq!(native("[order details]", PG), r#""order details""#);
    assert_eq!(native("[order details]", MY), "`order details`");
    assert_eq!(native("[_x$1]", PG), r#""_x$1""#);
    assert_eq!(native("[a1_b]", LITE), r#""a1_b""#);
    assert_eq!(native("[a ]", PG), r#""a ""#);
    assert_eq!(native("[名前]", PG), "\"名前\"");
    assert_eq!(native("[Ärger]", MY), "`Ärger`");
    assert_eq!(native("[s].[t]", PG), r#""s"."t""#);
    assert_eq!(native("a[i]", PG), r#"a"i""#, "the rule is literal");
    assert_eq!(native("[a]]", PG), r#""a"]"#);
    assert_eq!(native("[a]]]", PG), r#""a"]"#);
}

#[test]
fn non_identifier_brackets_are_left_alone() {
    for s in [
        "arr[1]",
        "ARRAY[1,2]",
        "[ a]",
        "[]",
        "[a-b]",
        "[1a]",
        "x[1:2]",
        "]",
        "a]",
        "[a\tb]",
        "[$a]",
        "[a.b]",
    ] {
        unchanged_everywhere(s);
    }
    // Without a `]` they are left alone on PostgreSQL and MySQL; SQLite would take the rest of
    // the statement as an unterminated identifier.
    for s in ["[a", "[", "[a\u{e9}", "x [a ? 'b'"] {
        assert_eq!(native(s, PG), s.replace('?', "$1"));
        assert_eq!(native(s, MY), s);
        sql_err(
            s,
            LITE,
            "unterminated [...] quoted identifier",
            s.find('[').unwrap_or(0),
        );
    }
    assert_eq!(native("arr[?]", PG), "arr[$1]");
    assert_eq!(native("ARRAY[?, ?]", PG), "ARRAY[$1, $2]");
    assert_eq!(native("ARRAY[?, ?]", MY), "ARRAY[?, ?]");
    assert_eq!(native("[1]['x]']", PG), "[1]['x]']");
    assert_eq!(native("[1]['x]']", MY), "[1]['x]']");
}

/// SQLite's own `[…]` identifiers: nothing inside is special, not even a quote.
#[test]
fn sqlite_native_bracket_identifiers() {
    // The reported statement: the `'` inside the brackets must not start a string literal.
    let sql = "SELECT [x'] FROM t WHERE a = 'lit ? [b]'";
    assert_eq!(native(sql, LITE), sql);
    assert_eq!(count(sql, LITE), 0);
    // On PostgreSQL and MySQL `[` is no quote: the `'` does start a literal, so the last `'`
    // is unterminated, exactly as the server would see it.
    sql_err(sql, PG, "unterminated string literal", 39);
    sql_err(sql, MY, "unterminated string literal", 39);
    // With one more quote each backend lexes it its own way: there the literal runs from the
    // bracket, on SQLite it is the one after `=`.
    let sql = "SELECT [x'] FROM t WHERE a = 'lit ? [b]' -- '\n AND ?";
    assert_eq!(
        native(sql, PG),
        "SELECT [x'] FROM t WHERE a = 'lit $1 \"b\"' -- '\n AND $2"
    );
    assert_eq!(
        native(sql, MY),
        "SELECT [x'] FROM t WHERE a = 'lit ? `b`' -- '\n AND ?"
    );
    assert_eq!(native(sql, LITE), sql);
    assert_eq!(count(sql, LITE), 1);
    // Every quote, comment and placeholder character is plain inside.
    for ident in [
        "[\"]", "[`]", "[']", "[--]", "[/*]", "[#]", "[?]", "[??]", "[$1]", "[a-b]", "[a[b]",
        "[ ?]",
    ] {
        let sql = format!("SELECT {ident}, 'k ? [c]', ? FROM t");
        assert_eq!(native(&sql, LITE), sql, "{ident}");
        assert_eq!(count(&sql, LITE), 1, "{ident}");
    }
    // A portable identifier is still translated; after it the scan goes on as usual.
    assert_eq!(native("[a]'[b] ?'[c]", LITE), "\"a\"'[b] ?'\"c\"");
    // The `[` written for `[[` opens an identifier as well: its body is not scanned and its
    // closing bracket may be written `]]` (like the portable escape) or `]`.
    assert_eq!(native("[[x']] = 'lit ? [b]'", LITE), "[x'] = 'lit ? [b]'");
    assert_eq!(count("[[x']] = 'lit ? [b]'", LITE), 0);
    assert_eq!(native("[[x'] = ?", LITE), "[x'] = ?");
    assert_eq!(count("[[x'] = ?", LITE), 1);
    // The identifier ends at the first `]`, as SQLite reads it: `a [b`, then a placeholder.
    assert_eq!(native("[[a [b] ?]]", LITE), "[a [b] ?]");
    assert_eq!(count("[[a [b] ?]]", LITE), 1);
    assert_eq!(native("[[[a]", LITE), "[[a]");
    assert_eq!(
        native("[[x' ?] , 'lit ? [b]' -- '", LITE),
        "[x' ?] , 'lit ? [b]' -- '"
    );
    // Text after the identifier is scanned again; a doubled `]` after the closing one is the
    // escape.
    assert_eq!(native("[a-b]]] [c]", LITE), "[a-b]] \"c\"");
    sql_err(
        "SELECT [[x' ?",
        LITE,
        "unterminated [...] quoted identifier",
        7,
    );
    sql_err(
        "SELECT [x' ?",
        LITE,
        "unterminated [...] quoted identifier",
        7,
    );
}

#[test]
fn doubled_brackets() {
    for b in Backend::ALL {
        assert_eq!(native("[[a]]", b), "[a]", "{b}");
        assert_eq!(native("]]", b), "]", "{b}");
        assert_eq!(native("x[[1]]", b), "x[1]", "{b}");
    }
    for b in [PG, MY] {
        assert_eq!(native("[[", b), "[", "{b}");
        assert_eq!(native("[[[", b), "[[", "{b}");
    }
    // On SQLite the `[` written for `[[` opens a bracket-quoted identifier, which needs a `]`.
    sql_err("[[", LITE, "unterminated [...] quoted identifier", 0);
    sql_err("[[[", LITE, "unterminated [...] quoted identifier", 0);
    assert_eq!(native("[[[a]", PG), r#"["a""#);
    assert_eq!(native("arr[[[i]]]", MY), "arr[`i`]");
    assert_eq!(native("'[[x]]' [[x]]", PG), "'[[x]]' [x]");
}

#[test]
fn question_marks() {
    assert_eq!(native("? ? ?", PG), "$1 $2 $3");
    assert_eq!(native("?,?", PG), "$1,$2");
    assert_eq!(native("? ? ?", MY), "? ? ?");
    assert_eq!(native("? ? ?", LITE), "? ? ?");
    assert_eq!(count("? ? ?", PG), 3);
    assert_eq!(count("? ? ?", MY), 3);
    assert_eq!(count("? ? ?", LITE), 3);
    let many: String = (0..12).map(|_| "?,").collect();
    let out = native(&many, PG);
    assert!(out.ends_with("$11,$12,"), "{out}");
    assert_eq!(count(&many, PG), 12);
}

#[test]
fn doubled_question_mark() {
    assert_eq!(native("data ?? 'k'", PG), "data ? 'k'");
    assert_eq!(count("data ?? 'k'", PG), 0);
    assert_eq!(
        native("d ??| ARRAY['a'] AND x = ?", PG),
        "d ?| ARRAY['a'] AND x = $1"
    );
    assert_eq!(count("d ??& ?", PG), 1);
    assert_eq!(native("???", PG), "?$1");
    // On MySQL and SQLite the single `?` that is output is a parameter for the server.
    assert_eq!(native("a ?? b", MY), "a ? b");
    assert_eq!(count("a ?? b", MY), 1);
    assert_eq!(native("a ?? b", LITE), "a ? b");
    assert_eq!(count("a ?? b", LITE), 1);
    // `??` on PostgreSQL does not count as a portable placeholder, so it mixes with `$n`.
    assert_eq!(native("$1 ?? $2", PG), "$1 ? $2");
    assert_eq!(count("$1 ?? $2", PG), 2);
}

/// The `$n` written for `?` on PostgreSQL must stay one token: `?9` was written as `$19`.
#[test]
fn postgres_placeholders_do_not_merge() {
    // A digit after `?`: an error at the `?`, on PostgreSQL only.
    sql_err("SELECT ?9", PG, "? followed by a digit", 7);
    sql_err("a = ?1", PG, "PostgreSQL has no ?NNN placeholders", 4);
    sql_err("a = ? AND b = ?12", PG, "? followed by a digit", 14);
    sql_err("x ???0", PG, "? followed by a digit", 4);
    assert_eq!(native("SELECT ?9", MY), "SELECT ?9");
    assert_eq!(count("SELECT ?9", LITE), 9);
    // `??` before a digit is the escaped operator, and a space keeps a number apart.
    assert_eq!(native("a ??9", PG), "a ?9");
    assert_eq!(native("SELECT ? 9", PG), "SELECT $1 9");
    assert_eq!(native("?.5", PG), "$1.5");
    assert_eq!(native("?::int4", PG), "$1::int4");
    // A word before: `a$1` would be one identifier.
    assert_eq!(native("a?", PG), "a $1");
    assert_eq!(native("x=a?+b", PG), "x=a $1+b");
    assert_eq!(native("a1? , b$? , é?", PG), "a1 $1 , b$ $2 , é $3");
    assert_eq!(count("a1? , b$? , é?", PG), 3);
    // A `$` before: `$$1` would open a dollar quote.
    assert_eq!(native("$? x -- $$", PG), "$ $1 x -- $$");
    assert_eq!(native("$$ a $$?", PG), "$$ a $$ $1");
    // A word after: `$1abc` is trailing junk for PostgreSQL 15+.
    assert_eq!(native("SELECT ?abc", PG), "SELECT $1 abc");
    assert_eq!(native("?_x, ?é, ?E'\\n'", PG), "$1 _x, $2 é, $3 E'\\n'");
    assert_eq!(native("(?a?)", PG), "($1 a $2)");
    // Nothing else gets a space.
    assert_eq!(
        native("(?),?::int,1?,?$,[a]?[b]", PG),
        "($1),$2::int,1$3,$4$,\"a\"$5\"b\""
    );
    // MySQL and SQLite keep the `?` as written.
    assert_eq!(native("a?b", MY), "a?b");
    assert_eq!(native("a?b", LITE), "a?b");
}

#[test]
fn postgres_native_placeholders() {
    assert_eq!(native("SELECT $1, $2", PG), "SELECT $1, $2");
    assert_eq!(count("SELECT $1, $2", PG), 2);
    assert_eq!(count("SELECT $3, $1", PG), 3);
    assert_eq!(count("SELECT $12", PG), 12);
    assert_eq!(count("SELECT $1, $1", PG), 1);
    assert_eq!(count("a$1 + b$2$3", PG), 0, "part of identifiers");
    assert_eq!(native("a$1 = ?", PG), "a$1 = $1");
    assert_eq!(count("($1)", PG), 1);
    assert_eq!(count("x=$1::int", PG), 1);
    assert_eq!(count("'$1' \"$2\" -- $3\n/* $4 */", PG), 0);
    // On MySQL and SQLite `$` means nothing.
    assert_eq!(count("SELECT $1, $2", MY), 0);
    assert_eq!(count("SELECT $1, $2", LITE), 0);
    assert_eq!(native("SELECT $1 = ?", MY), "SELECT $1 = ?");
    assert_eq!(count("SELECT $1 = ?", LITE), 1);
}

#[test]
fn mixing_placeholders_is_an_error() {
    sql_err("SELECT $1, ?", PG, "mix", 11);
    sql_err("SELECT ?, $1", PG, "mix", 10);
    sql_err("SELECT ?, $2 FROM t", PG, "placeholders", 10);
    sql_err(
        "SELECT $99999999999999999999999999999",
        PG,
        "placeholder number too large",
        7,
    );
}

#[test]
fn sqlite_numbered_placeholders() {
    assert_eq!(count("?1, ?2", LITE), 2);
    assert_eq!(count("?5", LITE), 5);
    assert_eq!(count("?2, ?", LITE), 3);
    assert_eq!(count("?, ?1", LITE), 1);
    assert_eq!(count("?3, ?1", LITE), 3);
    assert_eq!(native("?3, ?1", LITE), "?3, ?1");
    assert_eq!(count(":a, @b, $c, %s", LITE), 0);
    assert_eq!(native(":a, @b, $c", LITE), ":a, @b, $c");
    // MySQL has no `?NNN`: the digits are just digits.
    assert_eq!(count("?5", MY), 1);
    assert_eq!(count("%s, %s", PG), 0);
    assert_eq!(native("%s, %s", PG), "%s, %s");
}

/// MySQL drivers' `format` placeholders: `%s` is a native placeholder on MySQL only, outside
/// literals, quoted identifiers and comments, written as `?`.
#[test]
fn mysql_percent_s_placeholders() {
    assert_eq!(count("SELECT %s, %s", MY), 2);
    assert_eq!(
        native("SELECT [a] FROM [t] WHERE [b] = %s AND c=%s", MY),
        "SELECT `a` FROM `t` WHERE `b` = ? AND c=?"
    );
    assert_eq!(native("(%s)", MY), "(?)");
    assert_eq!(native("a%s", MY), "a?");
    assert_eq!(count("SELECT %s;", MY), 1);
    // Not a placeholder: in literals, quoted identifiers and comments...
    for sql in [
        "SELECT '%s', \"%s\", `%s` FROM t",
        "SELECT 1 -- %s",
        "SELECT 1 # %s",
        "SELECT 1 /* %s */",
        "SELECT DATE_FORMAT(d, '%s') FROM t",
        "SELECT 'it\\'s %s' FROM t",
    ] {
        assert_eq!(count(sql, MY), 0, "{sql}");
        assert_eq!(native(sql, MY), sql);
    }
    // ... nor when the `s` starts a longer word (the `%` operator and a column), nor `%S`.
    for sql in [
        "a %sum", "a%s1", "a%s_x", "a%s$", "a % s", "a %S", "a %% s", "%",
    ] {
        assert_eq!(count(sql, MY), 0, "{sql}");
        assert_eq!(native(sql, MY), sql);
    }
    // In a MySQL executable comment it is SQL.
    assert_eq!(native("SELECT /*! %s */", MY), "SELECT /*! ? */");
    assert_eq!(count("SELECT /*! %s */", MY), 1);
    // `??` (a literal `?` in portable SQL) is still a `?` on MySQL, counted as before.
    assert_eq!(count("SELECT %s, ??", MY), 2);
    // On PostgreSQL and SQLite `%s` is the `%` operator and a column `s`.
    for b in [PG, LITE] {
        assert!(native("SELECT a %s FROM t WHERE b = ?", b).contains("%s"));
        assert_eq!(count("SELECT a%s FROM t", b), 0);
    }
    assert_eq!(
        native("SELECT a%s FROM t WHERE b = ?", PG),
        "SELECT a%s FROM t WHERE b = $1"
    );
}

#[test]
fn mysql_mixing_percent_s_and_question_mark_is_an_error() {
    sql_err("SELECT %s, ?", MY, "mix", 11);
    sql_err("SELECT ?, %s", MY, "mix", 10);
    // The error is found before anything reaches the server, with the parameter check.
    assert!(translate("SELECT ? -- %s", MY).is_ok());
    assert!(translate("SELECT '?', %s", MY).is_ok());
}

#[test]
fn unicode_everywhere() {
    let sql = "SELECT [ñame], '✓ [x] ?', \"ü\" FROM [表] WHERE [名前] = ? -- ✓\n AND é = ?";
    assert_eq!(
        native(sql, PG),
        "SELECT \"ñame\", '✓ [x] ?', \"ü\" FROM \"表\" WHERE \"名前\" = $1 -- ✓\n AND é = $2"
    );
    assert_eq!(count(sql, MY), 2);
    // Multi-byte characters around special bytes.
    // `é` is a word character: the placeholder is kept apart from it.
    assert_eq!(native("é?é[a]é", PG), "é $1 é\"a\"é");
    assert_eq!(native("(?)é[a]é", PG), "($1)é\"a\"é");
    assert_eq!(native("[é]]é", MY), "`é`]é");
    assert_eq!(native("é$1", PG), "é$1");
    assert_eq!(count("é$1", PG), 0, "é$1 is one identifier");
    assert_eq!(native("Ée'x'", PG), "Ée'x'");
}

#[test]
fn quote_ident_per_backend() {
    assert_eq!(quote_ident("a", PG).ok().as_deref(), Some(r#""a""#));
    assert_eq!(quote_ident(r#"a"b"#, PG).ok().as_deref(), Some(r#""a""b""#));
    assert_eq!(
        quote_ident(r#"a"b"#, LITE).ok().as_deref(),
        Some(r#""a""b""#)
    );
    assert_eq!(quote_ident("a`b", MY).ok().as_deref(), Some("`a``b`"));
    assert_eq!(quote_ident(r#"a"b"#, MY).ok().as_deref(), Some(r#"`a"b`"#));
    assert_eq!(quote_ident("a`b", PG).ok().as_deref(), Some("\"a`b\""));
    assert_eq!(quote_ident("名 前", PG).ok().as_deref(), Some("\"名 前\""));
    assert_eq!(quote_ident("\"", PG).ok().as_deref(), Some("\"\"\"\""));
    for b in Backend::ALL {
        assert!(matches!(
            quote_ident("", b),
            Err(Error::Sql { position: 0, .. })
        ));
        assert!(matches!(
            quote_ident("ab\0c", b),
            Err(Error::Sql { position: 2, .. })
        ));
    }
}

#[test]
fn realistic_statements() {
    let sql = "INSERT INTO [users] ([id], [name], [meta]) VALUES (?, ?, ?::jsonb) \
               ON CONFLICT ([id]) DO UPDATE SET [name] = EXCLUDED.[name] \
               RETURNING [id], [meta] ?? 'tag'";
    assert_eq!(
        native(sql, PG),
        "INSERT INTO \"users\" (\"id\", \"name\", \"meta\") VALUES ($1, $2, $3::jsonb) \
         ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\" \
         RETURNING \"id\", \"meta\" ? 'tag'"
    );
    assert_eq!(count(sql, PG), 3);
    let sql = "SELECT * FROM [t] WHERE [a] LIKE ? ESCAPE '\\' AND [b] IN (?, ?) LIMIT ?";
    assert_eq!(
        native(sql, LITE),
        "SELECT * FROM \"t\" WHERE \"a\" LIKE ? ESCAPE '\\' AND \"b\" IN (?, ?) LIMIT ?"
    );
    assert_eq!(count(sql, LITE), 4);
    // On MySQL `'\'` is unterminated (the backslash escapes the quote).
    assert!(translate(sql, MY).is_err());
}

#[test]
fn never_panics_on_awkward_inputs() {
    let inputs = [
        "\0",
        "?",
        "??",
        "???",
        "$",
        "$$",
        "$1",
        "$a",
        "$a$",
        "[",
        "]",
        "[[",
        "]]",
        "-",
        "--",
        "/",
        "/*",
        "*/",
        "#",
        "'",
        "\"",
        "`",
        "E'",
        "e",
        "\\",
        "é",
        "[é",
        "$é",
        "?é",
        "\u{10FFFF}",
        "[\u{0301}]",
        "$9999999999999999999999",
        "?99999999999999999999999",
    ];
    for b in Backend::ALL {
        for s in inputs {
            let _ = translate(s, b);
        }
    }
}
