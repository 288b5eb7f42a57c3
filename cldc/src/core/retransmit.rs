//! Exponential backoff of retransmissions.

use core::time::Duration;

use super::Time;

/// When to send something again: the timeout doubles after every retransmission, up to a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    /// When the next retransmission is due.
    pub(crate) due: Time,
}

impl Backoff {
    /// A backoff whose first retransmission is due `initial` after `now`.
    pub(crate) fn start(now: Time, initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
            due: now.plus(initial),
        }
    }

    /// Records a retransmission at `now`: doubles the timeout and sets the next due time.
    pub(crate) fn retransmitted(&mut self, now: Time) {
        self.current = self.current.saturating_mul(2).min(self.max);
        self.due = now.plus(self.current);
    }

    /// Records an immediate resend (after a redirect): back to the first timeout.
    pub(crate) fn reset(&mut self, now: Time) {
        self.current = self.initial;
        self.due = now.plus(self.initial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let mut b = Backoff::start(Time(ms(0)), ms(100), ms(500));
        assert_eq!(b.due, Time(ms(100)));
        b.retransmitted(Time(ms(100)));
        assert_eq!(b.due, Time(ms(300)));
        b.retransmitted(Time(ms(300)));
        assert_eq!(b.due, Time(ms(700)));
        b.retransmitted(Time(ms(700)));
        assert_eq!(b.due, Time(ms(1200)));
    }
}
