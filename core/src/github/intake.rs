//! What `/github` does with a verified, parsed delivery: answer a ping, ignore what
//! no app uses (recorded, 202), or enqueue the rest. Pure: event + apps → decision.

use super::events::GithubEvent;
use crate::apps::NamedApp;

/// The `pull_request` actions that change a preview.
const PREVIEW_ACTIONS: &[&str] = &[
    "opened",
    "reopened",
    "synchronize",
    "closed",
    "ready_for_review",
    "converted_to_draft",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// `ping`: answered 200 at once.
    Pong,
    /// Recorded as ignored, answered 202, with the reason.
    Ignore(String),
    /// Recorded as queued; the consumer does the work.
    Enqueue,
}

/// Decides from the event, the apps registered for its repository, and whether
/// orchestration workflows are configured (they wait on merges and workflow runs in
/// repositories no app is registered for).
pub fn decide(event: &GithubEvent, apps: &[NamedApp], orchestrating: bool) -> Intake {
    match event {
        GithubEvent::Ping { .. } => Intake::Pong,
        GithubEvent::Push(push) => {
            if push.deleted || push.after.is_zero() {
                return Intake::Ignore(format!("{} was deleted", push.git_ref));
            }
            let Some(branch) = push.branch() else {
                return Intake::Ignore(format!("{} is not a branch", push.git_ref));
            };
            if apps.iter().any(|a| a.app.watches(&push.repository, branch)) {
                Intake::Enqueue
            } else {
                Intake::Ignore(format!(
                    "no app deploys {} from {branch}",
                    push.repository.as_str()
                ))
            }
        }
        GithubEvent::PullRequest(pr) if orchestrating && pr.action == "closed" => Intake::Enqueue,
        GithubEvent::WorkflowRun(run) if orchestrating && run.action == "completed" => {
            Intake::Enqueue
        }
        GithubEvent::PullRequest(pr)
            if PREVIEW_ACTIONS.contains(&pr.action.as_str())
                && apps.iter().any(|a| a.app.preview.is_some() && a.app.repository.same_as(&pr.repository)) =>
        {
            Intake::Enqueue
        }
        GithubEvent::WorkflowRun(run)
            if run.action == "completed"
                && apps.iter().any(|a| {
                    matches!(a.app.deploy.as_ref().map(|d| &d.target), Some(crate::apps::DeployTarget::GithubWorkflow { repository, .. })
                        if repository.as_ref().unwrap_or(&a.app.repository).same_as(&run.repository))
                }) =>
        {
            Intake::Enqueue
        }
        other => {
            let (name, action, _) = other.summary();
            Intake::Ignore(match action {
                Some(a) => format!("no app uses {name}.{a}"),
                None => format!("no app uses {name}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::App;
    use crate::names::AppName;

    fn app(repo: &str, branch: &str) -> NamedApp {
        let body = format!(
            r#"{{"repository": "{repo}", "production_branch": "{branch}", "environment": "production",
            "deploy_on": "push", "deploy": {{"type": "deploy_hook", "url": "https://hooks.example.com/x"}}}}"#
        );
        NamedApp {
            name: AppName::parse("hello").expect("name"),
            app: App::parse(body.as_bytes()).expect("app"),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn fixture(name: &str, event: &str) -> GithubEvent {
        let path = format!(
            "{}/../tests/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        super::super::events::parse(event, &std::fs::read(path).expect("fixture")).expect("parses")
    }

    #[test]
    fn pushes_to_a_watched_branch_are_enqueued() {
        let push = fixture("push.with-new-branch.json", "push");
        assert_eq!(
            decide(&push, &[app("Codertocat/Hello-World", "master")], false),
            Intake::Enqueue
        );
        assert_eq!(
            decide(&push, &[app("Codertocat/Hello-World", "main")], false),
            Intake::Ignore("no app deploys Codertocat/Hello-World from master".into())
        );
        assert!(matches!(decide(&push, &[], false), Intake::Ignore(_)));
    }

    #[test]
    fn a_preview_only_app_takes_pull_requests_but_no_pushes() {
        let only_previews = NamedApp {
            app: App::parse(
                br#"{"repository": "Codertocat/Hello-World",
                "preview": {"org": "acme", "image": "registry.fly.io/hello:{sha}"}}"#,
            )
            .expect("app"),
            ..app("Codertocat/Hello-World", "master")
        };
        let apps = [only_previews];
        assert_eq!(
            decide(&fixture("push.with-new-branch.json", "push"), &apps, false),
            Intake::Ignore("no app deploys Codertocat/Hello-World from master".into())
        );
        assert_eq!(
            decide(
                &fixture("pull_request.opened.json", "pull_request"),
                &apps,
                false
            ),
            Intake::Enqueue
        );
    }

    #[test]
    fn deletions_tags_pings_and_the_rest() {
        let tag = fixture("push.tag-deleted.json", "push");
        assert_eq!(
            decide(&tag, &[app("Codertocat/Hello-World", "master")], false),
            Intake::Ignore("refs/tags/simple-tag was deleted".into())
        );
        assert_eq!(
            decide(&fixture("ping.json", "ping"), &[], false),
            Intake::Pong
        );
        assert_eq!(
            decide(
                &fixture("deployment_status.json", "deployment_status"),
                &[],
                false
            ),
            Intake::Ignore("no app uses deployment_status.created".into())
        );
    }
}
