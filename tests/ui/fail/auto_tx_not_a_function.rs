use dal::auto_transaction;

#[auto_transaction]
struct Account {
    balance: i64,
}

fn main() {
    let _ = Account { balance: 0 }.balance;
}
