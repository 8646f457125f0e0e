//! Watch mode at scale: the Docker Flow example's template (examples/docker-flow) over 2,500
//! applications deployed blue-green (5,000 services, 10,000 instances, 5,000 keys) against the
//! simulator, which refuses connections past Consul's per-client limit (200).
//!
//! Reports the first complete render, peak connections, change-to-file latency per kind of change
//! (among them a deploy's second instance of a service whose first just came, both unnamed)
//! (p50/p99 over `SCALE_CHANGES` each, default 50; a change not seen within 10 s counts as missed), Consul requests
//! per change, requests at start-up and while idle (once the start-up refreshes are done),
//! requests in the first second after a simulator restart, and the watcher's peak RSS.
//!
//! Run with `cargo bench --bench scale`. `CONSUL_RENDER_BIN=path` measures another build (the
//! per-dependency design before change detection, for the side-by-side table in the README).

// The integration tests' harness; a bench uses only part of it.
#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{repo, Consul, Dir};

const APPS: usize = 2500;
/// Changes of each kind (`SCALE_CHANGES`, default 50).
fn changes() -> usize {
    std::env::var("SCALE_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Waits until `done` holds for the file; the time it took, or None after `SEEN_WITHIN`.
fn seen(d: &Dir, done: &dyn Fn(&str) -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < SEEN_WITHIN {
        if done(&std::fs::read_to_string(d.join("nginx.conf")).unwrap_or_default()) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    None
}

/// Makes change `k` of one kind; the predicate says when the file shows it.
type Change<'a> = dyn Fn(usize) -> Box<dyn Fn(&str) -> bool> + 'a;

fn report(kind: &str, mut latencies: Vec<Duration>, missed: usize, requests: u64) {
    latencies.sort();
    let ms =
        |d: Option<&Duration>| d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3));
    let n = latencies.len();
    println!(
        "{kind}: p50 {}, p99 {}, missed {missed} of {}; {:.1} Consul requests per change",
        ms(latencies.get(n / 2)),
        ms(latencies.get((n * 99 / 100).min(n.saturating_sub(1)))),
        changes(),
        requests as f64 / changes() as f64
    );
}

fn main() {
    let data = support::docker_flow_data(APPS);
    let (c, addr) = Consul::restartable(&data).expect("the simulator");
    let sim = c.sim().expect("simulator");
    let d = Dir::new();
    let started = Instant::now();
    let bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        &format!(
            "-template={}:nginx.conf",
            repo().join("examples/docker-flow/proxy.hbs").display()
        ),
    ]);
    let complete = |t: &str| t.matches("upstream app").count() == APPS;
    let Some(()) = (|| {
        while started.elapsed() < Duration::from_secs(300) {
            if complete(&std::fs::read_to_string(d.join("nginx.conf")).unwrap_or_default()) {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    })() else {
        println!("no complete render within 300 s\n{}", bg.log());
        return;
    };
    println!(
        "first complete render: {:.0} ms; {} connections at most so far, {} refused",
        started.elapsed().as_secs_f64() * 1e3,
        sim.peak_connections(),
        sim.refused_connections()
    );
    // The start-up refreshes (each broad query's first answer refreshes what was fetched
    // before it) may still run: idle begins once no request came for 2 s (at most 60 s).
    let (settling, mut count, mut quiet) = (Instant::now(), sim.requests().0, Instant::now());
    while settling.elapsed() < Duration::from_secs(60) && quiet.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let now = sim.requests().0;
        if now != count {
            (count, quiet) = (now, Instant::now());
        }
    }
    println!(
        "start-up: {count} requests, quiet {:.1} s after the first complete render",
        (settling.elapsed() - quiet.elapsed()).as_secs_f64()
    );
    sim.reset_counters();
    std::thread::sleep(Duration::from_secs(10));
    println!("requests in 10 s idle: {}", sim.requests().0);

    // Application a is blue when a is even (gen-data.py); its instances are on hosts (a+i)%10.
    let host = |a: usize, i: usize| (a + i) % 10;
    let kinds: [(&str, &Change); 6] = [
        ("instance added without a check", &|k| {
            let a = k * 2;
            c.register(json!({"Node": format!("docker-host-{}", host(a, 0)), "Address": format!("10.0.1.{}", 10 + host(a, 0)),
                "Service": {"ID": format!("extra-{a}"), "Service": format!("app{a:03}-blue"), "Address": "10.9.9.9", "Port": 40000 + a}}));
            let want = format!("server 10.9.9.9:{};", 40000 + a);
            Box::new(move |t: &str| t.contains(&want))
        }),
        // A deploy's next instance: the same services as the kind before, each of which has
        // just changed (the newest first in a sweep).
        ("the deploy's next instance, without a check", &|k| {
            let a = k * 2;
            c.register(json!({"Node": format!("docker-host-{}", host(a, 1)), "Address": format!("10.0.1.{}", 10 + host(a, 1)),
                "Service": {"ID": format!("extra2-{a}"), "Service": format!("app{a:03}-blue"), "Address": "10.9.9.8", "Port": 40000 + a}}));
            let want = format!("server 10.9.9.8:{};", 40000 + a);
            Box::new(move |t: &str| t.contains(&want))
        }),
        ("check turned critical", &|k| {
            let a = k * 2 + 100;
            let h = host(a, 0);
            let id = format!("docker-host-{h}:app{a:03}_blue_0:8080");
            c.register(json!({"Node": format!("docker-host-{h}"), "Address": format!("10.0.1.{}", 10 + h),
                "Check": {"CheckID": format!("service:{id}"), "Name": "c", "Status": "critical", "ServiceID": id}}));
            let gone = format!("server 10.0.1.{}:{};", 10 + h, 32768 + a * 4);
            Box::new(move |t: &str| !t.contains(&gone))
        }),
        ("instance deregistered", &|k| {
            let a = k * 2 + 300;
            let h = host(a, 1);
            c.deregister(json!({"Node": format!("docker-host-{h}"), "ServiceID": format!("docker-host-{h}:app{a:03}_blue_1:8080")}));
            let gone = format!("server 10.0.1.{}:{};", 10 + h, 32768 + a * 4 + 1);
            Box::new(move |t: &str| !t.contains(&gone))
        }),
        ("tag changed", &|k| {
            // a % 4 == 2: routed by its path= tag, blue.
            let a = k * 4 + 502;
            let h = host(a, 0);
            c.register(json!({"Node": format!("docker-host-{h}"), "Address": format!("10.0.1.{}", 10 + h),
                "Service": {"ID": format!("docker-host-{h}:app{a:03}_blue_0:8080"), "Service": format!("app{a:03}-blue"),
                    "Address": format!("10.0.1.{}", 10 + h), "Port": 32768 + a * 4, "Tags": [format!("path=/v2/app{a:03}")]}}));
            let want = format!("location /v2/app{a:03} {{");
            Box::new(move |t: &str| t.contains(&want))
        }),
        ("KV colour flipped", &|k| {
            let a = k * 2 + 1000;
            c.put_kv(&format!("docker-flow/app{a:03}/color"), "green");
            let want = format!("server 10.0.1.{}:{};", 10 + host(a, 1), 32768 + a * 4 + 2);
            Box::new(move |t: &str| t.contains(&want))
        }),
    ];
    for (kind, change) in kinds {
        // Let the previous kind's refreshes finish before counting this kind's requests.
        std::thread::sleep(Duration::from_secs(3));
        sim.reset_counters();
        let (mut latencies, mut missed) = (Vec::new(), 0);
        for k in 0..changes() {
            let started = Instant::now();
            let done = change(k);
            match seen(&d, &*done) {
                Some(_) => latencies.push(started.elapsed()),
                None => missed += 1,
            }
        }
        report(kind, latencies, missed, sim.requests().0);
    }
    println!(
        "peak connections {} (limit {}), refused {}",
        sim.peak_connections(),
        consul_sim::DEFAULT_CONNECTION_LIMIT,
        sim.refused_connections()
    );
    println!(
        "watcher peak RSS: {:.1} MiB",
        support::peak_rss_kib(bg.pid()) as f64 / 1024.0
    );
    // A Consul restart: every watcher comes back.
    drop(c);
    std::thread::sleep(Duration::from_secs(2));
    let sim = Consul::restart_at(&addr, &data);
    let counting = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "requests in the first {:.1} s after a restart: {}",
        counting.elapsed().as_secs_f64(),
        sim.requests().0
    );
}
