//! Configuration: URLs, options, environment, the hash.
use std::path::Path;

use super::*;
use crate::error::{Error, Result};

#[test]
fn from_url_parses_every_part_and_hides_the_password() {
    let c = DatabaseConfig::from_url(
        "postgres://bob:s%40cret@127.0.0.1:5433/app?alias=main&query_execution_timeout=1.5",
    )
    .unwrap();
    assert_eq!(c.database(), "app");
    assert_eq!(c.get_host(), "127.0.0.1");
    assert_eq!(c.get_port(), Some(5433));
    assert_eq!(c.get_user(), Some("bob"));
    assert_eq!(c.password_secret(), Some("s@cret"));
    assert_eq!(c.get_alias(), "main");
    assert_eq!(c.get_query_execution_timeout(), Duration::from_millis(1500));
    assert!(!format!("{c:?}").contains("s@cret"));
    assert!(!format!("{c}").contains("s@cret"));
}

#[test]
fn sqlite_urls() {
    assert_eq!(
        DatabaseConfig::from_url("sqlite::memory:")
            .unwrap()
            .database(),
        ":memory:"
    );
    assert_eq!(
        DatabaseConfig::from_url("sqlite://data/app.db")
            .unwrap()
            .database(),
        "data/app.db"
    );
    assert_eq!(
        DatabaseConfig::from_url("sqlite:app.db")
            .unwrap()
            .database(),
        "app.db"
    );
    assert!(DatabaseConfig::from_url("sqlite://").is_err());
}

#[test]
fn bad_urls_are_clear_errors_without_password() {
    let e = DatabaseConfig::from_url("oracle://u:pw@h/db").unwrap_err();
    assert!(e.to_string().contains("oracle"), "{e}");
    let e = DatabaseConfig::from_url("postgres://u:topsecret@h:notaport/db").unwrap_err();
    assert!(!e.to_string().contains("topsecret"), "{e}");
    assert!(DatabaseConfig::from_url("postgres://h:5432/db?bogus=1").is_err());
    assert!(DatabaseConfig::from_url("no-scheme").is_err());
}

#[test]
fn credential_tag_tells_passwords_apart_and_never_prints() {
    let c = DatabaseConfig::new("db").host("h").user("u");
    let right = c.clone().password("right-pw");
    let wrong = c.clone().password("wrong-pw");
    assert_eq!(right.hash(), wrong.hash());
    assert_ne!(right.credential_tag(), wrong.credential_tag());
    assert_ne!(c.credential_tag(), c.clone().password("").credential_tag());
    assert_eq!(right.credential_tag(), right.clone().credential_tag());
    assert_eq!(format!("{:?}", right.credential_tag()), "CredentialTag(..)");
}

#[test]
fn hash_is_stable_and_ignores_password() {
    let a = DatabaseConfig::new("db").host("h").password("a");
    let b = DatabaseConfig::new("db").host("h").password("b");
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), a.clone().alias("x").hash());
    // Pinned: the hash must not change between processes or releases of the same format.
    assert_eq!(DatabaseConfig::new("db").hash().len(), 32);
    assert_eq!(
        DatabaseConfig::new("db").hash(),
        DatabaseConfig::new("db").hash()
    );
}

/// The issue's example, word for word.
#[test]
fn issue_example_parses() {
    let c = DatabaseConfig::from_url(
        "postgres://u:p%40ss@host:5432/db?sslmode=verify-full&sslrootcert=ca.pem&application_name=api",
    )
    .unwrap();
    assert_eq!(c.get_ssl_mode(), SslMode::VerifyFull);
    assert_eq!(c.get_ssl_root_cert(), Some(Path::new("ca.pem")));
    assert_eq!(c.get_user(), Some("u"));
    assert_eq!(c.password_secret(), Some("p@ss"));
    assert_eq!(c.get_host(), "host");
    assert_eq!(c.get_port(), Some(5432));
    assert_eq!(c.database(), "db");
    assert_eq!(c.get_application_name(), "api");
    assert!(!format!("{c:?}{c}").contains("p@ss"));
}

#[test]
fn postgres_standard_options() {
    let c = DatabaseConfig::from_url(
        "postgresql://ignored@urlhost/urldb?user=bob&password=a%2Bb+c%3D&host=h2&port=6432\
         &dbname=real&connect_timeout=7&options=-c%20search_path%3Dapp%20-cwork_mem=4MB\
         &target_session_attrs=any",
    )
    .unwrap();
    assert_eq!(c.backend(), Some(Backend::Postgres));
    assert_eq!(c.get_user(), Some("bob"));
    assert_eq!(c.password_secret(), Some("a+b+c="));
    assert_eq!(c.get_host(), "h2");
    assert_eq!(c.get_port(), Some(6432));
    assert_eq!(c.database(), "real");
    assert_eq!(c.get_connection_creation_timeout(), Duration::from_secs(7));
    assert_eq!(
        c.get_pg_options(),
        [
            ("search_path".to_owned(), "app".to_owned()),
            ("work_mem".to_owned(), "4MB".to_owned())
        ]
    );
    assert_eq!(c.get_application_name(), "dal");
    assert!(!format!("{c:?}{c}").contains("a+b+c="));
    // Host and database only as options.
    let c = DatabaseConfig::from_url("postgres:///?host=/run/postgresql&dbname=x").unwrap();
    assert_eq!((c.get_host(), c.database()), ("/run/postgresql", "x"));
    assert!(DatabaseConfig::from_url("postgres://h/?application_name=a").is_err());
}

#[test]
fn mysql_standard_options() {
    let c = DatabaseConfig::from_url("mysql://root@h/db?charset=latin1&timezone=UTC").unwrap();
    assert_eq!(c.get_charset(), "latin1");
    assert_eq!(DatabaseConfig::new("db").get_charset(), "utf8mb4");
    let e = DatabaseConfig::from_url("mariadb://root@h/db?timezone=Europe%2FParis")
        .unwrap_err()
        .to_string();
    assert!(e.contains("naive UTC"), "{e}");
    assert!(DatabaseConfig::from_url("mysql://h/db?charset=utf8mb4;x").is_err());
    // PostgreSQL options are not MySQL options, and the reverse.
    let e = DatabaseConfig::from_url("mysql://h/db?application_name=a")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PostgreSQL option") && e.contains("charset"),
        "{e}"
    );
    let e = DatabaseConfig::from_url("postgres://h/db?charset=latin1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("MySQL/MariaDB option"), "{e}");
}

#[test]
fn option_errors_name_the_option_and_list_the_supported_ones() {
    let e = DatabaseConfig::from_url("postgres://u:hunter2@h/db?bogus=1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"bogus\""), "{e}");
    for known in ["application_name", "options", "dbname", "pool_max", "alias"] {
        assert!(e.contains(known), "{e}");
    }
    assert!(!e.contains("hunter2"), "{e}");
    let e = DatabaseConfig::from_url("sqlite::memory:?charset=x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("SQLite") && e.contains("pool_min"), "{e}");
    for bad in [
        "postgres://h/db?connect_timeout=0",
        "postgres://h/db?connect_timeout=soon",
        "postgres://h/db?options=-D%20/data",
        "postgres://h/db?port=0",
        "postgres://h/db?target_session_attrs=fastest",
        "postgres://u:p%zz@h/db",
    ] {
        assert!(
            matches!(DatabaseConfig::from_url(bad), Err(Error::Config(_))),
            "{bad}"
        );
    }
    // A MySQL TLS option on a PostgreSQL URL is unknown there.
    assert!(DatabaseConfig::from_url("postgres://h/db?ssl-mode=REQUIRED").is_err());
}

#[test]
fn host_lists_replicas_and_target_session_attrs_are_parsed() {
    let c = DatabaseConfig::from_url(
        "postgres://u:secretpw@h1:5433,[::1]:5434,h3/db?target_session_attrs=read-write",
    )
    .unwrap();
    assert_eq!(
        c.get_hosts(),
        &[
            ("h1".to_owned(), Some(5433)),
            ("::1".to_owned(), Some(5434)),
            ("h3".to_owned(), None)
        ]
    );
    assert_eq!((c.get_host(), c.get_port()), ("h1", Some(5433)));
    assert_eq!(c.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
    assert_eq!(c.get_user(), Some("u"));
    assert_eq!(c.password_secret(), Some("secretpw"));
    let shown = format!("{c} {c:?}");
    assert!(
        shown.contains("h1:5433,::1:5434,h3") && !shown.contains("secretpw"),
        "{shown}"
    );
    // The host list and the target are part of the hash; replicas are not.
    let single = DatabaseConfig::from_url("postgres://u@h1:5433/db").unwrap();
    assert_ne!(c.hash(), single.hash());
    let with_replicas =
        DatabaseConfig::from_url("postgres://u@h1:5433/db?replicas=r1:5432,[::1]:5435&max_replica_lag=2.5&read_your_writes=0.5")
            .unwrap();
    assert_eq!(with_replicas.hash(), single.hash());
    let replicas = with_replicas.get_replicas();
    assert_eq!(replicas.len(), 2);
    assert_eq!(
        (replicas[1].get_host(), replicas[1].get_port()),
        ("::1", Some(5435))
    );
    assert_eq!(replicas[0].get_user(), Some("u"));
    assert_ne!(
        replicas[0].hash(),
        single.clone().host("r1").port(5432).hash()
    );
    assert_eq!(
        with_replicas.get_max_replica_lag(),
        Duration::from_millis(2500)
    );
    assert_eq!(
        with_replicas.get_read_your_writes(),
        ReadYourWrites::Window(Duration::from_millis(500))
    );
    // MySQL URLs take them too; SQLite does not.
    assert!(DatabaseConfig::from_url(
        "mysql://h1:3307,h2:3308/db?target_session_attrs=primary&replicas=h2:3308"
    )
    .is_ok());
    assert!(DatabaseConfig::from_url("sqlite::memory:?replicas=h:1").is_err());
    for bad in [
        "postgres://h1:5433,/db",
        "postgres://h/db?host=a,b",
        "postgres://h/db?port=1,2",
        "postgres://h/db?target_session_attrs=fastest",
        "postgres://h/db?replicas=h2",
        "postgres://h/db?read_your_writes=sometimes",
    ] {
        let e = DatabaseConfig::from_url(bad).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{bad}: {e}");
    }
    assert!(DatabaseConfig::from_url("postgres://h1:x,h2/db").is_err());
}

#[test]
fn session_settings_are_part_of_the_hash() {
    let base = DatabaseConfig::from_url("postgres://h/db").unwrap();
    let named = DatabaseConfig::from_url("postgres://h/db?application_name=api").unwrap();
    let opts = DatabaseConfig::from_url("postgres://h/db?options=-c%20a=b").unwrap();
    assert_ne!(base.hash(), named.hash());
    assert_ne!(base.hash(), opts.hash());
    let my = DatabaseConfig::from_url("mysql://h/db").unwrap();
    assert_ne!(my.hash(), my.clone().charset("latin1").hash());
    // timezone=UTC is what every connection uses anyway.
    let utc = DatabaseConfig::from_url("mysql://h/db?timezone=UTC").unwrap();
    assert_eq!(my.hash(), utc.hash());
}

fn temp_file(name: &str, contents: &str) -> String {
    let path = std::env::temp_dir().join(format!("dal-{name}-{}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| Ok(vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn from_env_reads_database_url_and_password_files() {
    let e = DatabaseConfig::from_env_with(env_of(&[])).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("DATABASE_URL is not set")),
        "{e}"
    );
    let c = DatabaseConfig::from_env_with(env_of(&[(
        "DATABASE_URL",
        "mysql://root@h/db?charset=latin1",
    )]))
    .unwrap();
    assert_eq!(
        (c.backend(), c.get_charset()),
        (Some(Backend::MySql), "latin1")
    );
    assert_eq!(c.password_secret(), None);

    let file = temp_file("pwfile", "from-file-pw\n");
    let c = DatabaseConfig::from_env_with(env_of(&[
        ("DATABASE_URL", "postgres://app@h/db"),
        ("DAL_PASSWORD_FILE", &file),
    ]))
    .unwrap();
    assert_eq!(c.password_secret(), Some("from-file-pw"));
    assert!(!format!("{c:?}{c}").contains("from-file-pw"));
    let e = DatabaseConfig::from_env_with(env_of(&[
        ("DATABASE_URL", "postgres://app:urlpw@h/db"),
        ("DAL_PASSWORD_FILE", &file),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("one way only") && !e.contains("urlpw"), "{e}");
    assert!(!e.contains("from-file-pw"), "{e}");
    let e = DatabaseConfig::from_env_with(env_of(&[
        ("DATABASE_URL", "postgres://app@h/db"),
        ("DAL_PASSWORD_FILE", "/nonexistent/dal-pw"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("DAL_PASSWORD_FILE") && e.contains("/nonexistent/dal-pw"),
        "{e}"
    );
    let _ = std::fs::remove_file(&file);

    let pgpass = temp_file("pgpass", "h:5432:db:app:pgpass-pw\n*:*:*:*:other\n");
    let with_pgpass = |url: &str| {
        DatabaseConfig::from_env_with(env_of(&[("DATABASE_URL", url), ("PGPASSFILE", &pgpass)]))
            .unwrap()
    };
    assert_eq!(
        with_pgpass("postgres://app@h/db").password_secret(),
        Some("pgpass-pw")
    );
    assert_eq!(
        with_pgpass("postgres://app@h:5433/db").password_secret(),
        Some("other")
    );
    // The URL's password wins; MySQL ignores PGPASSFILE.
    assert_eq!(
        with_pgpass("postgres://app:mine@h/db").password_secret(),
        Some("mine")
    );
    assert_eq!(with_pgpass("mysql://app@h/db").password_secret(), None);
    let c = with_pgpass("postgres://app@h/db");
    assert!(!format!("{c:?}{c}").contains("pgpass-pw"));
    let _ = std::fs::remove_file(&pgpass);
}

#[test]
fn tls_url_options() {
    let c = DatabaseConfig::from_url(
        "postgresql://u@h/db?sslmode=verify-full&sslrootcert=ca.pem&sslcert=c.pem&sslkey=k.pem",
    )
    .unwrap();
    assert_eq!(c.get_ssl_mode(), SslMode::VerifyFull);
    assert_eq!(c.get_ssl_root_cert(), Some(Path::new("ca.pem")));
    assert_eq!(c.get_ssl_client_cert(), Some(Path::new("c.pem")));
    assert_eq!(c.get_ssl_client_key(), Some(Path::new("k.pem")));
    let m = DatabaseConfig::from_url("mysql://u@h/db?ssl-mode=VERIFY_CA&ssl-ca=ca.pem").unwrap();
    assert_eq!(m.get_ssl_mode(), SslMode::VerifyCa);
    assert_eq!(m.get_ssl_root_cert(), Some(Path::new("ca.pem")));
    assert_eq!(DatabaseConfig::new("db").get_ssl_mode(), SslMode::Prefer);
    let e = DatabaseConfig::from_url("postgres://h/db?sslmode=sometimes").unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(
        e.to_string().contains("sslmode") && e.to_string().contains("verify-ca"),
        "{e}"
    );
    let e = DatabaseConfig::from_url("mysql://h/db?sslmode=require").unwrap_err();
    assert!(e.to_string().contains("ssl-mode"), "{e}");
    // TLS settings separate pools; default settings keep the pre-TLS hash.
    let base = DatabaseConfig::new("db").host("h");
    assert_eq!(base.hash(), base.clone().ssl_mode(SslMode::Prefer).hash());
    assert_ne!(base.hash(), base.clone().ssl_mode(SslMode::Require).hash());
    assert_ne!(
        base.clone().ssl_client_cert("a", "b").hash(),
        base.clone().ssl_client_cert("a", "c").hash()
    );
}

#[test]
fn backend_options_are_refused_on_other_backends_with_a_hint() {
    let e = DatabaseConfig::from_url("sqlite://app.db?sslmode=require").unwrap_err();
    assert!(
        e.to_string().contains("SQLite") && e.to_string().contains("PostgreSQL option"),
        "{e}"
    );
    let e = DatabaseConfig::from_url("postgres://h/db?charset=latin1").unwrap_err();
    assert!(e.to_string().contains("MySQL/MariaDB option"), "{e}");
    assert!(DatabaseConfig::from_url("mysql://h/db?application_name=x").is_err());
}

#[test]
fn sql_comments_option_on_every_backend_and_in_the_hash() {
    for url in [
        "postgres://u@h/db?sql_comments=true",
        "mysql://u@h/db?sql_comments=TRUE",
        "mariadb://u@h/db?sql_comments=1",
        "sqlite::memory:?sql_comments=on",
        "sqlite://app.db?sql_comments=yes",
    ] {
        let c = DatabaseConfig::from_url(url).unwrap();
        assert!(c.get_sql_comments(), "{url}");
    }
    let off = DatabaseConfig::from_url("postgres://u@h/db?sql_comments=false").unwrap();
    assert!(!off.get_sql_comments());
    assert!(!DatabaseConfig::new("db").get_sql_comments());
    let e = DatabaseConfig::from_url("postgres://u@h/db?sql_comments=maybe").unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(
        e.to_string().contains("sql_comments") && e.to_string().contains("maybe"),
        "{e}"
    );
    // On: another pool. Off (the default, or said explicitly): the hash it always had.
    let base = DatabaseConfig::new("db").host("h");
    assert_ne!(base.hash(), base.clone().sql_comments(true).hash());
    assert_eq!(base.hash(), base.clone().sql_comments(false).hash());
    assert_eq!(
        off.hash(),
        DatabaseConfig::from_url("postgres://u@h/db")
            .unwrap()
            .hash()
    );
}
