//! Two fresh PostgreSQL 15 servers in a temporary directory, stopped and
//! removed when [`Servers`] is dropped: at the end, on error and on Ctrl-C.
//!
//! As root, initdb refuses to run, so both servers run as the `postgres`
//! user (the directory is handed to it). Each server runs in its own
//! process group, so a Ctrl-C at the terminal reaches only this harness,
//! which then stops them itself; and each gets SIGQUIT (immediate shutdown)
//! if the harness dies without cleaning up.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a server is configured beyond initdb's defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    /// At least the most clients of any run.
    pub max_prepared_transactions: usize,
    pub max_connections: usize,
    pub lock_timeout_ms: u64,
}

impl Settings {
    /// The `-c` options: durability as deployed (fsync, synchronous commit,
    /// full-page writes), loopback TCP only.
    pub fn options(&self, socket_dir: &Path) -> Vec<String> {
        [
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", socket_dir.display()),
            "fsync=on".into(),
            "synchronous_commit=on".into(),
            "full_page_writes=on".into(),
            format!(
                "max_prepared_transactions={}",
                self.max_prepared_transactions
            ),
            format!("max_connections={}", self.max_connections),
            format!("lock_timeout={}", self.lock_timeout_ms),
            "logging_collector=off".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-c".to_string(), o])
        .collect()
    }
}

/// One running server.
pub struct Server {
    pub name: String,
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Server {
    /// A connection string for tokio-postgres.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The last lines of the server's log, for an error message.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Whether the server process is still there.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// The servers and their directory; dropping this stops and removes them.
pub struct Servers {
    pub dir: PathBuf,
    pub servers: Vec<Server>,
}

/// The uid and gid to run PostgreSQL as: ours, or `postgres`'s if we are root.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    let me = fs::metadata("/proc/self").map_err(|e| format!("/proc/self: {e}"))?;
    if me.uid() != 0 {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let id = |s: &str| s.parse::<u32>().map_err(|e| format!("/etc/passwd: {e}"));
            return Ok(Some((id(f[2])?, id(f[3])?)));
        }
    }
    Err("running as root, and there is no `postgres` user for initdb to run as: create one (Debian's postgresql-15 package does) or run as another user".into())
}

fn command(program: PathBuf, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
        c.env("HOME", "/tmp").env("USER", "postgres");
    }
    c.stdin(Stdio::null());
    c
}

/// A free TCP port on loopback (bound and released).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

impl Servers {
    /// initdb and start one server per name under a fresh directory in
    /// `parent`. Returns once each accepts connections (within 60 s).
    pub async fn start(
        pg_bin: &Path,
        parent: &Path,
        names: &[&str],
        settings: &Settings,
    ) -> Result<Servers, String> {
        let user = run_as()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = parent.join(format!("pgside-{}-{nanos}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut all = Servers {
            dir: dir.clone(),
            servers: Vec::new(),
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        for name in names {
            let data = dir.join(name);
            let log = dir.join(format!("{name}.log"));
            let out = command(pg_bin.join("initdb"), user)
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
                // initdb's own fsync of the fresh cluster: the measured
                // servers run with fsync on.
                .arg("--no-sync")
                .output()
                .map_err(|e| format!("cannot run initdb: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "initdb {} failed ({}):\n{}",
                    data.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let port = free_port()?;
            let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let mut c = command(pg_bin.join("postgres"), user);
            c.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .args(settings.options(&data))
                .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
                .stderr(log_file)
                .process_group(0);
            // SAFETY: prctl is async-signal-safe; nothing else runs here.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                    Ok(())
                });
            }
            let child = c
                .spawn()
                .map_err(|e| format!("cannot start postgres: {e}"))?;
            all.servers.push(Server {
                name: name.to_string(),
                port,

                log,
                child,
            });
        }
        for s in &mut all.servers {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = s.exited() {
                    return Err(format!(
                        "PostgreSQL server {} exited ({status}) at start; its log:\n{}",
                        s.name,
                        s.log_tail()
                    ));
                }
                match tokio_postgres::connect(&s.conninfo(), tokio_postgres::NoTls).await {
                    Ok(_) => break,
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => {
                        return Err(format!(
                            "PostgreSQL server {} on port {} did not accept connections within 60 s: {e}; its log:\n{}",
                            s.name,
                            s.port,
                            s.log_tail()
                        ))
                    }
                }
            }
        }
        Ok(all)
    }
}

impl Drop for Servers {
    /// Fast shutdown (SIGINT: roll back sessions, checkpoint, exit), up to
    /// 20 s, then SIGKILL; then the directory goes.
    fn drop(&mut self) {
        for s in &self.servers {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(s.child.id() as i32, libc::SIGINT) };
        }
        for s in &mut self.servers {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match s.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Ok(None) => {
                        eprintln!("pgside: server {} did not stop in 20 s: SIGKILL", s.name);
                        let _ = s.child.kill();
                        let _ = s.child.wait();
                        break;
                    }
                }
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("pgside: cannot remove {}: {e}", self.dir.display());
        }
    }
}
