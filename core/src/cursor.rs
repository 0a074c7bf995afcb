//! The cursor every list pages with (`?before=`), on the status page and in the
//! admin API alike: the last row shown, as its time, its source and its id. Lists
//! are newest first by time; rows of one time come source by source (in the list's
//! own order of sources), then by id, highest first. A cursor is opaque to clients
//! (`1764813360000.j.12`) and checked when it is read: anything else is refused.
//!
//! One list may merge several sources (the delivery log: GitHub deliveries and
//! notifications). Each source is queried on its own with [`Cursor::bound`], which
//! says where that source resumes, and the merged rows are cut at the page's size.

use crate::ports::SqlValue;

/// Longest id a cursor carries (a GitHub delivery id is a GUID; ours are numbers).
const MAX_ID: usize = 128;

/// A cursor's text is wrong: a 400, never a 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("before must be a cursor from a previous page's next")]
pub struct BadCursor;

/// The last row of a page: where the next page starts, below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The row's time (ms since the epoch), or its number for lists ordered by one.
    pub at: i64,
    /// Which source the row came from: one lower-case letter.
    pub source: char,
    /// The row's id within its source.
    pub id: String,
}

/// Where one source resumes below a cursor: three parameters for a condition of
/// the form `t <= ?1 AND (t < ?1 OR ?2 = 1 OR (?2 = 0 AND id < ?3))` (see
/// [`Cursor::condition`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub at: i64,
    /// 0: compare ids at the cursor's time; 1: every row of that time is below it
    /// (its source comes after the cursor's); 2: none is (it comes before).
    pub mode: i64,
    pub id: SqlValue,
}

impl Bound {
    /// No cursor: everything.
    pub fn all() -> Bound {
        Bound {
            at: i64::MAX,
            mode: 1,
            id: SqlValue::Null,
        }
    }

    /// `[at, mode, id]`, to bind in that order.
    pub fn params(&self) -> [SqlValue; 3] {
        [self.at.into(), self.mode.into(), self.id.clone()]
    }
}

impl Cursor {
    pub fn new(at: i64, source: char, id: impl Into<String>) -> Cursor {
        Cursor {
            at,
            source,
            id: id.into(),
        }
    }

    /// `at.source.id`.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.at, self.source, self.id)
    }

    /// Reads a cursor made by [`Cursor::encode`]; `sources` are the letters the list
    /// knows.
    pub fn parse(text: &str, sources: &str) -> Result<Cursor, BadCursor> {
        let mut parts = text.splitn(3, '.');
        let (Some(at), Some(source), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(BadCursor);
        };
        let at_ok = !at.is_empty() && at.len() <= 19 && at.bytes().all(|b| b.is_ascii_digit());
        let at: i64 = at.parse().ok().filter(|_| at_ok).ok_or(BadCursor)?;
        let mut letters = source.chars();
        let source = match (letters.next(), letters.next()) {
            (Some(c), None) if c.is_ascii_lowercase() && sources.contains(c) => c,
            _ => return Err(BadCursor),
        };
        let id_ok = !id.is_empty()
            && id.len() <= MAX_ID
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(BadCursor);
        }
        Ok(Cursor {
            at,
            source,
            id: id.to_owned(),
        })
    }

    /// An optional `before` parameter: none is the first page.
    pub fn from_param(text: Option<&str>, sources: &str) -> Result<Option<Cursor>, BadCursor> {
        text.map(|t| Cursor::parse(t, sources)).transpose()
    }

    /// The id as a number, for sources whose ids are numbers.
    pub fn number(&self) -> Result<i64, BadCursor> {
        let ok = self.id.bytes().all(|b| b.is_ascii_digit()) && self.id.len() <= 19;
        self.id.parse().ok().filter(|_| ok).ok_or(BadCursor)
    }

    /// Where `source` resumes below this cursor, in a list whose sources come in
    /// the order of `order` at one time. A numeric source's id must be a number.
    pub fn bound(&self, source: char, order: &str, numeric: bool) -> Result<Bound, BadCursor> {
        let rank = |c: char| order.find(c);
        let mode = match (rank(source), rank(self.source)) {
            (Some(s), Some(c)) if s == c => 0,
            (Some(s), Some(c)) if s > c => 1,
            (Some(_), Some(_)) => 2,
            _ => return Err(BadCursor),
        };
        let id = match (mode, numeric) {
            (0, true) => self.number()?.into(),
            (0, false) => self.id.as_str().into(),
            _ => SqlValue::Null,
        };
        Ok(Bound {
            at: self.at,
            mode,
            id,
        })
    }

    /// [`Cursor::bound`] of an optional cursor; none is [`Bound::all`].
    pub fn bound_of(
        cursor: Option<&Cursor>,
        source: char,
        order: &str,
        numeric: bool,
    ) -> Result<Bound, BadCursor> {
        cursor.map_or(Ok(Bound::all()), |c| c.bound(source, order, numeric))
    }

    /// The SQL condition for [`Bound`] over time column `t` and id column `id`, with
    /// its three parameters at `?{first}`, `?{first + 1}`, `?{first + 2}`. Its
    /// `t <= ?` lets an index on `(t, id)` start the scan at the cursor.
    pub fn condition(t: &str, id: &str, first: usize) -> String {
        let (a, m, i) = (first, first + 1, first + 2);
        format!("({t} <= ?{a} AND ({t} < ?{a} OR ?{m} = 1 OR (?{m} = 0 AND {id} < ?{i})))")
    }
}

/// The first `limit` of `rows` (fetched `limit + 1` at most per source, newest
/// first) and the cursor after them, `None` at the end: `key` names a row's place.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(key);
    (rows, next)
}

/// Merges two lists that are each newest first (by `at`) into one, newest first;
/// on a tie the first list's rows come first. One pass, no sort.
pub fn merge_newest<T>(first: Vec<T>, second: Vec<T>, at: impl Fn(&T) -> i64) -> Vec<T> {
    let mut merged = Vec::with_capacity(first.len() + second.len());
    let (mut first, mut second) = (first.into_iter().peekable(), second.into_iter().peekable());
    loop {
        let from_first = match (first.peek(), second.peek()) {
            (Some(a), Some(b)) => at(a) >= at(b),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        merged.extend(if from_first {
            first.next()
        } else {
            second.next()
        });
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_it_was_written() {
        let c = Cursor::new(
            1_764_813_360_000,
            'g',
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        );
        assert_eq!(Cursor::parse(&c.encode(), "gn"), Ok(c));
        let dotted = Cursor::new(5, 'g', "a.b.c");
        assert_eq!(Cursor::parse("5.g.a.b.c", "g"), Ok(dotted));
        assert_eq!(Cursor::from_param(None, "j"), Ok(None));
    }

    #[test]
    fn a_malformed_cursor_is_refused_not_guessed_at() {
        for bad in [
            "",
            "12",
            "12.j",
            "12.j.",
            "x.j.1",
            "-1.j.1",
            "12.J.1",
            "12.jj.1",
            "12.q.1",
            "12.j.1 OR 1=1",
            "12.j.<script>",
            "99999999999999999999.j.1",
        ] {
            assert_eq!(Cursor::parse(bad, "jn"), Err(BadCursor), "{bad:?}");
        }
        let long = format!("1.j.{}", "a".repeat(MAX_ID + 1));
        assert_eq!(Cursor::parse(&long, "j"), Err(BadCursor));
        assert_eq!(Cursor::new(1, 'j', "ab").number(), Err(BadCursor));
    }

    #[test]
    fn each_source_resumes_where_the_merged_list_left_off() {
        // Sources at one time come n first, then j.
        let at_n = Cursor::new(100, 'n', "7");
        assert_eq!(at_n.bound('n', "nj", true).map(|b| b.mode), Ok(0));
        assert_eq!(
            at_n.bound('j', "nj", true).map(|b| b.mode),
            Ok(1),
            "every job of that time is still to come"
        );
        let at_j = Cursor::new(100, 'j', "3");
        assert_eq!(
            at_j.bound('n', "nj", true).map(|b| b.mode),
            Ok(2),
            "every notification of that time was shown"
        );
        assert_eq!(
            at_j.bound('j', "nj", true).map(|b| b.id),
            Ok(SqlValue::Integer(3))
        );
        assert_eq!(at_j.bound('x', "nj", true), Err(BadCursor));
        assert_eq!(
            Cursor::new(1, 'j', "x").bound('j', "j", true),
            Err(BadCursor)
        );
    }

    #[test]
    fn a_page_is_cut_at_its_size_and_says_where_the_next_one_starts() {
        let key = |n: &i64| Cursor::new(*n, 'j', n.to_string());
        assert_eq!(page(vec![9, 8, 7], 3, key), (vec![9, 8, 7], None));
        assert_eq!(
            page(vec![9, 8, 7, 6], 3, key),
            (vec![9, 8, 7], Some(Cursor::new(7, 'j', "7")))
        );
    }
}
