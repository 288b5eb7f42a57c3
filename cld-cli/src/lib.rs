//! `cldcli`, the shell and one-shot command tool for users and operators.
//!
//! Not written yet: a later issue builds it on `cldc`.
#![deny(missing_docs)]
