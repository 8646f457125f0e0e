//! Consul's sessions (`/v1/session/*`, the session API documentation): create with a node, its
//! checks, a behavior, a TTL and a lock delay; renew, destroy, info, list, node. A session is
//! invalidated when destroyed, when its TTL runs out unrenewed (Consul's timer is twice the TTL),
//! when its node is deregistered, or when one of its checks is deregistered or turns critical.
//! Its locks are then released (`release`) or their keys deleted (`delete`), and those keys
//! cannot be acquired again until the lock delay has passed. KV's `?acquire=` and `?release=`
//! are in `writes.rs`.

use crate::blocking::{blocking, params, Params, Read};
use crate::state::{field, lock, Data, St};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Consul's default `session_ttl_min`.
pub const DEFAULT_TTL_MIN: Duration = Duration::from_secs(10);
const TTL_MAX: Duration = Duration::from_secs(86_400);
const LOCK_DELAY_DEFAULT: Duration = Duration::from_secs(15);
const LOCK_DELAY_MAX: Duration = Duration::from_secs(60);
/// Consul invalidates a session whose TTL ran out only after twice the TTL.
const TTL_MULTIPLIER: u32 = 2;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Behavior {
    Release,
    Delete,
}

#[derive(Clone, Debug)]
pub(crate) struct SimSession {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) lock_delay: Duration,
    pub(crate) behavior: Behavior,
    /// As given, and parsed.
    pub(crate) ttl: Option<(String, Duration)>,
    pub(crate) node_checks: Vec<String>,
    pub(crate) create: u64,
    pub(crate) modify: u64,
    /// When an unrenewed TTL session is invalidated.
    pub(crate) deadline: Option<Instant>,
}

fn session_json(d: &Data, s: &SimSession) -> Value {
    json!({"ID": s.id, "Name": s.name, "Node": s.node,
           "LockDelay": u64::try_from(s.lock_delay.as_nanos()).unwrap_or(u64::MAX),
           "Behavior": if s.behavior == Behavior::Delete { "delete" } else { "release" },
           "TTL": s.ttl.as_ref().map_or("", |(t, _)| t.as_str()),
           "NodeChecks": s.node_checks, "ServiceChecks": Value::Null,
           "CreateIndex": d.reported(s.create), "ModifyIndex": d.reported(s.modify)})
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, msg.into()).into_response()
}

/// A new session ID, in a UUID's shape.
fn new_id(d: &Data) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(d.index);
        h.write_usize(i);
        h.write_usize(d.sessions.len());
        *w = h.finish();
    }
    let hex = format!("{:016x}{:016x}", words[0], words[1]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A duration as Consul reads `LockDelay`: a Go duration string, or a number (nanoseconds, or
/// seconds when under 1,000, as Consul's `FixupLockDelay` reads small numbers).
fn lock_delay(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => consul_render::config::duration::parse(s)
            .map_err(|e| format!("Request decode failed: LockDelay {s:?}: {e}")),
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(0.0).max(0.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let d = if n < 1000.0 {
                Duration::from_secs_f64(n)
            } else {
                Duration::from_nanos(n as u64)
            };
            Ok(d)
        }
        Value::Null => Ok(LOCK_DELAY_DEFAULT),
        _ => Err("Request decode failed: LockDelay".into()),
    }
}

/// `PUT /v1/session/create`.
pub(crate) async fn create(State(st): State<St>, body: Bytes) -> Response {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("Request decode failed: {e}"),
                )
            }
        }
    };
    let text = |k: &str| {
        field(&v, k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let delay = match lock_delay(field(&v, "LockDelay").unwrap_or(&Value::Null)) {
        Ok(d) if d > LOCK_DELAY_MAX => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Lock delay must be less than or equal to {LOCK_DELAY_MAX:?}"),
            )
        }
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let behavior = match text("Behavior").as_str() {
        "" | "release" => Behavior::Release,
        "delete" => Behavior::Delete,
        other => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Invalid session behavior setting '{other}'"),
            )
        }
    };
    let ttl_text = text("TTL");
    let mut d = lock(&st.data);
    let ttl = if ttl_text.is_empty() {
        None
    } else {
        let parsed = consul_render::config::duration::parse(&ttl_text).ok();
        match parsed {
            Some(t) if t.is_zero() => None,
            Some(t) if t >= d.session_ttl_min && t <= TTL_MAX => Some((ttl_text, t)),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Request decode failed: Invalid Session TTL '{ttl_text}', must be between [{:?}={:?}]",
                        d.session_ttl_min, TTL_MAX
                    ),
                )
            }
        }
    };
    let node = match text("Node") {
        n if n.is_empty() => d.agent_node.clone(),
        n => n,
    };
    if !d.nodes.contains_key(&node) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Missing node registration",
        );
    }
    let checks: Vec<String> = field(&v, "NodeChecks")
        .or_else(|| field(&v, "Checks"))
        .and_then(Value::as_array)
        .map_or_else(
            || vec!["serfHealth".to_string()],
            |a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            },
        );
    for c in &checks {
        if let Err(e) = check_usable(&d, &node, c) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    let idx = d.bump();
    let id = new_id(&d);
    let deadline = ttl
        .as_ref()
        .map(|(_, t)| Instant::now() + *t * TTL_MULTIPLIER);
    d.sessions.insert(
        id.clone(),
        SimSession {
            id: id.clone(),
            name: text("Name"),
            node,
            lock_delay: delay,
            behavior,
            ttl,
            node_checks: checks,
            create: idx,
            modify: idx,
            deadline,
        },
    );
    d.sessions_table = idx;
    drop(d);
    crate::writes::notify(&st);
    Json(json!({"ID": id})).into_response()
}

/// Whether a session may hang on `check` of `node`: it exists and is not critical (a node's
/// `serfHealth` exists on a real agent unless registered otherwise).
fn check_usable(d: &Data, node: &str, check: &str) -> Result<(), String> {
    match d.checks.get(&(node.to_string(), check.to_string())) {
        Some(c) if c.status == "critical" => Err(format!("Check '{check}' is in critical state")),
        Some(_) => Ok(()),
        None if check == "serfHealth" => Ok(()),
        None => Err(format!("Missing check '{check}' registration")),
    }
}

/// `PUT /v1/session/destroy/:id`: true, whether or not it existed.
pub(crate) async fn destroy(State(st): State<St>, Path(id): Path<String>) -> Response {
    if invalidate(&mut lock(&st.data), &id) {
        crate::writes::notify(&st);
    }
    Json(true).into_response()
}

/// `PUT /v1/session/renew/:id`: the session, its TTL timer reset; 404 once it is gone.
pub(crate) async fn renew(State(st): State<St>, Path(id): Path<String>) -> Response {
    let mut d = lock(&st.data);
    let Some(s) = d.sessions.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("Session id '{id}' not found"),
        );
    };
    if let Some((_, t)) = &s.ttl {
        s.deadline = Some(Instant::now() + *t * TTL_MULTIPLIER);
    }
    let s = s.clone();
    Json(json!([session_json(&d, &s)])).into_response()
}

/// `GET /v1/session/info/:id` (blocking): `[session]`, or `[]`.
pub(crate) async fn info(
    State(st): State<St>,
    Path(id): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    sessions_where(&st, raw, move |s| s.id == id).await
}

/// `GET /v1/session/list` (blocking).
pub(crate) async fn list(State(st): State<St>, raw: axum::extract::RawQuery) -> Response {
    sessions_where(&st, raw, |_| true).await
}

/// `GET /v1/session/node/:node` (blocking).
pub(crate) async fn node(
    State(st): State<St>,
    Path(node): Path<String>,
    raw: axum::extract::RawQuery,
) -> Response {
    sessions_where(&st, raw, move |s| s.node == node).await
}

/// The sessions `keep` selects, a blocking read on the sessions table.
async fn sessions_where(
    st: &St,
    raw: axum::extract::RawQuery,
    keep: impl Fn(&SimSession) -> bool,
) -> Response {
    let p = params(raw);
    blocking(st, &p, move |d: &Data, _: &Params| {
        let out: Vec<Value> = d
            .sessions
            .values()
            .filter(|s| keep(s))
            .map(|s| session_json(d, s))
            .collect();
        Read::Json(Value::Array(out), d.sessions_table)
    })
    .await
}

/// Ends session `id`: its locks released or their keys deleted, as its behavior says, each
/// under its lock delay. False when there was no such session.
pub(crate) fn invalidate(d: &mut Data, id: &str) -> bool {
    let Some(s) = d.sessions.remove(id) else {
        return false;
    };
    let idx = d.bump();
    d.sessions_table = idx;
    let held: Vec<String> =
        d.kv.iter()
            .filter(|(_, e)| e.session == id)
            .map(|(k, _)| k.clone())
            .collect();
    let until = Instant::now() + s.lock_delay;
    for key in held {
        match s.behavior {
            Behavior::Delete => {
                d.kv.remove(&key);
            }
            Behavior::Release => {
                if let Some(e) = d.kv.get_mut(&key) {
                    e.session.clear();
                    e.modify = idx;
                }
            }
        }
        d.kv_index.insert(key.clone(), idx);
        if !s.lock_delay.is_zero() {
            d.lock_delays.insert(key, until);
        }
    }
    true
}

/// Invalidates the sessions whose TTL ran out, or whose node or checks failed. True when any
/// was.
pub(crate) fn enforce(d: &mut Data, now: Instant) -> bool {
    let doomed: Vec<String> = d
        .sessions
        .values()
        .filter(|s| {
            s.deadline.is_some_and(|t| t <= now)
                || !d.nodes.contains_key(&s.node)
                || s.node_checks
                    .iter()
                    .any(|c| check_usable(d, &s.node, c).is_err())
        })
        .map(|s| s.id.clone())
        .collect();
    for id in &doomed {
        invalidate(d, id);
    }
    d.lock_delays.retain(|_, until| *until > now);
    !doomed.is_empty()
}

/// Runs `enforce` for TTLs every 50 ms.
pub(crate) async fn reaper(st: St) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let expired = enforce(&mut lock(&st.data), Instant::now());
        if expired {
            st.changed.send_modify(|g| *g += 1);
        }
    }
}
