//! A graph drawn as SVG, laid out here: nodes in layers from the start event down (each edge
//! points down, but for those that close a loop), ordered within a layer to keep edges short,
//! each edge a curve. No external renderer: a server can send the drawing as it is.
//!
//! Every node carries `data-node="step:NAME"`, `event:NAME` or `child:NAME` and a class by its
//! role, so that a page can mark the steps a run is in (`.active`, `.waiting`).

use std::collections::HashMap;
use std::fmt::Write;

use super::{EdgeKind, Graph};
use crate::EventKind;

/// Height of a node, and the space between layers and between nodes of a layer.
const NODE_HEIGHT: f64 = 36.0;
const LAYER_GAP: f64 = 56.0;
const NODE_GAP: f64 = 28.0;
const MARGIN: f64 = 24.0;
/// Room on the right for the edges that close a loop, and on the left for those that skip
/// layers.
const LOOP_ROOM: f64 = 72.0;
const SKIP_ROOM: f64 = 48.0;

/// One box of the drawing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// `step:NAME`, `event:NAME` or `child:NAME`.
    pub(crate) key: String,
    pub(crate) label: String,
    pub(crate) class: &'static str,
    pub(crate) layer: usize,
    /// Left edge and top.
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
}

impl Node {
    fn center(&self) -> f64 {
        self.x + self.width / 2.0
    }
}

/// One edge of the drawing, between node indexes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) class: &'static str,
    pub(crate) label: Option<String>,
}

/// The laid-out drawing.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) nodes: Vec<Node>,
    pub(crate) lines: Vec<Line>,
    pub(crate) width: f64,
    pub(crate) height: f64,
}

/// The width a label needs (a plain estimate of a sans-serif font at 13 px).
fn text_width(label: &str) -> f64 {
    (label.chars().count() as f64 * 7.4 + 26.0).max(72.0)
}

fn event_class(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Start => "event start",
        EventKind::Stop => "event stop",
        EventKind::InputRequired => "event request",
        EventKind::Response => "event response",
        _ => "event",
    }
}

/// The edge's style classes and its label.
fn edge_style(kind: EdgeKind) -> (&'static str, Option<String>) {
    match kind {
        EdgeKind::Accepts | EdgeKind::Returns => ("edge", None),
        EdgeKind::Sends => ("edge sends", Some("sends".into())),
        EdgeKind::AnsweredBy => ("edge answered", Some("answered by".into())),
        EdgeKind::FansOut => ("edge list", Some("list of".into())),
        EdgeKind::Collects { take } => (
            "edge list",
            Some(match take {
                None => "all".into(),
                Some(n) => format!("first {n}"),
            }),
        ),
        EdgeKind::JoinedBy => ("edge joined", Some("joined by".into())),
        EdgeKind::PartOf => ("edge", Some("with the others".into())),
        EdgeKind::RunsChild => ("edge runs", Some("runs".into())),
    }
}

impl Layout {
    /// Lays out `graph`.
    pub(crate) fn of(graph: &Graph) -> Layout {
        let mut nodes: Vec<Node> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut add = |key: String, label: &str, class: &'static str, nodes: &mut Vec<Node>| {
            *index.entry(key.clone()).or_insert_with(|| {
                nodes.push(Node {
                    key,
                    label: label.to_owned(),
                    class,
                    layer: 0,
                    x: 0.0,
                    y: 0.0,
                    width: text_width(label),
                });
                nodes.len() - 1
            })
        };
        // Start events first: the layers grow from them.
        let mut events: Vec<_> = graph.events().to_vec();
        events.sort_by_key(|e| e.kind != EventKind::Start);
        for event in &events {
            add(
                format!("event:{}", event.name),
                event.name,
                event_class(event.kind),
                &mut nodes,
            );
        }
        for step in graph.steps() {
            add(format!("step:{}", step.name), step.name, "step", &mut nodes);
        }
        let mut lines = Vec::new();
        // A join's binding to its fan-out step would run over the branch it binds: the
        // `list of` and `all` edges show it.
        for edge in graph
            .edges()
            .iter()
            .filter(|e| e.kind != EdgeKind::JoinedBy)
        {
            let (from_key, to_key) = match edge.kind {
                EdgeKind::Accepts | EdgeKind::Collects { .. } | EdgeKind::PartOf => {
                    (format!("event:{}", edge.from), format!("step:{}", edge.to))
                }
                EdgeKind::Returns | EdgeKind::Sends | EdgeKind::FansOut => {
                    (format!("step:{}", edge.from), format!("event:{}", edge.to))
                }
                EdgeKind::AnsweredBy => {
                    (format!("event:{}", edge.from), format!("event:{}", edge.to))
                }
                EdgeKind::JoinedBy => (format!("step:{}", edge.from), format!("step:{}", edge.to)),
                EdgeKind::RunsChild => {
                    let key = format!("child:{}", edge.to);
                    let label = format!("child workflow {}", edge.to);
                    add(key.clone(), &label, "child", &mut nodes);
                    (format!("step:{}", edge.from), key)
                }
            };
            // An edge to a node the graph does not list (a response type no step takes) gets
            // its node.
            let from = add(
                from_key.clone(),
                from_key.split_once(':').map_or("", |p| p.1),
                "event",
                &mut nodes,
            );
            let to = add(
                to_key.clone(),
                to_key.split_once(':').map_or("", |p| p.1),
                "event",
                &mut nodes,
            );
            let (class, label) = edge_style(edge.kind);
            lines.push(Line {
                from,
                to,
                class,
                label,
            });
        }
        let mut layout = Layout {
            nodes,
            lines,
            width: 0.0,
            height: 0.0,
        };
        layout.assign_layers();
        layout.order_and_place();
        layout
    }

    /// The edges that close a loop (found by a depth-first walk from the nodes in order):
    /// laid out as if reversed.
    fn back_edges(&self) -> Vec<bool> {
        let n = self.nodes.len();
        let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (i, line) in self.lines.iter().enumerate() {
            out[line.from].push((line.to, i));
        }
        // 0: not seen, 1: on the walk's path, 2: done.
        let mut state = vec![0u8; n];
        let mut back = vec![false; self.lines.len()];
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            let mut stack = vec![(root, 0usize)];
            state[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&(to, line)) = out[node].get(*next) {
                    *next += 1;
                    match state[to] {
                        0 => {
                            state[to] = 1;
                            stack.push((to, 0));
                        }
                        1 => back[line] = true,
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
        back
    }

    /// Each node one layer below the lowest node with an edge to it (loops' closing edges
    /// aside).
    fn assign_layers(&mut self) {
        let back = self.back_edges();
        let n = self.nodes.len();
        let mut incoming = vec![0usize; n];
        for (line, _) in self.lines.iter().zip(&back).filter(|(_, b)| !**b) {
            incoming[line.to] += 1;
        }
        let mut ready: Vec<usize> = (0..n).filter(|&v| incoming[v] == 0).collect();
        ready.reverse();
        let mut layer = vec![0usize; n];
        while let Some(v) = ready.pop() {
            for (line, _) in self
                .lines
                .iter()
                .zip(&back)
                .filter(|(l, b)| !**b && l.from == v)
            {
                layer[line.to] = layer[line.to].max(layer[v] + 1);
                incoming[line.to] -= 1;
                if incoming[line.to] == 0 {
                    ready.push(line.to);
                }
            }
        }
        for (node, layer) in self.nodes.iter_mut().zip(layer) {
            node.layer = layer;
        }
    }

    /// Orders each layer by the mean position of its neighbours in the layer above (then
    /// below), a few times over, and places the nodes.
    fn order_and_place(&mut self) {
        let layers = self
            .nodes
            .iter()
            .map(|n| n.layer)
            .max()
            .map_or(0, |m| m + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
        for (i, node) in self.nodes.iter().enumerate() {
            rows[node.layer].push(i);
        }
        let mut position = vec![0.0f64; self.nodes.len()];
        let set_positions = |rows: &[Vec<usize>], position: &mut [f64]| {
            for row in rows {
                for (p, &v) in row.iter().enumerate() {
                    position[v] = p as f64;
                }
            }
        };
        set_positions(&rows, &mut position);
        for sweep in 0..4 {
            let downward = sweep % 2 == 0;
            let order: Vec<usize> = if downward {
                (1..layers).collect()
            } else {
                (0..layers.saturating_sub(1)).rev().collect()
            };
            for l in order {
                let neighbour_layer = if downward { l - 1 } else { l + 1 };
                let mean = |v: usize| {
                    let near: Vec<f64> = self
                        .lines
                        .iter()
                        .filter_map(|line| {
                            let other = if line.to == v {
                                line.from
                            } else if line.from == v {
                                line.to
                            } else {
                                return None;
                            };
                            (self.nodes[other].layer == neighbour_layer).then_some(position[other])
                        })
                        .collect();
                    if near.is_empty() {
                        position[v]
                    } else {
                        near.iter().sum::<f64>() / near.len() as f64
                    }
                };
                let mut keyed: Vec<(f64, f64, usize)> =
                    rows[l].iter().map(|&v| (mean(v), position[v], v)).collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                rows[l] = keyed.into_iter().map(|(_, _, v)| v).collect();
                set_positions(&rows, &mut position);
            }
        }
        let row_widths: Vec<f64> = rows
            .iter()
            .map(|row| {
                row.iter().map(|&v| self.nodes[v].width).sum::<f64>()
                    + NODE_GAP * row.len().saturating_sub(1) as f64
            })
            .collect();
        let widest = row_widths.iter().copied().fold(0.0, f64::max);
        for (l, row) in rows.iter().enumerate() {
            let mut x = MARGIN + SKIP_ROOM + (widest - row_widths[l]) / 2.0;
            for &v in row {
                let node = &mut self.nodes[v];
                node.x = x;
                node.y = MARGIN + l as f64 * (NODE_HEIGHT + LAYER_GAP);
                x += node.width + NODE_GAP;
            }
        }
        self.width = widest + 2.0 * MARGIN + SKIP_ROOM + LOOP_ROOM;
        self.height = MARGIN * 2.0
            + layers as f64 * NODE_HEIGHT
            + layers.saturating_sub(1) as f64 * LAYER_GAP;
    }

    /// The drawing as SVG text.
    pub(crate) fn to_svg(&self, title: &str) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="workflow-graph" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{t}">"#,
            w = self.width,
            h = self.height,
            t = escape(title),
        );
        out.push_str(concat!(
            "<style>",
            ".node rect{fill:#fff;stroke:#57606a;stroke-width:1.2}",
            ".step rect{fill:#f6f8fa}",
            ".event rect{fill:#fff}",
            ".start rect,.stop rect{fill:#ddf4ff;stroke:#0969da}",
            ".request rect,.response rect{fill:#fff8c5;stroke:#9a6700}",
            ".child rect{fill:#fbefff;stroke:#8250df;stroke-dasharray:4 2}",
            ".active rect{fill:#dafbe1;stroke:#1a7f37;stroke-width:2.5}",
            ".waiting rect{fill:#fff1e5;stroke:#bc4c00;stroke-width:2.5}",
            ".node text{font:13px system-ui,sans-serif;fill:#1f2328;text-anchor:middle;dominant-baseline:central}",
            ".edge{fill:none;stroke:#8c959f;stroke-width:1.2;marker-end:url(#arrow)}",
            ".sends,.runs{stroke-dasharray:5 3}",
            ".answered,.joined{stroke-dasharray:2 3}",
            ".list{stroke-width:2.4}",
            ".label{font:11px system-ui,sans-serif;fill:#57606a;text-anchor:middle}",
            "</style>",
            r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#8c959f"/></marker></defs>"##,
        ));
        for line in &self.lines {
            let (a, b) = (&self.nodes[line.from], &self.nodes[line.to]);
            let (path, mid) = if b.layer == a.layer + 1 {
                let (x1, y1, x2, y2) = (a.center(), a.y + NODE_HEIGHT, b.center(), b.y);
                let bend = (y2 - y1) / 2.0;
                (
                    format!(
                        "M{x1:.1},{y1:.1}C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}",
                        y1 + bend,
                        y2 - bend
                    ),
                    ((x1 + x2) / 2.0, (y1 + y2) / 2.0),
                )
            } else if b.layer > a.layer {
                // Over several layers: out to the left of the nodes between, not through them.
                let (x1, y1) = (a.x, a.y + NODE_HEIGHT / 2.0);
                let (x2, y2) = (b.x, b.y + NODE_HEIGHT / 2.0);
                let out_x = (x1.min(x2) - SKIP_ROOM).max(2.0);
                (
                    format!(
                        "M{x1:.1},{y1:.1}C{out_x:.1},{y1:.1} {out_x:.1},{y2:.1} {x2:.1},{y2:.1}"
                    ),
                    (out_x + SKIP_ROOM * 0.3, (y1 + y2) / 2.0),
                )
            } else {
                // Closes a loop (or stays in its layer): around the right of both nodes.
                let (x1, y1) = (a.x + a.width, a.y + NODE_HEIGHT / 2.0);
                let (x2, y2) = (b.x + b.width, b.y + NODE_HEIGHT / 2.0);
                let out_x = x1.max(x2) + LOOP_ROOM * 0.8;
                (
                    format!(
                        "M{x1:.1},{y1:.1}C{out_x:.1},{y1:.1} {out_x:.1},{y2:.1} {x2:.1},{y2:.1}"
                    ),
                    (out_x - LOOP_ROOM * 0.2, (y1 + y2) / 2.0),
                )
            };
            let _ = write!(
                out,
                r#"<path class="{}" d="{path}" data-from="{}" data-to="{}"/>"#,
                line.class,
                escape(&a.key),
                escape(&b.key),
            );
            if let Some(label) = &line.label {
                let _ = write!(
                    out,
                    r#"<text class="label" x="{:.1}" y="{:.1}">{}</text>"#,
                    mid.0,
                    mid.1 - 3.0,
                    escape(label)
                );
            }
        }
        for node in &self.nodes {
            let radius = if node.class == "step" || node.class == "child" {
                4.0
            } else {
                NODE_HEIGHT / 2.0
            };
            let _ = write!(
                out,
                r#"<g class="node {class}" data-node="{key}"><title>{label}</title><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{radius:.1}"/><text x="{cx:.1}" y="{cy:.1}">{label}</text></g>"#,
                class = node.class,
                key = escape(&node.key),
                label = escape(&node.label),
                x = node.x,
                y = node.y,
                w = node.width,
                h = NODE_HEIGHT,
                cx = node.center(),
                cy = node.y + NODE_HEIGHT / 2.0,
            );
        }
        out.push_str("</svg>");
        out
    }
}

/// `text` with the characters XML gives a meaning escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    struct Loop;

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize, crate::Event)]
    #[event(crate = crate, name = "layout_tests.Again")]
    struct Again {
        n: u32,
    }

    #[workflow(crate = crate)]
    impl Loop {
        #[step]
        async fn ask(&self, _ev: StartEvent) -> InputRequiredEvent {
            InputRequiredEvent::new("n? ")
        }

        #[step]
        async fn count(&self, ev: HumanResponseEvent) -> Again {
            Again {
                n: ev.response.len() as u32,
            }
        }

        #[step]
        async fn check(&self, ev: Again) -> Option<StopEvent<u32>> {
            (ev.n > 2).then_some(StopEvent::new(ev.n))
        }
    }

    fn node<'a>(layout: &'a Layout, key: &str) -> &'a Node {
        layout
            .nodes
            .iter()
            .find(|n| n.key == key)
            .unwrap_or_else(|| panic!("no node {key}"))
    }

    #[test]
    fn layers_run_from_the_start_event_down_the_path_of_an_answer() {
        let layout = Layout::of(&Graph::of::<Loop>());
        let order = [
            "event:StartEvent",
            "step:ask",
            "event:InputRequiredEvent",
            "event:HumanResponseEvent",
            "step:count",
            "event:layout_tests.Again",
            "step:check",
            "event:StopEvent",
        ];
        let layers: Vec<usize> = order.iter().map(|key| node(&layout, key).layer).collect();
        assert!(
            layers.windows(2).all(|w| w[0] < w[1]),
            "each below the one before: {layers:?}"
        );
    }

    #[test]
    fn nodes_of_a_layer_do_not_overlap_and_every_line_has_its_ends() {
        for graph in [Graph::of::<Loop>()] {
            let layout = Layout::of(&graph);
            for (i, a) in layout.nodes.iter().enumerate() {
                for b in &layout.nodes[i + 1..] {
                    if a.layer == b.layer {
                        assert!(
                            a.x + a.width <= b.x || b.x + b.width <= a.x,
                            "{} and {} overlap",
                            a.key,
                            b.key
                        );
                    }
                }
                assert!(a.x >= 0.0 && a.x + a.width <= layout.width);
                assert!(a.y >= 0.0 && a.y + NODE_HEIGHT <= layout.height);
            }
            let drawn = graph
                .edges()
                .iter()
                .filter(|e| e.kind != EdgeKind::JoinedBy)
                .count();
            assert_eq!(layout.lines.len(), drawn);
        }
    }

    #[test]
    fn the_svg_marks_each_node_for_a_page_to_find() {
        let svg = Graph::of::<Loop>().to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"<g class="node step" data-node="step:ask">"#));
        assert!(
            svg.contains(r#"<g class="node event request" data-node="event:InputRequiredEvent">"#)
        );
        assert!(svg.contains(
            r#"data-from="event:InputRequiredEvent" data-to="event:HumanResponseEvent""#
        ));
        assert_eq!(svg.matches("<g class=\"node").count(), 8);
        assert_eq!(escape("a<b&\"c\""), "a&lt;b&amp;&quot;c&quot;");
    }
}
