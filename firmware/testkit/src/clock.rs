//! A simulated monotonic clock.

use std::time::Duration;

/// Monotonic time for tests: starts at zero, moves only by `advance`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimClock {
    now: Duration,
}

impl SimClock {
    /// The current simulated time since the clock's start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Moves time forward; time never goes backwards.
    pub fn advance(&mut self, by: Duration) -> Duration {
        self.now += by;
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_monotonically() {
        let mut clock = SimClock::default();
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.advance(Duration::from_millis(500)), Duration::from_millis(2500));
    }
}
