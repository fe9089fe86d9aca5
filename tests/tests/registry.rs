//! The event registry: lookup by name, and duplicate names rejected with both types named.
//! This binary deliberately registers two types under one name.

use serde::{Deserialize, Serialize};
use workflows::prelude::*;

mod billing {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    #[event(name = "Invoice")]
    pub struct Created {
        pub amount: u32,
    }
}

mod shipping {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    #[event(name = "Invoice")]
    pub struct Created {
        pub parcel: String,
    }
}

struct Any;

#[workflow]
impl Any {
    #[step]
    async fn only(&self, _ev: StartEvent) -> StopEvent<()> {
        StopEvent::new(())
    }
}

#[test]
fn duplicate_names_are_reported_with_both_types() {
    let err = workflows::registry::check().unwrap_err();
    assert_eq!(err.duplicates.len(), 1);
    let dup = &err.duplicates[0];
    assert_eq!(dup.name, "Invoice");
    assert_eq!(
        dup.types,
        ["registry::billing::Created", "registry::shipping::Created"]
    );
    assert_eq!(
        err.to_string(),
        "event names must be unique in a binary: `Invoice` is claimed by registry::billing::Created and registry::shipping::Created; give one of each pair another name with #[event(name = \"...\")]"
    );
}

#[tokio::test]
async fn a_run_in_a_binary_with_duplicates_fails_at_start() {
    match Any.run(StartEvent::new()).await {
        Err(WorkflowError::Registry(err)) => assert_eq!(err.duplicates[0].name, "Invoice"),
        other => panic!("expected a registry error, got {other:?}"),
    }
}

#[test]
fn events_are_found_by_name() {
    assert_eq!(billing::Created::NAME, "Invoice");
    let ev =
        workflows::registry::decode("HumanResponseEvent", serde_json::json!({"response": "yes"}))
            .unwrap()
            .unwrap();
    assert_eq!(
        ev.downcast_ref::<HumanResponseEvent>().unwrap().response,
        "yes"
    );
    let bad = workflows::registry::decode("HumanResponseEvent", serde_json::json!({"response": 5}));
    assert!(
        bad.unwrap().is_err(),
        "a wrong field type is a decoding error"
    );
    assert!(workflows::registry::decode("Nope", serde_json::json!({})).is_none());
    assert!(workflows::registry::names().contains(&"StepFailed"));
}
