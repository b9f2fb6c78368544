//! Persistence of the ISU's granted epoch and reading of fencing keys
//! (DESIGN §5 "Fencing", §9 "ISUs keep ... the epoch").
//!
//! The grant (`opie_core::fence::Grant`) lives in a two-slot sealed record
//! (`crate::slots`, kind `OPIEEPO`, name `epoch`) in the node's state
//! directory. [`EpochStore::store`] returns only after the record and its
//! rename are fsynced: the caller answers a head only after that, so a
//! crash can never forget an epoch that was acted on.

use std::io;
use std::path::{Path, PathBuf};

use opie_core::fence::{EPOCH_MAGIC, EPOCH_VERSION, EpochRecordError, Grant};
use opie_proto::fence::{KEY_LEN, parse_key};
use thiserror::Error;

use crate::slots::{SlotError, SlotStore};

/// Errors of the epoch store and key files.
#[derive(Debug, Error)]
pub enum FenceStoreError {
    /// Reading or writing the slots failed.
    #[error("epoch record: {0}")]
    Slots(#[from] SlotError),
    /// The newest valid record has a layout this firmware cannot read.
    /// Refusing to start is safer than forgetting the epoch.
    #[error("epoch record: {0}")]
    Record(#[from] EpochRecordError),
    /// A key file cannot be read.
    #[error("fencing key {path}: {source}")]
    KeyRead { path: PathBuf, source: io::Error },
    /// A key file holds neither 64 hex digits nor 32 raw bytes.
    #[error("fencing key {0}: expected 64 hex digits or {KEY_LEN} raw bytes")]
    KeyFormat(PathBuf),
}

/// The granted epoch in a state directory.
#[derive(Debug, Clone)]
pub struct EpochStore {
    slots: SlotStore,
}

impl EpochStore {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        EpochStore { slots: SlotStore::new(state_dir, "epoch", EPOCH_MAGIC) }
    }

    /// The persisted grant (None when no epoch was ever granted). Damaged
    /// slots are logged; the other slot still answers.
    pub fn load(&self) -> Result<Option<Grant>, FenceStoreError> {
        let report = self.slots.load()?;
        for (path, why) in &report.damaged {
            log::warn!("epoch slot {} is damaged ({why}); using the other slot", path.display());
        }
        match report.newest {
            None => Ok(None),
            Some(rec) => Ok(Some(Grant::decode(rec.version, &rec.payload)?)),
        }
    }

    /// Persists `grant` durably (temp, fsync, rename, fsync dir).
    pub fn store(&self, grant: &Grant) -> Result<(), FenceStoreError> {
        self.slots.store(EPOCH_VERSION, &grant.encode())?;
        Ok(())
    }
}

/// Reads a fencing key file: 64 hex digits or 32 raw bytes.
pub fn read_key(path: &Path) -> Result<[u8; KEY_LEN], FenceStoreError> {
    let bytes = std::fs::read(path).map_err(|source| FenceStoreError::KeyRead { path: path.to_path_buf(), source })?;
    parse_key(&bytes).ok_or_else(|| FenceStoreError::KeyFormat(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_survive_reopening_and_the_newest_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EpochStore::new(dir.path());
        assert_eq!(store.load().expect("load"), None);
        for (epoch, head) in [(5, "a"), (6, "b"), (9, "a")] {
            store.store(&Grant { epoch, head: head.into() }).expect("store");
        }
        let again = EpochStore::new(dir.path());
        assert_eq!(again.load().expect("load"), Some(Grant { epoch: 9, head: "a".into() }));
    }

    #[test]
    fn key_files_are_read_or_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).expect("write");
        assert_eq!(read_key(&good).expect("key"), [0xab; 32]);
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "not a key").expect("write");
        assert!(matches!(read_key(&bad), Err(FenceStoreError::KeyFormat(_))));
        assert!(matches!(read_key(&dir.path().join("missing")), Err(FenceStoreError::KeyRead { .. })));
    }
}
