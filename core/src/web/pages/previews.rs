//! `/previews`: every app's previews, newest first (by when they were asked for),
//! paged with `?before=`.
//!
//! Selectors: `h1`, `#previews tr.preview[data-app][data-pr]` (`.state[data-state]`,
//! `a` to the app, the preview's URL, `.sha`), `a.older`.
//!
//! One round trip.

use maud::html;

use super::app::{previews_table, PreviewRow, PREVIEW_JSON};
use super::{PageError, PAGE_SIZE};
use crate::cursor::{self, Cursor};
use crate::ports::Sql;
use crate::row::Columns;
use crate::time::Timestamp;
use crate::web::layout::page;
use crate::web::viewer::Viewer;

#[derive(Debug, Clone, PartialEq)]
pub struct PreviewsView {
    pub previews: Vec<PreviewRow>,
    pub next: Option<Cursor>,
}

pub async fn load<S: Sql>(sql: S, before: Option<&Cursor>) -> Result<PreviewsView, PageError> {
    let mut params = Vec::with_capacity(4);
    params.extend(Cursor::bound_of(before, 'p', "p", true)?.params());
    params.push((PAGE_SIZE + 1).into());
    let rows = sql
        .query(
            &format!(
                "SELECT {PREVIEW_JSON} AS preview FROM previews p WHERE {} \
                 ORDER BY p.created_at DESC, p.id DESC LIMIT ?4",
                Cursor::condition("p.created_at", "p.id", 1)
            ),
            &params,
        )
        .await?;
    let previews = rows
        .iter()
        .map(|r| {
            crate::json::read::<PreviewRow>(r.opt_str("preview").unwrap_or("null"))
                .map_err(crate::ports::StoreError::row)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (previews, next) = cursor::page(previews, PAGE_SIZE as usize, |p| {
        Cursor::new(p.created_at, 'p', p.id.to_string())
    });
    Ok(PreviewsView { previews, next })
}

pub fn render(view: &PreviewsView, viewer: &Viewer, now: Timestamp) -> String {
    let body = html! {
        h1 { "Previews" }
        section #previews {
            @if view.previews.is_empty() { p.muted { "No previews." } }
            @else { (previews_table(&view.previews, true, now)) }
            (super::pager("/previews", "", view.next.as_ref()))
        }
    };
    page("Previews", Some(viewer), body)
}

#[cfg(test)]
mod tests;
