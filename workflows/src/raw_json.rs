//! JSON kept as text, so that a snapshot writes and reads large values without building a tree.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON value held as its compact text.
///
/// A snapshot keeps the run's state and store this way: taking a snapshot serializes the
/// state straight into text, and resuming deserializes the text straight into the state's
/// type, with no [`serde_json::Value`] tree in between. [`parse`](Self::parse) reads it.
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
