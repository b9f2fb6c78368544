//! One control connection as a state machine.
//!
//! Handshake (the ISU is the client, the head the server):
//!
//! 1. client → `Hello` (unauthenticated: serial, public key, nonce,
//!    versions). It is only a claim.
//! 2. server: no common version → `VersionMismatch`, close. Key not
//!    adopted → `Pending` (the daemon lists the ISU for adoption), close.
//!    Otherwise → `Hello` sealed under the pair key, which proves the
//!    server holds the adopting head's secret.
//! 3. client: checks the server hello under the pair key for the head key
//!    it pinned (or, on first contact after adoption, pins the key it
//!    proves: trust on first adoption, confirmed by fingerprint on the
//!    console). Both sides switch to the session key.
//! 4. From then on every frame is sealed under the session key with
//!    sequence numbers 1, 2, ... per direction; the client's first sealed
//!    frame proves it holds the ISU secret. A frame out of sequence, with a
//!    bad tag, or of another version closes the connection.
//!
//! Liveness: a side sends `Heartbeat` when it has sent nothing for
//! `heartbeat_every`, and closes when it has heard nothing for `dead_after`.

use std::time::Duration;

use opie_proto::ctrl::{self, Frame, FrameError, Hello, Message, ProtocolVersion};
use thiserror::Error;

use super::keys::{NodeKey, session_key};

/// Most bytes buffered while waiting for a complete frame: one maximal
/// frame. More cannot be needed, so a peer cannot grow memory further.
pub const MAX_BUFFER: usize = ctrl::HEADER_LEN + ctrl::MAX_PAYLOAD + ctrl::TAG_LEN;

/// Why a session ended.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CloseReason {
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("no common protocol version (peer accepts {peer:?}, we accept {ours:?})")]
    VersionMismatch { peer: Vec<u16>, ours: Vec<u16> },
    #[error("peer is not adopted; listed as pending")]
    NotAdopted,
    #[error("peer's key {0} is not the pinned head key")]
    WrongHeadKey(String),
    #[error("unexpected {0} during the handshake")]
    Unexpected(&'static str),
    #[error("frame sequence {got}, expected {want}")]
    Sequence { got: u64, want: u64 },
    #[error("frame version {got}, session speaks {want}")]
    Version { got: u16, want: u16 },
    #[error("peer silent for {0:?}")]
    Silent(Duration),
    #[error("peer refused: {0}")]
    Refused(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the connection.
    Send(Vec<u8>),
    /// The handshake completed with this peer (serial, public key).
    Established { serial: String, public_key: [u8; 32] },
    /// First contact of an ISU with the head that adopted it: persist this
    /// head key before trusting it again.
    PinHead { public_key: [u8; 32] },
    /// An unadopted ISU introduced itself: list it as pending.
    Pending { serial: String, public_key: [u8; 32] },
    /// An authenticated message for the node's event loop.
    Deliver(Message),
    /// Close the connection.
    Close(CloseReason),
}

/// Which end of the connection this is.
#[derive(Debug)]
pub enum Role {
    /// An ISU; `pinned_head` is the head key it trusts, if any yet.
    Client { pinned_head: Option<[u8; 32]> },
    /// A head; `adopted` holds the public keys of adopted ISUs.
    Server { adopted: Vec<[u8; 32]> },
}

#[derive(Debug)]
enum State {
    /// Client: hello sent, waiting for the server's.
    AwaitServerHello {
        client_nonce: [u8; 16],
    },
    /// Server: waiting for the client's hello; the nonce it will answer with.
    AwaitClientHello {
        server_nonce: [u8; 16],
    },
    Established {
        key: [u8; 32],
        version: u16,
        send_seq: u64,
        recv_seq: u64,
    },
    Closed,
}

/// Timing of heartbeats and death.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub heartbeat_every: Duration,
    pub dead_after: Duration,
}

/// One connection's state. Time is a `Duration` since any fixed start.
#[derive(Debug)]
pub struct Session {
    role: Role,
    key: NodeKey,
    serial: String,
    state: State,
    buffer: Vec<u8>,
    liveness: Liveness,
    last_sent: Duration,
    last_heard: Duration,
}

impl Session {
    /// A client session; the returned actions send its hello.
    pub fn client(
        key: NodeKey,
        serial: &str,
        pinned_head: Option<[u8; 32]>,
        nonce: [u8; 16],
        liveness: Liveness,
        now: Duration,
    ) -> (Self, Vec<Action>) {
        let hello = hello(&key, serial, nonce);
        let mut session = Session::new(
            Role::Client { pinned_head },
            key,
            serial,
            State::AwaitServerHello { client_nonce: nonce },
            liveness,
            now,
        );
        let actions = match ctrl::seal_unauthenticated(ProtocolVersion::CURRENT as u16, &hello) {
            Ok(bytes) => vec![Action::Send(bytes)],
            Err(e) => session.close(e.into()),
        };
        (session, actions)
    }

    /// A server session waiting for a client's hello. `nonce` must be
    /// fresh random bytes: with the client's nonce it makes the session key
    /// unique, so a recorded client session cannot be replayed.
    pub fn server(
        key: NodeKey,
        serial: &str,
        adopted: Vec<[u8; 32]>,
        nonce: [u8; 16],
        liveness: Liveness,
        now: Duration,
    ) -> Self {
        Session::new(
            Role::Server { adopted },
            key,
            serial,
            State::AwaitClientHello { server_nonce: nonce },
            liveness,
            now,
        )
    }

    fn new(role: Role, key: NodeKey, serial: &str, state: State, liveness: Liveness, now: Duration) -> Self {
        Session {
            role,
            key,
            serial: serial.to_string(),
            state,
            buffer: Vec::new(),
            liveness,
            last_sent: now,
            last_heard: now,
        }
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established { .. })
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// When `tick` must run next, if the session is open.
    pub fn next_deadline(&self) -> Option<Duration> {
        match self.state {
            State::Closed => None,
            State::Established { .. } => {
                Some((self.last_sent + self.liveness.heartbeat_every).min(self.last_heard + self.liveness.dead_after))
            }
            _ => Some(self.last_heard + self.liveness.dead_after),
        }
    }

    /// Sends heartbeats and declares a silent peer dead.
    pub fn tick(&mut self, now: Duration) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        let silent = now.saturating_sub(self.last_heard);
        if silent >= self.liveness.dead_after {
            return self.close(CloseReason::Silent(silent));
        }
        if self.is_established() && now.saturating_sub(self.last_sent) >= self.liveness.heartbeat_every {
            return self.send(Message::Heartbeat { sent_ms: now.as_millis() as u64 }, now);
        }
        Vec::new()
    }

    /// Seals a message for the peer (only once established).
    pub fn send(&mut self, message: Message, now: Duration) -> Vec<Action> {
        let State::Established { key, version, send_seq, .. } = &mut self.state else {
            return Vec::new();
        };
        *send_seq += 1;
        match ctrl::seal(*version, *send_seq, &message, key) {
            Ok(bytes) => {
                self.last_sent = now;
                vec![Action::Send(bytes)]
            }
            Err(e) => self.close(e.into()),
        }
    }

    /// Feeds bytes read from the connection.
    pub fn receive(&mut self, bytes: &[u8], now: Duration) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        self.last_heard = now;
        let mut actions = Vec::new();
        // Frames borrow the buffer while `on_frame` needs `self`: hold the
        // buffer outside `self` while frames are handled.
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.extend_from_slice(bytes);
        loop {
            let (outcome, used) = match Frame::parse(&buffer) {
                Err(FrameError::Incomplete { .. }) if buffer.len() <= MAX_BUFFER => break,
                Err(e) => (Err(CloseReason::Frame(e)), 0),
                Ok((frame, used)) => (self.on_frame(&frame, now), used),
            };
            buffer.drain(..used);
            match outcome {
                Ok(mut more) => actions.append(&mut more),
                Err(reason) => {
                    actions.extend(self.close(reason));
                    break;
                }
            }
            if self.is_closed() {
                break;
            }
        }
        if !self.is_closed() {
            self.buffer = buffer;
        }
        actions
    }

    fn on_frame(&mut self, frame: &Frame<'_>, now: Duration) -> Result<Vec<Action>, CloseReason> {
        match self.state {
            State::AwaitClientHello { server_nonce } => self.on_client_hello(frame, server_nonce, now),
            State::AwaitServerHello { client_nonce } => self.on_server_hello(frame, client_nonce),
            State::Established { key, version, recv_seq, .. } => {
                if frame.version != version {
                    return Err(CloseReason::Version { got: frame.version, want: version });
                }
                let message = frame.open(&key)?;
                if frame.sequence != recv_seq + 1 {
                    return Err(CloseReason::Sequence { got: frame.sequence, want: recv_seq + 1 });
                }
                if let State::Established { recv_seq, .. } = &mut self.state {
                    *recv_seq += 1;
                }
                match message {
                    Message::Heartbeat { .. } => Ok(Vec::new()),
                    Message::Refused { reason } => Err(CloseReason::Refused(reason)),
                    other => Ok(vec![Action::Deliver(other)]),
                }
            }
            State::Closed => Ok(Vec::new()),
        }
    }

    fn on_client_hello(
        &mut self,
        frame: &Frame<'_>,
        server_nonce: [u8; 16],
        now: Duration,
    ) -> Result<Vec<Action>, CloseReason> {
        let Message::Hello(peer) = frame.open_unauthenticated()? else {
            return Err(CloseReason::Unexpected("message before hello"));
        };
        let Some(version) = common_version(&peer.accepted) else {
            let refusal = Message::VersionMismatch { accepted: ProtocolVersion::ACCEPTED.to_vec() };
            let mut actions: Vec<Action> = ctrl::seal_unauthenticated(ProtocolVersion::CURRENT as u16, &refusal)
                .map(Action::Send)
                .into_iter()
                .collect();
            actions.extend(
                self.close(CloseReason::VersionMismatch {
                    peer: peer.accepted,
                    ours: ProtocolVersion::ACCEPTED.to_vec(),
                }),
            );
            return Ok(actions);
        };
        let Role::Server { adopted } = &self.role else {
            return Err(CloseReason::Unexpected("client hello at a client"));
        };
        if !adopted.contains(&peer.public_key) {
            let mut actions = vec![Action::Pending { serial: peer.serial, public_key: peer.public_key }];
            actions.extend(ctrl::seal_unauthenticated(version, &Message::Pending).map(Action::Send));
            actions.extend(self.close(CloseReason::NotAdopted));
            return Ok(actions);
        }
        let pair = self.key.pair_key(&peer.public_key);
        let reply = ctrl::seal(version, 0, &hello(&self.key, &self.serial, server_nonce), &pair)?;
        self.state = State::Established {
            key: session_key(&pair, &peer.nonce, &server_nonce),
            version,
            send_seq: 0,
            recv_seq: 0,
        };
        self.last_sent = now;
        Ok(vec![Action::Send(reply), Action::Established { serial: peer.serial, public_key: peer.public_key }])
    }

    fn on_server_hello(&mut self, frame: &Frame<'_>, client_nonce: [u8; 16]) -> Result<Vec<Action>, CloseReason> {
        if frame.is_unauthenticated() {
            return match frame.open_unauthenticated()? {
                Message::Pending => Err(CloseReason::NotAdopted),
                Message::VersionMismatch { accepted } => {
                    Err(CloseReason::VersionMismatch { peer: accepted, ours: ProtocolVersion::ACCEPTED.to_vec() })
                }
                _ => Err(CloseReason::Unexpected("unauthenticated message from the head")),
            };
        }
        // The claimed key is read before authentication only to know which
        // pair key to verify with; the tag then proves it.
        let claimed: Message = postcard_peek(frame)?;
        let Message::Hello(peer) = claimed else {
            return Err(CloseReason::Unexpected("message before the head's hello"));
        };
        let Role::Client { pinned_head } = &self.role else {
            return Err(CloseReason::Unexpected("server hello at a server"));
        };
        if pinned_head.is_some_and(|pinned| pinned != peer.public_key) {
            return Err(CloseReason::WrongHeadKey(super::keys::fingerprint(&peer.public_key)));
        }
        let pair = self.key.pair_key(&peer.public_key);
        frame.open(&pair)?;
        if frame.sequence != 0 || !ProtocolVersion::ACCEPTED.contains(&frame.version) {
            return Err(CloseReason::Unexpected("server hello with a bad sequence or version"));
        }
        let mut actions = Vec::new();
        if pinned_head.is_none() {
            actions.push(Action::PinHead { public_key: peer.public_key });
        }
        self.state = State::Established {
            key: session_key(&pair, &client_nonce, &peer.nonce),
            version: frame.version,
            send_seq: 0,
            recv_seq: 0,
        };
        actions.push(Action::Established { serial: peer.serial, public_key: peer.public_key });
        Ok(actions)
    }

    fn close(&mut self, reason: CloseReason) -> Vec<Action> {
        self.state = State::Closed;
        self.buffer = Vec::new();
        vec![Action::Close(reason)]
    }
}

fn hello(key: &NodeKey, serial: &str, nonce: [u8; 16]) -> Message {
    Message::Hello(Hello {
        current: ProtocolVersion::CURRENT as u16,
        accepted: ProtocolVersion::ACCEPTED.to_vec(),
        serial: serial.to_string(),
        public_key: key.public(),
        nonce,
    })
}

/// The highest version both sides accept.
fn common_version(peer: &[u16]) -> Option<u16> {
    ProtocolVersion::ACCEPTED.iter().copied().filter(|v| peer.contains(v)).max()
}

/// Decodes a frame's payload without authenticating it.
fn postcard_peek(frame: &Frame<'_>) -> Result<Message, CloseReason> {
    opie_proto::ctrl::peek_message(frame).map_err(CloseReason::Frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opie_proto::ctrl::{Command, IsuState, StatusReport};

    const LIVE: Liveness = Liveness { heartbeat_every: Duration::from_millis(500), dead_after: Duration::from_secs(3) };
    const T0: Duration = Duration::from_secs(100);

    fn isu_key() -> NodeKey {
        NodeKey::from_secret([0x11; 32])
    }
    fn head_key() -> NodeKey {
        NodeKey::from_secret([0x22; 32])
    }

    fn sends(actions: &[Action]) -> Vec<u8> {
        actions.iter().filter_map(|a| if let Action::Send(b) = a { Some(b.clone()) } else { None }).flatten().collect()
    }

    /// Runs the handshake; returns both sessions and the client's actions.
    fn connect(pinned: Option<[u8; 32]>, adopted: Vec<[u8; 32]>) -> (Session, Session, Vec<Action>, Vec<Action>) {
        let (mut isu, hello) = Session::client(isu_key(), "ISU-1", pinned, [7; 16], LIVE, T0);
        let mut head = Session::server(head_key(), "head1", adopted, [8; 16], LIVE, T0);
        let head_actions = head.receive(&sends(&hello), T0);
        let isu_actions = isu.receive(&sends(&head_actions), T0);
        (isu, head, isu_actions, head_actions)
    }

    #[test]
    fn adopted_isu_establishes_and_pins_the_head_on_first_contact() {
        let (isu, head, isu_actions, head_actions) = connect(None, vec![isu_key().public()]);
        assert!(isu.is_established() && head.is_established());
        assert!(head_actions.contains(&Action::Established { serial: "ISU-1".into(), public_key: isu_key().public() }));
        assert!(isu_actions.contains(&Action::PinHead { public_key: head_key().public() }));
    }

    #[test]
    fn messages_flow_both_ways_in_order() {
        let (mut isu, mut head, _, _) = connect(Some(head_key().public()), vec![isu_key().public()]);
        let status =
            Message::Status(StatusReport { state: IsuState::Normal, epoch: 3, exports: vec![], detail: String::new() });
        let got = head.receive(&sends(&isu.send(status.clone(), T0)), T0);
        assert_eq!(got, vec![Action::Deliver(status)]);
        let cmd = Message::Command(Command::Identify);
        let a = head.send(cmd.clone(), T0);
        let b = head.send(Message::EpochGrant { epoch: 4 }, T0);
        let mut both = sends(&a);
        both.extend(sends(&b));
        // Delivered in two pieces, split mid-frame.
        let mut got = isu.receive(&both[..10], T0);
        got.extend(isu.receive(&both[10..], T0));
        assert_eq!(got, vec![Action::Deliver(cmd), Action::Deliver(Message::EpochGrant { epoch: 4 })]);
    }

    #[test]
    fn unadopted_isu_is_listed_pending_and_refused() {
        let (isu, head, isu_actions, head_actions) = connect(None, vec![]);
        assert!(head.is_closed() && isu.is_closed());
        assert!(head_actions.contains(&Action::Pending { serial: "ISU-1".into(), public_key: isu_key().public() }));
        assert!(isu_actions.contains(&Action::Close(CloseReason::NotAdopted)));
    }

    #[test]
    fn a_head_other_than_the_pinned_one_is_refused() {
        let (isu, _, isu_actions, _) = connect(Some([0x99; 32]), vec![isu_key().public()]);
        assert!(isu.is_closed());
        assert!(matches!(isu_actions.last(), Some(Action::Close(CloseReason::WrongHeadKey(_)))));
    }

    #[test]
    fn impostor_isu_with_a_copied_public_key_cannot_send() {
        // The impostor claims the adopted ISU's public key but lacks its
        // secret: its session key differs, so its first frame fails.
        let impostor = NodeKey::from_secret([0x33; 32]);
        let claim = opie_proto::ctrl::Hello {
            current: 1,
            accepted: vec![1],
            serial: "ISU-1".into(),
            public_key: isu_key().public(),
            nonce: [1; 16],
        };
        let mut head = Session::server(head_key(), "head1", vec![isu_key().public()], [8; 16], LIVE, T0);
        head.receive(&ctrl::seal_unauthenticated(1, &Message::Hello(claim.clone())).expect("seal"), T0);
        let forged_key = session_key(&impostor.pair_key(&head_key().public()), &[1; 16], &[8; 16]);
        let forged = ctrl::seal(1, 1, &Message::Pending, &forged_key).expect("seal");
        let got = head.receive(&forged, T0);
        assert_eq!(got, vec![Action::Close(CloseReason::Frame(FrameError::BadTag))]);
    }

    #[test]
    fn replayed_frame_breaks_the_sequence() {
        let (mut isu, mut head, _, _) = connect(Some(head_key().public()), vec![isu_key().public()]);
        let frame = sends(&isu.send(Message::ConfigAck { generation: 1 }, T0));
        head.receive(&frame, T0);
        let got = head.receive(&frame, T0);
        assert_eq!(got, vec![Action::Close(CloseReason::Sequence { got: 1, want: 2 })]);
    }

    #[test]
    fn version_mismatch_is_refused_clearly() {
        let hello = Message::Hello(opie_proto::ctrl::Hello {
            current: 9,
            accepted: vec![9],
            serial: "x".into(),
            public_key: isu_key().public(),
            nonce: [0; 16],
        });
        let mut head = Session::server(head_key(), "head1", vec![isu_key().public()], [8; 16], LIVE, T0);
        let actions = head.receive(&ctrl::seal_unauthenticated(9, &hello).expect("seal"), T0);
        assert!(matches!(actions.last(), Some(Action::Close(CloseReason::VersionMismatch { .. }))));
        let (mut isu, _) = Session::client(isu_key(), "ISU-1", None, [7; 16], LIVE, T0);
        let got = isu.receive(&sends(&actions), T0);
        assert!(matches!(got.last(), Some(Action::Close(CloseReason::VersionMismatch { .. }))));
    }

    #[test]
    fn heartbeats_keep_a_quiet_link_alive_and_silence_kills_it() {
        let (mut isu, mut head, _, _) = connect(Some(head_key().public()), vec![isu_key().public()]);
        let mut now = T0;
        for _ in 0..20 {
            now += Duration::from_millis(250);
            let beat = isu.tick(now);
            head.receive(&sends(&beat), now);
            let back = head.tick(now);
            isu.receive(&sends(&back), now);
        }
        assert!(isu.is_established() && head.is_established());
        assert!(head.next_deadline().expect("open") <= now + LIVE.heartbeat_every);
        // The ISU goes silent.
        let got = head.tick(now + Duration::from_secs(4));
        assert!(matches!(got.as_slice(), [Action::Close(CloseReason::Silent(_))]));
    }

    #[test]
    fn garbage_and_oversized_input_close_without_growing_memory() {
        let mut head = Session::server(head_key(), "head1", vec![], [8; 16], LIVE, T0);
        let got = head.receive(b"GET / HTTP/1.1\r\n\r\n", T0);
        assert!(matches!(got.as_slice(), [Action::Close(CloseReason::Frame(FrameError::BadMagic(_)))]));
        let mut head = Session::server(head_key(), "head1", vec![], [8; 16], LIVE, T0);
        let mut header = Vec::from(*b"OPIE");
        header.extend_from_slice(&[1, 0, 0, 0]);
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&(u32::MAX).to_le_bytes());
        let got = head.receive(&header, T0);
        assert!(matches!(got.as_slice(), [Action::Close(CloseReason::Frame(FrameError::TooLarge(_)))]));
    }
}
