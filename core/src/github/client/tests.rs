use super::*;
use crate::testing::{block_on, json_response, FakeHttp};

fn config() -> GithubConfig {
    GithubConfig {
        api_base: "http://gh.test".into(),
        token: Secret::new("ghs_token"),
    }
}

fn repo() -> RepoFullName {
    RepoFullName::parse("octo/app").expect("repo")
}

fn sha(c: char) -> CommitSha {
    CommitSha::parse(&c.to_string().repeat(40)).expect("sha")
}

#[test]
fn creates_a_deployment_with_the_pinned_api_headers() {
    let http = FakeHttp::answering(vec![json_response(201, serde_json::json!({"id": 42}))]);
    let cfg = config();
    let id = block_on(GithubClient::new(&http, &cfg).create_deployment(
        &repo(),
        &sha('a'),
        "production",
        "Deploy by edge-notifier",
    ))
    .expect("created");
    assert_eq!(id, 42);
    let seen = http.seen.borrow();
    assert_eq!(seen[0].url, "http://gh.test/repos/octo/app/deployments");
    for (k, v) in [
        ("accept", "application/vnd.github+json"),
        ("x-github-api-version", "2022-11-28"),
        ("authorization", "Bearer ghs_token"),
    ] {
        assert!(seen[0].headers.contains(&(k.into(), v.into())), "{k}");
    }
    let body = &http.bodies()[0];
    assert_eq!(body["ref"], "a".repeat(40));
    assert_eq!(body["auto_merge"], false);
    assert_eq!(body["required_contexts"], serde_json::json!([]));
}

#[test]
fn errors_are_transient_or_rejected() {
    let limited = Ok(HttpResponse {
        status: 403,
        body: r#"{"message":"API rate limit exceeded"}"#.into(),
        headers: vec![("x-ratelimit-remaining".into(), "0".into())],
    });
    let http = FakeHttp::answering(vec![
        limited,
        json_response(502, serde_json::json!({"message": "Server Error"})),
        json_response(422, serde_json::json!({"message": "No ref found for: x"})),
    ]);
    let cfg = config();
    let c = GithubClient::new(&http, &cfg);
    let e =
        block_on(c.create_deployment(&repo(), &sha('a'), "production", "d")).expect_err("limited");
    assert!(e.is_transient(), "{e}");
    assert!(
        block_on(c.create_deployment(&repo(), &sha('a'), "production", "d"))
            .expect_err("5xx")
            .is_transient()
    );
    let e = block_on(c.create_deployment(&repo(), &sha('a'), "production", "d")).expect_err("422");
    assert_eq!(e, GithubError::Rejected("422: No ref found for: x".into()));
}

#[test]
fn compare_follows_pagination() {
    let commit = |c: char| {
        serde_json::json!({"sha": c.to_string().repeat(40), "commit": {"message": format!("Commit {c}\n\nbody"),
            "author": {"email": "dev@example.com", "date": "2025-01-15T10:30:00Z"}}, "author": {"login": "octocat"}})
    };
    let page2 = commit('b');
    let page1 = commit('a');
    let http = FakeHttp::routed(move |req| {
        if req.url.ends_with("?per_page=100") {
            Ok(HttpResponse {
                status: 200,
                body: serde_json::json!({"commits": [page1.clone()]}).to_string(),
                headers: vec![(
                    "link".into(),
                    "<http://gh.test/repos/octo/app/compare/x...y?per_page=100&page=2>; rel=\"next\", <http://gh.test/last>; rel=\"last\"".into(),
                )],
            })
        } else if req.url.ends_with("&page=2") {
            json_response(200, serde_json::json!({"commits": [page2.clone()]}))
        } else {
            panic!("unexpected {}", req.url)
        }
    });
    let cfg = config();
    let commits =
        block_on(GithubClient::new(&http, &cfg).compare_commits(&repo(), &sha('0'), &sha('b')))
            .expect("commits");
    assert_eq!(commits.len(), 2);
    assert_eq!(commits[0].subject, "Commit a");
    assert_eq!(commits[1].author.as_deref(), Some("octocat"));
    assert_eq!(http.calls().len(), 2);
}

#[test]
fn compare_without_accounts_or_with_a_bad_answer() {
    let http = FakeHttp::answering(vec![
        json_response(
            200,
            serde_json::json!({"commits": [
                {"sha": "a".repeat(40), "commit": {"message": "One", "author": {"email": "dev@example.com", "date": null}}, "author": null},
                {"sha": "b".repeat(40), "commit": {"message": "Two", "author": null}}
            ]}),
        ),
        json_response(
            200,
            serde_json::json!({"commits": [{"sha": "x", "commit": {"message": "m"}}]}),
        ),
        json_response(
            200,
            serde_json::json!({"commits": [{"sha": "a".repeat(40), "commit": {}}]}),
        ),
    ]);
    let cfg = config();
    let c = GithubClient::new(&http, &cfg);
    let commits = block_on(c.compare_commits(&repo(), &sha('0'), &sha('b'))).expect("commits");
    assert_eq!(commits[0].author.as_deref(), Some("dev@example.com"));
    assert_eq!(commits[0].timestamp, None);
    assert_eq!(
        (
            commits[1].author.as_deref(),
            commits[1].timestamp.as_deref()
        ),
        (None, None)
    );
    assert_eq!(
        block_on(c.compare_commits(&repo(), &sha('0'), &sha('b'))).expect_err("bad sha"),
        GithubError::Transient("compare: \"x\" is not a sha".into())
    );
    assert_eq!(
        block_on(c.compare_commits(&repo(), &sha('0'), &sha('b'))).expect_err("no message"),
        GithubError::Transient(
            "unexpected answer: commits[0].commit: missing field `message`".into()
        )
    );
}

#[test]
fn merges_by_parents_or_by_pull_request() {
    let http = FakeHttp::answering(vec![
        json_response(
            200,
            serde_json::json!({"parents": [{"sha": "1"}, {"sha": "2"}]}),
        ),
        json_response(200, serde_json::json!({"parents": [{"sha": "1"}]})),
        json_response(
            200,
            serde_json::json!([{"number": 7, "merged_at": "2025-01-15T10:30:00Z"}]),
        ),
        json_response(200, serde_json::json!({"parents": [{"sha": "1"}]})),
        json_response(200, serde_json::json!([])),
    ]);
    let cfg = config();
    let c = GithubClient::new(&http, &cfg);
    assert!(block_on(c.is_merge(&repo(), &sha('a'))).expect("merge commit"));
    assert!(block_on(c.is_merge(&repo(), &sha('b'))).expect("squash of a merged PR"));
    assert!(!block_on(c.is_merge(&repo(), &sha('c'))).expect("a direct push"));
}

#[test]
fn dispatch_returns_the_run_when_given() {
    let http = FakeHttp::answering(vec![
        json_response(
            200,
            serde_json::json!({"workflow_run_id": 991, "run_url": "x", "html_url": "y"}),
        ),
        Ok(HttpResponse::new(204, "")),
    ]);
    let cfg = config();
    let c = GithubClient::new(&http, &cfg);
    let inputs = serde_json::Map::new();
    assert_eq!(
        block_on(c.dispatch_workflow(&repo(), "deploy.yml", "main", &inputs)).expect("ok"),
        Some(DispatchedRun {
            id: 991,
            html_url: Some("y".into())
        })
    );
    assert_eq!(
        block_on(c.dispatch_workflow(&repo(), "deploy.yml", "main", &inputs)).expect("ok"),
        None
    );
    assert_eq!(http.bodies()[0]["return_run_details"], true);
}

#[test]
fn pagination_follows_only_links_on_the_api_origin() {
    let link =
        |url: &str| format!("<{url}>; rel=\"next\", <https://api.github.com/last>; rel=\"last\"");
    let base = "https://api.github.com";
    let ours = "https://api.github.com/repos/o/r/compare/a...b?page=2";
    assert_eq!(next_link(Some(&link(ours)), base).as_deref(), Some(ours));
    assert_eq!(
        next_link(Some(&link("https://API.github.com:443/x?page=2")), base).as_deref(),
        Some("https://API.github.com:443/x?page=2"),
        "the same origin, spelled differently"
    );
    for foreign in [
        "https://api.github.com.evil/repos/o/r?page=2",
        "https://api.github.com@evil.example/repos?page=2",
        "https://api.github.com:8443/repos?page=2",
        "http://api.github.com/repos?page=2",
        "https://evil.example/https://api.github.com/repos",
        "api.github.com/repos?page=2",
        "javascript:https://api.github.com",
    ] {
        assert_eq!(next_link(Some(&link(foreign)), base), None, "{foreign}");
    }
    // An enterprise base with a path: its origin is what counts.
    let ghe = "https://ghe.example.com/api/v3";
    assert!(next_link(Some(&link("https://ghe.example.com/api/v3/x?page=2")), ghe).is_some());
    assert!(next_link(Some(&link("https://ghe.example.com.evil/api/v3/x")), ghe).is_none());
    assert_eq!(next_link(None, base), None);
}
