//! docs/node.md's HTTP example ("With curl") is run as written: every
//! `$ ` line of its console block, in one shell, from a copy of the
//! repository's files it names, with the cluster's and the API's ports
//! moved to free ones; each command's output must be the one the page
//! shows. (The example used to start only the coordinator.)

mod common;

use common::docs::{console_blocks, free_port, node_md};
use common::BIN;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn the_http_example_starts_the_whole_cluster_and_answers_as_shown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let steps: Vec<(String, Vec<String>)> = console_blocks(&node_md(), "### With curl")
        .remove(0)
        .into_iter()
        .map(|s| (s.cmd, s.expected))
        .collect();
    let starts: Vec<&String> = steps
        .iter()
        .map(|(c, _)| c)
        .filter(|c| c.starts_with("twopc node "))
        .collect();
    for name in ["coordinator", "wallet", "order"] {
        assert!(
            starts
                .iter()
                .any(|c| c.contains(&format!("--name {name} "))),
            "the example starts {name}: {starts:?}"
        );
    }
    // A copy of the files the example names, on free ports.
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("node/examples");
    std::fs::create_dir_all(&examples).unwrap();
    let mut cluster =
        std::fs::read_to_string(root.join("node/examples/cluster-loopback.toml")).unwrap();
    for port in ["7001", "7002", "7003"] {
        cluster = cluster.replace(
            &format!("127.0.0.1:{port}"),
            &format!("127.0.0.1:{}", free_port()),
        );
    }
    std::fs::write(examples.join("cluster-loopback.toml"), cluster).unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let mut script = String::from("trap 'kill $(jobs -p) 2>/dev/null' EXIT\n");
    for (i, (cmd, _)) in steps.iter().enumerate() {
        script += &format!(
            "echo '@@step {i}'\n{}\n",
            cmd.replace("127.0.0.1:8080", &api)
        );
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("TWOPC_KEY")
        .env_remove("TWOPC_KEY_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let logs = ["coordinator", "wallet", "order"]
        .map(|n| std::fs::read_to_string(dir.path().join(format!("shop/{n}.log"))))
        .map(|l| l.unwrap_or_default())
        .join("\n");
    let mut got: Vec<Vec<String>> = vec![Vec::new(); steps.len()];
    let mut at = None;
    for line in stdout.lines() {
        match line.strip_prefix("@@step ") {
            Some(i) => at = Some(i.parse::<usize>().unwrap()),
            None => got[at.expect("a step")].push(line.to_string()),
        }
    }
    for ((cmd, expected), got) in steps.iter().zip(&got) {
        assert_eq!(
            got,
            expected,
            "`{cmd}`\nstderr: {}\nlogs:\n{logs}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
