//! Counters of the lease server: what it answered and what it dropped.
//!
//! Owns the numbers `opie status` prints; the server increments them, the
//! daemon copies them out. Every datagram lands in exactly one counter
//! besides `received`: a `dropped_*` one or the outcome it had.

use std::fmt;

/// Running totals since the server started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to the server.
    pub received: u64,
    pub dropped_too_short: u64,
    pub dropped_too_long: u64,
    pub dropped_bad_op: u64,
    pub dropped_bad_hlen: u64,
    pub dropped_no_cookie: u64,
    /// Truncated options, wrong option lengths, unknown message types.
    pub dropped_bad_options: u64,
    /// Plain BOOTP without a message type.
    pub dropped_no_message_type: u64,
    /// Hardware type other than Ethernet with a 6-byte address.
    pub dropped_unsupported_hw: u64,
    /// BOOTREPLY or server-to-client message types.
    pub dropped_not_request: u64,
    /// Over the per-MAC rate limit.
    pub dropped_rate_limited: u64,
    /// Addressed to another server (its server identifier).
    pub dropped_other_server: u64,
    /// A request, release, decline or inform without the address it needs,
    /// or naming an address this client does not hold.
    pub dropped_unusable: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub releases: u64,
    pub declines: u64,
    pub informs: u64,
    /// Discovers that found no free address.
    pub pool_exhausted: u64,
    /// Log entries that no longer fit the configuration at start-up.
    pub restore_skipped: u64,
}

impl Counters {
    /// Every counter with its name, in a stable order for printing.
    pub fn fields(&self) -> [(&'static str, u64); 21] {
        [
            ("received", self.received),
            ("dropped_too_short", self.dropped_too_short),
            ("dropped_too_long", self.dropped_too_long),
            ("dropped_bad_op", self.dropped_bad_op),
            ("dropped_bad_hlen", self.dropped_bad_hlen),
            ("dropped_no_cookie", self.dropped_no_cookie),
            ("dropped_bad_options", self.dropped_bad_options),
            ("dropped_no_message_type", self.dropped_no_message_type),
            ("dropped_unsupported_hw", self.dropped_unsupported_hw),
            ("dropped_not_request", self.dropped_not_request),
            ("dropped_rate_limited", self.dropped_rate_limited),
            ("dropped_other_server", self.dropped_other_server),
            ("dropped_unusable", self.dropped_unusable),
            ("offers", self.offers),
            ("acks", self.acks),
            ("naks", self.naks),
            ("releases", self.releases),
            ("declines", self.declines),
            ("informs", self.informs),
            ("pool_exhausted", self.pool_exhausted),
            ("restore_skipped", self.restore_skipped),
        ]
    }

    /// Sum of all `dropped_*` counters.
    pub fn dropped(&self) -> u64 {
        self.fields().iter().filter(|(n, _)| n.starts_with("dropped_")).map(|(_, v)| v).sum()
    }

    /// One line for `opie status`: the exchanges, and each drop reason
    /// that occurred.
    pub fn summary(&self) -> String {
        let reasons: Vec<String> = self
            .fields()
            .iter()
            .filter(|(n, v)| n.starts_with("dropped_") && *v > 0)
            .map(|(n, v)| format!("{} {v}", n.trim_start_matches("dropped_").replace('_', " ")))
            .collect();
        let dropped = match reasons.is_empty() {
            true => "0 dropped".to_string(),
            false => format!("{} dropped ({})", self.dropped(), reasons.join(", ")),
        };
        format!(
            "{} received, {} offers, {} acks, {} naks, {} declines, {dropped}",
            self.received, self.offers, self.acks, self.naks, self.declines
        )
    }
}

impl fmt::Display for Counters {
    /// One `name value` pair per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in self.fields() {
            writeln!(f, "{name} {value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_only_the_drop_reasons_seen() {
        let mut c = Counters::default();
        assert_eq!(c.summary(), "0 received, 0 offers, 0 acks, 0 naks, 0 declines, 0 dropped");
        c.received = 9;
        c.acks = 2;
        c.dropped_bad_hlen = 3;
        c.dropped_rate_limited = 4;
        assert_eq!(
            c.summary(),
            "9 received, 0 offers, 2 acks, 0 naks, 0 declines, 7 dropped (bad hlen 3, rate limited 4)"
        );
    }

    #[test]
    fn prints_every_counter_and_sums_drops() {
        let c = Counters { dropped_bad_hlen: 2, dropped_rate_limited: 3, acks: 7, ..Counters::default() };
        assert_eq!(c.dropped(), 5);
        let text = c.to_string();
        assert_eq!(text.lines().count(), 21);
        assert!(text.contains("dropped_bad_hlen 2\n"));
        assert!(text.contains("acks 7\n"));
    }
}
