//! `consul-render capture`: a data file from what the templates read from Consul, which renders
//! byte-identical output with `-data` (the simulator, or the agent in `CONSUL_HTTP_ADDR`).

use crate::helpers;
use crate::support::{repo, Consul, Dir, Run};
use consul_sim::{Listen, Sim};

/// Renders `template` against `c` into `from-consul.out`, captures it into `captured.json`,
/// renders from that into `from-data.out`, and returns the data file.
fn round_trip(c: &Consul, d: &Dir, template: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let run = |args: &[&str]| {
        let mut cmd = d.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::of(cmd.args(args))
    };
    let consul = format!("-consul-addr={}", c.addr);
    run(&[
        &consul,
        "-template",
        &format!("{template}:from-consul.out"),
        "-once",
    ])
    .code(0);
    run(&[
        "capture",
        &consul,
        "-template",
        template,
        "-o",
        "captured.json",
    ])
    .code(0);
    run(&[
        "-data",
        "captured.json",
        "-template",
        &format!("{template}:from-data.out"),
        "-once",
    ])
    .code(0);
    assert_eq!(
        d.read("from-data.out"),
        d.read("from-consul.out"),
        "the captured data file renders something else"
    );
    serde_json::from_str(&d.read("captured.json")).expect("captured.json is JSON")
}

#[test]
fn blue_green_capture_renders_byte_identical_and_holds_only_what_it_reads() {
    let c = Consul::start();
    c.load(&std::fs::read_to_string(repo().join("tests/fixtures/seed/data.json")).unwrap());
    // Things the template does not read stay out of the file.
    c.register_container(
        "docker-host-1",
        "10.0.1.11",
        "billing",
        "billing_1",
        9000,
        "passing",
    );
    c.put_kv("unrelated/key", "x");
    let d = Dir::new();
    d.write("live", "green");
    let template = repo().join("templates/nginx-blue-green.hbs");
    let live = d.join("live");
    let file = round_trip(
        &c,
        &d,
        template.to_str().unwrap(),
        &[("LIVE_FILE", live.to_str().unwrap())],
    );
    let services: Vec<&str> = file["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"blue") && services.contains(&"green"),
        "{file}"
    );
    assert!(!services.contains(&"billing"), "{file}");
    // The critical green instance is kept (a `service` query reads every instance's health).
    assert_eq!(services.len(), 6, "{file}");
    assert!(
        file.get("kv")
            .is_none_or(|kv| kv.as_object().unwrap().is_empty()),
        "{file}"
    );
    // Short form: one Status per instance.
    assert!(file["services"][0].get("Checks").is_none(), "{file}");
}

#[test]
fn every_consul_helper_captures_byte_identical() {
    let d = helpers::setup();
    let c = match std::env::var("CONSUL_HTTP_ADDR") {
        Ok(a) if !a.is_empty() => Consul::start(),
        _ => Consul::with_sim(Sim::start_full(Listen::Tcp, None, "node-a")),
    };
    c.load(&d.read("data.json"));
    c.register(serde_json::json!({
        "Node": "node-a", "Address": "10.0.0.1",
        "Service": {"ID": "cache-1", "Service": "cache", "Port": 6379},
        "Checks": [{"CheckID": "cache-ping", "Name": "ping", "Status": "warning",
                    "Output": "slow: 900ms", "Notes": "redis", "ServiceID": "cache-1"}],
    }));
    // Every case of the Consul helpers (the timestamp case would change between runs), plus
    // what only the long form holds: check names and outputs, KV indexes and flags.
    let consul_helpers = [
        "service",
        "services",
        "nodes",
        "node",
        "datacenters",
        "key",
        "keyExists",
        "keyOrDefault",
        "ls",
        "tree",
        "safeLs",
        "safeTree",
    ];
    let mut template = String::new();
    for (names, case, _) in helpers::CASES {
        if names.iter().any(|n| consul_helpers.contains(n)) {
            template.push_str(case);
            template.push('\n');
        }
    }
    template.push_str(
        "{{#each (service \"cache|any\")}}{{Status}}{{#each Checks}} {{CheckID}}/{{Name}}/{{Output}}/{{Notes}}{{/each}}{{/each}}\n\
         {{#each (tree \"app\")}}{{Key}}@{{ModifyIndex}}/{{CreateIndex}}/{{Flags}} {{/each}}\n",
    );
    d.write("every.hbs", &template);
    let file = round_trip(&c, &d, "every.hbs", &[]);
    assert!(
        d.read("from-consul.out").contains("slow: 900ms"),
        "{}",
        d.read("from-consul.out")
    );
    // Indexes needed the long form: checks as listed, KV with its indexes.
    assert!(file["services"][0].get("Checks").is_some(), "{file}");
    assert!(
        file["kv"]["app/name"]["ModifyIndex"].as_u64().is_some(),
        "{file}"
    );
    assert_eq!(file["node"], "node-a", "{file}");
}

#[test]
fn capture_without_a_template_takes_the_whole_datacenter() {
    let c = Consul::start();
    c.load(&std::fs::read_to_string(repo().join("tests/fixtures/seed/data.json")).unwrap());
    c.put_kv("service/live", "blue");
    let d = Dir::new();
    let consul = format!("-consul-addr={}", c.addr);
    let run = d.run(&["capture", &consul]);
    run.code(0);
    let file: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(file["services"].as_array().unwrap().len(), 6, "{file}");
    assert_eq!(file["kv"]["service/live"], "blue", "{file}");
    // The whole catalog renders the same as Consul for any template over it.
    d.write("captured.json", &run.stdout);
    d.write(
        "t.hbs",
        "{{#each (services)}}{{Name}}:{{#each (service Name)}} {{Address}}:{{Port}}{{/each}}\n{{/each}}{{key \"service/live\"}}\n",
    );
    d.run(&[&consul, "-template", "t.hbs:a.out", "-once"])
        .code(0);
    d.run(&[
        "-data",
        "captured.json",
        "-template",
        "t.hbs:b.out",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("a.out"), d.read("b.out"));
}

#[test]
fn capture_refuses_what_a_data_file_cannot_hold() {
    let c = Consul::start();
    c.load(r#"{"nodes": [{"Node": "n", "Address": "10.0.0.1"}], "kv": {"k": "v"}}"#);
    let d = Dir::new();
    d.write(
        "ns.hbs",
        "{{#each (service \"web?ns=team\")}}{{Address}}{{/each}}",
    );
    let consul = format!("-consul-addr={}", c.addr);
    d.run(&["capture", &consul, "-template", "ns.hbs", "-o", "out.json"])
        .code(14)
        .stderr_has("cannot be captured")
        .stderr_has("namespaces");
    assert!(!d.exists("out.json"));
    d.run(&["capture", "-data", "x.json", "-template", "ns.hbs"])
        .code(13)
        .stderr_has("-data cannot be used");
    d.run(&["-template", "ns.hbs:out", "-o", "out.json"])
        .code(13)
        .stderr_has("consul-render capture");
}
