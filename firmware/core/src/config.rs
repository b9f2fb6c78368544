//! The node's typed configuration and its validation.
//!
//! Owns what a node is told by its administrator (role, names, addresses)
//! and the rules that keep it coherent. Persisting it is `opie-sys`'s job
//! (two sealed slots, see `opie_sys::slots`); this module only encodes,
//! decodes and validates. `validate()` runs on every load and before every
//! write, so a config that breaks a rule is never stored.
//!
//! Heads carry their LAN and storage-net plan ([`HeadNet`]); every node may
//! carry the admin password as a salted PBKDF2-HMAC-SHA256 hash
//! ([`PasswordHash`]). There is no default password: a node without one
//! has none until an administrator sets it at the console.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Kind tag of a config record on disk (see `opie_proto::record`).
pub const CONFIG_MAGIC: [u8; 8] = *b"OPIECFG\0";
/// Version of the payload layout below. Postcard is positional: any change
/// to these structs bumps this number and adds a migration.
pub const CONFIG_VERSION: u16 = 1;

/// What a node does in the cluster (DESIGN §1). Active or passive is not
/// configured: a head holds the active role while it holds the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Factory state: only the serial wizard runs.
    #[default]
    Unconfigured,
    /// A storage node exporting its disks.
    Isu,
    /// A head: active or passive, decided at run time.
    Head,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Unconfigured => "unconfigured",
            Role::Isu => "isu",
            Role::Head => "head",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "isu" => Ok(Role::Isu),
            "head" => Ok(Role::Head),
            "unconfigured" => Ok(Role::Unconfigured),
            other => Err(ConfigError::UnknownRole(other.to_string())),
        }
    }
}

/// An IPv4 address with its prefix length, e.g. `10.77.0.1/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask of this prefix, e.g. 255.255.255.0 for /24.
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from(prefix_mask(self.prefix))
    }

    /// The network address, e.g. 10.77.0.0 for 10.77.0.1/24.
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & prefix_mask(self.prefix))
    }

    /// The broadcast address, e.g. 10.77.0.255 for 10.77.0.1/24.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !prefix_mask(self.prefix))
    }

    /// Whether `other` lies in this address's subnet.
    pub fn contains(self, other: Ipv4Addr) -> bool {
        u32::from(other) & prefix_mask(self.prefix) == u32::from(self.network())
    }

    /// Whether the address is usable by a host: inside a /0–/30 subnet it must
    /// be neither the network nor the broadcast address.
    pub fn is_host_address(self) -> bool {
        self.prefix > 30 || (self.addr != self.network() && self.addr != self.broadcast())
    }
}

fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadCidr(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

/// Default storage subnet (DESIGN §2).
pub const DEFAULT_STORAGE_SUBNET: Ipv4Cidr = Ipv4Cidr { addr: Ipv4Addr::new(10, 77, 0, 0), prefix: 24 };
/// Default LAN interface of a head (the storage net is `eth0`).
pub const DEFAULT_LAN_IFACE: &str = "eth1";
/// PBKDF2 rounds for new password hashes (OWASP 2023 figure for SHA-256).
pub const PASSWORD_ITERATIONS: u32 = 600_000;
/// Fewest rounds a stored hash may claim: guards against a zeroed or
/// corrupted count, never used to write.
pub const MIN_PASSWORD_ITERATIONS: u32 = 1_000;
/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest admin password accepted (bounds the hashing work per attempt).
pub const MAX_PASSWORD_LEN: usize = 128;

/// The node's place on the storage network (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNet {
    /// Interface on the storage switch.
    pub iface: String,
    /// A static address (seed 1.7.3 fallback); `None` means leased.
    pub static_addr: Option<Ipv4Cidr>,
}

/// How a head's LAN interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LanAddr {
    /// From the office's DHCP server.
    Dhcp,
    /// Set by the administrator; `gateway` is the default route, if any.
    Static { addr: Ipv4Cidr, gateway: Option<Ipv4Addr> },
}

/// A head's networks: the LAN side and the storage net it leases
/// addresses on. The head's own storage address is `StorageNet::static_addr`
/// (head 1 is .1 and head 2 is .2 of the subnet by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadNet {
    /// Interface on the office LAN.
    pub lan_iface: String,
    pub lan: LanAddr,
    /// The storage net's network address and prefix, e.g. 10.77.0.0/24.
    pub storage_subnet: Ipv4Cidr,
    /// First and last address of the lease pool, inclusive.
    pub pool_start: Ipv4Addr,
    pub pool_end: Ipv4Addr,
}

impl HeadNet {
    /// Defaults for `subnet`: LAN by DHCP, pool .100-.199 (or, in a subnet
    /// too small for that, from .3 to the last host).
    pub fn new(subnet: Ipv4Cidr) -> Self {
        let subnet = Ipv4Cidr { addr: subnet.network(), prefix: subnet.prefix };
        let (pool_start, pool_end) = default_pool(subnet);
        HeadNet {
            lan_iface: DEFAULT_LAN_IFACE.to_string(),
            lan: LanAddr::Dhcp,
            storage_subnet: subnet,
            pool_start,
            pool_end,
        }
    }

    /// Whether `addr` lies in the lease pool.
    pub fn pool_contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(self.pool_start)..=u32::from(self.pool_end)).contains(&u32::from(addr))
    }
}

/// The `n`th address of `subnet` (head 1 is `nth_host(subnet, 1)`).
pub fn nth_host(subnet: Ipv4Cidr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(n))
}

/// The default lease pool of `subnet`: .100-.199 when it fits, else from
/// the third host to the last one.
pub fn default_pool(subnet: Ipv4Cidr) -> (Ipv4Addr, Ipv4Addr) {
    let last_host = u32::from(subnet.broadcast()).saturating_sub(1);
    if u32::from(nth_host(subnet, 199)) <= last_host && subnet.prefix <= 24 {
        (nth_host(subnet, 100), nth_host(subnet, 199))
    } else {
        (nth_host(subnet, 3), Ipv4Addr::from(last_host))
    }
}

/// The admin password as a salted slow hash: PBKDF2-HMAC-SHA256 with the
/// round count stored beside it, so it can be raised later.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    pub iterations: u32,
    pub salt: [u8; 16],
    pub hash: [u8; 32],
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither salt nor hash belongs in a log line.
        write!(f, "PasswordHash {{ pbkdf2-sha256, {} rounds }}", self.iterations)
    }
}

impl PasswordHash {
    /// Hashes `password` with `salt` (16 random bytes from the caller).
    pub fn new(password: &str, salt: [u8; 16], iterations: u32) -> Self {
        let mut hash = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut hash);
        PasswordHash { iterations, salt, hash }
    }

    /// Whether `password` is the one hashed, compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let other = PasswordHash::new(password, self.salt, self.iterations);
        self.hash.iter().zip(other.hash.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Checks a new admin password against the console's rules.
pub fn validate_password(password: &str) -> Result<(), ConfigError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ConfigError::PasswordTooShort);
    }
    if len > MAX_PASSWORD_LEN {
        return Err(ConfigError::PasswordTooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(ConfigError::PasswordControl);
    }
    Ok(())
}

/// Everything a node's administrator decides. Postcard is positional:
/// fields are only appended (and [`CONFIG_VERSION`] bumped once released).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub role: Role,
    pub hostname: String,
    pub storage: StorageNet,
    /// Present exactly when `role` is [`Role::Head`].
    pub head: Option<HeadNet>,
    /// `None` until an administrator sets one: there is no default.
    pub admin_password: Option<PasswordHash>,
}

/// Why a config is not acceptable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The role name is not one Opie knows.
    #[error("unknown role {0:?}: expected \"head\" or \"isu\"")]
    UnknownRole(String),
    /// An address is not of the form a.b.c.d/len with len <= 32.
    #[error("{0:?} is not an IPv4 address with prefix, such as 10.77.0.1/24")]
    BadCidr(String),
    /// A duration is not a whole number of seconds.
    #[error("{0:?} is not a whole number of seconds")]
    BadSeconds(String),
    /// The hostname breaks RFC 1123 rules.
    #[error("hostname {0:?} must be 1-63 letters, digits or '-', not starting or ending with '-'")]
    BadHostname(String),
    /// The interface name cannot be a Linux interface name.
    #[error("interface name {0:?} must be 1-15 characters without '/', ':' or spaces")]
    BadInterface(String),
    /// The static address is the subnet's network or broadcast address.
    #[error("{0} is the network or broadcast address of its subnet, not a host address")]
    NotHostAddress(Ipv4Cidr),
    /// The static address has a prefix too long or too short for a storage net.
    #[error("prefix /{0} is outside /8../30 for the storage network")]
    BadPrefix(u8),
    /// Text that is not a dotted-quad IPv4 address.
    #[error("{0:?} is not an IPv4 address such as 10.77.0.1")]
    BadAddress(String),
    /// The LAN address has a prefix outside /8../30.
    #[error("LAN prefix /{0} is outside /8../30")]
    BadLanPrefix(u8),
    /// The storage subnet is too small (or too large) for heads and a pool.
    #[error("storage subnet prefix /{0} is outside /8../29 (two heads and a pool need at least 6 hosts)")]
    BadSubnetPrefix(u8),
    /// A subnet given with host bits set.
    #[error("{given} is not a network address: the subnet is {network}")]
    NotNetworkAddress { given: Ipv4Cidr, network: Ipv4Cidr },
    /// The gateway is not on the LAN subnet.
    #[error("gateway {gateway} is outside the LAN subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Ipv4Cidr },
    /// The gateway is the subnet's network or broadcast address.
    #[error("gateway {0} is the network or broadcast address of the LAN subnet")]
    GatewayNotHost(Ipv4Addr),
    /// The gateway is the head's own LAN address.
    #[error("gateway {0} is this head's own LAN address")]
    GatewayIsSelf(Ipv4Addr),
    /// LAN and storage net share addresses.
    #[error("LAN subnet {lan} overlaps the storage subnet {storage}")]
    SubnetsOverlap { lan: Ipv4Cidr, storage: Ipv4Cidr },
    /// A pool end lies outside the storage subnet.
    #[error("pool address {addr} is outside the storage subnet {subnet}")]
    PoolOutside { addr: Ipv4Addr, subnet: Ipv4Cidr },
    /// A pool end is the subnet's network or broadcast address.
    #[error("pool address {0} is the network or broadcast address of the storage subnet")]
    PoolNotHost(Ipv4Addr),
    /// The pool's start lies after its end.
    #[error("pool start {start} is after its end {end}")]
    PoolReversed { start: Ipv4Addr, end: Ipv4Addr },
    /// The pool would lease out a head's address.
    #[error("pool {start}-{end} contains {head}, a head's storage address")]
    PoolHoldsHead { start: Ipv4Addr, end: Ipv4Addr, head: Ipv4Addr },
    /// A head's storage address is not inside its storage subnet.
    #[error("storage address {addr} is not in the storage subnet {subnet} with the same prefix")]
    HeadOutsideSubnet { addr: Ipv4Cidr, subnet: Ipv4Cidr },
    /// A head without a static storage address (it is the lease server).
    #[error("a head needs a static storage address")]
    HeadNeedsStorageAddr,
    /// A head without its network plan.
    #[error("a head needs its LAN and storage-net settings")]
    HeadNetMissing,
    /// Another role carrying a head's network plan.
    #[error("role {0} must not carry head network settings")]
    HeadNetForbidden(Role),
    /// A stored password hash with an implausible round count.
    #[error("stored password hash claims {0} rounds, fewer than the minimum {MIN_PASSWORD_ITERATIONS}")]
    WeakPasswordHash(u32),
    /// The new password is shorter than [`MIN_PASSWORD_LEN`].
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    /// The new password is longer than [`MAX_PASSWORD_LEN`].
    #[error("the password must have at most {MAX_PASSWORD_LEN} characters")]
    PasswordTooLong,
    /// The new password holds control characters.
    #[error("the password must not contain control characters")]
    PasswordControl,
    /// The config payload does not decode as this version's layout.
    #[error("config payload does not decode: {0}")]
    Decode(String),
    /// The record carries a config version this firmware does not know.
    #[error("config version {found} is not supported (this firmware reads version {CONFIG_VERSION})")]
    Version { found: u16 },
}

impl Config {
    /// A fresh config for `role`, with Opie's defaults. A head gets the
    /// default storage subnet and is head 1 (.1) on it; no node gets a
    /// password.
    pub fn new(role: Role, hostname: &str) -> Self {
        let head = (role == Role::Head).then(|| HeadNet::new(DEFAULT_STORAGE_SUBNET));
        let static_addr = (role == Role::Head)
            .then(|| Ipv4Cidr { addr: nth_host(DEFAULT_STORAGE_SUBNET, 1), prefix: DEFAULT_STORAGE_SUBNET.prefix });
        Config {
            role,
            hostname: hostname.to_string(),
            storage: StorageNet { iface: "eth0".to_string(), static_addr },
            head,
            admin_password: None,
        }
    }

    /// Sets the storage-net address; on a head the storage subnet and its
    /// default pool follow it (what a preseeded `opie.storage_addr` means).
    pub fn set_storage_addr(&mut self, addr: Ipv4Cidr) {
        self.storage.static_addr = Some(addr);
        if let Some(head) = &mut self.head {
            let lan = head.lan;
            let iface = std::mem::take(&mut head.lan_iface);
            *head = HeadNet { lan, lan_iface: iface, ..HeadNet::new(addr) };
        }
    }

    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_hostname(&self.hostname)?;
        validate_iface(&self.storage.iface)?;
        if let Some(addr) = self.storage.static_addr {
            if !(8..=30).contains(&addr.prefix) {
                return Err(ConfigError::BadPrefix(addr.prefix));
            }
            if !addr.is_host_address() {
                return Err(ConfigError::NotHostAddress(addr));
            }
        }
        match (&self.head, self.role) {
            (Some(head), Role::Head) => validate_head(head, self.storage.static_addr)?,
            (None, Role::Head) => return Err(ConfigError::HeadNetMissing),
            (Some(_), role) => return Err(ConfigError::HeadNetForbidden(role)),
            (None, _) => {}
        }
        if let Some(hash) = &self.admin_password
            && hash.iterations < MIN_PASSWORD_ITERATIONS
        {
            return Err(ConfigError::WeakPasswordHash(hash.iterations));
        }
        Ok(())
    }

    /// Whether `other` differs from this config in anything that changes
    /// how the node is reached (addresses, subnets, pool): such a change
    /// must be confirmed or it is rolled back.
    pub fn network_differs(&self, other: &Config) -> bool {
        self.storage != other.storage || self.head != other.head
    }

    /// Encodes the payload of a config record (validated first).
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        self.validate()?;
        postcard::to_allocvec(self).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    /// Decodes and validates the payload of a config record of `version`.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, ConfigError> {
        if version != CONFIG_VERSION {
            return Err(ConfigError::Version { found: version });
        }
        let config: Config = postcard::from_bytes(payload).map_err(|e| ConfigError::Decode(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

/// RFC 1123 host label: what `hostname`, DHCP and the console accept.
pub fn validate_hostname(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(ConfigError::BadHostname(name.to_string())) }
}

/// The rules of a head's network plan; `storage_addr` is the head's own.
fn validate_head(head: &HeadNet, storage_addr: Option<Ipv4Cidr>) -> Result<(), ConfigError> {
    validate_iface(&head.lan_iface)?;
    validate_lan(head.lan)?;
    let subnet = validate_subnet(head.storage_subnet)?;
    if let LanAddr::Static { addr, .. } = head.lan
        && (addr.contains(subnet.network()) || subnet.contains(addr.network()))
    {
        return Err(ConfigError::SubnetsOverlap { lan: Ipv4Cidr { addr: addr.network(), ..addr }, storage: subnet });
    }
    let own = storage_addr.ok_or(ConfigError::HeadNeedsStorageAddr)?;
    if own.prefix != subnet.prefix || !subnet.contains(own.addr) {
        return Err(ConfigError::HeadOutsideSubnet { addr: own, subnet });
    }
    validate_pool(subnet, head.pool_start, head.pool_end, own.addr)
}

/// A static LAN address and its gateway.
pub fn validate_lan(lan: LanAddr) -> Result<(), ConfigError> {
    let LanAddr::Static { addr, gateway } = lan else { return Ok(()) };
    if !(8..=30).contains(&addr.prefix) {
        return Err(ConfigError::BadLanPrefix(addr.prefix));
    }
    if !addr.is_host_address() {
        return Err(ConfigError::NotHostAddress(addr));
    }
    if let Some(gateway) = gateway {
        validate_gateway(addr, gateway)?;
    }
    Ok(())
}

/// A gateway for the LAN address `lan`.
pub fn validate_gateway(lan: Ipv4Cidr, gateway: Ipv4Addr) -> Result<(), ConfigError> {
    let subnet = Ipv4Cidr { addr: lan.network(), prefix: lan.prefix };
    if !lan.contains(gateway) {
        return Err(ConfigError::GatewayOutside { gateway, subnet });
    }
    if !(Ipv4Cidr { addr: gateway, prefix: lan.prefix }).is_host_address() {
        return Err(ConfigError::GatewayNotHost(gateway));
    }
    if gateway == lan.addr {
        return Err(ConfigError::GatewayIsSelf(gateway));
    }
    Ok(())
}

/// A storage subnet: a network address with a prefix of /8../29.
pub fn validate_subnet(subnet: Ipv4Cidr) -> Result<Ipv4Cidr, ConfigError> {
    if !(8..=29).contains(&subnet.prefix) {
        return Err(ConfigError::BadSubnetPrefix(subnet.prefix));
    }
    let network = Ipv4Cidr { addr: subnet.network(), prefix: subnet.prefix };
    if subnet.addr != network.addr {
        return Err(ConfigError::NotNetworkAddress { given: subnet, network });
    }
    Ok(network)
}

/// A lease pool in `subnet` that must not hold `head` (this head's storage
/// address) nor .1 and .2, the heads' default addresses.
pub fn validate_pool(subnet: Ipv4Cidr, start: Ipv4Addr, end: Ipv4Addr, head: Ipv4Addr) -> Result<(), ConfigError> {
    for addr in [start, end] {
        if !subnet.contains(addr) {
            return Err(ConfigError::PoolOutside { addr, subnet });
        }
        if addr == subnet.network() || addr == subnet.broadcast() {
            return Err(ConfigError::PoolNotHost(addr));
        }
    }
    if u32::from(start) > u32::from(end) {
        return Err(ConfigError::PoolReversed { start, end });
    }
    let range = u32::from(start)..=u32::from(end);
    for head in [head, nth_host(subnet, 1), nth_host(subnet, 2)] {
        if range.contains(&u32::from(head)) {
            return Err(ConfigError::PoolHoldsHead { start, end, head });
        }
    }
    Ok(())
}

fn validate_iface(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok { Ok(()) } else { Err(ConfigError::BadInterface(name.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isu() -> Config {
        let mut c = Config::new(Role::Isu, "isu-1");
        c.storage.static_addr = Some("10.77.0.11/24".parse().expect("valid cidr"));
        c
    }

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("cidr in test")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("address in test")
    }

    fn head() -> Config {
        let mut c = Config::new(Role::Head, "head-1");
        let h = c.head.as_mut().expect("head net");
        h.lan = LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: Some(ip("192.168.1.1")) };
        c.admin_password = Some(PasswordHash::new("correct horse", [7; 16], MIN_PASSWORD_ITERATIONS));
        c
    }

    #[test]
    fn encode_decode_round_trip() {
        for c in [isu(), head(), Config::new(Role::Head, "h"), Config::new(Role::Unconfigured, "opie")] {
            let bytes = c.encode().expect("valid config");
            assert_eq!(Config::decode(CONFIG_VERSION, &bytes).expect("decodes"), c);
        }
    }

    #[test]
    fn defaults_follow_design_section_2() {
        let c = Config::new(Role::Head, "head-1");
        assert_eq!(c.validate(), Ok(()));
        let h = c.head.as_ref().expect("head net");
        assert_eq!(h.storage_subnet, cidr("10.77.0.0/24"));
        assert_eq!((h.pool_start, h.pool_end), (ip("10.77.0.100"), ip("10.77.0.199")));
        assert_eq!(c.storage.static_addr, Some(cidr("10.77.0.1/24")));
        assert_eq!(h.lan, LanAddr::Dhcp);
        assert!(c.admin_password.is_none(), "no default password");
        assert!(Config::new(Role::Isu, "i").head.is_none());
        // A small subnet gets a pool from .3 to the last host.
        assert_eq!(default_pool(cidr("10.9.9.0/28")), (ip("10.9.9.3"), ip("10.9.9.14")));
        assert_eq!(default_pool(cidr("10.9.0.0/16")), (ip("10.9.0.100"), ip("10.9.0.199")));
    }

    #[test]
    fn preseeded_storage_address_moves_a_heads_subnet() {
        let mut c = Config::new(Role::Head, "head-2");
        c.set_storage_addr(cidr("10.88.0.2/24"));
        assert_eq!(c.validate(), Ok(()));
        let h = c.head.as_ref().expect("head net");
        assert_eq!(h.storage_subnet, cidr("10.88.0.0/24"));
        assert_eq!((h.pool_start, h.pool_end), (ip("10.88.0.100"), ip("10.88.0.199")));
    }

    #[test]
    fn password_hash_verifies_only_the_password() {
        let h = PasswordHash::new("correct horse", [1; 16], MIN_PASSWORD_ITERATIONS);
        assert!(h.verify("correct horse"));
        assert!(!h.verify("correct hors"));
        assert!(!h.verify(""));
        // The salt changes the hash; the Debug form shows neither.
        assert_ne!(h.hash, PasswordHash::new("correct horse", [2; 16], MIN_PASSWORD_ITERATIONS).hash);
        assert_eq!(format!("{h:?}"), "PasswordHash { pbkdf2-sha256, 1000 rounds }");
        // RFC 7914 §11 test vector for PBKDF2-HMAC-SHA256 (1 round, "salt").
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(out[..8], [0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f]);
    }

    #[test]
    fn password_rules() {
        assert_eq!(validate_password("12345678"), Ok(()));
        assert_eq!(validate_password("1234567"), Err(ConfigError::PasswordTooShort));
        assert_eq!(validate_password(&"x".repeat(129)), Err(ConfigError::PasswordTooLong));
        assert_eq!(validate_password("abc\tdefgh"), Err(ConfigError::PasswordControl));
        let mut c = head();
        c.admin_password = Some(PasswordHash { iterations: 0, salt: [0; 16], hash: [0; 32] });
        assert_eq!(c.validate(), Err(ConfigError::WeakPasswordHash(0)));
    }

    #[test]
    fn head_validation_table() {
        type Edit = fn(&mut Config);
        let cases: &[(&str, Edit, Option<ConfigError>)] = &[
            ("valid", |_| {}, None),
            ("dhcp lan", |c| c.head.as_mut().expect("h").lan = LanAddr::Dhcp, None),
            (
                "no gateway",
                |c| c.head.as_mut().expect("h").lan = LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: None },
                None,
            ),
            (
                "gateway outside",
                |c| {
                    c.head.as_mut().expect("h").lan =
                        LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: Some(ip("192.168.2.1")) }
                },
                Some(ConfigError::GatewayOutside { gateway: ip("192.168.2.1"), subnet: cidr("192.168.1.0/24") }),
            ),
            (
                "gateway broadcast",
                |c| {
                    c.head.as_mut().expect("h").lan =
                        LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: Some(ip("192.168.1.255")) }
                },
                Some(ConfigError::GatewayNotHost(ip("192.168.1.255"))),
            ),
            (
                "gateway is self",
                |c| {
                    c.head.as_mut().expect("h").lan =
                        LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: Some(ip("192.168.1.10")) }
                },
                Some(ConfigError::GatewayIsSelf(ip("192.168.1.10"))),
            ),
            (
                "lan network address",
                |c| c.head.as_mut().expect("h").lan = LanAddr::Static { addr: cidr("192.168.1.0/24"), gateway: None },
                Some(ConfigError::NotHostAddress(cidr("192.168.1.0/24"))),
            ),
            (
                "lan prefix",
                |c| c.head.as_mut().expect("h").lan = LanAddr::Static { addr: cidr("192.168.1.10/31"), gateway: None },
                Some(ConfigError::BadLanPrefix(31)),
            ),
            (
                "lan overlaps storage",
                |c| c.head.as_mut().expect("h").lan = LanAddr::Static { addr: cidr("10.77.0.50/16"), gateway: None },
                Some(ConfigError::SubnetsOverlap { lan: cidr("10.77.0.0/16"), storage: cidr("10.77.0.0/24") }),
            ),
            (
                "subnet host bits",
                |c| c.head.as_mut().expect("h").storage_subnet = cidr("10.77.0.5/24"),
                Some(ConfigError::NotNetworkAddress { given: cidr("10.77.0.5/24"), network: cidr("10.77.0.0/24") }),
            ),
            (
                "subnet too small",
                |c| c.head.as_mut().expect("h").storage_subnet = cidr("10.77.0.0/30"),
                Some(ConfigError::BadSubnetPrefix(30)),
            ),
            (
                "pool outside",
                |c| c.head.as_mut().expect("h").pool_end = ip("10.77.1.10"),
                Some(ConfigError::PoolOutside { addr: ip("10.77.1.10"), subnet: cidr("10.77.0.0/24") }),
            ),
            (
                "pool broadcast",
                |c| c.head.as_mut().expect("h").pool_end = ip("10.77.0.255"),
                Some(ConfigError::PoolNotHost(ip("10.77.0.255"))),
            ),
            (
                "pool network",
                |c| c.head.as_mut().expect("h").pool_start = ip("10.77.0.0"),
                Some(ConfigError::PoolNotHost(ip("10.77.0.0"))),
            ),
            (
                "pool reversed",
                |c| c.head.as_mut().expect("h").pool_start = ip("10.77.0.200"),
                Some(ConfigError::PoolReversed { start: ip("10.77.0.200"), end: ip("10.77.0.199") }),
            ),
            (
                "pool holds head 2",
                |c| c.head.as_mut().expect("h").pool_start = ip("10.77.0.2"),
                Some(ConfigError::PoolHoldsHead {
                    start: ip("10.77.0.2"),
                    end: ip("10.77.0.199"),
                    head: ip("10.77.0.2"),
                }),
            ),
            (
                "pool holds own custom address",
                |c| c.storage.static_addr = Some(cidr("10.77.0.150/24")),
                Some(ConfigError::PoolHoldsHead {
                    start: ip("10.77.0.100"),
                    end: ip("10.77.0.199"),
                    head: ip("10.77.0.150"),
                }),
            ),
            (
                "head address outside subnet",
                |c| c.storage.static_addr = Some(cidr("10.78.0.1/24")),
                Some(ConfigError::HeadOutsideSubnet { addr: cidr("10.78.0.1/24"), subnet: cidr("10.77.0.0/24") }),
            ),
            ("head without address", |c| c.storage.static_addr = None, Some(ConfigError::HeadNeedsStorageAddr)),
            ("head without plan", |c| c.head = None, Some(ConfigError::HeadNetMissing)),
            ("isu with plan", |c| c.role = Role::Isu, Some(ConfigError::HeadNetForbidden(Role::Isu))),
        ];
        for (name, edit, want) in cases {
            let mut c = head();
            edit(&mut c);
            assert_eq!(c.validate().err(), *want, "case {name}");
            if want.is_some() {
                assert!(c.encode().is_err(), "case {name}: an invalid config was encoded");
            }
        }
    }

    #[test]
    fn network_changes_are_told_apart_from_other_edits() {
        let a = head();
        let mut b = a.clone();
        b.hostname = "head-x".into();
        b.admin_password = None;
        assert!(!a.network_differs(&b));
        b.head.as_mut().expect("h").pool_end = ip("10.77.0.180");
        assert!(a.network_differs(&b));
        let mut c = isu();
        let d = c.clone();
        c.storage.static_addr = None;
        assert!(c.network_differs(&d));
    }

    #[test]
    fn unknown_version_is_refused() {
        let bytes = isu().encode().expect("valid config");
        assert_eq!(Config::decode(CONFIG_VERSION + 1, &bytes), Err(ConfigError::Version { found: CONFIG_VERSION + 1 }));
    }

    #[test]
    fn truncated_payloads_do_not_decode() {
        let bytes = isu().encode().expect("valid config");
        for len in 0..bytes.len() {
            assert!(Config::decode(CONFIG_VERSION, &bytes[..len]).is_err(), "prefix {len} decoded");
        }
    }

    #[test]
    fn cidr_parsing_and_arithmetic() {
        let c: Ipv4Cidr = "10.77.0.1/24".parse().expect("valid");
        assert_eq!(c.network(), Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 77, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 78, 0, 1)));
        for bad in ["10.77.0.1", "10.77.0.1/33", "10.77.0/24", "x/24", "10.77.0.1/"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn validation_table() {
        let cases: &[(&str, Option<&str>, Option<ConfigError>)] = &[
            ("isu-1", Some("10.77.0.11/24"), None),
            ("isu-1", None, None),
            ("-bad", None, Some(ConfigError::BadHostname("-bad".into()))),
            ("has space", None, Some(ConfigError::BadHostname("has space".into()))),
            ("", None, Some(ConfigError::BadHostname(String::new()))),
            ("isu-1", Some("10.77.0.0/24"), Some(ConfigError::NotHostAddress("10.77.0.0/24".parse().expect("cidr")))),
            (
                "isu-1",
                Some("10.77.0.255/24"),
                Some(ConfigError::NotHostAddress("10.77.0.255/24".parse().expect("cidr"))),
            ),
            ("isu-1", Some("10.77.0.1/31"), Some(ConfigError::BadPrefix(31))),
        ];
        for (host, addr, want) in cases {
            let mut c = Config::new(Role::Isu, host);
            c.storage.static_addr = addr.map(|a| a.parse().expect("cidr in table"));
            assert_eq!(c.validate().err(), *want, "host {host:?} addr {addr:?}");
        }
    }
}
