//! The GitHub REST client the deploy flow uses. Generic over [`Http`]; the base URL
//! comes from config (`GITHUB_API_BASE`), so tests talk to a strict fake.

use serde_json::{json, Value};

use super::events::PushCommit;
use super::{CommitSha, RepoFullName};
use crate::http::{HttpError, HttpRequest, HttpResponse, Method};
use crate::json::{FromJson, Invalid, Obj, Path};
use crate::ports::Http;
use crate::secret::Secret;

/// Default `GITHUB_API_BASE`.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";
/// The REST API version every request pins.
pub const API_VERSION: &str = "2022-11-28";
/// One call may take this long.
pub const REQUEST_TIMEOUT_MS: u32 = 15_000;
/// Pages of the compare API followed at most (100 commits each; a push lists at
/// most 2,048 in its webhook, so 30 pages covers far more than any push).
pub const MAX_COMPARE_PAGES: usize = 30;

/// Where and as whom to call GitHub.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub api_base: String,
    pub token: Secret,
}

/// A failed GitHub call. Boxed ([`GithubFailure`]), as `StoreError` is: it passes up
/// through every `?` of the flows that call GitHub.
#[derive(Clone, PartialEq, Eq)]
pub struct GithubError(Box<GithubFailure>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GithubFailure {
    /// Rate limits, 5xx, network errors: worth retrying.
    #[error("GitHub {0}")]
    Transient(String),
    /// Any other 4xx: GitHub's own message.
    #[error("GitHub {0}")]
    Rejected(String),
}

#[expect(
    non_snake_case,
    reason = "named as the kinds they make, so call sites read GithubError::Rejected(text)"
)]
impl GithubError {
    /// Rate limits, 5xx, network errors: worth retrying.
    pub fn Transient(e: String) -> GithubError {
        GithubError(Box::new(GithubFailure::Transient(e)))
    }

    /// Any other 4xx: GitHub's own message.
    pub fn Rejected(e: String) -> GithubError {
        GithubError(Box::new(GithubFailure::Rejected(e)))
    }
}

impl GithubError {
    pub fn is_transient(&self) -> bool {
        matches!(*self.0, GithubFailure::Transient(_))
    }

    pub fn failure(&self) -> &GithubFailure {
        &self.0
    }

    /// GitHub's refusal, if it refused.
    pub fn rejected(&self) -> Option<&str> {
        match &*self.0 {
            GithubFailure::Rejected(e) => Some(e),
            GithubFailure::Transient(_) => None,
        }
    }
}

// As the kind itself, as when it was not boxed.
crate::boxed::reads_as_its_kind!(GithubError, display);

impl std::error::Error for GithubError {}

pub(crate) fn classify(
    result: Result<HttpResponse, HttpError>,
) -> Result<HttpResponse, GithubError> {
    let resp = result.map_err(|e| GithubError::Transient(e.to_string()))?;
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    let message = crate::json::value(&resp.body)
        .ok()
        .and_then(|v| crate::json::str_at(&v, "/message").map(str::to_owned))
        .unwrap_or_else(|| "no message".into());
    let text = format!("{}: {message}", resp.status);
    let rate_limited = resp.status == 429
        || (resp.status == 403
            && (resp.header("x-ratelimit-remaining") == Some("0")
                || message.to_ascii_lowercase().contains("rate limit")));
    if rate_limited || resp.status >= 500 {
        Err(GithubError::Transient(text))
    } else {
        Err(GithubError::Rejected(text))
    }
}

/// A request to the GitHub API with the headers GitHub asks every client for: the
/// JSON media type, the pinned API version, a User-Agent, and the bearer token (an
/// installation token, a personal token, or the App's JWT).
pub(crate) fn api_request(
    method: Method,
    url: String,
    body: Option<serde_json::Value>,
    bearer: &str,
) -> HttpRequest {
    let mut req = match body {
        Some(b) => HttpRequest::post_json(url, crate::json::text(&b), REQUEST_TIMEOUT_MS),
        None => HttpRequest::get(url, REQUEST_TIMEOUT_MS),
    };
    req.method = method;
    req.header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .header(
            "user-agent",
            concat!("edge-notifier/", env!("CARGO_PKG_VERSION")),
        )
        .header("authorization", format!("Bearer {bearer}"))
}

/// The `rel="next"` URL of a `Link` header, if it is on the configured API's origin
/// (scheme, host and port exactly: a prefix would let `https://api.github.com.evil`
/// or `https://api.github.com@evil` through, and the token with it).
fn next_link(link: Option<&str>, api_base: &str) -> Option<String> {
    let next = link_next(link)?;
    same_origin(&next, api_base).then_some(next)
}

fn same_origin(a: &str, b: &str) -> bool {
    matches!((origin(a), origin(b)), (Some(a), Some(b)) if a == b)
}

/// An http(s) URL's origin as (scheme, host, port), lowercased, with the default
/// port filled in; `None` for anything else, and for an authority with user
/// information or a backslash, which browsers and parsers read differently. Kept
/// by hand, not with the `url` crate: its IDNA tables would add about 90 KiB
/// gzip to the upload for one comparison.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains(['@', '\\']) {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse::<u16>().ok()?)
        }
        _ => (authority, default_port),
    };
    let host = host.to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    valid.then_some((scheme, host, port))
}

fn link_next(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// GitHub's `status` of `compare/{base}...{head}`: how `head` relates to `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareStatus {
    /// `head` has commits `base` has not, and not the other way round.
    Ahead,
    Behind,
    Identical,
    Diverged,
}

impl CompareStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ahead" => CompareStatus::Ahead,
            "behind" => CompareStatus::Behind,
            "identical" => CompareStatus::Identical,
            "diverged" => CompareStatus::Diverged,
            _ => return None,
        })
    }

    /// `behind` or `identical`: a pushed `head` brings nothing newer than the
    /// deployed `base`. A diverged head (a force push) is new work.
    pub fn is_stale(self) -> bool {
        matches!(self, CompareStatus::Behind | CompareStatus::Identical)
    }
}

/// A dispatched workflow's run, as the dispatch answer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchedRun {
    pub id: u64,
    pub html_url: Option<String>,
}

pub struct GithubClient<'a, H> {
    http: &'a H,
    config: &'a GithubConfig,
}

impl<'a, H: Http> GithubClient<'a, H> {
    pub fn new(http: &'a H, config: &'a GithubConfig) -> Self {
        GithubClient { http, config }
    }

    /// The raw answer to a request to `url` (a full URL, such as a `Link` header's
    /// next page), whatever its status: only a network failure is an error. For the
    /// calls where a status such as 404 or 422 is an answer.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: String,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse, GithubError> {
        let req = api_request(method, url, body, self.config.token.expose());
        self.http
            .send(req)
            .await
            .map_err(|e| GithubError::Transient(e.to_string()))
    }

    /// The raw answer to a request to `path` on the configured API.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse, GithubError> {
        let url = format!("{}{path}", self.config.api_base);
        self.send(method, url, body).await
    }

    /// A request to `path` whose answer is a success, classified otherwise.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse, GithubError> {
        classify(Ok(self.raw(method, path, body).await?))
    }

    /// A request whose 404 is an answer (no such branch, file, comment or
    /// environment), not an error.
    pub(crate) async fn call_opt(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<HttpResponse>, GithubError> {
        let resp = self.raw(method, path, body).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        classify(Ok(resp)).map(Some)
    }

    /// The `id` of what an answer describes.
    fn id(resp: &HttpResponse) -> Result<i64, GithubError> {
        crate::json::int_at(&Self::answer(resp)?, "/id")
            .ok_or_else(|| GithubError::Transient("unexpected answer: no id".into()))
    }

    fn json<T: FromJson>(resp: &HttpResponse) -> Result<T, GithubError> {
        crate::json::read(&resp.body)
            .map_err(|e| GithubError::Transient(format!("unexpected answer: {e}")))
    }

    /// An answer looked into by pointer: parsed once, not copied out of a `Value`.
    pub(crate) fn answer(resp: &HttpResponse) -> Result<Value, GithubError> {
        crate::json::value(&resp.body)
            .map_err(|e| GithubError::Transient(format!("unexpected answer: {e}")))
    }

    /// `POST /repos/{repo}/deployments` for `sha`; returns the deployment id.
    pub async fn create_deployment(
        &self,
        repo: &RepoFullName,
        sha: &CommitSha,
        environment: &str,
        description: &str,
    ) -> Result<i64, GithubError> {
        self.deployment(repo, sha, environment, description, false)
            .await
    }

    /// A deployment to a pull request's preview environment: transient, so GitHub
    /// marks it gone once the environment is torn down.
    pub async fn create_preview_deployment(
        &self,
        repo: &RepoFullName,
        sha: &CommitSha,
        environment: &str,
        description: &str,
    ) -> Result<i64, GithubError> {
        self.deployment(repo, sha, environment, description, true)
            .await
    }

    async fn deployment(
        &self,
        repo: &RepoFullName,
        sha: &CommitSha,
        environment: &str,
        description: &str,
        transient: bool,
    ) -> Result<i64, GithubError> {
        let resp = self
            .call(
                Method::Post,
                &format!("/repos/{}/deployments", repo.as_str()),
                Some(json!({
                    "ref": sha.as_str(),
                    "environment": environment,
                    "auto_merge": false,
                    "required_contexts": [],
                    "description": description,
                    "transient_environment": transient,
                    "production_environment": !transient && environment == "production",
                })),
            )
            .await?;
        Self::id(&resp)
    }

    /// The id of the first comment on issue or pull request `number` written by
    /// `author` (our own login) whose body contains `marker` (our hidden tag),
    /// following pagination. Anyone can copy the marker into a comment of their
    /// own; such a comment is not ours and is passed over.
    pub async fn find_comment(
        &self,
        repo: &RepoFullName,
        number: u64,
        marker: &str,
        author: &str,
    ) -> Result<Option<i64>, GithubError> {
        let mut url = format!(
            "{}/repos/{}/issues/{number}/comments?per_page=100",
            self.config.api_base,
            repo.as_str()
        );
        for _ in 0..MAX_COMPARE_PAGES {
            let resp = classify(Ok(self.send(Method::Get, url.clone(), None).await?))?;
            let page = Self::answer(&resp)?;
            let found = page.as_array().into_iter().flatten().find(|c| {
                crate::json::str_at(c, "/user/login")
                    .is_some_and(|login| login.eq_ignore_ascii_case(author))
                    && crate::json::str_at(c, "/body").is_some_and(|b| b.contains(marker))
            });
            if let Some(c) = found {
                return Ok(crate::json::int_at(c, "/id"));
            }
            match next_link(resp.header("link"), &self.config.api_base) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(None)
    }

    /// Adds a comment to issue or pull request `number`; returns its id.
    pub async fn create_comment(
        &self,
        repo: &RepoFullName,
        number: u64,
        body: &str,
    ) -> Result<i64, GithubError> {
        let resp = self
            .call(
                Method::Post,
                &format!("/repos/{}/issues/{number}/comments", repo.as_str()),
                Some(json!({ "body": body })),
            )
            .await?;
        Self::id(&resp)
    }

    /// Replaces a comment's body; `false` when the comment is gone (deleted by
    /// someone), so the caller can add a new one.
    pub async fn update_comment(
        &self,
        repo: &RepoFullName,
        comment_id: i64,
        body: &str,
    ) -> Result<bool, GithubError> {
        self.call_opt(
            Method::Patch,
            &format!("/repos/{}/issues/comments/{comment_id}", repo.as_str()),
            Some(json!({ "body": body })),
        )
        .await
        .map(|found| found.is_some())
    }

    /// `DELETE /repos/{repo}/environments/{name}`; an environment already gone is
    /// fine.
    pub async fn delete_environment(
        &self,
        repo: &RepoFullName,
        name: &str,
    ) -> Result<(), GithubError> {
        self.call_opt(
            Method::Delete,
            &format!("/repos/{}/environments/{name}", repo.as_str()),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /repos/{repo}/deployments/{id}/statuses`.
    pub async fn deployment_status(
        &self,
        repo: &RepoFullName,
        deployment_id: i64,
        state: &str,
        description: &str,
        environment_url: Option<&str>,
        log_url: Option<&str>,
    ) -> Result<(), GithubError> {
        let mut body = json!({ "state": state, "description": description });
        if let Some(u) = environment_url {
            body["environment_url"] = u.into();
        }
        if let Some(u) = log_url {
            body["log_url"] = u.into();
        }
        self.call(
            Method::Post,
            &format!(
                "/repos/{}/deployments/{deployment_id}/statuses",
                repo.as_str()
            ),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `POST /repos/{repo}/actions/workflows/{workflow}/dispatches` asking for the
    /// run's details; returns the run when GitHub gives one.
    pub async fn dispatch_workflow(
        &self,
        repo: &RepoFullName,
        workflow: &str,
        git_ref: &str,
        inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<DispatchedRun>, GithubError> {
        let resp = self
            .call(
                Method::Post,
                &format!(
                    "/repos/{}/actions/workflows/{workflow}/dispatches",
                    repo.as_str()
                ),
                Some(json!({ "ref": git_ref, "inputs": inputs, "return_run_details": true })),
            )
            .await?;
        if resp.status == 204 || resp.body.trim().is_empty() {
            return Ok(None);
        }
        let answer = Self::answer(&resp)?;
        Ok(answer
            .get("workflow_run_id")
            .and_then(serde_json::Value::as_u64)
            .map(|id| DispatchedRun {
                id,
                html_url: crate::json::str_at(&answer, "/html_url").map(str::to_owned),
            }))
    }

    /// Every commit between `base` and `head` (`GET /repos/{repo}/compare/{base}...{head}`,
    /// following pagination), for pushes whose webhook list is at its cap.
    pub async fn compare_commits(
        &self,
        repo: &RepoFullName,
        base: &CommitSha,
        head: &CommitSha,
    ) -> Result<Vec<PushCommit>, GithubError> {
        let mut url = format!(
            "{}/repos/{}/compare/{}...{}?per_page=100",
            self.config.api_base,
            repo.as_str(),
            base.as_str(),
            head.as_str()
        );
        let mut commits = Vec::new();
        for _ in 0..MAX_COMPARE_PAGES {
            let resp = classify(Ok(self.send(Method::Get, url.clone(), None).await?))?;
            let page: ComparePage = Self::json(&resp)?;
            for c in page.commits {
                let id = CommitSha::parse(&c.sha).ok_or_else(|| {
                    GithubError::Transient(format!("compare: {:?} is not a sha", c.sha))
                })?;
                commits.push(PushCommit {
                    id,
                    subject: super::events::subject(&c.message),
                    author: c.login.or(c.email),
                    timestamp: c.date,
                });
            }
            match next_link(resp.header("link"), &self.config.api_base) {
                Some(next) => url = next,
                None => return Ok(commits),
            }
        }
        Err(GithubError::Rejected(format!(
            "compare: more than {MAX_COMPARE_PAGES} pages"
        )))
    }

    /// How `head` relates to `base` (`GET /repos/{repo}/compare/{base}...{head}`,
    /// its `status`): whether a pushed commit is newer than the deployed one.
    pub async fn compare_status(
        &self,
        repo: &RepoFullName,
        base: &CommitSha,
        head: &CommitSha,
    ) -> Result<CompareStatus, GithubError> {
        let resp = self
            .call(
                Method::Get,
                &format!(
                    "/repos/{}/compare/{}...{}?per_page=1",
                    repo.as_str(),
                    base.as_str(),
                    head.as_str()
                ),
                None,
            )
            .await?;
        let answer = Self::answer(&resp)?;
        let status = crate::json::str_at(&answer, "/status").unwrap_or_default();
        CompareStatus::parse(status).ok_or_else(|| {
            GithubError::Transient(format!("unexpected answer: compare status {status:?}"))
        })
    }

    /// Whether `sha` is a merge: a commit with several parents, or one GitHub
    /// associates with a merged pull request.
    pub async fn is_merge(
        &self,
        repo: &RepoFullName,
        sha: &CommitSha,
    ) -> Result<bool, GithubError> {
        let resp = self
            .call(
                Method::Get,
                &format!("/repos/{}/commits/{}", repo.as_str(), sha.as_str()),
                None,
            )
            .await?;
        let commit = Self::answer(&resp)?;
        if commit
            .get("parents")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|p| p.len() > 1)
        {
            return Ok(true);
        }
        let resp = self
            .call(
                Method::Get,
                &format!("/repos/{}/commits/{}/pulls", repo.as_str(), sha.as_str()),
                None,
            )
            .await?;
        let pulls = Self::answer(&resp)?;
        Ok(pulls
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| crate::json::str_at(p, "/merged_at").is_some()))
    }
}

/// A page of the compare API: its `commits`, as much of each as we read. Every
/// commit is read before any sha is checked.
#[derive(FromJson)]
struct ComparePage {
    commits: Vec<CompareCommit>,
}

struct CompareCommit {
    sha: String,
    /// `commit.message`.
    message: String,
    /// `author.login`: the GitHub account, when GitHub knows it.
    login: Option<String>,
    /// `commit.author.email` and `commit.author.date`.
    email: Option<String>,
    date: Option<String>,
}

/// Hand-written: the fields we keep are spread over nested objects
/// (`commit.message`, `commit.author.email`, `author.login`).
impl FromJson for CompareCommit {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let sha = o.req("sha")?;
        let commit = o.obj("commit")?;
        let message = commit.req("message")?;
        let (email, date) = match commit.opt_obj("author")? {
            Some(a) => (a.opt("email")?, a.opt("date")?),
            None => (None, None),
        };
        let login = o.opt_obj("author")?.map(|a| a.req("login")).transpose()?;
        Ok(CompareCommit {
            sha,
            message,
            login,
            email,
            date,
        })
    }
}

#[cfg(test)]
mod tests;
