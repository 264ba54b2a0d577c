//! A shop's life against real `twopc node` processes, from outside, by the
//! CLI and the same over HTTP (issue 22's black-box test): a NEW user is
//! topped up; a NEW sku is restocked with a price; a purchase at that price
//! commits, one at another price aborts `price_changed` (exit 3 / 200
//! aborted) and changes nothing; a price change alone (a restock of 0 with
//! a price) moves the price; the top-up retried under its id is applied
//! once. A part of the committed purchase is refunded (commits), the refund
//! retried under its id is applied once, a refund of more than remains
//! aborts `refund_exceeds_purchase`, one of the aborted purchase
//! `not_committed`, one of an unknown id `unknown_purchase`. At the end the
//! views say initial + credits − committed purchases + committed refunds,
//! list the refund as the key's last operation, and each participant's
//! journal replays from the initial levels to the levels now, the refund's
//! credits named `refund`.

mod common;

use common::http::{buy_until_committed, cluster_with_api, purchase, Api};
use common::shop::{assert_refund_is_last, replay, run, until_committed};
use common::{wait_for, TestCluster};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

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
    let bought = r["req"].as_str().unwrap().to_string();
    let (r, code) = c.purchase("carol", "gizmo", 1, 6);
    assert_eq!((r["outcome"].as_str(), code), (Some("aborted"), 3), "{r}");
    assert_eq!(r["reason"], "price_changed", "{r}");
    let changed = r["req"].as_str().unwrap().to_string();
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

    // One of the two units bought at 7 back: 7 to carol, 1 to gizmo.
    let refund = ["refund", "--purchase", &bought, "--qty", "1"];
    let (rma, first) = until_committed(&c, &refund, "rma-1");
    // Again under its id: its first answer, applied once.
    let mut again = refund.to_vec();
    again.extend(["--id", &rma]);
    let (retry, code, err) = run(&c, &again);
    let retry = retry.unwrap_or_else(|| panic!("exit {code}: {err}"));
    assert_eq!((retry["txn"].clone(), code), (first["txn"].clone(), 0));
    // Refused, each with its reason (exit 3), changing nothing.
    let refused = [
        (
            vec!["--purchase", &bought, "--qty", "2"],
            "refund_exceeds_purchase",
        ),
        (vec!["--purchase", &changed], "not_committed"),
        (vec!["--purchase", "no-such-order"], "unknown_purchase"),
    ];
    for (n, (args, reason)) in refused.iter().enumerate() {
        let id = format!("rma-refused-{n}");
        let mut all = vec!["refund", "--id", &id];
        all.extend(args);
        let (r, code, err) = run(&c, &all);
        let r = r.unwrap_or_else(|| panic!("exit {code}: {err}"));
        assert_eq!((&r["reason"], code), (&json!(reason), 3), "{r}");
    }

    // initial + credits − committed purchases + committed refunds.
    c.settle();
    let account = view(&c, "account", "--user", "carol");
    assert_eq!(account["balance"], json!(50 - 2 * 7 - 6 + 7));
    let sku = view(&c, "sku", "--sku", "gizmo");
    assert_eq!(
        (&sku["stock"], &sku["price"]),
        (&json!(5 - 2 - 1 + 1), &json!(6))
    );
    // The refund is each key's last operation.
    assert_refund_is_last(&[(&account, 7), (&sku, 1)], &rma);
    assert_eq!(
        view(&c, "account", "--user", "alice")["balance"],
        json!(100)
    );
    let (wallet, order) = (c.levels("wallet"), c.levels("order"));
    let money = journal(&c, "wallet");
    assert_eq!(replay(ACCOUNTS, &money), wallet);
    let entries = journal(&c, "order");
    assert_eq!(replay(STOCK, &entries), order);
    // The refund's credits are journaled as a refund, once at each.
    for (all, amount) in [(&money, 7), (&entries, 1)] {
        let refunds: Vec<_> = all.iter().filter(|e| e["operation"] == "refund").collect();
        assert_eq!(refunds.len(), 1, "{all:?}");
        assert_eq!(
            (&refunds[0]["id"], &refunds[0]["amount"]),
            (&json!(rma), &json!(amount))
        );
    }
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

    let (bought, _) = buy_until_committed(&api, "buy-1", &purchase("dave", "gizmo", 3, 5));
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
    let changed = v["id"].as_str().unwrap().to_string();

    // Two of the three units back: 10 to dave, 2 to gizmo; again under its
    // key: the first answer, applied once.
    let refund = json!({"purchase": bought, "qty": 2});
    let (rma, first_refund) = post_until_committed(&api, "/refunds", "rma-1", &refund);
    let again = post(&api, "/refunds", &rma, &refund);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["txn"], first_refund["txn"]);
    assert_eq!(
        api.get(&format!("/refunds/{rma}")).json()["status"],
        "committed"
    );
    // Refused, each with its reason, changing nothing.
    let refused = [
        (
            json!({"purchase": bought, "qty": 2}),
            "refund_exceeds_purchase",
        ),
        (json!({"purchase": changed}), "not_committed"),
        (json!({"purchase": "no-such-order"}), "unknown_purchase"),
    ];
    for (n, (body, reason)) in refused.iter().enumerate() {
        let r = post(&api, "/refunds", &format!("rma-refused-{n}"), body);
        assert_eq!(r.status, StatusCode::OK, "{body}");
        let v = r.json();
        assert_eq!(
            (&v["status"], &v["reason"]),
            (&json!("aborted"), &json!(reason)),
            "{v}"
        );
    }
    // The top-up again under its key: the first answer, applied once.
    let again = post(&api, "/topups", &pay, &body);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["txn"], first["txn"]);

    c.settle();
    let account = api.get("/accounts/dave").json();
    assert_eq!(account["balance"], json!(40 - 3 * 5 + 2 * 5));
    let sku = api.get("/skus/gizmo").json();
    assert_eq!(
        (&sku["stock"], &sku["price"]),
        (&json!(4 - 3 + 2), &json!(5))
    );
    assert_refund_is_last(&[(&account, 10), (&sku, 2)], &rma);
    assert_eq!(
        replay(ACCOUNTS, &journal_http(&api, "wallet")),
        c.levels("wallet")
    );
    assert_eq!(
        replay(STOCK, &journal_http(&api, "order")),
        c.levels("order")
    );
}
