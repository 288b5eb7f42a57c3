//! Timers of a [`Session`]: retransmission, keepalives, lease, grace and call timeouts.

use super::{Output, Session, SessionEvent, State};
use crate::core::Time;
use crate::core::retransmit::Backoff;
use crate::core::session::CallError;

impl Session {
    /// Runs every timer due at `now` (retransmissions, keepalives, lease, grace, call
    /// timeouts) and returns when to call again; `None` once the session is over.
    pub fn poll_timeout(&mut self, now: Time) -> Option<Time> {
        self.run_timers(now);
        self.next_timeout()
    }

    fn run_timers(&mut self, now: Time) {
        if let (State::Active, Some(l)) = (self.state, &self.lease)
            && now >= l.deadline
        {
            self.state = State::Jeopardy;
            self.counters.jeopardies += 1;
            self.out.push_back(Output::Event(SessionEvent::Jeopardy));
        }
        if let (State::Jeopardy, Some(l)) = (self.state, &self.lease)
            && now >= l.deadline.plus(self.cfg.grace)
        {
            self.expire();
            return;
        }
        self.fail_overdue_queued(now);
        if let Some(f) = &self.in_flight {
            if now >= f.call.deadline {
                self.counters.call_timeouts += 1;
                self.finish(now, Err(CallError::Timeout));
            } else if now >= f.backoff.due {
                self.counters.retransmissions += 1;
                self.rotate_if_silent();
                self.send_in_flight(now);
                if let Some(f) = &mut self.in_flight {
                    f.backoff.retransmitted(now);
                }
            }
        }
        if matches!(self.state, State::Active | State::Jeopardy) {
            self.keepalive_timer(now);
        }
    }

    fn keepalive_timer(&mut self, now: Time) {
        let Some(lease) = &self.lease else { return };
        let spaced = now >= lease.earliest_next(self.cfg.initial_rto);
        let due = match &self.keepalive_retry {
            Some(b) if lease.awaiting_reply() => now >= b.due,
            _ => spaced && (now >= lease.next_keepalive || self.state == State::Jeopardy),
        };
        if !due {
            return;
        }
        if lease.awaiting_reply() {
            self.rotate_if_silent();
        }
        self.send_keepalive(now);
        match &mut self.keepalive_retry {
            Some(b) if self.lease.as_ref().is_some_and(|l| l.awaiting_reply()) => {
                b.retransmitted(now)
            }
            _ => {
                let max = self.cfg.max_rto;
                self.keepalive_retry = Some(Backoff::start(now, self.cfg.initial_rto, max));
            }
        }
    }

    fn next_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut consider = |t: Time| next = Some(next.map_or(t, |n| n.min(t)));
        match self.state {
            State::Expired | State::Ended => return None,
            State::Active => {
                if let Some(l) = &self.lease {
                    consider(l.deadline);
                }
            }
            State::Jeopardy => {
                if let Some(l) = &self.lease {
                    consider(l.deadline.plus(self.cfg.grace));
                }
            }
            State::Connecting => {}
        }
        if let Some(f) = &self.in_flight {
            consider(f.backoff.due);
            consider(f.call.deadline);
        }
        for c in &self.queue {
            consider(c.deadline);
        }
        if let Some(l) = &self.lease {
            let earliest = l.earliest_next(self.cfg.initial_rto);
            match &self.keepalive_retry {
                Some(b) if l.awaiting_reply() => consider(b.due),
                _ if self.state == State::Jeopardy => consider(earliest),
                _ => consider(l.next_keepalive.max(earliest)),
            }
        }
        next
    }

    fn rotate_if_silent(&mut self) {
        if self.members.silent_sends >= self.cfg.sends_before_rotate {
            // A NewSession nobody confirms: the member holding the pending handshake may be
            // gone; the next member gets the handshake again.
            self.restart_handshake();
            self.members.rotate();
            self.counters.rotations += 1;
        }
    }

    fn fail_overdue_queued(&mut self, now: Time) {
        while let Some(pos) = self.queue.iter().position(|c| now >= c.deadline) {
            if let Some(c) = self.queue.remove(pos) {
                self.counters.call_timeouts += 1;
                self.out.push_back(Output::Reply {
                    call: c.id,
                    result: Err(CallError::Timeout),
                });
            }
        }
    }
}
