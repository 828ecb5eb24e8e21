//! TLS settings of a [`DatabaseConfig`](super::DatabaseConfig): [`SslMode`] and certificate paths.

use std::fmt;
use std::path::PathBuf;

#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::error::ConnectionError;
use crate::error::{Error, Result};

/// Whether and how a connection uses TLS, with libpq's meanings (MySQL's `ssl-mode` names in
/// brackets).
///
/// | mode | TLS | server certificate checked |
/// |---|---|---|
/// | `Disable` (`DISABLED`) | never | — |
/// | `Prefer` (`PREFERRED`), the default | if the server offers it, else plain | no |
/// | `Require` (`REQUIRED`) | always, else the connection fails | no |
/// | `VerifyCa` (`VERIFY_CA`) | always | signed by a trusted CA |
/// | `VerifyFull` (`VERIFY_IDENTITY`) | always | signed by a trusted CA *and* issued for the host |
///
/// Trusted CAs are those of [`ssl_root_cert`](super::DatabaseConfig::ssl_root_cert) when set,
/// else the Mozilla root store built into the library (no system OpenSSL is used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server supports it, without checking its certificate (libpq's default).
    #[default]
    Prefer,
    /// Always use TLS; do not check the server's certificate.
    Require,
    /// Always use TLS and check that the server's certificate is signed by a trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and check that the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    /// libpq's name: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses PostgreSQL's `sslmode` value (case-insensitive).
    pub(crate) fn parse_postgres(option: &str, value: &str) -> Result<Self> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::Config(format!(
                    "option {option}: {value:?} is not a TLS mode \
                     (accepted: disable, prefer, require, verify-ca, verify-full)"
                )))
            }
        })
    }

    /// Parses MySQL's `ssl-mode` value (case-insensitive).
    pub(crate) fn parse_mysql(option: &str, value: &str) -> Result<Self> {
        Ok(match value.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disable,
            "PREFERRED" => SslMode::Prefer,
            "REQUIRED" => SslMode::Require,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyFull,
            _ => {
                return Err(Error::Config(format!(
                    "option {option}: {value:?} is not a TLS mode \
                     (accepted: DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)"
                )))
            }
        })
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn to_postgres(self) -> sqlx::postgres::PgSslMode {
        use sqlx::postgres::PgSslMode as M;
        match self {
            SslMode::Disable => M::Disable,
            SslMode::Prefer => M::Prefer,
            SslMode::Require => M::Require,
            SslMode::VerifyCa => M::VerifyCa,
            SslMode::VerifyFull => M::VerifyFull,
        }
    }

    #[cfg(feature = "mysql")]
    pub(crate) fn to_mysql(self) -> sqlx::mysql::MySqlSslMode {
        use sqlx::mysql::MySqlSslMode as M;
        match self {
            SslMode::Disable => M::Disabled,
            SslMode::Prefer => M::Preferred,
            SslMode::Require => M::Required,
            SslMode::VerifyCa => M::VerifyCa,
            SslMode::VerifyFull => M::VerifyIdentity,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS part of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// The text `hash()` adds: empty for the default settings, so that configurations without
    /// TLS settings keep the hash they had before TLS existed.
    pub(crate) fn canonical(&self) -> String {
        if *self == TlsSettings::default() {
            return String::new();
        }
        format!(
            "|tls={}|ca={:?}|cert={:?}|key={:?}",
            self.mode.as_str(),
            self.root_cert,
            self.client_cert,
            self.client_key
        )
    }
}

/// [`map_sqlx_error`](crate::backend::map_sqlx_error) for errors of opening a connection,
/// saying plainly when the TLS handshake rejected the server's certificate (rustls reports it
/// as an I/O error: "invalid peer certificate: …"): the message then starts with
/// `TLS: server certificate rejected:`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn map_connect_error(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(io)
            if io.kind() == std::io::ErrorKind::InvalidData
                && io.to_string().contains("certificate") =>
        {
            Error::Connection(ConnectionError::with_source(
                format!("TLS: server certificate rejected: {io}"),
                io,
            ))
        }
        other => crate::backend::map_sqlx_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_either_spelling_and_reject_others() {
        assert_eq!(
            SslMode::parse_postgres("sslmode", "Verify-Full").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            SslMode::parse_mysql("ssl-mode", "verify_identity").unwrap(),
            SslMode::VerifyFull
        );
        let e = SslMode::parse_postgres("sslmode", "allow").unwrap_err();
        assert!(e.to_string().contains("sslmode"), "{e}");
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e = SslMode::parse_mysql("ssl-mode", "on").unwrap_err();
        assert!(e.to_string().contains("ssl-mode"), "{e}");
        assert!(e.to_string().contains("VERIFY_IDENTITY"), "{e}");
    }
}
