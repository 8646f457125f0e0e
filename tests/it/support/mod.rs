//! The one test harness: temp dirs, running the built binary, and real nginx; the Consul
//! simulator is its own crate (crates/consul-sim).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The built consul-render binary (Cargo names it for tests and benches; programs that reuse
/// this harness, like the simulator example, find it on PATH).
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_consul-render") {
    Some(p) => p,
    None => "consul-render",
};

/// The repository root (for templates/ and examples/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temp directory that tests write into; removed when dropped.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes `contents` to `name` (creating parents) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, contents).expect("write file");
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.join(name).exists()
    }

    /// A consul-render command running in this directory with a clean Consul environment
    /// (`CONSUL_RENDER_BIN` names another binary, for benchmarks comparing two builds).
    pub fn cmd(&self) -> Command {
        let bin = std::env::var("CONSUL_RENDER_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut c = Command::new(bin);
        c.current_dir(self.path()).stdin(Stdio::null());
        for (k, _) in std::env::vars() {
            if k.starts_with("CONSUL_") || k.starts_with("CT_") || k == "RUST_BACKTRACE" {
                c.env_remove(k);
            }
        }
        c
    }

    /// Runs consul-render with `args` in this directory.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd().args(args))
    }
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// No single run of the binary in a test may take longer than this.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Run {
    /// Runs to completion, killing the process (and failing the test) after `RUN_LIMIT`.
    pub fn of(cmd: &mut Command) -> Run {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running consul-render");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if rx.recv_timeout(RUN_LIMIT).is_err() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        let out = child.wait_with_output().expect("waiting for consul-render");
        let _ = tx.send(());
        assert!(
            out.status.code().is_some(),
            "consul-render was killed after {RUN_LIMIT:?} (or by a signal)"
        );
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// Real nginx (Debian's nginx-light). Tests need it: `.ci/run` installs it.
pub fn nginx() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v nginx"]).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is not installed: run `apt-get install nginx-light` (.ci/run does)");
}

/// `nginx -t` on a config file, with pid and error log kept in `dir`. Returns (ok, output).
pub fn nginx_test(conf: &Path, dir: &Path) -> (bool, String) {
    let out = Command::new(nginx())
        .arg("-t")
        .arg("-c")
        .arg(conf)
        .arg("-p")
        .arg(dir)
        .arg("-g")
        .arg(format!(
            "pid {}/nginx.pid; error_log stderr;",
            dir.display()
        ))
        .output()
        .expect("running nginx -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Lines with content, trailing whitespace trimmed: for comparing configs across blank lines.
pub fn content_lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

pub use consul_sim::Consul;
/// Fails the test unless `unshare --pid --fork --mount-proc` works (util-linux, as root): the
/// PID 1 tests run consul-render as PID 1 of a new PID namespace.
pub fn require_pid_namespaces() {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    assert!(
        unshare.is_ok_and(|s| s.success()),
        "unshare --pid --fork --mount-proc must work here (util-linux, root)"
    );
}

/// Polls `done` every 20 ms until it holds, failing the test after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// consul-render running in the background (watch mode); killed when dropped. Its stderr
/// goes to `watch.log` in its directory.
pub struct Background {
    child: std::process::Child,
    log: PathBuf,
}

impl Dir {
    /// Starts consul-render with `args` in the background.
    pub fn spawn(&self, args: &[&str]) -> Background {
        self.spawn_cmd(self.cmd().args(args))
    }

    pub fn spawn_cmd(&self, cmd: &mut Command) -> Background {
        let log = self.join("watch.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("starting consul-render");
        Background { child, log }
    }

    /// The lines of a file, or none when it does not exist yet.
    pub fn lines(&self, name: &str) -> usize {
        std::fs::read_to_string(self.join(name)).map_or(0, |s| s.lines().count())
    }
}

impl Background {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`-TERM`, `-HUP`, …).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill {sig}");
    }

    /// Waits for the process to exit, at most `limit`; its exit code.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<i32> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        None
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Docker Flow example's data file for `apps` applications (examples/docker-flow/gen-data.py).
/// The benches use it (they include this harness).
#[allow(dead_code)]
pub fn docker_flow_data(apps: usize) -> String {
    let out = Command::new("python3")
        .arg(repo().join("examples/docker-flow/gen-data.py"))
        .arg(apps.to_string())
        .output()
        .expect("python3 examples/docker-flow/gen-data.py");
    String::from_utf8(out.stdout).expect("the data is UTF-8")
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A tiny HTTP server on 127.0.0.1 answering every request with its name (an app instance).
pub struct Upstream {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::start_slow(name, std::time::Duration::ZERO)
    }

    /// An upstream that waits `delay` before answering (to keep requests in flight).
    pub fn start_slow(name: &str, delay: std::time::Duration) -> Upstream {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, body) = (stop.clone(), name.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    std::thread::sleep(delay);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Upstream { port, stop }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// `GET /` on 127.0.0.1:port on a new connection: (status, body), or why it failed.
pub fn http_get(port: u16) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad answer {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Real nginx running in the foreground on a config; stopped (QUIT, then KILL) when dropped.
pub struct Nginx {
    child: std::process::Child,
}

impl Nginx {
    /// Starts nginx on `conf` (a self-contained config: its pid and logs in its runtime dir).
    pub fn start(conf: &Path) -> Nginx {
        let child = Command::new(nginx())
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting nginx");
        Nginx { child }
    }

    /// The reload command for this nginx, as a template command.
    pub fn reload_command(conf: &Path) -> String {
        format!("{} -c {} -s reload", nginx().display(), conf.display())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Temp files consul-render left in `dir` (there should be none).
pub fn temp_files_left(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".consul-render-")
            })
            .count()
    })
}

/// The blue-green scenario's fixtures: a Consul holding one blue and one green instance (as
/// Registrator registers them), a directory with a `run/` dir for nginx and a `live` file saying
/// blue, and two free ports for nginx.
pub struct BlueGreen {
    pub consul: Consul,
    pub dir: Dir,
    pub live_port: u16,
    pub standby_port: u16,
}

impl BlueGreen {
    pub fn new(blue: &Upstream, green: &Upstream) -> BlueGreen {
        let consul = Consul::start();
        consul.register_container(
            "docker-host-1",
            "127.0.0.1",
            "blue",
            "bg_blue_1",
            blue.port,
            "passing",
        );
        consul.register_container(
            "docker-host-1",
            "127.0.0.1",
            "green",
            "bg_green_1",
            green.port,
            "passing",
        );
        let dir = Dir::new();
        std::fs::create_dir(dir.join("run")).expect("run dir");
        dir.write("live", "blue");
        BlueGreen {
            consul,
            dir,
            live_port: free_port(),
            standby_port: free_port(),
        }
    }

    /// The template's environment: live file, ports, loopback, nginx runtime dir.
    pub fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("LIVE_FILE", self.dir.join("live"))
            .env("LIVE_PORT", self.live_port.to_string())
            .env("STANDBY_PORT", self.standby_port.to_string())
            .env("LISTEN_ADDRESS", "127.0.0.1")
            .env("NGINX_RUNTIME_DIR", self.dir.join("run"))
    }
}

/// Peak resident set of a running process (`VmHWM`), in KiB; 0 once it has exited.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
