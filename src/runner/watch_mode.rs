//! Watch mode: keep every template rendered as its dependencies change.
//!
//! The loop: render the templates marked dirty, deliver the complete ones (written and their
//! commands run only when the output differs from the file), start watchers for what the
//! renders used and stop the rest, then wait for the next event, quiescence timer or signal.
//! A change re-renders only the templates that used it; with `-wait min:max` (global or per
//! template) a template is re-rendered once `min` passes without another change, at most `max`
//! after the first; the first render is never delayed.

use super::RunError;
use crate::config::{Config, Exec, Wait};
use crate::dedup::{self, Dedup};
use crate::dependency::Dependency;
use crate::notify::Notifier;
use crate::process::exec::{self, ExecChild};
use crate::runner::signals::{self, Signals};
use crate::runner::{deliver, Job};
use crate::source::consul::ConsulSource;
use crate::source::Sources;
use crate::template::{Missing, Store};
use crate::watchers::{Event, Wanted, Watchers};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why watch mode stopped with an error (exit 14).
pub type WatchError = RunError;

/// Re-reads config files and templates (the reload signal).
pub type Reload<'a> =
    &'a dyn Fn() -> Result<(Config, Vec<Job>), Box<dyn std::error::Error + Send + Sync>>;

/// A template's part in dedup mode.
#[derive(Default)]
enum Role {
    /// Not in dedup mode: it watches everything it uses.
    #[default]
    Alone,
    /// It leads: it watches everything it uses and publishes the Consul values.
    Leader,
    /// It follows: Consul values come from the leader's data (`None`: none yet), local ones
    /// (files) and any Consul value the data lacks are its own to watch.
    Follower(Option<HashSet<Dependency>>),
}

#[derive(Default)]
struct JobState {
    used: crate::template::scope::DepSet,
    rendered_once: bool,
    /// Its last render had every value.
    complete: bool,
    role: Role,
    /// Quiescence in progress: (render at, never later than).
    quiet: Option<(Instant, Instant)>,
    /// What the last incomplete render was waiting for, to log it once.
    waiting: Vec<Missing>,
}

impl JobState {
    fn new(dedup: bool) -> JobState {
        JobState {
            role: if dedup {
                Role::Follower(None)
            } else {
                Role::Alone
            },
            ..JobState::default()
        }
    }

    /// What it watches itself: all it uses, or as a follower what the leader's data lacks.
    fn watched(&self) -> impl Iterator<Item = &Dependency> {
        self.used.iter().filter(|d| match &self.role {
            Role::Alone | Role::Leader => true,
            Role::Follower(None) => !d.is_consul(),
            Role::Follower(Some(shared)) => !d.is_consul() || !shared.contains(*d),
        })
    }

    /// Whether its values come from the leader's data for `dep`.
    fn shares(&self, dep: &Dependency) -> bool {
        matches!(&self.role, Role::Follower(Some(shared)) if shared.contains(dep))
    }

    /// A change arrived: render now, or (re)start quiescence.
    fn changed(&mut self, wait: Option<Wait>, now: Instant) -> bool {
        match wait {
            Some(w) if self.rendered_once && !w.min.is_zero() => {
                let (_, deadline) = *self.quiet.get_or_insert((now + w.min, now + w.max));
                self.quiet = Some(((now + w.min).min(deadline), deadline));
                false
            }
            _ => true,
        }
    }
}

/// Waits for the exec child to exit (never, without one).
async fn child_exit(child: &mut Option<ExecChild>) -> i32 {
    match child {
        Some(c) => c.exited().await,
        None => std::future::pending().await,
    }
}

/// Once mode with -exec: run the child, forward signals, exit with its code.
pub async fn run_child_once(cfg: &Config, exec_cfg: &Exec) -> Result<i32, WatchError> {
    let env = exec::environment(&exec_cfg.env, &deliver::command_env(cfg));
    let mut child = Some(ExecChild::start(exec_cfg, &env).map_err(RunError::Child)?);
    let Signals {
        stop: mut stop_signals,
        forward: mut fwd,
        ..
    } = Signals::new(cfg)?;
    loop {
        tokio::select! {
            code = child_exit(&mut child) => return Ok(code),
            sig = signals::first(&mut fwd) => if let Some(c) = &child { c.signal(sig) },
            _ = signals::first(&mut stop_signals) => {
                let code = match &mut child { Some(c) => c.stop(exec_cfg).await, None => 0 };
                return Ok(code);
            }
        }
    }
}

/// Runs watch mode until a stop signal (Ok: 0, or the exec child's code), the exec child's exit
/// (Ok: its code), or a failure that ends it (Err, exit 14).
pub async fn run(
    mut cfg: Config,
    mut jobs: Vec<Job>,
    sources: Arc<Sources>,
    consul: Option<Arc<ConsulSource>>,
    reload: Reload<'_>,
    notifier: &Notifier,
) -> Result<i32, WatchError> {
    let sigs = Signals::new(&cfg)?;
    // A stop signal that arrives while a delivery runs a command must not wait for it: this
    // listener stops the command's group at once; the loop below then sees its own copy.
    let mut interrupt = sigs.stop_again()?;
    tokio::spawn(async move {
        signals::first(&mut interrupt).await;
        crate::process::stop_running();
    });
    let Signals {
        stop: mut stop_signals,
        reload: mut reload_signal,
        forward: mut fwd,
    } = sigs;
    let mut child: Option<ExecChild> = None;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // With no templates (a plain -exec supervisor) everything is rendered from the start.
    let all_rendered = Arc::new(AtomicBool::new(jobs.is_empty()));
    let mut watchers = Watchers::new(&cfg, sources.clone(), tx, all_rendered.clone());
    let mut store: Arc<Store> = Arc::new(Store::new());
    // Dedup mode (on with a Consul agent): every template follows until it wins its lock.
    let (dedup_tx, mut dedup_rx) = mpsc::unbounded_channel();
    let start_dedup = |cfg: &Config, jobs: &[Job]| {
        let settings = cfg.dedup.as_ref()?;
        let consul = consul.clone()?;
        let ids = jobs.iter().map(|j| j.id.clone()).collect();
        Some(Dedup::start(consul, settings, ids, dedup_tx.clone()))
    };
    let mut dedup = start_dedup(&cfg, &jobs);
    let mut state: Vec<JobState> = jobs
        .iter()
        .map(|_| JobState::new(dedup.is_some()))
        .collect();
    let mut dirty: BTreeSet<usize> = (0..jobs.len()).collect();
    // The first turn always runs (with no templates it only starts the exec child).
    let mut first_turn = true;
    let mut ready_sent = false;
    loop {
        crate::status::state().busy();
        if first_turn || !dirty.is_empty() {
            first_turn = false;
            // Delivery runs check and reload commands synchronously; keep the watchers running.
            let written = tokio::task::block_in_place(|| {
                render_and_deliver(&cfg, &jobs, &mut state, &store, &dirty)
            })?;
            if let Some(d) = &dedup {
                publish(d, &state, &store, &dirty);
            }
            dirty.clear();
            if !all_rendered.load(Ordering::Relaxed) && state.iter().all(|s| s.rendered_once) {
                all_rendered.store(true, Ordering::Relaxed);
                crate::status::state().set_all_rendered();
                tracing::info!(
                    templates = jobs.len(),
                    "all templates rendered; watching for changes"
                );
            }
            if let Some(exec_cfg) = &cfg.exec {
                if child.is_none() && all_rendered.load(Ordering::Relaxed) {
                    // The child starts only once every template has rendered.
                    let env = exec::environment(&exec_cfg.env, &deliver::command_env(&cfg));
                    child = Some(ExecChild::start(exec_cfg, &env).map_err(RunError::Child)?);
                } else if written > 0 {
                    if let Some(c) = &mut child {
                        tokio::time::sleep(exec::splay(exec_cfg.splay)).await;
                        if let Some(sig) = exec_cfg.reload_signal {
                            tracing::info!(signal = %sig, "sending the exec child its reload signal");
                            c.signal(sig);
                        } else {
                            tracing::info!("restarting the exec child");
                            c.stop(exec_cfg).await;
                            let env = exec::environment(&exec_cfg.env, &deliver::command_env(&cfg));
                            *c = ExecChild::start(exec_cfg, &env).map_err(RunError::Child)?;
                        }
                    }
                }
            }
            if !ready_sent && all_rendered.load(Ordering::Relaxed) {
                ready_sent = true;
                notifier.send(&[
                    "READY=1",
                    &format!("STATUS=all {} templates rendered; watching", jobs.len()),
                ]);
            }
            let wanted: Wanted = state.iter().flat_map(JobState::watched).collect();
            for gone in watchers.sync(&wanted) {
                // A value a leader's data gave stays (no watcher of ours kept it).
                if !state.iter().any(|s| s.shares(&gone)) {
                    Arc::make_mut(&mut store).remove(&gone);
                }
            }
            tracing::debug!(dependencies = watchers.len(), "watching");
            crate::status::metrics::get()
                .dependencies
                .set(watchers.len() as i64);
        }
        let next_quiet = state.iter().filter_map(|s| s.quiet.map(|q| q.0)).min();
        crate::status::state().idle();
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return Err(RunError::WatchersStopped) };
                let mut events = vec![ev];
                // Take everything already queued, so a burst of changes costs one render.
                while let Ok(more) = rx.try_recv() {
                    events.push(more);
                }
                let now = Instant::now();
                for ev in events {
                    match ev {
                        Event::Value(dep, value) => {
                            take_value(&mut store, &mut state, &jobs, &cfg, &mut dirty, dep, value, now);
                        }
                        Event::Failed(dep, message) => return Err(RunError::Dependency { dependency: dep.to_string(), message }),
                        // Only the change detector's own queries send these, to it.
                        Event::Broad(..) => {}
                    }
                }
            }
            Some(ev) = dedup_rx.recv() => {
                let now = Instant::now();
                match ev {
                    dedup::Event::Lead(j) => if let Some(s) = state.get_mut(j) {
                        s.role = Role::Leader;
                        dirty.insert(j);
                    },
                    dedup::Event::Follow(j) => if let Some(s) = state.get_mut(j) {
                        s.role = Role::Follower(None);
                        dirty.insert(j);
                    },
                    dedup::Event::Failed(message) => return Err(RunError::Dedup(message)),
                    dedup::Event::Data(j, values) => {
                        if !matches!(state.get(j).map(|s| &s.role), Some(Role::Follower(_))) {
                            continue;
                        }
                        let shared: HashSet<Dependency> = values.iter().map(|(d, _)| d.clone()).collect();
                        // New shared dependencies change what this renderer watches itself: the
                        // render turn (which syncs the watchers) must run even if no value changed.
                        let resync = !matches!(&state[j].role, Role::Follower(Some(old)) if *old == shared);
                        for (dep, value) in values {
                            take_value(&mut store, &mut state, &jobs, &cfg, &mut dirty, dep, value, now);
                        }
                        state[j].role = Role::Follower(Some(shared));
                        if resync {
                            dirty.insert(j);
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(next_quiet.unwrap_or_else(Instant::now)), if next_quiet.is_some() => {
                let now = Instant::now();
                for (j, s) in state.iter_mut().enumerate() {
                    if s.quiet.is_some_and(|(at, _)| at <= now) {
                        s.quiet = None;
                        dirty.insert(j);
                    }
                }
            }
            _ = signals::first(&mut stop_signals) => {
                tracing::info!("stopping");
                notifier.send(&["STOPPING=1", "STATUS=stopping"]);
                watchers.stop();
                if let Some(d) = dedup.take() {
                    d.stop().await;
                }
                return Ok(match (&mut child, &cfg.exec) {
                    (Some(c), Some(exec_cfg)) => c.stop(exec_cfg).await,
                    _ => 0,
                });
            }
            code = child_exit(&mut child) => {
                tracing::info!(code, "the exec child exited; stopping");
                notifier.send(&["STOPPING=1", "STATUS=the exec child exited; stopping"]);
                watchers.stop();
                if let Some(d) = dedup.take() {
                    d.stop().await;
                }
                return Ok(code);
            }
            sig = signals::first(&mut fwd) => {
                if let Some(c) = &child {
                    c.signal(sig);
                }
            }
            () = signals::reloaded(&mut reload_signal) => {
                notifier.reloading();
                let outcome = reload();
                let status = match &outcome {
                    Ok(_) => "STATUS=reloaded configuration and templates".to_string(),
                    Err(e) => format!("STATUS=reload failed, running the previous configuration: {e}"),
                };
                notifier.send(&["READY=1", &status]);
                match outcome {
                    Ok((new_cfg, new_jobs)) => {
                        tracing::info!(templates = new_jobs.len(), "reloaded configuration and templates");
                        if sources.widen_fields(super::job_fields(&new_jobs)) {
                            // Instances fetched so far lack fields the new templates read: fetch
                            // everything again before anything renders from them.
                            tracing::info!("the templates read more instance fields: fetching again");
                            for gone in watchers.stop_all().await {
                                Arc::make_mut(&mut store).remove(&gone);
                            }
                            // What they sent before they stopped is as narrow: stored, it would
                            // render empty fields before the new answers came. None of them
                            // sends after `stop_all`, so the queue holds all of it.
                            while let Ok(ev) = rx.try_recv() {
                                if let Event::Failed(dep, message) = ev {
                                    return Err(RunError::Dependency { dependency: dep.to_string(), message });
                                }
                            }
                        }
                        // Templates may have changed, and with them their locks.
                        if let Some(d) = dedup.take() {
                            d.stop().await;
                        }
                        while dedup_rx.try_recv().is_ok() {}
                        cfg = new_cfg;
                        jobs = new_jobs;
                        dedup = start_dedup(&cfg, &jobs);
                        state = jobs.iter().map(|_| JobState::new(dedup.is_some())).collect();
                        dirty = (0..jobs.len()).collect();
                    }
                    Err(e) => tracing::error!("reload failed, keeping the running configuration: {e}"),
                }
            }
        }
    }
}

/// A dependency's new value: stored, and the templates that use it marked to render (now, or
/// after their quiescence). Nothing when it did not change.
#[allow(clippy::too_many_arguments)]
fn take_value(
    store: &mut Arc<Store>,
    state: &mut [JobState],
    jobs: &[Job],
    cfg: &Config,
    dirty: &mut BTreeSet<usize>,
    dep: Dependency,
    value: Option<serde_json::Value>,
    now: Instant,
) {
    if store.get(&dep) == Some(value.as_ref()) {
        return;
    }
    Arc::make_mut(store).insert(dep.clone(), value);
    for (j, s) in state.iter_mut().enumerate() {
        if s.used.contains(&dep) && s.changed(jobs[j].config.wait.or(cfg.wait), now) {
            dirty.insert(j);
        }
    }
}

/// Dedup mode: what each template this renderer leads rendered from, completely, this turn.
fn publish(d: &Dedup, state: &[JobState], store: &Store, rendered: &BTreeSet<usize>) {
    for &j in rendered {
        let s = &state[j];
        if !matches!(s.role, Role::Leader) || !s.complete {
            continue;
        }
        let values = s
            .used
            .iter()
            .filter(|dep| dep.is_consul())
            .filter_map(|dep| Some((dep.clone(), store.get(dep)?.cloned())))
            .collect();
        d.publish(j, values);
    }
}

/// Renders the dirty templates and delivers the complete ones. A template error ends the run
/// when the template's `error_fatal` (default true) holds, else it is logged and watching goes
/// on; a write error or failing command ends it as `write_and_run` says.
fn render_and_deliver(
    cfg: &Config,
    jobs: &[Job],
    state: &mut [JobState],
    store: &Arc<Store>,
    dirty: &BTreeSet<usize>,
) -> Result<usize, WatchError> {
    let mut ready: Vec<(usize, String)> = Vec::new();
    let metrics = crate::status::metrics::get();
    let count = |job: &Job, result: &str| {
        metrics
            .renders
            .get_or_create(&crate::status::metrics::TemplateResult {
                template: job.name.clone(),
                result: result.into(),
            })
            .inc();
    };
    for &j in dirty {
        let job = &jobs[j];
        match job.engine.render(store.clone()) {
            Ok(r) => {
                state[j].used = r.used;
                state[j].complete = r.missing.is_empty();
                count(
                    job,
                    if r.missing.is_empty() {
                        "ok"
                    } else {
                        "incomplete"
                    },
                );
                if r.missing.is_empty() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    metrics
                        .last_success
                        .get_or_create(&crate::status::metrics::TemplateLabel {
                            template: job.name.clone(),
                        })
                        .set(now);
                    state[j].waiting.clear();
                    ready.push((j, r.output));
                } else {
                    if cfg.err_on_failed_lookup {
                        // consul-template's err_on_failed_lookup: what does not exist is an
                        // error, not something to wait for.
                        let absent: Vec<String> = r
                            .missing
                            .iter()
                            .filter(|m| matches!(m, Missing::Absent(_)))
                            .map(|m| m.dependency().to_string())
                            .collect();
                        if !absent.is_empty() {
                            return Err(RunError::Absent {
                                template: job.name.clone(),
                                missing: absent,
                            });
                        }
                    }
                    log_waiting(job, &mut state[j], r.missing);
                }
            }
            Err(e) => {
                count(job, "error");
                let fatal = job.config.error_fatal;
                if fatal {
                    return Err(e.into());
                }
                tracing::error!(template = %job.name, "{e}");
            }
        }
    }
    if ready.is_empty() {
        return Ok(0);
    }
    let items: Vec<(&Job, &str)> = ready.iter().map(|(j, o)| (&jobs[*j], o.as_str())).collect();
    let mut written = 0;
    if cfg.dry {
        if let Err(e) = deliver::print_dry(cfg, &items) {
            tracing::error!("{e}");
        }
    } else {
        let delivered = deliver::write_and_run(cfg, &items);
        written = delivered.written;
        // consul-template's "Termination on Error": a write error or a failing command ends
        // the run (exit 14) so a supervisor restarts and alerts; a refused check does not
        // (the old file stays, which is what the check is for).
        if delivered.write_failed || (delivered.command_failed && cfg.command_error_fatal) {
            return Err(RunError::Delivery(delivered.problems));
        }
        for problem in delivered.problems {
            tracing::error!("{problem}");
        }
    }
    for (j, _) in &ready {
        state[*j].rendered_once = true;
    }
    Ok(written)
}

/// Logs once what an incomplete render waits for (absent keys and files at warn level).
fn log_waiting(job: &Job, state: &mut JobState, missing: Vec<Missing>) {
    if state.waiting == missing {
        return;
    }
    for m in &missing {
        if !state.waiting.contains(m) {
            match m {
                Missing::Pending(d) => tracing::debug!(template = %job.name, "waiting for {d}"),
                Missing::Absent(d) => {
                    tracing::warn!(template = %job.name, "waiting for {d}: it does not exist");
                }
                Missing::Empty(d) => {
                    tracing::warn!(template = %job.name, "waiting for {d}: it is empty");
                }
            }
        }
    }
    state.waiting = missing;
}

#[cfg(test)]
mod tests;
