use dal::Entity;

#[derive(Entity)]
#[entity(table = "users", schema = "public")]
struct User {
    #[entity(id)]
    id: String,
    #[entity(id)]
    handle: String,
    #[entity(indexed)]
    name: String,
    #[entity(default = FALLBACK)]
    age: i32,
    #[entity(index, rename)]
    email: String,
    #[entity(type = "money")]
    price: i64,
    #[entity(json, type = "text")]
    data: String,
    #[entity(rename = "Name")]
    display: String,
    #[entity(rename = "Updated_At")]
    touched: String,
    #[entity(rename = "HISTORY_COMMENT")]
    note: String,
}

fn main() {}
