//! Child processes: template commands, check commands and the exec child, all waited for by
//! the one reaper (`reaper`).
//!
//! A command string with whitespace runs under `sh -c`, else it is exec'd directly
//! (consul-template's rule). Each runs in its own process group so a timeout kills the whole
//! tree. Its stderr is passed through to ours and its tail kept for the error message.

pub mod exec;
pub mod reaper;

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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
    let mut spawned =
        reaper::spawn(&mut cmd).with_context(|| format!("starting command {:?}", display(argv)))?;
    let pid = Pid::from_raw(spawned.pid);
    let mut stderr = spawned.child.stderr.take().context("command stderr")?;
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
    let (code, timed_out) = match spawned.exit.recv_timeout(timeout) {
        Ok(code) => (code, false),
        Err(_) => {
            let _ = killpg(pid, Signal::SIGKILL);
            (
                spawned.exit.recv().unwrap_or(128 + Signal::SIGKILL as i32),
                true,
            )
        }
    };
    if timed_out {
        // Anything the command left in its group must not keep our stderr pipe open.
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let stderr_tail = tail.join().unwrap_or_default();
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
