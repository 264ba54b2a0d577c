//! `POST /purchases` and `GET /purchases/{id}`: checking a request, and
//! running it through the coordinator.
//!
//! ## Backend: the coordinator's request ids
//!
//! The `Idempotency-Key` is the purchase's request id in the protocol
//! (`twopc_model::RequestId`, chosen by the caller; see the essay in
//! `model/src/lib.rs`). `POST` runs the model's client actor with that id as
//! a new purchase ([`Mode::New`]): it asks the coordinator first, and the
//! coordinator starts the purchase only if it has never seen the id (with a
//! ticket, so that a stale copy can never start it twice); a known id gets
//! its recorded outcome, a known id with other contents is refused. `GET`
//! sends a lookup, which starts nothing. So the answers come from the
//! coordinator's durable outcome table, and a retry after any crash — of the
//! coordinator, of this node, of the caller — never buys twice.
//!
//! [`InFlight`] only remembers which purchases this process is driving right
//! now, so that repeated `POST`s while one is in flight share one client
//! actor; an entry goes when its client actor finishes. It is never asked
//! for an outcome the coordinator has not given.
//!
//! The coordinator remembers the last `retention` outcomes (cluster file,
//! default 100,000). A `POST` with a key older than that is a new purchase;
//! a `GET` of it answers `unknown`.

use super::{ApiError, AppState};
use crate::ops::client::{self, Lookup};
use crate::runtime::wire::check_name;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use twopc_model::{Mode, Operation, Outcome, Purchase, Rejection, Request, RequestId, Verdict};

/// The header naming a purchase (the IETF draft "The Idempotency-Key HTTP
/// Header Field").
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How long a `POST`'s client actor keeps asking for an outcome after the
/// `POST` was answered 202 (the caller's retries take over after that).
const CLIENT_PATIENCE: Duration = Duration::from_secs(60);

/// How long `GET` waits for the coordinator's answer.
const LOOKUP_PATIENCE: Duration = Duration::from_secs(3);

/// A purchase as an application sends it. Amounts are read as any JSON
/// number, so that a negative, fractional or oversized one gets its own
/// error code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// The paying user (a wallet account), 1 to [`crate::runtime::wire::MAX_NAME`] bytes.
    pub user: String,
    /// The product, 1 to [`crate::runtime::wire::MAX_NAME`] bytes.
    pub sku: String,
    /// Units to buy: a whole number, at least 1.
    pub qty: serde_json::Number,
    /// Price per unit: a whole number, 0 or more; `qty * price` must fit in
    /// 64 bits.
    pub price: serde_json::Number,
}

/// A JSON number as an amount: a whole number of 0 or more within 64 bits.
pub(super) fn amount(what: &str, n: &serde_json::Number) -> Result<u64, ApiError> {
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    if n.is_i64() {
        return Err(ApiError::bad_request(
            "invalid_amount",
            format!("{what} is {n}; amounts are not negative"),
        ));
    }
    // Not a u64 nor an i64: a number with a fraction or an exponent, or a
    // whole number beyond 64 bits (read as a float).
    match n.as_f64() {
        Some(f) if f.is_finite() && f < 0.0 => Err(ApiError::bad_request(
            "invalid_amount",
            format!("{what} is {n}; amounts are not negative"),
        )),
        // 2^64 and beyond: only a number too large for 64 bits reads so.
        Some(f) if f.is_finite() && f.fract() == 0.0 && f >= 18_446_744_073_709_551_616.0 => {
            Err(ApiError::bad_request(
                "amount_overflow",
                format!("{what} is {n}; an amount is at most {} (64 bits)", u64::MAX),
            ))
        }
        // `2.0`, `2e0`, `1.5`: a whole number below 2^64 written so is not
        // read as one (was `amount_overflow`).
        _ => Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{what} is {n}; amounts are whole numbers written without a fraction or an \
                 exponent (2, not 2.0)"
            ),
        )),
    }
}

impl PurchaseBody {
    /// The purchase, or why it is refused (changing nothing).
    pub fn check(self) -> Result<Purchase, ApiError> {
        for (what, name) in [("user", &self.user), ("sku", &self.sku)] {
            name_of(what, name)?;
        }
        let qty = amount("qty", &self.qty)?;
        let price = amount("price", &self.price)?;
        if qty == 0 {
            return Err(ApiError::bad_request(
                "invalid_amount",
                "qty is 0; it must be at least 1",
            ));
        }
        if qty.checked_mul(price).is_none() {
            return Err(ApiError::bad_request(
                "amount_overflow",
                format!("qty * price ({qty} * {price}) does not fit in 64 bits"),
            ));
        }
        Ok(Purchase {
            user: self.user,
            sku: self.sku,
            qty,
            price,
        })
    }
}

/// Checks a user name or a sku: 1 to [`crate::runtime::wire::MAX_NAME`]
/// bytes (`invalid_name`, `name_too_long`).
pub(super) fn name_of(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("{what} is empty"),
        ));
    }
    check_name(what, name).map_err(|msg| ApiError::bad_request("name_too_long", msg))
}

/// What the API answers about a purchase (a top-up, a restock).
#[derive(Debug, Serialize)]
pub struct PurchaseView {
    /// The `Idempotency-Key` it was made with.
    pub id: String,
    /// `committed`, `aborted` (final: the same on every later ask) or
    /// `in_progress`.
    pub status: &'static str,
    /// Why it aborted (`insufficient_funds`, ...); `null` otherwise.
    pub reason: Option<&'static str>,
    /// The attempt that decided it, `epoch.n` (`null` if none).
    pub txn: Option<String>,
}

impl PurchaseView {
    fn in_progress(id: &str) -> Self {
        PurchaseView {
            id: id.to_string(),
            status: "in_progress",
            reason: None,
            txn: None,
        }
    }
}

/// The answer for an outcome from the coordinator: 200 with a final
/// outcome, or the refusal it stands for.
fn answer(id: &str, o: &Outcome, what: &str) -> Result<PurchaseView, ApiError> {
    let (status, reason) = match o.verdict {
        Verdict::Committed => ("committed", None),
        Verdict::Aborted(r) => ("aborted", Some(r.name())),
        Verdict::Refused(Rejection::KeyReused) => return Err(key_reused(id, what)),
        Verdict::Refused(r @ Rejection::InvalidId) => {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                format!("the coordinator refused the key: {}", r.name()),
            ))
        }
        Verdict::Unknown => return Err(unknown(id, what)),
    };
    Ok(PurchaseView {
        id: id.to_string(),
        status,
        reason,
        txn: o.txn.map(|t| t.to_string()),
    })
}

/// `what`: the operation asked for (`purchase`, `top-up`, `restock`).
fn key_reused(id: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        format!(
            "Idempotency-Key {id:?} was used for a different {what}; \
             use a new key for a new {what}"
        ),
    )
}

fn unknown(id: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown",
        format!(
            "the coordinator knows no {what} with Idempotency-Key {id:?}: never made, or \
             its outcome expired (the coordinator keeps the last `retention` outcomes)"
        ),
    )
}

/// The purchases (top-ups, restocks) this process is driving now, by key
/// (see the module's doc): never the source of an outcome the coordinator
/// has not given. One map for every operation: a key names one operation,
/// whatever its kind, as the coordinator's ids do.
#[derive(Debug, Default)]
pub struct InFlight {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    op: Operation,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// Checks an `Idempotency-Key`: 1 to [`RequestId::MAX_LEN`] characters
/// from `A-Z a-z 0-9 - _ . : ~` (so that it is a path segment as it is).
pub fn check_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::bad_request(
            "missing_idempotency_key",
            "send an Idempotency-Key header naming this purchase (e.g. your order number), \
             and the same one on every retry",
        ));
    };
    if values.next().is_some() {
        // Which one names the purchase? Neither is guessed.
        return Err(ApiError::bad_request(
            "duplicate_idempotency_key",
            "send exactly one Idempotency-Key header",
        ));
    }
    match value.to_str() {
        Ok(key) if is_key(key) => Ok(key.to_string()),
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "an Idempotency-Key is 1 to {} characters from A-Z a-z 0-9 - _ . : ~",
                RequestId::MAX_LEN
            ),
        )),
    }
}

/// Whether `key` is a valid `Idempotency-Key` (see [`check_key`]).
fn is_key(key: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric() || b"-_.:~".contains(&c);
    !key.is_empty() && key.len() <= RequestId::MAX_LEN && key.bytes().all(ok)
}

/// Reads and checks a body: at most [`super::MAX_BODY`] bytes of JSON
/// naming exactly the fields of `T` (a [`PurchaseBody`]; `shape` names
/// them for the error message, e.g. `a purchase is {...}`).
pub(super) async fn read_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    shape: &str,
) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a request body is at most {} bytes", super::MAX_BODY),
        )
    };
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .is_ok_and(|ct| ct.trim_start().starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request as JSON (Content-Type: application/json)",
            ));
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > super::MAX_BODY as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, super::MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("unknown field") {
            "unknown_field"
        } else if msg.starts_with("missing field") {
            "missing_field"
        } else if e.is_data() {
            "invalid_field"
        } else {
            "invalid_json"
        };
        ApiError::bad_request(code, format!("{msg}; {shape}"))
    })
}

/// `POST /purchases`: makes the purchase named by `Idempotency-Key`, or
/// finds the one made before with that key; answers its outcome (200), or
/// 202 with `Location: /purchases/{id}` if none came within the wait.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let made = async {
        let key = check_key(&headers)?;
        let shape = "a purchase is {\"user\", \"sku\", \"qty\", \"price\"}";
        let body: PurchaseBody = read_body(&headers, body, shape).await?;
        Ok((key, body.check()?))
    };
    let (key, purchase) = app.telemetry.ops.refusing("purchase", made.await)?;
    drive(app, key, purchase.into(), started).await
}

/// The path a `POST` of `op` points at in its `Location` (its `GET`).
fn location(op: &Operation, key: &str) -> String {
    match op {
        Operation::Purchase(_) => format!("/purchases/{key}"),
        Operation::TopUp { .. } => format!("/topups/{key}"),
        Operation::Restock { .. } | Operation::PricedRestock { .. } => {
            format!("/restocks/{key}")
        }
        Operation::Refund { .. } => format!("/refunds/{key}"),
    }
}

/// What `op` is called in a message for people.
pub(super) fn noun(op: &Operation) -> &'static str {
    match op {
        Operation::Purchase(_) => "purchase",
        Operation::TopUp { .. } => "top-up",
        Operation::Restock { .. } | Operation::PricedRestock { .. } => "restock",
        Operation::Refund { .. } => "refund",
    }
}

/// Makes `op` (checked) under `key`, or finds the one made before with that
/// key; answers its outcome (200), or 202 with `Location` if none came
/// within the wait. `POST /purchases`, `/topups` and `/restocks` alike.
pub(super) async fn drive(
    app: AppState,
    key: String,
    op: Operation,
    started: Instant,
) -> Result<Response, ApiError> {
    let what = noun(&op);
    let mut outcome = {
        let mut entries = app.purchases.entries.lock().expect("not poisoned");
        match entries.get(&key) {
            // Refused here already: the coordinator would refuse it too once
            // the first is decided (`key_reused`).
            Some(entry) if entry.op != op => return Err(key_reused(&key, what)),
            Some(entry) => entry.outcome.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                entries.insert(
                    key.clone(),
                    Entry {
                        op: op.clone(),
                        outcome: rx.clone(),
                    },
                );
                tokio::spawn(run(app.clone(), key.clone(), op.clone(), tx));
                rx
            }
        }
    };
    let decided = tokio::time::timeout(app.wait, outcome.wait_for(Option::is_some)).await;
    let decided = match decided {
        Ok(Ok(o)) => o.clone(),
        _ => None,
    };
    match decided {
        Some(Outcome {
            verdict: Verdict::Unknown,
            ..
        }) => Err({
            app.telemetry.ops.answered(what, Some(&Verdict::Unknown));
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "try_again",
                format!(
                    "the coordinator forgot this key's ticket before the {what} reached it \
                 (many requests at once); nothing was done: send the same request again"
                ),
            )
        }),
        Some(o) => {
            app.telemetry.ops.answered(what, Some(&o.verdict));
            let view = answer(&key, &o, what)?;
            if matches!(op, Operation::Purchase(_)) {
                app.telemetry
                    .http_purchase_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
            Ok((StatusCode::OK, Json(view)).into_response())
        }
        None => {
            app.telemetry.ops.answered(what, None);
            let location = HeaderValue::from_str(&location(&op, &key))
                .expect("a checked key is a valid header value");
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(PurchaseView::in_progress(&key)),
            )
                .into_response())
        }
    }
}

/// Drives one operation with the model's client actor, under the caller's
/// key, as a new one; then forgets it here (the coordinator keeps it).
async fn run(app: AppState, key: String, op: Operation, tx: watch::Sender<Option<Outcome>>) {
    let what = noun(&op);
    let request = Request {
        req: RequestId::new(key.clone()),
        op,
        mode: Mode::New,
    };
    let result = client::run_requests(
        &app.coordinators,
        vec![request],
        app.codec.clone(),
        CLIENT_PATIENCE,
        move |o| {
            let _ = tx.send(Some(o.clone()));
        },
    )
    .await;
    if !matches!(&result, Ok(seen) if !seen.is_empty()) {
        tracing::warn!(
            key,
            ?result,
            what,
            "HTTP request: no outcome yet; the caller's retry asks again"
        );
    }
    app.purchases
        .entries
        .lock()
        .expect("not poisoned")
        .remove(&key);
}

/// `GET /purchases/{id}`: asks the coordinator (a lookup, which starts
/// nothing): the outcome, `in_progress`, or 404 `unknown`.
pub async fn lookup(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PurchaseView>, ApiError> {
    lookup_as(app, id, "purchase").await
}

/// `GET /{purchases,topups,restocks}/{id}`: the lookup, with `what` (the
/// operation's noun) in its messages. Ids are shared by every operation,
/// so any of the three paths finds any id.
pub(super) async fn lookup_as(
    app: AppState,
    id: String,
    what: &str,
) -> Result<Json<PurchaseView>, ApiError> {
    if !is_key(&id) {
        return Err(unknown(&id, what)); // Nothing was ever made with it.
    }
    let key = id;
    let asked = client::lookup(
        &app.coordinators,
        &RequestId::new(key.clone()),
        &app.codec,
        LOOKUP_PATIENCE,
    )
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "coordinator_unavailable",
            format!("cannot ask the coordinator: {e}"),
        )
    })?;
    let driving = app
        .purchases
        .entries
        .lock()
        .expect("not poisoned")
        .contains_key(&key);
    match asked {
        Some(Lookup::Decided(o)) => answer(&key, &o, what).map(Json),
        Some(Lookup::InProgress) => Ok(Json(PurchaseView::in_progress(&key))),
        // Asked, ticket in hand, not at the coordinator yet.
        Some(Lookup::Unknown) if driving => Ok(Json(PurchaseView::in_progress(&key))),
        Some(Lookup::Unknown) => Err(unknown(&key, what)),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "coordinator_unavailable",
            format!(
                "no answer from the coordinator at {} within {}s; ask again",
                app.coordinators
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                LOOKUP_PATIENCE.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
