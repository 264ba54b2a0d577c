//! The console blocks of docs/node.md, for the tests that run them
//! (`docs_http.rs`, `runbooks.rs`): a page whose commands a test runs
//! cannot drift from what the program does.
//!
//! A block's lines are commands and their output. A command starts with a
//! prompt: `$ ` (the operator's machine, or the reader's shell) or
//! `10.0.0.2$ ` (a command run on that machine); every other line is the
//! output of the command before it.

use std::path::Path;

/// One command of a console block, and the output the page shows for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The machine it runs on (`10.0.0.2`), or `None`: the operator's.
    pub host: Option<String>,
    /// The command, as written.
    pub cmd: String,
    /// The output lines the page shows after it.
    pub expected: Vec<String>,
}

impl Step {
    /// A command on the operator's machine, with no output shown.
    pub fn op(cmd: &str) -> Step {
        Step {
            host: None,
            cmd: cmd.to_string(),
            expected: Vec::new(),
        }
    }

    /// A command on machine `host`, with no output shown.
    pub fn on(host: &str, cmd: &str) -> Step {
        Step {
            host: Some(host.to_string()),
            cmd: cmd.to_string(),
            expected: Vec::new(),
        }
    }
}

/// docs/node.md.
pub fn node_md() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("docs/node.md")).unwrap()
}

/// The text under `heading` (a whole heading line, e.g. `### With curl`),
/// up to the next heading of its level or above. Lines in fenced blocks
/// (a shell comment, `# ...`) are not headings.
pub fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = doc
        .lines()
        .scan(0, |at, line| {
            let here = *at;
            *at += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| *line == heading)
        .unwrap_or_else(|| panic!("docs/node.md has no heading {heading:?}"))
        .0;
    let body = &doc[start + heading.len() + 1..];
    let mut in_fence = false;
    let mut at = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && trimmed.starts_with('#') {
            let l = trimmed.chars().take_while(|c| *c == '#').count();
            if l <= level && trimmed[l..].starts_with(' ') {
                break;
            }
        }
        at += line.len();
    }
    &body[..at]
}

/// The fenced blocks of `text` whose info string is `lang`, in order.
pub fn fenced<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let end = body.find("```").expect("a closed block");
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    blocks
}

/// The prompt of a command line: `$ ` (`Some(None)`) or `HOST$ `
/// (`Some(Some(HOST))`, a host of digits and dots), and the command.
fn prompt(line: &str) -> Option<(Option<String>, &str)> {
    if let Some(cmd) = line.strip_prefix("$ ") {
        return Some((None, cmd));
    }
    let (host, cmd) = line.split_once("$ ")?;
    (!host.is_empty() && host.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .then(|| (Some(host.to_string()), cmd))
}

/// The steps of one console block.
pub fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines() {
        match prompt(line) {
            Some((host, cmd)) => steps.push(Step {
                host,
                cmd: cmd.to_string(),
                expected: Vec::new(),
            }),
            None => steps
                .last_mut()
                .expect("output after a command")
                .expected
                .push(line.to_string()),
        }
    }
    steps
}

/// The console blocks under `heading`, each as its steps.
pub fn console_blocks(doc: &str, heading: &str) -> Vec<Vec<Step>> {
    fenced(section(doc, heading), "console")
        .into_iter()
        .map(steps)
        .collect()
}

/// A loopback port free for UDP and for TCP, outside the ephemeral range
/// (see `twopc_node::ops::ports`), never one this test process handed out
/// before: the tests of one binary run in parallel, and a port released
/// here could otherwise be handed to another test's node before this one's
/// binds it (seen: a replica's "Address already in use").
pub fn free_port() -> u16 {
    loop {
        let s = twopc_node::ops::ports::free_loopback_socket().unwrap();
        let port = s.local_addr().unwrap().port();
        if first_time(port) {
            return port;
        }
    }
}

/// Whether `port` was not handed out yet by this process (and marks it).
pub fn first_time(port: u16) -> bool {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port)
}
