//! JSON kept as text, so that a snapshot writes and reads large values without building a tree.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON value held as its text.
///
/// A snapshot keeps the run's state and store this way: taking a snapshot serializes the
/// state straight into (compact) text, and resuming deserializes the text straight into the
/// state's type, with no [`serde_json::Value`] tree in between. [`parse`](Self::parse) reads
/// it. Text read back keeps its spacing: equality compares texts, so two texts of one value
/// that differ in spacing or key order are not equal.
///
/// It deserializes from JSON text (`serde_json::from_str`, `from_slice`, `from_reader`) and
/// from a `serde_json::Value` (`from_value`), but not through serde's buffering: a
/// [`Snapshot`](crate::Snapshot) inside `#[serde(flatten)]`, or inside an untagged or
/// internally tagged enum, fails to deserialize. Nest it as a plain field, or store its
/// [`to_json`](crate::Snapshot::to_json) text.
///
/// ```
/// use workflows::snapshot::RawJson;
///
/// let raw = RawJson::from_serialize(&vec![1, 2, 3]).unwrap();
/// assert_eq!(raw.as_str(), "[1,2,3]");
/// assert_eq!(raw.parse::<Vec<u8>>().unwrap(), [1, 2, 3]);
/// assert_eq!(raw.parse::<serde_json::Value>().unwrap(), serde_json::json!([1, 2, 3]));
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// `value` serialized to JSON text.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(RawJson)
    }

    /// Checks that `text` is one JSON value and keeps it as it is.
    pub fn from_text(text: impl Into<String>) -> serde_json::Result<Self> {
        RawValue::from_string(text.into()).map(RawJson)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value deserialized as `T` (a [`serde_json::Value`] to inspect it freely).
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.as_str())
    }
}

impl Default for RawJson {
    /// `null`.
    fn default() -> Self {
        RawJson::from_text("null").expect("`null` is JSON")
    }
}

impl PartialEq for RawJson {
    /// Equal texts. Two texts of one value that differ in key order or spacing are not equal.
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Stored {
        id: u32,
        state: RawJson,
    }

    #[test]
    fn nested_as_a_field_it_reads_back_from_text_and_from_a_value() {
        let stored = Stored {
            id: 7,
            state: RawJson::from_serialize(&serde_json::json!({"a": [1, 2]})).unwrap(),
        };
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(text, r#"{"id":7,"state":{"a":[1,2]}}"#);
        assert_eq!(serde_json::from_str::<Stored>(&text).unwrap(), stored);
        let value = serde_json::to_value(&stored).unwrap();
        assert_eq!(serde_json::from_value::<Stored>(value).unwrap(), stored);
        assert_eq!(RawJson::default().as_str(), "null");
        assert!(RawJson::from_text("{oops").is_err());
    }
}
