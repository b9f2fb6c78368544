//! Crash-safe persistence of one sealed record in two slots.
//!
//! A [`SlotStore`] keeps the newest copy of a record (config, epoch, keys)
//! in `<dir>/<name>.a` and `<dir>/<name>.b`. Each write goes to the slot
//! that does NOT hold the newest valid copy, so the newest copy is never
//! touched while a new one is being written.
//!
//! Write steps and what a crash after each leaves behind:
//!
//! 1. write `<slot>.tmp` (fresh, `O_TRUNC`) — crash: a stray or torn `.tmp`;
//!    load ignores and removes it; both slots are intact.
//! 2. `fsync(<slot>.tmp)` — crash: as 1.
//! 3. `rename(<slot>.tmp, <slot>)` — crash: the rename is atomic: the slot
//!    holds the old (older) copy or the complete new one, whose data reached
//!    the disk in step 2.
//! 4. `fsync(dir)` — makes the rename itself durable. Crash before it: the
//!    rename may be lost and the slot holds the older copy; the other slot
//!    still holds the previous newest copy, so load returns old or new.
//!
//! Load reads both slots, keeps those whose record parses (magic, length,
//! CRC32C) and returns the one with the highest generation. A damaged slot
//! is reported so the caller can log it; the next write overwrites it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use opie_proto::record::{Record, RecordError};
use thiserror::Error;

/// Errors of the slot store.
#[derive(Debug, Error)]
pub enum SlotError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// The record to write could not be framed.
    #[error("cannot frame record: {0}")]
    Record(#[from] RecordError),
}

/// A loaded record: its version, generation and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub version: u16,
    pub generation: u64,
    pub payload: Vec<u8>,
}

/// What `load` found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// The newest valid copy, if any slot holds one.
    pub newest: Option<Loaded>,
    /// Slots that exist but do not hold a valid record, with the reason.
    pub damaged: Vec<(PathBuf, RecordError)>,
}

/// Two slots holding one kind of sealed record.
#[derive(Debug, Clone)]
pub struct SlotStore {
    dir: PathBuf,
    name: String,
    magic: [u8; 8],
}

/// The write steps, in order; tests stop a write after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriteStep {
    WriteTemp,
    SyncTemp,
    Rename,
    SyncDir,
}

impl SlotStore {
    pub fn new(dir: impl Into<PathBuf>, name: &str, magic: [u8; 8]) -> Self {
        SlotStore { dir: dir.into(), name: name.to_string(), magic }
    }

    fn slot_paths(&self) -> [PathBuf; 2] {
        [self.dir.join(format!("{}.a", self.name)), self.dir.join(format!("{}.b", self.name))]
    }

    /// Reads both slots and returns the newest valid record. Leftover
    /// `.tmp` files from an interrupted write are removed.
    pub fn load(&self) -> Result<LoadReport, SlotError> {
        let mut report = LoadReport::default();
        for path in self.slot_paths() {
            remove_if_exists(&tmp_path(&path))?;
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SlotError::Io { op: "read", path, source }),
            };
            match Record::parse(&bytes, self.magic) {
                Ok(rec) => {
                    if report.newest.as_ref().is_none_or(|n| rec.generation > n.generation) {
                        report.newest = Some(Loaded {
                            version: rec.version,
                            generation: rec.generation,
                            payload: rec.payload.to_vec(),
                        });
                    }
                }
                Err(e) => report.damaged.push((path, e)),
            }
        }
        Ok(report)
    }

    /// Stores `payload` as the next generation and returns that generation.
    pub fn store(&self, version: u16, payload: &[u8]) -> Result<u64, SlotError> {
        self.store_until(version, payload, WriteStep::SyncDir)
    }

    /// Runs the write up to and including `last`; `store` runs all steps.
    /// Stopping early models a crash at that point.
    pub fn store_until(&self, version: u16, payload: &[u8], last: WriteStep) -> Result<u64, SlotError> {
        let current = self.load()?;
        let [a, b] = self.slot_paths();
        // Overwrite the slot that does not hold the newest valid copy.
        let (generation, target) = match &current.newest {
            None => (1, a),
            Some(newest) => {
                let a_is_newest = slot_generation(&a, self.magic) == Some(newest.generation);
                (newest.generation + 1, if a_is_newest { b } else { a })
            }
        };
        let bytes = Record { magic: self.magic, version, generation, payload }.emit()?;
        let tmp = tmp_path(&target);
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| SlotError::Io { op, path, source }
        };

        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        if last == WriteStep::WriteTemp {
            return Ok(generation);
        }
        file.sync_all().map_err(io("fsync", &tmp))?;
        drop(file);
        if last == WriteStep::SyncTemp {
            return Ok(generation);
        }
        fs::rename(&tmp, &target).map_err(io("rename", &tmp))?;
        if last == WriteStep::Rename {
            return Ok(generation);
        }
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("fsync", &self.dir))?;
        Ok(generation)
    }
}

fn tmp_path(slot: &Path) -> PathBuf {
    let mut name = slot.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn slot_generation(path: &Path, magic: [u8; 8]) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    Record::parse(&bytes, magic).ok().map(|r| r.generation)
}

fn remove_if_exists(path: &Path) -> Result<(), SlotError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(SlotError::Io { op: "remove", path: path.to_path_buf(), source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"OPIETST\0";
    const STEPS: [WriteStep; 4] = [WriteStep::WriteTemp, WriteStep::SyncTemp, WriteStep::Rename, WriteStep::SyncDir];

    fn store(dir: &Path) -> SlotStore {
        SlotStore::new(dir, "config", MAGIC)
    }

    fn newest(s: &SlotStore) -> Option<Vec<u8>> {
        s.load().expect("load").newest.map(|l| l.payload)
    }

    #[test]
    fn empty_store_loads_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = store(dir.path()).load().expect("load");
        assert!(report.newest.is_none() && report.damaged.is_empty());
    }

    #[test]
    fn newest_write_wins_and_generations_grow() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        for (i, payload) in [b"one".as_slice(), b"two", b"three", b"four"].iter().enumerate() {
            assert_eq!(s.store(1, payload).expect("store"), i as u64 + 1);
            assert_eq!(newest(&s).as_deref(), Some(*payload));
        }
    }

    /// A crash after any step of any write leaves the old or the new value.
    #[test]
    fn crash_at_every_step_loads_old_or_new() {
        for history in 0..3usize {
            for step in STEPS {
                let dir = tempfile::tempdir().expect("tempdir");
                let s = store(dir.path());
                for g in 0..history {
                    s.store(1, format!("old-{g}").as_bytes()).expect("store");
                }
                let old = newest(&s);
                s.store_until(1, b"new", step).expect("partial store");
                let got = newest(&s);
                let ok = got.as_deref() == Some(b"new".as_slice()) || got == old;
                assert!(ok, "history {history}, crash after {step:?}: loaded {got:?}, old {old:?}");
                if step >= WriteStep::Rename {
                    assert_eq!(got.as_deref(), Some(b"new".as_slice()));
                }
                // The store keeps working after the crash.
                s.store(1, b"after").expect("store after crash");
                assert_eq!(newest(&s).as_deref(), Some(b"after".as_slice()));
            }
        }
    }

    /// A torn write (power cut with the rename persisted but data lost)
    /// damages one slot; the other still holds the previous copy.
    #[test]
    fn torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        s.store(1, b"first").expect("store");
        s.store(1, b"second").expect("store");
        let b = dir.path().join("config.b");
        let bytes = fs::read(&b).expect("read");
        fs::write(&b, &bytes[..bytes.len() / 2]).expect("tear");
        let report = s.load().expect("load");
        assert_eq!(report.newest.expect("a copy").payload, b"first");
        assert_eq!(report.damaged.len(), 1);
        // The next write goes to the damaged slot, never over the good one.
        s.store(1, b"third").expect("store");
        assert_eq!(newest(&s).as_deref(), Some(b"third".as_slice()));
        let a = fs::read(dir.path().join("config.a")).expect("read a");
        assert_eq!(Record::parse(&a, MAGIC).expect("a intact").payload, b"first");
    }

    #[test]
    fn garbage_in_both_slots_is_reported_not_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("config.a"), b"garbage").expect("write");
        fs::write(dir.path().join("config.b"), vec![0u8; 100]).expect("write");
        let report = store(dir.path()).load().expect("load");
        assert!(report.newest.is_none());
        assert_eq!(report.damaged.len(), 2);
    }
}
