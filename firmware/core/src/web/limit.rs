//! Failed-login rate limiting for the web page. Each client address may
//! fail [`MAX_FAILURES`] times within [`WINDOW_SECS`]; then its log-ins are
//! refused, right password or not, until the window has passed. The table
//! is bounded: when it is full, new addresses share one overflow entry, so
//! an attacker with many addresses cannot push its own entries out, and
//! cannot grow memory either. Time is an input.

use std::net::IpAddr;

/// Failed log-ins allowed per address within the window.
pub const MAX_FAILURES: u32 = 5;
/// Seconds a run of failures is remembered.
pub const WINDOW_SECS: u64 = 5 * 60;
/// Most addresses tracked one by one.
pub const MAX_TRACKED: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `None`: the shared overflow entry.
    addr: Option<IpAddr>,
    first: u64,
    failures: u32,
}

/// Failed log-ins per client address.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    entries: Vec<Entry>,
}

impl LoginLimiter {
    pub fn new() -> Self {
        LoginLimiter::default()
    }

    /// `None` if `addr` may try a password now, else the seconds it must
    /// wait.
    pub fn check(&mut self, addr: IpAddr, now: u64) -> Option<u64> {
        self.expire(now);
        let entry = self.entries.iter().find(|e| e.addr == Some(addr)).or_else(|| self.overflow())?;
        (entry.failures >= MAX_FAILURES).then(|| (entry.first + WINDOW_SECS).saturating_sub(now).max(1))
    }

    /// Counts a wrong password from `addr`.
    pub fn failed(&mut self, addr: IpAddr, now: u64) {
        self.expire(now);
        let key = if self.entries.iter().any(|e| e.addr == Some(addr)) || self.tracked() < MAX_TRACKED {
            Some(addr)
        } else {
            None
        };
        match self.entries.iter_mut().find(|e| e.addr == key) {
            Some(entry) => entry.failures = entry.failures.saturating_add(1),
            None => self.entries.push(Entry { addr: key, first: now, failures: 1 }),
        }
    }

    /// A right password from `addr` clears its own failures.
    pub fn succeeded(&mut self, addr: IpAddr) {
        self.entries.retain(|e| e.addr != Some(addr));
    }

    fn tracked(&self) -> usize {
        self.entries.iter().filter(|e| e.addr.is_some()).count()
    }

    /// The overflow entry, which speaks for untracked addresses while the
    /// table is full.
    fn overflow(&self) -> Option<&Entry> {
        if self.tracked() < MAX_TRACKED {
            return None;
        }
        self.entries.iter().find(|e| e.addr.is_none())
    }

    fn expire(&mut self, now: u64) {
        self.entries.retain(|e| now.saturating_sub(e.first) < WINDOW_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn locks_an_address_after_too_many_failures_until_the_window_ends() {
        let mut l = LoginLimiter::new();
        for t in 0..MAX_FAILURES as u64 {
            assert_eq!(l.check(ip(1), t), None);
            l.failed(ip(1), t);
        }
        assert_eq!(l.check(ip(1), 10), Some(WINDOW_SECS - 10));
        assert_eq!(l.check(ip(2), 10), None, "other addresses are not locked");
        assert_eq!(l.check(ip(1), WINDOW_SECS - 1), Some(1));
        assert_eq!(l.check(ip(1), WINDOW_SECS), None, "the window passed");
    }

    #[test]
    fn success_clears_failures() {
        let mut l = LoginLimiter::new();
        for _ in 1..MAX_FAILURES {
            l.failed(ip(1), 0);
        }
        l.succeeded(ip(1));
        l.failed(ip(1), 1);
        assert_eq!(l.check(ip(1), 1), None);
    }

    #[test]
    fn a_full_table_shares_one_entry_and_stays_bounded() {
        let mut l = LoginLimiter::new();
        for n in 0..MAX_TRACKED as u32 {
            l.failed(ip(n), 0);
        }
        // Thousands of fresh addresses: they share the overflow entry and
        // are locked together; the table does not grow.
        for n in 0..1000 {
            l.failed(ip(10_000 + n), 1);
        }
        assert!(l.entries.len() <= MAX_TRACKED + 1);
        assert!(l.check(ip(99_999), 2).is_some(), "overflow addresses are limited");
        assert_eq!(l.check(ip(0), 2), None, "a tracked address keeps its own count");
        // Once the window passes, everything is forgotten.
        assert_eq!(l.check(ip(99_999), WINDOW_SECS + 1), None);
        assert!(l.entries.is_empty());
    }
}
