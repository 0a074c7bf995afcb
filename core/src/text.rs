//! Cutting display text to a length, by characters: never inside one, however the
//! input is made.

/// `s` cut to at most `max` characters, the last of them "…" when anything was cut
/// (nothing at all for a `max` of 0).
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    match max.checked_sub(1) {
        Some(keep) => s.chars().take(keep).chain(['…']).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn cuts_by_characters_with_an_ellipsis() {
        assert_eq!(cut("short", 5), "short");
        assert_eq!(cut("longer", 5), "long…");
        assert_eq!(cut("éééééé", 3), "éé…");
        assert_eq!(cut("😀😀", 1), "…");
    }

    #[test]
    fn a_limit_of_zero_leaves_nothing() {
        assert_eq!(cut("", 0), "");
        assert_eq!(cut("x", 0), "");
    }
}
