//! Which destinations a message goes to: the routes in D1 (in their order), then an
//! app's own `telegram_chat_id` (for its deploy, preview and workflow messages), then
//! `TELEGRAM_CHAT_ID`, the default route.

use serde::Serialize;

use crate::config::Config;
use crate::json::FromJson;
use crate::names::AppName;
use crate::pace::Pace;
use crate::ports::{Sql, StoreError};
use crate::routes::{resolve, ChatId, Route, RouteId, RouteStore, Subject};

/// Where one destination's message goes and how, as its row keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
pub struct Recipient {
    /// The route that chose it (`default` for `TELEGRAM_CHAT_ID`).
    pub route: String,
    pub chat_id: String,
    /// `""` (the chat itself), `"auto"` (the project's forum topic) or a topic id.
    #[serde(default)]
    pub thread: String,
    #[serde(default)]
    pub silent: bool,
    #[serde(default)]
    pub link_preview: bool,
    #[serde(default)]
    pub template: Option<String>,
    /// Messages a second; 0 is unpaced.
    pub per_second: u32,
    pub per_minute: u32,
    pub digest_threshold: u32,
}

impl Recipient {
    /// Its pace, or `None` when it is unpaced.
    pub fn pace(&self) -> Option<Pace> {
        (self.per_second > 0).then_some(Pace {
            per_second: self.per_second,
            per_minute: self.per_minute,
            digest_threshold: self.digest_threshold,
        })
    }
}

/// The routes as one batch reads them, once.
pub struct Routes {
    routes: Vec<Route>,
    /// `TELEGRAM_PACE` for the default route (`None`: unpaced).
    default_pace: Option<crate::pace::Pace>,
}

impl Routes {
    /// Reads the routes and appends the default one.
    pub async fn load<S: Sql>(sql: S, config: &Config) -> Result<Routes, StoreError> {
        Routes::load_for(sql, config, None).await
    }

    /// Reads the routes, then `app`'s own chat (its `telegram_chat_id`, a route for
    /// its deploy, preview and workflow messages), then the default one.
    pub async fn load_for<S: Sql>(
        sql: S,
        config: &Config,
        app: Option<(&AppName, &str)>,
    ) -> Result<Routes, StoreError> {
        let mut routes = RouteStore::new(sql).list().await?;
        // A chat id `ChatId` would refuse still works as it did before routes.
        let chat = |id: &str| ChatId::parse(id).unwrap_or_else(|_| ChatId::unchecked(id));
        if let Some((name, id)) = app {
            routes.push(Route::for_app(name, chat(id)));
        }
        if let Ok(telegram) = &config.telegram {
            routes.push(Route::default_route(chat(&telegram.chat_id)));
        }
        Ok(Routes {
            routes,
            default_pace: config.telegram_pace,
        })
    }

    /// Where a message about `subject` goes; empty when no route matches.
    pub fn recipients(&self, subject: &Subject<'_>) -> Vec<Recipient> {
        resolve(&self.routes, subject)
            .into_iter()
            .map(|t| {
                let pace = match t.route {
                    RouteId::Default => self.default_pace,
                    _ => Some(t.pace),
                };
                Recipient {
                    route: t.route.to_string(),
                    chat_id: t.destination.chat_id.as_str().to_owned(),
                    thread: t.destination.thread().key(),
                    silent: t.destination.silent,
                    link_preview: t.destination.link_preview,
                    template: t.destination.template.clone(),
                    per_second: pace.map_or(0, |p| p.per_second),
                    per_minute: pace.map_or(0, |p| p.per_minute),
                    digest_threshold: pace.map_or(0, |p| p.digest_threshold),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Outcome, RouteName, RouteSpec, Source};
    use crate::testing::{block_on, SqliteSql};
    use crate::time::Timestamp;
    use serde_json::json;

    fn config(pace: Option<&str>) -> Config {
        Config::from_lookup(|k| match k {
            "TELEGRAM_BOT_TOKEN" => Some("42:TOKEN".into()),
            "TELEGRAM_CHAT_ID" => Some("-100".into()),
            "TELEGRAM_PACE" => pace.map(str::to_owned),
            _ => None,
        })
    }

    fn put(db: &SqliteSql, name: &str, route: serde_json::Value) {
        let spec = RouteSpec::parse(route.to_string().as_bytes()).expect("valid route");
        block_on(RouteStore::new(db).put(
            &RouteName::parse(name).expect("name"),
            &spec,
            Timestamp::from_millis(0),
        ))
        .expect("stored");
    }

    fn subject<'a>(source: Source, project: &'a str, branch: Option<&'a str>) -> Subject<'a> {
        Subject {
            source,
            project,
            environment: Some("production"),
            branch,
            outcome: Outcome::Success,
        }
    }

    fn chats(routes: &Routes, s: Subject<'_>) -> Vec<(String, String, u32)> {
        routes
            .recipients(&s)
            .into_iter()
            .map(|r| (r.route, r.chat_id, r.per_minute))
            .collect()
    }

    #[test]
    fn stored_routes_come_first_and_the_default_route_takes_the_rest() {
        let db = SqliteSql::migrated();
        put(
            &db,
            "api",
            json!({"match": {"project": "api-*", "branch": "main"},
                   "destinations": [{"chat_id": "-200"}], "pace": {"per_minute": 10}}),
        );
        let routes = block_on(Routes::load(&db, &config(None))).expect("loaded");
        let n = Source::Notify;
        assert_eq!(
            chats(&routes, subject(n, "api-core", Some("main"))),
            vec![("api".into(), "-200".into(), 10)]
        );
        // No branch reported: a route that asks for one does not match.
        assert_eq!(
            chats(&routes, subject(n, "api-core", None)),
            vec![("default".into(), "-100".into(), 20)]
        );
        assert_eq!(
            chats(&routes, subject(n, "web", Some("main"))),
            vec![("default".into(), "-100".into(), 20)]
        );
    }

    #[test]
    fn an_apps_own_chat_takes_its_deploy_messages_before_the_default() {
        let db = SqliteSql::migrated();
        let app = AppName::parse("shop").expect("name");
        let routes =
            block_on(Routes::load_for(&db, &config(None), Some((&app, "-300")))).expect("loaded");
        assert_eq!(
            chats(&routes, subject(Source::Deploy, "shop", None)),
            vec![("app:shop".into(), "-300".into(), 20)]
        );
        // Its name on a /notify deployment is not its deploy job.
        assert_eq!(
            chats(&routes, subject(Source::Notify, "shop", None)),
            vec![("default".into(), "-100".into(), 20)]
        );
    }

    #[test]
    fn the_default_route_is_unpaced_with_telegram_pace_off() {
        let db = SqliteSql::migrated();
        let s = subject(Source::Notify, "p", None);
        let routes = block_on(Routes::load(&db, &config(Some("off")))).expect("loaded");
        let r = routes.recipients(&s);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].pace(), None);
        let routes = block_on(Routes::load(&db, &config(Some("2/40")))).expect("loaded");
        let r = routes.recipients(&s);
        assert_eq!(
            (r[0].per_second, r[0].per_minute, r[0].digest_threshold),
            (2, 40, 5)
        );
    }

    #[test]
    fn without_routes_or_telegram_nothing_matches() {
        let db = SqliteSql::migrated();
        let routes = block_on(Routes::load(&db, &Config::from_lookup(|_| None))).expect("loaded");
        assert!(routes
            .recipients(&subject(Source::Notify, "p", None))
            .is_empty());
    }
}
