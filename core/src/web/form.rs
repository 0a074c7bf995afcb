//! `application/x-www-form-urlencoded` bodies, as the pages' forms send them: read
//! from bytes with a cap, never panicking on what arrives.

use std::collections::BTreeMap;

/// What is wrong with a form body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the form is not valid UTF-8 once decoded")]
    NotUtf8,
    #[error("the form has a malformed %-escape")]
    BadEscape,
}

/// A decoded form: each field's first value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(BTreeMap<String, String>);

impl Form {
    /// Decodes `body` (`a=1&b=x+y%21`). Fields after the first of a name are ignored.
    pub fn parse(body: &[u8], limit: usize) -> Result<Form, FormError> {
        if body.len() > limit {
            return Err(FormError::TooLarge { limit });
        }
        let mut fields = BTreeMap::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            fields.entry(name).or_insert(value);
        }
        Ok(Form(fields))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(hex).ok_or(FormError::BadEscape)?;
                let lo = bytes.next().and_then(hex).ok_or(FormError::BadEscape)?;
                out.push(hi << 4 | lo);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_reads_as_its_fields_decoded() {
        let form = Form::parse(b"token=a%2Bb+c&csrf=x&token=second&empty=&flag", 1024)
            .expect("a valid form");
        assert_eq!(form.get("token"), Some("a+b c"));
        assert_eq!(form.get("csrf"), Some("x"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(form.get("flag"), Some(""));
        assert_eq!(form.get("missing"), None);
    }

    #[test]
    fn hostile_forms_are_refused_not_panicked_on() {
        assert_eq!(Form::parse(b"a=%", 64), Err(FormError::BadEscape));
        assert_eq!(Form::parse(b"a=%4", 64), Err(FormError::BadEscape));
        assert_eq!(Form::parse(b"a=%zz", 64), Err(FormError::BadEscape));
        assert_eq!(Form::parse(b"a=%ff%fe", 64), Err(FormError::NotUtf8));
        assert_eq!(
            Form::parse(&[b'a'; 65], 64),
            Err(FormError::TooLarge { limit: 64 })
        );
        assert_eq!(Form::parse(b"", 64), Ok(Form::default()));
    }
}
