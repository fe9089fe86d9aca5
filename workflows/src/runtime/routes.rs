//! The routing table of a workflow: which steps accept which event type.
//!
//! Built once per [`Runner`](crate::Runner) from the static step table that `#[workflow]`
//! generates; dispatch compares type ids, never strings.

use std::any::TypeId;

use crate::StepInfo;

pub(crate) struct Routes {
    workflow: &'static str,
    fingerprint: String,
    steps: &'static [StepInfo],
    /// The workflow's stop event type: sending one ends the run.
    stop: TypeId,
    by_type: Vec<(TypeId, Box<[usize]>)>,
    /// For each step: the joins bound to its fan-outs (empty for a step that does not fan out).
    joins_of: Box<[Box<[usize]>]>,
    /// For each step: the failure steps its failures go to (the one naming it in `catch`, else
    /// every failure step that names none). Empty for a failure step: its failure ends the run.
    failure_steps_of: Box<[Box<[usize]>]>,
    /// Whether any step is a join or takes several events (if not, dispatch skips looking).
    has_gathering: bool,
}

impl Routes {
    pub(crate) fn new(workflow: &'static str, steps: &'static [StepInfo], stop: TypeId) -> Self {
        let mut by_type: Vec<(TypeId, Vec<usize>)> = Vec::new();
        for (index, step) in steps.iter().enumerate() {
            for info in step.accepts {
                match by_type.iter_mut().find(|(ty, _)| *ty == info.type_id) {
                    Some((_, receivers)) => receivers.push(index),
                    None => by_type.push((info.type_id, vec![index])),
                }
            }
        }
        // One walk for every fan-out step's level.
        let levels = crate::graph_check::levels(steps);
        let joins_of = steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let Some(bound) = levels.get(index).filter(|_| step.fans_out) else {
                    return Box::default();
                };
                (0..steps.len())
                    .filter(|&j| bound.get(j).copied().unwrap_or(false))
                    .collect()
            })
            .collect();
        let failed = TypeId::of::<crate::StepFailed>();
        let is_failure_step = |s: &StepInfo| s.accepts_type(failed);
        let failure_steps_of = steps
            .iter()
            .map(|step| {
                if is_failure_step(step) {
                    return Box::default();
                }
                let scoped = steps
                    .iter()
                    .position(|h| is_failure_step(h) && h.catches.contains(&step.name));
                match scoped {
                    Some(handler) => Box::from([handler]),
                    None => (0..steps.len())
                        .filter(|&h| is_failure_step(&steps[h]) && steps[h].catches.is_empty())
                        .collect(),
                }
            })
            .collect();
        Routes {
            workflow,
            joins_of,
            failure_steps_of,
            has_gathering: steps
                .iter()
                .any(|s| !matches!(s.fires, crate::Fires::PerEvent)),
            fingerprint: crate::snapshot::fingerprint(workflow, steps),
            steps,
            stop,
            by_type: by_type
                .into_iter()
                .map(|(ty, r)| (ty, r.into_boxed_slice()))
                .collect(),
        }
    }

    pub(crate) fn workflow(&self) -> &'static str {
        self.workflow
    }

    /// The hash of the step table that snapshots carry.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// The steps accepting events of type `ty`, in declaration order.
    pub(crate) fn receivers(&self, ty: TypeId) -> &[usize] {
        self.by_type
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, r)| &**r)
            .unwrap_or(&[])
    }

    /// The joins that fire when a fan-out of `step` ends.
    pub(crate) fn joins_of(&self, step: usize) -> &[usize] {
        &self.joins_of[step]
    }

    /// The failure steps that step `step`'s failures go to (none for a failure step).
    pub(crate) fn failure_steps_of(&self, step: usize) -> &[usize] {
        &self.failure_steps_of[step]
    }

    /// Whether some step of the workflow is a join or takes several events.
    #[inline]
    pub(crate) fn has_gathering(&self) -> bool {
        self.has_gathering
    }

    /// Whether step `step` takes several events.
    #[inline]
    pub(crate) fn is_set(&self, step: usize) -> bool {
        matches!(self.steps[step].fires, crate::Fires::PerSet)
    }

    /// Whether step `step` is a join.
    #[inline]
    pub(crate) fn is_join(&self, step: usize) -> bool {
        self.steps[step].fires.is_join()
    }

    pub(crate) fn is_stop(&self, ty: TypeId) -> bool {
        ty == self.stop
    }

    pub(crate) fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    pub(crate) fn step_names(&self) -> Vec<String> {
        self.steps.iter().map(|s| s.name.to_owned()).collect()
    }

    pub(crate) fn accepted_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for step in self.steps {
            for info in step.accepts {
                if !names.iter().any(|n| n == info.name) {
                    names.push(info.name.to_owned());
                }
            }
        }
        names
    }
}
