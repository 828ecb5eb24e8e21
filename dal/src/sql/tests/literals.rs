//! Unit tests of the translator: what is never rewritten (string literals, quoted identifiers,
//! comments, dollar quotes, executable comments) and the errors for unterminated ones.

use super::*;

#[test]
fn string_literals() {
    let sql = "SELECT 'a [b] ? ?? $1 -- /* #', [c] FROM t WHERE x = ?";
    assert_eq!(
        native(sql, PG),
        r#"SELECT 'a [b] ? ?? $1 -- /* #', "c" FROM t WHERE x = $1"#
    );
    assert_eq!(count(sql, PG), 1);
    assert_eq!(
        native(sql, MY),
        "SELECT 'a [b] ? ?? $1 -- /* #', `c` FROM t WHERE x = ?"
    );
    assert_eq!(count(sql, LITE), 1);
    // `''` escapes.
    let sql = "'it''s [x] ?' [y] ?";
    assert_eq!(native(sql, PG), r#"'it''s [x] ?' "y" $1"#);
    assert_eq!(native(sql, LITE), r#"'it''s [x] ?' "y" ?"#);
    assert_eq!(native("''''[a]", PG), r#"''''"a""#);
    assert_eq!(native("'' [a]", MY), "'' `a`");
}

#[test]
fn backslashes() {
    // Standard strings on PostgreSQL and SQLite: a backslash escapes nothing.
    assert_eq!(native(r"'a\' [x] ?", PG), r#"'a\' "x" $1"#);
    assert_eq!(native(r"'a\' [x] ?", LITE), r#"'a\' "x" ?"#);
    // MySQL: backslash escapes in single and double quotes.
    assert_eq!(native(r"'a\' [x] ?' [y]", MY), r"'a\' [x] ?' `y`");
    assert_eq!(native(r#""a\" [x] ?" [y]"#, MY), r#""a\" [x] ?" `y`"#);
    assert_eq!(count(r"'a\\' = ?", MY), 1);
    assert_eq!(count(r#""it""s ?" ?"#, MY), 1);
    sql_err(r"SELECT 'a\'", MY, "unterminated string literal", 7);
}

#[test]
fn postgres_e_strings() {
    assert_eq!(native(r"E'a\' [x] ?' [y] ?", PG), r#"E'a\' [x] ?' "y" $1"#);
    assert_eq!(native(r"e'a\' [x] ?' [y] ?", PG), r#"e'a\' [x] ?' "y" $1"#);
    assert_eq!(native(r"(E'\\' || ?)", PG), r"(E'\\' || $1)");
    assert_eq!(native(r"E'it''s' ?", PG), r"E'it''s' $1");
    // The E must start a word.
    assert_eq!(native(r"DATE'a\' ?", PG), r"DATE'a\' $1");
    assert_eq!(native(r"typE'a\' ?", PG), r"typE'a\' $1");
    assert_eq!(native(r"x_e'a\' ?", PG), r"x_e'a\' $1");
    // On the other backends E'..' is just an identifier followed by a string.
    assert_eq!(native(r"E'a\' ?", LITE), r"E'a\' ?");
    assert_eq!(count(r"E'a\' ?", LITE), 1);
    sql_err(r"SELECT E'a\'", PG, "unterminated E'...' string literal", 7);
    assert_eq!(count(r"SELECT E'a\' ?", LITE), 1);
    sql_err(r"SELECT E'a", LITE, "unterminated string literal", 8);
}

#[test]
fn double_quotes() {
    // Quoted identifiers on PostgreSQL and SQLite.
    let sql = r#"SELECT "a ""[b]"" ?" , ?"#;
    assert_eq!(native(sql, PG), r#"SELECT "a ""[b]"" ?" , $1"#);
    assert_eq!(count(sql, LITE), 1);
    // String literal on MySQL.
    assert_eq!(native(r#""[a] ?" [b]"#, MY), r#""[a] ?" `b`"#);
    sql_err(r#"SELECT "abc"#, PG, "unterminated quoted identifier", 7);
    sql_err(r#"SELECT "abc"#, LITE, "unterminated quoted identifier", 7);
    sql_err(r#"SELECT "abc"#, MY, "unterminated string literal", 7);
    sql_err(r#"SELECT "a"""#, PG, "unterminated quoted identifier", 7);
}

#[test]
fn backticks() {
    let sql = "SELECT `a ``[b]`` ?`, ?";
    assert_eq!(native(sql, MY), sql);
    assert_eq!(count(sql, MY), 1);
    assert_eq!(native(sql, LITE), sql);
    assert_eq!(count(sql, LITE), 1);
    // A backtick is an ordinary character on PostgreSQL.
    assert_eq!(native("`[a] ?`", PG), r#"`"a" $1`"#);
    sql_err("SELECT `abc", MY, "unterminated quoted identifier", 7);
    sql_err("SELECT `abc", LITE, "unterminated quoted identifier", 7);
    assert!(translate("SELECT `abc", PG).is_ok());
}

#[test]
fn line_comments() {
    let sql = "SELECT ? -- [a] ? '\n, [b]";
    assert_eq!(native(sql, PG), "SELECT $1 -- [a] ? '\n, \"b\"");
    assert_eq!(native(sql, MY), "SELECT ? -- [a] ? '\n, `b`");
    assert_eq!(count(sql, LITE), 1);
    // May end at the end of input.
    for b in Backend::ALL {
        assert_eq!(native("SELECT 1 -- [a] ? '", b), "SELECT 1 -- [a] ? '");
        assert_eq!(native("SELECT 1 --", b), "SELECT 1 --");
        assert_eq!(count("SELECT 1 --?", b), 0);
    }
    // A lone minus is an operator.
    assert_eq!(native("a - ? - [b]", PG), "a - $1 - \"b\"");
    // PostgreSQL also ends a line comment at a carriage return.
    assert_eq!(native("-- x\r?", PG), "-- x\r$1");
    assert_eq!(count("-- x\r?", LITE), 0);
    assert_eq!(native("-- x\r\n?", LITE), "-- x\r\n?");
    assert_eq!(count("-- x\r\n?", LITE), 1);
}

#[test]
fn double_dash_is_a_comment_on_every_backend() {
    assert_eq!(count("SELECT 1--?", MY), 0);
    assert_eq!(count("SELECT 1--?", PG), 0);
    assert_eq!(count("SELECT 1-- ?", MY), 0);
    assert_eq!(count("SELECT 1--\t?", MY), 0);
    assert_eq!(count("SELECT 1--\n?", MY), 1);
    assert_eq!(count("SELECT 1--?", LITE), 0);
    assert_eq!(count("SELECT 1--", MY), 0);
}

#[test]
fn hash_comments() {
    let sql = "SELECT ? # [a] ? '\n, [b]";
    assert_eq!(native(sql, MY), "SELECT ? # [a] ? '\n, `b`");
    assert_eq!(count(sql, MY), 1);
    assert_eq!(native("SELECT 1 # '", MY), "SELECT 1 # '");
    // `#` is an operator on PostgreSQL and not special on SQLite.
    assert_eq!(native("SELECT 5 # ? , [b]", PG), "SELECT 5 # $1 , \"b\"");
    assert_eq!(count("SELECT 5 # ?", LITE), 1);
}

#[test]
fn block_comments() {
    let sql = "SELECT /* [a] ? ' \" ` $$ */ [b], ?";
    assert_eq!(native(sql, PG), "SELECT /* [a] ? ' \" ` $$ */ \"b\", $1");
    assert_eq!(native(sql, MY), "SELECT /* [a] ? ' \" ` $$ */ `b`, ?");
    assert_eq!(count(sql, LITE), 1);
    assert_eq!(native("/**/?", PG), "/**/$1");
    assert_eq!(native("/*/ ? */?", PG), "/*/ ? */$1");
    assert_eq!(native("a/b*?", PG), "a/b*$1");
    assert_eq!(native("*/ ?", PG), "*/ $1");
    sql_err("SELECT 1 /* abc", PG, "unterminated block comment", 9);
    sql_err("SELECT 1 /* abc *", MY, "unterminated block comment", 9);
    sql_err("SELECT 1 /*", LITE, "unterminated block comment", 9);
    sql_err("/*/", PG, "unterminated block comment", 0);
}

/// MySQL runs the content of `/*! … */` (and MariaDB's `/*M! … */`): it is SQL, not a comment.
#[test]
fn mysql_executable_comments() {
    let sql = "SELECT /*! [a] = ? AND */ [b] = ?";
    assert_eq!(native(sql, MY), "SELECT /*! `a` = ? AND */ `b` = ?");
    assert_eq!(count(sql, MY), 2);
    // Versioned, MariaDB and versioned MariaDB forms; version numbers are copied.
    for open in [
        "/*!",
        "/*!50100",
        "/*!80000 ",
        "/*!100100",
        "/*M!",
        "/*M!100500 ",
    ] {
        let sql = format!("SELECT 1 {open} , [c] = ? */ , ?");
        assert_eq!(
            native(&sql, MY),
            format!("SELECT 1 {open} , `c` = ? */ , ?"),
            "{open}"
        );
        assert_eq!(count(&sql, MY), 2, "{open}");
        // On the other backends it is a plain comment.
        assert_eq!(
            native(&sql, PG),
            format!("SELECT 1 {open} , [c] = ? */ , $1")
        );
        assert_eq!(count(&sql, LITE), 1, "{open}");
    }
    // The escapes apply inside.
    assert_eq!(native("/*! a ?? [[1]] */", MY), "/*! a ? [1] */");
    assert_eq!(count("/*! a ?? [[1]] */", MY), 1);
    // Literals, quoted identifiers and comments inside are respected; a `*/` in them does
    // not end the executable comment.
    let sql = "/*! 'x */ ? [d]' \"*/ ?\" `*/ ?` /* ? [e] */ # */ ?\n -- */ ?\n ? */ ?";
    assert_eq!(native(sql, MY), sql);
    assert_eq!(count(sql, MY), 2);
    assert_eq!(
        native("/*!50100 'it\\'s ?' */ ?", MY),
        "/*!50100 'it\\'s ?' */ ?"
    );
    assert_eq!(count("/*!50100 'it\\'s ?' */ ?", MY), 1);
    // A `/*!` inside starts another one; the first `*/` ends both, as in MySQL.
    let sql = "/*! ? /*! ? */ ? */";
    assert_eq!(count(sql, MY), 3);
    // Not executable: `/*`, `/* !`, `/*m!`, optimizer hints.
    for sql in [
        "/* ! ? [a] */",
        "/*m! ? [a] */",
        "/*+ ? [a] */",
        "/**! ? */",
    ] {
        assert_eq!(native(sql, MY), sql);
        assert_eq!(count(sql, MY), 0, "{sql}");
    }
    // `*/` outside an executable comment is just `*` and `/`.
    assert_eq!(native("a */ ?", MY), "a */ ?");
    assert_eq!(count("/*!*/ ?", MY), 1);
    // Unterminated, also when the `*/` is inside a literal or a line comment.
    sql_err("SELECT /*! ? ", MY, "unterminated executable comment", 7);
    sql_err(
        "SELECT /*M!100000 ?",
        MY,
        "unterminated executable comment",
        7,
    );
    sql_err("SELECT /*! '*/'", MY, "unterminated executable comment", 7);
    sql_err("SELECT /*! # */", MY, "unterminated executable comment", 7);
    sql_err("/*! '*/", MY, "unterminated string literal", 4);
}

#[test]
fn nested_block_comments() {
    let sql = "/* a /* b */ [c] ? */ [d] ?";
    // PostgreSQL nests.
    assert_eq!(native(sql, PG), "/* a /* b */ [c] ? */ \"d\" $1");
    assert_eq!(count(sql, PG), 1);
    // MySQL and SQLite do not: the comment ends at the first `*/`.
    assert_eq!(native(sql, MY), "/* a /* b */ `c` ? */ `d` ?");
    assert_eq!(count(sql, MY), 2);
    assert_eq!(count(sql, LITE), 2);
    sql_err("x /* a /* b */ c", PG, "unterminated block comment", 2);
    assert_eq!(native("x /* a /* b */ c", LITE), "x /* a /* b */ c");
}

#[test]
fn dollar_quotes() {
    let sql = "SELECT $$ [a] ? ' \" -- /* $$, [b], ?";
    assert_eq!(native(sql, PG), "SELECT $$ [a] ? ' \" -- /* $$, \"b\", $1");
    let sql = "DO $body$ BEGIN x := '[a]' || ?; $$ $b$ END $body$; ?";
    assert_eq!(
        native(sql, PG),
        "DO $body$ BEGIN x := '[a]' || ?; $$ $b$ END $body$; $1"
    );
    assert_eq!(count(sql, PG), 1);
    assert_eq!(native("$_x1$?$_x1$ ?", PG), "$_x1$?$_x1$ $1");
    assert_eq!(native("$é$?$é$ ?", PG), "$é$?$é$ $1");
    // A `$` right before the placeholder is kept apart from it (see
    // `postgres_placeholders_do_not_merge`).
    assert_eq!(native("$$$$?", PG), "$$$$ $1");
    // Not dollar quotes: a `$word` without closing `$`, a `$` inside an identifier.
    assert_eq!(native("$a ?", PG), "$a $1");
    assert_eq!(native("a$b$ ? $b", PG), "a$b$ $1 $b");
    sql_err("a$b$ ? $b$", PG, "unterminated dollar-quoted string $b$", 7);
    assert_eq!(native("$ ?", PG), "$ $1");
    assert_eq!(native("?$", PG), "$1$");
    // `$1$` is a placeholder followed by `$`, not a tag.
    assert_eq!(count("$1$ x $1$", PG), 1);
    sql_err(
        "SELECT $$abc",
        PG,
        "unterminated dollar-quoted string $$",
        7,
    );
    sql_err("SELECT $tag$abc $ta$", PG, "$tag$", 7);
    // Dollar quotes are PostgreSQL only.
    assert_eq!(native("$$ [a] ?", MY), "$$ `a` ?");
    assert_eq!(count("$$ ? $$", LITE), 1);
}

#[test]
fn unterminated_single_quotes() {
    for b in Backend::ALL {
        sql_err("SELECT 'abc", b, "unterminated string literal", 7);
        sql_err("'", b, "unterminated string literal", 0);
        sql_err("SELECT 'a''", b, "unterminated string literal", 7);
        sql_err("SELECT 'ok', 'é", b, "unterminated string literal", 13);
    }
}

#[test]
fn error_display_names_position() {
    let err = translate("SELECT 'abc", PG).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("invalid SQL: unterminated string literal (at byte 7)")
    );
    assert_eq!(
        translate("'", PG).err().map(|e| e.category()),
        Some("input")
    );
}
