//! The lease log on disk: crash-safe append, recovery and compaction.
//!
//! Owns the files `lease.log` and `lease.log.tmp` in the lease server's
//! state directory. The record format is `opie_proto::lease_log`; what to
//! write is decided by `opie_core::lease`. Appends are buffered by
//! [`LeaseStore::append`] and made durable by [`LeaseStore::sync`]
//! (write + fdatasync), which the daemon calls before any reply that
//! depends on them leaves.
//!
//! Compaction ([`LeaseStore::compact`]) replaces the log with a snapshot:
//!
//! 1. write every snapshot entry to `lease.log.tmp` (sequence numbers
//!    continue those of the old log);
//! 2. fsync `lease.log.tmp`;
//! 3. rename `lease.log.tmp` over `lease.log`;
//! 4. fsync the directory, so the rename is durable.
//!
//! Recovery at [`LeaseStore::open`], for each state a crash can leave:
//! - before step 3: `lease.log` is the complete old log; a leftover
//!   `lease.log.tmp` is partial or unreferenced and is deleted;
//! - after step 3: either name may be visible until step 4 is durable, but
//!   both files were complete and fsynced, so either loads fully;
//! - during an append: the tail of `lease.log` may be torn; the reader
//!   loads every whole record before it, the damage is logged, and the file
//!   is cut back to the valid prefix (and fsynced) before anything is
//!   appended, so new records never hide behind garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use opie_proto::lease_log::{self, Damage, Entry};
use thiserror::Error;

/// Name of the log file inside the state directory.
pub const LOG_NAME: &str = "lease.log";
/// Name of the compaction temporary file.
pub const TMP_NAME: &str = "lease.log.tmp";

/// Errors of the lease log store.
#[derive(Debug, Error)]
pub enum LeaseStoreError {
    /// A file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LeaseStoreError + 'a {
    move |source| LeaseStoreError::Io { op, path: path.to_path_buf(), source }
}

/// An open lease log.
#[derive(Debug)]
pub struct LeaseStore {
    dir: PathBuf,
    file: File,
    next_seq: u64,
    /// Records in the file, written or pending.
    records: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
}

/// What opening the log found.
#[derive(Debug)]
pub struct Opened {
    pub store: LeaseStore,
    /// Every entry loaded, oldest first.
    pub entries: Vec<Entry>,
    /// Set when a torn or corrupted tail was cut off.
    pub damage: Option<Damage>,
}

impl LeaseStore {
    /// Opens (creating if needed) the log in `dir`, recovering from any
    /// crash as the module documentation describes.
    pub fn open(dir: &Path) -> Result<Opened, LeaseStoreError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let tmp = dir.join(TMP_NAME);
        match fs::remove_file(&tmp) {
            Ok(()) => log::warn!("lease log: removed {} left by an interrupted compaction", tmp.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LeaseStoreError::Io { op: "remove", path: tmp, source: e }),
        }
        let path = dir.join(LOG_NAME);
        let existed = path.exists();
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io_err("open", &path))?;
        if !existed {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err("read", &path))?;
        let read = lease_log::read(&bytes);
        if let Some(d) = &read.damage {
            log::warn!(
                "lease log {}: loaded {} entries, dropped {} bytes from offset {}: {}",
                path.display(),
                read.entries.len(),
                d.dropped_bytes,
                d.offset,
                d.error
            );
            file.set_len(read.valid_len as u64).map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
        }
        let store = LeaseStore {
            dir: dir.to_path_buf(),
            file,
            next_seq: read.next_seq(),
            records: read.entries.len() as u64,
            pending: Vec::new(),
        };
        Ok(Opened { store, entries: read.entries, damage: read.damage })
    }

    /// Queues an entry; it is durable only after [`LeaseStore::sync`].
    pub fn append(&mut self, entry: &Entry) {
        self.pending.extend_from_slice(&entry.emit(self.next_seq));
        self.next_seq += 1;
        self.records += 1;
    }

    /// Whether entries are queued but not yet durable.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes queued entries and waits until they are on stable storage.
    pub fn sync(&mut self) -> Result<(), LeaseStoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(LOG_NAME);
        self.file.write_all(&self.pending).map_err(io_err("append", &path))?;
        self.file.sync_data().map_err(io_err("fdatasync", &path))?;
        self.pending.clear();
        Ok(())
    }

    /// Records in the log file, including queued ones.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Replaces the log with `snapshot` (steps in the module documentation).
    /// Queued entries are dropped: the snapshot must already include them.
    pub fn compact(&mut self, snapshot: &[Entry]) -> Result<(), LeaseStoreError> {
        let tmp = self.dir.join(TMP_NAME);
        let path = self.dir.join(LOG_NAME);
        let mut bytes = Vec::with_capacity(snapshot.len() * lease_log::RECORD_LEN);
        let first = self.next_seq;
        for (i, e) in snapshot.iter().enumerate() {
            bytes.extend_from_slice(&e.emit(first + i as u64));
        }
        // Steps 1 and 2.
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        // Step 3.
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        // Step 4.
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().read(true).append(true).open(&path).map_err(io_err("open", &path))?;
        self.next_seq = first + snapshot.len() as u64;
        self.records = snapshot.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// Makes a directory's entries (creations, renames) durable.
fn sync_dir(dir: &Path) -> Result<(), LeaseStoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use opie_proto::lease_log::{EntryKind, RECORD_LEN};

    use super::*;

    fn entry(n: u8) -> Entry {
        Entry {
            kind: EntryKind::Lease,
            mac: [2, 0, 0, 0, 0, n],
            addr: Ipv4Addr::new(10, 77, 0, 100 + n),
            until: 1000 + u64::from(n),
        }
    }

    #[test]
    fn appended_entries_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = LeaseStore::open(dir.path()).expect("open");
        assert!(o.entries.is_empty());
        o.store.append(&entry(1));
        o.store.append(&entry(2));
        assert!(o.store.has_pending());
        o.store.sync().expect("sync");
        assert!(!o.store.has_pending());
        drop(o);
        let mut o = LeaseStore::open(dir.path()).expect("reopen");
        assert_eq!(o.entries, vec![entry(1), entry(2)]);
        o.store.append(&entry(3));
        o.store.sync().expect("sync");
        assert_eq!(LeaseStore::open(dir.path()).expect("reopen").entries, vec![entry(1), entry(2), entry(3)]);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = LeaseStore::open(dir.path()).expect("open");
        for n in 1..=3 {
            o.store.append(&entry(n));
        }
        o.store.sync().expect("sync");
        drop(o);
        let path = dir.path().join(LOG_NAME);
        let len = fs::metadata(&path).expect("stat").len();
        OpenOptions::new().write(true).open(&path).expect("open").set_len(len - 5).expect("tear");
        let mut o = LeaseStore::open(dir.path()).expect("reopen");
        assert_eq!(o.entries, vec![entry(1), entry(2)]);
        let d = o.damage.take().expect("damage reported");
        assert_eq!(d.offset, 2 * RECORD_LEN);
        assert_eq!(fs::metadata(&path).expect("stat").len(), 2 * RECORD_LEN as u64, "cut to the valid prefix");
        o.store.append(&entry(4));
        o.store.sync().expect("sync");
        let o = LeaseStore::open(dir.path()).expect("reopen");
        assert_eq!(o.entries, vec![entry(1), entry(2), entry(4)]);
        assert!(o.damage.is_none());
    }

    #[test]
    fn compaction_replaces_the_log_and_leftover_tmp_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = LeaseStore::open(dir.path()).expect("open");
        for n in 1..=10 {
            o.store.append(&entry(n));
        }
        o.store.sync().expect("sync");
        o.store.compact(&[entry(9), entry(10)]).expect("compact");
        assert_eq!(o.store.records(), 2);
        o.store.append(&entry(11));
        o.store.sync().expect("sync");
        drop(o);
        // A crash during a later compaction leaves a partial tmp file.
        fs::write(dir.path().join(TMP_NAME), b"partial").expect("write tmp");
        let o = LeaseStore::open(dir.path()).expect("reopen");
        assert_eq!(o.entries, vec![entry(9), entry(10), entry(11)]);
        assert!(!dir.path().join(TMP_NAME).exists());
    }
}
