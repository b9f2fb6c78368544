//! The lease server state machine (RFC 2131 §4.3, server side).
//!
//! Owns the table of bindings: for each address, which MAC holds it and
//! in which state (offered, leased, expired, quarantined). Inputs are
//! datagrams ([`LeaseServer::handle`]) and the passing of time
//! ([`LeaseServer::poll`]); outputs are [`Action`]s. Parsing is
//! `opie_proto::lease`; this module counts every parse failure.
//!
//! Invariants kept by every transition (checked by the property test):
//! - an address has at most one binding, a MAC at most one current address;
//! - an address leased to one MAC is never offered or acknowledged to
//!   another before that lease expires or is released;
//! - a reserved address is never bound to any MAC but its owner.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use opie_proto::lease::{FLAG_BROADCAST, MessageType, Op, Options, Packet, PacketError};
use opie_proto::lease_log::{Entry, EntryKind, Mac};

use super::config::{Config, ConfigError, format_mac};
use super::counters::Counters;
use super::limiter::Limiter;

/// Port clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// Port servers (and relays) listen on.
pub const SERVER_PORT: u16 = 67;
/// Least time between two "pool exhausted" warnings, in ms.
const EXHAUSTED_WARN_INTERVAL_MS: u64 = 60_000;

/// What the daemon must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append the entry to the lease log. It must be durable (fsynced)
    /// before any later `Send` leaves.
    Persist(Entry),
    /// Send the packet from port 67 to `to`.
    Send { packet: Box<Packet>, to: SocketAddrV4 },
}

/// The state of one bound address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Offered to the MAC, held until `until` ms.
    Offered { until: u64 },
    /// Leased to the MAC until `until` ms.
    Leased { until: u64 },
    /// The MAC's lease ended at `since` ms; others may take the address,
    /// but it is the MAC's first choice when it returns.
    Expired { since: u64 },
    /// Declined by the MAC; nobody gets it before `until` ms.
    Declined { until: u64 },
}

impl State {
    /// When the next timer for this state fires.
    fn deadline(self) -> Option<u64> {
        match self {
            State::Offered { until } | State::Leased { until } | State::Declined { until } => Some(until),
            State::Expired { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    mac: Mac,
    state: State,
}

/// The lease server. See the module documentation.
#[derive(Debug)]
pub struct LeaseServer {
    cfg: Config,
    /// Address -> binding.
    bindings: HashMap<u32, Binding>,
    /// MAC -> its offered, leased or expired address (never a declined one).
    by_mac: HashMap<Mac, u32>,
    /// Pool addresses with no binding, not reserved, not the server's.
    free: BTreeSet<u32>,
    /// Expired pool bindings others may take: (since ms, address).
    reclaimable: BTreeSet<(u64, u32)>,
    /// Pending timers: (deadline ms, address).
    timers: BTreeSet<(u64, u32)>,
    reserved_addr: HashMap<u32, Mac>,
    reserved_mac: HashMap<Mac, u32>,
    limiter: Limiter,
    counters: Counters,
    last_exhausted_warn: Option<u64>,
}

fn ms(t: Duration) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
}

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

impl LeaseServer {
    /// Builds a server from a configuration and the entries of its lease
    /// log, oldest first. Entries that no longer fit the configuration (an
    /// address left the pools, a reservation moved) are skipped, logged and
    /// counted in [`Counters::restore_skipped`].
    pub fn new(cfg: Config, log: &[Entry], now: Duration) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let reserved_addr: HashMap<u32, Mac> = cfg.reservations.iter().map(|(m, a)| (u32::from(*a), *m)).collect();
        let reserved_mac: HashMap<Mac, u32> = cfg.reservations.iter().map(|(m, a)| (*m, u32::from(*a))).collect();
        let server = u32::from(cfg.server_ip);
        let free = cfg
            .pools
            .iter()
            .flat_map(|p| u32::from(p.start)..=u32::from(p.end))
            .filter(|a| *a != server && !reserved_addr.contains_key(a))
            .collect();
        let mut s = LeaseServer {
            limiter: Limiter::new(cfg.rate_limit),
            cfg,
            bindings: HashMap::new(),
            by_mac: HashMap::new(),
            free,
            reclaimable: BTreeSet::new(),
            timers: BTreeSet::new(),
            reserved_addr,
            reserved_mac,
            counters: Counters::default(),
            last_exhausted_warn: None,
        };
        let now = ms(now);
        for e in log {
            let a = u32::from(e.addr);
            if !s.allowed(e.mac, a) {
                log::warn!(
                    "lease log: {} for {} no longer fits the configuration, skipped",
                    e.addr,
                    format_mac(&e.mac)
                );
                s.counters.restore_skipped += 1;
                continue;
            }
            let until = e.until.saturating_mul(1000);
            let state = match e.kind {
                EntryKind::Lease if until > now => State::Leased { until },
                EntryKind::Lease | EntryKind::Release => State::Expired { since: until.min(now) },
                EntryKind::Decline if until > now => State::Declined { until },
                EntryKind::Decline => {
                    s.unbind(a);
                    continue;
                }
            };
            s.bind(a, e.mac, state);
        }
        Ok(s)
    }

    /// The running counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// When [`LeaseServer::poll`] next has work, as time since the epoch.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.first().map(|(at, _)| Duration::from_millis(*at))
    }

    /// The log entries that rebuild the current state: what a compacted
    /// log holds. Offers are not included (they are never persisted).
    pub fn snapshot(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .bindings
            .iter()
            .filter_map(|(a, b)| {
                let (kind, until) = match b.state {
                    State::Offered { .. } => return None,
                    State::Leased { until } => (EntryKind::Lease, until),
                    State::Expired { since } => (EntryKind::Release, since),
                    State::Declined { until } => (EntryKind::Decline, until),
                };
                Some(Entry { kind, mac: b.mac, addr: ip(*a), until: until.div_ceil(1000) })
            })
            .collect();
        out.sort_by_key(|e| (e.until, u32::from(e.addr)));
        out
    }

    /// The address `mac` currently holds a lease on, if any.
    pub fn lease_of(&self, mac: &Mac, now: Duration) -> Option<Ipv4Addr> {
        let a = *self.by_mac.get(mac)?;
        match self.bindings.get(&a)?.state {
            State::Leased { until } if until > ms(now) => Some(ip(a)),
            _ => None,
        }
    }

    /// Fires due timers: offers time out, leases expire, quarantines end.
    pub fn poll(&mut self, now: Duration) {
        let now = ms(now);
        while let Some(&(at, a)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, a));
            let Some(b) = self.bindings.get(&a).copied() else { continue };
            match b.state {
                State::Offered { .. } => self.unbind(a),
                State::Leased { until } => self.bind(a, b.mac, State::Expired { since: until }),
                State::Declined { .. } => self.unbind(a),
                State::Expired { .. } => {}
            }
        }
    }

    /// Handles one datagram received on port 67, appending what to do to
    /// `out`. Malformed or unwanted datagrams are counted and dropped.
    pub fn handle(&mut self, bytes: &[u8], now: Duration, out: &mut Vec<Action>) {
        self.counters.received += 1;
        let p = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                let c = &mut self.counters;
                *match e {
                    PacketError::TooShort(_) => &mut c.dropped_too_short,
                    PacketError::TooLong(_) => &mut c.dropped_too_long,
                    PacketError::BadOp(_) => &mut c.dropped_bad_op,
                    PacketError::BadHlen(_) => &mut c.dropped_bad_hlen,
                    PacketError::NoCookie => &mut c.dropped_no_cookie,
                    PacketError::NoMessageType => &mut c.dropped_no_message_type,
                    PacketError::TruncatedOption { .. }
                    | PacketError::BadOptionLength { .. }
                    | PacketError::BadMessageType(_) => &mut c.dropped_bad_options,
                } += 1;
                return;
            }
        };
        if p.htype != 1 || p.hlen != 6 {
            self.counters.dropped_unsupported_hw += 1;
            return;
        }
        if p.op != Op::Request {
            self.counters.dropped_not_request += 1;
            return;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(p.hw_addr());
        let now_ms = ms(now);
        if !self.limiter.allow(mac, now_ms) {
            self.counters.dropped_rate_limited += 1;
            return;
        }
        self.poll(now);
        if p.options.server_id.is_some_and(|s| s != self.cfg.server_ip) {
            // The client chose (or talks to) another server: forget our
            // offer so the address goes back to the pool.
            if p.message_type == MessageType::Request {
                self.drop_offer(mac);
            }
            self.counters.dropped_other_server += 1;
            return;
        }
        match p.message_type {
            MessageType::Discover => self.discover(&p, mac, now_ms, out),
            MessageType::Request => self.request(&p, mac, now_ms, out),
            MessageType::Decline => self.decline(&p, mac, now_ms, out),
            MessageType::Release => self.release(&p, mac, now_ms, out),
            MessageType::Inform => self.inform(&p, out),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => self.counters.dropped_not_request += 1,
        }
    }

    fn discover(&mut self, p: &Packet, mac: Mac, now: u64, out: &mut Vec<Action>) {
        let Some(a) = self.choose(mac, p.options.requested_ip, now) else {
            self.counters.pool_exhausted += 1;
            if self.last_exhausted_warn.is_none_or(|t| now.saturating_sub(t) >= EXHAUSTED_WARN_INTERVAL_MS) {
                self.last_exhausted_warn = Some(now);
                log::warn!("lease pool exhausted: no address to offer {}", format_mac(&mac));
            }
            return;
        };
        let held = matches!(self.bindings.get(&a), Some(b) if b.mac == mac && matches!(b.state, State::Leased { .. }));
        if !held {
            self.bind(a, mac, State::Offered { until: now + u64::from(self.cfg.offer_timeout) * 1000 });
        }
        self.counters.offers += 1;
        let reply = self.reply(p, MessageType::Offer, ip(a));
        out.push(Action::Send { to: destination(p, false), packet: Box::new(reply) });
    }

    /// Picks the address to offer `mac`: its reservation, its current or
    /// last address, the address it asks for, a free one, then the longest
    /// expired one.
    fn choose(&mut self, mac: Mac, requested: Option<Ipv4Addr>, now: u64) -> Option<u32> {
        if let Some(&r) = self.reserved_mac.get(&mac) {
            return self.takeable(mac, r, now).then_some(r);
        }
        if let Some(&a) = self.by_mac.get(&mac) {
            return Some(a);
        }
        if let Some(r) = requested.map(u32::from)
            && self.takeable(mac, r, now)
        {
            return Some(r);
        }
        self.free.first().copied().or_else(|| self.reclaimable.first().map(|(_, a)| *a))
    }

    /// Whether `a` may be given to `mac` by configuration alone.
    fn allowed(&self, mac: Mac, a: u32) -> bool {
        match (self.reserved_mac.get(&mac), self.reserved_addr.get(&a)) {
            (Some(&r), _) => r == a,
            (None, Some(_)) => false,
            (None, None) => a != u32::from(self.cfg.server_ip) && self.cfg.pools.iter().any(|p| p.contains(ip(a))),
        }
    }

    /// Whether `a` may be bound to `mac` now: allowed, and not held by
    /// anyone else (an expired binding of another MAC may be taken).
    fn takeable(&self, mac: Mac, a: u32, now: u64) -> bool {
        if !self.allowed(mac, a) {
            return false;
        }
        match self.bindings.get(&a) {
            None => true,
            Some(b) if b.mac == mac => !matches!(b.state, State::Declined { until } if until > now),
            Some(b) => matches!(b.state, State::Expired { .. }),
        }
    }

    fn request(&mut self, p: &Packet, mac: Mac, now: u64, out: &mut Vec<Action>) {
        let target = p.options.requested_ip.or((!p.ciaddr.is_unspecified()).then_some(p.ciaddr));
        let Some(target) = target.map(u32::from) else {
            self.counters.dropped_unusable += 1;
            return;
        };
        let current = self.by_mac.get(&mac).copied();
        let ok = if p.options.server_id.is_some() {
            // SELECTING: the client must ask for what we offered it.
            current == Some(target) && self.takeable(mac, target, now)
        } else if current == Some(target) {
            // INIT-REBOOT, RENEWING, REBINDING of the address we know.
            self.takeable(mac, target, now)
        } else {
            // We do not know this client at this address (its lease may
            // predate a lost log): allowed only if the address is free for
            // it and it holds no other live lease here.
            let other_live = current.is_some_and(|c| {
                matches!(self.bindings.get(&c), Some(b) if matches!(b.state, State::Leased { until } if until > now))
            });
            !other_live && self.takeable(mac, target, now)
        };
        if !ok {
            self.counters.naks += 1;
            let mut nak = self.reply(p, MessageType::Nak, Ipv4Addr::UNSPECIFIED);
            nak.ciaddr = Ipv4Addr::UNSPECIFIED;
            nak.options = Options {
                server_id: Some(self.cfg.server_ip),
                message: Some(b"address not available".to_vec()),
                ..Options::default()
            };
            out.push(Action::Send { to: destination(p, true), packet: Box::new(nak) });
            return;
        }
        let until = now + u64::from(self.cfg.lease_time) * 1000;
        self.bind(target, mac, State::Leased { until });
        out.push(Action::Persist(Entry { kind: EntryKind::Lease, mac, addr: ip(target), until: until.div_ceil(1000) }));
        self.counters.acks += 1;
        // Opie's own ISUs say who they are (serial, key fingerprint, disks)
        // in option 43: name them in the log. Other clients stay quiet, so a
        // flood of them cannot flood the log.
        if p.options.vendor_class.as_deref() == Some(crate::lease_client::VENDOR_CLASS) {
            let said = p.options.vendor_info.as_deref().unwrap_or_default();
            let said: String = String::from_utf8_lossy(said).chars().filter(|c| !c.is_control()).collect();
            log::info!("lease {} to {} (opie-isu {said})", ip(target), format_mac(&mac));
        }
        let mut ack = self.reply(p, MessageType::Ack, ip(target));
        ack.ciaddr = p.ciaddr;
        out.push(Action::Send { to: destination(p, false), packet: Box::new(ack) });
    }

    fn decline(&mut self, p: &Packet, mac: Mac, now: u64, out: &mut Vec<Action>) {
        let Some(a) = p.options.requested_ip.map(u32::from) else {
            self.counters.dropped_unusable += 1;
            return;
        };
        match self.bindings.get(&a) {
            Some(b) if b.mac == mac && !matches!(b.state, State::Declined { .. }) => {}
            _ => {
                self.counters.dropped_unusable += 1;
                return;
            }
        }
        let until = now + u64::from(self.cfg.quarantine) * 1000;
        self.bind(a, mac, State::Declined { until });
        log::warn!("{} declined {}: quarantined for {} s", format_mac(&mac), ip(a), self.cfg.quarantine);
        self.counters.declines += 1;
        out.push(Action::Persist(Entry { kind: EntryKind::Decline, mac, addr: ip(a), until: until.div_ceil(1000) }));
    }

    fn release(&mut self, p: &Packet, mac: Mac, now: u64, out: &mut Vec<Action>) {
        let a = u32::from(p.ciaddr);
        match self.bindings.get(&a) {
            Some(b) if b.mac == mac && matches!(b.state, State::Leased { .. } | State::Offered { .. }) => {}
            _ => {
                self.counters.dropped_unusable += 1;
                return;
            }
        }
        self.bind(a, mac, State::Expired { since: now });
        self.counters.releases += 1;
        out.push(Action::Persist(Entry { kind: EntryKind::Release, mac, addr: ip(a), until: now / 1000 }));
    }

    fn inform(&mut self, p: &Packet, out: &mut Vec<Action>) {
        if p.ciaddr.is_unspecified() {
            self.counters.dropped_unusable += 1;
            return;
        }
        let mut ack = self.reply(p, MessageType::Ack, Ipv4Addr::UNSPECIFIED);
        ack.ciaddr = p.ciaddr;
        ack.options.lease_time = None;
        ack.options.renewal_time = None;
        ack.options.rebinding_time = None;
        self.counters.informs += 1;
        out.push(Action::Send { to: destination(p, false), packet: Box::new(ack) });
    }

    /// Forgets an unanswered offer to `mac`.
    fn drop_offer(&mut self, mac: Mac) {
        if let Some(&a) = self.by_mac.get(&mac)
            && matches!(self.bindings.get(&a), Some(b) if matches!(b.state, State::Offered { .. }))
        {
            self.unbind(a);
        }
    }

    /// A reply carrying the server's options.
    fn reply(&self, p: &Packet, message_type: MessageType, yiaddr: Ipv4Addr) -> Packet {
        let lease = self.cfg.lease_time;
        Packet {
            op: Op::Reply,
            htype: p.htype,
            hlen: p.hlen,
            hops: 0,
            xid: p.xid,
            secs: 0,
            flags: p.flags & FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: p.giaddr,
            chaddr: p.chaddr,
            message_type,
            options: Options {
                server_id: Some(self.cfg.server_ip),
                lease_time: Some(lease),
                renewal_time: Some(lease / 2),
                rebinding_time: Some((u64::from(lease) * 7 / 8) as u32),
                subnet_mask: Some(self.cfg.subnet_mask),
                routers: self.cfg.routers.clone(),
                dns: self.cfg.dns.clone(),
                ..Options::default()
            },
        }
    }

    /// Binds `a` to `mac` in `state`, dropping whatever `a` and `mac` were
    /// bound to before and keeping every index in step.
    fn bind(&mut self, a: u32, mac: Mac, state: State) {
        if let Some(&old) = self.by_mac.get(&mac)
            && old != a
        {
            self.unbind(old);
        }
        if let Some(old) = self.bindings.get(&a).copied() {
            if old.mac != mac {
                self.unbind(a);
            } else {
                self.forget_indexes(a, old.state);
            }
        }
        self.free.remove(&a);
        self.bindings.insert(a, Binding { mac, state });
        match state {
            State::Declined { .. } => {
                self.by_mac.remove(&mac);
            }
            _ => {
                self.by_mac.insert(mac, a);
            }
        }
        if let Some(at) = state.deadline() {
            self.timers.insert((at, a));
        }
        if let State::Expired { since } = state
            && !self.reserved_addr.contains_key(&a)
        {
            self.reclaimable.insert((since, a));
        }
    }

    /// Removes the binding of `a`; a pool address becomes free again.
    fn unbind(&mut self, a: u32) {
        if let Some(old) = self.bindings.remove(&a) {
            self.forget_indexes(a, old.state);
            if self.by_mac.get(&old.mac) == Some(&a) {
                self.by_mac.remove(&old.mac);
            }
        }
        if !self.reserved_addr.contains_key(&a)
            && a != u32::from(self.cfg.server_ip)
            && self.cfg.pools.iter().any(|p| p.contains(ip(a)))
        {
            self.free.insert(a);
        }
    }

    fn forget_indexes(&mut self, a: u32, state: State) {
        if let Some(at) = state.deadline() {
            self.timers.remove(&(at, a));
        }
        if let State::Expired { since } = state {
            self.reclaimable.remove(&(since, a));
        }
    }
}

/// Where a reply goes (RFC 2131 §4.1): through the relay if there is one;
/// NAKs and replies to clients that ask for broadcast or have no address
/// yet are broadcast (a unicast to an address-less client would need a
/// neighbour entry); otherwise unicast to the client's address.
fn destination(p: &Packet, nak: bool) -> SocketAddrV4 {
    if !p.giaddr.is_unspecified() {
        SocketAddrV4::new(p.giaddr, SERVER_PORT)
    } else if nak || p.broadcast() || p.ciaddr.is_unspecified() {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else {
        SocketAddrV4::new(p.ciaddr, CLIENT_PORT)
    }
}

#[cfg(test)]
mod tests;
