//! The server's seams, filled by turmoil: peer TCP, client UDP (with injected duplication),
//! and per-host clocks (offset, rate error, pauses) driven by simulated true time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cld_server::env::{Clock, DatagramSocket, Datagrams};
use cld_server::peer::Net;
use libpaxos::Time;
use libpaxos_db::WallTime;

use crate::faults::SplitMix64;

/// Simulated true time now: turmoil's elapsed time of the run.
pub fn true_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

#[derive(Debug)]
struct ClockState {
    /// Rate error in parts per million (positive: the clock runs fast).
    rate_ppm: i64,
    /// True time and local time at the last rate change.
    anchor_true: Duration,
    anchor_local: Duration,
    /// While paused: the local time the process last saw.
    frozen: Option<Duration>,
    /// Offset of the host's wall clock from true wall time, ms.
    wall_offset_ms: i64,
}

/// A host's clock, shared by the harness (which changes its rate and pauses it) and the
/// member running on the host. Monotonic time is true time scaled by the rate error; a paused
/// host sees its clock stand still and then jump when it resumes, as a process stopped by the
/// scheduler would.
#[derive(Clone, Debug)]
pub struct ClockControl(Arc<Mutex<ClockState>>);

impl ClockControl {
    /// A clock with this wall-clock offset and no rate error.
    pub fn new(wall_offset_ms: i64) -> ClockControl {
        ClockControl(Arc::new(Mutex::new(ClockState {
            rate_ppm: 0,
            anchor_true: Duration::ZERO,
            anchor_local: Duration::ZERO,
            frozen: None,
            wall_offset_ms,
        })))
    }

    fn state(&self) -> MutexGuard<'_, ClockState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn local_at(state: &ClockState, t: Duration) -> Duration {
        let since = t.saturating_sub(state.anchor_true);
        let ns = since.as_nanos() as i128;
        let scaled = ns + ns * i128::from(state.rate_ppm) / 1_000_000;
        state.anchor_local + Duration::from_nanos(scaled.max(0) as u64)
    }

    /// The local monotonic time at true time `t`.
    pub fn local(&self, t: Duration) -> Duration {
        let state = self.state();
        match state.frozen {
            Some(at) => at,
            None => Self::local_at(&state, t),
        }
    }

    /// From true time `t` on, run `ppm` fast (negative: slow).
    pub fn set_rate(&self, t: Duration, ppm: i64) {
        let mut state = self.state();
        let local = Self::local_at(&state, t);
        state.anchor_true = t;
        state.anchor_local = local;
        state.rate_ppm = ppm;
    }

    /// The process stops looking at its clock at true time `t` (pause), or resumes.
    pub fn set_paused(&self, t: Duration, paused: bool) {
        let mut state = self.state();
        state.frozen = if paused {
            Some(Self::local_at(&state, t))
        } else {
            None
        };
    }

    /// The rate error now, ppm.
    pub fn rate_ppm(&self) -> i64 {
        self.state().rate_ppm
    }
}

/// The clock a simulated member runs on.
#[derive(Clone, Debug)]
pub struct SimClock {
    control: ClockControl,
    /// Local time when this process started (a restarted process's clock starts anew).
    origin: Duration,
}

impl SimClock {
    /// A process clock on this host, starting now.
    pub fn new(control: ClockControl) -> SimClock {
        let origin = control.local(true_now());
        SimClock { control, origin }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Time {
        Time(self.control.local(true_now()).saturating_sub(self.origin))
    }

    fn wall(&self) -> WallTime {
        let epoch = turmoil::since_epoch().unwrap_or_default().as_millis() as i64;
        let offset = self.control.state().wall_offset_ms;
        WallTime((epoch + offset).max(0) as u64)
    }
}

/// `addr`'s port on the host's own address: turmoil binds only the unspecified address (a
/// host has one address, the one in the cell's config).
fn on_host(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], addr.port()))
}

/// Turmoil's TCP as the peer transport.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNet;

impl Net for SimNet {
    type Stream = turmoil::net::TcpStream;
    type Listener = turmoil::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> std::io::Result<Self::Listener> {
        turmoil::net::TcpListener::bind(on_host(addr)).await
    }

    async fn accept(
        &self,
        listener: &mut Self::Listener,
    ) -> std::io::Result<(Self::Stream, SocketAddr)> {
        listener.accept().await
    }

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

/// Datagram loss and duplication, shared by every datagram socket of a run and set by the
/// harness (turmoil's own link failures model links going down, not lost packets).
#[derive(Clone, Debug)]
pub struct NetFaults(Arc<Mutex<Lossy>>);

#[derive(Debug)]
struct Lossy {
    loss_ppm: u64,
    dup_ppm: u64,
    rng: SplitMix64,
}

impl NetFaults {
    /// No loss or duplication; the draws come from `seed`.
    pub fn new(seed: u64) -> NetFaults {
        NetFaults(Arc::new(Mutex::new(Lossy {
            loss_ppm: 0,
            dup_ppm: 0,
            rng: SplitMix64::new(seed),
        })))
    }

    /// Lose and duplicate this many datagrams per million.
    pub fn set(&self, loss_ppm: u64, dup_ppm: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.loss_ppm = loss_ppm;
        g.dup_ppm = dup_ppm;
    }

    /// How many copies of a datagram to send: 0 (lost), 1 or 2 (duplicated).
    fn copies(&self) -> usize {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.loss_ppm == 0 && g.dup_ppm == 0 {
            return 1;
        }
        let (loss, dup) = (g.loss_ppm, g.dup_ppm);
        if g.rng.range(0, 1_000_000) < loss {
            0
        } else if g.rng.range(0, 1_000_000) < dup {
            2
        } else {
            1
        }
    }
}

/// Turmoil's UDP, for the client port and for clients.
#[derive(Clone, Debug)]
pub struct SimUdp {
    /// Loss and duplication of sent datagrams.
    pub faults: NetFaults,
}

/// A turmoil UDP socket that may lose or duplicate what it sends.
#[derive(Debug)]
pub struct SimSocket {
    socket: turmoil::net::UdpSocket,
    faults: NetFaults,
}

impl SimSocket {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, faults: NetFaults) -> std::io::Result<SimSocket> {
        Ok(SimSocket {
            socket: turmoil::net::UdpSocket::bind(on_host(addr)).await?,
            faults,
        })
    }

    /// Receives one datagram.
    pub async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// Sends one datagram (none, once or twice, as the faults say).
    pub async fn send(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        for _ in 0..self.faults.copies() {
            self.socket.send_to(buf, to).await?;
        }
        Ok(buf.len())
    }
}

impl DatagramSocket for SimSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.recv(buf).await
    }

    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.send(buf, to).await
    }
}

impl Datagrams for SimUdp {
    type Socket = SimSocket;

    async fn bind(&self, addr: SocketAddr) -> std::io::Result<SimSocket> {
        SimSocket::bind(addr, self.faults.clone()).await
    }
}

impl cldc::ClientSocket for SimSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.recv(buf).await
    }

    async fn send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.send(buf, to).await
    }
}
