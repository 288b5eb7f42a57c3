//! `cldcli`, the command line of CLD: an interactive shell and one-shot commands for people
//! and scripts (`ls`, `cat`, `put`, `lock PATH -- COMMAND`, `check-seq`, `watch`), the
//! operator's `status`, and `bench`, the tool that measures a cell. It is built on the
//! `cldc` client library and holds no state of its own beyond a shell's working directory
//! and locks. It is not a library for programs (use `cldc`); the modules are public so the
//! binary and its tests share them. docs/cldcli.md is the user's guide.
#![deny(missing_docs)]

pub mod args;
pub mod bench;
pub mod commands;
pub mod connect;
pub mod duration;
pub mod error;
pub mod lockrun;
pub mod output;
pub mod path;
pub mod sequencer;
pub mod shell;

pub use error::{CliError, Exit};
