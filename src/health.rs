//! `GET /health`: the version and which bindings and settings are present, never
//! their values.

use edge_core::config::{Config, VARIABLES};
use edge_core::error::ApiError;
use worker::{Env, Method, Request};

use crate::respond::Reply;

pub fn handle(req: &Request, env: &Env, config: &Config) -> Result<Reply, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allowed: "GET" });
    }
    let settings: serde_json::Map<String, serde_json::Value> = VARIABLES
        .iter()
        .map(|(name, _secret)| {
            (
                (*name).to_owned(),
                crate::adapters::lookup(env, name).is_some().into(),
            )
        })
        .collect();
    Ok(Reply::json(
        200,
        serde_json::json!({
            "success": true,
            "name": env!("CARGO_PKG_NAME"),
            "version": env!("CARGO_PKG_VERSION"),
            "bindings": {
                crate::DB: env.d1(crate::DB).is_ok(),
                crate::STATE: env.kv(crate::STATE).is_ok(),
                crate::JOBS: env.queue(crate::JOBS).is_ok(),
            },
            "settings": settings,
            "problems": config.problems,
        }),
    ))
}
