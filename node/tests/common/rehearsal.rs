//! A rehearsal of docs/node.md's runbooks on one machine, with real
//! `twopc node` processes: the runbooks' commands run as written, in bash,
//! on machines played by directories.
//!
//! - Each machine of the runbooks (`10.0.0.1` ... `10.0.0.6`) is a
//!   directory `hosts/10.0.0.N` holding its `/etc/twopc`, `/var/lib/twopc`,
//!   `/backup` and `/tmp`; a command run on it (`10.0.0.2$ ...`) has those
//!   paths moved under its directory. Every machine is installed as
//!   `node/examples/twopc.service` says (the key in `/etc/twopc/key`); the
//!   ones that run a node have its name in `/etc/twopc/node.env` and a
//!   cluster file.
//! - `systemctl stop|start|restart twopc` is a shell function doing what
//!   the unit does: `twopc node --cluster /etc/twopc/cluster.toml --name
//!   $TWOPC_NAME --data-dir /var/lib/twopc/$TWOPC_NAME` with the machine's
//!   key, in the background (its log in `hosts/10.0.0.N/twopc.log`); stop
//!   sends SIGTERM and waits for the exit. `scp FILE... HOST:PATH` copies
//!   into that machine's directory; `ssh HOST CMD ARGS...` runs the command
//!   there (no remote shell: its words as they are).
//! - An address `10.0.0.N:7000`, in a command or a file the test writes,
//!   is a free loopback port, and back again in what is compared.
//! - The operator's machine (`$ ...`) is `operator/`, holding `cluster.toml`
//!   and `key` (`TWOPC_KEY_FILE`), and copies of the example cluster files.
//!
//! Every process started is recorded and killed (by its id) when the
//! rehearsal is dropped.

use super::docs::{free_port, Step};
use super::BIN;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Paths of a machine that a command run on it finds in its directory.
const MACHINE_PATHS: [&str; 4] = ["/etc/twopc", "/var/lib/twopc", "/backup", "/tmp"];
/// The machines of the runbooks.
pub const MACHINES: [&str; 6] = [
    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
];

const PRELUDE: &str = r#"
systemctl() {
    local r="$ROOT/hosts/$HOST"
    case "$1" in
        start) start_node "$r" ;;
        stop) stop_node "$r" ;;
        restart) stop_node "$r"; start_node "$r" ;;
        *) echo "systemctl $1: not rehearsed" >&2; return 1 ;;
    esac
}
start_node() {
    local r="$1"
    [ -f "$r/pid" ] && return 0
    ( . "$r/etc/twopc/node.env"
      export TWOPC_KEY_FILE="$r/etc/twopc/key" RUST_LOG=info
      exec twopc node --cluster "$r/etc/twopc/cluster.toml" --name "$TWOPC_NAME" \
          --data-dir "$r/var/lib/twopc/$TWOPC_NAME" ) < /dev/null >> "$r/twopc.log" 2>&1 &
    echo $! > "$r/pid"
    echo $! >> "$ROOT/pids"
}
stop_node() {
    local r="$1" pid
    [ -f "$r/pid" ] || return 0
    pid=$(cat "$r/pid")
    kill -TERM "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    # Started by an earlier rehearsal's shell: not this one's child.
    while kill -0 "$pid" 2> /dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2> /dev/null)" != Z ]; do
        sleep 0.05
    done
    rm -f "$r/pid"
}
ssh() {
    local h="$1" a p args=()
    shift
    for a in "$@"; do
        for p in /etc/twopc /var/lib/twopc /backup /tmp; do
            case "$a" in "$p"*) a="$ROOT/hosts/$h$a"; break ;; esac
        done
        args+=("$a")
    done
    ( HOST="$h"; cd "$ROOT/hosts/$h" && "${args[@]}" )
}
scp() {
    local a files=()
    for a in "$@"; do case "$a" in -*) ;; *) files+=("$a") ;; esac; done
    local dest="${files[-1]}"
    unset 'files[-1]'
    cp -a "${files[@]}" "$ROOT/hosts/${dest%%:*}${dest#*:}"
}
"#;

pub struct Rehearsal {
    pub root: tempfile::TempDir,
    /// The loopback port playing each machine's `:7000`.
    ports: BTreeMap<String, u16>,
}

impl Default for Rehearsal {
    fn default() -> Self {
        Self::new()
    }
}

impl Rehearsal {
    /// Machines installed (directories, the key), none running anything;
    /// the operator's machine with the key and `node/examples`' cluster
    /// files on loopback ports: the 2PC shop's (`cluster-2pc.toml`) as
    /// `cluster.toml`, the replicated one's (`cluster.toml`) as
    /// `cluster-replicated.toml` (the runbooks start from the 2PC shop).
    pub fn new() -> Rehearsal {
        let root = tempfile::Builder::new()
            .prefix("twopc-runbook-")
            .tempdir()
            .unwrap();
        let mut r = Rehearsal {
            root,
            ports: BTreeMap::new(),
        };
        let key = format!("{}\n", hex::encode(rand::random::<[u8; 32]>()));
        let op = r.operator();
        std::fs::create_dir_all(&op).unwrap();
        std::fs::write(op.join("key"), &key).unwrap();
        for host in MACHINES {
            r.ports.insert(host.to_string(), free_port());
            let h = r.host(host);
            for p in MACHINE_PATHS {
                std::fs::create_dir_all(h.join(&p[1..])).unwrap();
            }
            std::fs::write(h.join("etc/twopc/key"), &key).unwrap();
        }
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (example, file) in [
            ("cluster-2pc.toml", "cluster.toml"),
            ("cluster.toml", "cluster-replicated.toml"),
        ] {
            let text = std::fs::read_to_string(examples.join(example)).unwrap();
            std::fs::write(op.join(file), r.map(&text)).unwrap();
        }
        r
    }

    /// The operator's machine.
    pub fn operator(&self) -> PathBuf {
        self.root.path().join("operator")
    }

    /// Machine `host`'s directory.
    pub fn host(&self, host: &str) -> PathBuf {
        self.root.path().join("hosts").join(host)
    }

    /// Node `name` on `host`, with the operator's cluster file, as the
    /// unit's installation comment says (not started).
    pub fn deploy(&self, host: &str, name: &str) {
        let h = self.host(host);
        std::fs::write(h.join("etc/twopc/node.env"), format!("TWOPC_NAME={name}\n")).unwrap();
        std::fs::copy(
            self.operator().join("cluster.toml"),
            h.join("etc/twopc/cluster.toml"),
        )
        .unwrap();
    }

    /// The 2PC shop of `node/examples/cluster-2pc.toml`: the coordinator on
    /// 10.0.0.1, the wallet on 10.0.0.2, the order service on 10.0.0.3,
    /// deployed and started, answering `status`.
    pub fn shop() -> Rehearsal {
        Self::shop_with(|text| text)
    }

    /// [`Rehearsal::shop`], its cluster file edited first.
    pub fn shop_with(edit: impl Fn(String) -> String) -> Rehearsal {
        let r = Rehearsal::new();
        let file = r.operator().join("cluster.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, edit(text)).unwrap();
        for (host, name) in [
            ("10.0.0.1", "coordinator"),
            ("10.0.0.2", "wallet"),
            ("10.0.0.3", "order"),
        ] {
            r.deploy(host, name);
        }
        r.ok(&start(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]));
        r
    }

    /// The replicated shop of `node/examples/cluster.toml`:
    /// `coordinator-1` on 10.0.0.1, `coordinator-2` on 10.0.0.4,
    /// `coordinator-3` on 10.0.0.5, the wallet on 10.0.0.2, the order
    /// service on 10.0.0.3, deployed and started, answering `status`.
    pub fn replicated_shop() -> Rehearsal {
        let r = Rehearsal::new();
        let op = r.operator();
        std::fs::copy(op.join("cluster-replicated.toml"), op.join("cluster.toml")).unwrap();
        for (host, name) in [
            ("10.0.0.1", "coordinator-1"),
            ("10.0.0.4", "coordinator-2"),
            ("10.0.0.5", "coordinator-3"),
            ("10.0.0.2", "wallet"),
            ("10.0.0.3", "order"),
        ] {
            r.deploy(host, name);
        }
        r.ok(&start(&[
            "10.0.0.1", "10.0.0.4", "10.0.0.5", "10.0.0.2", "10.0.0.3",
        ]));
        r
    }

    /// `text` with every `10.0.0.N:7000` moved to its loopback port.
    pub fn map(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (host, port) in &self.ports {
            out = out.replace(&format!("{host}:7000"), &format!("127.0.0.1:{port}"));
        }
        out
    }

    /// `text` with the machines' loopback ports back at `10.0.0.N:7000`,
    /// and their directories' paths back at `/var/lib/twopc`, ... .
    pub fn unmap(&self, text: &str) -> String {
        let mut text = text.to_string();
        for host in MACHINES {
            text = text.replace(&self.host(host).display().to_string(), "");
        }
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("127.0.0.1:") {
            out += &rest[..i];
            let after = &rest[i + "127.0.0.1:".len()..];
            let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
            let port: Option<u16> = after[..digits].parse().ok();
            match self.ports.iter().find(|(_, p)| Some(**p) == port) {
                Some((host, _)) => out += &format!("{host}:7000"),
                None => out += &format!("127.0.0.1:{}", &after[..digits]),
            }
            rest = &after[digits..];
        }
        out + rest
    }

    /// The shell text of `step`: addresses mapped, a machine's paths moved
    /// under its directory.
    fn shell(&self, step: &Step) -> String {
        let cmd = self.map(&step.cmd);
        match &step.host {
            None => format!(
                "HOST=; cd '{}'\n{{ {cmd}\n}} 2>&1\n",
                self.operator().display()
            ),
            Some(host) => {
                let dir = self.host(host);
                let mut moved = String::new();
                let mut rest = cmd.as_str();
                'scan: while !rest.is_empty() {
                    for p in MACHINE_PATHS {
                        let starts_token =
                            moved.chars().last().is_none_or(|c| " =\"'(<>".contains(c));
                        if starts_token && rest.starts_with(p) {
                            moved += &format!("{}{p}", dir.display());
                            rest = &rest[p.len()..];
                            continue 'scan;
                        }
                    }
                    let c = rest.chars().next().unwrap();
                    moved.push(c);
                    rest = &rest[c.len_utf8()..];
                }
                format!("HOST={host}; cd '{}'\n{{ {moved}\n}} 2>&1\n", dir.display())
            }
        }
    }

    /// Runs `steps` in one bash, in order; the output (stdout and stderr)
    /// of each, addresses mapped back.
    pub fn run(&self, steps: &[Step]) -> Vec<Vec<String>> {
        let mut script = format!(
            "ROOT='{}'\nexport TWOPC_KEY_FILE=\"$ROOT/operator/key\"\n{PRELUDE}",
            self.root.path().display()
        );
        for (i, step) in steps.iter().enumerate() {
            script += &format!("echo '@@step {i}'\n{}", self.shell(step));
        }
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", path)
            .env_remove("TWOPC_KEY")
            .env_remove("TWOPC_KEY_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut got: Vec<Vec<String>> = vec![Vec::new(); steps.len()];
        let mut at = None;
        for line in stdout.lines() {
            match line.strip_prefix("@@step ") {
                Some(i) => at = Some(i.parse::<usize>().unwrap()),
                None => got[at.expect("a step")].push(self.unmap(line)),
            }
        }
        if !out.stderr.is_empty() {
            eprintln!("rehearsal stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        got
    }

    /// Runs `steps`; each must print what the page shows (numbers aside:
    /// see [`normalised`]).
    pub fn ok(&self, steps: &[Step]) -> Vec<Vec<String>> {
        let got = self.run(steps);
        for (step, got) in steps.iter().zip(&got) {
            self.expect(step, got, &step.expected);
        }
        got
    }

    /// Asserts that `got`, the output of `step`, is `expected` (numbers
    /// aside), showing the machines' logs if not.
    pub fn expect(&self, step: &Step, got: &[String], expected: &[String]) {
        let norm =
            |lines: &[String]| -> Vec<String> { lines.iter().map(|l| normalised(l)).collect() };
        assert_eq!(
            norm(got),
            norm(expected),
            "`{}` (on {})\ngot:\n{}\nlogs:\n{}",
            step.cmd,
            step.host.as_deref().unwrap_or("the operator's machine"),
            got.join("\n"),
            self.logs()
        );
    }

    /// The last lines of every machine's node log, addresses mapped back.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for host in MACHINES {
            if let Ok(log) = std::fs::read_to_string(self.host(host).join("twopc.log")) {
                let lines: Vec<&str> = log.lines().collect();
                s += &format!("--- {host} ---\n");
                for l in &lines[lines.len().saturating_sub(30)..] {
                    s += &self.unmap(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// Machine `host`'s node log, addresses mapped back.
    pub fn log(&self, host: &str) -> String {
        let log = std::fs::read_to_string(self.host(host).join("twopc.log")).unwrap_or_default();
        self.unmap(&log)
    }

    /// `twopc status --json` of node `name`, asked from the operator's
    /// machine with its cluster file, addresses mapped back (None: no
    /// answer).
    pub fn status(&self, name: &str) -> Option<Value> {
        let op = self.operator();
        let out = Command::new(BIN)
            .arg("--key-file")
            .arg(op.join("key"))
            .arg("status")
            .arg("--cluster")
            .arg(op.join("cluster.toml"))
            .args(["--name", name, "--json", "--timeout", "2"])
            .env_remove("TWOPC_KEY")
            .output()
            .unwrap();
        let v: Value =
            serde_json::from_str(&self.unmap(&String::from_utf8_lossy(&out.stdout))).ok()?;
        let view = v.get(name)?.clone();
        (!view.is_null()).then_some(view)
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(self.root.path().join("pids")).unwrap_or_default();
        for pid in pids.lines() {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// `systemctl start twopc` on each of `hosts`, then a `twopc status` that
/// returns once every node of the operator's cluster file answers.
pub fn start(hosts: &[&str]) -> Vec<Step> {
    let mut steps: Vec<Step> = hosts
        .iter()
        .map(|h| Step::on(h, "systemctl start twopc"))
        .collect();
    steps.push(Step::op(
        "twopc status --cluster cluster.toml --timeout 20 > /dev/null",
    ));
    steps
}

/// `systemctl stop twopc` on each of `hosts`.
pub fn stop(hosts: &[&str]) -> Vec<Step> {
    hosts
        .iter()
        .map(|h| Step::on(h, "systemctl stop twopc"))
        .collect()
}

/// A purchase of one widget by alice at 5, from the operator's machine.
pub fn purchase(timeout: u64) -> Step {
    Step::op(&format!(
        "twopc purchase --cluster cluster.toml --user alice --sku widget --qty 1 --price 5 --timeout {timeout}"
    ))
}

/// `line` with every run of digits one `N`, trailing spaces cut: what a
/// page shows of counts, ids, terms and seconds is an example.
pub fn normalised(line: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in line.trim_end().chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}
