//! Exec mode through the binary: the child starts after the first complete render, gets the
//! reload signal (or is restarted) on change, gets the kill signal on shutdown (SIGKILL after the
//! timeout), and its exit code becomes ours; as PID 1, orphans are reaped.

use crate::support::{wait_until, Consul, Dir};
use serde_json::json;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80}],
  "kv": {}}"#;

/// A child that records when it started (and whether the file was there) and every signal.
const CHILD: &str = r#"sh child.sh"#;
const CHILD_SH: &str = r#"
if [ -f out.conf ]; then echo "start rendered" >> events; else echo "start EMPTY" >> events; fi
trap 'echo HUP >> events' HUP
trap 'echo USR1 >> events' USR1
trap 'echo TERM >> events; exit 7' TERM
trap 'echo INT >> events; exit 8' INT
while true; do sleep 0.05; done
"#;

fn setup() -> (Consul, Dir) {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (service \"web\")}}{{ID}}:{{Port}} {{/each}}\n",
    );
    d.write("child.sh", CHILD_SH);
    (c, d)
}

fn events(d: &Dir) -> Vec<String> {
    std::fs::read_to_string(d.join("events"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn count(d: &Dir, what: &str) -> usize {
    events(d).iter().filter(|e| *e == what).count()
}

fn add_instance(c: &Consul) {
    c.register(json!({"Node": "n1", "Address": "10.0.0.1", "Service": {"ID": "web-2", "Service": "web", "Port": 81}}));
}

#[test]
fn the_child_starts_after_the_first_render_and_gets_the_reload_signal_once_per_change() {
    let (c, d) = setup();
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[
        &addr,
        "-template=in.hbs:out.conf",
        "-exec",
        CHILD,
        "-exec-reload-signal=SIGHUP",
        "-exec-kill-signal=SIGTERM",
    ]);
    wait_until("the child started", LIMIT, || {
        count(&d, "start rendered") == 1
    });
    assert_eq!(count(&d, "start EMPTY"), 0);
    add_instance(&c);
    wait_until("the reload signal", LIMIT, || count(&d, "HUP") == 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&d, "HUP"), 1, "exactly once: {:?}", events(&d));
    // Other signals are forwarded.
    bg.signal("-USR1");
    wait_until("USR1 forwarded", LIMIT, || count(&d, "USR1") == 1);
    // SIGTERM: the child gets the kill signal; our exit code is the child's.
    let started = Instant::now();
    bg.signal("-TERM");
    assert_eq!(bg.wait_exit(LIMIT), Some(7), "{}", bg.log());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(events(&d).contains(&"TERM".to_string()), "{:?}", events(&d));
}

#[test]
fn without_a_reload_signal_the_child_is_restarted() {
    let (c, d) = setup();
    let addr = format!("-consul-addr={}", c.addr);
    let _bg = d.spawn(&[&addr, "-template=in.hbs:out.conf", "-exec", CHILD]);
    wait_until("the child started", LIMIT, || {
        count(&d, "start rendered") == 1
    });
    add_instance(&c);
    // Stopped with the default kill signal (SIGINT), then started again.
    wait_until("the restart", LIMIT, || count(&d, "start rendered") == 2);
    assert_eq!(count(&d, "INT"), 1, "{:?}", events(&d));
}

#[test]
fn the_childs_own_exit_code_becomes_ours() {
    let (c, d) = setup();
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[
        &addr,
        "-template=in.hbs:out.conf",
        "-exec",
        "sh -c 'sleep 0.2; exit 3'",
    ]);
    assert_eq!(bg.wait_exit(LIMIT), Some(3), "{}", bg.log());
    // Once mode with -exec: render, run the child, exit with its code.
    let run = d.run(&[
        &addr,
        "-template=in.hbs:once.conf",
        "-once",
        "-exec",
        "sh -c 'test -f once.conf && exit 4'",
    ]);
    run.code(4);
}

#[test]
fn a_child_that_ignores_the_kill_signal_is_killed_after_the_timeout() {
    let (c, d) = setup();
    d.write(
        "stubborn.sh",
        "trap '' INT TERM\necho up > up\nwhile true; do sleep 0.05; done\n",
    );
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[
        &addr,
        "-template=in.hbs:out.conf",
        "-exec",
        "sh stubborn.sh",
        "-exec-kill-timeout=500ms",
    ]);
    wait_until("the child started", LIMIT, || d.exists("up"));
    let started = Instant::now();
    // Our kill signal (SIGINT by default) stops the child: its kill signal, then SIGKILL.
    bg.signal("-INT");
    assert_eq!(
        bg.wait_exit(LIMIT),
        Some(137),
        "SIGKILL is 128+9\n{}",
        bg.log()
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn the_child_environment_follows_the_exec_env_flags() {
    let (c, d) = setup();
    let addr = format!("-consul-addr={}", c.addr);
    d.run(&[
        &addr,
        "-template=in.hbs:out.conf",
        "-once",
        "-exec=sh -c 'env > child.env'",
        "-exec-env-pristine",
        "-exec-env-custom=GREETING=hi",
    ])
    .code(0);
    let env = d.read("child.env");
    assert!(env.contains("GREETING=hi"), "{env}");
    assert!(
        env.contains(&format!("CONSUL_HTTP_ADDR={}", c.addr)),
        "{env}"
    );
    assert!(!env.contains("HOME="), "pristine: {env}");
}

#[test]
fn as_pid_1_orphans_are_reaped_and_sigterm_still_stops_everything() {
    crate::support::require_pid_namespaces();
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", "{{#each (service \"web\")}}{{ID}}{{/each}}\n");
    // The child orphans three grandchildren (their parent shell exits at once), waits for them to
    // die, then counts zombies in the namespace: they are PID 1's to reap.
    d.write(
        "child.sh",
        r#"
for i in 1 2 3; do sh -c 'sleep 0.2 &' ; done
sleep 1
zombies=0
for s in /proc/[0-9]*/stat; do
  state=$(sed 's/.*) //' "$s" 2>/dev/null | cut -d' ' -f1)
  [ "$state" = Z ] && zombies=$((zombies + 1))
done
echo "pid1=$(cat /proc/1/comm)" > pid1
echo "$zombies" > zombies
trap 'exit 0' TERM
while true; do sleep 0.05; done
"#,
    );
    let mut bg = d.spawn_cmd(
        std::process::Command::new("unshare")
            .current_dir(d.path())
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(crate::support::BIN)
            .args([
                "-data=data.json",
                "-template=in.hbs:out.conf",
                "-exec=sh child.sh",
                "-exec-kill-signal=SIGTERM",
            ]),
    );
    wait_until("the zombie count", LIMIT, || {
        d.exists("zombies") && !d.read("zombies").is_empty()
    });
    assert_eq!(d.read("pid1").trim(), "pid1=consul-render");
    assert_eq!(
        d.read("zombies").trim(),
        "0",
        "orphans left as zombies\n{}",
        bg.log()
    );
    // SIGTERM to consul-render itself (PID 1 in the namespace): it stops the child and exits
    // with the child's code, and unshare with it.
    let pid = find_child_pid(bg.pid()).expect("consul-render under unshare");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()));
    assert_eq!(bg.wait_exit(LIMIT), Some(0), "{}", bg.log());
}

/// The pid of `parent`'s first child (unshare's consul-render), from /proc.
fn find_child_pid(parent: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Starts `n` requests to `port` in the background; their answers ("blue", "HTTP 502", "error …").
fn in_flight(port: u16, n: usize) -> Vec<std::thread::JoinHandle<String>> {
    (0..n)
        .map(|_| {
            std::thread::spawn(move || match crate::support::http_get(port) {
                Ok((200, body)) => body,
                Ok((code, _)) => format!("HTTP {code}"),
                Err(e) => format!("error {e}"),
            })
        })
        .collect()
}

#[test]
fn nginx_as_the_exec_child_reloads_on_change_and_stops_as_the_container_asks() {
    use crate::support::{http_get, nginx, repo, BlueGreen, Upstream};
    // Upstreams answer after 400 ms, so requests are in flight when nginx reloads or stops.
    let delay = Duration::from_millis(400);
    let (blue, green) = (
        Upstream::start_slow("blue-1", delay),
        Upstream::start_slow("green-1", delay),
    );
    let bgs = BlueGreen::new(&blue, &green);
    let (c, d, live_port) = (&bgs.consul, &bgs.dir, bgs.live_port);
    let conf = d.join("nginx.conf");
    let start = || {
        d.spawn_cmd(
            bgs.env(&mut d.cmd())
                .arg(format!("-consul-addr={}", c.addr))
                .arg(format!(
                    "-template={}:{}",
                    repo().join("templates/nginx-blue-green.hbs").display(),
                    conf.display()
                ))
                .arg(format!("-check={} -t -c {{{{path}}}}", nginx().display()))
                .arg(format!(
                    "-exec={} -c {} -g 'daemon off;'",
                    nginx().display(),
                    conf.display()
                ))
                .arg("-exec-reload-signal=SIGHUP")
                .arg("-log-level=info"),
        )
    };
    let answer = |port| match http_get(port) {
        Ok((200, body)) => body,
        Ok((code, _)) => format!("HTTP {code}"),
        Err(e) => format!("error {e}"),
    };

    let mut bg = start();
    wait_until("nginx serving blue", LIMIT, || {
        answer(live_port) == "blue-1"
    });
    // A service change: nginx reloads (SIGHUP) while 5 requests are in flight; new traffic
    // reaches the new upstream and the in-flight requests complete.
    let blue2 = Upstream::start_slow("blue-2", delay);
    let requests = in_flight(live_port, 5);
    std::thread::sleep(Duration::from_millis(100));
    c.register_container(
        "docker-host-2",
        "127.0.0.1",
        "blue",
        "bg_blue_2",
        blue2.port,
        "passing",
    );
    let reload_answers: Vec<String> = requests.into_iter().map(|h| h.join().unwrap()).collect();
    wait_until("traffic on the new instance", LIMIT, || {
        answer(live_port) == "blue-2"
    });
    assert!(
        bg.log()
            .contains("sending the exec child its reload signal"),
        "{}",
        bg.log()
    );
    // The image's STOPSIGNAL SIGQUIT: docker stop sends it to consul-render, which passes it to
    // nginx (its graceful stop); in-flight requests finish; consul-render exits with nginx's code.
    let requests = in_flight(live_port, 5);
    std::thread::sleep(Duration::from_millis(100));
    bg.signal("-QUIT");
    assert_eq!(bg.wait_exit(LIMIT), Some(0), "{}", bg.log());
    let graceful_answers: Vec<String> = requests.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        http_get(live_port).is_err(),
        "nginx stopped with consul-render"
    );

    // Plain SIGTERM reaches nginx as SIGTERM (its fast stop), as consul-template forwards it.
    let mut bg = start();
    wait_until("nginx serving again", LIMIT, || {
        answer(live_port).starts_with("blue")
    });
    let requests = in_flight(live_port, 5);
    std::thread::sleep(Duration::from_millis(100));
    bg.signal("-TERM");
    assert_eq!(bg.wait_exit(LIMIT), Some(0), "{}", bg.log());
    let fast_answers: Vec<String> = requests.into_iter().map(|h| h.join().unwrap()).collect();

    eprintln!("in flight during reload: {reload_answers:?}");
    eprintln!("in flight during SIGQUIT (passed to nginx): {graceful_answers:?}");
    eprintln!("in flight during SIGTERM (passed to nginx): {fast_answers:?}");
    let ok = |a: &Vec<String>| a.iter().filter(|x| x.starts_with("blue")).count();
    assert_eq!(
        ok(&reload_answers),
        5,
        "a reload drops no in-flight request: {reload_answers:?}"
    );
    assert_eq!(
        ok(&graceful_answers),
        5,
        "a graceful stop drops no in-flight request: {graceful_answers:?}"
    );
}

#[test]
fn every_other_signal_goes_to_the_child_and_none_stops_or_kills_consul_render() {
    let (c, d) = setup();
    d.write(
        "sigchild.sh",
        "for s in TERM TSTP TTIN TTOU ALRM USR2 WINCH QUIT; do trap \"echo $s >> events\" $s; done\n\
         echo up > up\nwhile true; do sleep 0.05; done\n",
    );
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[
        &addr,
        "-template=in.hbs:out.conf",
        "-exec",
        "sh sigchild.sh",
        "-exec-kill-timeout=500ms",
    ]);
    wait_until("the child started", LIMIT, || d.exists("up"));
    for sig in [
        "TERM", "TSTP", "TTIN", "TTOU", "ALRM", "USR2", "WINCH", "QUIT",
    ] {
        bg.signal(&format!("-{sig}"));
        wait_until(&format!("the child got {sig}"), LIMIT, || {
            events(&d).contains(&sig.to_string())
        });
        still_running(&mut bg, sig);
    }
    // Still watching: a change renders (and, with no reload signal, restarts the child).
    add_instance(&c);
    wait_until("the new instance rendered", LIMIT, || {
        d.read("out.conf").contains("web-2")
    });
    bg.signal("-INT");
    assert!(bg.wait_exit(LIMIT).is_some(), "{}", bg.log());
}

#[test]
fn without_a_child_job_control_and_alarm_signals_are_ignored_and_sigterm_stops() {
    let (c, d) = setup();
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg = d.spawn(&[&addr, "-template=in.hbs:out.conf"]);
    wait_until("the first render", LIMIT, || d.exists("out.conf"));
    for sig in [
        "TSTP", "TTIN", "TTOU", "ALRM", "USR1", "USR2", "QUIT", "WINCH",
    ] {
        bg.signal(&format!("-{sig}"));
        std::thread::sleep(Duration::from_millis(50));
        still_running(&mut bg, sig);
    }
    add_instance(&c);
    wait_until("a change still renders", LIMIT, || {
        d.read("out.conf").contains("web-2")
    });
    bg.signal("-TERM");
    assert_eq!(bg.wait_exit(LIMIT), Some(0), "{}", bg.log());
}

#[test]
fn exec_without_templates_is_a_plain_supervisor_and_exec_flags_need_exec() {
    let d = Dir::new();
    d.run(&["-exec", "sh -c 'exit 5'"]).code(5);
    d.run(&["-exec", "sh -c 'exit 6'", "-once"]).code(6);
    d.write("data.json", DATA);
    d.write("in.hbs", "x\n");
    d.run(&[
        "-data=data.json",
        "-template=in.hbs:out",
        "-exec-kill-signal=SIGTERM",
        "-once",
    ])
    .code(0)
    .stderr_has("-exec-* flags without -exec (or an exec block) are ignored");
}

/// Asserts `sig` neither ended nor stopped consul-render.
#[track_caller]
fn still_running(bg: &mut crate::support::Background, sig: &str) {
    assert_eq!(
        bg.wait_exit(Duration::from_millis(50)),
        None,
        "{sig}\n{}",
        bg.log()
    );
    assert_ne!(state(bg.pid()), Some('T'), "stopped by {sig}");
}

/// A process's state letter from /proc (`T` = stopped).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}
