//! A workflow's graph as data, and drawn as Mermaid or Graphviz DOT.
//!
//! Nodes are the steps and the event types they accept, return or send; edges run from an
//! event to each step accepting it (a join collects it; a step taking several events takes it
//! with the others), from a step to each event it returns
//! (as a list, for a fan-out) or sends, from a fan-out step to each join it binds, and from an
//! input request to the response that answers it.
//!
//! ```
//! use workflows::prelude::*;
//! use workflows::graph::Graph;
//!
//! struct NumberWorkflow;
//!
//! #[workflow]
//! impl NumberWorkflow {
//!     #[step]
//!     async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
//!         InputRequiredEvent::new("Enter a number: ")
//!     }
//!
//!     #[step]
//!     async fn answer(&self, ev: HumanResponseEvent) -> StopEvent<String> {
//!         StopEvent::new(ev.response)
//!     }
//! }
//!
//! let graph = Graph::of::<NumberWorkflow>();
//! assert_eq!(graph.steps().len(), 2);
//! let mermaid = graph.to_mermaid();
//! assert!(mermaid.contains("ev_InputRequiredEvent -. answered by .-> ev_HumanResponseEvent"));
//! assert!(graph.to_dot().starts_with("digraph NumberWorkflow {"));
//! ```

use std::fmt::Write;

use crate::{EventInfo, EventKind, StepInfo, Workflow};

mod svg;

/// How an edge connects its ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// An event goes to a step that accepts it.
    Accepts,
    /// A step returns an event.
    Returns,
    /// A step sends an event through its context.
    Sends,
    /// An input request is answered by its response type.
    AnsweredBy,
    /// A step returns a list of the event (a fan-out).
    FansOut,
    /// A join collects the event, once per fan-out (with `take`, its first arrivals).
    Collects {
        /// `Some(n)` for `#[step(take = n)]`.
        take: Option<usize>,
    },
    /// A fan-out step's lists are joined by the join step.
    JoinedBy,
    /// The event is one part of the set a step taking several events fires on.
    PartOf,
    /// A step runs the child workflow named by the edge's end
    /// ([`Context::run_child`](crate::Context::run_child)); see [`Graph::children`].
    RunsChild,
}

/// One edge of the graph, between two node names (a step's or an event's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Where it starts.
    pub from: String,
    /// Where it ends.
    pub to: String,
    /// What it means.
    pub kind: EdgeKind,
}

/// A workflow's steps and events, with the edges between them, and the graphs of the child
/// workflows its steps run.
#[derive(Debug, Clone)]
pub struct Graph {
    name: &'static str,
    steps: &'static [StepInfo],
    events: Vec<EventInfo>,
    edges: Vec<Edge>,
    children: Vec<ChildGraph>,
}

/// A child workflow a step declares (`#[step(children(..))]`), drawn inside its parent's graph.
#[derive(Debug, Clone)]
pub struct ChildGraph {
    /// The step that runs it.
    pub step: &'static str,
    /// Its graph; empty of steps when it is a workflow it is drawn inside of already (a
    /// workflow that runs itself).
    pub graph: Graph,
}

impl Graph {
    /// The graph of workflow `W`.
    pub fn of<W: Workflow>() -> Graph {
        Graph::from_steps(W::NAME, W::STEPS)
    }

    /// The graph of a step table.
    pub fn from_steps(name: &'static str, steps: &'static [StepInfo]) -> Graph {
        Graph::within(name, steps, &[])
    }

    /// The graph of a step table drawn inside the graphs of `outer` (by name), which its
    /// children do not draw again.
    fn within(name: &'static str, steps: &'static [StepInfo], outer: &[&'static str]) -> Graph {
        let mut children = Vec::new();
        let mut inside = outer.to_vec();
        inside.push(name);
        let mut events: Vec<EventInfo> = Vec::new();
        let mut edges = Vec::new();
        let mut note = |info: &EventInfo| {
            if !events.iter().any(|e| e.name == info.name) {
                events.push(*info);
            }
        };
        // One walk for every fan-out step's level.
        let levels = crate::graph_check::levels(steps);
        for (index, step) in steps.iter().enumerate() {
            let accepts = match step.fires {
                crate::Fires::PerFanOut { take } => EdgeKind::Collects { take },
                crate::Fires::PerSet => EdgeKind::PartOf,
                crate::Fires::PerEvent => EdgeKind::Accepts,
            };
            for info in step.accepts {
                note(info);
                edges.push(Edge {
                    from: info.name.to_owned(),
                    to: step.name.to_owned(),
                    kind: accepts,
                });
            }
            let returns = if step.fans_out {
                EdgeKind::FansOut
            } else {
                EdgeKind::Returns
            };
            for (infos, kind) in [(step.emits, returns), (step.sends, EdgeKind::Sends)] {
                for info in infos {
                    note(info);
                    edges.push(Edge {
                        from: step.name.to_owned(),
                        to: info.name.to_owned(),
                        kind,
                    });
                }
            }
            if let Some(bound) = levels.get(index).filter(|_| step.fans_out) {
                let bound = |j: &usize| bound.get(*j).copied().unwrap_or(false);
                for (join, _) in steps.iter().enumerate().filter(|(j, _)| bound(j)) {
                    edges.push(Edge {
                        from: step.name.to_owned(),
                        to: steps[join].name.to_owned(),
                        kind: EdgeKind::JoinedBy,
                    });
                }
            }
        }
        for step in steps {
            for child in step.children {
                edges.push(Edge {
                    from: step.name.to_owned(),
                    to: child.name.to_owned(),
                    kind: EdgeKind::RunsChild,
                });
                let child_steps: &'static [StepInfo] = if inside.contains(&child.name) {
                    &[]
                } else {
                    (child.steps)()
                };
                children.push(ChildGraph {
                    step: step.name,
                    graph: Graph::within(child.name, child_steps, &inside),
                });
            }
        }
        for info in events.clone() {
            if let Some(response) = info.response {
                edges.push(Edge {
                    from: info.name.to_owned(),
                    to: response.to_owned(),
                    kind: EdgeKind::AnsweredBy,
                });
            }
        }
        edges.dedup();
        Graph {
            name,
            steps,
            events,
            edges,
            children,
        }
    }

    /// The child workflows the steps run, each with the step that runs it.
    pub fn children(&self) -> &[ChildGraph] {
        &self.children
    }

    /// The workflow's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The steps, in declaration order.
    pub fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// The event types, in order of first appearance.
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// The edges.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The graph as a Mermaid flowchart: steps are boxes, events are rounded; input requests
    /// and responses are hexagons, the start and stop events stadiums. Each child workflow is a
    /// subgraph, its start event reached from the step that runs it.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        self.write_mermaid(&mut out, "", "    ");
        out
    }

    /// Writes the nodes and edges, their ids prefixed with `prefix`, then each child's subgraph.
    fn write_mermaid(&self, out: &mut String, prefix: &str, indent: &str) {
        // Mermaid ids allow letters, digits and `_`; names keep their form in the labels.
        let id = |kind: &str, name: &str| -> String {
            let clean: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("{prefix}{kind}_{clean}")
        };
        for step in self.steps {
            let _ = writeln!(out, "{indent}{}[\"{}\"]", id("step", step.name), step.name);
        }
        for event in &self.events {
            let (open, close) = match event.kind {
                EventKind::Start | EventKind::Stop => ("([", "])"),
                EventKind::InputRequired | EventKind::Response => ("{{", "}}"),
                _ => ("(", ")"),
            };
            let _ = writeln!(
                out,
                "{indent}{}{open}\"{}\"{close}",
                id("ev", event.name),
                event.name
            );
        }
        let mut child = 0;
        for edge in &self.edges {
            let line = match edge.kind {
                EdgeKind::Accepts => {
                    format!("{} --> {}", id("ev", &edge.from), id("step", &edge.to))
                }
                EdgeKind::Returns => {
                    format!("{} --> {}", id("step", &edge.from), id("ev", &edge.to))
                }
                EdgeKind::Sends => {
                    format!(
                        "{} -. sends .-> {}",
                        id("step", &edge.from),
                        id("ev", &edge.to)
                    )
                }
                EdgeKind::AnsweredBy => {
                    format!(
                        "{} -. answered by .-> {}",
                        id("ev", &edge.from),
                        id("ev", &edge.to)
                    )
                }
                EdgeKind::FansOut => {
                    format!(
                        "{} ==>|list of| {}",
                        id("step", &edge.from),
                        id("ev", &edge.to)
                    )
                }
                EdgeKind::Collects { take } => {
                    format!(
                        "{} ==>|{}| {}",
                        id("ev", &edge.from),
                        collects_label(take),
                        id("step", &edge.to)
                    )
                }
                EdgeKind::JoinedBy => {
                    format!(
                        "{} -. joined by .-> {}",
                        id("step", &edge.from),
                        id("step", &edge.to)
                    )
                }
                EdgeKind::PartOf => {
                    format!(
                        "{} -->|with the others| {}",
                        id("ev", &edge.from),
                        id("step", &edge.to)
                    )
                }
                EdgeKind::RunsChild => {
                    let inner = format!("{prefix}c{child}_");
                    child += 1;
                    format!("{} -. runs .-> {inner}child", id("step", &edge.from))
                }
            };
            let _ = writeln!(out, "{indent}{line}");
        }
        for (n, child) in self.children.iter().enumerate() {
            let inner = format!("{prefix}c{n}_");
            let _ = writeln!(
                out,
                "{indent}subgraph {inner}child[\"child workflow {}\"]",
                child.graph.name
            );
            child
                .graph
                .write_mermaid(out, &inner, &format!("{indent}    "));
            let _ = writeln!(out, "{indent}end");
        }
    }

    /// The graph as a standalone SVG drawing, laid out here (no renderer needed): nodes in
    /// layers from the start event down, steps as boxes, events rounded (the start and stop
    /// events, input requests and their responses, and child workflows each in their own
    /// colour), an edge's kind in its stroke and label. Each node is a `<g>` with
    /// `data-node="step:NAME"` (or `event:NAME`, `child:NAME`), so that a page can mark the
    /// steps a run is in with the classes `active` and `waiting`, which the drawing styles.
    ///
    /// ```
    /// use workflows::prelude::*;
    ///
    /// struct Echo;
    ///
    /// #[workflow]
    /// impl Echo {
    ///     #[step]
    ///     async fn echo(&self, _ev: StartEvent) -> StopEvent<()> {
    ///         StopEvent::new(())
    ///     }
    /// }
    ///
    /// let svg = Echo::graph().to_svg();
    /// assert!(svg.starts_with("<svg"));
    /// assert!(svg.contains(r#"data-node="step:echo""#));
    /// ```
    pub fn to_svg(&self) -> String {
        svg::Layout::of(self).to_svg(self.name)
    }

    /// The graph in Graphviz DOT: steps are boxes, events ellipses; each child workflow is a
    /// cluster, reached from the step that runs it.
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph {} {{\n    rankdir=TB;\n", self.name);
        self.write_dot(&mut out, "", "    ");
        out.push_str("}\n");
        out
    }

    /// Writes the nodes and edges, their ids prefixed with `prefix`, then each child's cluster.
    fn write_dot(&self, out: &mut String, prefix: &str, indent: &str) {
        for step in self.steps {
            let _ = writeln!(
                out,
                "{indent}\"{prefix}step:{0}\" [label=\"{0}\", shape=box];",
                step.name
            );
        }
        for event in &self.events {
            let shape = match event.kind {
                EventKind::Start | EventKind::Stop => "doublecircle",
                EventKind::InputRequired | EventKind::Response => "hexagon",
                _ => "ellipse",
            };
            let _ = writeln!(
                out,
                "{indent}\"{prefix}{0}\" [label=\"{0}\", shape={shape}];",
                event.name
            );
        }
        let mut child = 0;
        for edge in &self.edges {
            let (from, to, style) = match edge.kind {
                EdgeKind::Accepts => (
                    edge.from.clone(),
                    format!("step:{}", edge.to),
                    String::new(),
                ),
                EdgeKind::Returns => (
                    format!("step:{}", edge.from),
                    edge.to.clone(),
                    String::new(),
                ),
                EdgeKind::Sends => (
                    format!("step:{}", edge.from),
                    edge.to.clone(),
                    " [style=dashed, label=\"sends\"]".to_owned(),
                ),
                EdgeKind::AnsweredBy => (
                    edge.from.clone(),
                    edge.to.clone(),
                    " [style=dotted, label=\"answered by\"]".to_owned(),
                ),
                EdgeKind::FansOut => (
                    format!("step:{}", edge.from),
                    edge.to.clone(),
                    " [style=bold, label=\"list of\"]".to_owned(),
                ),
                EdgeKind::Collects { take } => (
                    edge.from.clone(),
                    format!("step:{}", edge.to),
                    format!(" [style=bold, label=\"{}\"]", collects_label(take)),
                ),
                EdgeKind::JoinedBy => (
                    format!("step:{}", edge.from),
                    format!("step:{}", edge.to),
                    " [style=dotted, label=\"joined by\"]".to_owned(),
                ),
                EdgeKind::PartOf => (
                    edge.from.clone(),
                    format!("step:{}", edge.to),
                    " [label=\"with the others\"]".to_owned(),
                ),
                EdgeKind::RunsChild => {
                    child += 1;
                    (
                        format!("step:{}", edge.from),
                        format!("c{}_workflow", child - 1),
                        " [style=dashed, label=\"runs\"]".to_owned(),
                    )
                }
            };
            let _ = writeln!(
                out,
                "{indent}\"{prefix}{from}\" -> \"{prefix}{to}\"{style};"
            );
        }
        for (n, child) in self.children.iter().enumerate() {
            let inner = format!("{prefix}c{n}_");
            let _ = writeln!(out, "{indent}subgraph \"cluster_{inner}\" {{");
            let _ = writeln!(
                out,
                "{indent}    label=\"child workflow {0}\";\n{indent}    \"{inner}workflow\" [label=\"{0}\", shape=component];",
                child.graph.name
            );
            child.graph.write_dot(out, &inner, &format!("{indent}    "));
            let _ = writeln!(out, "{indent}}}");
        }
    }
}

/// The label of a join's edge: `all`, or `first n`.
fn collects_label(take: Option<usize>) -> String {
    match take {
        None => "all".to_owned(),
        Some(n) => format!("first {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, crate::Event)]
    #[event(crate = crate, name = "graph_tests.Job")]
    struct Job;

    struct Fan;

    #[workflow(crate = crate)]
    impl Fan {
        #[step(sends(Job))]
        async fn split(&self, _ev: StartEvent) {}

        #[step]
        async fn work(&self, _ev: Job) -> InputRequiredEvent {
            InputRequiredEvent::new("ok?")
        }

        #[step]
        async fn done(&self, ev: HumanResponseEvent) -> StopEvent<String> {
            StopEvent::new(ev.response)
        }
    }

    #[test]
    fn edges_cover_accepts_returns_sends_and_answers() {
        let graph = Graph::of::<Fan>();
        let edges: Vec<(&str, &str, EdgeKind)> = graph
            .edges()
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
            .collect();
        assert_eq!(
            edges,
            [
                ("StartEvent", "split", EdgeKind::Accepts),
                ("split", "graph_tests.Job", EdgeKind::Sends),
                ("graph_tests.Job", "work", EdgeKind::Accepts),
                ("work", "InputRequiredEvent", EdgeKind::Returns),
                ("HumanResponseEvent", "done", EdgeKind::Accepts),
                ("done", "StopEvent", EdgeKind::Returns),
                (
                    "InputRequiredEvent",
                    "HumanResponseEvent",
                    EdgeKind::AnsweredBy
                ),
            ]
        );
        let names: Vec<&str> = graph.events().iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "StartEvent",
                "graph_tests.Job",
                "InputRequiredEvent",
                "HumanResponseEvent",
                "StopEvent"
            ]
        );
    }

    #[test]
    fn mermaid_shapes_events_by_role() {
        let mermaid = Graph::of::<Fan>().to_mermaid();
        assert!(mermaid.starts_with("flowchart TD\n"));
        assert!(mermaid.contains("    step_split[\"split\"]\n"));
        assert!(mermaid.contains("    ev_StartEvent([\"StartEvent\"])\n"));
        assert!(mermaid.contains("    ev_InputRequiredEvent{{\"InputRequiredEvent\"}}\n"));
        assert!(mermaid.contains("    ev_graph_tests_Job(\"graph_tests.Job\")\n"));
        assert!(mermaid.contains("    step_split -. sends .-> ev_graph_tests_Job\n"));
        assert!(mermaid.contains("    ev_graph_tests_Job --> step_work\n"));
    }

    #[derive(Clone, Debug, Serialize, Deserialize, crate::Event)]
    #[event(crate = crate, name = "graph_tests.Part")]
    struct Part;

    struct Split;

    #[workflow(crate = crate)]
    impl Split {
        #[step]
        async fn split(&self, _ev: StartEvent) -> Vec<Job> {
            vec![Job, Job]
        }

        #[step]
        async fn work(&self, _ev: Job) -> Part {
            Part
        }

        #[step(take = 1)]
        async fn first(&self, _parts: Vec<Part>) -> StopEvent<()> {
            StopEvent::new(())
        }
    }

    #[test]
    fn fan_outs_and_joins_are_drawn_with_their_binding() {
        let graph = Graph::of::<Split>();
        let kinds: Vec<(&str, &str, EdgeKind)> = graph
            .edges()
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.kind))
            .collect();
        assert!(kinds.contains(&("split", "graph_tests.Job", EdgeKind::FansOut)));
        assert!(kinds.contains(&(
            "graph_tests.Part",
            "first",
            EdgeKind::Collects { take: Some(1) }
        )));
        assert!(kinds.contains(&("split", "first", EdgeKind::JoinedBy)));
        let mermaid = graph.to_mermaid();
        assert!(mermaid.contains("    step_split ==>|list of| ev_graph_tests_Job\n"));
        assert!(mermaid.contains("    ev_graph_tests_Part ==>|first 1| step_first\n"));
        assert!(mermaid.contains("    step_split -. joined by .-> step_first\n"));
        let dot = graph.to_dot();
        assert!(dot.contains(
            "    \"step:split\" -> \"graph_tests.Job\" [style=bold, label=\"list of\"];\n"
        ));
        assert!(dot.contains(
            "    \"step:split\" -> \"step:first\" [style=dotted, label=\"joined by\"];\n"
        ));
    }

    struct Pair;

    #[workflow(crate = crate)]
    impl Pair {
        #[step(sends(Part))]
        async fn split(&self, _ev: StartEvent) -> Job {
            Job
        }

        #[step]
        async fn both(&self, _job: Job, _part: Part) -> StopEvent<()> {
            StopEvent::new(())
        }
    }

    #[test]
    fn a_step_taking_several_events_is_drawn_taking_each_with_the_others() {
        let graph = Graph::of::<Pair>();
        let parts: Vec<&str> = graph
            .edges()
            .iter()
            .filter(|e| e.kind == EdgeKind::PartOf)
            .map(|e| e.from.as_str())
            .collect();
        assert_eq!(parts, ["graph_tests.Job", "graph_tests.Part"]);
        assert!(
            graph
                .to_mermaid()
                .contains("    ev_graph_tests_Part -->|with the others| step_both\n")
        );
    }

    #[test]
    fn dot_is_a_complete_digraph() {
        let dot = Graph::of::<Fan>().to_dot();
        assert!(dot.starts_with("digraph Fan {\n"));
        assert!(dot.ends_with("}\n"));
        assert!(dot.contains("    \"step:done\" [label=\"done\", shape=box];\n"));
        assert!(dot.contains("    \"HumanResponseEvent\" -> \"step:done\";\n"));
        assert!(dot.contains(
            "    \"InputRequiredEvent\" -> \"HumanResponseEvent\" [style=dotted, label=\"answered by\"];\n"
        ));
        assert_eq!(dot.matches("->").count(), 7);
    }
}
