//! Test doubles for the ports: a scripted HTTP fake that records what it was sent, a
//! native SQLite [`Sql`] that runs the real migrations, and a minimal executor.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::http::{HttpError, HttpRequest, HttpResponse};
use crate::ports::{Executed, Http, Row, Sql, SqlValue, Statement, StoreError};

/// Runs a future whose ports complete synchronously (all the doubles here do).
use aes_gcm::aead::{Aead, KeyInit};

pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Answers requests from a script, in order, and keeps every request it saw. A
/// request beyond the script fails the test.
type Router = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, HttpError>>;

#[derive(Default)]
pub struct FakeHttp {
    script: RefCell<VecDeque<Result<HttpResponse, HttpError>>>,
    router: Option<Router>,
    pub seen: RefCell<Vec<HttpRequest>>,
}

impl FakeHttp {
    pub fn answering(answers: Vec<Result<HttpResponse, HttpError>>) -> Self {
        FakeHttp {
            script: RefCell::new(answers.into()),
            router: None,
            seen: RefCell::default(),
        }
    }

    /// Answers every request with `router` (which fails the test on anything it
    /// does not expect).
    pub fn routed(
        router: impl Fn(&HttpRequest) -> Result<HttpResponse, HttpError> + 'static,
    ) -> Self {
        FakeHttp {
            script: RefCell::default(),
            router: Some(Box::new(router)),
            seen: RefCell::default(),
        }
    }

    /// "METHOD url" of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.seen
            .borrow()
            .iter()
            .map(|r| format!("{} {}", r.method.as_str(), r.url))
            .collect()
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.seen
            .borrow()
            .iter()
            .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("null")).expect("JSON body"))
            .collect()
    }
}

pub fn json_response(status: u16, body: serde_json::Value) -> Result<HttpResponse, HttpError> {
    Ok(HttpResponse::new(status, body.to_string()))
}

impl Http for FakeHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        if let Some(router) = &self.router {
            let answer = router(&request);
            self.seen.borrow_mut().push(request);
            return answer;
        }
        self.seen.borrow_mut().push(request);
        self.script
            .borrow_mut()
            .pop_front()
            .expect("FakeHttp: a request the test did not script")
    }
}

/// SQLite in memory with every file of `migrations/` applied in order.
pub struct SqliteSql {
    conn: rusqlite::Connection,
}

impl SqliteSql {
    pub fn migrated() -> Self {
        let db = SqliteSql::empty();
        db.migrate(|_| true);
        db
    }

    /// SQLite with the migrations up to and including the one whose file name starts
    /// with `last` (e.g. `"0008"`): the schema as it was, to test a later migration
    /// against rows written under it (see [`SqliteSql::migrate_after`]).
    pub fn migrated_through(last: &str) -> Self {
        let db = SqliteSql::empty();
        db.migrate(|name| name <= last || name.starts_with(last));
        db
    }

    /// Applies the migrations after `last`, in order.
    pub fn migrate_after(&self, last: &str) {
        self.migrate(|name| name > last && !name.starts_with(last));
    }

    fn empty() -> Self {
        SqliteSql {
            conn: rusqlite::Connection::open_in_memory().expect("sqlite opens"),
        }
    }

    fn migrate(&self, wanted: impl Fn(&str) -> bool) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("migrations/ exists")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations found");
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !wanted(name) {
                continue;
            }
            let sql = std::fs::read_to_string(&f).expect("migration readable");
            self.conn
                .execute_batch(&sql)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }

    /// The connection itself, for tests that inspect or tamper with stored rows.
    pub fn conn_for_tests(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

impl SqliteSql {
    /// SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`), one line per step.
    pub fn plan(&self, sql: &str, params: &[SqlValue]) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the query prepares");
        let rows = stmt
            .query_map(rusqlite::params_from_iter(bind(params)), |r| {
                r.get::<_, String>("detail")
            })
            .expect("the plan");
        rows.map(|r| r.expect("a plan line")).collect()
    }
}

/// A [`Sql`] over SQLite that keeps the plan of every query it runs, to check
/// that a page's queries start at an index instead of reading a whole table.
pub struct Planned<'a> {
    pub db: &'a SqliteSql,
    pub plans: RefCell<Vec<String>>,
}

impl<'a> Planned<'a> {
    pub fn new(db: &'a SqliteSql) -> Self {
        Planned {
            db,
            plans: RefCell::default(),
        }
    }
}

impl Sql for Planned<'_> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Executed, StoreError> {
        self.db.execute(sql, params).await
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), StoreError> {
        self.db.batch(statements).await
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.plans.borrow_mut().extend(self.db.plan(sql, params));
        self.db.query(sql, params).await
    }
}

fn bind(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Integer(i) => rusqlite::types::Value::Integer(*i),
            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

impl Sql for SqliteSql {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Executed, StoreError> {
        let changes = self
            .conn
            .execute(sql, rusqlite::params_from_iter(bind(params)))
            .map_err(|e| StoreError::Driver(e.to_string()))?;
        Ok(Executed {
            changes: changes as u64,
            last_row_id: self.conn.last_insert_rowid(),
        })
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), StoreError> {
        // One transaction, as D1's batch is.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| StoreError::Driver(e.to_string()))?;
        for s in statements {
            tx.execute(s.sql, rusqlite::params_from_iter(bind(&s.params)))
                .map_err(|e| StoreError::Driver(e.to_string()))?;
        }
        tx.commit().map_err(|e| StoreError::Driver(e.to_string()))
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(|e| StoreError::Driver(e.to_string()))?;
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(bind(params)))
            .map_err(|e| StoreError::Driver(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| StoreError::Driver(e.to_string()))? {
            let mut map = Row::new();
            for (i, name) in names.iter().enumerate() {
                let v: rusqlite::types::Value =
                    row.get(i).map_err(|e| StoreError::Driver(e.to_string()))?;
                let json = match v {
                    rusqlite::types::Value::Null => serde_json::Value::Null,
                    rusqlite::types::Value::Integer(i) => i.into(),
                    rusqlite::types::Value::Real(f) => f.into(),
                    rusqlite::types::Value::Text(t) => t.into(),
                    rusqlite::types::Value::Blob(_) => serde_json::Value::Null,
                };
                map.insert(name.clone(), json);
            }
            out.push(map);
        }
        Ok(out)
    }
}

/// KV in memory; `fail` makes every call fail, as a KV outage would.
#[derive(Default)]
pub struct MemoryKv {
    pub map: RefCell<std::collections::HashMap<String, (String, u64)>>,
    pub fail: std::cell::Cell<bool>,
}

impl crate::ports::Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if self.fail.get() {
            return Err(StoreError::Driver("kv down".into()));
        }
        Ok(self.map.borrow().get(key).map(|(v, _)| v.clone()))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), StoreError> {
        if self.fail.get() {
            return Err(StoreError::Driver("kv down".into()));
        }
        assert!(ttl_seconds >= 60, "KV refuses TTLs under 60 s");
        self.map
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), ttl_seconds));
        Ok(())
    }
}

/// A queue producer that records messages; `fail` makes sends fail.
#[derive(Default)]
pub struct MemoryQueue {
    /// What went to `JOBS`.
    pub sent: RefCell<Vec<crate::jobs::JobMessage>>,
    /// What went to `TELEGRAM` (notifications and their messages), as the Worker's
    /// queue adapter splits them.
    pub telegram: RefCell<Vec<crate::jobs::JobMessage>>,
    /// Messages sent with a delay, and the delay.
    pub later: RefCell<Vec<(crate::jobs::JobMessage, u32)>>,
    pub fail: std::cell::Cell<bool>,
}

impl crate::ports::Queue for MemoryQueue {
    async fn send(
        &self,
        message: &crate::jobs::JobMessage,
    ) -> Result<(), crate::ports::QueueError> {
        if self.fail.get() {
            return Err(crate::ports::QueueError::Send("queue unavailable".into()));
        }
        let queue = if message.is_telegram() {
            &self.telegram
        } else {
            &self.sent
        };
        queue.borrow_mut().push(message.clone());
        Ok(())
    }

    async fn send_later(
        &self,
        message: &crate::jobs::JobMessage,
        delay_seconds: u32,
    ) -> Result<(), crate::ports::QueueError> {
        if self.fail.get() {
            return Err(crate::ports::QueueError::Send("queue unavailable".into()));
        }
        self.later
            .borrow_mut()
            .push((message.clone(), delay_seconds));
        Ok(())
    }
}

/// A valid hook deployment for tests, from `/notify` JSON fields.
pub fn hook_deployment(fields: serde_json::Value) -> crate::notify::Deployment {
    let body = serde_json::json!({ "deployment": fields }).to_string();
    crate::notify::parse_notify_body(
        body.as_bytes(),
        crate::time::Timestamp::from_millis(1_736_937_000_000),
    )
    .expect("valid deployment")
}

/// A signer for tests that use a token, not the GitHub App: signing fails the test.
pub struct NoSigner;

impl crate::github::app::RsaSigner for NoSigner {
    async fn sign_rs256(&self, _key: &[u8], _data: &[u8]) -> Result<Vec<u8>, String> {
        panic!("this test configures no GitHub App")
    }
}

/// Signs with a stand-in signature (the fakes do not check the App JWT's).
pub struct StubSigner;

impl crate::github::app::RsaSigner for StubSigner {
    async fn sign_rs256(&self, _key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        Ok(data.iter().rev().copied().take(8).collect())
    }
}

/// AES-256-GCM from RustCrypto; nonces from a counter (unique, which is all GCM needs).
#[derive(Default)]
pub struct NativeCipher {
    counter: std::cell::Cell<u64>,
}

impl crate::secrets::Cipher for NativeCipher {
    async fn seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
        cipher
            .encrypt(
                aes_gcm::Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|e| e.to_string())
    }

    async fn open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| e.to_string())?;
        cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                aes_gcm::aead::Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|e| e.to_string())
    }

    fn nonce(&self) -> Result<[u8; 12], String> {
        self.counter.set(self.counter.get() + 1);
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.get().to_be_bytes());
        Ok(n)
    }

    async fn sha256(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        Ok(<sha2::Sha256 as sha2::Digest>::digest(data).to_vec())
    }
}

/// The ports a flow test runs on: the fakes above, with the signer it needs.
pub type FakePorts<'a, R> = (
    FakeHttp,
    &'a SqliteSql,
    MemoryQueue,
    MemoryKv,
    R,
    NativeCipher,
);

/// The flows' dependencies over the test fakes.
pub fn fake_deps<'a, R: crate::github::app::RsaSigner>(
    config: &'a crate::config::Config,
    http: &'a FakeHttp,
    db: &'a SqliteSql,
    queue: &'a MemoryQueue,
    kv: &'a MemoryKv,
    signer: &'a R,
    cipher: &'a NativeCipher,
) -> crate::flow::Deps<'a, FakePorts<'a, R>> {
    crate::flow::Deps {
        config,
        http,
        sql: db,
        queue,
        kv,
        signer,
        cipher,
    }
}

/// Records `event` under `id` as a fresh, queued delivery, as the `/github` intake does.
pub fn record_queued(
    db: &SqliteSql,
    id: &crate::github::deliveries::DeliveryId,
    event: &crate::github::events::GithubEvent,
    at: crate::time::Timestamp,
) {
    block_on(crate::github::deliveries::DeliveryStore::new(db).record(
        id,
        event,
        crate::github::deliveries::Outcome::Queued,
        None,
        at,
    ))
    .expect("recorded");
}
