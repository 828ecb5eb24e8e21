use dal::auto_transaction;

#[auto_transaction]
async fn compute(a: i64, b: i64) -> dal::Result<i64> {
    Ok(a + b)
}

fn main() {
    let _ = compute(1, 2);
}
