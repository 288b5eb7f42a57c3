//! proptest strategies for random command sequences over a small namespace, so that
//! collisions (same path, same handle, same lock) are frequent.
#![allow(dead_code)]

use std::time::Duration;

use libpaxos_db::{
    ClientOp, ContentGeneration, EventMask, HandleId, Instance, Limits, LockGeneration, LockMode,
    OpenMode, Sequencer,
};
use proptest::prelude::*;

/// How a generated request picks its sequence number.
#[derive(Clone, Copy, Debug)]
pub enum SeqChoice {
    /// The session's next seq.
    Next,
    /// A retry of the last one.
    Same,
    /// An older one.
    Older,
}

/// One step of a generated history.
#[derive(Clone, Debug)]
pub enum Step {
    /// A client request proposed under `epoch`.
    Client {
        session: u64,
        seq: SeqChoice,
        epoch: u64,
        op: ClientOp,
    },
    /// The master expires a session.
    Expire { session: u64, epoch: u64 },
    /// A new master's no-op.
    Noop { epoch: u64 },
    /// The master purges tombstones that ended more than `age` ms before this step.
    Purge { age: u64, epoch: u64 },
    /// The master ends the lock-delays that have passed.
    EndDelays { epoch: u64 },
    /// A new master restarts the running lock-delays from now.
    RestartDelays { epoch: u64 },
}

/// Session key material: two valid ones and one of the wrong length.
pub const KEYS: [&[u8]; 3] = [&[7; 64], &[9; 64], &[7; 3]];

/// Small limits so every limit error is reachable.
pub fn limits() -> Limits {
    Limits {
        max_file_size: 8,
        max_sessions: 3,
        max_handles_per_session: 5,
        max_waiters_per_lock: 2,
        max_holders_per_lock: 2,
    }
}

const PATHS: &[&str] = &[
    "/", "/a", "/b", "/d", "/d/x", "/d/y", "/a/z", "bad", "/d/", "/d//x",
];

/// Mostly `/a` (the contended lock), sometimes anything.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just("/a".to_string()),
        3 => prop::sample::select(PATHS).prop_map(String::from),
    ]
}

fn mode() -> impl Strategy<Value = OpenMode> {
    let r = OpenMode::READ;
    let w = OpenMode::WRITE;
    let l = OpenMode::LOCK;
    let c = OpenMode::CREATE;
    let d = OpenMode::DIRECTORY;
    let e = OpenMode::EPHEMERAL;
    let x = OpenMode::EXCLUSIVE;
    prop::sample::select(vec![
        r,
        r | w,
        r | w | c,
        r | w | c | x,
        r | l | c,
        r | l | c | e,
        r | w | l | c | e,
        r | d | c,
        r | d | l,
        r | d,
        e,
        w | d,
        x,
        r | l,
    ])
}

fn lock_mode() -> impl Strategy<Value = LockMode> {
    prop_oneof![Just(LockMode::Shared), Just(LockMode::Exclusive)]
}

/// Mostly handle 1 (every session's prelude handle on `/a`), sometimes others.
fn handle() -> impl Strategy<Value = HandleId> {
    prop_oneof![3 => Just(HandleId(1)), 2 => (1u64..=5).prop_map(HandleId)]
}

fn op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        2 => (prop::sample::select(vec!["u", "v"]), prop_oneof![4 => Just(0usize), 1 => Just(1usize), 1 => Just(2usize)])
            .prop_map(|(user, k)| ClientOp::NewSession {
                user: user.into(),
                lease: Duration::from_secs(10),
                keys: KEYS[k].to_vec(),
            }),
        2 => Just(ClientOp::Barrier),
        2 => (path(), mode(), 0u8..8, prop::sample::select(vec![0u64, 3, 40])).prop_map(|(path, mode, ev, ms)| ClientOp::OpenWith {
            path,
            mode,
            events: EventMask::from_bits(ev),
            lock_delay: Duration::from_millis(ms),
        }),
        1 => Just(ClientOp::EndSession),
        6 => (path(), mode(), 0u8..8).prop_map(|(path, mode, ev)| ClientOp::Open {
            path,
            mode,
            events: EventMask::from_bits(ev),
        }),
        2 => handle().prop_map(|handle| ClientOp::Close { handle }),
        3 => (handle(), prop::collection::vec(any::<u8>(), 0..11), prop::option::of(0u64..3))
            .prop_map(|(handle, data, cas)| ClientOp::Put {
                handle,
                data,
                cas: cas.map(ContentGeneration),
            }),
        2 => path().prop_map(|path| ClientOp::Delete { path }),
        8 => (handle(), lock_mode(), any::<bool>())
            .prop_map(|(handle, mode, wait)| ClientOp::Lock { handle, mode, wait }),
        5 => handle().prop_map(|handle| ClientOp::Unlock { handle }),
        1 => (path(), 1u64..10, lock_mode(), 0u64..4).prop_map(|(path, i, mode, g)| {
            ClientOp::CheckSequencer {
                sequencer: Sequencer {
                    path,
                    instance: Instance(i),
                    mode,
                    generation: LockGeneration(g),
                },
            }
        }),
    ]
}

fn seq_choice() -> impl Strategy<Value = SeqChoice> {
    prop_oneof![
        12 => Just(SeqChoice::Next),
        1 => Just(SeqChoice::Same),
        1 => Just(SeqChoice::Older),
    ]
}

fn command_epoch() -> impl Strategy<Value = u64> {
    prop_oneof![8 => Just(3u64), 1 => 0u64..3]
}

/// One random step.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (1u64..=4, seq_choice(), command_epoch(), op())
            .prop_map(|(session, seq, epoch, op)| Step::Client { session, seq, epoch, op }),
        1 => (1u64..=4, command_epoch()).prop_map(|(session, epoch)| Step::Expire { session, epoch }),
        1 => (0u64..=3).prop_map(|epoch| Step::Noop { epoch }),
        1 => (0u64..20, command_epoch()).prop_map(|(age, epoch)| Step::Purge { age, epoch }),
        1 => command_epoch().prop_map(|epoch| Step::EndDelays { epoch }),
        1 => command_epoch().prop_map(|epoch| Step::RestartDelays { epoch }),
    ]
}

/// Sessions 1 to 3 created, each with handle 1 on `/a` (which has a lock-delay of 25 ms) opened for locking and writing and
/// watching everything, so that lock contention, queues and events are common.
pub fn prelude() -> Vec<Step> {
    let mut steps = Vec::new();
    for session in 1..=3 {
        steps.push(Step::Client {
            session,
            seq: SeqChoice::Next,
            epoch: 3,
            op: ClientOp::NewSession {
                user: "u".into(),
                lease: Duration::from_secs(10),
                keys: vec![7; 64],
            },
        });
    }
    for session in 1..=3 {
        steps.push(Step::Client {
            session,
            seq: SeqChoice::Next,
            epoch: 3,
            // The first open creates `/a` with a lock-delay, so expiries of its holders
            // block it (and the later opens leave the delay as it is).
            op: ClientOp::OpenWith {
                path: "/a".into(),
                mode: OpenMode::READ | OpenMode::WRITE | OpenMode::LOCK | OpenMode::CREATE,
                events: EventMask::MODIFIED | EventMask::CHILDREN | EventMask::LOCK_CONFLICT,
                lock_delay: Duration::from_millis(25),
            },
        });
    }
    steps
}

/// The prelude followed by up to `max` random steps.
pub fn history(max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..max).prop_map(|random| [prelude(), random].concat())
}
