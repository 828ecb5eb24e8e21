//! Standard URL options take effect on the real servers: PostgreSQL `application_name` (what
//! `pg_stat_activity` shows) and `options=-c search_path=…`; MariaDB `charset`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use dal::prelude::*;

/// The test URL for `var` (default `default`) with `extra` options appended.
fn url_with(var: &str, default: &str, extra: &str) -> String {
    let base = std::env::var(var).unwrap_or_else(|_| default.into());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{extra}")
}

#[tokio::test]
async fn postgres_application_name_and_options_take_effect() {
    if !common::selected().contains(&Backend::Postgres) {
        return;
    }
    let db = Database::from_url(&url_with(
        "DAL_TEST_POSTGRES_URL",
        common::PG_DEFAULT,
        "application_name=api&options=-c%20search_path%3Ddal_connecting_app,public&alias=connecting-pg",
    ))
    .unwrap();
    let mut conn = db.async_connection().await.unwrap();
    let rows = conn
        .execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            (),
        )
        .await
        .unwrap();
    assert_eq!(rows[0].try_get::<String, _>(0).unwrap(), "api");
    let rows = conn.execute("SHOW search_path", ()).await.unwrap();
    assert_eq!(
        rows[0].try_get::<String, _>(0).unwrap(),
        "dal_connecting_app,public"
    );
    drop(conn);
    db.close(std::time::Duration::from_secs(5)).await.unwrap();

    // Without the option the driver's default name is used.
    let db = Database::from_url(&url_with(
        "DAL_TEST_POSTGRES_URL",
        common::PG_DEFAULT,
        "alias=connecting-pg-default",
    ))
    .unwrap();
    let mut conn = db.async_connection().await.unwrap();
    let rows = conn
        .execute("SELECT current_setting('application_name') AS n", ())
        .await
        .unwrap();
    assert_eq!(rows[0].try_get::<String, _>("n").unwrap(), "dal");
    drop(conn);
    db.close(std::time::Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn mariadb_charset_takes_effect() {
    if !common::selected().contains(&Backend::MySql) {
        return;
    }
    for (charset, expected) in [("latin1", "latin1"), ("", "utf8mb4")] {
        let extra = if charset.is_empty() {
            "alias=connecting-my-default".to_owned()
        } else {
            format!("charset={charset}&timezone=UTC&alias=connecting-my-{charset}")
        };
        let db = Database::from_url(&url_with("DAL_TEST_MYSQL_URL", common::MY_DEFAULT, &extra))
            .unwrap();
        let mut conn = db.async_connection().await.unwrap();
        let rows = conn
            .execute(
                "SELECT @@character_set_client AS c, @@session.time_zone AS tz",
                (),
            )
            .await
            .unwrap();
        assert_eq!(rows[0].try_get::<String, _>("c").unwrap(), expected);
        assert_eq!(rows[0].try_get::<String, _>("tz").unwrap(), "+00:00");
        drop(conn);
        db.close(std::time::Duration::from_secs(5)).await.unwrap();
    }
}
