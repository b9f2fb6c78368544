//! `opie nbd-attach` and `opie nbd-detach`: the head side of the block
//! transport (DESIGN §5 "Head side").
//!
//! Attach connects to an ISU's `opie nbd-serve`, runs the fixed-newstyle
//! handshake in userspace (`opie_core::nbd_client` decides, this module
//! moves the bytes), optionally proving the head's epoch with a signed
//! export name (`opie_proto::fence`), then hands the negotiated socket to
//! the kernel nbd driver over generic netlink (`opie_sys::nbd_netlink`)
//! with a request timeout and a dead-connection timeout, so a hung or dead
//! ISU fails I/O in seconds instead of hanging it forever. The process
//! exits once the kernel holds the socket.
//!
//! Detach sends NBD_CMD_DISCONNECT. Reconnecting an ISU that came back is
//! remove (from md, the storage driver's job) → `nbd-detach` →
//! `nbd-attach` → re-add.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use opie_core::nbd_client::{ClientError, ClientHandshake, Negotiated, Step};
use opie_proto::fence::{FenceNameError, FencedName};
use opie_proto::nbd::{GREETING_LEN, Greeting, MAX_OPTION_REPLY_DATA, NbdError, OPTION_REPLY_HEADER_LEN, OptionReply};
use opie_sys::fence_store::{FenceStoreError, read_key};
use opie_sys::nbd_netlink::{ConnectParams, NbdNetlink, NbdNetlinkError, device_index};
use thiserror::Error;

/// How long connecting and negotiating may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The ISU's NBD server, HOST:PORT.
    #[arg(long)]
    server: String,
    /// The export to attach.
    #[arg(long)]
    export: String,
    /// The head's epoch, proven to the ISU with a MAC (needs --fence-key-file).
    #[arg(long, requires = "fence_key_file")]
    epoch: Option<u64>,
    /// Fencing key shared with the ISU: 64 hex digits or 32 raw bytes.
    #[arg(long, value_name = "FILE", requires = "epoch")]
    fence_key_file: Option<PathBuf>,
    /// This head's identity in the epoch claim (default: the host name).
    #[arg(long)]
    head_id: Option<String>,
    /// The kernel device, /dev/nbdN.
    #[arg(long)]
    device: String,
    /// Seconds a request may wait for its reply before the connection is
    /// declared dead.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Seconds queued I/O then waits for a replacement connection before
    /// failing with EIO.
    #[arg(long, default_value_t = 2)]
    dead_timeout: u64,
    /// Logical block size of the device (power of two, 512 to 4096).
    #[arg(long, default_value_t = 4096)]
    block_size: u64,
}

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// The kernel device, /dev/nbdN.
    #[arg(long)]
    device: String,
}

/// Why attaching or detaching failed.
#[derive(Debug, Error)]
pub enum NbdAttachError {
    /// The device is not /dev/nbdN.
    #[error("{0:?} is not an nbd device (/dev/nbdN)")]
    Device(String),
    /// The block size is not a power of two from 512 to 4096.
    #[error("block size {0} is not a power of two from 512 to 4096")]
    BlockSize(u64),
    /// The server address does not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    /// The TCP connection or the handshake's socket I/O failed.
    #[error("{addr}: {source}")]
    Io { addr: String, source: io::Error },
    /// The server sent bytes that are not an NBD message.
    #[error("{addr}: {source}")]
    Malformed { addr: String, source: NbdError },
    /// The handshake failed (for example the export was refused).
    #[error("{addr}: {source}")]
    Handshake { addr: String, source: ClientError },
    /// The fencing key cannot be read.
    #[error(transparent)]
    Key(#[from] FenceStoreError),
    /// The head identity is not usable in a claim.
    #[error("head id: {0}")]
    HeadId(FenceNameError),
    /// The kernel refused the device.
    #[error(transparent)]
    Netlink(#[from] NbdNetlinkError),
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Attaches the export to the device.
pub fn attach(args: AttachArgs) -> Result<(), NbdAttachError> {
    crate::logging::init("opie-nbd-attach");
    let index = device_index(&args.device).ok_or_else(|| NbdAttachError::Device(args.device.clone()))?;
    if !args.block_size.is_power_of_two() || !(512..=4096).contains(&args.block_size) {
        return Err(NbdAttachError::BlockSize(args.block_size));
    }
    let name = match (args.epoch, &args.fence_key_file) {
        (Some(epoch), Some(key_file)) => {
            let key = read_key(key_file)?;
            let head = args.head_id.clone().unwrap_or_else(hostname);
            FencedName::sign(&key, &args.export, epoch, &head).map_err(NbdAttachError::HeadId)?.emit()
        }
        _ => args.export.clone(),
    };
    let addr = args.server.clone();
    let (sock, negotiated) = negotiate(&addr, &name)?;
    let params = ConnectParams {
        index,
        size_bytes: negotiated.size,
        block_size: args.block_size,
        timeout_secs: args.timeout,
        dead_conn_timeout_secs: args.dead_timeout,
        server_flags: negotiated.flags.into(),
    };
    let mut nl = NbdNetlink::open()?;
    let used = nl.connect(&params, sock.as_raw_fd())?;
    // The kernel holds its own reference to the socket now.
    drop(sock);
    let fenced = args.epoch.map_or_else(String::new, |e| format!(", epoch {e}"));
    let line = format!(
        "attached /dev/nbd{used} to {addr} export {:?}{fenced}: {} bytes, flags {:#x}, timeout {} s, dead timeout {} s",
        args.export, negotiated.size, negotiated.flags, args.timeout, args.dead_timeout
    );
    log::info!("{line}");
    println!("{line}");
    Ok(())
}

/// Connects and negotiates; returns the socket in transmission phase.
fn negotiate(addr: &str, name: &str) -> Result<(TcpStream, Negotiated), NbdAttachError> {
    let io_err = |source| NbdAttachError::Io { addr: addr.to_owned(), source };
    let target = addr
        .to_socket_addrs()
        .map_err(|source| NbdAttachError::Resolve { addr: addr.to_owned(), source })?
        .next()
        .ok_or_else(|| NbdAttachError::Resolve { addr: addr.to_owned(), source: io::ErrorKind::NotFound.into() })?;
    let mut sock = TcpStream::connect_timeout(&target, HANDSHAKE_TIMEOUT).map_err(io_err)?;
    sock.set_nodelay(true).map_err(io_err)?;
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io_err)?;
    sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io_err)?;
    let malformed = |source| NbdAttachError::Malformed { addr: addr.to_owned(), source };
    let handshake = |source| NbdAttachError::Handshake { addr: addr.to_owned(), source };

    let mut hs = ClientHandshake::new(name);
    let mut g = [0u8; GREETING_LEN];
    sock.read_exact(&mut g).map_err(io_err)?;
    let out = hs.on_greeting(Greeting::parse(&g).map_err(malformed)?).map_err(handshake)?;
    sock.write_all(&out).map_err(io_err)?;
    let mut buf = Vec::new();
    let negotiated = loop {
        buf.resize(OPTION_REPLY_HEADER_LEN, 0);
        sock.read_exact(&mut buf).map_err(io_err)?;
        let len = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if len > MAX_OPTION_REPLY_DATA {
            return Err(malformed(NbdError::TooLong { len: len.into(), max: MAX_OPTION_REPLY_DATA.into() }));
        }
        buf.resize(OPTION_REPLY_HEADER_LEN + len as usize, 0);
        sock.read_exact(&mut buf[OPTION_REPLY_HEADER_LEN..]).map_err(io_err)?;
        let (reply, _) = OptionReply::parse(&buf).map_err(malformed)?;
        if let Step::Ready(n) = hs.on_reply(&reply).map_err(handshake)? {
            break n;
        }
    };
    // The kernel reads this socket from now on: socket timeouts would make
    // its receive thread fail an idle connection.
    sock.set_read_timeout(None).map_err(io_err)?;
    sock.set_write_timeout(None).map_err(io_err)?;
    Ok((sock, negotiated))
}

/// Disconnects the device.
pub fn detach(args: DetachArgs) -> Result<(), NbdAttachError> {
    crate::logging::init("opie-nbd-attach");
    let index = device_index(&args.device).ok_or_else(|| NbdAttachError::Device(args.device.clone()))?;
    NbdNetlink::open()?.disconnect(index)?;
    log::info!("detached /dev/nbd{index}");
    println!("detached /dev/nbd{index}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// The handshake against a server that refuses the export reports the
    /// server's reason (what a fenced-off head prints).
    #[test]
    fn a_refused_export_reports_the_servers_reason() {
        use opie_proto::nbd::{ClientOption, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, opt, rep};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.write_all(&Greeting { flags: FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES }.emit()).expect("greeting");
            let mut flags = [0u8; 4];
            s.read_exact(&mut flags).expect("flags");
            let mut header = [0u8; 16];
            s.read_exact(&mut header).expect("option header");
            let len = u32::from_be_bytes([header[12], header[13], header[14], header[15]]) as usize;
            let mut data = vec![0u8; len];
            s.read_exact(&mut data).expect("option data");
            let mut whole = header.to_vec();
            whole.extend_from_slice(&data);
            let (option, _) = ClientOption::parse(&whole).expect("option");
            let ClientOption::Go(req) = option else { panic!("expected GO, got {option:?}") };
            assert_eq!(req.name, "disk@epoch=5");
            let mut out = Vec::new();
            OptionReply::error(opt::GO, rep::ERR_POLICY, "stale epoch 5").emit(&mut out);
            s.write_all(&out).expect("reply");
        });
        let err = negotiate(&addr, "disk@epoch=5").expect_err("refused");
        server.join().expect("server thread");
        let text = err.to_string();
        assert!(text.contains("policy") && text.contains("stale epoch 5"), "{text}");
    }

    #[test]
    fn bad_devices_and_block_sizes_are_refused_before_connecting() {
        let args = |device: &str, block_size| AttachArgs {
            server: "127.0.0.1:1".into(),
            export: "disk".into(),
            epoch: None,
            fence_key_file: None,
            head_id: None,
            device: device.into(),
            timeout: 5,
            dead_timeout: 2,
            block_size,
        };
        assert!(matches!(attach(args("/dev/sda", 4096)), Err(NbdAttachError::Device(_))));
        assert!(matches!(attach(args("/dev/nbd0", 1000)), Err(NbdAttachError::BlockSize(1000))));
        assert!(matches!(attach(args("/dev/nbd0", 8192)), Err(NbdAttachError::BlockSize(8192))));
    }
}
