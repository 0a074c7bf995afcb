//! A [`Sql`] that counts its round trips: every page is sent with
//! `Server-Timing: d1;desc="N"`, and the tests hold each page to at most
//! [`MAX_ROUND_TRIPS`] through it. (The Worker's D1 adapter counts its own the same
//! way, so the stores a page shares with the admin API are compiled for one type.)

use std::cell::Cell;

use crate::ports::{Executed, Row, Sql, SqlValue, Statement, StoreError};

/// The most D1 round trips a page may make, whatever the size of the tables.
pub const MAX_ROUND_TRIPS: u32 = 3;

/// `sql`, counting each `execute`, `query` and `batch` as one round trip.
pub struct Counted<S> {
    sql: S,
    calls: Cell<u32>,
}

impl<S: Sql> Counted<S> {
    pub fn new(sql: S) -> Self {
        Counted {
            sql,
            calls: Cell::new(0),
        }
    }

    /// Round trips so far.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

impl<S: Sql> Sql for Counted<S> {
    async fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Executed, StoreError> {
        self.count();
        self.sql.execute(sql, params).await
    }

    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        self.count();
        self.sql.query(sql, params).await
    }

    async fn batch(&self, statements: &[Statement]) -> Result<(), StoreError> {
        self.count();
        self.sql.batch(statements).await
    }
}
