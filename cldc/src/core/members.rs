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
    current: usize,
    /// Sends to the current member since it was last heard from.
    pub(crate) silent_sends: u32,
}

impl Members {
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> Self {
        let mut addrs = addrs;
        addrs.truncate(MAX_MEMBERS);
        Members {
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

    /// Moves to `addr`, remembering it if it is new (the oldest extra member is forgotten when
    /// the list is full, never the current one).
    pub(crate) fn redirect(&mut self, addr: SocketAddr) {
        if let Some(i) = self.addrs.iter().position(|a| *a == addr) {
            self.current = i;
        } else {
            if self.addrs.len() >= MAX_MEMBERS {
                let victim = if self.current == self.addrs.len() - 1 {
                    0
                } else {
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
