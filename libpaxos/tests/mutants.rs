//! Tests written to kill mutants that survived the mutation run (scripts/mutants-libpaxos.sh,
//! docs/libpaxos.md "Mutation run"): each pins one behaviour a survivor changed.
//!
//! One module per file of the core the survivors were in; the tests name the survivor they
//! kill (file:line:column as the run that found it named it) in their doc comments.

#[path = "mutants/support.rs"]
mod support;

#[path = "mutants/catchup.rs"]
mod catchup;
#[path = "mutants/election.rs"]
mod election;
#[path = "mutants/lease.rs"]
mod lease;
#[path = "mutants/replica.rs"]
mod replica;
#[path = "mutants/replication.rs"]
mod replication;
