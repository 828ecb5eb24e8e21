//! `#[auto_transaction]` on the shapes it accepts.
#![allow(dead_code)]

use dal::prelude::*;

#[auto_transaction]
async fn free(conn: &mut Connection, name: &str) -> dal::Result<()> {
    conn.execute("INSERT INTO [t] ([name]) VALUES (?)", params![name])
        .await?;
    Ok(())
}

#[derive(Debug)]
struct AppError;

impl From<dal::Error> for AppError {
    fn from(_: dal::Error) -> Self {
        AppError
    }
}

struct Service {
    table: String,
}

impl Service {
    #[auto_transaction]
    pub async fn method(&self, conn: &mut dal::Connection) -> Result<usize, AppError> {
        let rows = conn
            .execute(&format!("SELECT * FROM [{}]", self.table), ())
            .await?;
        if rows.is_empty() {
            return Err(AppError);
        }
        Ok(rows.len())
    }

    #[auto_transaction]
    async fn generic_with_conn_mark<T: Send>(
        &mut self,
        source: &mut Connection,
        #[conn] mut target: &mut Connection,
        value: T,
    ) -> std::result::Result<(), AppError>
    where
        Value: From<T>,
    {
        let _ = source.in_transaction();
        target
            .execute("INSERT INTO [t] ([v]) VALUES (?)", params![value])
            .await?;
        self.table.push('x');
        Ok(())
    }
}

#[auto_transaction]
fn blocking(conn: &mut SyncConnection, n: i64) -> dal::Result<i64> {
    conn.execute("INSERT INTO [t] ([n]) VALUES (?)", params![n])?;
    Ok(n)
}

#[auto_transaction]
fn blocking_nested(conn: &mut dal::SyncConnection) -> Result<i64, AppError> {
    Ok(blocking(conn, 1)? + blocking(conn, 2)?)
}

fn assert_send<F: std::future::Future + Send>(_: F) {}

/// Type-checked, not run: the futures stay `Send`, the signatures unchanged.
fn _check(conn: &mut Connection, service: &mut Service) {
    assert_send(free(conn, "x"));
    assert_send(service.method(conn));
    let _: fn(&mut SyncConnection) -> Result<i64, AppError> = blocking_nested;
}

fn main() {
    let _ = Service {
        table: String::new(),
    }
    .table;
}
