//! The admin API under `/api/`, guarded by `ADMIN_TOKEN`: the apps registry, the
//! Telegram routes and the delivery log.

use edge_core::admin::LogError;
use edge_core::apps::{App, AppStore};
use edge_core::audit::{AuditStore, SubjectKind};
use edge_core::auth::require_bearer;
use edge_core::config::Config;
use edge_core::cursor::{Bound, Cursor};
use edge_core::deploy::approval::{self, Decision};
use edge_core::deploy::store::JobStore;
use edge_core::deploy::JobStatus;
use edge_core::error::ApiError;
use edge_core::http::query_param;
use edge_core::names::{AppName, EnvVarName};
use edge_core::orchestrate::runner::AdminError;
use edge_core::orchestrate::WorkflowStatus;
use edge_core::preview::store::PreviewStore;
use edge_core::protection::{self, store::ProtectionStore};
use edge_core::routes::{RouteName, RoutesApiError, RoutesCall};
use edge_core::secret::Secret;
use edge_core::secrets::{self, EnvType, SecretStore};

use crate::request::Request;
use worker::{console_error, console_log, Method};

use crate::adapters::{self, now};
use crate::crypto::WebCryptoCipher;
use crate::deploy::Event;
use crate::respond::{json_body, Reply};

/// Largest admin request body; an app's or a route's JSON is a few hundred bytes (a
/// route with ten templated destinations a few KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// `limit` for listings: default and ceiling.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

fn parse_limit(v: Option<String>) -> Result<u32, ApiError> {
    match v {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            }),
    }
}

/// A list's `before` cursor (from a previous page's `next`), read as where each
/// of the list's `sources` resumes; a malformed one is a 400.
fn before(url: &str, source: char) -> Result<Bound, ApiError> {
    let text = query_param(url, "before");
    let cursor = Cursor::from_param(text.as_deref(), &source.to_string())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Cursor::bound_of(cursor.as_ref(), source, &source.to_string(), true)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The first `limit` of `rows` (fetched `limit + 1`) and the next page's cursor as
/// the API shows it (`null` at the end).
fn paged<T>(
    rows: Vec<T>,
    limit: u32,
    source: char,
    key: impl Fn(&T) -> (i64, i64),
) -> (Vec<T>, serde_json::Value) {
    let (rows, next) = edge_core::cursor::page(rows, limit as usize, |r| {
        let (at, id) = key(r);
        Cursor::new(at, source, id.to_string())
    });
    (rows, next.map(|c| c.encode()).into())
}

fn authorize(req: &Request, config: &Config) -> Result<(), ApiError> {
    let header = req.headers().get("authorization").ok().flatten();
    require_bearer(
        header.as_deref(),
        config.admin_token.as_ref(),
        "ADMIN_TOKEN",
    )
}

/// 404 unless app `name` is registered (its secrets and previews hang off it).
async fn existing_app(apps: &AppStore<&adapters::D1Sql>, name: &AppName) -> Result<(), ApiError> {
    apps.get(name)
        .await
        .map_err(|e| unavailable("app", e))?
        .map(drop)
        .ok_or(ApiError::NotFound)
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    console_error!("admin: {what}: {e}");
    ApiError::Unavailable
}

/// `/api/routes`: answered by the core; what failed inside goes to the log.
async fn telegram_routes(sql: &adapters::D1Sql, call: RoutesCall) -> Result<Reply, ApiError> {
    match edge_core::routes::answer(sql, call, now()).await {
        Ok((status, body)) => Ok(Reply::json(status, body)),
        Err(e) => {
            if let RoutesApiError::Store(_) = &e {
                console_error!("admin: {e}");
            }
            Err(ApiError::from(e))
        }
    }
}

/// The delivery log's answer; what failed inside goes to the log.
fn log_error(e: LogError) -> ApiError {
    if !matches!(e, LogError::NotFound) {
        console_error!("admin: {e}");
    }
    ApiError::from(e)
}

pub async fn handle(mut req: Request, event: &Event<'_>) -> Result<Reply, ApiError> {
    let config = event.config;
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Unknown paths are 404 before authentication says anything about them.
    let route = match segments.as_slice() {
        ["api", "apps"] => Route::Apps,
        ["api", "apps", name] => Route::App(name.to_string()),
        ["api", "apps", name, "previews"] => Route::Previews(name.to_string()),
        ["api", "apps", name, "secrets", env] => Route::Secrets(name.to_string(), env.to_string()),
        ["api", "apps", name, "secrets", env, key] => {
            Route::Secret(name.to_string(), env.to_string(), key.to_string())
        }
        ["api", "routes"] => Route::TelegramRoutes,
        ["api", "routes", name] => Route::TelegramRouteNamed(name.to_string()),
        ["api", "deliveries"] => Route::Deliveries,
        ["api", "deliveries", id, "replay"] => Route::Replay(id.to_string()),
        ["api", "services"] => Route::Services,
        ["api", "services", name] => Route::Service(name.to_string()),
        ["api", "jobs"] => Route::Jobs,
        ["api", "jobs", id] => Route::Job(id.to_string()),
        ["api", "jobs", id, "approve"] => Route::Decide(id.to_string(), Decision::Approve),
        ["api", "jobs", id, "reject"] => Route::Decide(id.to_string(), Decision::Reject),
        ["api", "telegram", "setup"] => Route::TelegramSetup,
        ["api", "protection"] => Route::Protection,
        ["api", "protection", id] => Route::ProtectionRequest(id.to_string(), None),
        ["api", "protection", id, action @ ("approve" | "reject")] => {
            Route::ProtectionRequest(id.to_string(), Some(*action == "approve"))
        }
        _ => return Err(ApiError::NotFound),
    };
    authorize(&req, config)?;
    let bindings = event.bindings()?;
    let sql = &bindings.sql;
    let apps = AppStore::new(sql);
    let method = req.method();
    match (route, method) {
        (Route::Apps, Method::Get) => {
            let list = apps.list().await.map_err(|e| unavailable("apps", e))?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "apps": list }),
            ))
        }
        (Route::Apps, _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::App(name), Method::Get) => {
            let name = AppName::parse(&name)?;
            let app = apps
                .get(&name)
                .await
                .map_err(|e| unavailable("app", e))?
                .ok_or(ApiError::NotFound)?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "app": app }),
            ))
        }
        (Route::App(name), Method::Put) => {
            let name = AppName::parse(&name)?;
            let body = json_body(&mut req, MAX_BODY_BYTES).await?;
            let app = App::parse(&body)?;
            let others = apps.list().await.map_err(|e| unavailable("apps", e))?;
            app.check_fly_names(&name, &others)?;
            let created = apps
                .put(&name, &app, now())
                .await
                .map_err(|e| unavailable("app", e))?;
            let stored = apps
                .get(&name)
                .await
                .map_err(|e| unavailable("app", e))?
                .ok_or(ApiError::Internal)?;
            Ok(Reply::json(
                if created { 201 } else { 200 },
                serde_json::json!({ "success": true, "app": stored }),
            ))
        }
        (Route::App(name), Method::Delete) => {
            let name = AppName::parse(&name)?;
            if apps
                .delete(&name)
                .await
                .map_err(|e| unavailable("app", e))?
            {
                Ok(Reply::message(200, "Deleted"))
            } else {
                Err(ApiError::NotFound)
            }
        }
        (Route::App(_), _) => Err(ApiError::MethodNotAllowed {
            allowed: "GET, PUT, DELETE",
        }),
        (Route::TelegramRoutes, Method::Get) => telegram_routes(sql, RoutesCall::List).await,
        (Route::TelegramRoutes, _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (
            Route::TelegramRouteNamed(name),
            method @ (Method::Get | Method::Put | Method::Delete),
        ) => {
            let name = RouteName::parse(&name)?;
            let call = match method {
                Method::Put => RoutesCall::Put(name, json_body(&mut req, MAX_BODY_BYTES).await?),
                Method::Delete => RoutesCall::Delete(name),
                _ => RoutesCall::Get(name),
            };
            telegram_routes(sql, call).await
        }
        (Route::TelegramRouteNamed(_), _) => Err(ApiError::MethodNotAllowed {
            allowed: "GET, PUT, DELETE",
        }),
        (Route::Deliveries, Method::Get) => {
            let url = req.inner().url();
            let query = |k: &str| query_param(&url, k);
            let limit = parse_limit(query("limit"))?;
            let q = edge_core::admin::LogQuery::parse(
                query("source").as_deref(),
                query("outcome").as_deref(),
                query("before").as_deref(),
                limit,
            )
            .map_err(log_error)?;
            let page = edge_core::admin::deliveries(sql, &q)
                .await
                .map_err(log_error)?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "deliveries": page.entries, "next": page.next.map(|c| c.encode()) }),
            ))
        }
        (Route::Deliveries, _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::Secrets(name, env), Method::Get) => {
            let (name, env) = (AppName::parse(&name)?, EnvType::parse(&env)?);
            existing_app(&apps, &name).await?;
            let list = SecretStore::new(sql)
                .list(&name, env)
                .await
                .map_err(|e| unavailable("secrets", e))?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "secrets": list }),
            ))
        }
        (Route::Secrets(..), _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::Previews(name), Method::Get) => {
            let name = AppName::parse(&name)?;
            existing_app(&apps, &name).await?;
            let url = req.inner().url();
            let limit = parse_limit(query_param(&url, "limit"))?;
            let bound = before(&url, 'p')?;
            let list = PreviewStore::new(sql)
                .page(name.as_str(), &bound, limit + 1)
                .await
                .map_err(|e| unavailable("previews", e))?;
            let (list, next) = paged(list, limit, 'p', |p| (p.created_at, p.id));
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "previews": list, "next": next }),
            ))
        }
        (Route::Previews(_), _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::Secret(name, env, key), Method::Put) => {
            let (name, env, key) = (
                AppName::parse(&name)?,
                EnvType::parse(&env)?,
                EnvVarName::parse(&key)?,
            );
            let keys = config
                .secrets_keys
                .as_ref()
                .map_err(|missing| ApiError::NotConfigured(missing))?;
            existing_app(&apps, &name).await?;
            let body = json_body(&mut req, secrets::MAX_VALUE_BYTES + 1024).await?;
            struct Value {
                value: String,
            }
            impl edge_core::json::FromJson for Value {
                fn from_json(
                    v: &serde_json::Value,
                    at: edge_core::json::Path<'_>,
                ) -> Result<Self, edge_core::json::Invalid> {
                    Ok(Value {
                        value: edge_core::json::Obj::new(v, at)?.req("value")?,
                    })
                }
            }
            let value: Value =
                edge_core::answers::parse_body(&body, "body must be {\"value\": \"...\"}")?;
            if value.value.len() > secrets::MAX_VALUE_BYTES {
                return Err(ApiError::PayloadTooLarge {
                    limit: secrets::MAX_VALUE_BYTES,
                });
            }
            let created = SecretStore::new(sql)
                .put(
                    &WebCryptoCipher,
                    keys,
                    (&name, env, &key),
                    &Secret::new(value.value),
                    now(),
                )
                .await
                .map_err(|e| unavailable("secret", e))?;
            // Write-only: the answer names the secret, never its value.
            Ok(Reply::json(
                if created { 201 } else { 200 },
                serde_json::json!({ "success": true, "secret": { "name": key, "env_type": env.as_str() } }),
            ))
        }
        (Route::Secret(name, env, key), Method::Delete) => {
            let (name, env, key) = (
                AppName::parse(&name)?,
                EnvType::parse(&env)?,
                EnvVarName::parse(&key)?,
            );
            if SecretStore::new(sql)
                .delete(&name, env, &key)
                .await
                .map_err(|e| unavailable("secret", e))?
            {
                Ok(Reply::message(200, "Deleted"))
            } else {
                Err(ApiError::NotFound)
            }
        }
        (Route::Secret(..), _) => Err(ApiError::MethodNotAllowed {
            allowed: "PUT, DELETE",
        }),
        (Route::Replay(id), Method::Post) => {
            edge_core::admin::replay(sql, &bindings.queue, &id, now())
                .await
                .map_err(log_error)?;
            Ok(Reply::message(202, "Replay queued"))
        }
        (Route::Replay(_), _) => Err(ApiError::MethodNotAllowed { allowed: "POST" }),
        (Route::Jobs, Method::Get) => {
            let url = req.inner().url();
            let query = |k: &str| query_param(&url, k);
            let status = match query("status") {
                None => None,
                Some(s) => Some(JobStatus::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest("status must be one of waiting, processing, finalized, failed, reverting, reverted, cancelled".into())
                })?),
            };
            let app = query("app").map(|a| AppName::parse(&a)).transpose()?;
            let limit = parse_limit(query("limit"))?;
            let bound = before(&url, 'j')?;
            let jobs = JobStore::new(sql)
                .page(app.as_ref().map(AppName::as_str), status, &bound, limit + 1)
                .await
                .map_err(|e| unavailable("jobs", e))?;
            let (jobs, next) = paged(jobs, limit, 'j', |j| (j.created_at, j.id));
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "jobs": jobs, "next": next }),
            ))
        }
        (Route::Jobs, _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::Job(id), Method::Get) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
            let job = JobStore::new(sql)
                .get(id)
                .await
                .map_err(|e| unavailable("job", e))?
                .ok_or(ApiError::NotFound)?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "job": approval::view(&job) }),
            ))
        }
        (Route::Job(_), _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::Decide(id, decision), Method::Post) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
            let deps = bindings.deps(config);
            let decided = approval::decide_for_admin(&deps, id, decision, now())
                .await
                .map_err(|e| {
                    if let approval::ApprovalError::Store { .. } = &e {
                        console_error!("admin: job {id}: {e}");
                    }
                    ApiError::from(e)
                })?;
            if let Some(problem) = &decided.problem {
                console_error!("admin: {problem}");
            }
            let message = match (decision, decided.acted) {
                (Decision::Approve, true) => "Approved",
                (Decision::Reject, true) => "Rejected",
                (Decision::Approve, false) => "Already approved",
                (Decision::Reject, false) => "Already rejected",
            };
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "message": message, "approval": decided.approval.to_json() }),
            ))
        }
        (Route::Decide(..), _) => Err(ApiError::MethodNotAllowed { allowed: "POST" }),
        (Route::TelegramSetup, Method::Post) => {
            let (status, body) =
                edge_core::chatops::setup(&adapters::FetchHttp, &bindings.kv, config).await?;
            if status != 200 {
                console_error!(
                    "admin: telegram setup: {}",
                    body["error"].as_str().unwrap_or("")
                );
            }
            Ok(Reply::json(status, body))
        }
        (Route::TelegramSetup, _) => Err(ApiError::MethodNotAllowed { allowed: "POST" }),
        (Route::Protection, Method::Get) => {
            let url = req.inner().url();
            let limit = parse_limit(query_param(&url, "limit"))?;
            let bound = before(&url, 'r')?;
            let list = ProtectionStore::new(sql)
                .page(&bound, limit + 1)
                .await
                .map_err(|e| unavailable("protection requests", e))?;
            let (list, next) = paged(list, limit, 'r', |r| (r.created_at, r.id));
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "requests": list, "next": next }),
            ))
        }
        (Route::Protection, _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
        (Route::ProtectionRequest(id, None), Method::Get) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
            let request = ProtectionStore::new(sql)
                .get(id)
                .await
                .map_err(|e| unavailable("protection request", e))?
                .ok_or(ApiError::NotFound)?;
            let actions = AuditStore::new(sql)
                .of(SubjectKind::Protection, &id.to_string())
                .await
                .map_err(|e| unavailable("protection request", e))?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "request": request, "actions": actions }),
            ))
        }
        (Route::ProtectionRequest(_, None), _) => {
            Err(ApiError::MethodNotAllowed { allowed: "GET" })
        }
        (Route::ProtectionRequest(id, Some(approve)), Method::Post) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
            let state = if approve {
                protection::Review::Approved
            } else {
                protection::Review::Rejected
            };
            let decided = protection::decide_for_admin(&bindings.deps(config), id, state, now())
                .await
                .map_err(|e| {
                    if let protection::DecideError::Store(detail) = &e {
                        console_error!("admin: protection request {id}: {detail}");
                    }
                    ApiError::from(e)
                })?;
            console_log!("admin: {}", decided.log);
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "request": decided.request }),
            ))
        }
        (Route::ProtectionRequest(_, Some(_)), _) => {
            Err(ApiError::MethodNotAllowed { allowed: "POST" })
        }
        (Route::Services, Method::Post) => {
            let body = json_body(&mut req, MAX_BODY_BYTES).await?;
            let (workflow, log) =
                edge_core::orchestrate::drive::start(&bindings.deps(config), &body, now())
                    .await
                    .map_err(|e| {
                        if let AdminError::Store(detail) = &e {
                            console_error!("admin: services: {detail}");
                        }
                        ApiError::from(e)
                    })?;
            for line in log {
                console_error!("admin: services: {line}");
            }
            Ok(Reply::json(
                202,
                serde_json::json!({ "success": true, "service": workflow }),
            ))
        }
        (Route::Services, Method::Get) => {
            let url = req.inner().url();
            let status = match query_param(&url, "status") {
                None => None,
                Some(s) => Some(WorkflowStatus::parse(&s).ok_or_else(|| {
                    ApiError::BadRequest("status must be one of running, succeeded, failed".into())
                })?),
            };
            let limit = parse_limit(query_param(&url, "limit"))?;
            let bound = before(&url, 'w')?;
            let list =
                edge_core::orchestrate::runner::page_services(sql, status, &bound, limit + 1)
                    .await
                    .map_err(|e| unavailable("services", e))?;
            let (list, next) = paged(list, limit, 'w', |w| (w.created_at, w.id));
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "services": list, "next": next }),
            ))
        }
        (Route::Services, _) => Err(ApiError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        (Route::Service(name), Method::Get) => {
            let workflow = edge_core::orchestrate::runner::get_service(sql, &name)
                .await
                .map_err(|e| match e {
                    AdminError::Store(detail) => unavailable("service", detail),
                    other => ApiError::from(other),
                })?;
            Ok(Reply::json(
                200,
                serde_json::json!({ "success": true, "service": workflow }),
            ))
        }
        (Route::Service(_), _) => Err(ApiError::MethodNotAllowed { allowed: "GET" }),
    }
}

enum Route {
    Services,
    Service(String),
    Apps,
    App(String),
    Previews(String),
    Secrets(String, String),
    Secret(String, String, String),
    TelegramRoutes,
    TelegramRouteNamed(String),
    Deliveries,
    Replay(String),
    Jobs,
    Job(String),
    Decide(String, Decision),
    TelegramSetup,
    Protection,
    /// A request, and whether to approve (`true`) or reject it.
    ProtectionRequest(String, Option<bool>),
}
