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
    /// `#[step(children(A, B))]`: the workflows the step may run as children.
    pub(crate) children: Vec<Type>,
    /// `#[step(take = n)]`, for a join.
    pub(crate) take: Option<syn::LitInt>,
    /// `#[step(catch(a, b))]`, for a failure step.
    pub(crate) catch: Option<Vec<LitStr>>,
    /// `#[step(max_recoveries = n)]`, for a failure step.
    pub(crate) max_recoveries: Option<syn::LitInt>,
    /// The context parameter's type (`&Context<...>`), when the step takes one.
    pub(crate) ctx: Option<Type>,
    /// The event parameter's type; for a step taking several events, the first's.
    pub(crate) event: Type,
    /// For a step taking several events: every event parameter's type, in order.
    pub(crate) set: Vec<Type>,
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
    // A context comes first, by reference; every other parameter is an event, by value.
    let (ctx, events) = match params.split_first() {
        Some((first, rest)) if matches!(&*first.ty, Type::Reference(_)) => (Some(&*first.ty), rest),
        _ => (None, params.as_slice()),
    };
    if events.is_empty() {
        errors.at(
            &sig.ident,
            format!("step `{name}` has no event parameter; add the event it handles, e.g. `ev: StartEvent`"),
        );
    }
    for event in events {
        if let Type::Reference(r) = &*event.ty {
            errors.at(
                r.and_token,
                format!("step `{name}` must take its events by value (a context, taken by reference, comes first); remove the `&`"),
            );
        }
    }
    let is_vec = |ty: &Type| matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Vec"));
    if events.len() > 1 {
        for event in events {
            if is_vec(&event.ty) {
                errors.at(
                    &event.ty,
                    format!("step `{name}` takes several events and a `Vec`: a join (`Vec<E>`) is a step's only event, and each event of a step taking several is one event by value"),
                );
            }
        }
    }
    let event = events.first();
    // By-reference events are reported mistakes; model the event types themselves.
    let by_value = |ty: &Type| match ty {
        Type::Reference(r) => (*r.elem).clone(),
        ty => ty.clone(),
    };
    // A `Vec` among several events is a reported mistake: leave it out of the model, so that
    // it is reported once.
    let set: Vec<Type> = if events.len() > 1 {
        events
            .iter()
            .map(|e| by_value(&e.ty))
            .filter(|ty| !is_vec(ty))
            .collect()
    } else {
        Vec::new()
    };
    if set.len() > 1
        && let Some(take) = &args.take
    {
        errors.at(
            take,
            format!(
                "`take` applies to a join, and step `{name}` takes several events; remove `take`"
            ),
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
        children: args.children,
        take: args.take,
        catch: args.catch,
        max_recoveries: args.max_recoveries,
        ctx: ctx.cloned(),
        event: by_value(&event?.ty),
        set,
        output,
    })
}

/// The span to blame for a workflow-level problem: the impl's self type.
pub(crate) fn self_span(item: &ItemImpl) -> Span {
    item.self_ty.span()
}
