//! Sealed records: the framing every piece of persisted state uses.
//!
//! A record wraps an opaque payload (postcard-encoded by its owner) with a
//! magic that names the kind of record, a format version, a generation
//! number and a CRC32C. The generation lets a reader pick the newest of
//! several copies (two config slots, copies held by peers); the CRC lets it
//! reject a torn or corrupted copy instead of loading garbage.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  magic          kind of record, e.g. b"OPIECFG\0"
//!      8     2  version        payload format version
//!     10     2  reserved       must be zero
//!     12     8  generation     bumped on every write of this record
//!     20     4  payload_len    <= MAX_PAYLOAD
//!     24     n  payload
//!   24+n     4  crc32c         over bytes 0 .. 24+n
//! ```

use thiserror::Error;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 24;
/// Bytes after the payload.
pub const TRAILER_LEN: usize = 4;
/// Largest payload a record may carry. Config and key material are small;
/// the bound keeps a corrupted length field from asking for gigabytes.
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// A record's identity and content, borrowed from the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub magic: [u8; 8],
    pub version: u16,
    pub generation: u64,
    pub payload: &'a [u8],
}

/// Why bytes are not a valid record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the header, trailer and declared payload need.
    #[error("record truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    /// The magic names a different kind of record (or no record at all).
    #[error("record magic {found:02x?} is not the expected {expected:02x?}")]
    BadMagic { found: [u8; 8], expected: [u8; 8] },
    /// The reserved header field is not zero.
    #[error("record reserved field is {0:#06x}, expected zero")]
    Reserved(u16),
    /// The declared payload length is over [`MAX_PAYLOAD`].
    #[error("record payload length {0} exceeds the limit of {MAX_PAYLOAD} bytes")]
    TooLarge(usize),
    /// Bytes follow the record's checksum.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// The checksum does not match: the record is torn or corrupted.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
}

impl<'a> Record<'a> {
    /// Parses exactly one record of kind `magic` filling all of `bytes`.
    pub fn parse(bytes: &'a [u8], magic: [u8; 8]) -> Result<Self, RecordError> {
        let need = HEADER_LEN + TRAILER_LEN;
        if bytes.len() < need {
            return Err(RecordError::Truncated { have: bytes.len(), need });
        }
        let found: [u8; 8] = field(bytes, 0);
        if found != magic {
            return Err(RecordError::BadMagic { found, expected: magic });
        }
        let version = u16::from_le_bytes(field(bytes, 8));
        let reserved = u16::from_le_bytes(field(bytes, 10));
        if reserved != 0 {
            return Err(RecordError::Reserved(reserved));
        }
        let generation = u64::from_le_bytes(field(bytes, 12));
        let payload_len = u32::from_le_bytes(field(bytes, 20)) as usize;
        if payload_len > MAX_PAYLOAD {
            return Err(RecordError::TooLarge(payload_len));
        }
        let total = HEADER_LEN + payload_len + TRAILER_LEN;
        if bytes.len() < total {
            return Err(RecordError::Truncated { have: bytes.len(), need: total });
        }
        if bytes.len() > total {
            return Err(RecordError::TrailingBytes(bytes.len() - total));
        }
        let body_end = HEADER_LEN + payload_len;
        let stored = u32::from_le_bytes(field(bytes, body_end));
        let computed = crc32c::crc32c(&bytes[..body_end]);
        if stored != computed {
            return Err(RecordError::Checksum { stored, computed });
        }
        Ok(Record { magic, version, generation, payload: &bytes[HEADER_LEN..body_end] })
    }

    /// Emits the record. Fails only when the payload is over [`MAX_PAYLOAD`],
    /// so the writer never produces bytes its own reader would refuse.
    pub fn emit(&self) -> Result<Vec<u8>, RecordError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(RecordError::TooLarge(self.payload.len()));
        }
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len() + TRAILER_LEN);
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        let len = u32::try_from(self.payload.len()).map_err(|_| RecordError::TooLarge(self.payload.len()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.payload);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

/// Copies a fixed-size field out of a buffer whose length was checked.
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"OPIETST\0";

    fn sample(payload: &[u8]) -> Vec<u8> {
        Record { magic: MAGIC, version: 3, generation: 42, payload }.emit().expect("small payload")
    }

    #[test]
    fn round_trips() {
        let bytes = sample(b"hello");
        let rec = Record::parse(&bytes, MAGIC).expect("valid");
        assert_eq!(rec.version, 3);
        assert_eq!(rec.generation, 42);
        assert_eq!(rec.payload, b"hello");
        assert_eq!(rec.emit().expect("emit"), bytes);
    }

    #[test]
    fn every_truncated_prefix_is_refused() {
        let bytes = sample(b"some payload bytes");
        for len in 0..bytes.len() {
            assert!(
                matches!(Record::parse(&bytes[..len], MAGIC), Err(RecordError::Truncated { .. })),
                "prefix of {len} bytes accepted"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let bytes = sample(b"config");
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(Record::parse(&bad, MAGIC).is_err(), "bit {i} flip accepted");
        }
    }

    #[test]
    fn wrong_magic_and_trailing_bytes_are_refused() {
        let mut bytes = sample(b"x");
        assert!(matches!(Record::parse(&bytes, *b"OTHER\0\0\0"), Err(RecordError::BadMagic { .. })));
        bytes.push(0);
        assert_eq!(Record::parse(&bytes, MAGIC), Err(RecordError::TrailingBytes(1)));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut bytes = sample(b"");
        bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Record::parse(&bytes, MAGIC), Err(RecordError::TooLarge(_))));
    }
}
