//! Boot parameters and the choice of role at start-up.
//!
//! The kernel command line may preseed a factory image or a test node
//! (DESIGN §1): `opie.role=head|isu`, `opie.hostname=NAME`,
//! `opie.storage_addr=A.B.C.D/LEN`, `opie.storage_iface=IF`,
//! `opie.state=DEVICE` (the state disk), `opie.head=A.B.C.D`,
//! `opie.member_wait=SECS` and `opie.spare_timeout=SECS`. A persisted config always wins over
//! the command line: the preseed only seeds a node that has none yet.

use thiserror::Error;

use crate::config::{Config, ConfigError, Ipv4Cidr, Role};

/// The `opie.*` parameters found on a kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootParams {
    pub role: Option<Role>,
    pub hostname: Option<String>,
    pub storage_addr: Option<Ipv4Cidr>,
    pub storage_iface: Option<String>,
    pub state_device: Option<String>,
    /// The head's storage-net address, when not the default (.1 of the
    /// storage subnet) and not yet learned from a lease.
    pub head: Option<std::net::Ipv4Addr>,
    /// Head: seconds to wait for every member of the group at start-up
    /// before starting it with all but one.
    pub member_wait: Option<u64>,
    /// Head: seconds a member may be gone before a spare replaces it.
    pub spare_timeout: Option<u64>,
}

/// A bad `opie.*` parameter. Other parameters belong to the kernel and are
/// ignored.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BootParamError {
    /// `opie.X` that Opie does not know: a typo must not pass silently.
    #[error(
        "unknown boot parameter {0:?} (known: opie.role, opie.hostname, opie.storage_addr, opie.storage_iface, opie.state, opie.head, opie.member_wait, opie.spare_timeout)"
    )]
    Unknown(String),
    /// A known parameter without `=value`.
    #[error("boot parameter {0} needs a value")]
    MissingValue(String),
    /// A known parameter whose value is invalid.
    #[error("boot parameter {name}: {source}")]
    Invalid { name: String, source: ConfigError },
}

impl BootParams {
    /// Parses the `opie.*` words of a kernel command line.
    pub fn parse(cmdline: &str) -> Result<Self, BootParamError> {
        let mut params = BootParams::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix("opie.") else { continue };
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) if !v.is_empty() => (n, v),
                _ => return Err(BootParamError::MissingValue(word.to_string())),
            };
            let invalid = |source| BootParamError::Invalid { name: format!("opie.{name}"), source };
            match name {
                "role" => params.role = Some(value.parse().map_err(invalid)?),
                "hostname" => {
                    crate::config::validate_hostname(value).map_err(invalid)?;
                    params.hostname = Some(value.to_string());
                }
                "storage_addr" => params.storage_addr = Some(value.parse().map_err(invalid)?),
                "storage_iface" => params.storage_iface = Some(value.to_string()),
                "state" => params.state_device = Some(value.to_string()),
                "member_wait" => params.member_wait = Some(seconds(value).map_err(invalid)?),
                "spare_timeout" => params.spare_timeout = Some(seconds(value).map_err(invalid)?),
                "head" => {
                    let addr = value.parse().map_err(|_| invalid(ConfigError::BadAddress(value.to_string())))?;
                    params.head = Some(addr);
                }
                _ => return Err(BootParamError::Unknown(word.to_string())),
            }
        }
        Ok(params)
    }

    /// The config these parameters preseed, if they name a role.
    pub fn preseed(&self) -> Result<Option<Config>, ConfigError> {
        let Some(role) = self.role else { return Ok(None) };
        let hostname = self.hostname.clone().unwrap_or_else(|| format!("opie-{role}"));
        let mut config = Config::new(role, &hostname);
        if let Some(iface) = &self.storage_iface {
            config.storage.iface = iface.clone();
        }
        if let Some(addr) = self.storage_addr {
            config.set_storage_addr(addr);
        }
        config.validate()?;
        Ok(Some(config))
    }
}

fn seconds(value: &str) -> Result<u64, ConfigError> {
    value.parse().map_err(|_| ConfigError::BadSeconds(value.to_string()))
}

/// The head an ISU reports to: the boot parameter, else the first host of
/// its storage subnet (DESIGN §2: heads are .1 and .2 by default).
pub fn default_head(boot: &BootParams, config: &Config) -> Option<std::net::Ipv4Addr> {
    boot.head.or_else(|| config.storage.static_addr.map(|a| std::net::Ipv4Addr::from(u32::from(a.network()) + 1)))
}

/// Where the running config came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Loaded from the node's state store.
    Stored,
    /// Built from boot parameters; the caller persists it.
    Preseeded,
    /// Neither: factory state, the wizard must run.
    Factory,
}

/// Picks the running config: stored beats preseeded beats factory.
pub fn choose_config(stored: Option<Config>, boot: &BootParams) -> Result<(Config, ConfigSource), ConfigError> {
    if let Some(config) = stored {
        return Ok((config, ConfigSource::Stored));
    }
    if let Some(config) = boot.preseed()? {
        return Ok((config, ConfigSource::Preseeded));
    }
    Ok((Config::new(Role::Unconfigured, "opie"), ConfigSource::Factory))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_ISU: &str =
        "console=ttyS0 quiet opie.role=isu opie.hostname=isu1 opie.state=/dev/vda opie.storage_addr=10.77.0.11/24";

    #[test]
    fn parses_opie_words_and_ignores_the_kernels() {
        let p = BootParams::parse(QEMU_ISU).expect("valid");
        assert_eq!(p.role, Some(Role::Isu));
        assert_eq!(p.hostname.as_deref(), Some("isu1"));
        assert_eq!(p.state_device.as_deref(), Some("/dev/vda"));
        assert_eq!(p.storage_addr, Some("10.77.0.11/24".parse().expect("cidr")));
        let (config, _) = choose_config(None, &p).expect("valid");
        assert_eq!(default_head(&p, &config), Some(std::net::Ipv4Addr::new(10, 77, 0, 1)));
        let q = BootParams::parse("opie.role=isu opie.head=10.77.0.2").expect("valid");
        assert_eq!(default_head(&q, &config), Some(std::net::Ipv4Addr::new(10, 77, 0, 2)));
        assert!(BootParams::parse("opie.head=10.77.0").is_err());
        assert_eq!(BootParams::parse("opie.member_wait=20").expect("valid").member_wait, Some(20));
        assert!(BootParams::parse("opie.member_wait=-1").is_err());
        assert_eq!(BootParams::parse("opie.spare_timeout=30").expect("valid").spare_timeout, Some(30));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(BootParams::parse("opie.rol=isu"), Err(BootParamError::Unknown("opie.rol=isu".into())));
        assert_eq!(BootParams::parse("opie.role"), Err(BootParamError::MissingValue("opie.role".into())));
        assert_eq!(BootParams::parse("opie.role="), Err(BootParamError::MissingValue("opie.role=".into())));
        assert!(matches!(BootParams::parse("opie.role=nas"), Err(BootParamError::Invalid { .. })));
        assert!(matches!(BootParams::parse("opie.storage_addr=10.77.0.300/24"), Err(BootParamError::Invalid { .. })));
        assert!(matches!(BootParams::parse("opie.hostname=-x"), Err(BootParamError::Invalid { .. })));
    }

    #[test]
    fn stored_config_beats_the_command_line() {
        let boot = BootParams::parse(QEMU_ISU).expect("valid");
        let stored = Config::new(Role::Head, "head-a");
        let (config, source) = choose_config(Some(stored.clone()), &boot).expect("valid");
        assert_eq!((config, source), (stored, ConfigSource::Stored));
    }

    #[test]
    fn preseed_seeds_a_blank_node() {
        let boot = BootParams::parse(QEMU_ISU).expect("valid");
        let (config, source) = choose_config(None, &boot).expect("valid");
        assert_eq!(source, ConfigSource::Preseeded);
        assert_eq!(config.role, Role::Isu);
        assert_eq!(config.hostname, "isu1");
        assert_eq!(config.storage.static_addr, Some("10.77.0.11/24".parse().expect("cidr")));
    }

    #[test]
    fn nothing_given_means_factory_state() {
        let (config, source) = choose_config(None, &BootParams::default()).expect("valid");
        assert_eq!(source, ConfigSource::Factory);
        assert_eq!(config.role, Role::Unconfigured);
    }
}
