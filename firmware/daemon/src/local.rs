//! The supervisor's local socket: how `opie status` (and later the console
//! and web threads) read the node's status.
//!
//! A client connects and reads one sealed record (`opie_proto::record`,
//! kind `STATUS_MAGIC`) holding a postcard-encoded `StatusReport`; the
//! server closes after writing it. The record's length bound and checksum
//! mean a client never trusts more bytes than a report can have.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opie_core::status::{STATUS_MAGIC, STATUS_VERSION, StatusReport};
use opie_proto::record::{HEADER_LEN, MAX_PAYLOAD, Record, TRAILER_LEN};
use thiserror::Error;

/// How long a client waits for the supervisor's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors talking to the supervisor.
#[derive(Debug, Error)]
pub enum LocalError {
    /// No supervisor answers on the socket.
    #[error("cannot reach the supervisor at {path}: {source} (is `opie` running?)")]
    Connect { path: PathBuf, source: std::io::Error },
    /// The connection broke or timed out mid-answer.
    #[error("reading status from {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The answer is not a valid status record.
    #[error("the supervisor's answer is not a valid status record: {0}")]
    Invalid(String),
}

/// Frames a status report for the socket.
pub fn seal_status(report: &StatusReport) -> Result<Vec<u8>, LocalError> {
    let payload = report.encode().map_err(|e| LocalError::Invalid(e.to_string()))?;
    Record { magic: STATUS_MAGIC, version: STATUS_VERSION, generation: 0, payload: &payload }
        .emit()
        .map_err(|e| LocalError::Invalid(e.to_string()))
}

/// Connects to the supervisor and reads its status.
pub fn fetch_status(socket: &Path) -> Result<StatusReport, LocalError> {
    let stream = UnixStream::connect(socket).map_err(|source| LocalError::Connect { path: socket.into(), source })?;
    let read_err = |source| LocalError::Read { path: socket.into(), source };
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(read_err)?;
    let mut bytes = Vec::new();
    let limit = (HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN + 1) as u64;
    stream.take(limit).read_to_end(&mut bytes).map_err(read_err)?;
    let record = Record::parse(&bytes, STATUS_MAGIC).map_err(|e| LocalError::Invalid(e.to_string()))?;
    StatusReport::decode(record.version, record.payload).map_err(|e| LocalError::Invalid(e.to_string()))
}
