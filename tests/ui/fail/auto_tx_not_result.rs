use dal::{auto_transaction, Connection};

#[auto_transaction]
async fn count(conn: &mut Connection) -> i64 {
    let _ = conn;
    0
}

#[auto_transaction]
async fn touch(conn: &mut Connection) {
    let _ = conn;
}

fn main() {}
