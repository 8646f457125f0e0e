//! The one reaper: every child of this process (template commands, checks, the exec child) is
//! waited for here and nowhere else, so no two waiters race for an exit status. As PID 1 it also
//! reaps the orphans the kernel hands us, so no zombie stays.
//!
//! A dedicated thread blocks in `waitid(P_ALL, WNOWAIT)`, which only peeks, then reaps that pid
//! under the lock that `spawn` holds while it starts and registers a child: even a child that
//! exits at once is never missed, and std's own `waitpid` for a child whose exec failed never
//! finds its status gone. Nothing else may call `wait` on a child (std's
//! `Child::wait`, tokio's process module).

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

struct Registry {
    waiters: Mutex<HashMap<i32, mpsc::Sender<i32>>>,
    spawned: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reap)
            .expect("starting the reaper thread");
        Registry {
            waiters: Mutex::new(HashMap::new()),
            spawned: Condvar::new(),
        }
    })
}

/// A started child: its pid, and its exit code (128+N when killed by signal N) once it ends.
pub struct Spawned {
    pub pid: i32,
    pub child: Child,
    pub exit: mpsc::Receiver<i32>,
}

/// Starts `cmd`; its exit code arrives on `exit`. Never `wait` on the returned `Child`.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Spawned> {
    start();
    let reg = registry();
    let mut waiters = reg
        .waiters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (tx, exit) = mpsc::channel();
    waiters.insert(pid, tx);
    drop(waiters);
    reg.spawned.notify_all();
    Ok(Spawned { pid, child, exit })
}

fn reap() {
    let reg = loop {
        // The registry is being created by the first spawn; it exists once that returns.
        if let Some(r) = REGISTRY_READY.get() {
            break *r;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    loop {
        // Peek without reaping: std's `Command::spawn` reaps a child whose exec failed with its
        // own `waitpid(pid)` and panics if that child is gone. `spawn` holds the lock while it
        // runs, so reaping only under the lock never takes a status std is about to ask for.
        match waitid(Id::All, WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Ok(peeked) => {
                let Some(pid) = peeked.pid() else { continue };
                let mut waiters = reg
                    .waiters
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (pid, code) = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                    // Reaped by std under the lock (a failed exec), or not an exit: nothing to do.
                    _ => continue,
                };
                // No waiter: an orphan we inherited as PID 1; reaping it is all it needed.
                if let Some(tx) = waiters.remove(&pid.as_raw()) {
                    drop(waiters);
                    let _ = tx.send(code);
                }
            }
            Err(Errno::ECHILD) => {
                // No children: sleep until one is spawned (or a while, for inherited orphans).
                let waiters = reg
                    .waiters
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = reg
                    .spawned
                    .wait_timeout(waiters, Duration::from_millis(500));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

static REGISTRY_READY: OnceLock<&'static Registry> = OnceLock::new();

/// Starts the reaper now (as PID 1, before any child exists, so inherited orphans are reaped).
pub fn start() {
    let _ = REGISTRY_READY.get_or_init(registry);
}
