//! The pure domain of edge-notifier.
//!
//! Nothing in this crate knows about Workers: it owns the wire formats, validation,
//! message formatting, the retry and poll decisions, the SQL the stores run and the
//! upstream clients (generic over the [`ports::Http`] port). The Worker crate supplies
//! adapters for the ports; tests supply in-memory or native ones.

pub mod admin;
pub mod answers;
pub mod apps;
pub mod audit;
pub mod auth;
mod boxed;
pub mod chatops;
pub mod cloudflare;
pub mod concurrent;
pub mod config;
pub mod cron;
pub mod cursor;
pub mod deploy;
pub mod digest;
pub mod dispatch;
pub mod error;
pub mod flow;
pub mod fly;
pub mod github;
pub mod html;
pub mod http;
pub mod jobs;
pub mod json;
pub mod live;
pub mod maps;
pub mod names;
pub mod notify;
pub mod orchestrate;
pub mod pace;
pub mod ports;
pub mod preview;
pub mod protection;
pub mod retry;
pub mod routes;
pub mod routing;
pub mod row;
pub mod secret;
pub mod secrets;
pub mod telegram;
pub mod template;
pub mod text;
pub mod time;
pub mod web;

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod parse_props;
