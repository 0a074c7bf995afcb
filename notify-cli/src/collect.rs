//! Collects a deployment's metadata: CI variables first (Workers Builds, Cloudflare
//! Pages, GitHub Actions), then git, then the project's wrangler config; flags win
//! over all of them. Pure over its inputs, so every precedence rule is unit-tested.

use std::collections::HashMap;

use edge_core::error::ApiError;
use edge_core::notify::{Deployment, DeploymentPayload, NotifyRequest, Source, MAX_DEPLOYMENT_ID};
use edge_core::time::Timestamp;

use crate::args::Args;

/// What `git` said about HEAD; all optional (no git, not a repository).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitInfo {
    pub sha: Option<String>,
    pub branch: Option<String>,
    pub author_email: Option<String>,
    /// The full, multi-line message.
    pub message: Option<String>,
}

/// Everything the payload is built from.
pub struct Sources<'a> {
    pub env: &'a HashMap<String, String>,
    pub git: &'a GitInfo,
    /// `name` from ./wrangler.toml (or wrangler.json).
    pub config_name: Option<String>,
    /// Whether the wrangler config declares a Pages project (`pages_build_output_dir`).
    pub config_is_pages: bool,
    /// Now, as RFC 3339, and as a number for generated ids.
    pub now_rfc3339: String,
    pub now_secs: u64,
}

impl Sources<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(
            self.var(name).as_deref(),
            Some("1" | "true" | "TRUE" | "True")
        )
    }
}

/// Builds the `/notify` payload.
pub fn payload(args: &Args, s: &Sources) -> DeploymentPayload {
    let workers_ci = s.flag("WORKERS_CI");
    let pages = s.flag("CF_PAGES");
    let github = s.flag("GITHUB_ACTIONS");
    let is_ci = workers_ci || pages || github || s.flag("CI");

    let kind = args.kind.clone().unwrap_or_else(|| {
        if pages || s.config_is_pages {
            "pages"
        } else {
            "worker"
        }
        .to_owned()
    });

    let ci_sha = s
        .var("WORKERS_CI_COMMIT_SHA")
        .or_else(|| s.var("CF_PAGES_COMMIT_SHA"))
        .or_else(|| s.var("GITHUB_SHA"));
    let commit_hash = ci_sha.clone().or_else(|| s.git.sha.clone());
    // git's message and author describe HEAD; use them only when HEAD is the commit
    // the CI built (a CI may check out something else, e.g. a merge ref).
    let git_matches = match (&ci_sha, &s.git.sha) {
        (Some(ci), Some(head)) => head.starts_with(ci.as_str()) || ci.starts_with(head.as_str()),
        (None, _) => true,
        (Some(_), None) => false,
    };

    let github_branch = s.var("GITHUB_REF_NAME").filter(|_| {
        s.var("GITHUB_REF")
            .is_none_or(|r| r.starts_with("refs/heads/"))
    });
    let branch = s
        .var("WORKERS_CI_BRANCH")
        .or_else(|| s.var("CF_PAGES_BRANCH"))
        .or(github_branch)
        .or_else(|| s.git.branch.clone().filter(|b| b != "HEAD"));

    let url = args.url.clone().or_else(|| s.var("CF_PAGES_URL"));
    let project_name = args.project.clone().or_else(|| s.config_name.clone());
    let deployment_id = args
        .deployment_id
        .clone()
        .or_else(|| s.var("WORKERS_CI_BUILD_UUID"))
        .or_else(|| s.var("CF_PAGES_URL").as_deref().and_then(pages_short_id))
        .or_else(|| {
            s.var("GITHUB_RUN_ID").map(|run| {
                let attempt = s.var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
                github_run_id(&run, &attempt, project_name.as_deref())
            })
        })
        .unwrap_or_else(|| match &commit_hash {
            // A local deploy: the commit plus the time, so a redeploy of the same
            // commit is a new deployment while this run's retries keep one id.
            Some(sha) => format!("local-{}-{}", &sha[..sha.len().min(7)], s.now_secs),
            None => format!("local-{}", s.now_secs),
        });

    let environment = args.environment.clone().unwrap_or_else(|| {
        if kind == "pages" {
            match branch.as_deref() {
                None | Some("main" | "master") => "production".to_owned(),
                Some(_) => "preview".to_owned(),
            }
        } else {
            "production".to_owned()
        }
    });

    DeploymentPayload {
        kind: Some(kind),
        project_name,
        deployment_id: Some(deployment_id),
        branch,
        commit_hash,
        commit_message: s.git.message.clone().filter(|_| git_matches),
        author: s
            .var("GITHUB_ACTOR")
            .or_else(|| s.git.author_email.clone().filter(|_| git_matches)),
        timestamp: Some(s.now_rfc3339.clone()),
        environment: Some(environment),
        is_ci: Some(is_ci),
        url,
    }
}

/// `gh-<run>-<attempt>-<project>`: one workflow run may deploy several projects, and
/// each is its own deployment. The project part is cut to keep the id within the
/// Worker's bound (the Worker's key takes in the whole project name anyway).
fn github_run_id(run: &str, attempt: &str, project: Option<&str>) -> String {
    let run_part = format!("gh-{run}-{attempt}");
    match project.map(str::trim).filter(|p| !p.is_empty()) {
        None => run_part,
        Some(p) => {
            let room = MAX_DEPLOYMENT_ID.saturating_sub(run_part.chars().count() + 1);
            let cut: String = p.chars().take(room).collect();
            if cut.is_empty() {
                run_part
            } else {
                format!("{run_part}-{cut}")
            }
        }
    }
}

/// What is sent, and the deployment the Worker will make of it: the payload with its
/// display fields sanitised (a control character in the commit message, an overlong
/// branch: see [`DeploymentPayload::sanitised`]), checked by the Worker's own
/// validation first for a clear local message. Only the identity fields (type,
/// project, id) refuse.
pub fn request(
    payload: DeploymentPayload,
    now: Timestamp,
) -> Result<(Deployment, NotifyRequest), ApiError> {
    let payload = payload.sanitised();
    let deployment = payload.clone().validate(now, Source::Hook)?;
    Ok((
        deployment,
        NotifyRequest {
            deployment: payload,
        },
    ))
}

/// `https://a1b2c3d4.project.pages.dev` → `a1b2c3d4`, the deployment's short id.
fn pages_short_id(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let (label, rest) = host.split_once('.')?;
    (rest.ends_with(".pages.dev") && !label.is_empty()).then(|| label.to_owned())
}

/// `name` from a wrangler config: the top-level key of wrangler.toml, or the
/// property of wrangler.json / wrangler.jsonc (line comments allowed).
pub fn config_name(toml: Option<&str>, json: Option<&str>) -> (Option<String>, bool) {
    if let Some(text) = toml {
        let mut name = None;
        let mut pages = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                break; // top-level keys end at the first table
            }
            if let Some((key, value)) = line.split_once('=') {
                match key.trim() {
                    "name" => name = toml_string(value),
                    "pages_build_output_dir" => pages = true,
                    _ => {}
                }
            }
        }
        return (name, pages);
    }
    if let Some(text) = json {
        let stripped: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&stripped) {
            let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
            return (name, v.get("pages_build_output_dir").is_some());
        }
    }
    (None, false)
}

/// A TOML basic or literal string on one line, e.g. `"api" # comment`.
fn toml_string(value: &str) -> Option<String> {
    let v = value.trim();
    let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &v[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_owned()).filter(|s| !s.is_empty())
}

/// Parses `git log -1 --format=%H%n%ae%n%B` plus the branch.
pub fn git_info(log: Option<&str>, branch: Option<&str>) -> GitInfo {
    let mut info = GitInfo {
        branch: branch
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_owned),
        ..GitInfo::default()
    };
    if let Some(log) = log {
        let mut lines = log.splitn(3, '\n');
        info.sha = lines
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        info.author_email = lines
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        info.message = lines
            .next()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty());
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn git() -> GitInfo {
        git_info(
            Some("abc123def4567890abc123def4567890abc123de\ndev@example.com\nAdd JWT authentication\n\nBody line\n"),
            Some("feature/add-auth\n"),
        )
    }

    fn build(
        args: &Args,
        env: &HashMap<String, String>,
        git: &GitInfo,
        name: Option<&str>,
    ) -> DeploymentPayload {
        payload(
            args,
            &Sources {
                env,
                git,
                config_name: name.map(str::to_owned),
                config_is_pages: false,
                now_rfc3339: "2025-01-15T10:30:00.000Z".into(),
                now_secs: 1_736_937_000,
            },
        )
    }

    #[test]
    fn plain_git_checkout() {
        let p = build(&Args::default(), &env(&[]), &git(), Some("api-service"));
        assert_eq!(p.kind.as_deref(), Some("worker"));
        assert_eq!(p.project_name.as_deref(), Some("api-service"));
        assert_eq!(p.deployment_id.as_deref(), Some("local-abc123d-1736937000"));
        assert_eq!(p.branch.as_deref(), Some("feature/add-auth"));
        assert_eq!(
            p.commit_message.as_deref(),
            Some("Add JWT authentication\n\nBody line")
        );
        assert_eq!(p.author.as_deref(), Some("dev@example.com"));
        assert_eq!(p.environment.as_deref(), Some("production"));
        assert_eq!(p.is_ci, Some(false));
    }

    #[test]
    fn workers_builds() {
        let e = env(&[
            ("WORKERS_CI", "1"),
            ("WORKERS_CI_BUILD_UUID", "build-uuid-1"),
            (
                "WORKERS_CI_COMMIT_SHA",
                "abc123def4567890abc123def4567890abc123de",
            ),
            ("WORKERS_CI_BRANCH", "main"),
        ]);
        let p = build(&Args::default(), &e, &git(), Some("api"));
        assert_eq!(p.deployment_id.as_deref(), Some("build-uuid-1"));
        assert_eq!(
            p.branch.as_deref(),
            Some("main"),
            "CI variables win over git"
        );
        assert_eq!(
            p.commit_message.as_deref(),
            Some("Add JWT authentication\n\nBody line")
        );
        assert_eq!(p.is_ci, Some(true));
    }

    #[test]
    fn cloudflare_pages() {
        let e = env(&[
            ("CF_PAGES", "1"),
            (
                "CF_PAGES_COMMIT_SHA",
                "ffff000011112222333344445555666677778888",
            ),
            ("CF_PAGES_BRANCH", "docs-fix"),
            ("CF_PAGES_URL", "https://a1b2c3d4.docs-site.pages.dev"),
        ]);
        let p = build(&Args::default(), &e, &git(), Some("docs-site"));
        assert_eq!(p.kind.as_deref(), Some("pages"));
        assert_eq!(p.deployment_id.as_deref(), Some("a1b2c3d4"));
        assert_eq!(p.environment.as_deref(), Some("preview"));
        assert_eq!(
            p.url.as_deref(),
            Some("https://a1b2c3d4.docs-site.pages.dev")
        );
        assert_eq!(
            p.commit_hash.as_deref(),
            Some("ffff000011112222333344445555666677778888")
        );
        assert_eq!(p.commit_message, None, "git's HEAD is another commit");
        assert_eq!(p.author, None);
    }

    #[test]
    fn github_actions() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "abc123def4567890abc123def4567890abc123de"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_RUN_ID", "987654"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_ACTOR", "octocat"),
        ]);
        let p = build(&Args::default(), &e, &git(), Some("api"));
        assert_eq!(p.deployment_id.as_deref(), Some("gh-987654-2-api"));
        assert_eq!(p.branch.as_deref(), Some("main"));
        assert_eq!(p.author.as_deref(), Some("octocat"));
        // A pull request ref is not a branch name.
        let pr = env(&[
            ("GITHUB_REF", "refs/pull/3/merge"),
            ("GITHUB_REF_NAME", "3/merge"),
        ]);
        assert_eq!(
            build(&Args::default(), &pr, &GitInfo::default(), None).branch,
            None
        );
    }

    #[test]
    fn flags_win() {
        let args = Args {
            project: Some("override".into()),
            kind: Some("pages".into()),
            environment: Some("staging".into()),
            deployment_id: Some("my-id".into()),
            url: Some("https://example.com".into()),
            ..Args::default()
        };
        let e = env(&[("WORKERS_CI", "1"), ("WORKERS_CI_BUILD_UUID", "u")]);
        let p = build(&args, &e, &git(), Some("api"));
        assert_eq!(p.project_name.as_deref(), Some("override"));
        assert_eq!(p.kind.as_deref(), Some("pages"));
        assert_eq!(p.environment.as_deref(), Some("staging"));
        assert_eq!(p.deployment_id.as_deref(), Some("my-id"));
        assert_eq!(p.url.as_deref(), Some("https://example.com"));
    }

    #[test]
    fn no_git_no_ci() {
        let p = build(&Args::default(), &env(&[]), &GitInfo::default(), None);
        assert_eq!(p.deployment_id.as_deref(), Some("local-1736937000"));
        assert_eq!(p.project_name, None);
        assert_eq!(p.commit_hash, None);
    }

    #[test]
    fn wrangler_config_names() {
        let toml = "# comment\nname = \"api-service\" # the worker\nmain = \"src/index.js\"\n\n[env.staging]\nname = \"other\"\n";
        assert_eq!(
            config_name(Some(toml), None),
            (Some("api-service".into()), false)
        );
        let pages = "name = 'site'\npages_build_output_dir = \"dist\"\n";
        assert_eq!(config_name(Some(pages), None), (Some("site".into()), true));
        let json = "{\n  // comment\n  \"name\": \"from-json\"\n}";
        assert_eq!(
            config_name(None, Some(json)),
            (Some("from-json".into()), false)
        );
        assert_eq!(
            config_name(Some("[vars]\nname = \"x\"\n"), None),
            (None, false)
        );
    }

    #[test]
    fn pages_short_ids() {
        assert_eq!(
            pages_short_id("https://a1b2c3d4.site.pages.dev"),
            Some("a1b2c3d4".into())
        );
        assert_eq!(
            pages_short_id("https://site.pages.dev"),
            None,
            "the production alias has no id"
        );
        assert_eq!(pages_short_id("https://example.com/x"), None);
    }

    #[test]
    fn one_github_run_deploying_two_workers_gives_each_its_own_id() {
        let e = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "987654"),
            ("GITHUB_RUN_ATTEMPT", "1"),
        ]);
        let id =
            |name: &str| build(&Args::default(), &e, &GitInfo::default(), Some(name)).deployment_id;
        assert_eq!(id("api").as_deref(), Some("gh-987654-1-api"));
        assert_eq!(id("web").as_deref(), Some("gh-987654-1-web"));
        let flag = Args {
            project: Some("docs".into()),
            ..Args::default()
        };
        assert_eq!(
            build(&flag, &e, &GitInfo::default(), Some("api"))
                .deployment_id
                .as_deref(),
            Some("gh-987654-1-docs"),
            "--project names the project in the id too"
        );
        // A long project name is cut so that the id stays within the Worker's bound.
        let long = "p".repeat(200);
        let p = build(&Args::default(), &e, &GitInfo::default(), Some(&long));
        let id = p.deployment_id.clone().expect("id");
        assert_eq!(id.chars().count(), MAX_DEPLOYMENT_ID);
        assert!(id.starts_with("gh-987654-1-ppp"));
        assert_eq!(
            build(&Args::default(), &e, &GitInfo::default(), None)
                .deployment_id
                .as_deref(),
            Some("gh-987654-1"),
            "no project known: the run alone (the Worker then asks for one)"
        );
    }

    #[test]
    fn a_stray_control_character_or_a_long_branch_is_sanitised_and_sent() {
        let git = git_info(
            Some("abc123def4567890abc123def4567890abc123de\ndev@example.com\nFix \u{1b}[1mthe\u{7} build\n\nBody\n"),
            Some(&format!("feature/{}", "x".repeat(300))),
        );
        let p = build(&Args::default(), &env(&[]), &git, Some("api"));
        let now = Timestamp::from_millis(1_736_937_000_000);
        let (deployment, sent_request) = request(p, now).expect("sent, not refused");
        let sent = &sent_request.deployment;
        assert_eq!(
            sent.commit_message.as_deref(),
            Some("Fix [1mthe build\n\nBody")
        );
        let branch = sent.branch.clone().expect("branch");
        assert_eq!(branch.chars().count(), edge_core::notify::MAX_BRANCH);
        assert!(branch.ends_with("x…"));
        // What the Worker makes of the body is what the CLI reported.
        let body = serde_json::to_string(&sent_request).expect("serialises");
        assert_eq!(
            edge_core::notify::parse_notify_body(body.as_bytes(), now),
            Ok(deployment)
        );
        // The identity fields still refuse.
        let bad = build(&Args::default(), &env(&[]), &git, Some("a\u{7}pi"));
        assert!(request(bad, now).is_err());
    }
}
