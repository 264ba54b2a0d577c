//! A shop's life against real `twopc node` processes, from outside, by the
//! CLI and the same over HTTP (issue 22's black-box test; refunds join it
//! when they exist): a NEW user is topped up; a NEW sku is restocked with a
//! price; a purchase at that price commits, one at another price aborts
//! `price_changed` (exit 3 / 200 aborted) and changes nothing; a price
//! change alone (a restock of 0 with a price) moves the price; the top-up
//! retried under its id is applied once. At the end the views say initial +
//! credits − committed purchases, and each participant's journal replays
//! from the initial levels to the levels now.

mod common;

use common::http::{buy_until_committed, cluster_with_api, purchase, Api};
use common::shop::{run, until_committed};
use common::{wait_for, TestCluster};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ACCOUNTS: &[(&str, u64)] = &[("alice", 100)];
const STOCK: &[(&str, u64)] = &[("widget", 10)];

/// `twopc account --user U --json` or `twopc sku --sku S --json`.
fn view(c: &TestCluster, kind: &str, flag: &str, name: &str) -> Value {
    let out = c
        .twopc(&[kind, flag, name, "--json", "--timeout", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{kind} {name}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `initial` with the journal `entries` applied in order, checking that
/// positions run from 1 without a gap, that each entry's level is the one
/// replayed, and that no transaction is journaled twice.
fn replay(initial: &[(&str, u64)], entries: &[Value]) -> BTreeMap<String, u64> {
    let mut levels: BTreeMap<String, u64> =
        initial.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let mut txns = std::collections::BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["position"].as_u64(), Some(i as u64 + 1), "{e}");
        assert!(txns.insert(e["txn"].as_str().unwrap().to_string()), "{e}");
        let level = levels.entry(e["key"].as_str().unwrap().into()).or_insert(0);
        *level = (*level as i64 + e["amount"].as_i64().unwrap()) as u64;
        assert_eq!(e["level"].as_u64(), Some(*level), "{e}");
    }
    levels
}

/// The whole journal of `name` by `twopc journal --json`.
fn journal(c: &TestCluster, name: &str) -> Vec<Value> {
    let args = ["journal", "--name", name, "--json", "--timeout", "10"];
    let out = c.twopc(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "journal {name}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["truncated"], false, "{json}");
    json["entries"].as_array().unwrap().clone()
}

#[test]
fn a_shops_life_by_the_cli_adds_up() {
    let mut c = TestCluster::new(ACCOUNTS, STOCK);
    c.start_all();
    let topup = ["topup", "--user", "carol", "--amount", "50"];
    let (pay, first) = until_committed(&c, &topup, "pay-1");
    let restock = ["restock", "--sku", "gizmo", "--qty", "5", "--price", "7"];
    until_committed(&c, &restock, "delivery-1");
    let sku = view(&c, "sku", "--sku", "gizmo");
    assert_eq!((&sku["stock"], &sku["price"]), (&json!(5), &json!(7)));
    assert_eq!(view(&c, "sku", "--sku", "widget")["price"], json!(null));

    // At the catalogue price: commits. At another: aborted, exit 3.
    let (r, code) = c.purchase("carol", "gizmo", 2, 7);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    let (r, code) = c.purchase("carol", "gizmo", 1, 6);
    assert_eq!((r["outcome"].as_str(), code), (Some("aborted"), 3), "{r}");
    assert_eq!(r["reason"], "price_changed", "{r}");
    // A price change alone (qty 0); then 6 is the price.
    let reprice = ["restock", "--sku", "gizmo", "--qty", "0", "--price", "6"];
    until_committed(&c, &reprice, "reprice-1");
    let (r, code) = c.purchase("carol", "gizmo", 1, 6);
    assert_eq!((r["outcome"].as_str(), code), (Some("committed"), 0), "{r}");
    let (r, _) = c.purchase("carol", "gizmo", 1, 7);
    assert_eq!(r["reason"], "price_changed", "{r}");
    // A price of 0 is refused before anything is sent.
    let (_, code, err) = run(
        &c,
        &["restock", "--sku", "gizmo", "--qty", "1", "--price", "0"],
    );
    assert_eq!(code, 2, "{err}");

    // The top-up again under its id: its first answer, applied once.
    let mut again = topup.to_vec();
    again.extend(["--id", &pay]);
    let (retry, code, err) = run(&c, &again);
    let retry = retry.unwrap_or_else(|| panic!("exit {code}: {err}"));
    assert_eq!((retry["txn"].clone(), code), (first["txn"].clone(), 0));

    // initial + credits − committed purchases.
    c.settle();
    let account = view(&c, "account", "--user", "carol");
    assert_eq!(account["balance"], json!(50 - 2 * 7 - 6));
    let sku = view(&c, "sku", "--sku", "gizmo");
    assert_eq!(
        (&sku["stock"], &sku["price"]),
        (&json!(5 - 2 - 1), &json!(6))
    );
    assert_eq!(
        view(&c, "account", "--user", "alice")["balance"],
        json!(100)
    );
    let (wallet, order) = (c.levels("wallet"), c.levels("order"));
    assert_eq!(replay(ACCOUNTS, &journal(&c, "wallet")), wallet);
    let entries = journal(&c, "order");
    assert_eq!(replay(STOCK, &entries), order);
    // The price change alone is a restock entry of 0, the level unchanged.
    let zero: Vec<_> = entries.iter().filter(|e| e["amount"] == 0).collect();
    assert_eq!(zero.len(), 1, "{entries:?}");
    assert_eq!(
        (&zero[0]["operation"], &zero[0]["key"], &zero[0]["level"]),
        (&json!("restock"), &json!("gizmo"), &json!(5 - 2))
    );
}

/// `POST path` under `key` with `body`.
fn post(api: &Api, path: &str, key: &str, body: &Value) -> common::http::Reply {
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    let body = serde_json::to_vec(body).unwrap();
    api.call(Method::POST, path, Some(&api.token), &headers, body)
}

/// Posts until an outcome (202: again with the same key); an abort by vote
/// timeout: again under a new key. The key that committed and its answer.
fn post_until_committed(api: &Api, path: &str, stem: &str, body: &Value) -> (String, Value) {
    for attempt in 0..5 {
        let key = match attempt {
            0 => stem.to_string(),
            n => format!("{stem}-again-{n}"),
        };
        let v = wait_for(&format!("{path} {key}"), || {
            let r = post(api, path, &key, body);
            match r.status {
                StatusCode::OK => Some(r.json()),
                StatusCode::ACCEPTED => None,
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

/// The whole journal of `name` by `GET /journal/NAME`.
fn journal_http(api: &Api, name: &str) -> Vec<Value> {
    let r = api.get(&format!("/journal/{name}"));
    assert_eq!(r.status, StatusCode::OK);
    let json = r.json();
    assert_eq!(json["truncated"], false, "{json}");
    json["entries"].as_array().unwrap().clone()
}

#[test]
fn a_shops_life_over_http_adds_up() {
    let (c, api) = cluster_with_api(ACCOUNTS, STOCK, &[]);
    let body = json!({"user": "dave", "amount": 40});
    let (pay, first) = post_until_committed(&api, "/topups", "pay-1", &body);
    let restock = json!({"sku": "gizmo", "qty": 4, "price": 5});
    post_until_committed(&api, "/restocks", "delivery-1", &restock);
    assert_eq!(api.get("/skus/gizmo").json()["price"], 5);
    assert_eq!(api.get("/skus/widget").json()["price"], json!(null));
    // A bad price: 400 invalid_price, nothing sent.
    for bad in [json!(0), json!(1.5)] {
        let r = post(
            &api,
            "/restocks",
            "bad-1",
            &json!({"sku": "gizmo", "qty": 1, "price": bad}),
        );
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, "invalid_price".into())
        );
    }

    buy_until_committed(&api, "buy-1", &purchase("dave", "gizmo", 3, 5));
    // At another price: 200, aborted `price_changed` (an abort by vote
    // timeout on a starved machine changes nothing: again, a new key).
    let mut v = api.buy("buy-2", &purchase("dave", "gizmo", 1, 4));
    for n in 0..4 {
        if v["reason"] != "vote_timeout" {
            break;
        }
        v = api.buy(
            &format!("buy-2-again-{n}"),
            &purchase("dave", "gizmo", 1, 4),
        );
    }
    assert_eq!(
        (&v["status"], &v["reason"]),
        (&json!("aborted"), &json!("price_changed")),
        "{v}"
    );
    // The top-up again under its key: the first answer, applied once.
    let again = post(&api, "/topups", &pay, &body);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["txn"], first["txn"]);

    c.settle();
    let account = api.get("/accounts/dave").json();
    assert_eq!(account["balance"], json!(40 - 3 * 5));
    let sku = api.get("/skus/gizmo").json();
    assert_eq!((&sku["stock"], &sku["price"]), (&json!(4 - 3), &json!(5)));
    assert_eq!(
        replay(ACCOUNTS, &journal_http(&api, "wallet")),
        c.levels("wallet")
    );
    assert_eq!(
        replay(STOCK, &journal_http(&api, "order")),
        c.levels("order")
    );
}
