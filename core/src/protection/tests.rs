//! Deployment protection rules in scenarios: the signed fixture's event recorded on
//! SQLite with the real migrations, a fake GitHub that issues installation tokens and
//! takes (or refuses) reviews, and the message each destination should show.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use super::*;
use crate::chatops::Action;
use crate::config::Config;
use crate::github::events::{parse, GithubEvent};
use crate::http::HttpError;
use crate::ports::Sql;
use crate::row::Columns;
use crate::testing::{
    block_on, fake_deps, json_response, FakeHttp, MemoryKv, MemoryQueue, NativeCipher, SqliteSql,
    StubSigner,
};

const TEST_APP_KEY: &str = include_str!("../github/app/test-key.pkcs1.pem");
const T0: i64 = 1_764_000_000_000;
const REVIEW_URL: &str =
    "http://gh.test/repos/octo-org/octo-repo/actions/runs/289782451/deployment_protection_rule";
const TOKEN_URL: &str = "http://gh.test/app/installations/12345678/access_tokens";

fn fixture() -> ProtectionRuleEvent {
    let path = format!(
        "{}/../tests/fixtures/github/deployment_protection_rule.requested.json",
        env!("CARGO_MANIFEST_DIR")
    );
    match parse(
        "deployment_protection_rule",
        &std::fs::read(&path).expect("fixture"),
    ) {
        Ok(GithubEvent::DeploymentProtectionRule(r)) => r,
        other => panic!("not a protection rule: {other:?}"),
    }
}

/// GitHub as the review needs it: installation tokens for the App, and the review
/// endpoint answering from `answers` (204 once they run out). Every review is kept
/// with the token it came with.
#[derive(Default)]
struct Github {
    answers: VecDeque<Result<u16, HttpError>>,
    reviews: Vec<(String, serde_json::Value)>,
}

struct World {
    github: Rc<RefCell<Github>>,
    http: FakeHttp,
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    cipher: NativeCipher,
    config: Config,
    clock: Cell<i64>,
    /// The last Telegram update id a press came in.
    updates: Cell<i64>,
}

impl World {
    fn new() -> World {
        World::configured(true)
    }

    fn configured(github_app: bool) -> World {
        let github = Rc::new(RefCell::new(Github::default()));
        let g = github.clone();
        let http = FakeHttp::routed(move |req| match req.url.as_str() {
            TOKEN_URL => {
                assert!(
                    req.header_value("authorization")
                        .is_some_and(|a| a.starts_with("Bearer ey")),
                    "the App JWT"
                );
                json_response(201, serde_json::json!({"token": "ghs_installation"}))
            }
            REVIEW_URL => {
                assert_eq!(req.method, Method::Post);
                let mut g = g.borrow_mut();
                let body =
                    serde_json::from_str(req.body.as_deref().unwrap_or("null")).expect("JSON body");
                let token = req.header_value("authorization").unwrap_or("").to_owned();
                g.reviews.push((token, body));
                match g.answers.pop_front().unwrap_or(Ok(204)) {
                    Ok(204) => Ok(crate::http::HttpResponse::new(204, String::new())),
                    Ok(status) => json_response(
                        status,
                        serde_json::json!({"message": format!("refused with {status}")}),
                    ),
                    Err(e) => Err(e),
                }
            }
            url => panic!("the fake does not serve {url}"),
        });
        let config = Config::from_lookup(move |k| {
            Some(
                match k {
                    "GITHUB_APP_ID" if github_app => "7",
                    "GITHUB_APP_PRIVATE_KEY" if github_app => TEST_APP_KEY,
                    "GITHUB_TOKEN" if !github_app => "ghp_personal",
                    "GITHUB_API_BASE" => "http://gh.test",
                    "TELEGRAM_BOT_TOKEN" => "42:TOKEN",
                    "TELEGRAM_CHAT_ID" => "-100",
                    "TELEGRAM_API_BASE" => "http://tg.test",
                    "TELEGRAM_PACE" => "off",
                    "PROTECTION_TIMEOUT_MINUTES" => "60",
                    "STEP_STALE_SECONDS" => "30",
                    "SWEEP_AFTER_SECONDS" => "120",
                    _ => return None,
                }
                .to_owned(),
            )
        });
        World {
            github,
            http,
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            cipher: NativeCipher::default(),
            config,
            clock: Cell::new(T0),
            updates: Cell::new(0),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.clock.get())
    }

    fn later(&self, seconds: i64) {
        self.clock.set(self.clock.get() + seconds * 1000);
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Deps<'_, crate::testing::FakePorts<'_, StubSigner>>) -> T,
    ) -> T {
        let deps = fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &StubSigner,
            &self.cipher,
        );
        f(&deps)
    }

    /// Delivery `delivery` of the fixture, processed.
    fn requested(&self, delivery: &str) -> String {
        let id = DeliveryId::parse(delivery).expect("delivery id");
        self.with(|d| block_on(on_event(d, &id, &fixture(), self.now())))
            .expect("processed")
    }

    /// A press by `by` (Telegram user 4242), a Telegram update of its own.
    fn decide(&self, id: i64, state: Review, by: &str) -> Result<Decided, DecideError> {
        self.updates.set(self.updates.get() + 1);
        self.decide_in(id, state, by, &format!("telegram:{}", self.updates.get()))
    }

    /// A press by `by` in update `key`.
    fn decide_in(
        &self,
        id: i64,
        state: Review,
        by: &str,
        key: &str,
    ) -> Result<Decided, DecideError> {
        let reviewer = Reviewer {
            name: by,
            telegram_user: Some(4242),
            key: Some(key),
        };
        self.with(|d| block_on(decide(d, id, state, reviewer, self.now())))
    }

    fn review(&self, id: i64) -> Run {
        self.with(|d| block_on(run_review(d, id, self.now())))
    }

    fn sweep(&self) -> Vec<String> {
        self.with(|d| block_on(sweep(d, self.now())))
    }

    fn request(&self, id: i64) -> Request {
        block_on(ProtectionStore::new(&self.db).get(id))
            .expect("read")
            .expect("recorded")
    }

    /// What the request's message should read in each destination: (chat, html).
    fn messages(&self, id: i64) -> Vec<(String, String)> {
        block_on(self.db.query(
            "SELECT chat_id, html FROM telegram_live WHERE subject = ?1 ORDER BY id",
            &[format!("protection:{id}").into()],
        ))
        .expect("live rows")
        .iter()
        .map(|r| {
            (
                r.opt_text("chat_id").unwrap_or_default(),
                r.opt_text("html").unwrap_or_default(),
            )
        })
        .collect()
    }

    fn reviews(&self) -> Vec<(String, serde_json::Value)> {
        self.github.borrow().reviews.clone()
    }
}

#[test]
fn a_request_posts_its_message_and_an_operators_approval_reaches_github() {
    let w = World::new();
    let detail = w.requested("d-1");
    assert_eq!(
        detail,
        "protection request 1: octo-org/octo-repo to production at 3484a3f is pending"
    );
    let r = w.request(1);
    assert_eq!(
        (
            r.status,
            r.run_id,
            r.installation_id,
            r.environment.as_str()
        ),
        (Status::Pending, 289_782_451, 12_345_678, "production")
    );
    assert_eq!(
        r.expires_at,
        T0 + 3_600_000,
        "PROTECTION_TIMEOUT_MINUTES=60"
    );
    let shown = w.messages(1);
    assert_eq!(shown.len(), 1, "the default route: {shown:?}");
    assert_eq!(shown[0].0, "-100");
    assert!(
        shown[0].1.starts_with(
            "<b>🛡 Deployment review: octo-org/octo-repo → production</b>\n\
             <b>Repository:</b> octo-org/octo-repo\n\
             <b>Commit:</b> <code>3484a3f</code> on master\n\
             <b>Run:</b> 289782451 (repository_dispatch by Codertocat)\n\
             <b>Status:</b> ⏳ waiting for approval until "
        ),
        "{}",
        shown[0].1
    );
    assert_eq!(
        w.queue.telegram.borrow().len(),
        1,
        "its send is queued on TELEGRAM"
    );
    assert!(w.reviews().is_empty(), "nothing is sent before a decision");

    w.later(60);
    let decided = w.decide(1, Review::Approved, "@alice").expect("decided");
    assert_eq!(decided.request.status, Status::Approved);
    assert_eq!(
        decided.log,
        "protection request 1: GitHub took the review (approved)"
    );
    assert_eq!(
        w.reviews(),
        vec![(
            "Bearer ghs_installation".to_owned(),
            serde_json::json!({
                "environment_name": "production",
                "state": "approved",
                "comment": "Approved in Telegram by @alice (Telegram user 4242) via edge-notifier",
            })
        )],
        "the installation's token, the environment, and who decided"
    );
    assert_eq!(
        w.http.calls()[0],
        format!("POST {TOKEN_URL}"),
        "the token of the event's installation"
    );
    let r = w.request(1);
    assert_eq!(
        (r.decided_by.as_deref(), r.decided_by_id, r.decided_at),
        (Some("@alice"), Some(4242), Some(T0 + 60_000))
    );
    let shown = w.messages(1);
    assert!(
        shown[0].1.ends_with("<b>Status:</b> ✅ approved by @alice"),
        "{}",
        shown[0].1
    );
}

#[test]
fn a_request_is_decided_once() {
    let w = World::new();
    w.requested("d-1");
    w.decide(1, Review::Rejected, "@bob").expect("decided");
    assert_eq!(
        w.decide(1, Review::Approved, "@alice"),
        Err(DecideError::Decided("already rejected by @bob".into()))
    );
    assert_eq!(
        w.decide(1, Review::Rejected, "@bob"),
        Err(DecideError::Decided("already rejected by @bob".into())),
        "a double tap acts once"
    );
    let reviews = w.reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].1["state"], "rejected");
    assert_eq!(w.request(1).status, Status::Rejected);
    assert!(w.messages(1)[0]
        .1
        .ends_with("<b>Status:</b> ❌ rejected by @bob"));
    assert_eq!(
        w.decide(9, Review::Approved, "@alice"),
        Err(DecideError::NotFound)
    );
}

#[test]
fn the_press_processed_again_finds_its_own_decision() {
    let w = World::new();
    w.requested("d-1");
    let first = w
        .decide_in(1, Review::Approved, "@alice", "telegram:5")
        .expect("decided");
    assert_eq!(first.request.status, Status::Approved);
    // Its update is processed again (its consumer failed after deciding): the same
    // decision, not someone else's, and no second review.
    let again = w
        .decide_in(1, Review::Approved, "@alice", "telegram:5")
        .expect("its own");
    assert_eq!(again.outcome(), Ok("GitHub took the review".to_owned()));
    assert_eq!(w.reviews().len(), 1);
    assert_eq!(
        w.decide_in(1, Review::Approved, "@alice", "telegram:6"),
        Err(DecideError::Decided("already approved by @alice".into()))
    );
}

#[test]
fn the_message_offers_approve_and_reject_while_pending() {
    let w = World::new();
    w.requested("d-1");
    let buttons = || {
        block_on(w.db.query(
            "SELECT buttons FROM telegram_live WHERE subject = 'protection:1'",
            &[],
        ))
        .expect("live row")[0]
            .opt_text("buttons")
            .unwrap_or_default()
    };
    assert_eq!(buttons(), "approve,reject");
    let offer = |a| block_on(offers(&w.db, 1, a)).expect("read");
    assert!(offer(Action::Approve) && offer(Action::Reject));
    assert!(!offer(Action::Cancel));
    w.decide(1, Review::Approved, "@alice").expect("decided");
    assert!(!offer(Action::Approve) && !offer(Action::Reject));
    assert_eq!(buttons(), "", "decided: no keyboard");
    assert!(!block_on(offers(&w.db, 9, Action::Approve)).expect("read"));
}

#[test]
fn an_admin_decision_leaves_an_audit_row() {
    use crate::audit::{AuditStore, Outcome, SubjectKind};
    let w = World::new();
    w.requested("d-1");
    let admin = |state| w.with(|d| block_on(decide_for_admin(d, 1, state, w.now())));
    let done = admin(Review::Rejected).expect("decided");
    assert_eq!(
        (done.request.status, done.request.decided_by.as_deref()),
        (Status::Rejected, Some("admin API"))
    );
    assert_eq!(
        admin(Review::Approved),
        Err(DecideError::Decided("already rejected by admin API".into()))
    );
    let trail = block_on(AuditStore::new(&w.db).of(SubjectKind::Protection, "1")).expect("audit");
    let rows: Vec<_> = trail
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.result,
                e.detail.as_deref(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "reject",
                Outcome::Done,
                Some("GitHub took the review"),
                "admin API"
            ),
            (
                "approve",
                Outcome::Refused,
                Some("already rejected by admin API"),
                "admin API"
            ),
        ]
    );
    assert_eq!(
        w.reviews()[0].1["comment"],
        "Rejected by admin API via edge-notifier"
    );
}

#[test]
fn the_same_delivery_processed_again_is_the_same_request() {
    let w = World::new();
    w.requested("d-1");
    w.later(5);
    assert_eq!(
        w.requested("d-1"),
        "protection request 1: octo-org/octo-repo to production at 3484a3f is pending"
    );
    assert_eq!(w.messages(1).len(), 1);
    assert_eq!(
        w.queue.telegram.borrow().len(),
        1,
        "the message did not change, so nothing is sent again"
    );
    // Another delivery (a re-run of the job) is another request.
    let detail = w.requested("d-2");
    let recent = block_on(ProtectionStore::new(&w.db).recent(10)).expect("read");
    assert_eq!(recent.len(), 2, "{detail}");
    assert_eq!(
        (recent[0].delivery_id.as_str(), recent[0].status),
        ("d-2", Status::Pending)
    );
}

#[test]
fn nobody_deciding_in_time_rejects_it_on_github() {
    let w = World::new();
    w.requested("d-1");
    w.later(3600);
    assert_eq!(
        w.decide(1, Review::Approved, "@alice"),
        Err(DecideError::Expired),
        "a tap after the expiry takes no decision"
    );
    assert_eq!(
        w.sweep(),
        vec!["protection request 1 expired: rejecting it".to_owned()]
    );
    assert_eq!(
        *w.queue.sent.borrow(),
        vec![JobMessage::ProtectionReview { id: 1 }]
    );
    let r = w.request(1);
    assert_eq!(
        (r.status, r.state),
        (Status::Reviewing, Some(Review::Rejected))
    );
    assert_eq!(
        w.review(1).log,
        "protection request 1: GitHub took the review (timed_out)"
    );
    assert_eq!(
        w.reviews()[0].1,
        serde_json::json!({
            "environment_name": "production",
            "state": "rejected",
            "comment": "Rejected by edge-notifier: nobody decided within 1 h",
        })
    );
    assert_eq!(w.request(1).status, Status::TimedOut);
    assert!(w.messages(1)[0]
        .1
        .ends_with("<b>Status:</b> ⌛ rejected on GitHub: nobody decided within 1 h"));
    assert_eq!(
        w.decide(1, Review::Approved, "@alice"),
        Err(DecideError::Expired)
    );
    // The next cron run finds nothing more to do.
    w.later(600);
    assert!(w.sweep().is_empty());
    assert_eq!(w.queue.sent.borrow().len(), 1);
}

#[test]
fn a_github_outage_is_retried_and_the_review_is_sent_once() {
    let w = World::new();
    w.github
        .borrow_mut()
        .answers
        .extend([Ok(502), Err(HttpError::Network("reset".into()))]);
    w.requested("d-1");
    let decided = w.decide(1, Review::Approved, "@alice").expect("decided");
    assert_eq!(decided.request.status, Status::Reviewing);
    assert_eq!(
        decided.log,
        "protection request 1: GitHub 502: refused with 502; the review is sent again in 2 s"
    );
    assert_eq!(
        *w.queue.later.borrow(),
        vec![(JobMessage::ProtectionReview { id: 1 }, 2)]
    );
    assert!(w.messages(1)[0]
        .1
        .ends_with("<b>Status:</b> 📨 approved by @alice; telling GitHub"));
    // Its message comes early (another copy): the retry is not due yet.
    assert_eq!(w.review(1).log, "protection request 1: no review due");
    w.later(2);
    assert!(w.review(1).log.ends_with("the review is sent again in 4 s"));
    w.later(4);
    assert_eq!(
        w.review(1).log,
        "protection request 1: GitHub took the review (approved)"
    );
    assert_eq!(w.reviews().len(), 3);
    let r = w.request(1);
    assert_eq!((r.status, r.attempts), (Status::Approved, 2));
    // A late copy of the message changes nothing.
    assert_eq!(w.review(1).log, "protection request 1: no review due");
    assert_eq!(w.reviews().len(), 3);
}

#[test]
fn a_review_github_refuses_fails_and_says_why() {
    let w = World::new();
    w.github.borrow_mut().answers.push_back(Ok(422));
    w.requested("d-1");
    let decided = w.decide(1, Review::Approved, "@alice").expect("decided");
    assert_eq!(decided.request.status, Status::Failed);
    assert_eq!(
        decided.request.last_error.as_deref(),
        Some("GitHub 422: refused with 422")
    );
    assert!(
        w.messages(1)[0].1.ends_with(
            "<b>Status:</b> ⚠️ approved by @alice, but GitHub did not take the review: GitHub 422: refused with 422"
        ),
        "{}",
        w.messages(1)[0].1
    );
    assert_eq!(w.review(1).log, "protection request 1: no review due");
    assert_eq!(w.reviews().len(), 1, "a refusal is not retried");
}

#[test]
fn five_transient_failures_fail_the_review() {
    let w = World::new();
    w.github
        .borrow_mut()
        .answers
        .extend(std::iter::repeat_n(Ok(503), 5));
    w.requested("d-1");
    w.decide(1, Review::Rejected, "@bob").expect("decided");
    for _ in 0..4 {
        w.later(600);
        w.review(1);
    }
    let r = w.request(1);
    assert_eq!((r.status, r.attempts), (Status::Failed, 4));
    assert_eq!(w.reviews().len(), MAX_STEP_ATTEMPTS as usize);
}

#[test]
fn a_lost_review_message_is_sent_again_by_the_cron() {
    let w = World::new();
    w.github.borrow_mut().answers.push_back(Ok(500));
    w.requested("d-1");
    w.decide(1, Review::Approved, "@alice").expect("decided");
    w.queue.later.borrow_mut().clear();
    // Not before SWEEP_AFTER_SECONDS: its own message may still come.
    w.later(60);
    assert!(w.sweep().is_empty());
    assert!(w.queue.sent.borrow().is_empty());
    w.later(61);
    assert_eq!(
        w.sweep(),
        vec!["protection request 1: its review is sent again".to_owned()]
    );
    assert_eq!(
        *w.queue.sent.borrow(),
        vec![JobMessage::ProtectionReview { id: 1 }]
    );
    w.review(1);
    assert_eq!(w.request(1).status, Status::Approved);
}

#[test]
fn an_attempt_that_holds_the_claim_keeps_the_review_to_itself() {
    let w = World::new();
    w.requested("d-1");
    block_on(ProtectionStore::new(&w.db).decide(
        1,
        Review::Approved,
        ("@alice", None),
        None,
        w.now(),
    ))
    .expect("decided")
    .expect("pending");
    let claims = w.config.step_claims();
    block_on(ProtectionStore::new(&w.db).claim(1, claims, w.now()))
        .expect("claim")
        .expect("claimed");
    // Another copy of the message while the first attempt is under way.
    assert_eq!(w.review(1).log, "protection request 1: no review due");
    w.later(200);
    assert_eq!(
        w.sweep(),
        vec!["protection request 1: its review is sent again".to_owned()]
    );
    assert_eq!(
        *w.queue.sent.borrow(),
        vec![JobMessage::ProtectionReview { id: 1 }],
        "the claim went stale: its consumer died"
    );
    w.review(1);
    assert_eq!(w.request(1).status, Status::Approved);
    assert_eq!(
        w.reviews()[0].1["comment"],
        "Approved by @alice via edge-notifier"
    );
}

#[test]
fn without_the_github_app_nothing_is_recorded() {
    let w = World::configured(false);
    assert_eq!(
        w.requested("d-1"),
        "deployment protection rules are reviewed through the GitHub App, and GITHUB_APP_ID is not configured"
    );
    assert_eq!(
        block_on(ProtectionStore::new(&w.db).recent(10)).expect("read"),
        Vec::new()
    );
}

#[test]
fn an_apps_name_and_chat_route_the_message() {
    let w = World::new();
    let app = crate::apps::App::parse(
        br#"{"repository": "octo-org/octo-repo", "production_branch": "master",
            "environment": "production", "deploy_on": "push", "telegram_chat_id": "-300",
            "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/x"}}"#,
    )
    .expect("app");
    block_on(crate::apps::AppStore::new(&w.db).put(
        &crate::names::AppName::parse("octo").expect("name"),
        &app,
        w.now(),
    ))
    .expect("stored");
    w.requested("d-1");
    let shown = w.messages(1);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].0, "-300", "the app's own chat");
    assert!(shown[0]
        .1
        .starts_with("<b>🛡 Deployment review: octo → production</b>"));
}

#[test]
fn the_review_body_names_who_decided() {
    let w = World::new();
    w.requested("d-1");
    let mut r = w.request(1);
    r.decided_by = Some("admin API".into());
    assert_eq!(
        review_body(&r, Review::Rejected),
        serde_json::json!({
            "environment_name": "production",
            "state": "rejected",
            "comment": "Rejected by admin API via edge-notifier",
        })
    );
    r.expires_at = r.created_at + 90 * 60_000;
    r.decided_by = None;
    assert_eq!(
        review_body(&r, Review::Rejected)["comment"],
        "Rejected by edge-notifier: nobody decided within 90 min"
    );
}

#[test]
fn the_message_escapes_what_it_shows_and_links_the_run_on_github_com() {
    let w = World::new();
    w.requested("d-1");
    let mut r = w.request(1);
    r.environment = "<prod>".into();
    r.sender = Some("a&b".into());
    r.trigger = None;
    r.git_ref = Some("refs/tags/v1".into());
    let html = render(
        &r,
        "app",
        Some("https://github.com/octo-org/octo-repo/actions/runs/289782451"),
    );
    assert!(html.starts_with(
        "<b>🛡 Deployment review: app → &lt;prod&gt;</b>\n<b>Repository:</b> octo-org/octo-repo\n\
         <b>Commit:</b> <code>3484a3f</code>\n\
         <b>Run:</b> <a href=\"https://github.com/octo-org/octo-repo/actions/runs/289782451\">289782451</a> (by a&amp;b)\n"
    ), "{html}");
    assert_eq!(
        run_url(&r, "https://api.github.com").as_deref(),
        Some("https://github.com/octo-org/octo-repo/actions/runs/289782451")
    );
    assert_eq!(run_url(&r, "http://gh.test"), None);
}
