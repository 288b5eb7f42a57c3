//! What the session core dropped, retried and refused, for operators and tests.

/// Counters of every drop and failure path of a [`super::Session`]; all start at 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to the core.
    pub datagrams_in: u64,
    /// Datagrams the core asked to send.
    pub datagrams_out: u64,
    /// Dropped: shorter than header plus tag.
    pub too_short: u64,
    /// Dropped: longer than `max_datagram`.
    pub too_long: u64,
    /// Dropped: wrong magic.
    pub bad_magic: u64,
    /// Dropped: a protocol version this library does not speak.
    pub bad_version: u64,
    /// Version-reject datagrams received from a server.
    pub version_rejects: u64,
    /// Dropped: malformed header.
    pub bad_header: u64,
    /// Dropped: another session or user.
    pub unknown_session: u64,
    /// Dropped: AEAD tag mismatch (forged, corrupted or sealed under another key).
    pub bad_tag: u64,
    /// Dropped: a kind only clients send.
    pub wrong_direction: u64,
    /// Dropped: packet seq already seen (replay or network duplicate).
    pub replayed: u64,
    /// Dropped: from an epoch older than one already seen.
    pub stale_epoch: u64,
    /// Dropped: fragment refused by reassembly (too large, inconsistent count).
    pub bad_fragment: u64,
    /// Partial messages evicted from reassembly to make room.
    pub reassembly_evictions: u64,
    /// Dropped: body did not decode.
    pub bad_body: u64,
    /// Dropped: reply to a request no longer in flight.
    pub stray_replies: u64,
    /// Dropped: keepalive reply for an unknown or superseded nonce.
    pub stray_keepalive_replies: u64,
    /// Dropped: event already delivered (re-acknowledged).
    pub duplicate_events: u64,
    /// Dropped: out-of-order event beyond the buffer (the server will resend it).
    pub events_overflow: u64,
    /// Request retransmissions.
    pub retransmissions: u64,
    /// Keepalives sent.
    pub keepalives: u64,
    /// `NotMaster` redirects followed.
    pub redirects: u64,
    /// Dropped: `NotMaster` from a member the client is no longer talking to, or echoing
    /// neither the request in flight nor an outstanding keepalive (late or replayed).
    pub stray_redirects: u64,
    /// Times the client moved to the next member because the current one was silent.
    pub rotations: u64,
    /// Calls failed with `Timeout`.
    pub call_timeouts: u64,
    /// Calls refused because the queue was full.
    pub queue_full: u64,
    /// Entries into jeopardy.
    pub jeopardies: u64,
    /// Dropped: a handshake reply that did not authenticate or decode.
    pub bad_handshakes: u64,
    /// Dropped: a handshake reply or cookie when no handshake was in progress (or, for a
    /// cookie, not from the member the client talks to).
    pub stray_handshakes: u64,
    /// Cookies received (the cell is under a handshake flood) and repeated.
    pub cookies: u64,
    /// Handshakes restarted because the cell never confirmed the session.
    pub handshake_restarts: u64,
    /// `Retry` answers acted on (a new master asked for a re-send under its epoch).
    pub retries: u64,
    /// Dropped: an answer for an ended session (stateless role) that echoes nothing the
    /// client has outstanding.
    pub stray_ended: u64,
    /// Server events not delivered (nor acknowledged) because the application's event
    /// buffer was full; the server re-sends them.
    pub events_deferred: u64,
}
