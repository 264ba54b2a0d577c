//! `twopc account`, `twopc sku`, `GET /accounts/{user}` and `GET
//! /skus/{sku}` against real `twopc node` processes: after a purchase the
//! balance and the stock are lowered by what it took, and the purchase is
//! the key's last operation (from the journal); a hold shows as held
//! (not yet taken from the balance or stock); an unknown key, a name too
//! long and a missing token get their own exit status or HTTP error.

mod common;

use common::http::cluster_with_api;
use common::{wait_for, TestCluster};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Output;

/// `twopc KIND --FLAG NAME --json`: its JSON (if any), exit code, stderr.
fn ask(c: &TestCluster, kind: &str, flag: &str, name: &str) -> (Option<Value>, i32, String) {
    let out: Output = c
        .twopc(&[kind, flag, name, "--json", "--timeout", "10"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).ok();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (json, out.status.code().unwrap_or(-1), stderr)
}

/// The wallet's count of datagrams it dropped as undecodable (a key request
/// naming a key too long would be one).
fn undecodable(c: &TestCluster) -> u64 {
    let v = wait_for("wallet status", || c.status("wallet"));
    v["counters"]["rejected"]["undecodable"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn accounts_and_skus_show_what_a_purchase_took() {
    let (c, api) = cluster_with_api(&[("alice", 100), ("bob", 7)], &[("widget", 10)], &[]);
    let (report, code) = c.purchase("alice", "widget", 3, 5);
    assert_eq!((report["outcome"].as_str(), code), (Some("committed"), 0));
    let (id, txn) = (report["req"].clone(), report["txn"].clone());
    c.settle();

    // The CLI.
    let (account, code, err) = ask(&c, "account", "--user", "alice");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        account.unwrap(),
        json!({"user": "alice", "balance": 85, "held": 0, "available": 85, "holds": [],
               "holds_total": 0, "credited": 0, "credits": [], "credits_total": 0,
               "last": [{"position": 1, "kind": "hold", "operation": "purchase", "id": id,
                         "txn": txn, "key": "alice", "amount": -15, "level": 85}]})
    );
    let (sku, code, err) = ask(&c, "sku", "--sku", "widget");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sku.unwrap(),
        json!({"sku": "widget", "stock": 7, "held": 0, "available": 7, "holds": [],
               "holds_total": 0, "credited": 0, "credits": [], "credits_total": 0,
               "price": null, "repricing": [], "repricing_total": 0,
               "last": [{"position": 1, "kind": "hold", "operation": "purchase", "id": id,
                         "txn": txn, "key": "widget", "amount": -3, "level": 7}]})
    );
    let (bob, code, _) = ask(&c, "account", "--user", "bob");
    assert_eq!((bob.unwrap()["balance"].as_u64(), code), (Some(7), 0));
    // Without --json: one line for people.
    let out = c.twopc(&["account", "--user", "alice"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "user alice: balance 85, held 0, available 85\n  last operations, newest first \
             (journal position):\n         1  purchase {:<10} -15 -> 85\n",
            id.as_str().unwrap()
        )
    );
    let (bob, _, _) = ask(&c, "account", "--user", "bob");
    assert_eq!(bob.unwrap()["last"], json!([]), "no change of bob");

    // Unknown: exit 7 (Exit::Unknown), said on stderr.
    let (none, code, err) = ask(&c, "account", "--user", "carol");
    assert_eq!((none, code), (None, 7));
    assert!(err.contains("no user \"carol\" at wallet"), "{err}");
    let (_, code, err) = ask(&c, "sku", "--sku", "gadget");
    assert_eq!(code, 7, "{err}");

    // 65 bytes: exit 2 (Exit::Usage), and nothing reached the wallet (it
    // would have counted the request as undecodable).
    let before = undecodable(&c);
    let long = "x".repeat(65);
    let (none, code, err) = ask(&c, "account", "--user", &long);
    assert_eq!((none, code), (None, 2));
    assert!(
        err.contains("--user") && err.contains("at most 64 bytes"),
        "{err}"
    );
    let (_, code, _) = ask(&c, "sku", "--sku", &long);
    assert_eq!(code, 2);
    assert_eq!(undecodable(&c), before, "nothing sent");

    // The HTTP API: the same JSON.
    let r = api.get("/accounts/alice");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["balance"], 85);
    assert_eq!(r.json(), ask(&c, "account", "--user", "alice").0.unwrap());
    let r = api.get("/skus/widget");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (r.json()["sku"].clone(), r.json()["stock"].clone()),
        (json!("widget"), json!(7))
    );
    let r = api.get("/accounts/carol");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "unknown_user".into())
    );
    let r = api.get("/skus/gadget");
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "unknown_sku".into())
    );
    let r = api.get(&format!("/accounts/{long}"));
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "name_too_long".into())
    );
    let r = api.get(&format!("/skus/{long}"));
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "name_too_long".into())
    );
    assert_eq!(undecodable(&c), before, "nothing sent");
    for path in ["/accounts/alice", "/skus/widget"] {
        let r = api.call(Method::GET, path, None, &[], vec![]);
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized".into())
        );
        let r = api.call(Method::GET, path, Some(&"0".repeat(64)), &[], vec![]);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A POST buys nothing here.
    let r = api.call(
        Method::POST,
        "/accounts/alice",
        Some(&api.token),
        &[],
        vec![],
    );
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = api.get("/accounts/alice");
    assert_eq!(r.json()["balance"], 85);
}

/// An order service that drops every commit keeps its hold: the sku shows
/// it held (with the purchase's request id), its stock not yet lowered and
/// what is available lowered. The wallet, which applied the commit, shows
/// the balance lowered and nothing held.
#[test]
fn a_hold_shows_as_held_until_its_commit_is_applied() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    c.start("coordinator", &[]);
    c.start("wallet", &[]);
    c.start("order", &["--fault-drop-in", "commit"]);
    let (report, code) = c.purchase("alice", "widget", 4, 2);
    assert_eq!((report["outcome"].as_str(), code), (Some("committed"), 0));
    let req = report["req"].as_str().unwrap().to_string();
    wait_for("the wallet to apply the commit", || {
        let (a, _, _) = ask(&c, "account", "--user", "alice");
        (a?["balance"] == 92).then_some(())
    });
    let (sku, code, err) = ask(&c, "sku", "--sku", "widget");
    assert_eq!(code, 0, "{err}");
    let sku = sku.unwrap();
    assert_eq!(
        (
            sku["stock"].clone(),
            sku["held"].clone(),
            sku["available"].clone()
        ),
        (json!(10), json!(4), json!(6)),
        "{sku}"
    );
    assert_eq!(sku["holds_total"], 1);
    let hold = &sku["holds"][0];
    assert_eq!(
        (hold["req"].as_str(), hold["amount"].as_u64()),
        (Some(req.as_str()), Some(4))
    );
    let (account, _, _) = ask(&c, "account", "--user", "alice");
    let account = account.unwrap();
    assert_eq!(
        (account["held"].clone(), account["available"].clone()),
        (json!(0), json!(92))
    );
    // A purchase of more than is available aborts, though the stock covers it.
    let (report, _) = c.purchase("alice", "widget", 7, 1);
    assert_eq!(
        (report["outcome"].as_str(), report["reason"].as_str()),
        (Some("aborted"), Some("insufficient_stock")),
        "{report}"
    );
}
