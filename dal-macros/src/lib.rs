//! Procedural macros for [`dal`](https://docs.rs/dal), re-exported by it: use them as
//! `dal::Entity` and `dal::auto_transaction` (or through `dal::prelude::*`), never from this
//! crate directly.
//!
//! Like `serde_derive`, these macros hold no behaviour of their own: `#[derive(Entity)]` emits
//! an `impl dal::entity::Entity` that describes the struct, and `#[auto_transaction]` wraps a
//! function in calls to the connection's public transaction methods. Mistakes are compile
//! errors at the offending item, all reported in one build.
//!
//! This file holds the entry points only. The derive is built like `serde_derive`, in separate
//! steps: `internals::ast` parses the input into a model (attributes read by `internals::attr`,
//! names resolved once), `internals::check` validates it, and `entity` generates code from the
//! validated model. `transaction` holds the attribute. Both report through
//! `internals::Ctxt`, which must be checked before it is dropped.

mod entity;
mod internals;
mod transaction;

use proc_macro::TokenStream;

/// Describes a struct as a typed entity: implements `dal::entity::Entity`.
///
/// ```
/// use dal::entity::FieldType;
/// use dal::Entity;
/// use serde::{Deserialize, Serialize};
///
/// type Cents = i64;
///
/// #[derive(Serialize, Deserialize)]
/// enum Plan { Free, Pro }
///
/// #[derive(Entity, Serialize, Deserialize)]
/// #[entity(table = "users")]                 // default: the struct name in snake_case
/// #[serde(rename_all = "camelCase")]         // read for `FieldDef::serde_name`
/// struct User {
///     id: Option<String>,                    // the field named `id` is the id …
///     #[entity(unique, rename = "mail")]     // … or the one marked `#[entity(id)]`
///     email: String,
///     #[entity(index, default = 0)]
///     age: i32,
///     #[serde(rename = "tags")]              // wins over `rename_all`
///     #[entity(json)]
///     labels: Vec<String>,
///     plan: Plan,                            // not seen through: typed at the first save
///     #[entity(type = "int")]
///     balance_due: Cents,
///     #[entity(version)]                     // optimistic locking; the column is `version`
///     revision: i64,
///     #[serde(skip)]                         // not serialized, so not stored
///     cache: Option<String>,
/// }
///
/// assert_eq!(User::table_name(), "users");
/// let fields = User::fields();
/// let columns: Vec<&str> = fields.iter().map(|f| f.column).collect();
/// assert_eq!(columns, ["id", "mail", "age", "labels", "plan", "balance_due", "version"]);
/// let keys: Vec<&str> = fields.iter().map(|f| f.serde_name).collect();
/// assert_eq!(keys, ["id", "email", "age", "tags", "plan", "balanceDue", "revision"]);
/// assert_eq!(fields[2].default, Some("0"));
/// assert_eq!(fields[4].ty, None);
/// assert_eq!(fields[5].ty, Some(FieldType::Int));
/// assert!(fields[6].version);
/// ```
///
/// Field keys, in `#[entity(...)]`:
/// - `id`: the entity id (default: the field named `id`);
/// - `version`: the field receives the entity's version and saves are checked against it
///   (optimistic locking). At most one; an integer or `Option` of one; its column is `version`,
///   so it takes none of `id`, `rename`, `index`, `unique`, `default`, `json`, `type`, `skip`.
///   The column name `version` is reserved for it: a field named `version` must carry it;
/// - `index`, `unique`: an index / a unique constraint, created with the table;
/// - `default = <string|int|float|bool literal>`: stored as JSON text, used when the value is
///   absent or null;
/// - `rename = "column"`: the column name (default: the field name);
/// - `skip`: not stored (nor are fields serde does not serialize: `#[serde(skip)]`,
///   `#[serde(skip_serializing)]`);
/// - `json`: store as JSON (also admits tuples and arrays, which serde writes as arrays);
/// - `type = "..."`: the logical type, one of `int`, `float`, `bool`, `text`, `timestamp`,
///   `date`, `time`, `uuid`, `json`, `decimal`, `bytes` (not with `json`).
///
/// Otherwise the logical type comes from the Rust type, by its last path segment, looking
/// through `Option<T>` (nullable) and `Box<T>`:
///
/// | Rust type | `FieldDef::ty` |
/// |---|---|
/// | `i8`…`i64`, `isize`, `u8`…`u64`, `usize` | `Some(Int)` |
/// | `f32`, `f64` | `Some(Float)` |
/// | `bool` | `Some(Bool)` |
/// | `String`, `str`, `char` | `Some(Text)` |
/// | `DateTime<_>` | `Some(Timestamp)` |
/// | `NaiveDateTime` | `Some(Timestamp)`, with `naive_timestamp` |
/// | `NaiveDate` / `NaiveTime` | `Some(Date)` / `Some(Time)` |
/// | `Uuid` | `Some(Uuid)` |
/// | `Decimal` (`rust_decimal`) | `Some(Decimal)` |
/// | `Vec<u8>` | `Some(Bytes)` |
/// | other `Vec<T>`, `VecDeque`, `HashMap`, `BTreeMap`, `HashSet`, `BTreeSet`, `Value`, `Map` (`serde_json`) | `Some(Json)` |
/// | any other named type: a type alias, a newtype, your enums and structs, a type macro | `None`: decided from the serde output at the first save |
///
/// References, pointers, function pointers, trait objects and `impl Trait` are rejected;
/// tuples and arrays need `json` or `type`.
///
/// Serde attributes are read so that `FieldDef::serde_name` is the key serde writes: the
/// struct's `#[serde(rename_all = "...")]` (every serde case convention) and the field's
/// `#[serde(rename = "...")]`, which wins. They never change the column name. A name that serde
/// writes and reads back differently (`rename_all(serialize = ...)` alone, `rename(serialize =
/// "a", deserialize = "b")`) is an error, as are the attributes that make the serialized form
/// other than one key per field: `flatten` on a field, `tag`, `untagged`, `content`,
/// `transparent`, `remote`, `into`, `from`, `try_from` on the struct.
///
/// Column names are case-insensitive on every backend: two columns differing only in case, or a
/// column differing only in case from a system column (`id`, `created_at`, `created_by`,
/// `updated_at`, `updated_by`, `deleted_at`, `version`, `history_timestamp`, `history_user_id`,
/// `history_comment`), are errors. A field named exactly like a system column receives its
/// stored value.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    entity::expand(&input)
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
