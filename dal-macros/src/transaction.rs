//! `#[auto_transaction]`: finds the connection parameter, checks the signature and wraps the
//! body so that it runs inside a transaction — its own, or the caller's when one is open.
//!
//! The generated code only calls the connection's public transaction methods and its
//! `__tx_scope()` guard; what a transaction is stays in `dal`. It keeps its own shape (checks
//! and plan in one pass, then generation) but reports through the derive's `Ctxt`: every
//! problem with the signature in one build, each at its token.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, Pat, PatIdent, ReturnType, Type};

use crate::internals::Ctxt;

/// Entry point of the attribute. On error the item is emitted unchanged next to the errors, so
/// that code calling it does not pile up follow-on errors.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    if !args.is_empty() {
        cx.error_spanned_by(&args, "`#[auto_transaction]` takes no arguments");
    }
    let mut func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(f)) => f,
        Ok(other) => {
            let (what, at) = describe(&other);
            cx.error_spanned_by(
                at,
                format!(
                    "`#[auto_transaction]` applies only to functions: {what}; \
                     use it on an `async fn` with a `&mut Connection` parameter \
                     or a `fn` with a `&mut SyncConnection` parameter"
                ),
            );
            return with_errors(cx, item);
        }
        Err(e) => {
            cx.syn_error(e);
            return with_errors(cx, item);
        }
    };
    let plan = plan(&mut cx, &mut func);
    match (plan, cx.check()) {
        (Some(plan), Ok(())) => generate(func, plan),
        (_, Err(e)) => {
            let errors = e.into_compile_error();
            quote!(#errors #func)
        }
        // `plan` records an error whenever it gives up.
        (None, Ok(())) => func.into_token_stream(),
    }
}

fn with_errors(cx: Ctxt, item: TokenStream) -> TokenStream {
    match cx.check() {
        Ok(()) => item,
        Err(e) => {
            let errors = e.into_compile_error();
            quote!(#errors #item)
        }
    }
}

/// What the expansion needs to know about the function.
struct Plan {
    /// The name the connection is reached by in the generated prologue and epilogue.
    conn: Ident,
    /// How the body sees it: `conn`, `mut conn`, or the user's own pattern.
    rebind: TokenStream,
    /// Span of the connection parameter's type (errors about its methods point there).
    conn_span: Span,
    /// The declared `Result<..>` type.
    ret: Type,
}

/// Validates the signature, strips `#[conn]` and picks the connection parameter. Every problem
/// is recorded in `cx`; `None` when the function cannot be expanded.
fn plan(cx: &mut Ctxt, func: &mut ItemFn) -> Option<Plan> {
    let conn_index = match take_conn_marks(cx, func) {
        Some(marked) => Some(marked),
        None => find_connection(cx, func),
    };
    let ret = result_type(cx, func);
    let ret = ret?;
    let (conn, rebind, conn_span) = bind_connection(func, conn_index?)?;
    Some(Plan {
        conn,
        rebind,
        conn_span,
        ret,
    })
}

/// `Connection` for an `async fn`, `SyncConnection` for a `fn`.
fn wanted_connection(func: &ItemFn) -> &'static str {
    if func.sig.asyncness.is_some() {
        "Connection"
    } else {
        "SyncConnection"
    }
}

/// Removes the `#[conn]` marks from the parameters; the index of the marked one. A mark with
/// arguments, on `self`, or on a second parameter is an error.
fn take_conn_marks(cx: &mut Ctxt, func: &mut ItemFn) -> Option<usize> {
    let name = func.sig.ident.to_string();
    let mut marked: Option<usize> = None;
    for (i, arg) in func.sig.inputs.iter_mut().enumerate() {
        let attrs = match arg {
            FnArg::Typed(p) => &mut p.attrs,
            FnArg::Receiver(r) => &mut r.attrs,
        };
        let mut marks = Vec::new();
        attrs.retain(|a| {
            let is_conn = a.path().is_ident("conn");
            if is_conn {
                marks.push(a.meta.clone());
            }
            !is_conn
        });
        for mark in &marks {
            reject_mark_arguments(cx, mark);
        }
        let Some(mark) = marks.first() else {
            continue;
        };
        if let FnArg::Receiver(r) = arg {
            cx.error_spanned_by(
                r.self_token,
                "`#[conn]` cannot mark `self`: pass the connection as a parameter",
            );
            continue;
        }
        if marked.is_some() {
            cx.error_spanned_by(
                mark.path(),
                format!("`{name}` has more than one parameter marked `#[conn]`"),
            );
        } else {
            marked = Some(i);
        }
    }
    marked
}

/// A `#[conn(...)]` or `#[conn = ...]` mark is an error, at its arguments.
fn reject_mark_arguments(cx: &mut Ctxt, meta: &syn::Meta) {
    const TAKES_NONE: &str = "`#[conn]` takes no arguments";
    match meta {
        syn::Meta::Path(_) => {}
        syn::Meta::List(list) => cx.error_at(list.delimiter.span().join(), TAKES_NONE),
        syn::Meta::NameValue(nv) => {
            let (eq, value) = (&nv.eq_token, &nv.value);
            cx.error_spanned_by(quote!(#eq #value), TAKES_NONE);
        }
    }
}

/// Without a mark: the one parameter of the wanted connection type. None, or several, is an
/// error.
fn find_connection(cx: &mut Ctxt, func: &ItemFn) -> Option<usize> {
    let wanted = wanted_connection(func);
    let inputs = &func.sig.inputs;
    let candidates: Vec<usize> = inputs
        .iter()
        .enumerate()
        .filter(|(_, a)| mut_ref_to(a).as_deref() == Some(wanted))
        .map(|(i, _)| i)
        .collect();
    let rest = match candidates.as_slice() {
        [one] => return Some(*one),
        [] => {
            no_connection_error(cx, func);
            return None;
        }
        [_, rest @ ..] => rest,
    };
    let names: Vec<String> = candidates
        .iter()
        .filter_map(|&i| inputs.iter().nth(i))
        .map(param_name)
        .collect();
    for arg in rest.iter().filter_map(|&i| inputs.iter().nth(i)) {
        cx.error_spanned_by(
            arg,
            format!(
                "`#[auto_transaction]` function `{}` has several \
                 `&mut {wanted}` parameters ({}); \
                 mark the one that carries the transaction with `#[conn]`",
                func.sig.ident,
                names.join(", ")
            ),
        );
    }
    None
}

/// The declared `Result<..>` type; anything else is an error.
fn result_type(cx: &mut Ctxt, func: &ItemFn) -> Option<Type> {
    let name = &func.sig.ident;
    match &func.sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => Some((**ty).clone()),
        ReturnType::Type(_, ty) => {
            cx.error_spanned_by(
                ty,
                format!(
                    "`#[auto_transaction]` function `{name}` must return `Result<T, E>` \
                     with `E: From<dal::Error>`, not `{}`",
                    ty.to_token_stream()
                        .to_string()
                        .replace(" < ", "<")
                        .replace(" >", ">")
                ),
            );
            None
        }
        ReturnType::Default => {
            cx.error_spanned_by(
                name,
                format!(
                    "`#[auto_transaction]` function `{name}` must return `Result<T, E>` \
                     with `E: From<dal::Error>`; it returns `()`"
                ),
            );
            None
        }
    }
}

/// The name the expansion reaches the connection parameter at `index` by, how the body sees
/// it, and the span of its type. A pattern other than a plain name is moved into the body.
fn bind_connection(func: &mut ItemFn, index: usize) -> Option<(Ident, TokenStream, Span)> {
    let Some(FnArg::Typed(param)) = func.sig.inputs.iter_mut().nth(index) else {
        return None;
    };
    let conn_span = param.ty.span();
    let (conn, rebind) = match &mut *param.pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            mutability,
            ident,
            ..
        }) => {
            // `mut` moves to the body's binding, where a reassignment would happen.
            let m = mutability.take();
            (ident.clone(), quote!(#m #ident))
        }
        other => {
            let ident = Ident::new("__dal_conn", Span::mixed_site());
            let pat = other.to_token_stream();
            *other = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: ident.clone(),
                subpat: None,
            });
            (ident, pat)
        }
    };
    Some((conn, rebind, conn_span))
}

/// Neither a marked parameter nor one of the wanted connection type.
fn no_connection_error(cx: &mut Ctxt, func: &ItemFn) {
    let name = &func.sig.ident;
    let is_async = func.sig.asyncness.is_some();
    let params = func.sig.paren_token.span.join();
    if is_async {
        cx.syn_error(syn::Error::new(
            params,
            format!(
                "`#[auto_transaction]` function `{name}` has no `&mut Connection` parameter; \
                 add one, or mark the connection parameter with `#[conn]`"
            ),
        ));
        return;
    }
    let takes_async_conn = func
        .sig
        .inputs
        .iter()
        .any(|a| mut_ref_to(a).as_deref() == Some("Connection"));
    let hint = if takes_async_conn {
        "a `&mut Connection` needs an `async fn`"
    } else {
        "make it an `async fn` taking `&mut Connection`, or give it a `&mut SyncConnection` parameter"
    };
    let at = {
        let fn_token = &func.sig.fn_token;
        quote!(#fn_token #name)
    };
    cx.error_spanned_by(
        at,
        format!(
            "`#[auto_transaction]` function `{name}` is not `async` and has no \
             `&mut SyncConnection` parameter; {hint}"
        ),
    );
}

/// The last path segment of `T` when `arg` is `_: &mut T`.
fn mut_ref_to(arg: &FnArg) -> Option<String> {
    let FnArg::Typed(p) = arg else { return None };
    let Type::Reference(r) = strip(&p.ty) else {
        return None;
    };
    r.mutability?;
    match strip(&r.elem) {
        Type::Path(tp) => tp.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip(&g.elem),
        Type::Paren(p) => strip(&p.elem),
        other => other,
    }
}

fn is_result(ty: &Type) -> bool {
    match strip(ty) {
        Type::Path(tp) => tp.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    }
}

fn param_name(arg: &FnArg) -> String {
    match arg {
        FnArg::Typed(p) => format!("`{}`", p.pat.to_token_stream()),
        FnArg::Receiver(_) => "`self`".to_owned(),
    }
}

/// A short description of a non-function item, and the tokens to point at.
fn describe(item: &Item) -> (String, TokenStream) {
    macro_rules! named {
        ($kind:literal, $tok:expr, $ident:expr) => {{
            let (tok, ident) = (&$tok, &$ident);
            (format!("`{}` is {}", ident, $kind), quote!(#tok #ident))
        }};
    }
    match item {
        Item::Struct(i) => named!("a struct", i.struct_token, i.ident),
        Item::Enum(i) => named!("an enum", i.enum_token, i.ident),
        Item::Union(i) => named!("a union", i.union_token, i.ident),
        Item::Trait(i) => named!("a trait", i.trait_token, i.ident),
        Item::Mod(i) => named!("a module", i.mod_token, i.ident),
        Item::Const(i) => named!("a constant", i.const_token, i.ident),
        Item::Static(i) => named!("a static", i.static_token, i.ident),
        Item::Type(i) => named!("a type alias", i.type_token, i.ident),
        Item::Impl(i) => {
            let (imp, ty) = (&i.impl_token, &i.self_ty);
            (
                "this is an impl block (put the attribute on its methods)".to_owned(),
                quote!(#imp #ty),
            )
        }
        other => (
            "this is not a function with a body".to_owned(),
            other.to_token_stream(),
        ),
    }
}

/// A local of the expansion: `mixed_site`, invisible to the user's body.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// Wraps the body.
fn generate(func: ItemFn, plan: Plan) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let is_async = sig.asyncness.is_some();
    let (own, scope, result, end, err, guard) = (
        local("__dal_own"),
        local("__dal_scope"),
        local("__dal_result"),
        local("__dal_end"),
        local("__dal_err"),
        local("__dal_guard"),
    );
    // Errors about the connection's methods point at its parameter, errors about the missing
    // `From<dal::Error>` at the return type.
    let from = quote_spanned!(plan.ret.span()=> ::core::convert::From::from);
    let aw = if is_async { quote!(.await) } else { quote!() };
    let (in_tx, begin, commit, rollback) = (
        plan.call("in_transaction"),
        plan.call("begin_transaction"),
        plan.call("commit_transaction"),
        plan.call("rollback_transaction"),
    );
    let (make_scope, run_body) = scope_and_body(&plan, &block, is_async, &from);
    let ret = &plan.ret;
    quote! {
        #(#attrs)*
        #vis #sig {
            let #own = !#in_tx;
            if #own {
                if let ::core::result::Result::Err(#err) = #begin #aw {
                    return ::core::result::Result::Err(#from(#err));
                }
            }
            // Armed until the end: dropped early (panic, cancelled future), it marks the
            // transaction for rollback.
            let #scope = if #own { #make_scope } else { ::core::option::Option::None };
            let #result: #ret = #run_body;
            if #own {
                let #end = match &#result {
                    ::core::result::Result::Ok(_) => #commit #aw,
                    ::core::result::Result::Err(_) => #rollback #aw,
                };
                if let ::core::option::Option::Some(#guard) = #scope {
                    #guard.disarm();
                }
                if let (::core::result::Result::Ok(_), ::core::result::Result::Err(#err)) =
                    (&#result, #end)
                {
                    return ::core::result::Result::Err(#from(#err));
                }
            }
            #result
        }
    }
}

impl Plan {
    /// `conn.method()`, spanned at the connection parameter's type.
    fn call(&self, method: &str) -> TokenStream {
        let (conn, span) = (&self.conn, self.conn_span);
        let method = Ident::new(method, span);
        quote_spanned!(span=> #conn.#method())
    }
}

/// The expression arming the rollback guard (an `Option`), and the body run with the
/// connection rebound as the user wrote it: an `async move` block typed as the declared result
/// (async), or a closure (blocking, where getting the guard can fail).
fn scope_and_body(
    plan: &Plan,
    block: &syn::Block,
    is_async: bool,
    from: &TokenStream,
) -> (TokenStream, TokenStream) {
    let Plan {
        conn, rebind, ret, ..
    } = plan;
    let tx_scope = plan.call("__tx_scope");
    if is_async {
        let typed = local("__dal_typed");
        let make_scope = quote!(::core::option::Option::Some(#tx_scope));
        let run_body = quote! {{
            fn #typed<__DalT, __DalF: ::core::future::Future<Output = __DalT>>(
                f: __DalF,
            ) -> __DalF {
                f
            }
            #[allow(unused_mut)]
            let #rebind = &mut *#conn;
            #typed::<#ret, _>(async move #block).await
        }};
        return (make_scope, run_body);
    }
    let (guard, err) = (local("__dal_guard"), local("__dal_err"));
    let rollback = plan.call("rollback_transaction");
    let make_scope = quote! {
        match #tx_scope {
            ::core::result::Result::Ok(#guard) => ::core::option::Option::Some(#guard),
            ::core::result::Result::Err(#err) => {
                let _ = #rollback;
                return ::core::result::Result::Err(#from(#err));
            }
        }
    };
    let run_body = quote! {{
        #[allow(unused_mut)]
        let #rebind = &mut *#conn;
        (move || -> #ret #block)()
    }};
    (make_scope, run_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(src: &str) -> Result<(String, String), String> {
        let mut func: ItemFn = syn::parse_str(src).unwrap();
        let mut cx = Ctxt::new();
        let plan = plan(&mut cx, &mut func);
        cx.check().map_err(|e| e.to_string())?;
        let plan = plan.ok_or("no plan")?;
        Ok((plan.conn.to_string(), plan.rebind.to_string()))
    }

    #[test]
    fn the_connection_parameter_is_found_by_type_or_by_mark() {
        let ok = |src: &str| plan_of(src).unwrap();
        assert_eq!(
            ok("async fn f(n: i64, c: &mut dal::Connection) -> dal::Result<()> {}").0,
            "c"
        );
        assert_eq!(
            ok("fn f(c: &mut SyncConnection, d: &mut Connection) -> Result<(), E> {}").0,
            "c"
        );
        assert_eq!(
            ok("async fn f(a: &mut Connection, #[conn] mut b: &mut Connection) -> Result<(), E> {}"),
            ("b".to_owned(), "mut b".to_owned())
        );
        // A pattern that is not a plain name is rebound inside the body.
        assert_eq!(
            ok("async fn f(#[conn] (c): &mut Connection) -> Result<(), E> {}"),
            ("__dal_conn".to_owned(), "(c)".to_owned())
        );
    }

    #[test]
    fn bad_signatures_are_reported_together() {
        let e =
            plan_of("async fn f(a: &mut Connection, b: &mut Connection) -> i64 {}").unwrap_err();
        assert!(e.contains("several"), "{e}");
        let e = plan_of("async fn f(#[conn] &mut self) -> Result<(), E> {}").unwrap_err();
        assert!(e.contains("cannot mark `self`"), "{e}");
    }

    #[test]
    fn expansion_is_one_function_with_the_same_signature() {
        for (src, is_async) in [
            (
                "pub async fn f(&self, #[conn] c: &mut Connection) -> Result<(), E> { Ok(()) }",
                true,
            ),
            (
                "fn g(c: &mut SyncConnection) -> dal::Result<i32> { Ok(1) }",
                false,
            ),
        ] {
            let out = expand(TokenStream::new(), src.parse().unwrap());
            let func: ItemFn = syn::parse2(out).expect("a function");
            assert_eq!(func.sig.asyncness.is_some(), is_async);
            let text = func.to_token_stream().to_string();
            assert!(!text.contains("# [conn]"), "{text}");
            assert!(text.contains("commit_transaction"), "{text}");
        }
        let out = expand(quote!(retries = 3), "async fn f() {}".parse().unwrap()).to_string();
        assert!(out.contains("takes no arguments"), "{out}");
    }
}
