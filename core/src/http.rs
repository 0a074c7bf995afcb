//! Plain HTTP request and response values that the upstream clients build and read;
//! the Worker's `fetch` adapter and the test fakes carry them; and the checks on
//! incoming requests' headers and body size that run before authentication.

use crate::error::ApiError;

/// An outgoing request. Deliberately not `Debug`: URLs and headers can hold tokens
/// (Telegram puts the bot token in the path).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Give up after this long; the adapter enforces it.
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl HttpRequest {
    pub fn get(url: String, timeout_ms: u32) -> Self {
        HttpRequest {
            method: Method::Get,
            url,
            headers: Vec::new(),
            body: None,
            timeout_ms,
        }
    }

    pub fn post_json(url: String, body: String, timeout_ms: u32) -> Self {
        HttpRequest {
            method: Method::Post,
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body),
            timeout_ms,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// A header's value, the name compared case-insensitively.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    /// Response headers, names lower-cased (pagination reads `link`).
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("timed out after {0} ms")]
    Timeout(u32),
    #[error("network error: {0}")]
    Network(String),
}

/// The first value of query parameter `name` in a URL, percent-decoded (`+` is a
/// space). Enough for the admin API's `?limit=&app=&status=`; parsing the whole
/// URL would pull a URL parser and its IDNA tables into the Worker.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// The path of an absolute URL as the runtime serialises it (`https://host/a/b?q#f` is
/// `/a/b`): the first `/` after the host starts it, and `?` or `#` ends it (inside the
/// path both are percent-encoded). A URL with no path is `/`.
pub fn url_path(url: &str) -> String {
    let after_host = match url.split_once("://") {
        Some((_, rest)) => match rest.split_once('/') {
            // The host ends at the first `/`, unless a query or fragment comes first.
            Some((host, path)) if !host.contains(['?', '#']) => path,
            _ => return "/".to_owned(),
        },
        None => url.strip_prefix('/').unwrap_or(url),
    };
    let path = after_host.split(['?', '#']).next().unwrap_or_default();
    format!("/{path}")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    // Two hex digits make a byte: below 256.
                    out.push((high * 16 + low) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a `Content-Type` header names JSON: `application/json`, in any case,
/// with any parameters (`; charset=utf-8`).
pub fn is_json_content_type(header: Option<&str>) -> bool {
    header
        .and_then(|h| h.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The size cap on a request body, applied twice: to the declared `Content-Length`
/// before anything is read, and to the bytes as they stream in (a chunked body
/// declares nothing), so reading stops at the first chunk past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCap {
    limit: usize,
    read: usize,
}

impl BodyCap {
    pub fn new(limit: usize) -> Self {
        BodyCap { limit, read: 0 }
    }

    /// `413` when the declared length is over the cap (a number of digits too long
    /// for any integer is). A missing or malformed header decides nothing: the
    /// streamed count still applies.
    pub fn check_declared(&self, content_length: Option<&str>) -> Result<(), ApiError> {
        let Some(digits) = content_length.map(str::trim) else {
            return Ok(());
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        match digits.parse::<u64>() {
            Ok(n) if n <= self.limit as u64 => Ok(()),
            _ => Err(self.too_large()),
        }
    }

    /// Counts a chunk that arrived: `413` as soon as the total passes the cap.
    pub fn take(&mut self, chunk_len: usize) -> Result<(), ApiError> {
        match self.read.checked_add(chunk_len) {
            Some(total) if total <= self.limit => {
                self.read = total;
                Ok(())
            }
            _ => Err(self.too_large()),
        }
    }

    /// The bytes counted so far.
    pub fn read(&self) -> usize {
        self.read
    }

    fn too_large(&self) -> ApiError {
        ApiError::PayloadTooLarge { limit: self.limit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_path_ends_at_its_query_or_fragment() {
        for (url, path) in [
            ("https://example.com/", "/"),
            ("https://example.com/notify", "/notify"),
            (
                "https://example.com/api/jobs/7?limit=5&next=/x",
                "/api/jobs/7",
            ),
            ("https://example.com/foo#/frag?x", "/foo"),
            ("http://127.0.0.1:8787/github", "/github"),
            ("https://example.com/a%3F%23%2Fb?c", "/a%3F%23%2Fb"),
            ("https://example.com", "/"),
            ("https://example.com?query=/a", "/"),
            ("https://example.com#frag/b", "/"),
            ("https://ex\u{e4}mple.com/p\u{e4}th?\u{e4}", "/p\u{e4}th"),
            ("/already/a/path?q", "/already/a/path"),
            ("no-scheme", "/no-scheme"),
            ("", "/"),
        ] {
            assert_eq!(url_path(url), path, "{url}");
        }
    }

    #[test]
    fn query_params() {
        let url = "https://x.example/api/jobs?app=hello&status=failed&limit=5&q=a%20b+c%2F#frag";
        assert_eq!(query_param(url, "app").as_deref(), Some("hello"));
        assert_eq!(query_param(url, "limit").as_deref(), Some("5"));
        assert_eq!(query_param(url, "q").as_deref(), Some("a b c/"));
        assert_eq!(query_param(url, "missing"), None);
        assert_eq!(query_param("https://x/y", "app"), None);
        assert_eq!(query_param("https://x/y?flag", "flag").as_deref(), Some(""));
        assert_eq!(
            query_param("https://x/y?bad=%zz%4", "bad").as_deref(),
            Some("%zz%4")
        );
    }

    #[test]
    fn a_percent_sign_takes_exactly_two_hex_digits() {
        // Not a sign and a digit ("%+1" was read as byte 1), nor half a character.
        assert_eq!(query_param("https://x/?q=%+1", "q").as_deref(), Some("% 1"));
        assert_eq!(query_param("https://x/?q=%-1", "q").as_deref(), Some("%-1"));
        assert_eq!(
            query_param("https://x/?q=%\u{e9}1", "q").as_deref(),
            Some("%\u{e9}1")
        );
        assert_eq!(
            query_param("https://x/?q=%C3%A9", "q").as_deref(),
            Some("\u{e9}")
        );
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ;x",
        ] {
            assert!(is_json_content_type(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "text/plain",
            "application/jsonx",
            "application/json-seq",
        ] {
            assert!(!is_json_content_type(Some(no)), "{no}");
        }
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let cap = BodyCap::new(10);
        assert_eq!(cap.check_declared(Some("10")), Ok(()));
        assert_eq!(
            cap.check_declared(Some("11")),
            Err(ApiError::PayloadTooLarge { limit: 10 })
        );
        assert!(
            cap.check_declared(Some("99999999999999999999")).is_err(),
            "a length no integer holds is over any cap"
        );
        for undecided in [None, Some(""), Some("-1"), Some("1e9"), Some("ten")] {
            assert_eq!(cap.check_declared(undecided), Ok(()), "{undecided:?}");
        }
    }

    #[test]
    fn a_streamed_body_is_refused_at_the_first_chunk_past_the_cap() {
        let mut cap = BodyCap::new(10);
        assert_eq!(cap.take(4), Ok(()));
        assert_eq!(cap.take(6), Ok(()));
        assert_eq!(cap.read(), 10);
        assert_eq!(cap.take(1), Err(ApiError::PayloadTooLarge { limit: 10 }));
        assert_eq!(cap.read(), 10, "the refused chunk is not counted");
        assert!(BodyCap::new(10).take(usize::MAX).is_err());
    }
}
