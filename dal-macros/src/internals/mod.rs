//! The derive's model and validation, laid out like `serde_derive`'s `internals`:
//!
//! 1. `ast` parses the input into a model: the container and its fields, with their attributes
//!    (`attr`), what each type says (`ty`) and every name resolved (`case`);
//! 2. `check` validates the model as a whole;
//! 3. `crate::entity` generates code from a validated model.
//!
//! Every step records its errors in one [`Ctxt`], which the entry point checks between
//! validation and generation; `#[auto_transaction]` reports through the same context.

pub(crate) mod ast;
pub(crate) mod attr;
mod case;
pub(crate) mod check;
mod ctxt;
pub(crate) mod ty;

pub(crate) use ctxt::Ctxt;
