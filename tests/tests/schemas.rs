//! Event schemas: exact from `schemars` when the event type derives `JsonSchema` (nested
//! types, serde's enum representations, defaults, `deny_unknown_fields`), and written from the
//! fields by `#[derive(Event)]` otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use workflows::prelude::*;

/// Where to send the goods.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Address {
    street: String,
    zip: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Colour {
    Red,
    Green,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Payment {
    Card { last4: String },
    Invoice { days: u32 },
}

fn world() -> String {
    "World".into()
}

/// An order to approve.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, Event)]
#[event(start)]
#[serde(deny_unknown_fields)]
struct Order {
    #[serde(default = "world")]
    name: String,
    count: u32,
    address: Option<Address>,
    colour: Colour,
    payment: Payment,
}

/// The same shape, without `JsonSchema`.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct PlainOrder {
    #[serde(default)]
    name: String,
    count: u32,
}

#[test]
fn a_type_that_derives_json_schema_gets_the_exact_schema() {
    let schema = Order::schema();
    assert!(schema.get("$schema").is_none(), "{schema}");
    assert_eq!(schema["title"], "Order");
    assert_eq!(schema["description"], "An order to approve.");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["name"]["default"], "World");
    assert_eq!(schema["required"], json!(["count", "colour", "payment"]));
    // Nested types are described once, under `$defs`, and referred to.
    let address = &schema["$defs"]["Address"];
    assert_eq!(address["additionalProperties"], false);
    assert_eq!(address["required"], json!(["street"]));
    assert_eq!(address["description"], "Where to send the goods.");
    assert_eq!(schema["$defs"]["Colour"]["enum"], json!(["red", "green"]));
    // An internally tagged enum: one object per variant, each with its tag's constant.
    let variants = schema["$defs"]["Payment"]["oneOf"].as_array().unwrap();
    let tags: Vec<_> = variants
        .iter()
        .map(|v| v["properties"]["kind"]["const"].clone())
        .collect();
    assert_eq!(tags, [json!("card"), json!("invoice")]);
    assert_eq!(variants[1]["properties"]["days"]["type"], "integer");
}

#[test]
fn any_other_type_gets_the_schema_written_from_its_fields() {
    let schema = PlainOrder::schema();
    assert_eq!(schema["title"], "PlainOrder");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["count"]["type"], "integer");
    assert_eq!(schema["required"], json!(["count"]));
}
