//! [`Fields`]: the free-form JSON fields of the built-in events, a small map kept sorted by key.
//!
//! Invariant (owned here): `entries` is sorted by key, strictly, so no key appears twice.
//!
//! Why not `serde_json::Map`: that is a B-tree whose first node holds room for eleven entries,
//! 632 bytes for a start event with one field, allocated again by every clone (the run keeps a
//! step's input for retries and snapshots, so the first step gets a clone). The events this type
//! serves carry a handful of fields; a sorted vector finds one by binary search, holds exactly
//! what it was given, and iterates and serializes in the same key order the B-tree did, so the
//! JSON the engine writes does not change. Hand-written rather than a crate's type because it is
//! small and a crate's map in a public field would tie this API to that crate's versions.

use std::fmt;
use std::ops::Index;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Free-form JSON fields, sorted by key: what [`StartEvent`](crate::StartEvent),
/// [`InputRequiredEvent`](crate::InputRequiredEvent) and
/// [`HumanResponseEvent`](crate::HumanResponseEvent) carry besides their named fields.
///
/// It reads like `serde_json::Map` (`get`, `insert`, `remove`, `iter`, indexing by key) and
/// converts to and from one. Iteration and serialization go by key order. Indexing a key that is
/// absent gives `Value::Null`, as indexing a JSON value does.
///
/// ```
/// use serde_json::{json, Value};
/// use workflows::Fields;
///
/// let mut fields = Fields::new();
/// fields.insert("topic".into(), json!("otters"));
/// fields.insert("max_words".into(), json!(200));
/// assert_eq!(fields.get("topic"), Some(&json!("otters")));
/// assert_eq!(fields["max_words"], 200);
/// assert_eq!(fields["missing"], Value::Null);
/// assert_eq!(fields.keys().collect::<Vec<_>>(), ["max_words", "topic"]);
/// assert_eq!(serde_json::to_string(&fields).unwrap(), r#"{"max_words":200,"topic":"otters"}"#);
///
/// let back: Fields = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
/// assert_eq!(back["b"], 3, "a repeated key keeps its last value, as serde_json's map does");
/// assert_eq!(back.len(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    entries: Vec<(String, Value)>,
}

impl Fields {
    /// No fields. Does not allocate.
    pub const fn new() -> Self {
        Fields {
            entries: Vec::new(),
        }
    }

    /// No fields, with room for `capacity` without reallocating.
    pub fn with_capacity(capacity: usize) -> Self {
        Fields {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value of `key` to change, if present.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaces, if any.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                if self.entries.capacity() == 0 {
                    // Most of these events carry one or two fields: room for one first, rather
                    // than the four a vector's first push would take.
                    self.entries.reserve_exact(1);
                }
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Takes `key` out; returns its value, if it was present.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Removes every field.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The fields in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The fields in key order, values changeable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Builds from entries in any order; a repeated key keeps its last value.
    fn from_unsorted(mut entries: Vec<(String, Value)>) -> Self {
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable, so of equal keys the last given stays last; dedup then keeps it.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(later, kept);
                }
                same
            });
        }
        Fields { entries }
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

static NULL: Value = Value::Null;

impl Index<&str> for Fields {
    type Output = Value;

    /// The value of `key`, or `Value::Null` when absent.
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

impl From<Map<String, Value>> for Fields {
    fn from(map: Map<String, Value>) -> Self {
        // Without serde_json's `preserve_order` the map iterates sorted and this never sorts.
        Fields::from_unsorted(map.into_iter().collect())
    }
}

impl From<Fields> for Map<String, Value> {
    fn from(fields: Fields) -> Self {
        fields.entries.into_iter().collect()
    }
}

impl From<Fields> for Value {
    fn from(fields: Fields) -> Self {
        Value::Object(fields.into())
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Fields::from_unsorted(iter.into_iter().collect())
    }
}

impl Extend<(String, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.extend(iter);
        *self = Fields::from_unsorted(entries);
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;

    /// The fields in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;

    /// The fields in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Fields, A::Error> {
                // The hint comes from the input: capped, so a lying one cannot reserve much.
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Fields::from_unsorted(entries))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(fields: &Fields) -> Vec<&str> {
        fields.keys().map(String::as_str).collect()
    }

    #[test]
    fn insert_keeps_keys_sorted_and_unique_and_returns_what_it_replaces() {
        let mut fields = Fields::new();
        assert_eq!(fields.insert("m".into(), json!(1)), None);
        assert_eq!(fields.insert("a".into(), json!(2)), None);
        assert_eq!(fields.insert("z".into(), json!(3)), None);
        assert_eq!(fields.insert("m".into(), json!(4)), Some(json!(1)));
        assert_eq!(keys(&fields), ["a", "m", "z"]);
        assert_eq!(fields["m"], 4);
        assert_eq!(fields.remove("a"), Some(json!(2)));
        assert_eq!(fields.remove("a"), None);
        assert!(!fields.contains_key("a") && fields.contains_key("z"));
        *fields.get_mut("z").unwrap() = json!("changed");
        assert_eq!(fields.get("z"), Some(&json!("changed")));
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn a_first_field_takes_room_for_one() {
        let mut fields = Fields::new();
        assert_eq!(fields.entries.capacity(), 0);
        fields.insert("only".into(), json!(true));
        assert_eq!(fields.entries.capacity(), 1);
        fields.insert("second".into(), json!(true));
        assert!(fields.entries.capacity() >= 2);
    }

    #[test]
    fn unsorted_input_is_sorted_and_a_repeated_key_keeps_its_last_value() {
        let built: Fields = [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        assert_eq!(keys(&built), ["a", "b", "c"]);
        assert_eq!(
            (built["a"].clone(), built["b"].clone()),
            (json!(5), json!(3))
        );

        let parsed: Fields = serde_json::from_str(r#"{"z":0,"y":1,"z":2}"#).unwrap();
        assert_eq!(keys(&parsed), ["y", "z"]);
        assert_eq!(parsed["z"], 2);

        let mut extended = parsed.clone();
        extended.extend([("a".to_owned(), json!(9)), ("y".to_owned(), json!(8))]);
        assert_eq!(keys(&extended), ["a", "y", "z"]);
        assert_eq!(extended["y"], 8);
    }

    #[test]
    fn it_writes_the_json_serde_jsons_map_writes_and_converts_both_ways() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"b":[1],"a":{"x":null},"c":"s"}"#).unwrap();
        let fields = Fields::from(map.clone());
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        assert_eq!(Map::from(fields.clone()), map);
        assert_eq!(Value::from(fields.clone()), Value::Object(map));
        assert_eq!(
            format!("{fields:?}"),
            r#"{"a": Object {"x": Null}, "b": Array [Number(1)], "c": String("s")}"#
        );
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        let err = serde_json::from_str::<Fields>("[1, 2]").unwrap_err();
        assert!(err.to_string().contains("a JSON object"), "{err}");
    }
}
