//! The render loop: once mode (`once`), watch mode (`watch`), and delivering what they render
//! (`deliver`: print, check, write, run commands).

pub mod deliver;
pub mod once;
pub mod signals;
pub mod watch;

use crate::config::Template;
use crate::template::Engine;

pub use once::{once, Finished, OnceError, Stats};
pub use watch::watch;

/// A template ready to render.
pub struct Job {
    pub config: Template,
    pub engine: Engine,
    /// The name logs and errors use.
    pub name: String,
}
