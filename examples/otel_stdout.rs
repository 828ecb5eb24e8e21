//! dal's statement spans exported through OpenTelemetry, printed to stdout. Run with
//! `cargo run --example otel_stdout` (in-memory SQLite), or point it at a server:
//! `DAL_EXAMPLE_URL=postgres://postgres@127.0.0.1:5432/dal_test cargo run --example otel_stdout`.
//!
//! dal opens a DEBUG `tracing` span (target `dal::query`) around every statement, with
//! OpenTelemetry's database conventions as field names (`db.system.name`, `db.namespace`,
//! `db.query.text`, `db.operation.name`, `db.collection.name`, `server.address`,
//! `server.port`, `error.type`, `otel.kind = "client"`). `tracing-opentelemetry` turns them
//! into OpenTelemetry spans as they are; here the SDK's stdout exporter prints each one as
//! it ends. In a service, swap `opentelemetry_stdout::SpanExporter` for an OTLP exporter.
//!
//! The configuration also turns on `sql_comments`, so the tagged statements reach the server
//! with their tags as a sqlcommenter comment, visible at the end of `db.query.text`.
//!
//! Its tables (`otel_example`, and the entity `otel_example_users` with its `_meta` and
//! `_history` tables) are dropped and created again at the start.

use dal::prelude::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DAL_EXAMPLE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let config = DatabaseConfig::from_url(&url)?
        .alias("otel_example")
        .sql_comments(true);
    let backend = config
        .backend()
        .ok_or_else(|| Error::Config("URL names no backend".into()))?;
    let db = Database::new(backend, config);
    let mut conn = db.async_connection().await?;

    // Setup, before tracing is on: its statements are not exported.
    for t in [
        "otel_example",
        "otel_example_users",
        "otel_example_users_meta",
        "otel_example_users_history",
    ] {
        conn.execute(&format!("DROP TABLE IF EXISTS [{t}]"), ())
            .await?;
    }
    conn.execute(
        "CREATE TABLE [otel_example] ([id] INTEGER PRIMARY KEY, [name] VARCHAR(50))",
        (),
    )
    .await?;
    let bob = conn
        .save_entity("otel_example_users", json!({"name": "Bob"}))
        .await?;
    let bob_id = bob["id"].as_str().unwrap_or_default().to_owned();

    // OpenTelemetry: an SDK tracer provider that prints each span as it ends, and the
    // `tracing` layer that feeds it dal's statement spans (target `dal::query`, DEBUG).
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("otel_stdout_example"))
        .with_filter(Targets::new().with_target("dal::query", tracing::Level::DEBUG));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;

    // 1. Tagged statements: span "INSERT" / "SELECT", the tags in the comment of
    //    db.query.text, the parameters never in it.
    conn.execute(
        "INSERT INTO [otel_example] ([id], [name]) VALUES (?, ?)",
        params![1, "Ann"],
    )
    .tag("route", "/users")
    .await?;
    let rows = conn
        .execute(
            "SELECT [name] FROM [otel_example] WHERE [id] = ?",
            params![1],
        )
        .tag("route", "/users/:id")
        .await?;
    // 2. An entity operation: span "SELECT otel_example_users", with db.collection.name.
    let again = conn.get_entity("otel_example_users", &bob_id).await?;
    // 3. A failure: error.type (the server's code when it gave one), status Error.
    let failed = conn.execute("SELECT * FROM [otel_no_such_table]", ()).await;
    drop(conn);

    provider.shutdown()?;
    println!(
        "-- read {:?} and {:?}; the failing statement: {}",
        rows.first().and_then(|r| r.get("name")),
        again.as_ref().and_then(|e| e.get("name")),
        failed
            .err()
            .map_or_else(|| "no error".into(), |e| e.to_string())
    );
    Ok(())
}
