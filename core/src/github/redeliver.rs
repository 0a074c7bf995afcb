//! Recovering deliveries GitHub could not make: GitHub does not retry a failed
//! webhook delivery by itself. The cron lists the hook's recent deliveries and asks
//! GitHub to redeliver the failed ones this Worker never recorded.

use super::app::{app_jwt, GithubApp, RsaSigner};
use super::client::{api_request, classify, GithubError};
use super::deliveries::DeliveryId;
use crate::http::{HttpRequest, Method};
use crate::json::FromJson;
use crate::ports::{Http, Kv, Sql, StoreError};
use crate::row::Columns;
use crate::secret::Secret;
use crate::time::Timestamp;

/// GitHub keeps deliveries for redelivery this long (three days).
pub const REDELIVERABLE_FOR_SECONDS: i64 = 3 * 24 * 3600;
/// Deliveries listed per cron run (one page).
pub const PAGE_SIZE: u32 = 100;

/// Which hook's deliveries to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `GITHUB_HOOK_ID=owner/repo:123`.
    Repository { repo: String, id: u64 },
    /// `GITHUB_HOOK_ID=org:123`.
    Organization { org: String, id: u64 },
    /// The GitHub App's own webhook.
    App,
}

impl Hook {
    /// Parses `GITHUB_HOOK_ID`.
    pub fn parse(s: &str) -> Option<Hook> {
        let (owner, id) = s.trim().rsplit_once(':')?;
        let id: u64 = id.parse().ok()?;
        let name_ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match owner.split_once('/') {
            Some((o, r)) if name_ok(o) && name_ok(r) => Some(Hook::Repository {
                repo: owner.to_owned(),
                id,
            }),
            None if name_ok(owner) => Some(Hook::Organization {
                org: owner.to_owned(),
                id,
            }),
            _ => None,
        }
    }

    fn path(&self) -> String {
        match self {
            Hook::Repository { repo, id } => format!("/repos/{repo}/hooks/{id}/deliveries"),
            Hook::Organization { org, id } => format!("/orgs/{org}/hooks/{id}/deliveries"),
            Hook::App => "/app/hook/deliveries".to_owned(),
        }
    }
}

/// One entry of GitHub's delivery list.
#[derive(Debug, Clone, PartialEq, Eq, FromJson)]
pub struct ListedDelivery {
    pub id: u64,
    pub guid: String,
    pub delivered_at: String,
    #[json(default)]
    pub redelivery: bool,
    #[json(default)]
    pub status_code: u16,
    #[json(default)]
    pub event: String,
}

impl ListedDelivery {
    fn failed(&self) -> bool {
        !(200..300).contains(&self.status_code)
    }
}

/// Pure: the deliveries to ask GitHub to redeliver: failed, recent, never recorded
/// here, not asked for before, and not since delivered successfully.
pub fn select<'a>(
    listed: &'a [ListedDelivery],
    recorded: &dyn Fn(&str) -> bool,
    asked: &dyn Fn(&str) -> bool,
    now: Timestamp,
) -> Vec<&'a ListedDelivery> {
    let cutoff = now.minus_seconds(REDELIVERABLE_FOR_SECONDS);
    let mut chosen: Vec<&ListedDelivery> = Vec::new();
    for d in listed {
        let recent = Timestamp::parse_rfc3339(&d.delivered_at).is_some_and(|t| t > cutoff);
        let succeeded_since = listed.iter().any(|o| o.guid == d.guid && !o.failed());
        if d.failed()
            && recent
            && !succeeded_since
            && !recorded(&d.guid)
            && !asked(&d.guid)
            && !chosen.iter().any(|c| c.guid == d.guid)
        {
            chosen.push(d);
        }
    }
    chosen
}

/// The hook to watch and how to authenticate for it, from the configuration:
/// `GITHUB_HOOK_ID` with `GITHUB_TOKEN`, else the App's own hook. `None` when
/// neither is configured; an error names what is wrong.
pub fn from_config(config: &crate::config::Config) -> Result<Option<(Hook, HookAuth<'_>)>, String> {
    let Ok(github) = &config.github else {
        return Ok(None);
    };
    match &config.github_hook {
        Some(text) => {
            let hook = Hook::parse(text).ok_or("GITHUB_HOOK_ID must be owner/repo:id or org:id")?;
            let token = github
                .token
                .as_ref()
                .ok_or("GITHUB_HOOK_ID needs GITHUB_TOKEN (with admin:repo_hook)")?;
            Ok(Some((hook, HookAuth::Token(token))))
        }
        None => Ok(github
            .app
            .as_ref()
            .map(|app| (Hook::App, HookAuth::App(app)))),
    }
}

/// How the cron authenticates for the hook: a token for repository and
/// organization hooks, the App's JWT for the App's hook.
pub enum HookAuth<'a> {
    Token(&'a Secret),
    App(&'a GithubApp),
}

fn request(api_base: &str, method: Method, path: &str, bearer: &str) -> HttpRequest {
    let body = (method == Method::Post).then(|| serde_json::json!({}));
    api_request(method, format!("{api_base}{path}"), body, bearer)
}

/// Lists the hook's recent deliveries and asks for the failed, unrecorded ones
/// again. Returns the guids asked for.
#[expect(
    clippy::too_many_arguments,
    reason = "the ports, the hook and its auth; a struct for this one caller would only rename them"
)]
pub async fn redeliver_failed<H: Http, S: Sql, K: Kv, R: RsaSigner>(
    http: &H,
    sql: S,
    kv: &K,
    signer: &R,
    api_base: &str,
    hook: &Hook,
    auth: HookAuth<'_>,
    now: Timestamp,
) -> Result<Vec<String>, GithubError> {
    let bearer = match auth {
        HookAuth::Token(t) => t.expose().to_owned(),
        HookAuth::App(app) => app_jwt(signer, app, now).await?.expose().to_owned(),
    };
    let list_path = format!("{}?per_page={PAGE_SIZE}", hook.path());
    let resp = classify(
        http.send(request(api_base, Method::Get, &list_path, &bearer))
            .await,
    )?;
    let listed: Vec<ListedDelivery> = crate::json::read(&resp.body)
        .map_err(|e| GithubError::Transient(format!("hook deliveries: unexpected answer: {e}")))?;

    let guids: Vec<&str> = listed
        .iter()
        .filter(|d| d.failed())
        .map(|d| d.guid.as_str())
        .collect();
    let recorded = recorded_ids(sql, &guids)
        .await
        .map_err(|e| GithubError::Transient(e.to_string()))?;
    let mut asked = Vec::new();
    for g in &guids {
        if let Ok(Some(_)) = kv.get(&asked_key(g)).await {
            asked.push((*g).to_owned());
        }
    }
    let chosen = select(
        &listed,
        &|g| recorded.iter().any(|r| r == g),
        &|g| asked.iter().any(|a| a == g),
        now,
    );
    let mut done = Vec::new();
    for d in chosen {
        let path = format!("{}/{}/attempts", hook.path(), d.id);
        classify(
            http.send(request(api_base, Method::Post, &path, &bearer))
                .await,
        )?;
        // Ask once: a redelivery that fails again shows up as failed, recorded or not.
        let _ = kv
            .put(&asked_key(&d.guid), "1", REDELIVERABLE_FOR_SECONDS as u64)
            .await;
        done.push(d.guid.clone());
    }
    Ok(done)
}

fn asked_key(guid: &str) -> String {
    format!("github:redelivery-asked:{guid}")
}

async fn recorded_ids<S: Sql>(sql: S, guids: &[&str]) -> Result<Vec<String>, StoreError> {
    let valid: Vec<&str> = guids
        .iter()
        .copied()
        .filter(|g| DeliveryId::parse(g).is_some())
        .collect();
    if valid.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(&valid).map_err(StoreError::encode)?;
    let rows = sql
        .query(
            "SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?1))",
            &[list.into()],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| r.opt_text("id")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::deliveries::{DeliveryStore, Outcome};
    use crate::github::events::GithubEvent;
    use crate::testing::{block_on, json_response, FakeHttp, MemoryKv, NoSigner, SqliteSql};

    fn listed(id: u64, guid: &str, status: u16, at: &str) -> ListedDelivery {
        ListedDelivery {
            id,
            guid: guid.into(),
            delivered_at: at.into(),
            redelivery: false,
            status_code: status,
            event: "push".into(),
        }
    }

    #[test]
    fn hook_ids() {
        assert_eq!(
            Hook::parse("octo/app:12"),
            Some(Hook::Repository {
                repo: "octo/app".into(),
                id: 12
            })
        );
        assert_eq!(
            Hook::parse("octo-org:34"),
            Some(Hook::Organization {
                org: "octo-org".into(),
                id: 34
            })
        );
        assert_eq!(Hook::parse("octo/app"), None);
        assert_eq!(Hook::parse("a/b/c:1"), None);
    }

    #[test]
    fn only_failed_recent_unrecorded_unasked_ones() {
        let now = Timestamp::parse_rfc3339("2025-01-15T12:00:00Z").expect("time");
        let l = vec![
            listed(1, "failed-new", 502, "2025-01-15T11:00:00Z"),
            listed(2, "ok", 200, "2025-01-15T11:00:00Z"),
            listed(3, "failed-recorded", 500, "2025-01-15T11:00:00Z"),
            listed(4, "failed-old", 0, "2025-01-10T11:00:00Z"),
            listed(5, "failed-asked", 502, "2025-01-15T11:00:00Z"),
            listed(6, "failed-then-ok", 502, "2025-01-15T10:00:00Z"),
            listed(7, "failed-then-ok", 200, "2025-01-15T10:05:00Z"),
            listed(8, "failed-new", 502, "2025-01-15T11:30:00Z"),
        ];
        let chosen = select(
            &l,
            &|g| g == "failed-recorded",
            &|g| g == "failed-asked",
            now,
        );
        assert_eq!(chosen.iter().map(|d| d.id).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn asks_github_once_per_lost_delivery() {
        let db = SqliteSql::migrated();
        let recorded = DeliveryId::parse("guid-recorded").expect("id");
        let event = GithubEvent::Ping { hook_id: None };
        block_on(DeliveryStore::new(&db).record(
            &recorded,
            &event,
            Outcome::Processed,
            None,
            Timestamp::from_millis(0),
        ))
        .expect("record");
        let now = Timestamp::parse_rfc3339("2025-01-15T12:00:00Z").expect("time");
        let list = serde_json::json!([
            {"id": 11, "guid": "guid-lost", "delivered_at": "2025-01-15T11:00:00Z", "redelivery": false, "status_code": 502, "event": "push"},
            {"id": 12, "guid": "guid-recorded", "delivered_at": "2025-01-15T11:00:00Z", "redelivery": false, "status_code": 500, "event": "push"}
        ]);
        let http = FakeHttp::answering(vec![
            json_response(200, list.clone()),
            json_response(202, serde_json::json!({})),
            json_response(200, list),
        ]);
        let kv = MemoryKv::default();
        let token = Secret::new("ghp_admin");
        let hook = Hook::Repository {
            repo: "octo/app".into(),
            id: 9,
        };
        let run = || {
            block_on(redeliver_failed(
                &http,
                &db,
                &kv,
                &NoSigner,
                "http://gh.test",
                &hook,
                HookAuth::Token(&token),
                now,
            ))
            .expect("ran")
        };
        assert_eq!(run(), vec!["guid-lost"]);
        assert_eq!(run(), Vec::<String>::new(), "asked once");
        assert_eq!(
            http.calls(),
            vec![
                "GET http://gh.test/repos/octo/app/hooks/9/deliveries?per_page=100",
                "POST http://gh.test/repos/octo/app/hooks/9/deliveries/11/attempts",
                "GET http://gh.test/repos/octo/app/hooks/9/deliveries?per_page=100",
            ]
        );
    }
}
