//! A database for the pages' tests: SQLite with the real migrations, seeded through
//! the stores (apps, jobs and their steps, notifications, deliveries, previews),
//! and the viewers who look.

use crate::apps::{App, AppStore};
use crate::deploy::store::{JobStore, NewJob};
use crate::deploy::{JobStatus, StepName, StepState};
use crate::github::deliveries::{DeliveryId, DeliveryStore, Outcome};
use crate::github::events::{GithubEvent, PushCommit};
use crate::github::CommitSha;
use crate::names::AppName;
use crate::notify::store::{NotificationStatus, NotificationStore};
use crate::testing::{block_on, hook_deployment, SqliteSql};
use crate::time::Timestamp;
use crate::web::viewer::Viewer;

/// The tests' "now": 2025-12-04 01:56 UTC.
pub const NOW: Timestamp = Timestamp::from_millis(1_764_813_360_000);

/// `minutes` before [`NOW`].
pub fn ago(minutes: i64) -> Timestamp {
    NOW.minus_seconds(minutes * 60)
}

pub const HOSTILE: &str = "<script>alert(1)</script>";

pub fn operator() -> Viewer {
    Viewer {
        name: "ops@example.com".into(),
        operator: true,
        csrf: "csrf-token-1".into(),
    }
}

pub fn onlooker() -> Viewer {
    Viewer {
        name: "dev@example.com".into(),
        operator: false,
        csrf: "csrf-token-2".into(),
    }
}

pub fn sha(n: u32) -> CommitSha {
    CommitSha::parse(&format!("{:02x}", n % 256).repeat(20)).expect("sha")
}

/// A migrated database.
pub struct Db {
    pub sql: SqliteSql,
}

impl Db {
    pub fn new() -> Db {
        Db {
            sql: SqliteSql::migrated(),
        }
    }

    pub fn app(&self, name: &str) {
        let app = App::parse(
            format!(
                r#"{{"repository": "octo/{name}", "production_branch": "main", "environment": "production",
                "deploy_on": "push", "deploy": {{"type": "deploy_hook", "url": "https://hooks.example.com/secret-hook-token"}}}}"#
            )
            .as_bytes(),
        )
        .expect("app");
        let name = AppName::parse(name).expect("name");
        block_on(AppStore::new(&self.sql).put(&name, &app, ago(600))).expect("put");
    }

    /// A job of `app` for commit `n` with subject `subject`, made `minutes` ago,
    /// with its steps; returns its id.
    pub fn job(&self, app: &str, n: u32, subject: &str, minutes: i64) -> i64 {
        let name = AppName::parse(app).expect("name");
        let commits = vec![PushCommit {
            id: sha(n),
            subject: subject.into(),
            author: Some("octocat".into()),
            timestamp: None,
        }];
        let delivery = DeliveryId::parse(&format!("push-{app}-{n}")).expect("id");
        let (id, _) = block_on(JobStore::new(&self.sql).create(
            &NewJob {
                app: &name,
                environment: "production",
                sha: &sha(n),
                before: None,
                forced: false,
                git_ref: "refs/heads/main",
                delivery_id: Some(&delivery),
                pusher: Some("octocat"),
                installation_id: None,
                commits: &commits,
                steps: &[
                    (StepName::CreateDeployment, StepState::Pending),
                    (StepName::Trigger, StepState::Pending),
                    (StepName::VerifyHealth, StepState::Pending),
                    (StepName::Finalize, StepState::Pending),
                ],
            },
            ago(minutes),
        ))
        .expect("job");
        id
    }

    /// Starts `app`'s next job `minutes` ago; runs its steps one minute each, the
    /// step at `fail_at` failing with `error`, then moves it to `to`.
    pub fn run(&self, app: &str, minutes: i64, fail_at: Option<(i64, &str)>, to: JobStatus) {
        let jobs = JobStore::new(&self.sql);
        let id = block_on(jobs.try_start(app, "production", ago(minutes)))
            .expect("start")
            .expect("started");
        for position in 0..4 {
            let at = ago(minutes - position);
            block_on(jobs.take_step(id, position, at)).expect("take");
            let end = ago(minutes - position - 1);
            match fail_at {
                Some((p, error)) if p == position => {
                    block_on(jobs.finish_step(
                        id,
                        position,
                        StepState::Failed,
                        None,
                        Some(error),
                        end,
                    ))
                    .expect("fail");
                    block_on(jobs.skip_pending(id, end)).expect("skip");
                    break;
                }
                _ => {
                    block_on(jobs.finish_step(id, position, StepState::Done, None, None, end))
                        .expect("done");
                }
            }
        }
        if to == JobStatus::Reverted {
            let error = fail_at.map(|(_, e)| e);
            block_on(jobs.set_status(id, JobStatus::Reverting, error, ago(minutes - 5)))
                .expect("reverting");
        }
        let error = fail_at.map(|(_, e)| e);
        assert!(
            block_on(jobs.set_status(id, to, error, ago(minutes - 5))).expect("status"),
            "job {id} moved to {to:?}"
        );
    }

    pub fn notification(&self, project: &str, id: &str, message: &str, minutes: i64) {
        let d = hook_deployment(serde_json::json!({
            "type": "worker", "projectName": project, "deploymentId": id,
            "commitHash": "abcdef1234567", "commitMessage": message, "author": "alice",
        }));
        block_on(NotificationStore::new(&self.sql).insert(
            &d,
            NotificationStatus::Sent,
            ago(minutes),
        ))
        .expect("inserted")
        .expect("new");
    }

    pub fn delivery(&self, id: &str, outcome: Outcome, minutes: i64) {
        let event = GithubEvent::Other {
            event: "star".into(),
            action: None,
            repository: Some("octo/app".into()),
        };
        let id = DeliveryId::parse(id).expect("id");
        block_on(DeliveryStore::new(&self.sql).record(&id, &event, outcome, None, ago(minutes)))
            .expect("recorded");
    }

    /// A preview row for `app`'s PR `pr`, in `status`.
    pub fn preview(&self, app: &str, pr: i64, status: &str, minutes: i64) {
        self.sql
            .conn_for_tests()
            .execute(
                "INSERT INTO previews (app, repository, pr_number, head_ref, head_sha, wanted, status, \
                 fly_app, url, error, queued_at, expires_at, created_at, updated_at) \
                 VALUES (?1, 'octo/app', ?2, 'feature', ?3, 'live', ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?8)",
                rusqlite::params![
                    app,
                    pr,
                    sha(pr as u32).as_str(),
                    status,
                    format!("{app}-pr-{pr}"),
                    format!("https://{app}-pr-{pr}.fly.dev"),
                    (status == "failed").then_some("machine did not start"),
                    ago(minutes).millis(),
                    NOW.plus_seconds(3_600).millis(),
                ],
            )
            .expect("preview");
    }
}
