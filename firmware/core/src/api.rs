//! The supervisor's local API: requests from `opie` subcommands, the
//! console and (later) the web thread, and the supervisor's answers.
//!
//! Each exchange on the local socket is one request record and one
//! response record (`opie_proto::record` framing: magic, version, CRC, a
//! bounded length), postcard payloads. Variants are positional: only
//! append, and bump [`API_VERSION`] when a layout changes.

use serde::{Deserialize, Serialize};

use crate::adoption::Function;
use crate::config::{Config, ConfigError};
use crate::shares::{ShareCommand, SharesView};
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
    /// The running config and its generation (the console's starting
    /// point for network settings and password changes).
    Config,
    /// Validate, persist and run this config. A network change must then
    /// be confirmed with [`Request::ConfirmConfig`] or it rolls back.
    ApplyConfig(Config),
    /// Keep the network change persisted as `generation`.
    ConfirmConfig { generation: u64 },
    /// Shares, local users and groups (head): answered with
    /// [`Response::Shares`] for a listing, else Done or Refused.
    Shares(ShareCommand),
}

/// The supervisor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Status(StatusReport),
    /// The request was carried out; the text says what happened.
    Done(String),
    /// The request was refused; the text says why, for the admin.
    Refused(String),
    /// Answer to [`Request::Config`].
    Config {
        config: Config,
        generation: u64,
    },
    /// Answer to [`Request::ApplyConfig`]: persisted as `generation`;
    /// `confirm_within_secs` is set when it must be confirmed in time.
    Applied {
        generation: u64,
        confirm_within_secs: Option<u64>,
    },
    /// Answer to `Request::Shares(ShareCommand::List)`.
    Shares(SharesView),
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
            Request::Config,
            Request::ApplyConfig(Config::new(crate::config::Role::Head, "head-1")),
            Request::ConfirmConfig { generation: 7 },
            Request::Shares(ShareCommand::List),
            Request::Shares(ShareCommand::Create {
                name: "docs".into(),
                pool: None,
                path: Some("a/b".into()),
                edit: crate::shares::ShareEdit {
                    nfs_clients: Some(vec!["10.0.0.0/8".parse().expect("net")]),
                    smb: Some(true),
                    smb_users: Some(vec!["alice".into(), "@staff".into()]),
                    ..Default::default()
                },
            }),
            Request::Shares(ShareCommand::SetUser {
                name: "alice".into(),
                nt_hash: crate::shares::NtHash([7; 16]),
                create: true,
            }),
        ] {
            let bytes = encode(&r).expect("encode");
            assert_eq!(decode::<Request>(API_VERSION, &bytes).expect("decode"), r);
            assert!(decode::<Request>(API_VERSION + 1, &bytes).is_err());
            for len in 0..bytes.len() {
                assert!(decode::<Request>(API_VERSION, &bytes[..len]).is_err());
            }
        }
    }

    #[test]
    fn config_responses_round_trip() {
        for r in [
            Response::Config { config: Config::new(crate::config::Role::Isu, "isu-1"), generation: 2 },
            Response::Applied { generation: 3, confirm_within_secs: Some(60) },
            Response::Applied { generation: 4, confirm_within_secs: None },
            Response::Shares(SharesView { shares: vec![], users: vec!["alice".into()], groups: vec![] }),
        ] {
            let bytes = encode(&r).expect("encode");
            assert_eq!(decode::<Response>(API_VERSION, &bytes).expect("decode"), r);
        }
    }
}
