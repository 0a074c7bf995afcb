//! The ports of `edge-core`, implemented over the Workers runtime: D1, KV, Queues,
//! `fetch` and the clock; and configuration read from the Worker's env.

use edge_core::config::Config;
use edge_core::error::ApiError;
use edge_core::http::{HttpError, HttpRequest, HttpResponse};
use edge_core::jobs::JobMessage;
use edge_core::ports::{
    Executed, Http, Kv, Queue, QueueError, Row, Sql, SqlValue, Statement, StoreError,
};
use edge_core::store::NotificationStore;
use edge_core::time::Timestamp;
use futures_util::future::{select, Either};
use wasm_bindgen::JsValue;
use worker::{AbortController, Delay, Env, Fetch, Headers, Method, RequestInit};

/// A var or secret by name (secrets and vars are both plain strings at runtime).
pub fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

thread_local! {
    /// The parsed configuration. An isolate's vars and secrets never change (a new
    /// deployment or secret starts new isolates), so it is read once per isolate
    /// instead of some thirty binding lookups per request.
    static CONFIG: std::cell::OnceCell<std::rc::Rc<Config>> = const { std::cell::OnceCell::new() };
}

pub fn config(env: &Env) -> std::rc::Rc<Config> {
    CONFIG.with(|c| {
        c.get_or_init(|| std::rc::Rc::new(Config::from_lookup(|name| lookup(env, name))))
            .clone()
    })
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX))
}

/// SQL over the `DB` binding.
pub fn d1(env: &Env) -> Result<D1Sql, ApiError> {
    env.d1(crate::DB)
        .map(D1Sql)
        .map_err(|_| ApiError::NotConfigured("the D1 binding DB"))
}

/// The notification store over the `DB` binding.
pub fn store(env: &Env) -> Result<NotificationStore<D1Sql>, ApiError> {
    d1(env).map(NotificationStore::new)
}

pub fn kv(env: &Env) -> WorkerKv {
    WorkerKv(env.kv(crate::STATE).ok())
}

pub fn queue(env: &Env) -> WorkerQueue {
    WorkerQueue(env.queue(crate::JOBS).ok())
}

/// SQL over D1.
pub struct D1Sql(worker::D1Database);

fn bind(params: &[SqlValue]) -> Vec<JsValue> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => JsValue::NULL,
            // D1 takes JavaScript numbers; our integers (ids, epoch milliseconds,
            // counts) are far inside the 2^53 range they represent exactly.
            SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
            SqlValue::Text(t) => JsValue::from_str(t),
        })
        .collect()
}

fn d1_error(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

/// D1 hands numbers over as JavaScript doubles; give integral ones back as integers.
fn integral(row: Row) -> Row {
    row.into_iter()
        .map(|(k, v)| {
            let v = match v.as_f64() {
                Some(f) if !v.is_i64() && f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).into(),
                _ => v,
            };
            (k, v)
        })
        .collect()
}

impl Sql for D1Sql {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Executed, StoreError> {
        let result = self
            .0
            .prepare(sql)
            .bind(&bind(params))
            .map_err(d1_error)?
            .run()
            .await
            .map_err(d1_error)?;
        let meta = result.meta().map_err(d1_error)?;
        Ok(Executed {
            changes: meta.as_ref().and_then(|m| m.changes).unwrap_or(0) as u64,
            last_row_id: meta.and_then(|m| m.last_row_id).unwrap_or(0),
        })
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let result = self
            .0
            .prepare(sql)
            .bind(&bind(params))
            .map_err(d1_error)?
            .all()
            .await
            .map_err(d1_error)?;
        Ok(result
            .results::<Row>()
            .map_err(d1_error)?
            .into_iter()
            .map(integral)
            .collect())
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), StoreError> {
        let prepared = statements
            .iter()
            .map(|s| self.0.prepare(s.sql).bind(&bind(&s.params)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(d1_error)?;
        self.0.batch(prepared).await.map_err(d1_error).map(drop)
    }
}

/// The `STATE` KV namespace; absent binding = an empty fast path.
#[derive(Clone)]
pub struct WorkerKv(Option<worker::KvStore>);

impl Kv for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(kv) = &self.0 else {
            return Err(StoreError("the KV binding STATE is missing".into()));
        };
        kv.get(key)
            .text()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), StoreError> {
        let Some(kv) = &self.0 else {
            return Err(StoreError("the KV binding STATE is missing".into()));
        };
        kv.put(key, value)
            .map_err(|e| StoreError(e.to_string()))?
            .expiration_ttl(ttl_seconds.max(60))
            .execute()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }
}

/// The `JOBS` producer; absent binding = every send fails (rows stay pending and the
/// sweep enqueues them once the binding is back).
pub struct WorkerQueue(Option<worker::Queue>);

impl Queue for WorkerQueue {
    async fn send(&self, message: &JobMessage) -> Result<(), QueueError> {
        let Some(q) = &self.0 else {
            return Err(QueueError("the queue binding JOBS is missing".into()));
        };
        q.send(message).await.map_err(|e| QueueError(e.to_string()))
    }
}

/// Outgoing HTTP through the runtime's `fetch`, with the request's timeout enforced by
/// aborting it.
pub struct FetchHttp;

impl Http for FetchHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let network = |e: worker::Error| HttpError::Network(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let mut init = RequestInit::new();
        init.with_method(match request.method {
            edge_core::http::Method::Get => Method::Get,
            edge_core::http::Method::Post => Method::Post,
            edge_core::http::Method::Put => Method::Put,
            edge_core::http::Method::Patch => Method::Patch,
            edge_core::http::Method::Delete => Method::Delete,
        })
        .with_headers(headers);
        if let Some(body) = &request.body {
            init.with_body(Some(JsValue::from_str(body)));
        }
        let req = worker::Request::new_with_init(&request.url, &init).map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let call = async move {
            let mut resp = fetch.send_with_signal(&signal).await?;
            let status = resp.status_code();
            let headers = resp.headers().entries().collect();
            let body = resp.text().await?;
            Ok::<_, worker::Error>(HttpResponse {
                status,
                body,
                headers,
            })
        };
        let timeout = Delay::from(std::time::Duration::from_millis(u64::from(
            request.timeout_ms,
        )));
        match select(Box::pin(call), timeout).await {
            Either::Left((result, _)) => result.map_err(network),
            Either::Right(((), _)) => {
                controller.abort();
                Err(HttpError::Timeout(request.timeout_ms))
            }
        }
    }
}
