//! consul-render: render handlebars templates from Consul (or a data file), write them
//! atomically, and run a command when the output changed. A drop-in for consul-template.

// Every dependency is used by the library; dev-dependencies are the tests' (see Cargo.toml).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// The binary's global allocator and its options (main.rs).
use libmimalloc_sys as _;
use mimalloc as _;

pub mod app;
pub mod capture;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod dependency;
pub mod fsread;
pub mod glob;
pub mod gotmpl;
pub mod limits;
pub mod logging;
pub mod notify;
pub mod output;
pub mod process;
pub mod runner;
pub mod source;
pub mod status;
pub mod template;
pub mod watchers;
