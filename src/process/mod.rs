//! Child processes: template commands (and, later, check commands and the exec child).
//!
//! A command string with whitespace runs under `sh -c`, else it is exec'd directly
//! (consul-template's rule). Each runs in its own process group so a timeout kills the whole
//! tree. Its stderr is passed through to ours and its tail kept for the error message.

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How much of a command's stderr an error message quotes.
const TAIL_BYTES: usize = 2048;

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code, or 128+N when killed by signal N.
    pub code: i32,
    pub timed_out: bool,
    pub stderr_tail: String,
    pub duration: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
}

/// Builds the command for consul-template's command list.
pub fn command_for(argv: &[String]) -> Result<Command> {
    let first = argv.first().context("the command is empty")?;
    let mut cmd = if argv.len() == 1 && first.contains(char::is_whitespace) {
        let mut c = Command::new("sh");
        c.arg("-c").arg(first);
        c
    } else {
        let mut c = Command::new(first);
        c.args(&argv[1..]);
        c
    };
    cmd.stdin(Stdio::null()).process_group(0);
    Ok(cmd)
}

/// Shows a command list as the user wrote it.
pub fn display(argv: &[String]) -> String {
    argv.join(" ")
}

/// Runs `argv` with extra `env`, killing its process group after `timeout`.
pub fn run(argv: &[String], env: &[(String, String)], timeout: Duration) -> Result<Finished> {
    let mut cmd = command_for(argv)?;
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting command {:?}", display(argv)))?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut stderr = child.stderr.take().context("command stderr")?;
    let tail = std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let mut ours = std::io::stderr();
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = std::io::Write::write_all(&mut ours, &buf[..n]);
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > TAIL_BYTES * 2 {
                        tail.drain(..tail.len() - TAIL_BYTES);
                    }
                }
            }
        }
        let start = tail.len().saturating_sub(TAIL_BYTES);
        String::from_utf8_lossy(&tail[start..])
            .trim_end()
            .to_string()
    });
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = match rx.recv_timeout(timeout) {
        Ok(()) => false,
        Err(_) => {
            let _ = killpg(pid, Signal::SIGKILL);
            true
        }
    };
    let status = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("command waiter panicked"))?
        .with_context(|| format!("waiting for command {:?}", display(argv)))?;
    if timed_out {
        // Anything the command left in its group must not keep our stderr pipe open.
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let stderr_tail = tail.join().unwrap_or_default();
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Finished {
        code,
        timed_out,
        stderr_tail,
        duration: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_and_direct_forms() {
        let f = run(&["exit 3".into()], &[], Duration::from_secs(10)).unwrap();
        assert_eq!(f.code, 3);
        let f = run(&["true".into()], &[], Duration::from_secs(10)).unwrap();
        assert!(f.success());
    }

    #[test]
    fn stderr_tail_and_env() {
        let f = run(
            &["echo \"oops $X\" >&2; exit 1".into()],
            &[("X".into(), "42".into())],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(f.stderr_tail, "oops 42");
        assert_eq!(f.code, 1);
    }

    #[test]
    fn timeout_kills_the_group() {
        let f = run(
            &["sleep 30 & sleep 30".into()],
            &[],
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(f.timed_out);
        assert!(f.duration < Duration::from_secs(10));
    }
}
