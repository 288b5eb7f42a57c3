//! Which member the client talks to, and how it moves on.

use alloc::vec::Vec;
use core::net::SocketAddr;

/// Most members a session remembers (the configured ones plus redirect targets); further
/// configured members are ignored and discovery stops there.
pub const MAX_MEMBERS: usize = 16;

/// The cell's members and the one currently believed to be master.
#[derive(Clone, Debug)]
pub(crate) struct Members {
    addrs: Vec<SocketAddr>,
    /// The first `configured` addresses are the configured members; the rest are redirect
    /// targets, oldest first.
    configured: usize,
    current: usize,
    /// Sends to the current member since it was last heard from.
    pub(crate) silent_sends: u32,
}

impl Members {
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> Self {
        let mut addrs = addrs;
        addrs.truncate(MAX_MEMBERS);
        Members {
            configured: addrs.len(),
            addrs,
            current: 0,
            silent_sends: 0,
        }
    }

    /// The member requests go to.
    pub(crate) fn current(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// How many members are known.
    pub(crate) fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Moves to the next member in order.
    pub(crate) fn rotate(&mut self) {
        self.current = (self.current + 1) % self.addrs.len();
        self.silent_sends = 0;
    }

    /// Moves to `addr`, remembering it if it is new (when the list is full the oldest
    /// redirect target is forgotten, a configured member only if every slot is configured).
    pub(crate) fn redirect(&mut self, addr: SocketAddr) {
        if let Some(i) = self.addrs.iter().position(|a| *a == addr) {
            self.current = i;
        } else {
            if self.addrs.len() >= MAX_MEMBERS {
                // The oldest redirect target goes first; the newest configured member only
                // when every slot is configured. (`current` is replaced below.)
                let victim = if self.configured < self.addrs.len() {
                    self.configured
                } else {
                    self.configured -= 1;
                    self.addrs.len() - 1
                };
                self.addrs.remove(victim);
            }
            self.addrs.push(addr);
            self.current = self.addrs.len() - 1;
        }
        self.silent_sends = 0;
    }

    /// The current member answered.
    pub(crate) fn heard_from(&mut self, addr: SocketAddr) {
        if addr == self.current() {
            self.silent_sends = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_full_list_forgets_the_oldest_redirect_target_never_a_configured_member_first() {
        let mut m = Members::new((1..=15).map(a).collect());
        m.redirect(a(100)); // list now full: 15 configured + 1 extra
        m.redirect(a(101)); // must forget 100 (the oldest extra), not a configured member
        m.redirect(a(102)); // must forget 101
        let mut seen = alloc::vec![m.current()];
        for _ in 1..m.len() {
            m.rotate();
            seen.push(m.current());
        }
        assert_eq!(m.len(), MAX_MEMBERS);
        for port in 1..=15 {
            assert!(
                seen.contains(&a(port)),
                "configured member {port} was forgotten"
            );
        }
        assert!(seen.contains(&a(102)));
    }
}
