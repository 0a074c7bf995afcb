//! An incoming request, read through the few calls the handlers make: its method,
//! path, headers and the runtime's own request (URL and body stream).
//!
//! Not `worker::Request`: building one reads the request's `cf` object, which the
//! runtime makes anew from its JSON on every read. No handler here uses it, and on
//! workerd it cost about a tenth of a millisecond per request (measured in a CPU
//! profile of the bench's /notify load).

use worker::{Headers, Method};

pub struct Request {
    inner: web_sys::Request,
    method: Method,
    path: String,
}

impl Request {
    pub fn new(inner: web_sys::Request) -> Request {
        Request {
            method: Method::from(inner.method()),
            path: edge_core::http::url_path(&inner.url()),
            inner,
        }
    }

    pub fn method(&self) -> Method {
        self.method.clone()
    }

    /// The URL's path, without its query.
    pub fn path(&self) -> String {
        self.path.clone()
    }

    pub fn headers(&self) -> Headers {
        Headers(self.inner.headers())
    }

    /// The runtime's request: its URL and its body stream.
    pub fn inner(&self) -> &web_sys::Request {
        &self.inner
    }
}
