//! `GET /accounts/{user}` and `GET /skus/{sku}`: one user's balance or one
//! sku's stock, with what prepared purchases hold of it, asked of the
//! wallet or the order service as `twopc account` and `twopc sku` ask it
//! (`crate::ops::views`), and answered in the same JSON. Read-only: asking
//! changes nothing.

use super::{ApiError, AppState};
use crate::ops::views::{self, Answer, KeyJson, Kind};
use crate::runtime::wire::check_name;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::time::Duration;

/// How long a view waits for the participant's answer (asked again every
/// 300 ms meanwhile).
const VIEW_PATIENCE: Duration = Duration::from_secs(3);

/// `GET /accounts/{user}`: `{"user","balance","held","available","holds"}`.
pub async fn account(
    State(app): State<AppState>,
    Path(user): Path<String>,
) -> Result<Json<KeyJson>, ApiError> {
    view(&app, Kind::Account, &user).await
}

/// `GET /skus/{sku}`: `{"sku","stock","held","available","holds"}`.
pub async fn sku(
    State(app): State<AppState>,
    Path(sku): Path<String>,
) -> Result<Json<KeyJson>, ApiError> {
    view(&app, Kind::Sku, &sku).await
}

async fn view(app: &AppState, kind: Kind, key: &str) -> Result<Json<KeyJson>, ApiError> {
    let what = kind.key_field();
    if let Err(msg) = check_name(what, key) {
        // The code `POST /purchases` gives the same name; nothing is sent.
        return Err(ApiError::bad_request("name_too_long", msg));
    }
    let (addr, unavailable) = match kind {
        Kind::Account => (app.wallet, "wallet_unavailable"),
        Kind::Sku => (app.order, "order_unavailable"),
    };
    let node = kind.role();
    let deadline = tokio::time::Instant::now() + VIEW_PATIENCE;
    let answer = views::ask(addr, &app.codec, key, deadline)
        .await
        .map_err(|e| {
            let msg = format!("cannot ask the {node} at {addr}: {e}");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, unavailable, msg)
        })?;
    match answer {
        Answer::View(v) if v.level.is_some() => Ok(Json(kind.json(&v))),
        Answer::View(v) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            match kind {
                Kind::Account => "unknown_user",
                Kind::Sku => "unknown_sku",
            },
            kind.unknown(&v, &format!("the {node}")),
        )),
        Answer::NotParticipant => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            unavailable,
            format!(
                "the node at {addr} says it is not the {node}: the cluster file this node \
                 read differs from the one the {node} runs with"
            ),
        )),
        Answer::NoAnswer => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            unavailable,
            format!(
                "no answer from the {node} at {addr} within {}s; ask again",
                VIEW_PATIENCE.as_secs()
            ),
        )),
    }
}
