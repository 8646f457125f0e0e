//! Integration tests through the built binary, one module per topic.

mod blue_green;
mod capture;
mod cli;
mod config_keys;
mod consul;
mod dedup;
mod dropin;
mod exec;
mod fuzz;
mod gotmpl;
mod hardening;
mod helpers;
mod nginx;
mod ported;
mod render;
mod status;
mod support;
mod watch;
