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

fn all_ok(listed: Result<Vec<Listed>, CloudflareError>) -> Vec<PolledDeployment> {
    listed
        .expect("the page is read")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every entry is read")
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
    let got = all_ok(block_on(
        CloudflareClient::new(&http, &cfg).worker_deployments("api-service"),
    ));
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
    let got = all_ok(block_on(
        CloudflareClient::new(&http, &cfg).pages_deployments("docs"),
    ));
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
    let listed = block_on(c.worker_deployments("a")).expect("the page is read");
    assert_eq!(
        listed,
        vec![Err(CloudflareError::Malformed(
            "created_on \"yesterday\"".into()
        ))],
        "an unreadable time refuses its deployment alone"
    );
    assert_eq!(
        block_on(c.pages_deployments("../x")).expect_err("name"),
        CloudflareError::InvalidName("../x".into())
    );
    assert_eq!(http.seen.borrow().len(), 4, "an invalid name sends nothing");
}

#[test]
fn an_entry_without_an_id_is_refused_alone_and_bad_display_fields_are_cleaned() {
    let http = FakeHttp::answering(vec![json_response(
        200,
        json!({"success": true, "result": [
            {"id": "p-3", "created_on": "2025-01-15T10:31:00Z", "url": "javascript:x",
             "latest_stage": {"name": "deploy", "status": "success"},
             "deployment_trigger": {"metadata": {"branch": "b".repeat(300), "commit_message": "a\u{0}b",
               "commit_hash": 12}}},
            {"id": "p\n2", "created_on": "2025-01-15T10:30:00Z"},
            {"created_on": "2025-01-15T10:29:00Z"},
            {"id": "p-1", "created_on": "2025-01-15T10:00:00Z", "deployment_trigger": "manual"}
        ]}),
    )]);
    let cfg = config();
    let listed =
        block_on(CloudflareClient::new(&http, &cfg).pages_deployments("docs")).expect("page");
    assert_eq!(listed.len(), 4);
    let p3 = &listed[0].as_ref().expect("p-3 is kept").deployment;
    assert_eq!(
        p3.branch.as_ref().map(|b| b.chars().count()),
        Some(crate::notify::MAX_BRANCH)
    );
    assert_eq!(p3.commit_message.as_deref(), Some("ab"));
    assert_eq!((p3.url.as_deref(), p3.commit_hash.as_ref()), (None, None));
    assert_eq!(
        listed[1].as_ref().map(|_| ()),
        Err(&CloudflareError::Malformed(
            "deployment.deploymentId must be a single line without control characters".into()
        )),
        "an identity field refuses its deployment"
    );
    assert_eq!(
        listed[2].as_ref().map(|_| ()),
        Err(&CloudflareError::Malformed(
            "deployment #3: missing field `id`".into()
        ))
    );
    assert_eq!(
        listed[3]
            .as_ref()
            .map(|d| d.deployment.deployment_id.as_str()),
        Ok("p-1")
    );
}
