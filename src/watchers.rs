//! Watch mode's eyes: one task per unique dependency, each a loop of blocking queries (past the
//! connection budget, followers of the change detector instead: `detect`, `follower`), and one
//! file watcher for `file` dependencies and the `-data` file. They send `Event`s to the runner.
//!
//! Blocking-query rules (`CONSUL_API.md` §4): an index that goes backwards resets to 0 (fetch
//! afresh), 0 is never sent as a wait index, at least 100 ms pass between two fetches of one
//! dependency unless the first brought a changed value, and only a changed value is sent. At most `max_connections` requests are open at
//! once (`Gate`); a dependency's first fetch goes ahead of blocking queries, which would otherwise
//! hold every connection for a whole wait while new dependencies starve. Errors are retried with the
//! once-mode backoff until every template has rendered once (then they end the run); after that a
//! watcher never gives up and keeps trying at the maximum backoff (consul-template's #2045).

use crate::config::Config;
use crate::dependency::Dependency;
use crate::source::{local, retry, Block, Source, SourceError, Sources};
use notify::{RecursiveMode, Watcher as _};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

mod detect;
mod files;
mod follower;
mod nodes;
use detect::Detector;
use files::FileWatch;
use follower::Follower;
use tokio::time::Instant;

/// Least time between two fetches of one dependency.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long a file must be quiet after an event before it is read (editors write in steps).
const FILE_SETTLE: Duration = Duration::from_millis(30);

/// What the watchers tell the runner.
#[derive(Debug)]
pub enum Event {
    /// A dependency's value (`None` = does not exist), sent when it changed.
    Value(Dependency, Option<Value>),
    /// A dependency failed for good before every template rendered once.
    Failed(Dependency, String),
    /// A change detector's broad query answered, with Consul's index (`X-Consul-Index`).
    Broad(Dependency, Option<Value>, u64),
}

/// The cap on open requests, with first fetches ahead of blocking queries.
struct Gate {
    permits: Semaphore,
    /// Watchers started whose first fetch has no permit yet.
    first_waiting: AtomicUsize,
    /// Wakes blocking queries when no first fetch waits any more.
    first_done: Notify,
    /// Asks one open blocking query to hand its permit back (it is asked again later).
    preempt: Notify,
}

impl Gate {
    fn new(cap: usize) -> Gate {
        Gate {
            permits: Semaphore::new(cap.max(1)),
            first_waiting: AtomicUsize::new(0),
            first_done: Notify::new(),
            preempt: Notify::new(),
        }
    }

    /// Counts a new watcher's first fetch as waiting from now, before its task even runs.
    fn ticket(self: &Arc<Self>) -> FirstTicket {
        self.first_waiting.fetch_add(1, Ordering::SeqCst);
        if self.permits.available_permits() == 0 {
            self.preempt.notify_one();
        }
        FirstTicket(Some(self.clone()))
    }

    /// A permit for a blocking query, once no first fetch is waiting.
    async fn blocking(&self) -> SemaphorePermit<'_> {
        loop {
            let done = self.first_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.first_waiting.load(Ordering::SeqCst) == 0 {
                break;
            }
            done.await;
        }
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    fn first_got_permit(&self) {
        if self.first_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.first_done.notify_waiters();
        }
    }
}

/// A first fetch's place ahead of blocking queries; given up when used or dropped.
struct FirstTicket(Option<Arc<Gate>>);

impl Drop for FirstTicket {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.first_got_permit();
        }
    }
}

/// Settings every dependency task shares.
#[derive(Clone)]
struct Shared {
    sources: Arc<Sources>,
    tx: mpsc::UnboundedSender<Event>,
    gate: Arc<Gate>,
    wait: Duration,
    /// Set by the runner once every template has rendered.
    all_rendered: Arc<AtomicBool>,
    /// Send an answer whose index moved even when its value did not (the change detector's
    /// broad queries: an instance registered without a check moves only the catalog's index).
    every_index: bool,
}

/// When a dependency's task asks again after an answer.
enum Wake {
    /// A blocking query on the last index.
    Blocking,
    /// Never: Consul cannot block on it (the datacenter list).
    Never,
}

/// A watched dependency's task, or its place among the change detector's followers.
enum Task {
    Own(JoinHandle<()>),
    Follows(Arc<Follower>),
}

impl Task {
    /// Stops it. A follower sends nothing once this returns; a task of its own may still be
    /// running elsewhere until its handle, returned here, is awaited.
    fn stop(self) -> Option<JoinHandle<()>> {
        match self {
            Task::Own(t) => {
                t.abort();
                Some(t)
            }
            Task::Follows(f) => {
                f.stop();
                None
            }
        }
    }
}

/// The dependencies the templates use, borrowed from their last renders.
pub type Wanted<'a> = HashSet<&'a Dependency, crate::template::scope::Hasher>;

/// Every running watcher.
pub struct Watchers {
    shared: Shared,
    /// Each watched dependency's task, or its follower.
    tasks: HashMap<Dependency, Task, crate::template::scope::Hasher>,
    files: FileWatch,
    /// Started when there are more dependencies than connections.
    detector: Option<Detector>,
    cap: usize,
}

impl Watchers {
    /// Watchers answering from `sources`; its data file, if any, is watched from the start
    /// (a change reloads it, and the dependencies it answers see the new values).
    pub fn new(
        cfg: &Config,
        sources: Arc<Sources>,
        tx: mpsc::UnboundedSender<Event>,
        all_rendered: Arc<AtomicBool>,
    ) -> Watchers {
        let files = FileWatch::new(tx.clone(), sources.clone());
        Watchers {
            shared: Shared {
                sources,
                tx,
                gate: Arc::new(Gate::new(cfg.consul.max_connections as usize)),
                wait: cfg.consul.block_query_wait,
                all_rendered,
                every_index: false,
            },
            tasks: HashMap::default(),
            files,
            detector: None,
            cap: cfg.consul.max_connections as usize,
        }
    }

    /// Starts watchers for `wanted` dependencies not watched yet and stops the others. Returns
    /// the dependencies no longer watched.
    ///
    /// With more Consul dependencies than `max_connections`, service and key dependencies follow
    /// the change detector instead of holding a blocking query each (`detect`).
    pub fn sync(&mut self, wanted: &Wanted<'_>) -> Vec<Dependency> {
        let detect = !self.shared.sources.is_data()
            && wanted.iter().filter(|d| d.is_consul()).count() > self.cap;
        let follows = |dep: &Dependency| detect && detect::followable(dep);
        let gone: Vec<Dependency> = self
            .tasks
            .keys()
            .filter(|d| !wanted.contains(d))
            .cloned()
            .collect();
        // A dependency that changes between blocking and following is started again.
        let switched: Vec<Dependency> = self
            .tasks
            .iter()
            .filter(|(d, t)| wanted.contains(d) && matches!(t, Task::Follows(_)) != follows(d))
            .map(|(d, _)| d.clone())
            .collect();
        for dep in gone.iter().chain(&switched) {
            self.unwatch(dep);
        }
        for &dep in wanted {
            if self.tasks.contains_key(dep) {
                continue;
            }
            let task = match dep {
                Dependency::File { path, .. } => {
                    self.files.watch(dep.clone(), path);
                    let tx = self.shared.tx.clone();
                    let dep = dep.clone();
                    Task::Own(tokio::spawn(async move {
                        let value = local::read_dependency(&dep);
                        let _ = tx.send(Event::Value(dep, value));
                    }))
                }
                _ if follows(dep) => {
                    let shared = &self.shared;
                    // A sweep's followers may hold half the connections waiting at the gate.
                    let detector = self
                        .detector
                        .get_or_insert_with(|| Detector::new(shared, (self.cap / 2).max(1)));
                    let f = detector.follow(dep);
                    f.start(shared, shared.gate.ticket());
                    Task::Follows(f)
                }
                _ => {
                    let wake = if matches!(dep, Dependency::Datacenters { .. }) {
                        Wake::Never
                    } else {
                        Wake::Blocking
                    };
                    Task::Own(tokio::spawn(watch_dependency(
                        self.shared.clone(),
                        dep.clone(),
                        self.shared.gate.ticket(),
                        wake,
                    )))
                }
            };
            self.tasks.insert(dep.clone(), task);
        }
        gone
    }

    /// Stops `dep`'s watcher; the handle of a task to wait for (`Task::stop`).
    fn unwatch(&mut self, dep: &Dependency) -> Option<JoinHandle<()>> {
        if let Dependency::File { path, .. } = dep {
            self.files.forget(path);
        }
        let task = self.tasks.remove(dep)?;
        if let (Task::Follows(f), Some(d)) = (&task, self.detector.as_mut()) {
            d.unfollow(f);
        }
        task.stop()
    }

    /// Stops every watcher and returns once none of them can send anything more: what they
    /// had sent is all in the channel. Returns the dependencies they watched.
    pub async fn stop_all(&mut self) -> Vec<Dependency> {
        let deps: Vec<Dependency> = self.tasks.keys().cloned().collect();
        let running: Vec<JoinHandle<()>> = deps.iter().filter_map(|d| self.unwatch(d)).collect();
        for task in running {
            // Cancelled at its next await, or already done: either way it sends no more.
            let _ = task.await;
        }
        deps
    }

    /// How many dependencies are watched.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Stops every watcher; in-flight queries are dropped.
    pub fn stop(&mut self) {
        for (_, task) in self.tasks.drain() {
            // Not waited for: nothing reads the channel after this.
            let _ = task.stop();
        }
        self.detector = None;
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One dependency's loop of blocking queries.
async fn watch_dependency(s: Shared, dep: Dependency, ticket: FirstTicket, wake: Wake) {
    let mut ticket = Some(ticket);
    let mut index: u64 = 0;
    // The last value sent, as its fingerprint: the runner keeps the value itself.
    let mut last: Option<[u8; 32]> = None;
    // When the last answer brought no change (same index, one that went backwards, or a new
    // index with the same data: CONSUL_API.md §4.4) or was an error, the next query waits until
    // MIN_INTERVAL after the last one: the guard against hot loops. An answer that changed the
    // value is followed at once, so back-to-back changes (a deploy registering instances one
    // after another) are not held back 100 ms each.
    let mut last_fetch: Option<Instant> = None;
    let mut pace = false;
    let mut backoff = Backoff::default();
    let blocking = matches!(wake, Wake::Blocking);
    loop {
        if let Some(at) = last_fetch.filter(|_| pace) {
            tokio::time::sleep_until(at + MIN_INTERVAL).await;
        }
        last_fetch = Some(Instant::now());
        let block = (blocking && index > 0).then_some(Block {
            index,
            wait: s.wait,
        });
        let result = match (ticket.take(), block) {
            (Some(first), _) => {
                // The first fetch goes ahead of every blocking query.
                let permit = s.gate.permits.acquire().await.ok();
                drop(first);
                let r = s.sources.fetch(&dep, None).await;
                drop(permit);
                r
            }
            (None, Some(b)) => {
                let _permit = s.gate.blocking().await;
                let preempted = s.gate.preempt.notified();
                tokio::select! {
                    r = s.sources.fetch(&dep, Some(b)) => r,
                    () = preempted => {
                        // A new dependency needs the connection: ask again later, same index.
                        last_fetch = None;
                        continue;
                    }
                }
            }
            (None, None) => {
                let _permit = s.gate.permits.acquire().await;
                s.sources.fetch(&dep, None).await
            }
        };
        match result {
            Ok(f) => {
                backoff = Backoff::default();
                let moved;
                (moved, index) = next_index(index, f.index);
                let print = fingerprint(f.value.as_ref());
                let changed = last != Some(print);
                pace = !(moved && changed);
                if changed || (s.every_index && moved) {
                    last = Some(print);
                    let event = if s.every_index {
                        Event::Broad(dep.clone(), f.value, f.index)
                    } else {
                        Event::Value(dep.clone(), f.value)
                    };
                    if s.tx.send(event).is_err() {
                        return;
                    }
                }
                if let Wake::Never = wake {
                    std::future::pending::<()>().await;
                }
            }
            Err(e) => {
                if backoff.wait(&s, &dep, e).await.is_err() {
                    return;
                }
                // Start the next query afresh: the error may have been a reset.
                last_fetch = None;
                // A dependency that has no value yet keeps its place ahead of blocking queries:
                // behind them, its retry would wait for a permit for up to a whole wait.
                if last.is_none() {
                    ticket = Some(s.gate.ticket());
                }
            }
        }
    }
}

/// An answer's `X-Consul-Index` after the last one kept: whether it moved forward, and the
/// index to keep. One that went backwards means the server state was reset: start over from 0
/// (never sent as a wait index).
fn next_index(last: u64, answer: u64) -> (bool, u64) {
    (answer > last, if answer < last { 0 } else { answer.max(1) })
}

/// A dependency's retries after errors: the once-mode backoff until every template has
/// rendered once (then an error ends the run), after that the maximum backoff for ever.
#[derive(Default)]
struct Backoff {
    delays: Option<Box<dyn Iterator<Item = Duration> + Send>>,
    failures: u32,
}

impl Backoff {
    /// Waits before the next try after `e`; `Err` when the dependency gave up (the runner has
    /// been told).
    async fn wait(&mut self, s: &Shared, dep: &Dependency, e: SourceError) -> Result<(), ()> {
        self.failures += 1;
        let rendered = s.all_rendered.load(Ordering::Relaxed);
        let give_up = |msg: String| {
            let _ = s.tx.send(Event::Failed(dep.clone(), msg));
            Err(())
        };
        let policy = s.sources.retry();
        if !rendered && (matches!(e, SourceError::Fatal(_)) || !policy.enabled) {
            return give_up(e.to_string());
        }
        let steps = self
            .delays
            .get_or_insert_with(|| Box::new(retry::delays(policy, false)));
        let wait = match steps.next() {
            Some(d) => d,
            None if rendered => policy.max_backoff.max(policy.backoff),
            None => {
                let failures = self.failures;
                return give_up(format!("{e} (gave up after {failures} attempts)"));
            }
        };
        tracing::warn!(
            dependency = %dep,
            attempt = self.failures,
            "{e}; retrying in {}ms",
            wait.as_millis()
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// A value's fingerprint (SHA-256 of its JSON), which a watcher keeps to tell whether an answer
/// changed: a copy of every value would double what thousands of dependencies take.
pub(crate) fn fingerprint(value: Option<&Value>) -> [u8; 32] {
    use sha2::Digest as _;
    struct Hashing(sha2::Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(sha2::Sha256::new());
    match value {
        // Writing to a hash cannot fail, and a Value always serializes.
        Some(v) => {
            h.0.update(b"some:");
            let _ = serde_json::to_writer(&mut h, v);
        }
        None => h.0.update(b"none"),
    }
    h.0.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::fingerprint;
    use serde_json::json;

    #[test]
    fn a_fingerprint_tells_values_apart() {
        let a = json!([{"ID": "web-1", "Port": 8080}]);
        let b = json!([{"ID": "web-1", "Port": 8081}]);
        assert_eq!(fingerprint(Some(&a)), fingerprint(Some(&a.clone())));
        assert_ne!(fingerprint(Some(&a)), fingerprint(Some(&b)));
        // A missing key is not a key holding null.
        assert_ne!(fingerprint(None), fingerprint(Some(&json!(null))));
    }
}
