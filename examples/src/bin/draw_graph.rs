//! Draws the graph of a support-ticket workflow: as Mermaid (default) or Graphviz DOT.
//!
//! ```text
//! cargo run -p workflows-examples --bin draw_graph            # Mermaid, for Markdown
//! cargo run -p workflows-examples --bin draw_graph -- --dot   # DOT: ... | dot -Tsvg > graph.svg
//! ```

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(start)]
struct Ticket {
    subject: String,
    body: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Urgent {
    ticket: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Routine {
    ticket: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(response)]
struct Decision {
    approve_refund: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(input_required(response = Decision))]
struct EscalationRequest {
    ticket: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Draft {
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(stop)]
struct Reply {
    text: String,
}

#[derive(Debug, OneOf)]
enum Triage {
    Urgent(Urgent),
    Routine(Routine),
}

struct Support;

#[workflow]
impl Support {
    #[step]
    async fn classify(&self, ticket: Ticket) -> Triage {
        if ticket.subject.contains("refund") {
            Urgent {
                ticket: ticket.body,
            }
            .into()
        } else {
            Routine {
                ticket: ticket.body,
            }
            .into()
        }
    }

    #[step]
    async fn escalate(&self, ev: Urgent) -> EscalationRequest {
        EscalationRequest { ticket: ev.ticket }
    }

    #[step]
    async fn decide(&self, ev: Decision) -> Draft {
        let text = if ev.approve_refund {
            "Your refund is on its way."
        } else {
            "We cannot refund this order."
        };
        Draft { text: text.into() }
    }

    #[step]
    async fn answer(&self, ev: Routine) -> Draft {
        Draft {
            text: format!("Thanks for writing about: {}", ev.ticket),
        }
    }

    #[step]
    async fn send(&self, ev: Draft) -> Reply {
        Reply { text: ev.text }
    }
}

fn main() {
    let graph = Support::graph();
    if std::env::args().any(|a| a == "--dot") {
        print!("{}", graph.to_dot());
    } else {
        print!("{}", graph.to_mermaid());
    }
}
