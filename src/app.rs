//! One run of consul-render from argv to exit code: parse, configure, load templates, pick the
//! source, render, then print (`-dry`) or write and run commands. Exit codes are decided here.

use crate::cli::{self, Args, Subcommand};
use crate::config::{Config, ConfigError, TemplateSource};
use crate::runner::{self, job_fields, Job};
use crate::source::consul::ConsulSource;
use crate::source::data::DataSource;
use crate::source::model::FieldSet;
use crate::source::Sources;
use crate::template::Engine;
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;
use std::sync::Arc;

mod commands;
use commands::{capture, check_templates, convert, sweep_temp_files, PidFile};

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
    /// A setting's problem: 13 from a flag or variable, 15 from a file.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// The run ended with an error: 14.
    #[error(transparent)]
    Run(#[from] runner::RunError),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 13,
            Failure::Runtime(_) | Failure::Run(_) => 14,
            Failure::Config(_) => 15,
            Failure::Settings(e) => e.exit_code(),
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

/// `completions SHELL` and `man`: generated from the same flag definitions and printed.
/// `None` for every other subcommand.
fn print_generated(subcommand: Option<Subcommand>) -> Result<Option<ExitCode>, Failure> {
    let text = match subcommand {
        Some(Subcommand::Completions(shell)) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "consul-render", &mut buf);
            buf
        }
        Some(Subcommand::Man) => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Args::command())
                .render(&mut buf)
                .map_err(|e| Failure::Runtime(format!("rendering the man page: {e}")))?;
            buf
        }
        _ => return Ok(None),
    };
    use std::io::Write as _;
    match std::io::stdout().write_all(&text) {
        // `| head` closing the pipe early is not a failure.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Runtime(format!("writing to stdout: {e}")))
        }
        _ => Ok(Some(ExitCode::SUCCESS)),
    }
}

fn run(argv: &[String]) -> Result<ExitCode, Failure> {
    // Before any thread exists: it takes NOTIFY_SOCKET out of the environment.
    let notifier = crate::notify::Notifier::from_env();
    let (mut args, rewritten) = match parse_args(argv)? {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    if let Some(code) = print_generated(rewritten.subcommand)? {
        return Ok(code);
    }
    if rewritten.subcommand == Some(Subcommand::Convert) {
        return convert(&rewritten.rest);
    }
    match rewritten.subcommand {
        Some(Subcommand::Check) => args.parse_only = Some(true),
        Some(Subcommand::Capture) => args.capture = true,
        _ => {}
    }
    let cfg = Config::resolve(&args, &|k| std::env::var(k).ok())?;
    crate::logging::init(&cfg, cfg.parse_only).map_err(|e| Failure::Config(format!("{e:#}")))?;
    // Reap from the start: as PID 1, orphans are ours to wait for before any child of our own.
    crate::process::reaper::start();
    for w in rewritten.warnings.iter().chain(&cfg.warnings) {
        tracing::warn!("{w}");
    }
    if cfg.parse_only {
        return check_templates(&cfg);
    }
    if cfg.capture {
        return capture(&cfg);
    }
    if cfg.status_addr.is_some() && cfg.once {
        tracing::warn!("-status-addr is ignored with -once (it serves watch and exec mode)");
    }
    let _pid_file = match &cfg.pid_file {
        Some(p) => Some(PidFile::create(p).map_err(|e| Failure::Runtime(format!("{e:#}")))?),
        None => None,
    };
    let jobs = load_jobs(&cfg)?;
    if !cfg.dry {
        sweep_temp_files(&jobs);
    }
    // `service` instances carry only the fields the templates can read (a reload that brings
    // templates reading more widens them: `runner::watch_mode`).
    let fields = FieldSet::new(job_fields(&jobs));
    let retry = cfg.consul.retry;
    let mut consul = None;
    let sources = Arc::new(
        match &cfg.data {
            Some(path) => Sources::data(
                DataSource::load(path)
                    .map_err(|e| Failure::Config(format!("{e:#}")))?
                    .with_fields(fields.clone()),
                retry,
            ),
            None => {
                let c = Arc::new(ConsulSource::new(&cfg.consul)?.with_fields(fields.clone()));
                consul = Some(c.clone());
                Sources::new(c, retry)
            }
        }
        .with_fields(fields),
    );
    if cfg.dedup.is_some() && (cfg.once || cfg.data.is_some()) {
        tracing::warn!(
            "de-duplication is for watch mode against Consul: ignored with {}",
            if cfg.once { "-once" } else { "-data" }
        );
    }
    if !cfg.once {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(crate::limits::RENDER_STACK)
            .enable_all()
            .build()
            .map_err(|e| Failure::Runtime(format!("starting the runtime: {e}")))?;
        let reload = || -> Result<(Config, Vec<Job>), Box<dyn std::error::Error + Send + Sync>> {
            let cfg = Config::resolve(&args, &|k| std::env::var(k).ok())?;
            let jobs = load_jobs(&cfg)?;
            Ok((cfg, jobs))
        };
        let status_addr = cfg.status_addr.clone();
        // /health turns 503 once the loop is busy longer than any command or fetch may take.
        let longest_command = cfg.templates.iter().map(|t| t.command_timeout).max();
        crate::status::state().configure(
            cfg.consul.block_query_wait
                + longest_command.unwrap_or_default() * 2
                + std::time::Duration::from_secs(30),
            cfg.status_consul_timeout,
        );
        let code = runtime.block_on(async {
            if let Some(addr) = &status_addr {
                crate::status::serve(addr).await?;
            }
            runner::watch_mode::run(cfg, jobs, sources, consul, &reload, &notifier).await
        })?;
        runtime.shutdown_background();
        return Ok(exit_code(code));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("starting the runtime: {e}")))?;
    let runner::Finished {
        outputs,
        stats,
        store,
        ..
    } = runtime
        .block_on(runner::once(&jobs, &sources, cfg.once_timeout))
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    tracing::debug!(
        passes = stats.passes,
        fetches = stats.fetches,
        "all templates rendered"
    );
    let items: Vec<(&Job, &str)> = jobs
        .iter()
        .zip(outputs.iter().map(String::as_str))
        .collect();
    if cfg.dry {
        let changed = runner::deliver::print_dry(&cfg, &items)?;
        exit_without_freeing((store, sources));
        return Ok(if cfg.diff && changed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let delivered = runner::deliver::write_and_run(&cfg, &items);
    if !delivered.problems.is_empty() {
        return Err(Failure::Runtime(delivered.problems.join("\n")));
    }
    match &cfg.exec {
        // Once mode with -exec: run the child after the render and exit with its code.
        Some(exec) => {
            drop(store);
            runtime
                .block_on(runner::watch_mode::run_child_once(&cfg, exec))
                .map(exit_code)
                .map_err(Failure::Run)
        }
        None => {
            exit_without_freeing((store, sources));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// For what the process holds until it exits next: freeing every fetched value one by one
/// would cost a fifth of a 10,000-instance run; the operating system takes it back at once.
fn exit_without_freeing<T>(held: T) {
    std::mem::forget(held);
}

/// An exit code as the process's (the exec child's code, or 0).
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Reads and compiles every template; a missing file or a syntax error is exit 15.
fn load_jobs(cfg: &Config) -> Result<Vec<Job>, Failure> {
    let mut jobs = Vec::new();
    let mut errors = Vec::new();
    for (i, t) in cfg.templates.iter().enumerate() {
        let name = t.source.display_name(i);
        let text = match &t.source {
            TemplateSource::Inline(s) => s.clone(),
            TemplateSource::File(p) => {
                match crate::fsread::read_text(p, crate::limits::INPUT_FILE_BYTES) {
                    Ok(s) => s,
                    Err(e) => {
                        errors.push(format!("template {}: {e}", p.display()));
                        continue;
                    }
                }
            }
        };
        let go = t.go_syntax.unwrap_or(match &t.source {
            TemplateSource::File(p) => crate::gotmpl::is_go_template(p),
            TemplateSource::Inline(_) => false,
        });
        let text = if go {
            match crate::gotmpl::convert(&text) {
                Ok(hbs) => hbs,
                Err(e) => {
                    let err = crate::template::TemplateError::at(
                        &name,
                        &text,
                        Some(e.line),
                        Some(e.col),
                        format!("cannot convert this Go template: {}", e.message),
                    );
                    errors.push(err.to_string());
                    continue;
                }
            }
        } else {
            text
        };
        let opts = crate::template::Options {
            strict: t.error_on_missing_key,
            sandbox: t.sandbox_path.clone(),
            denylist: t.function_denylist.clone(),
        };
        match Engine::compile(&name, &text, &opts) {
            Ok(engine) => {
                // Unknown and denied helpers are load errors, as a syntax error is.
                let problems = engine.problems();
                if problems.is_empty() {
                    jobs.push(Job {
                        config: t.clone(),
                        engine,
                        name,
                        id: runner::template_id(&text, &opts),
                    });
                } else {
                    errors.extend(problems.iter().map(ToString::to_string));
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(jobs)
    } else {
        Err(Failure::Config(errors.join("\n")))
    }
}
