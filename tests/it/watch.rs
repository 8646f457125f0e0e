//! Watch mode through the binary, against the Consul simulator (or `CONSUL_HTTP_ADDR`): changes
//! re-render and run the command once, unrelated ones do nothing, quiescence, outages, index
//! resets, file changes, signals, and the connection cap.

use crate::support::{wait_until, Consul, Dir};
use serde_json::json;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}, {"Node": "n2", "Address": "10.0.0.2"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80},
               {"Node": "n2", "ID": "db-1", "Service": "db", "Port": 5432}],
  "kv": {"greeting": "hello"}}"#;

const TEMPLATE: &str = "{{key \"greeting\"}}{{#each (service \"web\")}} {{ID}}:{{Port}}{{/each}}\n";

fn start(c: &Consul, d: &Dir, extra: &[&str]) -> crate::support::Background {
    d.write("in.hbs", TEMPLATE);
    let addr = format!("-consul-addr={}", c.addr);
    let mut args = vec![
        addr.as_str(),
        "-template=in.hbs:out.conf:echo run >> runs",
        "-log-level=info",
    ];
    args.extend(extra);
    let bg = d.spawn(&args);
    wait_until("the first render", LIMIT, || {
        d.exists("out.conf") && d.lines("runs") == 1
    });
    bg
}

fn settle() {
    // Long enough for a (wrong) extra render to show up; the assertions after it are exact.
    std::thread::sleep(Duration::from_millis(600));
}

#[test]
fn catalog_and_kv_changes_rewrite_and_run_the_command_once_each() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let bg = start(&c, &d, &[]);
    assert_eq!(d.read("out.conf"), "hello web-1:80\n");

    c.register(json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": "web-2", "Service": "web", "Port": 81},
        "Check": {"CheckID": "service:web-2", "Name": "c", "Status": "passing", "ServiceID": "web-2"}}));
    wait_until("web-2 in the file", LIMIT, || {
        d.read("out.conf") == "hello web-1:80 web-2:81\n"
    });
    settle();
    assert_eq!(d.lines("runs"), 2, "one command per change\n{}", bg.log());

    c.deregister(json!({"Node": "n1", "ServiceID": "web-1"}));
    wait_until("web-1 gone", LIMIT, || {
        d.read("out.conf") == "hello web-2:81\n"
    });

    c.register(json!({"Node": "n2", "Address": "10.0.0.2",
        "Check": {"CheckID": "service:web-2", "Name": "c", "Status": "critical", "ServiceID": "web-2"}}));
    wait_until("web-2 critical leaves", LIMIT, || {
        d.read("out.conf") == "hello\n"
    });

    c.put_kv("greeting", "bye");
    wait_until("the KV change", LIMIT, || d.read("out.conf") == "bye\n");
    settle();
    assert_eq!(d.lines("runs"), 5, "{}", bg.log());

    // An unrelated service changes: nothing written, nothing run.
    c.register(json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": "db-2", "Service": "db", "Port": 5433}}));
    c.put_kv("unrelated", "x");
    settle();
    assert_eq!(d.lines("runs"), 5, "{}", bg.log());
    assert_eq!(d.read("out.conf"), "bye\n");
}

#[test]
fn unrelated_writes_do_not_wake_the_watcher() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let _bg = start(&c, &d, &[]);
    let Some(sim) = c.sim() else { return };
    settle();
    sim.reset_counters();
    for i in 0..20 {
        c.register(json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": format!("db-{i}"), "Service": "db", "Port": 6000 + i}}));
    }
    settle();
    let (_, per_path) = sim.requests();
    assert_eq!(
        per_path.get("/v1/health/service/web"),
        None,
        "web's blocking query stayed asleep: {per_path:?}"
    );
}

#[test]
fn a_missing_key_waits_then_renders() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    d.write("in.hbs", "{{key \"later\"}}\n");
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-log-level=info",
    ]);
    wait_until("the waiting log line", LIMIT, || {
        bg.log().contains("kv.block(later)")
    });
    assert!(!d.exists("out.conf"));
    c.put_kv("later", "now");
    wait_until("the key", LIMIT, || {
        d.exists("out.conf") && d.read("out.conf") == "now\n"
    });
}

#[test]
fn the_live_file_rewritten_in_place_or_replaced_by_rename_re_renders() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("live", "blue\n");
    d.write("in.hbs", "live={{trimSpace (file \"live\")}}\n");
    let bg = d.spawn(&[
        "-data=data.json",
        "-template=in.hbs:out.conf:echo run >> runs",
    ]);
    wait_until("the first render", LIMIT, || {
        d.exists("out.conf") && d.read("out.conf") == "live=blue\n"
    });
    std::fs::write(d.join("live"), "green\n").unwrap();
    wait_until("the in-place rewrite", LIMIT, || {
        d.read("out.conf") == "live=green\n"
    });
    d.write("live.new", "blue\n");
    std::fs::rename(d.join("live.new"), d.join("live")).unwrap();
    wait_until("the rename", LIMIT, || d.read("out.conf") == "live=blue\n");
    // Rewriting the same content changes nothing.
    std::fs::write(d.join("live"), "blue\n").unwrap();
    settle();
    assert_eq!(d.lines("runs"), 3, "{}", bg.log());
}

#[test]
fn the_data_file_is_watched() {
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", TEMPLATE);
    let _bg = d.spawn(&["-data=data.json", "-template=in.hbs:out.conf"]);
    wait_until("the first render", LIMIT, || {
        d.exists("out.conf") && d.read("out.conf") == "hello web-1:80\n"
    });
    d.write("data.json", &DATA.replace("\"Port\": 80", "\"Port\": 8080"));
    wait_until("the data change", LIMIT, || {
        d.read("out.conf") == "hello web-1:8080\n"
    });
    // A broken edit keeps the last good data; fixing it is picked up.
    d.write("data.json", "{ not json");
    settle();
    assert_eq!(d.read("out.conf"), "hello web-1:8080\n");
    d.write("data.json", &DATA.replace("hello", "fixed"));
    wait_until("the fixed data", LIMIT, || {
        d.read("out.conf") == "fixed web-1:80\n"
    });
}

#[test]
fn fifty_rapid_changes_inside_the_wait_give_one_write() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let bg = start(&c, &d, &["-wait=200ms:1s"]);
    let started = Instant::now();
    for i in 0..50 {
        c.put_kv("greeting", &format!("v{i}"));
    }
    let burst = started.elapsed();
    wait_until("the last value", LIMIT, || {
        d.read("out.conf") == "v49 web-1:80\n"
    });
    settle();
    if burst < Duration::from_millis(800) {
        assert_eq!(
            d.lines("runs"),
            2,
            "one write for the whole burst ({burst:?})\n{}",
            bg.log()
        );
    } else {
        // A machine too slow to fit 50 writes in `max` may see one forced render mid-burst.
        assert!(d.lines("runs") <= 3, "{}", bg.log());
    }
}

#[test]
fn an_outage_writes_nothing_and_one_render_catches_up() {
    let Some((c, addr)) = Consul::restartable(DATA) else {
        return;
    };
    let d = Dir::new();
    // One retry attempt only: after the first render a watcher must never give up anyway.
    let mut bg = start(
        &c,
        &d,
        &[
            "-consul-retry-attempts=1",
            "-consul-retry-backoff=100ms",
            "-consul-retry-max-backoff=500ms",
        ],
    );
    // Down for 3 s: the file stays, no command runs, failures are logged with the next retry.
    drop(c);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.read("out.conf"), "hello web-1:80\n");
    assert_eq!(d.lines("runs"), 1);
    assert!(bg.log().contains("retrying in"), "{}", bg.log());
    assert_eq!(
        bg.wait_exit(Duration::ZERO),
        None,
        "still running after the retry attempts\n{}",
        bg.log()
    );
    // Back on the same port, with one more instance: one catching-up render.
    let more = DATA.replace(
        r#"{"Node": "n2", "ID": "db-1""#,
        r#"{"Node": "n2", "ID": "web-2", "Service": "web", "Port": 81}, {"Node": "n2", "ID": "db-1""#,
    );
    let _sim = Consul::restart_at(&addr, &more);
    wait_until("the catch-up render", LIMIT, || {
        d.read("out.conf") == "hello web-1:80 web-2:81\n"
    });
    settle();
    assert_eq!(d.lines("runs"), 2, "{}", bg.log());
}

#[test]
fn an_index_reset_is_recovered() {
    let c = Consul::start();
    c.load(DATA);
    let Some(sim) = c.sim() else { return };
    let d = Dir::new();
    let _bg = start(&c, &d, &[]);
    sim.reset_index();
    settle();
    c.register(json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"ID": "web-2", "Service": "web", "Port": 81}}));
    wait_until("the change after the reset", LIMIT, || {
        d.read("out.conf") == "hello web-1:80 web-2:81\n"
    });
}

#[test]
fn sigterm_stops_cleanly_within_a_second() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let mut bg = start(&c, &d, &[]);
    let started = Instant::now();
    bg.signal("-TERM");
    assert_eq!(
        bg.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        bg.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let leftovers = crate::support::temp_files_left(d.path());
    assert_eq!(leftovers, 0);
    // SIGINT, the default kill signal, too.
    let mut bg = start(&c, &Dir::new(), &[]);
    bg.signal("-INT");
    assert_eq!(bg.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn sighup_re_reads_the_template() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let bg = start(&c, &d, &[]);
    d.write("in.hbs", "v2 {{key \"greeting\"}}\n");
    bg.signal("-HUP");
    wait_until("the new template's output", LIMIT, || {
        d.read("out.conf") == "v2 hello\n"
    });
    assert!(bg.log().contains("reloaded"), "{}", bg.log());
}

/// Watchers keep only the instance fields the templates read; a reload whose template reads more
/// gets them (fetched again), never an empty field from the narrower values.
#[test]
fn a_reload_that_reads_more_fields_fetches_them() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let bg = start(&c, &d, &[]);
    d.write(
        "in.hbs",
        "{{#each (service \"web\")}}{{ID}} {{Address}} {{Node}}{{/each}}\n",
    );
    bg.signal("-HUP");
    wait_until("the new template's output", LIMIT, || {
        d.read("out.conf") == "web-1 10.0.0.1 n1\n"
    });
    assert!(bg.log().contains("fetching again"), "{}", bg.log());
    // The output went from the old template's straight to the new one's, never a partial line.
    assert_eq!(d.lines("runs"), 2, "{}", bg.log());
}

#[test]
fn a_template_error_is_logged_and_watching_goes_on_with_template_error_fatal_false() {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    let bg = start(&c, &d, &["-template-error-fatal=false"]);
    c.put_kv("greeting", "x");
    wait_until("x", LIMIT, || d.read("out.conf") == "x web-1:80\n");
    d.write("in.hbs", "{{add 1 (key \"greeting\")}}\n");
    bg.signal("-HUP");
    wait_until("the error in the log", LIMIT, || {
        bg.log().contains("add: argument 2 must be a number")
    });
    d.write("in.hbs", TEMPLATE);
    bg.signal("-HUP");
    c.put_kv("greeting", "y");
    wait_until("rendering again", LIMIT, || {
        d.read("out.conf") == "y web-1:80\n"
    });
    // By default (consul-template's error_fatal = true) a template error ends watch mode
    // with 14; so does -template-error-fatal, over a template's error_fatal = false.
    let d2 = Dir::new();
    d2.write("in.hbs", "{{add 1 (key \"greeting\")}}\n");
    let addr = format!("-consul-addr={}", c.addr);
    let mut bg2 = d2.spawn(&[&addr, "-template=in.hbs:out"]);
    assert_eq!(bg2.wait_exit(LIMIT), Some(14), "{}", bg2.log());
    assert!(
        bg2.log().contains("add: argument 2 must be a number"),
        "{}",
        bg2.log()
    );
    d2.write(
        "c.hcl",
        "template {\n  source = \"in.hbs\"\n  destination = \"out\"\n  error_fatal = false\n}\n",
    );
    let mut bg3 = d2.spawn(&[&addr, "-config=c.hcl", "-template-error-fatal"]);
    assert_eq!(bg3.wait_exit(LIMIT), Some(14), "{}", bg3.log());
}

#[test]
fn a_thousand_services_under_a_cap_of_128_connections() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    c.register_numbered(1000);
    sim.reset_counters();
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}}\n{{/each}}{{/each}}",
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-max-connections=128",
    ]);
    let started = Instant::now();
    while d.lines("out.conf") != 1000 {
        if started.elapsed() > Duration::from_secs(60) {
            let log = bg.log();
            let problems: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(20)
                .collect();
            let (total, per_path) = sim.requests();
            let asked = per_path
                .keys()
                .filter(|p| p.starts_with("/v1/health/service/"))
                .count();
            panic!(
                "not rendered after 60 s: {total} requests, {asked} services asked, {} open now, {} at most\n{}",
                sim.in_flight(),
                sim.max_in_flight(),
                problems.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    settle();
    let max = sim.max_in_flight();
    assert!(max <= 128, "{max} requests were open at once");
    // 1,001 dependencies for 128 connections: the services follow the change detector, so what
    // stays open is its broad queries (health, catalog, node list), one query per node (11 with
    // the agent's) and the template's own `services`: 15; a blocking query the client gave up
    // for a first fetch (preempted) may still count at the agent until its wait ends.
    let open = sim.in_flight();
    assert!(open <= 20, "{open} requests held open while idle");
    // Every connection holds a share of the budget, idle or not.
    assert_eq!(
        sim.refused_connections(),
        0,
        "Consul's limit of {} connections refused some (peak {})",
        consul_sim::DEFAULT_CONNECTION_LIMIT,
        sim.peak_connections()
    );
    let peak = sim.peak_connections();
    assert!(peak <= 128, "{peak} connections open at once");
}

#[test]
fn consul_down_before_the_first_render_ends_after_the_retry_attempts() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let d = Dir::new();
    d.write("in.hbs", TEMPLATE);
    let mut bg = d.spawn(&[
        &format!("-consul-addr={addr}"),
        "-template=in.hbs:out.conf",
        "-consul-retry-attempts=2",
        "-consul-retry-backoff=20ms",
    ]);
    assert_eq!(bg.wait_exit(LIMIT), Some(14), "{}", bg.log());
    assert!(
        bg.log().contains("gave up after 3 attempts"),
        "{}",
        bg.log()
    );
    assert!(!d.exists("out.conf"));
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_in_order() {
    use std::os::unix::net::UnixDatagram;
    let d = Dir::new();
    d.write("data.json", DATA);
    d.write("in.hbs", TEMPLATE);
    let socket = d.join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut bg = d.spawn_cmd(
        d.cmd()
            .env("NOTIFY_SOCKET", &socket)
            .args(["-data=data.json", "-template=in.hbs:out.conf:env > cmd.env"]),
    );
    let next = || {
        let mut buf = [0u8; 1024];
        let n = listener.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=all 1 templates rendered"),
        "{ready}"
    );
    assert!(d.exists("out.conf"), "READY=1 only after the render");
    wait_until("the command", LIMIT, || d.exists("cmd.env"));
    assert!(
        !d.read("cmd.env").contains("NOTIFY_SOCKET"),
        "commands must not see NOTIFY_SOCKET"
    );
    bg.signal("-HUP");
    let reloading = next();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(next().starts_with("READY=1\nSTATUS=reloaded"));
    bg.signal("-TERM");
    assert!(next().starts_with("STOPPING=1"));
    assert_eq!(bg.wait_exit(LIMIT), Some(0), "{}", bg.log());
}

/// A dependency whose first fetch failed keeps its place ahead of blocking queries: with one
/// connection held by another dependency's 60 s blocking query, its retry must not wait it out.
#[test]
fn a_retried_first_fetch_goes_ahead_of_blocking_queries() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    c.put_kv("a", "A");
    c.put_kv("b", "B");
    sim.fault(
        consul_sim::Fault::Status(500, "No cluster leader".into()),
        1,
        Some("/v1/kv/b"),
    );
    let d = Dir::new();
    d.write("in.hbs", "{{key \"a\"}} {{key \"b\"}}");
    let started = Instant::now();
    let _bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-max-connections=1",
        "-block-query-wait=60s",
        "-consul-retry-backoff=50ms",
    ]);
    // The retry comes 50 ms after the failure; behind the blocking query it would come ~60 s later.
    wait_until("both keys rendered", LIMIT, || {
        d.exists("out.conf") && d.read("out.conf") == "A B"
    });
    assert!(started.elapsed() < LIMIT);
}

/// More dependencies than connections (2,001 here for 64): services and keys follow the change
/// detector, and every kind of change reaches the file within seconds though none of them holds a
/// blocking query of its own (each would otherwise wait up to the 60 s blocking wait for a
/// connection). The simulator, limited to 100 connections as a Consul agent can be, refuses none.
#[test]
fn thousands_of_dependencies_beyond_the_connection_cap_see_every_change() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    sim.limit_connections(100);
    c.register_numbered(1000);
    for i in 0..500 {
        c.put_kv(&format!("cfg/svc-{i}"), "v0");
    }
    sim.reset_counters();
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}} {{Port}} {{#each Tags}}{{this}},{{/each}} \
         {{keyOrDefault (printf \"cfg/%s\" Name) \"-\"}}\n{{/each}}{{/each}}",
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-max-connections=64",
    ]);
    let limit = Duration::from_secs(60);
    wait_until("1000 services rendered", limit, || {
        d.lines("out.conf") == 1000
    });
    let has = |line: &str| d.read("out.conf").lines().any(|l| l.trim_end() == line);
    let gone = |id: &str| {
        !d.read("out.conf")
            .lines()
            .any(|l| l.starts_with(&format!("{id} ")))
    };
    let step = |what: &str, done: &dyn Fn() -> bool| {
        wait_until(what, LIMIT, done);
    };
    // An instance registered without a check moves only the catalog's index.
    c.register(json!({"Node": "node-1", "Address": "10.0.0.1",
        "Service": {"ID": "svc-7b", "Service": "svc-7", "Port": 7777}}));
    step("a new instance without a check", &|| has("svc-7b 7777  v0"));
    c.register(json!({"Node": "node-9", "Address": "10.0.0.9",
        "Check": {"CheckID": "service:svc-9", "Name": "c", "Status": "critical", "ServiceID": "svc-9"}}));
    step("a check turned critical", &|| gone("svc-9"));
    c.deregister(json!({"Node": "node-1", "ServiceID": "svc-11"}));
    step("a deregistered instance", &|| gone("svc-11"));
    c.register(json!({"Node": "node-3", "Address": "10.0.0.3",
        "Service": {"ID": "svc-13", "Service": "svc-13", "Port": 1013, "Tags": ["blue"]}}));
    step("a tag change", &|| has("svc-13 1013 blue, v0"));
    c.put_kv("cfg/svc-15", "v1");
    step("a KV value", &|| has("svc-15 1015  v1"));
    c.put_kv("cfg/svc-600", "new");
    step("a KV key created", &|| has("svc-600 1600  new"));
    assert_eq!(
        sim.refused_connections(),
        0,
        "the agent's limit of 100 connections refused some (peak {})\n{}",
        sim.peak_connections(),
        bg.log()
    );
    let peak = sim.peak_connections();
    assert!(
        peak <= 64,
        "{peak} connections open at once for a cap of 64"
    );
}

/// Changes no query names (instances registered without a check), one right after another as a
/// deploy makes them, with the services on ten nodes: with connections to spare, a blocking query
/// on each node names the service (a few requests a change, not a sweep of all 300); every one
/// reaches the file.
#[test]
fn unnamed_changes_are_named_by_a_query_on_each_node() {
    let Some(requests) = unnamed_changes(false, 64) else {
        return;
    };
    // The node's query and the catalog's asking again, the service's fetch: 3 a change (the
    // node queries' first answers, and the refresh of every service they end with, come
    // before the changes); a look at every node took about 30.
    assert!(
        requests < 12 * 6,
        "{requests} requests for 12 changes over 11 nodes"
    );
}

/// The same with few connections (16: node queries would take a quarter of them at most): a
/// look at every node names the service (a dozen requests a change, not a sweep of all 300).
#[test]
fn unnamed_changes_one_after_another_each_reach_the_file() {
    let Some(requests) = unnamed_changes(false, 16) else {
        return;
    };
    // About 30 a change here (11 nodes, the node list, the service, the broad queries asking
    // again); sweeping instead took about 65.
    assert!(
        requests < 12 * 40,
        "{requests} requests for 12 changes over 11 nodes"
    );
}

/// The same with each service on a node of its own: looking at every node would cost more than
/// refreshing every service, so each change starts a sweep (begun again for the next).
#[test]
fn unnamed_changes_on_as_many_nodes_as_services_sweep() {
    let Some(requests) = unnamed_changes(true, 16) else {
        return;
    };
    // A sweep costs 80 to 100 requests a change here (fewer the faster the render finds the
    // change: 982 seen); without one a change costs a dozen, a look at every node over 300.
    assert!(
        (12 * 40..12 * 300).contains(&requests),
        "{requests} requests for 12 changes: no sweeps, or every node looked at?"
    );
}

/// A node's own change (its address) moves neither the catalog's services index nor the health
/// state's: the node list's blocking query sees it, and the services on that node are fetched
/// again.
#[test]
fn a_node_address_change_reaches_services_that_follow() {
    node_changes(16);
}

/// The same with a blocking query on each node (connections to spare); and a node that comes,
/// and one that goes, with their services.
#[test]
fn node_changes_reach_the_file_through_a_query_on_each_node() {
    node_changes(64);
}

fn node_changes(cap: usize) {
    let c = Consul::start();
    let Some(_sim) = c.sim() else { return };
    c.register_numbered(100);
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}} {{Address}}\n{{/each}}{{/each}}",
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        &format!("-max-connections={cap}"),
    ]);
    wait_until("100 services rendered", LIMIT, || {
        d.lines("out.conf") == 100
    });
    let has = |line: &str| d.read("out.conf").lines().any(|l| l == line);
    // Past the broad queries' first answers (each refreshes every follower once).
    std::thread::sleep(Duration::from_secs(1));
    c.register(json!({"Node": "node-3", "Address": "10.9.9.3"}));
    wait_until("node-3's services at its new address", LIMIT, || {
        has("svc-3 10.9.9.3") && has("svc-93 10.9.9.3")
    });
    assert!(has("svc-4 10.0.0.4"), "{}", bg.log());
    // A new node with an instance of a followed service, without a check.
    c.register(json!({"Node": "node-new", "Address": "10.7.7.7",
        "Service": {"ID": "svc-5b", "Service": "svc-5"}}));
    wait_until("the new node's instance", LIMIT, || has("svc-5b 10.7.7.7"));
    // A node removed with its services.
    c.deregister(json!({"Node": "node-7"}));
    // Its ten services go as each one's answer comes: a render may come between two of them.
    wait_until("node-7's services gone", LIMIT, || {
        !has("svc-7 10.0.0.7") && !has("svc-97 10.0.0.7") && d.lines("out.conf") == 91
    });
    assert!(has("svc-5b 10.7.7.7"), "{}", bg.log());
}

/// 300 services, 12 unnamed changes each waited for; the requests the simulator saw meanwhile.
fn unnamed_changes(node_each: bool, cap: usize) -> Option<u64> {
    let c = Consul::start();
    let sim = c.sim()?;
    let node = |i: usize| {
        if node_each {
            format!("node-svc-{i}")
        } else {
            format!("node-{}", i % 10)
        }
    };
    // A node's address is the same in every registration on it.
    let address = |i: usize| {
        if node_each {
            format!("10.0.{}.{}", i / 200, i % 200)
        } else {
            format!("10.0.0.{}", i % 10)
        }
    };
    for i in 0..300 {
        c.register(json!({"Node": node(i), "Address": address(i),
            "Service": {"ID": format!("svc-{i}"), "Service": format!("svc-{i}"), "Port": 1000 + i}}));
    }
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}} {{Port}}\n{{/each}}{{/each}}",
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        &format!("-max-connections={cap}"),
    ]);
    wait_until("300 services rendered", LIMIT, || {
        d.lines("out.conf") == 300
    });
    // Past the broad queries' first answers and the refreshes they bring: no request for 300 ms.
    let mut before = sim.requests().0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(300));
        let now = sim.requests().0;
        if now == before {
            break;
        }
        before = now;
    }
    for k in 0..12 {
        // Two instances of each service in turn, the second right after the first was seen.
        let svc = 20 * (k / 2);
        c.register(json!({"Node": node(svc), "Address": address(svc),
            "Service": {"ID": format!("extra-{k}"), "Service": format!("svc-{svc}"), "Port": 9000 + k}}));
        let want = format!("extra-{k} {}", 9000 + k);
        wait_until(&want, LIMIT, || {
            d.read("out.conf").lines().any(|l| l == want)
        });
    }
    let requests = sim.requests().0 - before;
    drop(bg);
    Some(requests)
}

/// A run that grows past the connection cap switches its services from blocking queries to
/// following the change detector, and back when it shrinks; changes keep reaching the file.
#[test]
fn growing_past_the_cap_and_back_keeps_every_change() {
    let c = Consul::start();
    let Some(_) = c.sim() else { return };
    let register = |i: usize, port: usize| {
        c.register(json!({"Node": "node-0", "Address": "10.0.0.1",
            "Service": {"ID": format!("svc-{i}"), "Service": format!("svc-{i}"), "Port": port}}));
    };
    for i in 0..10 {
        register(i, 1000 + i);
    }
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}} {{Port}}\n{{/each}}{{/each}}",
    );
    let _bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-max-connections=16",
    ]);
    let has = |line: &str| d.read("out.conf").lines().any(|l| l == line);
    wait_until("10 services", LIMIT, || {
        d.exists("out.conf") && d.lines("out.conf") == 10
    });
    register(0, 2000);
    wait_until("a change under the cap", LIMIT, || has("svc-0 2000"));
    // 40 more: 51 dependencies for 16 connections.
    for i in 10..50 {
        register(i, 1000 + i);
    }
    wait_until("50 services", LIMIT, || d.lines("out.conf") == 50);
    register(0, 3000);
    wait_until("a change past the cap", LIMIT, || has("svc-0 3000"));
    register(49, 3049);
    wait_until("a new service's change", LIMIT, || has("svc-49 3049"));
    for i in 10..50 {
        c.deregister(json!({"Node": "node-0", "ServiceID": format!("svc-{i}")}));
    }
    wait_until("back to 10 services", LIMIT, || d.lines("out.conf") == 10);
    register(0, 4000);
    wait_until("a change under the cap again", LIMIT, || has("svc-0 4000"));
}
