use dal::{auto_transaction, Connection};

#[auto_transaction]
async fn copy(source: &mut Connection, target: &mut Connection) -> dal::Result<()> {
    let _ = (source, target);
    Ok(())
}

fn main() {}
