//! Procedural macros for [`dal`](https://docs.rs/dal), re-exported by it: use them as
//! `dal::Entity` and `dal::auto_transaction` (or through `dal::prelude::*`), never from this
//! crate directly.
//!
//! Like `serde_derive`, these macros hold no behaviour of their own: `#[derive(Entity)]` emits
//! an `impl dal::entity::Entity` that describes the struct, and `#[auto_transaction]` wraps a
//! function in calls to the connection's public transaction methods. Mistakes are compile
//! errors at the offending item, all reported in one build.
//!
//! This file holds the entry points only: attribute parsing lives in `attrs`, the derive in
//! `entity`, the attribute in `transaction`.

mod attrs;
mod case;
mod entity;
mod transaction;

use proc_macro::TokenStream;

/// Describes a struct as a typed entity: implements `dal::entity::Entity`.
///
/// ```
/// use dal::Entity;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[entity(table = "users")]                 // default: the struct name in snake_case
/// struct User {
///     id: Option<String>,                    // the field named `id` is the id …
///     #[entity(unique, rename = "mail")]     // … or the one marked `#[entity(id)]`
///     email: String,
///     #[entity(index, default = 0)]
///     age: i32,
///     #[serde(rename = "tags")]              // read for `FieldDef::serde_name`
///     #[entity(json)]
///     labels: Vec<String>,
///     #[entity(skip)]
///     #[serde(skip)]
///     cache: Option<String>,
/// }
///
/// assert_eq!(User::table_name(), "users");
/// let columns: Vec<&str> = User::fields().iter().map(|f| f.column).collect();
/// assert_eq!(columns, ["id", "mail", "age", "labels"]);
/// assert_eq!(User::fields()[2].default, Some("0"));
/// assert_eq!(User::fields()[3].serde_name, "tags");
/// ```
///
/// Field keys: `id`, `index`, `unique`, `default = <string|int|float|bool literal>` (stored as
/// JSON text), `rename = "column"`, `skip`, `json`. The logical type comes from the Rust type,
/// looking through `Option<T>` (nullable) and `Box<T>`: integers → `Int`, `f32`/`f64` →
/// `Float`, `bool` → `Bool`, `String`/`char` → `Text`, `DateTime`/`NaiveDateTime` →
/// `Timestamp`, `NaiveDate` → `Date`, `NaiveTime` → `Time`, `Uuid` → `Uuid`, any other named
/// type (`Vec`, maps, `serde_json::Value`, your serde types) → `Json`. References, pointers,
/// function pointers, trait objects and `impl Trait` are rejected; tuples and arrays need
/// `#[entity(json)]`.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    entity::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Runs a function inside a transaction on its connection parameter.
///
/// On an `async fn` taking `&mut Connection`, or a `fn` taking `&mut SyncConnection`, returning
/// `Result<T, E>` with `E: From<dal::Error>`: if the connection has no open transaction, one is
/// begun, committed when the body returns `Ok` and rolled back when it returns `Err`, panics,
/// or (async) its future is dropped. If a transaction is already open the body just joins it,
/// so nested annotated calls commit once, at the outermost level. With several candidate
/// parameters, mark the connection with `#[conn]`.
///
/// ```
/// use dal::prelude::*;
///
/// #[auto_transaction]
/// async fn transfer(conn: &mut Connection, from: i64, to: i64, cents: i64) -> dal::Result<()> {
///     let sql = "UPDATE [accounts] SET [balance] = [balance] + ? WHERE [id] = ?";
///     conn.execute(sql, params![-cents, from]).await?;
///     conn.execute(sql, params![cents, to]).await?; // an Err here undoes the first update
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dal::Result<()> {
/// let db = Database::from_url("sqlite::memory:")?;
/// let mut conn = db.async_connection().await?;
/// conn.execute("CREATE TABLE [accounts] ([id] INTEGER, [balance] INTEGER)", ()).await?;
/// conn.execute("INSERT INTO [accounts] VALUES (1, 100), (2, 0)", ()).await?;
/// transfer(&mut conn, 1, 2, 30).await?;
/// assert!(!conn.in_transaction());
/// # Ok(()) }
/// ```
#[proc_macro_attribute]
pub fn auto_transaction(args: TokenStream, item: TokenStream) -> TokenStream {
    transaction::expand(args.into(), item.into()).into()
}
