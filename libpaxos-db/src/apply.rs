//! Command dispatch: epochs, exactly-once deduplication, and the session commands. Node and
//! lock commands are in `apply_node.rs` and `apply_lock.rs`.

use core::time::Duration;

use libpaxos::Epoch;

use crate::apply_lock::{promote, release};
use crate::apply_node::remove_node;
use crate::command::{
    ClientOp, ClientRequest, CmdError, Command, MAX_USER_NAME, Reply, Response, SESSION_KEYS_LEN,
};
use crate::node::{Session, Tombstone};
use crate::state::Tx;
use crate::types::{HandleId, RequestSeq, SessionId, WallTime};

/// What executing one command produced.
pub(crate) struct Executed {
    pub request: Option<(SessionId, RequestSeq)>,
    pub reply: Reply,
    /// A retry answered from the session's cached reply.
    pub duplicate: bool,
}

/// Executes a decoded command proposed under `epoch`.
pub(crate) fn execute(tx: &mut Tx<'_>, command: Command, epoch: Epoch) -> Executed {
    let request = match &command {
        Command::Client(req) => Some((req.session, req.seq)),
        _ => None,
    };
    if epoch < tx.st.meta.epoch {
        return Executed {
            request,
            reply: Err(CmdError::StaleEpoch {
                command: epoch.0,
                current: tx.st.meta.epoch.0,
            }),
            duplicate: false,
        };
    }
    match command {
        Command::Noop => Executed {
            request,
            reply: Ok(Response::Noop),
            duplicate: false,
        },
        Command::ExpireSession { session, time } => Executed {
            request,
            reply: end_session(tx, session, time, true).map(|()| Response::SessionEnded),
            duplicate: false,
        },
        Command::RestartLockDelays { time } => {
            crate::apply_lock::restart_delays(tx, time);
            Executed {
                request,
                reply: Ok(Response::Noop),
                duplicate: false,
            }
        }
        Command::EndLockDelays { time } => {
            crate::apply_lock::end_delays(tx, time);
            Executed {
                request,
                reply: Ok(Response::Noop),
                duplicate: false,
            }
        }
        Command::PurgeTombstones { before } => {
            let ended: Vec<SessionId> = tx
                .st
                .tombstone_ends
                .iter()
                .take_while(|(ended_at, _)| *ended_at < before)
                .map(|(_, id)| *id)
                .collect();
            for id in ended {
                tx.remove_tombstone(id);
            }
            Executed {
                request,
                reply: Ok(Response::Noop),
                duplicate: false,
            }
        }
        Command::Client(req) => client(tx, req),
    }
}

fn client(tx: &mut Tx<'_>, req: ClientRequest) -> Executed {
    let request = Some((req.session, req.seq));
    let done = |reply, duplicate| Executed {
        request,
        reply,
        duplicate,
    };
    if let Some(session) = tx.st.sessions.get(&req.session) {
        // A NewSession naming another user or other keys is not a retry of this session's
        // creation, whatever its seq: answering it from the cache would hand the session to
        // that user, or tell the front end that keys are in force which are not.
        if let ClientOp::NewSession { user, keys, .. } = &req.op
            && (*user != session.user || *keys != session.keys)
        {
            return done(Err(CmdError::SessionExists(req.session)), false);
        }
        if req.seq == session.last_seq {
            return done(session.last_reply.clone(), true);
        }
        if req.seq < session.last_seq {
            let last = session.last_seq;
            return done(Err(CmdError::RequestTooOld { seq: req.seq, last }), false);
        }
    }
    let barrier = matches!(req.op, ClientOp::Barrier);
    let reply = match req.op {
        ClientOp::NewSession { user, lease, keys } => {
            if !valid_user_name(&user) {
                return done(Err(CmdError::BadUserName), false);
            }
            if keys.len() != SESSION_KEYS_LEN {
                return done(Err(CmdError::BadSessionKeys { len: keys.len() }), false);
            }
            if tx.st.sessions.contains_key(&req.session)
                || tx.st.tombstones.contains_key(&req.session)
            {
                return done(Err(CmdError::SessionExists(req.session)), false);
            }
            if tx.st.sessions.len() as u64 >= tx.limits.max_sessions {
                return done(
                    Err(CmdError::TooManySessions(tx.limits.max_sessions)),
                    false,
                );
            }
            let session = Session {
                user,
                lease,
                keys,
                created: req.time,
                next_handle: HandleId(1),
                last_seq: req.seq,
                last_reply: Ok(Response::SessionCreated),
            };
            tx.set_session(req.session, session);
            return done(Ok(Response::SessionCreated), false);
        }
        _ if !tx.st.sessions.contains_key(&req.session) => {
            return done(Err(CmdError::UnknownSession(req.session)), false);
        }
        ClientOp::EndSession => {
            end_session(tx, req.session, req.time, false).map(|()| Response::SessionEnded)
        }
        ClientOp::Open { path, mode, events } => crate::apply_node::open(
            tx,
            req.session,
            req.time,
            path,
            mode,
            events,
            Duration::ZERO,
        ),
        ClientOp::OpenWith {
            path,
            mode,
            events,
            lock_delay,
        } => crate::apply_node::open(tx, req.session, req.time, path, mode, events, lock_delay),
        ClientOp::Close { handle } => crate::apply_node::close(tx, req.session, req.time, handle),
        ClientOp::Put { handle, data, cas } => {
            crate::apply_node::put(tx, req.session, req.time, handle, data, cas)
        }
        ClientOp::Delete { path } => crate::apply_node::delete(tx, path),
        ClientOp::Lock { handle, mode, wait } => {
            crate::apply_lock::lock(tx, req.session, req.time, handle, mode, wait)
        }
        ClientOp::Unlock { handle } => crate::apply_lock::unlock(tx, req.session, req.time, handle),
        ClientOp::CheckSequencer { sequencer } => {
            crate::apply_lock::check_sequencer(tx.st, &sequencer).map(|()| Response::SequencerValid)
        }
        // The seq is newer than the session's last (checked above): record it as executed
        // with the reply `Barred`, so the barred request never runs.
        ClientOp::Barrier => Ok(Response::Noop),
    };
    if let Some(session) = tx.st.sessions.get(&req.session) {
        let mut session = session.clone();
        session.last_seq = req.seq;
        session.last_reply = if barrier {
            Err(CmdError::Barred)
        } else {
            reply.clone()
        };
        tx.set_session(req.session, session);
    }
    done(reply, false)
}

/// 1 to [`MAX_USER_NAME`] bytes without NUL, as the wire protocol allows. Checked here too so
/// that a session record stays small whatever the front end passes (it goes into snapshot
/// records, which have a size limit).
fn valid_user_name(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_NAME && !user.contains('\0')
}

/// Ends a session, leaving a tombstone (user, keys, `time`) in its place: deletes its
/// ephemeral nodes (telling other handles on them), closes its handles releasing their locks
/// and queued requests, then promotes waiters on every lock it touched. The ending session itself is told nothing. When the session `expired`, each lock
/// it held whose node has a lock-delay is blocked for that delay from `time` (Chubby §2.4);
/// a clean end blocks nothing.
pub(crate) fn end_session(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    expired: bool,
) -> Result<(), CmdError> {
    if !tx.st.sessions.contains_key(&session) {
        return Err(CmdError::UnknownSession(session));
    }
    let ephemerals: Vec<String> = tx
        .st
        .ephemerals
        .get(&session)
        .map(|set| set.iter().cloned().collect())
        .unwrap_or_default();
    for path in ephemerals {
        remove_node(tx, &path, Some(session));
    }
    let mut touched = std::collections::BTreeSet::new();
    for who in tx.st.session_handles(session) {
        let Some(handle) = tx.remove_handle(who) else {
            continue;
        };
        let held = tx
            .st
            .locks
            .get(&handle.path)
            .is_some_and(|lock| lock.held_by(who).is_some());
        if release(tx, &handle.path, who) {
            if expired
                && held
                && let Some(mut lock) = tx.st.locks.get(&handle.path).cloned()
            {
                lock.block_after_expiry(time);
                tx.set_lock(&handle.path, lock);
            }
            touched.insert(handle.path);
        }
    }
    for path in touched {
        promote(tx, &path, time);
    }
    // The record becomes a tombstone in the same command, hence the same transaction.
    if let Some(ended) = tx.remove_session(session) {
        let tombstone = Tombstone {
            user: ended.user,
            keys: ended.keys,
            ended_at: time,
        };
        tx.set_tombstone(session, tombstone);
    }
    Ok(())
}
