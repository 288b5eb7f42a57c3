//! The `cld` daemon: client UDP front end, peer transport and the replica loop.
//!
//! Not written yet: a later issue builds it on `libpaxos`, `libpaxos-db` and `cldc`'s wire
//! types, as `docs/architecture.md` describes.
#![deny(missing_docs)]
