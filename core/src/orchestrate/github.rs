//! The GitHub calls the orchestration steps make, each safe to repeat: a retried
//! `open_pr` finds the PR or the branch an earlier attempt made and goes on from
//! there.
//!
//! A PR's branch is made from the default branch's head, then each file change is
//! written to it through the contents API. Every change reads the file on the
//! branch first and is skipped when it is there already, so a retry after any
//! failure finishes the branch without writing anything twice.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::definition::{FileChange, MergeMethod};
use super::store::{PullRequest, WorkflowRun};
use crate::github::client::{classify, GithubClient, GithubError};
use crate::github::RepoFullName;
use crate::http::{HttpResponse, Method};
use crate::json::{FromJson, Invalid, Obj, Path};
use crate::ports::Http;

/// What `enable_auto_merge` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMerge {
    Enabled,
    /// GitHub refuses auto-merge on a PR with nothing left to wait for ("clean
    /// status"); it was merged right away instead.
    MergedNow,
    AlreadyMerged,
}

/// A PR as the REST API answers it (`head`, `base`), not as a step stores it.
struct RestPull(PullRequest);

/// Hand-written: GitHub's pull request nests what we keep (`head.sha`, `head.ref`,
/// `base.ref`).
impl FromJson for RestPull {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let head = o.obj("head")?;
        let base = o.obj("base")?;
        Ok(RestPull(PullRequest {
            number: o.req("number")?,
            node_id: o.req("node_id")?,
            sha: Some(head.req("sha")?),
            git_ref: Some(head.req("ref")?),
            base: Some(base.req("ref")?),
            html_url: Some(o.req("html_url")?),
        }))
    }
}

fn unexpected(what: &str, e: impl std::fmt::Display) -> GithubError {
    GithubError::Transient(format!("{what}: unexpected answer: {e}"))
}

fn parse<T: FromJson>(what: &str, resp: &HttpResponse) -> Result<T, GithubError> {
    crate::json::read(&resp.body).map_err(|e| unexpected(what, e))
}

/// The answer as a [`Value`], for the few fields read out of it by pointer.
fn answer(what: &str, resp: &HttpResponse) -> Result<Value, GithubError> {
    crate::json::value(&resp.body).map_err(|e| unexpected(what, e))
}

/// The orchestration steps' calls, on the one GitHub client.
impl<H: Http> GithubClient<'_, H> {
    pub async fn default_branch(&self, repo: &RepoFullName) -> Result<String, GithubError> {
        let resp = self
            .call(Method::Get, &format!("/repos/{}", repo.as_str()), None)
            .await?;
        let answer = answer("repository", &resp)?;
        crate::json::str_at(&answer, "/default_branch")
            .map(str::to_owned)
            .ok_or_else(|| GithubError::Transient("repository: no default_branch".into()))
    }

    /// The open PR whose head is `branch`, if any.
    async fn open_pr_for(
        &self,
        repo: &RepoFullName,
        branch: &str,
    ) -> Result<Option<PullRequest>, GithubError> {
        let owner = repo.as_str().split('/').next().unwrap_or_default();
        let resp = self
            .call(
                Method::Get,
                &format!(
                    "/repos/{}/pulls?head={owner}:{branch}&state=open&per_page=1",
                    repo.as_str()
                ),
                None,
            )
            .await?;
        Ok(parse::<Vec<RestPull>>("pulls", &resp)?
            .into_iter()
            .next()
            .map(|p| p.0))
    }

    /// The text and blob sha of a file at `at`, or `None` when it does not exist.
    async fn file(
        &self,
        repo: &RepoFullName,
        path: &str,
        at: &str,
    ) -> Result<Option<(String, String)>, GithubError> {
        let Some(resp) = self
            .call_opt(
                Method::Get,
                &format!("/repos/{}/contents/{path}?ref={at}", repo.as_str()),
                None,
            )
            .await?
        else {
            return Ok(None);
        };
        let c = answer("contents", &resp)?;
        let blob = crate::json::str_at(&c, "/sha")
            .unwrap_or_default()
            .to_owned();
        if crate::json::str_at(&c, "/encoding") != Some("base64") {
            // Files over 1 MB come without content; ours are small config files.
            return Err(GithubError::Rejected(format!(
                "{path} in {} is too large to edit",
                repo.as_str()
            )));
        }
        let b64: String = crate::json::str_at(&c, "/content")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| GithubError::Transient(format!("contents of {path}: {e}")))?;
        String::from_utf8(bytes)
            .map(|text| Some((text, blob)))
            .map_err(|_| GithubError::Rejected(format!("{path} is not UTF-8 text")))
    }

    /// Opens the PR for `branch` with `files` changed, reusing what an earlier
    /// attempt made: an open PR for the branch, or the branch itself.
    pub async fn open_pr(
        &self,
        repo: &RepoFullName,
        branch: &str,
        title: &str,
        body: &str,
        files: &[FileChange],
    ) -> Result<PullRequest, GithubError> {
        let r = repo.as_str();
        let base = self.default_branch(repo).await?;
        if let Some(pr) = self.open_pr_for(repo, branch).await? {
            return Ok(pr);
        }
        self.write_branch(repo, &base, branch, title, files).await?;
        let resp = self
            .raw(
                Method::Post,
                &format!("/repos/{r}/pulls"),
                Some(json!({ "title": title, "head": branch, "base": base, "body": body })),
            )
            .await?;
        if resp.status == 422 {
            // "A pull request already exists": a concurrent attempt opened it.
            if let Some(pr) = self.open_pr_for(repo, branch).await? {
                return Ok(pr);
            }
            return Err(GithubError::Rejected(format!(
                "opening the PR in {r}: 422: {}",
                resp.body.chars().take(300).collect::<String>()
            )));
        }
        let resp = classify(Ok(resp))?;
        Ok(parse::<RestPull>("pull", &resp)?.0)
    }

    /// Makes `branch` from `base`'s head unless it exists, then writes each change
    /// to it (contents API), skipping what is there already.
    async fn write_branch(
        &self,
        repo: &RepoFullName,
        base: &str,
        branch: &str,
        message: &str,
        files: &[FileChange],
    ) -> Result<(), GithubError> {
        let r = repo.as_str();
        if self
            .call_opt(Method::Get, &format!("/repos/{r}/branches/{branch}"), None)
            .await?
            .is_none()
        {
            let resp = self
                .call(Method::Get, &format!("/repos/{r}/branches/{base}"), None)
                .await?;
            let head = answer("branch", &resp)?;
            let head = crate::json::str_at(&head, "/commit/sha")
                .ok_or_else(|| GithubError::Transient(format!("branch {base}: no commit")))?;
            let resp = self
                .raw(
                    Method::Post,
                    &format!("/repos/{r}/git/refs"),
                    Some(json!({ "ref": format!("refs/heads/{branch}"), "sha": head })),
                )
                .await?;
            // "Reference already exists": a concurrent attempt made it.
            if !(resp.status == 422 && resp.body.contains("already exists")) {
                classify(Ok(resp))?;
            }
        }
        for change in files {
            let path = change.path();
            let current = self.file(repo, path, branch).await?;
            let next = change
                .apply(current.as_ref().map(|(text, _)| text.as_str()))
                .map_err(|e| GithubError::Rejected(format!("{e} in {r}")))?;
            let Some(next) = next else {
                continue;
            };
            let mut body = json!({
                "message": format!("{message}: {path}"),
                "content": STANDARD.encode(next),
                "branch": branch,
            });
            if let Some((_, sha)) = current {
                body["sha"] = sha.into();
            }
            self.call(
                Method::Put,
                &format!("/repos/{r}/contents/{path}"),
                Some(body),
            )
            .await?;
        }
        Ok(())
    }

    /// Enables auto-merge on a PR (by its node id) with GraphQL.
    pub async fn enable_auto_merge(
        &self,
        node_id: &str,
        method: MergeMethod,
    ) -> Result<AutoMerge, GithubError> {
        const ENABLE: &str = "mutation($id: ID!, $method: PullRequestMergeMethod!) { \
            enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) { clientMutationId } }";
        const MERGE: &str = "mutation($id: ID!, $method: PullRequestMergeMethod!) { \
            mergePullRequest(input: {pullRequestId: $id, mergeMethod: $method}) { clientMutationId } }";
        let vars = json!({ "id": node_id, "method": method.graphql() });
        match self.graphql(ENABLE, &vars).await {
            Ok(()) => Ok(AutoMerge::Enabled),
            Err(e) if e.rejected().is_some_and(|e| e.contains("clean status")) => {
                self.graphql(MERGE, &vars).await?;
                Ok(AutoMerge::MergedNow)
            }
            Err(e) if e.rejected().is_some_and(|e| e.contains("already merged")) => {
                Ok(AutoMerge::AlreadyMerged)
            }
            Err(e) => Err(e),
        }
    }

    /// A GraphQL mutation; its `errors` (GraphQL answers 200 with them) are
    /// rejections, except rate limits.
    async fn graphql(&self, query: &str, variables: &serde_json::Value) -> Result<(), GithubError> {
        let resp = self
            .call(
                Method::Post,
                "/graphql",
                Some(json!({ "query": query, "variables": variables })),
            )
            .await?;
        let answer = answer("graphql", &resp)?;
        let errors = answer
            .get("errors")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if errors.is_empty() {
            return Ok(());
        }
        let text = errors
            .iter()
            .map(|e| crate::json::str_at(e, "/message").unwrap_or("no message"))
            .collect::<Vec<_>>()
            .join("; ");
        if errors
            .iter()
            .any(|e| crate::json::str_at(e, "/type") == Some("RATE_LIMITED"))
        {
            Err(GithubError::Transient(format!("GraphQL: {text}")))
        } else {
            Err(GithubError::Rejected(format!("GraphQL: {text}")))
        }
    }

    /// `workflow_dispatch` of `workflow` (a file name) on `git_ref`; the run when
    /// GitHub reports it.
    pub async fn dispatch(
        &self,
        repo: &RepoFullName,
        workflow: &str,
        git_ref: &str,
        inputs: &BTreeMap<String, String>,
    ) -> Result<Option<WorkflowRun>, GithubError> {
        let inputs =
            crate::maps::object(inputs.iter().map(|(k, v)| (k.clone(), v.as_str().into())));
        let run = self
            .dispatch_workflow(repo, workflow, git_ref, &inputs)
            .await?;
        Ok(run.map(|run| WorkflowRun {
            name: None,
            id: run.id,
            html_url: run.html_url,
            created_at: None,
            updated_at: None,
            path: Some(format!(".github/workflows/{workflow}")),
            conclusion: None,
        }))
    }
}
