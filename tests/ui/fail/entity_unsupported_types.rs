use dal::Entity;

#[derive(Entity)]
struct Unstorable {
    name: &'static str,
    pointer: *const u8,
    callback: fn(i32) -> i32,
    pair: Option<(i32, i32)>,
    bytes: [u8; 4],
    handler: Box<dyn Fn()>,
    shape: impl Fn(),
}

fn main() {}
