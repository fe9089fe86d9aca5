//! Tracing: one span per run and one per step invocation, with the fields a user filters on.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TraceEvent, Metadata, Subscriber};
use workflows::prelude::*;

#[derive(Debug, Clone, Default)]
struct SpanRecord {
    id: u64,
    name: &'static str,
    parent: Option<u64>,
    fields: Vec<(String, String)>,
}

impl SpanRecord {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

/// Records every span created, in order, with its fields and explicit parent.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        let id = spans.len() as u64 + 1;
        spans.push(SpanRecord {
            id,
            name: attrs.metadata().name(),
            parent: attrs.parent().map(Id::into_u64),
            fields: fields.0,
        });
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &TraceEvent<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct Pipeline;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Event)]
struct Parsed;

#[workflow]
impl Pipeline {
    #[step]
    async fn parse(&self, _ev: StartEvent) -> Parsed {
        Parsed
    }

    #[step]
    async fn store(&self, _ev: Parsed) -> StopEvent<()> {
        StopEvent::new(())
    }
}

#[tokio::test]
async fn runs_and_step_invocations_have_spans() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let handler = Pipeline.run(StartEvent::new());
    let run_id = handler.run_id().to_owned();
    handler.await.unwrap();

    let spans = recorder.spans.lock().unwrap().clone();
    let run = spans
        .iter()
        .find(|s| s.name == "workflow.run")
        .expect("a run span");
    assert_eq!(run.field("workflow"), Some("Pipeline"));
    assert_eq!(run.field("run_id"), Some(run_id.as_str()));
    let steps: Vec<(&str, &str)> = spans
        .iter()
        .filter(|s| s.name == "workflow.step")
        .map(|s| {
            assert_eq!(
                s.parent,
                Some(run.id),
                "step spans are children of the run span"
            );
            (s.field("step").unwrap(), s.field("event").unwrap())
        })
        .collect();
    assert_eq!(steps, [("parse", "StartEvent"), ("store", "Parsed")]);
}
