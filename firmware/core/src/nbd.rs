//! NBD server session decisions: what to answer in the fixed-newstyle
//! handshake, and whether each transmission request may run.
//!
//! This module owns the policy and nothing else: it takes parsed messages
//! (`opie_proto::nbd`) and returns the replies to send or the storage
//! operation to run. Reading sockets, touching the disk and timing out slow
//! clients is the daemon's and `opie-sys`'s work.
//!
//! Handshake (spec "fixed newstyle negotiation"): NBD_OPT_GO, NBD_OPT_INFO
//! (NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE), NBD_OPT_LIST, NBD_OPT_ABORT
//! and NBD_OPT_EXPORT_NAME are served; every other option (STARTTLS,
//! structured replies, meta contexts, extended headers, unknown codes) gets
//! NBD_REP_ERR_UNSUP, so clients fall back to simple replies.
//!
//! Export names are resolved through a [`Catalog`]. The catalog sees the
//! whole name the client sent and may refuse it ([`Lookup::Refused`], sent
//! as NBD_REP_ERR_POLICY): that is where the epoch fencing of DESIGN §5 (an
//! epoch and MAC carried in the name) plugs in without changing this
//! module.
//!
//! Transmission: READ, WRITE, FLUSH, TRIM, WRITE_ZEROES (FUA on the writing
//! commands, NO_HOLE on WRITE_ZEROES) and DISC. Requests are checked against
//! the export size, the read-only setting and [`MAX_REQUEST`] before any
//! buffer is sized for them.

use opie_proto::nbd::{
    ClientOption, ExportNameReply, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, Greeting, Info, MAX_OPTION_DATA, OptionHeader,
    OptionReply, ReplyBody, Request, cflag, cmd, errno, opt, rep, tflag,
};
use thiserror::Error;

/// Largest READ or WRITE payload served (32 MiB, DESIGN §5); also the
/// maximum block size advertised. Larger requests are refused before
/// anything is allocated for them.
pub const MAX_REQUEST: u32 = 32 * 1024 * 1024;
/// Block size advertised as preferred (the page size: smaller or unaligned
/// writes cost a read-modify-write in the page cache).
pub const PREFERRED_BLOCK: u32 = 4096;
/// Oversized option data up to this many bytes is skipped and answered
/// with NBD_REP_ERR_TOO_BIG; beyond it the client is dropped.
pub const MAX_SKIPPED_OPTION: u32 = 1024 * 1024;
/// Options one client may send before it is dropped; a real client needs a
/// handful, so this only stops a client that loops.
pub const MAX_OPTIONS: u32 = 256;

/// What the server knows about one export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    /// Size in bytes.
    pub size: u64,
    /// Writes, trims and zeroing are refused with EPERM.
    pub read_only: bool,
    /// Every connection to this export shares one file description (one
    /// page cache) and FLUSH syncs it, so a flush on one connection covers
    /// writes completed on all of them: NBD_FLAG_CAN_MULTI_CONN is true.
    pub shared_cache: bool,
}

impl ExportInfo {
    /// The transmission flags advertised for this export.
    pub fn transmission_flags(&self) -> u16 {
        let mut flags = tflag::HAS_FLAGS | tflag::SEND_FLUSH | tflag::SEND_FUA;
        if self.read_only {
            flags |= tflag::READ_ONLY;
        } else {
            flags |= tflag::SEND_TRIM | tflag::SEND_WRITE_ZEROES;
        }
        if self.shared_cache {
            flags |= tflag::CAN_MULTI_CONN;
        }
        flags
    }
}

/// The answer of a [`Catalog`] to an export name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<E> {
    /// The export exists and this client may use it.
    Found { export: E, info: ExportInfo },
    /// No export has this name.
    Unknown,
    /// The export exists but this client may not use it (for example a
    /// stale fencing epoch); the reason is sent to the client.
    Refused { reason: String },
}

/// The exports a server offers, as the handshake sees them.
pub trait Catalog {
    /// Whatever the daemon needs to serve an export once chosen.
    type Export;
    /// Resolves the name a client sent (possibly empty: the default export).
    fn lookup(&self, name: &str) -> Lookup<Self::Export>;
    /// Names listed by NBD_OPT_LIST.
    fn names(&self) -> Vec<String>;
}

/// What the daemon does next during the handshake, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<E> {
    /// Send an option reply.
    Send(OptionReply),
    /// Send the reply to NBD_OPT_EXPORT_NAME.
    SendExportName(ExportNameReply),
    /// Negotiation is over: serve `export` from the next byte on.
    Transmit { export: E, info: ExportInfo },
    /// Close the connection (after sending what came before).
    Close,
}

/// What to do with the data of an option whose header just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionData {
    /// Read this many bytes and pass them to [`Handshake::on_option`].
    Read(u32),
    /// Read and discard this many bytes, then call
    /// [`Handshake::on_skipped_option`].
    Skip(u32),
    /// Drop the client.
    Close,
}

/// Handshake steps that end the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The client does not speak fixed newstyle (old clients that need the
    /// oldstyle or plain newstyle negotiation are not served).
    #[error("client flags {0:#x} lack NBD_FLAG_C_FIXED_NEWSTYLE")]
    NotFixedNewstyle(u32),
    /// The client set flags this server never offered.
    #[error("client flags {0:#x} include unknown bits")]
    UnknownClientFlags(u32),
    /// A message arrived in a state that does not expect it.
    #[error("NBD handshake message out of order")]
    OutOfOrder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitFlags,
    Options,
    Done,
}

/// The server side of one fixed-newstyle negotiation.
#[derive(Debug)]
pub struct Handshake {
    state: State,
    no_zeroes: bool,
    options_seen: u32,
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    pub fn new() -> Self {
        Handshake { state: State::AwaitFlags, no_zeroes: false, options_seen: 0 }
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Greeting {
        Greeting { flags: FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES }
    }

    /// The client's flags word arrived.
    pub fn on_client_flags(&mut self, flags: u32) -> Result<(), HandshakeError> {
        use opie_proto::nbd::{CLIENT_FIXED_NEWSTYLE, CLIENT_NO_ZEROES};
        if self.state != State::AwaitFlags {
            return Err(HandshakeError::OutOfOrder);
        }
        if flags & !(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES) != 0 {
            return Err(HandshakeError::UnknownClientFlags(flags));
        }
        if flags & CLIENT_FIXED_NEWSTYLE == 0 {
            return Err(HandshakeError::NotFixedNewstyle(flags));
        }
        self.no_zeroes = flags & CLIENT_NO_ZEROES != 0;
        self.state = State::Options;
        Ok(())
    }

    /// An option header arrived: decide how much of its data to read. The
    /// length is checked here, before the daemon allocates anything.
    pub fn on_option_header(&mut self, header: &OptionHeader) -> OptionData {
        if self.state != State::Options {
            return OptionData::Close;
        }
        self.options_seen += 1;
        if self.options_seen > MAX_OPTIONS {
            return OptionData::Close;
        }
        if header.length <= MAX_OPTION_DATA {
            OptionData::Read(header.length)
        } else if header.option != opt::EXPORT_NAME && header.length <= MAX_SKIPPED_OPTION {
            OptionData::Skip(header.length)
        } else {
            OptionData::Close
        }
    }

    /// The data of an oversized option was skipped.
    pub fn on_skipped_option<E>(&mut self, option: u32) -> Vec<Action<E>> {
        vec![Action::Send(OptionReply::error(option, rep::ERR_TOO_BIG, "option data too long"))]
    }

    /// A whole option arrived: `data` is exactly its data.
    pub fn on_option<C: Catalog>(&mut self, option: u32, data: &[u8], catalog: &C) -> Vec<Action<C::Export>> {
        if self.state != State::Options {
            return vec![Action::Close];
        }
        let parsed = match ClientOption::parse_data(option, data) {
            Ok(parsed) => parsed,
            // EXPORT_NAME has no error reply: the only answer is to hang up.
            Err(_) if option == opt::EXPORT_NAME => {
                self.state = State::Done;
                return vec![Action::Close];
            }
            Err(e) => {
                return vec![Action::Send(OptionReply::error(option, rep::ERR_INVALID, e.to_string()))];
            }
        };
        match parsed {
            ClientOption::ExportName { name } => {
                self.state = State::Done;
                match catalog.lookup(name) {
                    Lookup::Found { export, info } => vec![
                        Action::SendExportName(ExportNameReply {
                            size: info.size,
                            flags: info.transmission_flags(),
                            no_zeroes: self.no_zeroes,
                        }),
                        Action::Transmit { export, info },
                    ],
                    Lookup::Unknown | Lookup::Refused { .. } => vec![Action::Close],
                }
            }
            ClientOption::Abort => {
                self.state = State::Done;
                vec![Action::Send(OptionReply::ack(option)), Action::Close]
            }
            ClientOption::List => {
                let mut actions: Vec<_> = catalog
                    .names()
                    .into_iter()
                    .map(|name| Action::Send(OptionReply { option, body: ReplyBody::Server { name } }))
                    .collect();
                actions.push(Action::Send(OptionReply::ack(option)));
                actions
            }
            ClientOption::Info(request) | ClientOption::Go(request) => match catalog.lookup(request.name) {
                Lookup::Found { export, info } => {
                    let mut actions = vec![
                        Action::Send(OptionReply {
                            option,
                            body: ReplyBody::Info(Info::Export { size: info.size, flags: info.transmission_flags() }),
                        }),
                        Action::Send(OptionReply {
                            option,
                            body: ReplyBody::Info(Info::BlockSize {
                                min: 1,
                                preferred: PREFERRED_BLOCK,
                                max: MAX_REQUEST,
                            }),
                        }),
                        Action::Send(OptionReply::ack(option)),
                    ];
                    if option == opt::GO {
                        self.state = State::Done;
                        actions.push(Action::Transmit { export, info });
                    }
                    actions
                }
                Lookup::Unknown => vec![Action::Send(OptionReply::error(
                    option,
                    rep::ERR_UNKNOWN,
                    format!("no export named {:?}", request.name),
                ))],
                Lookup::Refused { reason } => vec![Action::Send(OptionReply::error(option, rep::ERR_POLICY, reason))],
            },
            ClientOption::Other { option, .. } => vec![Action::Send(OptionReply::error(
                option,
                rep::ERR_UNSUP,
                format!("option {option} is not supported"),
            ))],
        }
    }
}

/// A storage operation a request asks for, already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Read `len` bytes at `offset` and send them after the reply header.
    Read { offset: u64, len: u32 },
    /// Receive `len` payload bytes and write them at `offset`; with `fua`
    /// make them durable before replying.
    Write { offset: u64, len: u32, fua: bool },
    /// Make every completed write durable, then reply.
    Flush,
    /// Discard the range (a hint: failing to discard is not an error).
    Trim { offset: u64, len: u32, fua: bool },
    /// Make the range read as zeroes; `may_punch` is false when the client
    /// set NO_HOLE (the range must stay allocated).
    WriteZeroes { offset: u64, len: u32, fua: bool, may_punch: bool },
    /// The client is leaving: close without a reply.
    Disconnect,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Carry it out.
    Run(Command),
    /// Reply with `error`; first read and discard `drain` payload bytes so
    /// the stream stays in step.
    Refuse { error: u32, drain: u32 },
    /// Reply with `error`, then close: the payload is too big to drain.
    RefuseAndClose { error: u32 },
}

/// Checks transmission requests against one export.
#[derive(Debug, Clone, Copy)]
pub struct Transmission {
    info: ExportInfo,
}

impl Transmission {
    pub fn new(info: ExportInfo) -> Self {
        Transmission { info }
    }

    /// Decides what to do with `request`. Never allocates; the daemon sizes
    /// buffers only for `Run` commands, all within [`MAX_REQUEST`].
    pub fn decide(&self, request: &Request) -> Decision {
        let payload = if request.command == cmd::WRITE { request.length } else { 0 };
        let refuse = |error| {
            if payload > MAX_REQUEST {
                Decision::RefuseAndClose { error }
            } else {
                Decision::Refuse { error, drain: payload }
            }
        };
        let allowed = match request.command {
            cmd::WRITE | cmd::TRIM => cflag::FUA,
            cmd::WRITE_ZEROES => cflag::FUA | cflag::NO_HOLE,
            // FUA is meaningless but harmless on the others; clients may set it.
            cmd::READ | cmd::FLUSH | cmd::DISC => cflag::FUA,
            _ => return refuse(errno::EINVAL),
        };
        if request.flags & !allowed != 0 {
            return refuse(errno::EINVAL);
        }
        let fua = request.flags & cflag::FUA != 0;
        let (offset, len) = (request.offset, request.length);
        let writes = matches!(request.command, cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES);
        if writes && self.info.read_only {
            return refuse(errno::EPERM);
        }
        if matches!(request.command, cmd::READ | cmd::WRITE) && len > MAX_REQUEST {
            return refuse(errno::EINVAL);
        }
        let in_range = offset.checked_add(u64::from(len)).is_some_and(|end| end <= self.info.size);
        if writes && !in_range {
            return refuse(errno::ENOSPC);
        }
        if !in_range && request.command == cmd::READ {
            return refuse(errno::EINVAL);
        }
        Decision::Run(match request.command {
            cmd::READ => Command::Read { offset, len },
            cmd::WRITE => Command::Write { offset, len, fua },
            cmd::FLUSH => Command::Flush,
            cmd::TRIM => Command::Trim { offset, len, fua },
            cmd::WRITE_ZEROES => {
                Command::WriteZeroes { offset, len, fua, may_punch: request.flags & cflag::NO_HOLE == 0 }
            }
            _ => Command::Disconnect,
        })
    }
}

/// Maps an OS error number (Linux numbering) from a failed storage
/// operation to the NBD error sent to the client. Unknown causes become EIO.
pub fn errno_for_os_error(os: Option<i32>) -> u32 {
    match os {
        Some(1 | 13 | 30) => errno::EPERM,    // EPERM, EACCES, EROFS
        Some(12) => errno::ENOMEM,            // ENOMEM
        Some(22) => errno::EINVAL,            // EINVAL
        Some(27 | 28 | 122) => errno::ENOSPC, // EFBIG, ENOSPC, EDQUOT
        Some(75) => errno::EOVERFLOW,         // EOVERFLOW
        Some(95) => errno::ENOTSUP,           // EOPNOTSUPP
        Some(108) => errno::ESHUTDOWN,        // ESHUTDOWN
        _ => errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opie_proto::nbd::{CLIENT_FIXED_NEWSTYLE, CLIENT_NO_ZEROES, InfoRequest};

    const INFO: ExportInfo = ExportInfo { size: 1 << 20, read_only: false, shared_cache: true };

    struct Exports;

    impl Catalog for Exports {
        type Export = &'static str;
        fn lookup(&self, name: &str) -> Lookup<&'static str> {
            match name {
                "disk" | "" => Lookup::Found { export: "disk", info: INFO },
                "fenced" => Lookup::Refused { reason: "stale epoch".into() },
                _ => Lookup::Unknown,
            }
        }
        fn names(&self) -> Vec<String> {
            vec!["disk".into()]
        }
    }

    fn ready() -> Handshake {
        let mut hs = Handshake::new();
        hs.on_client_flags(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).expect("valid flags");
        hs
    }

    fn option_data(option: &ClientOption<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        option.emit(&mut out);
        out.split_off(opie_proto::nbd::OPTION_HEADER_LEN)
    }

    fn send(hs: &mut Handshake, option: ClientOption<'_>) -> Vec<Action<&'static str>> {
        hs.on_option(option.code(), &option_data(&option), &Exports)
    }

    fn reply_types(actions: &[Action<&'static str>]) -> Vec<u32> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(r) => Some(r.reply_type()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn client_flags_are_checked() {
        let mut hs = Handshake::new();
        assert_eq!(hs.on_client_flags(0), Err(HandshakeError::NotFixedNewstyle(0)));
        assert_eq!(Handshake::new().on_client_flags(0x80 | 1), Err(HandshakeError::UnknownClientFlags(0x81)));
        hs.on_client_flags(1).expect("fixed newstyle");
        assert_eq!(hs.on_client_flags(1), Err(HandshakeError::OutOfOrder));
        assert_eq!(hs.greeting().flags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    }

    #[test]
    fn options_before_flags_close() {
        let mut hs = Handshake::new();
        let header = OptionHeader { option: opt::LIST, length: 0 };
        assert_eq!(hs.on_option_header(&header), OptionData::Close);
        assert_eq!(hs.on_option(opt::LIST, &[], &Exports), vec![Action::Close]);
    }

    #[test]
    fn go_sends_export_and_block_size_then_transmits() {
        let mut hs = ready();
        let actions = send(&mut hs, ClientOption::Go(InfoRequest::new("disk", &[0, 3])));
        let flags = INFO.transmission_flags();
        assert_eq!(
            actions,
            vec![
                Action::Send(OptionReply {
                    option: opt::GO,
                    body: ReplyBody::Info(Info::Export { size: 1 << 20, flags }),
                }),
                Action::Send(OptionReply {
                    option: opt::GO,
                    body: ReplyBody::Info(Info::BlockSize { min: 1, preferred: 4096, max: MAX_REQUEST }),
                }),
                Action::Send(OptionReply::ack(opt::GO)),
                Action::Transmit { export: "disk", info: INFO },
            ]
        );
        // Negotiation is over: anything further closes.
        assert_eq!(send(&mut hs, ClientOption::List), vec![Action::Close]);
    }

    #[test]
    fn info_answers_without_ending_negotiation() {
        let mut hs = ready();
        let actions = send(&mut hs, ClientOption::Info(InfoRequest::new("", &[])));
        assert_eq!(reply_types(&actions), vec![rep::INFO, rep::INFO, rep::ACK]);
        assert!(!actions.iter().any(|a| matches!(a, Action::Transmit { .. })));
        let actions = send(&mut hs, ClientOption::Go(InfoRequest::new("disk", &[])));
        assert!(matches!(actions.last(), Some(Action::Transmit { .. })));
    }

    #[test]
    fn unknown_and_refused_exports_keep_negotiating() {
        let mut hs = ready();
        let actions = send(&mut hs, ClientOption::Go(InfoRequest::new("nope", &[])));
        assert_eq!(reply_types(&actions), vec![rep::ERR_UNKNOWN]);
        let actions = send(&mut hs, ClientOption::Info(InfoRequest::new("fenced", &[])));
        assert_eq!(reply_types(&actions), vec![rep::ERR_POLICY]);
        let actions = send(&mut hs, ClientOption::Go(InfoRequest::new("disk", &[])));
        assert!(matches!(actions.last(), Some(Action::Transmit { .. })));
    }

    #[test]
    fn list_names_every_export() {
        let mut hs = ready();
        let actions = send(&mut hs, ClientOption::List);
        assert_eq!(
            actions,
            vec![
                Action::Send(OptionReply { option: opt::LIST, body: ReplyBody::Server { name: "disk".into() } }),
                Action::Send(OptionReply::ack(opt::LIST)),
            ]
        );
        // LIST with data is malformed: an error, negotiation continues.
        assert_eq!(reply_types(&hs.on_option(opt::LIST, &[1, 2], &Exports)), vec![rep::ERR_INVALID]);
    }

    #[test]
    fn unsupported_options_get_err_unsup() {
        let mut hs = ready();
        for option in [
            opt::STARTTLS,
            opt::STRUCTURED_REPLY,
            opt::LIST_META_CONTEXT,
            opt::SET_META_CONTEXT,
            opt::EXTENDED_HEADERS,
            opt::PEEK_EXPORT,
            0xdead,
        ] {
            let actions = hs.on_option(option, &[], &Exports);
            assert_eq!(reply_types(&actions), vec![rep::ERR_UNSUP], "option {option}");
        }
    }

    #[test]
    fn export_name_replies_or_closes() {
        let mut hs = ready();
        let actions = send(&mut hs, ClientOption::ExportName { name: "disk" });
        assert_eq!(
            actions,
            vec![
                Action::SendExportName(ExportNameReply {
                    size: 1 << 20,
                    flags: INFO.transmission_flags(),
                    no_zeroes: true
                }),
                Action::Transmit { export: "disk", info: INFO },
            ]
        );
        let mut hs = Handshake::new();
        hs.on_client_flags(CLIENT_FIXED_NEWSTYLE).expect("flags");
        let actions = send(&mut hs, ClientOption::ExportName { name: "disk" });
        assert!(matches!(actions[0], Action::SendExportName(ExportNameReply { no_zeroes: false, .. })));
        let mut hs = ready();
        assert_eq!(send(&mut hs, ClientOption::ExportName { name: "nope" }), vec![Action::Close]);
        let mut hs = ready();
        assert_eq!(hs.on_option(opt::EXPORT_NAME, &[0xff], &Exports), vec![Action::Close]);
    }

    #[test]
    fn abort_acks_and_closes() {
        let mut hs = ready();
        assert_eq!(send(&mut hs, ClientOption::Abort), vec![Action::Send(OptionReply::ack(opt::ABORT)), Action::Close]);
    }

    #[test]
    fn option_lengths_are_capped_before_reading() {
        let mut hs = ready();
        let header = |option, length| OptionHeader { option, length };
        assert_eq!(hs.on_option_header(&header(opt::GO, 100)), OptionData::Read(100));
        assert_eq!(hs.on_option_header(&header(opt::GO, MAX_OPTION_DATA + 1)), OptionData::Skip(MAX_OPTION_DATA + 1));
        assert_eq!(reply_types(&hs.on_skipped_option::<&str>(opt::GO)), vec![rep::ERR_TOO_BIG]);
        assert_eq!(hs.on_option_header(&header(opt::GO, MAX_SKIPPED_OPTION + 1)), OptionData::Close);
        assert_eq!(hs.on_option_header(&header(opt::EXPORT_NAME, MAX_OPTION_DATA + 1)), OptionData::Close);
    }

    #[test]
    fn looping_clients_are_dropped() {
        let mut hs = ready();
        let header = OptionHeader { option: opt::LIST, length: 0 };
        for _ in 0..MAX_OPTIONS {
            assert_eq!(hs.on_option_header(&header), OptionData::Read(0));
        }
        assert_eq!(hs.on_option_header(&header), OptionData::Close);
    }

    #[test]
    fn transmission_flags_tell_the_truth() {
        let rw = INFO.transmission_flags();
        assert_ne!(rw & tflag::SEND_TRIM, 0);
        assert_ne!(rw & tflag::SEND_WRITE_ZEROES, 0);
        assert_ne!(rw & tflag::CAN_MULTI_CONN, 0);
        assert_eq!(rw & tflag::READ_ONLY, 0);
        let ro = ExportInfo { read_only: true, shared_cache: false, ..INFO }.transmission_flags();
        assert_ne!(ro & tflag::READ_ONLY, 0);
        assert_eq!(ro & (tflag::SEND_TRIM | tflag::SEND_WRITE_ZEROES | tflag::CAN_MULTI_CONN), 0);
    }

    fn req(command: u16, flags: u16, offset: u64, length: u32) -> Request {
        Request { flags, command, handle: 1, offset, length }
    }

    #[test]
    fn request_decision_table() {
        let t = Transmission::new(INFO);
        let ro = Transmission::new(ExportInfo { read_only: true, ..INFO });
        let size = INFO.size;
        let big = MAX_REQUEST + 1;
        let run = Decision::Run;
        let refuse = |error, drain| Decision::Refuse { error, drain };
        let cases = [
            (t, req(cmd::READ, 0, 0, 4096), run(Command::Read { offset: 0, len: 4096 })),
            (t, req(cmd::READ, cflag::FUA, 0, 1), run(Command::Read { offset: 0, len: 1 })),
            (t, req(cmd::READ, 0, size - 1, 1), run(Command::Read { offset: size - 1, len: 1 })),
            (t, req(cmd::READ, 0, size, 1), refuse(errno::EINVAL, 0)),
            (t, req(cmd::READ, 0, u64::MAX, 2), refuse(errno::EINVAL, 0)),
            (t, req(cmd::READ, 0, 0, big), refuse(errno::EINVAL, 0)),
            (t, req(cmd::READ, cflag::DF, 0, 1), refuse(errno::EINVAL, 0)),
            (t, req(cmd::WRITE, cflag::FUA, 512, 512), run(Command::Write { offset: 512, len: 512, fua: true })),
            (t, req(cmd::WRITE, 0, size - 1, 2), refuse(errno::ENOSPC, 2)),
            (t, req(cmd::WRITE, 0, 0, big), Decision::RefuseAndClose { error: errno::EINVAL }),
            (t, req(cmd::WRITE, cflag::NO_HOLE, 0, 8), refuse(errno::EINVAL, 8)),
            (ro, req(cmd::WRITE, 0, 0, 8), refuse(errno::EPERM, 8)),
            (ro, req(cmd::WRITE, 0, 0, big), Decision::RefuseAndClose { error: errno::EPERM }),
            (ro, req(cmd::TRIM, 0, 0, 8), refuse(errno::EPERM, 0)),
            (ro, req(cmd::WRITE_ZEROES, 0, 0, 8), refuse(errno::EPERM, 0)),
            (ro, req(cmd::READ, 0, 0, 8), run(Command::Read { offset: 0, len: 8 })),
            (ro, req(cmd::FLUSH, 0, 0, 0), run(Command::Flush)),
            (t, req(cmd::FLUSH, 0, 0, 0), run(Command::Flush)),
            (
                t,
                req(cmd::TRIM, cflag::FUA, 0, size as u32),
                run(Command::Trim { offset: 0, len: size as u32, fua: true }),
            ),
            (t, req(cmd::TRIM, 0, size, 1), refuse(errno::ENOSPC, 0)),
            (
                t,
                req(cmd::WRITE_ZEROES, cflag::NO_HOLE, 0, 4096),
                run(Command::WriteZeroes { offset: 0, len: 4096, fua: false, may_punch: false }),
            ),
            (
                t,
                req(cmd::WRITE_ZEROES, 0, 0, 4096),
                run(Command::WriteZeroes { offset: 0, len: 4096, fua: false, may_punch: true }),
            ),
            (t, req(cmd::WRITE_ZEROES, cflag::FAST_ZERO, 0, 1), refuse(errno::EINVAL, 0)),
            (t, req(cmd::DISC, 0, 0, 0), run(Command::Disconnect)),
            (t, req(cmd::CACHE, 0, 0, 1), refuse(errno::EINVAL, 0)),
            (t, req(cmd::BLOCK_STATUS, 0, 0, 1), refuse(errno::EINVAL, 0)),
            (t, req(cmd::RESIZE, 0, 0, 0), refuse(errno::EINVAL, 0)),
            (t, req(0x7777, 0, 0, 0), refuse(errno::EINVAL, 0)),
        ];
        for (transmission, request, expected) in cases {
            assert_eq!(transmission.decide(&request), expected, "{request:?}");
        }
    }

    #[test]
    fn every_run_command_is_in_bounds_and_capped() {
        // Sweep commands, flags and edge offsets: whatever runs stays inside
        // the export and under the payload cap.
        let t = Transmission::new(INFO);
        let offsets = [0, 1, INFO.size - 1, INFO.size, INFO.size + 1, u64::MAX - 1, u64::MAX];
        let lengths = [0, 1, 4096, MAX_REQUEST, MAX_REQUEST + 1, u32::MAX];
        for command in 0..10u16 {
            for flags in 0..64u16 {
                for &offset in &offsets {
                    for &length in &lengths {
                        match t.decide(&req(command, flags, offset, length)) {
                            Decision::Run(Command::Read { offset, len } | Command::Write { offset, len, .. }) => {
                                assert!(len <= MAX_REQUEST);
                                assert!(offset + u64::from(len) <= INFO.size);
                            }
                            Decision::Run(
                                Command::Trim { offset, len, .. } | Command::WriteZeroes { offset, len, .. },
                            ) => assert!(offset + u64::from(len) <= INFO.size),
                            Decision::Refuse { drain, .. } => assert!(drain <= MAX_REQUEST),
                            Decision::Run(Command::Flush | Command::Disconnect) | Decision::RefuseAndClose { .. } => {}
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn os_errors_map_to_nbd_errors() {
        assert_eq!(errno_for_os_error(Some(28)), errno::ENOSPC);
        assert_eq!(errno_for_os_error(Some(30)), errno::EPERM);
        assert_eq!(errno_for_os_error(Some(5)), errno::EIO);
        assert_eq!(errno_for_os_error(Some(9999)), errno::EIO);
        assert_eq!(errno_for_os_error(None), errno::EIO);
    }
}
