//! Counters for every input the core refused and every notable transition, for operators.

/// Monotonic counts since this replica was constructed. Every refused input bumps exactly one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages from a node that is not a member (or from this replica itself).
    pub unknown_sender: u64,
    /// Messages whose contents break the protocol's shape (unsorted slots, slot 0, an entry
    /// whose ballot differs from its message's).
    pub malformed: u64,
    /// Accept messages with entries beyond this replica's accept window (it lags; they are
    /// taken once it has caught up).
    pub beyond_accept_window: u64,
    /// Messages carrying a ballot below what this replica promised.
    pub stale_ballot: u64,
    /// Prepares ignored because this replica still owes a master its lease.
    pub refused_by_lease: u64,
    /// Prepares ignored because this replica restarted less than a lease ago.
    pub refused_while_quiet: u64,
    /// Messages that do not apply to this replica's role (a promise to a non-candidate, ...).
    pub unexpected: u64,
    /// Pre-votes this replica refused (it owed a lease, was quiet, or promised higher).
    pub prevotes_refused: u64,
    /// Pre-vote rounds this replica started.
    pub prevotes_started: u64,
    /// Elections this replica started.
    pub elections_started: u64,
    /// Times this replica became master.
    pub terms_won: u64,
    /// Proposals refused (not master, window full, too large).
    pub proposals_refused: u64,
    /// Accept messages re-sent because a follower had not acknowledged them.
    pub accepts_resent: u64,
    /// Catch-up requests sent.
    pub catch_up_requests: u64,
    /// Snapshot installs asked of the driver.
    pub snapshots_needed: u64,
    /// Hand-overs begun by `Replica::hand_over` (this replica was master).
    pub handovers_started: u64,
    /// Hand-overs this replica completed as master: it stepped down and released its lease.
    pub handovers_released: u64,
    /// Lease promises this replica gave up because their master released them.
    pub leases_released: u64,
    /// Releases ignored because they named another ballot than the one this replica promised
    /// a lease to (stale, replayed, or nothing was promised).
    pub stale_releases: u64,
    /// Elections this replica started at once because the master handed over to it.
    pub elections_on_handover: u64,
}
