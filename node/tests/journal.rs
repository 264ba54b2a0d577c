//! The participants' journals against real `twopc node` processes, read
//! with `twopc journal` and `GET /journal/{name}`: replayed from the
//! cluster file's initial levels, each gives its participant's levels now
//! (as `twopc status` reports them), aborted purchases leave no entry, and
//! so it stays with participants killed (-9) in the middle of a stream of
//! purchases and restarted. Bad input gets its exit status or HTTP error.

mod common;

use common::http::{buy_until_committed, cluster_with_api, purchase};
use common::shop::replay;
use common::{wait_for, TestCluster};
use hyper::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// `twopc journal --name NAME --json EXTRA`: its JSON, exit code, stderr.
fn journal(c: &TestCluster, name: &str, extra: &[&str]) -> (Option<Value>, i32, String) {
    let mut args = vec!["journal", "--name", name, "--json", "--timeout", "10"];
    args.extend_from_slice(extra);
    let out = c.twopc(&args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).ok();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (json, out.status.code().unwrap_or(-1), stderr)
}

/// The whole journal of `name`, by the CLI.
fn entries(c: &TestCluster, name: &str) -> Vec<Value> {
    let (json, code, err) = journal(c, name, &[]);
    assert_eq!(code, 0, "{err}");
    let json = json.unwrap();
    assert_eq!(json["truncated"], false, "{json}");
    json["entries"].as_array().unwrap().clone()
}

const ACCOUNTS: &[(&str, u64)] = &[("alice", 1000), ("bob", 50)];
const STOCK: &[(&str, u64)] = &[("widget", 100), ("gadget", 2)];

#[test]
fn the_journals_replay_to_the_levels_by_cli_and_http() {
    let (c, api) = cluster_with_api(ACCOUNTS, STOCK, &[]);
    let mut committed = 0;
    for (user, sku, qty, price) in [
        ("alice", "widget", 3, 5),
        ("bob", "widget", 1, 60),  // insufficient funds
        ("alice", "gadget", 3, 1), // insufficient stock
        ("bob", "gadget", 2, 7),
        ("alice", "widget", 1, 9),
    ] {
        let (r, _) = c.purchase(user, sku, qty, price);
        if r["outcome"] == "committed" {
            committed += 1;
        } else {
            assert_eq!(r["outcome"], "aborted", "{r}");
        }
    }
    assert_eq!(committed, 3, "two purchases abort: funds, stock");
    c.settle();
    let (wallet, order) = (entries(&c, "wallet"), entries(&c, "order"));
    assert_eq!((wallet.len(), order.len()), (3, 3), "aborts leave none");
    assert_eq!(replay(ACCOUNTS, &wallet), c.levels("wallet"));
    assert_eq!(replay(STOCK, &order), c.levels("order"));
    let first = &wallet[0];
    assert_eq!(
        (&first["kind"], &first["operation"], &first["key"]),
        (&"hold".into(), &"purchase".into(), &"alice".into())
    );
    assert_eq!(
        (first["amount"].as_i64(), first["level"].as_u64()),
        (Some(-15), Some(985))
    );

    // A page at a time: --limit, then from `next`.
    let (page, code, _) = journal(&c, "order", &["--from", "2", "--limit", "1"]);
    let page = page.unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        (page["next"].as_u64(), page["end"].as_u64()),
        (Some(3), Some(4))
    );
    assert_eq!(page["entries"].as_array().unwrap(), &order[1..2]);
    // Text for people.
    let out = c.twopc(&["journal", "--name", "wallet"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("purchase") && text.contains("-15 -> 985"),
        "{text}"
    );
    assert!(
        text.ends_with("3 entries of wallet; next 4; first kept 1\n"),
        "{text}"
    );

    // Bad usage: exit 2, nothing asked; a coordinator keeps no journal: 1.
    let (none, code, err) = journal(&c, "nobody", &[]);
    assert_eq!((none, code), (None, 2));
    assert!(err.contains("no node \"nobody\""), "{err}");
    let (_, code, err) = journal(&c, "wallet", &["--from", "0"]);
    assert_eq!(code, 2, "{err}");
    let (_, code, err) = journal(&c, "coordinator", &[]);
    assert_eq!(code, 1, "{err}");

    // HTTP: the same entries, one page.
    let r = api.get("/journal/wallet?from=1");
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["entries"].as_array().unwrap(), &wallet);
    assert_eq!(
        (v["node"].as_str(), v["next"].as_u64()),
        (Some("wallet"), Some(4))
    );
    let v = api.get("/journal/order?from=3").json();
    assert_eq!(v["entries"].as_array().unwrap(), &order[2..]);
    let v = api.get("/journal/order?from=9").json();
    assert_eq!(
        (v["entries"].as_array().unwrap().len(), v["next"].as_u64()),
        (0, Some(4))
    );
    for (path, status, code) in [
        ("/journal/nobody", StatusCode::NOT_FOUND, "unknown_node"),
        ("/journal/coordinator", StatusCode::NOT_FOUND, "no_journal"),
        (
            "/journal/wallet?from=0",
            StatusCode::BAD_REQUEST,
            "bad_from",
        ),
        (
            "/journal/wallet?from=x",
            StatusCode::BAD_REQUEST,
            "bad_from",
        ),
        (
            "/journal/wallet?limit=-1",
            StatusCode::BAD_REQUEST,
            "bad_limit",
        ),
    ] {
        let r = api.get(path);
        assert_eq!((r.status, r.code()), (status, code.to_string()), "{path}");
    }
    let r = api.call(Method::GET, "/journal/wallet", None, &[], vec![]);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A purchase over HTTP is journaled like any other.
    let (key, _) = buy_until_committed(&api, "http-1", &purchase("alice", "widget", 2, 4));
    c.settle();
    let v = api.get("/journal/wallet?from=4").json();
    assert_eq!(v["entries"][0]["id"], key.as_str(), "{v}");
    assert_eq!(replay(ACCOUNTS, &entries(&c, "wallet")), c.levels("wallet"));
}

/// A stream of purchases from two client threads while the wallet, then
/// the order service, is killed with -9 and restarted: afterwards each
/// journal still replays to its levels. (An entry written in a later
/// record than its level change would be lost with the kill: this test
/// fails then.)
#[test]
fn kill_9_in_the_middle_of_purchases_and_the_journal_still_replays() {
    let accounts = [("alice", 100_000), ("bob", 100_000)];
    let stock = [("widget", 100_000)];
    let mut c = TestCluster::new(&accounts, &stock);
    c.start_all();
    let c = Arc::new(std::sync::Mutex::new(c));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (cluster_file, key_file) = {
        let c = c.lock().unwrap();
        (c.cluster_file.clone(), c.key_file.clone())
    };
    let clients: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|user| {
            let (stop, done) = (stop.clone(), done.clone());
            let (cluster_file, key_file) = (cluster_file.clone(), key_file.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let out = std::process::Command::new(common::BIN)
                        .arg("--key-file")
                        .arg(&key_file)
                        .env_remove("TWOPC_KEY")
                        .arg("purchase")
                        .arg("--cluster")
                        .arg(&cluster_file)
                        .args(["--user", user, "--sku", "widget", "--qty", "1"])
                        .args(["--price", "3", "--json", "--timeout", "120"])
                        .output()
                        .unwrap();
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                    assert!(
                        v["outcome"] == "committed" || v["outcome"] == "aborted",
                        "{v} {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let after = |n: u64| {
        wait_for(&format!("{n} purchases"), || {
            (done.load(Ordering::SeqCst) >= n).then_some(())
        })
    };
    for (victim, at) in [("wallet", 8), ("order", 20), ("wallet", 32)] {
        after(at);
        let mut c = c.lock().unwrap();
        c.kill9(victim);
        std::thread::sleep(std::time::Duration::from_millis(200));
        c.start(victim, &[]);
    }
    after(44);
    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.join().unwrap();
    }
    let c = c.lock().unwrap();
    c.settle();
    let (wallet, order) = (entries(&c, "wallet"), entries(&c, "order"));
    assert!(!wallet.is_empty());
    assert_eq!(
        wallet.len(),
        order.len(),
        "one entry per committed purchase at each"
    );
    assert_eq!(replay(&accounts, &wallet), c.levels("wallet"));
    assert_eq!(replay(&stock, &order), c.levels("order"));
}

/// A cluster file's `journal_retention = 3`: after five purchases the
/// wallet keeps positions 3 to 5, and asking from 1 says so (`truncated`,
/// a warning on stderr) rather than starting silently later. The levels
/// still match the last entries' levels.
#[test]
fn retention_drops_the_oldest_and_says_so() {
    let mut c = TestCluster::new(ACCOUNTS, STOCK);
    let text = std::fs::read_to_string(&c.cluster_file).unwrap();
    std::fs::write(&c.cluster_file, format!("journal_retention = 3\n{text}")).unwrap();
    c.start_all();
    for _ in 0..5 {
        let (r, _) = c.purchase("alice", "widget", 1, 2);
        assert_eq!(r["outcome"], "committed", "{r}");
    }
    c.settle();
    let (json, code, err) = journal(&c, "wallet", &["--from", "1"]);
    assert_eq!(code, 0, "{err}");
    let json = json.unwrap();
    assert_eq!(json["truncated"], true, "{json}");
    assert_eq!(
        (json["first"].as_u64(), json["next"].as_u64()),
        (Some(3), Some(6))
    );
    let positions: Vec<_> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [3, 4, 5]);
    assert_eq!(
        json["entries"][2]["level"].as_u64(),
        Some(c.levels("wallet")["alice"])
    );
    let out = c.twopc(&["journal", "--name", "wallet"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no longer keeps positions 1 to 2"), "{err}");
}
