//! `POST /topups`, `POST /restocks` and `POST /refunds` (and `GET
//! /topups/{id}`, `/restocks/{id}`, `/refunds/{id}`): money into a wallet,
//! units into a sku's stock, a committed purchase given back, each run
//! through the coordinator exactly as `POST /purchases` runs a purchase
//! (`api.rs`: the `Idempotency-Key` is the operation's id, a retry gets the
//! first outcome, the same key with other contents is refused). Also the
//! per-operation counters `/metrics` shows for all four.
//!
//! Bad input is refused before anything is sent, with the codes purchases
//! use: `invalid_amount` (0 or negative), `amount_overflow` (above
//! 2^64-1), `invalid_field` (not a whole number, or not a number),
//! `invalid_name`, `name_too_long`, `missing_field`, `unknown_field`; a
//! restock's `price` that is 0, negative, fractional, above 2^64-1 or not
//! a number: `invalid_price`. A refund's `qty` that is 0, negative,
//! fractional or above 2^64-1: `invalid_qty`; its `purchase` empty or over
//! 64 bytes: `invalid_purchase`.

use super::api::{self, amount, check_key, name_of, read_body, PurchaseView};
use super::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twopc_model::{Operation, RequestId, Verdict};

/// A top-up as an application sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    /// The user whose wallet is credited (created by its first top-up).
    pub user: String,
    /// How much: a whole number from 1 to 2^64-1.
    pub amount: serde_json::Number,
}

/// A restock as an application sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestockBody {
    /// The sku whose stock grows (created by its first restock).
    pub sku: String,
    /// How many units: a whole number from 1 to 2^64-1 (0 allowed with a
    /// price: a price change alone).
    pub qty: serde_json::Number,
    /// The sku's new price per unit, set at commit (optional): a whole
    /// number from 1 to 2^64-1.
    #[serde(default)]
    pub price: Option<serde_json::Number>,
}

/// A refund as an application sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// The id (`Idempotency-Key`, or CLI `--id`) of the committed purchase
    /// to give back.
    pub purchase: String,
    /// How many of its units (optional; absent or `null`: all of them): a
    /// whole number from 1 to 2^64-1.
    #[serde(default)]
    pub qty: Option<serde_json::Number>,
}

impl RefundBody {
    /// The refund, or why it is refused (changing nothing).
    pub fn check(self) -> Result<Operation, ApiError> {
        let purchase = RequestId::new(self.purchase);
        if !purchase.is_valid() {
            return Err(ApiError::bad_request(
                "invalid_purchase",
                format!(
                    "purchase is {} bytes; a purchase's id is 1 to {} bytes",
                    purchase.0.len(),
                    RequestId::MAX_LEN
                ),
            ));
        }
        let qty = match &self.qty {
            None => None,
            Some(n) => Some(
                match amount("qty", n) {
                    Ok(0) => Err(
                        "qty is 0; it must be at least 1 (or leave it out: the whole \
                               purchase)"
                            .to_string(),
                    ),
                    Ok(q) => Ok(q),
                    Err(e) => Err(e.message().to_string()),
                }
                .map_err(|msg| ApiError::bad_request("invalid_qty", msg))?,
            ),
        };
        Ok(Operation::Refund { purchase, qty })
    }
}

/// A positive amount, or why not.
fn positive(what: &str, n: &serde_json::Number) -> Result<u64, ApiError> {
    match amount(what, n)? {
        0 => Err(ApiError::bad_request(
            "invalid_amount",
            format!("{what} is 0; it must be at least 1"),
        )),
        v => Ok(v),
    }
}

impl TopUpBody {
    /// The top-up, or why it is refused (changing nothing).
    pub fn check(self) -> Result<Operation, ApiError> {
        name_of("user", &self.user)?;
        let amount = positive("amount", &self.amount)?;
        Ok(Operation::TopUp {
            user: self.user,
            amount,
        })
    }
}

impl RestockBody {
    /// The restock, or why it is refused (changing nothing).
    pub fn check(self) -> Result<Operation, ApiError> {
        name_of("sku", &self.sku)?;
        let Some(price) = &self.price else {
            let qty = positive("qty", &self.qty)?;
            return Ok(Operation::Restock { sku: self.sku, qty });
        };
        let qty = amount("qty", &self.qty)?;
        let price = match amount("price", price) {
            Ok(0) => Err("price is 0; it must be at least 1".to_string()),
            Ok(p) => Ok(p),
            Err(e) => Err(e.message().to_string()),
        }
        .map_err(|msg| ApiError::bad_request("invalid_price", msg))?;
        Ok(Operation::PricedRestock {
            sku: self.sku,
            qty,
            price,
        })
    }
}

/// A body `POST /topups`, `/restocks` or `/refunds` takes.
trait OpBody: serde::de::DeserializeOwned {
    /// The operation's name in `/metrics`.
    const NAME: &'static str;
    /// Its JSON's shape, for the error that says a body is not one.
    const SHAPE: &'static str;
    /// The operation, or why it is refused (changing nothing).
    fn check(self) -> Result<Operation, ApiError>;
}

impl OpBody for TopUpBody {
    const NAME: &'static str = "topup";
    const SHAPE: &'static str = "a top-up is {\"user\", \"amount\"}";
    fn check(self) -> Result<Operation, ApiError> {
        TopUpBody::check(self)
    }
}

impl OpBody for RestockBody {
    const NAME: &'static str = "restock";
    const SHAPE: &'static str = "a restock is {\"sku\", \"qty\", \"price\"?}";
    fn check(self) -> Result<Operation, ApiError> {
        RestockBody::check(self)
    }
}

impl OpBody for RefundBody {
    const NAME: &'static str = "refund";
    const SHAPE: &'static str = "a refund is {\"purchase\", \"qty\"?}";
    fn check(self) -> Result<Operation, ApiError> {
        RefundBody::check(self)
    }
}

/// Makes the operation of a `B` body under the `Idempotency-Key`, as
/// `POST /purchases` makes a purchase; a refusal is counted under `B`'s name.
async fn post<B: OpBody>(
    app: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let made = async {
        let key = check_key(&headers)?;
        let op = read_body::<B>(&headers, body, B::SHAPE).await?.check()?;
        Ok((key, op))
    };
    let (key, op) = app.telemetry.ops.refusing(B::NAME, made.await)?;
    api::drive(app, key, op, started).await
}

/// `POST /topups`: credits `amount` to `user` under the `Idempotency-Key`;
/// answers as `POST /purchases` does (200 with the outcome, 202 with
/// `Location: /topups/{key}`).
pub async fn topup(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    post::<TopUpBody>(app, headers, body).await
}

/// `POST /restocks`: credits `qty` units to `sku` (and sets its price) under
/// the `Idempotency-Key`; answers as `POST /purchases` does.
pub async fn restock(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    post::<RestockBody>(app, headers, body).await
}

/// `POST /refunds`: gives back `qty` units (all) of the committed purchase
/// `purchase`, money to its user and units to its sku, under the
/// `Idempotency-Key`; answers as `POST /purchases` does (an abort says why:
/// `unknown_purchase`, `not_committed`, `refund_exceeds_purchase`).
pub async fn refund(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    post::<RefundBody>(app, headers, body).await
}

/// `GET /topups/{id}`: what became of a top-up (as `GET /purchases/{id}`).
pub async fn topup_lookup(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PurchaseView>, ApiError> {
    api::lookup_as(app, id, "top-up").await
}

/// `GET /restocks/{id}`: what became of a restock.
pub async fn restock_lookup(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PurchaseView>, ApiError> {
    api::lookup_as(app, id, "restock").await
}

/// `GET /refunds/{id}`: what became of a refund.
pub async fn refund_lookup(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PurchaseView>, ApiError> {
    api::lookup_as(app, id, "refund").await
}

/// `op` and `outcome` (or `code`) labels.
type Labels = [(&'static str, &'static str); 2];

/// The operation kinds, as labels.
pub const KINDS: [&str; 4] = ["purchase", "topup", "restock", "refund"];

/// At most one WARN per operation kind and code this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// `POST /purchases`, `/topups`, `/restocks` and `/refunds`, counted by
/// operation:
/// what was answered (by outcome) and what was refused before anything
/// was sent (by error code).
#[derive(Debug)]
pub struct OpCounters {
    /// Answers with an outcome from the coordinator, by `op` and `outcome`
    /// (`committed`, `aborted`, `refused`, `try_again`), and 202s
    /// (`in_progress`).
    pub answered: Family<Labels, Counter>,
    /// Requests refused by the API itself (nothing sent), by `op` and
    /// `code` (`invalid_amount`, `missing_field`, ...).
    pub rejected: Family<Labels, Counter>,
    warned: Mutex<HashMap<Labels, (Option<Instant>, u64)>>,
}

impl Default for OpCounters {
    /// Every kind's committed and aborted at 0, so that a scrape shows them.
    fn default() -> Self {
        let c = OpCounters {
            answered: Family::default(),
            rejected: Family::default(),
            warned: Mutex::default(),
        };
        for op in KINDS {
            for outcome in ["committed", "aborted"] {
                let _ = c
                    .answered
                    .get_or_create(&[("op", op), ("outcome", outcome)]);
            }
        }
        c
    }
}

impl OpCounters {
    /// Counts an answer to a `kind` (`purchase`, `top-up`, ...): `None`
    /// when none came within the wait (202).
    pub fn answered(&self, noun: &str, verdict: Option<&Verdict>) {
        let op = match noun {
            "top-up" => "topup",
            "restock" => "restock",
            "refund" => "refund",
            _ => "purchase",
        };
        let outcome = match verdict {
            None => "in_progress",
            Some(Verdict::Committed) => "committed",
            Some(Verdict::Aborted(_)) => "aborted",
            Some(Verdict::Refused(_)) => "refused",
            Some(Verdict::Unknown) => "try_again",
        };
        self.answered
            .get_or_create(&[("op", op), ("outcome", outcome)])
            .inc();
    }

    /// Passes `made` through, counting and logging (a WARN at most every
    /// [`WARN_EVERY`] per kind and code) a refusal of a `op` request.
    pub fn refusing<T>(&self, op: &'static str, made: Result<T, ApiError>) -> Result<T, ApiError> {
        let Err(e) = &made else { return made };
        let labels = [("op", op), ("code", e.code())];
        self.rejected.get_or_create(&labels).inc();
        let mut warned = self.warned.lock().expect("not poisoned");
        let now = Instant::now();
        let (last, quiet) = warned.entry(labels).or_insert((None, 0));
        if last.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
            tracing::warn!(
                op,
                code = e.code(),
                suppressed = *quiet,
                "HTTP request refused, nothing sent: {}",
                e.message()
            );
            *last = Some(now);
            *quiet = 0;
        } else {
            *quiet += 1;
        }
        made
    }
}

#[cfg(test)]
#[path = "shop_tests.rs"]
mod tests;
