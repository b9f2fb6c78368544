//! Which ISUs belong to this cluster: pending, adopted, rejected.
//!
//! An ISU that says hello on the control channel with a key the head does
//! not know is *pending*: listed with its serial and key fingerprint, and
//! nothing else happens until an admin adopts it as a RAID member or a
//! spare, or rejects it (DESIGN §3). Entries are keyed by public key, not
//! serial: a serial is a claim anyone can copy, a key is proven by the
//! control-channel handshake. Adopted and rejected entries are persisted
//! (a sealed record on the head's state disk); pending ones live in
//! memory, bounded, since an ISU that is still there says hello again.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::ConfigError;
use crate::ctrl::keys::fingerprint;

/// Kind tag of the adoption record on the state disk.
pub const ADOPTION_MAGIC: [u8; 8] = *b"OPIEADP\0";
/// Layout version of [`Registry`]'s persisted form.
pub const ADOPTION_VERSION: u16 = 1;
/// Most pending ISUs remembered; the oldest is forgotten first, so a flood
/// of made-up keys cannot grow the head's memory.
pub const MAX_PENDING: usize = 256;

/// What an adopted ISU is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Function {
    /// Its export is a member of a RAID group.
    Member,
    /// Its export waits to replace a failed member.
    Spare,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Member => "member",
            Function::Spare => "spare",
        }
    }
}

/// An ISU's standing with this head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    Pending,
    Adopted(Function),
    Rejected,
}

/// One ISU the head knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isu {
    pub serial: String,
    pub public_key: [u8; 32],
    pub standing: Standing,
}

impl Isu {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key)
    }
}

/// Why an adoption request cannot be carried out.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AdoptionError {
    #[error("no pending ISU with serial or key fingerprint {0:?}")]
    NotPending(String),
    #[error("{0:?} matches more than one pending ISU; name it by key fingerprint")]
    Ambiguous(String),
}

/// What seeing an ISU's hello means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: now pending, show it to the admin.
    NewPending,
    StillPending,
    Adopted(Function),
    Rejected,
}

/// All ISUs known to this head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    isus: Vec<Isu>,
}

impl Registry {
    /// Records a hello from `public_key` claiming `serial`.
    pub fn saw(&mut self, serial: &str, public_key: [u8; 32]) -> Seen {
        if let Some(isu) = self.isus.iter_mut().find(|i| i.public_key == public_key) {
            return match isu.standing {
                Standing::Pending => {
                    isu.serial = serial.to_string();
                    Seen::StillPending
                }
                Standing::Adopted(f) => Seen::Adopted(f),
                Standing::Rejected => Seen::Rejected,
            };
        }
        let pending = self.isus.iter().filter(|i| i.standing == Standing::Pending).count();
        if pending >= MAX_PENDING
            && let Some(oldest) = self.isus.iter().position(|i| i.standing == Standing::Pending)
        {
            self.isus.remove(oldest);
        }
        self.isus.push(Isu { serial: serial.to_string(), public_key, standing: Standing::Pending });
        Seen::NewPending
    }

    /// Adopts the pending ISU named by serial or key fingerprint.
    pub fn adopt(&mut self, name: &str, function: Function) -> Result<&Isu, AdoptionError> {
        let index = self.find_pending(name)?;
        self.isus[index].standing = Standing::Adopted(function);
        Ok(&self.isus[index])
    }

    /// Rejects the pending ISU named by serial or key fingerprint.
    pub fn reject(&mut self, name: &str) -> Result<&Isu, AdoptionError> {
        let index = self.find_pending(name)?;
        self.isus[index].standing = Standing::Rejected;
        Ok(&self.isus[index])
    }

    fn find_pending(&self, name: &str) -> Result<usize, AdoptionError> {
        let matches: Vec<usize> = self
            .isus
            .iter()
            .enumerate()
            .filter(|(_, i)| i.standing == Standing::Pending && (i.serial == name || i.fingerprint() == name))
            .map(|(n, _)| n)
            .collect();
        match matches.as_slice() {
            [] => Err(AdoptionError::NotPending(name.to_string())),
            [one] => Ok(*one),
            _ => Err(AdoptionError::Ambiguous(name.to_string())),
        }
    }

    /// Keys the control channel lets in.
    pub fn adopted_keys(&self) -> Vec<[u8; 32]> {
        self.isus.iter().filter(|i| matches!(i.standing, Standing::Adopted(_))).map(|i| i.public_key).collect()
    }

    pub fn isus(&self) -> &[Isu] {
        &self.isus
    }

    /// The persisted form: adopted and rejected ISUs only.
    pub fn encode(&self) -> Result<Vec<u8>, ConfigError> {
        let kept = Registry { isus: self.isus.iter().filter(|i| i.standing != Standing::Pending).cloned().collect() };
        postcard::to_allocvec(&kept).map_err(|e| ConfigError::Decode(e.to_string()))
    }

    pub fn decode(version: u16, payload: &[u8]) -> Result<Self, ConfigError> {
        if version != ADOPTION_VERSION {
            return Err(ConfigError::Version { found: version });
        }
        postcard::from_bytes(payload).map_err(|e| ConfigError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_makes_pending_and_adoption_lets_the_key_in() {
        let mut reg = Registry::default();
        assert_eq!(reg.saw("ISU-1", [1; 32]), Seen::NewPending);
        assert_eq!(reg.saw("ISU-1", [1; 32]), Seen::StillPending);
        assert!(reg.adopted_keys().is_empty());
        reg.adopt("ISU-1", Function::Member).expect("pending");
        assert_eq!(reg.adopted_keys(), vec![[1; 32]]);
        assert_eq!(reg.saw("ISU-1", [1; 32]), Seen::Adopted(Function::Member));
        assert_eq!(reg.adopt("ISU-1", Function::Spare), Err(AdoptionError::NotPending("ISU-1".into())));
    }

    #[test]
    fn a_copied_serial_with_another_key_stays_pending_and_is_ambiguous() {
        let mut reg = Registry::default();
        reg.saw("ISU-1", [1; 32]);
        reg.saw("ISU-1", [2; 32]);
        assert_eq!(reg.adopt("ISU-1", Function::Member), Err(AdoptionError::Ambiguous("ISU-1".into())));
        let fp = fingerprint(&[2; 32]);
        reg.adopt(&fp, Function::Spare).expect("by fingerprint");
        assert_eq!(reg.adopted_keys(), vec![[2; 32]]);
    }

    #[test]
    fn rejected_stays_rejected_and_persistence_drops_pending() {
        let mut reg = Registry::default();
        reg.saw("A", [1; 32]);
        reg.saw("B", [2; 32]);
        reg.saw("C", [3; 32]);
        reg.adopt("A", Function::Member).expect("pending");
        reg.reject("B").expect("pending");
        let back = Registry::decode(ADOPTION_VERSION, &reg.encode().expect("encode")).expect("decode");
        assert_eq!(back.isus().len(), 2);
        let mut back = back;
        assert_eq!(back.saw("B", [2; 32]), Seen::Rejected);
        assert_eq!(back.saw("A", [1; 32]), Seen::Adopted(Function::Member));
        assert_eq!(back.saw("C", [3; 32]), Seen::NewPending);
    }

    #[test]
    fn pending_list_is_bounded() {
        let mut reg = Registry::default();
        reg.saw("keep", [0xff; 32]);
        reg.adopt("keep", Function::Member).expect("pending");
        for n in 0..(MAX_PENDING as u32 + 50) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&n.to_le_bytes());
            reg.saw(&format!("flood-{n}"), key);
        }
        let pending = reg.isus().iter().filter(|i| i.standing == Standing::Pending).count();
        assert_eq!(pending, MAX_PENDING);
        assert_eq!(reg.adopted_keys(), vec![[0xff; 32]], "flood evicted an adopted ISU");
        assert!(reg.isus().iter().all(|i| i.serial != "flood-0"), "oldest pending kept");
    }
}
