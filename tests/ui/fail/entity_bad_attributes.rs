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
}

fn main() {}
