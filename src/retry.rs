//! Reconnection delays: the `retry:` line a stream ends with (at shutdown, at its timeout, when
//! a full server turns an EventSource away), drawn at random from `[retry, 2 × retry)` so that
//! a thousand clients told at once do not all come back in the same instant.

use crate::mem::Writer;
use std::hash::{BuildHasher, Hasher};

/// Draws retry delays around a base; a small xorshift generator, seeded once at start from the
/// process's random hasher keys (std, no dependency, no syscall per draw).
pub(crate) struct RetryDelays {
    base_ms: u64,
    state: u64,
}

impl RetryDelays {
    pub fn new(base_ms: u64) -> RetryDelays {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        RetryDelays { base_ms, state: seed | 1 }
    }

    /// A delay in `[base, 2 × base)` milliseconds (0 when the base is 0).
    pub fn next(&mut self) -> u64 {
        // xorshift64*: plenty for spreading reconnects, and never allocates.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if self.base_ms == 0 { 0 } else { self.base_ms + r % self.base_ms }
    }

    /// Writes `retry: N` and the blank line that ends the block.
    pub fn put_line(&mut self, w: &mut Writer) -> Option<()> {
        let delay = self.next();
        w.put(b"retry: ")?;
        w.put_u64(delay)?;
        w.put(b"\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_spread_over_the_range() {
        let mut d = RetryDelays::new(3000);
        let draws: Vec<u64> = (0..1000).map(|_| d.next()).collect();
        assert!(draws.iter().all(|&v| (3000..6000).contains(&v)));
        let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(hi - lo > 2500, "{lo}..{hi}");
        assert_eq!(RetryDelays::new(0).next(), 0);
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        d.put_line(&mut w).unwrap();
        assert!(std::str::from_utf8(w.written()).unwrap().starts_with("retry: "));
    }
}
