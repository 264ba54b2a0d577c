//! Top-ups and restocks from outside the cluster, against real `twopc
//! node` processes: a new user and a new sku come in through `twopc topup`
//! and `twopc restock` (and `POST /topups`, `POST /restocks`), and a
//! purchase by that user of that sku commits; the views add up (initial +
//! credits − purchases); a retry under the same id is applied once and
//! gets the same answer, the same id with other contents is refused; bad
//! input (a refund's too) is refused before anything is sent and changes
//! nothing; the API
//! wants its token. Also once against a replicated coordinator.

mod common;

use common::http::{buy_until_committed, cluster_with_api, purchase, Api};
use common::shop::{run, until_committed};
use common::{wait_for, TestCluster};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The wallet's and the order service's levels, and what each holds.
fn levels(c: &TestCluster) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    c.settle();
    (c.levels("wallet"), c.levels("order"))
}

/// `twopc account --user U --json` or `twopc sku --sku S --json`.
fn view(c: &TestCluster, kind: &str, flag: &str, name: &str) -> (Option<Value>, i32) {
    let out = c
        .twopc(&[kind, flag, name, "--json", "--timeout", "10"])
        .output()
        .unwrap();
    (
        serde_json::from_slice(&out.stdout).ok(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn a_new_user_and_a_new_sku_come_in_by_the_cli_and_buy() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start_all();
    // Unknown until their first top-up or restock commits.
    assert_eq!(view(&c, "account", "--user", "carol").1, 7);
    assert_eq!(view(&c, "sku", "--sku", "gadget").1, 7);

    let topup = ["topup", "--user", "carol", "--amount", "50"];
    let (pay, first) = until_committed(&c, &topup, "pay-1");
    let restock = ["restock", "--sku", "gadget", "--qty", "5"];
    let (delivery, _) = until_committed(&c, &restock, "delivery-1");
    until_committed(&c, &["topup", "--user", "alice", "--amount", "25"], "pay-2");
    let (report, code) = c.purchase("carol", "gadget", 2, 10);
    assert_eq!((report["outcome"].as_str(), code), (Some("committed"), 0));

    // initial + credits − purchases.
    let (wallet, order) = levels(&c);
    assert_eq!(wallet["carol"], 50 - 20);
    assert_eq!(wallet["alice"], 100 + 25);
    assert_eq!(order["gadget"], 5 - 2);
    assert_eq!(order["widget"], 10);
    let (account, code) = view(&c, "account", "--user", "carol");
    assert_eq!(code, 0);
    let account = account.unwrap();
    assert_eq!(
        (account["balance"].clone(), account["held"].clone()),
        (json!(30), json!(0))
    );
    let (sku, code) = view(&c, "sku", "--sku", "gadget");
    assert_eq!((sku.unwrap()["stock"].clone(), code), (json!(3), 0));

    // The same id again: the first answer, applied once.
    let mut again = topup.to_vec();
    again.extend(["--id", &pay]);
    let (retry, code, err) = run(&c, &again);
    let retry = retry.unwrap_or_else(|| panic!("exit {code}: {err}"));
    assert_eq!((retry["outcome"].as_str(), code), (Some("committed"), 0));
    assert_eq!(retry["txn"], first["txn"], "the same attempt's answer");
    // --retry only asks: the same answer.
    again.push("--retry");
    let (asked, code, _) = run(&c, &again);
    assert_eq!(
        (asked.unwrap()["txn"].clone(), code),
        (first["txn"].clone(), 0)
    );
    // The same id, other contents: refused, exit 6.
    let other = ["topup", "--user", "carol", "--amount", "51", "--id", &pay];
    let (refused, code, _) = run(&c, &other);
    let refused = refused.unwrap();
    assert_eq!((refused["outcome"].as_str(), code), (Some("refused"), 6));
    assert_eq!(refused["refusal"], "key_reused");
    // A restock's id used for a top-up: one id names one operation.
    let crossed = [
        "topup", "--user", "carol", "--amount", "5", "--id", &delivery,
    ];
    assert_eq!(run(&c, &crossed).1, 6);
    let (unknown, code, _) = run(
        &c,
        &[
            "topup",
            "--user",
            "carol",
            "--amount",
            "5",
            "--id",
            "never-sent",
            "--retry",
        ],
    );
    assert_eq!(
        (unknown.unwrap()["outcome"].as_str(), code),
        (Some("unknown"), 7)
    );
    assert_eq!(levels(&c), (wallet.clone(), order.clone()), "applied once");

    // Bad input: exit 2, nothing sent, nothing changed.
    let decided = |c: &TestCluster| {
        wait_for("coordinator status", || c.status("coordinator"))["counters"]["decided"].clone()
    };
    let decided_before = decided(&c);
    let long = "x".repeat(65);
    let bad: [&[&str]; 16] = [
        &["topup", "--user", "carol", "--amount", "0"],
        &["topup", "--user", "carol", "--amount=-5"],
        &["topup", "--user", "carol", "--amount", "1.5"],
        &[
            "topup",
            "--user",
            "carol",
            "--amount",
            "18446744073709551616",
        ],
        &["topup", "--user", &long, "--amount", "5"],
        &["topup", "--user", "carol"],
        &["topup", "--user", "carol", "--amount", "5", "--id", &long],
        &["restock", "--sku", "gadget", "--qty", "0"],
        &["restock", "--sku", &long, "--qty", "1"],
        &["refund", "--purchase", "p", "--qty", "0"],
        &["refund", "--purchase", "p", "--qty=-1"],
        &["refund", "--purchase", "p", "--qty", "1.5"],
        &["refund", "--purchase", "p", "--qty", "18446744073709551616"],
        &["refund", "--purchase", "", "--qty", "1"],
        &["refund", "--purchase", &long],
        &["refund", "--purchase", "p", "--id", ""],
    ];
    for args in bad {
        let (report, code, err) = run(&c, args);
        assert_eq!((report, code), (None, 2), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?} says why");
    }
    assert_eq!(levels(&c), (wallet, order), "bad input changes nothing");
    assert_eq!(
        decided(&c),
        decided_before,
        "nothing reached the coordinator"
    );
}

/// `POST /topups` or `/restocks` under `key`.
fn post(api: &Api, path: &str, key: Option<&str>, body: &[u8]) -> common::http::Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    api.call(
        Method::POST,
        path,
        Some(&api.token),
        &headers,
        body.to_vec(),
    )
}

/// Posts until an outcome (202: ask again with the same key); on an
/// abort by vote timeout, again under a new key. The key that committed and
/// its answer.
fn post_until_committed(api: &Api, path: &str, stem: &str, body: &Value) -> (String, Value) {
    for attempt in 0..5 {
        let key = match attempt {
            0 => stem.to_string(),
            n => format!("{stem}-again-{n}"),
        };
        let v = wait_for(&format!("{path} {key}"), || {
            let r = post(api, path, Some(&key), &serde_json::to_vec(body).unwrap());
            match r.status {
                StatusCode::OK => Some(r.json()),
                StatusCode::ACCEPTED => {
                    assert_eq!(
                        r.headers["location"].to_str().unwrap(),
                        format!("{path}/{key}")
                    );
                    None
                }
                s => panic!("POST {path}: {s} {:?}", r.json()),
            }
        });
        if v["status"] == "committed" {
            return (key, v);
        }
        assert_eq!(v["reason"], "vote_timeout", "{v}");
    }
    panic!("five in a row aborted by vote timeout")
}

/// A sample's value in a scrape (`name{labels}`), 0 if absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_same_over_http() {
    let (c, api) = cluster_with_api(&[("alice", 100)], &[("widget", 10)], &[]);
    let r = api.get("/accounts/dave");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "unknown_user".into())
    );

    let (top, first) = post_until_committed(
        &api,
        "/topups",
        "top-1",
        &json!({"user": "dave", "amount": 40}),
    );
    assert_eq!(first["id"], top.as_str());
    let (restock, _) = post_until_committed(
        &api,
        "/restocks",
        "res-1",
        &json!({"sku": "gizmo", "qty": 4}),
    );
    buy_until_committed(&api, "buy-1", &purchase("dave", "gizmo", 3, 10));
    c.settle();
    let account = api.get("/accounts/dave").json();
    assert_eq!(
        (account["balance"].clone(), account["held"].clone()),
        (json!(10), json!(0))
    );
    assert_eq!(api.get("/skus/gizmo").json()["stock"], 1);

    // A retry: the same answer, applied once; GET finds it.
    let body = serde_json::to_vec(&json!({"user": "dave", "amount": 40})).unwrap();
    let r = post(&api, "/topups", Some(&top), &body);
    assert_eq!((r.status, r.json()), (StatusCode::OK, first.clone()));
    let r = api.get(&format!("/topups/{top}"));
    assert_eq!((r.status, r.json()), (StatusCode::OK, first));
    assert_eq!(
        api.get(&format!("/restocks/{restock}")).json()["status"],
        "committed"
    );
    // Other contents under the key: 422.
    let other = serde_json::to_vec(&json!({"user": "dave", "amount": 41})).unwrap();
    let r = post(&api, "/topups", Some(&top), &other);
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
    let r = post(
        &api,
        "/restocks",
        Some(&top),
        br#"{"sku": "gizmo", "qty": 4}"#,
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a top-up's key");
    c.settle();
    let before = (
        api.get("/accounts/dave").json(),
        api.get("/skus/gizmo").json(),
    );
    assert_eq!(before.0["balance"], 10, "applied once");

    // Bad input: 400 with its code, nothing sent.
    let long = "x".repeat(65);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "/topups",
            r#"{"user": "dave", "amount": 0}"#.into(),
            "invalid_amount",
        ),
        (
            "/topups",
            r#"{"user": "dave", "amount": -5}"#.into(),
            "invalid_amount",
        ),
        (
            "/topups",
            r#"{"user": "dave", "amount": 1.5}"#.into(),
            "invalid_field",
        ),
        (
            "/topups",
            r#"{"user": "dave", "amount": "5"}"#.into(),
            "invalid_field",
        ),
        (
            "/topups",
            r#"{"user": "dave", "amount": 18446744073709551616}"#.into(),
            "amount_overflow",
        ),
        (
            "/topups",
            format!(r#"{{"user": "{long}", "amount": 5}}"#),
            "name_too_long",
        ),
        (
            "/topups",
            r#"{"user": "", "amount": 5}"#.into(),
            "invalid_name",
        ),
        ("/topups", r#"{"user": "dave"}"#.into(), "missing_field"),
        (
            "/topups",
            r#"{"user": "dave", "amount": 5, "x": 1}"#.into(),
            "unknown_field",
        ),
        ("/topups", "{".into(), "invalid_json"),
        (
            "/restocks",
            r#"{"sku": "gizmo", "qty": 0}"#.into(),
            "invalid_amount",
        ),
        (
            "/restocks",
            r#"{"sku": "gizmo", "qty": 2, "cost": 3}"#.into(),
            "unknown_field",
        ),
        (
            "/restocks",
            r#"{"sku": "gizmo", "qty": 2, "price": 0}"#.into(),
            "invalid_price",
        ),
        ("/restocks", r#"{"qty": 2}"#.into(), "missing_field"),
        (
            "/refunds",
            r#"{"purchase": "p", "qty": 0}"#.into(),
            "invalid_qty",
        ),
        (
            "/refunds",
            r#"{"purchase": "p", "qty": -1}"#.into(),
            "invalid_qty",
        ),
        (
            "/refunds",
            r#"{"purchase": "p", "qty": 1.5}"#.into(),
            "invalid_qty",
        ),
        (
            "/refunds",
            r#"{"purchase": "p", "qty": 18446744073709551616}"#.into(),
            "invalid_qty",
        ),
        (
            "/refunds",
            r#"{"purchase": "", "qty": 1}"#.into(),
            "invalid_purchase",
        ),
        (
            "/refunds",
            format!(r#"{{"purchase": "{long}"}}"#),
            "invalid_purchase",
        ),
        ("/refunds", r#"{"qty": 1}"#.into(), "missing_field"),
        (
            "/refunds",
            r#"{"purchase": "p", "user": "dave"}"#.into(),
            "unknown_field",
        ),
    ];
    for (i, (path, body, code)) in cases.iter().enumerate() {
        let key = format!("bad-{i}");
        let r = post(&api, path, Some(&key), body.as_bytes());
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, code.to_string()),
            "{body}"
        );
        // Nothing was sent under the key.
        let r = api.get(&format!("{path}/{key}"));
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "unknown".into()),
            "{body}"
        );
    }
    let r = post(&api, "/topups", None, br#"{"user": "dave", "amount": 5}"#);
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "missing_idempotency_key".into())
    );
    for path in ["/topups", "/restocks", "/refunds"] {
        let r = api.call(
            Method::POST,
            path,
            None,
            &[
                ("content-type", "application/json"),
                ("idempotency-key", "no-token"),
            ],
            br#"{"user": "dave", "amount": 5}"#.to_vec(),
        );
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized".into())
        );
    }
    let after = (
        api.get("/accounts/dave").json(),
        api.get("/skus/gizmo").json(),
    );
    assert_eq!(before, after, "bad input changes nothing");

    // /metrics counts by operation.
    let text = String::from_utf8(api.metrics(Some(&api.token)).body.to_vec()).unwrap();
    let topups = r#"twopc_http_operations_total{op="topup",outcome="committed"}"#;
    assert!(sample(&text, topups) >= 2, "{text}");
    let restocks = r#"twopc_http_operations_total{op="restock",outcome="committed"}"#;
    assert!(sample(&text, restocks) >= 1, "{text}");
    let zero = r#"twopc_http_operations_rejected_total{op="topup",code="invalid_amount"}"#;
    assert_eq!(sample(&text, zero), 2, "{text}");
    let qty = r#"twopc_http_operations_rejected_total{op="refund",code="invalid_qty"}"#;
    assert_eq!(sample(&text, qty), 4, "{text}");
}

/// With a replicated coordinator: a top-up and a restock from the CLI,
/// then a purchase, commit and add up.
#[test]
fn a_replicated_coordinator_takes_top_ups_and_restocks() {
    let mut c = TestCluster::replicated(3, &[("alice", 100)], &[("widget", 10)]);
    c.start_replicated();
    until_committed(
        &c,
        &["topup", "--user", "erin", "--amount", "30"],
        "r-pay-1",
    );
    until_committed(
        &c,
        &["restock", "--sku", "doohickey", "--qty", "2"],
        "r-del-1",
    );
    let (report, code) = c.purchase("erin", "doohickey", 2, 15);
    assert_eq!(
        (report["outcome"].as_str(), code),
        (Some("committed"), 0),
        "{report}"
    );
    wait_for("nothing held", || {
        let (w, o) = (c.status("wallet")?, c.status("order")?);
        (w["holds_total"] == 0 && o["holds_total"] == 0).then_some(())
    });
    assert_eq!(c.levels("wallet")["erin"], 0);
    assert_eq!(c.levels("order")["doohickey"], 0);
}

/// A top-up decided but not yet committed at the wallet (its commits are
/// dropped): the account shows it as `credited`, not in the balance; a
/// new user whose first top-up is pending is still unknown, and the
/// message says what is pending. Once the wallet hears the commit, the
/// balance has it.
#[test]
fn a_top_up_the_wallet_has_not_committed_yet_shows_as_credited() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    c.start("order", &[]);
    c.start("wallet", &["--fault-drop-in", "commit"]);
    until_committed(&c, &["topup", "--user", "alice", "--amount", "5"], "p-1");
    until_committed(&c, &["topup", "--user", "frank", "--amount", "9"], "p-2");
    let (alice, code) = view(&c, "account", "--user", "alice");
    let alice = alice.unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        (
            &alice["balance"],
            &alice["available"],
            &alice["credited"],
            &alice["credits_total"]
        ),
        (&json!(100), &json!(100), &json!(5), &json!(1)),
        "{alice}"
    );
    let out = c
        .twopc(&["account", "--user", "frank", "--timeout", "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(
        err.contains("1 prepared top-ups of 9 in all will create it"),
        "{err}"
    );
    c.terminate("wallet");
    c.start("wallet", &[]);
    wait_for("the commits at the wallet", || {
        let w = c.levels("wallet");
        (w.get("alice") == Some(&105) && w.get("frank") == Some(&9)).then_some(())
    });
    let (alice, _) = view(&c, "account", "--user", "alice");
    assert_eq!(alice.unwrap()["credited"], 0);
}
