//! The binary-wide registry of event types, filled by `#[derive(Event)]` through `inventory`.
//!
//! Snapshots and HTTP requests name events by [`crate::Event::NAME`]; the registry
//! turns such a name and its JSON back into a typed event. Generic event types (such as
//! [`StopEvent<T>`](crate::StopEvent)) cannot be registered and are not looked up by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::{AnyEvent, Event, EventKind};

/// One registered event type. Created by `#[derive(Event)]`; users do not build these.
#[doc(hidden)]
pub struct EventRegistration {
    pub(crate) info: crate::EventInfo,
    pub(crate) name: &'static str,
    pub(crate) kind: EventKind,
    pub(crate) type_name: fn() -> &'static str,
    pub(crate) decode: fn(serde_json::Value) -> serde_json::Result<Box<dyn AnyEvent>>,
}

impl EventRegistration {
    /// The registration of `E`.
    pub const fn new<E: Event + serde::de::DeserializeOwned>() -> Self {
        EventRegistration {
            info: crate::EventInfo::of::<E>(),
            name: E::NAME,
            kind: E::KIND,
            type_name: std::any::type_name::<E>,
            decode: decode_as::<E>,
        }
    }
}

fn decode_as<E: Event + serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> serde_json::Result<Box<dyn AnyEvent>> {
    let ev: E = serde_json::from_value(value)?;
    Ok(Box::new(ev))
}

inventory::collect!(EventRegistration);

/// Two event types registered under one name; part of [`RegistryError`].
///
/// ```
/// use workflows::registry::DuplicateName;
///
/// let dup = DuplicateName { name: "Invoice", types: vec!["billing::Created", "shipping::Created"] };
/// assert_eq!(dup.types.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateName {
    /// The shared name.
    pub name: &'static str,
    /// The Rust types that claim it.
    pub types: Vec<&'static str>,
}

/// What is wrong with the registry: every duplicated event name at once.
///
/// ```
/// // A binary whose event names are unique passes the check.
/// assert!(workflows::registry::check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.duplicates))]
pub struct RegistryError {
    /// Each name registered more than once, with the types that claim it.
    pub duplicates: Vec<DuplicateName>,
}

fn describe(duplicates: &[DuplicateName]) -> String {
    let parts: Vec<String> = duplicates
        .iter()
        .map(|d| format!("`{}` is claimed by {}", d.name, d.types.join(" and ")))
        .collect();
    format!(
        "event names must be unique in a binary: {}; give one of each pair another name with #[event(name = \"...\")]",
        parts.join("; ")
    )
}

struct Registry {
    by_name: HashMap<&'static str, &'static EventRegistration>,
    result: Result<(), RegistryError>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_name: HashMap<&'static str, &'static EventRegistration> = HashMap::new();
        let mut clashes: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
        for reg in inventory::iter::<EventRegistration> {
            if let Some(first) = by_name.get(reg.name) {
                // The same type may be registered twice only through a bug; compare by type name.
                if (first.type_name)() != (reg.type_name)() {
                    let types = clashes
                        .entry(reg.name)
                        .or_insert_with(|| vec![(first.type_name)()]);
                    types.push((reg.type_name)());
                }
            } else {
                by_name.insert(reg.name, reg);
            }
        }
        let mut duplicates: Vec<DuplicateName> = clashes
            .into_iter()
            .map(|(name, mut types)| {
                types.sort_unstable();
                DuplicateName { name, types }
            })
            .collect();
        duplicates.sort_by_key(|d| d.name);
        let result = if duplicates.is_empty() {
            Ok(())
        } else {
            Err(RegistryError { duplicates })
        };
        Registry { by_name, result }
    })
}

/// Checks once per process that no two event types share a name. Every run calls it; call it
/// at start-up to fail early.
///
/// ```
/// workflows::registry::check().expect("event names are unique");
/// ```
pub fn check() -> Result<(), RegistryError> {
    registry().result.clone()
}

/// Decodes JSON into the registered event type called `name`.
///
/// Returns `None` when no type of that name is registered, else the decoding result.
///
/// ```
/// use workflows::prelude::*;
///
/// let ev = workflows::registry::decode("HumanResponseEvent", serde_json::json!({"response": "7"}))
///     .expect("registered")
///     .expect("valid JSON for the type");
/// assert_eq!(ev.downcast_ref::<HumanResponseEvent>().unwrap().response, "7");
/// assert!(workflows::registry::decode("NoSuchEvent", serde_json::json!({})).is_none());
/// ```
pub fn decode(
    name: &str,
    value: serde_json::Value,
) -> Option<serde_json::Result<Box<dyn AnyEvent>>> {
    registry().by_name.get(name).map(|reg| (reg.decode)(value))
}

/// Static facts about the registered event type called `name`: its kind, the response type
/// that answers it, its JSON Schema.
///
/// ```
/// let info = workflows::registry::info_of("InputRequiredEvent").unwrap();
/// assert_eq!(info.response, Some("HumanResponseEvent"));
/// assert!(workflows::registry::info_of("NoSuchEvent").is_none());
/// ```
pub fn info_of(name: &str) -> Option<crate::EventInfo> {
    registry().by_name.get(name).map(|reg| reg.info)
}

/// The kind of the registered event type called `name`.
///
/// ```
/// use workflows::EventKind;
/// assert_eq!(workflows::registry::kind_of("InputRequiredEvent"), Some(EventKind::InputRequired));
/// ```
pub fn kind_of(name: &str) -> Option<EventKind> {
    registry().by_name.get(name).map(|reg| reg.kind)
}

/// The names of all registered event types, sorted.
///
/// ```
/// assert!(workflows::registry::names().contains(&"StartEvent"));
/// ```
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = registry().by_name.keys().copied().collect();
    names.sort_unstable();
    names
}
