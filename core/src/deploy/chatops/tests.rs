//! What a deploy job offers as it moves, and what the commands read about jobs
//! (SQLite, the real migrations). What the actions do is in the dispatcher's
//! scenarios (`dispatch/telegram/tests.rs`).

use super::*;
use crate::deploy::store::NewJob;
use crate::deploy::StepState;
use crate::github::CommitSha;
use crate::testing::{block_on, SqliteSql};

fn standing(status: JobStatus, newest: Option<i64>, previous: Option<i64>) -> Standing {
    Standing {
        status,
        newest,
        previous,
        awaiting: false,
    }
}

#[test]
fn a_job_offers_cancel_while_it_runs_then_roll_back_or_retry_while_it_is_the_latest() {
    use JobStatus::*;
    let b = |status, newest, previous| buttons(5, &standing(status, newest, previous));
    assert_eq!(
        b(Waiting, Some(6), None),
        vec![Action::Cancel],
        "a waiting job, even an older one"
    );
    assert_eq!(b(Processing, Some(5), None), vec![Action::Cancel]);
    assert_eq!(
        b(Reverting, Some(5), Some(4)),
        vec![],
        "a revert is seen through"
    );
    assert_eq!(b(Finalized, Some(5), Some(4)), vec![Action::Rollback]);
    assert_eq!(
        b(Finalized, Some(5), None),
        vec![],
        "nothing earlier to go back to"
    );
    assert_eq!(b(Finalized, Some(6), Some(4)), vec![], "a newer job came");
    assert_eq!(b(Failed, Some(5), None), vec![Action::Retry]);
    assert_eq!(b(Reverted, Some(5), Some(4)), vec![Action::Retry]);
    assert_eq!(b(Reverted, Some(7), Some(4)), vec![]);
    assert_eq!(b(Cancelled, Some(5), Some(4)), vec![]);
}

struct Jobs {
    db: SqliteSql,
}

impl Jobs {
    fn new() -> Jobs {
        Jobs {
            db: SqliteSql::migrated(),
        }
    }

    /// A job of app `shop` at commit `n`, moved to `status`.
    fn add(&self, n: u8, status: JobStatus) -> i64 {
        let sha = CommitSha::parse(&format!("{n:02x}").repeat(20)).expect("sha");
        let app = AppName::parse("shop").expect("name");
        let commits = [crate::github::events::PushCommit {
            id: sha.clone(),
            subject: format!("Change {n}"),
            author: None,
            timestamp: None,
        }];
        let store = JobStore::new(&self.db);
        let (id, _) = block_on(store.create(
            &NewJob {
                app: &app,
                environment: "production",
                sha: &sha,
                before: None,
                forced: false,
                git_ref: "refs/heads/main",
                delivery_id: None,
                pusher: None,
                installation_id: None,
                commits: &commits,
                steps: &[(crate::deploy::StepName::Trigger, StepState::Pending)],
            },
            Timestamp::from_millis(1_736_937_000_000),
        ))
        .expect("created");
        self.db
            .conn_for_tests()
            .execute(
                "UPDATE deploy_jobs SET status = ?2 WHERE id = ?1",
                rusqlite::params![id, status.as_str()],
            )
            .expect("moved");
        id
    }

    fn app(&self) -> NamedApp {
        let app = App::parse(
            br#"{"repository": "o/shop", "production_branch": "main", "environment": "production",
            "deploy_on": "push", "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/x"}}"#,
        )
        .expect("app");
        NamedApp {
            name: AppName::parse("shop").expect("name"),
            app,
            created_at: 0,
            updated_at: 0,
        }
    }
}

#[test]
fn where_a_job_stands_is_read_in_one_query() {
    let j = Jobs::new();
    let one = j.add(1, JobStatus::Finalized);
    let two = j.add(2, JobStatus::Finalized);
    let again = j.add(1, JobStatus::Finalized);
    j.add(3, JobStatus::Cancelled);
    let store = JobStore::new(&j.db);
    let of = |id| {
        block_on(store.standing(id))
            .expect("standing")
            .expect("a job")
    };
    assert_eq!(
        of(two),
        standing(JobStatus::Finalized, Some(again), Some(one))
    );
    // Back at commit 1: what came before it of another commit is job 2.
    assert_eq!(
        of(again),
        standing(JobStatus::Finalized, Some(again), Some(two))
    );
    assert_eq!(of(one).previous, None);
    assert_eq!(block_on(store.standing(99)).expect("standing"), None);
}

#[test]
fn rollback_offers_the_latest_finalized_job_and_says_why_not_otherwise() {
    let j = Jobs::new();
    let app = j.app();
    let offer = || block_on(rollback_offer(&j.db, &app)).expect("offer");
    assert_eq!(
        offer(),
        RollbackOffer::Nothing("shop has no deploy yet".into())
    );
    j.add(1, JobStatus::Finalized);
    assert_eq!(
        offer(),
        RollbackOffer::Nothing("shop has no earlier commit to roll back to".into())
    );
    let two = j.add(2, JobStatus::Finalized);
    assert_eq!(
        offer(),
        RollbackOffer::Offer {
            job: two,
            environment: "production".into(),
            from: "02".repeat(20),
            to: "01".repeat(20),
        }
    );
    let three = j.add(3, JobStatus::Processing);
    assert_eq!(
        offer(),
        RollbackOffer::Nothing(format!("shop's latest job ({three}) is processing"))
    );
}

#[test]
fn status_and_recent_deploys_read_as_people_do() {
    let j = Jobs::new();
    let app = j.app();
    let apps = [app.clone()];
    let url = Some("https://n.example.com");
    assert_eq!(
        block_on(board(&j.db, &apps, url)).expect("board"),
        "<b>Status</b>\n\n<b>shop</b> → production: nothing deployed yet"
    );
    let one = j.add(1, JobStatus::Finalized);
    let two = j.add(2, JobStatus::Processing);
    let three = j.add(3, JobStatus::Waiting);
    assert_eq!(
        block_on(board(&j.db, &apps, None)).expect("board"),
        format!(
            "<b>Status</b>\n\n<b>shop</b> → production: <code>0101010</code> Change 1 (job {one})\n  \
             🚀 processing <code>0202020</code> (job {two})\n  🕒 waiting <code>0303030</code> (job {three})"
        )
    );
    assert_eq!(
        block_on(board(&j.db, &[], None)).expect("board"),
        "<b>Status</b>\n\nNo app deploys anything yet."
    );
    let recent = block_on(recent(&j.db, &app.name, url)).expect("recent");
    let lines: Vec<&str> = recent.lines().collect();
    assert_eq!(lines[0], "<b>Last deploys of shop</b>");
    assert!(lines[2].starts_with(&format!(
        "🕒 <a href=\"https://n.example.com/jobs/{three}\">job {three}</a> <code>0303030</code> Change 3 — waiting, "
    )), "{}", lines[2]);
    assert_eq!(lines.len(), 5, "a title, a blank line and three jobs");
}
