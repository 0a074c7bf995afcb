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
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
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
