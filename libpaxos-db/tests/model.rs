//! Model-based test: random command histories give the same replies, the same events and the
//! same final state on the sled namespace as on a simple in-memory reference model.

mod common;
mod history;
mod reference;

use std::collections::BTreeMap;

use common::temp_db;
use history::{SeqChoice, Step};
use libpaxos::{Committed, Epoch, Payload, Slot, Value};
use libpaxos_db::{ClientRequest, Command, Namespace, RequestSeq, SessionId, WallTime};
use proptest::prelude::*;

/// Turns steps into (command-or-noop, epoch), assigning seqs and times.
pub fn commands(steps: &[Step]) -> Vec<(Option<Command>, u64)> {
    let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let time = WallTime(1_000 + i as u64);
        match step {
            Step::Client {
                session,
                seq,
                epoch,
                op,
            } => {
                let last = seqs.entry(*session).or_insert(0);
                let seq = match seq {
                    SeqChoice::Next => {
                        *last += 1;
                        *last
                    }
                    SeqChoice::Same => *last,
                    SeqChoice::Older => last.saturating_sub(1),
                };
                let command = Command::Client(ClientRequest {
                    session: SessionId(*session),
                    seq: RequestSeq(seq),
                    time,
                    op: op.clone(),
                });
                out.push((Some(command), *epoch));
            }
            Step::Expire { session, epoch } => out.push((
                Some(Command::ExpireSession {
                    session: SessionId(*session),
                    time,
                }),
                *epoch,
            )),
            Step::Noop { epoch } => out.push((None, *epoch)),
        }
    }
    out
}

fn committed(slot: u64, command: &Option<Command>, epoch: u64) -> Committed {
    Committed {
        slot: Slot(slot),
        value: Value {
            epoch: Epoch(epoch),
            payload: match command {
                Some(c) => Payload::Command(c.encode().into()),
                None => Payload::Noop,
            },
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sled_namespace_matches_the_reference_model(steps in history::history(200)) {
        let db = temp_db();
        let mut ns = Namespace::open(&db, history::limits()).unwrap();
        let mut reference = reference::Model::new(history::limits());
        for (i, (command, epoch)) in commands(&steps).iter().enumerate() {
            let applied = ns.apply(&committed(i as u64 + 1, command, *epoch)).unwrap();
            let (reply, events) = match command {
                Some(c) => reference.apply(c, *epoch),
                None => reference.apply_noop(*epoch),
            };
            prop_assert_eq!(&applied.reply, &reply, "reply of step {}: {:?}", i, command);
            prop_assert_eq!(&applied.events, &events, "events of step {}: {:?}", i, command);
        }
        prop_assert_eq!(ns.dump().unwrap(), reference.dump());
    }
}
