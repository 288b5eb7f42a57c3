//! Linearizability of each file as a register with compare-and-set.
//!
//! The search is Wing & Gong's, with Lowe's cache of visited (linearized set, state) pairs, as
//! Porcupine implements it: walk the call/return entries in time order, try to linearize each
//! call whose effect the model accepts, backtrack at a return whose call is not linearized yet.
//! Files are independent objects, so each path is checked alone (P-compositionality: a
//! history is linearizable iff each object's sub-history is). An operation whose outcome the
//! client never learned returns at infinity, so it may take effect at any point after its
//! invoke or, placed after everything else, not at all; when the harness knows a time after
//! which it can no longer take effect (its session ended: `complete_ns` of an unknown op), it
//! returns then, and takes effect before or not at all. A read whose outcome is unknown and an
//! operation refused outright change nothing and are left out. The search is bounded: past
//! the budget the verdict is undecided, never a hang.

use std::collections::{BTreeMap, HashSet};

use crate::check::{Check, CheckConfig, Verdict, Violation};
use crate::history::{History, Op, OpError, OpRecord, OpResult, SimTime};

/// A file's state in the model; contents are interned per path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterState {
    /// No file at the path.
    Absent,
    /// A file holding interned contents `value` at content generation `generation`.
    Present {
        /// Index of the contents in the path's table.
        value: u32,
        /// Its content generation.
        generation: u64,
    },
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Create { exclusive: bool },
    Get,
    Put { value: u32, cas: Option<u64> },
    Delete,
}

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Ok {
        value: Option<u32>,
        generation: Option<u64>,
    },
    NoSuchNode,
    Exists,
    StaleCas,
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct ModelOp {
    kind: Kind,
    outcome: Outcome,
}

/// The sequential specification: the state after `op` from `state`, or `None` if `op` could
/// not have returned what it did from `state`.
fn step(state: RegisterState, op: &ModelOp) -> Option<RegisterState> {
    use RegisterState::{Absent, Present};
    let generation_is = |expected: Option<u64>, actual: u64| expected.is_none_or(|g| g == actual);
    match (op.kind, op.outcome) {
        (Kind::Create { .. }, Outcome::Unknown) => Some(match state {
            Absent => Present {
                value: EMPTY,
                generation: 0,
            },
            present => present,
        }),
        (Kind::Create { exclusive }, Outcome::Ok { generation, .. }) => match state {
            Absent if generation_is(generation, 0) => Some(Present {
                value: EMPTY,
                generation: 0,
            }),
            Present { generation: g, .. } if !exclusive && generation_is(generation, g) => {
                Some(state)
            }
            _ => None,
        },
        (Kind::Create { exclusive: true }, Outcome::Exists) => {
            matches!(state, Present { .. }).then_some(state)
        }
        (Kind::Get, Outcome::Ok { value, generation }) => match state {
            Present {
                value: v,
                generation: g,
            } if value.is_none_or(|x| x == v) && generation_is(generation, g) => Some(state),
            _ => None,
        },
        (Kind::Get | Kind::Put { .. } | Kind::Delete, Outcome::NoSuchNode) => {
            (state == Absent).then_some(state)
        }
        (Kind::Put { value, cas }, Outcome::Ok { generation, .. }) => match state {
            Present { generation: g, .. }
                if cas.is_none_or(|c| c == g) && generation_is(generation, g + 1) =>
            {
                Some(Present {
                    value,
                    generation: g + 1,
                })
            }
            _ => None,
        },
        (Kind::Put { cas: Some(c), .. }, Outcome::StaleCas) => match state {
            Present { generation: g, .. } if g != c => Some(state),
            _ => None,
        },
        (Kind::Put { value, cas }, Outcome::Unknown) => Some(match state {
            Present { generation: g, .. } if cas.is_none_or(|c| c == g) => Present {
                value,
                generation: g + 1,
            },
            other => other,
        }),
        (Kind::Delete, Outcome::Ok { .. } | Outcome::Unknown) => match (state, op.outcome) {
            (Present { .. }, _) | (Absent, Outcome::Unknown) => Some(Absent),
            _ => None,
        },
        _ => None,
    }
}

/// The interned index of the empty contents a `create` makes.
const EMPTY: u32 = 0;

/// One path's operations prepared for the search.
struct Partition<'a> {
    records: Vec<&'a OpRecord>,
    ops: Vec<ModelOp>,
    values: Vec<String>,
}

impl<'a> Partition<'a> {
    fn new() -> Partition<'a> {
        Partition {
            records: Vec::new(),
            ops: Vec::new(),
            values: vec![String::new()],
        }
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(index) = self.values.iter().position(|v| v == value) {
            return index as u32;
        }
        self.values.push(value.to_owned());
        (self.values.len() - 1) as u32
    }

    /// Adds `record` if it can matter: refusals and unknown reads change nothing.
    fn add(&mut self, record: &'a OpRecord) {
        let kind = match &record.op {
            Op::Create { exclusive } => Kind::Create {
                exclusive: *exclusive,
            },
            Op::Get {} => Kind::Get,
            Op::Put { data, cas } => Kind::Put {
                value: self.intern(data),
                cas: *cas,
            },
            Op::Delete {} => Kind::Delete,
            _ => return,
        };
        let outcome = match &record.result {
            OpResult::Unknown if matches!(kind, Kind::Get) => return,
            OpResult::Unknown => Outcome::Unknown,
            OpResult::Ok(reply) => Outcome::Ok {
                value: reply.data.as_deref().map(|d| self.intern(d)),
                generation: reply.generation,
            },
            OpResult::Err(OpError::NoSuchNode) => Outcome::NoSuchNode,
            OpResult::Err(OpError::Exists) => Outcome::Exists,
            OpResult::Err(OpError::StaleCas) => Outcome::StaleCas,
            OpResult::Err(_) => return,
        };
        self.records.push(record);
        self.ops.push(ModelOp { kind, outcome });
    }

    fn return_time(&self, index: usize) -> u64 {
        // An unknown op's complete_ns, when present, bounds when it could take effect.
        self.records[index]
            .complete_ns
            .unwrap_or(SimTime(u64::MAX))
            .0
    }
}

const NIL: usize = usize::MAX;

/// The doubly linked list of call and return entries, Porcupine's `lift`/`unlift` on indices.
/// Node 0 is the head sentinel; node `1 + 2i` is op i's call, `2 + 2i` its return.
struct Entries {
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl Entries {
    fn new(partition: &Partition<'_>) -> Entries {
        let n = partition.ops.len();
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for i in 0..n {
            // At equal times a call sorts before a return: the two ops count as concurrent.
            order.push((partition.records[i].invoke_ns.0, 0, 1 + 2 * i));
            order.push((partition.return_time(i), 1, 2 + 2 * i));
        }
        order.sort_unstable();
        let mut prev = vec![NIL; 2 * n + 1];
        let mut next = vec![NIL; 2 * n + 1];
        let mut last = 0;
        for &(_, _, node) in &order {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Entries { prev, next }
    }

    fn lift(&mut self, call: usize) {
        let ret = call + 1;
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = n;
        self.prev[n] = p;
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn unlift(&mut self, call: usize) {
        let ret = call + 1;
        let (p, n) = (self.prev[ret], self.next[ret]);
        self.next[p] = ret;
        if n != NIL {
            self.prev[n] = ret;
        }
        let (p, n) = (self.prev[call], self.next[call]);
        self.next[p] = call;
        self.prev[n] = call;
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

enum Search {
    Linearizable,
    NotLinearizable {
        best: Bits,
        best_count: usize,
        best_state: RegisterState,
    },
    OutOfBudget,
}

/// The states `op` may leave from `state`: none if it cannot have returned what it did; for
/// an unknown outcome with a bound on when it could take effect, both its effect and no
/// effect (without a bound, "no effect" is the same as taking effect after everything else,
/// which the search finds by itself).
fn successors(state: RegisterState, op: &ModelOp, bounded: bool) -> [Option<RegisterState>; 2] {
    let effect = step(state, op);
    let none = (bounded && matches!(op.outcome, Outcome::Unknown) && effect != Some(state))
        .then_some(state);
    [effect, none]
}

fn search(partition: &Partition<'_>, budget: u64) -> Search {
    let n = partition.ops.len();
    let mut entries = Entries::new(partition);
    let mut linearized = Bits::new(n);
    let mut count = 0;
    let mut state = RegisterState::Absent;
    let mut cache: HashSet<(Bits, RegisterState)> = HashSet::new();
    // Each linearized call, the state before it and which successor it took.
    let mut calls: Vec<(usize, RegisterState, usize)> = Vec::new();
    let mut best = (linearized.clone(), 0, state);
    let mut entry = entries.next[0];
    // The first successor to try at `entry` (above 0 after backtracking to it).
    let mut first_choice = 0;
    let mut steps = 0u64;
    while entries.next[0] != NIL {
        steps += 1;
        if steps > budget {
            return Search::OutOfBudget;
        }
        if entry % 2 == 1 {
            let op = (entry - 1) / 2;
            let bounded = partition.return_time(op) != u64::MAX;
            let options = successors(state, &partition.ops[op], bounded);
            let mut taken = None;
            for (choice, after) in options.iter().enumerate().skip(first_choice) {
                let Some(after) = *after else { continue };
                let mut with = linearized.clone();
                with.set(op);
                if cache.insert((with, after)) {
                    taken = Some((choice, after));
                    break;
                }
            }
            first_choice = 0;
            match taken {
                Some((choice, after)) => {
                    calls.push((entry, state, choice));
                    state = after;
                    linearized.set(op);
                    count += 1;
                    if count > best.1 {
                        best = (linearized.clone(), count, state);
                    }
                    entries.lift(entry);
                    entry = entries.next[0];
                }
                None => entry = entries.next[entry],
            }
        } else {
            let Some((call, before, choice)) = calls.pop() else {
                return Search::NotLinearizable {
                    best: best.0,
                    best_count: best.1,
                    best_state: best.2,
                };
            };
            state = before;
            linearized.clear((call - 1) / 2);
            count -= 1;
            entries.unlift(call);
            // Try the call's other successor, if any, before moving past it.
            entry = call;
            first_choice = choice + 1;
        }
    }
    Search::Linearizable
}

fn describe_state(state: RegisterState, values: &[String]) -> String {
    match state {
        RegisterState::Absent => "absent".to_owned(),
        RegisterState::Present { value, generation } => format!(
            "{:?} at generation {generation}",
            values.get(value as usize).map_or("?", String::as_str)
        ),
    }
}

/// Checks every file's sub-history; fails on the first file that has no linearization.
pub fn check_linearizability(history: &History, config: &CheckConfig) -> Verdict {
    let mut partitions: BTreeMap<&str, Partition<'_>> = BTreeMap::new();
    for record in history.ops() {
        partitions
            .entry(record.path.as_str())
            .or_insert_with(Partition::new)
            .add(record);
    }
    partitions.retain(|_, p| !p.ops.is_empty());
    if partitions.is_empty() {
        return Verdict::Skipped("no file operations".to_owned());
    }
    let mut violations = Vec::new();
    let mut undecided = Vec::new();
    for (path, partition) in &partitions {
        match search(partition, config.linearizability_steps) {
            Search::Linearizable => {}
            Search::OutOfBudget => undecided.push(*path),
            Search::NotLinearizable {
                best,
                best_count,
                best_state,
            } => {
                // Blame the earliest-returning operation the longest linearization left out.
                let blamed = (0..partition.ops.len())
                    .filter(|&i| !best.get(i))
                    .min_by_key(|&i| (partition.return_time(i), i))
                    .unwrap_or(0);
                let record = partition.records[blamed];
                violations.push(Violation {
                    check: Check::Linearizability,
                    at: record.complete_ns.unwrap_or(record.invoke_ns),
                    ops: vec![record.id],
                    message: format!(
                        "{path} has no linearization: at best {best_count} of {} operations \
                         linearize (leaving the file {}), and then op #{} ({}) fits nowhere",
                        partition.ops.len(),
                        describe_state(best_state, &partition.values),
                        record.id.0,
                        record.describe(),
                    ),
                });
            }
        }
    }
    if !violations.is_empty() {
        return Verdict::from_violations(violations);
    }
    if !undecided.is_empty() {
        return Verdict::Undecided(format!(
            "search budget of {} steps spent on {}",
            config.linearizability_steps,
            undecided.join(", ")
        ));
    }
    Verdict::Pass
}
