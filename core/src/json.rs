//! One JSON reader for the whole crate. `serde_json::from_str` and `from_slice` each
//! instantiate every `Deserialize` impl again for their own reader type; reading all
//! text through the slice reader keeps one copy, which matters in a Worker whose
//! upload size is budgeted.

use serde::de::DeserializeOwned;

/// `serde_json::from_str`, through the slice reader.
pub fn from_str<T: DeserializeOwned>(s: &str) -> serde_json::Result<T> {
    serde_json::from_slice(s.as_bytes())
}

/// Parses JSON text into a [`serde_json::Value`], for the small upstream answers read
/// a field or two at a time: one `Value` deserializer serves them all, where a
/// struct per answer would add a deserializer each.
pub fn value(s: &str) -> serde_json::Result<serde_json::Value> {
    from_str(s)
}

/// The integer at `pointer` (`/id`) of an answer.
pub fn int_at(v: &serde_json::Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(serde_json::Value::as_i64)
}

/// The string at `pointer` of an answer.
pub fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(serde_json::Value::as_str)
}
