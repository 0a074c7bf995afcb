//! The webhook events the flows act on, parsed from GitHub's JSON into closed types.
//! One small parse function per event; every other event is [`GithubEvent::Other`]
//! (recorded and answered 202, never an error).

use serde::{Deserialize, Serialize};

use super::{CommitSha, RepoFullName};
use crate::error::ApiError;

/// A push webhook lists at most this many commits; a list this long may be cut and
/// the complete one comes from the compare API.
pub const PUSH_COMMITS_CAP: usize = 2048;
/// Commit messages are kept to their first line, at most this many characters, so a
/// stored event stays well under D1's 2 MB row limit even at the commit cap.
pub const COMMIT_SUBJECT_MAX: usize = 200;

/// Stored in the delivery log externally tagged (`{"push": {...}}`): an internally
/// tagged enum is read through serde's buffered `Content`, which costs the Worker
/// several KiB of code for nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GithubEvent {
    Ping {
        hook_id: Option<u64>,
    },
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    WorkflowRun(WorkflowRunEvent),
    /// Any other event or action: recorded, not acted on.
    Other {
        event: String,
        action: Option<String>,
        repository: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushEvent {
    pub repository: RepoFullName,
    /// `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    pub before: CommitSha,
    pub after: CommitSha,
    pub created: bool,
    pub deleted: bool,
    pub forced: bool,
    pub commits: Vec<PushCommit>,
    pub pusher: Option<String>,
    pub installation_id: Option<u64>,
}

impl PushEvent {
    /// The branch name when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// Whether the webhook's commit list may be incomplete.
    pub fn commits_capped(&self) -> bool {
        self.commits.len() >= PUSH_COMMITS_CAP
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCommit {
    pub id: CommitSha,
    /// The first line of the message, cut to [`COMMIT_SUBJECT_MAX`].
    pub subject: String,
    pub author: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub repository: RepoFullName,
    pub number: u64,
    pub node_id: String,
    pub html_url: String,
    pub title: String,
    pub head_ref: String,
    pub head_sha: CommitSha,
    /// The repository the head branch lives in; another one means a fork.
    pub head_repository: Option<RepoFullName>,
    pub base_ref: String,
    pub draft: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<CommitSha>,
    pub installation_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRunEvent {
    pub action: String,
    pub repository: RepoFullName,
    pub id: u64,
    pub name: Option<String>,
    pub path: Option<String>,
    pub head_sha: CommitSha,
    pub head_branch: Option<String>,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub html_url: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub installation_id: Option<u64>,
}

impl GithubEvent {
    /// (event, action, repository) for the delivery log.
    pub fn summary(&self) -> (&str, Option<&str>, Option<&str>) {
        match self {
            GithubEvent::Ping { .. } => ("ping", None, None),
            GithubEvent::Push(p) => ("push", None, Some(p.repository.as_str())),
            GithubEvent::PullRequest(p) => {
                ("pull_request", Some(&p.action), Some(p.repository.as_str()))
            }
            GithubEvent::WorkflowRun(w) => {
                ("workflow_run", Some(&w.action), Some(w.repository.as_str()))
            }
            GithubEvent::Other {
                event,
                action,
                repository,
            } => (event, action.as_deref(), repository.as_deref()),
        }
    }
}

// GitHub's JSON, as much of it as we read.
#[derive(Deserialize)]
struct RawRepo {
    full_name: String,
}

#[derive(Deserialize)]
struct RawInstallation {
    id: u64,
}

#[derive(Deserialize)]
struct RawPush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    repository: RawRepo,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<RawCommit>,
    pusher: Option<RawPusher>,
    installation: Option<RawInstallation>,
}

#[derive(Deserialize)]
struct RawPusher {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawCommit {
    id: String,
    #[serde(default)]
    message: String,
    timestamp: Option<String>,
    author: Option<RawAuthor>,
}

#[derive(Deserialize)]
struct RawAuthor {
    name: Option<String>,
    email: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct RawPullRequestEvent {
    action: String,
    number: u64,
    pull_request: RawPullRequest,
    repository: RawRepo,
    installation: Option<RawInstallation>,
}

#[derive(Deserialize)]
struct RawPullRequest {
    node_id: String,
    html_url: String,
    #[serde(default)]
    title: String,
    head: RawBranch,
    base: RawBranch,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged: bool,
    merge_commit_sha: Option<String>,
}

#[derive(Deserialize)]
struct RawBranch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<RawRepo>,
}

#[derive(Deserialize)]
struct RawWorkflowRunEvent {
    action: String,
    workflow_run: RawWorkflowRun,
    repository: RawRepo,
    installation: Option<RawInstallation>,
}

#[derive(Deserialize)]
struct RawWorkflowRun {
    id: u64,
    name: Option<String>,
    path: Option<String>,
    head_sha: String,
    head_branch: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    html_url: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct RawAny {
    action: Option<String>,
    repository: Option<RawRepo>,
    hook_id: Option<u64>,
}

fn bad(event: &str, what: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("{event} payload: {what}"))
}

fn repo(event: &str, r: RawRepo) -> Result<RepoFullName, ApiError> {
    RepoFullName::parse(&r.full_name)
        .ok_or_else(|| bad(event, "repository.full_name is not owner/repo"))
}

fn sha(event: &str, field: &str, s: &str) -> Result<CommitSha, ApiError> {
    CommitSha::parse(s).ok_or_else(|| bad(event, format!("{field} is not a commit sha")))
}

/// The first line of a commit message, cut to [`COMMIT_SUBJECT_MAX`].
pub fn subject(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    if first.chars().count() > COMMIT_SUBJECT_MAX {
        first
            .chars()
            .take(COMMIT_SUBJECT_MAX - 1)
            .collect::<String>()
            + "…"
    } else {
        first.to_owned()
    }
}

/// Parses a delivery's body by its `X-GitHub-Event` name.
pub fn parse(event: &str, body: &[u8]) -> Result<GithubEvent, ApiError> {
    let json_err = |e: serde_json::Error| bad(event, e);
    match event {
        "ping" => {
            let raw: RawAny = serde_json::from_slice(body).map_err(json_err)?;
            Ok(GithubEvent::Ping {
                hook_id: raw.hook_id,
            })
        }
        "push" => {
            let raw: RawPush = serde_json::from_slice(body).map_err(json_err)?;
            let commits = raw
                .commits
                .into_iter()
                .map(|c| {
                    Ok(PushCommit {
                        id: sha(event, "commits[].id", &c.id)?,
                        subject: subject(&c.message),
                        author: c.author.and_then(|a| a.username.or(a.email).or(a.name)),
                        timestamp: c.timestamp,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(GithubEvent::Push(PushEvent {
                repository: repo(event, raw.repository)?,
                before: sha(event, "before", &raw.before)?,
                after: sha(event, "after", &raw.after)?,
                git_ref: raw.git_ref,
                created: raw.created,
                deleted: raw.deleted,
                forced: raw.forced,
                commits,
                pusher: raw.pusher.and_then(|p| p.name),
                installation_id: raw.installation.map(|i| i.id),
            }))
        }
        "pull_request" => {
            let raw: RawPullRequestEvent = serde_json::from_slice(body).map_err(json_err)?;
            let pr = raw.pull_request;
            let merge_commit_sha = match pr.merge_commit_sha.as_deref() {
                Some(s) => Some(sha(event, "pull_request.merge_commit_sha", s)?),
                None => None,
            };
            Ok(GithubEvent::PullRequest(PullRequestEvent {
                action: raw.action,
                repository: repo(event, raw.repository)?,
                number: raw.number,
                node_id: pr.node_id,
                html_url: pr.html_url,
                title: pr.title,
                head_sha: sha(event, "pull_request.head.sha", &pr.head.sha)?,
                head_ref: pr.head.git_ref,
                head_repository: pr.head.repo.and_then(|r| RepoFullName::parse(&r.full_name)),
                base_ref: pr.base.git_ref,
                draft: pr.draft,
                merged: pr.merged,
                merge_commit_sha,
                installation_id: raw.installation.map(|i| i.id),
            }))
        }
        "workflow_run" => {
            let raw: RawWorkflowRunEvent = serde_json::from_slice(body).map_err(json_err)?;
            let run = raw.workflow_run;
            Ok(GithubEvent::WorkflowRun(WorkflowRunEvent {
                action: raw.action,
                repository: repo(event, raw.repository)?,
                id: run.id,
                name: run.name,
                path: run.path,
                head_sha: sha(event, "workflow_run.head_sha", &run.head_sha)?,
                head_branch: run.head_branch,
                status: run.status,
                conclusion: run.conclusion,
                html_url: run.html_url,
                created_at: run.created_at,
                updated_at: run.updated_at,
                installation_id: raw.installation.map(|i| i.id),
            }))
        }
        other => {
            // Unused events still have to be JSON objects to be from GitHub.
            let raw: RawAny = serde_json::from_slice(body).map_err(json_err)?;
            Ok(GithubEvent::Other {
                event: other.to_owned(),
                action: raw.action,
                repository: raw.repository.map(|r| r.full_name),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../tests/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn push_to_the_default_branch() {
        let GithubEvent::Push(p) =
            parse("push", &fixture("push.with-new-branch.json")).expect("parses")
        else {
            panic!("not a push")
        };
        assert_eq!(p.repository.as_str(), "Codertocat/Hello-World");
        assert_eq!(p.branch(), Some("master"));
        assert!(p.before.is_zero() && p.created && !p.deleted);
        assert_eq!(p.after.as_str(), "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
        assert_eq!(p.commits.len(), 1);
        assert_eq!(p.commits[0].id, p.after);
        assert_eq!(p.pusher.as_deref(), Some("Codertocat"));
        assert_eq!(p.installation_id, Some(1));
        assert!(!p.commits_capped());
    }

    #[test]
    fn tag_deletion() {
        let GithubEvent::Push(p) =
            parse("push", &fixture("push.tag-deleted.json")).expect("parses")
        else {
            panic!("not a push")
        };
        assert!(p.deleted && p.after.is_zero());
        assert_eq!(p.branch(), None);
        assert!(p.commits.is_empty());
    }

    #[test]
    fn pull_requests() {
        let GithubEvent::PullRequest(pr) =
            parse("pull_request", &fixture("pull_request.opened.json")).expect("parses")
        else {
            panic!("not a PR")
        };
        assert_eq!((pr.action.as_str(), pr.number), ("opened", 2));
        assert_eq!(pr.head_ref, "changes");
        assert_eq!(
            pr.head_sha.as_str(),
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
        );
        assert_eq!(
            pr.head_repository.as_ref().map(RepoFullName::as_str),
            Some("Codertocat/Hello-World")
        );
        assert!(!pr.merged && !pr.draft);
        let GithubEvent::PullRequest(closed) =
            parse("pull_request", &fixture("pull_request.closed.json")).expect("parses")
        else {
            panic!("not a PR")
        };
        assert_eq!(closed.action, "closed");
        assert_eq!(
            closed.merge_commit_sha.as_ref().map(CommitSha::as_str),
            Some("c4295bd74fb0f4fda03689c3df3f2803b658fd85")
        );
    }

    #[test]
    fn workflow_runs() {
        let GithubEvent::WorkflowRun(w) =
            parse("workflow_run", &fixture("workflow_run.completed.json")).expect("parses")
        else {
            panic!("not a run")
        };
        assert_eq!((w.action.as_str(), w.id), ("completed", 289_782_451));
        assert_eq!(
            w.head_sha.as_str(),
            "3484a3fb816e0859fd6e1cea078d76385ff50625"
        );
        assert_eq!(w.path.as_deref(), Some(".github/workflows/test.yml"));
        assert_eq!(w.conclusion.as_deref(), Some("success"));
        assert_eq!(w.repository.as_str(), "octo-org/octo-repo");
    }

    #[test]
    fn ping_and_other_events() {
        assert_eq!(
            parse("ping", &fixture("ping.json")).expect("parses"),
            GithubEvent::Ping {
                hook_id: Some(109_948_940)
            }
        );
        let other = parse("deployment_status", &fixture("deployment_status.json")).expect("parses");
        assert_eq!(
            other.summary(),
            (
                "deployment_status",
                Some("created"),
                Some("Codertocat/Hello-World")
            )
        );
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong() {
        let e = parse("push", br#"{"ref":"refs/heads/x"}"#).expect_err("incomplete");
        assert!(
            e.to_string().starts_with("push payload: missing field"),
            "{e}"
        );
        let e = parse(
            "push",
            br#"{"ref":"refs/heads/x","before":"nope","after":"nope","repository":{"full_name":"a/b"}}"#,
        )
        .expect_err("bad sha");
        assert_eq!(e.to_string(), "push payload: before is not a commit sha");
        assert!(parse("issues", b"[1]").is_err());
    }

    #[test]
    fn stored_form_round_trips() {
        let e = parse("push", &fixture("push.with-new-branch.json")).expect("parses");
        let json = serde_json::to_string(&e).expect("serialises");
        assert!(json.starts_with(r#"{"push":{"#));
        assert_eq!(
            crate::json::from_str::<GithubEvent>(&json).expect("parses"),
            e
        );
    }
}
