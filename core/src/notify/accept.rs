//! Accepting a validated deployment: the KV fast path, then the D1 insert that decides.

use super::payload::Deployment;
use crate::time::Timestamp;

/// How long the KV fast path remembers a repeated deployment. D1 stays the
/// authority, so this only bounds how long repeats skip the database.
pub const KV_DEDUPE_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// The KV fast-path keys' prefix. Keys written before the key took in the project
/// (`notify:<type>:<id>`) are never read again and expire within
/// [`KV_DEDUPE_TTL_SECONDS`]; the new prefix keeps one of them from ever answering
/// for another project's deployment.
pub const KV_PREFIX: &str = "notified:";

/// The KV fast-path key of a deployment, or `None` when it would pass KV's 512-byte
/// key limit (then only D1 dedupes it).
pub fn kv_key(d: &Deployment) -> Option<String> {
    let key = format!("{KV_PREFIX}{}", d.dedupe_key());
    (key.len() <= 512).then_some(key)
}

/// What `/notify` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Committed to D1 as notification `id`: 202. The caller enqueues it next.
    New { id: i64 },
    /// The same deployment was accepted before: 200, nothing is announced again.
    AlreadyProcessed { known_from: KnownFrom },
}

/// Which store recognised a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownFrom {
    /// The KV fast path.
    Kv,
    /// D1's unique key: the caller should [`remember_processed`] it in KV, so that
    /// further repeats (a CI re-running its hook) skip the database.
    Database,
}

/// Accepts a validated deployment: the KV fast path, then the D1 insert that decides.
/// The row is committed before the answer; the caller then enqueues
/// [`JobMessage::Notify`](crate::jobs::JobMessage) (after answering, if it can). If
/// that send fails the row stays pending and the cron sweep enqueues it, so nothing
/// accepted is lost.
///
/// KV is written only once a repeat has been seen: most deployments are announced
/// exactly once, and a KV write per new deployment would cost every request for the
/// benefit of the rare ones that repeat.
pub async fn accept<S: crate::ports::Sql, K: crate::ports::Kv>(
    store: &crate::notify::store::NotificationStore<S>,
    kv: &K,
    deployment: &Deployment,
    now: Timestamp,
) -> Result<Accepted, crate::ports::StoreError> {
    if let Some(key) = kv_key(deployment) {
        // A KV error only costs the fast path.
        if let Ok(Some(_)) = kv.get(&key).await {
            return Ok(Accepted::AlreadyProcessed {
                known_from: KnownFrom::Kv,
            });
        }
    }
    let Some(id) = store
        .insert(
            deployment,
            crate::notify::store::NotificationStatus::Pending,
            now,
        )
        .await?
    else {
        return Ok(Accepted::AlreadyProcessed {
            known_from: KnownFrom::Database,
        });
    };
    Ok(Accepted::New { id })
}

/// Remembers in KV that a deployment was processed (after D1 recognised a repeat).
pub async fn remember_processed<K: crate::ports::Kv>(
    kv: &K,
    deployment: &Deployment,
) -> Result<(), crate::ports::StoreError> {
    match kv_key(deployment) {
        Some(key) => kv.put(&key, "1", KV_DEDUPE_TTL_SECONDS).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::payload::tests::{parse, received};

    #[test]
    fn accept_dedupes_through_kv_and_d1() {
        use crate::testing::{block_on, MemoryKv, SqliteSql};
        let db = SqliteSql::migrated();
        let store = crate::notify::store::NotificationStore::new(&db);
        let kv = MemoryKv::default();
        let d = parse(r#"{"deployment":{"type":"worker","projectName":"p","deploymentId":"b-1"}}"#)
            .expect("valid");
        let accept = || block_on(accept(&store, &kv, &d, received())).expect("accept");
        assert!(matches!(accept(), Accepted::New { .. }));
        assert!(
            kv.map.borrow().is_empty(),
            "a first report costs no KV write"
        );
        // D1's unique key refuses the repeat; the caller then remembers it in KV.
        assert_eq!(
            accept(),
            Accepted::AlreadyProcessed {
                known_from: KnownFrom::Database
            }
        );
        block_on(remember_processed(&kv, &d)).expect("kv put");
        let (_, ttl) = kv.map.borrow()["notified:worker:p:b-1"].clone();
        assert_eq!(ttl, KV_DEDUPE_TTL_SECONDS);
        assert_eq!(
            accept(),
            Accepted::AlreadyProcessed {
                known_from: KnownFrom::Kv
            }
        );
        // With KV down the fast path is skipped, not fatal.
        kv.fail.set(true);
        assert_eq!(
            accept(),
            Accepted::AlreadyProcessed {
                known_from: KnownFrom::Database
            }
        );
    }

    #[test]
    fn one_ci_run_deploying_two_projects_announces_both() {
        use crate::testing::{block_on, MemoryKv, SqliteSql};
        let db = SqliteSql::migrated();
        let store = crate::notify::store::NotificationStore::new(&db);
        let kv = MemoryKv::default();
        let of = |project: &str| {
            parse(&format!(
                r#"{{"deployment":{{"type":"worker","projectName":"{project}","deploymentId":"gh-42-1"}}}}"#
            ))
            .expect("valid")
        };
        let (api, web) = (of("api"), of("web"));
        let accept = |d: &Deployment| block_on(accept(&store, &kv, d, received())).expect("accept");
        assert!(matches!(accept(&api), Accepted::New { .. }));
        // The repeat of the first is remembered in KV; that answers for it alone.
        assert!(matches!(accept(&api), Accepted::AlreadyProcessed { .. }));
        block_on(remember_processed(&kv, &api)).expect("kv put");
        assert!(matches!(accept(&web), Accepted::New { .. }));
        assert_eq!(
            accept(&web),
            Accepted::AlreadyProcessed {
                known_from: KnownFrom::Database
            }
        );
    }
}
