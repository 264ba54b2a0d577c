//! The HTTP API's `/metrics` against real `twopc node` processes, parsed by
//! a Prometheus text parser: the counters move with purchases; a node's
//! metrics may be public while its purchases are not.

mod common;

use common::http::{free_tcp_port, purchase, token_file, Api, Reply};
use common::TestCluster;
use hyper::{Method, StatusCode};
use std::collections::BTreeMap;

/// Every sample of a scrape by name (and labels as `k=v,...`), parsed by
/// a Prometheus text parser.
fn scrape(reply: &Reply) -> BTreeMap<String, f64> {
    assert_eq!(reply.status, StatusCode::OK);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let mut samples = BTreeMap::new();
    for s in parsed.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map(|b| b.count).unwrap_or(0.0)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        let name = if labels.is_empty() {
            s.metric
        } else {
            format!("{}{{{}}}", s.metric, labels.join(","))
        };
        samples.insert(name, value);
    }
    assert!(!samples.is_empty(), "{text}");
    samples
}

#[test]
fn metrics_parse_and_move_with_purchases() {
    let mut c = TestCluster::new(&[("alice", 1000)], &[("widget", 100)]);
    let (path, token) = token_file(&c);
    let path = path.to_str().unwrap().to_string();
    let (cport, wport) = (free_tcp_port(), free_tcp_port());
    let (caddr, waddr) = (format!("127.0.0.1:{cport}"), format!("127.0.0.1:{wport}"));
    c.start(
        "coordinator",
        &["--http", &caddr, "--http-token-file", &path],
    );
    // The wallet's metrics are public; its purchases are not.
    c.start(
        "wallet",
        &[
            "--http",
            &waddr,
            "--http-token-file",
            &path,
            "--http-metrics-public",
        ],
    );
    c.start("order", &[]);
    let coordinator = Api::new(cport, &token);
    let wallet = Api::new(wport, &token);
    let before_c = scrape(&coordinator.metrics(Some(&token)));
    let before_w = scrape(&wallet.metrics(None));
    assert_eq!(
        wallet
            .call(Method::POST, "/purchases", None, &[], vec![])
            .status,
        StatusCode::UNAUTHORIZED,
        "purchases still need the token"
    );
    let mut committed = 0;
    for i in 0..3 {
        let v = coordinator.buy(&format!("m-{i}"), &purchase("alice", "widget", 1, 10));
        if v["status"] == "committed" {
            committed += 1;
        }
    }
    c.settle();
    let after_c = scrape(&coordinator.metrics(Some(&token)));
    let after_w = scrape(&wallet.metrics(None));
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(&after_c, "twopc_purchases_decided_total{outcome=committed}")
            - get(
                &before_c,
                "twopc_purchases_decided_total{outcome=committed}"
            ),
        committed as f64,
        "{after_c:#?}"
    );
    for k in [
        "twopc_msgs_handled_total",
        "twopc_datagrams_in_total",
        "twopc_fsyncs_total",
    ] {
        assert!(get(&after_c, k) > get(&before_c, k), "coordinator {k}");
        assert!(get(&after_w, k) > get(&before_w, k), "wallet {k}");
    }
    assert!(
        get(&after_c, "twopc_purchase_decision_seconds") >= 3.0,
        "{after_c:#?}"
    );
    assert!(
        get(&after_c, "twopc_http_purchase_seconds") >= 1.0,
        "{after_c:#?}"
    );
    assert!(get(&after_w, "twopc_batch_size") > get(&before_w, "twopc_batch_size"));
    // Two-phase commit: no one write, and each decided outcome waited for
    // two durable writes or more (the votes', the coordinator's; a third
    // when its ticket waited for a save of the previous purchase).
    assert_eq!(get(&after_c, "twopc_one_write"), 0.0, "{after_c:#?}");
    assert_eq!(get(&after_w, "twopc_one_write"), 0.0, "{after_w:#?}");
    let moved = |name: &str| -> Vec<(&String, f64)> {
        (after_c.iter())
            .filter(|(k, _)| k.starts_with(name))
            .map(|(k, v)| (k, *v - get(&before_c, k)))
            .collect()
    };
    let waited = moved("twopc_outcome_waited_total");
    let decided = moved("twopc_purchases_decided_total");
    let sum = |v: &[(&String, f64)]| v.iter().map(|(_, n)| n).sum::<f64>();
    assert_eq!(sum(&waited), sum(&decided), "{waited:?} {decided:?}");
    assert!(sum(&waited) >= committed as f64, "{waited:?}");
    assert!(
        waited
            .iter()
            .all(|(k, n)| *n == 0.0 || ["{writes=2}", "{writes=3}"].iter().any(|w| k.ends_with(w))),
        "{waited:?}"
    );
    assert_eq!(get(&after_w, "twopc_in_doubt"), 0.0);
    assert_eq!(get(&after_c, "twopc_voting"), 0.0);
    assert!(get(&after_c, "twopc_epoch") >= 1.0);
    assert_eq!(
        get(&after_w, "twopc_node_info{node=wallet,role=participant}"),
        1.0,
        "{after_w:#?}"
    );
}
