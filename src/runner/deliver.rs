//! Delivering rendered templates: print them (`-dry`), or check, write and run their commands.
//!
//! Shared by once and watch mode. Every candidate is prepared and checked before any is
//! installed, so one refused check leaves every destination as it was.

use super::RunError;
use crate::config::Command;
use crate::config::Config;
use crate::output::{self, WriteOptions};
use crate::process;
use crate::runner::Job;
use std::io::Write;

/// What went wrong while delivering (each a complete message); empty = all delivered.
pub type Problems = Vec<String>;

/// What a delivery did.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Files actually replaced.
    pub written: usize,
    pub problems: Problems,
    /// A file could not be written (always ends watch mode, as in consul-template).
    pub write_failed: bool,
    /// A command failed or timed out (ends watch mode unless `command_error_fatal = false`);
    /// not set for one stopped because consul-template is stopping.
    pub command_failed: bool,
}

/// Prints `> DEST` and the content (or, with `-diff`, a unified diff) for each output that
/// differs from its destination. Returns whether anything differs.
pub fn print_dry(cfg: &Config, items: &[(&Job, &str)]) -> Result<bool, RunError> {
    let mut out = std::io::stdout().lock();
    let mut changed = false;
    for (job, text) in items {
        let mut write = |s: &str| out.write_all(s.as_bytes()).map_err(RunError::Stdout);
        let Some(dest) = &job.config.destination else {
            write(text)?;
            continue;
        };
        if cfg.diff {
            if let Some(d) = output::diff(dest, text).map_err(RunError::Destination)? {
                changed = true;
                write(&d)?;
            }
        } else if output::differs(dest, text.as_bytes()).map_err(RunError::Destination)? {
            changed = true;
            write(&format!("> {}\n{text}", dest.display()))?;
        }
    }
    out.flush().map_err(RunError::Stdout)?;
    Ok(changed)
}

/// The environment template commands get, as consul-template gives it.
pub fn command_env(cfg: &Config) -> Vec<(String, String)> {
    let k = &cfg.consul;
    let mut env = vec![("CONSUL_HTTP_ADDR".to_string(), k.address.clone())];
    if let Some(t) = &k.token {
        env.push(("CONSUL_HTTP_TOKEN".into(), t.expose().to_string()));
    }
    if let Some(t) = &k.token_file {
        env.push(("CONSUL_HTTP_TOKEN_FILE".into(), t.display().to_string()));
    }
    if let Some(a) = &k.auth {
        let value = match &a.password {
            Some(p) => format!("{}:{}", a.username, p.expose()),
            None => a.username.clone(),
        };
        env.push(("CONSUL_HTTP_AUTH".into(), value));
    }
    env.push(("CONSUL_HTTP_SSL".into(), k.ssl.enabled.to_string()));
    env.push(("CONSUL_HTTP_SSL_VERIFY".into(), k.ssl.verify.to_string()));
    env
}

/// Quotes `s` for `sh` (single quotes; embedded ones closed, escaped and reopened).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Why a template's check refused its candidate (the destination stays as it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckRefused(pub String);

impl From<String> for CheckRefused {
    fn from(s: String) -> CheckRefused {
        CheckRefused(s)
    }
}

/// Runs a template's `check` on its candidate; `Err` carries why it refused.
fn run_check(
    job: &Job,
    check: &str,
    candidate: &std::path::Path,
    env: &[(String, String)],
) -> Result<(), CheckRefused> {
    let path = candidate.display().to_string();
    let command = check.replace("{{path}}", &shell_quote(&path));
    let mut env = env.to_vec();
    env.push(("CONSUL_RENDER_CANDIDATE".into(), path));
    let to_run =
        Command::from_list(vec![command.clone()]).unwrap_or(Command::Shell(command.clone()));
    match process::run(&to_run, &env, job.config.command_timeout) {
        Ok(f) if f.success() => {
            tracing::debug!(template = %job.name, check = %command, "check passed");
            Ok(())
        }
        Ok(f) => Err(format!(
            "template {}: check {command:?} refused the new file ({}); the destination is unchanged{}",
            job.name,
            ended(&f, job.config.command_timeout),
            tail(&f)
        ).into()),
        Err(e) => Err(format!("template {}: check {command:?}: {e:#}", job.name).into()),
    }
}

fn ended(f: &process::Finished, timeout: std::time::Duration) -> String {
    let killed = if f.left_behind.is_empty() {
        String::new()
    } else {
        format!("; killed its process group: {}", f.left_behind.join(", "))
    };
    if f.timed_out {
        format!(
            "timed out after {}{killed}",
            crate::config::duration::format(timeout)
        )
    } else if f.interrupted {
        format!("stopped because consul-render is stopping{killed}")
    } else {
        format!("exit code {}", f.code)
    }
}

fn tail(f: &process::Finished) -> String {
    if f.stderr_tail.is_empty() {
        String::new()
    } else {
        format!(":\n{}", f.stderr_tail)
    }
}

/// Runs a template's command: with our environment plus `env`, or, when the template has an
/// `exec { env { … } }`, with the environment that block makes (as consul-template's child).
fn run_command(
    job: &Job,
    command: &Command,
    env: &[(String, String)],
    timeout: std::time::Duration,
) -> Result<process::Finished, process::StartError> {
    match &job.config.command_exec {
        None => process::run(command, env, timeout),
        Some(x) => {
            let whole = process::exec::environment(&x.env, env);
            let stop = x.kill_signal.map(|signal| process::Stop {
                signal,
                grace: x.kill_timeout,
            });
            process::run_with(command, &whole, true, timeout, stop)
        }
    }
}

/// Puts `DEST.bak` back over `dest` (atomically), for `rollback`.
fn restore_backup(dest: &std::path::Path) -> Result<(), output::OutputError> {
    let bak = output::backup_path(dest);
    let previous = std::fs::read(&bak).map_err(|source| output::OutputError::Io {
        doing: format!("reading backup {}", bak.display()),
        source,
    })?;
    let opts = WriteOptions {
        perms: None,
        backup: false,
        create_dest_dirs: false,
        owner: crate::config::keys::Owner::default(),
    };
    if let Some(c) = output::prepare(dest, &previous, opts)? {
        c.install()?;
    }
    Ok(())
}

/// Writes every changed file, then runs the commands of the changed templates, each distinct
/// command once, in template order. All candidates are prepared and checked before any is
/// installed: one failed check leaves every destination as it was.
pub fn write_and_run(cfg: &Config, items: &[(&Job, &str)]) -> Delivered {
    let env = command_env(cfg);
    let mut candidates = Vec::new();
    for &(job, text) in items {
        let Some(dest) = &job.config.destination else {
            continue;
        };
        let opts = WriteOptions {
            perms: job.config.perms,
            backup: job.config.backup,
            create_dest_dirs: job.config.create_dest_dirs,
            owner: job.config.owner,
        };
        let candidate = match output::prepare(dest, text.as_bytes(), opts) {
            Ok(c) => c,
            Err(e) => {
                return Delivered {
                    problems: vec![format!("template {}: {e:#}", job.name)],
                    write_failed: true,
                    ..Delivered::default()
                }
            }
        };
        if let Some(c) = candidate {
            candidates.push((job, c, dest.exists()));
        } else {
            tracing::info!(dest = %dest.display(), "unchanged: nothing written");
        }
    }
    let refused: Vec<String> = candidates
        .iter()
        .filter_map(|(job, c, _)| {
            job.config
                .check
                .as_ref()
                .and_then(|chk| run_check(job, chk, c.path(), &env).err())
                .map(|r| r.0)
        })
        .collect();
    if !refused.is_empty() {
        // Dropping the candidates removes them; no destination was touched, no command runs.
        return Delivered {
            problems: refused,
            ..Delivered::default()
        };
    }
    let mut installed: Vec<(&Job, bool)> = Vec::new();
    for (job, candidate, had_previous) in candidates {
        if let Err(e) = candidate.install() {
            let written = installed.len();
            return Delivered {
                written,
                problems: vec![format!("template {}: {e:#}", job.name)],
                write_failed: true,
                ..Delivered::default()
            };
        }
        if let Some(dest) = &job.config.destination {
            tracing::info!(dest = %dest.display(), template = %job.name, "rendered");
        }
        crate::status::metrics::get()
            .writes
            .get_or_create(&crate::status::metrics::TemplateLabel {
                template: job.name.clone(),
            })
            .inc();
        installed.push((job, had_previous));
    }
    let mut commands: Vec<(&Job, &Command)> = Vec::new();
    for (job, _) in &installed {
        if let Some(command) = &job.config.command {
            if !commands.iter().any(|(_, c)| *c == command) {
                commands.push((job, command));
            }
        }
    }
    let mut failures = Vec::new();
    let mut command_failed = false;
    for (job, command) in commands {
        let shown = command.display();
        if process::stopping() {
            failures.push(format!(
                "command {shown:?} (template {}) not run: consul-render is stopping",
                job.name
            ));
            continue;
        }
        let timeout = job.config.command_timeout;
        let result = run_command(job, command, &env, timeout);
        let metrics = crate::status::metrics::get();
        let outcome = match &result {
            Ok(f) => {
                metrics.command_duration.observe(f.duration.as_secs_f64());
                if f.success() {
                    "ok"
                } else {
                    "failed"
                }
            }
            Err(_) => "failed",
        };
        metrics
            .commands
            .get_or_create(&crate::status::metrics::TemplateResult {
                template: job.name.clone(),
                result: outcome.into(),
            })
            .inc();
        match result {
            Ok(f) if f.success() => {
                tracing::info!(command = %shown, code = f.code, duration_ms = f.duration.as_millis() as u64, "command finished");
            }
            Ok(f) => {
                command_failed |= !f.interrupted;
                let mut msg = format!(
                    "command {shown:?} (template {}) failed: {}{}",
                    job.name,
                    ended(&f, timeout),
                    tail(&f)
                );
                let rolled: Vec<&std::path::Path> = installed
                    .iter()
                    .filter(|(j, had)| {
                        *had && j.config.rollback
                            && j.config.backup
                            && j.config.command.as_ref() == Some(command)
                    })
                    .filter_map(|(j, _)| j.config.destination.as_deref())
                    .collect();
                if !rolled.is_empty() {
                    for dest in &rolled {
                        match restore_backup(dest) {
                            Ok(()) => {
                                tracing::warn!(dest = %dest.display(), "command failed: restored the previous file");
                            }
                            Err(e) => msg.push_str(&format!(
                                "\nrollback of {} failed: {e:#}",
                                dest.display()
                            )),
                        }
                    }
                    match run_command(job, command, &env, timeout) {
                        Ok(again) if again.success() => msg.push_str(
                            "\nrolled back to the previous file(s); the command then succeeded",
                        ),
                        Ok(again) => msg.push_str(&format!(
                            "\nrolled back; the command failed again: {}{}",
                            ended(&again, timeout),
                            tail(&again)
                        )),
                        Err(e) => msg.push_str(&format!(
                            "\nrolled back; the command could not run again: {e:#}"
                        )),
                    }
                }
                failures.push(msg);
            }
            Err(e) => {
                command_failed = true;
                failures.push(format!("{e:#}"));
            }
        }
    }
    Delivered {
        written: installed.len(),
        problems: failures,
        write_failed: false,
        command_failed,
    }
}
