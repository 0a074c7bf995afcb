//! The ports of `edge-core`, implemented over the Workers runtime: D1, KV, Queues,
//! `fetch` and the clock; and configuration read from the Worker's env.

use edge_core::config::Config;
use edge_core::error::ApiError;
use edge_core::http::{HttpError, HttpRequest, HttpResponse};
use edge_core::jobs::JobMessage;
use edge_core::ports::{
    Executed, Http, Kv, Queue, QueueError, Row, Sql, SqlValue, Statement, StoreError,
};
use edge_core::time::Timestamp;
use futures_util::future::{select, Either};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::{Delay, Env};

/// Binding names: the public contract of `wrangler.toml`.
pub(crate) const DB: &str = "DB";
pub(crate) const STATE: &str = "STATE";
pub(crate) const JOBS: &str = "JOBS";
pub(crate) const TELEGRAM: &str = "TELEGRAM";

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

/// A binding of the Worker's env as a JavaScript object, if it is there.
fn binding(env: &Env, name: &str) -> Option<js_sys::Object> {
    js_sys::Reflect::get(env, &JsValue::from_str(name))
        .ok()
        .and_then(|b| b.dyn_into().ok())
}

/// Whether the Worker's env has the binding `name` (for `/health`).
pub fn bound(env: &Env, name: &str) -> bool {
    binding(env, name).is_some()
}

/// What a missing `DB` binding is called in answers.
pub const NO_DB: &str = "the D1 binding DB";

/// SQL over the `DB` binding.
pub fn d1(env: &Env) -> Result<D1Sql, ApiError> {
    binding(env, DB)
        .map(|db| D1Sql {
            db,
            trips: std::cell::Cell::new(0),
        })
        .ok_or(ApiError::NotConfigured(NO_DB))
}

pub fn kv(env: &Env) -> WorkerKv {
    WorkerKv(binding(env, STATE))
}

pub fn queue(env: &Env) -> WorkerQueue {
    WorkerQueue {
        jobs: binding(env, JOBS),
        telegram: binding(env, TELEGRAM),
    }
}

/// SQL over D1, through its JavaScript API. (`worker`'s D1 types read results and
/// their metadata through serde_wasm_bindgen: a deserializer and a struct visitor the
/// Worker's upload does not need for a few plain rows.)
///
/// It counts its round trips (each `execute`, `query` and `batch`), as
/// `edge_core::web::counted::Counted` does in the tests: the pages report them in
/// `Server-Timing`. Counted here rather than through that wrapper, so the stores a
/// page shares with the admin API are compiled once, for this one type.
#[derive(Clone)]
pub struct D1Sql {
    db: js_sys::Object,
    trips: std::cell::Cell<u32>,
}

/// Calls `method` of `this` with `args`.
fn call(this: &JsValue, method: &str, args: &js_sys::Array) -> Result<JsValue, JsValue> {
    let function: js_sys::Function =
        js_sys::Reflect::get(this, &JsValue::from_str(method))?.dyn_into()?;
    function.apply(this, args)
}

/// Calls `method` of `this` and awaits the promise it returns.
async fn call_async(
    this: &JsValue,
    method: &str,
    args: &js_sys::Array,
) -> Result<JsValue, JsValue> {
    let promise: js_sys::Promise = call(this, method, args)?.dyn_into()?;
    JsFuture::from(promise).await
}

fn field(object: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn d1_error(e: JsValue) -> StoreError {
    StoreError::Driver(js_message(&e))
}

/// A D1 value as JSON. D1 hands every number over as a double; whole ones (ids,
/// epoch milliseconds, counts) come back as integers.
fn column(v: &JsValue) -> serde_json::Value {
    if let Some(s) = v.as_string() {
        serde_json::Value::String(s)
    } else if let Some(f) = v.as_f64() {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            serde_json::Value::from(f as i64)
        } else {
            serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
    } else if let Some(b) = v.as_bool() {
        serde_json::Value::Bool(b)
    } else {
        serde_json::Value::Null
    }
}

impl D1Sql {
    /// Round trips to D1 so far.
    pub fn round_trips(&self) -> u32 {
        self.trips.get()
    }

    fn trip(&self) {
        self.trips.set(self.trips.get() + 1);
    }

    /// `DB.prepare(sql).bind(...params)`.
    fn statement(&self, sql: &str, params: &[SqlValue]) -> Result<JsValue, StoreError> {
        let prepared = call(
            &self.db,
            "prepare",
            &js_sys::Array::of1(&JsValue::from_str(sql)),
        )
        .map_err(d1_error)?;
        let args: js_sys::Array = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => JsValue::NULL,
                // D1 takes JavaScript numbers; our integers (ids, epoch milliseconds,
                // counts) are far inside the 2^53 range they represent exactly.
                SqlValue::Integer(i) => JsValue::from_f64(*i as f64),
                SqlValue::Text(t) => JsValue::from_str(t),
            })
            .collect();
        call(&prepared, "bind", &args).map_err(d1_error)
    }
}

impl Sql for D1Sql {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Executed, StoreError> {
        self.trip();
        let statement = self.statement(sql, params)?;
        let result = call_async(&statement, "run", &js_sys::Array::new())
            .await
            .map_err(d1_error)?;
        let meta = field(&result, "meta");
        let number = |name: &str| field(&meta, name).as_f64().unwrap_or(0.0);
        Ok(Executed {
            changes: number("changes") as u64,
            last_row_id: number("last_row_id") as i64,
        })
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.trip();
        let statement = self.statement(sql, params)?;
        let result = call_async(&statement, "all", &js_sys::Array::new())
            .await
            .map_err(d1_error)?;
        let rows: js_sys::Array = field(&result, "results").dyn_into().map_err(d1_error)?;
        Ok(rows
            .iter()
            .map(|row| {
                let row: js_sys::Object = row.unchecked_into();
                edge_core::maps::object(js_sys::Object::entries(&row).iter().map(|entry| {
                    let pair: js_sys::Array = entry.unchecked_into();
                    (
                        pair.get(0).as_string().unwrap_or_default(),
                        column(&pair.get(1)),
                    )
                }))
            })
            .collect())
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), StoreError> {
        let prepared = statements
            .iter()
            .map(|s| self.statement(s.sql, &s.params))
            .collect::<Result<js_sys::Array, _>>()?;
        self.trip();
        call_async(&self.db, "batch", &js_sys::Array::of1(&prepared))
            .await
            .map_err(d1_error)
            .map(drop)
    }
}

/// The `STATE` KV namespace, called through its JavaScript API. (`worker`'s `KvStore`
/// hands the put options to serde_wasm_bindgen, which brings float formatting, some
/// 14 KiB of code, into the Worker for one integer.) Absent binding = an empty fast
/// path.
#[derive(Clone)]
pub struct WorkerKv(Option<js_sys::Object>);

/// A JavaScript exception's message (or the thrown value, when it is a string).
fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "a JavaScript error".to_owned())
}

impl WorkerKv {
    async fn call(&self, method: &str, args: &js_sys::Array) -> Result<JsValue, StoreError> {
        let Some(kv) = &self.0 else {
            return Err(StoreError::Unbound(
                "the KV binding STATE is missing".into(),
            ));
        };
        call_async(kv, method, args)
            .await
            .map_err(|e| StoreError::Driver(js_message(&e)))
    }
}

impl Kv for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let args = js_sys::Array::of1(&JsValue::from_str(key));
        Ok(self.call("get", &args).await?.as_string())
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), StoreError> {
        let options = js_sys::Object::new();
        // KV refuses a TTL under 60 s.
        let ttl = JsValue::from_f64(ttl_seconds.max(60) as f64);
        js_sys::Reflect::set(&options, &JsValue::from_str("expirationTtl"), &ttl)
            .map_err(|e| StoreError::Driver(js_message(&e)))?;
        let args = js_sys::Array::of3(&JsValue::from_str(key), &JsValue::from_str(value), &options);
        self.call("put", &args).await.map(drop)
    }
}

/// The producers, through their JavaScript API: notifications and their messages
/// go to `TELEGRAM` (or to `JOBS` where a deployment has no `TELEGRAM` queue yet),
/// everything else to `JOBS`. An absent binding makes every send fail (rows stay
/// pending and the sweep enqueues them once the binding is back). The message goes
/// as the JSON serde_json writes, parsed into a JavaScript value, so one serializer
/// serves every type.
#[derive(Clone)]
pub struct WorkerQueue {
    jobs: Option<js_sys::Object>,
    telegram: Option<js_sys::Object>,
}

impl WorkerQueue {
    async fn put(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError> {
        let queue = match (message.is_telegram(), &self.telegram) {
            (true, Some(t)) => Some(t),
            _ => self.jobs.as_ref(),
        };
        let Some(q) = queue else {
            return Err(QueueError::Unbound(
                "the queue binding JOBS is missing".into(),
            ));
        };
        let error = |e: JsValue| QueueError::Send(js_message(&e));
        let text = serde_json::to_string(message).map_err(|e| QueueError::Encode(e.to_string()))?;
        let body = js_sys::JSON::parse(&text).map_err(error)?;
        let args = js_sys::Array::of1(&body);
        if delay_seconds > 0 {
            let options = js_sys::Object::new();
            js_sys::Reflect::set(
                &options,
                &JsValue::from_str("delaySeconds"),
                &JsValue::from_f64(f64::from(delay_seconds)),
            )
            .map_err(error)?;
            args.push(&options);
        }
        call_async(q, "send", &args).await.map(drop).map_err(error)
    }
}

impl Queue for WorkerQueue {
    async fn send(&self, message: &JobMessage) -> Result<(), QueueError> {
        self.put(message, 0).await
    }

    async fn send_later(&self, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError> {
        // Queues hold a message back for at most 12 hours.
        self.put(message, delay_seconds.min(43_200)).await
    }
}

/// Outgoing HTTP through the runtime's `fetch`, with the request's timeout enforced by
/// aborting it. Called through web-sys rather than `worker::Fetch`, whose
/// `RequestInit` carries (and serializes) Cloudflare's `cf` options.
pub struct FetchHttp;

impl Http for FetchHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let network = |e: JsValue| HttpError::Network(js_message(&e));
        let headers = web_sys::Headers::new().map_err(network)?;
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(network)?;
        }
        let controller = web_sys::AbortController::new().map_err(network)?;
        let init = web_sys::RequestInit::new();
        init.set_method(request.method.as_str());
        init.set_headers(&headers);
        if let Some(body) = &request.body {
            init.set_body(&JsValue::from_str(body));
        }
        init.set_signal(Some(&controller.signal()));
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let sent = global.fetch_with_str_and_init(&request.url, &init);
        let call = async move {
            let response: web_sys::Response = JsFuture::from(sent).await?.unchecked_into();
            let status = response.status();
            // `Headers` iterates as [name, value] pairs, names already lower-cased.
            let mut headers = Vec::new();
            if let Some(entries) = js_sys::try_iter(&response.headers())? {
                for entry in entries {
                    let pair: js_sys::Array = entry?.unchecked_into();
                    headers.push((
                        pair.get(0).as_string().unwrap_or_default(),
                        pair.get(1).as_string().unwrap_or_default(),
                    ));
                }
            }
            let body = JsFuture::from(response.text()?)
                .await?
                .as_string()
                .unwrap_or_default();
            Ok::<_, JsValue>(HttpResponse {
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
