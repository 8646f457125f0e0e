//! Local files for the `file` helper: contents, or `None` when the file does not exist.

use crate::source::{Fetched, SourceError};
use serde_json::Value;
use std::io::ErrorKind;
use std::path::Path;

/// Reads a file for `file`. A missing file is `None` (the render waits or once mode fails);
/// any other error (a directory, no permission) is an error naming the path.
pub fn read(path: &Path) -> Result<Fetched, SourceError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Fetched {
            value: Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            index: 0,
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Fetched {
            value: None,
            index: 0,
        }),
        Err(e) => Err(SourceError::Fatal(format!("file {}: {e}", path.display()))),
    }
}
