//! One run of consul-render from argv to exit code: parse, configure, load templates, pick the
//! source, render, then print (`-dry`) or write and run commands. Exit codes are decided here.

use crate::cli::{self, Args, Subcommand};
use crate::config::{Config, ConfigError, LogFormat, TemplateSource};
use crate::output::{self, WriteOptions};
use crate::process;
use crate::runner::{self, Job};
use crate::source::consul::ConsulSource;
use crate::source::data::DataSource;
use crate::source::Source;
use crate::template::Engine;
use clap::{CommandFactory, FromArgMatches};
use std::io::Write;
use std::process::ExitCode;

/// How a run failed, which decides the exit code (consul-template's codes).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad flags or arguments: 13.
    #[error("{0}")]
    Usage(String),
    /// Runtime failure (render, fetch, write, command): 14.
    #[error("{0}")]
    Runtime(String),
    /// Config, template or data file problem: 15.
    #[error("{0}")]
    Config(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 13,
            Failure::Runtime(_) => 14,
            Failure::Config(_) => 15,
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Flag(m) => Failure::Usage(m),
            ConfigError::File(m) => Failure::Config(m),
        }
    }
}

/// Runs consul-render with `argv` (program name first) and returns the process exit code.
pub fn main(argv: Vec<String>) -> ExitCode {
    match run(&argv) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("consul-render: {f}");
            ExitCode::from(f.code())
        }
    }
}

/// Parses argv with Go's flag syntax. `Ok(Err(code))` = help or version was printed.
fn parse_args(argv: &[String]) -> Result<Result<(Args, cli::Rewritten), ExitCode>, Failure> {
    let cmd = Args::command();
    let rewritten = cli::rewrite(argv, &cmd).map_err(|e| Failure::Usage(e.to_string()))?;
    match cmd.try_get_matches_from(&rewritten.args) {
        Ok(m) => {
            let args = Args::from_arg_matches(&m).map_err(|e| Failure::Usage(e.to_string()))?;
            Ok(Ok((args, rewritten)))
        }
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            Ok(Err(ExitCode::SUCCESS))
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            Err(Failure::Usage(first.to_string()))
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter =
        tracing_subscriber::EnvFilter::new(format!("consul_render={}", cfg.log_level.directive()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn run(argv: &[String]) -> Result<ExitCode, Failure> {
    let (mut args, rewritten) = match parse_args(argv)? {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    if rewritten.subcommand == Some(Subcommand::Check) {
        args.parse_only = Some(true);
    }
    let cfg = Config::resolve(&args, &|k| std::env::var(k).ok())?;
    init_logging(&cfg);
    for w in &rewritten.warnings {
        tracing::warn!("{w}");
    }
    if cfg.parse_only {
        return check_templates(&cfg);
    }
    if cfg.exec.is_some() {
        return Err(Failure::Usage(
            "exec mode (-exec) is not available in this version yet".into(),
        ));
    }
    let _pid_file = match &cfg.pid_file {
        Some(p) => Some(PidFile::create(p).map_err(|e| Failure::Runtime(format!("{e:#}")))?),
        None => None,
    };
    let jobs = load_jobs(&cfg)?;
    if !cfg.once {
        return Err(Failure::Usage(
            "watch mode is not available in this version yet: add -once to render once and exit"
                .into(),
        ));
    }
    let source: Box<dyn Source> = match &cfg.data {
        Some(data) => {
            Box::new(DataSource::load(data).map_err(|e| Failure::Config(format!("{e:#}")))?)
        }
        None => Box::new(ConsulSource::new(&cfg.consul)?),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("starting the runtime: {e}")))?;
    let (outputs, stats) = runtime
        .block_on(runner::once(&jobs, source.as_ref(), cfg.once_timeout))
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::debug!(
        passes = stats.passes,
        fetches = stats.fetches,
        "all templates rendered"
    );
    if cfg.dry {
        return print_dry(&cfg, &jobs, &outputs);
    }
    write_and_run(&cfg, &jobs, &outputs)
}

/// The `-pid-file`: written at start (no newline, as consul-template), removed at exit.
struct PidFile(std::path::PathBuf);

impl PidFile {
    fn create(path: &std::path::Path) -> anyhow::Result<PidFile> {
        use anyhow::Context as _;
        std::fs::write(path, std::process::id().to_string())
            .with_context(|| format!("writing pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads and compiles every template; a missing file or a syntax error is exit 15.
fn load_jobs(cfg: &Config) -> Result<Vec<Job>, Failure> {
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in cfg.templates.iter().enumerate() {
        let name = t.source.display_name(i);
        let text = match &t.source {
            TemplateSource::Inline(s) => s.clone(),
            TemplateSource::File(p) => match std::fs::read_to_string(p) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(format!("template {}: {e}", p.display()));
                    continue;
                }
            },
        };
        match Engine::compile(&name, &text, t.error_on_missing_key, t.sandbox_path.clone()) {
            Ok(engine) => jobs.push(Job {
                config: t.clone(),
                engine,
                name,
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(jobs)
    } else {
        Err(Failure::Config(errors.join("\n")))
    }
}

/// `-parse-only` / `check`: every syntax error and unknown helper, contacting nothing.
fn check_templates(cfg: &Config) -> Result<ExitCode, Failure> {
    let jobs = load_jobs(cfg)?;
    let problems: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.engine.unknown_helpers())
        .map(|e| e.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(Failure::Config(problems.join("\n")));
    }
    tracing::info!(templates = jobs.len(), "templates parsed without errors");
    Ok(ExitCode::SUCCESS)
}

fn print_dry(cfg: &Config, jobs: &[Job], outputs: &[String]) -> Result<ExitCode, Failure> {
    let mut out = std::io::stdout().lock();
    let mut changed = false;
    for (job, text) in jobs.iter().zip(outputs) {
        let write = |out: &mut std::io::StdoutLock, s: &str| {
            out.write_all(s.as_bytes())
                .map_err(|e| Failure::Runtime(format!("writing to stdout: {e}")))
        };
        let Some(dest) = &job.config.destination else {
            write(&mut out, text)?;
            continue;
        };
        if cfg.diff {
            if let Some(d) =
                output::diff(dest, text).map_err(|e| Failure::Runtime(format!("{e:#}")))?
            {
                changed = true;
                write(&mut out, &d)?;
            }
        } else if output::differs(dest, text.as_bytes())
            .map_err(|e| Failure::Runtime(format!("{e:#}")))?
        {
            write(&mut out, &format!("> {}\n{text}", dest.display()))?;
        }
    }
    Ok(if cfg.diff && changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The environment template commands get, as consul-template gives it.
fn command_env(cfg: &Config) -> Vec<(String, String)> {
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

/// Runs a template's `check` on its candidate; `Err` carries why it refused.
fn run_check(
    job: &Job,
    check: &str,
    candidate: &std::path::Path,
    env: &[(String, String)],
) -> Result<(), String> {
    let path = candidate.display().to_string();
    let command = check.replace("{{path}}", &shell_quote(&path));
    let mut env = env.to_vec();
    env.push(("CONSUL_RENDER_CANDIDATE".into(), path));
    match process::run(std::slice::from_ref(&command), &env, job.config.command_timeout) {
        Ok(f) if f.success() => {
            tracing::debug!(template = %job.name, check = %command, "check passed");
            Ok(())
        }
        Ok(f) => Err(format!(
            "template {}: check {command:?} refused the new file ({}); the destination is unchanged{}",
            job.name,
            ended(&f, job.config.command_timeout),
            tail(&f)
        )),
        Err(e) => Err(format!("template {}: check {command:?}: {e:#}", job.name)),
    }
}

fn ended(f: &process::Finished, timeout: std::time::Duration) -> String {
    if f.timed_out {
        format!(
            "timed out after {}",
            crate::config::duration::format(timeout)
        )
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

/// Puts `DEST.bak` back over `dest` (atomically), for `rollback`.
fn restore_backup(dest: &std::path::Path) -> anyhow::Result<()> {
    let previous = std::fs::read(output::backup_path(dest))?;
    let opts = WriteOptions {
        perms: None,
        backup: false,
        create_dest_dirs: false,
    };
    if let Some(c) = output::prepare(dest, &previous, opts)? {
        c.install()?;
    }
    Ok(())
}

/// Writes every changed file, then runs the commands of the changed templates, each distinct
/// command once, in template order. All candidates are prepared and checked before any is
/// installed: one failed check leaves every destination as it was.
fn write_and_run(cfg: &Config, jobs: &[Job], outputs: &[String]) -> Result<ExitCode, Failure> {
    let env = command_env(cfg);
    let mut candidates = Vec::new();
    for (job, text) in jobs.iter().zip(outputs) {
        let Some(dest) = &job.config.destination else {
            continue;
        };
        let opts = WriteOptions {
            perms: job.config.perms,
            backup: job.config.backup,
            create_dest_dirs: job.config.create_dest_dirs,
        };
        let candidate = output::prepare(dest, text.as_bytes(), opts)
            .map_err(|e| Failure::Runtime(format!("template {}: {e:#}", job.name)))?;
        match candidate {
            Some(c) => candidates.push((job, c, dest.exists())),
            None => tracing::info!(dest = %dest.display(), "unchanged: nothing written"),
        }
    }
    let refused: Vec<String> = candidates
        .iter()
        .filter_map(|(job, c, _)| {
            job.config
                .check
                .as_ref()
                .and_then(|chk| run_check(job, chk, c.path(), &env).err())
        })
        .collect();
    if !refused.is_empty() {
        // Dropping the candidates removes them; no destination was touched, no command runs.
        return Err(Failure::Runtime(refused.join("\n")));
    }
    let mut installed: Vec<(&Job, bool)> = Vec::new();
    for (job, candidate, had_previous) in candidates {
        candidate
            .install()
            .map_err(|e| Failure::Runtime(format!("template {}: {e:#}", job.name)))?;
        if let Some(dest) = &job.config.destination {
            tracing::info!(dest = %dest.display(), template = %job.name, "rendered");
        }
        installed.push((job, had_previous));
    }
    let mut commands: Vec<(&Job, &Vec<String>)> = Vec::new();
    for (job, _) in &installed {
        if !job.config.command.is_empty()
            && !commands.iter().any(|(_, c)| **c == job.config.command)
        {
            commands.push((job, &job.config.command));
        }
    }
    let mut failures = Vec::new();
    for (job, argv) in commands {
        let shown = process::display(argv);
        let timeout = job.config.command_timeout;
        match process::run(argv, &env, timeout) {
            Ok(f) if f.success() => {
                tracing::info!(command = %shown, code = f.code, duration_ms = f.duration.as_millis() as u64, "command finished");
            }
            Ok(f) => {
                let mut msg = format!(
                    "command {shown:?} (template {}) failed: {}{}",
                    job.name,
                    ended(&f, timeout),
                    tail(&f)
                );
                let rolled: Vec<&std::path::Path> = installed
                    .iter()
                    .filter(|(j, had)| {
                        *had && j.config.rollback && j.config.backup && j.config.command == *argv
                    })
                    .filter_map(|(j, _)| j.config.destination.as_deref())
                    .collect();
                if !rolled.is_empty() {
                    for dest in &rolled {
                        match restore_backup(dest) {
                            Ok(()) => {
                                tracing::warn!(dest = %dest.display(), "command failed: restored the previous file")
                            }
                            Err(e) => msg.push_str(&format!(
                                "\nrollback of {} failed: {e:#}",
                                dest.display()
                            )),
                        }
                    }
                    match process::run(argv, &env, timeout) {
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
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::Runtime(failures.join("\n")))
    }
}
