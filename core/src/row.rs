//! Reading a result row's columns by name, typed: the one reader every store uses.

use crate::ports::{Row, StoreError};

/// A required column that is NULL, missing or of another type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column} is not {expected}")]
pub struct ColumnError {
    pub column: String,
    pub expected: &'static str,
}

impl From<ColumnError> for StoreError {
    fn from(e: ColumnError) -> Self {
        StoreError::Row(e.to_string())
    }
}

/// Typed getters over a [`Row`]. The `opt_` ones read NULL, a missing column and a
/// value of another type alike as `None`.
pub trait Columns {
    /// An integer column. D1 hands numbers over as JSON numbers that may be floats;
    /// a whole one within 2^53 reads as the integer.
    fn opt_int(&self, column: &str) -> Option<i64>;

    /// A text column, borrowed.
    fn opt_str(&self, column: &str) -> Option<&str>;

    fn opt_text(&self, column: &str) -> Option<String> {
        self.opt_str(column).map(str::to_owned)
    }

    fn int(&self, column: &str) -> Result<i64, ColumnError> {
        self.opt_int(column).ok_or_else(|| ColumnError {
            column: column.to_owned(),
            expected: "an integer",
        })
    }

    fn text(&self, column: &str) -> Result<String, ColumnError> {
        self.opt_text(column).ok_or_else(|| ColumnError {
            column: column.to_owned(),
            expected: "text",
        })
    }

    /// A 0/1 flag column: anything but a non-zero integer is `false`.
    fn bool(&self, column: &str) -> bool {
        self.opt_int(column).is_some_and(|n| n != 0)
    }
}

impl Columns for Row {
    fn opt_int(&self, column: &str) -> Option<i64> {
        let v = self.get(column)?;
        v.as_i64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
    }

    fn opt_str(&self, column: &str) -> Option<&str> {
        self.get(column)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Row {
        match v {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a row is an object"),
        }
    }

    #[test]
    fn integers_come_as_numbers_that_may_be_floats() {
        let r = row(json!({"a": 3, "b": 4.0, "c": 4.5, "d": "5", "e": null, "f": 1.0e16}));
        assert_eq!(r.opt_int("a"), Some(3));
        assert_eq!(r.opt_int("b"), Some(4), "D1's whole floats are integers");
        assert_eq!(r.opt_int("c"), None);
        assert_eq!(r.opt_int("d"), None, "text is not an integer");
        assert_eq!(r.opt_int("e"), None);
        assert_eq!(r.opt_int("f"), None, "past 2^53 a float is not exact");
        assert_eq!(r.opt_int("missing"), None);
        assert_eq!(r.int("a"), Ok(3));
    }

    #[test]
    fn a_required_column_names_itself_when_it_is_not_there() {
        let r = row(json!({"id": null, "name": 7, "draft": 1, "fork": 0}));
        let err = r.int("id").expect_err("null");
        assert_eq!(err.to_string(), "column id is not an integer");
        assert_eq!(
            StoreError::from(r.text("name").expect_err("a number")).to_string(),
            "database error: column name is not text"
        );
        assert_eq!(r.opt_text("name"), None);
        assert!(r.bool("draft"));
        assert!(!r.bool("fork"));
        assert!(!r.bool("missing"));
    }
}
