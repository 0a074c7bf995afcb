//! One JSON reader for the whole crate.
//!
//! Text is parsed once into a [`Value`] (one instantiation of serde_json's parser), and
//! typed data is read out of it by [`FromJson`] impls written against [`Obj`]. A
//! `#[derive(Deserialize)]` would instead generate, for every type, a visitor that
//! serde_json monomorphises again (field matching, sequences, `Option`s, buffered
//! `Content` for tagged enums); across the webhook payloads, app and workflow
//! definitions, upstream answers and stored rows that was about a fifth of the
//! Worker's code, and the Worker's upload size is budgeted. Reading a `Value` field by
//! field also gives every error its full path (`steps[2].action.files[0].path`).
//!
//! Writing stays with `#[derive(Serialize)]`; every type that is both written and read
//! has a round-trip test.

use std::collections::BTreeMap;

use std::fmt;

use serde_json::{Map, Value};

/// `#[derive(FromJson)]` (structs, newtypes, tagged enums) and `#[derive(Names)]`
/// (unit enums); see the `edge-json-derive` crate.
pub use edge_json_derive::{FromJson, Names};

/// Where a value sits in a document: `deployment.projectName`, `commits[2].id`.
/// Built on the stack while reading and rendered only for an error.
#[derive(Debug, Clone, Copy)]
pub enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub fn is_root(&self) -> bool {
        matches!(self, Path::Root)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                parent.fmt(f)?;
                if !parent.is_root() {
                    f.write_str(".")?;
                }
                f.write_str(key)
            }
            Path::Index(parent, i) => {
                parent.fmt(f)?;
                write!(f, "[{i}]")
            }
        }
    }
}

/// What kind of thing is wrong with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A required field is absent.
    Missing,
    /// A field the type does not know (where it refuses them).
    Unknown,
    /// A value of the wrong type, or the right type with a wrong value.
    Invalid,
}

/// A document without the shape its reader expects: where, what kind of wrong, and
/// what exactly (in serde's words, so messages read the same as before this reader
/// existed). Its [`Problem`] is boxed: every reader returns `Result<T, Invalid>` and
/// passes errors up field by field, and one pointer moves in less code than the
/// three fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Invalid(Box<Problem>);

/// What an [`Invalid`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub kind: Kind,
    pub problem: String,
}

impl std::ops::Deref for Invalid {
    type Target = Problem;

    fn deref(&self) -> &Problem {
        &self.0
    }
}

/// As the unboxed struct was: `Invalid { path, kind, problem }`.
impl fmt::Debug for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalid")
            .field("path", &self.0.path)
            .field("kind", &self.0.kind)
            .field("problem", &self.0.problem)
            .finish()
    }
}

impl Invalid {
    fn new(path: String, kind: Kind, problem: String) -> Self {
        Invalid(Box::new(Problem {
            path,
            kind,
            problem,
        }))
    }

    /// A wrong value at `at`.
    pub fn at(at: Path<'_>, problem: impl Into<String>) -> Self {
        Invalid::new(at.to_string(), Kind::Invalid, problem.into())
    }

    /// `key` is absent from the object at `at`.
    pub fn missing(at: Path<'_>, key: &str) -> Self {
        Invalid::new(
            at.to_string(),
            Kind::Missing,
            format!("missing field `{key}`"),
        )
    }

    /// Its path, kind and text, taken out.
    pub fn into_problem(self) -> Problem {
        *self.0
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for Invalid {}

/// Why a text could not be read as a `T`.
#[derive(Debug)]
pub enum Error {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// JSON, but not a `T`.
    Invalid(Invalid),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(e) => write!(f, "malformed JSON: {e}"),
            Error::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Error::Invalid(e)
    }
}

/// A type read out of a JSON [`Value`].
pub trait FromJson: Sized {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid>;
}

/// Parses JSON text into a [`Value`].
pub fn value(s: &str) -> serde_json::Result<Value> {
    serde_json::from_slice(s.as_bytes())
}

/// Parses JSON text and reads a `T` out of it.
pub fn read<T: FromJson>(s: &str) -> Result<T, Error> {
    read_slice(s.as_bytes())
}

/// [`read`] for bytes.
pub fn read_slice<T: FromJson>(s: &[u8]) -> Result<T, Error> {
    let v = parse(s)?;
    Ok(T::from_json(&v, Path::Root)?)
}

/// The text parsed, for every `T` of [`read_slice`]: not generic, so the parse and
/// its checks are in the Worker once rather than once per type read.
#[inline(never)]
fn parse(s: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(s).map_err(Error::Syntax)
}

/// A request body that is not the JSON its reader expects. The message names the
/// field by its path (`deployment.projectName: invalid type: ...`); a body of the
/// wrong shape altogether gets the reader's hint instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBody(pub String);

/// Reads a JSON request body as a `T`; see [`BadBody`] for its errors.
pub fn read_body<T: FromJson>(body: &[u8], root_hint: &str) -> Result<T, BadBody> {
    read_slice(body).map_err(|e| bad_body(e, root_hint))
}

/// [`read_body`]'s error, one copy for every `T`.
#[inline(never)]
fn bad_body(e: Error, root_hint: &str) -> BadBody {
    match e {
        Error::Syntax(e) => BadBody(format!("malformed JSON: {e}")),
        Error::Invalid(e) if e.path.is_empty() && e.kind == Kind::Invalid => {
            BadBody(root_hint.to_owned())
        }
        Error::Invalid(e) => BadBody(e.to_string()),
    }
}

/// Reads a `T` out of an already parsed value.
pub fn from_value<T: FromJson>(v: &Value) -> Result<T, Invalid> {
    T::from_json(v, Path::Root)
}

/// `v` as compact JSON text, as `v.to_string()` writes it. `Value`'s `Display` carries
/// the pretty printer too (for `{:#}`), and writes through a formatter of its own:
/// every document the Worker sends or stores is written here instead.
pub fn text(v: &Value) -> String {
    // Cannot fail: a `Value`'s maps have string keys.
    serde_json::to_string(v).unwrap_or_default()
}

/// The integer at `pointer` (`/id`) of an answer.
pub fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// The string at `pointer` of an answer.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// How serde describes a value it did not expect: integer `5`, string "x", map.
fn unexpected(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".to_owned(),
        Value::Object(_) => "map".to_owned(),
    }
}

/// `invalid type: integer `5`, expected a string`.
pub fn invalid_type(v: &Value, at: Path<'_>, expected: &str) -> Invalid {
    Invalid::at(
        at,
        format!("invalid type: {}, expected {expected}", unexpected(v)),
    )
}

/// `invalid value: string "x", expected <what>`: the right type, a wrong value.
pub fn invalid_value(v: &Value, at: Path<'_>, expected: &str) -> Invalid {
    Invalid::at(
        at,
        format!("invalid value: {}, expected {expected}", unexpected(v)),
    )
}

/// "`a`, `b` or `c`" for messages.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_owned(),
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let all: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", all.join(", "))
        }
    }
}

/// The string `v` must be, or a type error naming `expected`.
pub fn str_of<'v>(v: &'v Value, at: Path<'_>, expected: &str) -> Result<&'v str, Invalid> {
    v.as_str().ok_or_else(|| invalid_type(v, at, expected))
}

/// A string newtype that validates through `TryFrom<String>`; its error text is the
/// message (as with serde's `try_from`).
pub fn parsed<T: TryFrom<String, Error = String>>(v: &Value, at: Path<'_>) -> Result<T, Invalid> {
    let s = str_of(v, at, "a string")?;
    T::try_from(s.to_owned()).map_err(|e| Invalid::at(at, e))
}

/// Which of `names` the string `v` is (a unit variant, or a tag). One function for
/// every enum: the derives map the index to the variant.
pub fn variant(v: &Value, at: Path<'_>, names: &[&str]) -> Result<usize, Invalid> {
    let s = str_of(v, at, "a string")?;
    names.iter().position(|name| *name == s).ok_or_else(|| {
        Invalid::at(
            at,
            format!("unknown variant `{s}`, expected {}", one_of(names)),
        )
    })
}

/// An externally tagged enum's one key (`{"push": {...}}`): which of `names` it is,
/// the name, and the value under it.
pub fn external<'v>(
    v: &'v Value,
    at: Path<'_>,
    names: &[&str],
) -> Result<(usize, &'v str, &'v Value), Invalid> {
    let Some(map) = v.as_object() else {
        return Err(invalid_type(v, at, "string or map"));
    };
    let mut entries = map.iter();
    let (Some((name, inner)), None) = (entries.next(), entries.next()) else {
        return Err(invalid_value(v, at, "map with a single key"));
    };
    let tag = variant(&Value::String(name.clone()), at, names)?;
    Ok((tag, name, inner))
}

/// A unit-like enum written as a name (in JSON, D1 columns and logs). `NAMES` is the
/// one table its text forms come from: `#[derive(Names)]` builds it from the
/// variants (`rename_all`/`rename`) with `FromJson`, `Serialize`, `as_str` and `parse`.
pub trait Names: Copy + PartialEq + 'static {
    /// The names, in the order of the variants.
    const NAMES: &'static [&'static str];

    /// The variant at `index` of [`Names::NAMES`] (the last one past the end).
    fn from_index(index: usize) -> Self;

    /// Its position in [`Names::NAMES`].
    fn index(self) -> usize;

    fn name(self) -> &'static str {
        Self::NAMES.get(self.index()).copied().unwrap_or_default()
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(Self::from_index)
    }
}

/// A JSON object being read field by field.
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: Path<'a>,
}

impl<'a> Obj<'a> {
    /// `v` as an object; anything else is a type error.
    pub fn new(v: &'a Value, at: Path<'a>) -> Result<Self, Invalid> {
        match v {
            Value::Object(map) => Ok(Obj { map, at }),
            other => Err(invalid_type(other, at, "an object")),
        }
    }

    pub fn at(&self) -> Path<'a> {
        self.at
    }

    /// The raw value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// A field that must be present (null only where `T` allows it).
    pub fn req<T: FromJson>(&self, key: &str) -> Result<T, Invalid> {
        match self.map.get(key) {
            Some(v) => T::from_json(v, Path::Key(&self.at, key)),
            None => Err(Invalid::missing(self.at, key)),
        }
    }

    /// A field that may be absent or null.
    pub fn opt<T: FromJson>(&self, key: &str) -> Result<Option<T>, Invalid> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::from_json(v, Path::Key(&self.at, key)).map(Some),
        }
    }

    /// A field that must be present, read by `read` (`#[json(with = "read")]`).
    pub fn req_with<T>(
        &self,
        key: &str,
        read: fn(&Value, Path<'_>) -> Result<T, Invalid>,
    ) -> Result<T, Invalid> {
        match self.map.get(key) {
            Some(v) => read(v, Path::Key(&self.at, key)),
            None => Err(Invalid::missing(self.at, key)),
        }
    }

    /// A field that may be absent or null, read by `read` when it is there.
    pub fn opt_with<T>(
        &self,
        key: &str,
        read: fn(&Value, Path<'_>) -> Result<T, Invalid>,
    ) -> Result<Option<T>, Invalid> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => read(v, Path::Key(&self.at, key)).map(Some),
        }
    }

    /// A field that falls back to `T::default()` when absent or null.
    pub fn or_default<T: FromJson + Default>(&self, key: &str) -> Result<T, Invalid> {
        self.opt(key).map(Option::unwrap_or_default)
    }

    /// A nested object that must be present. It borrows this one (its path does).
    pub fn obj<'b>(&'b self, key: &'b str) -> Result<Obj<'b>, Invalid> {
        match self.map.get(key) {
            Some(v) => Obj::new(v, Path::Key(&self.at, key)),
            None => Err(Invalid::missing(self.at, key)),
        }
    }

    /// A nested object that may be absent or null.
    pub fn opt_obj<'b>(&'b self, key: &'b str) -> Result<Option<Obj<'b>>, Invalid> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Obj::new(v, Path::Key(&self.at, key)).map(Some),
        }
    }

    /// Which of `names` the field `key` holds (a tagged enum's tag).
    pub fn variant(&self, key: &str, names: &[&str]) -> Result<usize, Invalid> {
        match self.map.get(key) {
            Some(v) => variant(v, Path::Key(&self.at, key), names),
            None => Err(Invalid::missing(self.at, key)),
        }
    }

    /// Refuses fields outside `known` (serde's `deny_unknown_fields`).
    pub fn only(&self, known: &[&str]) -> Result<(), Invalid> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(k) => Err(Invalid::new(
                Path::Key(&self.at, k).to_string(),
                Kind::Unknown,
                format!("unknown field `{k}`, expected {}", one_of(known)),
            )),
        }
    }
}

impl FromJson for String {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        str_of(v, at, "a string").map(str::to_owned)
    }
}

impl FromJson for bool {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        v.as_bool().ok_or_else(|| invalid_type(v, at, "a boolean"))
    }
}

impl FromJson for i64 {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        v.as_i64()
            // D1 hands some integers over as whole doubles.
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| invalid_type(v, at, "i64"))
    }
}

macro_rules! narrow_int {
    ($($t:ty => $name:literal),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
                let wide = i64::from_json(v, at).map_err(|_| invalid_type(v, at, $name))?;
                <$t>::try_from(wide).map_err(|_| invalid_value(v, at, $name))
            }
        }
    )*};
}

narrow_int!(u64 => "u64", u32 => "u32", u16 => "u16", u8 => "u8", i32 => "i32", usize => "usize");

impl FromJson for Value {
    fn from_json(v: &Value, _: Path<'_>) -> Result<Self, Invalid> {
        Ok(v.clone())
    }
}

/// An object kept as it is (workflow inputs).
impl FromJson for Map<String, Value> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        v.as_object()
            .cloned()
            .ok_or_else(|| invalid_type(v, at, "a map"))
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        match v {
            Value::Null => Ok(None),
            v => T::from_json(v, at).map(Some),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let items = v
            .as_array()
            .ok_or_else(|| invalid_type(v, at, "a sequence"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_json(item, Path::Index(&at, i)))
            .collect()
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let map = v.as_object().ok_or_else(|| invalid_type(v, at, "a map"))?;
        crate::maps::try_inserted(
            map.iter()
                .map(|(k, item)| Ok((k.clone(), T::from_json(item, Path::Key(&at, k))?))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, FromJson)]
    #[serde(rename_all = "camelCase")]
    #[json(deny_unknown_fields)]
    struct Inner {
        project_name: String,
        #[serde(default)]
        is_ci: bool,
        #[json(default)]
        tags: Vec<u32>,
    }

    #[derive(Debug, PartialEq, FromJson)]
    struct Outer {
        deployment: Inner,
        kind: Kind,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Names)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Worker,
        Pages,
    }

    fn error(s: &str) -> String {
        read::<Outer>(s).expect_err("invalid").to_string()
    }

    #[test]
    fn reads_typed_data_and_ignores_unknown_fields_unless_told() {
        let o: Outer = read(
            r#"{"deployment": {"projectName": "api", "tags": [1, 2]}, "kind": "pages", "extra": 1}"#,
        )
        .expect("valid");
        assert_eq!(
            o,
            Outer {
                deployment: Inner {
                    project_name: "api".into(),
                    is_ci: false,
                    tags: vec![1, 2]
                },
                kind: Kind::Pages
            }
        );
    }

    #[test]
    fn errors_name_the_path_in_serdes_words() {
        assert_eq!(
            error(r#"{"deployment": {"projectName": 5}, "kind": "worker"}"#),
            "deployment.projectName: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "x", "isCi": "yes"}, "kind": "worker"}"#),
            "deployment.isCi: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            error(r#"{"deployment": {"isCi": true}}"#),
            "deployment: missing field `projectName`"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "x", "tags": [1, "x"]}, "kind": "worker"}"#),
            "deployment.tags[1]: invalid type: string \"x\", expected u32"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "x", "tags": [-1]}, "kind": "worker"}"#),
            "deployment.tags[0]: invalid value: integer `-1`, expected u32"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "x", "extra": 1}, "kind": "worker"}"#),
            "deployment.extra: unknown field `extra`, expected one of `projectName`, `isCi`, `tags`"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "x"}, "kind": "lambda"}"#),
            "kind: unknown variant `lambda`, expected `worker` or `pages`"
        );
        assert_eq!(error("{}"), "missing field `deployment`");
        assert_eq!(
            error(r#""x""#),
            "invalid type: string \"x\", expected an object"
        );
        assert!(error("{").starts_with("malformed JSON"));
    }

    #[test]
    fn text_is_what_display_writes() {
        let v = serde_json::json!({"b": [1, 2.5, null, "é\"\n"], "a": {"x": true}});
        assert_eq!(text(&v), v.to_string());
    }

    #[test]
    fn whole_doubles_read_as_integers() {
        assert_eq!(read::<i64>("42.0").expect("whole"), 42);
        assert!(read::<i64>("4.5").is_err());
        assert_eq!(read::<Option<u32>>("null").expect("null"), None);
    }
}

#[cfg(test)]
mod derive_tests;
