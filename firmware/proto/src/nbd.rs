//! NBD wire format: the fixed-newstyle handshake and the transmission-phase
//! request and simple-reply headers.
//!
//! This module owns byte layouts only. It parses untrusted bytes into typed
//! values (checked, never panicking, never allocating more than a capped
//! length allows) and emits typed values back into bytes. Which options and
//! commands Opie accepts, and what it answers, is decided by
//! `opie_core::nbd`; moving bytes to and from sockets and disks is the job of
//! `opie-sys` and the daemon.
//!
//! Spec: the NBD protocol document (`doc/proto.md` in the NetworkBlockDevice
//! `nbd` repository), "fixed newstyle negotiation" and "simple replies".
//! Structured replies and extended headers are not spoken: the server refuses
//! those options, so clients fall back to simple replies.
//!
//! All integers are big-endian (network order).

use thiserror::Error;

/// `"NBDMAGIC"`, first word of the server greeting.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `"IHAVEOPT"`: second word of the greeting and prefix of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Prefix of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Prefix of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Prefix of every simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Server handshake flag: fixed newstyle negotiation is spoken.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Server handshake flag: the 124 zero bytes after NBD_OPT_EXPORT_NAME may
/// be left out when the client asks.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: the client speaks fixed newstyle.
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: leave out the 124 zero bytes after NBD_OPT_EXPORT_NAME.
pub const CLIENT_NO_ZEROES: u32 = 1 << 1;

/// Option codes (`NBD_OPT_*`).
pub mod opt {
    pub const EXPORT_NAME: u32 = 1;
    pub const ABORT: u32 = 2;
    pub const LIST: u32 = 3;
    pub const PEEK_EXPORT: u32 = 4;
    pub const STARTTLS: u32 = 5;
    pub const INFO: u32 = 6;
    pub const GO: u32 = 7;
    pub const STRUCTURED_REPLY: u32 = 8;
    pub const LIST_META_CONTEXT: u32 = 9;
    pub const SET_META_CONTEXT: u32 = 10;
    pub const EXTENDED_HEADERS: u32 = 11;
}

/// Option reply types (`NBD_REP_*`). Errors have bit 31 set.
pub mod rep {
    pub const ACK: u32 = 1;
    pub const SERVER: u32 = 2;
    pub const INFO: u32 = 3;
    pub const META_CONTEXT: u32 = 4;
    pub const ERR_UNSUP: u32 = (1 << 31) | 1;
    pub const ERR_POLICY: u32 = (1 << 31) | 2;
    pub const ERR_INVALID: u32 = (1 << 31) | 3;
    pub const ERR_PLATFORM: u32 = (1 << 31) | 4;
    pub const ERR_TLS_REQD: u32 = (1 << 31) | 5;
    pub const ERR_UNKNOWN: u32 = (1 << 31) | 6;
    pub const ERR_SHUTDOWN: u32 = (1 << 31) | 7;
    pub const ERR_BLOCK_SIZE_REQD: u32 = (1 << 31) | 8;
    pub const ERR_TOO_BIG: u32 = (1 << 31) | 9;
}

/// Information types inside `NBD_REP_INFO` (`NBD_INFO_*`).
pub mod info {
    pub const EXPORT: u16 = 0;
    pub const NAME: u16 = 1;
    pub const DESCRIPTION: u16 = 2;
    pub const BLOCK_SIZE: u16 = 3;
}

/// Transmission flags (`NBD_FLAG_*`), sent with the export size.
pub mod tflag {
    pub const HAS_FLAGS: u16 = 1 << 0;
    pub const READ_ONLY: u16 = 1 << 1;
    pub const SEND_FLUSH: u16 = 1 << 2;
    pub const SEND_FUA: u16 = 1 << 3;
    pub const ROTATIONAL: u16 = 1 << 4;
    pub const SEND_TRIM: u16 = 1 << 5;
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    pub const SEND_DF: u16 = 1 << 7;
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
    pub const SEND_RESIZE: u16 = 1 << 9;
    pub const SEND_CACHE: u16 = 1 << 10;
    pub const SEND_FAST_ZERO: u16 = 1 << 11;
}

/// Command types (`NBD_CMD_*`).
pub mod cmd {
    pub const READ: u16 = 0;
    pub const WRITE: u16 = 1;
    pub const DISC: u16 = 2;
    pub const FLUSH: u16 = 3;
    pub const TRIM: u16 = 4;
    pub const CACHE: u16 = 5;
    pub const WRITE_ZEROES: u16 = 6;
    pub const BLOCK_STATUS: u16 = 7;
    pub const RESIZE: u16 = 8;
}

/// Command flags (`NBD_CMD_FLAG_*`).
pub mod cflag {
    pub const FUA: u16 = 1 << 0;
    pub const NO_HOLE: u16 = 1 << 1;
    pub const DF: u16 = 1 << 2;
    pub const REQ_ONE: u16 = 1 << 3;
    pub const FAST_ZERO: u16 = 1 << 4;
    pub const PAYLOAD_LEN: u16 = 1 << 5;
}

/// Error values carried in simple replies (`NBD_E*`; Linux numbering).
pub mod errno {
    pub const EPERM: u32 = 1;
    pub const EIO: u32 = 5;
    pub const ENOMEM: u32 = 12;
    pub const EINVAL: u32 = 22;
    pub const ENOSPC: u32 = 28;
    pub const EOVERFLOW: u32 = 75;
    pub const ENOTSUP: u32 = 95;
    pub const ESHUTDOWN: u32 = 108;
}

/// Bytes in the server greeting.
pub const GREETING_LEN: usize = 18;
/// Bytes in the client flags word.
pub const CLIENT_FLAGS_LEN: usize = 4;
/// Bytes in an option header (before its data).
pub const OPTION_HEADER_LEN: usize = 16;
/// Bytes in an option reply header (before its data).
pub const OPTION_REPLY_HEADER_LEN: usize = 20;
/// Bytes in a transmission request header (before a write payload).
pub const REQUEST_LEN: usize = 28;
/// Bytes in a simple reply header (before read data).
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Longest export name accepted, as the spec recommends.
pub const MAX_NAME_LEN: usize = 4096;
/// Longest option data accepted: a maximal name plus its framing and a
/// generous list of information requests. Checked before allocating.
pub const MAX_OPTION_DATA: u32 = 8192;
/// Longest option reply data parsed (replies are short; the cap bounds what
/// a hostile server can make a client buffer).
pub const MAX_OPTION_REPLY_DATA: u32 = 65536;

/// Why bytes are not a valid NBD message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NbdError {
    /// Fewer bytes than the message needs; more may arrive.
    #[error("NBD message truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    /// A magic word is not the one the position requires.
    #[error("bad NBD magic {found:#x}, expected {expected:#x}")]
    BadMagic { found: u64, expected: u64 },
    /// An option or reply declares more data than the cap allows.
    #[error("NBD length {len} exceeds the limit of {max}")]
    TooLong { len: u64, max: u64 },
    /// Lengths inside an option do not add up to the option's length.
    #[error("NBD option {option} has inconsistent inner lengths")]
    BadInnerLength { option: u32 },
    /// An option that takes no data carried some.
    #[error("NBD option {option} must carry no data, carries {len} bytes")]
    UnexpectedData { option: u32, len: u32 },
    /// A name or message is not UTF-8.
    #[error("NBD string is not valid UTF-8")]
    InvalidUtf8,
}

/// A bounds-checked big-endian cursor. Every read either succeeds or
/// returns `Truncated`; nothing indexes past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], NbdError> {
        let need = self.pos.saturating_add(n);
        let out = self.buf.get(self.pos..need).ok_or(NbdError::Truncated { have: self.buf.len(), need })?;
        self.pos = need;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], NbdError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, NbdError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, NbdError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, NbdError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn magic64(&mut self, expected: u64) -> Result<(), NbdError> {
        let found = self.u64()?;
        if found == expected { Ok(()) } else { Err(NbdError::BadMagic { found, expected }) }
    }

    fn magic32(&mut self, expected: u32) -> Result<(), NbdError> {
        let found = self.u32()?;
        if found == expected {
            Ok(())
        } else {
            Err(NbdError::BadMagic { found: found.into(), expected: expected.into() })
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, NbdError> {
    std::str::from_utf8(bytes).map_err(|_| NbdError::InvalidUtf8)
}

/// Length of a slice as a wire `u32`. Callers only pass data bounded by the
/// caps above (or by the caller's own buffers), so saturation never happens
/// for valid messages; it keeps emit total instead of panicking.
fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// The server's first message.
///
/// ```text
/// offset size field
///      0    8 NBD_MAGIC ("NBDMAGIC")
///      8    8 IHAVEOPT
///     16    2 handshake flags (FIXED_NEWSTYLE | NO_ZEROES)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub flags: u16,
}

impl Greeting {
    pub fn parse(buf: &[u8]) -> Result<Self, NbdError> {
        let mut r = Reader::new(buf);
        r.magic64(NBD_MAGIC)?;
        r.magic64(IHAVEOPT)?;
        Ok(Greeting { flags: r.u16()? })
    }

    #[must_use]
    pub fn emit(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[0..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
        out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[16..18].copy_from_slice(&self.flags.to_be_bytes());
        out
    }
}

/// The client's answer to the greeting: one 32-bit flags word
/// (`CLIENT_FIXED_NEWSTYLE`, `CLIENT_NO_ZEROES`).
pub fn parse_client_flags(buf: &[u8]) -> Result<u32, NbdError> {
    Reader::new(buf).u32()
}

/// The fixed part of every client option.
///
/// ```text
/// offset size field
///      0    8 IHAVEOPT
///      8    4 option code (NBD_OPT_*)
///     12    4 data length (capped at MAX_OPTION_DATA before allocating)
///     16    n data
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    pub option: u32,
    pub length: u32,
}

impl OptionHeader {
    /// Parses the header. The length is returned as sent (the caller decides
    /// whether to skip oversized data or to drop the client);
    /// [`ClientOption::parse`] enforces the cap.
    pub fn parse(buf: &[u8]) -> Result<Self, NbdError> {
        let mut r = Reader::new(buf);
        r.magic64(IHAVEOPT)?;
        Ok(OptionHeader { option: r.u32()?, length: r.u32()? })
    }

    #[must_use]
    pub fn emit(&self) -> [u8; OPTION_HEADER_LEN] {
        let mut out = [0u8; OPTION_HEADER_LEN];
        out[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..16].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// The data of NBD_OPT_INFO and NBD_OPT_GO.
///
/// ```text
/// offset   size field
///      0      4 name length n (<= MAX_NAME_LEN)
///      4      n export name (UTF-8)
///    4+n      2 number of information requests k
///    6+n   2k   information types requested (NBD_INFO_*)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoRequest<'a> {
    pub name: &'a str,
    /// Raw big-endian `u16` list; read it with [`InfoRequest::requests`].
    requested: &'a [u8],
}

impl<'a> InfoRequest<'a> {
    /// Builds a request for `name`. `requested` holds the big-endian
    /// information types, two bytes each.
    pub fn new(name: &'a str, requested: &'a [u8]) -> Self {
        InfoRequest { name, requested }
    }

    /// The information types the client asked for, in order.
    pub fn requests(&self) -> impl Iterator<Item = u16> + 'a {
        self.requested.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    fn parse(option: u32, data: &'a [u8]) -> Result<Self, NbdError> {
        let mut r = Reader::new(data);
        let bad = NbdError::BadInnerLength { option };
        let name_len = usize::try_from(r.u32().map_err(|_| bad.clone())?).unwrap_or(usize::MAX);
        if name_len > MAX_NAME_LEN {
            return Err(NbdError::TooLong { len: name_len as u64, max: MAX_NAME_LEN as u64 });
        }
        let name = utf8(r.bytes(name_len).map_err(|_| bad.clone())?)?;
        let count = usize::from(r.u16().map_err(|_| bad.clone())?);
        let requested = r.rest();
        if requested.len() != count * 2 {
            return Err(bad);
        }
        Ok(InfoRequest { name, requested })
    }

    fn emit_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&len32(self.name.as_bytes()).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        let count = u16::try_from(self.requested.len() / 2).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&self.requested[..usize::from(count) * 2]);
    }
}

/// A complete client option, typed by what the server needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOption<'a> {
    /// NBD_OPT_EXPORT_NAME: data is the bare name. Ends negotiation.
    ExportName { name: &'a str },
    /// NBD_OPT_ABORT: data is empty (ignored if not).
    Abort,
    /// NBD_OPT_LIST: data must be empty.
    List,
    /// NBD_OPT_INFO.
    Info(InfoRequest<'a>),
    /// NBD_OPT_GO: like INFO, and enters transmission on success.
    Go(InfoRequest<'a>),
    /// Anything else, with its raw data (STARTTLS, structured replies,
    /// meta contexts, extended headers, codes not yet defined).
    Other { option: u32, data: &'a [u8] },
}

impl<'a> ClientOption<'a> {
    /// Parses the data of option `option`; `data` is exactly the option's
    /// data (its length already checked against [`MAX_OPTION_DATA`]).
    pub fn parse_data(option: u32, data: &'a [u8]) -> Result<Self, NbdError> {
        if data.len() > MAX_OPTION_DATA as usize {
            return Err(NbdError::TooLong { len: data.len() as u64, max: MAX_OPTION_DATA.into() });
        }
        match option {
            opt::EXPORT_NAME => {
                if data.len() > MAX_NAME_LEN {
                    return Err(NbdError::TooLong { len: data.len() as u64, max: MAX_NAME_LEN as u64 });
                }
                Ok(ClientOption::ExportName { name: utf8(data)? })
            }
            opt::ABORT => Ok(ClientOption::Abort),
            opt::LIST if data.is_empty() => Ok(ClientOption::List),
            opt::LIST => Err(NbdError::UnexpectedData { option, len: len32(data) }),
            opt::INFO => Ok(ClientOption::Info(InfoRequest::parse(option, data)?)),
            opt::GO => Ok(ClientOption::Go(InfoRequest::parse(option, data)?)),
            _ => Ok(ClientOption::Other { option, data }),
        }
    }

    /// Parses a whole option (header and data) from the front of `buf`;
    /// returns it and the number of bytes it used.
    pub fn parse(buf: &'a [u8]) -> Result<(Self, usize), NbdError> {
        let header = OptionHeader::parse(buf)?;
        if header.length > MAX_OPTION_DATA {
            return Err(NbdError::TooLong { len: header.length.into(), max: MAX_OPTION_DATA.into() });
        }
        let total = OPTION_HEADER_LEN + header.length as usize;
        let data = buf.get(OPTION_HEADER_LEN..total).ok_or(NbdError::Truncated { have: buf.len(), need: total })?;
        Ok((Self::parse_data(header.option, data)?, total))
    }

    /// The option code on the wire.
    pub fn code(&self) -> u32 {
        match self {
            ClientOption::ExportName { .. } => opt::EXPORT_NAME,
            ClientOption::Abort => opt::ABORT,
            ClientOption::List => opt::LIST,
            ClientOption::Info(_) => opt::INFO,
            ClientOption::Go(_) => opt::GO,
            ClientOption::Other { option, .. } => *option,
        }
    }

    /// Appends header and data to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; OPTION_HEADER_LEN]);
        match self {
            ClientOption::ExportName { name } => out.extend_from_slice(name.as_bytes()),
            ClientOption::Abort | ClientOption::List => {}
            ClientOption::Info(req) | ClientOption::Go(req) => req.emit_into(out),
            ClientOption::Other { data, .. } => out.extend_from_slice(data),
        }
        let header = OptionHeader { option: self.code(), length: len32(&out[start + OPTION_HEADER_LEN..]) };
        out[start..start + OPTION_HEADER_LEN].copy_from_slice(&header.emit());
    }
}

/// One piece of information in an `NBD_REP_INFO` reply.
///
/// ```text
/// NBD_INFO_EXPORT:     type(2)=0  size(8)  transmission flags(2)
/// NBD_INFO_BLOCK_SIZE: type(2)=3  minimum(4)  preferred(4)  maximum(4)
/// other:               type(2)    opaque data
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    Export { size: u64, flags: u16 },
    BlockSize { min: u32, preferred: u32, max: u32 },
    Other { info_type: u16, data: Vec<u8> },
}

/// What an option reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// `NBD_REP_ACK`, no data.
    Ack,
    /// `NBD_REP_SERVER`: name length(4), name, optional details (dropped
    /// when parsing; Opie sends none).
    Server { name: String },
    /// `NBD_REP_INFO`.
    Info(Info),
    /// Any `NBD_REP_ERR_*` with an optional UTF-8 message as data.
    Error { code: u32, message: String },
    /// Any other non-error reply type, data kept opaque.
    Other { reply_type: u32, data: Vec<u8> },
}

/// A server reply to an option.
///
/// ```text
/// offset size field
///      0    8 OPT_REPLY_MAGIC
///      8    4 option code being answered
///     12    4 reply type (NBD_REP_*)
///     16    4 data length
///     20    n data (layout by reply type, see ReplyBody and Info)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionReply {
    pub option: u32,
    pub body: ReplyBody,
}

impl OptionReply {
    pub fn ack(option: u32) -> Self {
        OptionReply { option, body: ReplyBody::Ack }
    }

    pub fn error(option: u32, code: u32, message: impl Into<String>) -> Self {
        OptionReply { option, body: ReplyBody::Error { code, message: message.into() } }
    }

    /// The reply type on the wire.
    pub fn reply_type(&self) -> u32 {
        match &self.body {
            ReplyBody::Ack => rep::ACK,
            ReplyBody::Server { .. } => rep::SERVER,
            ReplyBody::Info(_) => rep::INFO,
            ReplyBody::Error { code, .. } => *code,
            ReplyBody::Other { reply_type, .. } => *reply_type,
        }
    }

    /// Parses one reply from the front of `buf`; returns it and the bytes
    /// used. Data longer than [`MAX_OPTION_REPLY_DATA`] is refused.
    pub fn parse(buf: &[u8]) -> Result<(Self, usize), NbdError> {
        let mut r = Reader::new(buf);
        r.magic64(OPT_REPLY_MAGIC)?;
        let option = r.u32()?;
        let reply_type = r.u32()?;
        let length = r.u32()?;
        if length > MAX_OPTION_REPLY_DATA {
            return Err(NbdError::TooLong { len: length.into(), max: MAX_OPTION_REPLY_DATA.into() });
        }
        let data = r.bytes(length as usize)?;
        let body = Self::parse_body(option, reply_type, data)?;
        Ok((OptionReply { option, body }, r.pos))
    }

    fn parse_body(option: u32, reply_type: u32, data: &[u8]) -> Result<ReplyBody, NbdError> {
        let bad = NbdError::BadInnerLength { option };
        let mut r = Reader::new(data);
        let body = match reply_type {
            rep::ACK if data.is_empty() => ReplyBody::Ack,
            rep::ACK => {
                return Err(NbdError::UnexpectedData { option, len: len32(data) });
            }
            rep::SERVER => {
                let n = r.u32().map_err(|_| bad.clone())? as usize;
                let name = utf8(r.bytes(n).map_err(|_| bad)?)?.to_owned();
                ReplyBody::Server { name }
            }
            rep::INFO => {
                let info_type = r.u16().map_err(|_| bad.clone())?;
                let info = match info_type {
                    info::EXPORT => Info::Export {
                        size: r.u64().map_err(|_| bad.clone())?,
                        flags: r.u16().map_err(|_| bad.clone())?,
                    },
                    info::BLOCK_SIZE => Info::BlockSize {
                        min: r.u32().map_err(|_| bad.clone())?,
                        preferred: r.u32().map_err(|_| bad.clone())?,
                        max: r.u32().map_err(|_| bad.clone())?,
                    },
                    _ => Info::Other { info_type, data: r.rest().to_vec() },
                };
                if !r.rest().is_empty() {
                    return Err(bad);
                }
                ReplyBody::Info(info)
            }
            code if code & (1 << 31) != 0 => ReplyBody::Error { code, message: utf8(data)?.to_owned() },
            _ => ReplyBody::Other { reply_type, data: data.to_vec() },
        };
        Ok(body)
    }

    /// Appends the header and data to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.option.to_be_bytes());
        out.extend_from_slice(&self.reply_type().to_be_bytes());
        out.extend_from_slice(&[0u8; 4]);
        let data_start = out.len();
        match &self.body {
            ReplyBody::Ack => {}
            ReplyBody::Server { name } => {
                out.extend_from_slice(&len32(name.as_bytes()).to_be_bytes());
                out.extend_from_slice(name.as_bytes());
            }
            ReplyBody::Info(Info::Export { size, flags }) => {
                out.extend_from_slice(&info::EXPORT.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(&flags.to_be_bytes());
            }
            ReplyBody::Info(Info::BlockSize { min, preferred, max }) => {
                out.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
                out.extend_from_slice(&min.to_be_bytes());
                out.extend_from_slice(&preferred.to_be_bytes());
                out.extend_from_slice(&max.to_be_bytes());
            }
            ReplyBody::Info(Info::Other { info_type, data }) => {
                out.extend_from_slice(&info_type.to_be_bytes());
                out.extend_from_slice(data);
            }
            ReplyBody::Error { message, .. } => out.extend_from_slice(message.as_bytes()),
            ReplyBody::Other { data, .. } => out.extend_from_slice(data),
        }
        let len = len32(&out[data_start..]).to_be_bytes();
        out[start + 16..start + 20].copy_from_slice(&len);
    }
}

/// The server's answer to NBD_OPT_EXPORT_NAME (there is no error form: an
/// unknown name is answered by closing the connection).
///
/// ```text
/// offset size field
///      0    8 export size in bytes
///      8    2 transmission flags
///     10  124 zeroes, left out when both sides set NO_ZEROES
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportNameReply {
    pub size: u64,
    pub flags: u16,
    pub no_zeroes: bool,
}

impl ExportNameReply {
    /// Bytes this reply takes on the wire.
    pub fn wire_len(&self) -> usize {
        if self.no_zeroes { 10 } else { 134 }
    }

    pub fn parse(buf: &[u8], no_zeroes: bool) -> Result<Self, NbdError> {
        let mut r = Reader::new(buf);
        let size = r.u64()?;
        let flags = r.u16()?;
        if !no_zeroes {
            r.bytes(124)?;
        }
        Ok(ExportNameReply { size, flags, no_zeroes })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        if !self.no_zeroes {
            out.extend_from_slice(&[0u8; 124]);
        }
    }
}

/// A transmission-phase request header; a WRITE is followed by `length`
/// bytes of payload.
///
/// ```text
/// offset size field
///      0    4 REQUEST_MAGIC
///      4    2 command flags (NBD_CMD_FLAG_*)
///      6    2 command type (NBD_CMD_*)
///      8    8 handle (cookie, echoed in the reply)
///     16    8 offset
///     24    4 length
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub command: u16,
    pub handle: u64,
    pub offset: u64,
    pub length: u32,
}

impl Request {
    pub fn parse(buf: &[u8]) -> Result<Self, NbdError> {
        let mut r = Reader::new(buf);
        r.magic32(REQUEST_MAGIC)?;
        Ok(Request { flags: r.u16()?, command: r.u16()?, handle: r.u64()?, offset: r.u64()?, length: r.u32()? })
    }

    #[must_use]
    pub fn emit(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.command.to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// A simple reply header; a successful READ is followed by its data.
///
/// ```text
/// offset size field
///      0    4 SIMPLE_REPLY_MAGIC
///      4    4 error (0 or NBD_E*)
///      8    8 handle of the request answered
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    pub error: u32,
    pub handle: u64,
}

impl SimpleReply {
    pub fn parse(buf: &[u8]) -> Result<Self, NbdError> {
        let mut r = Reader::new(buf);
        r.magic32(SIMPLE_REPLY_MAGIC)?;
        Ok(SimpleReply { error: r.u32()?, handle: r.u64()? })
    }

    #[must_use]
    pub fn emit(&self) -> [u8; SIMPLE_REPLY_LEN] {
        let mut out = [0u8; SIMPLE_REPLY_LEN];
        out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&self.error.to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
        out
    }
}

/// Fuzz and test helper for handshake messages: whatever of `data` parses
/// as a greeting, client option or option reply must emit to bytes that
/// parse back to the same value. Panics (the fuzzer's signal) otherwise.
pub fn check_handshake_round_trip(data: &[u8]) {
    if let Ok(greeting) = Greeting::parse(data) {
        assert_eq!(Greeting::parse(&greeting.emit()), Ok(greeting));
    }
    if let Ok((option, _)) = ClientOption::parse(data) {
        let mut out = Vec::new();
        option.emit(&mut out);
        assert_eq!(ClientOption::parse(&out), Ok((option, out.len())));
    }
    if let Ok((reply, _)) = OptionReply::parse(data) {
        let mut out = Vec::new();
        reply.emit(&mut out);
        assert_eq!(OptionReply::parse(&out), Ok((reply, out.len())));
    }
    for no_zeroes in [false, true] {
        if let Ok(reply) = ExportNameReply::parse(data, no_zeroes) {
            let mut out = Vec::new();
            reply.emit(&mut out);
            assert_eq!(out.len(), reply.wire_len());
            assert_eq!(ExportNameReply::parse(&out, no_zeroes), Ok(reply));
        }
    }
}

/// Fuzz and test helper for transmission headers: a request or simple
/// reply parsed from `data` emits exactly the bytes it came from and parses
/// back to the same value. Panics otherwise.
pub fn check_request_round_trip(data: &[u8]) {
    if let Ok(request) = Request::parse(data) {
        let bytes = request.emit();
        assert_eq!(&bytes[..], &data[..REQUEST_LEN]);
        assert_eq!(Request::parse(&bytes), Ok(request));
    }
    if let Ok(reply) = SimpleReply::parse(data) {
        let bytes = reply.emit();
        assert_eq!(&bytes[..], &data[..SIMPLE_REPLY_LEN]);
        assert_eq!(SimpleReply::parse(&bytes), Ok(reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `nbdinfo --list nbd://127.0.0.1:PORT` (libnbd 1.14) sent to a
    /// recording server that answered every option with NBD_REP_ERR_UNSUP:
    /// client flags, then NBD_OPT_STRUCTURED_REPLY, then NBD_OPT_LIST.
    const GOLDEN_NBDINFO_LIST: &[u8] = &[
        0, 0, 0, 3, // client flags: FIXED_NEWSTYLE | NO_ZEROES
        0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 8, 0, 0, 0, 0, // STRUCTURED_REPLY
        0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 3, 0, 0, 0, 0, // LIST
    ];

    /// What `qemu-img info nbd://127.0.0.1:PORT/disk` (QEMU 7.2) sent after
    /// the client flags when STRUCTURED_REPLY was refused: NBD_OPT_GO for
    /// "disk" asking for NBD_INFO_BLOCK_SIZE.
    const GOLDEN_QEMU_GO: &[u8] = &[
        0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, 0, 0, 0, 7, 0, 0, 0, 12, // GO, 12 bytes
        0, 0, 0, 4, b'd', b'i', b's', b'k', // name
        0, 1, 0, 3, // one request: BLOCK_SIZE
    ];

    fn all_options() -> Vec<ClientOption<'static>> {
        vec![
            ClientOption::ExportName { name: "disk0" },
            ClientOption::ExportName { name: "" },
            ClientOption::Abort,
            ClientOption::List,
            ClientOption::Info(InfoRequest::new("a", &[0, 3])),
            ClientOption::Go(InfoRequest::new("disk0", &[0, 0, 0, 3])),
            ClientOption::Go(InfoRequest::new("", &[])),
            ClientOption::Other { option: opt::STARTTLS, data: &[] },
            ClientOption::Other { option: opt::SET_META_CONTEXT, data: &[0, 0, 0, 1, 2, 3] },
        ]
    }

    fn all_replies() -> Vec<OptionReply> {
        vec![
            OptionReply::ack(opt::GO),
            OptionReply { option: opt::LIST, body: ReplyBody::Server { name: "disk0".into() } },
            OptionReply {
                option: opt::INFO,
                body: ReplyBody::Info(Info::Export { size: 1 << 40, flags: tflag::HAS_FLAGS | tflag::SEND_FLUSH }),
            },
            OptionReply {
                option: opt::GO,
                body: ReplyBody::Info(Info::BlockSize { min: 1, preferred: 4096, max: 32 << 20 }),
            },
            OptionReply {
                option: opt::GO,
                body: ReplyBody::Info(Info::Other { info_type: info::DESCRIPTION, data: b"text".to_vec() }),
            },
            OptionReply::error(opt::STARTTLS, rep::ERR_UNSUP, "no TLS"),
            OptionReply::error(opt::GO, rep::ERR_UNKNOWN, ""),
            OptionReply {
                option: opt::LIST_META_CONTEXT,
                body: ReplyBody::Other { reply_type: rep::META_CONTEXT, data: vec![0, 0, 0, 1, b'x'] },
            },
        ]
    }

    #[test]
    fn greeting_layout_and_round_trip() {
        let g = Greeting { flags: FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES };
        let bytes = g.emit();
        assert_eq!(&bytes[..8], b"NBDMAGIC");
        assert_eq!(&bytes[8..16], b"IHAVEOPT");
        assert_eq!(&bytes[16..], &[0, 3]);
        assert_eq!(Greeting::parse(&bytes), Ok(g));
    }

    #[test]
    fn options_round_trip() {
        for option in all_options() {
            let mut out = Vec::new();
            option.emit(&mut out);
            assert_eq!(ClientOption::parse(&out), Ok((option, out.len())), "{option:?}");
            check_handshake_round_trip(&out);
        }
    }

    #[test]
    fn replies_round_trip() {
        for reply in all_replies() {
            let mut out = Vec::new();
            reply.emit(&mut out);
            assert_eq!(OptionReply::parse(&out), Ok((reply.clone(), out.len())));
            check_handshake_round_trip(&out);
        }
    }

    #[test]
    fn export_name_reply_round_trips_with_and_without_zeroes() {
        for no_zeroes in [false, true] {
            let reply = ExportNameReply { size: 12345, flags: tflag::HAS_FLAGS, no_zeroes };
            let mut out = Vec::new();
            reply.emit(&mut out);
            assert_eq!(out.len(), reply.wire_len());
            assert_eq!(ExportNameReply::parse(&out, no_zeroes), Ok(reply));
        }
    }

    #[test]
    fn request_and_reply_round_trip() {
        let req = Request {
            flags: cflag::FUA,
            command: cmd::WRITE,
            handle: 0xdead_beef_0102_0304,
            offset: 1 << 33,
            length: 4096,
        };
        let bytes = req.emit();
        assert_eq!(Request::parse(&bytes), Ok(req));
        check_request_round_trip(&bytes);
        let reply = SimpleReply { error: errno::EINVAL, handle: 7 };
        assert_eq!(SimpleReply::parse(&reply.emit()), Ok(reply));
        check_request_round_trip(&reply.emit());
    }

    #[test]
    fn every_truncated_prefix_is_refused() {
        for option in all_options() {
            let mut message = Vec::new();
            option.emit(&mut message);
            for cut in 0..message.len() {
                assert!(
                    matches!(ClientOption::parse(&message[..cut]), Err(NbdError::Truncated { .. })),
                    "option prefix {cut} of {message:?}"
                );
            }
        }
        for reply in all_replies() {
            let mut message = Vec::new();
            reply.emit(&mut message);
            for cut in 0..message.len() {
                assert!(
                    matches!(OptionReply::parse(&message[..cut]), Err(NbdError::Truncated { .. })),
                    "reply prefix {cut} of {message:?}"
                );
            }
        }
        let greeting = Greeting { flags: 3 }.emit();
        let request = Request { flags: 0, command: cmd::READ, handle: 1, offset: 2, length: 3 }.emit();
        let reply = SimpleReply { error: 0, handle: 9 }.emit();
        for cut in 0..GREETING_LEN {
            assert!(matches!(Greeting::parse(&greeting[..cut]), Err(NbdError::Truncated { .. })));
        }
        for cut in 0..REQUEST_LEN {
            assert!(matches!(Request::parse(&request[..cut]), Err(NbdError::Truncated { .. })));
        }
        for cut in 0..SIMPLE_REPLY_LEN {
            assert!(matches!(SimpleReply::parse(&reply[..cut]), Err(NbdError::Truncated { .. })));
        }
        for cut in 0..134 {
            let zeros = [0u8; 134];
            assert!(ExportNameReply::parse(&zeros[..cut], false).is_err());
        }
        assert!(parse_client_flags(&[0, 0, 1]).is_err());
    }

    #[test]
    fn golden_nbdinfo_list_parses() {
        assert_eq!(parse_client_flags(GOLDEN_NBDINFO_LIST), Ok(3));
        let rest = &GOLDEN_NBDINFO_LIST[CLIENT_FLAGS_LEN..];
        let (first, used) = ClientOption::parse(rest).expect("structured reply option");
        assert_eq!(first, ClientOption::Other { option: opt::STRUCTURED_REPLY, data: &[] });
        let (second, used2) = ClientOption::parse(&rest[used..]).expect("list option");
        assert_eq!(second, ClientOption::List);
        assert_eq!(used + used2, rest.len());
    }

    #[test]
    fn golden_qemu_go_parses_and_re_emits_identically() {
        let (option, used) = ClientOption::parse(GOLDEN_QEMU_GO).expect("go option");
        assert_eq!(used, GOLDEN_QEMU_GO.len());
        let ClientOption::Go(req) = option else {
            panic!("expected GO, got {option:?}");
        };
        assert_eq!(req.name, "disk");
        assert_eq!(req.requests().collect::<Vec<_>>(), vec![info::BLOCK_SIZE]);
        let mut out = Vec::new();
        option.emit(&mut out);
        assert_eq!(out, GOLDEN_QEMU_GO);
    }

    #[test]
    fn oversized_and_inconsistent_lengths_are_refused() {
        let huge = OptionHeader { option: opt::GO, length: u32::MAX }.emit();
        assert!(matches!(ClientOption::parse(&huge), Err(NbdError::TooLong { .. })));
        // GO whose name length points past the option data.
        let bad = [0, 0, 0, 9, b'a', 0, 0];
        assert_eq!(ClientOption::parse_data(opt::GO, &bad), Err(NbdError::BadInnerLength { option: opt::GO }));
        // GO whose request count disagrees with the bytes that follow.
        let bad = [0, 0, 0, 1, b'a', 0, 2, 0, 3];
        assert_eq!(ClientOption::parse_data(opt::GO, &bad), Err(NbdError::BadInnerLength { option: opt::GO }));
        let mut long_name = vec![0, 0, 0x10, 0x01];
        long_name.extend(std::iter::repeat_n(b'a', 4097));
        long_name.extend([0, 0]);
        assert!(matches!(ClientOption::parse_data(opt::INFO, &long_name), Err(NbdError::TooLong { .. })));
        assert_eq!(
            ClientOption::parse_data(opt::LIST, &[1]),
            Err(NbdError::UnexpectedData { option: opt::LIST, len: 1 })
        );
        assert_eq!(ClientOption::parse_data(opt::EXPORT_NAME, &[0xff, 0xfe]), Err(NbdError::InvalidUtf8));
        let mut reply = Vec::new();
        reply.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
        reply.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(OptionReply::parse(&reply), Err(NbdError::TooLong { .. })));
    }

    #[test]
    fn bad_magic_is_refused() {
        let mut req = Request { flags: 0, command: 0, handle: 0, offset: 0, length: 0 }.emit();
        req[0] ^= 1;
        assert!(matches!(Request::parse(&req), Err(NbdError::BadMagic { .. })));
        assert!(matches!(OptionHeader::parse(b"GET / HTTP/1.1\r\n\r\n"), Err(NbdError::BadMagic { .. })));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep standing in for the fuzzer on every build.
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..200usize {
            for _ in 0..20 {
                let mut data = Vec::with_capacity(len + 16);
                // Start some inputs with valid magics so parsing goes deep.
                match state % 4 {
                    0 => data.extend_from_slice(&IHAVEOPT.to_be_bytes()),
                    1 => data.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes()),
                    2 => data.extend_from_slice(&REQUEST_MAGIC.to_be_bytes()),
                    _ => {}
                }
                for _ in 0..len {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    data.push((state >> 24) as u8 & if len % 3 == 0 { 0x0f } else { 0xff });
                }
                check_handshake_round_trip(&data);
                check_request_round_trip(&data);
            }
        }
    }
}
