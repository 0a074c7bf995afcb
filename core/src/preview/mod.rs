//! Preview environments: a running copy of an app on Fly.io for each open pull
//! request, announced in one PR comment that stays current, torn down on close or
//! expiry.
//!
//! The row in `previews` says what the latest event wants and what exists. The pure
//! [`plan`] compares the two and names one [`Action`]; [`flow`] performs it and
//! settles the row. Every step is safe to repeat, so a retried or duplicated
//! message, or a run interrupted half-way, converges on the same state.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::github::{CommitSha, RepoFullName};
use crate::json::{FromJson, Invalid, Names, Path};
use crate::time::Timestamp;

pub mod flow;
pub mod store;

pub use flow::{on_pull_request as on_event, run as run_step};

/// A transient failure is tried this many times before the preview is marked failed.
pub const MAX_ATTEMPTS: i64 = 5;
/// A reconcile run that held a row this long died.
pub const CLAIM_STALE_SECONDS: i64 = 180;
/// Fly app names are DNS labels.
pub const FLY_NAME_MAX: usize = 63;
/// Hex digits of the digest that keeps cut Fly app names apart.
const FLY_NAME_DIGEST_CHARS: usize = 8;

fn yes() -> bool {
    true
}
fn default_port() -> u16 {
    8080
}
fn default_app_name() -> String {
    "{app}-pr-{pr}".into()
}
fn default_ttl() -> u32 {
    72
}
fn default_max() -> u32 {
    5
}

/// An app's `preview` settings.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
pub struct PreviewSettings {
    /// On unless set to false (the block is there to be used).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The Fly organization slug the preview apps are created in.
    pub org: String,
    /// The image; `{sha}`, `{branch}` and `{pr}` are filled in.
    pub image: String,
    /// Fly region; Fly picks one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The port the app listens on; Fly serves it on 443.
    #[serde(default = "default_port")]
    pub internal_port: u16,
    /// Plain environment variables (app secrets are added, and win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The Fly app's name; `{app}`, `{pr}` and `{branch}` are filled in, then the
    /// result is made a valid Fly name.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// A preview without a new deploy for this long is destroyed.
    #[serde(default = "default_ttl")]
    pub ttl_hours: u32,
    /// Live previews per app; more wait, queued.
    #[serde(default = "default_max")]
    pub max_concurrent: u32,
    #[serde(default)]
    pub skip_drafts: bool,
    /// Whether pull requests from forks are deployed (their code gets the secrets).
    #[serde(default)]
    pub allow_forks: bool,
    /// What the machine's `GITHUB_TOKEN` may do beyond reading the PR's repository
    /// (GitHub App only; see [`PreviewSettings::token_permissions`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[json(with = "github_permissions")]
    pub github_permissions: BTreeMap<Permission, Access>,
}

/// A permission a preview machine's GitHub token may be given. Nothing else is:
/// not administration, workflows, secrets, members or anything GitHub adds later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Names)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Contents,
    PullRequests,
    Statuses,
    Checks,
}

/// How far a [`Permission`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Names)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

/// `preview.github_permissions`: keys from the allowlist only, each `read` or
/// `write`; anything else is refused naming the key.
fn github_permissions(v: &Value, at: Path<'_>) -> Result<BTreeMap<Permission, Access>, Invalid> {
    let map = v
        .as_object()
        .ok_or_else(|| crate::json::invalid_type(v, at, "a map"))?;
    crate::maps::try_inserted(map.iter().map(|(k, level)| {
            let here = Path::Key(&at, k);
            let permission = <Permission as crate::json::Names>::from_name(k).ok_or_else(|| {
                Invalid::at(
                    here,
                    "not a permission a preview may have (allowed: contents, pull_requests, statuses, checks)",
                )
            })?;
            Ok((permission, Access::from_json(level, here)?))
    }))
}

fn placeholders_ok(field: &str, template: &str, allowed: &[&str]) -> Result<(), SettingsError> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(SettingsError(format!("{field} has an unclosed {{")));
        };
        let name = &after[..end];
        if !allowed.contains(&name) {
            return Err(SettingsError(format!(
                "{field}: unknown placeholder {{{name}}} (use {})",
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

fn plain(field: &str, s: &str, max: usize) -> Result<(), SettingsError> {
    if s.is_empty() || s.len() > max || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err(SettingsError(format!(
            "{field} must be 1 to {max} characters without spaces"
        )))
    } else {
        Ok(())
    }
}

/// Preview settings the admin API refuses (a 400); the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl PreviewSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        plain("preview.org", &self.org, 64)?;
        plain("preview.image", &self.image, 512)?;
        placeholders_ok("preview.image", &self.image, &["sha", "branch", "pr"])?;
        plain("preview.app_name", &self.app_name, 128)?;
        placeholders_ok("preview.app_name", &self.app_name, &["app", "pr", "branch"])?;
        // Teardown deletes the Fly app: a name without the PR number could be an
        // app that is not a preview at all (or another PR's).
        if !self.app_name.contains("{pr}") {
            return Err(SettingsError(
                "preview.app_name must contain {pr}, so each pull request gets its own Fly app"
                    .into(),
            ));
        }
        if let Some(r) = &self.region {
            plain("preview.region", r, 16)?;
        }
        if self.internal_port == 0 {
            return Err(SettingsError(
                "preview.internal_port must be 1 to 65535".into(),
            ));
        }
        if !(1..=720).contains(&self.ttl_hours) {
            return Err(SettingsError("preview.ttl_hours must be 1 to 720".into()));
        }
        if !(1..=100).contains(&self.max_concurrent) {
            return Err(SettingsError(
                "preview.max_concurrent must be 1 to 100".into(),
            ));
        }
        if self.env.len() > 100 {
            return Err(SettingsError("preview.env: at most 100 variables".into()));
        }
        for (name, value) in &self.env {
            crate::names::EnvVarName::parse(name).map_err(|_| {
                SettingsError(format!(
                    "preview.env: {name:?} is not a valid variable name"
                ))
            })?;
            if value.len() > 4096 {
                return Err(SettingsError(format!(
                    "preview.env.{name} is longer than 4096 bytes"
                )));
            }
        }
        Ok(())
    }

    /// The permissions of the machine's `GITHUB_TOKEN`: `contents: read`, widened by
    /// `github_permissions` (as GitHub's `access_tokens` body spells them).
    pub fn token_permissions(&self) -> Value {
        let mut all = BTreeMap::new();
        all.insert(Permission::Contents, Access::Read);
        all.extend(&self.github_permissions);
        let map = crate::maps::object(all.into_iter().map(|(p, a)| {
            (
                crate::json::Names::name(p).to_owned(),
                crate::json::Names::name(a).into(),
            )
        }));
        Value::Object(map)
    }

    /// The Fly app for pull request `pr`: the template filled in, lower-cased,
    /// anything outside `[a-z0-9-]` made a dash, at most 63 characters, starting
    /// with a letter (Fly's rules for app names, which are also DNS labels). A name
    /// that has to be cut ends in a short digest of the whole name and the pull
    /// request number, so two long names that share their first 63 characters
    /// still differ.
    pub fn fly_app_name(&self, app: &str, pr: u64, branch: &str) -> String {
        let filled = self
            .app_name
            .replace("{app}", app)
            .replace("{pr}", &pr.to_string())
            .replace("{branch}", branch);
        let mut name = String::with_capacity(filled.len());
        for c in filled.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
                name.push(c);
            }
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            name.insert_str(0, "pr-");
        }
        let name = name.trim_end_matches('-');
        if name.chars().count() <= FLY_NAME_MAX {
            return name.to_owned();
        }
        let tail = format!(
            "-{}-{pr}",
            crate::digest::short_hex(name, FLY_NAME_DIGEST_CHARS)
        );
        let head: String = name
            .chars()
            .take(FLY_NAME_MAX.saturating_sub(tail.len()))
            .collect();
        head.trim_end_matches('-').to_owned() + &tail
    }

    /// Whether this app's Fly names and `other`'s can be the same for some pull
    /// requests: the two templates are filled in for a few pull request numbers
    /// and branch names, every pairing compared. Returns one such name.
    pub fn fly_name_clash(
        &self,
        app: &str,
        other: &PreviewSettings,
        other_app: &str,
    ) -> Option<String> {
        const PRS: [u64; 8] = [1, 2, 3, 10, 12, 21, 100, 123];
        const BRANCHES: [&str; 5] = ["main", "x", "pr", "1", "a-1"];
        let names = |s: &PreviewSettings, app: &str| {
            PRS.iter()
                .flat_map(|&pr| BRANCHES.iter().map(move |&b| (pr, b)))
                .map(|(pr, b)| s.fly_app_name(app, pr, b))
                .collect::<Vec<_>>()
        };
        let mine = names(self, app);
        names(other, other_app)
            .into_iter()
            .find(|n| mine.contains(n))
    }

    /// The image for a deploy of `sha`: `{branch}` is made a valid tag (anything
    /// outside `[A-Za-z0-9_.-]` becomes a dash).
    pub fn image_for(&self, sha: &CommitSha, branch: &str, pr: u64) -> String {
        let tag: String = branch
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.image
            .replace("{sha}", sha.as_str())
            .replace("{branch}", &tag)
            .replace("{pr}", &pr.to_string())
    }
}

/// What the pull request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Wanted {
    Live,
    Closed,
    Expired,
}

/// What exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Recorded, nothing done yet.
    New,
    /// Waiting for a slot.
    Queued,
    /// Holds a slot; the Fly app may exist.
    Deploying,
    Ready,
    /// Cleaned up after a failure; the next push tries again.
    Failed,
    Destroyed,
    /// Not deployed (a draft, or a fork).
    Skipped,
}

impl Status {
    /// Whether a Fly app may exist for it.
    pub fn may_have_fly_app(self) -> bool {
        matches!(self, Status::Deploying | Status::Ready)
    }
}

/// One preview as stored (and as the admin API lists it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    pub id: i64,
    pub app: String,
    pub repository: RepoFullName,
    pub pr_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    pub head_ref: String,
    pub head_sha: CommitSha,
    pub draft: bool,
    pub fork: bool,
    pub wanted: Wanted,
    pub revision: i64,
    pub done_revision: i64,
    pub status: Status,
    pub fly_app: String,
    pub url: String,
    pub machine_id: Option<String>,
    pub deployed_sha: Option<String>,
    pub deployment_id: Option<i64>,
    pub deployment_sha: Option<String>,
    pub comment_id: Option<i64>,
    pub telegram_message_id: Option<i64>,
    pub error: Option<String>,
    pub attempts: i64,
    pub queued_at: i64,
    pub queue_ahead: Option<i64>,
    pub expires_at: Option<i64>,
    pub claimed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// This preview made its Fly app (Fly answered the create with "created"),
    /// so it may reuse and delete it.
    pub fly_owned: bool,
}

impl Preview {
    /// Whether the latest revision of what is wanted has been carried out.
    pub fn settled(&self) -> bool {
        self.done_revision == self.revision
    }

    /// Whether a Fly app it made may exist: it made one, and it holds a slot or a
    /// machine is recorded (a run that stopped before its status moved). Only
    /// such an app is deleted; a name someone else holds is never touched.
    pub fn may_have_fly_app(&self) -> bool {
        self.fly_owned && (self.status.may_have_fly_app() || self.machine_id.is_some())
    }

    /// The GitHub environment: one per pull request.
    pub fn environment(&self) -> String {
        format!("pr-{}", self.pr_number)
    }
}

/// Why a pull request gets no preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Draft,
    Fork,
}

impl SkipReason {
    pub fn explain(self) -> &'static str {
        match self {
            SkipReason::Draft => {
                "draft pull requests are not previewed (`skip_drafts`); mark it ready for review to deploy it"
            }
            SkipReason::Fork => {
                "pull requests from forks are not previewed, because the preview would run their code with this app's secrets (`allow_forks` is off)"
            }
        }
    }
}

/// Why a preview is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownReason {
    Closed,
    Expired,
    /// Previews were switched off for the app, or the app was removed.
    Disabled,
}

impl TeardownReason {
    pub fn explain(self) -> &'static str {
        match self {
            TeardownReason::Closed => "the pull request was closed",
            TeardownReason::Expired => "it expired without a new deploy",
            TeardownReason::Disabled => "previews were switched off for this app",
        }
    }
}

/// The one thing a reconcile run does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Everything is as wanted.
    Nothing,
    /// Deploy (or finish announcing) the head sha; waits queued when no slot is free.
    Deploy,
    /// Take down whatever exists and say why it is not deployed.
    Skip(SkipReason),
    /// Take down whatever exists.
    Teardown(TeardownReason),
}

/// Pure: what to do about `p`, given the app's settings (`None` when the app is
/// gone or its previews are off).
pub fn plan(p: &Preview, settings: Option<&PreviewSettings>) -> Action {
    let settled = p.settled();
    let teardown = |reason| {
        if p.status == Status::Destroyed && settled {
            Action::Nothing
        } else {
            Action::Teardown(reason)
        }
    };
    match (p.wanted, settings.filter(|s| s.enabled)) {
        (Wanted::Closed, _) => teardown(TeardownReason::Closed),
        (Wanted::Expired, _) => teardown(TeardownReason::Expired),
        (Wanted::Live, None) => teardown(TeardownReason::Disabled),
        (Wanted::Live, Some(s)) => {
            let skip = if p.fork && !s.allow_forks {
                Some(SkipReason::Fork)
            } else if p.draft && s.skip_drafts {
                Some(SkipReason::Draft)
            } else {
                None
            };
            match skip {
                Some(_) if settled && p.status == Status::Skipped => Action::Nothing,
                Some(reason) => Action::Skip(reason),
                // A settled failure waits for the next push; a settled ready one is
                // the head. A queued one tries for a slot again.
                None if settled && matches!(p.status, Status::Ready | Status::Failed) => {
                    Action::Nothing
                }
                None => Action::Deploy,
            }
        }
    }
}

/// The marker that finds an app's comment on a pull request.
pub fn comment_marker(app: &str) -> String {
    format!("<!-- edge-notifier:preview:{app} -->")
}

/// What the comment shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown<'a> {
    Queued { ahead: i64, max: u32 },
    Deploying,
    Ready,
    Failed(&'a str),
    Destroyed(TeardownReason),
    Skipped(SkipReason),
}

/// Markdown safe for a table cell or inline text: no pipes, backticks or newlines.
fn cell(s: &str) -> String {
    s.replace(['|', '`', '\n', '\r'], " ")
}

/// The PR comment's body (Markdown, with the hidden marker first).
pub fn render_comment(p: &Preview, shown: &Shown<'_>) -> String {
    let sha = p.head_sha.short();
    let (icon, state) = match shown {
        Shown::Queued { .. } => ("⏳", "queued"),
        Shown::Deploying => ("🔄", "deploying"),
        Shown::Ready => ("✅", "ready"),
        Shown::Failed(_) => ("❌", "failed"),
        Shown::Destroyed(_) => ("🗑️", "destroyed"),
        Shown::Skipped(_) => ("⏭️", "not deployed"),
    };
    let mut out = format!(
        "{}\n### {icon} Preview of `{}`: {state}\n\n| | |\n|---|---|\n",
        comment_marker(&p.app),
        cell(&p.app)
    );
    let mut row = |k: &str, v: String| out.push_str(&format!("| {k} | {v} |\n"));
    match shown {
        Shown::Ready | Shown::Deploying => row("URL", p.url.clone()),
        _ => {}
    }
    row("Commit", format!("`{sha}`"));
    match shown {
        Shown::Queued { ahead, max } => row(
            "Queue",
            match ahead {
                0 => format!("next in line; at most {max} previews run at once"),
                1 => format!("1 preview ahead; at most {max} run at once"),
                n => format!("{n} previews ahead; at most {max} run at once"),
            },
        ),
        Shown::Ready => {
            if let Some(at) = p.expires_at {
                row("Expires", Timestamp::from_millis(at).to_human());
            }
        }
        Shown::Destroyed(reason) => row("Why", reason.explain().into()),
        Shown::Skipped(reason) => row("Why", reason.explain().into()),
        Shown::Failed(_) | Shown::Deploying => {}
    }
    if let Shown::Failed(error) = shown {
        out.push_str(&format!(
            "\n```\n{}\n```\nThe next push tries again.\n",
            error.replace("```", "'''")
        ));
    }
    out
}

/// How much of a failure the Telegram message shows. Escaped, a character takes at
/// most six UTF-16 units (`&quot;`), so this keeps the message well inside
/// Telegram's 4096 beside the app, repository and URL (validated short).
pub const TELEGRAM_ERROR_CHARS: usize = 500;

/// The quiet Telegram message (HTML, escaped).
pub fn render_telegram(p: &Preview, shown: &Shown<'_>) -> String {
    use crate::telegram::escape_html as e;
    let state = match shown {
        Shown::Queued { ahead, .. } => format!("⏳ queued, {ahead} ahead"),
        Shown::Deploying => "🔄 deploying".into(),
        Shown::Ready => "✅ ready".into(),
        Shown::Failed(error) => format!(
            "❌ failed: {}",
            e(&crate::text::cut(error, TELEGRAM_ERROR_CHARS))
        ),
        Shown::Destroyed(reason) => format!("🗑️ destroyed: {}", reason.explain()),
        Shown::Skipped(reason) => format!("⏭️ not deployed: {}", e(reason.explain())),
    };
    let mut text = format!(
        "🔍 <b>Preview</b> {} · {} #{}\n{state}\nCommit: <code>{}</code>",
        e(&p.app),
        e(p.repository.as_str()),
        p.pr_number,
        p.head_sha.short()
    );
    if matches!(shown, Shown::Ready) {
        text.push_str(&format!("\n{}", e(&p.url)));
    }
    text
}

#[cfg(test)]
mod tests;
