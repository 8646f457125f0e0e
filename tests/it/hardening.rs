//! Hardening through the binary: commands that leave processes behind, hostile templates and
//! data, servers that misbehave, and files swapped under us. Each test is one defect that froze,
//! aborted or leaked before; none may hang, abort (exit 134) or panic (exit 101).

use crate::support::{wait_until, Dir};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80}],
  "kv": {"greeting": "hello"}}"#;

/// Kills the pids listed (one a line) in `file`, if it exists: processes a test's command left.
fn kill_listed(d: &Dir, file: &str) {
    if let Ok(text) = std::fs::read_to_string(d.join(file)) {
        for pid in text.split_whitespace() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

// ----- commands that leave processes behind -----

#[test]
fn once_returns_when_the_command_exits_not_when_its_background_process_does() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{key \"greeting\"}}\n");
    let started = Instant::now();
    // The background sleep keeps the command's stderr open for 20 s.
    let run = d.run(&[
        "-data=data.json",
        "-template=in.hbs:out:sleep 20 >/dev/null & echo $! > bg.pid",
        "-once",
    ]);
    let took = started.elapsed();
    kill_listed(&d, "bg.pid");
    run.code(0);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(d.read("out"), "hello\n");
}

#[test]
fn a_timeout_kills_the_group_and_names_what_was_left_even_when_a_process_escaped_it() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    // One process leaves the group (setsid) and holds stderr for 40 s; the group's own sleep
    // runs past the timeout.
    d.write(
        "c.hcl",
        r#"template {
  source = "in.hbs"
  destination = "out"
  command = "setsid sh -c 'echo $$ > esc.pid; exec sleep 40' >/dev/null & sleep 100"
  command_timeout = "1s"
}
"#,
    );
    let started = Instant::now();
    let run = d.run(&["-config=c.hcl", "-data=data.json", "-once"]);
    let took = started.elapsed();
    kill_listed(&d, "esc.pid");
    run.code(14)
        .stderr_has("timed out after 1s; killed its process group")
        .stderr_has("sleep");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_watcher_whose_command_left_a_daemon_still_renders_changes_and_stops_on_sigterm() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{key \"greeting\"}}\n");
    let mut bg = d.spawn(&[
        "-data=data.json",
        "-template=in.hbs:out:echo run >> runs; sleep 30 >/dev/null & echo $! >> bg.pid",
    ]);
    wait_until("the first render", LIMIT, || d.lines("runs") == 1);
    d.write("data.json", &DATA.replace("hello", "bye"));
    wait_until("the second render", LIMIT, || {
        d.read("out") == "bye\n" && d.lines("runs") == 2
    });
    let sent = Instant::now();
    bg.signal("-TERM");
    let code = bg.wait_exit(LIMIT);
    let took = sent.elapsed();
    kill_listed(&d, "bg.pid");
    assert_eq!(code, Some(0), "{}", bg.log());
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn sigterm_during_a_running_command_stops_the_watcher_and_the_command() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{key \"greeting\"}}\n");
    let mut bg = d.spawn(&[
        "-data=data.json",
        "-template=in.hbs:out:echo $$ > cmd.pid; sleep 25",
    ]);
    wait_until("the command to start", LIMIT, || {
        d.exists("cmd.pid") && !d.read("cmd.pid").trim().is_empty()
    });
    let sent = Instant::now();
    bg.signal("-TERM");
    let code = bg.wait_exit(LIMIT);
    let took = sent.elapsed();
    let cmd_pid = d.read("cmd.pid").trim().to_string();
    let cmd_alive = std::path::Path::new(&format!("/proc/{cmd_pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{cmd_pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    kill_listed(&d, "cmd.pid");
    assert_eq!(code, Some(0), "{}", bg.log());
    assert!(took < Duration::from_secs(2), "took {took:?}\n{}", bg.log());
    assert!(!cmd_alive, "the command outlived consul-render");
    assert_eq!(d.read("out"), "hello\n");
    assert_eq!(crate::support::temp_files_left(d.path()), 0);
}

#[test]
fn a_failed_exec_as_pid_1_with_an_orphan_alive_is_an_error_not_a_panic() {
    let unshare = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    assert!(
        unshare.is_ok_and(|s| s.success()),
        "unshare --pid --fork --mount-proc must work here (util-linux, root)"
    );
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    // The template's command orphans a sleep (PID 1's to reap), so the reaper is waiting on a
    // live child when the exec child's exec fails; std then reaps that child itself.
    for round in 0..5 {
        let out = format!("-template=in.hbs:out{round}:sleep 3 >/dev/null 2>&1 &");
        let run = crate::support::Run::of(
            std::process::Command::new("unshare")
                .current_dir(d.path())
                .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(crate::support::BIN)
                .args(["-data=data.json", &out, "-once", "-exec=/no/such/program --flag"]),
        );
        assert_ne!(run.code, 101, "round {round}: panicked\n{}", run.stderr);
        assert_ne!(run.code, 134, "round {round}: aborted\n{}", run.stderr);
        run.code(14).stderr_has("starting the exec child");
    }
}

// ----- servers that misbehave -----

/// A raw HTTP/1.1 server on 127.0.0.1 for answers no Consul gives: each connection's request
/// head is recorded, then `answer` writes the response. It stops accepting after 60 s.
struct Stub {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stub {
    fn start(answer: fn(&mut std::net::TcpStream)) -> Stub {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    answer(&mut conn);
                });
            }
        });
        Stub { port, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[test]
fn the_token_never_follows_a_redirect_to_another_origin() {
    use std::io::Write;
    static TARGET: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let elsewhere = Stub::start(|conn| {
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 5\r\n\
              Content-Length: 2\r\nConnection: close\r\n\r\n[]",
        );
    });
    TARGET.set(elsewhere.port).expect("one redirect test");
    let redirector = Stub::start(|conn| {
        let port = TARGET.get().copied().unwrap_or(1);
        let _ = write!(
            conn,
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{port}/v1/kv/x\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    let d = Dir::new();
    d.write("in.hbs", "{{key \"x\"}}\n");
    let addr = format!("-consul-addr=127.0.0.1:{}", redirector.port);
    d.run(&[
        &addr,
        "-consul-token=secret-token-1234",
        "-template=in.hbs:out",
        "-once",
    ])
    .code(14)
    .stderr_has("redirect to another origin");
    let sent = redirector.requests();
    assert!(
        sent.iter().any(|r| r.contains("secret-token-1234")),
        "the agent itself gets the token: {sent:?}"
    );
    assert_eq!(elsewhere.requests(), Vec::<String>::new(), "another origin was asked");
    assert!(!d.exists("out"));
}

/// The highest resident set of `pid` seen while polling it until it exits (KiB).
fn peak_rss_until_exit(bg: &mut crate::support::Background, limit: Duration) -> (Option<i32>, u64) {
    let status = format!("/proc/{}/status", bg.pid());
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(code) = bg.wait_exit(Duration::from_millis(20)) {
            return (Some(code), peak);
        }
    }
    (None, peak)
}

#[test]
fn an_endless_body_is_an_error_in_bounded_memory() {
    use std::io::Write;
    let server = Stub::start(|conn| {
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Consul-Index: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = format!("10000\r\n{}\r\n", "[".repeat(0x10000));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if conn.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let d = Dir::new();
    d.write("in.hbs", "{{key \"x\"}}\n");
    let addr = format!("-consul-addr=127.0.0.1:{}", server.port);
    let mut bg = d.spawn(&[
        &addr,
        "-template=in.hbs:out",
        "-once",
        "-once-timeout=20s",
        "-consul-retry-attempts=1",
        "-consul-retry-backoff=10ms",
    ]);
    let (code, peak_kib) = peak_rss_until_exit(&mut bg, Duration::from_secs(40));
    assert_eq!(code, Some(14), "{}", bg.log());
    assert!(bg.log().contains("over the limit of 67108864 bytes"), "{}", bg.log());
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
    assert!(!d.exists("out"));
}

#[test]
fn a_token_with_a_newline_is_a_configuration_error_not_a_retry() {
    let d = Dir::new();
    d.write("in.hbs", "{{key \"x\"}}\n");
    let started = Instant::now();
    d.run(&[
        "-consul-addr=127.0.0.1:9",
        "-consul-token=abc\ndef",
        "-template=in.hbs:out",
        "-once",
    ])
    .code(13)
    .stderr_has("the Consul token holds a character a header cannot carry");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let d = Dir::new();
    d.write("in.hbs", "{{key \"x\"}}\n");
    d.write("ca.pem", "not a certificate\n");
    std::fs::create_dir_all(d.join("cadir")).unwrap();
    d.write("cadir/README", "nothing here\n");
    d.run(&[
        "-consul-addr=https://127.0.0.1:9",
        "-consul-ssl-ca-cert=ca.pem",
        "-template=in.hbs:out",
        "-once",
    ])
    .code(15)
    .stderr_has("ca.pem: no PEM certificate");
    d.run(&[
        "-consul-addr=https://127.0.0.1:9",
        "-consul-ssl-ca-path=cadir",
        "-template=in.hbs:out",
        "-once",
    ])
    .code(15)
    .stderr_has("cadir: no PEM certificate");
}
