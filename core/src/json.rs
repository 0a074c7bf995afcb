//! One JSON reader for the whole crate. `serde_json::from_str` and `from_slice` each
//! instantiate every `Deserialize` impl again for their own reader type; reading all
//! text through the slice reader keeps one copy, which matters in a Worker whose
//! upload size is budgeted.

use serde::de::DeserializeOwned;

/// `serde_json::from_str`, through the slice reader.
pub fn from_str<T: DeserializeOwned>(s: &str) -> serde_json::Result<T> {
    serde_json::from_slice(s.as_bytes())
}
