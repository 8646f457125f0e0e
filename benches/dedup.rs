//! Dedup mode for a fleet: `DEDUP_RENDERERS` renderers (default 20, processes) render the Docker
//! Flow example's template over 100 applications (200 services, 200 keys) from one simulator,
//! first each on its own, then with `-dedup` (consul-template's default TTL, 15 s).
//!
//! Reports, for each: requests per second at the simulator while idle (10 s), Consul requests
//! per change and change-to-file latency p50/p99 over every renderer (`DEDUP_CHANGES` changes of
//! each kind, default 20: a KV colour flip, an instance deregistered); with dedup, the time to a
//! new leader after SIGKILL of the leader and to the next change on every file left.
//!
//! Run with `cargo bench --bench dedup` (`DEDUP_ONLY=1`: the dedup fleet alone; `DEDUP_QUERIES=1`:
//! also list the broad queries seen during the changes, to find who asks).

// The integration tests' harness; a bench uses only part of it.
#[path = "../tests/it/support/mod.rs"]
#[allow(dead_code, unused_imports)]
mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{repo, Background, Consul, Dir};

const APPS: usize = 100;
const SEEN_WITHIN: Duration = Duration::from_secs(40);
const PREFIX: &str = "service/consul-render/dedup/";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Fleet = Vec<(Dir, Background)>;

fn start(c: &Consul, n: usize, dedup: bool, extra: &[&str]) -> Fleet {
    (0..n)
        .map(|_| {
            let d = Dir::new();
            let mut args = vec![
                format!("-consul-addr={}", c.addr),
                format!(
                    "-template={}:nginx.conf",
                    repo().join("examples/docker-flow/proxy.hbs").display()
                ),
            ];
            if dedup {
                args.push("-dedup".into());
            }
            args.extend(extra.iter().map(|a| (*a).to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let bg = d.spawn(&args);
            (d, bg)
        })
        .collect()
}

fn read(d: &Dir) -> String {
    std::fs::read_to_string(d.join("nginx.conf")).unwrap_or_default()
}

/// Each renderer's time until its file satisfies `done` (None: not within `SEEN_WITHIN`).
fn seen_by_all(fleet: &Fleet, done: &dyn Fn(&str) -> bool) -> Vec<Option<Duration>> {
    let started = Instant::now();
    let mut out = vec![None; fleet.len()];
    while started.elapsed() < SEEN_WITHIN && out.iter().any(Option::is_none) {
        for (i, (d, _)) in fleet.iter().enumerate() {
            if out[i].is_none() && done(&read(d)) {
                out[i] = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}

fn ms(d: Option<&Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
}

/// Application a's instance i of colour c is on host (a+c+i)%10 (gen-data.py).
fn host(a: usize, c: usize, i: usize) -> usize {
    (a + c + i) % 10
}

type Change<'a> = dyn Fn(usize) -> Box<dyn Fn(&str) -> bool> + 'a;

fn measure(label: &str, c: &Consul, fleet: &Fleet, changes: usize) {
    let sim = c.sim().expect("the simulator");
    let started = Instant::now();
    let complete = |t: &str| t.matches("upstream app").count() == APPS;
    let firsts = seen_by_all(fleet, &complete);
    if firsts.iter().any(Option::is_none) {
        println!("{label}: not every renderer rendered within {SEEN_WITHIN:?}");
        if let Some((_, b)) = fleet
            .iter()
            .zip(&firsts)
            .find(|(_, f)| f.is_none())
            .map(|(r, _)| r)
        {
            println!("{}", b.log());
        }
        return;
    }
    println!(
        "{label}: all {} rendered in {:.0} ms",
        fleet.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    std::thread::sleep(Duration::from_secs(3));
    sim.reset_counters();
    std::thread::sleep(Duration::from_secs(10));
    println!(
        "{label}: idle {:.1} requests/s",
        sim.requests().0 as f64 / 10.0
    );
    let kinds: [(&str, &Change); 2] = [
        ("KV colour flipped", &|k| {
            // a % 4 == 0: routed by its KV path, blue until now.
            let a = k * 4;
            c.put_kv(&format!("docker-flow/app{a:03}/color"), "green");
            let want = format!(
                "server 10.0.1.{}:{};",
                10 + host(a, 1, 0),
                32768 + a * 4 + 2
            );
            Box::new(move |t: &str| t.contains(&want))
        }),
        ("instance deregistered", &|k| {
            // a % 4 == 2: routed by its tag, blue.
            let a = k * 4 + 2;
            let h = host(a, 0, 1);
            c.deregister(json!({"Node": format!("docker-host-{h}"),
                "ServiceID": format!("docker-host-{h}:app{a:03}_blue_1:8080")}));
            let gone = format!("server 10.0.1.{}:{};", 10 + h, 32768 + a * 4 + 1);
            Box::new(move |t: &str| !t.contains(&gone))
        }),
    ];
    for (kind, change) in kinds {
        std::thread::sleep(Duration::from_secs(2));
        sim.reset_counters();
        let (mut latencies, mut missed) = (Vec::new(), 0);
        for k in 0..changes {
            let done = change(k);
            for l in seen_by_all(fleet, &*done) {
                match l {
                    Some(l) => latencies.push(l),
                    None => missed += 1,
                }
            }
        }
        // The last change's wake-ups may still be arriving.
        std::thread::sleep(Duration::from_millis(500));
        latencies.sort();
        let n = latencies.len();
        println!(
            "{label}: {kind}: p50 {}, p99 {} over {} renderers, missed {missed}; {:.1} Consul requests per change",
            ms(latencies.get(n / 2)),
            ms(latencies.get((n * 99 / 100).min(n.saturating_sub(1)))),
            fleet.len(),
            sim.requests().0 as f64 / changes as f64
        );
        // Where they went, by endpoint.
        let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for (path, count) in sim.requests().1 {
            let endpoint: Vec<&str> = path.split('/').take(4).collect();
            *by.entry(endpoint.join("/")).or_default() += count;
        }
        let by: Vec<String> = by
            .iter()
            .map(|(p, n)| format!("{p} {:.1}", *n as f64 / changes as f64))
            .collect();
        println!("    per change: {}", by.join(", "));
        if std::env::var_os("DEDUP_QUERIES").is_some() {
            for q in sim
                .queries()
                .iter()
                .filter(|q| q.contains("health/state") || q.contains("catalog/services"))
            {
                println!("      {q}");
            }
        }
    }
}

/// The dedup lock's holder pid (the one template's lock key).
fn leader_pid(c: &Consul) -> Option<u32> {
    let keys = c.get_json(&format!("/v1/kv/{PREFIX}?keys"))?;
    let lock = keys
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|k| k.ends_with("/lock"))?
        .to_string();
    let entry = c.get_json(&format!("/v1/kv/{lock}"))?;
    entry[0]["Session"].as_str().filter(|s| !s.is_empty())?;
    let value = base64::engine::general_purpose::STANDARD
        .decode(entry[0]["Value"].as_str()?)
        .ok()?;
    let holder: Value = serde_json::from_slice(&value).ok()?;
    u32::try_from(holder["pid"].as_u64()?).ok()
}

fn main() {
    let n = env_or("DEDUP_RENDERERS", 20);
    let changes = env_or("DEDUP_CHANGES", 20);
    let data = support::docker_flow_data(APPS);
    // DEDUP_ONLY=1: skip the fleet without dedup. The third fleet gives every renderer room
    // for a blocking query per dependency (-max-connections=1000), as HTTP/2 does (one
    // connection carries them all); here over plain HTTP with the simulator's limit raised.
    let all: [(&str, bool, &[&str]); 3] = [
        ("each on its own", false, &[]),
        ("dedup", true, &[]),
        (
            "dedup, a query per dependency",
            true,
            &["-max-connections=1000"],
        ),
    ];
    let modes: Vec<(&str, bool, &[&str])> = if std::env::var_os("DEDUP_ONLY").is_some() {
        all.into_iter().filter(|m| m.1).collect()
    } else {
        all.to_vec()
    };
    for (label, dedup, extra) in modes {
        let c = Consul::start();
        // Every renderer connects from 127.0.0.1 here, not from a host of its own: the
        // agent's per-client limit (200) would count them together.
        c.sim().expect("the simulator").limit_connections(100_000);
        c.load(&data);
        let mut fleet = start(&c, n, dedup, extra);
        measure(label, &c, &fleet, changes);
        if !dedup {
            continue;
        }
        // SIGKILL the leader: its session lapses within 2 × TTL, another renderer leads.
        let Some(pid) = leader_pid(&c) else {
            println!("{label}: no leader found");
            continue;
        };
        let Some(i) = fleet.iter().position(|(_, b)| b.pid() == pid) else {
            println!("{label}: the leader is none of ours");
            continue;
        };
        let (_dir, mut leader) = fleet.remove(i);
        leader.signal("-KILL");
        leader.wait_exit(Duration::from_secs(10));
        let killed = Instant::now();
        let mut new_leader = None;
        while killed.elapsed() < Duration::from_secs(60) {
            if leader_pid(&c).is_some_and(|p| p != pid) {
                new_leader = Some(killed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "{label}: a new leader {:.2} s after SIGKILL of the leader (TTL 15 s: at most 2 × TTL + lock delay + 1 s = 31 s)",
            new_leader.map_or(f64::NAN, |d| d.as_secs_f64())
        );
        let a = 96;
        c.put_kv(&format!("docker-flow/app{a:03}/color"), "green");
        let want = format!(
            "server 10.0.1.{}:{};",
            10 + host(a, 1, 0),
            32768 + a * 4 + 2
        );
        let after = seen_by_all(&fleet, &|t: &str| t.contains(&want));
        let worst = after.iter().max().copied().flatten();
        println!(
            "{label}: the next change on all {} files left: {} (missed {})",
            fleet.len(),
            ms(worst.as_ref()),
            after.iter().filter(|l| l.is_none()).count()
        );
        let rss: Vec<f64> = fleet
            .iter()
            .map(|(_, b)| support::peak_rss_kib(b.pid()) as f64 / 1024.0)
            .collect();
        println!(
            "{label}: follower peak RSS {:.1}–{:.1} MiB",
            rss.iter().copied().fold(f64::INFINITY, f64::min),
            rss.iter().copied().fold(0.0, f64::max)
        );
        drop(fleet);
    }
}
