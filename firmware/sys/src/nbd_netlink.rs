//! The kernel NBD driver's generic-netlink interface: hand a negotiated
//! socket to `/dev/nbdN` (NBD_CMD_CONNECT) and take it back
//! (NBD_CMD_DISCONNECT). DESIGN §5 "Head side".
//!
//! Why netlink and not the ioctls: NBD_SET_SOCK + NBD_DO_IT needs a thread
//! (or process) blocked in the ioctl for the device's whole life; netlink
//! hands the socket to the kernel and returns, and only netlink carries
//! NBD_ATTR_DEAD_CONN_TIMEOUT.
//!
//! Why hand-written and not the `nbd-netlink` crate: that crate returns
//! `anyhow` errors (not allowed in `firmware/*`) and pulls in `neli` with
//! its proc-macro tree for what is three small messages. The messages are
//! built and parsed here by pure functions with unit tests; the socket
//! calls are the only `unsafe`.
//!
//! Message layout (all integers in host byte order, as netlink wants;
//! every attribute padded to 4 bytes):
//!
//! ```text
//! nlmsghdr   len u32 | type u16 (family id) | flags u16 | seq u32 | pid u32
//! genlmsghdr cmd u8 | version u8 | reserved u16
//! nlattr*    len u16 (header + payload, unpadded) | type u16 | payload | pad
//!
//! NBD_CMD_CONNECT    NBD_ATTR_INDEX u32, SIZE_BYTES u64, BLOCK_SIZE_BYTES u64,
//!                    TIMEOUT u64 (s), DEAD_CONN_TIMEOUT u64 (s),
//!                    SERVER_FLAGS u64 (the export's transmission flags),
//!                    SOCKETS nested { SOCK_ITEM nested { SOCK_FD u32 } }
//!   reply            NBD_ATTR_INDEX u32, then an ack
//! NBD_CMD_DISCONNECT NBD_ATTR_INDEX u32; reply: an ack
//! CTRL_CMD_GETFAMILY (family GENL_ID_CTRL) CTRL_ATTR_FAMILY_NAME "nbd\0";
//!   reply            CTRL_ATTR_FAMILY_ID u16 among others
//! ```
//!
//! Constants are from `include/uapi/linux/nbd-netlink.h` and
//! `genetlink.h` (stable kernel ABI).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use thiserror::Error;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLMSG_HDR: usize = 16;
const GENL_HDR: usize = 4;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const NBD_GENL_VERSION: u8 = 1;
const NBD_CMD_CONNECT: u8 = 1;
const NBD_CMD_DISCONNECT: u8 = 2;
const NBD_ATTR_INDEX: u16 = 1;
const NBD_ATTR_SIZE_BYTES: u16 = 2;
const NBD_ATTR_BLOCK_SIZE_BYTES: u16 = 3;
const NBD_ATTR_TIMEOUT: u16 = 4;
const NBD_ATTR_SERVER_FLAGS: u16 = 5;
const NBD_ATTR_SOCKETS: u16 = 7;
const NBD_ATTR_DEAD_CONN_TIMEOUT: u16 = 8;
const NBD_SOCK_ITEM: u16 = 1;
const NBD_SOCK_FD: u16 = 1;

/// Errors of the NBD netlink calls.
#[derive(Debug, Error)]
pub enum NbdNetlinkError {
    /// A socket call failed.
    #[error("netlink {op}: {source}")]
    Io { op: &'static str, source: io::Error },
    /// The kernel has no "nbd" generic-netlink family: the module is not
    /// loaded.
    #[error("the kernel has no nbd netlink family (is the nbd module loaded? modprobe nbd)")]
    NoFamily,
    /// The kernel refused the request.
    #[error("kernel refused {what}: {source}")]
    Refused { what: &'static str, source: io::Error },
    /// The kernel's answer does not parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

/// What NBD_CMD_CONNECT hands to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectParams {
    /// N of /dev/nbdN.
    pub index: u32,
    pub size_bytes: u64,
    /// Logical block size: a power of two from 512 to the page size.
    pub block_size: u64,
    /// Seconds before a request without a reply marks the connection dead.
    pub timeout_secs: u64,
    /// Seconds queued I/O waits for a dead connection to be replaced
    /// before it fails with EIO.
    pub dead_conn_timeout_secs: u64,
    /// The export's transmission flags (NBD_FLAG_*), as negotiated.
    pub server_flags: u64,
}

fn put_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Builds one generic-netlink request with `attrs` already encoded.
fn message(family: u16, cmd: u8, version: u8, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + GENL_HDR + attrs.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    out.extend_from_slice(&family.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[cmd, version, 0, 0]);
    out.extend_from_slice(attrs);
    out
}

fn getfamily_message(seq: u32) -> Vec<u8> {
    let mut attrs = Vec::new();
    put_attr(&mut attrs, CTRL_ATTR_FAMILY_NAME, b"nbd\0");
    message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, seq, &attrs)
}

fn connect_message(family: u16, seq: u32, p: &ConnectParams, fd: RawFd) -> Vec<u8> {
    let mut attrs = Vec::new();
    put_attr(&mut attrs, NBD_ATTR_INDEX, &p.index.to_ne_bytes());
    put_attr(&mut attrs, NBD_ATTR_SIZE_BYTES, &p.size_bytes.to_ne_bytes());
    put_attr(&mut attrs, NBD_ATTR_BLOCK_SIZE_BYTES, &p.block_size.to_ne_bytes());
    put_attr(&mut attrs, NBD_ATTR_TIMEOUT, &p.timeout_secs.to_ne_bytes());
    put_attr(&mut attrs, NBD_ATTR_DEAD_CONN_TIMEOUT, &p.dead_conn_timeout_secs.to_ne_bytes());
    put_attr(&mut attrs, NBD_ATTR_SERVER_FLAGS, &p.server_flags.to_ne_bytes());
    let mut item = Vec::new();
    put_attr(&mut item, NBD_SOCK_FD, &u32::try_from(fd).unwrap_or(u32::MAX).to_ne_bytes());
    let mut sockets = Vec::new();
    put_attr(&mut sockets, NBD_SOCK_ITEM | NLA_F_NESTED, &item);
    put_attr(&mut attrs, NBD_ATTR_SOCKETS | NLA_F_NESTED, &sockets);
    message(family, NBD_CMD_CONNECT, NBD_GENL_VERSION, seq, &attrs)
}

fn disconnect_message(family: u16, seq: u32, index: u32) -> Vec<u8> {
    let mut attrs = Vec::new();
    put_attr(&mut attrs, NBD_ATTR_INDEX, &index.to_ne_bytes());
    message(family, NBD_CMD_DISCONNECT, NBD_GENL_VERSION, seq, &attrs)
}

/// One message of a reply datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// NLMSG_ERROR with error 0: the request is done.
    Ack,
    /// NLMSG_ERROR with a negative errno.
    Error(i32),
    /// A generic-netlink message: its attributes.
    Data(Vec<u8>),
}

fn ne16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Splits a datagram into the messages answering `seq` (others ignored).
fn parse_replies(buf: &[u8], seq: u32) -> Result<Vec<Reply>, NbdNetlinkError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDR <= buf.len() {
        let len = ne32(buf, at).ok_or(NbdNetlinkError::Malformed("header"))? as usize;
        let kind = ne16(buf, at + 4).ok_or(NbdNetlinkError::Malformed("header"))?;
        let msg_seq = ne32(buf, at + 8).ok_or(NbdNetlinkError::Malformed("header"))?;
        if len < NLMSG_HDR || at + len > buf.len() {
            return Err(NbdNetlinkError::Malformed("message length"));
        }
        let body = &buf[at + NLMSG_HDR..at + len];
        if msg_seq == seq {
            if kind == NLMSG_ERROR {
                let errno = ne32(body, 0).ok_or(NbdNetlinkError::Malformed("error message"))? as i32;
                out.push(if errno == 0 { Reply::Ack } else { Reply::Error(-errno) });
            } else {
                out.push(Reply::Data(body.get(GENL_HDR..).ok_or(NbdNetlinkError::Malformed("genl header"))?.to_vec()));
            }
        }
        at += len.next_multiple_of(4);
    }
    Ok(out)
}

/// The payload of the first attribute of type `kind` in `attrs`.
fn find_attr(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let len = usize::from(ne16(attrs, at)?);
        let t = ne16(attrs, at + 2)? & !NLA_F_NESTED;
        if len < 4 || at + len > attrs.len() {
            return None;
        }
        if t == kind {
            return Some(&attrs[at + 4..at + len]);
        }
        at += len.next_multiple_of(4);
    }
    None
}

/// A generic-netlink socket talking to the kernel's nbd family.
#[derive(Debug)]
pub struct NbdNetlink {
    fd: OwnedFd,
    family: u16,
    seq: u32,
}

impl NbdNetlink {
    /// Opens a NETLINK_GENERIC socket and resolves the "nbd" family.
    pub fn open() -> Result<Self, NbdNetlinkError> {
        // SAFETY: socket(2) takes no pointers; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_GENERIC) };
        if raw < 0 {
            return Err(NbdNetlinkError::Io { op: "socket", source: io::Error::last_os_error() });
        }
        // SAFETY: raw is a fresh socket nothing else owns; OwnedFd closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a fully initialised sockaddr_nl and the length
        // passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(NbdNetlinkError::Io { op: "bind", source: io::Error::last_os_error() });
        }
        let mut nl = NbdNetlink { fd, family: 0, seq: 1 };
        let seq = nl.next_seq();
        let replies = nl.request(&getfamily_message(seq), seq)?;
        for reply in &replies {
            match reply {
                Reply::Error(e) if *e == libc::ENOENT => return Err(NbdNetlinkError::NoFamily),
                Reply::Error(e) => {
                    return Err(NbdNetlinkError::Refused {
                        what: "CTRL_CMD_GETFAMILY",
                        source: io::Error::from_raw_os_error(*e),
                    });
                }
                Reply::Data(attrs) => {
                    let id = find_attr(attrs, CTRL_ATTR_FAMILY_ID)
                        .and_then(|p| ne16(p, 0))
                        .ok_or(NbdNetlinkError::Malformed("no family id"))?;
                    nl.family = id;
                }
                Reply::Ack => {}
            }
        }
        if nl.family == 0 {
            return Err(NbdNetlinkError::NoFamily);
        }
        Ok(nl)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `msg` and collects replies for `seq` until the ack (or error).
    fn request(&mut self, msg: &[u8], seq: u32) -> Result<Vec<Reply>, NbdNetlinkError> {
        // SAFETY: msg is a live buffer and the length passed is its length.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 || sent as usize != msg.len() {
            return Err(NbdNetlinkError::Io { op: "send", source: io::Error::last_os_error() });
        }
        let mut all = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: buf is a live, writable buffer of the length passed.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NbdNetlinkError::Io { op: "recv", source: e });
            }
            let got = &buf[..n as usize];
            let mut done = false;
            for reply in parse_replies(got, seq)? {
                done |= matches!(reply, Reply::Ack | Reply::Error(_));
                all.push(reply);
            }
            if done {
                return Ok(all);
            }
        }
    }

    /// Hands the connected, negotiated socket `sock` to /dev/nbd<index>.
    /// The kernel takes its own reference: the caller may close `sock`.
    /// Returns the index the kernel used.
    pub fn connect(&mut self, params: &ConnectParams, sock: RawFd) -> Result<u32, NbdNetlinkError> {
        let seq = self.next_seq();
        let replies = self.request(&connect_message(self.family, seq, params, sock), seq)?;
        let mut index = params.index;
        for reply in &replies {
            match reply {
                Reply::Error(e) => {
                    return Err(NbdNetlinkError::Refused {
                        what: "NBD_CMD_CONNECT",
                        source: io::Error::from_raw_os_error(*e),
                    });
                }
                Reply::Data(attrs) => {
                    if let Some(i) = find_attr(attrs, NBD_ATTR_INDEX).and_then(|p| ne32(p, 0)) {
                        index = i;
                    }
                }
                Reply::Ack => {}
            }
        }
        Ok(index)
    }

    /// Disconnects /dev/nbd<index>: the kernel sends NBD_CMD_DISC to the
    /// server, shuts the socket and fails queued I/O.
    pub fn disconnect(&mut self, index: u32) -> Result<(), NbdNetlinkError> {
        let seq = self.next_seq();
        for reply in self.request(&disconnect_message(self.family, seq, index), seq)? {
            if let Reply::Error(e) = reply {
                return Err(NbdNetlinkError::Refused {
                    what: "NBD_CMD_DISCONNECT",
                    source: io::Error::from_raw_os_error(e),
                });
            }
        }
        Ok(())
    }
}

/// N of a `/dev/nbdN` path (or a bare `nbdN`).
pub fn device_index(device: &str) -> Option<u32> {
    let name = device.strip_prefix("/dev/").unwrap_or(device);
    let digits = name.strip_prefix("nbd")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: ConnectParams = ConnectParams {
        index: 3,
        size_bytes: 64 << 20,
        block_size: 4096,
        timeout_secs: 5,
        dead_conn_timeout_secs: 2,
        server_flags: 0x16d,
    };

    #[test]
    fn connect_message_layout() {
        let m = connect_message(0x22, 9, &PARAMS, 7);
        assert_eq!(ne32(&m, 0), Some(m.len() as u32));
        assert_eq!(ne16(&m, 4), Some(0x22));
        assert_eq!(ne16(&m, 6), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(ne32(&m, 8), Some(9));
        assert_eq!(&m[16..20], &[NBD_CMD_CONNECT, NBD_GENL_VERSION, 0, 0]);
        let attrs = &m[20..];
        assert_eq!(attrs.len() % 4, 0);
        let u64_of = |kind| find_attr(attrs, kind).map(|p| u64::from_ne_bytes(p.try_into().expect("8 bytes")));
        assert_eq!(find_attr(attrs, NBD_ATTR_INDEX).and_then(|p| ne32(p, 0)), Some(3));
        assert_eq!(u64_of(NBD_ATTR_SIZE_BYTES), Some(64 << 20));
        assert_eq!(u64_of(NBD_ATTR_BLOCK_SIZE_BYTES), Some(4096));
        assert_eq!(u64_of(NBD_ATTR_TIMEOUT), Some(5));
        assert_eq!(u64_of(NBD_ATTR_DEAD_CONN_TIMEOUT), Some(2));
        assert_eq!(u64_of(NBD_ATTR_SERVER_FLAGS), Some(0x16d));
        let sockets = find_attr(attrs, NBD_ATTR_SOCKETS).expect("sockets");
        let item = find_attr(sockets, NBD_SOCK_ITEM).expect("item");
        assert_eq!(find_attr(item, NBD_SOCK_FD).and_then(|p| ne32(p, 0)), Some(7));
        // The nested attributes carry NLA_F_NESTED on the wire.
        let raw_types: Vec<u16> = {
            let mut at = 0;
            let mut v = Vec::new();
            while at < attrs.len() {
                v.push(ne16(attrs, at + 2).expect("type"));
                at += usize::from(ne16(attrs, at).expect("len")).next_multiple_of(4);
            }
            v
        };
        assert!(raw_types.contains(&(NBD_ATTR_SOCKETS | NLA_F_NESTED)));
    }

    #[test]
    fn getfamily_and_disconnect_layout() {
        let m = getfamily_message(4);
        assert_eq!(ne16(&m, 4), Some(GENL_ID_CTRL));
        assert_eq!(m[16], CTRL_CMD_GETFAMILY);
        assert_eq!(find_attr(&m[20..], CTRL_ATTR_FAMILY_NAME), Some(&b"nbd\0"[..]));
        let d = disconnect_message(0x22, 5, 12);
        assert_eq!(d[16], NBD_CMD_DISCONNECT);
        assert_eq!(find_attr(&d[20..], NBD_ATTR_INDEX).and_then(|p| ne32(p, 0)), Some(12));
        assert_eq!(d.len(), 28);
    }

    fn nlmsg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(body);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    #[test]
    fn replies_parse_data_acks_and_errors() {
        let mut attrs = Vec::new();
        put_attr(&mut attrs, CTRL_ATTR_FAMILY_NAME, b"nbd\0");
        put_attr(&mut attrs, CTRL_ATTR_FAMILY_ID, &0x1bu16.to_ne_bytes());
        let mut data = vec![1, 2, 0, 0];
        data.extend_from_slice(&attrs);
        let mut buf = nlmsg(GENL_ID_CTRL, 7, &data);
        buf.extend(nlmsg(NLMSG_ERROR, 6, &(-1i32).to_ne_bytes())); // another request's
        buf.extend(nlmsg(NLMSG_ERROR, 7, &0i32.to_ne_bytes()));
        let replies = parse_replies(&buf, 7).expect("parses");
        assert_eq!(replies.len(), 2);
        let Reply::Data(a) = &replies[0] else { panic!("expected data, got {replies:?}") };
        assert_eq!(find_attr(a, CTRL_ATTR_FAMILY_ID).and_then(|p| ne16(p, 0)), Some(0x1b));
        assert_eq!(replies[1], Reply::Ack);
        let err = nlmsg(NLMSG_ERROR, 3, &(-libc::EBUSY).to_ne_bytes());
        assert_eq!(parse_replies(&err, 3).expect("parses"), vec![Reply::Error(libc::EBUSY)]);
        // A length running past the datagram is refused, not followed.
        let mut bad = nlmsg(NLMSG_ERROR, 3, &0i32.to_ne_bytes());
        bad[0] = 200;
        assert!(parse_replies(&bad, 3).is_err());
        assert!(find_attr(&[8, 0, 1, 0], 1).is_none());
    }

    #[test]
    fn device_names_map_to_indexes() {
        assert_eq!(device_index("/dev/nbd0"), Some(0));
        assert_eq!(device_index("/dev/nbd15"), Some(15));
        assert_eq!(device_index("nbd7"), Some(7));
        for bad in ["/dev/nbd", "/dev/sda", "/dev/nbd01", "/dev/nbd1p1", "nbd-1"] {
            assert_eq!(device_index(bad), None, "{bad}");
        }
    }
}
