//! De-duplication mode (`-dedup`, `deduplicate {}`): renderers of one template elect a leader
//! through a Consul session and lock; the leader watches the template's dependencies and shares
//! the values it rendered from in Consul KV; the others render from those.
//!
//! consul-template's design (`manager/dedup.go`), with two changes the issue asks for: the lock
//! and the data are two keys (`<prefix><template id>/lock`, `…/data`), and the session's
//! behavior is `release`, so the data survives a leader change and a new leader's followers
//! keep rendering from it. Every write of the data acquires it with the leader's session: a
//! leader whose session Consul invalidated cannot write (the lock fences it), and a follower
//! sees the data key lose its holder when the leader's session goes, its cue to take the lock.

use crate::config::Dedup as Settings;
use crate::dependency::Dependency;
use crate::source::consul::{ConsulSource, Reply};
use crate::source::{Block, SourceError};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The shared data's format; a follower ignores data of another version.
const VERSION: u32 = 1;
/// Consul's limit on a KV value.
const MAX_VALUE_BYTES: usize = 512 * 1024;
/// The most a follower inflates shared data to (a value is at most 512 KiB compressed).
const MAX_DATA_BYTES: u64 = 256 * 1024 * 1024;
/// The session's lock delay. consul-template's value: every write is fenced by the lock, so
/// Consul's delay would only add to the failover time.
const LOCK_DELAY: &str = "1ms";
/// How often a renderer that sees no leader tries the lock again.
const CONTEST_EVERY: Duration = Duration::from_millis(250);
/// The pause after a failed request before the next.
const RETRY: Duration = Duration::from_secs(1);
/// The longest pause between two failed session creations (doubling from `RETRY`):
/// consul-template's `sessionCreateRetry`. A token without `session:write` is not asked every
/// second for ever.
const SESSION_RETRY_MAX: Duration = Duration::from_secs(15);

/// What the render loop hears about each template (by its index in the jobs).
#[derive(Debug)]
pub enum Event {
    /// This renderer leads: watch the template's dependencies and publish what it renders from.
    Lead(usize),
    /// It follows (again): render from the leader's data.
    Follow(usize),
    /// The leader's values for the template.
    Data(usize, Vec<(Dependency, Option<Value>)>),
    /// Consul refused the session as asked (400: a TTL out of its range, say): retrying cannot
    /// help, the run ends.
    Failed(String),
}

/// What a leader shares: the values of the Consul dependencies it rendered from.
#[derive(Serialize, Deserialize)]
struct Shared {
    version: u32,
    /// The template's ID: data written under a prefix shared by mistake is not used.
    template: String,
    values: Vec<(Dependency, Option<Value>)>,
}

/// Encodes a leader's values (sorted, so the same values give the same bytes): gzip'd JSON.
pub fn encode(template: &str, mut values: Vec<(Dependency, Option<Value>)>) -> Vec<u8> {
    values.sort_by_cached_key(|(d, _)| d.to_string());
    let shared = Shared {
        version: VERSION,
        template: template.to_string(),
        values,
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing JSON into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut gz, &shared);
    gz.finish().unwrap_or_default()
}

/// Decodes shared data, or says why it cannot be used.
fn decode(template: &str, bytes: &[u8]) -> Result<Vec<(Dependency, Option<Value>)>, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_DATA_BYTES)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip data: {e}"))?;
    let shared: Shared =
        serde_json::from_slice(&json).map_err(|e| format!("not consul-render's data: {e}"))?;
    if shared.version != VERSION {
        return Err(format!(
            "data version {} (this consul-render reads {VERSION})",
            shared.version
        ));
    }
    if shared.template != template {
        return Err(format!("data of another template ({})", shared.template));
    }
    Ok(shared.values)
}

/// A running dedup mode: the session and one contest per template.
pub struct Dedup {
    consul: Arc<ConsulSource>,
    session: watch::Receiver<Option<String>>,
    /// What each template's leader side is to write (encoded), by job index.
    publish: Vec<watch::Sender<Option<Arc<Vec<u8>>>>>,
    templates: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Dedup {
    /// Starts the session and a contest for each template (`ids`: the jobs' template IDs).
    /// Every template starts as a follower; `Event::Lead` says when this renderer leads one.
    pub fn start(
        consul: Arc<ConsulSource>,
        settings: &Settings,
        ids: Vec<String>,
        tx: mpsc::UnboundedSender<Event>,
    ) -> Dedup {
        let (session_tx, session) = watch::channel(None);
        let mut tasks = vec![tokio::spawn(keep_session(
            consul.clone(),
            settings.ttl,
            session_tx,
            tx.clone(),
        ))];
        let mut publish = Vec::new();
        for (job, id) in ids.iter().enumerate() {
            let (ptx, prx) = watch::channel(None);
            publish.push(ptx);
            let contest = Contest {
                consul: consul.clone(),
                job,
                template: id.clone(),
                lock_key: format!("{}{id}/lock", settings.prefix),
                data_key: format!("{}{id}/data", settings.prefix),
                wait: settings.block_query_wait,
                max_stale: settings.max_stale,
                tx: tx.clone(),
            };
            tasks.push(tokio::spawn(contest.run(session.clone(), prx)));
        }
        Dedup {
            consul,
            session,
            publish,
            templates: ids,
            tasks,
        }
    }

    /// A leader's values for template `job`: written to Consul when they differ from the last.
    pub fn publish(&self, job: usize, values: Vec<(Dependency, Option<Value>)>) {
        let (Some(tx), Some(id)) = (self.publish.get(job), self.templates.get(job)) else {
            return;
        };
        let bytes = encode(id, values);
        tx.send_if_modified(|old| {
            if old.as_deref() == Some(&bytes) {
                return false;
            }
            *old = Some(Arc::new(bytes));
            true
        });
    }

    /// Stops contesting and destroys the session: Consul releases its locks at once, and
    /// another renderer leads without waiting for the TTL.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let id = self.session.borrow().clone();
        if let Some(id) = id {
            match call(&self.consul, Method::PUT, &["session", "destroy", &id], "").await {
                Ok(r) if r.status == 200 => tracing::debug!("dedup: session destroyed"),
                Ok(r) => tracing::warn!("dedup: destroying the session: {}", describe(&r)),
                Err(e) => tracing::warn!("dedup: destroying the session: {e}"),
            }
        }
    }
}

impl Drop for Dedup {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One request: PUT with a text body, or GET.
async fn call(
    consul: &ConsulSource,
    method: Method,
    segments: &[&str],
    body: &str,
) -> Result<Reply, SourceError> {
    consul
        .call(method, segments, Vec::new(), body.as_bytes().to_vec(), None)
        .await
}

/// `PATH: STATUS BODY` for a reply that was not what was asked for.
fn describe(r: &Reply) -> String {
    let body = String::from_utf8_lossy(&r.body);
    format!("{}: {} {}", r.path, r.status, body.trim())
}

/// Creates the session and renews it at half its TTL; a new one when Consul says it is gone
/// or no renewal got through for a whole TTL (the leader must assume Consul let it go). A 400
/// on creation ends the run (`Event::Failed`); other failures are retried.
async fn keep_session(
    consul: Arc<ConsulSource>,
    ttl: Duration,
    tx: watch::Sender<Option<String>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let body = serde_json::json!({
        "Name": "consul-render de-duplication",
        "Behavior": "release",
        "TTL": crate::config::duration::format(ttl),
        "LockDelay": LOCK_DELAY,
    })
    .to_string();
    let mut backoff = RETRY;
    loop {
        let id = match call(&consul, Method::PUT, &["session", "create"], &body).await {
            Ok(r) if r.status == 200 => {
                let id = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("ID").and_then(Value::as_str).map(str::to_string));
                if id.is_none() {
                    tracing::error!(
                        "dedup: no session ID in {}; retrying in {backoff:?}",
                        describe(&r)
                    );
                }
                id
            }
            Ok(r) if r.status == 400 => {
                let _ = events.send(Event::Failed(format!(
                    "Consul refused the session (deduplicate {{ ttl = {} }}): {}",
                    crate::config::duration::format(ttl),
                    describe(&r)
                )));
                return;
            }
            Ok(r) => {
                tracing::error!(
                    "dedup: cannot create a session: {}; retrying in {backoff:?}",
                    describe(&r)
                );
                None
            }
            Err(e) => {
                tracing::warn!("dedup: cannot create a session: {e}; retrying in {backoff:?}");
                None
            }
        };
        let Some(id) = id else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SESSION_RETRY_MAX);
            continue;
        };
        backoff = RETRY;
        tracing::info!(session = %id, ttl = ?ttl, "dedup: session created");
        tx.send_replace(Some(id.clone()));
        let mut renewed = Instant::now();
        let mut pause = ttl / 2;
        loop {
            tokio::time::sleep(pause).await;
            match call(&consul, Method::PUT, &["session", "renew", &id], "").await {
                Ok(r) if r.status == 200 => {
                    renewed = Instant::now();
                    pause = ttl / 2;
                }
                Ok(r) if r.status == 404 => {
                    tracing::warn!(session = %id, "dedup: Consul invalidated the session");
                    break;
                }
                other => {
                    let why = match other {
                        Ok(r) => describe(&r),
                        Err(e) => e.to_string(),
                    };
                    if renewed.elapsed() >= ttl {
                        tracing::warn!(session = %id, "dedup: no renewal for a whole TTL ({why}): starting over");
                        break;
                    }
                    tracing::warn!(session = %id, "dedup: renewing the session: {why}");
                    pause = RETRY.min(ttl / 4);
                }
            }
        }
        tx.send_replace(None);
    }
}

/// One template's side of the election.
struct Contest {
    consul: Arc<ConsulSource>,
    job: usize,
    template: String,
    lock_key: String,
    data_key: String,
    wait: Duration,
    max_stale: Duration,
    tx: mpsc::UnboundedSender<Event>,
}

/// The data key as a follower last saw it.
#[derive(Default)]
struct Seen {
    index: u64,
    /// Whether a session held it (a leader is alive).
    held: bool,
    /// Its raw value, to hand on unchanged when this renderer takes over.
    raw: Option<Vec<u8>>,
}

impl Contest {
    async fn run(
        self,
        mut session: watch::Receiver<Option<String>>,
        mut publish: watch::Receiver<Option<Arc<Vec<u8>>>>,
    ) {
        let mut seen = Seen::default();
        // Since when no leader has held the data (a follower then renders from old values).
        let mut leaderless: Option<Instant> = None;
        let mut stale_said = false;
        loop {
            let Ok(id) = session.wait_for(Option::is_some).await.map(|s| s.clone()) else {
                return;
            };
            let Some(id) = id else { continue };
            if !seen.held {
                match self
                    .acquire(&self.lock_key, &id, self.holder().as_bytes())
                    .await
                {
                    Ok(true) => {
                        leaderless = None;
                        self.set_stale(false, &mut stale_said);
                        self.lead(&id, &mut seen, &mut session, &mut publish).await;
                        // Whatever ended it, look at the data afresh.
                        seen.index = 0;
                        seen.held = false;
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(template = %self.template, "dedup: trying the lock: {e}");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
                if seen.index != 0 {
                    tokio::time::sleep(CONTEST_EVERY).await;
                }
            }
            if let Err(e) = self.follow(&mut seen).await {
                tracing::warn!(template = %self.template, "dedup: reading the shared data: {e}");
                tokio::time::sleep(RETRY).await;
            }
            if seen.held {
                leaderless = None;
                self.set_stale(false, &mut stale_said);
            } else if seen.raw.is_some() {
                let since = *leaderless.get_or_insert_with(Instant::now);
                if since.elapsed() > self.max_stale && !stale_said {
                    tracing::warn!(
                        template = %self.template,
                        "dedup: rendering from shared data no leader has held for {:?} (max_stale {:?})",
                        since.elapsed(),
                        self.max_stale
                    );
                    self.set_stale(true, &mut stale_said);
                }
            }
        }
    }

    fn set_stale(&self, stale: bool, said: &mut bool) {
        if *said != stale {
            *said = stale;
            crate::status::state().dedup_stale(&self.template, stale);
        }
    }

    /// What the lock key says about its holder (for people reading Consul's KV).
    fn holder(&self) -> String {
        serde_json::json!({"pid": std::process::id(), "template": self.template}).to_string()
    }

    /// `PUT /v1/kv/<key>?acquire=<session>`: whether the lock is ours.
    async fn acquire(&self, key: &str, session: &str, body: &[u8]) -> Result<bool, String> {
        let mut segments = vec!["kv"];
        segments.extend(key.split('/'));
        let r = self
            .consul
            .call(
                Method::PUT,
                &segments,
                vec![("acquire".into(), session.into())],
                body.to_vec(),
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        match (r.status, r.body.as_slice()) {
            (200, b) if b.trim_ascii() == b"true" => Ok(true),
            (200, _) => Ok(false),
            // Consul: the session was invalidated meanwhile (500 "invalid session").
            (500, b) if String::from_utf8_lossy(b).contains("session") => Ok(false),
            _ => Err(describe(&r)),
        }
    }

    /// Leads until the session goes or a write finds the lock taken: takes the data key (what
    /// the last leader shared stays until this one has its own), then writes each new publish.
    async fn lead(
        &self,
        id: &str,
        seen: &mut Seen,
        session: &mut watch::Receiver<Option<String>>,
        publish: &mut watch::Receiver<Option<Arc<Vec<u8>>>>,
    ) {
        tracing::info!(template = %self.template, "dedup: leading; watching the template's dependencies");
        let _ = self.tx.send(Event::Lead(self.job));
        let mut written: Option<Vec<u8>> = seen.raw.clone();
        let first = written
            .clone()
            .unwrap_or_else(|| encode(&self.template, Vec::new()));
        let mut pending = Some(first);
        // Anything published while following is stale: a new publish follows the leader's render.
        publish.borrow_and_update();
        loop {
            if let Some(bytes) = pending.take() {
                if bytes.len() > MAX_VALUE_BYTES {
                    tracing::error!(
                        template = %self.template,
                        "dedup: the shared data is {} bytes compressed, over Consul's limit of {MAX_VALUE_BYTES}: followers keep the last",
                        bytes.len()
                    );
                } else {
                    match self.acquire(&self.data_key, id, &bytes).await {
                        Ok(true) => written = Some(bytes),
                        Ok(false) => {
                            tracing::warn!(template = %self.template, "dedup: lost the lock; following");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(template = %self.template, "dedup: writing the shared data: {e}");
                            pending = Some(bytes);
                            tokio::select! {
                                () = tokio::time::sleep(RETRY) => continue,
                                r = session.changed() => if r.is_err() || session.borrow().as_deref() != Some(id) { break },
                            }
                        }
                    }
                }
            }
            tokio::select! {
                r = publish.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let next = publish.borrow_and_update().clone();
                    if let Some(b) = next {
                        if written.as_deref() != Some(b.as_slice()) {
                            pending = Some(b.to_vec());
                        }
                    }
                }
                r = session.changed() => {
                    if r.is_err() || session.borrow().as_deref() != Some(id) {
                        tracing::warn!(template = %self.template, "dedup: the session is gone; following");
                        break;
                    }
                }
            }
        }
        seen.raw = written;
        let _ = self.tx.send(Event::Follow(self.job));
    }

    /// One read of the data key (blocking while a leader holds it): hands new data to the
    /// render loop.
    async fn follow(&self, seen: &mut Seen) -> Result<(), String> {
        let mut segments = vec!["kv"];
        segments.extend(self.data_key.split('/'));
        let block = (seen.held && seen.index != 0).then_some(Block {
            index: seen.index,
            wait: self.wait,
        });
        let r = self
            .consul
            .call(Method::GET, &segments, Vec::new(), Vec::new(), block)
            .await
            .map_err(|e| e.to_string())?;
        let entry = match r.status {
            200 => serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v.get(0).cloned())
                .ok_or_else(|| format!("{}: not a KV entry", r.path))?,
            404 => Value::Null,
            _ => return Err(describe(&r)),
        };
        // An index that went backwards: Consul's state was reset; read afresh.
        seen.index = if r.index < seen.index { 0 } else { r.index };
        seen.held = entry
            .get("Session")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let raw = match entry.get("Value").and_then(Value::as_str) {
            Some(b64) => {
                use base64::Engine as _;
                Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("{}: the value is not base64: {e}", r.path))?,
                )
            }
            None => None,
        };
        if raw.is_some() && raw != seen.raw {
            let bytes = raw.as_deref().unwrap_or_default();
            match decode(&self.template, bytes) {
                // A leader elected before its first render: nothing to share yet.
                Ok(values) if values.is_empty() => {}
                Ok(values) => {
                    tracing::debug!(template = %self.template, values = values.len(), "dedup: new shared data");
                    let _ = self.tx.send(Event::Data(self.job, values));
                }
                Err(e) => tracing::warn!(template = %self.template, "dedup: {}: {e}", r.path),
            }
            seen.raw = raw;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_data_round_trips_and_is_the_same_for_the_same_values() {
        let web = Dependency::Key {
            path: "web/colour".into(),
            dc: None,
            query: Vec::new(),
        };
        let nodes = Dependency::Nodes {
            dc: Some("dc2".into()),
            near: None,
            query: Vec::new(),
        };
        let values = vec![(web.clone(), Some(json!("blue"))), (nodes.clone(), None)];
        let a = encode("t1", values.clone());
        let b = encode("t1", values.into_iter().rev().collect());
        assert_eq!(a, b, "the same values in another order give the same bytes");
        let back = decode("t1", &a).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(&(web, Some(json!("blue")))));
        assert!(back.contains(&(nodes, None)));
        assert!(decode("t2", &a).unwrap_err().contains("another template"));
        assert!(decode("t1", b"plain").unwrap_err().contains("gzip"));
    }
}
