//! Configuration, parsed once per event from the Worker's vars and secrets. Missing
//! settings never panic: each feature reports the variable it lacks.

use crate::github::webhook::WebhookSecrets;
use crate::secret::Secret;
use crate::telegram::TelegramConfig;

/// Every variable the Worker reads, for `/health` and the docs. Secrets are marked so
/// that `/health` reports only their presence (it never reports any value).
pub const VARIABLES: &[(&str, bool)] = &[
    ("DEPLOY_NOTIFY_TOKEN", true),
    ("TELEGRAM_BOT_TOKEN", true),
    ("TELEGRAM_CHAT_ID", false),
    ("TELEGRAM_API_BASE", false),
    ("TELEGRAM_WEBHOOK_SECRET", true),
    ("TELEGRAM_OPERATORS", false),
    ("CLOUDFLARE_API_TOKEN", true),
    ("CLOUDFLARE_ACCOUNT_ID", false),
    ("CLOUDFLARE_API_BASE", false),
    ("CLOUDFLARE_ROLLBACK", false),
    ("WATCH_WORKERS", false),
    ("WATCH_PAGES", false),
    ("POLL_LOOKBACK_MINUTES", false),
    ("SWEEP_AFTER_SECONDS", false),
    ("STEP_STALE_SECONDS", false),
    ("DELIVERY_RETRY_BASE_SECONDS", false),
    ("ADMIN_TOKEN", true),
    ("GITHUB_WEBHOOK_SECRET", true),
    ("GITHUB_WEBHOOK_SECRET_PREVIOUS", true),
    ("GITHUB_TOKEN", true),
    ("GITHUB_APP_ID", false),
    ("GITHUB_APP_PRIVATE_KEY", true),
    ("GITHUB_HOOK_ID", false),
    ("GITHUB_API_BASE", false),
    ("FLY_API_TOKEN", true),
    ("FLY_API_BASE", false),
    ("PUBLIC_URL", false),
    ("HEALTH_CHECK_INTERVAL_SECONDS", false),
    ("AWAIT_TIMEOUT_MINUTES", false),
    ("SECRETS_KEY", true),
    ("SECRETS_KEY_PREVIOUS", true),
    ("ORCHESTRATE_OWNER", false),
    ("ORCHESTRATE_INSTALLATION_ID", false),
    ("ORCHESTRATE_INFRA_REPO", false),
    ("ORCHESTRATE_INFRA_WORKFLOW", false),
    ("ORCHESTRATE_APP_CONFIG_REPO", false),
    ("ORCHESTRATE_NGINX_REPO", false),
    ("ORCHESTRATE_SERVICE_DEFINITION_REPO", false),
    ("ORCHESTRATE_BOILERPLATE_REPO", false),
    ("ORCHESTRATE_BOILERPLATE_WORKFLOW", false),
    ("ORCHESTRATE_WAIT_TIMEOUT_MINUTES", false),
    ("ORCHESTRATE_DEFINITION", false),
    ("SERVICE_TEMPLATES", false),
    ("PROTECTION_TIMEOUT_MINUTES", false),
    ("ACCESS_TEAM_DOMAIN", false),
    ("ACCESS_AUD", false),
    ("ACCESS_OPERATORS", false),
    ("ACCESS_CERTS_URL", false),
];

/// Default `TELEGRAM_API_BASE`.
pub const DEFAULT_TELEGRAM_API_BASE: &str = "https://api.telegram.org";
/// Default `CLOUDFLARE_API_BASE`.
pub const DEFAULT_CLOUDFLARE_API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// Default `POLL_LOOKBACK_MINUTES`: deployments older than this are recorded by the
/// poll but not announced, so a first run on an old account does not flood a channel.
pub const DEFAULT_POLL_LOOKBACK_MINUTES: u32 = 60;
/// Default `SWEEP_AFTER_SECONDS`: a row still undelivered this long after it was due
/// is taken to have lost its queue message and is enqueued again. Two minutes is far
/// beyond a healthy queue's latency (well under a second) and well under the cron's
/// five-minute period.
pub const DEFAULT_SWEEP_AFTER_SECONDS: u32 = 120;

/// Default `FLY_API_BASE`.
pub const DEFAULT_FLY_API_BASE: &str = "https://api.machines.dev";
/// Default `HEALTH_CHECK_INTERVAL_SECONDS`: the first wait between health checks
/// (it doubles per attempt).
pub const DEFAULT_HEALTH_CHECK_INTERVAL_SECONDS: u32 = 10;
/// Default `AWAIT_TIMEOUT_MINUTES`: how long a deploy may wait for its target's
/// result (a workflow run) before the cron fails it.
pub const DEFAULT_AWAIT_TIMEOUT_MINUTES: u32 = 30;

/// Default `PROTECTION_TIMEOUT_MINUTES`: a deployment protection rule's request
/// nobody decides within a day is rejected. Long enough for a reviewer in another
/// time zone, far shorter than GitHub's 30 days, which would leave the run (and its
/// concurrency group) waiting on a message long scrolled away.
pub const DEFAULT_PROTECTION_TIMEOUT_MINUTES: u32 = 24 * 60;

/// How to authenticate to GitHub: an App installation (preferred when the delivery
/// names one) and/or a token.
#[derive(Debug, Clone)]
pub struct GithubSettings {
    pub api_base: String,
    pub token: Option<Secret>,
    pub app: Option<crate::github::app::GithubApp>,
}

/// Fly.io Machines API access.
#[derive(Debug, Clone)]
pub struct FlyConfig {
    pub api_base: String,
    pub token: Secret,
}

/// Credentials and scope for the Cloudflare API poll.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// `CLOUDFLARE_API_BASE`, without a trailing slash.
    pub api_base: String,
    pub account_id: String,
    pub api_token: Secret,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `DEPLOY_NOTIFY_TOKEN` (secret): the Bearer token `/notify` requires.
    pub notify_token: Option<Secret>,
    /// `TELEGRAM_BOT_TOKEN` (secret), `TELEGRAM_CHAT_ID`, `TELEGRAM_API_BASE`; or the
    /// name of the first one missing.
    pub telegram: Result<TelegramConfig, &'static str>,
    /// `TELEGRAM_PACE` (`<per second>/<per minute>`, default `1/20`, or `off`) and
    /// `TELEGRAM_DIGEST_THRESHOLD` (default 5): the default route's pace.
    pub telegram_pace: Option<crate::pace::Pace>,
    /// `TELEGRAM_WEBHOOK_SECRET` (secret): what Telegram sends in
    /// `X-Telegram-Bot-Api-Secret-Token` to `/telegram` (1 to 256 of `A-Z a-z 0-9 _ -`,
    /// as `setWebhook` takes it); or the name of the variable when it is missing or
    /// unusable.
    pub telegram_webhook_secret: Result<Secret, &'static str>,
    /// `TELEGRAM_OPERATORS`: the Telegram user ids (comma-separated) who may press
    /// buttons and run acting commands for every app. Default none.
    pub telegram_operators: Vec<i64>,
    /// `CLOUDFLARE_API_TOKEN` (secret), `CLOUDFLARE_ACCOUNT_ID`, `CLOUDFLARE_API_BASE`;
    /// or the name of the first one missing.
    pub cloudflare: Result<CloudflareConfig, &'static str>,
    /// `CLOUDFLARE_ROLLBACK` (`on` or `off`, default `off`): `CLOUDFLARE_API_TOKEN`
    /// may also edit Workers and Pages, so their notifications carry a Roll back
    /// button. Off while the Cloudflare API is not configured.
    pub cloudflare_rollback: bool,
    /// `WATCH_WORKERS`: comma-separated Worker script names to poll. Default none.
    pub watch_workers: Vec<String>,
    /// `WATCH_PAGES`: comma-separated Pages project names to poll. Default none.
    pub watch_pages: Vec<String>,
    /// `POLL_LOOKBACK_MINUTES`, default 60.
    pub poll_lookback_minutes: u32,
    /// `SWEEP_AFTER_SECONDS`, default 120.
    pub sweep_after_seconds: u32,
    /// `STEP_STALE_SECONDS`, default 180 ([`crate::retry::DEFAULT_STEP_STALE_SECONDS`]):
    /// a deploy or orchestration step's claim older than this is taken over.
    pub step_stale_seconds: u32,
    /// `DELIVERY_RETRY_BASE_SECONDS`, default
    /// [`crate::github::deliveries::DEFAULT_RETRY_BASE_SECONDS`]: the wait after a
    /// GitHub delivery's first failed attempt (it doubles per attempt).
    pub delivery_retry_base_seconds: u32,
    /// `ADMIN_TOKEN` (secret): the Bearer token the `/api/` admin endpoints require.
    pub admin_token: Option<Secret>,
    /// `GITHUB_WEBHOOK_SECRET` (secret) and, during a rotation,
    /// `GITHUB_WEBHOOK_SECRET_PREVIOUS`; or the name of the missing one.
    pub github_webhook: Result<WebhookSecrets, &'static str>,
    /// `GITHUB_TOKEN` (secret) and/or the GitHub App (`GITHUB_APP_ID`,
    /// `GITHUB_APP_PRIVATE_KEY` secret), with `GITHUB_API_BASE` (default
    /// `https://api.github.com`); or the name of what is missing.
    pub github: Result<GithubSettings, &'static str>,
    /// `GITHUB_HOOK_ID`: the repository or organization webhook whose failed
    /// deliveries the cron asks GitHub to redeliver (`owner/repo:id` or `org:id`).
    pub github_hook: Option<String>,
    /// `FLY_API_TOKEN` (secret) and `FLY_API_BASE` (default `https://api.machines.dev`).
    pub fly: Result<FlyConfig, &'static str>,
    /// `SECRETS_KEY` (secret, 32 bytes base64) and, while rotating,
    /// `SECRETS_KEY_PREVIOUS`: the keys app secrets are encrypted under.
    pub secrets_keys: Result<crate::secrets::SecretsKeys, &'static str>,
    /// `PUBLIC_URL`: this Worker's public origin, for links to jobs. Default none.
    pub public_url: Option<String>,
    /// `HEALTH_CHECK_INTERVAL_SECONDS`, default 10.
    pub health_check_interval_seconds: u32,
    /// `AWAIT_TIMEOUT_MINUTES`, default 30.
    pub await_timeout_minutes: u32,
    /// The orchestration workflows' repositories, templates and timeouts
    /// (`ORCHESTRATE_*`, `SERVICE_TEMPLATES`); or what is missing or wrong.
    pub orchestrate: Result<crate::orchestrate::definition::OrchestrateConfig, String>,
    /// `ORCHESTRATE_INSTALLATION_ID`: the GitHub App installation workflows act as
    /// (else `GITHUB_TOKEN`).
    pub orchestrate_installation_id: Option<u64>,
    /// `PROTECTION_TIMEOUT_MINUTES`, default 1440 (a day): a deployment protection
    /// rule's request nobody decides within this long is rejected.
    pub protection_timeout_minutes: u32,
    /// Cloudflare Access in front of the status page: `ACCESS_TEAM_DOMAIN`
    /// (`<team>.cloudflareaccess.com`), `ACCESS_AUD` (the application's audience
    /// tag), `ACCESS_OPERATORS` (emails, comma-separated, default none) and
    /// `ACCESS_CERTS_URL` (default `https://<team>/cdn-cgi/access/certs`).
    /// `Ok(None)` when neither of the first two is set (the pages then use the
    /// sign-in form); `Err` naming the problem when Access is half or badly set.
    pub access: Result<Option<crate::web::auth::access::AccessConfig>, String>,
    /// Settings that were present but unusable (they fell back to their defaults).
    pub problems: Vec<String>,
}

impl Config {
    /// The claim rule of deploy and orchestration steps, with `STEP_STALE_SECONDS`.
    pub fn step_claims(&self) -> crate::retry::StepClaims {
        crate::retry::StepClaims::new(self.step_stale_seconds)
    }

    /// Builds the config from a lookup of vars and secrets by name.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();

        let telegram = (|| {
            let bot_token = get("TELEGRAM_BOT_TOKEN").ok_or("TELEGRAM_BOT_TOKEN")?;
            let chat_id = get("TELEGRAM_CHAT_ID").ok_or("TELEGRAM_CHAT_ID")?;
            Ok(TelegramConfig {
                api_base: base_url(get("TELEGRAM_API_BASE"), DEFAULT_TELEGRAM_API_BASE),
                bot_token: Secret::new(bot_token),
                chat_id,
            })
        })();
        let cloudflare = (|| {
            let api_token = get("CLOUDFLARE_API_TOKEN").ok_or("CLOUDFLARE_API_TOKEN")?;
            let account_id = get("CLOUDFLARE_ACCOUNT_ID").ok_or("CLOUDFLARE_ACCOUNT_ID")?;
            Ok(CloudflareConfig {
                api_base: base_url(get("CLOUDFLARE_API_BASE"), DEFAULT_CLOUDFLARE_API_BASE),
                account_id,
                api_token: Secret::new(api_token),
            })
        })();
        let cloudflare_rollback = match get("CLOUDFLARE_ROLLBACK").as_deref() {
            None | Some("off") => false,
            Some("on") if cloudflare.is_ok() => true,
            Some("on") => {
                problems.push(format!(
                    "CLOUDFLARE_ROLLBACK is on but {} is not configured; rollbacks are off",
                    cloudflare.as_ref().err().copied().unwrap_or_default()
                ));
                false
            }
            Some(_) => {
                problems.push("CLOUDFLARE_ROLLBACK must be on or off; using off".into());
                false
            }
        };
        let mut number = |name: &str, default: u32| match get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                problems.push(format!("{name} must be a whole number; using {default}"));
                default
            }),
        };
        let poll_lookback_minutes = number("POLL_LOOKBACK_MINUTES", DEFAULT_POLL_LOOKBACK_MINUTES);
        let digest_threshold = number(
            "TELEGRAM_DIGEST_THRESHOLD",
            crate::pace::Pace::TELEGRAM.digest_threshold,
        );
        let sweep_after_seconds = number("SWEEP_AFTER_SECONDS", DEFAULT_SWEEP_AFTER_SECONDS);
        let step_stale_seconds = number(
            "STEP_STALE_SECONDS",
            crate::retry::DEFAULT_STEP_STALE_SECONDS,
        );
        let delivery_retry_base_seconds = number(
            "DELIVERY_RETRY_BASE_SECONDS",
            crate::github::deliveries::DEFAULT_RETRY_BASE_SECONDS,
        );
        let health_check_interval_seconds = number(
            "HEALTH_CHECK_INTERVAL_SECONDS",
            DEFAULT_HEALTH_CHECK_INTERVAL_SECONDS,
        );
        let await_timeout_minutes = number("AWAIT_TIMEOUT_MINUTES", DEFAULT_AWAIT_TIMEOUT_MINUTES);
        let protection_timeout_minutes = number(
            "PROTECTION_TIMEOUT_MINUTES",
            DEFAULT_PROTECTION_TIMEOUT_MINUTES,
        );

        let github_webhook = get("GITHUB_WEBHOOK_SECRET")
            .map(|current| WebhookSecrets {
                current: Secret::new(current),
                previous: get("GITHUB_WEBHOOK_SECRET_PREVIOUS").map(Secret::new),
            })
            .ok_or("GITHUB_WEBHOOK_SECRET");

        let app = match (get("GITHUB_APP_ID"), get("GITHUB_APP_PRIVATE_KEY")) {
            (Some(app_id), Some(pem)) => match crate::github::app::private_key_pkcs8(&pem) {
                Ok(private_key_pkcs8) => Some(crate::github::app::GithubApp {
                    app_id,
                    private_key_pkcs8,
                }),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            (Some(_), None) => {
                problems.push("GITHUB_APP_ID is set without GITHUB_APP_PRIVATE_KEY".into());
                None
            }
            (None, Some(_)) => {
                problems.push("GITHUB_APP_PRIVATE_KEY is set without GITHUB_APP_ID".into());
                None
            }
            (None, None) => None,
        };
        let token = get("GITHUB_TOKEN").map(Secret::new);
        let github = if token.is_some() || app.is_some() {
            Ok(GithubSettings {
                api_base: base_url(
                    get("GITHUB_API_BASE"),
                    crate::github::client::DEFAULT_API_BASE,
                ),
                token,
                app,
            })
        } else {
            Err("GITHUB_TOKEN")
        };
        let fly = get("FLY_API_TOKEN")
            .map(|token| FlyConfig {
                api_base: base_url(get("FLY_API_BASE"), DEFAULT_FLY_API_BASE),
                token: Secret::new(token),
            })
            .ok_or("FLY_API_TOKEN");

        let secrets_keys =
            match get("SECRETS_KEY").map(|k| crate::secrets::Key::parse("SECRETS_KEY", &k)) {
                None => Err("SECRETS_KEY"),
                Some(Err(e)) => {
                    problems.push(e);
                    Err("SECRETS_KEY")
                }
                Some(Ok(current)) => {
                    let previous = match get("SECRETS_KEY_PREVIOUS")
                        .map(|k| crate::secrets::Key::parse("SECRETS_KEY_PREVIOUS", &k))
                    {
                        None => None,
                        Some(Ok(k)) => Some(k),
                        Some(Err(e)) => {
                            problems.push(e);
                            None
                        }
                    };
                    Ok(crate::secrets::SecretsKeys { current, previous })
                }
            };

        let telegram_pace = match get("TELEGRAM_PACE") {
            None => Some(crate::pace::Pace {
                digest_threshold,
                ..crate::pace::Pace::TELEGRAM
            }),
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => {
                let parsed = v.split_once('/').and_then(|(s, m)| {
                    let (s, m) = (s.trim().parse::<u32>().ok()?, m.trim().parse::<u32>().ok()?);
                    (s >= 1 && m >= s).then_some((s, m))
                });
                let (per_second, per_minute) = parsed.unwrap_or_else(|| {
                    problems.push(
                        "TELEGRAM_PACE must be <per second>/<per minute> (as 1/20) or off; using 1/20".into(),
                    );
                    (1, 20)
                });
                Some(crate::pace::Pace {
                    per_second,
                    per_minute,
                    digest_threshold,
                })
            }
        };
        let telegram_webhook_secret = match get("TELEGRAM_WEBHOOK_SECRET") {
            None => Err("TELEGRAM_WEBHOOK_SECRET"),
            Some(v)
                if v.len() <= 256
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Ok(Secret::new(v))
            }
            Some(_) => {
                problems.push(
                    "TELEGRAM_WEBHOOK_SECRET must be 1 to 256 of A-Z, a-z, 0-9, _ and -".into(),
                );
                Err("TELEGRAM_WEBHOOK_SECRET")
            }
        };
        let mut telegram_operators = Vec::new();
        for id in list(get("TELEGRAM_OPERATORS")) {
            match id.parse::<i64>() {
                Ok(n) if n > 0 => telegram_operators.push(n),
                _ => problems.push(format!(
                    "TELEGRAM_OPERATORS: {id:?} is not a Telegram user id; left out"
                )),
            }
        }
        let orchestrate = crate::orchestrate::definition::OrchestrateConfig::from_lookup(&lookup);
        let orchestrate_installation_id = get("ORCHESTRATE_INSTALLATION_ID").and_then(|v| {
            let id = v.parse().ok();
            if id.is_none() {
                problems.push("ORCHESTRATE_INSTALLATION_ID is not a number".into());
            }
            id
        });
        let access = crate::web::auth::access::AccessConfig::from_settings(
            get("ACCESS_TEAM_DOMAIN"),
            get("ACCESS_AUD"),
            get("ACCESS_CERTS_URL"),
            get("ACCESS_OPERATORS"),
            &mut problems,
        );
        if let Err(problem) = &access {
            problems.push(format!("{problem}; the status page is closed"));
        }
        Config {
            access,
            orchestrate,
            orchestrate_installation_id,
            protection_timeout_minutes,
            secrets_keys,
            github,
            github_hook: get("GITHUB_HOOK_ID"),
            fly,
            public_url: get("PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            health_check_interval_seconds,
            await_timeout_minutes,
            notify_token: get("DEPLOY_NOTIFY_TOKEN").map(Secret::new),
            admin_token: get("ADMIN_TOKEN").map(Secret::new),
            github_webhook,
            telegram,
            telegram_pace,
            telegram_webhook_secret,
            telegram_operators,
            cloudflare,
            cloudflare_rollback,
            watch_workers: list(get("WATCH_WORKERS")),
            watch_pages: list(get("WATCH_PAGES")),
            poll_lookback_minutes,
            sweep_after_seconds,
            step_stale_seconds,
            delivery_retry_base_seconds,
            problems,
        }
    }
}

fn base_url(v: Option<String>, default: &str) -> String {
    v.unwrap_or_else(|| default.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn list(v: Option<String>) -> Vec<String> {
    let mut names: Vec<String> = v
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_documented() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let example =
            std::fs::read_to_string(format!("{root}/.dev.vars.example")).expect("example");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("readme");
        for (name, _) in VARIABLES {
            assert!(example.contains(name), "{name} is not in .dev.vars.example");
            assert!(readme.contains(name), "{name} is not in the README");
        }
    }
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = config(&[]);
        assert!(c.notify_token.is_none());
        assert_eq!(c.telegram.err(), Some("TELEGRAM_BOT_TOKEN"));
        assert_eq!(c.cloudflare.err(), Some("CLOUDFLARE_API_TOKEN"));
        assert_eq!(c.poll_lookback_minutes, 60);
        assert_eq!(c.sweep_after_seconds, 120);
        assert_eq!(c.step_stale_seconds, 180);
        assert_eq!(c.delivery_retry_base_seconds, 30);
        assert!(c.watch_workers.is_empty());
        assert!(!c.cloudflare_rollback);
        assert!(c.problems.is_empty());
    }

    #[test]
    fn webhook_secret_and_operators() {
        let c = config(&[
            ("TELEGRAM_WEBHOOK_SECRET", "abc_DEF-123"),
            ("TELEGRAM_OPERATORS", "111, 222,x,-5"),
        ]);
        assert_eq!(
            c.telegram_webhook_secret.map(|s| s.expose().to_owned()),
            Ok("abc_DEF-123".into())
        );
        assert_eq!(c.telegram_operators, vec![111, 222]);
        assert_eq!(
            c.problems,
            vec![
                "TELEGRAM_OPERATORS: \"x\" is not a Telegram user id; left out",
                "TELEGRAM_OPERATORS: \"-5\" is not a Telegram user id; left out",
            ]
        );
        let bad = config(&[("TELEGRAM_WEBHOOK_SECRET", "has spaces in it")]);
        assert_eq!(
            bad.telegram_webhook_secret.err(),
            Some("TELEGRAM_WEBHOOK_SECRET")
        );
        assert_eq!(bad.problems.len(), 1);
        assert_eq!(
            config(&[]).telegram_webhook_secret.err(),
            Some("TELEGRAM_WEBHOOK_SECRET")
        );
    }

    #[test]
    fn rollbacks_need_the_cloudflare_api() {
        let api = [
            ("CLOUDFLARE_API_TOKEN", "c"),
            ("CLOUDFLARE_ACCOUNT_ID", "acc"),
        ];
        let on = config(&[api[0], api[1], ("CLOUDFLARE_ROLLBACK", "on")]);
        assert!(on.cloudflare_rollback);
        assert!(on.problems.is_empty());
        let without = config(&[("CLOUDFLARE_API_TOKEN", "c"), ("CLOUDFLARE_ROLLBACK", "on")]);
        assert!(!without.cloudflare_rollback);
        assert_eq!(
            without.problems,
            vec!["CLOUDFLARE_ROLLBACK is on but CLOUDFLARE_ACCOUNT_ID is not configured; rollbacks are off"]
        );
        let typo = config(&[api[0], api[1], ("CLOUDFLARE_ROLLBACK", "yes")]);
        assert!(!typo.cloudflare_rollback);
        assert_eq!(
            typo.problems,
            vec!["CLOUDFLARE_ROLLBACK must be on or off; using off"]
        );
    }

    #[test]
    fn names_the_missing_variable() {
        let c = config(&[("TELEGRAM_BOT_TOKEN", "t"), ("CLOUDFLARE_API_TOKEN", "c")]);
        assert_eq!(c.telegram.err(), Some("TELEGRAM_CHAT_ID"));
        assert_eq!(c.cloudflare.err(), Some("CLOUDFLARE_ACCOUNT_ID"));
    }

    #[test]
    fn full_config() {
        let c = config(&[
            ("TELEGRAM_BOT_TOKEN", "t"),
            ("TELEGRAM_CHAT_ID", "-100"),
            ("TELEGRAM_API_BASE", "http://127.0.0.1:9/"),
            ("CLOUDFLARE_API_TOKEN", "c"),
            ("CLOUDFLARE_ACCOUNT_ID", "acc"),
            ("WATCH_WORKERS", " api , web,,"),
            ("WATCH_PAGES", "docs"),
            ("POLL_LOOKBACK_MINUTES", "15"),
            ("SWEEP_AFTER_SECONDS", "soon"),
            ("STEP_STALE_SECONDS", "5"),
        ]);
        assert_eq!(c.step_claims(), crate::retry::StepClaims::new(5));
        let t = c.telegram.expect("telegram configured");
        assert_eq!(t.api_base, "http://127.0.0.1:9");
        assert_eq!(
            c.cloudflare.expect("cf").api_base,
            DEFAULT_CLOUDFLARE_API_BASE
        );
        assert_eq!(c.watch_workers, vec!["api", "web"]);
        assert_eq!(c.watch_pages, vec!["docs"]);
        assert_eq!(c.poll_lookback_minutes, 15);
        assert_eq!(c.sweep_after_seconds, 120);
        assert_eq!(c.step_stale_seconds, 5);
        assert_eq!(
            c.problems,
            vec!["SWEEP_AFTER_SECONDS must be a whole number; using 120"]
        );
    }
}
