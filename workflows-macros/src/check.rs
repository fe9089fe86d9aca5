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
    check_catches(steps, errors);
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

/// `#[step(catch(..))]`: every name is a step of this workflow, other than the failure step
/// itself, and no step is named by two failure steps.
fn check_catches(steps: &[StepModel], errors: &mut Errors) {
    let names: Vec<String> = steps.iter().map(|s| s.name.value()).collect();
    let mut claimed: Vec<(String, String)> = Vec::new();
    for step in steps {
        let Some(catch) = &step.catch else {
            continue;
        };
        for target in catch {
            let target_name = target.value();
            if !names.contains(&target_name) {
                errors.at(
                    target,
                    format!(
                        "no step of this workflow is named `{target_name}`; `catch` names steps by their names: {}",
                        names.join(", ")
                    ),
                );
            } else if target_name == step.name.value() {
                errors.at(
                    target,
                    format!(
                        "failure step `{target_name}` cannot handle its own failures: a failing failure step ends the run"
                    ),
                );
            } else if let Some((_, owner)) = claimed.iter().find(|(n, _)| *n == target_name) {
                errors.at(
                    target,
                    format!(
                        "step `{target_name}` is already handled by failure step `{owner}`; a step's failures go to one failure step: remove it from one `catch`"
                    ),
                );
            } else {
                claimed.push((target_name, step.name.value()));
            }
        }
    }
}
