//! The render loop: once mode (`once`), watch mode (`watch_mode`), and delivering what they
//! render (`deliver`: print, check, write, run commands).

pub mod deliver;
mod error;
pub mod once;
pub mod signals;
pub mod watch_mode;

use crate::config::Template;
use crate::template::Engine;

pub use error::RunError;
pub use once::{once, Finished, OnceError, Stats};

/// A template ready to render.
pub struct Job {
    pub config: Template,
    pub engine: Engine,
    /// The name logs and errors use.
    pub name: String,
    /// What renderers of the same template share in dedup mode: a hash of its text and the
    /// options that change what it renders (consul-template's template ID).
    pub id: String,
}

/// A template's `id`: SHA-256 of its (handlebars) text and options, 32 hex digits.
pub fn template_id(text: &str, opts: &crate::template::Options) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(text.as_bytes());
    h.update(format!("\0{}\0{:?}\0{:?}", opts.strict, opts.sandbox, opts.denylist).as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The fields of `service` instances that `jobs` can read.
pub fn job_fields(jobs: &[Job]) -> crate::source::model::Fields {
    jobs.iter().map(|j| j.engine.fields().clone()).fold(
        crate::source::model::Fields::Only(std::collections::BTreeSet::default()),
        crate::source::model::Fields::union,
    )
}

/// What the runner's and capture's unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::Job;
    use crate::config::{Retry, Template, TemplateSource};
    use crate::template::{Engine, Options};
    use std::time::Duration;

    /// One try, no retries.
    pub const NO_RETRY: Retry = Retry {
        enabled: false,
        attempts: 0,
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// A job rendering `src`.
    pub fn job(src: &str) -> Job {
        Job {
            config: Template::new(TemplateSource::Inline(src.into())),
            engine: Engine::compile("t", src, &Options::default()).unwrap(),
            name: "t".into(),
            id: super::template_id(src, &Options::default()),
        }
    }
}
