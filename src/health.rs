//! `GET /health`: the version and which bindings and settings are present, never
//! their values.

use crate::request::Request;
use edge_core::config::{Config, VARIABLES};
use edge_core::error::ApiError;
use worker::{Env, Method};

use crate::adapters;
use crate::respond::Reply;

pub fn handle(req: &Request, env: &Env, config: &Config) -> Result<Reply, ApiError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(ApiError::MethodNotAllowed { allowed: "GET" });
    }
    let settings = edge_core::maps::object(VARIABLES.iter().map(|(name, _secret)| {
        (
            (*name).to_owned(),
            crate::adapters::lookup(env, name).is_some().into(),
        )
    }));
    Ok(Reply::json(
        200,
        serde_json::json!({
            "success": true,
            "name": env!("CARGO_PKG_NAME"),
            "version": env!("CARGO_PKG_VERSION"),
            "bindings": {
                adapters::DB: adapters::bound(env, adapters::DB),
                adapters::STATE: adapters::bound(env, adapters::STATE),
                adapters::JOBS: adapters::bound(env, adapters::JOBS),
                adapters::TELEGRAM: adapters::bound(env, adapters::TELEGRAM),
            },
            "settings": settings,
            "problems": config.problems,
        }),
    ))
}
