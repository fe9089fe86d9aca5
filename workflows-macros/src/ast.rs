//! The model of a `#[workflow]` impl block: its steps and their signatures.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, ReceiverKind, ReturnType, Type};

use crate::attr::{StepArgs, step_args};
use crate::errors::Errors;

pub(crate) struct StepModel {
    pub(crate) method: syn::Ident,
    /// The step's public name.
    pub(crate) name: LitStr,
    pub(crate) num_workers: usize,
    pub(crate) retry: Option<syn::Expr>,
    pub(crate) sends: Vec<Type>,
    /// `#[step(take = n)]`, for a join.
    pub(crate) take: Option<syn::LitInt>,
    /// The context parameter's type (`&Context<...>`), when the step takes one.
    pub(crate) ctx: Option<Type>,
    /// The event parameter's type.
    pub(crate) event: Type,
    /// The return type (`()` when none is written).
    pub(crate) output: Type,
}

/// Whether `attr` is `#[step]`, `#[step(...)]` or a path ending in `step`.
fn is_step_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|seg| seg.ident == "step")
}

/// Removes the `#[step]` attributes from `item`'s methods and returns a model of each step.
/// Signature mistakes are recorded in `errors`; such steps stay in the model when their event
/// type is known, so that the workflow's type can still be generated (see `expand`).
pub(crate) fn parse_steps(item: &mut ItemImpl, errors: &mut Errors) -> Vec<StepModel> {
    let mut steps = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let step_attrs: Vec<syn::Attribute> = method
            .attrs
            .iter()
            .filter(|a| is_step_attr(a))
            .cloned()
            .collect();
        if step_attrs.is_empty() {
            continue;
        }
        method.attrs.retain(|a| !is_step_attr(a));
        for extra in &step_attrs[1..] {
            errors.at(
                extra,
                "this method is already marked #[step]; remove the repeated attribute",
            );
        }
        let tokens = match &step_attrs[0].meta {
            syn::Meta::Path(_) => TokenStream::new(),
            syn::Meta::List(list) => list.tokens.clone(),
            syn::Meta::NameValue(nv) => {
                errors.at(
                    nv,
                    "write step options in parentheses: #[step(num_workers = 2)]",
                );
                TokenStream::new()
            }
        };
        if let Some(cfg) = method.attrs.iter().find(|a| a.path().is_ident("cfg")) {
            errors.at(
                cfg,
                "#[cfg] on a step is not supported: the step table would refer to a removed method; put the #[cfg] on the whole impl block, or branch inside the step",
            );
            continue;
        }
        let args = step_args(tokens, errors);
        if let Some(step) = parse_signature(method, args, errors) {
            steps.push(step);
        }
    }
    steps
}

fn parse_signature(method: &ImplItemFn, args: StepArgs, errors: &mut Errors) -> Option<StepModel> {
    let sig = &method.sig;
    let name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!("step `{name}` must be an `async fn`; write `async fn {name}(...)`"),
        );
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            format!("step `{name}` cannot have generic parameters; put generics on the workflow type instead"),
        );
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(recv)) => match &recv.kind {
            ReceiverKind::Reference(_, _, None) => {}
            ReceiverKind::Reference(_, _, Some(mutability)) => errors.at(
                mutability,
                format!("step `{name}` takes `&mut self`, but steps run concurrently and share the workflow; take `&self` and keep mutable data in the run's state (`ctx.edit_state`)"),
            ),
            _ => errors.at(
                recv,
                format!("step `{name}` must take `&self`; the workflow value is shared by all runs"),
            ),
        },
        Some(other) => errors.at(
            other,
            format!("step `{name}` must take `&self` first; steps are methods of the workflow"),
        ),
        None => errors.at(
            &sig.ident,
            format!("step `{name}` must take `&self` and an event, e.g. `async fn {name}(&self, ev: StartEvent)`"),
        ),
    }
    let params: Vec<&syn::PatType> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let (ctx, event) = match params.as_slice() {
        [] => {
            errors.at(
                &sig.ident,
                format!("step `{name}` has no event parameter; add the event it handles, e.g. `ev: StartEvent`"),
            );
            (None, None)
        }
        [event] => (None, Some(*event)),
        [ctx, event] => {
            if !matches!(&*ctx.ty, Type::Reference(_)) {
                errors.at(
                    &ctx.ty,
                    format!("step `{name}` takes two events, but a step handles one event; to accept one of several, use an enum with #[derive(OneOf)]; a context parameter is taken by reference: `ctx: &Context`"),
                );
            }
            (Some(&*ctx.ty), Some(*event))
        }
        [_, _, extra, ..] => {
            errors.at(
                extra,
                format!("step `{name}` has too many parameters; a step takes `&self`, optionally `ctx: &Context`, and one event"),
            );
            (None, None)
        }
    };
    if let Some(event) = event
        && let Type::Reference(r) = &*event.ty
    {
        errors.at(
            r.and_token,
            format!("step `{name}` must take its event by value; remove the `&`"),
        );
    }
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote_spanned!(sig.ident.span()=> ()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let step_name = args
        .name
        .unwrap_or_else(|| LitStr::new(&name.to_string(), name.span()));
    Some(StepModel {
        method: name.clone(),
        name: step_name,
        num_workers: args
            .num_workers
            .and_then(|n| n.base10_parse().ok())
            .unwrap_or(4),
        retry: args.retry,
        sends: args.sends,
        take: args.take,
        ctx: ctx.cloned(),
        event: match &*event?.ty {
            // A by-reference event is a reported mistake; model the event type itself.
            Type::Reference(r) => (*r.elem).clone(),
            ty => ty.clone(),
        },
        output,
    })
}

/// The span to blame for a workflow-level problem: the impl's self type.
pub(crate) fn self_span(item: &ItemImpl) -> Span {
    item.self_ty.span()
}
