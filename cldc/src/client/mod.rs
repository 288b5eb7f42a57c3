//! The async API (feature `tokio`): a [`Session`] owns a UDP socket and a background task
//! that drives [`crate::core::Session`]; [`Handle`]s are open nodes.

mod driver;
mod error;
mod handle;
mod options;
mod socket;

pub use error::Error;
pub use handle::{Contents, Handle};
pub use options::{Cell, Credentials, SessionOptions};
pub use socket::ClientSocket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::core::{self, Counters, SessionEvent};
use crate::proto::{
    CellStatus, DirEntry, EventMask, NodeMeta, OpenMode, Reply, Request, Sequencer, SessionId,
    validate_path,
};
use driver::{Command, Driver};

/// Commands queued to the session task before callers wait.
const COMMAND_QUEUE: usize = 256;
/// Largest [`SessionOptions::event_buffer`] honoured (tokio's channels refuse huge bounds).
const MAX_EVENT_BUFFER: usize = 1 << 20;

/// Counters of a session: the core's plus the transport's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The session core's counters.
    pub core: Counters,
    /// Events dropped because the application dropped its [`Events`] receiver (a slow
    /// reader loses nothing: the session applies back-pressure instead).
    pub events_dropped: u64,
    /// Datagrams the socket failed to send.
    pub send_errors: u64,
    /// Socket receive errors.
    pub receive_errors: u64,
    /// Locks granted after their `lock()`/`try_lock()` call was dropped, and released at once.
    pub abandoned_grants: u64,
    /// `LockAcquired` events at a lock generation not above the newest grant this session
    /// saw on that handle: most are repeats a new master re-sent. None is taken as a grant;
    /// a lock call pending or waiting on the handle asks the master (`GetSequencer`)
    /// instead, which also completes a genuine shared grant at an unchanged generation.
    pub stale_grants: u64,
}

/// The session's events, in order: server events, then jeopardy, safe and expired.
pub struct Events {
    rx: mpsc::Receiver<SessionEvent>,
}

impl Events {
    /// The next event; `None` after the last one, once the session has expired or ended
    /// (or its task has stopped).
    pub async fn next(&mut self) -> Option<SessionEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_next(&mut self) -> Option<SessionEvent> {
        self.rx.try_recv().ok()
    }
}

/// An open session with a cell. Dropping it (and its handles) stops the background task
/// without ending the session on the server, which then expires it; call
/// [`Session::close`] to end it at once.
pub struct Session {
    id: SessionId,
    commands: mpsc::Sender<Command>,
    events: Mutex<Option<Events>>,
    stats: Arc<Mutex<Stats>>,
}

impl Session {
    /// Opens a session: finds the cell, binds a socket, and creates the session at the master.
    pub async fn open(
        cell: impl Into<Cell>,
        credentials: Credentials,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        // Without the `dns` feature `Cell` has one variant.
        #[allow(clippy::infallible_destructuring_match)]
        let members = match cell.into() {
            Cell::Members(m) => m,
            #[cfg(feature = "dns")]
            Cell::Srv(q) => crate::dns::discover(&q).await?,
        };
        let first = *members
            .first()
            .ok_or(Error::Config(core::ConfigError::NoMembers))?;
        let bind = options.bind.unwrap_or(match first {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        });
        let cfg = config(members, credentials, &options)?;
        let socket = UdpSocket::bind(bind).await?;
        launch(cfg, &options, socket, rand::random::<[u8; 32]>()).await
    }

    /// Opens a session with the cell members `cell_members` (tried in order) through
    /// `socket`, already bound (`options.bind` is not used), with `seed` as all of the
    /// session's randomness (today: its handshake's ephemeral key). `seed` must be 32 fresh
    /// bytes from a cryptographic generator, except in a deterministic simulation, which
    /// passes a turmoil socket and a seed of its own so that a run repeats exactly.
    pub async fn open_with_socket<S: ClientSocket>(
        cell_members: Vec<SocketAddr>,
        credentials: Credentials,
        options: SessionOptions,
        socket: S,
        seed: [u8; 32],
    ) -> Result<Session, Error> {
        let cfg = config(cell_members, credentials, &options)?;
        launch(cfg, &options, socket, seed).await
    }
}

/// The session core's configuration from the API's.
fn config(
    members: Vec<SocketAddr>,
    credentials: Credentials,
    options: &SessionOptions,
) -> Result<core::Config, Error> {
    let cell_key = options.cell_key.ok_or(Error::MissingCellKey)?;
    let mut cfg = core::Config::new(credentials.user, credentials.secret, cell_key, members);
    cfg.max_datagram = options.max_datagram;
    cfg.initial_rto = options.initial_rto;
    cfg.max_rto = options.max_rto;
    cfg.sends_before_rotate = options.sends_before_rotate;
    cfg.call_timeout = options.call_timeout;
    cfg.grace = options.grace;
    cfg.lease_margin = options.lease_margin;
    Ok(cfg)
}

/// Starts the session's task on `socket` and waits for the cell to create the session.
async fn launch<S: ClientSocket>(
    cfg: core::Config,
    options: &SessionOptions,
    socket: S,
    seed: [u8; 32],
) -> Result<Session, Error> {
    let start = tokio::time::Instant::now();
    let core = core::Session::new(cfg, core::Time::default(), seed)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(options.event_buffer.clamp(1, MAX_EVENT_BUFFER));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let (open_tx, open_rx) = oneshot::channel();
    let driver = Driver::new(core, socket, start, cmd_rx, ev_tx, stats.clone(), open_tx);
    tokio::spawn(driver.run());
    match open_rx.await.map_err(|_| Error::TaskStopped)? {
        Ok((Reply::SessionCreated { .. }, id)) => Ok(Session {
            id,
            commands: cmd_tx,
            events: Mutex::new(Some(Events { rx: ev_rx })),
            stats,
        }),
        Ok(_) => Err(Error::UnexpectedReply),
        Err(e) => Err(e.into()),
    }
}

impl Session {
    /// The session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The session's events; `None` after the first call (there is one reader).
    pub fn events(&self) -> Option<Events> {
        self.events.lock().ok().and_then(|mut e| e.take())
    }

    /// Counters of every drop and failure so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Opens `path` with `mode`, asking for no optional events. (Named `open_node` because
    /// Rust cannot overload [`Session::open`], the constructor.)
    pub async fn open_node(&self, path: &str, mode: OpenMode) -> Result<Handle, Error> {
        self.open_node_with_events(path, mode, EventMask::NONE)
            .await
    }

    /// Opens `path` with `mode` and the optional events in `events`.
    pub async fn open_node_with_events(
        &self,
        path: &str,
        mode: OpenMode,
        events: EventMask,
    ) -> Result<Handle, Error> {
        validate_path(path)?;
        let req = Request::Open {
            path: path.into(),
            mode,
            events,
        };
        match call(&self.commands, req).await? {
            Reply::Opened { handle, meta } => Ok(Handle::new(
                handle,
                path.into(),
                meta,
                self.commands.clone(),
            )),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Opens `path` as [`Session::open_node_with_events`] does; a node this open creates
    /// carries `lock_delay` (at most 60 s): if a holder of its lock expires (its process
    /// dies or is cut off), the cell grants the lock to nobody else until the delay has
    /// passed, so a holder that lost its session can stop acting on the lock first.
    pub async fn open_node_with_lock_delay(
        &self,
        path: &str,
        mode: OpenMode,
        events: EventMask,
        lock_delay: std::time::Duration,
    ) -> Result<Handle, Error> {
        validate_path(path)?;
        if lock_delay > crate::proto::MAX_LOCK_DELAY {
            return Err(Error::BadPacket);
        }
        let req = Request::OpenWith {
            path: path.into(),
            mode,
            events,
            lock_delay,
        };
        match call(&self.commands, req).await? {
            Reply::Opened { handle, meta } => Ok(Handle::new(
                handle,
                path.into(),
                meta,
                self.commands.clone(),
            )),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Metadata of `path`.
    pub async fn stat(&self, path: &str) -> Result<NodeMeta, Error> {
        validate_path(path)?;
        match call(&self.commands, Request::Stat { path: path.into() }).await? {
            Reply::Stat { meta } => Ok(meta),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// The children of directory `path`, with their metadata, sorted by name.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        validate_path(path)?;
        match call(&self.commands, Request::ListDir { path: path.into() }).await? {
            Reply::Listing { entries } => Ok(entries),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Deletes `path` (a directory must be empty).
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        validate_path(path)?;
        match call(&self.commands, Request::Delete { path: path.into() }).await? {
            Reply::Deleted => Ok(()),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Asks the cell whether `sequencer` still describes a held lock.
    pub async fn check_sequencer(&self, sequencer: &Sequencer) -> Result<(), Error> {
        let req = Request::CheckSequencer {
            sequencer: sequencer.clone(),
        };
        match call(&self.commands, req).await? {
            Reply::SequencerValid => Ok(()),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// The cell's status as the master sees it.
    pub async fn status(&self) -> Result<CellStatus, Error> {
        match call(&self.commands, Request::Status).await? {
            Reply::Status(s) => Ok(s),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Ends the session: the cell closes its handles, releases its locks and deletes its
    /// ephemeral nodes.
    pub async fn close(self) -> Result<(), Error> {
        match call(&self.commands, Request::EndSession).await? {
            Reply::SessionEnded => Ok(()),
            _ => Err(Error::UnexpectedReply),
        }
    }
}

/// Runs one request through the session task.
pub(crate) async fn call(commands: &mpsc::Sender<Command>, req: Request) -> Result<Reply, Error> {
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::Call(req, tx))
        .await
        .map_err(|_| Error::TaskStopped)?;
    Ok(rx.await.map_err(|_| Error::TaskStopped)??)
}
