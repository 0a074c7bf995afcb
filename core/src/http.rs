//! Plain HTTP request and response values that the upstream clients build and read;
//! the Worker's `fetch` adapter and the test fakes carry them.

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
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && s.is_char_boundary(i + 1)
                && s.is_char_boundary(i + 3) =>
            {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
