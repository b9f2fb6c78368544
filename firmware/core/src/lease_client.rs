//! The ISU's lease client: how a node without a static address gets one
//! from the head's lease server (DESIGN §3), without I/O.
//!
//! Modelled on RFC 2131's client states. A node that remembers its last
//! address starts in INIT-REBOOT (a broadcast REQUEST for that address):
//! that is how an existing ISU announces itself at every boot and keeps
//! its address. Otherwise, or after a NAK, it starts in INIT (DISCOVER,
//! then REQUEST the first OFFER). A bound lease is renewed by unicast at
//! T1, rebound by broadcast at T2 and dropped at expiry.
//!
//! Time is a `Duration` from any fixed start; the driver calls [`Client::poll`]
//! at [`Client::next_deadline`] and [`Client::handle`] for every datagram,
//! and carries out the returned [`Event`]s. Transaction ids come from a
//! seed the driver draws from the kernel, so core needs no randomness.

use std::net::Ipv4Addr;
use std::time::Duration;

use opie_proto::lease::{FLAG_BROADCAST, MessageType, Op, Options, Packet};
use opie_proto::lease_log::Mac;

/// Vendor class (option 60) Opie's ISUs send, so the head tells them from
/// other devices on the storage switch.
pub const VENDOR_CLASS: &[u8] = b"opie-isu";
/// First retransmission interval; doubled per try up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest retransmission interval.
pub const MAX_RETRY: Duration = Duration::from_secs(32);
/// INIT-REBOOT requests sent before falling back to DISCOVER.
const REBOOT_TRIES: u32 = 3;
/// REQUESTs sent for an offer before starting over.
const REQUEST_TRIES: u32 = 4;

/// What identifies this client on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub mac: Mac,
    pub hostname: String,
    /// Option 43: serial and key fingerprint, for the head's logs.
    pub vendor_info: Vec<u8>,
}

/// An address the server granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub server: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    /// When the ACK arrived.
    pub acquired: Duration,
    pub lease_time: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send this datagram from port 68 to `to`:67 (broadcast or the server).
    Send { bytes: Vec<u8>, to: Ipv4Addr },
    /// Put this address on the interface (and remember it for next boot).
    Configure(Lease),
    /// Take the address off the interface: the lease is gone.
    Deconfigure(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    InitReboot { addr: Ipv4Addr, tries: u32 },
    Selecting,
    Requesting { offer: Ipv4Addr, server: Ipv4Addr, tries: u32 },
    Bound(Lease),
    Renewing(Lease),
    Rebinding(Lease),
}

/// One interface's lease client.
#[derive(Debug)]
pub struct Client {
    id: Identity,
    state: State,
    xid: u32,
    /// When the next packet goes out (or the next state change is due).
    deadline: Duration,
    retry: Duration,
}

impl Client {
    /// A client that starts with INIT-REBOOT for `remembered`, or INIT.
    pub fn new(id: Identity, remembered: Option<Ipv4Addr>, xid_seed: u32, now: Duration) -> Self {
        let state = match remembered {
            Some(addr) => State::InitReboot { addr, tries: 0 },
            None => State::Selecting,
        };
        Client { id, state, xid: xid_seed, deadline: now, retry: FIRST_RETRY }
    }

    /// The current lease, while bound (renewing or rebinding included).
    pub fn lease(&self) -> Option<Lease> {
        match &self.state {
            State::Bound(l) | State::Renewing(l) | State::Rebinding(l) => Some(*l),
            _ => None,
        }
    }

    /// A description of the state for the status page.
    pub fn describe(&self) -> String {
        match &self.state {
            State::InitReboot { addr, .. } => format!("asking to keep {addr}"),
            State::Selecting => "looking for a lease server".into(),
            State::Requesting { offer, server, .. } => format!("requesting {offer} from {server}"),
            State::Bound(l) => format!("leased {} from {}", l.addr, l.server),
            State::Renewing(l) => format!("renewing {} with {}", l.addr, l.server),
            State::Rebinding(l) => format!("rebinding {}", l.addr),
        }
    }

    pub fn next_deadline(&self) -> Duration {
        self.deadline
    }

    /// Sends what is due at `now` and moves through lease timers.
    pub fn poll(&mut self, now: Duration) -> Vec<Event> {
        if now < self.deadline {
            return Vec::new();
        }
        let mut out = Vec::new();
        match self.state.clone() {
            State::InitReboot { tries, .. } if tries >= REBOOT_TRIES => {
                // No server answered for our old address: start over. The
                // address was never configured in this boot.
                self.restart(now);
                return self.poll(now);
            }
            State::InitReboot { addr, tries } => {
                self.state = State::InitReboot { addr, tries: tries + 1 };
                out.push(self.send_request(Some(addr), None, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
                self.backoff(now);
            }
            State::Selecting => {
                out.push(self.send(
                    MessageType::Discover,
                    Options::default(),
                    Ipv4Addr::UNSPECIFIED,
                    Ipv4Addr::BROADCAST,
                ));
                self.backoff(now);
            }
            State::Requesting { tries, .. } if tries >= REQUEST_TRIES => {
                self.restart(now);
                return self.poll(now);
            }
            State::Requesting { offer, server, tries } => {
                self.state = State::Requesting { offer, server, tries: tries + 1 };
                out.push(self.send_request(Some(offer), Some(server), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
                self.backoff(now);
            }
            State::Bound(lease) => {
                self.state = State::Renewing(lease);
                self.xid = self.xid.wrapping_add(1);
                return self.poll(now);
            }
            State::Renewing(lease) | State::Rebinding(lease) if now >= lease.acquired + lease.lease_time => {
                out.push(Event::Deconfigure(lease.addr));
                self.restart(now);
                out.extend(self.poll(now));
            }
            State::Renewing(lease) if now >= lease.acquired + lease.t2 => {
                self.state = State::Rebinding(lease);
                self.xid = self.xid.wrapping_add(1);
                return self.poll(now);
            }
            State::Renewing(lease) => {
                out.push(self.send_request(None, None, lease.addr, lease.server));
                self.deadline = self.renew_retry(now, lease, lease.t2);
            }
            State::Rebinding(lease) => {
                out.push(self.send_request(None, None, lease.addr, Ipv4Addr::BROADCAST));
                self.deadline = self.renew_retry(now, lease, lease.lease_time);
            }
        }
        out
    }

    /// Handles one datagram received on port 68.
    pub fn handle(&mut self, bytes: &[u8], now: Duration) -> Vec<Event> {
        let Ok(reply) = Packet::parse(bytes) else { return Vec::new() };
        if reply.op != Op::Reply || reply.xid != self.xid || reply.hw_addr() != self.id.mac {
            return Vec::new();
        }
        let server = reply.options.server_id;
        match (self.state.clone(), reply.message_type) {
            (State::Selecting, MessageType::Offer) => {
                let Some(server) = server else { return Vec::new() };
                self.state = State::Requesting { offer: reply.yiaddr, server, tries: 0 };
                self.deadline = now;
                self.retry = FIRST_RETRY;
                self.poll(now)
            }
            (
                State::InitReboot { .. } | State::Requesting { .. } | State::Renewing(_) | State::Rebinding(_),
                MessageType::Ack,
            ) => match lease_from(&reply, now) {
                Some(lease) => {
                    let changed =
                        self.lease().filter(|old| old.addr != lease.addr).map(|old| Event::Deconfigure(old.addr));
                    self.state = State::Bound(lease);
                    self.retry = FIRST_RETRY;
                    self.deadline = now + lease.t1;
                    changed.into_iter().chain([Event::Configure(lease)]).collect()
                }
                None => Vec::new(),
            },
            (
                State::InitReboot { .. } | State::Requesting { .. } | State::Renewing(_) | State::Rebinding(_),
                MessageType::Nak,
            ) => {
                let gone = self.lease().map(|l| Event::Deconfigure(l.addr));
                self.restart(now);
                gone.into_iter().chain(self.poll(now)).collect()
            }
            _ => Vec::new(),
        }
    }

    fn restart(&mut self, now: Duration) {
        self.state = State::Selecting;
        self.xid = self.xid.wrapping_add(1);
        self.retry = FIRST_RETRY;
        self.deadline = now;
    }

    fn backoff(&mut self, now: Duration) {
        self.deadline = now + self.retry;
        self.retry = (self.retry * 2).min(MAX_RETRY);
    }

    /// RFC 2131 §4.4.5: retry after half the time left until `until`, but
    /// not sooner than a minute (here: [`FIRST_RETRY`] for short leases).
    fn renew_retry(&self, now: Duration, lease: Lease, until: Duration) -> Duration {
        let end = lease.acquired + until;
        let half = end.saturating_sub(now) / 2;
        (now + half.max(FIRST_RETRY)).min(end.max(now + FIRST_RETRY))
    }

    fn send_request(
        &self,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
        ciaddr: Ipv4Addr,
        to: Ipv4Addr,
    ) -> Event {
        let options = Options { requested_ip: requested, server_id: server, ..Options::default() };
        self.send(MessageType::Request, options, ciaddr, to)
    }

    fn send(&self, message_type: MessageType, mut options: Options, ciaddr: Ipv4Addr, to: Ipv4Addr) -> Event {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.id.mac);
        let mut client_id = vec![1u8];
        client_id.extend_from_slice(&self.id.mac);
        options.client_id = Some(client_id);
        options.hostname = Some(self.id.hostname.as_bytes().to_vec());
        options.vendor_class = Some(VENDOR_CLASS.to_vec());
        options.vendor_info = (!self.id.vendor_info.is_empty()).then(|| self.id.vendor_info.clone());
        options.params = Some(vec![1, 3, 51, 54, 58, 59]);
        let packet = Packet {
            op: Op::Request,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: self.xid,
            secs: 0,
            // An address-less client cannot receive unicast before ARP
            // knows it: ask for broadcast replies until bound.
            flags: if ciaddr.is_unspecified() { FLAG_BROADCAST } else { 0 },
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            message_type,
            options,
        };
        Event::Send { bytes: packet.emit(), to }
    }
}

fn lease_from(ack: &Packet, now: Duration) -> Option<Lease> {
    let lease_secs = ack.options.lease_time?;
    let server = ack.options.server_id?;
    if ack.yiaddr.is_unspecified() || lease_secs == 0 {
        return None;
    }
    let lease_time = Duration::from_secs(u64::from(lease_secs));
    let t1 = ack.options.renewal_time.map_or(lease_time / 2, |s| Duration::from_secs(u64::from(s)));
    let t2 = ack.options.rebinding_time.map_or(lease_time * 7 / 8, |s| Duration::from_secs(u64::from(s)));
    // A server that sends T1 > T2 > lease gets the RFC defaults instead.
    let (t1, t2) = if t1 < t2 && t2 < lease_time { (t1, t2) } else { (lease_time / 2, lease_time * 7 / 8) };
    Some(Lease {
        addr: ack.yiaddr,
        netmask: ack.options.subnet_mask.unwrap_or(Ipv4Addr::new(255, 255, 255, 0)),
        server,
        router: ack.options.routers.first().copied(),
        acquired: now,
        lease_time,
        t1,
        t2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::{Action, Config, LeaseServer, PoolRange};

    const MAC: Mac = [2, 0, 0, 0, 0, 0x11];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const T0: Duration = Duration::from_secs(1_800_000_000);

    fn id() -> Identity {
        Identity { mac: MAC, hostname: "isu1".into(), vendor_info: b"serial=ISU-1".to_vec() }
    }

    fn server() -> LeaseServer {
        let pool = PoolRange { start: Ipv4Addr::new(10, 77, 0, 100), end: Ipv4Addr::new(10, 77, 0, 101) };
        let mut cfg = Config::new(SERVER, vec![pool]);
        cfg.lease_time = 60;
        LeaseServer::new(cfg, &[], T0).expect("valid config")
    }

    /// Delivers client packets to the real server and its replies back,
    /// until nothing is left in flight; returns the client's events.
    fn exchange(client: &mut Client, server: &mut LeaseServer, mut events: Vec<Event>, now: Duration) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Some(event) = events.pop() {
            if let Event::Send { bytes, .. } = &event {
                let mut actions = Vec::new();
                server.handle(bytes, now, &mut actions);
                for action in actions {
                    if let Action::Send { packet, .. } = action {
                        events.extend(client.handle(&packet.emit(), now));
                    }
                }
            } else {
                seen.push(event);
            }
        }
        seen
    }

    fn configured(events: &[Event]) -> Option<Lease> {
        events.iter().find_map(|e| if let Event::Configure(l) = e { Some(*l) } else { None })
    }

    #[test]
    fn new_client_discovers_and_binds_with_the_real_server() {
        let mut server = server();
        let mut client = Client::new(id(), None, 7, T0);
        let first = client.poll(T0);
        assert!(matches!(&first[..], [Event::Send { to, .. }] if *to == Ipv4Addr::BROADCAST));
        let events = exchange(&mut client, &mut server, first, T0);
        let lease = configured(&events).expect("bound");
        assert_eq!(lease.addr, Ipv4Addr::new(10, 77, 0, 100));
        assert_eq!(lease.server, SERVER);
        assert_eq!(client.next_deadline(), T0 + lease.t1);
    }

    #[test]
    fn remembered_address_is_kept_through_init_reboot() {
        let mut server = server();
        let mut first = Client::new(id(), None, 1, T0);
        let p = first.poll(T0);
        let lease = configured(&exchange(&mut first, &mut server, p, T0)).expect("bound");
        // Reboot: the client remembers its address and asks for it back.
        let mut again = Client::new(id(), Some(lease.addr), 99, T0 + Duration::from_secs(5));
        let p = again.poll(T0 + Duration::from_secs(5));
        let events = exchange(&mut again, &mut server, p, T0 + Duration::from_secs(5));
        assert_eq!(configured(&events).map(|l| l.addr), Some(lease.addr));
    }

    #[test]
    fn renews_at_t1_and_keeps_the_address() {
        let mut server = server();
        let mut client = Client::new(id(), None, 3, T0);
        let p = client.poll(T0);
        let lease = configured(&exchange(&mut client, &mut server, p, T0)).expect("bound");
        let t1 = T0 + lease.t1;
        assert!(client.poll(t1 - Duration::from_secs(1)).is_empty());
        let renew = client.poll(t1);
        assert!(matches!(&renew[..], [Event::Send { to, .. }] if *to == SERVER), "{renew:?}");
        let events = exchange(&mut client, &mut server, renew, t1);
        assert_eq!(configured(&events).map(|l| l.addr), Some(lease.addr));
        assert!(client.next_deadline() > t1);
    }

    #[test]
    fn silent_server_means_rebind_then_expiry_and_deconfigure() {
        let mut server = server();
        let mut client = Client::new(id(), None, 5, T0);
        let p = client.poll(T0);
        let lease = configured(&exchange(&mut client, &mut server, p, T0)).expect("bound");
        let mut now = T0;
        let mut broadcasts = 0;
        let mut gone = false;
        while now < T0 + lease.lease_time + Duration::from_secs(5) {
            now = client.next_deadline().max(now + Duration::from_millis(100));
            for e in client.poll(now) {
                match e {
                    Event::Send { to, .. } if to == Ipv4Addr::BROADCAST && !gone => broadcasts += 1,
                    Event::Deconfigure(addr) => {
                        assert_eq!(addr, lease.addr);
                        assert!(now >= T0 + lease.lease_time);
                        gone = true;
                    }
                    _ => {}
                }
            }
        }
        assert!(broadcasts > 0, "never rebound by broadcast");
        assert!(gone, "lease never expired");
        assert_eq!(client.lease(), None);
    }

    #[test]
    fn nak_for_a_remembered_address_falls_back_to_discover() {
        let mut server = server();
        // Another client takes .100 first; ours remembers .100 wrongly.
        let mut other = Client::new(Identity { mac: [2, 0, 0, 0, 0, 0x22], ..id() }, None, 11, T0);
        let p = other.poll(T0);
        assert_eq!(
            configured(&exchange(&mut other, &mut server, p, T0)).map(|l| l.addr),
            Some(Ipv4Addr::new(10, 77, 0, 100))
        );
        let mut client = Client::new(id(), Some(Ipv4Addr::new(10, 77, 0, 100)), 21, T0);
        let p = client.poll(T0);
        let events = exchange(&mut client, &mut server, p, T0);
        assert_eq!(configured(&events).map(|l| l.addr), Some(Ipv4Addr::new(10, 77, 0, 101)));
    }

    #[test]
    fn retransmits_with_backoff_and_ignores_foreign_replies() {
        let mut client = Client::new(id(), None, 9, T0);
        assert_eq!(client.poll(T0).len(), 1);
        assert_eq!(client.next_deadline(), T0 + FIRST_RETRY);
        assert!(client.poll(T0 + Duration::from_secs(1)).is_empty());
        assert_eq!(client.poll(T0 + FIRST_RETRY).len(), 1);
        assert_eq!(client.next_deadline(), T0 + FIRST_RETRY + FIRST_RETRY * 2);
        assert!(client.handle(b"garbage", T0).is_empty());
        let mut server = server();
        // A reply to another client's transaction is ignored.
        let mut other = Client::new(Identity { mac: [2, 0, 0, 0, 0, 0x33], ..id() }, None, 1234, T0);
        for e in other.poll(T0) {
            if let Event::Send { bytes, .. } = e {
                let mut actions = Vec::new();
                server.handle(&bytes, T0, &mut actions);
                for a in actions {
                    if let Action::Send { packet, .. } = a {
                        assert!(client.handle(&packet.emit(), T0).is_empty());
                    }
                }
            }
        }
    }
}
