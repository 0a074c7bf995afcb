//! Request bodies read as a stream under a size cap. A chunked body declares no
//! length, so the cap is counted chunk by chunk: at the first chunk past it the
//! stream is cancelled and the request gets its `413`, before anything has been
//! authenticated and long before the isolate could fill its memory.

use edge_core::github::intake::BodyError;
use edge_core::http::BodyCap;
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, ReadableStreamReadResult};

use crate::request::Request;

/// The whole body, at most `limit` bytes, as one JS buffer (the webhook's HMAC
/// runs on it in place). `413` by the declared `Content-Length` first, before
/// anything is read, then at the first streamed chunk past the cap.
pub async fn read_capped(req: &Request, limit: usize) -> Result<Uint8Array, BodyError> {
    let too_large = BodyError::TooLarge { limit };
    let declared = req.headers().get("content-length").ok().flatten();
    BodyCap::new(limit)
        .check_declared(declared.as_deref())
        .map_err(|_| too_large)?;
    let Some(stream) = req.inner().body() else {
        return Ok(Uint8Array::new_with_length(0));
    };
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut cap = BodyCap::new(limit);
    let mut chunks = Vec::new();
    loop {
        let step: ReadableStreamReadResult = JsFuture::from(reader.read())
            .await
            .map_err(|_| BodyError::Unreadable)?
            .unchecked_into();
        if step.get_done().unwrap_or(false) {
            break;
        }
        let chunk: Uint8Array = step
            .get_value()
            .dyn_into()
            .map_err(|_| BodyError::Unreadable)?;
        if cap.take(chunk.length() as usize).is_err() {
            // Stop pulling: the runtime drops what the client still sends.
            drop(reader.cancel());
            return Err(too_large);
        }
        chunks.push(chunk);
    }
    if chunks.len() == 1 {
        return Ok(chunks.swap_remove(0));
    }
    let body = Uint8Array::new_with_length(cap.read() as u32);
    let mut at = 0;
    for chunk in &chunks {
        body.set(chunk, at);
        at += chunk.length();
    }
    Ok(body)
}
