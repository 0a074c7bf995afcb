//! Who the Worker is on GitHub: the login its comments carry. With a GitHub App
//! that is the App's bot user, `<slug>[bot]` (`GET /app` with the App's JWT gives
//! the slug); with a personal token it is the token's user (`GET /user`). Either is
//! cached in KV for a day, so finding a comment costs no extra call.

use super::app::{app_jwt, GithubApp, RsaSigner};
use super::client::{api_request, classify, GithubConfig, GithubError};
use crate::config::GithubSettings;
use crate::http::Method;
use crate::ports::{Http, Kv};
use crate::time::Timestamp;

/// How long a looked-up login is reused.
pub const LOGIN_CACHE_SECONDS: u64 = 24 * 3600;

/// The login of the identity `gh` calls GitHub as: the App's bot when the App
/// speaks for `installation_id` (as `github_for` decides), else the token's user.
pub async fn own_login<H: Http, K: Kv, R: RsaSigner>(
    http: &H,
    kv: &K,
    signer: &R,
    settings: &GithubSettings,
    installation_id: Option<u64>,
    gh: &GithubConfig,
    now: Timestamp,
) -> Result<String, GithubError> {
    match (&settings.app, installation_id) {
        (Some(app), Some(_)) => app_login(http, kv, signer, &settings.api_base, app, now).await,
        _ => token_login(http, kv, gh).await,
    }
}

async fn app_login<H: Http, K: Kv, R: RsaSigner>(
    http: &H,
    kv: &K,
    signer: &R,
    api_base: &str,
    app: &GithubApp,
    now: Timestamp,
) -> Result<String, GithubError> {
    let key = format!("github:app-login:{}", app.app_id);
    if let Some(login) = cached(kv, &key).await {
        return Ok(login);
    }
    let jwt = app_jwt(signer, app, now).await?;
    let req = api_request(Method::Get, format!("{api_base}/app"), None, jwt.expose());
    let slug = field(&classify(http.send(req).await)?.body, "/slug", "GET /app")?;
    let login = format!("{slug}[bot]");
    remember(kv, &key, &login).await;
    Ok(login)
}

async fn token_login<H: Http, K: Kv>(
    http: &H,
    kv: &K,
    gh: &GithubConfig,
) -> Result<String, GithubError> {
    // Keyed by a digest of the token, so a new token is looked up afresh.
    let key = format!(
        "github:token-login:{}",
        crate::digest::short_hex(gh.token.expose(), 16)
    );
    if let Some(login) = cached(kv, &key).await {
        return Ok(login);
    }
    let req = api_request(
        Method::Get,
        format!("{}/user", gh.api_base),
        None,
        gh.token.expose(),
    );
    let login = field(&classify(http.send(req).await)?.body, "/login", "GET /user")?;
    remember(kv, &key, &login).await;
    Ok(login)
}

async fn cached<K: Kv>(kv: &K, key: &str) -> Option<String> {
    kv.get(key).await.ok().flatten().filter(|l| !l.is_empty())
}

/// A cache miss next time only costs another look-up.
async fn remember<K: Kv>(kv: &K, key: &str, login: &str) {
    let _ = kv.put(key, login, LOGIN_CACHE_SECONDS).await;
}

fn field(body: &str, pointer: &str, what: &str) -> Result<String, GithubError> {
    crate::json::value(body)
        .ok()
        .and_then(|v| crate::json::str_at(&v, pointer).map(str::to_owned))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GithubError::Transient(format!("{what}: unexpected answer")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::testing::{block_on, json_response, FakeHttp, MemoryKv, NoSigner};

    fn settings() -> GithubSettings {
        GithubSettings {
            api_base: "http://gh.test".into(),
            token: Some(Secret::new("ghp_personal".to_owned())),
            app: None,
        }
    }

    fn gh(token: &str) -> GithubConfig {
        GithubConfig {
            api_base: "http://gh.test".into(),
            token: Secret::new(token.to_owned()),
        }
    }

    #[test]
    fn a_tokens_user_is_asked_once_and_cached_per_token() {
        let http = FakeHttp::routed(|req| {
            assert_eq!(req.url, "http://gh.test/user");
            let auth = req.header_value("authorization").unwrap_or_default();
            let login = if auth.ends_with("ghp_personal") {
                "deploy-bot"
            } else {
                "someone-new"
            };
            json_response(200, serde_json::json!({ "login": login, "id": 1 }))
        });
        let kv = MemoryKv::default();
        let now = Timestamp::from_millis(0);
        let who = |token: &str| {
            block_on(own_login(
                &http,
                &kv,
                &NoSigner,
                &settings(),
                None,
                &gh(token),
                now,
            ))
            .expect("login")
        };
        assert_eq!(who("ghp_personal"), "deploy-bot");
        assert_eq!(who("ghp_personal"), "deploy-bot");
        assert_eq!(http.seen.borrow().len(), 1, "cached");
        assert_eq!(
            who("ghp_rotated"),
            "someone-new",
            "a new token is asked for"
        );
        assert_eq!(http.seen.borrow().len(), 2);
        let stored = kv.map.borrow();
        assert!(
            stored.keys().all(|k| !k.contains("ghp_")),
            "no token in a key: {stored:?}"
        );
    }

    struct FixedSigner;

    impl RsaSigner for FixedSigner {
        async fn sign_rs256(&self, _key: &[u8], _data: &[u8]) -> Result<Vec<u8>, String> {
            Ok(vec![1, 2, 3])
        }
    }

    #[test]
    fn an_apps_login_is_its_bot_user_asked_with_the_apps_jwt() {
        let http = FakeHttp::routed(|req| {
            assert_eq!(req.url, "http://gh.test/app");
            let auth = req.header_value("authorization").unwrap_or_default();
            assert!(auth.starts_with("Bearer ey"), "the App's JWT: {auth}");
            json_response(
                200,
                serde_json::json!({ "slug": "edge-notifier", "id": 42 }),
            )
        });
        let kv = MemoryKv::default();
        let settings = GithubSettings {
            app: Some(GithubApp {
                app_id: "42".into(),
                private_key_pkcs8: vec![0; 8],
            }),
            ..settings()
        };
        let who = || {
            block_on(own_login(
                &http,
                &kv,
                &FixedSigner,
                &settings,
                Some(7),
                &gh("ghs_installation"),
                Timestamp::from_millis(0),
            ))
            .expect("login")
        };
        assert_eq!(who(), "edge-notifier[bot]");
        assert_eq!(who(), "edge-notifier[bot]");
        assert_eq!(http.seen.borrow().len(), 1, "cached");
    }

    #[test]
    fn an_unreadable_answer_is_an_error_not_an_empty_identity() {
        let http = FakeHttp::routed(|_| json_response(200, serde_json::json!({ "login": "" })));
        let kv = MemoryKv::default();
        let err = block_on(own_login(
            &http,
            &kv,
            &NoSigner,
            &settings(),
            None,
            &gh("ghp_personal"),
            Timestamp::from_millis(0),
        ))
        .expect_err("no login");
        assert!(err.is_transient());
    }
}
