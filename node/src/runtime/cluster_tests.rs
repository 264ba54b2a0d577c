//! Tests of the cluster file (`cluster.rs`).

use super::*;

const EXAMPLE: &str = include_str!("../../examples/cluster.toml");
const TWO_PC: &str = include_str!("../../examples/cluster-2pc.toml");

/// The example cluster file is the default deployment: three coordinator
/// replicas, a wallet and an order service.
#[test]
fn the_example_cluster_file_is_replicated() {
    let c = Cluster::parse(EXAMPLE).unwrap();
    assert_eq!(c.protocol, Protocol::Replicated);
    assert_eq!(c.nodes.len(), 5);
    assert!(!c.accounts.table.is_empty() && !c.stock.table.is_empty());
    let names: Vec<&str> = c.coordinators().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["coordinator-1", "coordinator-2", "coordinator-3"]);
    let wallet = c.node("wallet").unwrap();
    let Node::Participant(p) = c.actor(wallet) else {
        panic!("wallet is a participant")
    };
    let replicas: Vec<Id> = c.coordinators().iter().map(|n| n.id()).collect();
    assert_eq!(p.coordinators, replicas);
}

#[test]
fn the_two_phase_commit_example_parses() {
    let c = Cluster::parse(TWO_PC).unwrap();
    assert_eq!(c.protocol, Protocol::TwoPc);
    assert_eq!(c.nodes.len(), 3);
    let wallet = c.node("wallet").unwrap();
    let Node::Participant(p) = c.actor(wallet) else {
        panic!("wallet is a participant")
    };
    assert_eq!(p.coordinators, vec![c.with_role(Role::Coordinator).id()]);
}

#[test]
fn a_name_too_long_for_a_datagram_is_refused() {
    let long = "w".repeat(crate::runtime::wire::MAX_NAME + 1);
    let text = EXAMPLE.replacen("[stock]\n", &format!("[stock]\n{long} = 1\n"), 1);
    let err = Cluster::parse(&text).unwrap_err();
    assert!(err.starts_with("a key in [stock] (\"wwww"), "{err}");
    assert!(err.contains("at most 64 bytes"), "{err}");
}

#[test]
fn a_cluster_written_as_toml_reads_back_the_same() {
    let mut c = Cluster::parse(EXAMPLE).unwrap();
    c.nodes[2].bind = "0.0.0.0:7000".parse().unwrap();
    c.accounts
        .table
        .insert("name with \"quotes\" = and spaces".into(), 7);
    c.stock.file = Some("/data/stock.csv".into());
    let text = c.to_toml();
    assert_eq!(Cluster::parse(&text), Ok(c), "{text}");
}

#[test]
fn bad_cluster_files_say_what_is_wrong() {
    let two_wallets = r#"
        [[node]]
        name = "a"
        role = "wallet"
        address = "127.0.0.1:1"
        [[node]]
        name = "b"
        role = "wallet"
        address = "127.0.0.1:2"
    "#;
    assert!(Cluster::parse(two_wallets)
        .unwrap_err()
        .contains("exactly one"));
    let v6 = "[[node]]\nname='c'\nrole='coordinator'\naddress='[::1]:5'";
    assert!(Cluster::parse(v6).unwrap_err().contains("IPv4"));
    assert!(Cluster::parse("[[node]]\nnam='x'").is_err());
}

/// The example with its coordinator replaced by `n` coordinators, under
/// `protocol` (none: the default).
fn with_coordinators(protocol: Option<&str>, n: usize) -> String {
    let mut text = String::new();
    if let Some(p) = protocol {
        text += &format!("protocol = \"{p}\"\n");
    }
    for i in 0..n {
        text += &format!(
            "[[node]]\nname = \"coordinator-{i}\"\nrole = \"coordinator\"\n\
             address = \"127.0.0.1:{}\"\n\n",
            7100 + i
        );
    }
    text + &participants_only()
}

fn participants_only() -> String {
    // The 2PC example's protocol and coordinator node, cut out.
    let text = TWO_PC.replacen("protocol = \"2pc\"\n", "", 1);
    let start = text.find("[[node]]\nname = \"coordinator\"").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    format!("{}{}", &text[..start], &text[end..])
}

#[test]
fn a_replicated_cluster_lists_an_odd_number_of_coordinators_in_order() {
    let text = with_coordinators;
    let c = Cluster::parse(&text(Some("replicated"), 3)).unwrap();
    assert_eq!(c.protocol, Protocol::Replicated);
    let ids: Vec<Id> = c.coordinators().iter().map(|n| n.id()).collect();
    assert_eq!(ids.len(), 3);
    for (i, name) in ["coordinator-0", "coordinator-1", "coordinator-2"]
        .iter()
        .enumerate()
    {
        let Node::Replica(r) = c.actor(c.node(name).unwrap()) else {
            panic!("a replica")
        };
        assert_eq!((r.index, &r.peers), (i, &ids));
    }
    let Node::Participant(p) = c.actor(c.node("wallet").unwrap()) else {
        panic!("a participant")
    };
    assert_eq!(p.coordinators, ids);
    assert_eq!(Cluster::parse(&c.to_toml()), Ok(c.clone()));
    assert_eq!(c.coordinator_addresses().len(), 3);
    for n in [1, 2, 4] {
        let err = Cluster::parse(&text(Some("replicated"), n)).unwrap_err();
        assert!(
            err.contains("odd number") && err.contains("at least 3"),
            "{err}"
        );
        assert!(err.contains(&format!("lists {n}")), "{err}");
    }
    let err = Cluster::parse(&text(Some("2pc"), 3)).unwrap_err();
    assert!(
        err.contains("exactly one coordinator") && err.contains("replicated"),
        "{err}"
    );
    // Unsaid, the protocol is what the coordinator nodes make: one runs
    // 2PC, three are replicas, two are neither, none is no cluster. A file
    // written back names it.
    for protocol in [None, Some("2pc")] {
        let c = Cluster::parse(&text(protocol, 1)).unwrap();
        assert_eq!(c.protocol, Protocol::TwoPc);
        assert!(
            c.to_toml().starts_with("protocol = \"2pc\""),
            "{}",
            c.to_toml()
        );
    }
    let c = Cluster::parse(&text(None, 3)).unwrap();
    assert_eq!(c.protocol, Protocol::Replicated);
    let err = Cluster::parse(&text(None, 2)).unwrap_err();
    assert!(
        err.contains("odd number") && err.contains("lists 2"),
        "{err}"
    );
    let err = Cluster::parse(&text(None, 0)).unwrap_err();
    assert!(err.contains("this file lists none"), "{err}");
    let err = Cluster::parse(&text(Some("paxos"), 3)).unwrap_err();
    assert!(err.contains("paxos"), "{err}");
}

#[test]
fn levels_files_are_relative_to_the_cluster_file() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("accounts_file = \"balances.csv\"\nstock_file = \"/abs/stock.csv\"\n{EXAMPLE}");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    let c = Cluster::load(&path).unwrap();
    assert_eq!(c.accounts.file, Some(dir.path().join("balances.csv")));
    assert_eq!(c.stock.file, Some(PathBuf::from("/abs/stock.csv")));
    // Only a participant's first start reads it (`node.rs`); missing, it
    // is an error naming the setting and the file.
    assert_eq!(c.initial_levels(Role::Coordinator).unwrap(), None);
    let err = c.initial_levels(Role::Wallet).unwrap_err().to_string();
    assert!(
        err.contains("accounts_file") && err.contains("balances.csv"),
        "{err}"
    );
}

#[test]
fn prices_are_at_least_1_and_only_for_skus_in_stock() {
    let with = |prices: &str| Cluster::parse(&format!("{EXAMPLE}\n[prices]\n{prices}\n"));
    let c = with("gadget = 7").unwrap();
    assert_eq!(c.prices, [("gadget".to_string(), 7)].into());
    // Read back as written.
    assert_eq!(Cluster::parse(&c.to_toml()).unwrap().prices, c.prices);
    let stock = c.initial_levels(Role::Order).unwrap().unwrap();
    assert_eq!(c.initial_prices(Role::Order, &stock).unwrap(), c.prices);
    assert!(c.initial_prices(Role::Wallet, &stock).unwrap().is_empty());
    let err = with("gadget = 0").unwrap_err();
    assert!(
        err.contains("gadget = 0") && err.contains("at least 1"),
        "{err}"
    );
    let err = with("gizmo = 3").unwrap_err();
    assert!(
        err.contains("\"gizmo\"") && err.contains("not in [stock]"),
        "{err}"
    );
    let err = with("gadget = -1").unwrap_err();
    assert!(err.contains("gadget = -1"), "{err}");
    // With a stock file, checked against its rows at the first start.
    let c = Cluster::parse(&format!(
        "stock_file = \"stock.csv\"\n{EXAMPLE}\n[prices]\ngizmo = 3\n"
    ))
    .unwrap();
    let err = c
        .initial_prices(Role::Order, &[("gadget".to_string(), 1)].into())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"gizmo\"") && err.contains("stock_file"),
        "{err}"
    );
}

/// `one_write = true` runs the one-write protocol at the coordinator and
/// both participants, reads back from `to_toml`, and is refused with a
/// replicated coordinator.
#[test]
fn one_write_reaches_every_actor_with_either_protocol() {
    for base in [TWO_PC, EXAMPLE] {
        let text = format!("one_write = true\n{base}");
        let c = Cluster::parse(&text).unwrap();
        assert!(c.one_write);
        assert_eq!(Cluster::parse(&c.to_toml()), Ok(c.clone()));
        for node in &c.nodes {
            let on = match c.actor(node) {
                Node::Coordinator(k) => k.one_write,
                Node::Replica(r) => r.coordinator.one_write,
                Node::Participant(p) => p.one_write,
                other => panic!("{other:?}"),
            };
            assert!(on, "{}", node.name);
        }
        assert!(!Cluster::parse(base).unwrap().one_write);
    }
}
