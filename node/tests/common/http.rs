//! The HTTP API seen from tests: a hyper client ([`Api`]) for synchronous
//! tests, the token file a node reads, and a coordinator that serves the API.
//! Used by `http`, `http_errors`, `http_metrics` and (the port and token)
//! `http_bounds`, `http_doors`.

use super::{wait_for, TestCluster};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// A loopback TCP port for a node's HTTP API: outside the ephemeral range
/// (a node killed and restarted binds it again), never one this process
/// handed out before (`super::docs::free_port`).
pub fn free_tcp_port() -> u16 {
    super::docs::free_port()
}

/// One node's HTTP API, called from synchronous tests.
pub struct Api {
    pub base: String,
    pub token: String,
    rt: tokio::runtime::Runtime,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code of a JSON error body (and checks its shape).
    pub fn code(&self) -> String {
        let v = self.json();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["error"]["code"].as_str().expect("error.code").to_string()
    }
}

impl Api {
    pub fn new(port: u16, token: &str) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_string(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Sends a request: `headers` added to the token (unless `token` is None).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        self.rt.block_on(async {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let res = tokio::time::timeout(Duration::from_secs(60), client.request(req))
                .await
                .expect("an answer within a minute")
                .expect("an HTTP answer");
            let status = res.status();
            let headers = res.headers().clone();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            Reply {
                status,
                headers,
                body,
            }
        })
    }

    pub fn post(&self, key: Option<&str>, body: &Value) -> Reply {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        self.call(
            Method::POST,
            "/purchases",
            Some(&self.token),
            &headers,
            serde_json::to_vec(body).unwrap(),
        )
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.token), &[], vec![])
    }

    /// A purchase to its final outcome, as an application does it: the same
    /// key on every retry; 202 or a failure to connect means ask again.
    pub fn buy(&self, key: &str, body: &Value) -> Value {
        wait_for(&format!("purchase {key} to have an outcome"), || {
            let r = self.post(Some(key), body);
            match r.status {
                StatusCode::OK => {
                    let v = r.json();
                    assert_ne!(v["status"], "in_progress", "200 is final: {v}");
                    assert_eq!(v["id"], key);
                    Some(v)
                }
                StatusCode::ACCEPTED => {
                    assert_eq!(
                        r.headers["location"].to_str().unwrap(),
                        format!("/purchases/{key}")
                    );
                    assert_eq!(r.json()["status"], "in_progress");
                    None
                }
                s => panic!("POST /purchases: {s} {:?}", r.json()),
            }
        })
    }

    pub fn metrics(&self, token: Option<&str>) -> Reply {
        self.call(Method::GET, "/metrics", token, &[], vec![])
    }
}

pub fn token_file(c: &TestCluster) -> (PathBuf, String) {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let path = c.dir.path().join("http-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    (path, token)
}

/// A cluster whose coordinator serves the API; its API.
pub fn cluster_with_api(
    accounts: &[(&str, u64)],
    stock: &[(&str, u64)],
    extra: &[&str],
) -> (TestCluster, Api) {
    let mut c = TestCluster::new(accounts, stock);
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--http", &addr, "--http-token-file", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.start("coordinator", &args);
    c.start("wallet", &[]);
    c.start("order", &[]);
    (c, Api::new(port, &token))
}

/// Buys under key `stem` and commits: on a starved machine a purchase may
/// abort by vote timeout (changing nothing), and is then made again under a
/// new key, up to five times. Returns the key that committed and its outcome.
pub fn buy_until_committed(api: &Api, stem: &str, body: &Value) -> (String, Value) {
    for attempt in 0..5 {
        let key = match attempt {
            0 => stem.to_string(),
            n => format!("{stem}-again-{n}"),
        };
        let outcome = api.buy(&key, body);
        if outcome["status"] == "committed" {
            return (key, outcome);
        }
        assert_eq!(outcome["reason"], "vote_timeout", "{outcome}");
        eprintln!("{key} aborted by vote timeout (a starved machine): once more");
    }
    panic!("five purchases in a row aborted by vote timeout");
}

pub fn purchase(user: &str, sku: &str, qty: u64, price: u64) -> Value {
    json!({"user": user, "sku": sku, "qty": qty, "price": price})
}
