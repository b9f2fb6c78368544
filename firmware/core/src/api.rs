//! The supervisor's local API: requests from `opie` subcommands, the
//! console and (later) the web thread, and the supervisor's answers.
//!
//! Each exchange on the local socket is one request record and one
//! response record (`opie_proto::record` framing: magic, version, CRC, a
//! bounded length), postcard payloads. Variants are positional: only
//! append, and bump [`API_VERSION`] when a layout changes.

use serde::{Deserialize, Serialize};

use crate::adoption::Function;
use crate::config::ConfigError;
use crate::status::StatusReport;

/// Kind tag of a request record.
pub const REQUEST_MAGIC: [u8; 8] = *b"OPIEREQ\0";
/// Kind tag of a response record.
pub const RESPONSE_MAGIC: [u8; 8] = *b"OPIERSP\0";
/// Layout version of [`Request`] and [`Response`].
pub const API_VERSION: u16 = 1;

/// What a local client asks of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The node's status.
    Status,
    /// Adopt a pending ISU (by serial) as a RAID member or a spare.
    Adopt { serial: String, function: Function },
    /// Refuse a pending ISU: it stays out of storage and off the list.
    Reject { serial: String },
}

/// The supervisor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Status(StatusReport),
    /// The request was carried out; the text says what happened.
    Done(String),
    /// The request was refused; the text says why, for the admin.
    Refused(String),
}

/// Encodes a payload with postcard.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConfigError> {
    postcard::to_allocvec(value).map_err(|e| ConfigError::Decode(e.to_string()))
}

/// Decodes a payload of `version` with postcard.
pub fn decode<'a, T: Deserialize<'a>>(version: u16, payload: &'a [u8]) -> Result<T, ConfigError> {
    if version != API_VERSION {
        return Err(ConfigError::Version { found: version });
    }
    postcard::from_bytes(payload).map_err(|e| ConfigError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Status,
            Request::Adopt { serial: "ISU-1".into(), function: Function::Member },
            Request::Reject { serial: "ISU-2".into() },
        ] {
            let bytes = encode(&r).expect("encode");
            assert_eq!(decode::<Request>(API_VERSION, &bytes).expect("decode"), r);
            assert!(decode::<Request>(API_VERSION + 1, &bytes).is_err());
            for len in 0..bytes.len() {
                assert!(decode::<Request>(API_VERSION, &bytes[..len]).is_err());
            }
        }
    }
}
