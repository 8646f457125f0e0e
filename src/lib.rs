//! consul-render: render handlebars templates from Consul (or a data file), write them
//! atomically, and run a command when the output changed. A drop-in for consul-template.

pub mod app;
pub mod capture;
pub mod cli;
pub mod config;
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
pub mod watch;
