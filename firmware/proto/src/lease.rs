//! DHCP-format lease messages (RFC 2131 header, RFC 2132 options).
//!
//! Owns the byte layout of the messages the lease server and client
//! exchange on the storage net: [`Packet::parse`] turns an untrusted UDP
//! payload into a typed [`Packet`] and never panics; [`Packet::emit`] writes
//! one back. The decisions (who gets which address, when to reply) live in
//! `opie_core::lease`; sockets live in `opie-sys`.
//!
//! The parser is written here instead of going through dhcproto, whose
//! decoder panics on `hlen > 16`, ignores the magic cookie and accepts
//! truncated options: every one of those is a refusal here, with its own
//! [`PacketError`] variant so the server can count it. Only the options Opie
//! uses are kept; others are skipped (but still bounds-checked). Option
//! overload (52) is not followed, so options in `sname`/`file` are ignored
//! and no chain of overloads can loop.
//!
//! Fixed header (all integers big-endian):
//!
//! ```text
//! offset  size  field
//!      0     1  op       1 = BOOTREQUEST, 2 = BOOTREPLY
//!      1     1  htype    1 = Ethernet
//!      2     1  hlen     hardware address length, <= 16
//!      3     1  hops
//!      4     4  xid      transaction id chosen by the client
//!      8     2  secs
//!     10     2  flags    bit 15 = BROADCAST
//!     12     4  ciaddr   client's current address (renew, rebind, inform)
//!     16     4  yiaddr   address offered or acknowledged
//!     20     4  siaddr   next server (unused by Opie, emitted as zero)
//!     24     4  giaddr   relay agent
//!     28    16  chaddr   hardware address, first hlen bytes significant
//!     44    64  sname    ignored
//!    108   128  file     ignored
//!    236     4  cookie   99 130 83 99
//!    240     .  options  code(1) len(1) data(len); 0 = pad, 255 = end
//! ```

use std::net::Ipv4Addr;

use thiserror::Error;

/// Bytes of the fixed header before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// The magic cookie that starts the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Smallest datagram accepted: header, cookie and at least one option byte.
pub const MIN_LEN: usize = HEADER_LEN + 4 + 1;
/// Largest datagram accepted. The storage net is Ethernet with a 1500-byte
/// MTU, so an IPv4/UDP payload cannot be longer than 1500 - 28.
pub const MAX_LEN: usize = 1472;
/// BOOTP's minimum message size; replies are padded up to it because some
/// relays and old clients drop shorter ones.
pub const MIN_EMIT_LEN: usize = 300;
/// Longest hardware address the header can carry.
pub const MAX_HLEN: u8 = 16;
/// The BROADCAST bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// Most addresses kept from one list option (router, DNS); a longer list is
/// still accepted but truncated, so a packet cannot grow memory.
pub const MAX_ADDRS: usize = 8;

/// Option codes (RFC 2132) that Opie reads or writes.
mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMS: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const RENEWAL: u8 = 58;
    pub const REBINDING: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const VENDOR_INFO: u8 = 43;
    pub const END: u8 = 255;
}

/// BOOTP op code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Client to server.
    Request,
    /// Server to client.
    Reply,
}

/// DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
        }
    }
}

/// The options Opie understands. Absent options are `None` or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<Vec<u8>>,
    pub requested_ip: Option<Ipv4Addr>,
    pub lease_time: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    pub params: Option<Vec<u8>>,
    pub message: Option<Vec<u8>>,
    pub max_size: Option<u16>,
    pub renewal_time: Option<u32>,
    pub rebinding_time: Option<u32>,
    pub vendor_class: Option<Vec<u8>>,
    pub vendor_info: Option<Vec<u8>>,
    pub client_id: Option<Vec<u8>>,
}

/// One DHCP message, header and understood options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub op: Op,
    pub htype: u8,
    /// At most [`MAX_HLEN`]; `chaddr[hlen..]` is zero after parsing.
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    pub message_type: MessageType,
    pub options: Options,
}

/// Why a datagram is not a DHCP message Opie accepts.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than header, cookie and one option byte.
    #[error("datagram of {0} bytes is too short for a DHCP message")]
    TooShort(usize),
    /// Longer than an Ethernet frame can carry.
    #[error("datagram of {0} bytes is longer than {MAX_LEN}")]
    TooLong(usize),
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    #[error("unknown BOOTP op {0}")]
    BadOp(u8),
    /// `hlen` does not fit the 16-byte `chaddr` field.
    #[error("hardware address length {0} exceeds 16")]
    BadHlen(u8),
    /// The options field does not start with the magic cookie.
    #[error("missing DHCP magic cookie")]
    NoCookie,
    /// An option's length runs past the end of the datagram, or the
    /// options end without an END option.
    #[error("option {code} truncated at offset {offset}")]
    TruncatedOption { code: u8, offset: usize },
    /// A fixed-size option has the wrong length.
    #[error("option {code} has length {len}, expected {expected}")]
    BadOptionLength { code: u8, len: usize, expected: &'static str },
    /// No message type option: a plain BOOTP packet.
    #[error("no DHCP message type option")]
    NoMessageType,
    /// The message type option holds an unknown value.
    #[error("unknown DHCP message type {0}")]
    BadMessageType(u8),
}

impl Packet {
    /// The broadcast flag of the header.
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// The significant bytes of `chaddr`.
    pub fn hw_addr(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen.min(MAX_HLEN))]
    }

    /// Parses one UDP payload. Never panics, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() < MIN_LEN {
            return Err(PacketError::TooShort(bytes.len()));
        }
        if bytes.len() > MAX_LEN {
            return Err(PacketError::TooLong(bytes.len()));
        }
        let op = match bytes[0] {
            1 => Op::Request,
            2 => Op::Reply,
            other => return Err(PacketError::BadOp(other)),
        };
        let hlen = bytes[2];
        if hlen > MAX_HLEN {
            return Err(PacketError::BadHlen(hlen));
        }
        if bytes[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
            return Err(PacketError::NoCookie);
        }
        let mut chaddr = [0u8; 16];
        let hw = usize::from(hlen);
        chaddr[..hw].copy_from_slice(&bytes[28..28 + hw]);
        let (message_type, options) = parse_options(&bytes[HEADER_LEN + 4..], HEADER_LEN + 4)?;
        Ok(Packet {
            op,
            htype: bytes[1],
            hlen,
            hops: bytes[3],
            xid: u32::from_be_bytes(arr(bytes, 4)),
            secs: u16::from_be_bytes(arr(bytes, 8)),
            flags: u16::from_be_bytes(arr(bytes, 10)),
            ciaddr: Ipv4Addr::from(arr::<4>(bytes, 12)),
            yiaddr: Ipv4Addr::from(arr::<4>(bytes, 16)),
            siaddr: Ipv4Addr::from(arr::<4>(bytes, 20)),
            giaddr: Ipv4Addr::from(arr::<4>(bytes, 24)),
            chaddr,
            message_type,
            options,
        })
    }

    /// Emits the message, padded to [`MIN_EMIT_LEN`]. Variable options are
    /// cut to 255 bytes and address lists to [`MAX_ADDRS`] entries, so the
    /// output is always something [`Packet::parse`] accepts.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_EMIT_LEN + 64);
        out.push(match self.op {
            Op::Request => 1,
            Op::Reply => 2,
        });
        out.push(self.htype);
        out.push(self.hlen.min(MAX_HLEN));
        out.push(self.hops);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        let mut chaddr = [0u8; 16];
        let hw = usize::from(self.hlen.min(MAX_HLEN));
        chaddr[..hw].copy_from_slice(&self.chaddr[..hw]);
        out.extend_from_slice(&chaddr);
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&MAGIC_COOKIE);
        put(&mut out, code::MESSAGE_TYPE, &[self.message_type.to_u8()]);
        let o = &self.options;
        if let Some(a) = o.server_id {
            put(&mut out, code::SERVER_ID, &a.octets());
        }
        if let Some(v) = o.lease_time {
            put(&mut out, code::LEASE_TIME, &v.to_be_bytes());
        }
        if let Some(v) = o.renewal_time {
            put(&mut out, code::RENEWAL, &v.to_be_bytes());
        }
        if let Some(v) = o.rebinding_time {
            put(&mut out, code::REBINDING, &v.to_be_bytes());
        }
        if let Some(a) = o.subnet_mask {
            put(&mut out, code::SUBNET_MASK, &a.octets());
        }
        put_addrs(&mut out, code::ROUTER, &o.routers);
        put_addrs(&mut out, code::DNS, &o.dns);
        if let Some(a) = o.requested_ip {
            put(&mut out, code::REQUESTED_IP, &a.octets());
        }
        if let Some(v) = o.max_size {
            put(&mut out, code::MAX_SIZE, &v.to_be_bytes());
        }
        for (c, v) in [
            (code::HOSTNAME, &o.hostname),
            (code::PARAMS, &o.params),
            (code::MESSAGE, &o.message),
            (code::VENDOR_CLASS, &o.vendor_class),
            (code::VENDOR_INFO, &o.vendor_info),
            (code::CLIENT_ID, &o.client_id),
        ] {
            if let Some(v) = v {
                put(&mut out, c, &v[..v.len().min(255)]);
            }
        }
        out.push(code::END);
        if out.len() < MIN_EMIT_LEN {
            out.resize(MIN_EMIT_LEN, 0);
        }
        out
    }
}

/// Walks the options after the cookie. `base` is the options' offset in
/// the datagram, for error messages. The first occurrence of an option
/// wins; repeats are skipped.
fn parse_options(mut rest: &[u8], base: usize) -> Result<(MessageType, Options), PacketError> {
    let total = rest.len();
    let mut o = Options::default();
    let mut message_type = None;
    loop {
        let offset = base + total - rest.len();
        let Some((&c, tail)) = rest.split_first() else {
            // Ran out of bytes before END: a truncated datagram.
            return Err(PacketError::TruncatedOption { code: code::END, offset });
        };
        match c {
            code::PAD => {
                rest = tail;
                continue;
            }
            code::END => break,
            _ => {}
        }
        // code(1) len(1) data(len)
        let Some((&len, tail)) = tail.split_first() else {
            return Err(PacketError::TruncatedOption { code: c, offset });
        };
        let len = usize::from(len);
        if tail.len() < len {
            return Err(PacketError::TruncatedOption { code: c, offset });
        }
        let (data, tail) = tail.split_at(len);
        rest = tail;
        match c {
            code::MESSAGE_TYPE => {
                let v = fixed::<1>(c, data, "1")?[0];
                if message_type.is_none() {
                    message_type = Some(MessageType::from_u8(v).ok_or(PacketError::BadMessageType(v))?);
                }
            }
            code::SUBNET_MASK => first(&mut o.subnet_mask, Ipv4Addr::from(fixed::<4>(c, data, "4")?)),
            code::REQUESTED_IP => first(&mut o.requested_ip, Ipv4Addr::from(fixed::<4>(c, data, "4")?)),
            code::SERVER_ID => first(&mut o.server_id, Ipv4Addr::from(fixed::<4>(c, data, "4")?)),
            code::LEASE_TIME => first(&mut o.lease_time, u32::from_be_bytes(fixed(c, data, "4")?)),
            code::RENEWAL => first(&mut o.renewal_time, u32::from_be_bytes(fixed(c, data, "4")?)),
            code::REBINDING => first(&mut o.rebinding_time, u32::from_be_bytes(fixed(c, data, "4")?)),
            code::MAX_SIZE => first(&mut o.max_size, u16::from_be_bytes(fixed(c, data, "2")?)),
            code::ROUTER => addrs(&mut o.routers, c, data)?,
            code::DNS => addrs(&mut o.dns, c, data)?,
            code::HOSTNAME => first(&mut o.hostname, data.to_vec()),
            code::PARAMS => first(&mut o.params, data.to_vec()),
            code::MESSAGE => first(&mut o.message, data.to_vec()),
            code::VENDOR_CLASS => first(&mut o.vendor_class, data.to_vec()),
            code::VENDOR_INFO => first(&mut o.vendor_info, data.to_vec()),
            code::CLIENT_ID => first(&mut o.client_id, data.to_vec()),
            _ => {}
        }
    }
    let message_type = message_type.ok_or(PacketError::NoMessageType)?;
    Ok((message_type, o))
}

/// Keeps the first value seen for an option.
fn first<T>(slot: &mut Option<T>, value: T) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

fn fixed<const N: usize>(code: u8, data: &[u8], expected: &'static str) -> Result<[u8; N], PacketError> {
    data.try_into().map_err(|_| PacketError::BadOptionLength { code, len: data.len(), expected })
}

/// An address list: a non-empty multiple of 4 bytes, first list wins.
fn addrs(list: &mut Vec<Ipv4Addr>, code: u8, data: &[u8]) -> Result<(), PacketError> {
    if data.is_empty() || !data.len().is_multiple_of(4) {
        return Err(PacketError::BadOptionLength { code, len: data.len(), expected: "a multiple of 4" });
    }
    if list.is_empty() {
        list.extend(data.chunks_exact(4).take(MAX_ADDRS).map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3])));
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, code: u8, data: &[u8]) {
    out.push(code);
    // Callers cap data at 255 bytes.
    out.push(data.len().min(255) as u8);
    out.extend_from_slice(&data[..data.len().min(255)]);
}

fn put_addrs(out: &mut Vec<u8>, code: u8, list: &[Ipv4Addr]) {
    if list.is_empty() {
        return;
    }
    let bytes: Vec<u8> = list.iter().take(MAX_ADDRS).flat_map(|a| a.octets()).collect();
    put(out, code, &bytes);
}

/// Copies a fixed-size field out of a buffer whose length was checked.
fn arr<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Fuzzing helper: parses `bytes`; when that succeeds, emits the packet and
/// checks the emitted bytes parse to the same value. Panics on a mismatch,
/// which is what the fuzz target looks for.
pub fn fuzz_round_trip(bytes: &[u8]) {
    if let Ok(packet) = Packet::parse(bytes) {
        let again = Packet::parse(&packet.emit()).expect("emitted packet must parse");
        assert_eq!(packet, again, "parse -> emit -> parse changed the packet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover() -> Packet {
        Packet {
            op: Op::Request,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0xdead_beef,
            secs: 3,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            message_type: MessageType::Discover,
            options: Options {
                params: Some(vec![1, 3, 6, 51]),
                vendor_class: Some(b"opie-isu".to_vec()),
                client_id: Some(vec![1, 2, 0, 0, 0, 0, 1]),
                hostname: Some(b"isu-1".to_vec()),
                ..Options::default()
            },
        }
    }

    fn ack() -> Packet {
        Packet {
            op: Op::Reply,
            yiaddr: Ipv4Addr::new(10, 77, 0, 100),
            message_type: MessageType::Ack,
            options: Options {
                server_id: Some(Ipv4Addr::new(10, 77, 0, 1)),
                lease_time: Some(3600),
                renewal_time: Some(1800),
                rebinding_time: Some(3150),
                subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                routers: vec![Ipv4Addr::new(10, 77, 0, 1)],
                dns: vec![Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)],
                ..Options::default()
            },
            ..discover()
        }
    }

    // DISCOVERs captured from stock clients in a network namespace (client
    // MAC 02:00:00:00:00:42): busybox udhcpc 1.35.0, ISC dhclient 4.4.3,
    // dhcpcd 9.4.1. Their UDP payloads, as hex.
    const UDHCPC_DISCOVER: &str = concat!(
        "0101060069cfe77f00000000000000000000000000000000000000000200000000420000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363",
        "3501013902024037070103060c0f1c2a3c0c756468637020312e33352e303d0701020000000042ff0000000000000000",
        "000000000000000000000000",
    );
    const DHCLIENT_DISCOVER: &str = concat!(
        "010106003b692e7600000000000000000000000000000000000000000200000000420000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363",
        "3501013707011c02030f060cff0000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000",
    );
    const DHCPCD_DISCOVER: &str = concat!(
        "01010600f75d378800000000000000000000000000000000000000000200000000420000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063825363",
        "350101370701031c21333a3b390205c03c366468637063642d392e342e313a4c696e75782d362e31382e34342d66632d",
        "763636393a7838365f36343a41757468656e746963414d44910101ff",
    );

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn golden_discovers_from_stock_clients_parse() {
        for (name, hex, vendor) in [
            ("udhcpc", UDHCPC_DISCOVER, Some(&b"udhcp 1.35.0"[..])),
            ("dhclient", DHCLIENT_DISCOVER, None),
            ("dhcpcd", DHCPCD_DISCOVER, Some(&b"dhcpcd-9.4.1:"[..])),
        ] {
            let bytes = unhex(hex);
            let p = Packet::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.op, Op::Request, "{name}");
            assert_eq!(p.message_type, MessageType::Discover, "{name}");
            assert_eq!(p.hw_addr(), &[2, 0, 0, 0, 0, 0x42], "{name}");
            assert!(!p.broadcast(), "{name}");
            assert!(p.options.params.as_ref().is_some_and(|l| l.contains(&1)), "{name} asks for the subnet mask");
            match vendor {
                Some(v) => assert!(p.options.vendor_class.as_ref().is_some_and(|c| c.starts_with(v)), "{name}"),
                None => assert_eq!(p.options.vendor_class, None, "{name}"),
            }
            fuzz_round_trip(&bytes);
            // Every prefix that cuts the header or the options is refused.
            let end = bytes.iter().rposition(|&b| b == 255).expect("END option");
            for len in 0..=end {
                assert!(Packet::parse(&bytes[..len]).is_err(), "{name}: prefix of {len} bytes accepted");
            }
        }
        let u = Packet::parse(&unhex(UDHCPC_DISCOVER)).expect("udhcpc");
        assert_eq!(u.options.max_size, Some(576));
        assert_eq!(u.options.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 0x42][..]));
    }

    #[test]
    fn round_trips_request_and_reply() {
        for p in [discover(), ack()] {
            let bytes = p.emit();
            assert!(bytes.len() >= MIN_EMIT_LEN);
            assert_eq!(Packet::parse(&bytes), Ok(p));
        }
    }

    #[test]
    fn emitted_layout_matches_rfc_offsets() {
        let bytes = ack().emit();
        assert_eq!(bytes[0], 2);
        assert_eq!(&bytes[4..8], &0xdead_beef_u32.to_be_bytes());
        assert_eq!(&bytes[10..12], &[0x80, 0]);
        assert_eq!(&bytes[16..20], &[10, 77, 0, 100]);
        assert_eq!(&bytes[28..34], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&bytes[236..240], &MAGIC_COOKIE);
        assert_eq!(&bytes[240..243], &[53, 1, 5]);
    }

    #[test]
    fn every_truncated_prefix_is_refused_without_panic() {
        let bytes = discover().emit();
        // Emitted options end well before the padding; every cut inside the
        // header or the options is an error, cuts in the padding after END
        // still parse.
        let end = bytes.iter().rposition(|&b| b == 255).expect("END option");
        for len in 0..=end {
            assert!(Packet::parse(&bytes[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        assert!(Packet::parse(&bytes[..=end]).is_ok());
    }

    #[test]
    fn hostile_headers_are_refused() {
        let good = discover().emit();
        let mut b = good.clone();
        b[2] = 17;
        assert_eq!(Packet::parse(&b), Err(PacketError::BadHlen(17)));
        let mut b = good.clone();
        b[2] = 255;
        assert_eq!(Packet::parse(&b), Err(PacketError::BadHlen(255)));
        let mut b = good.clone();
        b[236] = 0;
        assert_eq!(Packet::parse(&b), Err(PacketError::NoCookie));
        let mut b = good.clone();
        b[0] = 9;
        assert_eq!(Packet::parse(&b), Err(PacketError::BadOp(9)));
        assert_eq!(Packet::parse(&[0u8; 10]), Err(PacketError::TooShort(10)));
        let mut big = good.clone();
        big.resize(MAX_LEN + 1, 0);
        assert_eq!(Packet::parse(&big), Err(PacketError::TooLong(MAX_LEN + 1)));
    }

    #[test]
    fn hlen_sixteen_is_the_largest_accepted() {
        let mut b = discover().emit();
        b[2] = 16;
        let p = Packet::parse(&b).expect("hlen 16");
        assert_eq!(p.hw_addr().len(), 16);
    }

    #[test]
    fn bad_options_are_refused() {
        let mut base = discover().emit();
        base.truncate(240);
        // Option length runs past the end.
        let mut b = base.clone();
        b.extend_from_slice(&[53, 1, 1, 12, 200, b'x']);
        assert!(matches!(Packet::parse(&b), Err(PacketError::TruncatedOption { code: 12, .. })));
        // No END option.
        let mut b = base.clone();
        b.extend_from_slice(&[53, 1, 1]);
        assert!(matches!(Packet::parse(&b), Err(PacketError::TruncatedOption { code: 255, .. })));
        // Wrong fixed length.
        let mut b = base.clone();
        b.extend_from_slice(&[53, 1, 1, 50, 3, 1, 2, 3, 255]);
        assert!(matches!(Packet::parse(&b), Err(PacketError::BadOptionLength { code: 50, .. })));
        // Plain BOOTP.
        let mut b = base.clone();
        b.push(255);
        assert_eq!(Packet::parse(&b), Err(PacketError::NoMessageType));
        // Unknown message type.
        let mut b = base.clone();
        b.extend_from_slice(&[53, 1, 42, 255]);
        assert_eq!(Packet::parse(&b), Err(PacketError::BadMessageType(42)));
        // Overload (52) is not followed, so a self-referencing overload
        // cannot loop; the options before END still count.
        let mut b = base.clone();
        b.extend_from_slice(&[52, 1, 3, 53, 1, 1, 255]);
        assert_eq!(Packet::parse(&b).expect("overload ignored").message_type, MessageType::Discover);
    }

    #[test]
    fn first_occurrence_wins_and_unknown_options_are_skipped() {
        let mut b = discover().emit();
        b.truncate(240);
        b.extend_from_slice(&[53, 1, 3, 200, 2, 9, 9, 50, 4, 10, 77, 0, 5, 50, 4, 10, 77, 0, 6, 53, 1, 1, 255]);
        let p = Packet::parse(&b).expect("valid");
        assert_eq!(p.message_type, MessageType::Request);
        assert_eq!(p.options.requested_ip, Some(Ipv4Addr::new(10, 77, 0, 5)));
    }

    #[test]
    fn every_single_bit_flip_parses_or_errors_without_panic() {
        let bytes = ack().emit();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            fuzz_round_trip(&bad);
        }
    }
}
