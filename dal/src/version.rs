//! [`VersionDetails`]: which server and driver a connection talks through.

use std::fmt;
use std::future::Future;
use std::panic::Location;

use crate::connection::Connection;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::sql::Backend;

/// The driver dal uses for every backend.
const DRIVER: &str = "sqlx";

/// Its version, recorded by `build.rs`.
const DRIVER_VERSION: &str = env!("DAL_SQLX_VERSION");

/// The server and driver behind a connection, from [`Database::version_details`] or
/// [`Connection::version_details`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// let db = dal::Database::from_url("sqlite::memory:")?;
/// let v = db.version_details().await?;
/// assert_eq!(v.product, "SQLite");
/// assert!(v.version >= (3, 0, 0));                  // compare as a tuple
/// assert_eq!(v.driver, "sqlx");
/// println!("{v}");                                  // SQLite 3.46.0 (sqlx 0.9.0)
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionDetails {
    /// The backend.
    pub backend: Backend,
    /// The server software: `PostgreSQL`, `MySQL`, `MariaDB` or `SQLite`.
    pub product: &'static str,
    /// The version as the server states it: PostgreSQL's `server_version` setting (e.g.
    /// `15.10 (Debian 15.10-1.pgdg120+1)`), MySQL/MariaDB's `VERSION()` (e.g.
    /// `10.11.6-MariaDB-0+deb12u1`), SQLite's `sqlite_version()` (e.g. `3.46.0`).
    pub server_version: String,
    /// `server_version` as numbers (major, minor, patch); a part the server does not state is
    /// 0 (PostgreSQL `15.10` is `(15, 10, 0)`).
    pub version: (u32, u32, u32),
    /// The driver: `sqlx`.
    pub driver: &'static str,
    /// The driver's version dal was built with, as the build's `Cargo.lock` has it (e.g.
    /// `0.9.0`); the version requirement (`0.9`) if the build found no lock file.
    pub driver_version: &'static str,
}

impl fmt::Display for VersionDetails {
    /// `PostgreSQL 15.10 (Debian 15.10-1.pgdg120+1) (sqlx 0.9.0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({} {})",
            self.product, self.server_version, self.driver, self.driver_version
        )
    }
}

impl VersionDetails {
    /// Details from what the server said its version is.
    pub(crate) fn from_server(backend: Backend, server_version: String) -> Result<Self> {
        let product = match backend {
            Backend::Postgres => "PostgreSQL",
            Backend::MySql if server_version.contains("MariaDB") => "MariaDB",
            Backend::MySql => "MySQL",
            Backend::Sqlite => "SQLite",
        };
        // MariaDB once prefixed its version with `5.5.5-` for old clients.
        let numeric = match product {
            "MariaDB" => server_version
                .strip_prefix("5.5.5-")
                .unwrap_or(&server_version),
            _ => &server_version,
        };
        let version = parse_version(numeric).ok_or_else(|| {
            Error::Conversion(format!(
                "{product} stated its version as {server_version:?}, which does not start with a number"
            ))
        })?;
        Ok(VersionDetails {
            backend,
            product,
            server_version,
            version,
            driver: DRIVER,
            driver_version: DRIVER_VERSION,
        })
    }
}

/// `major[.minor[.patch]]` at the start of `s` (after anything before its first digit); what
/// follows (`-MariaDB…`, ` (Debian …)`, `devel`, a fourth part) is ignored.
pub(crate) fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let mut parts = [0u32; 3];
    let mut i = 0;
    let mut current: Option<u32> = None;
    for c in s[start..].chars() {
        if let Some(d) = c.to_digit(10) {
            current = Some(current.unwrap_or(0).checked_mul(10)?.checked_add(d)?);
        } else if c == '.' && i < 2 {
            match current.take() {
                Some(n) => {
                    parts[i] = n;
                    i += 1;
                }
                None => break,
            }
        } else {
            break;
        }
    }
    if let Some(n) = current {
        parts[i] = n;
    }
    Some((parts[0], parts[1], parts[2]))
}

impl Connection {
    /// The server's product and version and the driver's, asked of the server this connection
    /// is on (a replica's, for a read connection on a replica).
    pub async fn version_details(&mut self) -> Result<VersionDetails> {
        let backend = self.backend();
        let sql = match backend {
            Backend::Postgres => "SELECT current_setting('server_version')",
            Backend::MySql => "SELECT VERSION()",
            Backend::Sqlite => "SELECT sqlite_version()",
        };
        let rows = self.execute(sql, ()).await?;
        let stated: String = rows
            .first()
            .ok_or_else(|| Error::Internal("the version query returned no row".into()))?
            .try_get(0)?;
        VersionDetails::from_server(backend, stated)
    }
}

impl Database {
    /// The server's product and version and the driver's (see [`VersionDetails`]), asked of
    /// the primary through a connection borrowed for the purpose.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
    /// let db = dal::Database::from_url("sqlite::memory:")?;
    /// let v = db.version_details().await?;
    /// assert_eq!((v.backend, v.driver), (dal::Backend::Sqlite, "sqlx"));
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn version_details(&self) -> impl Future<Output = Result<VersionDetails>> + Send + '_ {
        let location = Location::caller();
        async move {
            let mut conn = self.connection_at(location).await?;
            conn.version_details().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_parse_as_servers_state_them() {
        assert_eq!(
            parse_version("15.10 (Debian 15.10-1.pgdg120+1)"),
            Some((15, 10, 0))
        );
        assert_eq!(
            parse_version("10.11.6-MariaDB-0+deb12u1"),
            Some((10, 11, 6))
        );
        assert_eq!(parse_version("8.0.36-0ubuntu0.22.04.1"), Some((8, 0, 36)));
        assert_eq!(parse_version("3.46.0"), Some((3, 46, 0)));
        assert_eq!(parse_version("17devel"), Some((17, 0, 0)));
        assert_eq!(parse_version("16beta1"), Some((16, 0, 0)));
        assert_eq!(parse_version("1.2.3.4"), Some((1, 2, 3)));
        assert_eq!(parse_version("PostgreSQL 9.6.24 on x86"), Some((9, 6, 24)));
        assert_eq!(parse_version("15."), Some((15, 0, 0)));
        assert_eq!(parse_version("devel"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("99999999999.1"), None);
    }

    #[test]
    fn products_and_old_mariadb_prefix() {
        use super::VersionDetails;
        use crate::Backend;
        let v =
            VersionDetails::from_server(Backend::MySql, "5.5.5-10.11.6-MariaDB".into()).unwrap();
        assert_eq!((v.product, v.version), ("MariaDB", (10, 11, 6)));
        let v = VersionDetails::from_server(Backend::MySql, "8.0.36".into()).unwrap();
        assert_eq!((v.product, v.version), ("MySQL", (8, 0, 36)));
        let e = VersionDetails::from_server(Backend::Postgres, "devel".into()).unwrap_err();
        assert!(e.to_string().contains("\"devel\""), "{e}");
        assert!(!super::DRIVER_VERSION.is_empty());
        assert!(
            super::DRIVER_VERSION.starts_with("0.9"),
            "{}",
            super::DRIVER_VERSION
        );
    }
}
