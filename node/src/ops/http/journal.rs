//! `GET /journal/{name}?from=N&limit=K`: one page of a participant's
//! journal (at most [`JOURNAL_PAGE`] entries), asked of the node as `twopc
//! journal` asks it (`crate::ops::journal`), answered in the same JSON;
//! `next` is the `from` of the next page. Read-only: asking changes nothing.

use super::{ApiError, AppState};
use crate::ops::journal::{ask_page, JournalJson, PageAnswer};
use crate::runtime::role::Role;
use crate::runtime::wire::JOURNAL_PAGE;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::HashMap;
use std::time::Duration;

/// How long a page waits for the participant's answer (asked again every
/// 300 ms meanwhile).
const PATIENCE: Duration = Duration::from_secs(3);

/// `GET /journal/{name}`: `{"node","first","from","truncated","next","end",
/// "entries":[...]}`. 400 `bad_from` / `bad_limit`, 404 `unknown_node` (no
/// such name in the cluster file) or `no_journal` (a coordinator), 503
/// `node_unavailable`.
pub async fn journal(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JournalJson>, ApiError> {
    let number = |field: &str, code: &'static str, default: u64| match query.get(field) {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ApiError::bad_request(
                code,
                format!("{field}={text:?}: expected a whole number of at least 1"),
            )),
        },
    };
    let from = number("from", "bad_from", 1)?;
    let limit = number("limit", "bad_limit", JOURNAL_PAGE as u64)?;
    let Some(node) = app.nodes.iter().find(|n| n.name == name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_node",
            format!("no node {name:?} in the cluster file"),
        ));
    };
    let no_journal = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_journal",
            format!(
                "{name} keeps no journal: only participants (the wallet, the order service) do"
            ),
        )
    };
    if node.role == Role::Coordinator {
        return Err(no_journal());
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let want = limit.min(JOURNAL_PAGE as u64) as u32;
    let unavailable =
        |msg: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "node_unavailable", msg);
    let answer = ask_page(node.address, &app.codec, from, want, deadline)
        .await
        .map_err(|e| unavailable(format!("cannot ask {name} at {}: {e}", node.address)))?;
    match answer {
        PageAnswer::Page(page) => {
            let mut out = JournalJson::new(&name, from);
            out.add(node.role, &page);
            Ok(Json(out))
        }
        PageAnswer::NoJournal => Err(no_journal()),
        PageAnswer::NoAnswer => Err(unavailable(format!(
            "no answer from {name} at {} within {}s; ask again",
            node.address,
            PATIENCE.as_secs()
        ))),
    }
}
