//! The subcommands and modes beside rendering: capture, convert, check, and the pid file.

use super::*;

/// The `-pid-file`: written at start (no newline, as consul-template), removed at exit.
pub(super) struct PidFile(std::path::PathBuf);

/// Removes temp files that a killed run left beside the destinations (over a minute old).
pub(super) fn sweep_temp_files(jobs: &[Job]) {
    let mut dirs: Vec<std::path::PathBuf> = jobs
        .iter()
        .filter_map(|j| j.config.destination.as_deref())
        .map(|d| match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        crate::output::sweep_stale(&dir, std::time::Duration::from_secs(60));
    }
}

/// `capture`: renders against Consul, then writes the data file (atomically) or prints it.
pub(super) fn capture(cfg: &Config) -> Result<ExitCode, Failure> {
    let jobs = load_jobs(cfg)?;
    let source = ConsulSource::new(&cfg.consul)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("starting the runtime: {e}")))?;
    let sources = Sources::new(Arc::new(source), cfg.consul.retry);
    let captured = runtime
        .block_on(crate::capture::capture(&jobs, &sources, cfg.once_timeout))
        .map_err(|e| Failure::Runtime(format!("capture: {e}")))?;
    let mut text = serde_json::to_string_pretty(&captured.file)
        .map_err(|e| Failure::Runtime(format!("capture: {e}")))?;
    text.push('\n');
    tracing::info!(
        dependencies = captured.dependencies,
        nodes = captured.file.nodes.len(),
        instances = captured.file.services.len(),
        keys = captured.file.kv.len(),
        long_form = captured.long_form,
        "captured"
    );
    write_out("capture", cfg.capture_output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// `convert FILE [-o OUT] [-check]`: prints (or writes, atomically) a Go template as handlebars;
/// `-check` only says whether it converts. A file that does not convert is exit 15 with the
/// place and the reason.
pub(super) fn convert(args: &[String]) -> Result<ExitCode, Failure> {
    let usage = || Failure::Usage("usage: consul-render convert FILE [-o OUT] [-check]".into());
    let (mut file, mut out, mut check) = (None, None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.trim_start_matches('-') {
            "o" | "output" if a.starts_with('-') => {
                out = Some(it.next().ok_or_else(usage)?.clone());
            }
            "check" if a.starts_with('-') => check = true,
            _ if a.starts_with('-') => return Err(usage()),
            _ if file.is_none() => file = Some(a.clone()),
            _ => return Err(usage()),
        }
    }
    let file = file.ok_or_else(usage)?;
    let text =
        crate::fsread::read_text(std::path::Path::new(&file), crate::limits::INPUT_FILE_BYTES)
            .map_err(|e| Failure::Config(format!("template {file}: {e}")))?;
    let hbs = crate::gotmpl::convert(&text).map_err(|e| {
        Failure::Config(
            crate::template::TemplateError::at(
                &file,
                &text,
                Some(e.line),
                Some(e.col),
                format!("cannot convert this Go template: {}", e.message),
            )
            .to_string(),
        )
    })?;
    // What converts must also load: the helpers it calls exist and are allowed.
    let engine = Engine::compile(&file, &hbs, &crate::template::Options::default())
        .map_err(|e| Failure::Config(e.to_string()))?;
    if let Some(p) = engine.problems().first() {
        return Err(Failure::Config(p.to_string()));
    }
    if check {
        return Ok(ExitCode::SUCCESS);
    }
    write_out(
        "convert",
        out.as_deref().map(std::path::Path::new),
        hbs.as_bytes(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A subcommand's result: written atomically to `path`, or printed.
pub(super) fn write_out(
    what: &str,
    path: Option<&std::path::Path>,
    bytes: &[u8],
) -> Result<(), Failure> {
    if let Some(path) = path {
        let opts = crate::output::WriteOptions {
            perms: None,
            backup: false,
            create_dest_dirs: true,
            owner: crate::config::keys::Owner::default(),
        };
        crate::output::prepare(path, bytes, opts)
            .and_then(|c| c.map_or(Ok(()), crate::output::Candidate::install))
            .map_err(|e| Failure::Runtime(format!("{what}: {e:#}")))
    } else {
        use std::io::Write as _;
        std::io::stdout()
            .write_all(bytes)
            .map_err(|e| Failure::Runtime(format!("{what}: writing to stdout: {e}")))
    }
}

/// `-parse-only` / `check`: every syntax error and unknown or denied helper, contacting nothing.
pub(super) fn check_templates(cfg: &Config) -> Result<ExitCode, Failure> {
    let jobs = load_jobs(cfg)?;
    tracing::info!(templates = jobs.len(), "templates parsed without errors");
    Ok(ExitCode::SUCCESS)
}

impl PidFile {
    pub(super) fn create(path: &std::path::Path) -> anyhow::Result<PidFile> {
        use anyhow::Context as _;
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // Never through a symlink (as root that would overwrite its target), never blocking
        // on a FIFO; only a regular file is written.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(nix::libc::ELOOP) => anyhow::anyhow!(
                    "pid file {}: is a symbolic link; refusing to write through it",
                    path.display()
                ),
                _ => anyhow::Error::new(e).context(format!("writing pid file {}", path.display())),
            })?;
        if !file.metadata()?.is_file() {
            anyhow::bail!("pid file {}: not a regular file", path.display());
        }
        file.set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
            .with_context(|| format!("writing pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
