//! Property tests of the portable SQL translator (`dal::sql`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

use dal::sql::{to_native, translate, Backend};
use proptest::prelude::*;

const BACKENDS: [Backend; 3] = [Backend::Postgres, Backend::MySql, Backend::Sqlite];

/// Pieces of SQL that exercise every rule of the translator.
const SQLISH: &[&str] = &[
    "[", "]", "[[", "]]", "[a]", "[a b]", "?", "??", "$", "$1", "$12", "$$", "$q$", "'", "''",
    "\"", "`", "\\", "-", "--", "/", "*", "/*", "*/", "#", "\n", "\r", "E", "e", "E'", "/*!",
    "/*M!", " ", "a", "b", "1", "é", "名", "✓", ":", ",", "(", ")", "\0",
];

fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SQLISH), 0..48).prop_map(|v| v.concat())
}

fn chunks(list: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(list), 0..max).prop_map(|v| v.concat())
}

proptest! {
    // (a) `translate` never panics, whatever the input.
    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        for b in BACKENDS {
            let _ = translate(&s, b);
        }
    }

    #[test]
    fn never_panics_on_sqlish_alphabet(s in "[\\[\\]?$'\"`\\\\\\-/*#\nE ab1é]{0,64}") {
        for b in BACKENDS {
            let _ = translate(&s, b);
        }
    }

    #[test]
    fn never_panics_on_sqlish_tokens(s in sqlish()) {
        for b in BACKENDS {
            if let Ok(t) = translate(&s, b) {
                prop_assert_eq!(to_native(&s, b).ok(), Some(t.sql.clone()));
                // Without brackets or question marks nothing is rewritten.
                if !s.contains(['[', ']', '?']) {
                    prop_assert_eq!(&t.sql, &s);
                }
                // MySQL and SQLite keep every `?`, so only brackets and `??` change the text.
                if b != Backend::Postgres && !s.contains(['[', ']']) && !s.contains("??") {
                    prop_assert_eq!(&t.sql, &s);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Bodies of literals, quoted identifiers and comments are preserved byte-for-byte.

/// Safe everywhere inside any literal or comment body (no quote, backslash, `*`, `/`, `$`,
/// line end).
macro_rules! common {
    ($($extra:expr),* $(,)?) => {
        &[
            "a", "b", "Z", "1", " ", "[", "]", "[x]", "[[", "]]", "?", "??", "-", "#", "E", "é",
            "名", "✓", ",", "(", ")", ":" $(, $extra)*
        ]
    };
}

/// Standard `'…'` (PostgreSQL, SQLite): only `''` ends nothing; backslash is literal.
const STD_SINGLE: &[&str] =
    common!("''", "\"", "`", "\\", "$", "$1", "$$", "*", "/", "/*", "*/", "--", "\n", "\r");
/// `'…'` with backslash escapes (MySQL, PostgreSQL `E'…'`).
const BS_SINGLE: &[&str] =
    common!("''", "\\'", "\\\\", "\\n", "\\\"", "\"", "`", "$", "$1", "$$", "/*", "*/", "--", "\n");
/// MySQL `"…"` string.
const BS_DOUBLE: &[&str] = common!(
    "\"\"", "\\\"", "\\\\", "\\n", "\\'", "'", "`", "$", "$1", "$$", "/*", "*/", "--", "\n"
);
/// `"…"` quoted identifier (PostgreSQL, SQLite).
const DQ_IDENT: &[&str] = common!("\"\"", "'", "`", "\\", "$", "$1", "$$", "/*", "*/", "--", "\n");
/// `` `…` `` quoted identifier (MySQL, SQLite).
const BT_IDENT: &[&str] = common!("``", "'", "\"", "\\", "$", "$1", "$$", "/*", "*/", "--", "\n");
/// `-- …` line comment (no line end).
const LINE: &[&str] = common!("'", "\"", "`", "\\", "$", "$1", "$$", "/*", "*/", "--");
/// `/* … */` comment, not nested: `*` and `/` never meet.
const BLOCK: &[&str] = common!("'", "\"", "`", "\\", "$", "$1", "$$", "--", "* ", "/ ", "\n");
/// PostgreSQL `/* … */` comment: may contain balanced nested comments.
const PG_BLOCK: &[&str] = common!(
    "'",
    "\"",
    "`",
    "\\",
    "$",
    "$1",
    "$$",
    "--",
    "* ",
    "/ ",
    "\n",
    "/* in [x] ? */",
    "/**/"
);
/// `$q$ … $q$`: anything but the tag (there is no `q` in these pieces).
const DOLLAR_Q: &[&str] =
    common!("'", "\"", "`", "\\", "$", "$1", "$$", "$r$", "/*", "*/", "--", "\n", "\r");
/// `$$ … $$`: no `$` at all.
const DOLLAR_EMPTY: &[&str] = common!("'", "\"", "`", "\\", "/*", "*/", "--", "\n");

struct Kind {
    name: &'static str,
    backends: &'static [Backend],
    open: &'static str,
    close: &'static str,
    body: &'static [&'static str],
}

const KINDS: &[Kind] = &[
    Kind {
        name: "standard string",
        backends: &[Backend::Postgres, Backend::Sqlite],
        open: "'",
        close: "'",
        body: STD_SINGLE,
    },
    Kind {
        name: "backslash string",
        backends: &[Backend::MySql],
        open: "'",
        close: "'",
        body: BS_SINGLE,
    },
    Kind {
        name: "E string",
        backends: &[Backend::Postgres],
        open: "E'",
        close: "'",
        body: BS_SINGLE,
    },
    Kind {
        name: "e string",
        backends: &[Backend::Postgres],
        open: "e'",
        close: "'",
        body: BS_SINGLE,
    },
    Kind {
        name: "mysql double-quoted string",
        backends: &[Backend::MySql],
        open: "\"",
        close: "\"",
        body: BS_DOUBLE,
    },
    Kind {
        name: "double-quoted identifier",
        backends: &[Backend::Postgres, Backend::Sqlite],
        open: "\"",
        close: "\"",
        body: DQ_IDENT,
    },
    Kind {
        name: "backtick identifier",
        backends: &[Backend::MySql, Backend::Sqlite],
        open: "`",
        close: "`",
        body: BT_IDENT,
    },
    Kind {
        name: "line comment",
        backends: &[Backend::Postgres, Backend::MySql, Backend::Sqlite],
        open: "-- ",
        close: "\n",
        body: LINE,
    },
    Kind {
        name: "hash comment",
        backends: &[Backend::MySql],
        open: "#",
        close: "\n",
        body: LINE,
    },
    Kind {
        name: "block comment",
        backends: &[Backend::Postgres, Backend::MySql, Backend::Sqlite],
        open: "/*",
        close: "*/",
        body: BLOCK,
    },
    Kind {
        name: "nested block comment",
        backends: &[Backend::Postgres],
        open: "/*",
        close: "*/",
        body: PG_BLOCK,
    },
    Kind {
        name: "tagged dollar quote",
        backends: &[Backend::Postgres],
        open: "$q$",
        close: "$q$",
        body: DOLLAR_Q,
    },
    Kind {
        name: "dollar quote",
        backends: &[Backend::Postgres],
        open: "$$",
        close: "$$",
        body: DOLLAR_EMPTY,
    },
];

fn ident(name: &str, b: Backend) -> String {
    match b {
        Backend::MySql => format!("`{name}`"),
        Backend::Postgres | Backend::Sqlite => format!("\"{name}\""),
    }
}

fn param(n: usize, b: Backend) -> String {
    match b {
        Backend::Postgres => format!("${n}"),
        Backend::MySql | Backend::Sqlite => "?".to_string(),
    }
}

fn kind_and_body() -> impl Strategy<Value = (usize, String)> {
    (0..KINDS.len()).prop_flat_map(|k| (Just(k), chunks(KINDS[k].body, 24)))
}

proptest! {
    #[test]
    fn literal_and_comment_bodies_are_preserved((k, body) in kind_and_body()) {
        let kind = &KINDS[k];
        let token = format!("{}{}{}", kind.open, body, kind.close);
        let sql = format!("SELECT [x] FROM [t] WHERE a = ? AND b = {token} AND [y] = ?");
        for &b in kind.backends {
            let t = translate(&sql, b);
            prop_assert!(t.is_ok(), "{} on {}: {:?} -> {:?}", kind.name, b.as_str(), sql, t);
            let t = t.unwrap();
            let expected = format!(
                "SELECT {} FROM {} WHERE a = {} AND b = {token} AND {} = {}",
                ident("x", b), ident("t", b), param(1, b), ident("y", b), param(2, b)
            );
            prop_assert_eq!(&t.sql, &expected, "{} on {}", kind.name, b.as_str());
            prop_assert!(t.sql.contains(&body));
            prop_assert_eq!(t.placeholders, 2);
        }
    }

    /// An unterminated token is an error pointing at its start.
    #[test]
    fn unterminated_tokens_are_errors((k, body) in kind_and_body()) {
        let kind = &KINDS[k];
        if kind.close == "\n" {
            return Ok(()); // line comments may end at the end of input
        }
        let sql = format!("SELECT [x] = ? AND {}{}", kind.open, body);
        let start = "SELECT [x] = ? AND ".len();
        for &b in kind.backends {
            match translate(&sql, b) {
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(message.contains("unterminated"), "{}", message);
                    let at = format!("(at byte {start})");
                    prop_assert!(message.ends_with(&at), "{} on {}: {}", kind.name, b.as_str(), message);
                }
                Ok(t) => prop_assert!(false, "{} on {}: {:?} -> {:?}", kind.name, b.as_str(), sql, t),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b2) A literal or comment keeps its body whatever comes before it. The statement is made of
// pieces that are complete tokens on the backend (each with its known translation), so each
// backend's own lexing decides what is a piece: e.g. `[x']` is a bracket-quoted identifier on
// SQLite, while on PostgreSQL and MySQL the `'` in it would open a string.

/// A complete piece of a statement: portable text, native text (`$?` stands for the next
/// PostgreSQL placeholder `$k`) and the number of parameters it takes.
type Piece = (&'static str, &'static str, usize);

const PG_PIECES: &[Piece] = &[
    ("a", "a", 0),
    ("1", "1", 0),
    (",", ",", 0),
    ("(", "(", 0),
    (")", ")", 0),
    ("#", "#", 0),
    ("`", "`", 0),
    ("?", "$?", 1),
    ("??", "?", 0),
    ("[a]", "\"a\"", 0),
    ("[a b]", "\"a b\"", 0),
    ("[[a]]", "[a]", 0),
    ("[", "[", 0),
    ("]", "]", 0),
    ("[[", "[", 0),
    ("]]", "]", 0),
    ("arr[?]", "arr[$?]", 1),
    ("arr['x]']", "arr['x]']", 0),
    ("[1]", "[1]", 0),
    ("[a-b]", "[a-b]", 0),
    ("ARRAY[1,2]", "ARRAY[1,2]", 0),
    ("'s ? [b]'", "'s ? [b]'", 0),
    ("''", "''", 0),
    ("E'\\' ? [b]'", "E'\\' ? [b]'", 0),
    ("$$ ' ? [b] $$", "$$ ' ? [b] $$", 0),
    ("$t$ ' ? $$ [b] $t$", "$t$ ' ? $$ [b] $t$", 0),
    ("\"q' ? [b]\"", "\"q' ? [b]\"", 0),
    ("/* ' ? [b] */", "/* ' ? [b] */", 0),
    ("/* /* ' */ ? */", "/* /* ' */ ? */", 0),
    ("-- ' ? [b]\n", "-- ' ? [b]\n", 0),
];

const MY_PIECES: &[Piece] = &[
    ("a", "a", 0),
    ("1", "1", 0),
    (",", ",", 0),
    ("(", "(", 0),
    (")", ")", 0),
    ("$$", "$$", 0),
    ("?", "?", 1),
    ("??", "?", 1),
    ("[a]", "`a`", 0),
    ("[a b]", "`a b`", 0),
    ("[[a]]", "[a]", 0),
    ("[", "[", 0),
    ("]", "]", 0),
    ("[[", "[", 0),
    ("]]", "]", 0),
    ("arr[?]", "arr[?]", 1),
    ("arr['x]']", "arr['x]']", 0),
    ("[1]", "[1]", 0),
    ("[a-b]", "[a-b]", 0),
    ("'s ? [b]'", "'s ? [b]'", 0),
    ("''", "''", 0),
    ("'\\' ? [b]'", "'\\' ? [b]'", 0),
    ("\"q' \\\" ? [b]\"", "\"q' \\\" ? [b]\"", 0),
    ("`q' ? [b]`", "`q' ? [b]`", 0),
    ("/* ' ? [b] */", "/* ' ? [b] */", 0),
    ("-- ' ? [b]\n", "-- ' ? [b]\n", 0),
    ("# ' ? [b]\n", "# ' ? [b]\n", 0),
    // Executable comments: SQL for MySQL.
    ("/*! ? [a] */", "/*! ? `a` */", 1),
    ("/*!50100 '*/' ? */", "/*!50100 '*/' ? */", 1),
    ("/*M! [a] # */\n */", "/*M! `a` # */\n */", 0),
    ("/*+ ? [a] */", "/*+ ? [a] */", 0),
];

const LITE_PIECES: &[Piece] = &[
    ("a", "a", 0),
    ("1", "1", 0),
    (",", ",", 0),
    ("(", "(", 0),
    (")", ")", 0),
    ("$$", "$$", 0),
    ("#", "#", 0),
    ("?", "?", 1),
    ("??", "?", 1),
    ("[a]", "\"a\"", 0),
    ("[a b]", "\"a b\"", 0),
    ("[[a]]", "[a]", 0),
    ("]", "]", 0),
    ("]]", "]", 0),
    ("[x']", "[x']", 0),
    ("[?]", "[?]", 0),
    ("['']", "['']", 0),
    ("[\" ` -- /* #]", "[\" ` -- /* #]", 0),
    ("[a-b]", "[a-b]", 0),
    ("[1]", "[1]", 0),
    ("arr[1]", "arr[1]", 0),
    ("[[x' ?]]", "[x' ?]", 0),
    ("[[x']", "[x']", 0),
    ("'s ? [b]'", "'s ? [b]'", 0),
    ("''", "''", 0),
    ("E'\\'", "E'\\'", 0),
    ("\"q' ? [b]\"", "\"q' ? [b]\"", 0),
    ("`q' ? [b]`", "`q' ? [b]`", 0),
    ("/* ' ? [b] */", "/* ' ? [b] */", 0),
    ("-- ' ? [b]\n", "-- ' ? [b]\n", 0),
];

fn pieces(b: Backend) -> &'static [Piece] {
    match b {
        Backend::Postgres => PG_PIECES,
        Backend::MySql => MY_PIECES,
        Backend::Sqlite => LITE_PIECES,
    }
}

/// Joins the pieces picked by `before` and `after` (indexes into the backend's pieces, taken
/// modulo their number) and `middle` with spaces; returns (portable, expected native,
/// parameters). `middle` is kept verbatim.
fn assemble(
    b: Backend,
    before: &[usize],
    middle: &str,
    after: &[usize],
) -> (String, String, usize) {
    assemble_with(b, before, (middle, middle), after)
}

/// Like [`assemble`], with a middle part given as (portable, expected native).
fn assemble_with(
    b: Backend,
    before: &[usize],
    middle: (&str, &str),
    after: &[usize],
) -> (String, String, usize) {
    let table = pieces(b);
    let mut sql = Vec::new();
    let mut native = Vec::new();
    let mut params = 0;
    let mut push = |(src, out, n): Piece, sql: &mut Vec<String>, native: &mut Vec<String>| {
        let mut out = out.to_string();
        while let Some(at) = out.find("$?") {
            params += 1;
            out.replace_range(at..at + 2, &format!("${params}"));
        }
        if !matches!(b, Backend::Postgres) {
            params += n;
        }
        sql.push(src.to_string());
        native.push(out);
    };
    for &k in before {
        push(table[k % table.len()], &mut sql, &mut native);
    }
    sql.push(middle.0.to_string());
    native.push(middle.1.to_string());
    for &k in after {
        push(table[k % table.len()], &mut sql, &mut native);
    }
    (sql.join(" "), native.join(" "), params)
}

proptest! {
    #[test]
    fn literal_bodies_survive_whatever_precedes_them(
        (k, body) in kind_and_body(),
        before in prop::collection::vec(any::<usize>(), 0..12),
        after in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let kind = &KINDS[k];
        let token = format!("{}{}{}", kind.open, body, kind.close);
        for &b in kind.backends {
            let (sql, expected, params) = assemble(b, &before, &token, &after);
            let t = translate(&sql, b);
            prop_assert!(t.is_ok(), "{} on {}: {:?} -> {:?}", kind.name, b.as_str(), sql, t);
            let t = t.unwrap();
            prop_assert_eq!(&t.sql, &expected, "{} on {}: {:?}", kind.name, b.as_str(), sql);
            prop_assert_eq!(t.placeholders, params, "{} on {}: {:?}", kind.name, b.as_str(), sql);
        }
    }
}

/// Openers of MySQL executable comments (`/*!`, versioned, MariaDB's `/*M!`).
const EXECUTABLE_OPENERS: &[&str] = &[
    "/*!",
    "/*!50100",
    "/*!80000",
    "/*!100500",
    "/*M!",
    "/*M!100500",
];

proptest! {
    /// On MySQL the content of an executable comment is SQL: its pieces translate and count as
    /// they do outside, whatever surrounds the comment.
    #[test]
    fn mysql_executable_comment_content_is_sql(
        opener in prop::sample::select(EXECUTABLE_OPENERS),
        inner in prop::collection::vec(any::<usize>(), 0..10),
        before in prop::collection::vec(any::<usize>(), 0..6),
        after in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let b = Backend::MySql;
        // Any piece but another executable comment (MySQL would end both at the first `*/`).
        let inner: Vec<usize> = inner
            .into_iter()
            .filter(|k| {
                let src = MY_PIECES[k % MY_PIECES.len()].0;
                !EXECUTABLE_OPENERS.iter().any(|o| src.starts_with(o))
            })
            .collect();
        let (inner_sql, inner_native, inner_params) = assemble(b, &inner, "", &[]);
        let comment = format!("{opener} {inner_sql} */");
        let expected_comment = format!("{opener} {inner_native} */");
        let (sql, expected, params) =
            assemble_with(b, &before, (&comment, &expected_comment), &after);
        let t = translate(&sql, b);
        prop_assert!(t.is_ok(), "{:?} -> {:?}", sql, t);
        let t = t.unwrap();
        prop_assert_eq!(&t.sql, &expected, "{:?}", sql);
        prop_assert_eq!(t.placeholders, params + inner_params, "{:?}", sql);
        // Without its `*/` it is an error pointing at the opener.
        let open = format!("{opener} {inner_sql}");
        let (sql, _, _) = assemble_with(b, &before, (&open, &open), &[]);
        let at = sql.rfind(opener).unwrap_or(0);
        match translate(&sql, b) {
            Err(e) => prop_assert!(
                e.to_string().ends_with(&format!("(at byte {at})")),
                "{:?}: {}", sql, e
            ),
            Ok(t) => prop_assert!(false, "{:?} -> {:?}", sql, t),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (c) k `?` placeholders give `placeholders == k` and `$1..$k` in order on PostgreSQL.

/// Filler between placeholders: no `?`, `$`, quote, comment or bracket syntax.
const FILLER: &[&str] = &[
    " ", ", ", " = ", " AND ", "(", ")", "a", "b1", "é", "+", "::int", "\n",
];

/// Placeholders among words, numbers and operators (no quotes, comments or `$`).
const MERGE: &[&str] = &[
    "?", "?", "??", "0", "1", "9", "a", "Z", "_", "é", "名", " ", "\n", "(", ")", ",", "+", ".",
    "::int", "E",
];

proptest! {
    #[test]
    fn placeholders_are_numbered_in_order(
        // Each filler is non-empty: two adjacent `?` would be the `??` escape.
        fillers in prop::collection::vec(
            prop::collection::vec(prop::sample::select(FILLER), 1..4).prop_map(|v| v.concat()),
            0..40,
        ),
    ) {
        let k = fillers.len();
        let mut sql = String::from("SELECT ");
        let mut pg = String::from("SELECT ");
        for (i, f) in fillers.iter().enumerate() {
            sql.push_str(f);
            sql.push('?');
            pg.push_str(f);
            // `$n` is kept apart from a word before it and from a word after it (digits in
            // FILLER only occur inside words).
            let word_before = f.ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let word_after = fillers
                .get(i + 1)
                .is_some_and(|g| g.starts_with(|c: char| c.is_alphabetic() || c == '_'));
            pg.push_str(&format!(
                "{}${}{}",
                if word_before { " " } else { "" },
                i + 1,
                if word_after { " " } else { "" }
            ));
        }
        sql.push_str(" FROM [t]");
        pg.push_str(" FROM \"t\"");
        let t = translate(&sql, Backend::Postgres);
        prop_assert!(t.is_ok(), "{:?}", t);
        let t = t.unwrap();
        prop_assert_eq!(t.placeholders, k);
        prop_assert_eq!(&t.sql, &pg);
        for b in [Backend::MySql, Backend::Sqlite] {
            let t = translate(&sql, b);
            prop_assert!(t.is_ok(), "{:?}", t);
            let t = t.unwrap();
            prop_assert_eq!(t.placeholders, k);
            prop_assert_eq!(t.sql.matches('?').count(), k);
        }
    }

    /// Translated PostgreSQL placeholders are exactly `$1..$n` in order, each one token as
    /// PostgreSQL lexes it: never inside a word, never followed by a digit or a word; only
    /// spaces are added. A `?` directly followed by a digit is an error.
    #[test]
    fn postgres_placeholders_never_merge(s in chunks(MERGE, 40)) {
        // Expected from the input: unpaired `?`s, and whether one is directly before a digit.
        let chars: Vec<char> = s.chars().collect();
        let mut portable = String::new(); // `?` -> \u{1}, `??` -> `?`, no whitespace
        let mut k = 0;
        let mut digit_after = false;
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '?' && chars.get(i + 1) == Some(&'?') {
                portable.push('?');
                i += 2;
                continue;
            }
            if chars[i] == '?' {
                k += 1;
                portable.push('\u{1}');
                digit_after |= chars.get(i + 1).is_some_and(char::is_ascii_digit);
            } else if !chars[i].is_whitespace() {
                portable.push(chars[i]);
            }
            i += 1;
        }
        let t = translate(&s, Backend::Postgres);
        if digit_after {
            prop_assert!(t.is_err(), "{:?} -> {:?}", s, t);
            return Ok(());
        }
        prop_assert!(t.is_ok(), "{:?} -> {:?}", s, t);
        let t = t.unwrap();
        prop_assert_eq!(t.placeholders, k);
        // Lex the output as PostgreSQL does (for this alphabet: words, numbers, `$n`, others).
        let out: Vec<char> = t.sql.chars().collect();
        let word_start = |c: char| c.is_alphabetic() || c == '_' || !c.is_ascii();
        let word_cont = |c: char| word_start(c) || c.is_ascii_digit() || c == '$';
        let mut params = Vec::new();
        let mut native = String::new(); // `$n` -> \u{1}, no whitespace
        let mut i = 0;
        while i < out.len() {
            let c = out[i];
            if word_start(c) {
                let start = i;
                while i < out.len() && word_cont(out[i]) {
                    i += 1;
                }
                let word: String = out[start..i].iter().collect();
                prop_assert!(!word.contains('$'), "{:?} -> {:?}: word {:?}", s, t.sql, word);
                native.push_str(&word);
            } else if c == '$' {
                let start = i + 1;
                i = start;
                while i < out.len() && out[i].is_ascii_digit() {
                    i += 1;
                }
                let n: String = out[start..i].iter().collect();
                prop_assert!(!n.is_empty(), "{:?} -> {:?}", s, t.sql);
                prop_assert!(
                    !out.get(i).is_some_and(|&c| word_cont(c)),
                    "{:?} -> {:?}: junk after ${}", s, t.sql, n
                );
                params.push(n.parse::<usize>().unwrap_or(0));
                native.push('\u{1}');
            } else {
                if !c.is_whitespace() {
                    native.push(c);
                }
                i += 1;
            }
        }
        prop_assert_eq!(params, (1..=k).collect::<Vec<_>>(), "{:?} -> {:?}", s, t.sql);
        prop_assert_eq!(native, portable, "{:?} -> {:?}", s, t.sql);
    }

    /// Native `$n` placeholders on PostgreSQL count as their highest index and are kept as is.
    #[test]
    fn native_postgres_placeholders(indexes in prop::collection::vec(1usize..200, 0..20)) {
        let sql: String = indexes.iter().map(|n| format!("${n}, ")).collect();
        let t = translate(&sql, Backend::Postgres);
        prop_assert!(t.is_ok(), "{:?}", t);
        let t = t.unwrap();
        prop_assert_eq!(&t.sql, &sql);
        prop_assert_eq!(t.placeholders, indexes.iter().copied().max().unwrap_or(0));
        let mixed = format!("{sql}?");
        prop_assert_eq!(translate(&mixed, Backend::Postgres).is_err(), !indexes.is_empty());
    }
}

#[test]
fn brief_example() {
    assert_eq!(
        to_native(
            "SELECT [a] FROM [t] WHERE [b] = ? AND [c] = ?",
            Backend::Postgres
        )
        .ok()
        .as_deref(),
        Some(r#"SELECT "a" FROM "t" WHERE "b" = $1 AND "c" = $2"#)
    );
}

/// The contract's rules, one tricky statement each, on every backend.
#[test]
fn contract_corpus() {
    use Backend::*;
    type Case = (&'static str, Backend, Result<(&'static str, usize), ()>);
    let cases: &[Case] = &[
        (
            "SELECT [a] FROM [t] WHERE [b] = ? AND [c] = ?",
            Postgres,
            Ok((r#"SELECT "a" FROM "t" WHERE "b" = $1 AND "c" = $2"#, 2)),
        ),
        (
            "SELECT [a] FROM [t] WHERE [b] = ?",
            MySql,
            Ok(("SELECT `a` FROM `t` WHERE `b` = ?", 1)),
        ),
        (
            "SELECT [my col], [a$b], [_x1] FROM [t]",
            Sqlite,
            Ok((r#"SELECT "my col", "a$b", "_x1" FROM "t""#, 0)),
        ),
        (
            "SELECT arr[1], ARRAY[1,2], [1], [a-b] FROM t",
            Postgres,
            Ok(("SELECT arr[1], ARRAY[1,2], [1], [a-b] FROM t", 0)),
        ),
        (
            "SELECT [[a]] , x ]] y",
            Postgres,
            Ok(("SELECT [a] , x ] y", 0)),
        ),
        (
            "SELECT data ?? 'k' FROM t WHERE id = ?",
            Postgres,
            Ok(("SELECT data ? 'k' FROM t WHERE id = $1", 1)),
        ),
        (
            "SELECT 'it''s ? [x]', ? FROM t",
            Postgres,
            Ok(("SELECT 'it''s ? [x]', $1 FROM t", 1)),
        ),
        (
            "SELECT E'it\\'s ? [x]', ?",
            Postgres,
            Ok(("SELECT E'it\\'s ? [x]', $1", 1)),
        ),
        (
            "SELECT $$ ? [x] $$, $tag$ ' ? $$ $tag$, ?",
            Postgres,
            Ok(("SELECT $$ ? [x] $$, $tag$ ' ? $$ $tag$, $1", 1)),
        ),
        (
            "SELECT 'a\\' ? [b]', ?",
            MySql,
            Ok(("SELECT 'a\\' ? [b]', ?", 1)),
        ),
        (
            "SELECT \"a \\\" ? [b]\", ?",
            MySql,
            Ok(("SELECT \"a \\\" ? [b]\", ?", 1)),
        ),
        (
            "SELECT \"col ? [x]\", ? FROM t",
            Postgres,
            Ok(("SELECT \"col ? [x]\", $1 FROM t", 1)),
        ),
        ("SELECT `a ? [b]`, ?", MySql, Ok(("SELECT `a ? [b]`, ?", 1))),
        (
            "SELECT ? -- [a] ?\n, ?",
            Postgres,
            Ok(("SELECT $1 -- [a] ?\n, $2", 2)),
        ),
        (
            "SELECT ? /* [a] ? */, ?",
            Sqlite,
            Ok(("SELECT ? /* [a] ? */, ?", 2)),
        ),
        (
            "SELECT /* a /* nested ? */ still ? */ ?",
            Postgres,
            Ok(("SELECT /* a /* nested ? */ still ? */ $1", 1)),
        ),
        (
            "SELECT $1, $2 FROM t",
            Postgres,
            Ok(("SELECT $1, $2 FROM t", 2)),
        ),
        (
            "SELECT [x'] FROM t WHERE a = 'lit ? [b]'",
            Sqlite,
            Ok(("SELECT [x'] FROM t WHERE a = 'lit ? [b]'", 0)),
        ),
        (
            "SELECT [x'] FROM t WHERE a = 'lit ? [b]'",
            Postgres,
            Err(()),
        ),
        ("SELECT ?9", Postgres, Err(())),
        ("SELECT a?, ?b", Postgres, Ok(("SELECT a $1, $2 b", 2))),
        (
            "SELECT /*!50100 [a] = ? AND */ 1",
            MySql,
            Ok(("SELECT /*!50100 `a` = ? AND */ 1", 1)),
        ),
        ("SELECT $1, ?", Postgres, Err(())),
        ("SELECT 'open", Postgres, Err(())),
        ("SELECT \"open", Sqlite, Err(())),
        ("SELECT `open", MySql, Err(())),
        ("SELECT /* open", MySql, Err(())),
        ("SELECT $q$ open", Postgres, Err(())),
        ("SELECT E'open\\'", Postgres, Err(())),
    ];
    for (sql, backend, want) in cases {
        let got = translate(sql, *backend);
        match (want, got) {
            (Ok((native, n)), Ok(t)) => {
                assert_eq!(t.sql, *native, "{sql:?} on {backend:?}");
                assert_eq!(t.placeholders, *n, "{sql:?} on {backend:?}");
            }
            (Err(()), Err(_)) => {}
            (w, g) => panic!("{sql:?} on {backend:?}: wanted {w:?}, got {g:?}"),
        }
    }
}
