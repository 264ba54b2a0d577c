//! The `twopc-check` binary as people run it: output, exit codes, bad input,
//! and the web explorer opening a counterexample the checker printed.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn twopc_check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twopc-check"))
        .args(args)
        .output()
        .expect("twopc-check runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_passing_check_prints_counts_and_verdicts_and_exits_zero() {
    let out = twopc_check(&["check", "--clients", "1"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Explored 1,350 unique states"), "{text}");
    assert!(text.contains("ok   atomic"), "{text}");
    assert!(text.contains("sometimes: reached"), "{text}");
    assert!(text.contains("All properties hold."), "{text}");
}

#[test]
fn a_mutant_prints_a_readable_counterexample_and_exits_non_zero() {
    let out = twopc_check(&["check", "--mutant", "presume-commit", "--threads", "1"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL atomic"), "{text}");
    assert!(text.contains("Counterexample for \"atomic\":"), "{text}");
    assert!(text.contains("receives QueryDecision"), "{text}");
    assert!(text.contains("sends Commit txn"), "{text}");
    assert!(text.contains("action index path: 0/"), "{text}");
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let out = twopc_check(&["check", "--clients", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--clients and --purchases must be at least 1"));
    let out = twopc_check(&["liveness", "--never-recover", "coordinator"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--never-recover"));
    let out = twopc_check(&["liveness", "--network", "unordered"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("udp network only"));
    let out = twopc_check(&["check", "--network", "carrier-pigeon"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn liveness_reports_the_blocked_path_when_the_coordinator_never_recovers() {
    let out = twopc_check(&[
        "liveness",
        "--clients",
        "1",
        "--max-crashes",
        "1",
        "--crashable",
        "coordinator",
        "--never-recover",
        "coordinator",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Shortest path to 2PC blocking"), "{text}");
    assert!(text.contains("coordinator crashes"), "{text}");
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let code = body.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body))
}

#[test]
fn the_explorer_opens_the_counterexample_the_checker_printed() {
    let out = twopc_check(&["check", "--mutant", "presume-commit", "--threads", "1"]);
    let text = stdout(&out);
    let path = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("action index path: "))
        .expect("a printed path")
        .to_string();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_twopc-check"))
            .args([
                "explore",
                "--mutant",
                "presume-commit",
                "--addr",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut page = None;
    while Instant::now() < deadline && page.is_none() {
        page = http_get(port, "/");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _) = page.expect("the explorer serves its page");
    assert_eq!(code, 200);
    // The UI fetches /.states/<path> for http://ADDR/#/steps/<path>.
    let (code, body) = http_get(port, &format!("/.states/{path}")).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("receives"),
        "the steps from there are listed: {body}"
    );
    let (code, _) = http_get(port, &format!("/.states/{path}/9999")).unwrap();
    assert_eq!(code, 404);
}

#[test]
fn simulation_is_seeded_and_reproducible_and_finds_a_mutant() {
    let args = [
        "simulate",
        "--mutant",
        "presume-commit",
        "--seed",
        "3",
        "--states",
        "20000",
    ];
    let first = twopc_check(&args);
    let text = stdout(&first);
    assert_eq!(first.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL atomic") || text.contains("FAIL commit needs every yes"),
        "{text}"
    );
    assert!(text.contains("Counterexample for"), "{text}");
    // Same seed, same walks: the same counterexamples (timings aside).
    let second = stdout(&twopc_check(&args));
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("Visited"))
            .map(String::from)
            .collect()
    };
    assert_eq!(strip(&text), strip(&second));
    let correct = twopc_check(&[
        "simulate",
        "--seed",
        "3",
        "--clients",
        "3",
        "--purchases",
        "2",
    ]);
    assert!(correct.status.success(), "{}", stdout(&correct));
}

/// The two walks that used to panic inside stateright ("Unable to
/// reconstruct a `Path` ... no action has the next index") now finish.
#[test]
fn long_random_walks_with_ignored_tries_finish_and_judge_every_state() {
    for args in [
        &[
            "simulate",
            "--protocol",
            "replicated",
            "--clients",
            "1",
            "--elections",
            "2",
            "--states",
            "3000000",
            "--max-depth",
            "80",
        ][..],
        &[
            "simulate",
            "--clients",
            "1",
            "--max-crashes",
            "1",
            "--states",
            "2000000",
            "--max-depth",
            "80",
        ][..],
    ] {
        let out = twopc_check(args);
        let text = stdout(&out);
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(text.contains("Visited "), "{text}");
        assert!(text.contains("ok   a commit "), "{text}");
        assert!(!text.contains("FAIL"), "{text}");
    }
}
