use dal::Entity;

#[derive(Entity)]
enum Status {
    Active,
    Closed,
}

#[derive(Entity)]
struct Point(i64, i64);

#[derive(Entity)]
struct Marker;

#[derive(Entity)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
