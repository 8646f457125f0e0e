//! The command line: clap's definition of every flag and the Go-style argv rewrite in front of it.

mod args;
mod argv;

pub use args::Args;
pub use argv::{rewrite, ArgvError, Rewritten, Subcommand};
