//! Maps built by insertion.
//!
//! `Iterator::collect` into a `BTreeMap` or `BTreeSet` sorts the items first, with a
//! stable sort monomorphised afresh for every iterator type that is collected: about
//! 3.5 KiB of wasm each, a dozen of them in the Worker. Inserting one by one reuses the
//! map's `insert`, and the maps here are small. Build maps with these, not `collect`,
//! and make short lists into sets with [`unique`], not a sort and `dedup`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A `BTreeMap` of `pairs`, later keys replacing earlier ones (as `collect` does).
pub fn inserted<K: Ord, V>(pairs: impl IntoIterator<Item = (K, V)>) -> BTreeMap<K, V> {
    let mut map = BTreeMap::new();
    map.extend(pairs);
    map
}

/// A JSON object of `pairs`, later keys replacing earlier ones.
pub fn object(pairs: impl IntoIterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut map = Map::new();
    map.extend(pairs);
    map
}

/// A `BTreeMap` of `pairs`, or the first error among them.
pub fn try_inserted<K: Ord, V, E>(
    pairs: impl IntoIterator<Item = Result<(K, V), E>>,
) -> Result<BTreeMap<K, V>, E> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        let (k, v) = pair?;
        map.insert(k, v);
    }
    Ok(map)
}

/// `items` without repeats, each kept where it first came: for the short id lists
/// that are sets (a sort and `dedup` would bring a sort's code for each type).
pub fn unique<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_keys_replace_earlier_ones_as_collect_does() {
        let pairs = [("b", 1), ("a", 2), ("b", 3)];
        assert_eq!(
            inserted(pairs),
            pairs.into_iter().collect::<BTreeMap<_, _>>()
        );
        let json = [
            ("k".to_owned(), Value::from(1)),
            ("k".to_owned(), Value::from(2)),
        ];
        assert_eq!(
            object(json.clone()),
            json.into_iter().collect::<Map<_, _>>()
        );
    }

    #[test]
    fn the_first_error_wins() {
        let pairs: [Result<(u8, u8), &str>; 3] = [Ok((1, 1)), Err("first"), Err("second")];
        assert_eq!(try_inserted(pairs), Err("first"));
        assert_eq!(
            try_inserted([Ok::<_, ()>((2, 0)), Ok((1, 0))]).map(|m| m.len()),
            Ok(2)
        );
    }

    #[test]
    fn unique_keeps_the_first_of_each_in_order() {
        assert_eq!(unique([3, 1, 3, 2, 1]), vec![3, 1, 2]);
        assert_eq!(unique(Vec::<u8>::new()), Vec::<u8>::new());
    }
}
