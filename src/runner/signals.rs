//! Which signal does what in watch mode, as consul-template's CLI decides it: the kill signal
//! (SIGINT by default) stops us; the reload signal (SIGHUP) re-reads config and templates;
//! every other catchable signal goes to the exec child as it is (`docker stop`'s SIGTERM
//! reaches the child as SIGTERM, nginx's graceful SIGQUIT as SIGQUIT). Without an exec child,
//! SIGTERM and SIGINT stop us too (consul-template ignores SIGTERM then; a container's
//! `docker stop` should not have to wait for SIGKILL), and the rest are received and dropped:
//! job-control and alarm signals never stop or kill consul-render.

use super::RunError;
use crate::config::Config;
use nix::sys::signal::Signal as Sig;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A signal we listen for, with its number.
pub type Listener = (Sig, Signal);

/// Signals we can catch and pass on. Not SIGCHLD (ours to reap), SIGPIPE (Rust ignores it;
/// a write reports it), SIGURG, nor the synchronous faults (SEGV, BUS, FPE, ILL, TRAP, ABRT,
/// SYS), which are about our own process.
const FORWARDABLE: &[Sig] = &[
    Sig::SIGHUP,
    Sig::SIGINT,
    Sig::SIGQUIT,
    Sig::SIGTERM,
    Sig::SIGUSR1,
    Sig::SIGUSR2,
    Sig::SIGWINCH,
    Sig::SIGALRM,
    Sig::SIGVTALRM,
    Sig::SIGPROF,
    Sig::SIGCONT,
    Sig::SIGTSTP,
    Sig::SIGTTIN,
    Sig::SIGTTOU,
    Sig::SIGIO,
    Sig::SIGXCPU,
    Sig::SIGXFSZ,
    Sig::SIGPWR,
];

pub fn listen(sig: Sig) -> Result<Listener, RunError> {
    signal(SignalKind::from_raw(sig as i32))
        .map(|s| (sig, s))
        .map_err(|source| RunError::Signal {
            signal: sig,
            source,
        })
}

/// Every signal watch mode handles, sorted by what it does.
pub struct Signals {
    /// Stop (kill signal; SIGTERM and SIGINT without an exec child).
    pub stop: Vec<Listener>,
    /// Re-read config files and templates.
    pub reload: Option<Listener>,
    /// Passed to the exec child (received and dropped without one).
    pub forward: Vec<Listener>,
}

impl Signals {
    pub fn new(cfg: &Config) -> Result<Signals, RunError> {
        let mut stop_set: Vec<Sig> = cfg.kill_signal.into_iter().collect();
        if cfg.exec.is_none() {
            for s in [Sig::SIGTERM, Sig::SIGINT] {
                if !stop_set.contains(&s) && cfg.reload_signal != Some(s) {
                    stop_set.push(s);
                }
            }
        }
        let stop = stop_set
            .iter()
            .map(|s| listen(*s))
            .collect::<Result<Vec<_>, _>>()?;
        let reload = match cfg.reload_signal {
            Some(r) if !stop_set.contains(&r) => Some(listen(r)?),
            _ => None,
        };
        let forward = FORWARDABLE
            .iter()
            .filter(|s| !stop_set.contains(s) && cfg.reload_signal != Some(**s))
            .map(|s| listen(*s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signals {
            stop,
            reload,
            forward,
        })
    }

    /// More listeners for the stop signals (tokio gives each listener every delivery).
    pub fn stop_again(&self) -> Result<Vec<Listener>, RunError> {
        self.stop.iter().map(|(s, _)| listen(*s)).collect()
    }
}

/// Waits for the first of `list`'s signals; which one (never, for an empty list).
pub async fn first(list: &mut [Listener]) -> Sig {
    if list.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for (sig, s) in list.iter_mut() {
            if s.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*sig);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Waits for the reload signal (never, without one).
pub async fn reloaded(reload: &mut Option<Listener>) {
    match reload {
        Some((_, s)) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
