//! Where an event type's JSON Schema comes from: `schemars` when the type derives
//! `JsonSchema` (exact: nested types, every serde enum representation, defaults,
//! `deny_unknown_fields`), else the description `#[derive(Event)]` writes from the type's
//! fields, which is approximate for types it cannot see into.
//!
//! `#[derive(Event)]` cannot know whether the type also derives `JsonSchema`, so the code it
//! generates asks this probe, which picks by method resolution (autoref specialization):
//! `(&&SchemaProbe::<T>::new()).event_schema(fallback)` finds [`FromJsonSchema`] when
//! `T: JsonSchema`, else [`FromFields`].

use std::marker::PhantomData;

use serde_json::Value;

/// Asks for `T`'s schema; see the module docs.
pub struct SchemaProbe<T>(PhantomData<T>);

impl<T> SchemaProbe<T> {
    /// A probe for `T`.
    pub const fn new() -> Self {
        SchemaProbe(PhantomData)
    }
}

impl<T> Default for SchemaProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The schema `schemars` generates, for a type that derives `JsonSchema`.
pub trait FromJsonSchema {
    /// The schema, without its `$schema` key (a server sends many schemas; each names the
    /// dialect no better than the route does).
    fn event_schema(&self, fields: fn() -> Value) -> Value;
}

impl<T: schemars::JsonSchema> FromJsonSchema for &SchemaProbe<T> {
    fn event_schema(&self, _fields: fn() -> Value) -> Value {
        let mut schema = schemars::SchemaGenerator::default()
            .into_root_schema_for::<T>()
            .to_value();
        if let Value::Object(map) = &mut schema {
            map.remove("$schema");
        }
        schema
    }
}

/// The description written from the type's fields, for any other type.
pub trait FromFields {
    /// The description.
    fn event_schema(&self, fields: fn() -> Value) -> Value;
}

impl<T> FromFields for SchemaProbe<T> {
    fn event_schema(&self, fields: fn() -> Value) -> Value {
        fields()
    }
}
