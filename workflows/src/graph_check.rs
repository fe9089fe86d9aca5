//! Graph rules evaluated at compile time over a workflow's step table (a `const`).
//!
//! `#[workflow]` emits, for each step, constants that call these functions and panic with
//! their message, spanned at the step's own tokens: a broken graph then fails to compile with
//! an error that names the step and the event and says what to do. Not public API.

use crate::{EventInfo, EventKind, Fires, StepInfo};

const CAPACITY: usize = 480;

/// A message built at compile time (no allocation in `const` code).
#[doc(hidden)]
pub struct Message {
    buf: [u8; CAPACITY],
    len: usize,
}

impl Message {
    const fn new() -> Self {
        Message {
            buf: [0; CAPACITY],
            len: 0,
        }
    }

    const fn push(mut self, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < CAPACITY {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Whether there is nothing to report.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        let (text, _) = self.buf.split_at(self.len);
        match core::str::from_utf8(text) {
            Ok(text) => text,
            // Cut inside a character at the capacity: drop the message's tail.
            Err(e) => match core::str::from_utf8(text.split_at(e.valid_up_to()).0) {
                Ok(text) => text,
                Err(_) => "",
            },
        }
    }
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn listed(events: &[EventInfo], name: &str) -> bool {
    let mut i = 0;
    while i < events.len() {
        if same(events[i].name, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn accepted(steps: &[StepInfo], name: &str) -> bool {
    let mut i = 0;
    while i < steps.len() {
        if listed(steps[i].accepts, name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn produced(steps: &[StepInfo], name: &str) -> bool {
    let mut i = 0;
    while i < steps.len() {
        if listed(steps[i].emits, name) || listed(steps[i].sends, name) {
            return true;
        }
        i += 1;
    }
    false
}

/// Events that may go nowhere: requests go to the caller, the stop event ends the run,
/// responses may be meant for waiters, internal events are the runtime's.
const fn may_go_unaccepted(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::InputRequired | EventKind::Stop | EventKind::Response | EventKind::Internal
    )
}

/// Events that may come from nowhere inside the workflow: the start event, answers from the
/// caller, and the runtime's own (`StepFailed`).
const fn may_come_from_outside(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Start | EventKind::Response | EventKind::Internal
    )
}

/// The most steps the reachability rules handle; larger workflows skip them.
const MAX_STEPS: usize = 128;

/// Which steps can run: those accepting an event from outside (start, responses, the
/// runtime's), then those accepting an event a runnable step returns or sends, to a fixpoint.
const fn runnable(steps: &[StepInfo]) -> [bool; MAX_STEPS] {
    let mut runs = [false; MAX_STEPS];
    let mut changed = true;
    while changed {
        changed = false;
        let mut s = 0;
        while s < steps.len() {
            if !runs[s] {
                // A step taking several events needs each; another step, one of them.
                let needs_all = matches!(steps[s].fires, Fires::PerSet);
                let mut found = 0;
                let mut i = 0;
                while i < steps[s].accepts.len() {
                    let ev = &steps[s].accepts[i];
                    if may_come_from_outside(ev.kind) || produced_by(steps, &runs, ev.name) {
                        found += 1;
                    }
                    i += 1;
                }
                if found > 0 && (!needs_all || found == steps[s].accepts.len()) {
                    runs[s] = true;
                    changed = true;
                }
            }
            s += 1;
        }
    }
    runs
}

/// Whether a step marked in `set` returns or sends `name`.
const fn produced_by(steps: &[StepInfo], set: &[bool; MAX_STEPS], name: &str) -> bool {
    let mut s = 0;
    while s < steps.len() {
        if set[s] && (listed(steps[s].emits, name) || listed(steps[s].sends, name)) {
            return true;
        }
        s += 1;
    }
    false
}

/// Whether a step marked in `set` accepts `name`.
const fn accepted_by(steps: &[StepInfo], set: &[bool; MAX_STEPS], name: &str) -> bool {
    let mut s = 0;
    while s < steps.len() {
        if set[s] && listed(steps[s].accepts, name) {
            return true;
        }
        s += 1;
    }
    false
}

/// Whether every event a step accepts is the runtime's own (a failure step).
const fn handles_failures_only(step: &StepInfo) -> bool {
    let mut i = 0;
    while i < step.accepts.len() {
        if !matches!(step.accepts[i].kind, EventKind::Internal) {
            return false;
        }
        i += 1;
    }
    !step.accepts.is_empty()
}

/// Which steps lead to an end: those returning or sending a stop event or an input request,
/// failure steps, sinks (steps that emit nothing: their effects are their purpose), then
/// those whose events reach such a step, to a fixpoint.
const fn leading_somewhere(steps: &[StepInfo]) -> [bool; MAX_STEPS] {
    let mut leads = [false; MAX_STEPS];
    let mut changed = true;
    while changed {
        changed = false;
        let mut s = 0;
        while s < steps.len() {
            if !leads[s] {
                let step = &steps[s];
                let sink = step.emits.is_empty() && step.sends.is_empty();
                let mut found = sink || handles_failures_only(step);
                let lists = [step.emits, step.sends];
                let mut l = 0;
                while !found && l < lists.len() {
                    let mut i = 0;
                    while !found && i < lists[l].len() {
                        let ev = &lists[l][i];
                        found = matches!(ev.kind, EventKind::Stop | EventKind::InputRequired)
                            || accepted_by(steps, &leads, ev.name);
                        i += 1;
                    }
                    l += 1;
                }
                if found {
                    leads[s] = true;
                    changed = true;
                }
            }
            s += 1;
        }
    }
    leads
}

/// What is wrong with the events step `index` returns (or, with `sends`, declares it sends):
/// empty if nothing.
#[doc(hidden)]
pub const fn check_outputs(steps: &[StepInfo], index: usize, sends: bool) -> Message {
    let step = &steps[index];
    let events = if sends { step.sends } else { step.emits };
    let mut i = 0;
    while i < events.len() {
        let ev = &events[i];
        if !may_go_unaccepted(ev.kind) && !accepted(steps, ev.name) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push(if sends { "` sends `" } else { "` returns `" })
                .push(ev.name)
                .push("`, but no step of this workflow accepts it; add a step that takes `")
                .push(ev.name)
                .push("`, or emit another event");
        }
        i += 1;
    }
    // A step that can never run is reported as such (by `check_inputs`), not twice.
    if !sends
        && steps.len() <= MAX_STEPS
        && runnable(steps)[index]
        && !leading_somewhere(steps)[index]
    {
        return Message::new()
            .push("step `")
            .push(step.name)
            .push("` leads nowhere: nothing it returns or sends reaches the stop event or an input request; return or send an event that leads to the end, or remove the step");
    }
    Message::new()
}

/// What is wrong with the events step `index` accepts (empty if nothing).
#[doc(hidden)]
pub const fn check_inputs(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    let mut i = 0;
    while i < step.accepts.len() {
        let ev = &step.accepts[i];
        if matches!(ev.kind, EventKind::Stop) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push("` accepts the stop event `")
                .push(ev.name)
                .push(
                    "`, but the stop event ends the run and reaches no step; accept another event",
                );
        }
        if !may_come_from_outside(ev.kind) && !produced(steps, ev.name) {
            return Message::new()
                .push("step `")
                .push(step.name)
                .push("` accepts `")
                .push(ev.name)
                .push("`, but no step returns or sends it; return it from a step, declare a send with #[step(sends(")
                .push(ev.name)
                .push("))], or mark it #[event(external)] if the caller sends it");
        }
        i += 1;
    }
    if steps.len() <= MAX_STEPS && !runnable(steps)[index] {
        return Message::new()
            .push("step `")
            .push(step.name)
            .push("` can never run: the events it accepts come only from steps that never run themselves; connect it to the start event, or remove it");
    }
    if !matches!(step.fires, Fires::PerEvent) && handles_failures(step) {
        return Message::new()
            .push("step `")
            .push(step.name)
            .push("` takes `StepFailed` in a list or beside other events, but a failure step takes one `StepFailed` alone: `failed: StepFailed`");
    }
    if step.fires.is_join() {
        if steps.len() > MAX_STEPS {
            return Message::new().push("join `").push(step.name).push(
                "`: a workflow with joins has at most 128 steps; split it into smaller workflows",
            );
        }
        return check_join(steps, index);
    }
    Message::new()
}

/// What is wrong with join `index` (empty if nothing): it must be bound to a fan-out that runs.
const fn check_join(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    let runs = runnable(steps);
    let levels = levels(steps);
    let mut bound_anywhere = false;
    let mut s = 0;
    while s < steps.len() {
        if steps[s].fans_out && levels[s][index] {
            if runs[s] {
                return Message::new();
            }
            bound_anywhere = true;
        }
        s += 1;
    }
    let first = match step.accepts.first() {
        Some(ev) => ev.name,
        None => "?",
    };
    if bound_anywhere {
        return Message::new()
            .push("join `")
            .push(step.name)
            .push("` can never run: the fan-outs it joins come from steps that never run; connect them to the start event, or remove the join");
    }
    Message::new()
        .push("join `")
        .push(step.name)
        .push("` takes a `Vec` of `")
        .push(first)
        .push("`, but no fan-out leads to `")
        .push(first)
        .push("`: a join fires once per list some step returns; return a `Vec` from a step upstream, or take `")
        .push(first)
        .push("` alone, without `Vec`")
}

/// What is wrong with `#[step(take = n)]` on step `index` (empty if nothing): only a join
/// takes a number of arrivals.
#[doc(hidden)]
pub const fn check_take(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    if step.fires.is_join() {
        return Message::new();
    }
    Message::new()
        .push("`take` applies to a join, and step `")
        .push(step.name)
        .push("` is not one: a join takes a `Vec` of events (`events: Vec<MyEvent>`) and fires once per fan-out; remove `take`, or make the parameter a `Vec`")
}

/// The most distinct event types the fan-out rules handle (more: no join is bound).
const MAX_EVENTS: usize = 256;

/// A set of event types, by their index in a [`Table`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct Bits([u128; 2]);

impl Bits {
    const EMPTY: Bits = Bits([0; 2]);

    const fn with(self, i: usize) -> Bits {
        let mut words = self.0;
        words[i / 128] |= 1 << (i % 128);
        Bits(words)
    }

    const fn or(self, other: Bits) -> Bits {
        Bits([self.0[0] | other.0[0], self.0[1] | other.0[1]])
    }

    const fn meets(self, other: Bits) -> bool {
        (self.0[0] & other.0[0]) != 0 || (self.0[1] & other.0[1]) != 0
    }

    const fn same(self, other: Bits) -> bool {
        self.0[0] == other.0[0] && self.0[1] == other.0[1]
    }
}

/// Each step's accepted, returned and sent event types as sets, over one numbering of the
/// workflow's event names.
struct Table {
    names: [&'static str; MAX_EVENTS],
    len: usize,
    accepts: [Bits; MAX_STEPS],
    emits: [Bits; MAX_STEPS],
    sends: [Bits; MAX_STEPS],
    /// Whether every name fitted.
    complete: bool,
}

impl Table {
    const fn of(steps: &[StepInfo]) -> Table {
        let mut table = Table {
            names: [""; MAX_EVENTS],
            len: 0,
            accepts: [Bits::EMPTY; MAX_STEPS],
            emits: [Bits::EMPTY; MAX_STEPS],
            sends: [Bits::EMPTY; MAX_STEPS],
            complete: steps.len() <= MAX_STEPS,
        };
        let mut s = 0;
        while s < steps.len() && table.complete {
            table.accepts[s] = table.add(steps[s].accepts);
            table.emits[s] = table.add(steps[s].emits);
            table.sends[s] = table.add(steps[s].sends);
            s += 1;
        }
        table
    }

    /// The set of `events`, numbering the names not seen before.
    const fn add(&mut self, events: &'static [EventInfo]) -> Bits {
        let mut set = Bits::EMPTY;
        let mut i = 0;
        while i < events.len() {
            let name = events[i].name;
            let mut at = 0;
            while at < self.len && !same(self.names[at], name) {
                at += 1;
            }
            if at == self.len {
                if self.len == MAX_EVENTS {
                    self.complete = false;
                    return set;
                }
                self.names[at] = name;
                self.len += 1;
            }
            set = set.with(at);
            i += 1;
        }
        set
    }
}

/// For every fan-out step (a row per step; rows of other steps are empty), the joins bound to
/// it: the joins accepting an event produced in the level its list opens (its elements, and
/// what the steps they reach return or send, without entering the levels of inner fan-outs,
/// whose bound joins' results count instead). All levels are worked out together, to a
/// fixpoint, so nested fan-outs cost a few passes rather than a walk per nesting.
///
/// The runtime fires exactly these joins when a fan-out ends; the compile-time rules use the
/// same walk, so the two cannot disagree.
pub(crate) const fn levels(steps: &[StepInfo]) -> [[bool; MAX_STEPS]; MAX_STEPS] {
    let mut joins = [[false; MAX_STEPS]; MAX_STEPS];
    let table = Table::of(steps);
    if !table.complete {
        return joins;
    }
    // What each fan-out step's list amounts to one level out: what its bound joins return or
    // send (for a join that fans out in turn, its own collapsed outputs), and its own sends.
    let mut collapsed = [Bits::EMPTY; MAX_STEPS];
    let mut changed = true;
    while changed {
        changed = false;
        let mut f = 0;
        while f < steps.len() {
            if steps[f].fans_out {
                let mut bound = [false; MAX_STEPS];
                let mut reached = [false; MAX_STEPS];
                let mut produced = table.emits[f];
                let mut grew = true;
                while grew {
                    grew = false;
                    let mut s = 0;
                    while s < steps.len() {
                        if !reached[s] && !bound[s] && table.accepts[s].meets(produced) {
                            if steps[s].fires.is_join() {
                                bound[s] = true;
                            } else {
                                reached[s] = true;
                                produced = produced.or(outputs(steps, &table, &collapsed, s));
                            }
                            grew = true;
                        }
                        s += 1;
                    }
                }
                let mut out = table.sends[f];
                let mut j = 0;
                while j < steps.len() {
                    if bound[j] {
                        out = out.or(outputs(steps, &table, &collapsed, j));
                        if !joins[f][j] {
                            joins[f][j] = true;
                            changed = true;
                        }
                    }
                    j += 1;
                }
                if !out.same(collapsed[f]) {
                    collapsed[f] = out;
                    changed = true;
                }
            }
            f += 1;
        }
    }
    joins
}

/// What step `s` adds to the level it runs in: what it returns and sends, or, for a fan-out
/// step, what its list amounts to (`collapsed`) and its sends.
const fn outputs(
    steps: &[StepInfo],
    table: &Table,
    collapsed: &[Bits; MAX_STEPS],
    s: usize,
) -> Bits {
    if steps[s].fans_out {
        table.sends[s].or(collapsed[s])
    } else {
        table.emits[s].or(table.sends[s])
    }
}

/// What is wrong with step `index` taking several events (empty if nothing): each parameter
/// must be a different event type, or a set could not tell where an event goes.
#[doc(hidden)]
pub const fn check_set(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    let mut i = 0;
    while i < step.accepts.len() {
        let mut j = i + 1;
        while j < step.accepts.len() {
            if same(step.accepts[i].name, step.accepts[j].name) {
                return Message::new()
                    .push("step `")
                    .push(step.name)
                    .push("` takes `")
                    .push(step.accepts[i].name)
                    .push("` twice; a step taking several events fires once per set of one event of each type: to take several of one type from a fan-out, take a `Vec` (a join)");
            }
            j += 1;
        }
        i += 1;
    }
    Message::new()
}

/// What is wrong with `catch` or `max_recoveries` on step `index` (empty if nothing): they
/// apply to a failure step, and a failure step handles no other failure step.
#[doc(hidden)]
pub const fn check_failure_step(steps: &[StepInfo], index: usize) -> Message {
    let step = &steps[index];
    if !handles_failures(step) {
        return Message::new()
            .push("`catch` and `max_recoveries` apply to a failure step, and step `")
            .push(step.name)
            .push("` is not one: a failure step takes `StepFailed` (`failed: StepFailed`)");
    }
    let mut i = 0;
    while i < step.catches.len() {
        let mut s = 0;
        while s < steps.len() {
            if same(steps[s].name, step.catches[i]) && handles_failures(&steps[s]) {
                return Message::new()
                    .push("failure step `")
                    .push(step.name)
                    .push("` names failure step `")
                    .push(steps[s].name)
                    .push("` in `catch`, but a failing failure step ends the run; name the steps whose failures it handles");
            }
            s += 1;
        }
        i += 1;
    }
    Message::new()
}

/// Whether `step` accepts `StepFailed`.
const fn handles_failures(step: &StepInfo) -> bool {
    listed(step.accepts, <crate::StepFailed as crate::Event>::NAME)
}
