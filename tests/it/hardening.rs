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
