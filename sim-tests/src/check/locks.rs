//! Lock safety, lock-delay and sequencers, judged from what clients believed.
//!
//! A client *believes* it holds a lock from the moment it learns of the grant (a `lock` reply
//! with a sequencer, or a `lock_acquired` event) until it invokes `unlock` or `close`, learns
//! the node was deleted, its local lease runs out (`jeopardy`), its session expires, or the
//! client stops. After `jeopardy` a `safe` event restores belief in the locks it still held:
//! the session survived, so the server never released them. A hold whose belief ended in
//! jeopardy never followed by `safe`, in expiry or in the client's stop was *lost to expiry*:
//! the server may hand that lock on only after it expires the session, which is no earlier
//! than the client's lease ran out, and after `lock_delay` more.

use std::collections::BTreeMap;

use crate::check::{Check, CheckConfig, Verdict, Violation};
use crate::history::{
    ClientId, Event, FaultKind, History, Line, LockMode, Op, OpError, OpId, OpRecord, OpResult,
    Sequencer, SimTime,
};

/// Why a belief interval ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeliefEnd {
    /// The client invoked `unlock` or `close` (that op), or was granted the lock again.
    Released(Option<OpId>),
    /// The client's local lease ran out.
    Jeopardy,
    /// The client's session expired.
    Expired,
    /// The node was deleted.
    Deleted,
    /// The client stopped.
    Stopped,
    /// The history ended while the client believed.
    HistoryEnd,
}

/// An interval of simulated time in which one client believed it held one lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeliefInterval {
    /// Who believed.
    pub client: ClientId,
    /// The lock's node.
    pub path: String,
    /// In which mode.
    pub mode: LockMode,
    /// The grant's sequencer, when reported.
    pub sequencer: Option<Sequencer>,
    /// When the belief began.
    pub start: SimTime,
    /// When it ended (`u64::MAX` if the history ended first).
    pub end: SimTime,
    /// Why it ended.
    pub end_cause: BeliefEnd,
    /// The `lock` op that granted it, if the grant was a reply.
    pub grant_op: Option<OpId>,
    /// True when this interval began at a `safe` event, not at a grant.
    pub resumed: bool,
    /// True when the hold was lost to expiry (see the module doc).
    pub lost_to_expiry: bool,
}

impl BeliefInterval {
    fn overlaps(&self, other: &BeliefInterval) -> bool {
        self.start < other.end && other.start < self.end
    }

    fn conflicts(&self, other: &BeliefInterval) -> bool {
        self.mode == LockMode::Exclusive || other.mode == LockMode::Exclusive
    }

    fn ops(&self) -> Vec<OpId> {
        let mut ops: Vec<OpId> = self.grant_op.into_iter().collect();
        if let BeliefEnd::Released(Some(op)) = self.end_cause {
            ops.push(op);
        }
        ops
    }

    fn describe(&self) -> String {
        let until = if self.end.0 == u64::MAX {
            "the end".to_owned()
        } else {
            self.end.to_string()
        };
        format!(
            "client {} held {:?} from {} to {until}{}",
            self.client.0,
            self.mode,
            self.start,
            self.sequencer
                .map(|s| format!(" (generation {})", s.generation))
                .unwrap_or_default()
        )
        .to_lowercase()
    }
}

enum Item<'a> {
    Grant {
        path: &'a str,
        mode: LockMode,
        sequencer: Option<Sequencer>,
        op: Option<OpId>,
    },
    Release {
        path: &'a str,
        op: OpId,
    },
    Deleted {
        path: &'a str,
    },
    Jeopardy,
    Safe,
    Expired,
    Stopped,
}

struct Held {
    mode: LockMode,
    sequencer: Option<Sequencer>,
    grant_op: Option<OpId>,
    /// The open interval's start, while the client believes.
    believing_since: Option<(SimTime, bool)>,
}

fn items(history: &History) -> BTreeMap<ClientId, Vec<(SimTime, usize, Item<'_>)>> {
    let mut by_client: BTreeMap<ClientId, Vec<(SimTime, usize, Item<'_>)>> = BTreeMap::new();
    for (order, line) in history.lines.iter().enumerate() {
        match line {
            Line::Op(op) => {
                if let Some((at, item)) = op_item(op) {
                    by_client
                        .entry(op.client)
                        .or_default()
                        .push((at, order, item));
                }
            }
            Line::Event(event) => {
                let item = match &event.event {
                    Event::LockAcquired { path, sequencer } => Item::Grant {
                        path,
                        mode: sequencer.mode,
                        sequencer: Some(*sequencer),
                        op: None,
                    },
                    Event::NodeDeleted { path } => Item::Deleted { path },
                    Event::Jeopardy {} => Item::Jeopardy,
                    Event::Safe {} => Item::Safe,
                    Event::Expired {} => Item::Expired,
                    Event::MasterFailover { .. } => continue,
                };
                by_client
                    .entry(event.client)
                    .or_default()
                    .push((event.at_ns, order, item));
            }
            Line::Fault(fault) if fault.fault == FaultKind::ClientStop => {
                for client in &fault.clients {
                    by_client
                        .entry(*client)
                        .or_default()
                        .push((fault.at_ns, order, Item::Stopped));
                }
            }
            _ => {}
        }
    }
    for list in by_client.values_mut() {
        list.sort_by_key(|(at, order, _)| (*at, *order));
    }
    by_client
}

fn op_item(op: &OpRecord) -> Option<(SimTime, Item<'_>)> {
    match (&op.op, &op.result) {
        (Op::Lock { mode, .. }, OpResult::Ok(reply)) if !reply.queued => Some((
            op.complete_ns?,
            Item::Grant {
                path: &op.path,
                mode: reply.sequencer.map_or(*mode, |s| s.mode),
                sequencer: reply.sequencer,
                op: Some(op.id),
            },
        )),
        (Op::Unlock {} | Op::Close {}, _) => Some((
            op.invoke_ns,
            Item::Release {
                path: &op.path,
                op: op.id,
            },
        )),
        _ => None,
    }
}

/// Every belief interval in the history, by client then start.
pub fn belief_intervals(history: &History) -> Vec<BeliefInterval> {
    let mut intervals = Vec::new();
    for (client, list) in items(history) {
        let mut held: BTreeMap<&str, Held> = BTreeMap::new();
        let mut in_jeopardy = false;
        // Intervals ended by jeopardy that a `safe` has not yet shown were kept.
        let mut pending: Vec<usize> = Vec::new();
        let close = |intervals: &mut Vec<BeliefInterval>,
                     path: &str,
                     h: &mut Held,
                     at: SimTime,
                     cause: BeliefEnd|
         -> Option<usize> {
            let (start, resumed) = h.believing_since.take()?;
            intervals.push(BeliefInterval {
                client,
                path: path.to_owned(),
                mode: h.mode,
                sequencer: h.sequencer,
                start,
                end: at,
                end_cause: cause,
                grant_op: h.grant_op,
                resumed,
                lost_to_expiry: matches!(cause, BeliefEnd::Expired | BeliefEnd::Stopped),
            });
            Some(intervals.len() - 1)
        };
        for (at, _, item) in list {
            match item {
                Item::Grant {
                    path,
                    mode,
                    sequencer,
                    op,
                } => {
                    if let Some(h) = held.get_mut(path) {
                        close(&mut intervals, path, h, at, BeliefEnd::Released(None));
                    }
                    held.insert(
                        path,
                        Held {
                            mode,
                            sequencer,
                            grant_op: op,
                            believing_since: (!in_jeopardy).then_some((at, false)),
                        },
                    );
                }
                Item::Release { path, op } => {
                    if let Some(mut h) = held.remove(path) {
                        close(
                            &mut intervals,
                            path,
                            &mut h,
                            at,
                            BeliefEnd::Released(Some(op)),
                        );
                    }
                }
                Item::Deleted { path } => {
                    if let Some(mut h) = held.remove(path) {
                        close(&mut intervals, path, &mut h, at, BeliefEnd::Deleted);
                    }
                }
                Item::Jeopardy => {
                    in_jeopardy = true;
                    for (path, h) in held.iter_mut() {
                        if let Some(i) = close(&mut intervals, path, h, at, BeliefEnd::Jeopardy) {
                            pending.push(i);
                        }
                    }
                }
                Item::Safe => {
                    in_jeopardy = false;
                    pending.clear();
                    for h in held.values_mut() {
                        if h.believing_since.is_none() {
                            h.believing_since = Some((at, true));
                        }
                    }
                }
                Item::Expired | Item::Stopped => {
                    let cause = if matches!(item, Item::Expired) {
                        BeliefEnd::Expired
                    } else {
                        BeliefEnd::Stopped
                    };
                    for (path, h) in held.iter_mut() {
                        close(&mut intervals, path, h, at, cause);
                    }
                    held.clear();
                    in_jeopardy = false;
                    for i in pending.drain(..) {
                        intervals[i].lost_to_expiry = true;
                    }
                }
            }
        }
        for (path, h) in held.iter_mut() {
            close(
                &mut intervals,
                path,
                h,
                SimTime(u64::MAX),
                BeliefEnd::HistoryEnd,
            );
        }
        for i in pending {
            intervals[i].lost_to_expiry = true;
        }
    }
    intervals
}

fn by_path(intervals: &[BeliefInterval]) -> BTreeMap<&str, Vec<&BeliefInterval>> {
    let mut map: BTreeMap<&str, Vec<&BeliefInterval>> = BTreeMap::new();
    for interval in intervals {
        map.entry(interval.path.as_str())
            .or_default()
            .push(interval);
    }
    map
}

/// No two clients ever believe they hold the same lock in conflicting modes at once.
pub fn check_lock_safety(history: &History) -> Verdict {
    let intervals = belief_intervals(history);
    if intervals.is_empty() {
        return Verdict::Skipped("no lock was granted".to_owned());
    }
    let mut violations = Vec::new();
    for (path, list) in by_path(&intervals) {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.client != b.client && a.conflicts(b) && a.overlaps(b) {
                    let mut ops = a.ops();
                    ops.extend(b.ops());
                    violations.push(Violation {
                        check: Check::LockSafety,
                        at: a.start.max(b.start),
                        ops,
                        message: format!(
                            "two clients believed they held {path}: {} and {}",
                            a.describe(),
                            b.describe()
                        ),
                    });
                }
            }
        }
    }
    Verdict::from_violations(violations)
}

/// A lock lost to its holder's expiry is granted to a conflicting client no sooner than
/// `lock_delay` (less the clock-drift allowance) after the holder's belief ended.
pub fn check_lock_delay(history: &History, config: &CheckConfig) -> Verdict {
    if config.lock_delay_ns == 0 {
        return Verdict::Skipped("lock_delay is 0 (lock safety covers the rest)".to_owned());
    }
    let intervals = belief_intervals(history);
    let mut violations = Vec::new();
    for (path, list) in by_path(&intervals) {
        for lost in list.iter().filter(|i| i.lost_to_expiry) {
            // The server times the delay on its own clock, which may run slow by the drift
            // bound.
            let ppm = config.clock_drift_ppm.min(1_000_000);
            let delay =
                (config.lock_delay_ns as u128 * (1_000_000 - ppm) as u128 / 1_000_000) as u64;
            let earliest = lost.end.plus(delay);
            for next in &list {
                if next.client != lost.client
                    && !next.resumed
                    && lost.conflicts(next)
                    && next.start >= lost.end
                    && next.start < earliest
                {
                    let mut ops = lost.ops();
                    ops.extend(next.ops());
                    violations.push(Violation {
                        check: Check::LockDelay,
                        at: next.start,
                        ops,
                        message: format!(
                            "{path} was lost to expiry ({}) and granted again at {}, before \
                             the lock delay ran out at {earliest}: {}",
                            lost.describe(),
                            next.start,
                            next.describe()
                        ),
                    });
                }
            }
        }
    }
    Verdict::from_violations(violations)
}

/// Exclusive grants of a lock carry strictly increasing generations; a `check_sequencer`
/// invoked after a newer exclusive grant was known must say stale; one a holder still
/// believes in throughout the check must say valid.
pub fn check_sequencers(history: &History) -> Verdict {
    let intervals = belief_intervals(history);
    let mut grants: BTreeMap<(&str, u64), Vec<(&BeliefInterval, Sequencer)>> = BTreeMap::new();
    for interval in intervals.iter().filter(|i| !i.resumed) {
        if let Some(s) = interval.sequencer
            && s.mode == LockMode::Exclusive
        {
            grants
                .entry((interval.path.as_str(), s.instance))
                .or_default()
                .push((interval, s));
        }
    }
    let checks: Vec<&OpRecord> = history
        .ops()
        .filter(|op| matches!(op.op, Op::CheckSequencer { .. }))
        .collect();
    if grants.is_empty() && checks.is_empty() {
        return Verdict::Skipped("no exclusive grant and no check_sequencer".to_owned());
    }
    let mut violations = Vec::new();
    for ((path, _), list) in grants.iter_mut() {
        list.sort_by_key(|(i, _)| i.start);
        for pair in list.windows(2) {
            let ((a, sa), (b, sb)) = (pair[0], pair[1]);
            if sb.generation <= sa.generation {
                violations.push(Violation {
                    check: Check::Sequencers,
                    at: b.start,
                    ops: a.grant_op.into_iter().chain(b.grant_op).collect(),
                    message: format!(
                        "{path}: exclusive grant at generation {} came after one at {} \
                         ({} then {})",
                        sb.generation,
                        sa.generation,
                        a.describe(),
                        b.describe()
                    ),
                });
            }
        }
    }
    for op in checks {
        let Op::CheckSequencer { sequencer } = &op.op else {
            continue;
        };
        let Some(complete) = op.complete_ns else {
            continue;
        };
        match &op.result {
            OpResult::Ok(_) => {
                let newer = grants
                    .get(&(op.path.as_str(), sequencer.instance))
                    .into_iter()
                    .flatten()
                    .find(|(g, s)| s.generation > sequencer.generation && g.start < op.invoke_ns);
                if let Some((g, s)) = newer {
                    violations.push(Violation {
                        check: Check::Sequencers,
                        at: complete,
                        ops: g.grant_op.into_iter().chain([op.id]).collect(),
                        message: format!(
                            "{}: a sequencer at generation {} passed the check although \
                             generation {} was granted before it began ({})",
                            op.path,
                            sequencer.generation,
                            s.generation,
                            g.describe()
                        ),
                    });
                }
            }
            OpResult::Err(OpError::StaleSequencer) => {
                let holder = intervals.iter().find(|i| {
                    i.path == op.path
                        && i.sequencer == Some(*sequencer)
                        && i.start <= op.invoke_ns
                        && complete <= i.end
                });
                if let Some(h) = holder {
                    violations.push(Violation {
                        check: Check::Sequencers,
                        at: complete,
                        ops: h.grant_op.into_iter().chain([op.id]).collect(),
                        message: format!(
                            "{}: a sequencer at generation {} was called stale while its \
                             holder believed in it throughout the check ({})",
                            op.path,
                            sequencer.generation,
                            h.describe()
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    Verdict::from_violations(violations)
}
