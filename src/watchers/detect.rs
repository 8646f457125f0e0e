//! Change detection for more dependencies than connections (`CONSUL_API.md` §9): instead of a
//! blocking query each, service and key dependencies ("followers") are fetched once and then
//! only when a few broad blocking queries say they changed:
//! - `/v1/health/state/any`: a check added, changed or removed names its service (Fabio watches
//!   this endpoint alone);
//! - `/v1/catalog/services`: a service added or removed, or its tags changed, names it; an index
//!   that moved with nothing named (an instance registered without a check, a port changed) and
//!   no health change at the same time refreshes every service follower (Traefik's catalog
//!   provider watches these two together);
//! - a recursive KV query on the followers' common prefix: a key whose entry changed names it.

use super::{watch_dependency, Event, Follower, Shared};
use crate::dependency::Dependency;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often a sweep (the refresh of every followed service after a change no query named)
/// wakes more followers: as many as have got their connection since, so that its backlog at the
/// connection gate stays small and a sweep begun again for a newer change is not queued behind
/// the last one.
const SWEEP_TICK: Duration = Duration::from_millis(10);
/// How many of the most recently changed services a sweep takes first; the rest go least
/// recently fetched first, so that sweeps restarted by a stream of changes starve none.
const SWEEP_NEWEST: usize = 64;

/// Milliseconds since the first call: when a follower's fetch started, when a sweep began.
pub(super) fn ticks() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether `dep` can be a follower: a service or key in the agent's datacenter, no query
/// parameters (the broad queries see exactly that scope).
pub(super) fn followable(dep: &Dependency) -> bool {
    match dep {
        Dependency::Service(q) => q.dc.is_none() && q.query.is_empty(),
        Dependency::Key { dc, query, .. } => dc.is_none() && query.is_empty(),
        _ => false,
    }
}

/// The followers and how to wake each.
#[derive(Default)]
struct Registry {
    /// Service name → its followers.
    services: HashMap<String, Vec<Arc<Follower>>>,
    /// Key path → its followers.
    keys: HashMap<String, Vec<Arc<Follower>>>,
}

impl Registry {
    fn wake_service(&self, name: &str, s: &Shared) -> usize {
        self.services.get(name).map_or(0, |list| wake_all(list, s))
    }

    /// Wakes the followers of `name` that may not have seen the write at `index`, first seen
    /// by a broad query at `seen` (`ticks`): those whose last answer is older and whose last
    /// fetch began before it. A node's query and the catalog's or the health query can all
    /// name one write; a follower already woken by the first need not fetch again.
    fn wake_service_unseen(&self, name: &str, index: u64, seen: u64, s: &Shared) -> usize {
        self.services.get(name).map_or(0, |list| {
            wake_all(
                fetched_before(list, seen).filter(|f| f.index.load(Ordering::Relaxed) < index),
                s,
            )
        })
    }

    /// How many service dependencies follow.
    fn followed_services(&self) -> usize {
        self.services.values().map(Vec::len).sum()
    }

    /// Wakes the followed services whose last fetch began before `seen` (`ticks`).
    fn wake_services_fetched_before(&self, seen: u64, s: &Shared) -> usize {
        wake_all(fetched_before(self.services.values().flatten(), seen), s)
    }

    /// The order a sweep refreshes the followed services in: the `SWEEP_NEWEST` most recently
    /// changed (highest Consul index) first, then the least recently fetched.
    fn sweep_order(&self) -> VecDeque<Arc<Follower>> {
        let mut all: Vec<&Arc<Follower>> = self.services.values().flatten().collect();
        all.sort_by_key(|f| std::cmp::Reverse(f.index.load(Ordering::Relaxed)));
        let mut rest = all.split_off(all.len().min(SWEEP_NEWEST));
        rest.sort_by_key(|f| f.fetched.load(Ordering::Relaxed));
        all.into_iter().chain(rest).cloned().collect()
    }

    /// Wakes the followed keys whose last fetch began before `seen` (`ticks`).
    fn wake_keys_fetched_before(&self, seen: u64, s: &Shared) -> usize {
        wake_all(fetched_before(self.keys.values().flatten(), seen), s)
    }

    fn wake_key(&self, path: &str, s: &Shared) -> usize {
        self.keys.get(path).map_or(0, |list| wake_all(list, s))
    }

    /// The longest common prefix of the followed keys, cut after its last `/`.
    fn key_prefix(&self) -> Option<String> {
        let mut keys = self.keys.keys();
        let first = keys.next()?.clone();
        let common = keys.fold(first, |acc, k| {
            let n = acc
                .chars()
                .zip(k.chars())
                .take_while(|(a, b)| a == b)
                .count();
            acc.chars().take(n).collect()
        });
        Some(
            common
                .rfind('/')
                .map_or(String::new(), |i| common[..=i].to_string()),
        )
    }
}

/// The followers whose last fetch began before `seen`. One still waiting for its connection
/// is among them at no cost: the fetch it waits for answers the wake-up.
fn fetched_before<'a>(
    list: impl IntoIterator<Item = &'a Arc<Follower>>,
    seen: u64,
) -> impl Iterator<Item = &'a Arc<Follower>> {
    list.into_iter()
        .filter(move |f| f.fetched.load(Ordering::Relaxed) < seen)
}

/// Wakes every follower in `list`; `s` is the watchers' (the followers' values go to the
/// runner, not to the detector).
fn wake_all<'a>(list: impl IntoIterator<Item = &'a Arc<Follower>>, s: &Shared) -> usize {
    list.into_iter().map(|f| f.wake(s)).count()
}

/// The broad queries and the loop that turns their answers into wake-ups.
pub(super) struct Detector {
    registry: Arc<Mutex<Registry>>,
    shared: Shared,
    health: Option<JoinHandle<()>>,
    catalog: Option<JoinHandle<()>>,
    /// `/v1/catalog/nodes`: a node's own change (its address) moves no other broad query.
    nodes: Option<JoinHandle<()>>,
    kv: Option<(String, JoinHandle<()>)>,
    diff: JoinHandle<()>,
}

impl Detector {
    /// A detector whose broad queries share `shared`'s connections and retry policy.
    pub(super) fn new(shared: &Shared, sweep_batch: usize) -> Detector {
        let (tx, rx) = mpsc::unbounded_channel();
        let registry = Arc::new(Mutex::new(Registry::default()));
        let detector_shared = Shared {
            tx,
            every_index: true,
            ..shared.clone()
        };
        let diff = tokio::spawn(diff_loop(
            rx,
            registry.clone(),
            sweep_batch.max(1),
            detector_shared.clone(),
            shared.clone(),
        ));
        Detector {
            registry,
            shared: detector_shared,
            health: None,
            catalog: None,
            nodes: None,
            kv: None,
            diff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self, dep: Dependency) -> JoinHandle<()> {
        tokio::spawn(watch_dependency(
            self.shared.clone(),
            dep,
            self.shared.gate.ticket(),
            super::Wake::Blocking,
        ))
    }

    /// Registers a follower for `dep`; it is woken when its value may have changed.
    pub(super) fn follow(&mut self, dep: &Dependency) -> Arc<Follower> {
        let f = Arc::new(Follower::new(dep.clone()));
        match dep {
            Dependency::Service(q) => {
                self.lock()
                    .services
                    .entry(q.name.clone())
                    .or_default()
                    .push(f.clone());
                if self.health.is_none() {
                    self.health = Some(self.spawn(Dependency::HealthState));
                    self.catalog = Some(self.spawn(Dependency::ServiceTags));
                    self.nodes = Some(self.spawn(Dependency::Nodes {
                        dc: None,
                        near: None,
                        query: Vec::new(),
                    }));
                }
            }
            Dependency::Key { path, .. } => {
                self.lock()
                    .keys
                    .entry(path.clone())
                    .or_default()
                    .push(f.clone());
                self.watch_prefix();
            }
            _ => {}
        }
        f
    }

    pub(super) fn unfollow(&mut self, f: &Arc<Follower>) {
        let mut r = self.lock();
        let (map, key) = match &f.dep {
            Dependency::Service(q) => (&mut r.services, &q.name),
            Dependency::Key { path, .. } => (&mut r.keys, path),
            _ => return,
        };
        if let Some(list) = map.get_mut(key) {
            list.retain(|g| !Arc::ptr_eq(f, g));
            if list.is_empty() {
                map.remove(key);
            }
        }
        drop(r);
        if matches!(f.dep, Dependency::Key { .. }) {
            self.watch_prefix();
        }
    }

    /// Keeps the KV query on the followed keys' common prefix.
    fn watch_prefix(&mut self) {
        let prefix = self.lock().key_prefix();
        if self.kv.as_ref().map(|(p, _)| p) == prefix.as_ref() {
            return;
        }
        if let Some((_, task)) = self.kv.take() {
            task.abort();
        }
        if let Some(prefix) = prefix {
            let task = self.spawn(Dependency::KeyPrefix {
                prefix: prefix.clone(),
                dc: None,
                query: Vec::new(),
            });
            self.kv = Some((prefix, task));
        }
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        for task in [self.health.take(), self.catalog.take(), self.nodes.take()]
            .into_iter()
            .flatten()
            .chain(self.kv.take().map(|(_, t)| t))
        {
            task.abort();
        }
        self.diff.abort();
    }
}

/// The health and catalog queries' values (`endpoints::check_digests`, `tag_digests`): a
/// number per service, which moves when any of its checks, or its tags, change.
fn digests(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, d)| Some((name.clone(), d.as_u64()?)))
        .collect()
}

/// The names whose entries differ between two maps (added, removed or changed).
fn changed_names<V: PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
) -> Vec<String> {
    let mut names: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Each entry's fingerprint, by its `field` (a node's `Node`, a key's `Path`).
fn fingerprints(v: &Value, field: &str) -> BTreeMap<String, [u8; 32]> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get(field)?.as_str()?.to_string();
            Some((name, super::fingerprint(Some(e))))
        })
        .collect()
}

/// Wakes the followers of `names` that may not have seen the write at `index` (first seen at
/// `seen`).
fn wake_named(
    r: &Registry,
    names: &BTreeSet<String>,
    (index, seen): (u64, u64),
    s: &Shared,
    what: &str,
) {
    if !names.is_empty() {
        let woken: usize = names
            .iter()
            .map(|n| r.wake_service_unseen(n, index, seen, s))
            .sum();
        tracing::debug!(services = ?names, woken, "{what} named services");
    }
}

/// Starts or stops the blocking queries on each node: they run while there are at most
/// `limit` nodes (a quarter of the connection cap: they hold their connections) and four
/// followed services or more per node (else a sweep costs less). Returns the services of the
/// watched nodes gone.
fn keep_node_watches(
    watches: &mut super::nodes::Watches,
    watched: &mut super::nodes::Nodes,
    node_list: Option<&BTreeMap<String, [u8; 32]>>,
    limit: usize,
    registry: &Registry,
    shared: &Shared,
) -> BTreeSet<String> {
    let n = node_list.map_or(0, BTreeMap::len);
    if let Some(list) =
        node_list.filter(|_| n > 0 && n <= limit && n * 4 <= registry.followed_services())
    {
        return watches.keep(shared, list, watched);
    }
    if watches.running() {
        tracing::debug!(nodes = n, "node queries stopped: looks or sweeps instead");
        watches.stop();
        watched.clear();
    }
    BTreeSet::new()
}

/// A broad query's first answer: a follower whose last fetch began before it may hold a value
/// older than the answer, and a change in between would go unseen: it is fetched once more.
/// One whose fetch began since saw everything the answer did (at startup, most of them: the
/// broad queries start before the followers' first fetches).
fn baseline(r: &Registry, what: &str, s: &Shared) {
    let woken = r.wake_services_fetched_before(ticks(), s);
    tracing::debug!(
        woken,
        "{what} baseline: refreshing the followed services fetched before it"
    );
}

/// A refresh of every followed service, woken a batch at a time.
struct Sweep {
    queue: VecDeque<Arc<Follower>>,
    /// Woken, waiting for a connection (and when, in `ticks`).
    waiting: Vec<(Arc<Follower>, u64)>,
    /// When it began: a follower whose fetch started since is fresh already.
    began: u64,
    /// The catalog indexes it is for; it stops when the health query names them all.
    for_indexes: Vec<u64>,
}

impl Sweep {
    /// A sweep for `indexes`, or the running one begun again from the newest (what it already
    /// refreshed may have missed these writes): followers it woke that have not fetched yet are
    /// still queued at the gate and count against this one's batch.
    fn begin(previous: Option<Sweep>, indexes: Vec<u64>, registry: &Registry) -> Sweep {
        let (mut for_indexes, waiting) = previous
            .map(|mut s| {
                s.settle();
                (s.for_indexes, s.waiting)
            })
            .unwrap_or_default();
        for_indexes.extend(indexes);
        let queue = registry.sweep_order();
        tracing::debug!(services = queue.len(), "a change no query named: sweeping");
        Sweep {
            queue,
            waiting,
            began: ticks(),
            for_indexes,
        }
    }

    /// Forgets the woken followers that have got their connection since they were woken (or
    /// are no longer followed, or have waited over `SWEEP_STALE`: a follower in its retry
    /// backoff must not hold the sweep up).
    fn settle(&mut self) {
        let now = ticks();
        self.waiting.retain(|(f, woken)| {
            f.fetched.load(Ordering::Relaxed) < *woken
                && Arc::strong_count(f) > 1
                && now.saturating_sub(*woken) < SWEEP_STALE
        });
    }
}

/// How long a woken follower may wait for its connection before a sweep stops counting it.
const SWEEP_STALE: u64 = 2_000;

/// Turns the broad queries' answers into wake-ups.
///
/// A catalog change that names no service (an instance registered without a check, a port
/// changed) may concern any followed service: a sweep refreshes them all at a bounded rate
/// (at most `batch` woken and waiting for a connection), the most recently changed first. It starts at once; when the health query names the same write
/// (Consul moves both indexes at one raft index, and the health answer, thousands of checks, can
/// come later), the sweep stops.
async fn diff_loop(
    mut rx: mpsc::UnboundedReceiver<Event>,
    registry: Arc<Mutex<Registry>>,
    batch: usize,
    shared: Shared,
    followers: Shared,
) {
    let lock = || {
        registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut health: Option<BTreeMap<String, u64>> = None;
    let mut catalog: Option<BTreeMap<String, u64>> = None;
    // The KV query's prefix and entries (the query restarts when the followed keys' prefix
    // changes; its first answer is then a new baseline).
    let mut kv: Option<(String, BTreeMap<String, [u8; 32]>)> = None;
    // The Consul indexes at which the health query named changed services (the last 64): a
    // catalog change at one of them was the same write.
    let mut named: VecDeque<u64> = VecDeque::new();
    let mut sweep: Option<Sweep> = None;
    // When a broad query first answered with each of the last 64 indexes (`ticks`): the write
    // came before.
    let mut first_seen: VecDeque<(u64, u64)> = VecDeque::new();
    // The catalog node by node (`super::nodes`): the last look, whether one is under way, the
    // unnamed changes it is for, and those that came while it ran (the next look's).
    let mut nodes: Option<super::nodes::Nodes> = None;
    // The node list's entries (address, meta), by name.
    let mut node_list: Option<BTreeMap<String, [u8; 32]>> = None;
    // With few nodes, a blocking query on each instead of looks (`super::nodes::Watches`),
    // and the last answer of each.
    let mut watches = super::nodes::Watches::default();
    let mut watched = super::nodes::Nodes::new();
    let watch_limit = (batch / 2).max(1);
    let mut looking = false;
    let mut look_for: Vec<u64> = Vec::new();
    let mut look_next: Vec<u64> = Vec::new();
    let (look_tx, mut look_rx) = mpsc::unbounded_channel::<Option<super::nodes::Nodes>>();
    let start_look = |looking: &mut bool| {
        *looking = true;
        let (shared, tx) = (shared.clone(), look_tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(super::nodes::look(&shared).await);
        });
    };
    let mut tick = tokio::time::interval(SWEEP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(Event::Broad(dep, value, index)) = ev else {
                    if ev.is_none() { return; }
                    continue;
                };
                let value = value.unwrap_or(Value::Null);
                if !first_seen.iter().any(|(i, _)| *i == index) {
                    if first_seen.len() == 64 {
                        first_seen.pop_front();
                    }
                    first_seen.push_back((index, ticks()));
                }
                // A change no broad query named: look at every node, or sweep.
                let mut unnamed: Option<u64> = None;
                match dep {
                    Dependency::HealthState => {
                        let now = digests(&value);
                        if health.is_none() {
                            baseline(&lock(), "health", &followers);
                        }
                        if let Some(old) = &health {
                            let names = changed_names(old, &now);
                            if !names.is_empty() {
                                if named.len() == 64 {
                                    named.pop_front();
                                }
                                named.push_back(index);
                                let r = lock();
                                let woken: usize = names.iter().map(|n| r.wake_service(n, &followers)).sum();
                                tracing::debug!(services = ?names, woken, "health changed");
                            }
                            if let Some(sw) = &mut sweep {
                                sw.for_indexes.retain(|i| !named.contains(i));
                                if sw.for_indexes.is_empty() {
                                    tracing::debug!(left = sw.queue.len(), "the health query named the write: sweep stopped");
                                    sweep = None;
                                }
                            }
                        }
                        health = Some(now);
                    }
                    Dependency::ServiceTags => {
                        let now = digests(&value);
                        // The followed services may have changed in number since the node list.
                        let gone = keep_node_watches(&mut watches, &mut watched, node_list.as_ref(), watch_limit, &lock(), &shared);
                        wake_named(&lock(), &gone, (u64::MAX, u64::MAX), &followers, "nodes gone");
                        if catalog.is_none() {
                            baseline(&lock(), "catalog", &followers);
                            // The first look at every node, for the next unnamed change.
                            if !looking {
                                start_look(&mut looking);
                            }
                        }
                        if let Some(old) = &catalog {
                            let names = changed_names(old, &now);
                            if !names.is_empty() {
                                let r = lock();
                                let woken: usize = names.iter().map(|n| r.wake_service(n, &followers)).sum();
                                tracing::debug!(services = ?names, woken, "catalog changed");
                            } else if named.contains(&index) {
                                // The health query named this write already.
                            } else if watches.armed() {
                                // A node's query names it.
                            } else {
                                unnamed = Some(index);
                            }
                        }
                        catalog = Some(now);
                    }
                    Dependency::Nodes { .. } => {
                        let now = fingerprints(&value, "Node");
                        let old = node_list.replace(now);
                        let gone = keep_node_watches(&mut watches, &mut watched, node_list.as_ref(), watch_limit, &lock(), &shared);
                        wake_named(&lock(), &gone, (u64::MAX, u64::MAX), &followers, "nodes gone");
                        if !watches.armed() && old.is_some() && old != node_list {
                            // A node itself changed (its address, say): its services may have.
                            unnamed = Some(index);
                        }
                    }
                    Dependency::NodeServices { name } => {
                        let (names, armed_now) = watches.answer(&name, &value, &mut watched);
                        let r = lock();
                        if armed_now {
                            // A change before a node's first answer is in that answer.
                            baseline(&r, "node queries", &followers);
                        }
                        let seen = first_seen.iter().find(|(i, _)| *i == index).map_or_else(ticks, |(_, t)| *t);
                        wake_named(&r, &names, (index, seen), &followers, "a node's query");
                    }
                    Dependency::KeyPrefix { prefix, .. } => {
                        let now = fingerprints(&value, "Path");
                        match &kv {
                            Some((p, old)) if *p == prefix => {
                                let r = lock();
                                for path in changed_names(old, &now) {
                                    r.wake_key(&path, &followers);
                                }
                            }
                            _ => {
                                let woken = lock().wake_keys_fetched_before(ticks(), &followers);
                                tracing::debug!(woken, "key baseline: refreshing every followed key");
                            }
                        }
                        kv = Some((prefix, now));
                    }
                    _ => {}
                }
                if let Some(index) = unnamed {
                    if nodes.as_ref().is_some_and(|n| n.len() * 4 <= lock().followed_services()) {
                        // Few nodes for many services: look at every node, which names the
                        // services that changed.
                        if looking {
                            look_next.push(index);
                        } else {
                            look_for.push(index);
                            start_look(&mut looking);
                        }
                    } else {
                        // Many nodes for the services: refresh every followed service.
                        sweep = Some(Sweep::begin(sweep.take(), vec![index], &lock()));
                        tick.reset_immediately();
                    }
                }
            }
            Some(look) = look_rx.recv() => {
                looking = false;
                let for_indexes = std::mem::take(&mut look_for);
                let names = match (&nodes, &look) {
                    (Some(old), Some(new)) => Some(super::nodes::changed(old, new)),
                    _ => None,
                };
                match names {
                    _ if for_indexes.is_empty() => {}
                    Some(names) if !names.is_empty() => {
                        let r = lock();
                        let woken: usize = names.iter().map(|n| r.wake_service(n, &followers)).sum();
                        tracing::debug!(services = ?names, woken, "the nodes named what the catalog changed");
                    }
                    // Nothing visible per node (or a request failed): every followed service.
                    _ => {
                        sweep = Some(Sweep::begin(sweep.take(), for_indexes, &lock()));
                        tick.reset_immediately();
                    }
                }
                if look.is_some() {
                    nodes = look;
                }
                if !look_next.is_empty() {
                    look_for = std::mem::take(&mut look_next);
                    start_look(&mut looking);
                }
            }
            _ = tick.tick(), if sweep.is_some() => {
                if let Some(sw) = &mut sweep {
                    sw.settle();
                    let began = sw.began;
                    while sw.waiting.len() < batch {
                        let Some(f) = sw.queue.pop_front() else { break };
                        // A fetch that started since the sweep began saw the write.
                        if f.fetched.load(Ordering::Relaxed) < began {
                            f.wake(&followers);
                            sw.waiting.push((f, ticks()));
                        }
                    }
                    if sw.queue.is_empty() && sw.waiting.is_empty() {
                        sweep = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
