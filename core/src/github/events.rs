//! The webhook events the flows act on, parsed from GitHub's JSON into closed types.
//! One small parse function per event; every other event is [`GithubEvent::Other`]
//! (recorded and answered 202, never an error).

use serde::Serialize;
use serde_json::Value;

use super::{CommitSha, RepoFullName};
use crate::json::{self, FromJson, Invalid, Obj, Path};

/// A push webhook lists at most this many commits; a list this long may be cut and
/// the complete one comes from the compare API.
pub const PUSH_COMMITS_CAP: usize = 2048;
/// Commit messages are kept to their first line, at most this many characters, so a
/// stored event stays well under D1's 2 MB row limit even at the commit cap.
pub const COMMIT_SUBJECT_MAX: usize = 200;

/// Stored in the delivery log externally tagged (`{"push": {...}}`): an internally
/// tagged enum is read through serde's buffered `Content`, which costs the Worker
/// several KiB of code for nothing.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
#[serde(rename_all = "snake_case")]
pub enum GithubEvent {
    Ping {
        hook_id: Option<u64>,
    },
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    WorkflowRun(WorkflowRunEvent),
    /// A custom deployment protection rule asks this App to review a run's
    /// deployment.
    DeploymentProtectionRule(ProtectionRuleEvent),
    /// Any other event or action: recorded, not acted on.
    Other {
        event: String,
        action: Option<String>,
        repository: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
pub struct PushCommit {
    pub id: CommitSha,
    /// The first line of the message, cut to [`COMMIT_SUBJECT_MAX`].
    pub subject: String,
    pub author: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
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
    /// `pull_request.updated_at` in epoch milliseconds: the order of a pull
    /// request's events (deliveries arrive late, or again). `None` in events
    /// recorded before it was kept.
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
pub struct WorkflowRunEvent {
    pub action: String,
    pub repository: RepoFullName,
    pub id: u64,
    pub name: Option<String>,
    pub path: Option<String>,
    /// The id of the run's workflow (a target may name its workflow by id).
    pub workflow_id: Option<u64>,
    pub head_sha: CommitSha,
    pub head_branch: Option<String>,
    pub status: Option<String>,
    pub conclusion: Option<String>,
    pub html_url: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub installation_id: Option<u64>,
}

/// `deployment_protection_rule`: a workflow job of run `run_id` waits to deploy `sha`
/// to `environment` until this App (one of the environment's custom protection rules)
/// approves or rejects it.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
pub struct ProtectionRuleEvent {
    /// `requested`, the one action GitHub sends.
    pub action: String,
    pub repository: RepoFullName,
    /// At most [`ENVIRONMENT_MAX`] characters, no control characters.
    pub environment: String,
    /// What started the run (`push`, `workflow_dispatch`, …).
    pub trigger: Option<String>,
    pub sha: CommitSha,
    /// `refs/heads/main` (or the deployment's `ref`).
    pub git_ref: Option<String>,
    /// The run to review, from `deployment_callback_url`.
    pub run_id: u64,
    /// Who started the run (`sender.login`).
    pub sender: Option<String>,
    pub installation_id: Option<u64>,
}

/// GitHub's limit on an environment's name.
pub const ENVIRONMENT_MAX: usize = 255;

impl ProtectionRuleEvent {
    /// The branch, when the ref is one.
    pub fn branch(&self) -> Option<&str> {
        let r = self.git_ref.as_deref()?;
        Some(r.strip_prefix("refs/heads/").unwrap_or(r)).filter(|b| !b.starts_with("refs/"))
    }
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
            GithubEvent::DeploymentProtectionRule(r) => (
                "deployment_protection_rule",
                Some(&r.action),
                Some(r.repository.as_str()),
            ),
            GithubEvent::Other {
                event,
                action,
                repository,
            } => (event, action.as_deref(), repository.as_deref()),
        }
    }
}

// GitHub's JSON, as much of it as we read. Each parser reads every field before it
// checks any name or sha, so a payload missing a field says so first.

/// A push's commit, its id not checked yet.
struct RawCommit {
    id: String,
    message: String,
    timestamp: Option<String>,
    /// `author.username`, else `author.email`, else `author.name`.
    author: Option<String>,
}

/// Hand-written, as are the readers below: GitHub's webhook payloads differ from our
/// event types (nested objects, fallbacks between fields, checks after reading).
impl FromJson for RawCommit {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let author = match o.opt_obj("author")? {
            Some(a) => {
                let name: Option<String> = a.opt("name")?;
                let email: Option<String> = a.opt("email")?;
                let username: Option<String> = a.opt("username")?;
                username.or(email).or(name)
            }
            None => None,
        };
        Ok(RawCommit {
            id: o.req("id")?,
            message: o.or_default("message")?,
            timestamp: o.opt("timestamp")?,
            author,
        })
    }
}

/// `repository.full_name`.
fn full_name(o: &Obj<'_>) -> Result<String, Invalid> {
    o.obj("repository")?.req("full_name")
}

/// `installation.id`, when there is an installation.
fn installation(o: &Obj<'_>) -> Result<Option<u64>, Invalid> {
    o.opt_obj("installation")?.map(|i| i.req("id")).transpose()
}

/// A webhook body that is not the event its `X-GitHub-Event` names (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPayload(pub String);

fn bad(event: &str, what: impl std::fmt::Display) -> BadPayload {
    BadPayload(format!("{event} payload: {what}"))
}

/// A check on a read value fails without a path: its message names the field.
fn repo(full_name: &str) -> Result<RepoFullName, Invalid> {
    RepoFullName::parse(full_name)
        .ok_or_else(|| Invalid::at(Path::Root, "repository.full_name is not owner/repo"))
}

fn sha(field: &str, s: &str) -> Result<CommitSha, Invalid> {
    CommitSha::parse(s)
        .ok_or_else(|| Invalid::at(Path::Root, format!("{field} is not a commit sha")))
}

/// The first line of a commit message, cut to [`COMMIT_SUBJECT_MAX`].
pub fn subject(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    crate::text::cut(first, COMMIT_SUBJECT_MAX)
}

/// Parses a delivery's body by its `X-GitHub-Event` name.
pub fn parse(event: &str, body: &[u8]) -> Result<GithubEvent, BadPayload> {
    let v: Value = json::read_slice(body).map_err(|e| bad(event, e))?;
    // Every event, even one not acted on, has to be a JSON object to be from GitHub.
    Obj::new(&v, Path::Root)
        .and_then(|o| match event {
            "ping" => ping(o),
            "push" => push(o),
            "pull_request" => pull_request(o),
            "workflow_run" => workflow_run(o),
            "deployment_protection_rule" => protection_rule(o),
            other => other_event(other, o),
        })
        .map_err(|e| bad(event, e))
}

/// What every event carries: `action`, `repository.full_name` and (a ping's) `hook_id`.
type Common = (Option<String>, Option<String>, Option<u64>);

fn common(o: Obj<'_>) -> Result<Common, Invalid> {
    let repository = o
        .opt_obj("repository")?
        .map(|r| r.req("full_name"))
        .transpose()?;
    Ok((o.opt("action")?, repository, o.opt("hook_id")?))
}

fn ping(o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let (_, _, hook_id) = common(o)?;
    Ok(GithubEvent::Ping { hook_id })
}

fn other_event(event: &str, o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let (action, repository, _) = common(o)?;
    Ok(GithubEvent::Other {
        event: event.to_owned(),
        action,
        repository,
    })
}

fn push(o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let git_ref: String = o.req("ref")?;
    let before: String = o.req("before")?;
    let after: String = o.req("after")?;
    let repository = full_name(&o)?;
    let created = o.or_default("created")?;
    let deleted = o.or_default("deleted")?;
    let forced = o.or_default("forced")?;
    let raw_commits: Vec<RawCommit> = o.or_default("commits")?;
    let pusher = match o.opt_obj("pusher")? {
        Some(p) => p.opt("name")?,
        None => None,
    };
    let installation_id = installation(&o)?;
    let commits = raw_commits
        .into_iter()
        .map(|c| {
            Ok(PushCommit {
                id: sha("commits[].id", &c.id)?,
                subject: subject(&c.message),
                author: c.author,
                timestamp: c.timestamp,
            })
        })
        .collect::<Result<Vec<_>, Invalid>>()?;
    Ok(GithubEvent::Push(PushEvent {
        repository: repo(&repository)?,
        before: sha("before", &before)?,
        after: sha("after", &after)?,
        git_ref,
        created,
        deleted,
        forced,
        commits,
        pusher,
        installation_id,
    }))
}

fn pull_request(o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let action = o.req("action")?;
    let number = o.req("number")?;
    let pr = o.obj("pull_request")?;
    let node_id = pr.req("node_id")?;
    let html_url = pr.req("html_url")?;
    let title = pr.or_default("title")?;
    let head = pr.obj("head")?;
    let head_ref = head.req("ref")?;
    let head_sha: String = head.req("sha")?;
    let head_repository: Option<String> = head
        .opt_obj("repo")?
        .map(|r| r.req("full_name"))
        .transpose()?;
    let base = pr.obj("base")?;
    let base_ref = base.req("ref")?;
    // Read for its shape only, as the head's are.
    base.req::<String>("sha")?;
    base.opt_obj("repo")?
        .map(|r| r.req::<String>("full_name"))
        .transpose()?;
    let draft = pr.or_default("draft")?;
    let merged = pr.or_default("merged")?;
    let merge_commit_sha: Option<String> = pr.opt("merge_commit_sha")?;
    let updated_at = match pr.opt::<String>("updated_at")? {
        Some(at) => Some(
            crate::time::Timestamp::parse_rfc3339(&at)
                .ok_or_else(|| {
                    Invalid::at(
                        Path::Root,
                        "pull_request.updated_at is not an RFC 3339 date-time",
                    )
                })?
                .millis(),
        ),
        None => None,
    };
    let repository = full_name(&o)?;
    let installation_id = installation(&o)?;
    let merge_commit_sha = match merge_commit_sha.as_deref() {
        Some(s) => Some(sha("pull_request.merge_commit_sha", s)?),
        None => None,
    };
    Ok(GithubEvent::PullRequest(PullRequestEvent {
        action,
        repository: repo(&repository)?,
        number,
        node_id,
        html_url,
        title,
        head_sha: sha("pull_request.head.sha", &head_sha)?,
        head_ref,
        head_repository: head_repository.and_then(|r| RepoFullName::parse(&r)),
        base_ref,
        draft,
        merged,
        merge_commit_sha,
        installation_id,
        updated_at,
    }))
}

fn workflow_run(o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let action = o.req("action")?;
    let run = o.obj("workflow_run")?;
    let id = run.req("id")?;
    let name = run.opt("name")?;
    let path = run.opt("path")?;
    let workflow_id = run.opt("workflow_id")?;
    let head_sha: String = run.req("head_sha")?;
    let head_branch = run.opt("head_branch")?;
    let status = run.opt("status")?;
    let conclusion = run.opt("conclusion")?;
    let html_url = run.opt("html_url")?;
    let created_at = run.opt("created_at")?;
    let updated_at = run.opt("updated_at")?;
    let repository = full_name(&o)?;
    let installation_id = installation(&o)?;
    Ok(GithubEvent::WorkflowRun(WorkflowRunEvent {
        action,
        repository: repo(&repository)?,
        id,
        name,
        path,
        workflow_id,
        head_sha: sha("workflow_run.head_sha", &head_sha)?,
        head_branch,
        status,
        conclusion,
        html_url,
        created_at,
        updated_at,
        installation_id,
    }))
}

/// The run id in a `deployment_callback_url`, which ends in
/// `/repos/{repository}/actions/runs/{run_id}/deployment_protection_rule` (after
/// `/api/v3` on GitHub Enterprise Server). Only the run id is taken: the review goes
/// to `GITHUB_API_BASE`, never to a URL from a payload (with the token).
fn callback_run_id(url: &str, repository: &RepoFullName) -> Option<u64> {
    // The last seven segments, from the end.
    let mut back = url.rsplit('/');
    let mut tail = [""; 7];
    for t in &mut tail {
        *t = back.next()?;
    }
    let ["deployment_protection_rule", run, "runs", "actions", name, owner, "repos"] = tail else {
        return None;
    };
    let (o, r) = repository.as_str().split_once('/')?;
    let digits = !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit());
    (digits && owner.eq_ignore_ascii_case(o) && name.eq_ignore_ascii_case(r))
        .then(|| run.parse().ok())
        .flatten()
}

fn protection_rule(o: Obj<'_>) -> Result<GithubEvent, Invalid> {
    let action = o.req("action")?;
    let environment: String = o.req("environment")?;
    let trigger = o.opt("event")?;
    let top_sha: Option<String> = o.opt("sha")?;
    let top_ref: Option<String> = o.opt("ref")?;
    let callback: String = o.req("deployment_callback_url")?;
    // The deployment's sha and ref stand in for the top-level ones, which GitHub
    // added to the payload later.
    let (deployment_sha, deployment_ref) = match o.opt_obj("deployment")? {
        Some(d) => (d.opt::<String>("sha")?, d.opt::<String>("ref")?),
        None => (None, None),
    };
    let sender: Option<String> = match o.opt_obj("sender")? {
        Some(s) => s.opt("login")?,
        None => None,
    };
    let repository = repo(&full_name(&o)?)?;
    // What is only shown is kept short whatever a payload holds.
    let cut = |s: String, max| crate::text::cut(&s, max);
    let installation_id = installation(&o)?;
    if environment.is_empty()
        || environment.chars().count() > ENVIRONMENT_MAX
        || environment.chars().any(char::is_control)
    {
        return Err(Invalid::at(
            Path::Root,
            format!("environment is not an environment name (1 to {ENVIRONMENT_MAX} characters, no control characters)"),
        ));
    }
    let sha = match top_sha.or(deployment_sha) {
        Some(s) => sha("sha", &s)?,
        None => return Err(Invalid::at(Path::Root, "missing field `sha`")),
    };
    let run_id = callback_run_id(&callback, &repository).ok_or_else(|| {
        Invalid::at(
            Path::Root,
            "deployment_callback_url is not this repository's …/actions/runs/{run_id}/deployment_protection_rule",
        )
    })?;
    Ok(GithubEvent::DeploymentProtectionRule(ProtectionRuleEvent {
        action,
        repository,
        environment,
        trigger: trigger.map(|t: String| cut(t, 64)),
        sha,
        git_ref: top_ref
            .or(deployment_ref)
            .filter(|r| !r.is_empty())
            .map(|r| cut(r, 255)),
        run_id,
        sender: sender.map(|s| cut(s, 64)),
        installation_id,
    }))
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
        let mut bad: serde_json::Value =
            serde_json::from_slice(&fixture("pull_request.opened.json")).expect("JSON");
        bad["pull_request"]["updated_at"] = "yesterday".into();
        let err = parse("pull_request", bad.to_string().as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("pull_request.updated_at"), "{err}");
        let GithubEvent::PullRequest(closed) =
            parse("pull_request", &fixture("pull_request.closed.json")).expect("parses")
        else {
            panic!("not a PR")
        };
        assert_eq!(closed.action, "closed");
        // 2019-05-15T15:21:18Z: what orders the pull request's events.
        assert_eq!(closed.updated_at, Some(1_557_933_678_000));
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
        assert_eq!(w.workflow_id, Some(2_823_525));
        assert_eq!(w.created_at.as_deref(), Some("2020-10-05T16:33:24Z"));
        assert_eq!(w.conclusion.as_deref(), Some("success"));
        assert_eq!(w.repository.as_str(), "octo-org/octo-repo");
    }

    fn protection_payload() -> serde_json::Value {
        serde_json::from_slice(&fixture("deployment_protection_rule.requested.json")).expect("JSON")
    }

    fn protection(payload: &serde_json::Value) -> Result<ProtectionRuleEvent, BadPayload> {
        match parse("deployment_protection_rule", payload.to_string().as_bytes())? {
            GithubEvent::DeploymentProtectionRule(r) => Ok(r),
            other => panic!("not a protection rule: {other:?}"),
        }
    }

    #[test]
    fn a_protection_rule_asks_to_review_one_run_of_one_environment() {
        let GithubEvent::DeploymentProtectionRule(r) = parse(
            "deployment_protection_rule",
            &fixture("deployment_protection_rule.requested.json"),
        )
        .expect("parses") else {
            panic!("not a protection rule")
        };
        assert_eq!(
            r,
            ProtectionRuleEvent {
                action: "requested".into(),
                repository: RepoFullName::parse("octo-org/octo-repo").expect("repo"),
                environment: "production".into(),
                trigger: Some("repository_dispatch".into()),
                sha: CommitSha::parse("3484a3fb816e0859fd6e1cea078d76385ff50625").expect("sha"),
                git_ref: Some("refs/heads/master".into()),
                run_id: 289_782_451,
                sender: Some("Codertocat".into()),
                installation_id: Some(12_345_678),
            }
        );
        assert_eq!(r.branch(), Some("master"));
        assert_eq!(
            GithubEvent::DeploymentProtectionRule(r).summary(),
            (
                "deployment_protection_rule",
                Some("requested"),
                Some("octo-org/octo-repo")
            )
        );
    }

    #[test]
    fn an_older_payload_without_sha_and_ref_takes_the_deployments() {
        let mut p = protection_payload();
        let o = p.as_object_mut().expect("object");
        o.remove("sha");
        o.remove("ref");
        p["deployment"]["sha"] = "AB".repeat(20).into();
        let r = protection(&p).expect("parses");
        assert_eq!(r.sha.as_str(), "ab".repeat(20));
        assert_eq!(r.git_ref.as_deref(), Some("master"));
        assert_eq!(r.branch(), Some("master"));
        p.as_object_mut().expect("object").remove("deployment");
        assert_eq!(
            protection(&p).expect_err("no sha at all").to_string(),
            "deployment_protection_rule payload: missing field `sha`"
        );
    }

    #[test]
    fn the_run_comes_from_this_repositorys_callback_url_only() {
        let run = |url: &str| {
            let mut p = protection_payload();
            p["deployment_callback_url"] = url.into();
            protection(&p).map(|r| r.run_id)
        };
        // GitHub Enterprise Server puts the API under /api/v3; the owner's case may differ.
        assert_eq!(
            run("https://ghe.example.com/api/v3/repos/Octo-Org/octo-repo/actions/runs/7/deployment_protection_rule"),
            Ok(7)
        );
        for bad in [
            "https://api.github.com/repos/someone/else/actions/runs/7/deployment_protection_rule",
            "https://api.github.com/repos/octo-org/octo-repo/actions/runs/7",
            "https://api.github.com/repos/octo-org/octo-repo/actions/runs/+7/deployment_protection_rule",
            "https://api.github.com/repos/octo-org/octo-repo/actions/runs//deployment_protection_rule",
            "https://api.github.com/actions/runs/7/deployment_protection_rule",
        ] {
            let e = run(bad).expect_err(bad).to_string();
            assert!(e.contains("deployment_callback_url"), "{bad}: {e}");
        }
        let mut p = protection_payload();
        p.as_object_mut()
            .expect("object")
            .remove("deployment_callback_url");
        assert!(protection(&p)
            .expect_err("no callback")
            .to_string()
            .contains("missing field `deployment_callback_url`"));
    }

    #[test]
    fn an_environment_name_is_checked_and_shown_values_are_cut() {
        for bad in [String::new(), "x".repeat(256), "prod\nuction".into()] {
            let mut p = protection_payload();
            p["environment"] = bad.clone().into();
            let e = protection(&p).expect_err("refused").to_string();
            assert!(
                e.contains("environment is not an environment name"),
                "{bad:?}: {e}"
            );
        }
        let mut p = protection_payload();
        p["environment"] = "ü".repeat(255).into();
        p["sender"]["login"] = "x".repeat(500).into();
        let r = protection(&p).expect("255 characters are fine");
        assert_eq!(r.sender.map(|s| s.chars().count()), Some(64));
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
        assert_eq!(crate::json::read::<GithubEvent>(&json).expect("parses"), e);
    }

    fn round_trip(e: &GithubEvent) {
        let json = serde_json::to_string(e).expect("serialises");
        assert_eq!(
            &json::read::<GithubEvent>(&json).expect("reads"),
            e,
            "{json}"
        );
    }

    #[test]
    fn every_stored_variant_round_trips() {
        let sha = |c: char| CommitSha::parse(&c.to_string().repeat(40)).expect("sha");
        let repo = RepoFullName::parse("octo/app").expect("repo");
        round_trip(&GithubEvent::Ping { hook_id: Some(7) });
        round_trip(&GithubEvent::Ping { hook_id: None });
        round_trip(&GithubEvent::Push(PushEvent {
            repository: repo.clone(),
            git_ref: "refs/heads/main".into(),
            before: sha('a'),
            after: sha('b'),
            created: true,
            deleted: false,
            forced: true,
            commits: vec![
                PushCommit {
                    id: sha('b'),
                    subject: "Fix it".into(),
                    author: Some("octocat".into()),
                    timestamp: Some("2025-01-15T11:00:00Z".into()),
                },
                PushCommit {
                    id: sha('c'),
                    subject: String::new(),
                    author: None,
                    timestamp: None,
                },
            ],
            pusher: Some("octocat".into()),
            installation_id: Some(3),
        }));
        round_trip(&GithubEvent::Push(PushEvent {
            repository: repo.clone(),
            git_ref: "refs/tags/v1".into(),
            before: sha('0'),
            after: sha('d'),
            created: false,
            deleted: false,
            forced: false,
            commits: Vec::new(),
            pusher: None,
            installation_id: None,
        }));
        let pr = PullRequestEvent {
            action: "closed".into(),
            repository: repo.clone(),
            number: 2,
            node_id: "PR_1".into(),
            html_url: "https://github.com/octo/app/pull/2".into(),
            title: "Change".into(),
            head_ref: "changes".into(),
            head_sha: sha('e'),
            head_repository: Some(RepoFullName::parse("fork/app").expect("repo")),
            base_ref: "main".into(),
            draft: true,
            merged: true,
            merge_commit_sha: Some(sha('f')),
            installation_id: Some(4),
            updated_at: Some(1_557_933_678_000),
        };
        round_trip(&GithubEvent::PullRequest(pr.clone()));
        round_trip(&GithubEvent::PullRequest(PullRequestEvent {
            head_repository: None,
            merge_commit_sha: None,
            installation_id: None,
            updated_at: None,
            ..pr
        }));
        let run = WorkflowRunEvent {
            action: "completed".into(),
            repository: repo,
            id: 289_782_451,
            name: Some("Test".into()),
            path: Some(".github/workflows/test.yml".into()),
            workflow_id: Some(2_823_525),
            head_sha: sha('1'),
            head_branch: Some("main".into()),
            status: Some("completed".into()),
            conclusion: Some("success".into()),
            html_url: Some("https://github.com/octo/app/actions/runs/1".into()),
            created_at: Some("2025-01-15T11:00:00Z".into()),
            updated_at: Some("2025-01-15T11:05:00Z".into()),
            installation_id: Some(5),
        };
        round_trip(&GithubEvent::WorkflowRun(run.clone()));
        round_trip(&GithubEvent::WorkflowRun(WorkflowRunEvent {
            name: None,
            path: None,
            workflow_id: None,
            head_branch: None,
            status: None,
            conclusion: None,
            html_url: None,
            created_at: None,
            updated_at: None,
            installation_id: None,
            ..run
        }));
        let rule = ProtectionRuleEvent {
            action: "requested".into(),
            repository: RepoFullName::parse("octo/app").expect("repo"),
            environment: "production".into(),
            trigger: Some("push".into()),
            sha: sha('2'),
            git_ref: Some("refs/heads/main".into()),
            run_id: 9,
            sender: Some("octocat".into()),
            installation_id: Some(6),
        };
        round_trip(&GithubEvent::DeploymentProtectionRule(rule.clone()));
        round_trip(&GithubEvent::DeploymentProtectionRule(
            ProtectionRuleEvent {
                trigger: None,
                git_ref: None,
                sender: None,
                installation_id: None,
                ..rule
            },
        ));
        round_trip(&GithubEvent::Other {
            event: "star".into(),
            action: Some("created".into()),
            repository: Some("octo/app".into()),
        });
        round_trip(&GithubEvent::Other {
            event: "star".into(),
            action: None,
            repository: None,
        });
    }

    #[test]
    fn a_stored_event_of_another_shape_is_refused() {
        let e = |s: &str| {
            json::read::<GithubEvent>(s)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            e(r#"{"star": {}}"#),
            "unknown variant `star`, expected one of `ping`, `push`, `pull_request`, `workflow_run`, \
             `deployment_protection_rule`, `other`"
        );
        assert_eq!(
            e(r#"{"ping": {}, "push": {}}"#),
            "invalid value: map, expected map with a single key"
        );
        assert_eq!(
            e(r#"{"other": {"action": null}}"#),
            "other: missing field `event`"
        );
    }
}
