//! Compile-time behaviour of `#[derive(Entity)]` and `#[auto_transaction]`: what compiles, and
//! the exact error messages (pinned in `tests/ui/fail/*.stderr`) for what does not.
//!
//! Regenerate the `.stderr` files after an intended message change with
//! `TRYBUILD=overwrite cargo test --test macro_ui`, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and examples may panic on failure

#[test]
fn macros_accept_valid_code_and_reject_mistakes_with_clear_errors() {
    let t = trybuild::TestCases::new();
    t.pass("../tests/ui/pass/*.rs");
    t.compile_fail("../tests/ui/fail/*.rs");
}
