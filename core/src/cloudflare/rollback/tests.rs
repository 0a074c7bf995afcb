use super::*;
use crate::config::CloudflareConfig;
use crate::http::{HttpError, HttpResponse};
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

const BASE: &str = "http://cf.test/client/v4/accounts/acc123";

fn worker(name: &str) -> Target<'_> {
    Target {
        kind: DeployKind::Worker,
        name,
        announced: None,
    }
}

/// `GET …/workers/scripts/api/deployments` as Cloudflare answers it, newest first:
/// a gradual deployment (two versions at 50/50) between two whole ones.
fn deployments_body() -> serde_json::Value {
    json!({"success": true, "errors": [], "messages": [], "result": {"deployments": [
        {"id": "dep-4", "source": "wrangler", "strategy": "percentage", "author_email": "dev@example.com",
         "created_on": "2025-01-15T10:30:00.123456Z",
         "annotations": {"workers/triggered_by": "deployment", "workers/message": "Add JWT authentication"},
         "versions": [{"version_id": "bcf48806-b317-4351-9ee7-36e7d557d4de", "percentage": 100.0}]},
        {"id": "dep-3", "source": "wrangler", "strategy": "percentage", "created_on": "2025-01-15T09:00:00Z",
         "annotations": {"workers/triggered_by": "deployment"},
         "versions": [{"version_id": "bcf48806-b317-4351-9ee7-36e7d557d4de", "percentage": 50.0},
                      {"version_id": "18f97339-c287-4872-9bdd-e2135c07ec12", "percentage": 50.0}]},
        {"id": "dep-2", "source": "api", "strategy": "percentage", "created_on": "2025-01-14T09:00:00Z",
         "versions": [{"version_id": "18f97339-c287-4872-9bdd-e2135c07ec12", "percentage": 100}]},
        {"id": "dep-1", "source": "api", "strategy": "percentage", "created_on": "2025-01-13T09:00:00Z",
         "versions": [{"version_id": "0a1b2c3d-0000-4000-8000-000000000001", "percentage": 100}]}
    ]}})
}

fn version_body(id: &str, number: i64) -> serde_json::Value {
    json!({"success": true, "errors": [], "messages": [], "result": {
        "id": id, "number": number,
        "metadata": {"author_email": "dev@example.com", "created_on": "2025-01-14T08:59:00Z", "source": "wrangler"},
        "annotations": {"workers/triggered_by": "upload"},
        "resources": {"bindings": [{"type": "secret_text", "name": "API_KEY"}],
                      "script": {"etag": "e1", "handlers": ["fetch"]}}
    }})
}

fn read_deployments(body: serde_json::Value) -> Vec<ScriptDeployment> {
    let list: ScriptDeployments =
        crate::json::from_value(&body["result"]).expect("the deployments read");
    list.deployments
}

#[test]
fn the_version_is_the_newest_whole_one_before_the_live_deployment() {
    let deployments = read_deployments(deployments_body());
    let (live, to) = pick_version(&deployments, worker("api")).expect("a version");
    assert_eq!(live.id, "dep-4");
    assert_eq!(to.id, "dep-2", "dep-3 split its traffic");
    assert_eq!(whole(to), Some("18f97339-c287-4872-9bdd-e2135c07ec12"));
}

#[test]
fn the_order_of_the_list_does_not_matter_and_the_live_version_is_passed_over() {
    let mut deployments = read_deployments(deployments_body());
    deployments.reverse();
    // dep-2 now deployed the live version again: going back to it changes nothing.
    let dep2 = deployments
        .iter_mut()
        .find(|d| d.id == "dep-2")
        .expect("dep-2");
    dep2.versions[0].0 = "bcf48806-b317-4351-9ee7-36e7d557d4de".into();
    let (live, to) = pick_version(&deployments, worker("api")).expect("a version");
    assert_eq!((live.id.as_str(), to.id.as_str()), ("dep-4", "dep-1"));
}

#[test]
fn nothing_to_go_back_to_is_said_so() {
    let deployments = read_deployments(deployments_body());
    assert_eq!(
        pick_version(&deployments[..1], worker("api")).map(|_| ()),
        Err(RollbackError::Final(
            "no earlier deployment of api sent one version 100% of its traffic".into()
        ))
    );
    assert_eq!(
        pick_version(&[], worker("api")).map(|_| ()),
        Err(RollbackError::Final("api has no deployments".into()))
    );
}

#[test]
fn a_deployment_no_longer_live_is_not_rolled_back() {
    let deployments = read_deployments(deployments_body());
    let announced = Target {
        announced: Some("dep-2"),
        ..worker("api")
    };
    assert_eq!(
        pick_version(&deployments, announced).map(|_| ()),
        Err(RollbackError::Final(
            "dep-2 is no longer live (dep-4 is): nothing was rolled back".into()
        ))
    );
    let live = Target {
        announced: Some("dep-4"),
        ..worker("api")
    };
    assert!(pick_version(&deployments, live).is_ok());
}

#[test]
fn a_worker_rollback_lists_reads_the_version_and_posts_it_at_100_percent() {
    let http = FakeHttp::answering(vec![
        json_response(200, deployments_body()),
        json_response(
            200,
            version_body("18f97339-c287-4872-9bdd-e2135c07ec12", 41),
        ),
        json_response(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": {
                "id": "dep-5", "source": "api", "strategy": "percentage", "created_on": "2025-01-15T11:00:00Z",
                "annotations": {"workers/message": "rollback by @alice via edge-notifier", "workers/triggered_by": "rollback"},
                "versions": [{"version_id": "18f97339-c287-4872-9bdd-e2135c07ec12", "percentage": 100}]}}),
        ),
    ]);
    let cfg = config();
    let client = CloudflareClient::new(&http, &cfg);
    let choice = block_on(client.choose(worker("api"))).expect("chosen");
    assert_eq!(
        choice,
        Choice {
            live: "dep-4".into(),
            to: "18f97339-c287-4872-9bdd-e2135c07ec12".into(),
            label: "version 41 (18f97339) of Jan 14, 2025, 9:00 AM UTC".into(),
        }
    );
    let message = annotation("@alice");
    assert_eq!(message, "rollback by @alice via edge-notifier");
    let live = block_on(client.send_rollback(worker("api"), &choice, &message)).expect("sent");
    assert_eq!(live.as_deref(), Some("dep-5"));
    assert_eq!(
        http.calls(),
        vec![
            format!("GET {BASE}/workers/scripts/api/deployments"),
            format!("GET {BASE}/workers/scripts/api/versions/18f97339-c287-4872-9bdd-e2135c07ec12"),
            format!("POST {BASE}/workers/scripts/api/deployments"),
        ]
    );
    let seen = http.seen.borrow();
    assert_eq!(
        seen[2].header_value("content-type"),
        Some("application/json")
    );
    assert_eq!(
        seen[2].header_value("authorization"),
        Some("Bearer cf-token")
    );
    let body: serde_json::Value =
        serde_json::from_str(seen[2].body.as_deref().expect("a body")).expect("JSON");
    assert_eq!(
        body,
        json!({"strategy": "percentage",
               "versions": [{"version_id": "18f97339-c287-4872-9bdd-e2135c07ec12", "percentage": 100}],
               "annotations": {"workers/message": "rollback by @alice via edge-notifier"}})
    );
}

#[test]
fn a_changed_secret_is_refused_in_cloudflares_words() {
    let http = FakeHttp::answering(vec![json_response(
        400,
        json!({"success": false, "messages": [], "result": null, "errors": [{"code": 10220,
            "message": "A secret has changed since this version was active. If you are sure this is ok, add a ?force=true query parameter to allow the rollback. The following secrets have changed: API_KEY"}]}),
    )]);
    let cfg = config();
    let choice = Choice {
        live: "dep-4".into(),
        to: "18f97339-c287-4872-9bdd-e2135c07ec12".into(),
        label: "version 41".into(),
    };
    let refused = block_on(CloudflareClient::new(&http, &cfg).send_rollback(
        worker("api"),
        &choice,
        "rollback by @alice via edge-notifier",
    ))
    .expect_err("refused");
    assert_eq!(
        refused.to_string(),
        "Cloudflare refused the rollback: A secret has changed since this version was active. \
         If you are sure this is ok, add a ?force=true query parameter to allow the rollback. \
         The following secrets have changed: API_KEY (code 10220)"
    );
    assert!(matches!(refused, RollbackError::Refused(_)));
    assert!(
        !http.calls()[0].contains("force"),
        "a refusal is never forced"
    );
}

#[test]
fn a_rollback_without_an_answer_is_unconfirmed_and_then_looked_for() {
    let posted = json!({"id": "dep-5", "source": "api", "strategy": "percentage",
        "created_on": "2025-01-15T11:00:00Z",
        "annotations": {"workers/message": "rollback by @alice via edge-notifier"},
        "versions": [{"version_id": "18f97339-c287-4872-9bdd-e2135c07ec12", "percentage": 100}]});
    let mut with_it = deployments_body();
    with_it["result"]["deployments"]
        .as_array_mut()
        .expect("a list")
        .insert(0, posted);
    let http = FakeHttp::answering(vec![
        Err(HttpError::Timeout(10_000)),
        Ok(HttpResponse::new(502, "<html>bad gateway</html>")),
        json_response(200, deployments_body()),
        json_response(200, with_it),
    ]);
    let cfg = config();
    let client = CloudflareClient::new(&http, &cfg);
    let choice = Choice {
        live: "dep-4".into(),
        to: "18f97339-c287-4872-9bdd-e2135c07ec12".into(),
        label: "version 41".into(),
    };
    let message = "rollback by @alice via edge-notifier";
    for expected in [
        "Cloudflare API: timed out after 10000 ms; the rollback may or may not have happened",
        "Cloudflare API 502: no error message; the rollback may or may not have happened",
    ] {
        assert_eq!(
            block_on(client.send_rollback(worker("api"), &choice, message)),
            Err(RollbackError::Unconfirmed(expected.into()))
        );
    }
    let sent = Timestamp::parse_rfc3339("2025-01-15T11:00:00Z").expect("time");
    assert_eq!(
        block_on(client.find_rollback(worker("api"), &choice, message, sent)),
        Ok(None),
        "not among the deployments"
    );
    assert_eq!(
        block_on(client.find_rollback(worker("api"), &choice, message, sent)),
        Ok(Some("dep-5".into()))
    );
}

#[test]
fn reads_that_fail_are_final_for_a_4xx_and_later_for_the_rest() {
    let http = FakeHttp::answering(vec![
        json_response(
            404,
            json!({"success": false, "result": null, "errors": [{"code": 10007, "message": "This Worker does not exist on your account."}]}),
        ),
        json_response(
            429,
            json!({"success": false, "result": null, "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}]}),
        ),
        Err(HttpError::Network("connection reset".into())),
    ]);
    let cfg = config();
    let client = CloudflareClient::new(&http, &cfg);
    assert_eq!(
        block_on(client.choose(worker("gone"))),
        Err(RollbackError::Final(
            "Cloudflare API 404: This Worker does not exist on your account. (code 10007)".into()
        ))
    );
    assert!(matches!(
        block_on(client.choose(worker("api"))),
        Err(RollbackError::Later(_))
    ));
    assert_eq!(
        block_on(client.choose(worker("api"))),
        Err(RollbackError::Later(
            "Cloudflare API: network error: connection reset".into()
        ))
    );
    assert_eq!(
        block_on(client.choose(worker("../x"))),
        Err(RollbackError::Final("../x is not a valid name".into()))
    );
    assert_eq!(http.seen.borrow().len(), 3, "an invalid name sends nothing");
}

fn pages_deployment(id: &str, created: &str, env: &str, status: &str) -> serde_json::Value {
    json!({"id": id, "short_id": &id[..8], "project_name": "docs", "environment": env,
           "url": format!("https://{}.docs.pages.dev", &id[..8]), "created_on": created,
           "latest_stage": {"name": "deploy", "status": status},
           "deployment_trigger": {"type": "github:push", "metadata": {"branch": "main", "commit_hash": "abc1234"}},
           "is_skipped": false})
}

#[test]
fn pages_go_back_to_the_newest_good_production_deployment_before_the_live_one() {
    let live = pages_deployment(
        "e1c2a3b4-0000-4000-8000-000000000004",
        "2025-01-15T10:00:00Z",
        "production",
        "success",
    );
    let list = json!({"success": true, "errors": [], "messages": [], "result_info": {"page": 1, "per_page": 25, "count": 4, "total_count": 4},
    "result": [
        pages_deployment("f5000000-0000-4000-8000-000000000005", "2025-01-15T11:00:00Z", "production", "success"),
        live.clone(),
        pages_deployment("c3000000-0000-4000-8000-000000000003", "2025-01-15T09:00:00Z", "production", "failure"),
        pages_deployment("b2000000-0000-4000-8000-000000000002", "2025-01-15T08:00:00Z", "production", "success"),
        pages_deployment("a1000000-0000-4000-8000-000000000001", "2025-01-15T07:00:00Z", "production", "success"),
    ]});
    let http = FakeHttp::answering(vec![
        json_response(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": {
                "id": "p-1", "name": "docs", "subdomain": "docs.pages.dev", "production_branch": "main",
                "canonical_deployment": live, "latest_deployment": {"id": "f5000000-0000-4000-8000-000000000005"}}}),
        ),
        json_response(200, list),
        json_response(
            200,
            json!({"success": true, "errors": [], "messages": [], "result": pages_deployment("b2000000-0000-4000-8000-000000000002", "2025-01-15T08:00:00Z", "production", "success")}),
        ),
    ]);
    let cfg = config();
    let client = CloudflareClient::new(&http, &cfg);
    let target = Target {
        kind: DeployKind::Pages,
        name: "docs",
        announced: Some("e1c2a3b4"),
    };
    let choice = block_on(client.choose(target)).expect("chosen");
    assert_eq!(
        choice,
        Choice {
            live: "e1c2a3b4-0000-4000-8000-000000000004".into(),
            to: "b2000000-0000-4000-8000-000000000002".into(),
            label: "deployment b2000000 of Jan 15, 2025, 8:00 AM UTC".into(),
        },
        "after a rollback the live one is not the newest; a failed build is no target"
    );
    assert_eq!(
        block_on(client.send_rollback(target, &choice, "unused")),
        Ok(Some("b2000000-0000-4000-8000-000000000002".into()))
    );
    assert_eq!(
        http.calls(),
        vec![
            format!("GET {BASE}/pages/projects/docs"),
            format!("GET {BASE}/pages/projects/docs/deployments?env=production"),
            format!("POST {BASE}/pages/projects/docs/deployments/b2000000-0000-4000-8000-000000000002/rollback"),
        ]
    );
    assert_eq!(http.seen.borrow()[2].body, None);
}

#[test]
fn a_pages_project_with_nothing_earlier_says_so() {
    let live = pages_deployment(
        "a1000000-0000-4000-8000-000000000001",
        "2025-01-15T07:00:00Z",
        "production",
        "success",
    );
    let entries: Vec<PagesEntry> = crate::json::from_value(&json!([
        live.clone(),
        pages_deployment(
            "a0000000-0000-4000-8000-000000000000",
            "2025-01-15T06:00:00Z",
            "preview",
            "success"
        )
    ]))
    .expect("entries");
    let live: PagesEntry = crate::json::from_value(&live).expect("live");
    let target = Target {
        kind: DeployKind::Pages,
        name: "docs",
        announced: None,
    };
    assert_eq!(
        pick_pages(&live, &entries, target),
        Err(RollbackError::Final(
            "docs has no earlier successful production deployment".into()
        )),
        "a preview is no rollback target"
    );
}

#[test]
fn the_annotation_fits_cloudflares_limit() {
    let long = annotation(&"x".repeat(300));
    assert_eq!(long.chars().count(), MAX_MESSAGE);
    assert!(long.starts_with("rollback by xxx") && long.ends_with("… via edge-notifier"));
}
