//! Helpers for standard connection URLs and the environment: percent-decoding, libpq's
//! `options` string, host lists, `target_session_attrs`, MySQL's `timezone`, and password files
//! (`DAL_PASSWORD_FILE`, `PGPASSFILE`). Nothing here ever puts a password into an error.

use crate::error::{Error, Result};

/// Decodes `%XX` escapes (only those: a `+` stays a plus, as in libpq's URIs). A malformed
/// escape or invalid UTF-8 is an error that does not repeat the text (it may be a password).
pub(super) fn percent_decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Config(format!("malformed percent-escape in the {what}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Config(format!("the {what} is not valid UTF-8 once decoded")))
}

/// Splits a URL query into decoded `(key, value)` pairs (`&`-separated, split at the first `=`).
pub(super) fn query_pairs(query: &str) -> Result<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k, "name of a URL option")?;
            let value = percent_decode(v, &format!("value of URL option {key:?}"))?;
            Ok((key, value))
        })
        .collect()
}

/// Parses libpq's `options` string: run-time parameters as `-c name=value`, `-cname=value` or
/// `--name=value`, separated by spaces (a backslash escapes the next character). Anything
/// else (other postgres command-line switches) is refused.
pub(super) fn parse_pg_options(s: &str) -> Result<Vec<(String, String)>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    let bad = |w: &str| {
        Error::Config(format!(
            "option options: {w:?} is not a run-time parameter (use -c name=value or --name=value)"
        ))
    };
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next().ok_or_else(|| bad("-c"))?
        } else if let Some(rest) = w.strip_prefix("--") {
            rest.to_owned()
        } else if let Some(rest) = w.strip_prefix("-c") {
            rest.to_owned()
        } else {
            return Err(bad(&w));
        };
        match setting.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.replace('-', "_"), v.to_owned())),
            _ => return Err(bad(&setting)),
        }
    }
    Ok(out)
}

/// A host list (`h1:5433,h2:5434`, from a URL's authority): `None` for a single host, else
/// each host with its port (if given). Never includes credentials in errors.
/// Hosts with their ports (if given), as a host list holds them.
pub(crate) type HostPorts = Vec<(String, Option<u16>)>;

pub(super) fn parse_host_list(hosts: &str) -> Result<Option<HostPorts>> {
    if !hosts.contains(',') {
        return Ok(None);
    }
    let mut list = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = split_host_port(h)?;
        if host.is_empty() {
            return Err(Error::Config(format!(
                "host list {hosts:?} has an empty entry"
            )));
        }
        list.push((host, port));
    }
    Ok(Some(list))
}

/// The error for a host list given in the `host`/`port` options (libpq's other spelling):
/// dal takes host lists in the URL's authority only.
pub(super) fn check_single_host(hosts: &str, ports: Option<&str>) -> Result<()> {
    let multi_port = ports.is_some_and(|p| p.contains(','));
    if !hosts.contains(',') && !multi_port {
        return Ok(());
    }
    Err(Error::Config(format!(
        "a host list in the host/port options ({hosts:?}{}) is not supported: give it in the \
         URL itself, e.g. postgres://user@h1:5433,h2:5434/db",
        ports.map(|p| format!(", ports {p:?}")).unwrap_or_default()
    )))
}

pub(super) fn split_host_port(h: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = h.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| Error::Config(format!("host {h:?}: unclosed '['")))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if tail.is_empty() => None,
            None => return Err(Error::Config(format!("host {h:?}: junk after ']'"))),
        };
        return Ok((host.to_owned(), port));
    }
    match h.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_owned(), Some(parse_port(p)?))),
        None => Ok((h.to_owned(), None)),
    }
}

pub(super) fn parse_port(p: &str) -> Result<u16> {
    p.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| Error::Config(format!("{p:?} is not a port number")))
}

/// A yes/no URL option: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (ASCII
/// case-insensitive); anything else is an error naming the option.
pub(super) fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "option {key}: {v:?} is not a boolean (use true or false)"
        ))),
    }
}

/// MySQL `timezone`: dal stores and reads timestamps as naive UTC, so the session time zone must
/// be UTC. UTC spellings are accepted (the session uses `+00:00`); anything else is refused.
pub(super) fn check_mysql_timezone(v: &str) -> Result<()> {
    match v.to_ascii_uppercase().as_str() {
        "UTC" | "Z" | "+00:00" | "-00:00" | "+0:00" | "00:00" => Ok(()),
        _ => Err(Error::Config(format!(
            "timezone={v} is refused: dal stores timestamps as naive UTC, so the session time zone \
             is always UTC (+00:00); convert to local time in the application"
        ))),
    }
}

/// A MySQL character set name (letters, digits, `_`).
pub(crate) fn check_charset(v: &str) -> Result<()> {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "charset: {v:?} is not a character set name"
        )))
    }
}

/// Reads a whole password file (`DAL_PASSWORD_FILE`), one trailing newline trimmed. Errors name
/// the file, never its contents.
pub(super) fn read_password_file(path: &str, var: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{var}: cannot read {path:?}: {e}")))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

/// Looks a password up in a `PGPASSFILE`-style file: lines `host:port:database:user:password`,
/// `*` matching anything in the first four fields, `\:` and `\\` escaping, `#` comments. The
/// first matching line wins; lines with fewer than five fields are skipped (as libpq does).
pub(super) fn pgpass_lookup(
    text: &str,
    host: &str,
    port: u16,
    database: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let last = fields.len() - 1;
        match c {
            // The password is the rest of the line (colons in it need no escape in libpq
            // either, but an escaped one is unescaped).
            ':' if fields.len() < 5 => fields.push(String::new()),
            '\\' => {
                if let Some(n) = chars.next() {
                    fields[last].push(n);
                }
            }
            c => fields[last].push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_strict_and_keeps_plus() {
        assert_eq!(percent_decode("p%40ss+x=", "t").unwrap(), "p@ss+x=");
        assert!(percent_decode("bad%4", "t").is_err());
        assert!(percent_decode("bad%zz", "t").is_err());
        assert!(percent_decode("%ff", "t").is_err());
    }

    #[test]
    fn pg_options_forms() {
        assert_eq!(
            parse_pg_options("-c search_path=app  -cstatement_timeout=5s --lock-timeout=1s")
                .unwrap(),
            vec![
                ("search_path".to_owned(), "app".to_owned()),
                ("statement_timeout".to_owned(), "5s".to_owned()),
                ("lock_timeout".to_owned(), "1s".to_owned()),
            ]
        );
        assert_eq!(
            parse_pg_options(r"-c search_path=my\ schema").unwrap(),
            vec![("search_path".to_owned(), "my schema".to_owned())]
        );
        assert!(parse_pg_options("").unwrap().is_empty());
        assert!(parse_pg_options("-c").is_err());
        assert!(parse_pg_options("-c novalue").is_err());
        assert!(parse_pg_options("-D /data").is_err());
    }

    #[test]
    fn pgpass_matching() {
        let text = "# comment\n\
                    other:5432:db:u:nope\n\
                    h\\:x:*:db:u:escaped\n\
                    localhost:5432:*:app:pw\\:with\\\\colon\n\
                    *:*:*:*:fallback:with:colons\n\
                    short:line\n";
        assert_eq!(
            pgpass_lookup(text, "localhost", 5432, "any", "app").as_deref(),
            Some("pw:with\\colon")
        );
        assert_eq!(
            pgpass_lookup(text, "h:x", 1, "db", "u").as_deref(),
            Some("escaped")
        );
        assert_eq!(
            pgpass_lookup(text, "zzz", 1, "db", "u").as_deref(),
            Some("fallback:with:colons")
        );
        assert_eq!(pgpass_lookup("a:1:b:c:d\n", "a", 2, "b", "c"), None);
    }

    #[test]
    fn timezone_and_charset_checks() {
        for tz in ["UTC", "utc", "+00:00", "Z"] {
            assert!(check_mysql_timezone(tz).is_ok(), "{tz}");
        }
        let e = check_mysql_timezone("Europe/Paris")
            .unwrap_err()
            .to_string();
        assert!(e.contains("naive UTC"), "{e}");
        assert!(check_mysql_timezone("+02:00").is_err());
        assert!(check_charset("latin1").is_ok());
        assert!(check_charset("utf8mb4; DROP").is_err());
    }
}
