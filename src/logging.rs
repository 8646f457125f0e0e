//! Where log lines go: stderr always, and the config's `log_file` (rotated by size and age, old
//! files pruned, named as consul-template names them) and `syslog`.

use crate::config::{Config, LogFile, LogFormat, Syslog};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Level;

/// A log destination that cannot be opened (as in consul-template, that stops the start).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("syslog facility {0:?}: not a facility (LOCAL0…LOCAL7, USER, DAEMON, …)")]
    Facility(String),
    #[error("connecting to syslog: {0}")]
    Syslog(String),
    /// A log file step: what was being done, on which path.
    #[error("{doing} {}: {source}", path.display())]
    File {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn file_error(
    doing: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::File {
        doing,
        path,
        source,
    }
}

/// Sets up logging for `cfg`; with `stderr_only` (`check`, which touches nothing) the log file
/// and syslog are left alone. A log file or syslog that cannot be opened is an error, as in
/// consul-template.
pub fn init(cfg: &Config, stderr_only: bool) -> Result<(), LogError> {
    let filter =
        tracing_subscriber::EnvFilter::new(format!("consul_render={}", cfg.log_level.directive()));
    let file = match &cfg.log_file {
        Some(f) if !stderr_only => Some(Arc::new(Mutex::new(Rotating::open(f)?))),
        _ => None,
    };
    let syslog = match &cfg.syslog {
        Some(s) if !stderr_only => Some(Arc::new(Mutex::new(connect(s)?))),
        _ => None,
    };
    // Colour only when everything goes to a terminal.
    let ansi =
        file.is_none() && syslog.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let outputs = Outputs { file, syslog };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(outputs)
        .with_target(false)
        .with_ansi(ansi);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(())
}

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

fn connect(s: &Syslog) -> Result<SyslogLogger, LogError> {
    let facility = s
        .facility
        .parse::<syslog::Facility>()
        .map_err(|()| LogError::Facility(s.facility.clone()))?;
    let formatter = syslog::Formatter3164 {
        facility,
        hostname: None,
        process: s.name.clone(),
        pid: std::process::id(),
    };
    let logger = match &s.socket {
        Some(path) => syslog::unix_custom(formatter, path),
        None => syslog::unix(formatter),
    };
    logger.map_err(|e| LogError::Syslog(e.to_string()))
}

/// Every place a line goes.
#[derive(Clone)]
struct Outputs {
    file: Option<Arc<Mutex<Rotating>>>,
    syslog: Option<Arc<Mutex<SyslogLogger>>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Outputs {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        self.line(Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        self.line(*meta.level())
    }
}

impl Outputs {
    fn line(&self, level: Level) -> Line {
        Line {
            level,
            outputs: self.clone(),
        }
    }
}

/// One formatted event, written to each output.
struct Line {
    level: Level,
    outputs: Outputs,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        if let Some(f) = &self.outputs.file {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(buf);
            }
        }
        if let Some(s) = &self.outputs.syslog {
            if let Ok(mut s) = s.lock() {
                let text = String::from_utf8_lossy(buf);
                let text = text.trim_end();
                // consul-template's mapping: DEBUG→info, INFO→notice, WARN→warning, ERR→err.
                let _ = match self.level {
                    Level::ERROR => s.err(text),
                    Level::WARN => s.warning(text),
                    Level::INFO => s.notice(text),
                    _ => s.info(text),
                };
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// consul-template's log file: `DIR/NAME-UNIXNANO.EXT`, a new one when the current one holds
/// `rotate_bytes` (0: no limit) or is `rotate_duration` old; before each new file the older ones
/// are pruned to `max_files` (0 keeps all, a negative number keeps none).
struct Rotating {
    dir: PathBuf,
    stem: String,
    ext: String,
    cfg: LogFile,
    file: std::fs::File,
    written: u64,
    opened: Instant,
}

impl Rotating {
    fn open(cfg: &LogFile) -> Result<Rotating, LogError> {
        let path = &cfg.path;
        let (dir, name) = if path.as_os_str().to_string_lossy().ends_with('/') || path.is_dir() {
            (path.clone(), "consul-render.log".to_string())
        } else {
            let name = path.file_name().map_or("consul-render.log".into(), |n| {
                n.to_string_lossy().into_owned()
            });
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            (dir, name)
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name.clone(), ".log".to_string()),
        };
        let mut r = Rotating {
            file: tempfile::tempfile().map_err(file_error("opening a log file in", &dir))?,
            dir,
            stem,
            ext,
            cfg: cfg.clone(),
            written: 0,
            opened: Instant::now(),
        };
        r.prune()?;
        r.open_new()?;
        Ok(r)
    }

    fn open_new(&mut self) -> Result<(), LogError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self.dir.join(format!("{}-{nanos}{}", self.stem, self.ext));
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o640)
            .open(&path)
            .map_err(file_error("opening log file", &path))?;
        self.written = 0;
        self.opened = Instant::now();
        Ok(())
    }

    /// The existing files of this log, oldest first (their names sort by creation time).
    fn existing(&self) -> Vec<PathBuf> {
        let prefix = format!("{}-", self.stem);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix(&prefix)
                        .and_then(|rest| rest.strip_suffix(&self.ext))
                        .is_some_and(|ts| !ts.is_empty() && ts.bytes().all(|b| b.is_ascii_digit()))
                })
            })
            .collect();
        found.sort();
        found
    }

    fn prune(&self) -> Result<(), LogError> {
        let max = self.cfg.max_files;
        if max == 0 {
            return Ok(());
        }
        let files = self.existing();
        let keep = usize::try_from(max).unwrap_or(0);
        let remove = files.len().saturating_sub(keep);
        for f in &files[..remove] {
            std::fs::remove_file(f).map_err(file_error("pruning log file", f))?;
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), LogError> {
        let full = self.cfg.rotate_bytes > 0 && self.written >= self.cfg.rotate_bytes;
        if full || self.opened.elapsed() >= self.cfg.rotate_duration {
            self.prune()?;
            self.open_new()?;
        }
        let dir = self.dir.clone();
        self.file
            .write_all(buf)
            .map_err(file_error("writing a log file in", &dir))?;
        self.written += buf.len() as u64;
        Ok(())
    }
}

/// consul-template's default age of a log file.
pub const ROTATE_DURATION: Duration = Duration::from_secs(24 * 3600);
