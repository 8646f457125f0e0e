//! Once mode against Consul (the simulator, or the agent in `CONSUL_HTTP_ADDR`), through the
//! binary: the seed's switch line, health and tags, KV, errors, retries, TLS, Unix sockets.

use crate::helpers;
use crate::support::{repo, Consul, Dir, Run};
use consul_sim::{Fault, Listen, Sim};
use std::time::{Duration, Instant};

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80, "Tags": ["v1"]},
               {"Node": "n1", "ID": "web-2", "Service": "web", "Port": 81, "Status": "critical"}],
  "kv": {"greeting": "hello"}}"#;

fn setup() -> (Consul, Dir) {
    let c = Consul::start();
    c.load(DATA);
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{key \"greeting\"}}{{#each (service \"web\")}} {{ID}}={{Address}}:{{Port}}{{/each}}\n",
    );
    (c, d)
}

fn render(c: &Consul, d: &Dir, extra: &[&str]) -> Run {
    let addr = format!("-consul-addr={}", c.addr);
    let mut args = vec![addr.as_str(), "-template=in.hbs:out.conf", "-once"];
    args.extend(extra);
    d.run(&args)
}

#[test]
fn the_seed_switch_line_works_against_consul() {
    // The blue-green seed's exact consul-template line, the binary renamed; services registered
    // as Registrator registers the seed's compose file (SERVICE_80_NAME=blue / green).
    let c = Consul::start();
    for (host, ip) in [
        ("docker-host-1", "10.0.1.11"),
        ("docker-host-2", "10.0.1.12"),
    ] {
        c.register_container(
            host,
            ip,
            "blue",
            &format!("bg_blue_{}", &host[12..]),
            32768,
            "passing",
        );
        c.register_container(
            host,
            ip,
            "green",
            &format!("bg_green_{}", &host[12..]),
            32769,
            "passing",
        );
    }
    let d = Dir::new();
    d.write("live", "green");
    let template = repo().join("templates/nginx-blue-green.hbs");
    let started = Instant::now();
    let run = Run::of(
        d.cmd()
            .env("LIVE_FILE", d.join("live"))
            .arg(format!("-consul={}", c.addr))
            .arg(format!(
                "-template={}:nginx.conf:echo reloaded >> reloads",
                template.display()
            ))
            .args(["-retry", "30s", "-once"]),
    );
    run.code(0).stderr_has("flag -consul is deprecated");
    assert!(started.elapsed() < Duration::from_secs(10));
    let conf = d.read("nginx.conf");
    assert!(
        conf.contains("server 10.0.1.11:32768 max_fails=3 fail_timeout=60 weight=1;"),
        "{conf}"
    );
    assert!(
        conf.contains("server 10.0.1.12:32769 max_fails=3 fail_timeout=60 weight=1;"),
        "{conf}"
    );
    let live = conf.split("listen 80 default;").nth(1).unwrap();
    assert!(
        live.trim_start().contains("proxy_pass http://green;"),
        "{conf}"
    );
    assert_eq!(d.read("reloads"), "reloaded\n", "the command ran once");
}

#[test]
fn healthy_instances_only_and_kv() {
    let (c, d) = setup();
    render(&c, &d, &[]).code(0);
    assert_eq!(d.read("out.conf"), "hello web-1=10.0.0.1:80\n");
}

#[test]
fn data_file_and_consul_render_every_helper_the_same() {
    let d = helpers::setup();
    let data = d.read("data.json");
    // The data file's agent node is node-a, so the simulator's agent runs there too.
    let c = match std::env::var("CONSUL_HTTP_ADDR") {
        Ok(a) if !a.is_empty() => Consul::start(),
        _ => Consul::with_sim(Sim::start_full(Listen::Tcp, None, "node-a")),
    };
    c.load(&data);
    let template = helpers::all_cases_template();
    let from_data = helpers::run_template(&d, &template);
    from_data.code(0);
    d.write("t.hbs", &template);
    let from_consul = Run::of(d.cmd().env("CR_TEST", "hello").env("CR_EMPTY", "").args([
        "-consul-addr",
        &c.addr,
        "-template",
        "t.hbs",
        "-dry",
        "-once",
    ]));
    from_consul.code(0);
    let a = helpers::split_cases(&from_data.stdout);
    let b = helpers::split_cases(&from_consul.stdout);
    assert_eq!(a.len(), helpers::CASES.len());
    assert_eq!(b.len(), a.len(), "{}", from_consul.stdout);
    let mut differ = Vec::new();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let (names, case, _) = helpers::CASES[i];
        if x != y && !names.contains(&"timestamp") {
            differ.push(format!(
                "{names:?} {case}\n  data file: {x:?}\n     consul: {y:?}"
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn missing_key_fails_fast_naming_it() {
    let (c, d) = setup();
    d.write("in.hbs", "{{key \"no/such/key\"}}\n");
    let started = Instant::now();
    render(&c, &d, &[])
        .code(14)
        .stderr_has("key \"no/such/key\" does not exist")
        .stderr_has("keyOrDefault");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang on a missing key"
    );
    assert!(!d.exists("out.conf"));
}

#[test]
fn a_service_with_no_instances_renders_the_else_branch() {
    let (c, d) = setup();
    d.write(
        "in.hbs",
        "{{#each (service \"nothing-here\")}}{{Address}}{{else}}none{{/each}}\n",
    );
    render(&c, &d, &[]).code(0);
    assert_eq!(d.read("out.conf"), "none\n");
}

#[test]
fn wrong_token_is_403_and_the_token_is_never_printed() {
    let sim = Sim::start_with(Listen::Tcp, Some("right-token-1234"));
    let c = Consul::with_sim(sim);
    let d = Dir::new();
    d.write("in.hbs", "{{#each (service \"web\")}}{{ID}}{{/each}}\n");
    let run = render(
        &c,
        &d,
        &["-consul-token=wrong-token-5678", "-log-level=trace"],
    );
    run.code(14)
        .stderr_has("GET /v1/health/service/web: 403 ACL not found");
    assert!(
        !run.stderr.contains("wrong-token-5678") && !run.stdout.contains("wrong-token-5678"),
        "{}",
        run.stderr
    );
    // 403 is not retried.
    assert_eq!(
        c.sim().unwrap().requests().1.get("/v1/health/service/web"),
        Some(&1)
    );
    // The right token works from the flag, the environment and a token file.
    render(&c, &d, &["-consul-token=right-token-1234"]).code(0);
    Run::of(d.cmd().env("CONSUL_HTTP_TOKEN", "right-token-1234").args([
        "-consul-addr",
        &c.addr,
        "-template=in.hbs:out.conf",
        "-once",
    ]))
    .code(0);
    d.write("token", "right-token-1234\n");
    render(&c, &d, &["-consul-token-file=token"]).code(0);
}

fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

#[test]
fn consul_down_retries_with_backoff_then_gives_up() {
    let d = Dir::new();
    d.write("in.hbs", "{{key \"x\"}}\n");
    let addr = format!("-consul-addr={}", dead_address());
    let started = Instant::now();
    let run = d.run(&[
        &addr,
        "-template=in.hbs:out",
        "-once",
        "-consul-retry-attempts=3",
        "-consul-retry-backoff=50ms",
    ]);
    run.code(14)
        .stderr_has("GET /v1/kv/x: cannot connect")
        .stderr_has("gave up after 4 attempts")
        .stderr_has("retrying in");
    // 50 + 100 + 200 ms of backoff (jitter only adds): the retries really waited.
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let run = d.run(&[
        &addr,
        "-template=in.hbs:out",
        "-once",
        "-consul-retry=false",
    ]);
    run.code(14).stderr_has("cannot connect");
    assert!(!run.stderr.contains("retrying in"), "{}", run.stderr);
}

#[test]
fn server_errors_and_rate_limits_are_retried() {
    let (c, d) = setup();
    let Some(sim) = c.sim() else { return };
    sim.fault(
        Fault::Status(500, "No cluster leader".into()),
        1,
        Some("/v1/health"),
    );
    sim.fault(
        Fault::Status(429, "rate limited".into()),
        1,
        Some("/v1/health"),
    );
    sim.reset_counters();
    render(&c, &d, &["-consul-retry-backoff=10ms"])
        .code(0)
        .stderr_has("500 No cluster leader; retrying");
    assert_eq!(d.read("out.conf"), "hello web-1=10.0.0.1:80\n");
    assert_eq!(sim.requests().1.get("/v1/health/service/web"), Some(&3));
    // Without retries the first 500 ends the run.
    sim.fault(
        Fault::Status(500, "No cluster leader".into()),
        1,
        Some("/v1/health"),
    );
    sim.reset_counters();
    render(&c, &d, &["-consul-retry=false"])
        .code(14)
        .stderr_has("GET /v1/health/service/web: 500 No cluster leader");
    assert_eq!(sim.requests().1.get("/v1/health/service/web"), Some(&1));
}

#[test]
fn garbage_answers_name_the_endpoint() {
    let (c, d) = setup();
    let Some(sim) = c.sim() else { return };
    sim.fault(Fault::Garbage, 10, Some("/v1/health"));
    render(
        &c,
        &d,
        &["-consul-retry-attempts=1", "-consul-retry-backoff=10ms"],
    )
    .code(14)
    .stderr_has("GET /v1/health/service/web: the answer is not Consul's JSON")
    .stderr_has("gave up after 2 attempts");
}

#[test]
fn a_hanging_consul_ends_at_the_once_timeout_listing_what_is_missing() {
    let (c, d) = setup();
    let Some(sim) = c.sim() else { return };
    sim.fault(Fault::Hang, 5, Some("/v1/health"));
    let started = Instant::now();
    render(&c, &d, &["-once-timeout=1s"])
        .code(14)
        .stderr_has("once mode gave up after 1s")
        .stderr_has("health.service(web|passing) has not arrived");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn each_dependency_is_fetched_once_per_pass() {
    let (c, d) = setup();
    let Some(sim) = c.sim() else { return };
    d.write(
        "a.hbs",
        "{{#each (service \"web\")}}{{ID}}{{/each}}{{key \"greeting\"}}\n",
    );
    d.write("b.hbs", "{{#each (service \"web\")}}{{Port}}{{/each}}{{keyOrDefault \"greeting\" \"x\"}}{{keyExists \"greeting\"}}\n");
    d.write(
        "c.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}}{{/each}}{{/each}}\n",
    );
    sim.reset_counters();
    let addr = format!("-consul-addr={}", c.addr);
    d.run(&[
        &addr,
        "-template=a.hbs:a.out",
        "-template=b.hbs:b.out",
        "-template=c.hbs:c.out",
        "-once",
        "-max-stale=0",
    ])
    .code(0);
    let (_, per_path) = sim.requests();
    // web and greeting are shared by the three templates: one request each. services first,
    // then the second pass discovers the services it lists (web was fetched already).
    assert_eq!(
        per_path.get("/v1/health/service/web"),
        Some(&1),
        "{per_path:?}"
    );
    assert_eq!(per_path.get("/v1/kv/greeting"), Some(&1), "{per_path:?}");
    assert_eq!(
        per_path.get("/v1/catalog/services"),
        Some(&1),
        "{per_path:?}"
    );
    assert_eq!(d.read("c.out"), "web-1\n");
}

#[test]
fn tags_filters_and_datacenters() {
    let (c, d) = setup();
    c.register(
        serde_json::json!({"Node": "far", "Address": "10.9.0.1", "Datacenter": "dc2",
        "Service": {"ID": "web-9", "Service": "web", "Port": 90}}),
    );
    if c.sim().is_none() {
        return; // a real single-datacenter agent cannot hold dc2
    }
    d.write(
        "in.hbs",
        "{{#each (service \"v1.web\")}}{{ID}}{{/each}}|{{#each (service \"web|any\")}}{{ID}}:{{Status}} {{/each}}|{{#each (service \"web@dc2\")}}{{ID}}{{/each}}\n",
    );
    render(&c, &d, &[]).code(0);
    assert_eq!(
        d.read("out.conf"),
        "web-1|web-1:passing web-2:critical |web-9\n"
    );
}

#[test]
fn unix_socket_address() {
    let d = Dir::new();
    let socket = d.join("consul.sock");
    let sim = Sim::start_with(Listen::Unix(socket.clone()), None);
    d.write(
        "in.hbs",
        "{{#each (nodes)}}{{Node}} {{/each}}{{keyOrDefault \"x\" \"default\"}}\n",
    );
    d.run(&[
        &format!("-consul-addr=unix://{}", socket.display()),
        "-template=in.hbs:out",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("out"), "agent-node default\n");
    assert!(sim.requests().0 >= 2);
}

/// A CA, and a server certificate it signed for `consul.test` and 127.0.0.1 (PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "consul-render test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["consul.test".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let key = KeyPair::generate().unwrap();
    let issuer: &rcgen::Issuer<_> = &ca;
    let cert = params.signed_by(&key, issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn tls_with_a_self_signed_ca() {
    let (ca, cert, key) = certificates();
    let sim = Sim::start_with(
        Listen::Tls {
            cert_pem: cert,
            key_pem: key,
        },
        None,
    );
    let d = Dir::new();
    d.write("ca.pem", &ca);
    d.write("in.hbs", "{{#each (nodes)}}{{Node}}{{/each}}\n");
    let https = format!("-consul-addr=https://{}", sim.addr);
    d.run(&[
        &https,
        "-consul-ssl-ca-cert=ca.pem",
        "-template=in.hbs:out",
        "-once",
    ])
    .code(0);
    assert_eq!(d.read("out"), "agent-node\n");
    // Without the CA the certificate is refused (and that is not worth retrying forever).
    d.run(&[
        &https,
        "-template=in.hbs:out2",
        "-once",
        "-consul-retry=false",
    ])
    .code(14)
    .stderr_has("certificate");
    // Verification off, as -consul-ssl-verify=false asks.
    d.run(&[
        &https,
        "-consul-ssl-verify=false",
        "-template=in.hbs:out3",
        "-once",
    ])
    .code(0);
    // host:port with -consul-ssl and a CA directory; the server name checked is consul.test.
    std::fs::create_dir(d.join("cas")).unwrap();
    std::fs::copy(d.join("ca.pem"), d.join("cas/ca.crt")).unwrap();
    let plain = format!("-consul-addr={}", sim.addr);
    d.run(&[
        &plain,
        "-consul-ssl",
        "-consul-ssl-ca-path=cas",
        "-consul-ssl-server-name=consul.test",
        "-template=in.hbs:out4",
        "-once",
    ])
    .code(0);
    d.run(&[
        &plain,
        "-consul-ssl",
        "-consul-ssl-ca-path=cas",
        "-consul-ssl-server-name=other.test",
        "-template=in.hbs:out5",
        "-once",
        "-consul-retry=false",
    ])
    .code(14);
}

/// Consul's HTTPS listener offers HTTP/2: every blocking query then shares one connection, so
/// Consul's per-client connection limit is no concern however many services are watched.
#[test]
fn over_tls_every_blocking_query_shares_one_http2_connection() {
    let (ca, cert, key) = certificates();
    let writes: Vec<consul_sim::Write> = (0..300)
        .map(|i| consul_sim::Write::Register(consul_sim::numbered_service(i)))
        .collect();
    let sim = Sim::start_loaded(
        Listen::Tls {
            cert_pem: cert,
            key_pem: key,
        },
        None,
        "agent-node",
        &writes,
    );
    sim.limit_connections(10);
    let d = Dir::new();
    d.write("ca.pem", &ca);
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}}\n{{/each}}{{/each}}",
    );
    let _bg = d.spawn(&[
        &format!("-consul-addr=https://{}", sim.addr),
        "-consul-ssl-ca-cert=ca.pem",
        "-template=in.hbs:out.conf",
        // Room for a blocking query per service (else they follow the change detector).
        "-max-connections=1000",
    ]);
    crate::support::wait_until("300 services rendered", Duration::from_secs(60), || {
        d.exists("out.conf") && d.lines("out.conf") == 300
    });
    // The watchers hold their blocking queries (at most -max-connections of them) open now.
    crate::support::wait_until("blocking queries open", Duration::from_secs(20), || {
        sim.in_flight() >= 100
    });
    assert_eq!(
        (sim.peak_connections(), sim.refused_connections()),
        (1, 0),
        "{} requests open over the connections",
        sim.in_flight()
    );
}

#[test]
fn simulator_agrees_with_py_consul() {
    // py-consul is a Consul client someone else wrote: a mistake in the simulator's JSON shapes
    // or blocking behaviour cannot hide behind the same mistake in our client.
    let python = repo().join("target/py-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-test-deps",
        python.display()
    );
    let c = Consul::start();
    let (host, port) = c
        .addr
        .trim_start_matches("http://")
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("host:port");
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/py/check_simulator.py"))
        .args([host, port])
        .output()
        .expect("running python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "py-consul disagrees with the simulator:\n{text}"
    );
    assert!(text.contains("all checks passed"), "{text}");
}

#[test]
fn namespace_and_partition_from_the_environment_or_a_config_file_reach_consul() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    c.put_kv("app/a", "1");
    let d = Dir::new();
    d.write("in.hbs", "{{key \"app/a\"}}{{key \"app/a?ns=other\"}}\n");
    let addr = format!("-consul-addr={}", c.addr);
    let run = crate::support::Run::of(
        d.cmd()
            .env("CONSUL_NAMESPACE", "team-a")
            .env("CONSUL_PARTITION", "part-1")
            .args([&addr, "-template=in.hbs:out", "-once"]),
    );
    run.code(0);
    let queries = sim.queries();
    assert!(
        queries.iter().any(|q| q.starts_with("/v1/kv/app/a?")
            && q.contains("ns=team-a")
            && q.contains("partition=part-1")),
        "{queries:?}"
    );
    assert!(
        queries
            .iter()
            .any(|q| q.contains("ns=other") && !q.contains("ns=team-a")),
        "a query's own ns wins: {queries:?}"
    );
    // A config file's namespace wins over the environment's.
    sim.reset_counters();
    d.write("c.hcl", "consul {\n  namespace = \"from-file\"\n}\n");
    d.write("in.hbs", "{{key \"app/a\"}}\n");
    let run = crate::support::Run::of(d.cmd().env("CONSUL_NAMESPACE", "team-a").args([
        &addr,
        "-config=c.hcl",
        "-template=in.hbs:out2",
        "-once",
    ]));
    run.code(0);
    let queries = sim.queries();
    assert!(
        queries.iter().any(|q| q.contains("ns=from-file")),
        "{queries:?}"
    );
}

#[test]
fn the_simulator_refuses_connections_over_consuls_per_client_limit() {
    use std::io::{Read, Write};
    let sim = Sim::start();
    sim.limit_connections(3);
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&sim.addr).unwrap())
        .collect();
    crate::support::wait_until("3 connections counted", Duration::from_secs(10), || {
        sim.connections_open() == 3
    });
    let mut extra = std::net::TcpStream::connect(&sim.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = extra.write_all(b"GET /v1/catalog/services HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.ends_with(consul_sim::CONNECTION_REFUSAL), "{answer}");
    assert_eq!((sim.peak_connections(), sim.refused_connections()), (3, 1));
    drop(held);
    crate::support::wait_until("the connections closed", Duration::from_secs(10), || {
        sim.connections_open() == 0
    });
    let c = Consul::with_sim(sim);
    c.put_kv("k", "v");
}

/// `-once` fetches every dependency of a pass at once; the connection budget still holds: 500
/// services through 16 connections, against an agent that refuses a client its 21st.
#[test]
fn once_mode_keeps_to_the_connection_budget() {
    let c = Consul::start();
    let Some(sim) = c.sim() else { return };
    sim.limit_connections(20);
    c.register_numbered(500);
    sim.reset_counters();
    let d = Dir::new();
    d.write(
        "in.hbs",
        "{{#each (services)}}{{#each (service Name)}}{{ID}}\n{{/each}}{{/each}}",
    );
    d.run(&[
        &format!("-consul-addr={}", c.addr),
        "-template=in.hbs:out.conf",
        "-once",
        "-max-connections=16",
    ])
    .code(0);
    assert_eq!(d.lines("out.conf"), 500);
    assert_eq!(sim.refused_connections(), 0);
    let peak = sim.peak_connections();
    assert!(
        peak <= 16,
        "{peak} connections open at once for a budget of 16"
    );
}

/// Sessions with a TTL (the simulator's `session_ttl_min` lowered, as an agent's config can):
/// renewed, one lives on; unrenewed, it is invalidated after twice its TTL and its
/// delete-behavior lock takes the key with it. A session on a check that turns critical ends too.
#[test]
fn the_simulator_expires_unrenewed_sessions_and_those_whose_check_fails() {
    let sim = Sim::start();
    sim.session_ttl_min(Duration::from_millis(100));
    let base = format!("http://{}", sim.addr);
    let http = reqwest::blocking::Client::new();
    let create = |body: serde_json::Value| -> String {
        let v: serde_json::Value = http
            .put(format!("{base}/v1/session/create"))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["ID"].as_str().unwrap().to_string()
    };
    let alive = |id: &str| -> bool {
        let v: serde_json::Value = http
            .get(format!("{base}/v1/session/info/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v.as_array().is_some_and(|a| !a.is_empty())
    };
    let id = create(serde_json::json!({"TTL": "1s", "Behavior": "delete", "LockDelay": "1ms"}));
    let acquired: bool = http
        .put(format!("{base}/v1/kv/dedup/lock?acquire={id}"))
        .body("x")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(acquired);
    let started = Instant::now();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let r = http
            .put(format!("{base}/v1/session/renew/{id}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "renewed at {:?}", started.elapsed());
    }
    assert!(alive(&id), "a renewed session lives past its TTL");
    let unrenewed = Instant::now();
    crate::support::wait_until("the session invalidated", Duration::from_secs(10), || {
        !alive(&id)
    });
    let after = unrenewed.elapsed();
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_secs(5),
        "invalidated {after:?} after its last renewal (twice the TTL)"
    );
    let key = http.get(format!("{base}/v1/kv/dedup/lock")).send().unwrap();
    assert_eq!(key.status(), 404, "the delete behavior took the key");
    // A session hangs on its node's serfHealth: critical, and the session is gone.
    let id = create(serde_json::json!({"Name": "on-health"}));
    assert!(alive(&id));
    let c = Consul::with_sim(sim);
    c.register(
        serde_json::json!({"Node": "agent-node", "Address": "127.0.0.1",
        "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "critical"}}),
    );
    assert!(!alive(&id), "a critical serfHealth invalidates the session");
}

/// A blocking query on a missing key reports the KV table's index, as Consul's does, but waits
/// for that key alone: other keys' writes do not wake it (Consul watches the key), its creation
/// does.
#[test]
fn the_simulator_wakes_a_missing_keys_query_only_for_that_key() {
    let sim = Sim::start();
    let base = format!("http://{}", sim.addr);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let index = |r: &reqwest::blocking::Response| -> u64 {
        r.headers()["X-Consul-Index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    http.put(format!("{base}/v1/kv/other"))
        .body("1")
        .send()
        .unwrap();
    let first = http.get(format!("{base}/v1/kv/missing")).send().unwrap();
    assert_eq!(first.status(), 404);
    let at = index(&first);
    let (tx, rx) = std::sync::mpsc::channel();
    let url = format!("{base}/v1/kv/missing?index={at}&wait=5s");
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let r = reqwest::blocking::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        tx.send((r.status().as_u16(), started.elapsed())).unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    http.put(format!("{base}/v1/kv/other"))
        .body("2")
        .send()
        .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "another key's write woke the query"
    );
    http.put(format!("{base}/v1/kv/missing"))
        .body("here")
        .send()
        .unwrap();
    let (status, took) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(4), "{took:?}");
    waiter.join().unwrap();
    // The index it reports for a missing key moves with the table.
    let later = http.get(format!("{base}/v1/kv/gone-never")).send().unwrap();
    assert!(index(&later) > at);
}
