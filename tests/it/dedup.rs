//! Dedup mode (`-dedup`, `deduplicate {}`) through the binary, against the Consul simulator:
//! renderers of one template elect one leader through a session and lock, the others render
//! from the data it shares in KV; a killed leader is replaced, and a follower started later
//! asks Consul for none of the template's dependencies.

use crate::support::{wait_until, Background, Consul, Dir};
use base64::Engine as _;
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

/// The lock key of the one template (its ID is a hash), its holder's session and pid.
fn lock_holder(c: &Consul) -> Option<(String, u32)> {
    let keys = c.get_json(&format!("/v1/kv/{PREFIX}?keys"))?;
    let lock = keys
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|k| k.ends_with("/lock"))?
        .to_string();
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

    // A change reaches every file.
    c.register(web(4));
    wait_until("all five updated", LIMIT, || {
        all_have(&renderers, &want(4, "blue"))
    });

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
