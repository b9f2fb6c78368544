//! The lease log: the on-disk history of the lease server's bindings.
//!
//! Owns the byte layout of the log file and its reader; `opie-sys` appends,
//! fsyncs and compacts the file, `opie_core::lease` decides what to write
//! and replays what is read. The file is a plain sequence of sealed records
//! ([`crate::record`]) with magic [`MAGIC`]; the record's generation is a
//! sequence number that rises by one per entry, so a reader can tell a
//! record that belongs to this file from one left over from an older one.
//!
//! Payload layout, version 1 (integers big-endian):
//!
//! ```text
//! offset  size  field
//!      0     1  kind    1 = lease, 2 = release, 3 = decline
//!      1     6  mac     client hardware address
//!      7     4  addr    IPv4 address
//!     11     8  until   unix seconds: lease expiry (lease), time of
//!                       release (release), end of quarantine (decline)
//! ```
//!
//! Reading stops at the first record that is torn, corrupted or out of
//! sequence: everything before it is loaded and [`LogRead::damage`] says
//! what was dropped, so the caller can log it and cut the file there
//! before appending again.

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::record::{self, HEADER_LEN, MAX_PAYLOAD, Record, RecordError, TRAILER_LEN};

/// Magic of every lease log record.
pub const MAGIC: [u8; 8] = *b"OPIELSE\0";
/// Payload format version written by this code.
pub const VERSION: u16 = 1;
/// Bytes of one entry's payload.
pub const PAYLOAD_LEN: usize = 19;
/// Bytes of one complete record in the file.
pub const RECORD_LEN: usize = HEADER_LEN + PAYLOAD_LEN + TRAILER_LEN;

/// A client hardware (Ethernet) address.
pub type Mac = [u8; 6];

/// What happened to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `mac` holds `addr` until `until`.
    Lease,
    /// `mac` gave `addr` back at `until`; it stays the MAC's preferred
    /// address but is free for others.
    Release,
    /// `mac` reported `addr` in use by someone else; nobody gets it before
    /// `until`.
    Decline,
}

/// One log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub mac: Mac,
    pub addr: Ipv4Addr,
    /// Unix seconds, meaning set by `kind`.
    pub until: u64,
}

/// Why a record in the log was not loaded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LogError {
    /// The record framing is torn or corrupted.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record has a payload version this code does not know.
    #[error("lease log record version {0} is not supported")]
    Version(u16),
    /// The payload has the wrong size for its version.
    #[error("lease log payload of {0} bytes, expected {PAYLOAD_LEN}")]
    PayloadLength(usize),
    /// The kind byte is unknown.
    #[error("unknown lease log entry kind {0}")]
    Kind(u8),
    /// The sequence number does not follow the previous record's.
    #[error("lease log sequence {found} where {expected} was expected")]
    Sequence { found: u64, expected: u64 },
}

/// Where and why reading stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first byte not loaded.
    pub offset: usize,
    /// Bytes from `offset` to the end of the file, all dropped.
    pub dropped_bytes: usize,
    /// What was wrong with the record at `offset`.
    pub error: LogError,
}

/// The result of reading a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Sequence number of the first entry (0 for an empty file).
    pub first_seq: u64,
    /// Length of the valid prefix; the file should be cut to this before
    /// anything is appended.
    pub valid_len: usize,
    /// Present when bytes after `valid_len` were dropped.
    pub damage: Option<Damage>,
}

impl LogRead {
    /// Sequence number the next appended entry must carry.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }
}

impl Entry {
    /// Encodes the entry as one complete record with sequence `seq`.
    pub fn emit(&self, seq: u64) -> Vec<u8> {
        let mut p = [0u8; PAYLOAD_LEN];
        p[0] = match self.kind {
            EntryKind::Lease => 1,
            EntryKind::Release => 2,
            EntryKind::Decline => 3,
        };
        p[1..7].copy_from_slice(&self.mac);
        p[7..11].copy_from_slice(&self.addr.octets());
        p[11..19].copy_from_slice(&self.until.to_be_bytes());
        Record { magic: MAGIC, version: VERSION, generation: seq, payload: &p }
            .emit()
            .expect("a 19-byte payload is far below the record limit")
    }

    /// Decodes one record's payload.
    fn decode(rec: &Record<'_>) -> Result<Self, LogError> {
        if rec.version != VERSION {
            return Err(LogError::Version(rec.version));
        }
        let p: &[u8; PAYLOAD_LEN] = rec.payload.try_into().map_err(|_| LogError::PayloadLength(rec.payload.len()))?;
        let kind = match p[0] {
            1 => EntryKind::Lease,
            2 => EntryKind::Release,
            3 => EntryKind::Decline,
            other => return Err(LogError::Kind(other)),
        };
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&p[1..7]);
        let mut until = [0u8; 8];
        until.copy_from_slice(&p[11..19]);
        Ok(Entry { kind, mac, addr: Ipv4Addr::new(p[7], p[8], p[9], p[10]), until: u64::from_be_bytes(until) })
    }
}

/// Reads a whole log file. Never fails: damage ends the read and is
/// reported in the result.
pub fn read(bytes: &[u8]) -> LogRead {
    let mut entries = Vec::new();
    let mut first_seq = 0;
    let mut at = 0;
    let mut damage = None;
    while at < bytes.len() {
        match next_record(&bytes[at..], first_seq + entries.len() as u64, entries.is_empty()) {
            Ok((seq, entry, len)) => {
                if entries.is_empty() {
                    first_seq = seq;
                }
                entries.push(entry);
                at += len;
            }
            Err(error) => {
                damage = Some(Damage { offset: at, dropped_bytes: bytes.len() - at, error });
                break;
            }
        }
    }
    LogRead { entries, first_seq, valid_len: at, damage }
}

/// Decodes the record at the start of `bytes`: its sequence, entry and
/// length. The first record of a file may carry any sequence.
fn next_record(bytes: &[u8], expected: u64, first: bool) -> Result<(u64, Entry, usize), LogError> {
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Truncated { have: bytes.len(), need: HEADER_LEN }.into());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[20..24]);
    let payload_len = u32::from_le_bytes(len) as usize;
    if payload_len > MAX_PAYLOAD {
        return Err(RecordError::TooLarge(payload_len).into());
    }
    let total = HEADER_LEN + payload_len + TRAILER_LEN;
    if bytes.len() < total {
        return Err(RecordError::Truncated { have: bytes.len(), need: total }.into());
    }
    let rec = record::Record::parse(&bytes[..total], MAGIC)?;
    if !first && rec.generation != expected {
        return Err(LogError::Sequence { found: rec.generation, expected });
    }
    Ok((rec.generation, Entry::decode(&rec)?, total))
}

/// Fuzzing helper: reads `bytes` as a log, re-emits the loaded entries and
/// checks that reading them again gives the same entries with no damage.
pub fn fuzz_round_trip(bytes: &[u8]) {
    let first = read(bytes);
    assert!(first.valid_len <= bytes.len());
    let again: Vec<u8> =
        first.entries.iter().enumerate().flat_map(|(i, e)| e.emit(first.first_seq + i as u64)).collect();
    let second = read(&again);
    assert_eq!(second.damage, None, "re-emitted log is damaged");
    assert_eq!(second.entries, first.entries, "read -> emit -> read changed the entries");
    assert_eq!(&again[..], &bytes[..first.valid_len], "valid prefix is not canonical");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                kind: EntryKind::Lease,
                mac: [2, 0, 0, 0, 0, 1],
                addr: Ipv4Addr::new(10, 77, 0, 100),
                until: 1_800_000_000,
            },
            Entry {
                kind: EntryKind::Decline,
                mac: [2, 0, 0, 0, 0, 2],
                addr: Ipv4Addr::new(10, 77, 0, 101),
                until: 1_800_000_600,
            },
            Entry {
                kind: EntryKind::Release,
                mac: [2, 0, 0, 0, 0, 1],
                addr: Ipv4Addr::new(10, 77, 0, 100),
                until: 1_800_000_001,
            },
        ]
    }

    fn file(first_seq: u64) -> Vec<u8> {
        entries().iter().enumerate().flat_map(|(i, e)| e.emit(first_seq + i as u64)).collect()
    }

    #[test]
    fn reads_back_what_was_written() {
        let bytes = file(7);
        assert_eq!(bytes.len(), 3 * RECORD_LEN);
        let r = read(&bytes);
        assert_eq!(r.entries, entries());
        assert_eq!(r.first_seq, 7);
        assert_eq!(r.next_seq(), 10);
        assert_eq!(r.valid_len, bytes.len());
        assert_eq!(r.damage, None);
        assert_eq!(read(&[]).entries, vec![]);
    }

    #[test]
    fn every_truncated_prefix_loads_the_whole_records_before_it() {
        let bytes = file(0);
        for len in 0..=bytes.len() {
            let r = read(&bytes[..len]);
            let whole = len / RECORD_LEN;
            assert_eq!(r.entries, entries()[..whole], "prefix {len}");
            assert_eq!(r.valid_len, whole * RECORD_LEN);
            assert_eq!(r.damage.is_some(), len % RECORD_LEN != 0, "prefix {len}");
        }
    }

    #[test]
    fn every_bit_flip_drops_from_the_damaged_record_on() {
        let bytes = file(0);
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let r = read(&bad);
            let damaged = i / 8 / RECORD_LEN;
            // The CRC covers the sequence number too, so a flip anywhere in
            // a record rejects exactly that record and what follows.
            assert_eq!(r.entries, entries()[..damaged], "bit {i}");
            let d = r.damage.expect("damage reported");
            assert_eq!(d.offset + d.dropped_bytes, bad.len());
            assert_eq!(d.offset, r.valid_len);
        }
    }

    #[test]
    fn a_record_from_another_sequence_ends_the_read() {
        let mut bytes = file(0);
        bytes.extend_from_slice(&entries()[0].emit(99));
        let r = read(&bytes);
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.damage.map(|d| d.error), Some(LogError::Sequence { found: 99, expected: 3 }));
    }

    #[test]
    fn garbage_after_a_valid_prefix_is_reported() {
        let mut bytes = file(0);
        bytes.extend_from_slice(&[0xff; 10]);
        let r = read(&bytes);
        assert_eq!(r.entries.len(), 3);
        let d = r.damage.expect("damage");
        assert_eq!((d.offset, d.dropped_bytes), (3 * RECORD_LEN, 10));
        fuzz_round_trip(&bytes);
    }
}
