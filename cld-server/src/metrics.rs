//! Counters for every failure path, and the optional Prometheus listener (`--metrics ADDR`)
//! serving `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// The server's counters (cheap to clone: each is shared).
        #[derive(Clone, Debug, Default)]
        pub struct Counters {
            $(#[doc = $help] pub $name: Counter,)*
        }

        impl Counters {
            fn register(&self, registry: &mut Registry) {
                $(registry.register(stringify!($name), $help, self.$name.clone());)*
            }

            /// Every counter by name, for tests and the status view.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.get()),)*]
            }
        }
    };
}

counters! {
    peer_connects: "Peer connections established",
    peer_connect_failures: "Peer dials that failed",
    peer_io_errors: "Peer socket errors",
    peer_bad_hello: "Peer connections whose first bytes were not a cld hello (random bytes)",
    peer_bad_version: "Peer connections with an unknown wire version",
    peer_other_cell: "Peer connections from another cell",
    peer_bad_ids: "Peer connections whose member ids do not fit this cell",
    peer_auth_failures: "Peer handshakes that failed authentication (wrong cell secret)",
    peer_handshake_timeouts: "Peer handshakes that timed out",
    peer_handshakes_refused: "Peer connections closed because too many handshakes were in progress",
    peer_decrypt_failures: "Peer records that failed to decrypt",
    peer_frames_too_large: "Peer frames above the size limit",
    peer_bad_frame_version: "Peer frames with an unknown version",
    peer_bad_frames: "Peer frames that did not decode",
    peer_frames_in: "Peer frames received",
    peer_frames_out: "Peer frames sent",
    peer_send_timeouts: "Peer frame writes that missed their deadline",
    peer_silent_closes: "Peer connections closed because nothing came from the peer for the silence limit (2 s)",
    peer_queue_full_drops: "Peer frames dropped because the peer's queue was full",
    peer_dropped_no_connection: "Peer frames dropped because there was no connection",
    peer_send_unknown_member: "Peer frames addressed to a non-member",
    peer_progress_held_back: "Progress frames not sent to a peer whose hello says it does not understand them (an older cld)",
    loop_inbound_full: "Peer frames dropped because the replica loop's queue was full",
    loop_requests_full: "Requests refused because the replica loop's queue was full",
    proposals_not_master: "Proposals refused because this member is not master",
    proposals_busy: "Proposals refused because too many are in flight",
    proposals_too_large: "Proposals refused because the command is too large",
    proposals_lost: "Proposals whose slot was chosen with another value (master change)",
    reads_refused: "Reads refused because this member cannot serve them (no lease)",
    fatal_errors: "Replica failures (log sync, apply, data dir write) that stopped this member",
    snapshot_failures: "Snapshot writes that failed",
    snapshot_chunks_refused: "Snapshot chunks or transfers refused",
    snapshot_unavailable: "Snapshot requests this member could not serve",
    snapshots_sent: "Snapshots streamed to a peer",
    snapshots_installed: "Snapshots installed from a peer",
    rejoin_dropped_votes: "Promises, accepts and lease acks withheld while rejoining",
    elections_won: "Times this member became master",
    role_changes: "Role changes",
    leases_lost: "Master leases lost",
    http_bad_requests: "Metrics listener requests that were not understood",
    too_long: "Client datagrams longer than the largest accepted (protocol 15.2)",
    too_short: "Client datagrams too short for their kind",
    bad_magic: "Client datagrams without the CLDr magic",
    bad_version: "Client datagrams of a protocol version this member does not speak",
    bad_header: "Client datagrams with a malformed header or padding",
    wrong_direction: "Server-to-client kinds received on the client port",
    handshake_malformed: "Handshake inits that did not parse",
    handshake_resent: "Handshake inits answered again from a pending entry",
    handshake_cookies_sent: "Cookies sent instead of answering an init (handshake flood)",
    handshake_unknown_user: "Handshake inits for a user this cell does not know",
    handshake_bad: "Handshake inits that did not authenticate (wrong secret, forged)",
    handshake_unknown_cell_key: "Handshake inits naming a cell key this member does not hold",
    handshake_answered: "Handshake inits answered",
    handshake_expired: "Pending handshakes that expired unproven",
    handshake_evicted: "Pending handshakes evicted by the table's bounds",
    handshake_completed: "Pending handshakes proven by their first sealed datagram",
    sessions_per_user_refused: "Handshakes refused because the user has too many sessions",
    unknown_session: "Sealed datagrams for a session this member holds no keys for (dropped silently)",
    bad_tag: "Sealed datagrams that did not open (forged or corrupted)",
    ended_session: "Datagrams of ended (tombstoned) sessions",
    not_master_sent: "NotMaster answers sent",
    not_master_limited: "NotMaster or Retry answers withheld by the per-session rate limit",
    retries_sent: "Retry answers sent to datagrams sealed under an older epoch",
    stale_epoch: "Client datagrams sealed under an older epoch (never acted on)",
    replayed: "Client datagrams refused by the replay window",
    bad_fragment: "Fragments refused by reassembly",
    reassembly_evictions: "Partly reassembled messages evicted",
    bad_body: "Client message bodies that did not decode",
    stale_request: "Requests below the last answered seq, or a copy of one in flight",
    barriers_logged: "Barrier commands logged for a request-seq gap",
    requests_proposed: "Client requests proposed to the log",
    reads_answered: "Reads answered from the master's lease",
    not_serving: "Requests and keepalives dropped because the master holds no lease yet",
    keepalives_answered: "Keepalives answered from memory",
    events_sent: "Events sent (first transmissions)",
    events_resent: "Events re-sent (unacknowledged)",
    events_dropped: "Events dropped because a session's queue was full",
    sessions_created: "Sessions created",
    sessions_ended: "Sessions ended by EndSession",
    sessions_expired: "Sessions expired by this master",
    proposals_failed: "Front-end proposals refused or lost (the client retransmits)",
    client_queue_full: "Client datagrams dropped because the front end's queue was full",
    client_send_full: "Datagrams to clients dropped because the send queue was full",
    client_send_errors: "Datagrams to clients the socket failed to send",
    disk_full: "Writes that failed because the disk is full (the member stepped down)",
    disk_full_dropped: "Peer frames and proposals dropped by a member stopped on a full disk",
    disk_check_failures: "Free-space checks of the data dir that failed",
    keepalives_refused: "Keepalives not renewed: the session is being expired, ended or past its lease",
    events_lost: "MasterFailover notices sent after a full event queue dropped events",
    handovers_started: "Shutdowns of a master that began handing mastership over",
    handovers_completed: "Hand-overs at shutdown that ended with another member master",
    handovers_timed_out: "Hand-overs at shutdown that gave up waiting for a new master (2 x election timeout)",
    proposals_handing_over: "Proposals refused because this master is handing over",
    prevotes_started: "Pre-votes this member started (its election timer fired)",
    elections_on_handover: "Elections this member started at once because the master handed over to it",
    leases_released: "Lease promises given up because their master handed over",
    stale_releases: "Lease releases ignored (another ballot than the one promised: stale or replayed)",
    paxos_unknown_sender: "Consensus messages from a node that is not a member",
    paxos_malformed: "Consensus messages that break the protocol's shape",
    paxos_beyond_accept_window: "Accepts beyond this member's accept window (it lags; taken after catching up)",
    paxos_stale_ballot: "Consensus messages carrying a ballot below what this member promised",
    paxos_refused_by_lease: "Prepares ignored because this member still owes a master its lease",
    paxos_refused_while_quiet: "Prepares ignored because this member restarted less than a lease ago",
    paxos_unexpected: "Consensus messages that do not apply to this member's role",
    prevotes_refused: "Pre-votes this member refused (it owed a lease, was quiet, or promised higher)",
    elections_started: "Elections (prepare rounds) this member started after winning a pre-vote",
    accepts_resent: "Accepts re-sent to followers that had not acknowledged them",
    catch_up_requests: "Catch-up requests this member sent",
}

/// Gauges of the replica's state.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// 1 when this member is master.
    pub is_master: Gauge,
    /// The commit index.
    pub commit: Gauge,
    /// The applied index.
    pub applied: Gauge,
    /// The current epoch (0 when unknown).
    pub epoch: Gauge,
    /// 1 while rejoining (not voting).
    pub rejoining: Gauge,
    /// 1 while a snapshot received from a peer is installed in the background.
    pub installing: Gauge,
    /// 1 once a write failed with a full disk (the member stepped down until restarted).
    pub disk_full: Gauge,
}

/// Counters, gauges and the serving flag, registered for export.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Counters.
    pub counters: Counters,
    /// Gauges.
    pub gauges: Gauges,
    /// Whether this member is serving (for `/healthz`).
    pub serving: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set, registered under the `cld` prefix.
    pub fn new() -> Metrics {
        let counters = Counters::default();
        let gauges = Gauges::default();
        // Not known to vote until the replica loop has read the data dir.
        gauges.rejoining.set(1);
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("cld");
        counters.register(registry);
        registry.register(
            "is_master",
            "1 when this member is master",
            gauges.is_master.clone(),
        );
        registry.register("commit_index", "The commit index", gauges.commit.clone());
        registry.register("applied_index", "The applied index", gauges.applied.clone());
        registry.register("epoch", "The current master epoch", gauges.epoch.clone());
        registry.register(
            "rejoining",
            "1 while rejoining without a vote",
            gauges.rejoining.clone(),
        );
        registry.register(
            "installing",
            "1 while a received snapshot is installed in the background",
            gauges.installing.clone(),
        );
        registry.register(
            "disk_full",
            "1 once a write failed with a full disk (stepped down until restarted)",
            gauges.disk_full.clone(),
        );
        Metrics {
            counters,
            gauges,
            serving: Arc::new(AtomicBool::new(false)),
            registry: Arc::new(root),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                self.counters.http_bad_requests.inc();
                continue;
            };
            let metrics = self.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let read =
                    tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut buf))
                        .await;
                let n = match read {
                    Ok(Ok(n)) => n,
                    _ => {
                        metrics.counters.http_bad_requests.inc();
                        return;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/healthz" => {
                        if metrics.serving.load(Ordering::Relaxed) {
                            ("200 OK", "serving\n".to_string())
                        } else if metrics.gauges.disk_full.get() == 1 {
                            (
                                "503 Service Unavailable",
                                "not serving: disk full\n".to_string(),
                            )
                        } else {
                            ("503 Service Unavailable", "not serving\n".to_string())
                        }
                    }
                    _ => {
                        metrics.counters.http_bad_requests.inc();
                        ("404 Not Found", "not found\n".to_string())
                    }
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_err() {
                    warn!("metrics: write failed");
                }
            });
        }
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
