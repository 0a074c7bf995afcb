//! Sending the notification: one POST with retries on network errors and 5xx, all
//! inside one time budget.

use std::time::{Duration, Instant};

/// Retries after the first attempt (network errors and 5xx only).
pub const RETRIES: u32 = 2;
/// Pause before the first retry; doubles for the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// `https://w.example.dev` and `https://w.example.dev/` → `…/notify`; a URL that
/// already ends in `/notify` is kept.
pub fn notify_url(base: &str) -> Result<String, String> {
    let base = base.trim();
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err("NOTIFY_URL must be an http(s) URL".into());
    }
    let trimmed = base.trim_end_matches('/');
    Ok(if trimmed.ends_with("/notify") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/notify")
    })
}

/// What the Worker said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Queued,
    AlreadyProcessed,
}

/// One attempt's result, as the retry loop sees it.
#[derive(Debug)]
enum Attempt {
    Done(Sent),
    /// Worth retrying: network error, timeout, 5xx.
    Transient(String),
    /// Not worth retrying: 4xx, unexpected answer.
    Permanent(String),
}

/// Reads `{"success":false,"error":"..."}`, the Worker's error shape.
fn error_text(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("error")?.as_str().map(str::to_owned)
}

fn classify(status: u16, body: &str) -> Attempt {
    match status {
        202 => Attempt::Done(Sent::Queued),
        200 => Attempt::Done(Sent::AlreadyProcessed),
        500..=599 => Attempt::Transient(format!(
            "the Worker answered {status}{}",
            error_text(body)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )),
        _ => Attempt::Permanent(format!(
            "the Worker answered {status}{}",
            error_text(body)
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )),
    }
}

/// POSTs `body` to `url` with the token, retrying transient failures while the
/// budget lasts.
pub fn send(url: &str, token: &str, body: &str, budget: Duration) -> Result<Sent, String> {
    let deadline = Instant::now() + budget;
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::new();
    for attempt in 0..=RETRIES {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match once(url, token, body, remaining) {
            Attempt::Done(sent) => return Ok(sent),
            Attempt::Permanent(e) => return Err(e),
            Attempt::Transient(e) => last_error = e,
        }
        if attempt < RETRIES {
            let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause);
            backoff *= 2;
        }
    }
    if last_error.is_empty() {
        last_error = format!("no answer within {:.1} s", budget.as_secs_f64());
    }
    Err(last_error)
}

fn once(url: &str, token: &str, body: &str, timeout: Duration) -> Attempt {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("notify-deploy/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let result = agent
        .post(url)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/json")
        .send(body);
    match result {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            classify(status, &text)
        }
        Err(ureq::Error::Timeout(_)) => {
            Attempt::Transient(format!("no answer within {:.1} s", timeout.as_secs_f64()))
        }
        // ureq's message names the host and the failure, never the headers.
        Err(e) => Attempt::Transient(format!("could not reach {}: {e}", host(url))),
    }
}

/// True for a plain `http://` URL whose host is not loopback: the token would
/// travel unencrypted.
pub fn insecure(url: &str) -> bool {
    if !url.trim().starts_with("http://") {
        return false;
    }
    let h = host(url.trim());
    let name = match h.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => h.rsplit_once(':').map_or(h, |(n, _)| n),
    };
    !(name.eq_ignore_ascii_case("localhost") || name.starts_with("127.") || name == "::1")
}

fn host(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_insecure_except_to_loopback() {
        for url in [
            "http://notify.example.com/notify",
            "http://10.0.0.1:8787",
            "http://[2001:db8::1]:80",
        ] {
            assert!(super::insecure(url), "{url}");
        }
        for url in [
            "https://notify.example.com/notify",
            "http://localhost:8787/notify",
            "http://127.0.0.1:8787",
            "http://[::1]:8787/notify",
        ] {
            assert!(!super::insecure(url), "{url}");
        }
    }

    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            notify_url("https://w.example.dev").as_deref(),
            Ok("https://w.example.dev/notify")
        );
        assert_eq!(
            notify_url("https://w.example.dev/").as_deref(),
            Ok("https://w.example.dev/notify")
        );
        assert_eq!(
            notify_url("http://127.0.0.1:8787/notify").as_deref(),
            Ok("http://127.0.0.1:8787/notify")
        );
        assert_eq!(
            notify_url("https://x/hooks").as_deref(),
            Ok("https://x/hooks/notify")
        );
        assert!(notify_url("ftp://x").is_err());
    }

    #[test]
    fn answers() {
        assert!(matches!(classify(202, ""), Attempt::Done(Sent::Queued)));
        assert!(matches!(
            classify(200, ""),
            Attempt::Done(Sent::AlreadyProcessed)
        ));
        match classify(401, r#"{"success":false,"error":"invalid token"}"#) {
            Attempt::Permanent(e) => assert_eq!(e, "the Worker answered 401: invalid token"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(503, "oops"), Attempt::Transient(_)));
    }
}
