//! One run of consul-render from argv to exit code: parse, configure, load templates, pick the
//! source, render, then print (`-dry`) or write and run commands. Exit codes are decided here.

use crate::cli::{self, Args, Subcommand};
use crate::config::{Config, ConfigError, LogFormat, TemplateSource};
use crate::output::{self, WriteOptions};
use crate::process;
use crate::runner::{self, Job, OnceError};
use crate::source::data::DataSource;
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
    let jobs = load_jobs(&cfg)?;
    if !cfg.once {
        return Err(Failure::Usage(
            "watch mode is not available in this version yet: add -once to render once and exit"
                .into(),
        ));
    }
    let Some(data) = &cfg.data else {
        return Err(Failure::Runtime(
            "talking to Consul is not available in this version yet: render from a data file with -data FILE".into(),
        ));
    };
    let source = DataSource::load(data).map_err(|e| Failure::Config(format!("{e:#}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("starting the runtime: {e}")))?;
    let (outputs, stats) = runtime
        .block_on(runner::once(&jobs, &source, cfg.once_timeout))
        .map_err(|e| match e {
            OnceError::Template(t) => Failure::Runtime(t.to_string()),
            other => Failure::Runtime(other.to_string()),
        })?;
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

/// Writes every changed file (all prepared before any is installed), then runs the commands
/// of the changed templates, each distinct command once, in template order.
fn write_and_run(cfg: &Config, jobs: &[Job], outputs: &[String]) -> Result<ExitCode, Failure> {
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
            Some(c) => candidates.push((job, c)),
            None => tracing::info!(dest = %dest.display(), "unchanged: nothing written"),
        }
    }
    let mut commands: Vec<(&Job, &Vec<String>)> = Vec::new();
    for (job, candidate) in candidates {
        candidate
            .install()
            .map_err(|e| Failure::Runtime(format!("template {}: {e:#}", job.name)))?;
        if let Some(dest) = &job.config.destination {
            tracing::info!(dest = %dest.display(), template = %job.name, "rendered");
        }
        if !job.config.command.is_empty()
            && !commands.iter().any(|(_, c)| **c == job.config.command)
        {
            commands.push((job, &job.config.command));
        }
    }
    let env = command_env(cfg);
    let mut failures = Vec::new();
    for (job, argv) in commands {
        let shown = process::display(argv);
        match process::run(argv, &env, job.config.command_timeout) {
            Ok(f) if f.success() => {
                tracing::info!(command = %shown, code = f.code, duration_ms = f.duration.as_millis() as u64, "command finished");
            }
            Ok(f) => {
                let how = if f.timed_out {
                    format!(
                        "timed out after {}",
                        crate::config::duration::format(job.config.command_timeout)
                    )
                } else {
                    format!("exited with code {}", f.code)
                };
                let tail = if f.stderr_tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.stderr_tail)
                };
                failures.push(format!(
                    "command {shown:?} (template {}) {how}{tail}",
                    job.name
                ));
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
