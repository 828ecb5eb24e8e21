//! Statements per backend for each change.
