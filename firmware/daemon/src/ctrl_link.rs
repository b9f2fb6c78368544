//! Control-channel connections over TCP (DESIGN §4): the head's listener
//! and the ISU's connection to its head.
//!
//! Each connection is a task that owns its `opie_core::ctrl::session::
//! Session` (connection-local state) and turns the session's actions into
//! socket writes and [`CtrlEvent`]s for the node's event loop, which owns
//! everything that outlives a connection (adoption, pinned keys, status).
//! The task asks the loop for its keys at every connection start, so an
//! adoption takes effect on the ISU's next connection.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::{info, warn};
use opie_core::ctrl::keys::{NodeKey, fingerprint};
use opie_core::ctrl::session::{Action, Liveness, Session};
use opie_proto::ctrl::Message;
use smol::Timer;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

use crate::node::Event;

/// The control channel's TCP port (DESIGN §2).
pub const CTRL_PORT: u16 = 7780;
/// Heartbeat timing: sub-second beats, a peer silent for 3 s is gone.
pub const LIVENESS: Liveness =
    Liveness { heartbeat_every: Duration::from_millis(500), dead_after: Duration::from_secs(3) };
/// Pause between an ISU's connection attempts.
const RETRY: Duration = Duration::from_secs(2);

/// What a connection tells the event loop.
#[derive(Debug)]
pub enum CtrlEvent {
    /// An unadopted ISU said hello.
    Pending { serial: String, public_key: [u8; 32] },
    /// The handshake completed; messages for the peer go into `outbox`.
    Up { serial: String, public_key: [u8; 32], peer: SocketAddr, outbox: Sender<Message> },
    /// An authenticated message from a peer.
    Message { public_key: [u8; 32], message: Message },
    /// First contact with the adopting head: persist its key.
    PinHead { public_key: [u8; 32] },
    /// The connection ended.
    Down { public_key: Option<[u8; 32]>, peer: SocketAddr, reason: String },
}

/// Keys a new connection needs, from the event loop.
#[derive(Debug, Clone)]
pub struct Keys {
    pub secret: [u8; 32],
    pub serial: String,
    /// Head: adopted ISU keys. ISU: unused.
    pub adopted: Vec<[u8; 32]>,
    /// ISU: the pinned head key, if any. Head: unused.
    pub pinned_head: Option<[u8; 32]>,
    /// ISU: the head's control address, once known (boot parameter or
    /// lease). Head: unused.
    pub head: Option<SocketAddr>,
}

/// How a connection task reaches the event loop.
#[derive(Debug, Clone)]
pub struct LoopHandle {
    pub events: Sender<Event>,
}

impl LoopHandle {
    async fn fetch_keys(&self) -> Option<Keys> {
        let (reply, answer) = smol::channel::bounded(1);
        self.events.send(Event::Keys(reply)).await.ok()?;
        answer.recv().await.ok()
    }

    async fn tell(&self, event: CtrlEvent) -> bool {
        self.events.send(Event::Ctrl(event)).await.is_ok()
    }
}

/// Session time: a `Duration` since the first use in this process.
fn now() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Head: accepts ISU connections forever.
pub async fn listen(listener: TcpListener, handle: LoopHandle, executor: &'static smol::Executor<'static>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("control channel accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        executor
            .spawn(async move {
                let Some(keys) = handle.fetch_keys().await else { return };
                let nonce = match opie_sys::random::bytes::<16>() {
                    Ok(n) => n,
                    Err(e) => return warn!("no randomness for a control session: {e}"),
                };
                let session = Session::server(
                    NodeKey::from_secret(keys.secret),
                    &keys.serial,
                    keys.adopted,
                    nonce,
                    LIVENESS,
                    now(),
                );
                drive(stream, peer, session, Vec::new(), &handle).await;
            })
            .detach();
    }
}

/// ISU: keeps one connection to the head open, reconnecting after a pause.
/// The head's address comes from the loop at every attempt, since a lease
/// can move it.
pub async fn connect_forever(handle: LoopHandle) {
    loop {
        let Some(keys) = handle.fetch_keys().await else { return };
        if let Some(head) = keys.head {
            match TcpStream::connect(head).await {
                Ok(stream) => match opie_sys::random::bytes::<16>() {
                    Ok(nonce) => {
                        let (session, hello) = Session::client(
                            NodeKey::from_secret(keys.secret),
                            &keys.serial,
                            keys.pinned_head,
                            nonce,
                            LIVENESS,
                            now(),
                        );
                        drive(stream, head, session, hello, &handle).await;
                    }
                    Err(e) => warn!("no randomness for a control session: {e}"),
                },
                Err(e) => {
                    let reason = format!("cannot connect to head {head}: {e}");
                    handle.tell(CtrlEvent::Down { public_key: None, peer: head, reason }).await;
                }
            }
        }
        Timer::after(RETRY).await;
    }
}

/// What woke a connection task.
enum Wake {
    Read(std::io::Result<usize>),
    Outgoing(Option<Message>),
    Deadline,
}

/// Runs one connection until the session closes or the socket fails.
async fn drive(mut stream: TcpStream, peer: SocketAddr, mut session: Session, first: Vec<Action>, handle: &LoopHandle) {
    let (outbox, outgoing): (Sender<Message>, Receiver<Message>) = smol::channel::bounded(64);
    let mut peer_key = None;
    let mut actions = first;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        for action in actions.drain(..) {
            let event = match action {
                Action::Send(bytes) => {
                    if let Err(e) = stream.write_all(&bytes).await {
                        return down(handle, peer_key, peer, format!("write failed: {e}")).await;
                    }
                    continue;
                }
                Action::Established { serial, public_key } => {
                    info!("control channel up with {serial} ({peer}, key {})", fingerprint(&public_key));
                    peer_key = Some(public_key);
                    CtrlEvent::Up { serial, public_key, peer, outbox: outbox.clone() }
                }
                Action::PinHead { public_key } => CtrlEvent::PinHead { public_key },
                Action::Pending { serial, public_key } => CtrlEvent::Pending { serial, public_key },
                Action::Deliver(message) => match peer_key {
                    Some(public_key) => CtrlEvent::Message { public_key, message },
                    None => continue,
                },
                Action::Close(reason) => return down(handle, peer_key, peer, reason.to_string()).await,
            };
            if !handle.tell(event).await {
                return;
            }
        }
        let deadline = session.next_deadline().unwrap_or(now() + LIVENESS.dead_after);
        let wait = deadline.saturating_sub(now());
        let wake = async { Wake::Read(stream.read(&mut buf).await) }
            .or(async { Wake::Outgoing(outgoing.recv().await.ok()) })
            .or(async {
                Timer::after(wait).await;
                Wake::Deadline
            })
            .await;
        actions = match wake {
            Wake::Read(Ok(0)) => return down(handle, peer_key, peer, "peer closed the connection".into()).await,
            Wake::Read(Ok(n)) => session.receive(&buf[..n], now()),
            Wake::Read(Err(e)) => return down(handle, peer_key, peer, format!("read failed: {e}")).await,
            Wake::Outgoing(Some(message)) => session.send(message, now()),
            Wake::Outgoing(None) => return,
            Wake::Deadline => session.tick(now()),
        };
    }
}

async fn down(handle: &LoopHandle, public_key: Option<[u8; 32]>, peer: SocketAddr, reason: String) {
    // An established link's end is logged by the node, which knows the
    // peer's name; a connection refused before that (wrong version, bad
    // tag, oversized frame, not adopted) is logged here.
    if public_key.is_none() {
        info!("control connection with {peer} closed: {reason}");
    }
    handle.tell(CtrlEvent::Down { public_key, peer, reason }).await;
}
