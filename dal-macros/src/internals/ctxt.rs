//! The error context both macros report through (serde_derive's `Ctxt`, plus ordering).
//!
//! No step stops at the first mistake: parsing (`attr`, `ast`) and validation (`check`) record
//! every problem here, at the user's tokens, and the entry point calls [`Ctxt::check`] once, which
//! consumes the context and combines everything into one error, so the user sees all of them in
//! one build. A context dropped without `check()` panics: a step that returns early and loses
//! errors is a bug of this crate, and the panic makes the compiler say so instead of expanding
//! code the user's mistakes should have stopped.
//!
//! Errors are ordered by [`Site`] — the item, the container, each field in declaration order
//! (within a field: the attribute that caused it, then the field as a whole), then the checks
//! across fields — and by the order they were recorded within a site. So the order the user sees
//! is the input's, whichever step found the problem.

use std::fmt::Display;
use std::thread;

use proc_macro2::Span;
use quote::ToTokens;

/// Where an error belongs, for ordering (derived `Ord`: variants in declaration order, then
/// their data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Site {
    /// The item itself: what kind of item it is. Also the only site of `#[auto_transaction]`,
    /// whose errors keep the order they are recorded in.
    #[default]
    Item,
    /// The container's attributes, then the container as a whole.
    Container,
    /// The field at `index` (in declaration order), in one of its `part`s.
    Field { index: usize, part: Part },
    /// Checks across all fields (column and key collisions).
    AllFields,
}

/// Which part of a field an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Part {
    /// The field's attribute at this index (among all the field's attributes).
    Attr(usize),
    /// The field as a whole: how its attributes combine, its type, its place in the struct.
    Whole,
}

impl Site {
    /// The field's attribute at `attr`.
    pub(crate) fn field_attr(index: usize, attr: usize) -> Site {
        Site::Field {
            index,
            part: Part::Attr(attr),
        }
    }

    /// The field as a whole.
    pub(crate) fn field(index: usize) -> Site {
        Site::Field {
            index,
            part: Part::Whole,
        }
    }
}

/// Collects errors, each at the user's tokens, and reports them all at once.
///
/// Dropping it without [`check`](Ctxt::check) panics (unless already panicking), whether or not
/// errors were recorded: every path through a macro must end in `check()`.
pub(crate) struct Ctxt {
    errors: Vec<(Site, syn::Error)>,
    /// Where errors recorded now belong.
    site: Site,
    /// Set by `check()`, which consumes the context.
    checked: bool,
}

impl Ctxt {
    /// An empty context, at [`Site::Item`].
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: Vec::new(),
            site: Site::Item,
            checked: false,
        }
    }

    /// Errors recorded from now on belong to `site`.
    pub(crate) fn set_site(&mut self, site: Site) {
        self.site = site;
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
        self.errors.push((self.site, err));
    }

    /// Consumes the context: `Ok` when nothing was recorded, else every error combined into
    /// one, in site order.
    pub(crate) fn check(mut self) -> syn::Result<()> {
        self.checked = true;
        let mut errors = std::mem::take(&mut self.errors);
        // Stable: within a site, errors keep the order they were recorded in.
        errors.sort_by_key(|(site, _)| *site);
        let mut errors = errors.into_iter().map(|(_, e)| e);
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

    fn messages(cx: Ctxt) -> Vec<String> {
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn an_empty_context_checks_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn errors_come_out_in_site_order_then_recording_order() {
        let mut cx = Ctxt::new();
        cx.set_site(Site::AllFields);
        cx.error_at(Span::call_site(), "names");
        cx.set_site(Site::field(1));
        cx.error_at(Span::call_site(), "field 1");
        cx.set_site(Site::field(0));
        cx.error_at(Span::call_site(), "field 0 whole, first");
        cx.set_site(Site::field_attr(1, 3));
        cx.error_at(Span::call_site(), "field 1 attr 3");
        cx.set_site(Site::field_attr(0, 0));
        cx.error_at(Span::call_site(), "field 0 attr 0");
        cx.set_site(Site::field(0));
        cx.error_at(Span::call_site(), "field 0 whole, second");
        cx.set_site(Site::Container);
        cx.error_at(Span::call_site(), "container");
        cx.set_site(Site::Item);
        cx.error_at(Span::call_site(), "item");
        assert_eq!(
            messages(cx),
            [
                "item",
                "container",
                "field 0 attr 0",
                "field 0 whole, first",
                "field 0 whole, second",
                "field 1 attr 3",
                "field 1",
                "names"
            ]
        );
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
