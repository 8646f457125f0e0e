//! Dedup mode (`-dedup`, `deduplicate {}`) through the binary, against the Consul simulator:
//! renderers of one template elect one leader through a session and lock, the others render
//! from the data it shares in KV; a killed leader is replaced, and a follower started later
//! asks Consul for none of the template's dependencies.

use crate::support::{wait_until, Background, Consul, Dir};
use base64::Engine as _;
use consul_sim::Fault;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);
const PREFIX: &str = "dedup-test/";
const TEMPLATE: &str =
    "{{#each (service \"web\")}}{{Address}}:{{Port}}\n{{/each}}colour {{key \"app/colour\"}}\n";

fn web(i: u32) -> Value {
    json!({"Node": format!("n{i}"), "Address": format!("10.0.0.{i}"),
        "Service": {"ID": format!("web-{i}"), "Service": "web", "Port": 8000 + i}})
}

/// A renderer in its own directory, sharing the template and a TTL of 1 s.
fn renderer(addr: &str) -> (Dir, Background) {
    let d = Dir::new();
    d.write("in.hbs", TEMPLATE);
    d.write(
        "dedup.hcl",
        &format!("deduplicate {{\n  enabled = true\n  prefix = \"{PREFIX}\"\n  TTL = \"1s\"\n}}\n"),
    );
    let bg = d.spawn(&[
        &format!("-consul-addr={addr}"),
        "-config=dedup.hcl",
        "-template=in.hbs:out.conf",
        "-log-level=debug",
    ]);
    (d, bg)
}

/// The lock key of the one template (its ID is a hash).
fn lock_key(c: &Consul) -> Option<String> {
    let keys = c.get_json(&format!("/v1/kv/{PREFIX}?keys"))?;
    keys.as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|k| k.ends_with("/lock"))
        .map(str::to_string)
}

/// The lock's holder: its session and pid.
fn lock_holder(c: &Consul) -> Option<(String, u32)> {
    let lock = lock_key(c)?;
    let entry = c.get_json(&format!("/v1/kv/{lock}"))?;
    let session = entry[0]["Session"].as_str()?.to_string();
    let value = base64::engine::general_purpose::STANDARD
        .decode(entry[0]["Value"].as_str()?)
        .ok()?;
    let holder: Value = serde_json::from_slice(&value).ok()?;
    Some((session, u32::try_from(holder["pid"].as_u64()?).ok()?))
}

fn data_key_exists(c: &Consul) -> bool {
    c.get_json(&format!("/v1/kv/{PREFIX}?keys"))
        .and_then(|k| k.as_array().cloned())
        .is_some_and(|k| {
            k.iter()
                .any(|k| k.as_str().is_some_and(|k| k.ends_with("/data")))
        })
}

/// Requests the simulator saw for the template's own dependencies.
fn dependency_requests(sim: &consul_sim::Sim) -> u64 {
    sim.requests()
        .1
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/health/service/web") || p.starts_with("/v1/kv/app/"))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn renderers_share_one_leader_and_survive_its_death() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    // A TTL of 1 s keeps the test short; a real agent's minimum is 10 s.
    sim.session_ttl_min(Duration::from_millis(100));
    for i in 1..=3 {
        c.register(web(i));
    }
    c.put_kv("app/colour", "blue");
    let want = |n: u32, colour: &str| {
        let mut s: String = (1..=n)
            .map(|i| format!("10.0.0.{i}:{}\n", 8000 + i))
            .collect();
        s.push_str(&format!("colour {colour}\n"));
        s
    };
    let mut renderers: Vec<(Dir, Background)> = (0..5).map(|_| renderer(&c.addr)).collect();
    let all_have = |rs: &[(Dir, Background)], content: &str| {
        rs.iter()
            .all(|(d, _)| d.exists("out.conf") && d.read("out.conf") == content)
    };
    let logs = |rs: &[(Dir, Background)]| {
        rs.iter()
            .map(|(_, b)| b.log())
            .collect::<Vec<_>>()
            .join("\n-----\n")
    };
    wait_until("all five rendered", LIMIT, || {
        all_have(&renderers, &want(3, "blue"))
    });
    // Exactly one leader: the lock's holder, and the only renderer that says it leads.
    let (session, pid) = lock_holder(&c).expect("a lock holder");
    let leaders: Vec<u32> = renderers
        .iter()
        .filter(|(_, b)| b.log().contains("dedup: leading"))
        .map(|(_, b)| b.pid())
        .collect();
    assert_eq!(leaders, vec![pid], "{}", logs(&renderers));

    // A change reaches every file; only the leader asks Consul for it (a follower that took the
    // leader's first, empty data for its whole share used to watch everything itself).
    std::thread::sleep(Duration::from_millis(300));
    let before = dependency_requests(sim);
    c.register(web(4));
    wait_until("all five updated", LIMIT, || {
        all_have(&renderers, &want(4, "blue"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let asked = dependency_requests(sim) - before;
    assert!(
        asked <= 2,
        "{asked} requests for the changed service\n{}",
        logs(&renderers)
    );

    // SIGKILL the leader: its session is not destroyed, Consul drops it after its TTL (twice
    // at most), and another renderer takes the lock.
    let leader = renderers
        .iter()
        .position(|(_, b)| b.pid() == pid)
        .expect("the leader is one of ours");
    let (_dir, mut killed) = renderers.remove(leader);
    killed.signal("-KILL");
    killed.wait_exit(LIMIT);
    let killed_at = Instant::now();
    let mut data_always = true;
    wait_until("a new leader", LIMIT, || {
        data_always &= data_key_exists(&c);
        lock_holder(&c).is_some_and(|(_, p)| p != pid)
    });
    let failover = killed_at.elapsed();
    // 2 × TTL + lock delay (1 ms) + 1 s.
    assert!(
        failover < Duration::from_secs(3) + Duration::from_millis(500),
        "failover took {failover:?}\n{}",
        logs(&renderers)
    );
    assert!(data_always, "the shared data went away with its leader");
    let (new_session, _) = lock_holder(&c).expect("a lock holder");
    assert_ne!(new_session, session);
    let old = c
        .get_json(&format!("/v1/session/info/{session}"))
        .unwrap_or(Value::Null);
    assert!(
        old.as_array().is_none_or(Vec::is_empty),
        "the killed leader's session is still there: {old}"
    );

    // Files keep updating under the new leader.
    c.put_kv("app/colour", "green");
    wait_until("all four updated", LIMIT, || {
        all_have(&renderers, &want(4, "green"))
    });

    // A follower started now renders from the shared data alone.
    std::thread::sleep(Duration::from_millis(300));
    let before = dependency_requests(sim);
    let late = renderer(&c.addr);
    wait_until("the late follower rendered", LIMIT, || {
        late.0.exists("out.conf") && late.0.read("out.conf") == want(4, "green")
    });
    assert!(!late.1.log().contains("dedup: leading"), "{}", late.1.log());
    assert_eq!(
        dependency_requests(sim),
        before,
        "the late follower asked Consul for the template's dependencies\n{}",
        late.1.log()
    );
}

/// A follower that cannot take the lock (another session took it when the leader died) while
/// no leader holds the data renders from that data, not from Consul, and past `max_stale` says
/// so in its log and in /ready.
#[test]
fn a_follower_without_a_leader_says_its_data_is_stale() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    sim.session_ttl_min(Duration::from_millis(100));
    c.put_kv("app/colour", "red");
    let text = "colour {{key \"app/colour\"}}\n";
    let start = |max_stale: &str| {
        let d = Dir::new();
        d.write("in.hbs", text);
        d.write(
            "dedup.hcl",
            &format!(
                "deduplicate {{\n  prefix = \"{PREFIX}\"\n  TTL = \"1s\"\n  max_stale = \"{max_stale}\"\n}}\n"
            ),
        );
        let port = crate::support::free_port();
        let bg = d.spawn(&[
            &format!("-consul-addr={}", c.addr),
            "-config=dedup.hcl",
            "-template=in.hbs:out.conf",
            &format!("-status-addr={port}"),
        ]);
        (d, bg, port)
    };
    // A leader shares "red", then dies.
    let (a, mut leader, _) = start("2s");
    wait_until("the leader rendered", LIMIT, || {
        a.exists("out.conf") && data_key_exists(&c)
    });
    leader.signal("-KILL");
    leader.wait_exit(LIMIT);
    // Someone else takes the lock once Consul lets the dead leader's session go.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let session: Value = http
        .put(format!("http://{}/v1/session/create", c.addr))
        .body(r#"{"TTL": "60s", "Behavior": "release"}"#)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let session = session["ID"].as_str().unwrap().to_string();
    let lock = lock_key(&c).expect("the lock key");
    wait_until("the lock taken by another session", LIMIT, || {
        http.put(format!("http://{}/v1/kv/{lock}?acquire={session}", c.addr))
            .body("someone else")
            .send()
            .ok()
            .and_then(|r| r.json::<bool>().ok())
            == Some(true)
    });
    // Consul says blue now, and no leader shares it.
    c.put_kv("app/colour", "blue");
    let (d, bg, port) = start("500ms");
    wait_until("rendered from the shared data", LIMIT, || {
        d.exists("out.conf") && d.read("out.conf") == "colour red\n"
    });
    let ready = || {
        http.get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .ok()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    };
    wait_until("/ready says the data is stale", LIMIT, || {
        ready().is_some_and(|(code, body)| code == 200 && body.contains("stale"))
    });
    assert!(bg.log().contains("no leader has held"), "{}", bg.log());
    assert!(!bg.log().contains("dedup: leading"), "{}", bg.log());
}

/// A leader stopped with SIGTERM destroys its session: another renderer leads at once, not
/// after the TTL (10 s here).
#[test]
fn a_leader_that_stops_hands_over_at_once() {
    let c = Consul::start();
    c.register(web(1));
    c.put_kv("app/colour", "blue");
    let start = || {
        let d = Dir::new();
        d.write("in.hbs", TEMPLATE);
        d.write(
            "dedup.hcl",
            &format!("deduplicate {{\n  prefix = \"{PREFIX}\"\n  TTL = \"10s\"\n}}\n"),
        );
        let bg = d.spawn(&[
            &format!("-consul-addr={}", c.addr),
            "-config=dedup.hcl",
            "-template=in.hbs:out.conf",
        ]);
        (d, bg)
    };
    let mut first = start();
    wait_until("a leader", LIMIT, || lock_holder(&c).is_some());
    let second = start();
    wait_until("the second rendered", LIMIT, || second.0.exists("out.conf"));
    let (_, pid) = lock_holder(&c).expect("a holder");
    let (leader, follower) = if pid == first.1.pid() {
        (&mut first, &second)
    } else {
        panic!("the second renderer leads though the first was there before it");
    };
    leader.1.signal("-TERM");
    assert_eq!(leader.1.wait_exit(LIMIT), Some(0), "{}", leader.1.log());
    let stopped = Instant::now();
    wait_until("the follower leads", Duration::from_secs(5), || {
        lock_holder(&c).is_some_and(|(_, p)| p == follower.1.pid())
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    c.put_kv("app/colour", "green");
    wait_until("the new leader renders the change", LIMIT, || {
        follower.0.read("out.conf").contains("colour green")
    });
}

/// A TTL Consul refuses (below its 10 s minimum) is a configuration mistake retrying cannot
/// mend: the run ends with exit 14 and Consul's reason, and writes nothing.
#[test]
fn a_session_consul_refuses_ends_the_run() {
    let c = Consul::start();
    c.put_kv("app/colour", "blue");
    let d = Dir::new();
    d.write("in.hbs", TEMPLATE);
    d.write(
        "dedup.hcl",
        &format!("deduplicate {{\n  prefix = \"{PREFIX}\"\n  TTL = \"1s\"\n}}\n"),
    );
    let mut bg = d.spawn(&[
        &format!("-consul-addr={}", c.addr),
        "-config=dedup.hcl",
        "-template=in.hbs:out.conf",
    ]);
    assert_eq!(bg.wait_exit(LIMIT), Some(14), "{}", bg.log());
    assert!(bg.log().contains("Invalid Session TTL"), "{}", bg.log());
    assert!(bg.log().contains("ttl = 1s"), "{}", bg.log());
    assert!(!d.exists("out.conf"));
}

/// A session Consul will not create (a token without `session:write`, say) is asked for again
/// after 1, 2, 4… s, up to consul-template's 15 s, not every second.
#[test]
fn session_creation_backs_off() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    sim.session_ttl_min(Duration::from_millis(100));
    c.register(web(1));
    c.put_kv("app/colour", "blue");
    sim.fault_writes(
        Fault::Status(403, "Permission denied".into()),
        3,
        "/v1/session/create",
    );
    let start = Instant::now();
    let (_d, bg) = renderer(&c.addr);
    wait_until("a session holding the lock", LIMIT, || {
        lock_holder(&c).is_some()
    });
    let took = start.elapsed();
    let creates = sim.requests().1.get("/v1/session/create").copied();
    assert_eq!(creates, Some(4), "{}", bg.log());
    // Three refusals, then pauses of 1, 2 and 4 s before the next try.
    assert!(took >= Duration::from_secs(7), "{took:?}\n{}", bg.log());
    assert!(
        bg.log().contains("403 Permission denied; retrying in 4s"),
        "{}",
        bg.log()
    );
}
