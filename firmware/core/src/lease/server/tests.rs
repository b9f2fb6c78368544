//! Unit tests of the lease server with a simulated clock, and a property
//! test that random client behaviour with crashes never hands one address
//! to two MACs.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::lease::config::PoolRange;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const T0: Duration = Duration::from_secs(1_800_000_000);

fn a(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, last)
}

fn mac(n: u8) -> Mac {
    [2, 0, 0, 0, 0, n]
}

fn config(first: u8, last: u8) -> Config {
    Config::new(SERVER, vec![PoolRange { start: a(first), end: a(last) }])
}

fn packet(m: Mac, mt: MessageType) -> Packet {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&m);
    Packet {
        op: Op::Request,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: u32::from(m[5]) << 8 | 7,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
        message_type: mt,
        options: Options::default(),
    }
}

fn discover(m: Mac) -> Packet {
    packet(m, MessageType::Discover)
}

fn select(m: Mac, addr: Ipv4Addr) -> Packet {
    let mut p = packet(m, MessageType::Request);
    p.options.server_id = Some(SERVER);
    p.options.requested_ip = Some(addr);
    p
}

fn init_reboot(m: Mac, addr: Ipv4Addr) -> Packet {
    let mut p = packet(m, MessageType::Request);
    p.options.requested_ip = Some(addr);
    p
}

fn renew(m: Mac, addr: Ipv4Addr) -> Packet {
    let mut p = packet(m, MessageType::Request);
    p.ciaddr = addr;
    p
}

fn with_ciaddr(mut p: Packet, addr: Ipv4Addr) -> Packet {
    p.ciaddr = addr;
    p
}

fn with_requested(mut p: Packet, addr: Ipv4Addr) -> Packet {
    p.options.requested_ip = Some(addr);
    p
}

/// A server with a clock and a log, like the daemon drives it.
struct Harness {
    server: LeaseServer,
    now: Duration,
    log: Vec<Entry>,
}

impl Harness {
    fn new(cfg: Config) -> Self {
        Harness { server: LeaseServer::new(cfg, &[], T0).expect("valid config"), now: T0, log: Vec::new() }
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.server.poll(self.now);
    }

    fn send(&mut self, p: &Packet) -> Vec<Action> {
        let mut out = Vec::new();
        self.server.handle(&p.emit(), self.now, &mut out);
        for act in &out {
            if let Action::Persist(e) = act {
                self.log.push(*e);
            }
        }
        out
    }

    /// The single reply to `p`, if any.
    fn reply(&mut self, p: &Packet) -> Option<(Packet, SocketAddrV4)> {
        let sends: Vec<_> = self
            .send(p)
            .into_iter()
            .filter_map(|act| match act {
                Action::Send { packet, to } => Some((*packet, to)),
                Action::Persist(_) => None,
            })
            .collect();
        assert!(sends.len() <= 1, "more than one reply: {sends:?}");
        sends.into_iter().next()
    }

    /// Runs DISCOVER/OFFER/REQUEST/ACK and returns the leased address.
    fn lease(&mut self, m: Mac) -> Option<Ipv4Addr> {
        let (offer, _) = self.reply(&discover(m))?;
        assert_eq!(offer.message_type, MessageType::Offer);
        let (ack, _) = self.reply(&select(m, offer.yiaddr))?;
        (ack.message_type == MessageType::Ack).then_some(ack.yiaddr)
    }

    fn restart(&mut self, cfg: Config) {
        self.server = LeaseServer::new(cfg, &self.log, self.now).expect("valid config");
    }
}

#[test]
fn full_exchange_gives_pool_address_with_options() {
    let mut cfg = config(100, 199);
    cfg.routers = vec![SERVER];
    let mut h = Harness::new(cfg);
    let (offer, to) = h.reply(&discover(mac(1))).expect("offer");
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(offer.yiaddr, a(100));
    assert_eq!(offer.op, Op::Reply);
    assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert_eq!(offer.options.server_id, Some(SERVER));
    assert_eq!(offer.options.lease_time, Some(3600));
    assert_eq!(offer.options.renewal_time, Some(1800));
    assert_eq!(offer.options.rebinding_time, Some(3150));
    assert_eq!(offer.options.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(offer.options.routers, vec![SERVER]);
    assert!(offer.options.dns.is_empty(), "DNS only when configured");

    let actions = h.send(&select(mac(1), a(100)));
    assert_eq!(actions.len(), 2);
    assert!(
        matches!(&actions[0], Action::Persist(e) if e.kind == EntryKind::Lease && e.addr == a(100) && e.mac == mac(1) && e.until == T0.as_secs() + 3600),
        "persist comes before the ACK: {actions:?}"
    );
    assert!(
        matches!(&actions[1], Action::Send { packet, .. } if packet.message_type == MessageType::Ack && packet.yiaddr == a(100))
    );
    assert_eq!(h.server.lease_of(&mac(1), h.now), Some(a(100)));
    assert_eq!(h.lease(mac(2)), Some(a(101)));
    assert_eq!(h.server.counters().offers, 2);
    assert_eq!(h.server.counters().acks, 2);
}

#[test]
fn restart_gives_the_same_mac_the_same_address() {
    let mut h = Harness::new(config(100, 199));
    let first: Vec<_> = (1..=5).map(|n| h.lease(mac(n)).expect("lease")).collect();
    h.advance(10);
    h.restart(config(100, 199));
    for n in (1..=5).rev() {
        let (offer, _) = h.reply(&discover(mac(n))).expect("offer");
        assert_eq!(offer.yiaddr, first[usize::from(n) - 1]);
        let (ack, _) = h.reply(&init_reboot(mac(n), offer.yiaddr)).expect("ack");
        assert_eq!(ack.message_type, MessageType::Ack);
    }
}

#[test]
fn full_pool_after_restart_offers_nothing_to_a_new_mac() {
    let mut h = Harness::new(config(100, 101));
    assert_eq!(h.lease(mac(1)), Some(a(100)));
    assert_eq!(h.lease(mac(2)), Some(a(101)));
    h.restart(config(100, 101));
    assert_eq!(h.reply(&discover(mac(3))), None);
    assert_eq!(h.server.counters().pool_exhausted, 1);
    let (nak, to) = h.reply(&init_reboot(mac(3), a(100))).expect("nak");
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(to.ip(), &Ipv4Addr::BROADCAST);
    for (n, addr) in [(1, a(100)), (2, a(101))] {
        let (ack, to) = h.reply(&renew(mac(n), addr)).expect("renew");
        assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, addr));
        assert_eq!(to, SocketAddrV4::new(addr, 68), "renewals are unicast to ciaddr");
    }
}

#[test]
fn unanswered_offer_times_out() {
    let mut h = Harness::new(config(100, 100));
    assert!(h.reply(&discover(mac(1))).is_some());
    assert_eq!(h.reply(&discover(mac(2))), None, "address held by the offer");
    assert_eq!(h.server.next_deadline(), Some(T0 + Duration::from_secs(60)));
    h.advance(61);
    assert_eq!(h.lease(mac(2)), Some(a(100)));
    let (nak, _) = h.reply(&select(mac(1), a(100))).expect("nak");
    assert_eq!(nak.message_type, MessageType::Nak);
}

#[test]
fn expired_lease_is_reused_last_and_its_owner_is_refused() {
    let mut cfg = config(100, 101);
    cfg.lease_time = 100;
    let mut h = Harness::new(cfg);
    assert_eq!(h.lease(mac(1)), Some(a(100)));
    h.advance(101);
    assert_eq!(h.server.lease_of(&mac(1), h.now), None);
    // A free address goes first, then the expired one.
    assert_eq!(h.lease(mac(2)), Some(a(101)));
    assert_eq!(h.lease(mac(3)), Some(a(100)));
    let (nak, _) = h.reply(&renew(mac(1), a(100))).expect("nak");
    assert_eq!(nak.message_type, MessageType::Nak);
}

#[test]
fn renewal_extends_and_is_persisted() {
    let mut h = Harness::new(config(100, 199));
    let addr = h.lease(mac(1)).expect("lease");
    h.advance(1800);
    let actions = h.send(&renew(mac(1), addr));
    assert!(matches!(actions[0], Action::Persist(e) if e.until == T0.as_secs() + 1800 + 3600));
    h.advance(3000);
    assert_eq!(h.server.lease_of(&mac(1), h.now), Some(addr));
    // Rebinding: broadcast flag set, still the same address.
    let mut rebind = renew(mac(1), addr);
    rebind.flags = FLAG_BROADCAST;
    let (ack, to) = h.reply(&rebind).expect("ack");
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.ciaddr, addr);
    assert_eq!(to.ip(), &Ipv4Addr::BROADCAST);
}

#[test]
fn init_reboot_for_a_foreign_or_taken_address_is_refused() {
    let mut h = Harness::new(config(100, 199));
    let addr = h.lease(mac(1)).expect("lease");
    for wrong in [a(50), Ipv4Addr::new(192, 168, 1, 5), addr, SERVER] {
        let (nak, _) = h.reply(&init_reboot(mac(2), wrong)).expect("nak");
        assert_eq!(nak.message_type, MessageType::Nak, "{wrong}");
        assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
    }
    // An unknown client asking for a free pool address (its lease predates
    // a lost log) gets it.
    let (ack, _) = h.reply(&init_reboot(mac(2), a(150))).expect("ack");
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, a(150)));
    // A client with a live lease cannot grab a second address.
    let (nak, _) = h.reply(&init_reboot(mac(1), a(151))).expect("nak");
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(h.server.counters().naks, 5);
}

#[test]
fn declined_address_is_quarantined_and_persisted() {
    let mut h = Harness::new(config(100, 101));
    let addr = h.lease(mac(1)).expect("lease");
    let actions = h.send(&with_requested(packet(mac(1), MessageType::Decline), addr));
    assert!(matches!(actions[..], [Action::Persist(e)] if e.kind == EntryKind::Decline && e.addr == addr));
    assert_eq!(h.lease(mac(1)), Some(a(101)), "the decliner gets another address");
    assert_eq!(h.reply(&discover(mac(2))), None, "the declined address is not offered");
    assert_eq!(h.server.counters().declines, 1);
    h.restart(config(100, 101));
    assert_eq!(h.reply(&discover(mac(2))), None, "quarantine survives a restart");
    h.advance(601);
    assert_eq!(h.lease(mac(2)), Some(addr), "quarantine ends");
    // A decline for an address the MAC does not hold is ignored.
    assert!(h.send(&with_requested(packet(mac(3), MessageType::Decline), addr)).is_empty());
}

#[test]
fn release_frees_the_address_but_keeps_it_for_its_owner() {
    let mut h = Harness::new(config(100, 101));
    let addr = h.lease(mac(1)).expect("lease");
    let actions = h.send(&with_ciaddr(packet(mac(1), MessageType::Release), addr));
    assert!(matches!(actions[..], [Action::Persist(e)] if e.kind == EntryKind::Release));
    assert_eq!(h.server.lease_of(&mac(1), h.now), None);
    assert_eq!(h.lease(mac(1)), Some(addr), "owner comes back to its address");
    h.send(&with_ciaddr(packet(mac(1), MessageType::Release), addr));
    assert_eq!(h.lease(mac(2)), Some(a(101)));
    assert_eq!(h.lease(mac(3)), Some(addr), "released address reused when the pool is otherwise full");
    // A release from someone who does not hold the address changes nothing.
    assert!(h.send(&with_ciaddr(packet(mac(9), MessageType::Release), addr)).is_empty());
    assert_eq!(h.server.lease_of(&mac(3), h.now), Some(addr));
}

#[test]
fn reservations_go_only_to_their_owner() {
    let mut cfg = config(100, 101);
    cfg.reservations = vec![(mac(7), a(100)), (mac(8), a(20))];
    let mut h = Harness::new(cfg);
    assert_eq!(h.lease(mac(1)), Some(a(101)));
    assert_eq!(h.reply(&with_requested(discover(mac(2)), a(100))), None, "reserved address not offered to others");
    assert_eq!(h.lease(mac(7)), Some(a(100)));
    assert_eq!(h.lease(mac(8)), Some(a(20)), "reservations may sit outside the pools");
    let (nak, _) = h.reply(&init_reboot(mac(8), a(101))).expect("nak");
    assert_eq!(nak.message_type, MessageType::Nak, "a reserved MAC gets only its reservation");
}

#[test]
fn request_for_another_server_drops_our_offer() {
    let mut h = Harness::new(config(100, 100));
    assert!(h.reply(&discover(mac(1))).is_some());
    let mut other = select(mac(1), a(100));
    other.options.server_id = Some(Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!(h.reply(&other), None);
    assert_eq!(h.server.counters().dropped_other_server, 1);
    assert_eq!(h.lease(mac(2)), Some(a(100)), "the offer was withdrawn");
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut cfg = config(100, 199);
    cfg.dns = vec![a(53)];
    let mut h = Harness::new(cfg);
    let (ack, to) = h.reply(&with_ciaddr(packet(mac(1), MessageType::Inform), a(20))).expect("ack");
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.options.lease_time, None);
    assert_eq!(ack.options.dns, vec![a(53)]);
    assert_eq!(to, SocketAddrV4::new(a(20), 68));
    assert!(h.log.is_empty());
}

#[test]
fn relayed_requests_are_answered_through_the_relay() {
    let mut h = Harness::new(config(100, 199));
    let mut p = discover(mac(1));
    p.giaddr = a(254);
    let (_, to) = h.reply(&p).expect("offer");
    assert_eq!(to, SocketAddrV4::new(a(254), 67));
}

#[test]
fn malformed_datagrams_are_dropped_and_counted() {
    let mut h = Harness::new(config(100, 199));
    let good = discover(mac(1)).emit();
    let mut out = Vec::new();
    let mut feed = |bytes: &[u8]| h.server.handle(bytes, T0, &mut out);
    feed(&good[..100]);
    feed(&vec![0u8; 2000]);
    let mut b = good.clone();
    b[0] = 3;
    feed(&b);
    let mut b = good.clone();
    b[2] = 200;
    feed(&b);
    let mut b = good.clone();
    b[236..240].copy_from_slice(&[1, 2, 3, 4]);
    feed(&b);
    let mut b = good[..240].to_vec();
    b.extend_from_slice(&[53, 1, 1, 12, 250, 1]);
    feed(&b);
    let mut b = good[..240].to_vec();
    b.push(255);
    feed(&b);
    let mut b = good.clone();
    b[1] = 6;
    feed(&b);
    let mut reply = discover(mac(1));
    reply.op = Op::Reply;
    feed(&reply.emit());
    feed(&packet(mac(1), MessageType::Offer).emit());
    assert!(out.is_empty());
    let c = *h.server.counters();
    assert_eq!(
        (c.dropped_too_short, c.dropped_too_long, c.dropped_bad_op, c.dropped_bad_hlen, c.dropped_no_cookie),
        (1, 1, 1, 1, 1)
    );
    assert_eq!((c.dropped_bad_options, c.dropped_no_message_type, c.dropped_unsupported_hw), (1, 1, 1));
    assert_eq!(c.dropped_not_request, 2);
    assert_eq!(c.received, 10);
    assert_eq!(c.dropped(), 10);
}

#[test]
fn a_flooding_mac_is_rate_limited_without_hurting_others() {
    let mut h = Harness::new(config(100, 199));
    let offers = (0..1000).filter(|_| h.reply(&discover(mac(1))).is_some()).count();
    assert_eq!(offers, 20, "the burst is answered, the rest dropped");
    assert_eq!(h.server.counters().dropped_rate_limited, 980);
    assert!(h.lease(mac(2)).is_some());
    h.advance(1);
    assert!(h.reply(&discover(mac(1))).is_some(), "refilled after a second");
}

#[test]
fn log_entries_outside_the_configuration_are_skipped() {
    let mut h = Harness::new(config(100, 199));
    h.lease(mac(1));
    h.lease(mac(2));
    h.restart(config(101, 199));
    assert_eq!(h.server.counters().restore_skipped, 1);
    assert_eq!(h.lease(mac(2)), Some(a(101)));
    assert_eq!(h.lease(mac(3)), Some(a(102)));
}

#[test]
fn snapshot_rebuilds_the_same_state() {
    let mut h = Harness::new(config(100, 110));
    for n in 1..=4 {
        h.lease(mac(n));
    }
    h.send(&with_ciaddr(packet(mac(2), MessageType::Release), a(101)));
    h.send(&with_requested(packet(mac(3), MessageType::Decline), a(102)));
    assert!(h.reply(&discover(mac(5))).is_some(), "an offer is not in the snapshot");
    let snap = h.server.snapshot();
    assert_eq!(snap.len(), 4);
    let rebuilt = LeaseServer::new(config(100, 110), &snap, h.now).expect("valid");
    let replayed = LeaseServer::new(config(100, 110), &h.log, h.now).expect("valid");
    assert_eq!(rebuilt.snapshot(), replayed.snapshot());
    for n in 1..=4 {
        assert_eq!(rebuilt.lease_of(&mac(n), h.now), h.server.lease_of(&mac(n), h.now));
    }
}

/// One step a simulated client population can take.
#[derive(Debug, Clone)]
enum Step {
    Discover(u8),
    /// Select the last offer this MAC saw.
    Select(u8),
    InitReboot(u8, u8),
    Renew(u8),
    Release(u8),
    Decline(u8),
    Advance(u16),
    /// Crash after persisting a select's lease but before its ACK left,
    /// then restart from the log.
    Crash(u8),
    /// Compaction: the log is replaced by the server's snapshot.
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    let m = 0u8..6;
    prop_oneof![
        3 => m.clone().prop_map(Step::Discover),
        3 => m.clone().prop_map(Step::Select),
        1 => (m.clone(), 0u8..8).prop_map(|(c, x)| Step::InitReboot(c, x)),
        2 => m.clone().prop_map(Step::Renew),
        1 => m.clone().prop_map(Step::Release),
        1 => m.clone().prop_map(Step::Decline),
        2 => (0u16..200).prop_map(Step::Advance),
        1 => m.clone().prop_map(Step::Crash),
        1 => Just(Step::Compact),
    ]
}

proptest! {
    #[test]
    fn no_address_is_ever_held_by_two_macs(steps in proptest::collection::vec(step(), 1..120)) {
        let mut cfg = config(100, 103);
        cfg.lease_time = 120;
        cfg.offer_timeout = 30;
        cfg.quarantine = 60;
        cfg.reservations = vec![(mac(5), a(103))];
        let mut server = LeaseServer::new(cfg.clone(), &[], T0).expect("valid");
        let mut now = T0;
        let mut log: Vec<Entry> = Vec::new();
        // What each client believes: the address it holds and until when.
        let mut held: HashMap<Mac, (Ipv4Addr, Duration)> = HashMap::new();
        let mut offered: HashMap<Mac, Ipv4Addr> = HashMap::new();
        for s in steps {
            let pkt = match s {
                Step::Advance(secs) => {
                    now += Duration::from_secs(u64::from(secs));
                    server.poll(now);
                    continue;
                }
                Step::Crash(c) => {
                    // The server persisted the lease for this MAC's select
                    // (if it had one) but crashed before the ACK left; then
                    // it restarts from its log.
                    if let Some(x) = offered.get(&mac(c)) {
                        let mut out = Vec::new();
                        server.handle(&select(mac(c), *x).emit(), now, &mut out);
                        log.extend(out.iter().filter_map(|act| match act {
                            Action::Persist(e) => Some(*e),
                            Action::Send { .. } => None,
                        }));
                    }
                    server = LeaseServer::new(cfg.clone(), &log, now).expect("valid");
                    continue;
                }
                Step::Compact => {
                    log = server.snapshot();
                    continue;
                }
                Step::Discover(c) => discover(mac(c)),
                Step::Select(c) => match offered.get(&mac(c)) {
                    Some(x) => select(mac(c), *x),
                    None => continue,
                },
                Step::InitReboot(c, x) => init_reboot(mac(c), a(98 + x)),
                Step::Renew(c) => match held.get(&mac(c)) {
                    Some((x, _)) => renew(mac(c), *x),
                    None => continue,
                },
                Step::Release(c) => match held.remove(&mac(c)) {
                    Some((x, _)) => with_ciaddr(packet(mac(c), MessageType::Release), x),
                    None => continue,
                },
                Step::Decline(c) => match held.remove(&mac(c)) {
                    Some((x, _)) => with_requested(packet(mac(c), MessageType::Decline), x),
                    None => continue,
                },
            };
            let m = {
                let mut m = [0u8; 6];
                m.copy_from_slice(pkt.hw_addr());
                m
            };
            let mut out = Vec::new();
            server.handle(&pkt.emit(), now, &mut out);
            let mut persisted = 0;
            for act in out {
                match act {
                    Action::Persist(e) => {
                        log.push(e);
                        persisted += 1;
                    }
                    Action::Send { packet, .. } => {
                        prop_assert!(packet.message_type != MessageType::Ack || packet.yiaddr.is_unspecified() || persisted > 0,
                            "ACK sent before its lease was persisted");
                        match packet.message_type {
                            MessageType::Offer => {
                                for (other, (x, until)) in &held {
                                    prop_assert!(!(*other != m && *x == packet.yiaddr && *until > now),
                                        "offered {} to {:?} while {:?} holds it", x, m, other);
                                }
                                offered.insert(m, packet.yiaddr);
                            }
                            MessageType::Ack => {
                                for (other, (x, until)) in &held {
                                    prop_assert!(!(*other != m && *x == packet.yiaddr && *until > now),
                                        "acked {} to {:?} while {:?} holds it", x, m, other);
                                }
                                if m == mac(5) {
                                    prop_assert_eq!(packet.yiaddr, a(103));
                                } else {
                                    prop_assert!(packet.yiaddr != a(103), "reserved address given away");
                                }
                                held.insert(m, (packet.yiaddr, now + Duration::from_secs(120)));
                            }
                            MessageType::Nak => {
                                held.remove(&m);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

/// A datagram for the no-panic property: random bytes, or a valid client
/// message with some bytes overwritten.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let valid =
        (0u8..4, 0u8..8, proptest::collection::vec((0usize..400, any::<u8>()), 0..6)).prop_map(|(c, kind, edits)| {
            let p = match kind {
                0 => discover(mac(c)),
                1 => select(mac(c), a(100 + c)),
                2 => init_reboot(mac(c), a(100 + c)),
                3 => renew(mac(c), a(100 + c)),
                4 => with_ciaddr(packet(mac(c), MessageType::Release), a(100 + c)),
                5 => with_requested(packet(mac(c), MessageType::Decline), a(100 + c)),
                6 => with_ciaddr(packet(mac(c), MessageType::Inform), a(20)),
                _ => packet(mac(c), MessageType::Ack),
            };
            let mut bytes = p.emit();
            for (at, v) in edits {
                if let Some(b) = bytes.get_mut(at) {
                    *b = v;
                }
            }
            bytes
        });
    prop_oneof![valid, proptest::collection::vec(any::<u8>(), 0..1600)]
}

proptest! {
    #[test]
    fn arbitrary_datagrams_and_time_steps_never_panic(
        inputs in proptest::collection::vec((datagram(), 0u64..100_000), 1..60)
    ) {
        let mut server = LeaseServer::new(config(100, 103), &[], T0).expect("valid");
        let mut now = T0;
        let mut out = Vec::new();
        for (bytes, step_ms) in inputs {
            now += Duration::from_millis(step_ms);
            server.handle(&bytes, now, &mut out);
            server.poll(now);
        }
        // Every datagram ends in exactly one counter.
        let c = *server.counters();
        let outcomes = c.dropped() + c.offers + c.acks + c.naks + c.releases + c.declines + c.informs + c.pool_exhausted;
        prop_assert_eq!(outcomes, c.received, "{:?}", c);
    }
}
