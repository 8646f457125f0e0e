//! Blocking queries (`CONSUL_API.md` §4): `index` and `wait`, the `X-Consul-*` headers, and
//! the query string as Consul parses it.

use crate::state::{lock, Data, St, MAX_WAIT};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::time::Duration;

// ----- blocking reads -----

/// Query parameters of the read endpoints (repeatable `tag` kept as a list).
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(key, _)| key == k)
    }
    pub(crate) fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

pub(crate) fn parse_wait(s: &str) -> Duration {
    consul_render::config::duration::parse(s)
        .unwrap_or(Duration::from_secs(300))
        .min(MAX_WAIT)
}

/// What a read computes: the body (or a status), and the index of the resource it read.
pub(crate) enum Read {
    Json(Value, u64),
    Status(StatusCode, String, u64),
    Raw(Vec<u8>, u64),
    /// A read that reports a table's index but that Consul wakes only when its own entry
    /// changes (its watch set): the entry's own index. A KV key: `kvsGetTxn` reports the KV
    /// table's index and watches the key, so a blocking query on a missing key, asked again
    /// with the index it got, waits for that key, not for every other key's write.
    Watched(Box<Read>, u64),
}

impl Read {
    pub(crate) fn index(&self) -> u64 {
        match self {
            Read::Json(_, i) | Read::Status(_, _, i) | Read::Raw(_, i) => *i,
            Read::Watched(r, _) => r.index(),
        }
    }

    fn watched(&self) -> Option<u64> {
        match self {
            Read::Watched(_, w) => Some(*w),
            _ => None,
        }
    }
}

/// Answers at once, or (with `index`) when the resource's index passes it or `wait` runs out.
pub(crate) async fn blocking(
    st: &St,
    params: &Params,
    read: impl Fn(&Data, &Params) -> Read,
) -> Response {
    let want = params
        .get("index")
        .and_then(|i| i.parse::<u64>().ok())
        .unwrap_or(0);
    let wait = params
        .get("wait")
        .map_or(Duration::from_secs(300), parse_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = st.changed.subscribe();
    // What the first evaluation watched (Consul evaluates once, then waits on the watch set).
    let mut watching: Option<u64> = None;
    loop {
        rx.borrow_and_update();
        let (read, reported, stale) = {
            let d = lock(&st.data);
            if let Some(dc) = params.get("dc") {
                let known = dc == d.datacenter || d.nodes.values().any(|n| n.datacenter == dc);
                if !known {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter")
                        .into_response();
                }
            }
            let r = read(&d, params);
            let reported = d.reported(r.index().max(1));
            (r, reported, params.has("stale"))
        };
        // Consul answers when the index moved either way (a lower one is a reset); once
        // waiting, only when what it watches changed.
        let unchanged = watching.is_some() && watching == read.watched();
        if want == 0 || (reported != want && !unchanged) {
            return respond(read, reported, stale);
        }
        if watching.is_none() {
            watching = read.watched();
        }
        tokio::select! {
            _ = rx.changed() => {}
            () = tokio::time::sleep_until(deadline) => return respond(read, reported, stale),
        }
    }
}

pub(crate) fn respond(read: Read, index: u64, stale: bool) -> Response {
    let mut r = match read {
        Read::Json(v, _) => Json(v).into_response(),
        Read::Status(code, body, _) => (code, body).into_response(),
        Read::Raw(bytes, _) => bytes.into_response(),
        Read::Watched(r, _) => return respond(*r, index, stale),
    };
    let h = r.headers_mut();
    h.insert("X-Consul-Index", HeaderValue::from(index));
    h.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    h.insert(
        "X-Consul-Effective-Consistency",
        HeaderValue::from_static(if stale { "stale" } else { "leader" }),
    );
    r
}

pub(crate) fn params(raw: axum::extract::RawQuery) -> Params {
    let q = raw.0.unwrap_or_default();
    Params(
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
    )
}

pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
