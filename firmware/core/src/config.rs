//! The node's typed configuration and its validation.
//!
//! Owns what a node is told by its administrator (role, names, addresses)
//! and the rules that keep it coherent. Persisting it is `opie-sys`'s job
//! (two sealed slots, see `opie_sys::slots`); this module only encodes,
//! decodes and validates. `validate()` runs on every load and before every
//! write, so a config that breaks a rule is never stored.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Factory state: only the serial wizard runs.
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

/// The node's place on the storage network (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNet {
    /// Interface on the storage switch.
    pub iface: String,
    /// A static address (seed 1.7.3 fallback); `None` means leased.
    pub static_addr: Option<Ipv4Cidr>,
}

/// Everything a node's administrator decides. Later issues append fields
/// (and bump [`CONFIG_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub role: Role,
    pub hostname: String,
    pub storage: StorageNet,
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
    /// An address is not of the form a.b.c.d.
    #[error("{0:?} is not an IPv4 address such as 10.77.0.1")]
    BadAddress(String),
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
    /// The config payload does not decode as this version's layout.
    #[error("config payload does not decode: {0}")]
    Decode(String),
    /// The record carries a config version this firmware does not know.
    #[error("config version {found} is not supported (this firmware reads version {CONFIG_VERSION})")]
    Version { found: u16 },
}

impl Config {
    /// A fresh config for `role`, with Opie's defaults.
    pub fn new(role: Role, hostname: &str) -> Self {
        Config {
            role,
            hostname: hostname.to_string(),
            storage: StorageNet { iface: "eth0".to_string(), static_addr: None },
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
        Ok(())
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

    #[test]
    fn encode_decode_round_trip() {
        let c = isu();
        let bytes = c.encode().expect("valid config");
        assert_eq!(Config::decode(CONFIG_VERSION, &bytes).expect("decodes"), c);
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
