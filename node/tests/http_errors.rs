//! The HTTP API's errors: a bad request gets a JSON error (status and
//! code) and changes nothing; bearer-token auth; a node refuses a public
//! address or a bad token file before it starts. Against real `twopc node`
//! processes, with the hyper client of `common/http.rs`.

mod common;

use common::http::{cluster_with_api, purchase, token_file, Reply};
use common::{TestCluster, BIN};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

#[test]
fn bad_requests_get_a_json_error_and_change_nothing() {
    let (c, api) = cluster_with_api(&[("alice", 100)], &[("widget", 10)], &[]);
    let good = purchase("alice", "widget", 1, 10);
    let post = |key: &str, body: Vec<u8>| {
        api.call(
            Method::POST,
            "/purchases",
            Some(&api.token),
            &[
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ],
            body,
        )
    };
    let json = |v: Value| serde_json::to_vec(&v).unwrap();
    let long = "x".repeat(65);
    let cases: Vec<(&str, Reply, StatusCode, &str)> = vec![
        (
            "no token",
            api.call(
                Method::POST,
                "/purchases",
                None,
                &[("idempotency-key", "k1")],
                json(good.clone()),
            ),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong token",
            api.call(
                Method::POST,
                "/purchases",
                Some(&"0".repeat(64)),
                &[("idempotency-key", "k2")],
                json(good.clone()),
            ),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "no key",
            api.post(None, &good),
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
        ),
        (
            "bad key",
            post("a key", json(good.clone())),
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        ),
        (
            "unknown field",
            post(
                "k3",
                json(
                    json!({"user": "alice", "sku": "widget", "qty": 1, "price": 10, "coupon": "FREE"}),
                ),
            ),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            "missing field",
            post(
                "k4",
                json(json!({"user": "alice", "sku": "widget", "qty": 1})),
            ),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "negative qty",
            post(
                "k5",
                json(json!({"user": "alice", "sku": "widget", "qty": -1, "price": 10})),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "zero qty",
            post("k6", json(purchase("alice", "widget", 0, 10))),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "negative price",
            post(
                "k7",
                json(json!({"user": "alice", "sku": "widget", "qty": 1, "price": -10})),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "overflowing total",
            post("k8", json(purchase("alice", "widget", 1 << 33, 1 << 33))),
            StatusCode::BAD_REQUEST,
            "amount_overflow",
        ),
        (
            "an amount beyond 64 bits",
            post(
                "k9",
                br#"{"user":"alice","sku":"widget","qty":1,"price":18446744073709551616}"#.to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "amount_overflow",
        ),
        (
            "fractional qty",
            post(
                "k10",
                br#"{"user":"alice","sku":"widget","qty":1.5,"price":10}"#.to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "long user",
            post("k11", json(purchase(&long, "widget", 1, 10))),
            StatusCode::BAD_REQUEST,
            "name_too_long",
        ),
        (
            "not JSON",
            post("k12", b"user=alice".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "oversized body",
            post("k13", vec![b' '; 17 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "not JSON content type",
            api.call(
                Method::POST,
                "/purchases",
                Some(&api.token),
                &[("content-type", "text/plain"), ("idempotency-key", "k14")],
                json(good.clone()),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no such endpoint",
            api.get("/returns"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "wrong method",
            api.call(
                Method::DELETE,
                "/purchases/k1",
                Some(&api.token),
                &[],
                vec![],
            ),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "metrics without the token",
            api.metrics(None),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (what, reply, status, code) in &cases {
        assert_eq!(
            reply.status,
            *status,
            "{what}: {:?}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        assert_eq!(reply.code(), *code, "{what}");
    }
    // Nothing was started: no key is known, the coordinator decided
    // nothing, no balance or stock moved.
    for key in ["k1", "k2", "k3", "k5", "k8", "k13"] {
        assert_eq!(
            api.get(&format!("/purchases/{key}")).status,
            StatusCode::NOT_FOUND
        );
    }
    let coordinator = c.status("coordinator").unwrap();
    assert_eq!(coordinator["clients"], 0, "{coordinator}");
    assert_eq!(coordinator["counters"]["decided"], json!({}));
    assert_eq!(c.levels("wallet")["alice"], 100);
    assert_eq!(c.levels("order")["widget"], 10);
}

#[test]
fn a_node_refuses_a_public_address_or_a_bad_token_file_before_it_starts() {
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    let (path, _) = token_file(&c);
    let path = path.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = c
            .node_command("coordinator", args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--http", "0.0.0.0:0", "--http-token-file", path]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--http-public"), "{err}");
    let bad = c.dir.path().join("bad-token");
    std::fs::write(&bad, "secret\n").unwrap();
    let (code, err) = run(&[
        "--http",
        "127.0.0.1:0",
        "--http-token-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("64 hexadecimal"), "{err}");
    assert!(!err.contains("secret"), "the token is never quoted: {err}");
    let (code, err) = run(&["--http", "127.0.0.1:0"]);
    assert_eq!(code, Some(2), "clap: --http needs --http-token-file: {err}");
    assert!(
        !c.data_dir("coordinator").join("NODE").exists(),
        "nothing started"
    );
    let _ = BIN;
}
