//! The HTTP API's doors (issue 19): every endpoint refuses a missing or
//! wrong token, and the small refusals: two `Idempotency-Key`s, an amount
//! written `2.0`. Its bounds (connections, descriptors) are in
//! `http_bounds.rs`.
//!
//! A plain HTTP/1.1 client over `std::net::TcpStream` (`common/raw_http.rs`),
//! so that a test can send two headers of one name.

mod common;

use common::http::{free_tcp_port, token_file};
use common::raw_http::call;
use common::TestCluster;

/// Every endpoint refuses a request without the token, or with a wrong
/// one (`GET /purchases/{id}` was untested: opening it would have shown
/// every purchase's user, sku and amounts). No endpoint is public, except
/// `/metrics` under `--http-metrics-public`. The scheme's case does not
/// matter (`bearer` was refused).
#[test]
fn every_endpoint_refuses_a_missing_or_wrong_token() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (path, token) = token_file(&c);
    let (port, public_port) = (free_tcp_port(), free_tcp_port());
    let (addr, public_addr) = (
        format!("127.0.0.1:{port}"),
        format!("127.0.0.1:{public_port}"),
    );
    let path = path.to_str().unwrap();
    c.start("coordinator", &["--http", &addr, "--http-token-file", path]);
    c.start(
        "wallet",
        &[
            "--http",
            &public_addr,
            "--http-token-file",
            path,
            "--http-metrics-public",
        ],
    );
    c.start("order", &[]);
    let body = r#"{"user":"alice","sku":"widget","qty":1,"price":10}"#;
    let endpoints = [
        ("POST", "/purchases", body),
        ("GET", "/purchases/some-key", ""),
        ("GET", "/metrics", ""),
        ("GET", "/journal/wallet", ""),
        ("GET", "/healthz", ""),
        ("DELETE", "/purchases/some-key", ""),
    ];
    let wrong = format!("Bearer {}", "0".repeat(64));
    let right_lower = format!("bearer {token}");
    let short = format!("Bearer {}", &token[..63]);
    for (method, path, body) in endpoints {
        fn headers(auth: Option<&str>) -> Vec<(&'static str, &str)> {
            let mut h = vec![
                ("content-type", "application/json"),
                ("idempotency-key", "auth-test"),
            ];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            h
        }
        for (what, auth) in [
            ("no token", None),
            ("a wrong token", Some(wrong.as_str())),
            ("a token one digit short", Some(short.as_str())),
            ("a token without a scheme", Some(token.as_str())),
        ] {
            let r = call(port, method, path, &headers(auth), body);
            assert_eq!(r.status, 401, "{method} {path} with {what}: {r:?}");
            assert_eq!(r.code(), "unauthorized", "{method} {path} with {what}");
            assert!(r
                .headers
                .iter()
                .any(|(k, v)| k == "www-authenticate" && v == "Bearer"));
        }
        let r = call(port, method, path, &headers(Some(&right_lower)), body);
        assert_ne!(r.status, 401, "{method} {path} with `bearer TOKEN`: {r:?}");
        // --http-metrics-public opens /metrics only.
        let r = call(public_port, method, path, &headers(None), body);
        match (method, path) {
            ("GET", "/metrics") => assert_eq!(r.status, 200, "{r:?}"),
            _ => assert_eq!(r.status, 401, "{method} {path} on the public-metrics node"),
        }
    }
    // The authorized POST above bought once (the same key each time).
    c.settle();
    assert_eq!(c.levels("wallet")["alice"], 90);
}

/// Two `Idempotency-Key` headers are refused (the first won silently), and
/// an amount written `2.0` is an invalid field (it was `amount_overflow`);
/// neither changes anything.
#[test]
fn two_keys_and_fractional_looking_amounts_are_refused() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    c.start(
        "coordinator",
        &["--http", &addr, "--http-token-file", path.to_str().unwrap()],
    );
    c.start("wallet", &[]);
    c.start("order", &[]);
    let auth = format!("Bearer {token}");
    let post = |keys: &[&str], body: &str| {
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        for k in keys {
            h.push(("idempotency-key", k));
        }
        call(port, "POST", "/purchases", &h, body)
    };
    let good = r#"{"user":"alice","sku":"widget","qty":1,"price":10}"#;
    for keys in [&["two-1", "two-2"][..], &["same", "same"][..]] {
        let r = post(keys, good);
        assert_eq!(r.status, 400, "{keys:?}: {r:?}");
        assert_eq!(r.code(), "duplicate_idempotency_key");
    }
    for (body, code) in [
        (
            r#"{"user":"alice","sku":"widget","qty":2.0,"price":10}"#,
            "invalid_field",
        ),
        (
            r#"{"user":"alice","sku":"widget","qty":1,"price":1e1}"#,
            "invalid_field",
        ),
        (
            r#"{"user":"alice","sku":"widget","qty":0.5,"price":10}"#,
            "invalid_field",
        ),
        (
            r#"{"user":"alice","sku":"widget","qty":-2.0,"price":10}"#,
            "invalid_amount",
        ),
        (
            r#"{"user":"alice","sku":"widget","qty":-2,"price":10}"#,
            "invalid_amount",
        ),
        (
            r#"{"user":"alice","sku":"widget","qty":1,"price":18446744073709551616}"#,
            "amount_overflow",
        ),
    ] {
        let r = post(&["float-key"], body);
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.code(), code, "{body}");
        assert!(r.json()["error"]["message"].as_str().unwrap().len() > 10);
    }
    let coordinator = c.status("coordinator").unwrap();
    assert_eq!(coordinator["clients"], 0, "nothing started: {coordinator}");
    assert_eq!(c.levels("wallet")["alice"], 100);
}
