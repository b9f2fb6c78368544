//! `opie nbd-serve`: the ISU's NBD server (DESIGN §5), runnable on a host.
//!
//! This module is wiring only. `opie_core::nbd` decides every handshake
//! answer and whether each request may run; `opie_proto::nbd` owns the
//! bytes; `opie_sys::blockfile` touches the disk. What lives here is the
//! socket side: a listener, one thread per client with blocking I/O, and
//! the buffering that batches replies.
//!
//! Threads and memory: each client gets one thread and fixed buffers (a
//! [`READ_BUF`] input buffer, an [`OUT_BUF`] reply buffer, a [`CHUNK`]
//! data buffer and a [`PIPE`] splice pipe that holds page-cache or socket
//! buffer references rather than copies). Requests up to 32 MiB move a
//! chunk at a time, so a client sending maximum-size requests costs the
//! same memory as one sending 4 KiB ones, and at most `--max-clients`
//! clients are served at once: RSS is bounded.
//!
//! Data paths: small reads are read straight into the reply buffer, and
//! replies are batched until no further request is waiting. Reads larger
//! than [`SMALL_READ`] go from the page cache to the socket by splice; the
//! file read completes before the reply header is sent, so a read error is
//! still reported as an error. Large write payloads are spliced from the
//! socket into the file (one copy, into the page cache). When splice fails
//! for a client, that client falls back to copying through the data buffer.
//!
//! Durability: a FLUSH, or a write with FUA, is answered only after
//! fdatasync returned. Every connection to an export shares one open file,
//! so NBD_FLAG_CAN_MULTI_CONN is advertised.
//!
//! Fencing (DESIGN §5): with `--fence-key-file`, `crate::nbd_fence` checks
//! the epoch claim carried in each export name during the catalog lookup,
//! persists a newer epoch and drops older connections before a GO is
//! acknowledged, and gates every request on the connection's epoch still
//! being the granted one.

use std::collections::BTreeSet;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opie_core::nbd::{
    Action, Catalog, Command, Decision, ExportInfo, Handshake, HandshakeError, Lookup, OptionData, Transmission,
    errno_for_os_error,
};
use opie_proto::nbd::{
    CLIENT_FLAGS_LEN, NbdError, OPTION_HEADER_LEN, OptionHeader, OptionReply, REQUEST_LEN, Request, SIMPLE_REPLY_LEN,
    SimpleReply, errno, opt, parse_client_flags, rep,
};
use opie_sys::blockfile::{BlockFile, BlockFileError};
use opie_sys::fence_store::FenceStoreError;
use opie_sys::splice::{SplicePipe, send_more};
use thiserror::Error;

use crate::logging;
use crate::nbd_fence::{Admitted, Fencing, Session};

/// Input buffer per client: many pipelined request headers (and small
/// write payloads) arrive in one read.
const READ_BUF: usize = 128 * 1024;
/// Reply buffer per client: replies (and small read data) are batched here
/// and sent when no further request is already waiting.
const OUT_BUF: usize = 256 * 1024;
/// Reads up to this size are read straight into the reply buffer.
const SMALL_READ: usize = 64 * 1024;
/// Data buffer per client: larger reads and writes move through it a
/// chunk at a time.
const CHUNK: usize = 1024 * 1024;
/// Splice pipe per client for larger reads (page references, not copies).
const PIPE: usize = 1024 * 1024;
/// A client must finish negotiating within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that stops reading its replies for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address and port to listen on; port 0 picks a free port. The bound
    /// address is printed on stdout as "listening on ADDR".
    #[arg(long, default_value = "0.0.0.0:10809")]
    listen: SocketAddr,
    /// An export as NAME=PATH, PATH a regular file or a block device.
    /// Repeat for more exports. With one export, the empty name selects it.
    #[arg(long = "export", value_name = "NAME=PATH", required = true, value_parser = parse_export)]
    exports: Vec<(String, PathBuf)>,
    /// Serve every export read-only.
    #[arg(long)]
    read_only: bool,
    /// Most clients served at once; further connections are closed at once.
    #[arg(long, default_value_t = 64)]
    max_clients: usize,
    /// Fencing key: 64 hex digits or 32 raw bytes (DESIGN §5). With a key,
    /// export names must carry a signed epoch claim
    /// (`NAME@epoch=E;head=H;mac=HEX`, see `opie_proto::fence`); older
    /// epochs are refused, and a newer one drops their connections.
    #[arg(long, value_name = "FILE", requires = "state_dir")]
    fence_key_file: Option<PathBuf>,
    /// Directory holding the highest granted epoch (two-slot record).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn parse_export(spec: &str) -> Result<(String, PathBuf), String> {
    match spec.split_once('=') {
        Some((name, path)) if !path.is_empty() => {
            if name.len() > opie_proto::nbd::MAX_NAME_LEN {
                Err(format!("export name longer than {} bytes", opie_proto::nbd::MAX_NAME_LEN))
            } else {
                Ok((name.to_owned(), PathBuf::from(path)))
            }
        }
        _ => Err(format!("{spec:?} is not NAME=PATH")),
    }
}

/// Why `opie nbd-serve` cannot start.
#[derive(Debug, Error)]
pub enum NbdServeError {
    /// Two exports share a name.
    #[error("export name {0:?} given twice")]
    DuplicateExport(String),
    /// An export's file or device cannot be opened.
    #[error(transparent)]
    Open(#[from] BlockFileError),
    /// The listening socket cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// The bound address cannot be printed.
    #[error("cannot report the listening address: {0}")]
    Report(io::Error),
    /// The fencing key or the granted epoch cannot be read.
    #[error(transparent)]
    Fence(#[from] FenceStoreError),
}

/// Why one client's session ended early (logged, never fatal to the server).
#[derive(Debug, Error)]
enum SessionError {
    /// The socket failed or the client vanished mid-message.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The client broke the negotiation rules.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The client sent bytes that are not an NBD message.
    #[error(transparent)]
    Malformed(#[from] NbdError),
    /// A read failed after its reply header was sent; the only way to tell
    /// the client is to hang up.
    #[error("read failed mid-reply: {0}")]
    ReadMidReply(io::Error),
}

/// The exports being served: the handshake's [`Catalog`].
#[derive(Debug)]
struct Exports {
    by_name: Vec<(String, Arc<BlockFile>)>,
    read_only: bool,
    fence: Fencing,
}

impl Catalog for Exports {
    type Export = (Arc<BlockFile>, Admitted);

    fn lookup(&self, name: &str) -> Lookup<Self::Export> {
        let (name, admitted) = match self.fence.check(name) {
            Ok(checked) => checked,
            Err(reason) => return Lookup::Refused { reason },
        };
        let found = match (name, self.by_name.as_slice()) {
            ("", [(_, only)]) => Some(only),
            _ => self.by_name.iter().find(|(n, _)| n == name).map(|(_, file)| file),
        };
        match found {
            Some(file) => Lookup::Found {
                export: (Arc::clone(file), admitted),
                info: ExportInfo { size: file.size(), read_only: self.read_only, shared_cache: true },
            },
            None => Lookup::Unknown,
        }
    }

    fn names(&self) -> Vec<String> {
        self.by_name.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Runs the server until the process is killed.
pub fn run(args: Args) -> Result<(), NbdServeError> {
    logging::init("opie-nbd");
    let mut seen = BTreeSet::new();
    let mut by_name = Vec::new();
    for (name, path) in args.exports {
        if !seen.insert(name.clone()) {
            return Err(NbdServeError::DuplicateExport(name));
        }
        let file = BlockFile::open(&path, args.read_only)?;
        log::info!("export {name:?}: {} ({} bytes)", path.display(), file.size());
        by_name.push((name, Arc::new(file)));
    }
    let fence = match (&args.fence_key_file, &args.state_dir) {
        (Some(key), Some(dir)) => Fencing::open(key, dir)?,
        _ => Fencing::off(),
    };
    let exports = Arc::new(Exports { by_name, read_only: args.read_only, fence });
    let listener =
        TcpListener::bind(args.listen).map_err(|source| NbdServeError::Bind { addr: args.listen, source })?;
    let bound = listener.local_addr().map_err(NbdServeError::Report)?;
    let mut stdout = io::stdout();
    writeln!(stdout, "listening on {bound}").and_then(|()| stdout.flush()).map_err(NbdServeError::Report)?;
    log::info!("NBD server listening on {bound}");
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of fds or similar: back off instead of spinning.
                log::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= args.max_clients {
            active.fetch_sub(1, Ordering::SeqCst);
            log::warn!("refusing a client: {} already connected", args.max_clients);
            continue;
        }
        let exports = Arc::clone(&exports);
        let guard = ActiveGuard(Arc::clone(&active));
        let spawned = std::thread::Builder::new().name("nbd-client".into()).spawn(move || {
            let _guard = guard;
            let peer = stream.peer_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
            match serve_client(stream, &exports) {
                Ok(()) => log::info!("client {peer} disconnected"),
                Err(e) => log::warn!("client {peer} dropped: {e}"),
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a client thread: {e}");
        }
    }
    Ok(())
}

/// Counts a client as active until dropped (also when its thread never ran).
#[derive(Debug)]
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_client(stream: TcpStream, exports: &Exports) -> Result<(), SessionError> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut wire = Wire::new(stream);
    let Some((file, info, session)) = negotiate(&mut wire, exports)? else {
        return Ok(());
    };
    wire.sock.set_read_timeout(None)?;
    transmit(&mut wire, &file, Transmission::new(info), &session)
}

/// Runs the handshake; returns the chosen export, or `None` when the
/// client ended negotiation without one.
fn negotiate<'e>(
    wire: &mut Wire,
    exports: &'e Exports,
) -> Result<Option<(Arc<BlockFile>, ExportInfo, Session<'e>)>, SessionError> {
    let mut hs = Handshake::new();
    wire.queue(&hs.greeting().emit());
    wire.flush()?;
    let mut flags = [0u8; CLIENT_FLAGS_LEN];
    wire.read_exact(&mut flags)?;
    hs.on_client_flags(parse_client_flags(&flags)?)?;
    let mut data = Vec::new();
    loop {
        let mut raw = [0u8; OPTION_HEADER_LEN];
        wire.read_exact(&mut raw)?;
        let header = OptionHeader::parse(&raw)?;
        let actions = match hs.on_option_header(&header) {
            OptionData::Read(len) => {
                // Bounded by MAX_OPTION_DATA in on_option_header.
                data.resize(len as usize, 0);
                wire.read_exact(&mut data)?;
                hs.on_option(header.option, &data, exports)
            }
            OptionData::Skip(len) => {
                wire.skip(len.into())?;
                hs.on_skipped_option(header.option)
            }
            OptionData::Close => return Ok(None),
        };
        let mut out = Vec::new();
        for action in actions {
            match action {
                Action::Send(reply) => {
                    out.clear();
                    reply.emit(&mut out);
                    wire.queue(&out);
                }
                Action::SendExportName(reply) => {
                    out.clear();
                    reply.emit(&mut out);
                    wire.queue(&out);
                }
                Action::Transmit { export: (file, admitted), info } => {
                    // Fencing: a newer epoch is persisted (and older
                    // connections dropped) before the queued GO ack leaves.
                    let session = match exports.fence.enter(admitted, &wire.sock) {
                        Ok(session) => session,
                        Err(reason) => {
                            wire.out.clear();
                            if header.option == opt::GO {
                                out.clear();
                                OptionReply::error(opt::GO, rep::ERR_POLICY, reason).emit(&mut out);
                                wire.queue(&out);
                            }
                            wire.flush()?;
                            return Ok(None);
                        }
                    };
                    wire.flush()?;
                    return Ok(Some((file, info, session)));
                }
                Action::Close => {
                    wire.flush()?;
                    return Ok(None);
                }
            }
        }
        wire.flush()?;
    }
}

/// Serves requests until the client disconnects.
fn transmit(wire: &mut Wire, file: &BlockFile, t: Transmission, session: &Session<'_>) -> Result<(), SessionError> {
    let mut chunk = vec![0u8; CHUNK];
    wire.pipe = SplicePipe::new(PIPE).inspect_err(|e| log::warn!("no splice pipe ({e}); reads will copy")).ok();
    loop {
        if wire.buffered() < REQUEST_LEN {
            // No further request is waiting: send the batched replies now.
            wire.flush()?;
        }
        let mut raw = [0u8; REQUEST_LEN];
        match wire.read_exact(&mut raw) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && wire.at_boundary() => {
                return Ok(());
            }
            other => other?,
        }
        let request = Request::parse(&raw)?;
        let handle = request.handle;
        // Held while the request runs: a newer epoch cannot be granted
        // under it, and once granted this connection runs nothing more.
        let Some(_hold) = session.hold() else {
            wire.reply_error(handle, errno::ESHUTDOWN)?;
            wire.flush()?;
            return Err(io::Error::other("superseded by a newer epoch").into());
        };
        match t.decide(&request) {
            Decision::Run(Command::Read { offset, len }) => {
                read_reply(wire, file, &mut chunk, handle, offset, len as usize)?;
            }
            Decision::Run(Command::Write { offset, len, fua }) => {
                let mut result = receive_write(wire, file, &mut chunk, offset, len as usize)?;
                if fua && result.is_ok() {
                    result = file.sync_data();
                }
                wire.reply(handle, &result)?;
            }
            Decision::Run(Command::Flush) => {
                let result = file.sync_data();
                wire.reply(handle, &result)?;
            }
            Decision::Run(Command::Trim { offset, len, fua }) => {
                let mut result = file.trim(offset, len.into());
                if fua && result.is_ok() {
                    result = file.sync_data();
                }
                wire.reply(handle, &result)?;
            }
            Decision::Run(Command::WriteZeroes { offset, len, fua, may_punch }) => {
                let mut result = file.write_zeroes(offset, len.into(), may_punch);
                if fua && result.is_ok() {
                    result = file.sync_data();
                }
                wire.reply(handle, &result)?;
            }
            Decision::Run(Command::Disconnect) => {
                wire.flush()?;
                return Ok(());
            }
            Decision::Refuse { error, drain } => {
                wire.skip(drain.into())?;
                wire.reply_error(handle, error)?;
            }
            Decision::RefuseAndClose { error } => {
                wire.reply_error(handle, error)?;
                wire.flush()?;
                return Ok(());
            }
        }
    }
}

/// Receives a WRITE payload of `len` bytes and writes it at `offset`.
/// Payload already buffered is written from the buffer; a large remainder
/// is spliced from the socket into the file. After a failed write the rest
/// of the payload is still consumed, so the stream stays in step; the
/// failure is returned for the reply. The outer error ends the session.
fn receive_write(
    wire: &mut Wire,
    file: &BlockFile,
    chunk: &mut [u8],
    offset: u64,
    len: usize,
) -> Result<io::Result<()>, SessionError> {
    let mut result = Ok(());
    let buffered = wire.buffered().min(len);
    if buffered > 0 {
        result = file.write_at(&wire.rbuf[wire.rpos..wire.rpos + buffered], offset);
        wire.rpos += buffered;
    }
    let mut done = buffered;
    if len - done > SMALL_READ
        && let Some(mut pipe) = wire.pipe.take()
    {
        let mut keep = true;
        while done < len && keep {
            let n = pipe.fill_from_socket(&wire.sock, (len - done).min(chunk.len()))?;
            let at = offset + done as u64;
            if result.is_err() {
                // The write already failed: only consume the payload.
                pipe.read_into(&mut chunk[..n])?;
            } else if let Err((written, e)) = pipe.drain_to_file(file, at, n) {
                // Splice may not work for this file at all: copy what is
                // left in the pipe, let a real failure be the reply, and
                // copy from now on.
                log::debug!("splice write failed ({e}); copying from now on");
                pipe.read_into(&mut chunk[..n - written])?;
                result = file.write_at(&chunk[..n - written], at + written as u64);
                keep = false;
            }
            done += n;
        }
        if keep {
            wire.pipe = Some(pipe);
        }
    }
    while done < len {
        let n = (len - done).min(CHUNK);
        wire.read_exact(&mut chunk[..n])?;
        if result.is_ok() {
            result = file.write_at(&chunk[..n], offset + done as u64);
        }
        done += n;
    }
    Ok(result)
}

/// Answers a READ: small reads go straight into the reply buffer; larger
/// ones are read a chunk at a time and sent with the header in one writev.
fn read_reply(
    wire: &mut Wire,
    file: &BlockFile,
    chunk: &mut [u8],
    handle: u64,
    offset: u64,
    len: usize,
) -> Result<(), SessionError> {
    let ok = SimpleReply { error: 0, handle }.emit();
    if len <= SMALL_READ {
        if wire.out.len() + SIMPLE_REPLY_LEN + len > OUT_BUF {
            wire.flush()?;
        }
        let start = wire.out.len();
        wire.out.extend_from_slice(&ok);
        wire.out.resize(start + SIMPLE_REPLY_LEN + len, 0);
        if let Err(e) = file.read_at(&mut wire.out[start + SIMPLE_REPLY_LEN..], offset) {
            wire.out.truncate(start);
            wire.reply_error(handle, errno_for_os_error(e.raw_os_error()))?;
        }
        return Ok(());
    }
    if let Some(mut pipe) = wire.pipe.take() {
        match pipe.fill_from(file, offset, len) {
            Ok(first) => {
                splice_reply(wire, &mut pipe, file, &ok, offset, len, first)?;
                wire.pipe = Some(pipe);
                return Ok(());
            }
            // The pipe's contents are unknown now, and splice may not work
            // for this file at all: this client continues with copies,
            // which also report the error properly.
            Err(e) => log::debug!("splice read failed ({e}); copying from now on"),
        }
    }
    let first = len.min(CHUNK);
    if let Err(e) = file.read_at(&mut chunk[..first], offset) {
        return Ok(wire.reply_error(handle, errno_for_os_error(e.raw_os_error()))?);
    }
    wire.send_with_data(&ok, &chunk[..first])?;
    let mut done = first;
    while done < len {
        let n = (len - done).min(CHUNK);
        file.read_at(&mut chunk[..n], offset + done as u64).map_err(SessionError::ReadMidReply)?;
        wire.sock.write_all(&chunk[..n])?;
        done += n;
    }
    Ok(())
}

/// Sends a read reply whose first `first` bytes are already in `pipe`;
/// the rest is spliced after them.
fn splice_reply(
    wire: &mut Wire,
    pipe: &mut SplicePipe,
    file: &BlockFile,
    header: &[u8],
    offset: u64,
    len: usize,
    first: usize,
) -> Result<(), SessionError> {
    wire.queue(header);
    send_more(&wire.sock, &wire.out)?;
    wire.out.clear();
    pipe.drain_to(&wire.sock, first, first < len)?;
    let mut done = first;
    while done < len {
        let n = pipe.fill_from(file, offset + done as u64, len - done).map_err(SessionError::ReadMidReply)?;
        pipe.drain_to(&wire.sock, n, done + n < len)?;
        done += n;
    }
    Ok(())
}

/// A client socket with an input buffer and a batched reply buffer.
#[derive(Debug)]
struct Wire {
    sock: TcpStream,
    rbuf: Box<[u8]>,
    rpos: usize,
    rend: usize,
    /// Whether the last failed read had consumed part of its message: tells
    /// a clean end (between messages) from a client vanishing mid-message.
    partial: bool,
    out: Vec<u8>,
    /// Present once transmission starts, unless no pipe could be made or
    /// splicing failed; large reads then copy through the data buffer.
    pipe: Option<SplicePipe>,
}

impl Wire {
    fn new(sock: TcpStream) -> Self {
        Wire {
            sock,
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rend: 0,
            partial: false,
            out: Vec::with_capacity(OUT_BUF),
            pipe: None,
        }
    }

    fn buffered(&self) -> usize {
        self.rend - self.rpos
    }

    /// True when the last failed read had consumed nothing of its message.
    fn at_boundary(&self) -> bool {
        !self.partial
    }

    /// Fills `dst` from the buffer, then from the socket (large payloads go
    /// straight into `dst`; small reads refill the buffer).
    fn read_exact(&mut self, dst: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < dst.len() {
            if self.rpos < self.rend {
                let n = (self.rend - self.rpos).min(dst.len() - filled);
                dst[filled..filled + n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
                self.rpos += n;
                filled += n;
                continue;
            }
            let direct = dst.len() - filled >= self.rbuf.len();
            let got = if direct {
                read_some(&mut self.sock, &mut dst[filled..])
            } else {
                read_some(&mut self.sock, &mut self.rbuf)
            };
            match got {
                Err(e) => {
                    self.partial = filled > 0;
                    return Err(e);
                }
                Ok(n) if direct => filled += n,
                Ok(n) => {
                    self.rpos = 0;
                    self.rend = n;
                }
            }
        }
        Ok(())
    }

    /// Reads and discards `len` bytes (a refused write's payload, an
    /// oversized option) without allocating for them.
    fn skip(&mut self, mut len: u64) -> io::Result<()> {
        while len > 0 {
            if self.rpos == self.rend {
                self.rpos = 0;
                self.rend = read_some(&mut self.sock, &mut self.rbuf)?;
            }
            let n = usize::try_from(len).unwrap_or(usize::MAX).min(self.rend - self.rpos);
            self.rpos += n;
            len -= n as u64;
        }
        Ok(())
    }

    fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn reply(&mut self, handle: u64, result: &io::Result<()>) -> io::Result<()> {
        let error = match result {
            Ok(()) => 0,
            Err(e) => errno_for_os_error(e.raw_os_error()),
        };
        self.reply_error(handle, error)
    }

    fn reply_error(&mut self, handle: u64, error: u32) -> io::Result<()> {
        if self.out.len() + SIMPLE_REPLY_LEN > OUT_BUF {
            self.flush()?;
        }
        self.queue(&SimpleReply { error, handle }.emit());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.sock.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends the batched replies, `header` and `data` in one writev.
    fn send_with_data(&mut self, header: &[u8], data: &[u8]) -> io::Result<()> {
        let mut slices = [IoSlice::new(&self.out), IoSlice::new(header), IoSlice::new(data)];
        let mut bufs: &mut [IoSlice<'_>] = &mut slices;
        while !bufs.is_empty() {
            match self.sock.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        Ok(())
    }
}

/// One read(2) that treats end of stream as `UnexpectedEof`.
fn read_some(sock: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match sock.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_specs_parse() {
        assert_eq!(parse_export("disk=/dev/sda"), Ok(("disk".to_owned(), PathBuf::from("/dev/sda"))));
        assert_eq!(parse_export("=/tmp/x=y"), Ok((String::new(), PathBuf::from("/tmp/x=y"))));
        assert!(parse_export("disk").is_err());
        assert!(parse_export("disk=").is_err());
    }
}
