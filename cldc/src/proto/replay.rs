//! Anti-replay window over a peer's packet seqs (64 packets, like IPsec's); used by both
//! ends (docs/protocol.md §9.1).

use super::PacketSeq;

/// Remembers the highest packet seq seen and which of the 64 below it were seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    seen: u64,
}

impl ReplayWindow {
    /// True (and remembers it) if `seq` is new; false for a replay or one too old to judge.
    pub fn accept(&mut self, seq: PacketSeq) -> bool {
        let s = seq.0;
        if s == 0 {
            return false;
        }
        if s > self.highest {
            let shift = s - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = s;
            return true;
        }
        let back = self.highest - s;
        if back >= 64 {
            return false;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_seq_once_even_out_of_order() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(PacketSeq(2)));
        assert!(w.accept(PacketSeq(1)));
        assert!(!w.accept(PacketSeq(2)));
        assert!(!w.accept(PacketSeq(1)));
        assert!(w.accept(PacketSeq(100)));
        assert!(!w.accept(PacketSeq(30)));
        assert!(w.accept(PacketSeq(99)));
    }
}
