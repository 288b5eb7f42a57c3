//! The UDP edge: one task receives datagrams into a bounded queue for the replica loop
//! (drops counted), another sends what the front end produced (bounded, drops counted).
//! The loop reads `now` when it takes a datagram from the queue (libpaxos's time contract).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::env::DatagramSocket;
use crate::metrics::Counters;

/// Datagrams queued from the socket to the loop.
pub const RECV_QUEUE: usize = 8192;
/// Datagrams queued from the loop to the socket.
pub const SEND_QUEUE: usize = 8192;
/// Receive buffer: larger than any datagram a member accepts, so a longer one is seen (and
/// counted `too_long`) rather than silently truncated.
pub const RECV_BUF: usize = 2048;

/// One received datagram.
pub type Inbound = (SocketAddr, Vec<u8>);

/// The edge's queues and tasks.
pub struct Edge {
    /// Datagrams for the loop.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Datagrams to send.
    pub outbound: Outbound,
    /// The receive and send tasks (aborted when dropped by the owner).
    pub tasks: Vec<JoinHandle<()>>,
}

/// The loop's way to send.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Inbound>,
    counters: Counters,
}

impl Outbound {
    /// Queues a datagram (dropped and counted when the queue is full).
    pub fn send(&self, to: SocketAddr, datagram: Vec<u8>) {
        if self.tx.try_send((to, datagram)).is_err() {
            self.counters.client_send_full.inc();
        }
    }
}

/// Starts the receive and send tasks on `socket`.
pub fn start<S: DatagramSocket>(socket: S, counters: Counters) -> Edge {
    let socket = Arc::new(socket);
    let (in_tx, in_rx) = mpsc::channel(RECV_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<Inbound>(SEND_QUEUE);
    let recv = {
        let socket = socket.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; RECV_BUF];
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let dg = buf[..n.min(RECV_BUF)].to_vec();
                        match in_tx.try_send((from, dg)) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                counters.client_queue_full.inc();
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    // ICMP errors from earlier sends surface here on some systems; they
                    // say nothing about the next datagram.
                    Err(_) => {
                        counters.client_send_errors.inc();
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            }
        })
    };
    let send = {
        let counters = counters.clone();
        tokio::spawn(async move {
            while let Some((to, dg)) = out_rx.recv().await {
                if socket.send_to(&dg, to).await.is_err() {
                    counters.client_send_errors.inc();
                }
            }
        })
    };
    Edge {
        inbound: in_rx,
        outbound: Outbound {
            tx: out_tx,
            counters,
        },
        tasks: vec![recv, send],
    }
}
