//! The exec child (`-exec`, consul-template's exec mode): started once every template has
//! rendered, reloaded by a signal (or restarted) when a pass writes a file, sent the signals we
//! forward, and on shutdown sent the kill signal, then SIGKILL after the kill timeout. Its exit
//! code becomes ours. Waiting goes through the one reaper.

use crate::config::{ChildEnv, Command, Exec};
use crate::glob;
use crate::process::{command_for, reaper, split_words, StartError};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::Duration;

/// A running (or finished) exec child.
pub struct ExecChild {
    pid: Pid,
    /// Started under `sh -c`: signals go to the whole process group, to reach the program.
    shell: bool,
    /// `Some(code)` once it exited.
    exit: tokio::sync::watch::Receiver<Option<i32>>,
}

/// The child's environment: ours (or none, pristine), filtered by the allow and deny lists,
/// plus the custom variables and consul-template's Consul variables.
pub fn environment(cfg: &ChildEnv, consul_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = if cfg.pristine {
        Vec::new()
    } else {
        std::env::vars().collect()
    };
    if !cfg.allowlist.is_empty() {
        env.retain(|(k, _)| cfg.allowlist.iter().any(|g| glob::matches(g, k)));
    }
    env.retain(|(k, _)| !cfg.denylist.iter().any(|g| glob::matches(g, k)));
    for kv in &cfg.custom {
        if let Some((k, v)) = kv.split_once('=') {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
    }
    for (k, v) in consul_env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

impl ExecChild {
    /// Starts the child in its own process group, with `env` as its whole environment.
    pub fn start(cfg: &Exec, env: &[(String, String)]) -> Result<ExecChild, StartError> {
        // A command with no shell syntax runs directly, so it (not a shell around it) gets our
        // signals; consul-template runs it under `sh -c`, where a shell dies of SIGHUP.
        let command = match &cfg.command {
            Command::Shell(text) => {
                split_words(text).map_or_else(|| cfg.command.clone(), Command::Exec)
            }
            direct @ Command::Exec(_) => direct.clone(),
        };
        let shell = matches!(command, Command::Shell(_));
        let mut cmd = command_for(&command);
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        let spawned = reaper::spawn(&mut cmd).map_err(|source| StartError {
            what: "the exec child",
            command: cfg.command.display(),
            source,
        })?;
        let (tx, exit) = tokio::sync::watch::channel(None);
        let rx = spawned.exit;
        std::thread::spawn(move || {
            let code = rx.recv().unwrap_or(-1);
            let _ = tx.send(Some(code));
        });
        let shown = cfg.command.display();
        tracing::info!(pid = spawned.pid, command = %shown, "started the exec child");
        Ok(ExecChild {
            pid: Pid::from_raw(spawned.pid),
            shell,
            exit,
        })
    }

    /// Waits until the child exits; its exit code (128+N when killed by signal N).
    pub async fn exited(&mut self) -> i32 {
        loop {
            if let Some(code) = *self.exit.borrow_and_update() {
                return code;
            }
            if self.exit.changed().await.is_err() {
                return -1;
            }
        }
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: Signal) {
        if self.exit.borrow().is_none() {
            let _ = if self.shell {
                killpg(self.pid, sig)
            } else {
                kill(self.pid, sig)
            };
        }
    }

    /// Stops the child: the kill signal, then SIGKILL (to its whole group) after the timeout.
    pub async fn stop(&mut self, cfg: &Exec) -> i32 {
        if let Some(sig) = cfg.kill_signal {
            self.signal(sig);
        }
        if let Ok(code) = tokio::time::timeout(cfg.kill_timeout, self.exited()).await {
            code
        } else {
            tracing::warn!(
                pid = self.pid.as_raw(),
                "the exec child outlived -exec-kill-timeout: SIGKILL"
            );
            let _ = killpg(self.pid, Signal::SIGKILL);
            self.exited().await
        }
    }
}

/// A random delay in [0, splay).
pub fn splay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u128::from(d.subsec_nanos()));
    Duration::from_nanos((nanos * 2_654_435_761 % max.as_nanos().max(1)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_filters() {
        let cfg = ChildEnv {
            pristine: true,
            custom: vec!["A=1".into(), "B=2".into()],
            denylist: vec!["B".into()],
            ..ChildEnv::default()
        };
        let env = environment(&cfg, &[("CONSUL_HTTP_ADDR".into(), "x:1".into())]);
        assert_eq!(
            env,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("CONSUL_HTTP_ADDR".into(), "x:1".into())
            ]
        );
    }
}
