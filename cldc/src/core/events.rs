//! In-order, exactly-once delivery of server events within one master epoch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::proto::{Event, EventSeq};

/// What happened to an arriving event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// These events are now deliverable, in order.
    Deliver(Vec<Event>),
    /// Held until the gap before it fills.
    Buffered,
    /// Already delivered.
    Duplicate,
    /// Beyond the buffer; dropped (the server retransmits it).
    Overflow,
}

/// Event seqs delivered so far (cumulatively) and those held out of order.
#[derive(Debug, Default)]
pub(crate) struct EventInbox {
    delivered: EventSeq,
    held: BTreeMap<u64, Event>,
}

impl EventInbox {
    /// The cumulative acknowledgement: every event up to this seq was delivered.
    pub(crate) fn ack(&self) -> EventSeq {
        self.delivered
    }

    /// Starts over for a new epoch (the new master numbers its events from 1).
    pub(crate) fn reset(&mut self) {
        self.delivered = EventSeq(0);
        self.held.clear();
    }

    pub(crate) fn arrive(&mut self, seq: EventSeq, event: Event, max_held: usize) -> Arrival {
        let s = seq.0;
        if s <= self.delivered.0 || self.held.contains_key(&s) {
            return Arrival::Duplicate;
        }
        if s != self.delivered.0 + 1 {
            let reach = u64::try_from(max_held)
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            if self.held.len() >= max_held || s - self.delivered.0 > reach {
                return Arrival::Overflow;
            }
            self.held.insert(s, event);
            return Arrival::Buffered;
        }
        let mut out = alloc::vec![event];
        self.delivered = seq;
        while let Some(e) = self.held.remove(&(self.delivered.0 + 1)) {
            out.push(e);
            self.delivered.0 += 1;
        }
        Arrival::Deliver(out)
    }
}
