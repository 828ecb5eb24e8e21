use dal::{auto_transaction, Connection};

#[auto_transaction]
fn save(conn: &mut Connection, name: &str) -> dal::Result<()> {
    let _ = (conn, name);
    Ok(())
}

#[auto_transaction]
fn nothing(name: &str) -> dal::Result<()> {
    let _ = name;
    Ok(())
}

fn main() {}
