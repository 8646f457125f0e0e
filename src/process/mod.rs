//! Child processes: template commands, check commands and the exec child, all waited for by
//! the one reaper (`reaper`).
//!
//! A command string with whitespace runs under `sh -c`, else it is exec'd directly
//! (consul-template's rule). Each runs in its own process group so a timeout kills the whole
//! tree. Its stderr is passed through to ours and its tail kept for the error message; we wait
//! for the command's own exit, never for a pipe that a process it left behind still holds.

pub mod exec;
pub mod reaper;

use crate::config::Command as Cmd;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How much of a command's stderr an error message quotes.
const TAIL_BYTES: usize = 2048;

/// How long, after a command exits, we still wait for the rest of its stderr. A process it left
/// behind (a daemon, `cmd &`) may hold the pipe for ever; we never wait for that.
const STDERR_GRACE: Duration = Duration::from_millis(200);
/// How long a command stopped by our own shutdown gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// Set once consul-render is stopping: running commands are stopped, no new ones wait long.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Stops every running command (SIGTERM to its group, SIGKILL after a grace) and makes `run`
/// return at once: called when a stop signal arrives while a delivery is under way.
pub fn stop_running() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// True once `stop_running` was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    /// The exit code, or 128+N when killed by signal N.
    pub code: i32,
    pub timed_out: bool,
    /// Stopped because consul-render is stopping.
    pub interrupted: bool,
    pub stderr_tail: String,
    pub duration: Duration,
    /// Processes still in the command's group when it ended or was killed (`pid name`).
    pub left_behind: Vec<String>,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == 0 && !self.timed_out && !self.interrupted
    }
}

/// A command that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("starting {what} {command:?}: {source}")]
pub struct StartError {
    /// `command` or `the exec child`.
    pub what: &'static str,
    pub command: String,
    #[source]
    pub source: std::io::Error,
}

/// The process for a command: `sh -c TEXT`, or the program with its arguments; in its own
/// process group, with no stdin.
pub fn command_for(command: &Cmd) -> Command {
    let mut cmd = match command {
        Cmd::Shell(text) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(text);
            c
        }
        Cmd::Exec(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.stdin(Stdio::null()).process_group(0);
    cmd
}

/// Splits a command string into words the way `sh` would, when it holds no shell syntax
/// beyond words and quotes; `None` when it needs a shell (operators, expansions, globs).
pub fn split_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        '$' | '`' => return None,
                        ch => word.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' | ']' | '{'
            | '}' | '~' | '#' | '!' => return None,
            ch => {
                in_word = true;
                word.push(ch);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (!words.is_empty()).then_some(words)
}

/// The last `TAIL_BYTES` of a command's stderr, filled by a thread that also passes it through.
struct StderrTail {
    tail: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl StderrTail {
    fn start(mut stderr: impl Read + Send + 'static) -> StderrTail {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let kept = tail.clone();
        // Detached: a process the command left behind may hold the pipe open for ever, and its
        // output keeps going to our stderr, as it would have without the pipe.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut ours = std::io::stderr();
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = std::io::Write::write_all(&mut ours, &buf[..n]);
                        let mut t = kept
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        t.extend_from_slice(&buf[..n]);
                        if t.len() > TAIL_BYTES * 2 {
                            let cut = t.len() - TAIL_BYTES;
                            t.drain(..cut);
                        }
                    }
                }
            }
            let _ = tx.send(());
        });
        StderrTail { tail, done }
    }

    /// What arrived so far, after waiting at most `grace` for the pipe to close. `true` when it
    /// is still open (someone outside the command still holds it).
    fn finish(self, grace: Duration) -> (String, bool) {
        let held = self.done.recv_timeout(grace).is_err();
        let t = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let start = t.len().saturating_sub(TAIL_BYTES);
        let text = String::from_utf8_lossy(&t[start..]).trim_end().to_string();
        (text, held)
    }
}

/// The processes in group `pgid`, as `pid name`, read from /proc (empty where there is none).
pub fn group_members(pgid: Pid) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        if pgrp == Some(pgid.as_raw()) && state != Some("Z") {
            found.push(format!("{pid} {comm}"));
        }
    }
    found.sort();
    found
}

/// Runs `argv` with extra `env`. Returns when the command itself exits, never waiting for a
/// process it left behind; after `timeout` its whole process group is killed. When consul-render
/// is stopping (`stop_running`), the group gets SIGTERM, then SIGKILL after a short grace.
pub fn run(
    command: &Cmd,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Finished, StartError> {
    run_with(command, env, false, timeout, None)
}

/// How a timed-out command is stopped: `signal` to its group, then SIGKILL after `grace`
/// (a template's `exec { kill_signal kill_timeout }`).
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    pub signal: Signal,
    pub grace: Duration,
}

/// `run`, with `env` as the whole environment when `whole_env`, and `stop` on timeout (default:
/// SIGKILL at once).
pub fn run_with(
    command: &Cmd,
    env: &[(String, String)],
    whole_env: bool,
    timeout: Duration,
    stop: Option<Stop>,
) -> Result<Finished, StartError> {
    let shown = command.display();
    let mut cmd = command_for(command);
    if whole_env {
        cmd.env_clear();
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped());
    let started = Instant::now();
    let started_error = |source| StartError {
        what: "command",
        command: shown.clone(),
        source,
    };
    let mut spawned = reaper::spawn(&mut cmd).map_err(started_error)?;
    let pid = Pid::from_raw(spawned.pid);
    let stderr = spawned
        .child
        .stderr
        .take()
        .ok_or_else(|| started_error(std::io::Error::other("no stderr pipe")))?;
    let tail = StderrTail::start(stderr);
    let deadline = started + timeout;
    let mut timed_out = false;
    let mut interrupted = false;
    let mut left_behind = Vec::new();
    let code = loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            let stop = stop.unwrap_or(Stop {
                signal: Signal::SIGKILL,
                grace: Duration::ZERO,
            });
            break kill_group(pid, &spawned.exit, stop, &mut left_behind);
        }
        if stopping() {
            interrupted = true;
            let stop = Stop {
                signal: Signal::SIGTERM,
                grace: STOP_GRACE,
            };
            break kill_group(pid, &spawned.exit, stop, &mut left_behind);
        }
        let slice = (deadline - now).min(Duration::from_millis(50));
        match spawned.exit.recv_timeout(slice) {
            Ok(code) => break code,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break -1,
        }
    };
    if !timed_out && !interrupted && tracing::enabled!(tracing::Level::DEBUG) {
        // Left running on purpose, perhaps (`nginx -s reload || nginx` starts a daemon); the
        // /proc scan is only worth it for the debug line.
        left_behind = group_members(pid);
        if !left_behind.is_empty() {
            tracing::debug!(command = %shown, processes = ?left_behind, "the command left processes running");
        }
    }
    let (stderr_tail, held) = tail.finish(STDERR_GRACE);
    if held {
        tracing::debug!(command = %shown, "a process the command started still holds its stderr; not waiting for it");
    }
    Ok(Finished {
        code,
        timed_out,
        interrupted,
        stderr_tail,
        duration: started.elapsed(),
        left_behind,
    })
}

/// Ends the command's group: `stop.signal`, then SIGKILL once `stop.grace` has passed (at once
/// when the signal is SIGKILL). Records who was in the group; returns the command's exit code.
fn kill_group(pid: Pid, exit: &mpsc::Receiver<i32>, stop: Stop, members: &mut Vec<String>) -> i32 {
    *members = group_members(pid);
    if stop.signal != Signal::SIGKILL {
        let _ = killpg(pid, stop.signal);
        if let Ok(code) = exit.recv_timeout(stop.grace) {
            let _ = killpg(pid, Signal::SIGKILL);
            return code;
        }
    }
    let _ = killpg(pid, Signal::SIGKILL);
    exit.recv_timeout(Duration::from_secs(5))
        .unwrap_or(128 + Signal::SIGKILL as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_without_shell_syntax() {
        assert_eq!(
            split_words("nginx -g 'daemon off;'"),
            Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()])
        );
        assert_eq!(
            split_words(r#"sh -c "a \"b\"" x\ y"#),
            Some(vec![
                "sh".into(),
                "-c".into(),
                "a \"b\"".into(),
                "x y".into()
            ])
        );
        assert_eq!(split_words("a && b"), None);
        assert_eq!(split_words("echo $HOME"), None);
        assert_eq!(split_words("echo 'unclosed"), None);
        assert_eq!(split_words("   "), None);
    }

    #[test]
    fn shell_and_direct_forms() {
        let cmd = |s: &str| Cmd::from_list(vec![s.to_string()]).unwrap();
        let f = run(&cmd("exit 3"), &[], Duration::from_secs(10)).unwrap();
        assert_eq!(f.code, 3);
        let f = run(&cmd("true"), &[], Duration::from_secs(10)).unwrap();
        assert!(f.success());
    }

    #[test]
    fn stderr_tail_and_env() {
        let f = run(
            &Cmd::Shell("echo \"oops $X\" >&2; exit 1".into()),
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
            &Cmd::Shell("sleep 30 & sleep 30".into()),
            &[],
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(f.timed_out);
        assert!(f.duration < Duration::from_secs(10));
    }
}
