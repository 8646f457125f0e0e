//! The blue-green scenario end to end with real nginx on loopback ports: consul-render in watch
//! mode renders nginx.conf (checked with `nginx -t` before install) and reloads nginx; upstreams
//! are tiny HTTP servers answering their name, registered as Registrator would.

use crate::support::{http_get, repo, wait_until, Background, BlueGreen, Nginx, Upstream, BIN};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

struct Scenario {
    bg: BlueGreen,
    watcher: Background,
    _nginx: Nginx,
}

impl Scenario {
    /// Blue and green upstreams registered, the watcher running, nginx serving.
    fn start(blue: &Upstream, green: &Upstream) -> Scenario {
        let bg = BlueGreen::new(blue, green);
        let dir = &bg.dir;
        // Our own copy of the template, so a test can break it.
        dir.write(
            "nginx.hbs",
            &std::fs::read_to_string(repo().join("templates/nginx-blue-green.hbs")).unwrap(),
        );
        let conf = dir.join("nginx.conf");
        let check = format!(
            "-check={} -t -c {{{{path}}}}",
            crate::support::nginx().display()
        );
        // As the image's entrypoint does: render once so nginx starts with a real config, then
        // watch. (A watcher whose first reload fails because nginx is not up yet ends with
        // exit 14, as consul-template's does.)
        crate::support::Run::of(
            bg.env(&mut dir.cmd())
                .arg(format!("-consul-addr={}", bg.consul.addr))
                .arg("-template=nginx.hbs:nginx.conf")
                .arg(&check)
                .arg("-once"),
        )
        .code(0);
        let nginx = Nginx::start(&conf);
        wait_until("nginx serving", LIMIT, || http_get(bg.live_port).is_ok());
        let watcher = dir.spawn_cmd(
            bg.env(&mut dir.cmd())
                .arg(format!("-consul-addr={}", bg.consul.addr))
                .arg(format!(
                    "-template=nginx.hbs:nginx.conf:{}",
                    Nginx::reload_command(&conf)
                ))
                .arg(&check)
                .arg("-log-level=info"),
        );
        wait_until("the watcher's first render", LIMIT, || {
            watcher.log().contains("all templates rendered")
        });
        Scenario {
            bg,
            watcher,
            _nginx: nginx,
        }
    }

    fn live(&self) -> String {
        answer(self.bg.live_port)
    }

    fn set_live(&self, colour: &str) {
        std::fs::write(self.bg.dir.join("live"), colour).unwrap();
    }
}

fn answer(port: u16) -> String {
    match http_get(port) {
        Ok((200, body)) => body,
        Ok((code, _)) => format!("HTTP {code}"),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn switch_scale_fail_over_and_refuse_a_bad_config() {
    let (blue, green) = (Upstream::start("blue-1"), Upstream::start("green-1"));
    let s = Scenario::start(&blue, &green);
    assert_eq!(s.live(), "blue-1", "{}", s.watcher.log());
    assert_eq!(answer(s.bg.standby_port), "green-1");

    // Flip: within 2 s the live port answers green and the standby port blue.
    let flipped = Instant::now();
    s.set_live("green");
    wait_until("green live", LIMIT, || s.live() == "green-1");
    assert!(
        flipped.elapsed() < Duration::from_secs(2),
        "took {:?}",
        flipped.elapsed()
    );
    // Old workers finish gracefully and may take one more connection with the old config.
    wait_until("blue on standby", LIMIT, || {
        answer(s.bg.standby_port) == "blue-1"
    });

    // Scale green from 1 to 3: all three get traffic.
    let (g2, g3) = (Upstream::start("green-2"), Upstream::start("green-3"));
    s.bg.consul.register_container(
        "docker-host-2",
        "127.0.0.1",
        "green",
        "bg_green_2",
        g2.port,
        "passing",
    );
    s.bg.consul.register_container(
        "docker-host-3",
        "127.0.0.1",
        "green",
        "bg_green_3",
        g3.port,
        "passing",
    );
    let seen = Mutex::new(BTreeSet::new());
    wait_until("traffic on all three green instances", LIMIT, || {
        seen.lock().unwrap().insert(s.live());
        seen.lock()
            .unwrap()
            .is_superset(&["green-1", "green-2", "green-3"].map(String::from).into())
    });

    // Green's healthy instances go: with the last one critical, the upstream falls back to the
    // template's placeholder and nginx still answers (502 from the placeholder).
    s.bg.consul.deregister(
        serde_json::json!({"Node": "docker-host-2", "ServiceID": "docker-host-2:bg_green_2:80"}),
    );
    s.bg.consul.deregister(
        serde_json::json!({"Node": "docker-host-3", "ServiceID": "docker-host-3:bg_green_3:80"}),
    );
    s.bg.consul.register_container(
        "docker-host-1",
        "127.0.0.1",
        "green",
        "bg_green_1",
        green.port,
        "critical",
    );
    wait_until("the fallback upstream", LIMIT, || {
        s.bg.dir
            .read("nginx.conf")
            .contains("server 127.0.0.1:55000;")
    });
    wait_until("nginx answering from the fallback", LIMIT, || {
        s.live() == "HTTP 502"
    });
    assert_eq!(answer(s.bg.standby_port), "blue-1");

    // A template change nginx rejects: the file on disk stays, nginx keeps serving, the log says why.
    let before = s.bg.dir.read("nginx.conf");
    let broken =
        s.bg.dir
            .read("nginx.hbs")
            .replace("least_conn;", "least_conn;\n    no_such_directive on;");
    s.bg.dir.write("nginx.hbs", &broken);
    s.watcher.signal("-HUP");
    // nginx's own message passes through while the check runs; ours follows when it ends.
    wait_until("the refusal in the log", LIMIT, || {
        let log = s.watcher.log();
        log.contains("unknown directive \"no_such_directive\"")
            && log.contains("refused the new file")
    });
    assert_eq!(s.bg.dir.read("nginx.conf"), before);
    assert_eq!(answer(s.bg.standby_port), "blue-1");
}

#[test]
fn ten_flips_under_continuous_traffic_lose_no_request() {
    let (blue, green) = (Upstream::start("blue"), Upstream::start("green"));
    let s = Scenario::start(&blue, &green);
    let stop = Arc::new(AtomicBool::new(false));
    // (started at, answer) for every request, until stopped or 25 s at most.
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let client = {
        let (stop, log, port) = (stop.clone(), log.clone(), s.bg.live_port);
        std::thread::spawn(move || {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(25) {
                let at = Instant::now();
                let a = answer(port);
                log.lock().unwrap().push((at, a));
            }
        })
    };
    // (colour, settled at): once the live port answered the new colour, wait 200 ms more for the
    // old workers to stop accepting; every request started after that must get the new colour.
    let mut settled: Vec<(&str, Instant)> = Vec::new();
    for i in 0..10 {
        let colour = if i % 2 == 0 { "green" } else { "blue" };
        s.set_live(colour);
        wait_until("the flip", LIMIT, || {
            log.lock().unwrap().last().is_some_and(|(_, a)| a == colour)
        });
        std::thread::sleep(Duration::from_millis(200));
        settled.push((colour, Instant::now()));
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let log = log.lock().unwrap();
    let failures: Vec<&(Instant, String)> = log
        .iter()
        .filter(|(_, a)| a != "blue" && a != "green")
        .collect();
    eprintln!(
        "zero-downtime run: {} requests, {} failures, 10 flips",
        log.len(),
        failures.len()
    );
    assert!(
        log.len() > 100,
        "the client kept sending ({} requests)",
        log.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for (k, (colour, at)) in settled.iter().enumerate() {
        let next_flip = settled
            .get(k + 1)
            .map(|(_, t)| *t - Duration::from_millis(500));
        let wrong = log
            .iter()
            .filter(|(t, _)| t >= at && next_flip.is_none_or(|n| *t < n))
            .filter(|(_, a)| a != colour)
            .count();
        assert_eq!(
            wrong, 0,
            "after flip {k} settled, {wrong} requests still got the old colour"
        );
    }
}

#[test]
fn the_seed_switch_script_flips_with_once() {
    let (blue, green) = (Upstream::start("blue-1"), Upstream::start("green-1"));
    let bg = BlueGreen::new(&blue, &green);
    let (d, consul, live_port, standby_port) = (&bg.dir, &bg.consul, bg.live_port, bg.standby_port);
    let conf = d.join("nginx.conf");
    let switch = |colour: &str, reload: &str| {
        let bin_dir = std::path::Path::new(BIN).parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = std::process::Command::new(repo().join("examples/blue-green/switch.sh"));
        cmd.current_dir(d.path())
            .env_remove("CONSUL_HTTP_ADDR")
            .env("PATH", path)
            .env("CONSUL_URL", &consul.addr)
            .env("TEMPLATE", repo().join("templates/nginx-blue-green.hbs"))
            .env("NGINX_CONF", &conf)
            .env("RELOAD", reload)
            .env(
                "CHECK",
                format!("{} -t -c {{{{path}}}}", crate::support::nginx().display()),
            );
        crate::support::Run::of(bg.env(&mut cmd).arg(colour))
    };
    // The first switch writes the config; nginx is not running yet, so reload with `true`.
    switch("blue", "true").code(0);
    assert_eq!(d.read("live"), "blue");
    let _nginx = Nginx::start(&conf);
    wait_until("nginx serving", LIMIT, || http_get(live_port).is_ok());
    assert_eq!(answer(live_port), "blue-1");
    switch("green", &Nginx::reload_command(&conf)).code(0);
    wait_until("green live", LIMIT, || answer(live_port) == "green-1");
    wait_until("blue on standby", LIMIT, || {
        answer(standby_port) == "blue-1"
    });
    switch("purple", "true").code(1).stderr_has("usage");
    switch("", "true").code(1);
}

/// The Docker Flow seed's proxy reconfiguration (examples/docker-flow): 150 applications deployed
/// blue-green (300 services), routed by a KV path or a `path=` tag to their live colour; nginx
/// accepts the result, and flipping one application's colour in KV moves only its upstream.
#[test]
fn the_docker_flow_example_routes_each_app_to_its_live_colour() {
    let d = crate::support::Dir::new();
    let example = repo().join("examples/docker-flow");
    let data = std::fs::read_to_string(example.join("data.json")).unwrap();
    d.write("data.json", &data);
    let port = crate::support::free_port().to_string();
    let render = || {
        crate::support::Run::of(
            d.cmd()
                .env("PROXY_PORT", &port)
                .arg("-data=data.json")
                .arg(format!(
                    "-template={}:nginx.conf",
                    example.join("proxy.hbs").display()
                ))
                .arg("-once"),
        )
        .code(0);
        d.read("nginx.conf")
    };
    let conf = render();
    let (ok, out) = crate::support::nginx_test(&d.join("nginx.conf"), d.path());
    assert!(ok, "nginx -t refused the Docker Flow config:\n{out}");
    assert_eq!(
        conf.matches("upstream app").count(),
        150,
        "one per application"
    );
    // Half the applications have a KV path, a quarter a path= tag, a quarter none.
    assert_eq!(conf.matches("location /app").count(), 113);
    let block = |conf: &str, name: &str| -> String {
        let start = conf.find(&format!("upstream {name} {{")).expect(name);
        conf[start..start + conf[start..].find('}').unwrap()].to_string()
    };
    // app000 is blue (ports 32768, 32769), app001 green (ports 32774, 32775).
    assert!(block(&conf, "app000").contains(":32768;"));
    assert!(block(&conf, "app001").contains(":32774;"));
    assert!(conf.contains("location /app002 {\n      proxy_pass http://app002;"));
    assert!(!conf.contains("location /app003"), "app003 has no path");
    // The deploy flips app000 to green: only its upstream changes.
    d.write(
        "data.json",
        &data.replace(
            "\"docker-flow/app000/color\": \"blue\"",
            "\"docker-flow/app000/color\": \"green\"",
        ),
    );
    let flipped = render();
    assert!(block(&flipped, "app000").contains(":32770;"));
    assert_eq!(block(&flipped, "app001"), block(&conf, "app001"));
    assert!(
        flipped.replace(&block(&flipped, "app000"), "")
            == conf.replace(&block(&conf, "app000"), ""),
        "only app000's upstream changed"
    );
}
