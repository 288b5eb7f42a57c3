//! The glue driving real libpaxos replicas over the sled database, in a cell of three
//! wired together in memory: election, replication, snapshot catch-up, restart. The cell
//! tests run twice: on sled (`DbReplica::open`) and on the in-memory store
//! (`DbReplica::open_on` on a `MemKv`, whose power cuts are then tested too).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{CREATE_RW, TempDir};
use libpaxos::{Config, Envelope, Event, NodeId, Role, Storage, Time};
use libpaxos_db::{
    Applied, ClientOp, ClientRequest, Command, DbConfig, DbReplica, EventMask, KvLogStore, KvStore,
    MemKv, RequestSeq, Response, SessionId, SledKv, SledLogStore, WallTime,
};

/// Where the members keep their databases.
trait Engine {
    type Log: libpaxos::LogStore;
    type Kv: KvStore;
    /// Opens member `id`'s replica (restart recovery if it ran before).
    fn open(
        &mut self,
        id: u64,
        config: Config,
        db_config: DbConfig,
        now: Time,
    ) -> DbReplica<Self::Log, Self::Kv>;
}

/// sled in each member's directory.
struct Sled;

impl Engine for Sled {
    type Log = SledLogStore;
    type Kv = SledKv;

    fn open(&mut self, _id: u64, config: Config, db_config: DbConfig, now: Time) -> DbReplica {
        DbReplica::open(config, db_config, now).expect("start replica")
    }
}

/// A `MemKv` per member (snapshot files still in the member's directory).
#[derive(Default)]
struct Mem {
    stores: std::collections::BTreeMap<u64, MemKv>,
}

impl Mem {
    /// A power cut of member `id`'s store keeping `kept` unsynced batches; returns how many
    /// there were.
    fn crash(&mut self, id: u64, kept: usize) -> usize {
        let store = self.stores.get_mut(&id).expect("store");
        let unsynced = store.unsynced();
        *store = store.crash(kept);
        unsynced
    }
}

impl Engine for Mem {
    type Log = KvLogStore<MemKv>;
    type Kv = MemKv;

    fn open(
        &mut self,
        id: u64,
        config: Config,
        db_config: DbConfig,
        now: Time,
    ) -> DbReplica<KvLogStore<MemKv>, MemKv> {
        let kv = self.stores.entry(id).or_default().clone();
        DbReplica::open_on(config, db_config, kv, now).expect("start replica")
    }
}

struct Member<E: Engine> {
    dir: TempDir,
    replica: Option<DbReplica<E::Log, E::Kv>>,
}

struct Cell<E: Engine> {
    engine: E,
    members: Vec<Member<E>>,
    now: Time,
    cut_off: BTreeSet<u64>,
    applied: Vec<Applied>,
    db_config: fn(&TempDir) -> DbConfig,
    /// Hand snapshots out as jobs, run them after the drive that produced them.
    background: bool,
}

fn ids() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

fn default_db(dir: &TempDir) -> DbConfig {
    DbConfig::new(dir.path())
}

fn small_snapshots(dir: &TempDir) -> DbConfig {
    let mut config = DbConfig::new(dir.path());
    config.snapshot_every = 20;
    config.keep_tail = 5;
    config.chunk_size = 512;
    config
}

impl<E: Engine> Cell<E> {
    fn new(engine: E, db_config: fn(&TempDir) -> DbConfig) -> Cell<E> {
        let mut cell = Cell {
            engine,
            members: Vec::new(),
            now: Time::ZERO,
            cut_off: BTreeSet::new(),
            applied: Vec::new(),
            db_config,
            background: false,
        };
        for id in ids() {
            let dir = TempDir::new(&format!("glue-n{}", id.0));
            cell.members.push(Member { dir, replica: None });
            cell.start(id.0);
        }
        cell
    }

    fn start(&mut self, id: u64) {
        let member = &mut self.members[id as usize - 1];
        let mut config = Config::new(NodeId(id), ids());
        config.seed = id * 7919;
        let db_config = (self.db_config)(&member.dir);
        let mut replica = self.engine.open(id, config, db_config, self.now);
        replica.set_background_snapshots(self.background);
        member.replica = Some(replica);
    }

    fn stop(&mut self, id: u64) {
        self.members[id as usize - 1].replica = None;
    }

    fn node(&mut self, id: u64) -> &mut DbReplica<E::Log, E::Kv> {
        self.members[id as usize - 1]
            .replica
            .as_mut()
            .expect("running")
    }

    fn master(&self) -> Option<u64> {
        self.members.iter().enumerate().find_map(|(i, m)| {
            let r = m.replica.as_ref()?;
            matches!(r.replica().role(), Role::Master { .. }).then_some(i as u64 + 1)
        })
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        !self.cut_off.contains(&a) && !self.cut_off.contains(&b)
    }

    /// Drives every running member until quiet, delivering messages between connected ones,
    /// and answering snapshot requests by streaming chunks.
    fn settle(&mut self) {
        for _ in 0..50 {
            let mut mail: Vec<(u64, Envelope)> = Vec::new();
            let mut wanted: Vec<(u64, u64)> = Vec::new();
            for id in 1..=3 {
                let now = self.now;
                let Some(replica) = self.members[id as usize - 1].replica.as_mut() else {
                    continue;
                };
                loop {
                    let out = replica.drive(now).expect("drive");
                    let quiet = !out.performed;
                    mail.extend(out.messages.into_iter().map(|m| (id, m)));
                    self.applied.extend(out.applied);
                    if let Some(job) = out.snapshot_job {
                        let finished = replica.snapshot_finished(job.run()).expect("finish");
                        assert!(finished.snapshot_failed.is_none());
                        self.applied.extend(finished.applied);
                    }
                    for event in out.events {
                        if let Event::SnapshotNeeded { from, .. } = event {
                            wanted.push((id, from.0));
                        }
                    }
                    if quiet {
                        break;
                    }
                }
            }
            for (to, from) in wanted {
                if self.connected(to, from) {
                    self.transfer_snapshot(from, to);
                }
            }
            if mail.is_empty() {
                return;
            }
            for (from, envelope) in mail {
                let to = envelope.to.0;
                if !self.connected(from, to) {
                    continue;
                }
                let now = self.now;
                if let Some(replica) = self.members[to as usize - 1].replica.as_mut() {
                    replica
                        .on_message(now, NodeId(from), envelope.msg)
                        .expect("message");
                }
            }
        }
    }

    fn transfer_snapshot(&mut self, from: u64, to: u64) {
        let mut reader = self
            .node(from)
            .snapshot_reader()
            .expect("sender has a snapshot");
        let now = self.now;
        while let Some(chunk) = reader.next_chunk().expect("read chunk") {
            self.node(to)
                .receive_snapshot_chunk(now, &chunk)
                .expect("install chunk");
        }
    }

    fn tick(&mut self, steps: u32) {
        for _ in 0..steps {
            self.now = self.now + Duration::from_millis(10);
            let now = self.now;
            for member in &mut self.members {
                if let Some(replica) = member.replica.as_mut() {
                    replica.on_tick(now).expect("tick");
                }
            }
            self.settle();
        }
    }

    fn elect(&mut self) -> u64 {
        for _ in 0..500 {
            if let Some(master) = self.master() {
                return master;
            }
            self.tick(1);
        }
        panic!("no master elected in 5 s of simulated time");
    }

    fn propose(&mut self, command: Command) {
        let master = self.elect();
        let now = self.now;
        self.node(master).propose(now, &command).expect("propose");
        self.settle();
        self.tick(1);
    }

    fn digest(&mut self, id: u64) -> [u8; 32] {
        self.node(id)
            .database()
            .namespace()
            .digest()
            .expect("digest")
    }
}

fn request(session: u64, seq: u64, op: ClientOp) -> Command {
    Command::Client(ClientRequest {
        session: SessionId(session),
        seq: RequestSeq(seq),
        time: WallTime(seq),
        op,
    })
}

fn workload<E: Engine>(cell: &mut Cell<E>, session: u64, count: u64) {
    cell.propose(request(
        session,
        1,
        ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(10),
            keys: vec![7; 64],
        },
    ));
    for i in 0..count {
        cell.propose(request(
            session,
            i + 2,
            ClientOp::Open {
                path: format!("/s{session}-{i}"),
                mode: CREATE_RW,
                events: EventMask::NONE,
            },
        ));
    }
}

#[test]
fn a_cell_elects_a_master_and_every_member_applies_the_same_commands() {
    a_cell_elects_a_master_and_every_member_applies_the_same_commands_on(Sled);
}

#[test]
fn a_cell_elects_a_master_and_every_member_applies_the_same_commands_on_memkv() {
    a_cell_elects_a_master_and_every_member_applies_the_same_commands_on(Mem::default());
}

fn a_cell_elects_a_master_and_every_member_applies_the_same_commands_on<E: Engine>(engine: E) {
    let mut cell = Cell::new(engine, default_db);
    workload(&mut cell, 1, 10);
    cell.tick(20);
    let created = cell
        .applied
        .iter()
        .filter(|a| matches!(a.reply, Ok(Response::Opened { created: true, .. })))
        .count();
    assert_eq!(created, 3 * 10, "each member applied each open once");
    let digest = cell.digest(1);
    assert_eq!(cell.digest(2), digest);
    assert_eq!(cell.digest(3), digest);
    let master = cell.master().expect("master");
    let now = cell.now;
    assert!(
        cell.node(master).can_read(now),
        "the master serves reads under its lease"
    );
}

#[test]
fn a_replica_cut_off_past_the_trim_point_catches_up_from_a_snapshot() {
    a_replica_cut_off_past_the_trim_point_catches_up_from_a_snapshot_on(Sled);
}

#[test]
fn a_replica_cut_off_past_the_trim_point_catches_up_from_a_snapshot_on_memkv() {
    a_replica_cut_off_past_the_trim_point_catches_up_from_a_snapshot_on(Mem::default());
}

fn a_replica_cut_off_past_the_trim_point_catches_up_from_a_snapshot_on<E: Engine>(engine: E) {
    let mut cell = Cell::new(engine, small_snapshots);
    let master = cell.elect();
    let lagger = if master == 3 { 2 } else { 3 };
    cell.cut_off.insert(lagger);
    workload(&mut cell, 1, 60);
    cell.tick(20);
    let now = cell.now;
    let compacted = cell.node(master).replica().status(now).compacted;
    assert!(compacted.0 > 0, "the master compacted its log");
    cell.cut_off.clear();
    cell.tick(300);
    assert_eq!(
        cell.node(lagger).counters().snapshots_installed,
        1,
        "caught up through a snapshot"
    );
    assert_eq!(cell.digest(lagger), cell.digest(master));
}

#[test]
fn with_background_snapshots_a_cut_off_replica_still_catches_up_from_a_snapshot() {
    with_background_snapshots_a_cut_off_replica_still_catches_up_from_a_snapshot_on(Sled);
}

#[test]
fn with_background_snapshots_a_cut_off_replica_still_catches_up_from_a_snapshot_on_memkv() {
    with_background_snapshots_a_cut_off_replica_still_catches_up_from_a_snapshot_on(Mem::default());
}

fn with_background_snapshots_a_cut_off_replica_still_catches_up_from_a_snapshot_on<E: Engine>(
    engine: E,
) {
    let mut cell = Cell::new(engine, small_snapshots);
    cell.background = true;
    for id in 1..=3 {
        cell.node(id).set_background_snapshots(true);
    }
    let master = cell.elect();
    let lagger = if master == 3 { 2 } else { 3 };
    cell.cut_off.insert(lagger);
    workload(&mut cell, 1, 60);
    cell.tick(20);
    assert!(cell.node(master).counters().snapshots_taken > 0);
    cell.cut_off.clear();
    cell.tick(300);
    assert_eq!(cell.node(lagger).counters().snapshots_installed, 1);
    assert_eq!(cell.digest(lagger), cell.digest(master));
}

#[test]
fn a_restarted_replica_recovers_and_catches_up() {
    a_restarted_replica_recovers_and_catches_up_on(Sled);
}

#[test]
fn a_restarted_replica_recovers_and_catches_up_on_memkv() {
    a_restarted_replica_recovers_and_catches_up_on(Mem::default());
}

fn a_restarted_replica_recovers_and_catches_up_on<E: Engine>(engine: E) {
    let mut cell = Cell::new(engine, default_db);
    let master = cell.elect();
    let other = if master == 1 { 2 } else { 1 };
    workload(&mut cell, 1, 5);
    cell.stop(other);
    workload(&mut cell, 2, 5);
    cell.start(other);
    cell.tick(300);
    assert_eq!(cell.digest(other), cell.digest(master));
}

#[test]
fn with_another_log_store_the_namespace_is_flushed_after_every_apply_and_never_ahead_of_the_log() {
    let dir = TempDir::new("glue-mem");
    let (db, _sled_log) = libpaxos_db::Database::open(DbConfig::new(dir.path())).expect("open");
    let config = Config::new(NodeId(1), vec![NodeId(1)]);
    let mut node =
        DbReplica::new(config, db, libpaxos::MemStorage::new(), Time::ZERO).expect("start replica");
    let mut now = Time::ZERO;
    let mut applied = Vec::new();
    let mut pump = |node: &mut DbReplica<libpaxos::MemStorage>, now: Time| loop {
        let out = node.drive(now).expect("drive");
        if !out.performed {
            break;
        }
        applied.extend(out.applied);
    };
    while !matches!(node.replica().role(), Role::Master { .. }) {
        now = now + Duration::from_millis(10);
        node.on_tick(now).expect("tick");
        pump(&mut node, now);
        assert!(now < Time(Duration::from_secs(5)), "no election");
    }
    node.propose(
        now,
        &request(
            1,
            1,
            ClientOp::NewSession {
                user: "u".into(),
                lease: Duration::from_secs(1),
                keys: vec![7; 64],
            },
        ),
    )
    .expect("propose");
    pump(&mut node, now);
    assert!(
        applied
            .iter()
            .any(|a| a.reply == Ok(Response::SessionCreated)),
        "the command was applied"
    );
    let namespace_applied = node.database().namespace().applied();
    assert_eq!(node.database().durable_applied(), namespace_applied);
    let log = node.replica().storage();
    assert!(
        log.durable_entry(namespace_applied).is_some(),
        "the log durably holds every slot the namespace applied"
    );
}

/// Drives until idle, returning every output.
fn pump_all<S: libpaxos::LogStore>(node: &mut DbReplica<S>, now: Time) -> Vec<libpaxos_db::Output> {
    let mut outs = Vec::new();
    loop {
        let out = node.drive(now).expect("drive");
        if !out.performed {
            return outs;
        }
        outs.push(out);
    }
}

#[test]
fn background_snapshots_defer_applies_until_the_job_finishes_then_catch_up_from_the_log() {
    let dir = TempDir::new("glue-bg");
    let mut db_config = DbConfig::new(dir.path());
    db_config.snapshot_every = 5;
    db_config.keep_tail = 2;
    let mut node = DbReplica::open(
        Config::new(NodeId(1), vec![NodeId(1)]),
        db_config,
        Time::ZERO,
    )
    .expect("start replica");
    node.set_background_snapshots(true);
    let mut now = Time::ZERO;
    let tick = |node: &mut DbReplica, now: &mut Time| {
        *now = *now + Duration::from_millis(10);
        node.on_tick(*now).expect("tick");
        pump_all(node, *now)
    };
    while !matches!(node.replica().role(), Role::Master { .. }) {
        tick(&mut node, &mut now);
    }
    for _ in 0..5 {
        tick(&mut node, &mut now);
    }
    assert!(
        node.can_read(now),
        "precondition: the master holds its lease"
    );
    let mut seq = 0;
    let mut job = None;
    while job.is_none() {
        seq += 1;
        let op = if seq == 1 {
            ClientOp::NewSession {
                user: "u".into(),
                lease: Duration::from_secs(1),
                keys: vec![7; 64],
            }
        } else {
            ClientOp::Open {
                path: format!("/f{seq}"),
                mode: CREATE_RW,
                events: EventMask::NONE,
            }
        };
        node.propose(now, &request(1, seq, op)).expect("propose");
        job = pump_all(&mut node, now)
            .into_iter()
            .find_map(|out| out.snapshot_job);
    }
    let job = job.expect("a snapshot job");
    let frozen = node.database().namespace().applied();
    assert_eq!(job.applied(), frozen);
    assert_eq!(node.snapshot_in_progress(), Some(frozen));
    for _ in 0..4 {
        seq += 1;
        let op = ClientOp::Open {
            path: format!("/f{seq}"),
            mode: CREATE_RW,
            events: EventMask::NONE,
        };
        node.propose(now, &request(1, seq, op)).expect("propose");
        let outs = pump_all(&mut node, now);
        assert!(outs.iter().all(|o| o.applied.is_empty()), "applies wait");
    }
    tick(&mut node, &mut now);
    assert_eq!(node.database().namespace().applied(), frozen);
    assert!(!node.can_read(now), "reads wait for the deferred applies");
    let out = node.snapshot_finished(job.run()).expect("finish");
    assert_eq!(out.snapshot, Some(frozen));
    assert_eq!(out.applied.len(), 4);
    assert!(out.applied.iter().all(|a| a.reply.is_ok()));
    assert_eq!(
        node.database().namespace().applied(),
        node.replica().commit()
    );
    let info = node
        .database()
        .latest_snapshot()
        .expect("snapshot recorded");
    assert_eq!(
        libpaxos_db::snapshot::verify(&info.path)
            .expect("valid")
            .applied,
        frozen
    );
    assert!(node.can_read(now));
}

/// A log store that notes each write and sync in a journal the test reads.
struct Journaled {
    inner: libpaxos::MemStorage,
    journal: std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>,
}

impl libpaxos::Storage for Journaled {
    fn hard_state(&self) -> Result<libpaxos::HardState, libpaxos::StorageError> {
        self.inner.hard_state()
    }
    fn compacted_through(&self) -> Result<libpaxos::Slot, libpaxos::StorageError> {
        self.inner.compacted_through()
    }
    fn last_slot(&self) -> Result<libpaxos::Slot, libpaxos::StorageError> {
        self.inner.last_slot()
    }
    fn entry(
        &self,
        slot: libpaxos::Slot,
    ) -> Result<Option<libpaxos::Entry>, libpaxos::StorageError> {
        self.inner.entry(slot)
    }
    fn entries(
        &self,
        from: libpaxos::Slot,
        to: libpaxos::Slot,
        max: usize,
    ) -> Result<Vec<libpaxos::Entry>, libpaxos::StorageError> {
        self.inner.entries(from, to, max)
    }
}

impl libpaxos::LogStore for Journaled {
    fn write(&mut self, batch: &libpaxos::Persist) -> Result<(), libpaxos::StorageError> {
        self.journal.borrow_mut().push(match batch.compact_through {
            Some(_) => "compact",
            None => "write",
        });
        self.inner.write(batch)
    }
    fn sync(&mut self) -> Result<(), libpaxos::StorageError> {
        self.journal.borrow_mut().push("sync");
        self.inner.sync()
    }
}

#[test]
fn messages_that_need_no_sync_leave_before_the_sync() {
    // Two members of three: a master's accepts go to the other while its own disk syncs.
    let dirs = [TempDir::new("glue-order-1"), TempDir::new("glue-order-2")];
    let journals: Vec<_> = (0..2)
        .map(|_| std::rc::Rc::new(std::cell::RefCell::new(Vec::new())))
        .collect();
    let mut nodes: Vec<DbReplica<Journaled>> = (0..2)
        .map(|i| {
            let (db, _) = libpaxos_db::Database::open(DbConfig::new(dirs[i].path())).expect("open");
            let mut config = Config::new(NodeId(i as u64 + 1), ids());
            config.seed = i as u64 * 7919 + 1;
            let store = Journaled {
                inner: libpaxos::MemStorage::new(),
                journal: journals[i].clone(),
            };
            DbReplica::new(config, db, store, Time::ZERO).expect("start")
        })
        .collect();
    let mut now = Time::ZERO;
    let master = loop {
        now = now + Duration::from_millis(10);
        assert!(now < Time(Duration::from_secs(10)), "no master elected");
        let mut mail = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.on_tick(now).expect("tick");
            loop {
                let mut early = Vec::new();
                let out = node
                    .drive_sending(now, &mut |e| early.push(e))
                    .expect("drive");
                mail.extend(early.into_iter().chain(out.messages).map(|e| (i, e)));
                if !out.performed {
                    break;
                }
            }
        }
        for (from, envelope) in mail {
            let to = envelope.to.0 as usize - 1;
            if to < nodes.len() {
                nodes[to]
                    .on_message(now, NodeId(from as u64 + 1), envelope.msg)
                    .expect("message");
            }
        }
        if let Some(i) = nodes
            .iter()
            .position(|n| matches!(n.replica().role(), Role::Master { .. }))
        {
            break i;
        }
    };
    let journal = journals[master].clone();
    journal.borrow_mut().clear();
    let node = &mut nodes[master];
    node.propose(
        now,
        &request(
            1,
            1,
            ClientOp::NewSession {
                user: "u".into(),
                lease: Duration::from_secs(1),
                keys: vec![7; 64],
            },
        ),
    )
    .expect("propose");
    let out = node
        .drive_sending(now, &mut |_| journal.borrow_mut().push("send"))
        .expect("drive");
    assert!(out.performed);
    let order = journal.borrow().clone();
    let first_send = order.iter().position(|e| *e == "send");
    let sync = order.iter().position(|e| *e == "sync");
    assert!(
        matches!((first_send, sync), (Some(send), Some(sync)) if send < sync),
        "the accepts leave before the master's own sync: {order:?}"
    );
}

#[test]
fn with_another_log_store_a_snapshot_install_compacts_the_log_durably_before_returning() {
    // A peer's database with a snapshot at slot 1.
    let peer_dir = TempDir::new("glue-install-peer");
    let (mut peer, _) = libpaxos_db::Database::open(DbConfig::new(peer_dir.path())).expect("open");
    let new_session = request(
        1,
        1,
        ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(1),
            keys: vec![7; 64],
        },
    );
    peer.apply(&common::committed(1, 0, &new_session))
        .expect("apply");
    peer.take_snapshot().expect("snapshot");
    // A replica whose log is another store than the namespace's sled database.
    let dir = TempDir::new("glue-install");
    let (db, _) = libpaxos_db::Database::open(DbConfig::new(dir.path())).expect("open");
    let journal = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let store = Journaled {
        inner: libpaxos::MemStorage::new(),
        journal: journal.clone(),
    };
    let config = Config::new(NodeId(1), ids());
    let mut node = DbReplica::new(config, db, store, Time::ZERO).expect("start");
    let mut reader = peer.snapshot_reader().expect("reader");
    let mut installed = None;
    while let Some(chunk) = reader.next_chunk().expect("chunk") {
        installed = node
            .receive_snapshot_chunk(Time::ZERO, &chunk)
            .expect("install");
    }
    assert_eq!(installed, Some(libpaxos::Slot(1)));
    assert_eq!(node.database().namespace().applied(), libpaxos::Slot(1));
    // The namespace is durably at the snapshot: a crash now must find the log compacted
    // through it too, not missing slots it neither holds nor has compacted.
    assert_eq!(
        *journal.borrow(),
        ["compact", "sync"],
        "the log's compaction is synced before the install returns"
    );
}

#[test]
fn a_refused_snapshot_transfer_leaves_the_replica_running_and_a_later_one_installs() {
    let peer_dir = TempDir::new("glue-refuse-peer");
    let mut peer_config = DbConfig::new(peer_dir.path());
    peer_config.chunk_size = 64;
    let (mut peer, _) = libpaxos_db::Database::open(peer_config).expect("open");
    let new_session = request(
        1,
        1,
        ClientOp::NewSession {
            user: "u".into(),
            lease: Duration::from_secs(1),
            keys: vec![7; 64],
        },
    );
    peer.apply(&common::committed(1, 0, &new_session))
        .expect("apply");
    peer.take_snapshot().expect("snapshot");
    let chunks = |peer: &libpaxos_db::Database| {
        let mut reader = peer.snapshot_reader().expect("reader");
        let mut all = Vec::new();
        while let Some(chunk) = reader.next_chunk().expect("chunk") {
            all.push(chunk);
        }
        all
    };
    let good = chunks(&peer);
    assert!(good.len() > 2, "several chunks");
    let dir = TempDir::new("glue-refuse");
    let mut node = DbReplica::open(
        Config::new(NodeId(1), vec![NodeId(1)]),
        DbConfig::new(dir.path()),
        Time::ZERO,
    )
    .expect("start");
    let refused = |result: Result<Option<libpaxos::Slot>, libpaxos_db::GlueError>| match result {
        Err(err) => {
            assert!(!err.is_fatal(), "{err}");
            assert!(
                matches!(err, libpaxos_db::GlueError::SnapshotRefused(_)),
                "{err}"
            );
        }
        Ok(slot) => panic!("accepted: {slot:?}"),
    };
    // Nothing to send yet.
    let no_snapshot = node
        .snapshot_reader()
        .map(|_| ())
        .expect_err("no snapshot yet");
    assert!(!no_snapshot.is_fatal(), "{no_snapshot}");
    // A chunk that starts nothing.
    refused(node.receive_snapshot_chunk(Time::ZERO, &good[1]));
    // A whole transfer whose file fails verification.
    let mut damaged = good.clone();
    damaged[1].data[0] ^= 0x40;
    let (last, init) = damaged.split_last().expect("chunks");
    for chunk in init {
        assert_eq!(
            node.receive_snapshot_chunk(Time::ZERO, chunk)
                .expect("chunk"),
            None
        );
    }
    refused(node.receive_snapshot_chunk(Time::ZERO, last));
    assert_eq!(node.database().namespace().applied(), libpaxos::Slot(0));
    // A good transfer installs.
    let mut installed = None;
    for chunk in &good {
        installed = node
            .receive_snapshot_chunk(Time::ZERO, chunk)
            .expect("chunk");
    }
    assert_eq!(installed, Some(libpaxos::Slot(1)));
    // The same snapshot again is not ahead: refused, nothing changes.
    let (last, init) = good.split_last().expect("chunks");
    for chunk in init {
        node.receive_snapshot_chunk(Time::ZERO, chunk)
            .expect("chunk");
    }
    refused(node.receive_snapshot_chunk(Time::ZERO, last));
    assert_eq!(node.counters().chunks_refused, 3);
    assert_eq!(node.counters().snapshots_installed, 1);
    assert!(
        node.database()
            .namespace()
            .session(libpaxos_db::SessionId(1))
            .is_some()
    );
    node.on_tick(Time(Duration::from_millis(10)))
        .expect("the replica carries on");
    node.drive(Time(Duration::from_millis(10))).expect("drive");
}

#[test]
fn a_transfer_announcing_a_snapshot_above_the_limit_is_refused_before_anything_is_written() {
    let dir = TempDir::new("glue-too-large");
    let mut db_config = DbConfig::new(dir.path());
    assert_eq!(db_config.max_snapshot_size, 4 << 30, "default 4 GiB");
    db_config.max_snapshot_size = 1000;
    let mut node = DbReplica::open(
        Config::new(NodeId(1), vec![NodeId(1)]),
        db_config,
        Time::ZERO,
    )
    .expect("start");
    let chunk = libpaxos_db::SnapshotChunk {
        applied: libpaxos::Slot(7),
        total: u64::MAX,
        offset: 0,
        data: vec![0; 16],
    };
    match node.receive_snapshot_chunk(Time::ZERO, &chunk) {
        Err(libpaxos_db::GlueError::SnapshotRefused(libpaxos_db::DbError::SnapshotTooLarge {
            total,
            max,
        })) => assert_eq!((total, max), (u64::MAX, 1000)),
        other => panic!("not refused as too large: {other:?}"),
    }
    assert_eq!(node.counters().snapshots_too_large, 1);
    assert_eq!(node.counters().chunks_refused, 1);
    let leftovers: Vec<_> = std::fs::read_dir(node.database().snapshot_dir())
        .expect("dir")
        .collect();
    assert!(leftovers.is_empty(), "no receive file: {leftovers:?}");
    // At the limit is fine.
    let at_limit = libpaxos_db::SnapshotChunk {
        total: 1000,
        ..chunk
    };
    assert_eq!(
        node.receive_snapshot_chunk(Time::ZERO, &at_limit)
            .expect("accepted"),
        None
    );
}

#[test]
fn a_zero_max_snapshot_size_is_refused() {
    let dir = TempDir::new("glue-zero-max");
    let mut db_config = DbConfig::new(dir.path());
    db_config.max_snapshot_size = 0;
    assert_eq!(
        db_config.validate(),
        Err(libpaxos_db::ConfigError::Zero("max_snapshot_size"))
    );
}

#[test]
fn the_glue_trims_only_below_the_applied_index_of_the_last_sync_not_the_in_memory_one() {
    // One member over the shared sled store: a Ready's sync comes before its applies, so after
    // a drive that applied entries and took a snapshot of them, the namespace is ahead of what
    // is durable. With no kept tail the snapshot alone would allow trimming through it; the
    // durable applied index must hold the trim point (and the log's compaction) below.
    let dir = TempDir::new("glue-trim-durable");
    let mut db_config = DbConfig::new(dir.path());
    db_config.snapshot_every = 5;
    db_config.keep_tail = 0;
    let mut node = DbReplica::open(
        Config::new(NodeId(1), vec![NodeId(1)]),
        db_config,
        Time::ZERO,
    )
    .expect("start");
    let mut now = Time::ZERO;
    while !matches!(node.replica().role(), Role::Master { .. }) {
        now = now + Duration::from_millis(10);
        node.on_tick(now).expect("tick");
        pump_all(&mut node, now);
        assert!(now < Time(Duration::from_secs(5)), "no election");
    }
    let mut binding = 0;
    for round in 0..6 {
        for _ in 0..4 {
            node.propose(now, &Command::Noop).expect("propose");
        }
        loop {
            let applied_before = node.database().namespace().applied();
            let out = node.drive(now).expect("drive");
            if !out.performed {
                break;
            }
            let db = node.database();
            let durable = db.durable_applied();
            assert!(
                durable <= applied_before,
                "round {round}: durable {durable:?} claims applies made after this drive's sync \
                 (applied before it {applied_before:?})"
            );
            let compacted = node.replica().storage().compacted_through().expect("log");
            assert!(
                compacted <= durable,
                "log compacted through {compacted:?}, past the durable applied index {durable:?}"
            );
            if let Some(snapshot) = out.snapshot {
                assert!(
                    snapshot > durable,
                    "the snapshot captured undurable applies"
                );
                assert_eq!(
                    db.trim_point(),
                    (durable > libpaxos::Slot::ZERO).then_some(durable),
                    "trim point held at the durable applied index, not {snapshot:?}"
                );
                binding += 1;
            }
        }
    }
    assert!(
        binding >= 2,
        "snapshots taken in the drives that applied: {binding}"
    );
}

impl Cell<Mem> {
    /// A power cut of member `id`: the process dies, its store keeps what was synced and
    /// the first `kept` unsynced batches. Returns how many batches were unsynced.
    fn power_cut(&mut self, id: u64, kept: usize) -> usize {
        self.stop(id);
        self.engine.crash(id, kept)
    }

    fn exists(&mut self, id: u64, path: &str) -> bool {
        self.node(id).database().namespace().stat(path).is_ok()
    }
}

#[test]
fn on_memkv_a_whole_cell_power_cut_loses_nothing_applied_and_every_member_recovers() {
    for kept in [0, 1, 2, usize::MAX] {
        let mut cell = Cell::new(Mem::default(), small_snapshots);
        workload(&mut cell, 1, 12);
        // Proposed and applied by the master just before the cut (no tick after it).
        let master = cell.elect();
        let now = cell.now;
        cell.node(master)
            .propose(
                now,
                &request(
                    1,
                    14,
                    ClientOp::Open {
                        path: "/last".into(),
                        mode: CREATE_RW,
                        events: EventMask::NONE,
                    },
                ),
            )
            .expect("propose");
        cell.settle();
        assert!(
            cell.exists(master, "/last"),
            "the last open was applied at the master"
        );
        let acked: Vec<String> = (0..12)
            .map(|i| format!("/s1-{i}"))
            .chain(["/last".to_string()])
            .collect();
        let mut unsynced = 0;
        for id in 1..=3 {
            // Members keep different prefixes of their unsynced batches.
            unsynced += cell.power_cut(id, kept.saturating_add(id as usize - 1));
        }
        if kept == 0 {
            assert!(unsynced > 0, "the cut found unsynced batches to lose");
        }
        for id in 1..=3 {
            cell.start(id);
        }
        cell.tick(300);
        let digest = cell.digest(1);
        for id in 1..=3 {
            assert_eq!(
                cell.digest(id),
                digest,
                "kept {kept}: member {id} caught up"
            );
            for path in &acked {
                assert!(cell.exists(id, path), "kept {kept}: {path} lost on {id}");
            }
        }
    }
}

#[test]
fn on_memkv_a_member_cut_off_crashed_and_restarted_catches_up() {
    let mut cell = Cell::new(Mem::default(), small_snapshots);
    let master = cell.elect();
    let other = if master == 1 { 2 } else { 1 };
    workload(&mut cell, 1, 5);
    cell.power_cut(other, 0);
    workload(&mut cell, 2, 40);
    cell.start(other);
    cell.tick(300);
    assert_eq!(cell.digest(other), cell.digest(master));
    assert_eq!(
        cell.node(other).counters().snapshots_installed,
        1,
        "caught up past the master's trim point through a snapshot"
    );
}
