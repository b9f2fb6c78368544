//! The ISU's lease client on the storage net (DESIGN §3): wiring only.
//!
//! `opie_core::lease_client` decides what to send and when; this task owns
//! the UDP socket on port 68 (bound to the storage interface), puts leased
//! addresses on the interface, remembers the last address on the state
//! disk (so the next boot asks for it back with INIT-REBOOT) and tells the
//! node's event loop what it has, including the head's address (the lease
//! server's identifier), which the control channel connects to.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::{info, warn};
use opie_core::config::Ipv4Cidr;
use opie_core::lease_client::{Client, Event as LeaseEvent, Identity, Lease};
use opie_sys::slots::SlotStore;
use opie_sys::{lease_socket, netif, random};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::{Async, Timer};

use crate::node::Event;

/// Kind tag of the remembered-lease record on the state disk.
pub const LEASE_MAGIC: [u8; 8] = *b"OPIELSE\0";
const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;

/// What the node's loop hears from the lease client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// The interface has this address, leased from `server` (the head).
    Bound { addr: Ipv4Cidr, server: Ipv4Addr },
    /// No lease: the words say what the client is doing.
    Searching(String),
}

fn now() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Runs the lease client on `iface` until the event loop goes away.
/// `vendor_info` goes out as option 43: serial, key fingerprint and disks,
/// so the head's lease log names the device before it says hello.
pub async fn run(
    iface: String,
    hostname: String,
    vendor_info: String,
    store: Option<SlotStore>,
    events: Sender<Event>,
) {
    let tell = |update| events.send(Event::Lease(update));
    let socket = match open(&iface) {
        Ok(s) => s,
        Err(e) => {
            let _ = tell(LeaseUpdate::Searching(format!("lease client cannot start: {e}"))).await;
            return;
        }
    };
    let mac = match netif::mac_address(&iface) {
        Ok(mac) => mac,
        Err(e) => {
            let _ = tell(LeaseUpdate::Searching(format!("lease client cannot start: {e}"))).await;
            return;
        }
    };
    let remembered = store.as_ref().and_then(|s| s.load().ok()?.newest).and_then(|r| {
        let octets: [u8; 4] = r.payload.as_slice().try_into().ok()?;
        Some(Ipv4Addr::from(octets))
    });
    let seed = random::bytes::<4>()
        .map(u32::from_le_bytes)
        .unwrap_or_else(|_| u32::from_le_bytes([mac[2], mac[3], mac[4], mac[5]]));
    let identity = Identity { mac, hostname, vendor_info: vendor_info.into_bytes() };
    let mut client = Client::new(identity, remembered, seed, now());
    let mut buf = vec![0u8; opie_proto::lease::MAX_LEN + 1];
    let mut last_words = String::new();
    loop {
        let mut todo = client.poll(now());
        if todo.is_empty() {
            let wait = client.next_deadline().saturating_sub(now());
            let datagram = async { Some(socket.recv_from(&mut buf).await) }
                .or(async {
                    Timer::after(wait).await;
                    None
                })
                .await;
            match datagram {
                Some(Ok((n, _))) => todo = client.handle(&buf[..n], now()),
                Some(Err(e)) => warn!("lease client receive on {iface}: {e}"),
                None => continue,
            }
        }
        for event in todo {
            let update = match event {
                LeaseEvent::Send { bytes, to } => {
                    if let Err(e) = socket.send_to(&bytes, SocketAddr::from((to, SERVER_PORT))).await {
                        warn!("lease client send to {to} on {iface}: {e}");
                    }
                    continue;
                }
                LeaseEvent::Configure(lease) => configure(&iface, &lease, store.as_ref()),
                LeaseEvent::Deconfigure(addr) => {
                    if let Err(e) = netif::clear_ipv4(&iface) {
                        warn!("cannot remove expired address {addr} from {iface}: {e}");
                    }
                    info!("lease of {addr} on {iface} expired");
                    LeaseUpdate::Searching(format!("lease of {addr} expired; {}", client.describe()))
                }
            };
            if events.send(Event::Lease(update)).await.is_err() {
                return;
            }
        }
        let words = client.describe();
        if client.lease().is_none() && words != last_words {
            if events.send(Event::Lease(LeaseUpdate::Searching(words.clone()))).await.is_err() {
                return;
            }
            last_words = words;
        }
    }
}

fn open(iface: &str) -> Result<Async<UdpSocket>, String> {
    netif::link_up(iface).map_err(|e| e.to_string())?;
    let socket = lease_socket::open(iface, CLIENT_PORT).map_err(|e| e.to_string())?;
    Async::new(socket).map_err(|e| e.to_string())
}

/// Puts the leased address on the interface and remembers it.
fn configure(iface: &str, lease: &Lease, store: Option<&SlotStore>) -> LeaseUpdate {
    let prefix = u32::from(lease.netmask).leading_ones() as u8;
    let addr = Ipv4Cidr { addr: lease.addr, prefix };
    if let Err(e) = netif::set_ipv4(iface, lease.addr, lease.netmask) {
        warn!("leased {addr} but cannot configure {iface}: {e}");
        return LeaseUpdate::Searching(format!("leased {addr} but cannot configure {iface}: {e}"));
    }
    if let Some(store) = store
        && let Err(e) = store.store(1, &lease.addr.octets())
    {
        warn!("leased address {addr} not remembered for the next boot: {e}");
    }
    info!("storage net {iface} leased {addr} from {} for {}s", lease.server, lease.lease_time.as_secs());
    LeaseUpdate::Bound { addr, server: lease.server }
}
