//! `Sources`: the one way to a dependency's value, in once and watch mode alike. Consul (or the
//! data file standing in for it) answers catalog and KV dependencies, the disk answers `file`
//! ones; one retry policy; and the data file's reloads, so nothing outside knows it is a file.

use super::data::DataSource;
use super::{local, model, retry, Block, FetchFuture, Fetched, Source, SourceError};
use crate::config::Retry;
use crate::dependency::Dependency;
use std::path::Path;
use std::sync::Arc;

pub struct Sources {
    backend: Arc<dyn Source>,
    /// Set when the backend is the `-data` file.
    data: Option<Arc<DataSource>>,
    retry: Retry,
    /// The fields the backend builds `service` instances with, when it builds only some.
    fields: Option<model::FieldSet>,
}

impl Sources {
    /// Values from `backend` (a Consul agent, or a test's stand-in).
    pub fn new(backend: Arc<dyn Source>, retry: Retry) -> Sources {
        Sources {
            backend,
            data: None,
            retry,
            fields: None,
        }
    }

    /// Values from a data file instead of Consul.
    pub fn data(data: DataSource, retry: Retry) -> Sources {
        let data = Arc::new(data);
        Sources {
            backend: data.clone(),
            data: Some(data),
            retry,
            fields: None,
        }
    }

    /// Says that the backend builds instances with `fields` (given to it too), so that
    /// `widen_fields` can widen them.
    pub fn with_fields(mut self, fields: model::FieldSet) -> Sources {
        self.fields = Some(fields);
        self
    }

    /// Makes the backend build instances with the fields `wanted` reads as well; true when
    /// values fetched before lack some of them (they must be fetched again).
    pub fn widen_fields(&self, wanted: model::Fields) -> bool {
        self.fields.as_ref().is_some_and(|f| f.widen(wanted))
    }

    /// Whether values come from the `-data` file (no connections to count).
    pub fn is_data(&self) -> bool {
        self.data.is_some()
    }

    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// The data file to watch, when values come from one.
    pub fn data_file(&self) -> Option<&Path> {
        self.data.as_ref().and_then(|d| d.path())
    }

    /// Reads the data file again after it changed on disk. Its blocking queries wake with the
    /// new values; a file that no longer parses keeps the last good data (and says so).
    pub fn reload_data(&self) {
        let Some(d) = &self.data else { return };
        match d.reload() {
            Ok(true) => tracing::info!("data file changed"),
            Ok(false) => {}
            Err(e) => tracing::error!("{e:#}; keeping the last good data"),
        }
    }

    /// A dependency's value under the retry policy (once mode, capture).
    pub async fn fetch_retrying(&self, dep: &Dependency) -> Result<Fetched, SourceError> {
        retry::fetch(self, dep, None, &self.retry).await
    }
}

/// One attempt: `file` dependencies from disk (a file has no index to block on: watch mode
/// watches it), everything else from the backend.
impl Source for Sources {
    fn fetch<'a>(&'a self, dep: &'a Dependency, block: Option<Block>) -> FetchFuture<'a> {
        match dep {
            Dependency::File { path, sandbox } => {
                let read = local::read(path, sandbox.as_deref());
                Box::pin(async move { read })
            }
            _ => self.backend.fetch(dep, block),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::testing::NO_RETRY;
    use serde_json::json;

    #[tokio::test]
    async fn files_from_disk_the_rest_from_the_backend_and_the_data_file_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.json");
        std::fs::write(&data, r#"{"kv": {"k": "one"}}"#).unwrap();
        std::fs::write(dir.path().join("f.txt"), "on disk").unwrap();
        let sources = Sources::data(DataSource::load(&data).unwrap(), NO_RETRY);
        assert_eq!(sources.data_file(), Some(data.as_path()));
        let file = Dependency::File {
            path: dir.path().join("f.txt"),
            sandbox: None,
        };
        let key = Dependency::Key {
            path: "k".into(),
            dc: None,
            query: Vec::new(),
        };
        let got = sources.fetch_retrying(&file).await.unwrap();
        assert_eq!(got.value, Some(json!("on disk")));
        let value = |f: Fetched| f.value.and_then(|v| v.get("Value").cloned());
        let got = sources.fetch_retrying(&key).await.unwrap();
        assert_eq!(value(got), Some(json!("one")));
        std::fs::write(&data, r#"{"kv": {"k": "two"}}"#).unwrap();
        sources.reload_data();
        let got = sources.fetch_retrying(&key).await.unwrap();
        assert_eq!(value(got), Some(json!("two")));
    }
}
