//! `POST /purchases` and `GET /purchases/{id}`: checking a request, and
//! running it through the coordinator.
//!
//! ## Backend: a placeholder until caller-chosen request ids land
//!
//! The protocol does not yet carry the caller's id (issue 11, items 1–2,
//! are under way on another branch). Until then [`Purchases`] is an
//! **in-process placeholder**: a map from `Idempotency-Key` to the
//! purchase and its outcome, each purchase run by one client actor that
//! retries its one request until the coordinator answers. It gives the
//! API's contract within one life of this process — a retry with the same
//! key returns the same outcome and never starts a second purchase, the same
//! key with another body is refused — but the map is volatile and
//! unbounded: after this node restarts, a key is unknown again and a retry
//! would buy again. The tests are written against the contract, not this
//! map, so they keep passing when the backend becomes the coordinator's
//! own durable record of request ids.

use super::{ApiError, AppState};
use crate::client::{self, reason_name};
use crate::wire::{check_name, MAX_NAME};
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
use twopc_model::{Outcome, Purchase, Verdict};

/// The header naming a purchase (the IETF draft "The Idempotency-Key HTTP
/// Header Field").
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How long the placeholder's client actor keeps asking for an outcome.
const CLIENT_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// A purchase as an application sends it. Amounts are read as any JSON
/// number, so that a negative, fractional or oversized one gets its own
/// error code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// The paying user (a wallet account), 1 to [`MAX_NAME`] bytes.
    pub user: String,
    /// The product, 1 to [`MAX_NAME`] bytes.
    pub sku: String,
    /// Units to buy: a whole number, at least 1.
    pub qty: serde_json::Number,
    /// Price per unit: a whole number, 0 or more; `qty * price` must fit in
    /// 64 bits.
    pub price: serde_json::Number,
}

/// A JSON number as an amount: a whole number of 0 or more within 64 bits.
fn amount(what: &str, n: &serde_json::Number) -> Result<u64, ApiError> {
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    if n.is_i64() {
        return Err(ApiError::bad_request(
            "invalid_amount",
            format!("{what} is {n}; amounts are not negative"),
        ));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f > 0.0 => Err(ApiError::bad_request(
            "amount_overflow",
            format!("{what} is {n}; an amount is at most {} (64 bits)", u64::MAX),
        )),
        Some(f) if f.is_finite() && f.fract() == 0.0 => Err(ApiError::bad_request(
            "invalid_amount",
            format!("{what} is {n}; amounts are not negative"),
        )),
        _ => Err(ApiError::bad_request(
            "invalid_field",
            format!("{what} is {n}; amounts are whole numbers"),
        )),
    }
}

impl PurchaseBody {
    /// The purchase, or why it is refused (changing nothing).
    pub fn check(self) -> Result<Purchase, ApiError> {
        for (what, name) in [("user", &self.user), ("sku", &self.sku)] {
            if name.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_name",
                    format!("{what} is empty"),
                ));
            }
            if let Err(msg) = check_name(what, name) {
                return Err(ApiError::bad_request("name_too_long", msg));
            }
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

/// What the API answers about a purchase.
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
    fn of(id: &str, outcome: Option<&Outcome>) -> Self {
        let (status, reason) = match outcome.map(|o| o.verdict) {
            None => ("in_progress", None),
            Some(Verdict::Committed) => ("committed", None),
            Some(Verdict::Aborted(r)) => ("aborted", Some(reason_name(r))),
        };
        PurchaseView {
            id: id.to_string(),
            status,
            reason,
            txn: outcome.and_then(|o| o.txn).map(|t| t.to_string()),
        }
    }
}

/// PLACEHOLDER (see the module's doc): purchases started through this
/// process's API, by key. Volatile and unbounded.
#[derive(Debug, Default)]
pub struct Purchases {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    purchase: Purchase,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// Checks an `Idempotency-Key`: 1 to [`MAX_NAME`] characters from
/// `A-Z a-z 0-9 - _ . : ~` (so that it is a path segment as it is).
pub fn check_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Err(ApiError::bad_request(
            "missing_idempotency_key",
            "send an Idempotency-Key header naming this purchase (e.g. your order number), \
             and the same one on every retry",
        ));
    };
    let ok = |c: u8| c.is_ascii_alphanumeric() || b"-_.:~".contains(&c);
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME || !bytes.iter().all(|&c| ok(c)) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("an Idempotency-Key is 1 to {MAX_NAME} characters from A-Z a-z 0-9 - _ . : ~"),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads and checks a body: at most [`super::MAX_BODY`] bytes of JSON
/// naming exactly the fields of [`PurchaseBody`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<PurchaseBody, ApiError> {
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
                "send the purchase as JSON (Content-Type: application/json)",
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
        ApiError::bad_request(
            code,
            format!("{msg}; a purchase is {{\"user\", \"sku\", \"qty\", \"price\"}}"),
        )
    })
}

/// `POST /purchases`: starts the purchase named by `Idempotency-Key`, or
/// finds the one started before with that key; answers its outcome (200),
/// or 202 with `Location: /purchases/{id}` if none came within the wait.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let key = check_key(&headers)?;
    let purchase = read_body(&headers, body).await?.check()?;
    let mut outcome = {
        let mut entries = app.purchases.entries.lock().expect("not poisoned");
        match entries.get(&key) {
            Some(entry) if entry.purchase != purchase => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    format!(
                        "Idempotency-Key {key:?} was used for a different purchase; \
                         use a new key for a new purchase"
                    ),
                ));
            }
            Some(entry) => entry.outcome.clone(),
            None => {
                let (tx, rx) = watch::channel(None);
                entries.insert(
                    key.clone(),
                    Entry {
                        purchase: purchase.clone(),
                        outcome: rx.clone(),
                    },
                );
                tokio::spawn(run(app.clone(), key.clone(), purchase, tx));
                rx
            }
        }
    };
    let decided = tokio::time::timeout(app.wait, outcome.wait_for(Option::is_some)).await;
    let decided = match decided {
        Ok(Ok(o)) => *o,
        _ => None,
    };
    Ok(match decided {
        Some(o) => {
            app.telemetry
                .http_purchase_seconds
                .observe(started.elapsed().as_secs_f64());
            (StatusCode::OK, Json(PurchaseView::of(&key, Some(&o)))).into_response()
        }
        None => {
            let location = HeaderValue::from_str(&format!("/purchases/{key}"))
                .expect("a checked key is a valid header value");
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(PurchaseView::of(&key, None)),
            )
                .into_response()
        }
    })
}

/// Runs one purchase to its outcome with a client actor that retries its
/// one request until the coordinator answers.
async fn run(app: AppState, key: String, purchase: Purchase, tx: watch::Sender<Option<Outcome>>) {
    let result = client::run_client(
        app.coordinator,
        vec![purchase],
        app.codec.clone(),
        CLIENT_PATIENCE,
        move |o| {
            let _ = tx.send(Some(*o));
        },
    )
    .await;
    let done = matches!(&result, Ok(seen) if !seen.is_empty());
    if !done {
        // Never started (no socket) or never answered: forget the key so
        // that a retry starts again rather than wait forever.
        tracing::warn!(key, ?result, "HTTP purchase ended without an outcome");
        app.purchases
            .entries
            .lock()
            .expect("not poisoned")
            .remove(&key);
    }
}

/// `GET /purchases/{id}`: the purchase's outcome (or `in_progress`), or
/// 404 `unknown`.
pub async fn lookup(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PurchaseView>, ApiError> {
    let entries = app.purchases.entries.lock().expect("not poisoned");
    match entries.get(&id) {
        Some(entry) => Ok(Json(PurchaseView::of(&id, entry.outcome.borrow().as_ref()))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown",
            format!("no purchase with Idempotency-Key {id:?}: never made here, or forgotten"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        qty: impl Into<serde_json::Number>,
        price: impl Into<serde_json::Number>,
    ) -> PurchaseBody {
        PurchaseBody {
            user: "alice".into(),
            sku: "widget".into(),
            qty: qty.into(),
            price: price.into(),
        }
    }

    fn float(f: f64) -> serde_json::Number {
        serde_json::Number::from_f64(f).unwrap()
    }

    fn code(r: Result<Purchase, ApiError>) -> &'static str {
        r.expect_err("refused").code
    }

    #[test]
    fn amounts_are_checked() {
        assert!(body(2, 10).check().is_ok());
        assert!(body(1, 0).check().is_ok(), "a free item is a purchase");
        assert_eq!(code(body(0, 10).check()), "invalid_amount");
        assert_eq!(code(body(-1, 10).check()), "invalid_amount");
        assert_eq!(code(body(1, -10).check()), "invalid_amount");
        assert_eq!(code(body(float(1.5), 10).check()), "invalid_field");
        assert_eq!(code(body(float(-2.0), 10).check()), "invalid_amount");
        assert_eq!(
            code(body(float(1.8446744073709552e19), 1).check()),
            "amount_overflow"
        );
        assert_eq!(
            code(body(1u64 << 32, 1u64 << 32).check()),
            "amount_overflow"
        );
        assert!(body(1u64 << 32, (1u64 << 32) - 1).check().is_ok());
        assert!(body(u64::MAX, 1).check().is_ok());
    }

    #[test]
    fn names_are_checked() {
        let mut b = body(1, 1);
        b.user = "x".repeat(MAX_NAME + 1);
        assert_eq!(code(b.check()), "name_too_long");
        let mut b = body(1, 1);
        b.sku = String::new();
        assert_eq!(code(b.check()), "invalid_name");
    }

    #[test]
    fn keys_are_checked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(v).unwrap());
            check_key(&h).map_err(|e| e.code)
        };
        assert_eq!(with("ORDER-123").unwrap(), "ORDER-123");
        assert_eq!(with("a:b.c_d~e").unwrap(), "a:b.c_d~e");
        assert_eq!(with("a/b"), Err("invalid_idempotency_key"));
        assert_eq!(with(""), Err("invalid_idempotency_key"));
        assert_eq!(
            with(&"k".repeat(MAX_NAME + 1)),
            Err("invalid_idempotency_key")
        );
        assert_eq!(
            check_key(&HeaderMap::new()).unwrap_err().code,
            "missing_idempotency_key"
        );
    }
}
