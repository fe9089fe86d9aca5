//! Rules over a parsed workflow that do not depend on how it is expanded.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{ItemImpl, Type};

use crate::ast::{StepModel, self_span};
use crate::attr::WorkflowArgs;
use crate::errors::Errors;

/// The start and stop event types of a workflow.
pub(crate) struct Ends {
    pub(crate) start: Type,
    pub(crate) stop: Type,
}

/// Finds every `StopEvent<...>` written in a type, however deeply nested.
#[derive(Default)]
struct FindNamed<'a> {
    ident: &'static str,
    found: Vec<&'a syn::TypePath>,
}

impl<'a> Visit<'a> for FindNamed<'a> {
    fn visit_type_path(&mut self, ty: &'a syn::TypePath) {
        if ty.qself.is_none()
            && ty
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == self.ident)
        {
            self.found.push(ty);
        } else {
            syn::visit::visit_type_path(self, ty);
        }
    }
}

fn find<'a>(ident: &'static str, types: impl Iterator<Item = &'a Type>) -> Vec<&'a syn::TypePath> {
    let mut finder = FindNamed {
        ident,
        found: Vec::new(),
    };
    for ty in types {
        finder.visit_type(ty);
    }
    finder.found
}

fn same(a: &impl ToTokens, b: &impl ToTokens) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

/// Checks the steps as a whole and works out the start and stop types.
pub(crate) fn check(
    item: &ItemImpl,
    args: &WorkflowArgs,
    steps: &[StepModel],
    errors: &mut Errors,
) -> Option<Ends> {
    if item.trait_.is_some() {
        errors.at(
            &item.self_ty,
            "#[workflow] goes on an inherent impl block (`impl MyWorkflow { ... }`), not on a trait impl",
        );
        return None;
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(first) = steps[..i]
            .iter()
            .find(|s| s.name.value() == step.name.value())
        {
            errors.at(
                &step.name,
                format!(
                    "two steps are named `{}` (methods `{}` and `{}`); step names must be unique: rename one with #[step(name = \"...\")]",
                    step.name.value(),
                    first.method,
                    step.method
                ),
            );
        }
    }
    if steps.is_empty() {
        if errors.is_empty() {
            errors.push(syn::Error::new(
                self_span(item),
                "this workflow has no steps; mark its async methods with #[step]",
            ));
        }
        return None;
    }

    let start = match &args.start {
        Some(ty) => ty.clone(),
        None => match find("StartEvent", steps.iter().map(|s| &s.event)).first() {
            Some(path) => Type::Path((*path).clone()),
            None => {
                let krate = &args.krate;
                syn::parse_quote!(#krate::StartEvent)
            }
        },
    };

    let stop = match &args.stop {
        Some(ty) => ty.clone(),
        None => {
            let found = find("StopEvent", steps.iter().map(|s| &s.output));
            let Some(first) = found.first() else {
                errors.push(syn::Error::new(
                    self_span(item),
                    "no step of this workflow returns a `StopEvent<T>`, so a run could never end; return one from a step, or name your own stop event with #[workflow(stop = MyStop)]",
                ));
                return None;
            };
            for other in &found[1..] {
                if !same(*first, *other) {
                    errors.at(
                        other,
                        format!(
                            "a workflow has one stop event type, but steps return both `{}` and `{}`; return the same type from every step that ends the run",
                            first.to_token_stream(),
                            other.to_token_stream()
                        ),
                    );
                }
            }
            Type::Path((*first).clone())
        }
    };
    Some(Ends { start, stop })
}
