//! Which destinations a notification goes to: the routes in D1 (in their order),
//! then `TELEGRAM_CHAT_ID`, the default route.

use crate::config::Config;
use crate::notify::sends::Recipient;
use crate::notify::{Deployment, Source as NotifySource};
use crate::ports::{Sql, StoreError};
use crate::routes::{resolve, ChatId, Outcome, Route, RouteId, RouteStore, Source, Subject};

/// The routes as one batch reads them, once.
pub struct Routes {
    routes: Vec<Route>,
    /// `TELEGRAM_PACE` for the default route (`None`: unpaced).
    default_pace: Option<crate::pace::Pace>,
}

impl Routes {
    /// Reads the routes and appends the default one.
    pub async fn load<S: Sql>(sql: S, config: &Config) -> Result<Routes, StoreError> {
        let mut routes = RouteStore::new(sql).list().await?;
        if let Ok(telegram) = &config.telegram {
            // A chat id `ChatId` would refuse still works as it did before routes.
            let chat = ChatId::parse(&telegram.chat_id)
                .unwrap_or_else(|_| ChatId::unchecked(&telegram.chat_id));
            routes.push(Route::default_route(chat));
        }
        Ok(Routes {
            routes,
            default_pace: config.telegram_pace,
        })
    }

    /// Where `d` goes; empty when no route matches.
    pub fn recipients(&self, d: &Deployment) -> Vec<Recipient> {
        let subject = Subject {
            source: match d.source {
                NotifySource::Hook => Source::Notify,
                NotifySource::Poll => Source::Poll,
            },
            project: &d.project_name,
            environment: Some(&d.environment),
            branch: d.branch.as_deref(),
            // A deployment reported or polled is one that went out.
            outcome: Outcome::Success,
        };
        resolve(&self.routes, &subject)
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
    use crate::routes::{RouteName, RouteSpec};
    use crate::testing::{block_on, hook_deployment, SqliteSql};
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

    fn chats(routes: &Routes, fields: serde_json::Value) -> Vec<(String, String, u32)> {
        routes
            .recipients(&hook_deployment(fields))
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
        let dep = |project: &str, branch: Option<&str>| {
            let mut f = json!({"type": "worker", "projectName": project, "deploymentId": "1"});
            if let Some(b) = branch {
                f["branch"] = b.into();
            }
            f
        };
        assert_eq!(
            chats(&routes, dep("api-core", Some("main"))),
            vec![("api".into(), "-200".into(), 10)]
        );
        // No branch reported: a route that asks for one does not match.
        assert_eq!(
            chats(&routes, dep("api-core", None)),
            vec![("default".into(), "-100".into(), 20)]
        );
        assert_eq!(
            chats(&routes, dep("web", Some("main"))),
            vec![("default".into(), "-100".into(), 20)]
        );
    }

    #[test]
    fn the_default_route_is_unpaced_with_telegram_pace_off() {
        let db = SqliteSql::migrated();
        let routes = block_on(Routes::load(&db, &config(Some("off")))).expect("loaded");
        let r = routes.recipients(&hook_deployment(
            json!({"type": "worker", "projectName": "p", "deploymentId": "1"}),
        ));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].pace(), None);
        let routes = block_on(Routes::load(&db, &config(Some("2/40")))).expect("loaded");
        let r = routes.recipients(&hook_deployment(
            json!({"type": "worker", "projectName": "p", "deploymentId": "1"}),
        ));
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
            .recipients(&hook_deployment(
                json!({"type": "worker", "projectName": "p", "deploymentId": "1"})
            ))
            .is_empty());
    }
}
