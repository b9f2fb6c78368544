//! Changing the running config: checks, confirmation and rollback.
//!
//! Owns the rules for replacing a node's config at run time (DESIGN §12,
//! issue 7): the new config must validate; the role may only be chosen
//! once, on a node in factory state; and a change that touches the network
//! (addresses, subnets, pool: [`Config::network_differs`]) stays on
//! probation until the admin confirms it. Without a confirmation within the
//! window, the previous config comes back. Persisting each config through
//! the slot store, and applying it to the system, is the supervisor's job;
//! this module decides, with the time passed in as a `Duration` since the
//! supervisor started.
//!
//! A change on probation must also roll back when the supervisor dies
//! before the confirmation (crash-only: init respawns it). So the previous
//! config is persisted first, in a [`Probation`] record of its own, then the
//! new config; a confirmation or a rollback settles the record. At start,
//! [`Probation::unsettled`] says whether the loaded config is still on
//! probation and what to restore, for a crash at any point.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{Config, ConfigError, Role};

/// Kind tag of the probation record (see `opie_proto::record`).
pub const PROBATION_MAGIC: [u8; 8] = *b"OPIEPRB\0";
/// Layout version of [`Probation`].
pub const PROBATION_VERSION: u16 = 1;

/// The persisted side of a change on probation: the config to come back
/// to, and the generation it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probation {
    /// Generation of `previous` in the config store.
    pub previous_generation: u64,
    /// `None` once the change is confirmed or rolled back.
    pub previous: Option<Config>,
}

impl Probation {
    /// Encodes the record payload.
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        postcard::to_allocvec(self).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    /// Decodes a record payload of `version`.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, ConfigError> {
        if version != PROBATION_VERSION {
            return Err(ConfigError::Version { found: version });
        }
        postcard::from_bytes(payload).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    /// At start, with the config store's generation `loaded`: the config to
    /// restore, if the loaded one is an unconfirmed change.
    ///
    /// - settled (`previous` is `None`): nothing to do;
    /// - `loaded` is newer than `previous_generation`: the new config (or a
    ///   half-finished rollback) was written and never settled: restore;
    /// - otherwise the crash came before the new config was written: the
    ///   loaded config is the previous one; nothing to restore.
    pub fn unsettled(&self, loaded: u64) -> Option<&Config> {
        self.previous.as_ref().filter(|_| loaded > self.previous_generation)
    }
}

/// How long a network change waits for its confirmation.
pub const CONFIRM_WINDOW: Duration = Duration::from_secs(60);

/// Why a change is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChangeError {
    /// The new config breaks a rule.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// A configured node may not change its role at run time.
    #[error("this node is already configured as {from}; its role cannot change to {to} (factory reset first)")]
    RoleChange { from: Role, to: Role },
    /// The new config would make the node unconfigured again.
    #[error("a config cannot set the role back to unconfigured")]
    Unconfigure,
    /// An earlier network change still waits for its confirmation.
    #[error(
        "the network change of generation {0} still waits for its confirmation; confirm it or let it roll back first"
    )]
    AwaitingConfirmation(u64),
    /// A confirmation for a change that is not waiting (rolled back, or
    /// never needed one).
    #[error("generation {0} is not waiting for a confirmation (it was rolled back or did not need one)")]
    NothingToConfirm(u64),
}

/// A change on probation.
#[derive(Debug, Clone)]
struct Pending {
    previous: Config,
    generation: u64,
    deadline: Duration,
}

/// The running config and any change waiting for its confirmation.
#[derive(Debug, Clone)]
pub struct ConfigChanges {
    running: Config,
    generation: u64,
    pending: Option<Pending>,
    window: Duration,
}

impl ConfigChanges {
    /// Starts from the config loaded at start-up; `generation` is its slot
    /// generation (0 when none is stored).
    pub fn new(running: Config, generation: u64, window: Duration) -> Self {
        ConfigChanges { running, generation, pending: None, window }
    }

    /// How long a network change waits for its confirmation.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The running config and its generation.
    pub fn running(&self) -> (&Config, u64) {
        (&self.running, self.generation)
    }

    /// Checks `new` against the running config. `Ok(true)` means the
    /// change touches the network and will need a confirmation.
    pub fn check(&self, new: &Config) -> Result<bool, ChangeError> {
        if let Some(p) = &self.pending {
            return Err(ChangeError::AwaitingConfirmation(p.generation));
        }
        new.validate()?;
        match (self.running.role, new.role) {
            (_, Role::Unconfigured) => return Err(ChangeError::Unconfigure),
            (Role::Unconfigured, _) => {}
            (from, to) if from != to => return Err(ChangeError::RoleChange { from, to }),
            _ => {}
        }
        Ok(self.running.network_differs(new))
    }

    /// Records that `new`, which passed [`check`](Self::check), is persisted
    /// as `generation`. Returns the confirmation deadline of a network
    /// change.
    pub fn applied(&mut self, new: Config, generation: u64, now: Duration) -> Option<Duration> {
        let previous = std::mem::replace(&mut self.running, new);
        self.generation = generation;
        if !previous.network_differs(&self.running) {
            return None;
        }
        let deadline = now + self.window;
        self.pending = Some(Pending { previous, generation, deadline });
        Some(deadline)
    }

    /// The admin confirmed the change persisted as `generation`.
    pub fn confirm(&mut self, generation: u64) -> Result<(), ChangeError> {
        match &self.pending {
            Some(p) if p.generation == generation => {
                self.pending = None;
                Ok(())
            }
            _ => Err(ChangeError::NothingToConfirm(generation)),
        }
    }

    /// When the change on probation rolls back, if one is.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// The config to restore once the deadline has passed: the caller
    /// persists it and calls [`restored`](Self::restored). Until then the
    /// change stays on probation, so a failed write is retried.
    pub fn due(&self, now: Duration) -> Option<&Config> {
        self.pending.as_ref().filter(|p| now >= p.deadline).map(|p| &p.previous)
    }

    /// The previous config is persisted again, as `generation`.
    pub fn restored(&mut self, generation: u64) {
        if let Some(p) = self.pending.take() {
            self.running = p.previous;
            self.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LanAddr;

    const S: Duration = Duration::from_secs(1);

    fn head() -> Config {
        Config::new(Role::Head, "head-1")
    }

    fn changes(c: Config) -> ConfigChanges {
        ConfigChanges::new(c, 3, CONFIRM_WINDOW)
    }

    #[test]
    fn first_setup_may_choose_a_role_and_needs_confirmation_for_its_network() {
        let mut ch = changes(Config::new(Role::Unconfigured, "opie"));
        assert_eq!(ch.check(&head()), Ok(true));
        assert_eq!(ch.applied(head(), 4, 10 * S), Some(70 * S));
        assert_eq!(ch.running(), (&head(), 4));
        assert_eq!(ch.next_deadline(), Some(70 * S));
        assert_eq!(ch.due(69 * S), None);
        assert_eq!(ch.confirm(3), Err(ChangeError::NothingToConfirm(3)));
        assert_eq!(ch.confirm(4), Ok(()));
        assert_eq!(ch.next_deadline(), None);
        assert_eq!(ch.due(1000 * S), None);
        assert_eq!(ch.confirm(4), Err(ChangeError::NothingToConfirm(4)));
    }

    #[test]
    fn a_leased_isu_changes_no_network_and_needs_no_confirmation() {
        let mut ch = changes(Config::new(Role::Unconfigured, "opie"));
        let isu = Config::new(Role::Isu, "isu-1");
        assert_eq!(ch.check(&isu), Ok(false));
        assert_eq!(ch.applied(isu, 4, S), None);
        assert_eq!(ch.next_deadline(), None);
    }

    #[test]
    fn unconfirmed_network_change_rolls_back_to_the_previous_config() {
        let mut ch = changes(head());
        let mut new = head();
        new.head.as_mut().expect("head").lan =
            LanAddr::Static { addr: "192.168.1.9/24".parse().expect("cidr"), gateway: None };
        assert_eq!(ch.check(&new), Ok(true));
        let deadline = ch.applied(new.clone(), 4, 5 * S).expect("needs confirmation");
        // Another change waits until this one is settled.
        assert_eq!(ch.check(&head()), Err(ChangeError::AwaitingConfirmation(4)));
        assert_eq!(ch.due(deadline - S), None);
        assert_eq!(ch.due(deadline), Some(&head()));
        // The write of the old config failed: still due, retried later.
        assert_eq!(ch.due(deadline + S), Some(&head()));
        ch.restored(5);
        assert_eq!(ch.running(), (&head(), 5));
        assert_eq!(ch.next_deadline(), None);
        assert_eq!(ch.confirm(4), Err(ChangeError::NothingToConfirm(4)));
        assert_eq!(ch.check(&new), Ok(true));
    }

    #[test]
    fn other_edits_need_no_confirmation() {
        let mut ch = changes(head());
        let mut new = head();
        new.hostname = "head-renamed".into();
        new.admin_password = Some(crate::config::PasswordHash::new("password1", [0; 16], 1000));
        assert_eq!(ch.check(&new), Ok(false));
        assert_eq!(ch.applied(new, 4, S), None);
    }

    #[test]
    fn probation_record_round_trips_and_says_what_to_restore() {
        let p = Probation { previous_generation: 4, previous: Some(head()) };
        let bytes = p.encode().expect("encode");
        assert_eq!(Probation::decode(PROBATION_VERSION, &bytes).expect("decode"), p);
        assert!(Probation::decode(PROBATION_VERSION + 1, &bytes).is_err());
        for len in 0..bytes.len() {
            assert!(Probation::decode(PROBATION_VERSION, &bytes[..len]).is_err(), "prefix {len}");
        }
        // Crash before the new config was written: generation 4 loads.
        assert_eq!(p.unsettled(4), None);
        // The new config (5) or a half-done rollback (6) loads: restore.
        assert_eq!(p.unsettled(5), Some(&head()));
        assert_eq!(p.unsettled(6), Some(&head()));
        let settled = Probation { previous_generation: 4, previous: None };
        assert_eq!(settled.unsettled(5), None);
    }

    #[test]
    fn refusals() {
        let ch = changes(head());
        assert_eq!(
            ch.check(&Config::new(Role::Isu, "x")),
            Err(ChangeError::RoleChange { from: Role::Head, to: Role::Isu })
        );
        assert_eq!(ch.check(&Config::new(Role::Unconfigured, "x")), Err(ChangeError::Unconfigure));
        let mut bad = head();
        bad.hostname = "-".into();
        assert!(matches!(ch.check(&bad), Err(ChangeError::Invalid(ConfigError::BadHostname(_)))));
        let unconfigured = changes(Config::new(Role::Unconfigured, "opie"));
        assert_eq!(unconfigured.check(&Config::new(Role::Unconfigured, "opie")), Err(ChangeError::Unconfigure));
    }
}
