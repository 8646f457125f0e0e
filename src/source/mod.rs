//! Where values come from: Consul (or a data file standing in for it) and local files.
//!
//! The runner asks a `Source` for a dependency's value and cannot tell a data file from a
//! Consul agent: both answer in the helper-value shapes built by `model`.

pub mod consul;
pub mod data;
pub mod datafile;
pub mod local;
pub mod model;
pub mod retry;
pub mod router;

pub use router::Sources;

use crate::dependency::Dependency;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One answer for one dependency.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// `None` when the thing does not exist (a missing key, an unknown node, a missing file).
    pub value: Option<Value>,
    /// Consul's `X-Consul-Index` (or the data file's generation), for blocking queries.
    pub index: u64,
}

/// Why a fetch failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Connection trouble, 429 or 5xx: retry with backoff.
    #[error("{0}")]
    Retryable(String),
    /// 400, 403, 404 or a query the source cannot answer: retrying will not help.
    #[error("{0}")]
    Fatal(String),
}

/// A blocking-query position: wait for a change past `index`, at most `wait`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub index: u64,
    pub wait: Duration,
}

pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Fetched, SourceError>> + Send + 'a>>;

/// Answers dependencies that come from Consul.
pub trait Source: Send + Sync {
    /// One attempt at `dep`: now (`block` = None), or when it changes past `block.index`
    /// (at most `block.wait`). Retrying is the caller's choice (`retry`).
    fn fetch<'a>(&'a self, dep: &'a Dependency, block: Option<Block>) -> FetchFuture<'a>;
}
