//! Deterministic turmoil simulations of whole cells (real server and client code) under
//! partitions, crashes, loss and delay.
//!
//! Not written yet: a later issue builds it once `cld-server` exists. The Paxos core has its own
//! in-crate simulation in `libpaxos/tests/simulation.rs`.
#![deny(missing_docs)]
