//! Rules over a parsed workflow that do not depend on how it is expanded.

use syn::{ItemImpl, Type};

use crate::ast::{StepModel, self_span};
use crate::attr::WorkflowArgs;
use crate::errors::Errors;

/// The start and stop event types of a workflow, when given explicitly; otherwise they are
/// inferred from the step signatures at the type level.
pub(crate) struct Ends {
    pub(crate) start: Option<Type>,
    pub(crate) stop: Option<Type>,
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

    Some(Ends {
        start: args.start.clone(),
        stop: args.stop.clone(),
    })
}
