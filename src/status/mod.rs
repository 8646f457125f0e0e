//! `-status-addr`: what a supervisor, Kubernetes or Prometheus asks a watcher. `GET /health` is
//! 200 while the render loop turns (503 when it has been busy past `stuck_after`, a hung
//! command or render); `GET /ready` is 503 until every template has rendered once and while
//! Consul has been unreachable longer than `-status-consul-timeout`; `GET /metrics` is the
//! `OpenMetrics` text of `metrics`. Nothing served holds the token or template contents.

pub mod metrics;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the endpoints report, updated by the render loop and the Consul client.
pub struct State {
    start: Instant,
    all_rendered: AtomicBool,
    /// Milliseconds since `start` when the loop got busy; 0 while idle.
    busy_since: AtomicU64,
    /// Milliseconds since `start` of the first failure since Consul last answered; 0 when up.
    consul_down_since: AtomicU64,
    stuck_after_ms: AtomicU64,
    consul_timeout_ms: AtomicU64,
    /// Dedup mode: templates rendered from shared data no leader holds, and since when.
    dedup_stale: std::sync::Mutex<std::collections::BTreeMap<String, Instant>>,
}

/// The process-wide state.
pub fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| State {
        start: Instant::now(),
        all_rendered: AtomicBool::new(false),
        busy_since: AtomicU64::new(0),
        consul_down_since: AtomicU64::new(0),
        stuck_after_ms: AtomicU64::new(u64::MAX),
        consul_timeout_ms: AtomicU64::new(60_000),
        dedup_stale: std::sync::Mutex::new(std::collections::BTreeMap::new()),
    })
}

impl State {
    fn now_ms(&self) -> u64 {
        (self.start.elapsed().as_millis() as u64).max(1)
    }

    /// When /health turns 503 (loop busy that long) and /ready does (Consul down that long).
    pub fn configure(&self, stuck_after: Duration, consul_timeout: Duration) {
        self.stuck_after_ms
            .store(stuck_after.as_millis() as u64, Ordering::Relaxed);
        self.consul_timeout_ms
            .store(consul_timeout.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn set_all_rendered(&self) {
        self.all_rendered.store(true, Ordering::Relaxed);
    }

    /// The loop starts rendering or delivering.
    pub fn busy(&self) {
        let _ = self.busy_since.compare_exchange(
            0,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The loop waits for the next event.
    pub fn idle(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// Consul answered.
    pub fn consul_ok(&self) {
        self.consul_down_since.store(0, Ordering::Relaxed);
        metrics::get().consul_up.set(1);
    }

    /// A request to Consul failed (no answer, or 5xx).
    pub fn consul_failed(&self) {
        let _ = self.consul_down_since.compare_exchange(
            0,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        metrics::get().consul_up.set(0);
    }

    /// Dedup mode: `template` renders from shared data no leader has held past `max_stale`
    /// (or no longer does). /ready stays 200 (the file is still the last good render) and says so.
    pub fn dedup_stale(&self, template: &str, stale: bool) {
        let mut map = self
            .dedup_stale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stale {
            map.entry(template.to_string()).or_insert_with(Instant::now);
        } else {
            map.remove(template);
        }
    }

    fn health(&self) -> (StatusCode, String) {
        let since = self.busy_since.load(Ordering::Relaxed);
        let busy = if since == 0 { 0 } else { self.now_ms() - since };
        if busy > self.stuck_after_ms.load(Ordering::Relaxed) {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "stuck: the render loop has been busy for {} s\n",
                    busy / 1000
                ),
            )
        } else {
            (StatusCode::OK, "ok\n".into())
        }
    }

    fn ready(&self) -> (StatusCode, String) {
        if !self.all_rendered.load(Ordering::Relaxed) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: waiting for the first render of every template\n".into(),
            );
        }
        let since = self.consul_down_since.load(Ordering::Relaxed);
        let down = if since == 0 { 0 } else { self.now_ms() - since };
        if since != 0 && down > self.consul_timeout_ms.load(Ordering::Relaxed) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: Consul has been unreachable for {} s\n",
                    down / 1000
                ),
            );
        }
        let stale = self
            .dedup_stale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stale.is_empty() {
            return (StatusCode::OK, "ready\n".into());
        }
        let mut body = String::from("ready\n");
        for (template, since) in stale.iter() {
            body.push_str(&format!(
                "stale: dedup template {template} renders from shared data no leader has held for {} s\n",
                since.elapsed().as_secs()
            ));
        }
        (StatusCode::OK, body)
    }
}

/// `HOST:PORT`, `:PORT` or `PORT` (then 127.0.0.1).
/// The status server's address is unusable or cannot be bound.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("-status-addr {0:?}: expected HOST:PORT, :PORT or PORT")]
    Address(String),
    #[error("-status-addr {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub fn parse_addr(s: &str) -> Result<SocketAddr, StatusError> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| StatusError::Address(s.into()))
}

/// Binds `addr` and serves the endpoints on the current tokio runtime; the bound address.
pub async fn serve(addr: &str) -> Result<SocketAddr, StatusError> {
    let addr = parse_addr(addr)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StatusError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StatusError::Bind { addr, source })?;
    let app = axum::Router::new()
        .route("/health", get(|| async { state().health() }))
        .route("/ready", get(|| async { state().ready() }))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics::get().encode(),
                )
                    .into_response()
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the status server stopped");
        }
    });
    tracing::info!(addr = %bound, "status server listening (/health, /ready, /metrics)");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(parse_addr(":8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(parse_addr("0.0.0.0:9").unwrap().to_string(), "0.0.0.0:9");
        assert!(parse_addr("nope").is_err());
    }

    #[test]
    fn metrics_encode_as_openmetrics() {
        let m = metrics::get();
        m.renders
            .get_or_create(&metrics::TemplateResult {
                template: "t".into(),
                result: "ok".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("consul_render_renders_total{template=\"t\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
