//! Reassembly of multi-datagram messages with a hard memory bound.
//!
//! Fragments of one message share `(kind, msg_seq)` and `frag_count`. A retransmitted
//! message carries the same bytes under the same `msg_seq`, so fragments from different
//! transmissions fill each other's holes. At most `max_partial` messages are held at once
//! (the oldest is evicted first) and each holds at most `max_message` bytes, so a peer that
//! sends endless fragments costs a bounded amount of memory.

use alloc::vec;
use alloc::vec::Vec;

use super::{Header, Kind, MAX_FRAGMENTS, MAX_MESSAGE};

/// Bounds of one [`Reassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblerLimits {
    /// Largest message body, in bytes.
    pub max_message: usize,
    /// Most partially received messages held at once.
    pub max_partial: usize,
}

impl Default for ReassemblerLimits {
    fn default() -> Self {
        ReassemblerLimits {
            max_message: MAX_MESSAGE,
            max_partial: 4,
        }
    }
}

/// What one fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reassembled {
    /// The message is whole: here is its body.
    Complete(Vec<u8>),
    /// More fragments are needed.
    Incomplete,
    /// This fragment was already held; nothing changed.
    Duplicate,
}

/// Why a fragment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReassembleError {
    /// The message would exceed `max_message`; its fragments were discarded.
    #[error("message exceeds the reassembly limit")]
    TooLarge,
    /// The fragment's count disagrees with earlier fragments of the same message.
    #[error("fragment count disagrees with earlier fragments")]
    CountMismatch,
    /// The fragment count is 0 or above [`super::MAX_FRAGMENTS`], or the index is not below
    /// it (only possible for a [`Header`] built by hand: [`Header::read`] refuses these).
    #[error("fragment index or count out of range")]
    BadFragment,
}

struct Partial {
    kind: Kind,
    msg_seq: u64,
    frags: Vec<Option<Vec<u8>>>,
    bytes: usize,
    missing: usize,
}

/// Joins fragments into message bodies; see the module docs for the bounds.
pub struct Reassembler {
    limits: ReassemblerLimits,
    partial: Vec<Partial>,
    evicted: u64,
}

impl Reassembler {
    /// An empty reassembler. A `max_message` above the protocol's [`MAX_MESSAGE`] is
    /// lowered to it: no peer may send more, so holding more only serves an attacker.
    pub fn new(limits: ReassemblerLimits) -> Self {
        let limits = ReassemblerLimits {
            max_message: limits.max_message.min(MAX_MESSAGE),
            ..limits
        };
        Reassembler {
            limits,
            partial: Vec::new(),
            evicted: 0,
        }
    }

    /// Adds one fragment (its header already authenticated).
    pub fn push(&mut self, h: &Header, payload: &[u8]) -> Result<Reassembled, ReassembleError> {
        if h.frag_count == 0 || h.frag_count > MAX_FRAGMENTS || h.frag_index >= h.frag_count {
            return Err(ReassembleError::BadFragment);
        }
        if payload.len() > self.limits.max_message {
            return Err(ReassembleError::TooLarge);
        }
        if h.frag_count == 1 {
            return Ok(Reassembled::Complete(payload.to_vec()));
        }
        let count = h.frag_count as usize;
        let pos = match self
            .partial
            .iter()
            .position(|p| p.kind == h.kind && p.msg_seq == h.msg_seq)
        {
            Some(pos) => pos,
            None => {
                if self.limits.max_partial == 0 {
                    return Err(ReassembleError::TooLarge);
                }
                if self.partial.len() >= self.limits.max_partial {
                    self.partial.remove(0);
                    self.evicted += 1;
                }
                self.partial.push(Partial {
                    kind: h.kind,
                    msg_seq: h.msg_seq,
                    frags: vec![None; count],
                    bytes: 0,
                    missing: count,
                });
                self.partial.len() - 1
            }
        };
        let p = &mut self.partial[pos];
        if p.frags.len() != count {
            return Err(ReassembleError::CountMismatch);
        }
        let slot = &mut p.frags[h.frag_index as usize];
        if slot.is_some() {
            return Ok(Reassembled::Duplicate);
        }
        if p.bytes + payload.len() > self.limits.max_message {
            self.partial.remove(pos);
            return Err(ReassembleError::TooLarge);
        }
        *slot = Some(payload.to_vec());
        p.bytes += payload.len();
        p.missing -= 1;
        if p.missing > 0 {
            return Ok(Reassembled::Incomplete);
        }
        let p = self.partial.remove(pos);
        let mut body = Vec::with_capacity(p.bytes);
        for f in p.frags.into_iter().flatten() {
            body.extend_from_slice(&f);
        }
        Ok(Reassembled::Complete(body))
    }

    /// Drops every partial message (e.g. when the session ends or the master changes).
    pub fn clear(&mut self) {
        self.partial.clear();
    }

    /// Body bytes currently held.
    pub fn bytes_held(&self) -> usize {
        self.partial.iter().map(|p| p.bytes).sum()
    }

    /// Partial messages currently held.
    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }

    /// Partial messages evicted so far to make room for newer ones.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}
