//! The client side of the NBD fixed-newstyle handshake, as the head runs it
//! before handing the socket to the kernel (DESIGN §5 "Head side").
//!
//! This module owns the decisions only: what to send after the server's
//! greeting (client flags, then one NBD_OPT_GO asking for the block sizes)
//! and what each option reply means. Moving bytes is the daemon's job;
//! byte layouts are `opie_proto::nbd`'s.
//!
//! Only NBD_OPT_GO is spoken: every server this talks to (Opie's own,
//! nbd-server, nbdkit, qemu-nbd) supports it, and unlike
//! NBD_OPT_EXPORT_NAME it returns a reason when the export is refused (a
//! stale fencing epoch arrives as NBD_REP_ERR_POLICY with the ISU's
//! explanation).

use opie_proto::nbd::{
    CLIENT_FIXED_NEWSTYLE, CLIENT_NO_ZEROES, ClientOption, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, Greeting, Info,
    InfoRequest, OptionReply, ReplyBody, info, opt, rep, tflag,
};
use thiserror::Error;

/// What the server said about the export once NBD_OPT_GO succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub size: u64,
    /// Transmission flags (`NBD_FLAG_*`), passed on to the kernel.
    pub flags: u16,
    /// The server's preferred block size, when it sent one.
    pub preferred_block: Option<u32>,
}

impl Negotiated {
    pub fn read_only(&self) -> bool {
        self.flags & tflag::READ_ONLY != 0
    }
}

/// Why the handshake failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server does not speak fixed newstyle.
    #[error("server handshake flags {0:#x} lack fixed newstyle")]
    NotFixedNewstyle(u16),
    /// The server refused the export; `code` is the NBD_REP_ERR_* value.
    #[error("server refused export ({}): {message}", rep_name(*code))]
    Refused { code: u32, message: String },
    /// The server acknowledged NBD_OPT_GO without NBD_INFO_EXPORT.
    #[error("server sent no export size before acknowledging")]
    NoExportInfo,
    /// A reply answered another option or had a type GO never gets.
    #[error("unexpected reply to option {option}: type {reply_type:#x}")]
    Unexpected { option: u32, reply_type: u32 },
    /// A message arrived in a state that does not expect it.
    #[error("NBD client handshake message out of order")]
    OutOfOrder,
}

/// The readable name of an NBD_REP_ERR_* code.
pub fn rep_name(code: u32) -> &'static str {
    match code {
        rep::ERR_UNSUP => "unsupported",
        rep::ERR_POLICY => "policy",
        rep::ERR_INVALID => "invalid",
        rep::ERR_PLATFORM => "platform",
        rep::ERR_TLS_REQD => "TLS required",
        rep::ERR_UNKNOWN => "unknown export",
        rep::ERR_SHUTDOWN => "shutting down",
        rep::ERR_BLOCK_SIZE_REQD => "block size required",
        rep::ERR_TOO_BIG => "too big",
        _ => "error",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitGreeting,
    AwaitReplies,
    Done,
}

/// What to do after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read the next option reply.
    More,
    /// Negotiation is over: the socket is in transmission.
    Ready(Negotiated),
}

/// One client negotiation for export `name`.
#[derive(Debug)]
pub struct ClientHandshake {
    name: String,
    state: State,
    size: Option<(u64, u16)>,
    preferred: Option<u32>,
}

impl ClientHandshake {
    pub fn new(name: impl Into<String>) -> Self {
        ClientHandshake { name: name.into(), state: State::AwaitGreeting, size: None, preferred: None }
    }

    /// The greeting arrived: returns the bytes to send (client flags and
    /// NBD_OPT_GO for the export, asking for NBD_INFO_BLOCK_SIZE).
    pub fn on_greeting(&mut self, greeting: Greeting) -> Result<Vec<u8>, ClientError> {
        if self.state != State::AwaitGreeting {
            return Err(ClientError::OutOfOrder);
        }
        if greeting.flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(ClientError::NotFixedNewstyle(greeting.flags));
        }
        let mut client_flags = CLIENT_FIXED_NEWSTYLE;
        if greeting.flags & FLAG_NO_ZEROES != 0 {
            client_flags |= CLIENT_NO_ZEROES;
        }
        let mut out = client_flags.to_be_bytes().to_vec();
        let requested = info::BLOCK_SIZE.to_be_bytes();
        ClientOption::Go(InfoRequest::new(&self.name, &requested)).emit(&mut out);
        self.state = State::AwaitReplies;
        Ok(out)
    }

    /// One option reply arrived.
    pub fn on_reply(&mut self, reply: &OptionReply) -> Result<Step, ClientError> {
        if self.state != State::AwaitReplies {
            return Err(ClientError::OutOfOrder);
        }
        if reply.option != opt::GO {
            return Err(ClientError::Unexpected { option: reply.option, reply_type: reply.reply_type() });
        }
        match &reply.body {
            ReplyBody::Info(Info::Export { size, flags }) => self.size = Some((*size, *flags)),
            ReplyBody::Info(Info::BlockSize { preferred, .. }) => self.preferred = Some(*preferred),
            // Names, descriptions and future information are not needed.
            ReplyBody::Info(Info::Other { .. }) => {}
            ReplyBody::Ack => {
                self.state = State::Done;
                let (size, flags) = self.size.ok_or(ClientError::NoExportInfo)?;
                return Ok(Step::Ready(Negotiated { size, flags, preferred_block: self.preferred }));
            }
            ReplyBody::Error { code, message } => {
                self.state = State::Done;
                return Err(ClientError::Refused { code: *code, message: message.clone() });
            }
            ReplyBody::Server { .. } | ReplyBody::Other { .. } => {
                return Err(ClientError::Unexpected { option: reply.option, reply_type: reply.reply_type() });
            }
        }
        Ok(Step::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opie_proto::nbd::OPTION_HEADER_LEN;

    fn greeted(name: &str) -> (ClientHandshake, Vec<u8>) {
        let mut hs = ClientHandshake::new(name);
        let out = hs.on_greeting(Greeting { flags: FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES }).expect("greeting");
        (hs, out)
    }

    #[test]
    fn sends_flags_and_go_for_the_name() {
        let (_, out) = greeted("disk@epoch=5");
        assert_eq!(&out[..4], &(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes());
        let (option, used) = ClientOption::parse(&out[4..]).expect("a GO option");
        assert_eq!(used, out.len() - 4);
        let ClientOption::Go(req) = option else { panic!("expected GO, got {option:?}") };
        assert_eq!(req.name, "disk@epoch=5");
        assert_eq!(req.requests().collect::<Vec<_>>(), vec![info::BLOCK_SIZE]);
        assert!(out.len() > 4 + OPTION_HEADER_LEN);
    }

    #[test]
    fn old_servers_and_out_of_order_messages_are_refused() {
        let mut hs = ClientHandshake::new("d");
        assert_eq!(hs.on_reply(&OptionReply::ack(opt::GO)), Err(ClientError::OutOfOrder));
        assert_eq!(hs.on_greeting(Greeting { flags: 0 }), Err(ClientError::NotFixedNewstyle(0)));
        // Without NO_ZEROES from the server the client does not ask for it.
        let mut hs = ClientHandshake::new("d");
        let out = hs.on_greeting(Greeting { flags: FLAG_FIXED_NEWSTYLE }).expect("greeting");
        assert_eq!(&out[..4], &CLIENT_FIXED_NEWSTYLE.to_be_bytes());
        assert_eq!(hs.on_greeting(Greeting { flags: FLAG_FIXED_NEWSTYLE }), Err(ClientError::OutOfOrder));
    }

    #[test]
    fn info_then_ack_is_ready() {
        let (mut hs, _) = greeted("d");
        let info = |i| OptionReply { option: opt::GO, body: ReplyBody::Info(i) };
        assert_eq!(hs.on_reply(&info(Info::Export { size: 1 << 30, flags: 0x13 })), Ok(Step::More));
        assert_eq!(hs.on_reply(&info(Info::BlockSize { min: 1, preferred: 4096, max: 1 << 25 })), Ok(Step::More));
        assert_eq!(hs.on_reply(&info(Info::Other { info_type: 2, data: b"x".to_vec() })), Ok(Step::More));
        let ready = hs.on_reply(&OptionReply::ack(opt::GO)).expect("ready");
        let Step::Ready(n) = ready else { panic!("expected Ready, got {ready:?}") };
        assert_eq!(n, Negotiated { size: 1 << 30, flags: 0x13, preferred_block: Some(4096) });
        assert!(n.read_only());
        assert_eq!(hs.on_reply(&OptionReply::ack(opt::GO)), Err(ClientError::OutOfOrder));
    }

    #[test]
    fn refusals_and_surprises_end_the_handshake() {
        let (mut hs, _) = greeted("d");
        let err = hs.on_reply(&OptionReply::error(opt::GO, rep::ERR_POLICY, "stale epoch 5")).expect_err("refused");
        assert_eq!(err, ClientError::Refused { code: rep::ERR_POLICY, message: "stale epoch 5".into() });
        assert!(err.to_string().contains("policy") && err.to_string().contains("stale epoch 5"));

        let (mut hs, _) = greeted("d");
        assert_eq!(hs.on_reply(&OptionReply::ack(opt::GO)), Err(ClientError::NoExportInfo));

        let (mut hs, _) = greeted("d");
        assert!(matches!(hs.on_reply(&OptionReply::ack(opt::LIST)), Err(ClientError::Unexpected { .. })));

        let (mut hs, _) = greeted("d");
        let server = OptionReply { option: opt::GO, body: ReplyBody::Server { name: "x".into() } };
        assert!(matches!(hs.on_reply(&server), Err(ClientError::Unexpected { .. })));
    }
}
