//! The dynamic JSON store of a run, addressed by dot paths (`"a.b.0"`).

use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::snapshot::{RawJson, SnapshotError};

/// Why a store operation failed.
///
/// ```
/// use workflows::{Store, StoreError};
///
/// let store = Store::default();
/// store.set("count", 3).unwrap();
/// let err = store.set("count.inner", 1).unwrap_err();
/// assert!(matches!(err, StoreError::NotAContainer { found: "number", .. }));
/// assert_eq!(err.to_string(), "path `count.inner`: `inner` is inside a number, which has no fields");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A path segment goes through a value that is neither an object nor an array.
    #[error("path `{path}`: `{segment}` is inside a {found}, which has no fields")]
    NotAContainer {
        /// The whole path.
        path: String,
        /// The segment that could not be followed.
        segment: String,
        /// The JSON type found there.
        found: &'static str,
    },
    /// A segment that indexes an array is not a number, or is past its end.
    #[error("path `{path}`: `{segment}` is not an index of an array of length {len}")]
    BadIndex {
        /// The whole path.
        path: String,
        /// The segment.
        segment: String,
        /// The array's length.
        len: usize,
    },
    /// The value could not be converted to or from JSON.
    #[error("path `{path}`: {message}")]
    Json {
        /// The whole path.
        path: String,
        /// serde_json's message.
        message: String,
    },
}

/// A run's dynamic state: a JSON object edited by dot paths, for users who do not want a
/// typed state. Segments name object fields or, on arrays, indexes.
///
/// ```
/// use workflows::Store;
///
/// let store = Store::default();
/// store.set("user.name", "Ada").unwrap();
/// store.set("user.langs", vec!["en", "fr"]).unwrap();
/// store.set("user.langs.2", "de").unwrap(); // an index equal to the length appends
/// assert_eq!(store.get::<String>("user.name").unwrap().as_deref(), Some("Ada"));
/// assert_eq!(store.get::<String>("user.langs.1").unwrap().as_deref(), Some("fr"));
/// assert_eq!(store.get::<u32>("user.age").unwrap(), None);
/// assert_eq!(store.get_or("user.age", 36_u32).unwrap(), 36);
/// store.edit(|root| root.remove("user"));
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug, Default)]
pub struct Store {
    root: Mutex<Map<String, Value>>,
}

impl Store {
    /// A store holding `root`.
    pub fn from_map(root: Map<String, Value>) -> Self {
        Store {
            root: Mutex::new(root),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        // A panic while the lock is held cannot leave the map half-written: every edit is one call.
        self.root.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value at `path` converted to `T`, `Ok(None)` when nothing is there.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, StoreError> {
        let root = self.lock();
        match lookup(&root, path)? {
            None => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| StoreError::Json {
                path: path.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// The value at `path`, or `default` when nothing is there.
    pub fn get_or<T: DeserializeOwned>(&self, path: &str, default: T) -> Result<T, StoreError> {
        Ok(self.get(path)?.unwrap_or(default))
    }

    /// Sets the value at `path`, creating missing objects on the way.
    pub fn set(&self, path: &str, value: impl Serialize) -> Result<(), StoreError> {
        let value = serde_json::to_value(value).map_err(|e| StoreError::Json {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let mut root = self.lock();
        assign(&mut root, path, value)
    }

    /// Edits the whole object at once, atomically with respect to other steps.
    pub fn edit<R>(&self, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
        f(&mut self.lock())
    }

    /// A copy of the whole object.
    pub fn to_map(&self) -> Map<String, Value> {
        self.lock().clone()
    }

    /// The whole object as JSON text, for a snapshot (no copy of the values).
    pub(crate) fn to_raw(&self) -> Result<RawJson, SnapshotError> {
        RawJson::from_serialize(&*self.lock()).map_err(|e| SnapshotError::Serialize {
            what: "the store".into(),
            message: e.to_string(),
        })
    }

    /// The number of top-level keys.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn lookup<'a>(root: &'a Map<String, Value>, path: &str) -> Result<Option<&'a Value>, StoreError> {
    let mut segments = path.split('.');
    let first = segments.next().unwrap_or_default();
    match root.get(first) {
        None => Ok(None),
        Some(start) => follow(start, segments, path),
    }
}

/// Follows `segments` (of the dot path `path`) down from `current`: object fields by name,
/// array items by index. `Ok(None)` when a field or item is missing.
pub(crate) fn follow<'a, 's>(
    mut current: &'a Value,
    segments: impl Iterator<Item = &'s str>,
    path: &str,
) -> Result<Option<&'a Value>, StoreError> {
    for segment in segments {
        current = match current {
            Value::Object(map) => match map.get(segment) {
                Some(v) => v,
                None => return Ok(None),
            },
            Value::Array(items) => match segment.parse::<usize>() {
                Ok(i) if i < items.len() => &items[i],
                Ok(_) => return Ok(None),
                Err(_) => {
                    return Err(StoreError::BadIndex {
                        path: path.to_owned(),
                        segment: segment.to_owned(),
                        len: items.len(),
                    });
                }
            },
            other => {
                return Err(StoreError::NotAContainer {
                    path: path.to_owned(),
                    segment: segment.to_owned(),
                    found: kind(other),
                });
            }
        };
    }
    Ok(Some(current))
}

fn assign(root: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), StoreError> {
    let segments: Vec<&str> = path.split('.').collect();
    let (last, parents) = segments
        .split_last()
        .expect("split yields at least one segment");
    let mut current: &mut Value = match parents.first() {
        None => {
            root.insert((*last).to_owned(), value);
            return Ok(());
        }
        Some(first) => root
            .entry((*first).to_owned())
            .or_insert_with(|| Value::Object(Map::new())),
    };
    for segment in parents.iter().skip(1).chain(std::iter::once(last)) {
        let is_last = std::ptr::eq(segment, last);
        current = step_into(current, path, segment, is_last.then(|| value.clone()))?;
        if is_last {
            return Ok(());
        }
    }
    Ok(())
}

/// Follows `segment` from `current`, creating an object when missing; when `value` is given,
/// stores it there instead.
fn step_into<'a>(
    current: &'a mut Value,
    path: &str,
    segment: &str,
    value: Option<Value>,
) -> Result<&'a mut Value, StoreError> {
    match current {
        Value::Object(map) => {
            let slot = map
                .entry(segment.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(v) = value {
                *slot = v;
            }
            Ok(slot)
        }
        Value::Array(items) => {
            let len = items.len();
            let index = segment
                .parse::<usize>()
                .ok()
                .filter(|i| *i <= len)
                .ok_or_else(|| StoreError::BadIndex {
                    path: path.to_owned(),
                    segment: segment.to_owned(),
                    len,
                })?;
            if index == len {
                items.push(value.clone().unwrap_or_else(|| Value::Object(Map::new())));
            } else if let Some(v) = value {
                items[index] = v;
            }
            Ok(&mut items[index])
        }
        other => Err(StoreError::NotAContainer {
            path: path.to_owned(),
            segment: segment.to_owned(),
            found: kind(other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_set_creates_objects() {
        let s = Store::default();
        s.set("a.b.c", 1).unwrap();
        assert_eq!(
            s.to_map(),
            json!({"a": {"b": {"c": 1}}}).as_object().unwrap().clone()
        );
    }

    #[test]
    fn array_index_read_write_and_append() {
        let s = Store::default();
        s.set("xs", vec![1, 2]).unwrap();
        s.set("xs.0", 10).unwrap();
        s.set("xs.2", 30).unwrap();
        assert_eq!(s.get::<Vec<i32>>("xs").unwrap(), Some(vec![10, 2, 30]));
        assert!(matches!(
            s.set("xs.9", 1),
            Err(StoreError::BadIndex { len: 3, .. })
        ));
        assert!(matches!(
            s.get::<i32>("xs.first"),
            Err(StoreError::BadIndex { .. })
        ));
    }

    #[test]
    fn paths_through_scalars_are_errors() {
        let s = Store::default();
        s.set("n", 5).unwrap();
        let err = s.set("n.x", 1).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NotAContainer {
                    found: "number",
                    ..
                }
            ),
            "{err}"
        );
        assert!(s.get::<i32>("n.x").is_err());
    }

    #[test]
    fn wrong_type_is_a_json_error() {
        let s = Store::default();
        s.set("name", "Ada").unwrap();
        assert!(matches!(s.get::<u32>("name"), Err(StoreError::Json { .. })));
    }
}
