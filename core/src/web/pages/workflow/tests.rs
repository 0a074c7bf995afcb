use super::*;
use crate::orchestrate::definition::Definition;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{ago, operator, Db, NOW};

#[test]
fn a_workflows_steps_read_as_a_dependency_list_with_their_links_and_events() {
    let db = Db::new();
    let def = Definition::parse(
        &serde_json::json!({"steps": [
            {"id": "infra", "action": {"kind": "open_pr", "repository": "octo/infra", "branch": "add-svc",
              "title": "Add svc", "files": [{"op": "create", "path": "svc.tf", "content": "x"}]}},
            {"id": "merged", "after": ["infra"], "action": {"kind": "await_merge", "pr": "infra"}}
        ]})
        .to_string(),
    )
    .expect("definition");
    let id = block_on(WorkflowStore::new(&db.sql).create(
        "svc",
        "new_service",
        &def,
        &serde_json::json!({}),
        ago(30),
    ))
    .expect("created")
    .expect("new");
    db.sql
        .conn_for_tests()
        .execute(
            "UPDATE workflow_steps SET status = 'merged', pr_number = 4, pr_node_id = 'PR_4', \
             pr_html_url = 'https://github.com/octo/infra/pull/4', merged_sha = ?2, \
             events = ?3 WHERE workflow_id = ?1 AND step_id = 'infra'",
            rusqlite::params![
                id,
                "abcdef0123456789abcdef0123456789abcdef01",
                serde_json::json!([{"source": "pull_request", "delivery": "d-1", "at": ago(5).millis(), "detail": "merged by <b>alice</b>"}]).to_string()
            ],
        )
        .expect("moved");
    let counted = Counted::new(&db.sql);
    let wf = block_on(load(&counted, "svc")).expect("loads");
    assert!(counted.calls() <= 3);
    let page = render(&wf, &operator(), NOW);
    let merged = &page[page.find("data-step=\"merged\"").expect("step")..];
    assert!(
        merged.contains("after <a href=\"#step-infra\">infra</a>"),
        "{merged}"
    );
    let infra = &page[page.find("data-step=\"infra\"").expect("step")..];
    assert!(infra.contains("data-state=\"merged\""));
    assert!(infra.contains("href=\"https://github.com/octo/infra/pull/4\""));
    assert!(infra.contains("merged as <code class=\"sha\">abcdef0</code>"));
    assert!(
        infra.contains("data-source=\"pull_request\"")
            && infra.contains("merged by &lt;b&gt;alice&lt;/b&gt;")
    );
    assert_eq!(block_on(load(&db.sql, "other")), Err(PageError::NotFound));
}
