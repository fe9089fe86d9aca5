//! Options written in `#[workflow(...)]`, `#[step(...)]`, `#[event(...)]` and `#[one_of(...)]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, LitInt, LitStr, Path, Type};

use crate::errors::Errors;

/// Stores `value` in `slot`, or reports the option as repeated.
fn set_once<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta, errors: &mut Errors) {
    if slot.is_some() {
        let name = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        errors.at(&meta.path, format!("`{name}` is given twice; keep one"));
    } else {
        *slot = Some(value);
    }
}

/// Parses comma-separated options with `each`, collecting errors instead of stopping.
fn parse_options(
    tokens: TokenStream,
    errors: &mut Errors,
    mut each: impl FnMut(&ParseNestedMeta, &mut Errors) -> syn::Result<()>,
) {
    let parser = syn::meta::parser(|meta| each(&meta, errors));
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
}

/// `crate = path`: where generated code finds the runtime.
fn crate_path(krate: Option<Path>) -> Path {
    krate.unwrap_or_else(|| syn::parse_quote!(::workflows))
}

pub(crate) struct WorkflowArgs {
    pub(crate) krate: Path,
    /// Skip the compile-time graph rules (the run-time checks remain).
    pub(crate) unchecked: bool,
    pub(crate) state: Option<Type>,
    pub(crate) start: Option<Type>,
    pub(crate) stop: Option<Type>,
}

pub(crate) fn workflow_args(tokens: TokenStream, errors: &mut Errors) -> WorkflowArgs {
    let (mut krate, mut state, mut start, mut stop) = (None, None, None, None);
    let mut unchecked = None;
    parse_options(tokens, errors, |meta, errors| {
        if meta.path.is_ident("unchecked") {
            set_once(&mut unchecked, true, meta, errors);
        } else if meta.path.is_ident("crate") {
            set_once(&mut krate, meta.value()?.parse()?, meta, errors);
        } else if meta.path.is_ident("state") {
            set_once(&mut state, meta.value()?.parse()?, meta, errors);
        } else if meta.path.is_ident("start") {
            set_once(&mut start, meta.value()?.parse()?, meta, errors);
        } else if meta.path.is_ident("stop") {
            set_once(&mut stop, meta.value()?.parse()?, meta, errors);
        } else {
            return Err(meta.error(
                "unknown #[workflow] option; expected `state = Type`, `start = Type`, `stop = Type`, `crate = path` or `unchecked`",
            ));
        }
        Ok(())
    });
    WorkflowArgs {
        krate: crate_path(krate),
        unchecked: unchecked.unwrap_or(false),
        state,
        start,
        stop,
    }
}

/// A step's name in `catch(..)`: an identifier or a string.
struct StepName(LitStr);

impl syn::parse::Parse for StepName {
    fn parse(input: syn::parse::ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            return Ok(StepName(input.parse()?));
        }
        let ident: syn::Ident = input.parse()?;
        Ok(StepName(LitStr::new(&ident.to_string(), ident.span())))
    }
}

pub(crate) struct StepArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) num_workers: Option<LitInt>,
    pub(crate) retry: Option<Expr>,
    pub(crate) sends: Vec<Type>,
    /// `children(Review, Approve)`: the workflows the step may run as children.
    pub(crate) children: Vec<Type>,
    /// `take = n`: a join fires with the first `n` arrivals.
    pub(crate) take: Option<LitInt>,
    /// `catch(a, "b-c")`: the steps a failure step handles, by name (an identifier, or a
    /// string for a step renamed to something that is not one).
    pub(crate) catch: Option<Vec<LitStr>>,
    /// `max_recoveries = n`.
    pub(crate) max_recoveries: Option<LitInt>,
}

pub(crate) fn step_args(tokens: TokenStream, errors: &mut Errors) -> StepArgs {
    let (mut name, mut num_workers, mut retry, mut take) = (None, None, None, None);
    let (mut catch, mut max_recoveries) = (None, None);
    let mut sends: Option<Vec<Type>> = None;
    let mut children: Option<Vec<Type>> = None;
    parse_options(tokens, errors, |meta, errors| {
        if meta.path.is_ident("name") {
            set_once(&mut name, meta.value()?.parse()?, meta, errors);
        } else if meta.path.is_ident("num_workers") {
            let lit: LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<usize>() {
                Ok(0) | Err(_) => {
                    errors.at(&lit, "`num_workers` must be a whole number of at least 1")
                }
                Ok(_) => set_once(&mut num_workers, lit, meta, errors),
            }
        } else if meta.path.is_ident("retry") {
            set_once(&mut retry, meta.value()?.parse()?, meta, errors);
        } else if meta.path.is_ident("take") {
            let lit: LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<usize>() {
                Ok(0) | Err(_) => errors.at(
                    &lit,
                    "`take` must be a whole number of at least 1: the join fires with that many arrivals",
                ),
                Ok(_) => set_once(&mut take, lit, meta, errors),
            }
        } else if meta.path.is_ident("catch") {
            let content;
            syn::parenthesized!(content in meta.input);
            let steps: Vec<LitStr> =
                syn::punctuated::Punctuated::<StepName, syn::Token![,]>::parse_terminated(
                    &content,
                )?
                .into_iter()
                .map(|name| name.0)
                .collect();
            if steps.is_empty() {
                errors.at(
                    &meta.path,
                    "`catch()` names no step; name the steps whose failures this step handles, or remove `catch` to handle every step no other failure step names",
                );
            }
            set_once(&mut catch, steps, meta, errors);
        } else if meta.path.is_ident("max_recoveries") {
            let lit: LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<u32>() {
                Ok(0) | Err(_) => errors.at(
                    &lit,
                    "`max_recoveries` must be a whole number of at least 1",
                ),
                Ok(_) => set_once(&mut max_recoveries, lit, meta, errors),
            }
        } else if meta.path.is_ident("sends") {
            set_once(&mut sends, type_list(meta)?, meta, errors);
        } else if meta.path.is_ident("children") {
            set_once(&mut children, type_list(meta)?, meta, errors);
        } else {
            return Err(meta.error(
                "unknown #[step] option; expected `name = \"...\"`, `num_workers = N`, `retry = <RetryPolicy>`, `sends(EventA, EventB)`, `children(WorkflowA, WorkflowB)`, `take = N`, `catch(step_a, step_b)` or `max_recoveries = N`",
            ));
        }
        Ok(())
    });
    StepArgs {
        name,
        num_workers,
        retry,
        sends: sends.unwrap_or_default(),
        children: children.unwrap_or_default(),
        take,
        catch,
        max_recoveries,
    }
}

/// The types of an option written `name(A, B)`.
fn type_list(meta: &syn::meta::ParseNestedMeta) -> syn::Result<Vec<Type>> {
    let content;
    syn::parenthesized!(content in meta.input);
    Ok(
        syn::punctuated::Punctuated::<Type, syn::Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect(),
    )
}

/// The role `#[event(...)]` gives a type.
pub(crate) enum Role {
    Plain,
    Start,
    Stop,
    InputRequired { response: Option<Box<Type>> },
    Response,
    Internal,
}

pub(crate) struct EventArgs {
    pub(crate) krate: Path,
    pub(crate) name: Option<LitStr>,
    pub(crate) role: Role,
}

pub(crate) fn event_args(attrs: &[syn::Attribute], errors: &mut Errors) -> EventArgs {
    let (mut krate, mut name) = (None, None);
    let mut role: Option<Role> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
        let tokens = match attr.meta.require_list() {
            Ok(list) => list.tokens.clone(),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        parse_options(tokens, errors, |meta, errors| {
            let mut set_role = |r: Role, errors: &mut Errors| {
                if role.is_some() {
                    errors.at(
                        &meta.path,
                        "an event has one role: choose one of `start`, `stop`, `input_required`, `response` (or `external`), `internal`",
                    );
                } else {
                    role = Some(r);
                }
            };
            if meta.path.is_ident("crate") {
                set_once(&mut krate, meta.value()?.parse()?, meta, errors);
            } else if meta.path.is_ident("name") {
                set_once(&mut name, meta.value()?.parse()?, meta, errors);
            } else if meta.path.is_ident("start") {
                set_role(Role::Start, errors);
            } else if meta.path.is_ident("stop") {
                set_role(Role::Stop, errors);
            } else if meta.path.is_ident("response") || meta.path.is_ident("external") {
                // `external`: any event the caller sends in, answer to a request or not.
                set_role(Role::Response, errors);
            } else if meta.path.is_ident("internal") {
                set_role(Role::Internal, errors);
            } else if meta.path.is_ident("input_required") {
                let mut response = None;
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        if inner.path.is_ident("response") {
                            response = Some(Box::new(inner.value()?.parse::<Type>()?));
                            Ok(())
                        } else {
                            Err(inner.error("expected `response = AnswerType`"))
                        }
                    })?;
                }
                set_role(Role::InputRequired { response }, errors);
            } else {
                return Err(meta.error(
                    "unknown #[event] option; expected `name = \"...\"`, `start`, `stop`, `input_required`, `input_required(response = T)`, `response`, `external`, `internal` or `crate = path`",
                ));
            }
            Ok(())
        });
    }
    EventArgs {
        krate: crate_path(krate),
        name,
        role: role.unwrap_or(Role::Plain),
    }
}

/// `#[one_of(crate = path)]`.
pub(crate) fn one_of_args(attrs: &[syn::Attribute], errors: &mut Errors) -> Path {
    let mut krate = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("one_of")) {
        let tokens = match attr.meta.require_list() {
            Ok(list) => list.tokens.clone(),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        parse_options(tokens, errors, |meta, errors| {
            if meta.path.is_ident("crate") {
                set_once(&mut krate, meta.value()?.parse()?, meta, errors);
                Ok(())
            } else {
                Err(meta.error("unknown #[one_of] option; expected `crate = path`"))
            }
        });
    }
    crate_path(krate)
}
