//! The Prometheus metrics (`GET /metrics`, `OpenMetrics` text via prometheus-client): one
//! process-wide set, updated where things happen (renders, writes, commands, Consul requests)
//! and read by the status server. Labels never hold a token or template contents.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateLabel {
    pub template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateResult {
    pub template: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointCode {
    pub endpoint: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Version {
    pub version: String,
}

/// Every metric we export.
pub struct Metrics {
    /// `consul_render_*`.
    pub registry: Registry,
    /// `process_*`, unprefixed as Prometheus' own clients name them.
    pub process: Registry,
    pub renders: Family<TemplateResult, Counter>,
    pub writes: Family<TemplateLabel, Counter>,
    pub commands: Family<TemplateResult, Counter>,
    pub command_duration: Histogram,
    pub consul_requests: Family<EndpointCode, Counter>,
    pub consul_request_duration: Histogram,
    pub dependencies: Gauge,
    pub open_connections: Gauge,
    pub last_success: Family<TemplateLabel, Gauge<f64, AtomicU64>>,
    pub consul_up: Gauge,
    pub process_resident_memory: Gauge,
    pub process_cpu_seconds: Gauge<f64, AtomicU64>,
    pub process_open_fds: Gauge,
    pub build_info: Family<Version, Gauge>,
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("consul_render");
        let mut m = Metrics {
            registry: Registry::default(),
            process: Registry::default(),
            renders: Family::default(),
            writes: Family::default(),
            commands: Family::default(),
            command_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            consul_requests: Family::default(),
            consul_request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            dependencies: Gauge::default(),
            open_connections: Gauge::default(),
            last_success: Family::default(),
            consul_up: Gauge::default(),
            process_resident_memory: Gauge::default(),
            process_cpu_seconds: Gauge::default(),
            process_open_fds: Gauge::default(),
            build_info: Family::default(),
        };
        registry.register(
            "renders",
            "Template renders by result (ok, incomplete, error)",
            m.renders.clone(),
        );
        registry.register("writes", "Files written (replaced)", m.writes.clone());
        registry.register(
            "commands",
            "Template commands run, by result (ok, failed)",
            m.commands.clone(),
        );
        registry.register(
            "command_duration_seconds",
            "How long template commands took",
            m.command_duration.clone(),
        );
        registry.register(
            "consul_requests",
            "Requests to Consul by endpoint and HTTP code (or error)",
            m.consul_requests.clone(),
        );
        registry.register(
            "consul_request_duration_seconds",
            "How long Consul requests took (blocking queries included)",
            m.consul_request_duration.clone(),
        );
        registry.register(
            "dependencies",
            "Dependencies being watched",
            m.dependencies.clone(),
        );
        registry.register(
            "open_connections",
            "Requests open to Consul now",
            m.open_connections.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When each template last rendered completely (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "consul_up",
            "1 while Consul answers, 0 after a failed request",
            m.consul_up.clone(),
        );
        registry.register("build_info", "The running version", m.build_info.clone());
        m.build_info
            .get_or_create(&Version {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        let mut process = Registry::default();
        process.register(
            "process_resident_memory_bytes",
            "Resident memory",
            m.process_resident_memory.clone(),
        );
        process.register(
            "process_cpu_seconds",
            "User and system CPU time",
            m.process_cpu_seconds.clone(),
        );
        process.register(
            "process_open_fds",
            "Open file descriptors",
            m.process_open_fds.clone(),
        );
        m.registry = registry;
        m.process = process;
        m
    }

    /// Reads this process's RSS, CPU time and open descriptors from /proc.
    pub fn sample_process(&self) {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            {
                self.process_resident_memory.set(kb * 1024);
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are fields 14 and 15 of stat: 12 and 13 after the comm.
                let ticks: f64 = [11, 12]
                    .iter()
                    .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
                    .sum();
                let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                    .ok()
                    .flatten()
                    .unwrap_or(100) as f64;
                self.process_cpu_seconds.set(ticks / hz);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.process_open_fds.set(dir.count() as i64);
        }
    }

    /// The `OpenMetrics` text exposition.
    pub fn encode(&self) -> String {
        self.sample_process();
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let _ = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        out
    }
}
