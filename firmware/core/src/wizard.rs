//! The serial console's setup wizard, as a state machine without I/O.
//!
//! Owns the questions of first-boot set-up (DESIGN §12, issue 7): role,
//! hostname, then for a head the LAN address (DHCP or static with a
//! gateway), storage subnet, lease pool and which head this is; for an ISU
//! its storage address (leased or static); then the admin password twice,
//! a summary and one save. The same machine re-runs only the network part
//! ([`Wizard::network`]) or only the password ([`Wizard::password`]) from
//! the console menu.
//!
//! Input is one line of text, output the next screen: the prompt with its
//! default in brackets, or an error naming what is wrong followed by the
//! same prompt. `b` or `back` returns to the previous step and keeps every
//! answer given so far (they become the defaults). Reading the terminal,
//! turning echo off for [`Wizard::secret`] steps and sending the finished
//! config to the supervisor are the driver's job (`opie console`). The
//! salt for the password hash is handed in by the driver, from the
//! kernel's random source.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use thiserror::Error;

use crate::config::{
    Config, ConfigError, DEFAULT_STORAGE_SUBNET, HeadNet, Ipv4Cidr, LanAddr, PasswordHash, Role, default_pool,
    nth_host, validate_gateway, validate_hostname, validate_lan, validate_password, validate_pool, validate_subnet,
};

/// Why an answer is refused; the text is shown above the prompt again.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WizardError {
    /// The answer is none of the step's choices.
    #[error("{given:?} is not one of the choices: type {choices}")]
    NotAChoice { given: String, choices: &'static str },
    /// The step has no default and the answer was empty.
    #[error("an answer is needed here: {0}")]
    Required(&'static str),
    /// The lease pool is not written as first-last.
    #[error("{0:?} is not a pool: give first-last, such as 10.77.0.100-10.77.0.199")]
    BadPool(String),
    /// An ISU's static address is one of the heads' default addresses.
    #[error("{0} is a head's address (.1 and .2 of the storage subnet belong to the heads)")]
    HeadsAddress(Ipv4Addr),
    /// The second password differs from the first.
    #[error("the two passwords differ; enter the new password again")]
    PasswordsDiffer,
    /// `back` on the first step of first-boot set-up.
    #[error("this is the first step; there is nothing to go back to")]
    FirstStep,
    /// The answer breaks a config rule.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// What the driver does after a line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Show this screen and read the next line.
    Screen(String),
    /// The admin confirmed the summary: hand this config to the
    /// supervisor. On refusal, show the reason and [`Wizard::screen`].
    Save(Config),
    /// The admin left a menu-started wizard; nothing changes.
    Cancelled,
}

/// Which questions are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything, on a node in factory state.
    FirstBoot,
    /// The network part only, on a configured node.
    Network,
    /// The admin password only.
    Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    Hostname,
    LanMode,
    LanAddr,
    Gateway,
    Subnet,
    Pool,
    ActiveHead,
    StorageMode,
    StorageAddr,
    Password,
    PasswordAgain,
    Summary,
}

/// Answers given so far; `None` means not asked yet.
#[derive(Debug, Clone, Default)]
struct Answers {
    role: Option<Role>,
    hostname: Option<String>,
    lan_static: Option<bool>,
    lan_addr: Option<Ipv4Cidr>,
    gateway: Option<Option<Ipv4Addr>>,
    subnet: Option<Ipv4Cidr>,
    pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// This head's storage address as an offset in the subnet: 1 or 2, or
    /// a custom one kept from the running config (a preseeded address).
    head_number: Option<u32>,
    isu_static: Option<bool>,
    isu_addr: Option<Ipv4Cidr>,
    password: Option<String>,
}

/// The wizard: one step at a time, answers kept across `back`.
#[derive(Clone)]
pub struct Wizard {
    mode: Mode,
    step: Step,
    history: Vec<Step>,
    answers: Answers,
    /// The running config: what is kept of it and where defaults come from.
    base: Config,
    salt: [u8; 16],
    iterations: u32,
}

impl std::fmt::Debug for Wizard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The answers may hold a password in clear.
        f.debug_struct("Wizard").field("mode", &self.mode).field("step", &self.step).finish_non_exhaustive()
    }
}

impl Wizard {
    /// First-boot set-up. `salt` (16 random bytes) and `iterations` are for
    /// the password hash ([`crate::config::PASSWORD_ITERATIONS`] on a node).
    pub fn first_boot(salt: [u8; 16], iterations: u32) -> Self {
        Self::start(Mode::FirstBoot, Config::new(Role::Unconfigured, "opie"), salt, iterations)
    }

    /// Re-runs the network questions of `current`'s role.
    pub fn network(current: &Config) -> Self {
        Self::start(Mode::Network, current.clone(), [0; 16], 0)
    }

    /// Sets a new admin password on `current`.
    pub fn password(current: &Config, salt: [u8; 16], iterations: u32) -> Self {
        Self::start(Mode::Password, current.clone(), salt, iterations)
    }

    fn start(mode: Mode, base: Config, salt: [u8; 16], iterations: u32) -> Self {
        let mut answers = Answers::default();
        if mode != Mode::FirstBoot {
            answers.role = Some(base.role);
            answers.hostname = Some(base.hostname.clone());
            if let Some(head) = &base.head {
                if let LanAddr::Static { addr, gateway } = head.lan {
                    answers.lan_addr = Some(addr);
                    answers.gateway = Some(gateway);
                }
                answers.lan_static = Some(head.lan != LanAddr::Dhcp);
                answers.subnet = Some(head.storage_subnet);
                answers.pool = Some((head.pool_start, head.pool_end));
                answers.head_number = base
                    .storage
                    .static_addr
                    .filter(|a| head.storage_subnet.contains(a.addr))
                    .map(|a| u32::from(a.addr) - u32::from(head.storage_subnet.network()));
            } else {
                answers.isu_static = Some(base.storage.static_addr.is_some());
                answers.isu_addr = base.storage.static_addr;
            }
        }
        let step = match mode {
            Mode::FirstBoot => Step::Role,
            Mode::Network if base.role == Role::Head => Step::LanMode,
            Mode::Network => Step::StorageMode,
            Mode::Password => Step::Password,
        };
        Wizard { mode, step, history: Vec::new(), answers, base, salt, iterations }
    }

    /// Which questions this wizard asks.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether the current answer must not be echoed (a password).
    pub fn secret(&self) -> bool {
        matches!(self.step, Step::Password | Step::PasswordAgain)
    }

    /// The current step's screen.
    pub fn screen(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== Opie {}: step {} - {} ==", self.title(), self.history.len() + 1, self.step_name());
        for line in self.help() {
            let _ = writeln!(out, "{line}");
        }
        let back = if self.history.is_empty() && self.mode == Mode::FirstBoot {
            ""
        } else if self.history.is_empty() {
            " (b = cancel)"
        } else {
            " (b = back)"
        };
        let default = self.default_text().map(|d| format!(" [{d}]")).unwrap_or_default();
        let _ = write!(out, "{}{back}{default}: ", self.prompt());
        out
    }

    /// Feeds one line typed by the admin.
    pub fn input(&mut self, line: &str) -> Reply {
        let answer = line.trim();
        // On password steps too: "b" and "back" are too short to be one.
        if matches!(answer.to_ascii_lowercase().as_str(), "b" | "back") {
            return self.back();
        }
        match self.accept(answer) {
            Ok(Some(config)) => Reply::Save(config),
            Ok(None) => Reply::Screen(self.screen()),
            Err(e) => Reply::Screen(self.error_screen(&e)),
        }
    }

    fn back(&mut self) -> Reply {
        match self.history.pop() {
            Some(step) => {
                self.step = step;
                if step == Step::Password {
                    self.answers.password = None;
                }
                Reply::Screen(self.screen())
            }
            None if self.mode == Mode::FirstBoot => Reply::Screen(self.error_screen(&WizardError::FirstStep)),
            None => Reply::Cancelled,
        }
    }

    /// The error, wrapped to the terminal's width, above the step's screen.
    fn error_screen(&self, error: &WizardError) -> String {
        format!("{}\n{}", wrap(&format!("Error: {error}"), 79), self.screen())
    }

    /// Validates `answer` for the current step and moves on. Returns the
    /// finished config when the admin confirmed the save.
    fn accept(&mut self, answer: &str) -> Result<Option<Config>, WizardError> {
        let default = self.default_text();
        let answer = match (answer.is_empty(), &default) {
            (true, Some(d)) if !self.secret() => d.clone(),
            (true, _) => return Err(WizardError::Required(self.required_what())),
            (false, _) => answer.to_string(),
        };
        let lower = answer.to_ascii_lowercase();
        let a = &mut self.answers;
        match self.step {
            Step::Role => {
                a.role = Some(match lower.as_str() {
                    "head" | "h" => Role::Head,
                    "isu" | "i" => Role::Isu,
                    _ => return Err(WizardError::NotAChoice { given: answer, choices: "head or isu" }),
                })
            }
            Step::Hostname => {
                validate_hostname(&answer)?;
                a.hostname = Some(answer);
            }
            Step::LanMode => a.lan_static = Some(choose(&lower, &answer, "dhcp", "static", "dhcp or static")?),
            Step::LanAddr => {
                let addr: Ipv4Cidr = answer.parse()?;
                validate_lan(LanAddr::Static { addr, gateway: None })?;
                a.lan_addr = Some(addr);
                if a.gateway.flatten().is_some_and(|g| validate_gateway(addr, g).is_err()) {
                    a.gateway = None;
                }
            }
            Step::Gateway => {
                let lan = a.lan_addr.ok_or(WizardError::Required("the LAN address"))?;
                a.gateway = Some(if lower == "none" {
                    None
                } else {
                    let gateway = parse_addr(&answer)?;
                    validate_gateway(lan, gateway)?;
                    Some(gateway)
                });
            }
            Step::Subnet => {
                let subnet = validate_subnet(answer.parse()?)?;
                if let (Some(true), Some(lan)) = (a.lan_static, a.lan_addr)
                    && (lan.contains(subnet.network()) || subnet.contains(lan.network()))
                {
                    let lan = Ipv4Cidr { addr: lan.network(), prefix: lan.prefix };
                    return Err(ConfigError::SubnetsOverlap { lan, storage: subnet }.into());
                }
                if a.pool.is_some_and(|(s, e)| validate_pool(subnet, s, e, nth_host(subnet, 1)).is_err()) {
                    a.pool = None;
                }
                a.subnet = Some(subnet);
            }
            Step::Pool => {
                let subnet = a.subnet.unwrap_or(DEFAULT_STORAGE_SUBNET);
                let (start, end) = parse_pool(&answer)?;
                let own = nth_host(subnet, a.head_number.unwrap_or(1));
                validate_pool(subnet, start, end, own)?;
                a.pool = Some((start, end));
            }
            Step::ActiveHead => {
                let kept = a.head_number.filter(|n| *n > 2);
                a.head_number = Some(match (lower.as_str(), kept) {
                    ("1", _) => 1,
                    ("2", _) => 2,
                    (n, Some(k)) if n == k.to_string() => k,
                    _ => return Err(WizardError::NotAChoice { given: answer, choices: "1 or 2" }),
                })
            }
            Step::StorageMode => {
                a.isu_static = Some(choose(&lower, &answer, "leased", "static", "leased or static")?);
            }
            Step::StorageAddr => {
                let addr: Ipv4Cidr = answer.parse()?;
                if !(8..=30).contains(&addr.prefix) {
                    return Err(ConfigError::BadPrefix(addr.prefix).into());
                }
                if !addr.is_host_address() {
                    return Err(ConfigError::NotHostAddress(addr).into());
                }
                let network = Ipv4Cidr { addr: addr.network(), prefix: addr.prefix };
                if addr.addr == nth_host(network, 1) || addr.addr == nth_host(network, 2) {
                    return Err(WizardError::HeadsAddress(addr.addr));
                }
                a.isu_addr = Some(addr);
            }
            Step::Password => {
                validate_password(&answer)?;
                a.password = Some(answer);
            }
            Step::PasswordAgain => {
                if a.password.as_deref() != Some(answer.as_str()) {
                    a.password = None;
                    self.step = Step::Password;
                    self.history.pop();
                    return Err(WizardError::PasswordsDiffer);
                }
                if self.mode == Mode::Password {
                    return self.finish().map(Some);
                }
            }
            Step::Summary => {
                if !matches!(lower.as_str(), "yes" | "y") {
                    return Err(WizardError::NotAChoice { given: answer, choices: "yes to save, or b to go back" });
                }
                return self.finish().map(Some);
            }
        }
        if let Some(next) = self.next_step() {
            self.history.push(self.step);
            self.step = next;
        }
        Ok(None)
    }

    /// The step after the current one, given the answers so far.
    fn next_step(&self) -> Option<Step> {
        let a = &self.answers;
        let head = a.role == Some(Role::Head);
        let after_network = if self.mode == Mode::Network { Step::Summary } else { Step::Password };
        Some(match self.step {
            Step::Role => Step::Hostname,
            Step::Hostname if head => Step::LanMode,
            Step::Hostname => Step::StorageMode,
            Step::LanMode if a.lan_static == Some(true) => Step::LanAddr,
            Step::LanMode | Step::Gateway => Step::Subnet,
            Step::LanAddr => Step::Gateway,
            Step::Subnet => Step::Pool,
            Step::Pool => Step::ActiveHead,
            Step::ActiveHead => after_network,
            Step::StorageMode if a.isu_static == Some(true) => Step::StorageAddr,
            Step::StorageMode | Step::StorageAddr => after_network,
            Step::Password => Step::PasswordAgain,
            Step::PasswordAgain => Step::Summary,
            Step::Summary => return None,
        })
    }

    /// Builds and validates the config the answers describe.
    fn build(&self) -> Result<Config, WizardError> {
        let a = &self.answers;
        let mut config = match self.mode {
            Mode::FirstBoot => {
                let role = a.role.ok_or(WizardError::Required("the role"))?;
                let hostname = a.hostname.as_deref().ok_or(WizardError::Required("the hostname"))?;
                Config::new(role, hostname)
            }
            Mode::Network | Mode::Password => self.base.clone(),
        };
        if self.mode != Mode::Password {
            if config.role == Role::Head {
                let subnet = a.subnet.unwrap_or(DEFAULT_STORAGE_SUBNET);
                let (pool_start, pool_end) = a.pool.unwrap_or_else(|| default_pool(subnet));
                let lan = match (a.lan_static, a.lan_addr) {
                    (Some(true), Some(addr)) => LanAddr::Static { addr, gateway: a.gateway.flatten() },
                    (Some(true), None) => return Err(WizardError::Required("the LAN address")),
                    _ => LanAddr::Dhcp,
                };
                let lan_iface =
                    config.head.as_ref().map_or_else(|| HeadNet::new(subnet).lan_iface, |h| h.lan_iface.clone());
                config.head = Some(HeadNet { lan_iface, lan, storage_subnet: subnet, pool_start, pool_end });
                let own = nth_host(subnet, a.head_number.unwrap_or(1));
                config.storage.static_addr = Some(Ipv4Cidr { addr: own, prefix: subnet.prefix });
            } else {
                config.storage.static_addr = if a.isu_static == Some(true) { a.isu_addr } else { None };
            }
        }
        if self.mode != Mode::Network {
            let password = a.password.as_deref().ok_or(WizardError::Required("the admin password"))?;
            config.admin_password = Some(PasswordHash::new(password, self.salt, self.iterations));
        }
        config.validate()?;
        Ok(config)
    }

    fn finish(&mut self) -> Result<Config, WizardError> {
        let config = self.build()?;
        if self.mode == Mode::Password {
            // Stay on the confirmation step so a refusal can be retried.
            self.step = Step::PasswordAgain;
        }
        Ok(config)
    }

    fn title(&self) -> &'static str {
        match self.mode {
            Mode::FirstBoot => "setup",
            Mode::Network => "network settings",
            Mode::Password => "admin password",
        }
    }

    fn step_name(&self) -> &'static str {
        match self.step {
            Step::Role => "role",
            Step::Hostname => "hostname",
            Step::LanMode => "LAN address",
            Step::LanAddr => "LAN address",
            Step::Gateway => "LAN gateway",
            Step::Subnet => "storage subnet",
            Step::Pool => "lease pool",
            Step::ActiveHead => "active head",
            Step::StorageMode => "storage address",
            Step::StorageAddr => "storage address",
            Step::Password => "admin password",
            Step::PasswordAgain => "admin password",
            Step::Summary => "summary",
        }
    }

    fn help(&self) -> Vec<String> {
        let subnet = self.answers.subnet.unwrap_or(DEFAULT_STORAGE_SUBNET);
        match self.step {
            Step::Role => vec![
                "A head combines the ISUs' disks into RAID and serves shares to the LAN.".into(),
                "An ISU (storage unit) lends its disks to the heads.".into(),
            ],
            Step::Hostname => vec!["This node's name: letters, digits and '-', up to 63.".into()],
            Step::LanMode => vec!["How the head's LAN (office network) interface gets its address.".into()],
            Step::LanAddr => vec!["The head's LAN address with prefix length, such as 192.168.1.10/24.".into()],
            Step::Gateway => vec!["The LAN's router, inside the LAN subnet; 'none' for no default route.".into()],
            Step::Subnet => vec![
                "The private storage network shared by heads and ISUs, such as 10.77.0.0/24.".into(),
                "Head 1 gets .1 and head 2 gets .2 of it.".into(),
            ],
            Step::Pool => vec![
                format!("Addresses the head leases to ISUs, first-last, inside {subnet}."),
                "The pool must leave out .1 and .2, the heads' addresses.".into(),
            ],
            Step::ActiveHead => {
                let mut lines = vec![
                    format!("1 = head 1, active at first start, storage address {}", nth_host(subnet, 1)),
                    format!("2 = head 2, passive (takes over), storage address {}", nth_host(subnet, 2)),
                ];
                if let Some(n) = self.answers.head_number.filter(|n| *n > 2) {
                    lines.push(format!("{n} = keep this head's current storage address {}", nth_host(subnet, n)));
                }
                lines
            }
            Step::StorageMode => vec![
                "'leased': the active head hands this ISU an address (recommended).".into(),
                "'static': set one here; it works without any lease server.".into(),
            ],
            Step::StorageAddr => {
                vec!["This ISU's storage address with prefix length, such as 10.77.0.11/24.".into()]
            }
            Step::Password => vec![
                format!(
                    "The admin password for this console and the web page, {} characters",
                    crate::config::MIN_PASSWORD_LEN
                ),
                "or more. It is not shown as you type.".into(),
            ],
            Step::PasswordAgain => vec!["Type the same password again.".into()],
            Step::Summary => self.summary(),
        }
    }

    fn prompt(&self) -> &'static str {
        match self.step {
            Step::Role => "Role: head or isu",
            Step::Hostname => "Hostname",
            Step::LanMode => "LAN address: dhcp or static",
            Step::LanAddr => "LAN address",
            Step::Gateway => "Gateway",
            Step::Subnet => "Storage subnet",
            Step::Pool => "Lease pool",
            Step::ActiveHead => "This head is head 1 or 2",
            Step::StorageMode => "Storage address: leased or static",
            Step::StorageAddr => "Storage address",
            Step::Password => "New admin password",
            Step::PasswordAgain => "Admin password again",
            Step::Summary => "Save these settings",
        }
    }

    fn required_what(&self) -> &'static str {
        match self.step {
            Step::LanAddr => "type the LAN address, such as 192.168.1.10/24",
            Step::StorageAddr => "type the storage address, such as 10.77.0.11/24",
            Step::Password | Step::PasswordAgain => "there is no default password",
            _ => "type one of the choices",
        }
    }

    /// The default shown in brackets and taken for an empty answer.
    fn default_text(&self) -> Option<String> {
        let a = &self.answers;
        let subnet = a.subnet.unwrap_or(DEFAULT_STORAGE_SUBNET);
        match self.step {
            Step::Role => Some(a.role.map_or("isu", Role::as_str).to_string()),
            Step::Hostname => {
                Some(a.hostname.clone().unwrap_or_else(|| format!("opie-{}", a.role.map_or("node", Role::as_str))))
            }
            Step::LanMode => Some(if a.lan_static == Some(true) { "static" } else { "dhcp" }.into()),
            Step::LanAddr => a.lan_addr.map(|c| c.to_string()),
            Step::Gateway => match (a.gateway, a.lan_addr) {
                (Some(Some(g)), _) => Some(g.to_string()),
                (Some(None), _) => Some("none".into()),
                (None, Some(lan)) => {
                    let first = nth_host(Ipv4Cidr { addr: lan.network(), prefix: lan.prefix }, 1);
                    Some(if first == lan.addr { "none".into() } else { first.to_string() })
                }
                (None, None) => None,
            },
            Step::Subnet => Some(subnet.to_string()),
            Step::Pool => {
                let (s, e) = a.pool.unwrap_or_else(|| default_pool(subnet));
                Some(format!("{s}-{e}"))
            }
            Step::ActiveHead => Some(a.head_number.unwrap_or(1).to_string()),
            Step::StorageMode => Some(if a.isu_static == Some(true) { "static" } else { "leased" }.into()),
            Step::StorageAddr => a.isu_addr.map(|c| c.to_string()),
            Step::Password | Step::PasswordAgain => None,
            Step::Summary => Some("yes".into()),
        }
    }

    fn summary(&self) -> Vec<String> {
        let a = &self.answers;
        let mut lines = Vec::new();
        let role = a.role.unwrap_or(self.base.role);
        lines.push(format!("  Role:             {role}"));
        lines.push(format!("  Hostname:         {}", a.hostname.as_deref().unwrap_or(&self.base.hostname)));
        if role == Role::Head {
            let subnet = a.subnet.unwrap_or(DEFAULT_STORAGE_SUBNET);
            let lan = match (a.lan_static, a.lan_addr) {
                (Some(true), Some(addr)) => match a.gateway.flatten() {
                    Some(g) => format!("{addr}, gateway {g}"),
                    None => format!("{addr}, no gateway"),
                },
                _ => "DHCP".into(),
            };
            let (s, e) = a.pool.unwrap_or_else(|| default_pool(subnet));
            let n = a.head_number.unwrap_or(1);
            let which = match n {
                1 => "head 1 (active at first start)".to_string(),
                2 => "head 2 (passive)".to_string(),
                _ => "storage address kept".to_string(),
            };
            lines.push(format!("  LAN:              {lan}"));
            lines.push(format!("  Storage subnet:   {subnet}"));
            lines.push(format!("  Lease pool:       {s} - {e}"));
            lines.push(format!("  This head:        {which}, {}/{}", nth_host(subnet, n), subnet.prefix));
        } else {
            let addr = match (a.isu_static, a.isu_addr) {
                (Some(true), Some(addr)) => addr.to_string(),
                _ => "leased from the active head".into(),
            };
            lines.push(format!("  Storage address:  {addr}"));
        }
        let password = if self.mode == Mode::Network { "unchanged" } else { "set (not shown)" };
        lines.push(format!("  Admin password:   {password}"));
        lines.push(String::new());
        lines.push("A network change must be confirmed after saving, or it is undone.".into());
        lines
    }
}

/// One of two words (or their first letters): `false` for the first.
fn choose(lower: &str, given: &str, first: &str, second: &str, choices: &'static str) -> Result<bool, WizardError> {
    if lower == first || lower == &first[..1] {
        Ok(false)
    } else if lower == second || lower == &second[..1] {
        Ok(true)
    } else {
        Err(WizardError::NotAChoice { given: given.to_string(), choices })
    }
}

/// Breaks `text` into lines of at most `width` characters at spaces (a
/// longer word is cut), each ending in a newline.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.len() > width {
            let rest = line.split_off(width);
            out.push_str(&line);
            out.push('\n');
            line = rest;
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn parse_addr(text: &str) -> Result<Ipv4Addr, WizardError> {
    text.parse().map_err(|_| ConfigError::BadAddress(text.to_string()).into())
}

fn parse_pool(text: &str) -> Result<(Ipv4Addr, Ipv4Addr), WizardError> {
    let bad = || WizardError::BadPool(text.to_string());
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start = start.trim().parse().map_err(|_| bad())?;
    let end = end.trim().parse().map_err(|_| bad())?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: [u8; 16] = [9; 16];
    /// Few rounds keep the tests fast; the node uses PASSWORD_ITERATIONS.
    const ROUNDS: u32 = crate::config::MIN_PASSWORD_ITERATIONS;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("address in test")
    }

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("cidr in test")
    }

    /// Feeds lines; every reply but the last must be a screen.
    fn feed(w: &mut Wizard, lines: &[&str]) -> Reply {
        let mut last = Reply::Screen(w.screen());
        for (i, line) in lines.iter().enumerate() {
            assert!(matches!(last, Reply::Screen(_)), "line {i} {line:?} after {last:?}");
            last = w.input(line);
        }
        last
    }

    fn screen(reply: &Reply) -> &str {
        match reply {
            Reply::Screen(s) => s,
            other => panic!("expected a screen, got {other:?}"),
        }
    }

    fn saved(reply: Reply) -> Config {
        match reply {
            Reply::Save(c) => c,
            other => panic!("expected a save, got {other:?}"),
        }
    }

    /// Feeds one wrong answer and checks the error names the problem and
    /// the same step's prompt comes back.
    fn refuses(w: &mut Wizard, line: &str, needle: &str) {
        let before = w.screen();
        let reply = w.input(line);
        let text = screen(&reply);
        assert!(text.starts_with("Error: "), "{line:?} accepted:\n{text}");
        let error: String = text[..text.len() - before.len()].split('\n').collect::<Vec<_>>().join(" ");
        assert!(error.contains(needle), "error for {line:?} does not say {needle:?}:\n{text}");
        assert!(text.ends_with(&before), "{line:?} moved on:\n{text}");
    }

    #[test]
    fn head_with_defaults_and_dhcp() {
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        let c = saved(feed(&mut w, &["head", "head-1", "", "", "", "", "secret-pw", "secret-pw", ""]));
        assert_eq!(c.role, Role::Head);
        assert_eq!(c.hostname, "head-1");
        let h = c.head.as_ref().expect("head net");
        assert_eq!(h.lan, LanAddr::Dhcp);
        assert_eq!(h.storage_subnet, cidr("10.77.0.0/24"));
        assert_eq!((h.pool_start, h.pool_end), (ip("10.77.0.100"), ip("10.77.0.199")));
        assert_eq!(c.storage.static_addr, Some(cidr("10.77.0.1/24")));
        let hash = c.admin_password.as_ref().expect("password");
        assert!(hash.verify("secret-pw") && !hash.verify("secret-p"));
        assert_eq!((hash.salt, hash.iterations), (SALT, ROUNDS));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn head_with_static_lan_and_every_wrong_answer() {
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        assert!(w.screen().contains("Role: head or isu [isu]: "), "{}", w.screen());
        refuses(&mut w, "b", "first step");
        refuses(&mut w, "nas", "\"nas\" is not one of the choices: type head or isu");
        feed(&mut w, &["H"]);
        refuses(&mut w, "-head", "hostname \"-head\"");
        refuses(&mut w, "head one", "hostname");
        refuses(&mut w, &"x".repeat(64), "hostname");
        assert!(w.screen().contains("Hostname (b = back) [opie-head]: "), "{}", w.screen());
        feed(&mut w, &["head-1"]);
        refuses(&mut w, "wifi", "dhcp or static");
        feed(&mut w, &["static"]);
        assert!(w.screen().ends_with("LAN address (b = back): "), "no default LAN address:\n{}", w.screen());
        refuses(&mut w, "", "type the LAN address");
        refuses(&mut w, "192.168.1.10", "not an IPv4 address with prefix");
        refuses(&mut w, "192.168.1.300/24", "not an IPv4 address with prefix");
        refuses(&mut w, "192.168.1.10/33", "not an IPv4 address with prefix");
        refuses(&mut w, "192.168.1.10/31", "LAN prefix /31");
        refuses(&mut w, "192.168.1.0/24", "network or broadcast");
        refuses(&mut w, "192.168.1.255/24", "network or broadcast");
        feed(&mut w, &["192.168.1.10/24"]);
        assert!(w.screen().contains("Gateway (b = back) [192.168.1.1]: "), "{}", w.screen());
        refuses(&mut w, "10.0.0.1", "gateway 10.0.0.1 is outside the LAN subnet 192.168.1.0/24");
        refuses(&mut w, "192.168.1.255", "network or broadcast");
        refuses(&mut w, "192.168.1.10", "own LAN address");
        refuses(&mut w, "router", "not an IPv4 address");
        feed(&mut w, &["192.168.1.254"]);
        refuses(&mut w, "10.77.0.5/24", "not a network address: the subnet is 10.77.0.0/24");
        refuses(&mut w, "10.77.0.0/30", "prefix /30");
        refuses(&mut w, "192.168.0.0/16", "overlaps");
        refuses(&mut w, "10.77.0.0", "not an IPv4 address with prefix");
        feed(&mut w, &["10.50.0.0/24"]);
        assert!(w.screen().contains("[10.50.0.100-10.50.0.199]"), "pool default follows the subnet:\n{}", w.screen());
        refuses(&mut w, "10.50.0.100", "not a pool");
        refuses(&mut w, "10.50.0.100-x", "not a pool");
        refuses(&mut w, "10.50.0.100-10.50.1.20", "outside the storage subnet");
        refuses(&mut w, "10.50.0.0-10.50.0.20", "network or broadcast");
        refuses(&mut w, "10.50.0.200-10.50.0.255", "network or broadcast");
        refuses(&mut w, "10.50.0.150-10.50.0.120", "after its end");
        refuses(&mut w, "10.50.0.1-10.50.0.20", "contains 10.50.0.1");
        refuses(&mut w, "10.50.0.2-10.50.0.20", "contains 10.50.0.2");
        feed(&mut w, &["10.50.0.10 - 10.50.0.90"]);
        refuses(&mut w, "3", "1 or 2");
        refuses(&mut w, "active", "1 or 2");
        feed(&mut w, &["2"]);
        refuses(&mut w, "", "no default password");
        refuses(&mut w, "short", "at least 8 characters");
        feed(&mut w, &["long enough"]);
        assert!(w.secret());
        let reply = w.input("long enuff");
        let text = screen(&reply);
        assert!(
            text.contains("the two passwords differ") && text.ends_with("New admin password (b = back): "),
            "{text}"
        );
        feed(&mut w, &["long enough", "long enough"]);
        assert!(!w.secret());
        let summary = w.screen();
        for want in [
            "Role:             head",
            "Hostname:         head-1",
            "LAN:              192.168.1.10/24, gateway 192.168.1.254",
            "Storage subnet:   10.50.0.0/24",
            "Lease pool:       10.50.0.10 - 10.50.0.90",
            "This head:        head 2 (passive), 10.50.0.2/24",
            "Admin password:   set (not shown)",
        ] {
            assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
        }
        assert!(!summary.contains("long enough"), "password shown:\n{summary}");
        assert!(summary.ends_with("Save these settings (b = back) [yes]: "), "{summary}");
        refuses(&mut w, "maybe", "yes to save");
        let c = saved(w.input("yes"));
        let h = c.head.as_ref().expect("head net");
        assert_eq!(h.lan, LanAddr::Static { addr: cidr("192.168.1.10/24"), gateway: Some(ip("192.168.1.254")) });
        assert_eq!(h.storage_subnet, cidr("10.50.0.0/24"));
        assert_eq!((h.pool_start, h.pool_end), (ip("10.50.0.10"), ip("10.50.0.90")));
        assert_eq!(c.storage.static_addr, Some(cidr("10.50.0.2/24")));
        assert!(c.admin_password.as_ref().expect("password").verify("long enough"));
    }

    #[test]
    fn isu_leased_and_static() {
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        let c = saved(feed(&mut w, &["isu", "", "", "password1", "password1", "y"]));
        assert_eq!((c.role, c.hostname.as_str(), c.storage.static_addr), (Role::Isu, "opie-isu", None));
        assert!(c.head.is_none());

        let mut w = Wizard::first_boot(SALT, ROUNDS);
        feed(&mut w, &["i", "isu-7"]);
        refuses(&mut w, "fixed", "leased or static");
        feed(&mut w, &["s"]);
        refuses(&mut w, "", "type the storage address");
        refuses(&mut w, "10.77.0.11/31", "prefix /31");
        refuses(&mut w, "10.77.0.0/24", "network or broadcast");
        refuses(&mut w, "10.77.0.1/24", "10.77.0.1 is a head's address");
        refuses(&mut w, "10.77.0.2/24", "10.77.0.2 is a head's address");
        let c = saved(feed(&mut w, &["10.77.0.11/24", "password1", "password1", "yes"]));
        assert_eq!(c.storage.static_addr, Some(cidr("10.77.0.11/24")));
        assert!(w.screen().contains("Storage address:  10.77.0.11/24"), "{}", w.screen());
    }

    #[test]
    fn back_keeps_earlier_answers_and_they_become_defaults() {
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        feed(&mut w, &["head", "head-9", "static", "192.168.5.10/24", "none"]);
        // Back to the gateway, the LAN address, the mode, the hostname.
        assert!(screen(&w.input("b")).contains("Gateway (b = back) [none]: "));
        assert!(screen(&w.input("back")).contains("LAN address (b = back) [192.168.5.10/24]: "));
        assert!(screen(&w.input("B")).contains("[static]: "));
        assert!(screen(&w.input("b")).contains("Hostname (b = back) [head-9]: "));
        assert!(screen(&w.input("b")).contains("Role: head or isu [head]: "));
        // Accepting every kept answer goes forward to the same place.
        let reply = feed(&mut w, &["", "", "", "", ""]);
        assert!(screen(&reply).contains("Storage subnet (b = back) [10.77.0.0/24]: "), "{reply:?}");
        // Going back from the password confirmation asks for it anew.
        feed(&mut w, &["", "", "1", "password1"]);
        assert!(screen(&w.input("b")).ends_with("New admin password (b = back): "));
        // Changing role on the way back drops the head questions.
        for _ in 0..20 {
            if w.screen().contains("Role: head or isu") {
                break;
            }
            w.input("b");
        }
        let c = saved(feed(&mut w, &["isu", "", "", "password2", "password2", ""]));
        assert_eq!((c.role, c.hostname.as_str()), (Role::Isu, "head-9"));
        assert!(c.head.is_none() && c.storage.static_addr.is_none());
    }

    #[test]
    fn changing_the_subnet_resets_a_pool_that_no_longer_fits() {
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        feed(&mut w, &["head", "h1", "dhcp", "10.1.0.0/24", "10.1.0.20-10.1.0.30"]);
        w.input("b");
        assert!(screen(&w.input("b")).contains("[10.1.0.0/24]"));
        let reply = w.input("10.2.0.0/28");
        assert!(screen(&reply).contains("[10.2.0.3-10.2.0.14]"), "{reply:?}");
        let c = saved(feed(&mut w, &["", "", "password1", "password1", "yes"]));
        let h = c.head.expect("head net");
        assert_eq!((h.pool_start, h.pool_end), (ip("10.2.0.3"), ip("10.2.0.14")));
    }

    #[test]
    fn network_rerun_keeps_everything_else() {
        let mut first = Wizard::first_boot(SALT, ROUNDS);
        let base = saved(feed(&mut first, &["head", "head-1", "", "", "", "", "password1", "password1", "yes"]));
        let mut w = Wizard::network(&base);
        assert!(w.screen().contains("network settings: step 1"), "{}", w.screen());
        assert!(w.screen().contains("(b = cancel) [dhcp]"), "{}", w.screen());
        refuses(&mut w, "x", "dhcp or static");
        let reply = feed(&mut w, &["static", "192.168.7.2/24", "", "", "10.77.0.50-10.77.0.60", "1"]);
        let summary = screen(&reply);
        assert!(summary.contains("Admin password:   unchanged"), "{summary}");
        let c = saved(w.input("yes"));
        assert_eq!(c.admin_password, base.admin_password);
        assert_eq!(c.hostname, "head-1");
        assert!(base.network_differs(&c));
        let h = c.head.expect("head net");
        assert_eq!(h.lan, LanAddr::Static { addr: cidr("192.168.7.2/24"), gateway: Some(ip("192.168.7.1")) });
        assert_eq!((h.pool_start, h.pool_end), (ip("10.77.0.50"), ip("10.77.0.60")));

        // An ISU's network part is its storage address; b on step 1 cancels.
        let isu = Config::new(Role::Isu, "isu-1");
        let mut w = Wizard::network(&isu);
        assert_eq!(w.input("b"), Reply::Cancelled);
        let mut w = Wizard::network(&isu);
        let c = saved(feed(&mut w, &["static", "10.77.0.12/24", "yes"]));
        assert_eq!(c.storage.static_addr, Some(cidr("10.77.0.12/24")));
        assert_eq!(c.admin_password, None);
    }

    #[test]
    fn network_rerun_starts_from_the_running_answers() {
        let mut base = Config::new(Role::Head, "head-2");
        base.set_storage_addr(cidr("10.60.0.2/24"));
        base.head.as_mut().expect("head").lan = LanAddr::Static { addr: cidr("172.16.0.5/16"), gateway: None };
        let mut w = Wizard::network(&base);
        assert!(w.screen().contains("[static]"));
        let reply = feed(&mut w, &["", "", "", "", "", ""]);
        let summary = screen(&reply);
        assert!(summary.contains("172.16.0.5/16, no gateway"), "{summary}");
        assert!(summary.contains("head 2 (passive), 10.60.0.2/24"), "{summary}");
        let c = saved(w.input(""));
        assert!(!base.network_differs(&c), "unchanged answers changed the network");
    }

    #[test]
    fn network_rerun_keeps_a_custom_head_address_unless_changed() {
        let mut base = Config::new(Role::Head, "head-1");
        base.set_storage_addr(cidr("10.77.0.5/24"));
        let mut w = Wizard::network(&base);
        let reply = feed(&mut w, &["", "", ""]);
        let text = screen(&reply);
        assert!(text.contains("5 = keep this head's current storage address 10.77.0.5"), "{text}");
        assert!(text.ends_with("This head is head 1 or 2 (b = back) [5]: "), "{text}");
        refuses(&mut w, "4", "type 1 or 2");
        let summary = screen(&w.input("")).to_string();
        assert!(summary.contains("This head:        storage address kept, 10.77.0.5/24"), "{summary}");
        let c = saved(w.input("yes"));
        assert!(!base.network_differs(&c), "the custom address changed");
        // Choosing head 2 moves it.
        let mut w = Wizard::network(&base);
        let c = saved(feed(&mut w, &["", "", "", "2", "yes"]));
        assert_eq!(c.storage.static_addr, Some(cidr("10.77.0.2/24")));
    }

    #[test]
    fn password_reset() {
        let base = Config::new(Role::Isu, "isu-1");
        let mut w = Wizard::password(&base, SALT, ROUNDS);
        assert!(w.secret());
        assert_eq!(w.mode(), Mode::Password);
        refuses(&mut w, "1234567", "at least 8");
        refuses(&mut w, "bad\u{7}password", "control characters");
        feed(&mut w, &["new password"]);
        let reply = w.input("new passw0rd");
        assert!(screen(&reply).contains("the two passwords differ"));
        let c = saved(feed(&mut w, &["new password", "new password"]));
        assert!(c.admin_password.as_ref().expect("set").verify("new password"));
        assert_eq!(Config { admin_password: None, ..c }, base);
        let mut w = Wizard::password(&base, SALT, ROUNDS);
        assert_eq!(w.input("back"), Reply::Cancelled);
    }

    #[test]
    fn long_errors_wrap_at_79_columns() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc\n");
        assert_eq!(wrap("abcdefghij", 4), "abcd\nefgh\nij\n");
        let mut w = Wizard::first_boot(SALT, ROUNDS);
        w.input("head");
        let reply = w.input(&"-".repeat(200));
        assert!(screen(&reply).lines().all(|l| l.len() <= 79), "{reply:?}");
    }

    #[test]
    fn screens_fit_a_dumb_80x24_terminal() {
        let scripts: &[&[&str]] = &[
            &["head", "head-1", "static", "192.168.1.10/24", "", "", "", "2", "password1", "password1"],
            &["isu", "isu-1", "static", "10.77.0.11/24", "password1", "password1"],
        ];
        for script in scripts {
            let mut w = Wizard::first_boot(SALT, ROUNDS);
            let mut screens = vec![w.screen()];
            for line in *script {
                screens.push(screen(&w.input(line)).to_string());
                // An error screen too.
                if let Reply::Screen(s) = w.clone().input("\u{1}") {
                    screens.push(s);
                }
            }
            for s in &screens {
                assert!(s.lines().count() <= 23, "more than 23 lines:\n{s}");
                assert!(s.lines().all(|l| l.len() < 80 && l.is_ascii()), "line too wide or not ASCII:\n{s}");
            }
        }
    }
}
