//! Convergence: after healing, every member reports the same applied index and digest.

use std::collections::BTreeMap;

use crate::check::{Check, Verdict, Violation};
use crate::history::{DigestRecord, History, Line, MemberId};

/// Compares each member's latest digest.
pub fn check_convergence(history: &History) -> Verdict {
    let mut latest: BTreeMap<MemberId, &DigestRecord> = BTreeMap::new();
    for line in &history.lines {
        if let Line::Digest(d) = line
            && latest.get(&d.member).is_none_or(|old| old.at_ns <= d.at_ns)
        {
            latest.insert(d.member, d);
        }
    }
    let mut members = latest.values();
    let Some(first) = members.next() else {
        return Verdict::Skipped("no digests recorded".to_owned());
    };
    let members_expected = history.meta().map_or(0, |m| m.members as usize);
    let mut violations = Vec::new();
    if members_expected > latest.len() {
        violations.push(Violation {
            check: Check::Convergence,
            at: first.at_ns,
            ops: Vec::new(),
            message: format!(
                "only {} of {members_expected} members reported a digest",
                latest.len()
            ),
        });
    }
    for other in members {
        if other.applied != first.applied || other.digest != first.digest {
            violations.push(Violation {
                check: Check::Convergence,
                at: other.at_ns.max(first.at_ns),
                ops: Vec::new(),
                message: format!(
                    "member {} has digest {} at applied index {}, member {} has {} at {}",
                    first.member.0,
                    first.digest,
                    first.applied,
                    other.member.0,
                    other.digest,
                    other.applied
                ),
            });
        }
    }
    Verdict::from_violations(violations)
}
