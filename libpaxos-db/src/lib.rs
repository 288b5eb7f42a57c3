//! libpaxos-db
