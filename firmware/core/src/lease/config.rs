//! Lease server configuration and its validation.
//!
//! Owns what an administrator sets for the storage net's lease server:
//! pools, fixed reservations, lease and offer times, the options handed to
//! clients. [`Config::validate`] runs before a server is built from it.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use opie_proto::lease_log::Mac;
use thiserror::Error;

/// Most addresses all pools together may hold; bounds the server's memory.
pub const MAX_POOL_ADDRS: u64 = 1 << 20;

/// An inclusive range of pool addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl PoolRange {
    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.start <= addr && addr <= self.end
    }

    /// Number of addresses in the range (0 when inverted).
    pub fn size(&self) -> u64 {
        (u64::from(u32::from(self.end)) + 1).saturating_sub(u64::from(u32::from(self.start)))
    }
}

/// Per-MAC token bucket: `burst` packets at once, refilled at `per_sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_sec: u32,
    /// Most MACs tracked at once; bounds the limiter's memory.
    pub max_clients: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { burst: 20, per_sec: 10, max_clients: 16384 }
    }
}

/// Everything the lease server is told by its administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This server's address on the storage net (server identifier).
    pub server_ip: Ipv4Addr,
    pub subnet_mask: Ipv4Addr,
    pub pools: Vec<PoolRange>,
    /// Fixed addresses by MAC; nobody else ever gets them.
    pub reservations: Vec<(Mac, Ipv4Addr)>,
    /// Seconds a lease lasts; T1 is half of it, T2 seven eighths.
    pub lease_time: u32,
    /// Seconds an unanswered offer holds its address.
    pub offer_timeout: u32,
    /// Seconds a declined address stays out of use.
    pub quarantine: u32,
    /// Routers handed out, only when configured.
    pub routers: Vec<Ipv4Addr>,
    /// DNS servers handed out, only when configured.
    pub dns: Vec<Ipv4Addr>,
    pub rate_limit: RateLimit,
}

impl Config {
    /// A configuration with Opie's defaults around `server_ip` and `pools`.
    pub fn new(server_ip: Ipv4Addr, pools: Vec<PoolRange>) -> Self {
        Config {
            server_ip,
            subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            pools,
            reservations: Vec::new(),
            lease_time: 3600,
            offer_timeout: 60,
            quarantine: 600,
            routers: Vec::new(),
            dns: Vec::new(),
            rate_limit: RateLimit::default(),
        }
    }

    /// Whether `addr` is in the server's subnet.
    pub fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::from(self.subnet_mask);
        u32::from(addr) & mask == u32::from(self.server_ip) & mask
    }

    /// Checks every field and every relation between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mask = u32::from(self.subnet_mask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 || mask.leading_ones() > 30 {
            return Err(ConfigError::Mask(self.subnet_mask));
        }
        if self.pools.is_empty() {
            return Err(ConfigError::NoPool);
        }
        let mut total = 0u64;
        for (i, p) in self.pools.iter().enumerate() {
            if p.start > p.end {
                return Err(ConfigError::InvertedPool(*p));
            }
            if !self.in_subnet(p.start) || !self.in_subnet(p.end) {
                return Err(ConfigError::PoolOutsideSubnet(*p));
            }
            if let Some(q) = self.pools[..i].iter().find(|q| q.start <= p.end && p.start <= q.end) {
                return Err(ConfigError::OverlappingPools(*q, *p));
            }
            total += p.size();
        }
        if total > MAX_POOL_ADDRS {
            return Err(ConfigError::PoolTooLarge(total));
        }
        let mut macs = HashSet::new();
        let mut addrs = HashSet::new();
        for (mac, addr) in &self.reservations {
            if !macs.insert(*mac) {
                return Err(ConfigError::DuplicateReservation(format_mac(mac)));
            }
            if !addrs.insert(*addr) {
                return Err(ConfigError::SharedReservation(*addr));
            }
            if !self.in_subnet(*addr) || *addr == self.server_ip {
                return Err(ConfigError::BadReservation(format_mac(mac), *addr));
            }
        }
        if self.lease_time < 10 {
            return Err(ConfigError::LeaseTime(self.lease_time));
        }
        if self.offer_timeout == 0 || self.quarantine == 0 {
            return Err(ConfigError::Timeout);
        }
        if self.rate_limit.burst == 0 || self.rate_limit.per_sec == 0 || self.rate_limit.max_clients == 0 {
            return Err(ConfigError::RateLimit);
        }
        Ok(())
    }
}

/// Formats a MAC the usual way, `02:00:00:00:00:01`.
pub fn format_mac(mac: &Mac) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Why a lease server configuration is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The subnet mask is not contiguous ones then zeros, or leaves fewer
    /// than two host bits.
    #[error("subnet mask {0} is not a usable netmask")]
    Mask(Ipv4Addr),
    /// No pool was given.
    #[error("at least one address pool is needed")]
    NoPool,
    /// A pool ends before it starts.
    #[error("pool {}-{} ends before it starts", .0.start, .0.end)]
    InvertedPool(PoolRange),
    /// A pool is not inside the server's subnet.
    #[error("pool {}-{} is outside the server's subnet", .0.start, .0.end)]
    PoolOutsideSubnet(PoolRange),
    /// Two pools share addresses.
    #[error("pools {}-{} and {}-{} overlap", .0.start, .0.end, .1.start, .1.end)]
    OverlappingPools(PoolRange, PoolRange),
    /// The pools hold more addresses than the server will track.
    #[error("pools hold {0} addresses, more than the limit of {MAX_POOL_ADDRS}")]
    PoolTooLarge(u64),
    /// One MAC has two reservations.
    #[error("MAC {0} has more than one reservation")]
    DuplicateReservation(String),
    /// One address is reserved for two MACs.
    #[error("address {0} is reserved for more than one MAC")]
    SharedReservation(Ipv4Addr),
    /// A reservation is outside the subnet or is the server's own address.
    #[error("reservation {0}={1} is outside the subnet or is the server's address")]
    BadReservation(String, Ipv4Addr),
    /// The lease time is too short to be useful.
    #[error("lease time {0} s is below the minimum of 10 s")]
    LeaseTime(u32),
    /// Offer timeout or quarantine is zero.
    #[error("offer timeout and quarantine must be at least one second")]
    Timeout,
    /// A rate limit parameter is zero.
    #[error("rate limit burst, rate and client table size must be non-zero")]
    RateLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(a: u8, b: u8) -> PoolRange {
        PoolRange { start: Ipv4Addr::new(10, 77, 0, a), end: Ipv4Addr::new(10, 77, 0, b) }
    }

    fn base() -> Config {
        Config::new(Ipv4Addr::new(10, 77, 0, 1), vec![pool(100, 199)])
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(base().validate(), Ok(()));
        assert_eq!(pool(100, 199).size(), 100);
    }

    #[test]
    fn each_bad_field_has_its_own_error() {
        type Edit = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Edit, ConfigError)> = vec![
            (
                Box::new(|c| c.subnet_mask = Ipv4Addr::new(255, 0, 255, 0)),
                ConfigError::Mask(Ipv4Addr::new(255, 0, 255, 0)),
            ),
            (Box::new(|c| c.pools.clear()), ConfigError::NoPool),
            (Box::new(|c| c.pools = vec![pool(9, 8)]), ConfigError::InvertedPool(pool(9, 8))),
            (
                Box::new(|c| {
                    c.pools = vec![PoolRange { start: Ipv4Addr::new(10, 78, 0, 1), end: Ipv4Addr::new(10, 78, 0, 2) }]
                }),
                ConfigError::PoolOutsideSubnet(PoolRange {
                    start: Ipv4Addr::new(10, 78, 0, 1),
                    end: Ipv4Addr::new(10, 78, 0, 2),
                }),
            ),
            (Box::new(|c| c.pools.push(pool(150, 210))), ConfigError::OverlappingPools(pool(100, 199), pool(150, 210))),
            (
                Box::new(|c| {
                    c.reservations = vec![
                        ([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 77, 0, 5)),
                        ([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 77, 0, 6)),
                    ]
                }),
                ConfigError::DuplicateReservation("02:00:00:00:00:01".into()),
            ),
            (
                Box::new(|c| {
                    c.reservations = vec![
                        ([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 77, 0, 5)),
                        ([2, 0, 0, 0, 0, 2], Ipv4Addr::new(10, 77, 0, 5)),
                    ]
                }),
                ConfigError::SharedReservation(Ipv4Addr::new(10, 77, 0, 5)),
            ),
            (
                Box::new(|c| c.reservations = vec![([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 77, 0, 1))]),
                ConfigError::BadReservation("02:00:00:00:00:01".into(), Ipv4Addr::new(10, 77, 0, 1)),
            ),
            (Box::new(|c| c.lease_time = 5), ConfigError::LeaseTime(5)),
            (Box::new(|c| c.quarantine = 0), ConfigError::Timeout),
            (Box::new(|c| c.rate_limit.burst = 0), ConfigError::RateLimit),
        ];
        for (edit, expected) in cases {
            let mut c = base();
            edit(&mut c);
            assert_eq!(c.validate(), Err(expected));
        }
    }

    #[test]
    fn huge_pools_are_refused() {
        let mut c = Config::new(
            Ipv4Addr::new(10, 0, 0, 1),
            vec![PoolRange { start: Ipv4Addr::new(10, 0, 0, 2), end: Ipv4Addr::new(10, 255, 255, 254) }],
        );
        c.subnet_mask = Ipv4Addr::new(255, 0, 0, 0);
        assert!(matches!(c.validate(), Err(ConfigError::PoolTooLarge(_))));
    }
}
