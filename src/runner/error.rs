//! Why a run (once mode with an exec child, or watch mode) ended with an error (exit 14), by
//! kind; `app` decides the exit code from it.

use crate::template::TemplateError;
use nix::sys::signal::Signal;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot handle {signal}: {source}")]
    Signal {
        signal: Signal,
        #[source]
        source: std::io::Error,
    },
    /// The exec child could not be started.
    #[error(transparent)]
    Child(#[from] crate::process::StartError),
    #[error("every watcher stopped")]
    WatchersStopped,
    /// A dependency failed for good before every template rendered once.
    #[error("{dependency}: {message}")]
    Dependency { dependency: String, message: String },
    /// `err_on_failed_lookup`: what the template reads does not exist.
    #[error("template {template}: does not exist (err_on_failed_lookup): {}", .missing.join(", "))]
    Absent {
        template: String,
        missing: Vec<String>,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Writes or commands that failed, one line each.
    #[error("{}", .0.join("\n"))]
    Delivery(Vec<String>),
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    /// A destination could not be read to compare it.
    #[error(transparent)]
    Destination(#[from] crate::output::OutputError),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    /// Dedup mode cannot work with these settings (Consul refused the session: 400).
    #[error("dedup: {0}")]
    Dedup(String),
}
