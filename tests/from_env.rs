//! `Database::from_env` on the real process environment. Its own test binary with a single
//! test, so setting variables races no other test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use dal::prelude::*;

#[tokio::test]
async fn from_env_reads_database_url_and_a_password_file() {
    std::env::remove_var("DATABASE_URL");
    std::env::remove_var("DAL_PASSWORD_FILE");
    std::env::remove_var("PGPASSFILE");
    let e = Database::from_env().unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("DATABASE_URL")),
        "{e}"
    );

    let url = std::env::var("DAL_TEST_POSTGRES_URL").unwrap_or_else(|_| common::PG_DEFAULT.into());
    let sep = if url.contains('?') { '&' } else { '?' };
    std::env::set_var(
        "DATABASE_URL",
        format!("{url}{sep}application_name=from-env&alias=from-env"),
    );
    let pw = std::env::temp_dir().join(format!("dal-from-env-pw-{}", std::process::id()));
    std::fs::write(&pw, "env-secret-pw\n").unwrap();
    std::env::set_var("DAL_PASSWORD_FILE", &pw);
    let config = DatabaseConfig::from_env().unwrap();
    assert!(!format!("{config:?}{config}").contains("env-secret-pw"));
    std::fs::remove_file(&pw).unwrap();
    std::env::remove_var("DAL_PASSWORD_FILE");

    if common::selected().contains(&Backend::Postgres) {
        // The shared server trusts loopback, so no password is needed to connect.
        let db = Database::from_env().unwrap();
        assert!(!format!("{db:?}").contains("env-secret-pw"));
        let mut conn = db.async_connection().await.unwrap();
        let rows = conn
            .execute("SELECT current_setting('application_name') AS n", ())
            .await
            .unwrap();
        assert_eq!(rows[0].try_get::<String, _>("n").unwrap(), "from-env");
        drop(conn);
        db.close(std::time::Duration::from_secs(5)).await.unwrap();
    }
    std::env::remove_var("DATABASE_URL");
}
