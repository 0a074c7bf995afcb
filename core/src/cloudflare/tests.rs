use super::*;
use crate::secret::Secret;
use crate::testing::{block_on, json_response, FakeHttp};
use serde_json::json;

fn config() -> CloudflareConfig {
    CloudflareConfig {
        api_base: "http://cf.test/client/v4".into(),
        account_id: "acc123".into(),
        api_token: Secret::new("cf-token"),
    }
}

#[test]
fn worker_deployments_become_deployments() {
    let http = FakeHttp::answering(vec![json_response(
        200,
        json!({"success": true, "errors": [], "messages": [], "result": {"deployments": [
            {"id": "dep-2", "created_on": "2025-01-15T10:30:00.123456Z", "source": "wrangler",
             "strategy": "percentage", "author_email": "dev@example.com",
             "annotations": {"workers/message": "Add JWT authentication", "workers/triggered_by": "upload"},
             "versions": [{"version_id": "v2", "percentage": 100.0}]},
            {"id": "dep-1", "created_on": "2025-01-14T09:00:00Z", "source": "api", "strategy": "percentage",
             "versions": [{"version_id": "v1", "percentage": 100.0}]}
        ]}}),
    )]);
    let cfg = config();
    let got =
        block_on(CloudflareClient::new(&http, &cfg).worker_deployments("api-service")).expect("ok");
    let seen = http.seen.borrow();
    assert_eq!(
        seen[0].url,
        "http://cf.test/client/v4/accounts/acc123/workers/scripts/api-service/deployments"
    );
    assert!(seen[0]
        .headers
        .contains(&("authorization".into(), "Bearer cf-token".into())));
    assert_eq!(got.len(), 2);
    let d = &got[0].deployment;
    assert_eq!(d.kind, DeployKind::Worker);
    assert_eq!(d.project_name, "api-service");
    assert_eq!(d.deployment_id.as_str(), "dep-2");
    assert_eq!(d.author.as_deref(), Some("dev@example.com"));
    assert_eq!(d.commit_message.as_deref(), Some("Add JWT authentication"));
    assert_eq!(d.timestamp.to_rfc3339(), "2025-01-15T10:30:00.123Z");
    assert_eq!(d.source, Source::Poll);
    assert_eq!(got[0].state, PolledState::Live);
}

#[test]
fn pages_deployments_with_their_stage() {
    let http = FakeHttp::answering(vec![json_response(
        200,
        json!({"success": true, "errors": [], "result": [
            {"id": "p-3", "short_id": "p3", "project_name": "docs", "environment": "preview",
             "url": "https://p3.docs.pages.dev", "created_on": "2025-01-15T10:31:00Z",
             "latest_stage": {"name": "build", "status": "active"},
             "deployment_trigger": {"type": "github:push", "metadata": {"branch": "feat", "commit_hash": "ABCDEF1234", "commit_message": "WIP"}}},
            {"id": "p-2", "environment": "production", "url": "https://p2.docs.pages.dev",
             "created_on": "2025-01-15T10:30:00Z", "latest_stage": {"name": "deploy", "status": "success"},
             "deployment_trigger": {"type": "ad_hoc", "metadata": {"branch": "main", "commit_hash": "not-a-sha", "commit_message": "Docs"}}},
            {"id": "p-1", "environment": "production", "created_on": "2025-01-15T10:00:00Z",
             "latest_stage": {"name": "build", "status": "failure"}}
        ], "result_info": {"page": 1, "per_page": 25, "count": 3, "total_count": 3}}),
    )]);
    let cfg = config();
    let got = block_on(CloudflareClient::new(&http, &cfg).pages_deployments("docs")).expect("ok");
    assert_eq!(
        http.seen.borrow()[0].url,
        "http://cf.test/client/v4/accounts/acc123/pages/projects/docs/deployments"
    );
    let states: Vec<_> = got.iter().map(|p| p.state).collect();
    assert_eq!(
        states,
        vec![
            PolledState::InProgress,
            PolledState::Live,
            PolledState::Failed
        ]
    );
    let d = &got[0].deployment;
    assert_eq!(d.branch.as_deref(), Some("feat"));
    assert_eq!(
        d.commit_hash.as_ref().map(|c| c.as_str()),
        Some("abcdef1234")
    );
    assert_eq!(d.environment, "preview");
    assert_eq!(d.url.as_deref(), Some("https://p3.docs.pages.dev"));
    assert_eq!(
        got[1].deployment.commit_hash, None,
        "a malformed hash is dropped, not fatal"
    );
}

#[test]
fn api_errors_are_typed() {
    let http = FakeHttp::answering(vec![
        json_response(
            401,
            json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "result": null}),
        ),
        Ok(crate::http::HttpResponse::new(
            502,
            "<html>bad gateway</html>",
        )),
        Err(HttpError::Timeout(10_000)),
        json_response(
            200,
            json!({"success": true, "result": {"deployments": [{"id": "x", "created_on": "yesterday"}]}}),
        ),
    ]);
    let cfg = config();
    let c = CloudflareClient::new(&http, &cfg);
    assert_eq!(
        block_on(c.worker_deployments("a"))
            .expect_err("401")
            .to_string(),
        "Cloudflare API 401: Authentication error (code 10000)"
    );
    assert_eq!(
        block_on(c.worker_deployments("a"))
            .expect_err("502")
            .to_string(),
        "Cloudflare API 502: no error message"
    );
    assert_eq!(
        block_on(c.worker_deployments("a"))
            .expect_err("timeout")
            .to_string(),
        "Cloudflare API: timed out after 10000 ms"
    );
    assert!(matches!(
        block_on(c.worker_deployments("a")),
        Err(CloudflareError::Malformed(_))
    ));
    assert_eq!(
        block_on(c.pages_deployments("../x")).expect_err("name"),
        CloudflareError::InvalidName("../x".into())
    );
    assert_eq!(http.seen.borrow().len(), 4, "an invalid name sends nothing");
}
