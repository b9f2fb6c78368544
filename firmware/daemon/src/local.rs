//! The supervisor's local socket: how `opie status`, `opie adopt`, the
//! console and (later) the web thread talk to the node's state owner.
//!
//! One exchange per connection: the client writes one request record
//! (`opie_proto::record`, kind `REQUEST_MAGIC`) and shuts its write side;
//! the supervisor answers with one response record and closes. Both sides
//! bound what they read by the record format's limit, so neither trusts
//! more bytes than a record can have.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opie_core::api::{self, API_VERSION, REQUEST_MAGIC, RESPONSE_MAGIC, Request, Response};
use opie_core::config::Config;
use opie_core::shares::{ShareCommand, SharesView};
use opie_core::status::StatusReport;
use opie_proto::record::{HEADER_LEN, MAX_PAYLOAD, Record, TRAILER_LEN};
use thiserror::Error;

/// How long a client waits for the supervisor's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes either side reads: one maximal record and one byte more, so
/// an oversized record is seen as such.
pub const READ_LIMIT: u64 = (HEADER_LEN + MAX_PAYLOAD + TRAILER_LEN + 1) as u64;

/// Errors talking to the supervisor.
#[derive(Debug, Error)]
pub enum LocalError {
    /// No supervisor answers on the socket.
    #[error("cannot reach the supervisor at {path}: {source} (is `opie` running?)")]
    Connect { path: PathBuf, source: std::io::Error },
    /// The connection broke or timed out mid-exchange.
    #[error("talking to the supervisor at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The bytes are not a valid record of the expected kind.
    #[error("not a valid local API record: {0}")]
    Invalid(String),
    /// The supervisor refused the request.
    #[error("{0}")]
    Refused(String),
}

/// Frames a payload as a record of `magic`.
pub fn seal<T: serde::Serialize>(magic: [u8; 8], value: &T) -> Result<Vec<u8>, LocalError> {
    let payload = api::encode(value).map_err(|e| LocalError::Invalid(e.to_string()))?;
    Record { magic, version: API_VERSION, generation: 0, payload: &payload }
        .emit()
        .map_err(|e| LocalError::Invalid(e.to_string()))
}

/// Parses a record of `magic` and decodes its payload.
pub fn open<T: serde::de::DeserializeOwned>(magic: [u8; 8], bytes: &[u8]) -> Result<T, LocalError> {
    let record = Record::parse(bytes, magic).map_err(|e| LocalError::Invalid(e.to_string()))?;
    api::decode(record.version, record.payload).map_err(|e| LocalError::Invalid(e.to_string()))
}

/// Sends one request and returns the supervisor's response.
pub fn call(socket: &Path, request: &Request) -> Result<Response, LocalError> {
    let mut stream =
        UnixStream::connect(socket).map_err(|source| LocalError::Connect { path: socket.into(), source })?;
    let io = |source| LocalError::Io { path: socket.into(), source };
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.write_all(&seal(REQUEST_MAGIC, request)?).map_err(io)?;
    stream.shutdown(Shutdown::Write).map_err(io)?;
    let mut bytes = Vec::new();
    stream.take(READ_LIMIT).read_to_end(&mut bytes).map_err(io)?;
    open(RESPONSE_MAGIC, &bytes)
}

/// Reads the node's status.
pub fn fetch_status(socket: &Path) -> Result<StatusReport, LocalError> {
    match call(socket, &Request::Status)? {
        Response::Status(report) => Ok(report),
        Response::Refused(why) => Err(LocalError::Refused(why)),
        other => Err(unexpected("status", &other)),
    }
}

/// Sends a request that answers Done or Refused; returns the Done text.
pub fn command(socket: &Path, request: &Request) -> Result<String, LocalError> {
    match call(socket, request)? {
        Response::Done(text) => Ok(text),
        Response::Refused(why) => Err(LocalError::Refused(why)),
        other => Err(unexpected("command", &other)),
    }
}

/// Reads the running config and its generation.
pub fn fetch_config(socket: &Path) -> Result<(Config, u64), LocalError> {
    match call(socket, &Request::Config)? {
        Response::Config { config, generation } => Ok((config, generation)),
        Response::Refused(why) => Err(LocalError::Refused(why)),
        other => Err(unexpected("config", &other)),
    }
}

/// Hands a new config to the supervisor: its generation, and the seconds
/// left to confirm it when it changes the network.
pub fn apply_config(socket: &Path, config: &Config) -> Result<(u64, Option<u64>), LocalError> {
    match call(socket, &Request::ApplyConfig(config.clone()))? {
        Response::Applied { generation, confirm_within_secs } => Ok((generation, confirm_within_secs)),
        Response::Refused(why) => Err(LocalError::Refused(why)),
        other => Err(unexpected("apply-config", &other)),
    }
}

/// Sends a share command: a listing or the text of what was done; a
/// refusal (with its reason) is an error.
pub fn share_command(socket: &Path, command: ShareCommand) -> Result<ShareAnswer, LocalError> {
    match call(socket, &Request::Shares(command))? {
        Response::Done(text) => Ok(ShareAnswer::Done(text)),
        Response::Shares(view) => Ok(ShareAnswer::View(view)),
        Response::Refused(why) => Err(LocalError::Refused(why)),
        other => Err(unexpected("share", &other)),
    }
}

/// What a share command returns.
#[derive(Debug)]
pub enum ShareAnswer {
    Done(String),
    View(SharesView),
}

fn unexpected(what: &str, response: &Response) -> LocalError {
    let kind = match response {
        Response::Status(_) => "a status",
        Response::Done(_) => "a done",
        Response::Refused(_) => "a refusal",
        Response::Config { .. } => "a config",
        Response::Applied { .. } => "an applied",
        Response::Shares(_) => "a shares listing",
    };
    LocalError::Invalid(format!("unexpected {kind} answer to a {what} request"))
}
