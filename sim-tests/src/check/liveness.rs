//! Liveness: after the last heal, every live client completes an operation within the bound.
//!
//! A client is live unless a `client_stop` fault names it. An operation counts when the cell
//! gave it a definite answer (success or a judged error, not a refusal) between the heal and
//! the bound; one invoked before the heal counts too.

use crate::check::{Check, CheckConfig, Verdict, Violation};
use crate::history::{FaultKind, History, OpError, OpResult};

/// Checks each live client after the last `heal` fault.
pub fn check_liveness(history: &History, config: &CheckConfig) -> Verdict {
    let Some(healed) = history
        .faults()
        .filter(|f| f.fault == FaultKind::Heal)
        .map(|f| f.at_ns)
        .max()
    else {
        return Verdict::Skipped("no heal recorded".to_owned());
    };
    let deadline = healed.plus(config.liveness_bound_ns);
    let stopped: Vec<_> = history
        .faults()
        .filter(|f| f.fault == FaultKind::ClientStop)
        .flat_map(|f| f.clients.iter().copied())
        .collect();
    let mut violations = Vec::new();
    for client in history.clients() {
        if stopped.contains(&client) {
            continue;
        }
        let served = history.ops().any(|op| {
            op.client == client
                && !matches!(
                    op.result,
                    OpResult::Unknown | OpResult::Err(OpError::Refused(_))
                )
                && op.complete_ns.is_some_and(|c| c >= healed && c <= deadline)
        });
        if !served {
            violations.push(Violation {
                check: Check::Liveness,
                at: deadline,
                ops: Vec::new(),
                message: format!(
                    "client {} completed no operation between the heal at {healed} and \
                     {deadline} (bound {} ns; the history ends at {})",
                    client.0,
                    config.liveness_bound_ns,
                    history.end()
                ),
            });
        }
    }
    Verdict::from_violations(violations)
}
