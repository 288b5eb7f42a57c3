//! Durability: every acknowledged write is read back or overwritten.
//!
//! For an acknowledged `put` (or `delete`) of a file, either some other operation could have
//! overwritten it — a `put` or `delete` (for a deleted file: a `create`) that succeeded or whose
//! outcome is unknown, and that did not complete before the write was invoked — or every read
//! invoked after the write completed returns it, and at least one such read exists. The
//! harness reads every file after healing, so a write the cell forgot (acknowledged before it
//! was durable, then lost in a crash) shows here even when linearizability is undecided.

use crate::check::{Check, Verdict, Violation};
use crate::history::{History, Op, OpError, OpRecord, OpResult};

fn may_take_effect(op: &OpRecord) -> bool {
    matches!(op.result, OpResult::Ok(_) | OpResult::Unknown)
}

/// Whether `m` could overwrite the write `w` (same path, not known to be before it).
fn could_overwrite(w: &OpRecord, m: &OpRecord) -> bool {
    let kind_fits = match w.op {
        Op::Put { .. } => matches!(m.op, Op::Put { .. } | Op::Delete {}),
        Op::Delete {} => matches!(m.op, Op::Create { .. }),
        _ => false,
    };
    m.id != w.id
        && m.path == w.path
        && kind_fits
        && may_take_effect(m)
        && m.complete_ns.is_none_or(|c| c >= w.invoke_ns)
}

/// Whether the read `r` shows the write `w`.
fn shows(w: &OpRecord, r: &OpRecord) -> bool {
    match (&w.op, &w.result, &r.result) {
        (Op::Put { data, .. }, OpResult::Ok(written), OpResult::Ok(read)) => {
            read.data.as_ref().is_none_or(|d| d == data)
                && match (written.generation, read.generation) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        }
        (Op::Delete {}, _, OpResult::Err(OpError::NoSuchNode)) => true,
        _ => false,
    }
}

/// Checks every acknowledged `put` and `delete`.
pub fn check_durability(history: &History) -> Verdict {
    let ops: Vec<&OpRecord> = history.ops().collect();
    let writes: Vec<&OpRecord> = ops
        .iter()
        .copied()
        .filter(|op| {
            matches!(op.op, Op::Put { .. } | Op::Delete {}) && matches!(op.result, OpResult::Ok(_))
        })
        .collect();
    if writes.is_empty() {
        return Verdict::Skipped("no acknowledged write".to_owned());
    }
    let mut violations = Vec::new();
    for w in writes {
        let Some(acked) = w.complete_ns else { continue };
        if ops.iter().any(|m| could_overwrite(w, m)) {
            continue;
        }
        let reads: Vec<&OpRecord> = ops
            .iter()
            .copied()
            .filter(|r| {
                r.path == w.path
                    && matches!(r.op, Op::Get {})
                    && r.invoke_ns > acked
                    && r.complete_ns.is_some()
                    && matches!(
                        r.result,
                        OpResult::Ok(_) | OpResult::Err(OpError::NoSuchNode)
                    )
            })
            .collect();
        match reads.iter().find(|r| !shows(w, r)) {
            Some(r) => violations.push(Violation {
                check: Check::Durability,
                at: r.complete_ns.unwrap_or(r.invoke_ns),
                ops: vec![w.id, r.id],
                message: format!(
                    "acknowledged write lost: op #{} ({}) was never overwritten, yet op #{} \
                     ({}) does not see it",
                    w.id.0,
                    w.describe(),
                    r.id.0,
                    r.describe()
                ),
            }),
            None if reads.is_empty() => violations.push(Violation {
                check: Check::Durability,
                at: acked,
                ops: vec![w.id],
                message: format!(
                    "acknowledged write never read back: op #{} ({}) has no later read of {}",
                    w.id.0,
                    w.describe(),
                    w.path
                ),
            }),
            None => {}
        }
    }
    Verdict::from_violations(violations)
}
