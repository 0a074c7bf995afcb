//! A deploy job acted on from its page (`/jobs/{id}`): the same chat-ops code a
//! Telegram press goes through, judged against the version of the job the page
//! showed, and left in the audit trail under the viewer's name.

use super::*;
use crate::audit::{AuditStore, Outcome as Audited, SubjectKind};
use crate::chatops::Action;
use crate::deploy::approval;
use crate::web::pages::{actions, job as page, PageError};
use crate::web::viewer::Viewer;

fn operator() -> Viewer {
    Viewer {
        name: "ops@example.com".into(),
        operator: true,
        csrf: "t".into(),
    }
}

fn gated() -> Scenario {
    let s = Scenario::new(HOOK);
    s.put_app(&format!(
        r#"{{"repository": "{REPO}", "production_branch": "main", "environment": "production",
        "deploy_on": "push", "health_url": "https://app.example.com/health", "deploy": {HOOK},
        "approval": {{"required": true, "timeout_minutes": 60}}}}"#
    ));
    s
}

impl Scenario {
    /// The job page as it is now: what it offers and its version.
    fn page(&self, id: i64) -> page::JobView {
        block_on(page::load(&self.db, id)).expect("the job page loads")
    }

    fn press(
        &self,
        viewer: &Viewer,
        id: i64,
        action: Action,
        version: &str,
    ) -> Result<String, PageError> {
        block_on(actions::on_job(
            &self.deps(),
            viewer,
            id,
            action,
            version,
            self.now(),
        ))
    }

    fn trail(&self, id: i64) -> Vec<(String, String, Audited)> {
        block_on(AuditStore::new(&self.db).of(SubjectKind::Job, &id.to_string()))
            .expect("trail")
            .into_iter()
            .map(|e| (e.actor, e.action, e.result))
            .collect()
    }
}

#[test]
fn an_operator_approves_from_the_job_page_and_a_second_submit_acts_never() {
    let s = gated();
    s.push(1);
    s.drain();
    let shown = s.page(1);
    assert_eq!(shown.offers, vec![Action::Approve, Action::Reject]);
    assert_eq!(
        s.press(&operator(), 1, Action::Approve, &shown.version),
        Ok("/jobs/1".into())
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    // The same form again: the job has moved on, nothing is decided twice.
    assert_eq!(
        s.press(&operator(), 1, Action::Approve, &shown.version),
        Err(PageError::MovedOn(
            "This job has moved on since the page was shown. Look at it again before you act."
                .into()
        ))
    );
    assert_eq!(
        s.trail(1),
        vec![
            ("ops@example.com".into(), "approve".into(), Audited::Done),
            ("ops@example.com".into(), "approve".into(), Audited::Refused),
        ],
        "the second submit's refusal is on the trail too"
    );
    let rendered = page::render(&s.page(1), &operator(), s.now());
    assert!(
        rendered.contains("ops@example.com</strong> approve"),
        "the trail names the viewer"
    );
    assert!(
        !rendered.contains("id=\"actions\""),
        "a finalized first job offers nothing more"
    );
}

#[test]
fn a_rejection_from_the_page_fails_the_job_without_deploying() {
    let s = gated();
    s.push(1);
    s.drain();
    let v = s.page(1).version;
    assert!(s.press(&operator(), 1, Action::Reject, &v).is_ok());
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job
        .error
        .unwrap_or_default()
        .contains("rejected by ops@example.com"));
}

#[test]
fn someone_who_is_not_an_operator_is_refused_and_the_refusal_is_audited() {
    let s = gated();
    s.push(1);
    s.drain();
    let v = s.page(1).version;
    let onlooker = Viewer {
        name: "dev@example.com".into(),
        operator: false,
        csrf: "t".into(),
    };
    let e = s
        .press(&onlooker, 1, Action::Approve, &v)
        .expect_err("refused");
    assert_eq!(e.status(), 403);
    assert!(approval::gate::is_awaiting(&s.job(1)), "nothing decided");
    assert_eq!(
        s.trail(1),
        vec![("dev@example.com".into(), "approve".into(), Audited::Refused)]
    );
}

#[test]
fn a_form_from_before_the_job_moved_is_refused() {
    let s = gated();
    s.push(1);
    let stale = s.page(1).version;
    s.drain();
    let e = s
        .press(&operator(), 1, Action::Approve, &stale)
        .expect_err("stale");
    assert_eq!(e.status(), 409);
    assert!(approval::gate::is_awaiting(&s.job(1)));
    assert_eq!(
        s.trail(1),
        vec![("ops@example.com".into(), "approve".into(), Audited::Refused)],
        "refused, and on the trail"
    );
    let e = s
        .press(&operator(), 99, Action::Approve, "1.2.3")
        .expect_err("no job");
    assert_eq!(e, PageError::NotFound);
}

#[test]
fn a_rollback_from_the_page_makes_one_job_however_often_the_form_is_sent() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    s.push(2);
    s.drain();
    let shown = s.page(2);
    assert_eq!(shown.offers, vec![Action::Rollback]);
    assert!(s
        .press(&operator(), 2, Action::Rollback, &shown.version)
        .is_ok());
    let count = s.job_count();
    assert_eq!(count, 3);
    assert!(s
        .press(&operator(), 2, Action::Rollback, &shown.version)
        .is_err());
    assert_eq!(s.job_count(), count, "a double submit makes no second job");
    s.drain();
    let rollback = s.job(3);
    assert_eq!(rollback.kind, crate::deploy::JobKind::Rollback);
    assert_eq!(rollback.sha, sha(1).as_str());
    assert_eq!(rollback.requested_by.as_deref(), Some("ops@example.com"));
    assert_eq!(rollback.status, JobStatus::Finalized);
}

#[test]
fn with_public_url_the_jobs_telegram_message_links_to_its_page() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    let job = s.job(1);
    let plain = crate::deploy::message::render(&job, None);
    let linked = crate::deploy::message::render(&job, Some("https://notifier.example.com"));
    assert!(
        !plain.contains("href"),
        "without PUBLIC_URL, as it always was"
    );
    assert_eq!(
        linked,
        format!("{plain}\n\n<a href=\"https://notifier.example.com/jobs/1\">Job page</a>")
    );
}
