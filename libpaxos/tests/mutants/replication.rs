//! Survivors in libpaxos/src/replication.rs (accepts, acknowledgements, commit, batching).

use super::support::*;

/// replication.rs `on_accept`: entries beyond the accept window are left out and counted.
#[test]
fn entries_beyond_the_accept_window_are_counted_and_left_out() {
    let mut r = replica(N2);
    let window = r.config().accept_window();
    r.on_message(at(99), N1, accept(&[1])).unwrap();
    assert_eq!(r.counters().beyond_accept_window, 0);
    r.on_message(at(100), N1, accept(&[1, window + 1])).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().beyond_accept_window, 1);
    let slots: Vec<Slot> = ready.persist.entries.iter().map(|e| e.slot).collect();
    assert_eq!(slots, vec![Slot(1)]);
}

/// replication.rs `batches`: an Accept carries about `max_batch_bytes` of payload at most; more
/// goes in the next Accept to the same follower.
#[test]
fn accepts_are_split_by_payload_bytes() {
    let mut config = config(N1);
    config.max_batch_bytes = 100;
    let mut r = elected_master_with(config);
    for _ in 0..3 {
        r.propose(at(ELECTION), vec![9u8; 60]).unwrap();
    }
    let ready = drive(&mut r);
    let accepts_to_n2 = ready
        .messages
        .iter()
        .filter(|e| e.to == N2 && matches!(e.msg, Message::Accept { .. }))
        .count();
    assert_eq!(accepts_to_n2, 3, "76 bytes each, at most 100 per Accept");
}

/// replication.rs `on_accept` (`>` → `<` in the fast path's test): an Accept that re-sends
/// slots this follower already holds committed writes only the slots above its commit index
/// (chosen slots are never rewritten), and acknowledges them all.
#[test]
fn an_accept_overlapping_the_commit_index_rewrites_no_chosen_slot() {
    let mut r = follower_with_three_committed();
    let accept = accept_with_commit(2..=4, 3);
    r.on_message(at(110), N1, accept).unwrap();
    let ready = drive(&mut r);
    let written: Vec<Slot> = ready.persist.entries.iter().map(|e| e.slot).collect();
    assert_eq!(written, vec![Slot(4)]);
    let acked: Vec<Vec<Slot>> = ready
        .after_persist
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accepted { slots, .. } => Some(slots.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(acked, vec![vec![Slot(2), Slot(3), Slot(4)]]);
}

/// replication.rs `on_accepted` (`+=` → `*=`): an accept ack of another ballot is counted
/// stale and counts for nothing.
#[test]
fn an_accept_ack_of_another_ballot_is_counted_stale() {
    let mut r = elected_master();
    let before = r.counters().stale_ballot;
    let commit = r.commit();
    let stale = Message::Accepted {
        ballot: ballot(0, N1),
        slots: vec![Slot(1)],
    };
    r.on_message(at(ELECTION + 5), N2, stale).unwrap();
    drive(&mut r);
    assert_eq!(r.counters().stale_ballot, before + 1);
    assert_eq!(r.commit(), commit);
}

/// replication.rs `advance_commit` (`<=` → `>`): once the commit index passes the slot a
/// catch-up request asked for, the request is settled, and a later `SnapshotNeeded` from that
/// peer is not taken (it answers a question no longer asked).
#[test]
fn a_settled_catch_up_request_takes_no_snapshot_offer() {
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(3, 1)).unwrap();
    assert_eq!(catch_up_requests(&drive(&mut r)), vec![Slot(1)]);
    let entries = (1..=3)
        .map(|slot| Entry {
            slot: Slot(slot),
            ballot: ballot(1, N1),
            value: Value {
                epoch: Epoch(1),
                payload: Payload::Noop,
            },
        })
        .collect();
    let accept = Message::Accept {
        ballot: ballot(1, N1),
        commit: Slot(3),
        entries,
    };
    r.on_message(at(105), N1, accept).unwrap();
    drive_persisted(&mut r, at(105));
    assert_eq!(r.commit(), Slot(3));
    offer_snapshot_expecting_refusal(
        &mut r,
        at(106),
        N1,
        40,
        false,
        "a settled request took a snapshot offer",
    );
}

/// replication.rs `append_as_master` (`==` → `!=` on the Ready number): the master's own
/// accept of a slot counts only once the Ready that wrote it is durable — not with an earlier
/// Ready's `on_persisted`, even for the next consecutive slot.
#[test]
fn the_masters_own_accept_counts_only_with_its_own_ready() {
    let mut r = elected_master();
    let (first, _) = r.propose(at(ELECTION + 1), vec![1]).unwrap();
    let ready_a = r.ready();
    r.storage_mut().write(&ready_a.persist).unwrap();
    let (second, _) = r.propose(at(ELECTION + 2), vec![2]).unwrap();
    assert_eq!(second, first.next());
    let ready_b = r.ready();
    r.storage_mut().write(&ready_b.persist).unwrap();
    assert!(ready_b.number > ready_a.number);
    // Only the first Ready is durable so far.
    r.on_persisted(at(ELECTION + 3), ready_a.number).unwrap();
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: (1..=second.0).map(Slot).collect(),
    };
    r.on_message(at(ELECTION + 4), N2, ack).unwrap();
    assert_eq!(r.commit(), first);
    r.storage_mut().sync().unwrap();
    r.on_persisted(at(ELECTION + 5), ready_b.number).unwrap();
    assert_eq!(r.commit(), second);
}

/// replication.rs `on_accept` (`>` → `>=` in the fast path's test): an Accept starting exactly
/// at the commit index does not rewrite that chosen slot either.
#[test]
fn an_accept_starting_at_the_commit_index_rewrites_no_chosen_slot() {
    let mut r = follower_with_three_committed();
    let accept = accept_with_commit(3..=4, 3);
    r.on_message(at(110), N1, accept).unwrap();
    let written: Vec<Slot> = drive(&mut r)
        .persist
        .entries
        .iter()
        .map(|e| e.slot)
        .collect();
    assert_eq!(written, vec![Slot(4)]);
}

/// replication.rs `tick_master` (`<<` → `>>`): each follower gets re-sent only the accepts it
/// has not acknowledged.
#[test]
fn accepts_are_re_sent_only_to_followers_that_did_not_ack() {
    let mut r = elected_master();
    let (slot, _) = r.propose(at(ELECTION + 1), vec![1]).unwrap();
    drive_persisted(&mut r, at(ELECTION + 1));
    // n2 acknowledges the proposal but not the take-office no-op before it: nothing commits.
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![slot],
    };
    r.on_message(at(ELECTION + 2), N2, ack).unwrap();
    drive(&mut r);
    assert_eq!(r.commit(), Slot::ZERO);
    let later = at(ELECTION + 6 + r.config().heartbeat_interval.as_millis() as u64);
    r.on_tick(later).unwrap();
    let mut resent: Vec<(NodeId, Vec<Slot>)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::Accept { entries, .. } => {
                Some((e.to, entries.iter().map(|x| x.slot).collect()))
            }
            _ => None,
        })
        .collect();
    resent.sort();
    assert_eq!(resent, vec![(N2, vec![Slot(1)]), (N3, vec![Slot(1), slot])]);
    // replication.rs `tick_master` (`+=` → `*=`): operators can read the two re-sends.
    assert_eq!(r.counters().accepts_resent, 2);
}

/// replication.rs `batches` (`>=` → `<` on the entry count): proposals beyond
/// `max_batch_entries` go out in full batches of that many, the rest in a last one.
#[test]
fn accepts_are_split_by_entry_count() {
    let mut config = config(N1);
    config.max_batch_entries = 2;
    let mut r = elected_master_with(config);
    for i in 0..5 {
        r.propose(at(ELECTION), vec![i]).unwrap();
    }
    let ready = drive(&mut r);
    let sizes: Vec<usize> = ready
        .messages
        .iter()
        .filter_map(|e| match &e.msg {
            Message::Accept { entries, .. } if e.to == N2 => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
}

/// replication.rs `on_accepted` (`+=` → `*=` on `unexpected`): an accept acknowledgement
/// reaching a replica that is not master (a deposed one, say) is counted and changes nothing.
#[test]
fn an_accept_ack_to_a_follower_is_counted_unexpected() {
    let mut r = follower_with_three_committed();
    let before = r.counters().unexpected;
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![Slot(4)],
    };
    r.on_message(at(200), N3, ack).unwrap();
    let ready = drive(&mut r);
    assert_eq!(r.counters().unexpected, before + 1);
    assert_eq!(r.commit(), Slot(3));
    assert!(ready.messages.is_empty(), "{:?}", ready.messages);
}

/// replication.rs `propose_command` (`>` → `>=`): a command of exactly `max_batch_bytes` is
/// proposed; only a larger one is refused as too large.
#[test]
fn a_command_of_exactly_max_batch_bytes_is_proposed() {
    let mut config = config(N1);
    config.max_batch_bytes = 100;
    let mut r = elected_master_with(config);
    let (slot, _) = r
        .propose(at(ELECTION + 1), vec![7u8; 100])
        .expect("a command of exactly the limit is taken");
    assert_eq!(slot, Slot(2));
    assert_eq!(
        r.propose(at(ELECTION + 1), vec![7u8; 101]),
        Err(ProposeError::TooLarge {
            size: 101,
            limit: 100
        })
    );
    assert_eq!(r.counters().proposals_refused, 1);
}

/// replication.rs `batches` (`&&` → `||`, `+` → `*` and `>` → `>=` in the cut): when the
/// proposals of a Ready do not fit one Accept, each Accept still takes as many as fit —
/// exactly `max_batch_bytes` of values here (two of 17 bytes in 34), the third in the next.
#[test]
fn accepts_fill_exactly_max_batch_bytes() {
    let mut config = config(N1);
    // Each value (16 bytes of overhead and a 1-byte command) counts 17 bytes: two fit exactly.
    config.max_batch_bytes = 34;
    let mut r = elected_master_with(config);
    for i in 0..3 {
        r.propose(at(ELECTION + 1), vec![i]).unwrap();
    }
    assert_eq!(accept_sizes_to_n2(&drive(&mut r)), vec![2, 1]);
}

/// replication.rs `follow` (`!` deleted): a follower hearing again from the master it already
/// follows reports no role change; only the first message from a master does.
#[test]
fn a_follower_hearing_its_master_again_reports_no_role_change() {
    let role_changes = |ready: &Ready| -> Vec<Role> {
        ready
            .events
            .iter()
            .filter_map(|e| match e {
                libpaxos::Event::RoleChanged(role) => Some(*role),
                _ => None,
            })
            .collect()
    };
    let mut r = replica(N2);
    r.on_message(at(100), N1, heartbeat(0, 1)).unwrap();
    assert_eq!(
        role_changes(&drive(&mut r)),
        vec![Role::Follower { master: Some(N1) }]
    );
    r.on_message(at(150), N1, heartbeat(0, 2)).unwrap();
    r.on_message(at(160), N1, accept(&[1])).unwrap();
    assert_eq!(role_changes(&drive(&mut r)), vec![]);
    assert_eq!(r.role(), Role::Follower { master: Some(N1) });
}

/// replication.rs `append_as_master` (`==` → `!=` on the ballot, and on `last.next()`; also
/// its whole guard → `false`): the master's own accepts of the slots it proposed in one Ready
/// count together, when that Ready is durable. A hand-over whose wait ran out meanwhile then
/// releases with all of them committed — not after the first, with the rest arriving (and
/// counted unexpected) at a replica no longer master. So one self-ack per slot is not just
/// more work.
#[test]
fn a_readys_own_accepts_all_count_before_a_late_hand_over_releases() {
    let mut r = elected_master();
    let start = at(ELECTION + 1);
    let (a, _) = r.propose(start, vec![1]).unwrap();
    let (b, _) = r.propose(start, vec![2]).unwrap();
    assert_eq!((a, b), (Slot(2), Slot(3)));
    r.hand_over(start, Some(N2)).unwrap();
    let ready = drive(&mut r);
    // n2 acknowledges the no-op and both proposals; the no-op (acknowledged by n1 too) commits.
    let ack = Message::Accepted {
        ballot: ballot(1, N1),
        slots: vec![Slot(1), a, b],
    };
    r.on_message(at(ELECTION + 2), N2, ack).unwrap();
    assert_eq!(r.commit(), Slot(1));
    assert!(r.handing_over());
    // The master's disk is slow: its Ready is durable only after the hand-over's wait.
    let unexpected = r.counters().unexpected;
    let late = at(ELECTION + 1 + r.config().election_timeout.as_millis() as u64);
    r.on_persisted(late, ready.number).unwrap();
    assert_eq!(r.commit(), b);
    assert_eq!(r.counters().unexpected, unexpected);
    let released: Vec<(NodeId, Slot)> = drive(&mut r)
        .messages
        .into_iter()
        .filter_map(|e| match e.msg {
            Message::TimeoutNow { commit, .. } => Some((e.to, commit)),
            _ => None,
        })
        .collect();
    assert_eq!(released, vec![(N2, b)]);
}

/// Not a mutant: a real bug found while checking replication.rs `on_accepted` 331:15 (delete
/// `!`; equivalent once this is fixed). A master (n1, ballot 1) that is handed a `TimeoutNow`
/// by a newer master it never heard of (n3, ballot 2, elected with n2), then gets a late copy
/// of one of n3's Accepts, raised its promise to n3's ballot but stayed master: `follow`
/// returned early for a released ballot (before stepping a leading replica down) and
/// `on_accept` went on to write n3's entries and learn its commit index. The master then
/// proposed into slot 2, chosen at n3's ballot, and handed slot 2 out as committed with its
/// own value. Fixed: `follow` steps a replica leading at a lower ballot down even for a
/// released ballot. A master never proposes at or below its commit index and hands out only
/// chosen values.
#[test]
fn a_master_never_proposes_into_a_slot_chosen_at_a_released_higher_ballot() {
    let mut r = elected_master();
    let newer = ballot(2, N3);
    let release = Message::TimeoutNow {
        ballot: newer,
        commit: Slot::ZERO,
    };
    r.on_message(at(ELECTION + 1), N3, release).unwrap();
    let chosen = |slot: u64| Entry {
        slot: Slot(slot),
        ballot: newer,
        value: Value {
            epoch: Epoch(2),
            payload: Payload::Command(vec![30 + slot as u8].into()),
        },
    };
    let late = Message::Accept {
        ballot: newer,
        commit: Slot(2),
        entries: vec![chosen(1), chosen(2)],
    };
    r.on_message(at(ELECTION + 2), N3, late).unwrap();
    let (role, promised) = (r.role(), r.promised());
    let proposed = r.propose(at(ELECTION + 3), vec![99]);
    let commit = r.commit();
    let ready = drive_persisted(&mut r, at(ELECTION + 3));
    for c in &ready.committed {
        assert_eq!(
            c.value,
            chosen(c.slot.0).value,
            "{:?} handed out with a value never chosen",
            c.slot
        );
    }
    if let Ok((slot, _)) = proposed {
        assert!(
            slot > commit,
            "proposed into {slot:?}, committed through {commit:?}"
        );
    }
    assert!(
        promised <= ballot(1, N1) || !matches!(role, Role::Master { .. }),
        "{role:?} with a promise to {promised:?}"
    );
}
