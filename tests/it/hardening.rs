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
    assert!(took < Duration::from_secs(3), "took {took:?}\n{}", bg.log());
    assert!(!cmd_alive, "the command outlived consul-render");
    assert_eq!(d.read("out"), "hello\n");
    assert_eq!(crate::support::temp_files_left(d.path()), 0);
}

#[test]
fn a_failed_exec_as_pid_1_with_an_orphan_alive_is_an_error_not_a_panic() {
    crate::support::require_pid_namespaces();
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    // The template's command orphans a sleep (PID 1's to reap), so the reaper is waiting on a
    // live child when the exec child's exec fails; std then reaps that child itself. A program
    // name without a slash, with PATH in the child's environment, makes std fork and exec
    // (not posix_spawn). Before the fix about half of such runs panicked.
    for round in 0..12 {
        let out = format!("-template=in.hbs:out{round}:sleep 3 >/dev/null 2>&1 &");
        let run = crate::support::Run::of(
            std::process::Command::new("unshare")
                .current_dir(d.path())
                .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
                .arg(crate::support::BIN)
                .args([
                    "-data=data.json",
                    &out,
                    "-once",
                    "-exec=nosuch-program-xyz --flag",
                ]),
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
    assert_eq!(
        elsewhere.requests(),
        Vec::<String>::new(),
        "another origin was asked"
    );
    assert!(!d.exists("out"));
}

/// The highest resident set of `pid` seen while polling it until it exits (KiB).
fn peak_rss_until_exit(bg: &mut crate::support::Background, limit: Duration) -> (Option<i32>, u64) {
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < limit {
        peak = peak.max(crate::support::peak_rss_kib(bg.pid()));
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
    assert!(
        bg.log().contains("over the limit of 67108864 bytes"),
        "{}",
        bg.log()
    );
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

// ----- hostile templates, data and config: errors, never aborts -----

/// Asserts a run failed cleanly: the wanted code, no abort (134), no panic (101).
#[track_caller]
fn clean_failure(run: &crate::support::Run, code: i32, message: &str) {
    assert_ne!(run.code, 134, "aborted\n{}", run.stderr);
    assert_ne!(run.code, 101, "panicked\n{}", run.stderr);
    run.code(code).stderr_has(message);
}

#[test]
fn a_partial_that_includes_itself_is_refused_at_load_and_by_check() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{#*inline \"r\"}}x{{> r}}{{/inline}}{{> r}}\n");
    let run = d.run(&["-data=data.json", "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 15, "includes itself on every render");
    let run = d.run(&["check", "-template=in.hbs:out"]);
    clean_failure(&run, 15, "includes itself on every render");
    assert!(!d.exists("out"));
}

#[test]
fn recursion_through_a_block_stops_at_the_depth_limit() {
    let d = Dir::new();
    d.write("data.json", DATA);
    // Recursion the load cannot rule out (inside blocks), with blocks nested between levels.
    let blocks = 90;
    d.write(
        "in.hbs",
        &format!(
            "{{{{#*inline \"r\"}}}}x{}{{{{#each (loop 1)}}}}{{{{> r}}}}{{{{/each}}}}{}{{{{/inline}}}}{{{{> r}}}}\n",
            "{{#if true}}".repeat(blocks),
            "{{/if}}".repeat(blocks)
        ),
    );
    let run = d.run(&["-data=data.json", "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 14, "partials nest too deeply");
}

#[test]
fn in_watch_mode_a_template_error_is_logged_and_the_other_templates_go_on() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("good.hbs", "{{key \"greeting\"}}\n");
    d.write(
        "bad.hbs",
        "{{#*inline \"r\"}}{{#if true}}{{> r}}{{/if}}{{/inline}}{{> r}}{{indent 9223372036854775807 \"x\"}}\n",
    );
    let mut bg = d.spawn(&[
        "-data=data.json",
        "-template=good.hbs:good.out",
        "-template=bad.hbs:bad.out",
        // consul-template's default ends the run on a template error; this keeps watching.
        "-template-error-fatal=false",
    ]);
    wait_until("the good template", LIMIT, || d.exists("good.out"));
    d.write("data.json", &DATA.replace("hello", "bye"));
    wait_until("the good template again", LIMIT, || {
        d.read("good.out") == "bye\n"
    });
    // A reload into a template refused at load keeps the running configuration.
    d.write("good.hbs", "{{#*inline \"s\"}}{{> s}}{{/inline}}{{> s}}\n");
    bg.signal("-HUP");
    d.write("data.json", DATA);
    wait_until("a render after the reload", LIMIT, || {
        d.read("good.out") == "hello\n"
    });
    assert_eq!(
        bg.wait_exit(Duration::from_millis(100)),
        None,
        "{}",
        bg.log()
    );
    let log = bg.log();
    assert!(log.contains("partials nest too deeply"), "{log}");
    assert!(log.contains("reload failed"), "{log}");
    assert!(!d.exists("bad.out"));
}

#[test]
fn ten_thousand_nested_blocks_are_refused_at_once() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", &"{{#if true}}".repeat(10_000));
    let started = Instant::now();
    let run = d.run(&["-data=data.json", "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 15, "blocks nest deeper than 100 levels");
    let run = d.run(&["check", "-template=in.hbs:out"]);
    clean_failure(&run, 15, "blocks nest deeper than 100 levels");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn huge_helper_results_are_refused_before_allocating() {
    let d = Dir::new();
    d.write("data.json", DATA);
    for (template, message) in [
        (
            "{{indent 9223372036854775807 \"x\"}}",
            "indent: the indented string would be",
        ),
        ("{{indent 1000000000 \"x\"}}", "over the limit of 64 MiB"),
        (
            "{{join (indent 100000 \" \") (loop 100000)}}",
            "join: the joined string would be",
        ),
    ] {
        d.write("in.hbs", template);
        let run = d.run(&["-data=data.json", "-template=in.hbs:out", "-once"]);
        clean_failure(&run, 14, message);
    }
}

#[test]
fn kv_keys_deeper_than_the_limit_are_an_error_for_explode_and_the_encoders() {
    // Consul limits a value's size, not its key's length: anyone who may write KV can store
    // such a key. (The data file stands in: an HTTP server's URI limit stops a 70 KB key.)
    let deep = vec!["a"; 35_000].join("/");
    let d = Dir::new();
    d.write(
        "data.json",
        &serde_json::json!({"kv": {format!("deep/{deep}"): "v"}}).to_string(),
    );
    for template in [
        "{{toJSON (explode (tree \"deep\"))}}",
        "{{toTOML (explode (tree \"deep\"))}}",
        "{{toYAML (explode (tree \"deep\"))}}",
    ] {
        d.write("in.hbs", template);
        let run = d.run(&["-data=data.json", "-template=in.hbs:out", "-once"]);
        clean_failure(&run, 14, "segments, over the limit of 128");
    }
}

#[test]
fn a_config_file_nested_20000_deep_is_refused() {
    let d = Dir::new();
    d.write("c.hcl", &"a {".repeat(20_000));
    let run = d.run(&["-config=c.hcl", "-once"]);
    clean_failure(&run, 15, "nest deeper than 64 levels");
}

// ----- files swapped and special -----

#[test]
fn file_on_a_fifo_ends_once_mode_with_an_error() {
    let d = Dir::new();
    d.write("data.json", DATA);
    let made = std::process::Command::new("mkfifo")
        .arg(d.join("pipe"))
        .status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    d.write("in.hbs", "{{file \"pipe\"}}\n");
    let started = Instant::now();
    let run = d.run(&[
        "-data=data.json",
        "-template=in.hbs:out",
        "-once",
        "-once-timeout=5s",
    ]);
    clean_failure(&run, 14, "not a regular file (a FIFO)");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_pid_file_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    d.write("precious", "keep me\n");
    std::os::unix::fs::symlink(d.join("precious"), d.join("run.pid")).unwrap();
    let run = d.run(&[
        "-data=data.json",
        "-template=in.hbs:out",
        "-pid-file=run.pid",
        "-once",
    ]);
    clean_failure(&run, 14, "is a symbolic link; refusing");
    assert_eq!(d.read("precious"), "keep me\n");
}

#[test]
fn a_symlink_swapped_during_renders_never_leads_out_of_the_sandbox() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("secret", "SECRET\n");
    d.write("box/ok", "fine\n");
    d.write(
        "c.hcl",
        "template {\n  contents = \"{{file \\\"box/link\\\"}}\"\n  destination = \"out\"\n  sandbox_path = \"box\"\n}\n",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, dir) = (stop.clone(), d.path().to_path_buf());
        std::thread::spawn(move || {
            let (link, tmp) = (dir.join("box/link"), dir.join("box/tmp"));
            let mut inside = true;
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(120)
            {
                let target = if inside {
                    dir.join("box/ok")
                } else {
                    dir.join("secret")
                };
                let _ = std::fs::remove_file(&tmp);
                if std::os::unix::fs::symlink(&target, &tmp).is_ok() {
                    let _ = std::fs::rename(&tmp, &link);
                }
                inside = !inside;
            }
        })
    };
    let mut rendered = 0;
    for _ in 0..150 {
        let _ = std::fs::remove_file(d.join("out"));
        let run = d.run(&["-config=c.hcl", "-data=data.json", "-once"]);
        assert!(run.code == 0 || run.code == 14, "{run:?}");
        if let Ok(out) = std::fs::read_to_string(d.join("out")) {
            assert!(
                !out.contains("SECRET"),
                "rendered a file outside the sandbox"
            );
            rendered += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = swapper.join();
    assert!(rendered > 0, "no render got through at all");
}

#[test]
fn a_symlink_renamed_over_the_temp_file_never_changes_another_file() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("victim", "v\n");
    std::fs::set_permissions(
        d.join("victim"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    d.write(
        "c.hcl",
        "template {\n  source = \"in.hbs\"\n  destination = \"out/conf\"\n  perms = 0644\n}\n",
    );
    std::fs::create_dir_all(d.join("out")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let (stop, dir) = (stop.clone(), d.path().to_path_buf());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(120)
            {
                let Ok(entries) = std::fs::read_dir(dir.join("out")) else {
                    continue;
                };
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with(".consul-render-")
                    {
                        let link = dir.join(format!("out/l{n}"));
                        n += 1;
                        if std::os::unix::fs::symlink(dir.join("victim"), &link).is_ok() {
                            let _ = std::fs::rename(&link, e.path());
                        }
                    }
                }
            }
        })
    };
    for i in 0..100 {
        d.write("in.hbs", &format!("render {i}\n"));
        let run = d.run(&["-config=c.hcl", "-data=data.json", "-once"]);
        assert!(run.code == 0 || run.code == 14, "{run:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = attacker.join();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::symlink_metadata(d.join("victim"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the victim's mode changed");
    assert_eq!(d.read("victim"), "v\n");
    let dest = std::fs::symlink_metadata(d.join("out/conf"));
    assert!(
        dest.as_ref().map_or(true, std::fs::Metadata::is_file),
        "the destination became a symlink"
    );
}

#[test]
fn stale_temp_files_are_swept_at_start_and_fresh_ones_kept() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    let old = d.write(".consul-render-old123", "partial");
    let fresh = d.write(".consul-render-new456", "in progress");
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    d.run(&["-data=data.json", "-template=in.hbs:out", "-once"])
        .code(0);
    assert!(!old.exists(), "the stale temp file is still there");
    assert!(fresh.exists(), "a fresh temp file was removed");
}

// ----- data that is not what it claims -----

#[test]
fn a_data_file_with_trailing_content_or_an_array_is_a_configuration_error() {
    let d = Dir::new();
    d.write("in.hbs", "{{key \"a\"}}\n");
    d.write("trailing.json", "{\"kv\":{\"a\":\"1\"}} garbage");
    let run = d.run(&["-data=trailing.json", "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 15, "unexpected content after the JSON object");
    d.write("array.json", "[{\"kv\":{\"a\":\"1\"}}]");
    let run = d.run(&["-data=array.json", "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 15, "must hold one JSON object");
}

#[test]
fn kv_values_that_are_not_utf8_are_an_error_naming_the_key() {
    let c = crate::support::Consul::start();
    c.put_kv_bytes("bin/blob", b"ok\xff\xfe");
    c.put_kv("bin/text", "fine");
    let d = Dir::new();
    let addr = format!("-consul-addr={}", c.addr);
    d.write("in.hbs", "{{key \"bin/blob\"}}\n");
    let run = d.run(&[&addr, "-template=in.hbs:out", "-once"]);
    clean_failure(&run, 14, "the value of key \"bin/blob\" is not UTF-8 text");
    d.write("in.hbs", "{{key \"bin/text\"}}\n");
    d.run(&[&addr, "-template=in.hbs:out", "-once"]).code(0);
    assert_eq!(d.read("out"), "fine\n");
}

#[test]
fn fifos_as_template_data_file_or_destination_never_hang_and_pipes_still_work() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{key \"greeting\"}}\n");
    for name in ["t.fifo", "d.fifo", "out.fifo"] {
        let made = std::process::Command::new("mkfifo")
            .arg(d.join(name))
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
    let started = Instant::now();
    // No writer: a FIFO template reads as empty, a FIFO data file as no data (exit 15), and a
    // FIFO destination is compared as empty and replaced by the rendered file.
    d.run(&["-data=data.json", "-template=t.fifo:t.out", "-once"])
        .code(0);
    assert_eq!(d.read("t.out"), "");
    clean_failure(
        &d.run(&["-data=d.fifo", "-template=in.hbs:o", "-once"]),
        15,
        "must hold one JSON object",
    );
    d.run(&["-data=data.json", "-template=in.hbs:out.fifo", "-once"])
        .code(0);
    assert_eq!(d.read("out.fifo"), "hello\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A pipe with a writer (bash's process substitution) is read to its end.
    let run = crate::support::Run::of(
        std::process::Command::new("bash")
            .current_dir(d.path())
            .arg("-c")
            .arg(format!(
                "{} -data <(cat data.json) -template in.hbs -once -dry",
                crate::support::BIN
            )),
    );
    run.code(0);
    assert_eq!(run.stdout, "hello\n");
}
