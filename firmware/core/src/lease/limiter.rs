//! Per-MAC token buckets: one noisy client cannot starve the others.
//!
//! Owns the flood defence of the lease server. The table of buckets is
//! bounded: when it is full, idle (fully refilled) buckets are forgotten;
//! if every bucket is busy the table is cleared, which fails open rather
//! than growing without bound.

use std::collections::HashMap;

use opie_proto::lease_log::Mac;

use super::config::RateLimit;

/// Tokens are counted in thousandths so refill works at millisecond steps.
const SCALE: u64 = 1000;

#[derive(Debug)]
pub struct Limiter {
    cfg: RateLimit,
    /// MAC -> (last refill in ms, tokens * SCALE).
    buckets: HashMap<Mac, (u64, u64)>,
}

impl Limiter {
    pub fn new(cfg: RateLimit) -> Self {
        Limiter { cfg, buckets: HashMap::new() }
    }

    fn full(&self) -> u64 {
        u64::from(self.cfg.burst) * SCALE
    }

    fn refilled(&self, (last, tokens): (u64, u64), now_ms: u64) -> u64 {
        let add = now_ms.saturating_sub(last).saturating_mul(u64::from(self.cfg.per_sec));
        tokens.saturating_add(add).min(self.full())
    }

    /// Takes one token for `mac`; false when its bucket is empty.
    pub fn allow(&mut self, mac: Mac, now_ms: u64) -> bool {
        if !self.buckets.contains_key(&mac) && self.buckets.len() >= self.cfg.max_clients {
            let full = self.full();
            let buckets = std::mem::take(&mut self.buckets);
            self.buckets = buckets.into_iter().filter(|(_, b)| self.refilled(*b, now_ms) < full).collect();
            if self.buckets.len() >= self.cfg.max_clients {
                self.buckets.clear();
            }
        }
        let bucket = self.buckets.get(&mac).copied().unwrap_or((now_ms, self.full()));
        let tokens = self.refilled(bucket, now_ms);
        let (tokens, ok) = if tokens >= SCALE { (tokens - SCALE, true) } else { (tokens, false) };
        self.buckets.insert(mac, (now_ms.max(bucket.0), tokens));
        ok
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut l = Limiter::new(RateLimit { burst: 3, per_sec: 2, max_clients: 10 });
        let mac = [2, 0, 0, 0, 0, 1];
        assert!((0..3).all(|_| l.allow(mac, 1000)));
        assert!(!l.allow(mac, 1000));
        // Half a second refills one token at 2/s.
        assert!(l.allow(mac, 1500));
        assert!(!l.allow(mac, 1500));
        // Another MAC is unaffected.
        assert!(l.allow([2, 0, 0, 0, 0, 2], 1500));
    }

    #[test]
    fn table_stays_bounded() {
        let mut l = Limiter::new(RateLimit { burst: 1, per_sec: 1, max_clients: 4 });
        for i in 0..100u8 {
            assert!(l.allow([2, 0, 0, 0, 0, i], 0));
            assert!(l.tracked() <= 4);
        }
        // Time going backwards neither panics nor refills.
        let mac = [2, 0, 0, 0, 1, 0];
        assert!(l.allow(mac, 10_000));
        assert!(!l.allow(mac, 5_000));
    }
}
