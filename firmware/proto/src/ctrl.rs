//! Control-channel frames between heads and ISUs (DESIGN §4).
//!
//! TCP 7780 carries a stream of frames. Each frame is authenticated with
//! HMAC-SHA256 under a key the two sides share (derived by `opie-core`
//! from x25519 node keys pinned at adoption, see `opie_core::ctrl`), and
//! carries a per-direction sequence number so a recorded frame cannot be
//! replayed. The payload is a postcard-encoded [`Message`].
//!
//! Frame layout (integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     4  magic        b"OPIE"
//!      4     2  version      protocol version of this frame's payload
//!      6     2  flags        bit 0: UNAUTHENTICATED (tag is all zero;
//!                            only for Hello/Pending before keys exist)
//!      8     8  sequence     0 for Hello, then 1, 2, ... per direction
//!     16     4  payload_len  <= MAX_PAYLOAD, checked before any allocation
//!     20     n  payload      postcard Message
//!   20+n    32  tag          HMAC-SHA256(key, bytes 0 .. 20+n)
//! ```
//!
//! Postcard encodes enum variants by position: only append variants to
//! [`Message`], and add a [`ProtocolVersion`] for every change.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"OPIE";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 20;
/// Bytes of the authentication tag after the payload.
pub const TAG_LEN: usize = 32;
/// Largest payload either side sends or accepts. Config pushes are the
/// largest messages and stay far below this.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Flag: the frame is not authenticated (its tag is zero).
pub const FLAG_UNAUTHENTICATED: u16 = 1;

/// One documented variant per protocol change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u16)]
pub enum ProtocolVersion {
    /// First version: hello, pending, status, config push/ack, epoch,
    /// commands, heartbeat, refusal.
    V1 = 1,
}

impl ProtocolVersion {
    /// The version this firmware speaks.
    pub const CURRENT: ProtocolVersion = ProtocolVersion::V1;
    /// Versions this firmware can still talk to, newest first.
    pub const ACCEPTED: &'static [u16] = &[ProtocolVersion::V1 as u16];
}

/// A node's self-introduction, the first frame each way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The version the sender prefers.
    pub current: u16,
    /// Every version the sender accepts.
    pub accepted: Vec<u16>,
    /// Hardware serial (ISU) or host name (head).
    pub serial: String,
    /// The sender's x25519 public key.
    pub public_key: [u8; 32],
    /// Fresh random bytes; both nonces salt the session key.
    pub nonce: [u8; 16],
}

/// What an ISU says about itself (seed 1.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IsuState {
    Booting,
    Normal,
    DiskFailure,
    MdBroken,
    NbdDown,
}

/// A periodic ISU status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub state: IsuState,
    /// Highest epoch the ISU has granted.
    pub epoch: u64,
    /// Size in bytes of each exported data device.
    pub exports: Vec<(String, u64)>,
    /// Human-readable detail for the state, e.g. the failed disk.
    pub detail: String,
}

/// Something the head asks an ISU to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Blink or print so the admin finds the box.
    Identify,
    /// Become a hot spare.
    Spare,
    /// Leave the cluster (after data has moved).
    Retire,
}

/// Every control-channel message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    /// The peer is known but not adopted: shown as pending, nothing else.
    Pending,
    /// None of the offered versions is accepted; carries ours.
    VersionMismatch {
        accepted: Vec<u16>,
    },
    Status(StatusReport),
    /// A sealed config record (see `record`) for the ISU to keep.
    ConfigPush {
        generation: u64,
        record: Vec<u8>,
    },
    ConfigAck {
        generation: u64,
    },
    /// The head's epoch; the ISU persists it before answering.
    EpochGrant {
        epoch: u64,
    },
    EpochAck {
        epoch: u64,
    },
    Command(Command),
    Heartbeat {
        sent_ms: u64,
    },
    /// The sender closes the connection for the stated reason.
    Refused {
        reason: String,
    },
}

/// A parsed frame header and payload, before authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub version: u16,
    pub flags: u16,
    pub sequence: u64,
    pub payload: &'a [u8],
    pub tag: [u8; TAG_LEN],
    /// The bytes the tag covers.
    signed: &'a [u8],
}

/// Why bytes are not an acceptable frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not enough bytes yet for the header or the declared payload.
    #[error("frame incomplete: need {need} bytes, have {have}")]
    Incomplete { have: usize, need: usize },
    /// The stream does not start with the Opie magic.
    #[error("not an Opie control frame (magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// Unknown flag bits are set.
    #[error("unknown frame flags {0:#06x}")]
    BadFlags(u16),
    /// The declared payload is over the limit: refused before allocating.
    #[error("frame payload of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
    /// The tag does not verify: wrong key, tampering or corruption.
    #[error("frame authentication failed")]
    BadTag,
    /// An unauthenticated frame where keys are required.
    #[error("unauthenticated frame refused")]
    Unauthenticated,
    /// The payload does not decode as a message.
    #[error("frame payload does not decode: {0}")]
    Decode(String),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8; 32], bytes: &[u8]) -> [u8; TAG_LEN] {
    // An HMAC key of any length is valid, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts 32-byte keys");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

impl<'a> Frame<'a> {
    /// Parses one frame from the front of `bytes`. Returns the frame and
    /// its length, or `Incomplete` with how many bytes are needed (so a
    /// reader can wait for more without guessing).
    pub fn parse(bytes: &'a [u8]) -> Result<(Frame<'a>, usize), FrameError> {
        // Refuse a stream that is not ours as soon as its first bytes show
        // it, rather than waiting for a whole header.
        let seen = bytes.len().min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] {
            let mut magic = [0u8; 4];
            magic[..seen].copy_from_slice(&bytes[..seen]);
            return Err(FrameError::BadMagic(magic));
        }
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::Incomplete { have: bytes.len(), need: HEADER_LEN });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if flags & !FLAG_UNAUTHENTICATED != 0 {
            return Err(FrameError::BadFlags(flags));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[8..16]);
        let len = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        let total = HEADER_LEN + len + TAG_LEN;
        if bytes.len() < total {
            return Err(FrameError::Incomplete { have: bytes.len(), need: total });
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&bytes[HEADER_LEN + len..total]);
        let frame = Frame {
            version,
            flags,
            sequence: u64::from_le_bytes(seq),
            payload: &bytes[HEADER_LEN..HEADER_LEN + len],
            tag,
            signed: &bytes[..HEADER_LEN + len],
        };
        Ok((frame, total))
    }

    /// Whether the sender marked this frame unauthenticated.
    pub fn is_unauthenticated(&self) -> bool {
        self.flags & FLAG_UNAUTHENTICATED != 0
    }

    /// Checks the tag under `key` in constant time and decodes the message.
    pub fn open(&self, key: &[u8; 32]) -> Result<Message, FrameError> {
        if self.is_unauthenticated() {
            return Err(FrameError::Unauthenticated);
        }
        let mut check = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts 32-byte keys");
        check.update(self.signed);
        check.verify_slice(&self.tag).map_err(|_| FrameError::BadTag)?;
        self.decode()
    }

    /// Decodes an unauthenticated frame (Hello or Pending before keys exist).
    /// The caller must treat its content as a claim, not a fact.
    pub fn open_unauthenticated(&self) -> Result<Message, FrameError> {
        if !self.is_unauthenticated() || self.tag != [0; TAG_LEN] {
            return Err(FrameError::BadTag);
        }
        self.decode()
    }

    fn decode(&self) -> Result<Message, FrameError> {
        postcard::from_bytes(self.payload).map_err(|e| FrameError::Decode(e.to_string()))
    }
}

/// Decodes a frame's payload WITHOUT checking its tag. Only for reading a
/// claimed identity that selects the key the frame is then opened with.
pub fn peek_message(frame: &Frame<'_>) -> Result<Message, FrameError> {
    frame.decode()
}

/// Emits an authenticated frame. Fails only if the message would exceed
/// [`MAX_PAYLOAD`], so the sender never builds what the receiver refuses.
pub fn seal(version: u16, sequence: u64, message: &Message, key: &[u8; 32]) -> Result<Vec<u8>, FrameError> {
    let mut out = header_and_payload(version, 0, sequence, message)?;
    let tag = mac(key, &out);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Emits an unauthenticated frame (zero tag): Hello before keys, Pending.
pub fn seal_unauthenticated(version: u16, message: &Message) -> Result<Vec<u8>, FrameError> {
    let mut out = header_and_payload(version, FLAG_UNAUTHENTICATED, 0, message)?;
    out.extend_from_slice(&[0; TAG_LEN]);
    Ok(out)
}

fn header_and_payload(version: u16, flags: u16, sequence: u64, message: &Message) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_allocvec(message).map_err(|e| FrameError::Decode(e.to_string()))?;
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Fuzz helper: parses arbitrary bytes as a frame under a fixed key and,
/// when it opens, checks that sealing the message again and opening that
/// gives the same message. Never panics on any input but a real bug.
pub fn fuzz_round_trip(bytes: &[u8]) {
    const KEY: [u8; 32] = [7; 32];
    let Ok((frame, _)) = Frame::parse(bytes) else { return };
    let unauthenticated = frame.is_unauthenticated();
    let opened = if unauthenticated { frame.open_unauthenticated() } else { frame.open(&KEY) };
    let Ok(message) = opened else { return };
    let again = if unauthenticated {
        seal_unauthenticated(frame.version, &message)
    } else {
        seal(frame.version, frame.sequence, &message, &KEY)
    };
    let again = again.expect("a message that decoded fits in a frame");
    let (frame2, _) = Frame::parse(&again).expect("a sealed frame parses");
    let reopened = if unauthenticated { frame2.open_unauthenticated() } else { frame2.open(&KEY) };
    assert_eq!(reopened.as_ref(), Ok(&message), "frame did not round-trip");
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                current: 1,
                accepted: vec![1],
                serial: "ISU-0001".into(),
                public_key: [9; 32],
                nonce: [3; 16],
            }),
            Message::Pending,
            Message::VersionMismatch { accepted: vec![1] },
            Message::Status(StatusReport {
                state: IsuState::DiskFailure,
                epoch: 6,
                exports: vec![("disk0".into(), 256 << 20)],
                detail: "vdb: I/O error".into(),
            }),
            Message::ConfigPush { generation: 4, record: vec![1, 2, 3] },
            Message::ConfigAck { generation: 4 },
            Message::EpochGrant { epoch: 7 },
            Message::EpochAck { epoch: 7 },
            Message::Command(Command::Spare),
            Message::Heartbeat { sent_ms: 123_456 },
            Message::Refused { reason: "superseded".into() },
        ]
    }

    #[test]
    fn every_message_round_trips_sealed() {
        for (seq, m) in samples().into_iter().enumerate() {
            let bytes = seal(1, seq as u64, &m, &KEY).expect("seal");
            let (frame, len) = Frame::parse(&bytes).expect("parse");
            assert_eq!(len, bytes.len());
            assert_eq!(frame.sequence, seq as u64);
            assert_eq!(frame.open(&KEY).expect("open"), m);
            fuzz_round_trip(&bytes);
        }
    }

    #[test]
    fn every_truncated_prefix_is_incomplete() {
        let bytes = seal(1, 1, &samples()[3], &KEY).expect("seal");
        for len in 0..bytes.len() {
            match Frame::parse(&bytes[..len]) {
                Err(FrameError::Incomplete { need, .. }) => assert!(need > len),
                other => panic!("prefix {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn tampering_and_wrong_keys_fail_authentication() {
        let bytes = seal(1, 5, &Message::EpochGrant { epoch: 9 }, &KEY).expect("seal");
        let (frame, _) = Frame::parse(&bytes).expect("parse");
        assert_eq!(frame.open(&[0x43; 32]), Err(FrameError::BadTag));
        // Flip each bit after the magic/flags/length fields' structural checks.
        for i in (8 * 8)..(bytes.len() * 8) {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            if let Ok((frame, _)) = Frame::parse(&bad) {
                assert!(frame.open(&KEY).is_err(), "bit {i} flip accepted");
            }
        }
    }

    #[test]
    fn unauthenticated_frames_are_marked_and_refused_where_keys_are_needed() {
        let bytes = seal_unauthenticated(1, &Message::Pending).expect("seal");
        let (frame, _) = Frame::parse(&bytes).expect("parse");
        assert!(frame.is_unauthenticated());
        assert_eq!(frame.open(&KEY), Err(FrameError::Unauthenticated));
        assert_eq!(frame.open_unauthenticated(), Ok(Message::Pending));
        let sealed = seal(1, 1, &Message::Pending, &KEY).expect("seal");
        let (frame, _) = Frame::parse(&sealed).expect("parse");
        assert_eq!(frame.open_unauthenticated(), Err(FrameError::BadTag));
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut bytes = seal(1, 1, &Message::Pending, &KEY).expect("seal");
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Frame::parse(&bytes), Err(FrameError::TooLarge(u32::MAX as usize)));
        let huge = Message::ConfigPush { generation: 1, record: vec![0; MAX_PAYLOAD + 1] };
        assert!(matches!(seal(1, 1, &huge, &KEY), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Frame::parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Err(FrameError::BadMagic(*b"GET ")));
        let mut bytes = seal(1, 1, &Message::Pending, &KEY).expect("seal");
        bytes[6] = 0x80;
        assert_eq!(Frame::parse(&bytes), Err(FrameError::BadFlags(0x80)));
    }

    #[test]
    fn protocol_version_constants_agree() {
        assert_eq!(ProtocolVersion::CURRENT as u16, *ProtocolVersion::ACCEPTED.first().expect("non-empty"));
    }
}
