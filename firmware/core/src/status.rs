//! The node's status as the supervisor reports it.
//!
//! The supervisor owns one [`StatusReport`] and hands a copy to every local
//! reader (`opie status`, later the console and web page) as a sealed record
//! over its unix socket. This module owns the report's shape, its encoding
//! and its rendering as text for 80-column terminals.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::adoption::Standing;
use crate::boot::ConfigSource;
use crate::config::{ConfigError, Ipv4Cidr, Role};

/// Kind tag of a status record (see `opie_proto::record`).
pub const STATUS_MAGIC: [u8; 8] = *b"OPIESTA\0";
/// Layout version of [`StatusReport`]; bump on any change.
pub const STATUS_VERSION: u16 = 1;

/// Where the node's configuration came from, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOrigin {
    Stored,
    Preseeded,
    #[default]
    Factory,
}

impl From<ConfigSource> for ConfigOrigin {
    fn from(source: ConfigSource) -> Self {
        match source {
            ConfigSource::Stored => ConfigOrigin::Stored,
            ConfigSource::Preseeded => ConfigOrigin::Preseeded,
            ConfigSource::Factory => ConfigOrigin::Factory,
        }
    }
}

/// What the head knows of one ISU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsuStatus {
    pub serial: String,
    pub fingerprint: String,
    pub standing: Standing,
    /// Whether its control channel is up now.
    pub connected: bool,
    /// Its last report, in words ("normal", "disk failure: vdb ...").
    pub reported: Option<String>,
}

/// A snapshot of what the supervisor knows about its node. `Default` is a
/// factory node that knows nothing yet: start-up and tests fill in what
/// they know and take the rest from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub role: Role,
    pub hostname: String,
    pub config_origin: ConfigOrigin,
    pub config_generation: u64,
    pub storage_iface: String,
    pub storage_addr: Option<Ipv4Cidr>,
    pub state_dir: String,
    /// Fingerprint of the node's public key, compared at adoption.
    pub key_fingerprint: String,
    pub uptime_secs: u64,
    /// Head: every ISU it knows (pending, adopted, rejected).
    pub isus: Vec<IsuStatus>,
    /// ISU: the control channel to the head, in words.
    pub head_link: Option<String>,
    /// A node without a static address: its lease, in words.
    pub lease: Option<String>,
    /// ISU: its NBD export, in words.
    pub export: Option<String>,
    /// ISU: its copy of the head's cluster record, in words.
    pub cluster_copy: Option<String>,
    /// Head: its RAID group's start-up, in words.
    pub storage: Option<String>,
    /// Head: the storage-net lease server's counters (exchanges, drops by
    /// reason), in words.
    pub lease_server: Option<String>,
    /// Problems the administrator should see, newest last.
    pub alerts: Vec<String>,
}

impl StatusReport {
    /// Encodes the report as a record payload.
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        postcard::to_allocvec(self).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    /// Decodes a record payload of `version`.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, ConfigError> {
        if version != STATUS_VERSION {
            return Err(ConfigError::Version { found: version });
        }
        postcard::from_bytes(payload).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    /// Renders `key: value` lines, one fact a line, for terminals and tests.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let origin = match self.config_origin {
            ConfigOrigin::Stored => "stored",
            ConfigOrigin::Preseeded => "preseeded from boot parameters",
            ConfigOrigin::Factory => "factory defaults (run the setup wizard)",
        };
        let addr = self.storage_addr.map_or_else(|| "leased (none yet)".to_string(), |a| a.to_string());
        let _ = writeln!(out, "opie {}", self.version);
        let _ = writeln!(out, "role: {}", self.role);
        let _ = writeln!(out, "hostname: {}", self.hostname);
        let _ = writeln!(out, "config: {origin}, generation {}", self.config_generation);
        let _ = writeln!(out, "storage net: {} {addr}", self.storage_iface);
        let _ = writeln!(out, "state dir: {}", self.state_dir);
        let _ = writeln!(out, "node key: {}", self.key_fingerprint);
        let _ = writeln!(out, "uptime: {}s", self.uptime_secs);
        if let Some(lease) = &self.lease {
            let _ = writeln!(out, "lease: {lease}");
        }
        if let Some(counters) = &self.lease_server {
            let _ = writeln!(out, "lease server: {counters}");
        }
        if let Some(storage) = &self.storage {
            let _ = writeln!(out, "storage: {storage}");
        }
        if let Some(export) = &self.export {
            let _ = writeln!(out, "export: {export}");
        }
        if let Some(copy) = &self.cluster_copy {
            let _ = writeln!(out, "cluster copy: {copy}");
        }
        if let Some(link) = &self.head_link {
            let _ = writeln!(out, "head link: {link}");
        }
        for isu in &self.isus {
            let standing = match isu.standing {
                Standing::Pending => "pending adoption".to_string(),
                Standing::Adopted(f) => format!("adopted as {}", f.as_str()),
                Standing::Rejected => "rejected".to_string(),
            };
            let link = if isu.connected { "connected" } else { "not connected" };
            let reported = isu.reported.as_deref().unwrap_or("no report");
            let _ = writeln!(out, "isu: {} key {} {standing}, {link}, {reported}", isu.serial, isu.fingerprint);
        }
        if self.alerts.is_empty() {
            let _ = writeln!(out, "alerts: none");
        } else {
            for alert in &self.alerts {
                let _ = writeln!(out, "alert: {alert}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            role: Role::Isu,
            hostname: "isu1".into(),
            config_origin: ConfigOrigin::Preseeded,
            config_generation: 1,
            storage_iface: "eth0".into(),
            storage_addr: Some("10.77.0.11/24".parse().expect("cidr")),
            state_dir: "/var/lib/opie".into(),
            key_fingerprint: "0a1b-2c3d-4e5f-6a7b-8c9d".into(),
            uptime_secs: 7,
            isus: vec![IsuStatus {
                serial: "ISU-9".into(),
                fingerprint: "aaaa-bbbb-cccc-dddd-eeee".into(),
                standing: Standing::Pending,
                connected: true,
                reported: None,
            }],
            head_link: Some("connected to 10.77.0.1:7780".into()),
            lease_server: Some("4 received, 2 offers, 2 acks, 0 naks, 0 declines, 0 dropped".into()),
            alerts: vec!["state disk /dev/vda was blank and has been formatted".into()],
            ..StatusReport::default()
        }
    }

    #[test]
    fn round_trips() {
        let r = report();
        let bytes = r.encode().expect("encodes");
        assert_eq!(StatusReport::decode(STATUS_VERSION, &bytes).expect("decodes"), r);
        assert!(StatusReport::decode(STATUS_VERSION + 1, &bytes).is_err());
    }

    #[test]
    fn renders_role_and_address_lines() {
        let text = report().render();
        assert!(text.contains("\nrole: isu\n"), "{text}");
        assert!(text.contains("storage net: eth0 10.77.0.11/24"), "{text}");
        assert!(text.contains("alert: state disk"), "{text}");
        assert!(text.contains("isu: ISU-9 key aaaa-bbbb-cccc-dddd-eeee pending adoption, connected"), "{text}");
        assert!(text.contains("head link: connected to 10.77.0.1:7780"), "{text}");
        assert!(text.contains("lease server: 4 received, 2 offers, 2 acks"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    }
}
