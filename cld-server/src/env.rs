//! Time and randomness come into the server only through these traits, so the whole-cell
//! simulation can run the same code with a turmoil clock and a seeded generator.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use libpaxos::Time;
use libpaxos_db::WallTime;
use rand::{RngCore, SeedableRng};

/// The server's clock.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time since an arbitrary origin (for libpaxos, leases and timers).
    fn now(&self) -> Time;
    /// Wall-clock milliseconds since the Unix epoch (stamped into commands).
    fn wall(&self) -> WallTime;
}

/// The process clock: `Instant` for `now`, `SystemTime` for `wall`.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose `now` starts at zero.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Time(self.origin.elapsed())
    }

    fn wall(&self) -> WallTime {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        WallTime(ms)
    }
}

/// A source of randomness (election jitter seeds, secrets, backoff jitter).
pub trait Entropy: Send + Sync + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A random `u64`.
    fn next_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The operating system's generator.
#[derive(Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        rand::rng().fill_bytes(buf);
    }
}

/// A seeded generator, for simulations and tests: the same seed gives the same bytes.
#[derive(Debug)]
pub struct SeededEntropy(Mutex<rand::rngs::StdRng>);

impl SeededEntropy {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // A poisoned lock only means another thread panicked mid-fill; the state is still a
        // valid generator.
        let mut rng = self.0.lock().unwrap_or_else(|e| e.into_inner());
        rng.fill_bytes(buf);
    }
}

/// A bound datagram socket (the client port), so the whole-cell simulation can swap in its
/// own (turmoil's `UdpSocket`).
pub trait DatagramSocket: Send + Sync + 'static {
    /// Receives one datagram into `buf`: its length and source.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl std::future::Future<Output = std::io::Result<(usize, std::net::SocketAddr)>> + Send;
    /// Sends one datagram.
    fn send_to(
        &self,
        buf: &[u8],
        to: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = std::io::Result<usize>> + Send;
}

/// Binds datagram sockets.
pub trait Datagrams: Send + Sync + 'static {
    /// The socket type.
    type Socket: DatagramSocket;
    /// Binds `addr`.
    fn bind(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Socket>> + Send;
}

/// Tokio's UDP.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioUdp;

impl DatagramSocket for tokio::net::UdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, std::net::SocketAddr)> {
        tokio::net::UdpSocket::recv_from(self, buf).await
    }

    async fn send_to(&self, buf: &[u8], to: std::net::SocketAddr) -> std::io::Result<usize> {
        tokio::net::UdpSocket::send_to(self, buf, to).await
    }
}

impl Datagrams for TokioUdp {
    type Socket = tokio::net::UdpSocket;

    async fn bind(&self, addr: std::net::SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
        tokio::net::UdpSocket::bind(addr).await
    }
}
