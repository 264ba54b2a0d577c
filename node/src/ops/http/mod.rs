//! The HTTP/JSON API of a node (`twopc node --http ADDR`, off by default):
//! purchases for applications (`api.rs`), one account's or sku's standing
//! (`views.rs`), a participant's journal (`journal.rs`), Prometheus metrics (`metrics.rs`) and the bearer-token
//! check in front of them all (`auth.rs`).
//!
//! It runs on the node's tokio runtime beside the node's loop, and talks to
//! it the way any other process does: purchases go to the coordinator as
//! protocol datagrams from a client actor ([`crate::ops::client::run_client`]),
//! signed with the cluster key; `/metrics` asks the loop for the node's view
//! between two batches (the same view `twopc status` shows). So the API adds
//! no path into the protocol that a `twopc purchase` does not have.
//!
//! Every refusal is a 4xx with a JSON body
//! `{"error": {"code": "stable_snake_case", "message": "..."}}`; codes are
//! listed in docs/node.md and never change meaning. A refused request
//! changes nothing: everything is checked before a purchase is started.

pub mod api;
pub mod auth;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod shop;
pub mod views;

#[cfg(test)]
mod metrics_tests;

use crate::runtime::wire::Codec;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics::{Telemetry, ViewAsk};
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use auth::Token;

/// Largest request body accepted (a purchase is well under 1 KiB).
pub const MAX_BODY: usize = 16 * 1024;

/// How the API is served.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Whether a non-loopback `addr` is allowed (`--http-public`).
    pub public: bool,
    /// The bearer token every request must carry.
    pub token: Token,
    /// Whether `/metrics` is served without the token (`--http-metrics-public`).
    pub metrics_public: bool,
    /// How long `POST /purchases` waits for an outcome before answering 202.
    pub wait: Duration,
    /// The connection cap and timeouts.
    pub limits: server::Limits,
}

impl HttpConfig {
    /// Refuses to listen beyond loopback unless told to: the API moves money.
    pub fn check(&self) -> Result<(), String> {
        if !self.addr.ip().is_loopback() && !self.public {
            return Err(format!(
                "--http {} is not a loopback address; the HTTP API makes purchases, so it \
                 listens beyond this machine only with --http-public (put TLS in front of it: \
                 the API speaks plain HTTP)",
                self.addr
            ));
        }
        self.limits.check()
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Asks the node's loop for its view.
    pub views: mpsc::Sender<ViewAsk>,
    /// Histograms the node's loop and the handlers record into.
    pub telemetry: Arc<Telemetry>,
    /// Purchases, top-ups and restocks this process is driving now.
    pub purchases: Arc<api::InFlight>,
    /// The coordinator's address, or every replica's (purchases go to all
    /// of them; the leader answers).
    pub coordinators: Vec<SocketAddrV4>,
    /// The wallet's address (`GET /accounts/{user}` asks it).
    pub wallet: SocketAddrV4,
    /// The order service's address (`GET /skus/{sku}` asks it).
    pub order: SocketAddrV4,
    /// Every node of the cluster file (`GET /journal/{name}` asks the one
    /// named).
    pub nodes: Arc<Vec<crate::runtime::cluster::NodeSpec>>,
    /// The cluster's codec (key), as a client uses it.
    pub codec: Codec,
    /// How long a POST waits for an outcome.
    pub wait: Duration,
}

/// The router: `/purchases`, `/topups`, `/restocks`, `/refunds` (and
/// `/{...}/{id}`),
/// `/accounts/{user}`, `/skus/{sku}` and `/journal/{name}` behind the token;
/// `/metrics` too unless `metrics_public`.
pub fn router(state: AppState, token: Token, metrics_public: bool) -> Router {
    let api = Router::new()
        .route("/purchases", post(api::create))
        .route("/purchases/{id}", get(api::lookup))
        .route("/topups", post(shop::topup))
        .route("/topups/{id}", get(shop::topup_lookup))
        .route("/restocks", post(shop::restock))
        .route("/restocks/{id}", get(shop::restock_lookup))
        .route("/refunds", post(shop::refund))
        .route("/refunds/{id}", get(shop::refund_lookup))
        .route("/accounts/{user}", get(views::account))
        .route("/skus/{sku}", get(views::sku))
        .route("/journal/{name}", get(journal::journal));
    let metrics = Router::new().route("/metrics", get(metrics::scrape));
    let (protected, open) = if metrics_public {
        (api, metrics)
    } else {
        (api.merge(metrics), Router::new())
    };
    protected
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(token, auth::require))
        .merge(open)
        .with_state(state)
}

/// Serves `router` on `listener` within `limits` (see `server.rs`), until
/// the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: server::Limits,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<()> {
    server::serve(listener, router, limits, telemetry.connections.clone()).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// A refusal: a 4xx (or 503) with `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// A refusal with `status`, a stable `code` and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `400` with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `401 unauthorized`.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token: send `Authorization: Bearer TOKEN` with the token \
             from the node's --http-token-file",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_only_when_told() {
        let token = Token::new(&"ab".repeat(32)).unwrap();
        let cfg = |addr: &str, public| HttpConfig {
            addr: addr.parse().unwrap(),
            public,
            token: token.clone(),
            metrics_public: false,
            wait: Duration::from_secs(1),
            limits: server::Limits::default(),
        };
        assert!(cfg("127.0.0.1:8080", false).check().is_ok());
        assert!(cfg("[::1]:8080", false).check().is_ok());
        let err = cfg("0.0.0.0:8080", false).check().unwrap_err();
        assert!(err.contains("--http-public"), "{err}");
        assert!(cfg("10.0.0.1:8080", false).check().is_err());
        assert!(cfg("0.0.0.0:8080", true).check().is_ok());
    }
}
