//! Machinery shared by the macros: the error context every step reports through.

mod ctxt;

pub(crate) use ctxt::Ctxt;
