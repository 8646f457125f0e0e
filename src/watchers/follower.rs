//! A dependency that follows the change detector: no task while it waits, a fetch task from
//! each wake-up until no wake-up is left (7,500 parked tasks took 8 MB at 5,000 services).

use super::{detect::ticks, Backoff, Event, FirstTicket, Shared, MIN_INTERVAL};
use crate::dependency::Dependency;
use crate::source::Source as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One followed dependency, and how recent its value is.
pub(super) struct Follower {
    pub(super) dep: Dependency,
    /// The Consul index of its last answer: a change no query names refreshes the most
    /// recently changed first (a deploy in progress is likely to change them again).
    pub(super) index: AtomicU64,
    /// When its last fetch got its connection (`ticks`): a refresh for a change seen earlier
    /// than that is not needed, and a sweep counts it as done.
    pub(super) fetched: AtomicU64,
    /// Woken since its task last got a connection for a fetch.
    woken: AtomicBool,
    /// Its task is running (at most one is).
    running: AtomicBool,
    /// No longer followed: its task ends at its next step.
    gone: AtomicBool,
    /// Its task's bookkeeping; `stop` takes it too, so that nothing is sent after it.
    last: Mutex<Last>,
}

#[derive(Default)]
struct Last {
    /// The last value sent, as its fingerprint: the runner keeps the value itself.
    sent: Option<[u8; 32]>,
    /// When the next fetch may start (`ticks`): after an answer that brought no change, the
    /// guard against hot loops (`MIN_INTERVAL`).
    not_before: u64,
}

impl Follower {
    pub(super) fn new(dep: Dependency) -> Follower {
        Follower {
            dep,
            index: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            woken: AtomicBool::new(false),
            running: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            last: Mutex::new(Last::default()),
        }
    }

    fn last(&self) -> MutexGuard<'_, Last> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Its first fetch, ahead of blocking queries (`ticket`).
    pub(super) fn start(self: &Arc<Self>, s: &Shared, ticket: FirstTicket) {
        self.woken.store(true, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
        tokio::spawn(run(s.clone(), self.clone(), Some(ticket)));
    }

    /// Fetches it again: now, or after the fetch under way (which may have begun before the
    /// change that woke it). `s` is the watchers' (values go to the runner).
    pub(super) fn wake(self: &Arc<Self>, s: &Shared) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.gone.load(Ordering::SeqCst) && !self.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(s.clone(), self.clone(), None));
        }
    }

    /// Stops following: nothing is sent once this returns (`run` checks `gone` and sends
    /// under the same lock), not even a fetch under way.
    pub(super) fn stop(&self) {
        let _sending = self.last();
        self.gone.store(true, Ordering::SeqCst);
    }

    fn gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }
}

/// Fetches `f` while it is woken; the rules of `watch_dependency` without blocking queries.
async fn run(s: Shared, f: Arc<Follower>, mut ticket: Option<FirstTicket>) {
    let mut backoff = Backoff::default();
    loop {
        if f.gone() {
            return;
        }
        let wait = f.last().not_before.saturating_sub(ticks());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let permit = s.gate.permits.acquire().await.ok();
        // A wake-up that came while it waited is answered by this fetch, which begins after it.
        f.woken.store(false, Ordering::SeqCst);
        // A first fetch gives its place up once it has its connection.
        drop(ticket.take());
        let started = ticks();
        f.fetched.store(started, Ordering::Relaxed);
        let result = s.sources.fetch(&f.dep, None).await;
        drop(permit);
        match result {
            Ok(answer) => {
                backoff = Backoff::default();
                let (moved, index) =
                    super::next_index(f.index.load(Ordering::Relaxed), answer.index);
                let print = super::fingerprint(answer.value.as_ref());
                let mut last = f.last();
                let changed = last.sent != Some(print);
                last.not_before = if moved && changed {
                    0
                } else {
                    started + MIN_INTERVAL.as_millis() as u64
                };
                if changed && !f.gone() {
                    last.sent = Some(print);
                    // Under the lock, so that `stop` returns before or after it, never during.
                    let sent = s.tx.send(Event::Value(f.dep.clone(), answer.value));
                    drop(last);
                    if sent.is_err() {
                        return;
                    }
                }
                f.index.store(index, Ordering::Relaxed);
            }
            Err(e) => {
                if backoff.wait(&s, &f.dep, e).await.is_err() {
                    return;
                }
                // A dependency that has no value yet keeps its place ahead of blocking queries.
                if f.last().sent.is_none() {
                    ticket = Some(s.gate.ticket());
                }
                f.woken.store(true, Ordering::SeqCst);
            }
        }
        if f.woken.load(Ordering::SeqCst) {
            continue;
        }
        f.running.store(false, Ordering::SeqCst);
        // A wake-up between the two lines above found the task still running: take it.
        if !f.woken.load(Ordering::SeqCst) || f.running.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Retry;
    use crate::source::data::DataSource;
    use crate::source::Sources;
    use tokio::sync::mpsc;

    /// Waits (at most 2 s) until `done` holds.
    async fn until(done: impl Fn() -> bool) -> bool {
        for _ in 0..400 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done()
    }

    #[tokio::test]
    async fn a_follower_fetches_when_woken_sends_only_changes_and_stops_for_good() {
        let data = r#"{"kv": {"app/color": "blue"}}"#;
        let retry = Retry {
            enabled: false,
            attempts: 0,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let s = Shared {
            sources: Arc::new(Sources::data(DataSource::from_json(data).unwrap(), retry)),
            tx,
            gate: Arc::new(super::super::Gate::new(2)),
            wait: Duration::from_secs(1),
            all_rendered: Arc::new(AtomicBool::new(false)),
            every_index: false,
        };
        let (path, dc, query) = crate::dependency::parse_kv("key", "app/color").unwrap();
        let dep = Dependency::Key { path, dc, query };
        let f = Arc::new(Follower::new(dep.clone()));
        f.start(&s, s.gate.ticket());
        match rx.recv().await {
            Some(Event::Value(d, Some(v))) => {
                assert_eq!(d, dep);
                assert_eq!(v["Value"], "blue");
            }
            other => panic!("expected the key's value, got {other:?}"),
        }
        assert!(
            until(|| !f.running.load(Ordering::SeqCst)).await,
            "the task ends"
        );
        // A wake-up fetches again; the same value is not sent again.
        let first = f.fetched.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await;
        f.wake(&s);
        assert!(until(|| f.fetched.load(Ordering::Relaxed) > first).await);
        assert!(until(|| !f.running.load(Ordering::SeqCst)).await);
        assert!(rx.try_recv().is_err(), "an unchanged value is not sent");
        // Stopped: a wake-up starts nothing.
        f.stop();
        let last = f.fetched.load(Ordering::Relaxed);
        f.wake(&s);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(f.fetched.load(Ordering::Relaxed), last);
        assert!(!f.running.load(Ordering::SeqCst));
    }
}
