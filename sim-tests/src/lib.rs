//! Deterministic simulations of whole cells under faults, and the checkers that judge them.
//!
//! What is here today: the history a run records ([`history`], JSON lines whose schema is in
//! docs/testing.md; [`Recorder`] builds one as a run goes), the checkers that judge a history
//! ([`check`]: linearizability of files as registers with compare-and-set, lock safety and
//! lock-delay, sequencers, durability, convergence, liveness), and what a failing run leaves
//! under `target/sim-failures/` ([`failure`]: the history, the HTML [`timeline`], the verdicts
//! and the replay command), and the harness that runs real `cld-server` members and `cldc`
//! clients on turmoil hosts under the fault plans ([`cell`], docs/testing.md section 6). The
//! Paxos core alone has its own simulation in `libpaxos::sim`. This crate is for tests:
//! nothing in it belongs in a server or client.
#![deny(missing_docs)]

pub mod cell;
pub mod check;
pub mod error;
pub mod failure;
pub mod faults;
pub mod history;
pub mod recorder;
pub mod timeline;
pub mod workload;

pub use check::{Check, CheckConfig, Report, Verdict, Violation, check_all};
pub use error::HistoryError;
pub use failure::{FailureFiles, failure_dir, write_failure};
pub use history::{History, Line, OpRecord, SimTime};
pub use recorder::{RecordError, Recorder};
