//! The HTTP API's bounds (issue 19): idle connections cannot exhaust a
//! node's file descriptors (a cap, header and idle timeouts, each counted
//! in `/metrics`). Its doors (the token, the small refusals) are in
//! `http_doors.rs`.
//!
//! A plain HTTP/1.1 client over `std::net::TcpStream` (`common/raw_http.rs`),
//! so that a test can hold a connection open or read when the server closes.

mod common;

use common::http::{free_tcp_port, token_file};
use common::raw_http::{call, connect, read_reply, sample, scrape, send, try_call};
use common::{wait_for, TestCluster};
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Child;

/// A `twopc node` process this test started itself, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lets this test process open as many files as its hard limit allows.
fn raise_own_descriptor_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
}

/// The issue's done-when: a node whose process may open 1,024
/// descriptors (systemd's default) serves its API with the default cap;
/// 1,100 idle connections, which need no token, are opened; a POST with
/// the token still gets its answer. Before, the idle connections used up
/// the descriptors and every POST failed, with nothing logged.
#[test]
fn idle_connections_beyond_the_descriptor_limit_do_not_stop_a_post() {
    raise_own_descriptor_limit();
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "--http",
        &addr,
        "--http-token-file",
        path.to_str().unwrap(),
        "--http-header-timeout-ms",
        "5000",
    ];
    let mut cmd = c.node_command("coordinator", &args);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &l) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let coordinator = Process(cmd.spawn().unwrap());
    let pid = coordinator.0.id();
    c.start("wallet", &[]);
    c.start("order", &[]);
    wait_for("the API", || {
        TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| scrape(port, &token))
    });
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")),
        "{limits}"
    );
    let idle: Vec<TcpStream> = (0..1100).map(|_| connect(port)).collect();
    // Every one was accepted (or took an older one's place) by now: a
    // request on a connection opened after them is answered.
    let auth = format!("Bearer {token}");
    let answer = wait_for("an answer to the POST", || {
        // Closed without an answer: more refusals than `REFUSING_MAX` were
        // being written when it came (server.rs); a client asks again.
        let r = try_call(
            port,
            "POST",
            "/purchases",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
                ("idempotency-key", "after-the-flood"),
            ],
            r#"{"user":"alice","sku":"widget","qty":1,"price":10}"#,
        )
        .ok()?;
        // 202: in progress (a starved machine); 503: the flood's
        // connections are too new to give their places yet (under a
        // second); ask again with the key, as a client does.
        (r.status != 202 && r.status != 503).then_some(r)
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    let v = answer.json();
    assert!(
        v["status"] == "committed" || v["reason"] == "vote_timeout",
        "{v}"
    );
    let text = scrape(port, &token);
    let evicted = sample(
        &text,
        "twopc_http_connections_closed_total{reason=\"evicted\"}",
    )
    .unwrap();
    let refused = sample(
        &text,
        "twopc_http_connections_refused_total{reason=\"too_many_connections\"}",
    )
    .unwrap();
    assert!(
        evicted + refused >= 500.0,
        "1,100 idle connections, 512 places: {text}"
    );
    let open = sample(&text, "twopc_http_connections_open").unwrap();
    assert!(open <= 512.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "twopc_http_connections_refused_total{reason=\"accept_error\"}"
        ),
        Some(0.0),
        "the descriptors never ran out: {text}"
    );
    // The idle ones still open send no headers: closed after 5 s.
    wait_for("the header timeout to close the idle connections", || {
        let text = scrape(port, &token);
        let timed_out = sample(
            &text,
            "twopc_http_connections_closed_total{reason=\"header_timeout\"}",
        )?;
        (timed_out >= 400.0).then_some(())
    });
    let log = std::fs::read_to_string(c.log_file("coordinator")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("twopc_http_connections_")),
        "a WARN for the evictions or refusals"
    );
    let warnings = log.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings < 50, "rate-limited: {warnings} WARN lines");
    drop(idle);
}

/// Beyond the cap, with every connection in the middle of a request (a
/// POST waiting for a coordinator that is not running), a new connection
/// is answered `503 too_many_connections` and closed.
#[test]
fn a_connection_beyond_the_cap_with_every_one_busy_gets_503() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    c.start(
        "wallet",
        &[
            "--http",
            &addr,
            "--http-token-file",
            path.to_str().unwrap(),
            "--http-max-connections",
            "1",
            "--http-wait-ms",
            "5000",
        ],
    );
    let auth = format!("Bearer {token}");
    // One place, held by POSTs one after another (each waits 5 s for the
    // missing coordinator, then answers 202), until a GET found it taken.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (auth, done) = (auth.clone(), done.clone());
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = call(
                    port,
                    "POST",
                    "/purchases",
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                        ("idempotency-key", "busy"),
                    ],
                    r#"{"user":"alice","sku":"widget","qty":1,"price":10}"#,
                );
                answers.push(r.status);
            }
            answers
        })
    };
    let refused = wait_for("a 503 while the POST holds the place", || {
        let r = call(port, "GET", "/metrics", &[("authorization", &auth)], "");
        (r.status == 503).then_some(r)
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(refused.code(), "too_many_connections");
    assert!(refused
        .headers
        .iter()
        .any(|(k, v)| k == "connection" && v == "close"));
    let answers = busy.join().unwrap();
    assert!(answers.contains(&202), "{answers:?}");
    assert!(
        answers.iter().all(|s| *s == 202 || *s == 503),
        "{answers:?}"
    );
    let text = wait_for("a scrape", || {
        let r = call(port, "GET", "/metrics", &[("authorization", &auth)], "");
        (r.status == 200).then_some(r.body)
    });
    let n = sample(
        &text,
        "twopc_http_connections_refused_total{reason=\"too_many_connections\"}",
    )
    .unwrap();
    assert!(n >= 1.0, "{text}");
}

/// A kept-alive connection with no request is closed after the idle
/// timeout, and counted.
#[test]
fn an_idle_kept_alive_connection_is_closed() {
    let mut c = TestCluster::new(&[("alice", 100)], &[("widget", 10)]);
    let (path, token) = token_file(&c);
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    c.start(
        "wallet",
        &[
            "--http",
            &addr,
            "--http-token-file",
            path.to_str().unwrap(),
            "--http-idle-timeout-ms",
            "1000",
        ],
    );
    let auth = format!("Bearer {token}");
    let mut s = connect(port);
    send(&mut s, "GET", "/metrics", &[("authorization", &auth)], "");
    assert_eq!(read_reply(&mut s).unwrap().status, 200);
    // The server closes it: the read ends (EOF) instead of waiting 60 s.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    let text = scrape(port, &token);
    assert!(
        sample(
            &text,
            "twopc_http_connections_closed_total{reason=\"idle_timeout\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

/// A node refuses a cap that its descriptor limit cannot hold, before it
/// starts.
#[test]
fn a_cap_beyond_the_descriptor_limit_is_refused_at_start() {
    let c = TestCluster::new(&[("alice", 1)], &[("widget", 1)]);
    let (path, _) = token_file(&c);
    let mut cmd = c.node_command(
        "wallet",
        &[
            "--http",
            "127.0.0.1:0",
            "--http-token-file",
            path.to_str().unwrap(),
            "--http-max-connections",
            "5000",
        ],
    );
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &l) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let out = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("LimitNOFILE") && err.contains("1024"), "{err}");
    assert!(
        !c.data_dir("wallet").join("NODE").exists(),
        "nothing started"
    );
}
