//! Carrying out preview plans: recording `pull_request` events, one reconcile run
//! per queue message, and the cron's expiry and clean-up.
//!
//! A run claims the row, plans, acts, and settles the revision it acted on. If a
//! newer event arrived meanwhile the settle fails and the run goes round again, so
//! a message that found the row held can simply be acknowledged.

use std::cell::RefCell;

use serde_json::json;

use super::store::{EventOrder, Field, Observation, Observed, PreviewStore};
use super::{
    plan, render_comment, render_telegram, Action, Preview, PreviewSettings, Shown, SkipReason,
    Status, TeardownReason, Wanted, CLAIM_STALE_SECONDS, MAX_ATTEMPTS,
};
use crate::apps::{AppStore, NamedApp};
use crate::flow::{github_for, Deps, Ports, ProcessError, Run, Verdict};
use crate::fly::{FlyClient, FlyError};
use crate::github::app::{scoped_installation_token, TokenScope};
use crate::github::client::{GithubClient, GithubConfig, GithubError};
use crate::github::events::PullRequestEvent;
use crate::github::identity::own_login;
use crate::jobs::JobMessage;
use crate::live::Live;
use crate::names::AppName;
use crate::ports::{Queue, SqlValue, StoreError};
use crate::retry::backoff_seconds;
use crate::routes::{Outcome, Source};
use crate::secret::Secret;
use crate::secrets::{EnvType, SecretStore, SecretsError};
use crate::template::{Field as Shows, Values};
use crate::time::Timestamp;

/// Records a `pull_request` event for every app that previews the repository and
/// enqueues a run for each; returns a line for the delivery log. `seq` is the
/// delivery's place in the log ([`DeliveryStore::sequence`]): with the payload's
/// `updated_at` it orders the pull request's events, so an event older than the
/// one a preview last took (a late or replayed delivery) changes nothing, and a
/// closed preview stays closed until a newer `reopened`.
///
/// [`DeliveryStore::sequence`]: crate::github::deliveries::DeliveryStore::sequence
pub async fn on_pull_request<P: Ports>(
    deps: &Deps<'_, P>,
    pr: &PullRequestEvent,
    seq: i64,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let wanted = match pr.action.as_str() {
        "opened" | "reopened" | "synchronize" => Some(Wanted::Live),
        "closed" => Some(Wanted::Closed),
        // Only the draft state changes; whether a preview is wanted does not.
        "ready_for_review" | "converted_to_draft" => None,
        other => return Ok(format!("pull_request.{other}: nothing to do")),
    };
    let fork = !pr
        .head_repository
        .as_ref()
        .is_some_and(|head| head.same_as(&pr.repository));
    let apps = AppStore::new(deps.sql)
        .for_repository(&pr.repository)
        .await?;
    let store = PreviewStore::new(deps.sql);
    let mut done = Vec::new();
    for named in &apps {
        let Some(settings) = &named.app.preview else {
            continue;
        };
        let fly_app = settings.fly_app_name(named.name.as_str(), pr.number, &pr.head_ref);
        let url = format!("https://{fly_app}.fly.dev");
        let observed = store
            .observe(
                &Observed {
                    app: named.name.as_str(),
                    repository: &pr.repository,
                    pr_number: pr.number,
                    installation_id: pr.installation_id,
                    head_ref: &pr.head_ref,
                    head_sha: &pr.head_sha,
                    draft: pr.draft,
                    fork,
                    wanted,
                    fly_app: &fly_app,
                    url: &url,
                    order: EventOrder {
                        at: pr.updated_at.unwrap_or(0),
                        seq,
                    },
                    reopens: pr.action == "reopened",
                },
                now,
            )
            .await?;
        let id = match observed {
            Observation::Taken(id) => id,
            Observation::Stale(id) => {
                done.push(format!(
                    "{}: preview {id} ignored the event: older than the one it follows",
                    named.name.as_str()
                ));
                continue;
            }
            Observation::Closed(id) => {
                done.push(format!(
                    "{}: preview {id} ignored the event: the pull request is closed (only a newer reopened brings it back)",
                    named.name.as_str()
                ));
                continue;
            }
        };
        deps.queue.send(&JobMessage::Preview { id }).await?;
        done.push(format!("{}: preview {id}", named.name.as_str()));
    }
    Ok(if done.is_empty() {
        format!("no app previews {}", pr.repository.as_str())
    } else {
        done.join("; ")
    })
}

/// Why an action stopped.
#[derive(Debug)]
struct Failure {
    text: String,
    transient: bool,
}

impl Failure {
    fn permanent(text: impl Into<String>) -> Self {
        Failure {
            text: text.into(),
            transient: false,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            text: e.to_string(),
            transient: true,
        }
    }
}

impl From<GithubError> for Failure {
    fn from(e: GithubError) -> Self {
        Failure {
            transient: e.is_transient(),
            text: e.to_string(),
        }
    }
}

impl From<FlyError> for Failure {
    fn from(e: FlyError) -> Self {
        Failure {
            transient: e.is_transient(),
            text: e.to_string(),
        }
    }
}

impl From<SecretsError> for Failure {
    fn from(e: SecretsError) -> Self {
        Failure {
            transient: matches!(e, SecretsError::Store(_)),
            text: format!("preview secrets: {e}"),
        }
    }
}

/// One run's context.
struct Ctx<'d, 'a, P: Ports> {
    deps: &'d Deps<'a, P>,
    now: Timestamp,
    /// What the run did, for its log line.
    log: RefCell<Vec<String>>,
}

/// One reconcile run for preview `id`.
pub async fn run<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Run {
    let ctx = Ctx {
        deps,
        now,
        log: RefCell::default(),
    };
    let verdict = match run_claimed(&ctx, id).await {
        Ok(v) => v,
        Err(e) => {
            ctx.note(format!("database: {e}"));
            Verdict::Retry {
                delay_seconds: backoff_seconds(1),
            }
        }
    };
    Run {
        verdict,
        log: format!("preview {id}: {}", ctx.log.take().join("; ")),
    }
}

/// Rounds of plan-and-act one run makes before it lets go (events keep arriving).
const MAX_ROUNDS: usize = 6;

async fn run_claimed<P: Ports>(ctx: &Ctx<'_, '_, P>, id: i64) -> Result<Verdict, StoreError> {
    let store = PreviewStore::new(ctx.deps.sql);
    let now = ctx.now;
    if !store
        .claim(id, now, now.minus_seconds(CLAIM_STALE_SECONDS))
        .await?
    {
        ctx.note("held by another run, which picks up this change");
        return Ok(Verdict::Ack);
    }
    for _ in 0..MAX_ROUNDS {
        let Some(mut p) = store.get(id).await? else {
            ctx.note("not found");
            return Ok(Verdict::Ack);
        };
        let app = match AppName::parse(&p.app) {
            Ok(name) => AppStore::new(ctx.deps.sql).get(&name).await?,
            Err(_) => None,
        };
        let settings = app.as_ref().and_then(|a| a.app.preview.clone());
        // Whether the preview had a place the others count: a slot, or one in the
        // queue (those behind it move up when it leaves).
        let had_place = p.status.may_have_fly_app() || p.status == Status::Queued;
        let action = plan(&p, settings.as_ref());
        let result = match (action, &settings) {
            (Action::Nothing, _) => Ok(()),
            (Action::Deploy, Some(s)) => ctx.deploy(&mut p, s, app.as_ref()).await,
            (Action::Skip(reason), _) => ctx.skip(&mut p, app.as_ref(), reason).await,
            (Action::Teardown(reason), _) => ctx.teardown(&mut p, app.as_ref(), reason).await,
            (Action::Deploy, None) => Err(Failure::permanent("the app has no preview settings")),
        };
        if action != Action::Nothing {
            ctx.note(format!("{action:?} at {}", p.head_sha.short()));
        }
        match result {
            Ok(()) => {}
            Err(f) if f.transient && p.attempts + 1 < MAX_ATTEMPTS => {
                let attempts = store.release_failed_attempt(id, &f.text, now).await?;
                let delay = backoff_seconds(u32::try_from(attempts).unwrap_or(u32::MAX));
                ctx.note(format!(
                    "{} (attempt {attempts} of {MAX_ATTEMPTS}, again in {delay} s)",
                    f.text
                ));
                return Ok(Verdict::Retry {
                    delay_seconds: delay,
                });
            }
            Err(f) => {
                ctx.note(format!("failed: {}", f.text));
                ctx.fail(&mut p, app.as_ref(), &f.text).await?;
            }
        }
        if store.settle(id, p.revision, now).await? {
            // A place freed (a slot, one reserved for a deploy that failed, or a
            // place in the queue): the waiting previews try again, oldest first,
            // and their comments show their new place. One that ends queued frees
            // nothing, so waiting previews never wake each other in a loop.
            let freed = (had_place || action == Action::Deploy)
                && !p.status.may_have_fly_app()
                && p.status != Status::Queued;
            if freed {
                for waiting in store.queued(&p.app).await? {
                    if let Err(e) = ctx
                        .deps
                        .queue
                        .send(&JobMessage::Preview { id: waiting })
                        .await
                    {
                        ctx.note(format!("could not wake preview {waiting}: {e}"));
                    }
                }
            }
            ctx.note(format!("settled as {}", p.status.as_str()));
            return Ok(Verdict::Ack);
        }
    }
    // Still changing: let go and come back shortly.
    store.release_failed_attempt(id, "busy", now).await?;
    Ok(Verdict::Retry {
        delay_seconds: backoff_seconds(1),
    })
}

impl<P: Ports> Ctx<'_, '_, P> {
    fn note(&self, line: impl Into<String>) {
        self.log.borrow_mut().push(line.into());
    }

    fn store(&self) -> PreviewStore<P::S> {
        PreviewStore::new(self.deps.sql)
    }

    async fn set(&self, p: &Preview, fields: &[(Field, SqlValue)]) -> Result<(), StoreError> {
        self.store().set(p.id, fields, self.now).await
    }

    async fn github(&self, p: &Preview) -> Result<GithubConfig, Failure> {
        Ok(github_for(self.deps, p.installation_id, self.now).await?)
    }

    /// The login our comments carry (the App's bot, or the token's user).
    async fn own_login(&self, p: &Preview, gh: &GithubConfig) -> Result<String, Failure> {
        let settings = self
            .deps
            .config
            .github
            .as_ref()
            .map_err(|missing| Failure::permanent(format!("{missing} is not configured")))?;
        Ok(own_login(
            self.deps.http,
            self.deps.kv,
            self.deps.signer,
            settings,
            p.installation_id,
            gh,
            self.now,
        )
        .await?)
    }

    fn fly(&self) -> Result<FlyClient<'_, P::H>, Failure> {
        match &self.deps.config.fly {
            Ok(config) => Ok(FlyClient::new(self.deps.http, config)),
            Err(missing) => Err(Failure::permanent(format!("{missing} is not configured"))),
        }
    }

    /// Deploys the head sha (or finishes announcing it), or queues for a slot.
    async fn deploy(
        &self,
        p: &mut Preview,
        s: &PreviewSettings,
        app: Option<&NamedApp>,
    ) -> Result<(), Failure> {
        let store = self.store();
        if !store.reserve_slot(p.id, s.max_concurrent, self.now).await? {
            let ahead = store.ahead_of(p).await?;
            if p.status != Status::Queued || p.queue_ahead != Some(ahead) {
                self.set(
                    p,
                    &[
                        (Field::Status, Status::Queued.as_str().into()),
                        (Field::QueueAhead, ahead.into()),
                    ],
                )
                .await?;
                p.status = Status::Queued;
                let gh = self.github(p).await?;
                self.show(
                    &gh,
                    p,
                    app,
                    &Shown::Queued {
                        ahead,
                        max: s.max_concurrent,
                    },
                    true,
                )
                .await?;
            }
            return Ok(());
        }
        let up =
            p.status == Status::Ready && p.deployed_sha.as_deref() == Some(p.head_sha.as_str());
        p.status = Status::Deploying;
        let gh = self.github(p).await?;
        let client = GithubClient::new(self.deps.http, &gh);
        if !up {
            self.show(&gh, p, app, &Shown::Deploying, true).await?;
            if p.deployment_sha.as_deref() != Some(p.head_sha.as_str()) {
                let id = client
                    .create_preview_deployment(
                        &p.repository,
                        &p.head_sha,
                        &p.environment(),
                        &format!("Preview of {} for #{}", p.app, p.pr_number),
                    )
                    .await?;
                self.set(
                    p,
                    &[
                        (Field::DeploymentId, id.into()),
                        (Field::DeploymentSha, p.head_sha.as_str().into()),
                    ],
                )
                .await?;
                p.deployment_id = Some(id);
                p.deployment_sha = Some(p.head_sha.as_str().to_owned());
                client
                    .deployment_status(&p.repository, id, "in_progress", "Deploying", None, None)
                    .await?;
            }
            let machine = self.machine_config(p, s).await?;
            let fly = self.fly()?;
            if fly.create_app(&p.fly_app, &s.org).await? {
                self.set(p, &[(Field::FlyOwned, 1_i64.into())]).await?;
                p.fly_owned = true;
            } else if !p.fly_owned {
                // The name is taken, and not by this preview: another app's
                // preview, or an app outside edge-notifier. It is not ours to
                // deploy into or delete.
                return Err(Failure::permanent(format!(
                    "the Fly app {} already exists and this preview did not create it; \
                     it is left alone. Give the app's previews other names (preview.app_name), \
                     or delete that Fly app if it is a leftover",
                    p.fly_app
                )));
            }
            fly.ensure_public_ips(&p.fly_app).await?;
            let existing = match &p.machine_id {
                Some(id) => Some(id.clone()),
                // A run that died after creating the machine left it there.
                None => fly
                    .machines(&p.fly_app)
                    .await?
                    .into_iter()
                    .next()
                    .map(|m| m.id),
            };
            let machine_id = match existing {
                Some(id) if fly.update_machine(&p.fly_app, &id, machine.clone()).await? => id,
                _ => fly.create_machine(&p.fly_app, machine).await?,
            };
            self.set(p, &[(Field::MachineId, machine_id.as_str().into())])
                .await?;
            p.machine_id = Some(machine_id.clone());
            fly.wait_started(&p.fly_app, &machine_id).await?;
            let expires = self
                .now
                .plus_seconds(i64::from(s.ttl_hours) * 3600)
                .millis();
            self.set(
                p,
                &[
                    (Field::Status, Status::Ready.as_str().into()),
                    (Field::DeployedSha, p.head_sha.as_str().into()),
                    (Field::ExpiresAt, expires.into()),
                    (Field::Error, SqlValue::Null),
                    (Field::FlyCheckedAt, SqlValue::Null),
                ],
            )
            .await?;
            p.expires_at = Some(expires);
            p.deployed_sha = Some(p.head_sha.as_str().to_owned());
        } else {
            // Up already; the last run stopped before it announced it.
            self.set(p, &[(Field::Status, Status::Ready.as_str().into())])
                .await?;
        }
        p.status = Status::Ready;
        if let Some(id) = p.deployment_id {
            client
                .deployment_status(
                    &p.repository,
                    id,
                    "success",
                    "Preview is up",
                    Some(&p.url),
                    None,
                )
                .await?;
        }
        self.show(&gh, p, app, &Shown::Ready, true).await
    }

    /// The machine's own GitHub token. With the App: a fresh one (never the Worker's
    /// cached token) for the PR's repository alone, with the settings' permissions.
    /// Without it: none, since `GITHUB_TOKEN` is the Worker's own credential and the
    /// machine runs the pull request's code.
    async fn machine_token(
        &self,
        p: &Preview,
        s: &PreviewSettings,
    ) -> Result<Option<Secret>, Failure> {
        let Ok(github) = &self.deps.config.github else {
            return Ok(None);
        };
        let (Some(app), Some(installation)) = (&github.app, p.installation_id) else {
            return Ok(None);
        };
        let scope = TokenScope {
            repository: &p.repository,
            permissions: s.token_permissions(),
        };
        let token = scoped_installation_token(
            self.deps.http,
            self.deps.signer,
            &github.api_base,
            app,
            installation,
            &scope,
            self.now,
        )
        .await?;
        Ok(Some(token))
    }

    /// The machine: image, services on 443 to the app's port, and the environment:
    /// plain `env`, then the decrypted preview secrets, then the machine's own
    /// `GITHUB_TOKEN` (App only).
    async fn machine_config(
        &self,
        p: &Preview,
        s: &PreviewSettings,
    ) -> Result<serde_json::Value, Failure> {
        let mut env =
            crate::maps::object(s.env.iter().map(|(k, v)| (k.clone(), v.as_str().into())));
        let name = AppName::parse(&p.app).map_err(|e| Failure::permanent(e.to_string()))?;
        let secrets = SecretStore::new(self.deps.sql);
        match &self.deps.config.secrets_keys {
            Ok(keys) => {
                for (k, v) in secrets
                    .reveal_all(self.deps.cipher, keys, &name, EnvType::Preview)
                    .await?
                {
                    env.insert(k, v.expose().into());
                }
            }
            Err(missing) => {
                if !secrets.list(&name, EnvType::Preview).await?.is_empty() {
                    return Err(Failure::permanent(format!(
                        "{missing} is not configured, so the preview secrets cannot be decrypted"
                    )));
                }
            }
        }
        if let Some(token) = self.machine_token(p, s).await? {
            env.insert("GITHUB_TOKEN".into(), token.expose().into());
        }
        let mut body = json!({
            "config": {
                "image": s.image_for(&p.head_sha, &p.head_ref, p.pr_number),
                "env": env,
                "services": [{
                    "protocol": "tcp",
                    "internal_port": s.internal_port,
                    "ports": [
                        { "port": 443, "handlers": ["tls", "http"] },
                        { "port": 80, "handlers": ["http"], "force_https": true }
                    ]
                }],
                "metadata": { "edge_notifier_app": p.app, "pull_request": p.pr_number.to_string() },
                "restart": { "policy": "always" }
            }
        });
        if let Some(region) = &s.region {
            body["region"] = region.as_str().into();
        }
        Ok(body)
    }

    /// Takes down whatever exists and says the PR gets no preview, and why.
    async fn skip(
        &self,
        p: &mut Preview,
        app: Option<&NamedApp>,
        reason: SkipReason,
    ) -> Result<(), Failure> {
        self.take_down(p).await?;
        self.set(
            p,
            &[
                (Field::Status, Status::Skipped.as_str().into()),
                (Field::QueueAhead, SqlValue::Null),
            ],
        )
        .await?;
        p.status = Status::Skipped;
        let gh = self.github(p).await?;
        self.show(&gh, p, app, &Shown::Skipped(reason), true).await
    }

    /// Closed or expired: removes the Fly app, ends the GitHub environment, and
    /// says so in the comment (a PR that never had one gets none).
    async fn teardown(
        &self,
        p: &mut Preview,
        app: Option<&NamedApp>,
        reason: TeardownReason,
    ) -> Result<(), Failure> {
        self.take_down(p).await?;
        self.set(
            p,
            &[
                (Field::Status, Status::Destroyed.as_str().into()),
                (Field::QueueAhead, SqlValue::Null),
            ],
        )
        .await?;
        p.status = Status::Destroyed;
        if p.deployment_id.is_none() && p.comment_id.is_none() {
            return Ok(());
        }
        let gh = self.github(p).await?;
        if p.deployment_id.is_some() {
            GithubClient::new(self.deps.http, &gh)
                .delete_environment(&p.repository, &p.environment())
                .await?;
        }
        self.show(&gh, p, app, &Shown::Destroyed(reason), false)
            .await
    }

    /// Deletes the Fly app and marks the GitHub deployment inactive, if they exist.
    async fn take_down(&self, p: &mut Preview) -> Result<(), Failure> {
        if p.may_have_fly_app() {
            self.fly()?.delete_app(&p.fly_app).await?;
            self.set(
                p,
                &[
                    (Field::MachineId, SqlValue::Null),
                    (Field::DeployedSha, SqlValue::Null),
                    (Field::FlyCheckedAt, SqlValue::Null),
                ],
            )
            .await?;
            p.machine_id = None;
            p.deployed_sha = None;
            // The slot is free from here on, whatever else fails.
            p.status = Status::Destroyed;
            if let Some(id) = p.deployment_id {
                let gh = self.github(p).await?;
                GithubClient::new(self.deps.http, &gh)
                    .deployment_status(&p.repository, id, "inactive", "Preview removed", None, None)
                    .await?;
            }
        }
        Ok(())
    }

    /// After a permanent failure or the last transient one: removes what the
    /// deploy half-made and says what went wrong. Clean-up failures are left to the
    /// cron, which finds failed previews whose Fly app still exists.
    async fn fail(
        &self,
        p: &mut Preview,
        app: Option<&NamedApp>,
        error: &str,
    ) -> Result<(), StoreError> {
        if p.may_have_fly_app() {
            match self.fly() {
                Ok(fly) => {
                    if let Err(e) = fly.delete_app(&p.fly_app).await {
                        self.note(format!("clean-up of {} left to the cron: {e}", p.fly_app));
                    }
                }
                Err(f) => self.note(f.text),
            }
        }
        self.set(
            p,
            &[
                (Field::Status, Status::Failed.as_str().into()),
                (Field::Error, error.into()),
                (Field::MachineId, SqlValue::Null),
                (Field::DeployedSha, SqlValue::Null),
                (Field::QueueAhead, SqlValue::Null),
                (Field::FlyCheckedAt, SqlValue::Null),
            ],
        )
        .await?;
        p.status = Status::Failed;
        p.machine_id = None;
        let announced = async {
            let gh = self.github(p).await?;
            if let (Some(id), Some(sha)) = (p.deployment_id, &p.deployment_sha) {
                if sha == p.head_sha.as_str() {
                    GithubClient::new(self.deps.http, &gh)
                        .deployment_status(
                            &p.repository,
                            id,
                            "failure",
                            &crate::text::cut(error, 140),
                            None,
                            None,
                        )
                        .await?;
                }
            }
            self.show(&gh, p, app, &Shown::Failed(error), true).await
        };
        if let Err(f) = announced.await {
            self.note(format!(
                "the failure was not announced on GitHub: {}",
                f.text
            ));
        }
        Ok(())
    }

    /// Puts the state in the PR comment (found by its marker, edited in place;
    /// created only when `create`) and in the quiet Telegram message.
    async fn show(
        &self,
        gh: &GithubConfig,
        p: &mut Preview,
        app: Option<&NamedApp>,
        shown: &Shown<'_>,
        create: bool,
    ) -> Result<(), Failure> {
        self.telegram(p, app, shown).await?;
        let client = GithubClient::new(self.deps.http, gh);
        let body = render_comment(p, shown);
        if let Some(id) = p.comment_id {
            if client.update_comment(&p.repository, id, &body).await? {
                return Ok(());
            }
        }
        // Not recorded (a run died after posting it), or deleted by someone. Only
        // a comment we wrote is ours to edit.
        let me = self.own_login(p, gh).await?;
        let marker = super::comment_marker(&p.app);
        let id = match client
            .find_comment(&p.repository, p.pr_number, &marker, &me)
            .await?
        {
            Some(id) if Some(id) != p.comment_id => {
                client.update_comment(&p.repository, id, &body).await?;
                id
            }
            _ if create => {
                client
                    .create_comment(&p.repository, p.pr_number, &body)
                    .await?
            }
            _ => return Ok(()),
        };
        self.set(p, &[(Field::CommentId, id.into())]).await?;
        p.comment_id = Some(id);
        Ok(())
    }

    /// One quiet message per preview and destination its routes name, edited in
    /// place. Telegram being down never holds a preview up.
    async fn telegram(
        &self,
        p: &mut Preview,
        app: Option<&NamedApp>,
        shown: &Shown<'_>,
    ) -> Result<(), StoreError> {
        let outcome = match shown {
            Shown::Ready | Shown::Destroyed(_) | Shown::Skipped(_) => Outcome::Success,
            Shown::Failed(_) => Outcome::Failure,
            Shown::Queued { .. } | Shown::Deploying => Outcome::InProgress,
        };
        let mut values = Values::default()
            .with(Shows::Project, p.app.as_str())
            .with(Shows::Environment, "preview")
            .with(Shows::EnvironmentEmoji, crate::html::env_emoji("preview"))
            .with(Shows::Branch, p.head_ref.as_str())
            .with(Shows::Commit, p.head_sha.as_str())
            .with(
                Shows::CommitShort,
                p.head_sha.as_str().chars().take(7).collect::<String>(),
            )
            .with(Shows::Status, p.status.as_str())
            .with(Shows::Time, self.now.to_human());
        values.set(Shows::Url, Some(p.url.clone()).filter(|u| !u.is_empty()));
        let live = Live {
            values,
            subject: format!("preview:{}", p.id),
            source: Source::Preview,
            project: &p.app,
            environment: Some("preview"),
            branch: Some(&p.head_ref),
            outcome,
            html: render_telegram(p, shown),
            silent: true,
            app_chat: app.and_then(|a| a.app.telegram_chat_id.as_deref()),
            buttons: Vec::new(),
        };
        if let Some(problem) = crate::live::show(
            self.deps.config,
            self.deps.sql,
            self.deps.queue,
            &live,
            self.now,
        )
        .await
        {
            self.note(problem);
        }
        Ok(())
    }
}

/// The cron's part: expire previews past their time, re-run what a lost message or
/// a dead run left unfinished, wake the queue, and delete Fly apps that outlived
/// their teardown.
pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: Timestamp) -> Vec<String> {
    let store = PreviewStore::new(deps.sql);
    let mut log = Vec::new();
    let mut wake = Vec::new();
    match store.expire(now).await {
        Ok(ids) if !ids.is_empty() => {
            log.push(format!("previews {ids:?} expired"));
            wake.extend(ids);
        }
        Ok(_) => {}
        Err(e) => log.push(format!("expiry: {e}")),
    }
    match store
        .needing_a_run(
            now.minus_seconds(i64::from(deps.config.sweep_after_seconds)),
            now.minus_seconds(CLAIM_STALE_SECONDS),
        )
        .await
    {
        Ok(ids) => wake.extend(ids),
        Err(e) => log.push(format!("unfinished previews: {e}")),
    }
    for id in crate::maps::unique(wake) {
        if let Err(e) = deps.queue.send(&JobMessage::Preview { id }).await {
            log.push(format!("preview {id}: not enqueued: {e}"));
        }
    }
    if let Ok(config) = &deps.config.fly {
        let fly = FlyClient::new(deps.http, config);
        match store.unchecked_teardowns(10).await {
            Ok(rows) => {
                for (id, app) in rows {
                    let checked = match fly.app_exists(&app).await {
                        Ok(false) => Ok(()),
                        Ok(true) => fly.delete_app(&app).await.map(|_| {
                            log.push(format!(
                                "preview {id}: Fly app {app} outlived its teardown; deleted"
                            ));
                        }),
                        Err(e) => Err(e),
                    };
                    match checked {
                        // Gone: the name is no longer ours.
                        Ok(()) => {
                            if let Err(e) = store
                                .set(
                                    id,
                                    &[
                                        (Field::FlyCheckedAt, now.millis().into()),
                                        (Field::FlyOwned, 0_i64.into()),
                                    ],
                                    now,
                                )
                                .await
                            {
                                log.push(format!("preview {id}: {e}"));
                            }
                        }
                        Err(e) => log.push(format!("preview {id}: Fly app {app}: {e}")),
                    }
                }
            }
            Err(e) => log.push(format!("torn-down previews: {e}")),
        }
    }
    log
}
