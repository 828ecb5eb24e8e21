//! The error context both macros report through (serde_derive's `Ctxt`).
//!
//! No step stops at the first mistake: each records every problem here, at the user's tokens,
//! and the entry point calls [`Ctxt::check`] once, which consumes the context and combines
//! everything into one error, so the user sees all of them in one build. A context dropped
//! without `check()` panics: a step that returns early and loses errors is a bug of this crate,
//! and the panic makes the compiler say so instead of expanding code the user's mistakes should
//! have stopped.

use std::fmt::Display;
use std::thread;

use proc_macro2::Span;
use quote::ToTokens;

/// Collects errors, each at the user's tokens, and reports them all at once.
///
/// Dropping it without [`check`](Ctxt::check) panics (unless already panicking), whether or not
/// errors were recorded: every path through a macro must end in `check()`.
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
    /// Set by `check()`, which consumes the context.
    checked: bool,
}

impl Ctxt {
    /// An empty context.
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: Vec::new(),
            checked: false,
        }
    }

    /// Records an error spanning the tokens of `obj` (all of them: a path, a literal, a type).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, obj: T, msg: M) {
        self.syn_error(syn::Error::new_spanned(obj.into_token_stream(), msg));
    }

    /// Records an error at `span` (a token already reduced to its span).
    pub(crate) fn error_at<M: Display>(&mut self, span: Span, msg: M) {
        self.syn_error(syn::Error::new(span, msg));
    }

    /// Records an error produced by syn.
    pub(crate) fn syn_error(&mut self, err: syn::Error) {
        self.errors.push(err);
    }

    /// Consumes the context: `Ok` when nothing was recorded, else every error combined into
    /// one, in the order they were recorded.
    pub(crate) fn check(mut self) -> syn::Result<()> {
        self.checked = true;
        let mut errors = std::mem::take(&mut self.errors).into_iter();
        let Some(mut first) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            first.combine(e);
        }
        Err(first)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !self.checked && !thread::panicking() {
            panic!(
                "dal-macros bug: an error context was dropped without `check()` ({} error(s) unreported)",
                self.errors.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_context_checks_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn errors_come_out_together_in_recording_order() {
        let mut cx = Ctxt::new();
        cx.error_at(Span::call_site(), "first");
        cx.error_spanned_by(quote::quote!(a b), "second");
        let messages: Vec<String> = match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    #[should_panic(expected = "dropped without `check()` (1 error(s) unreported)")]
    fn dropping_a_context_with_errors_unchecked_panics() {
        let mut cx = Ctxt::new();
        cx.error_at(Span::call_site(), "lost");
        drop(cx);
    }

    #[test]
    #[should_panic(expected = "dropped without `check()`")]
    fn dropping_an_empty_context_unchecked_panics_too() {
        drop(Ctxt::new());
    }
}
