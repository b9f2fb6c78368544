//! `opie lease-serve`: the head's storage-net lease server (DESIGN §3),
//! runnable on its own on a host.
//!
//! This module is wiring only. `opie_core::lease` decides every answer,
//! `opie_proto::lease` owns the bytes, `opie_sys::lease_socket` and
//! `opie_sys::lease_store` own the socket and the log file. What lives here
//! is the loop: wait for datagrams, the next timer or a signal; drain up to
//! [`BATCH`] datagrams; append what the server wants persisted, fdatasync
//! once for the whole batch (group commit), and only then send the
//! replies. So no ACK ever leaves before its lease is on disk, and a burst
//! costs one fsync instead of one per client.
//!
//! SIGUSR1 prints the counters; SIGTERM and SIGINT print them and exit.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_signal::{Signal, Signals};
use opie_core::lease::{Action, Config, ConfigError, Counters, LeaseServer, PoolRange};
use opie_proto::lease::MAX_LEN;
use opie_proto::lease_log::Mac;
use opie_sys::lease_socket::{self, LeaseSocketError};
use opie_sys::lease_store::{LeaseStore, LeaseStoreError};
use smol::channel::Receiver;
use smol::prelude::*;
use smol::{Async, Timer};
use thiserror::Error;

use crate::logging;

/// Most datagrams handled between two fsyncs. Replies of a batch leave
/// back to back, so this also bounds the burst a client's receive buffer
/// must absorb: with 256, perfdhcp at 8000 exchanges/s overflowed its
/// socket buffer in two of three runs, with 64 in none (bench/lease).
const BATCH: usize = 64;
/// The log is compacted once it holds this many records more than twice
/// the last snapshot.
const COMPACT_SLACK: u64 = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Storage-net interface to serve on (SO_BINDTODEVICE).
    #[arg(long)]
    iface: String,
    /// This server's address on that interface (the server identifier).
    #[arg(long)]
    server_ip: Ipv4Addr,
    /// Address pool START-END (inclusive); repeat for several pools.
    #[arg(long = "pool", required = true, value_parser = parse_pool)]
    pools: Vec<PoolRange>,
    /// Directory of the lease log.
    #[arg(long)]
    state_dir: PathBuf,
    /// Fixed address MAC=ADDR; repeat for several.
    #[arg(long = "reserve", value_parser = parse_reservation)]
    reservations: Vec<(Mac, Ipv4Addr)>,
    /// Lease time in seconds.
    #[arg(long, default_value_t = 3600)]
    lease_time: u32,
    /// Subnet mask handed to clients.
    #[arg(long, default_value = "255.255.255.0")]
    subnet_mask: Ipv4Addr,
    /// Router handed to clients (only if given); repeat for several.
    #[arg(long = "router")]
    routers: Vec<Ipv4Addr>,
    /// DNS server handed to clients (only if given); repeat for several.
    #[arg(long = "dns")]
    dns: Vec<Ipv4Addr>,
    /// Seconds an unanswered offer holds its address.
    #[arg(long, default_value_t = 60)]
    offer_timeout: u32,
    /// Seconds a declined address stays out of use.
    #[arg(long, default_value_t = 600)]
    quarantine: u32,
}

/// Why the lease server stopped.
#[derive(Debug, Error)]
pub enum LeaseServeError {
    /// The configuration from the command line is invalid.
    #[error("lease server configuration: {0}")]
    Config(#[from] ConfigError),
    /// The socket could not be opened.
    #[error(transparent)]
    Socket(#[from] LeaseSocketError),
    /// The lease log could not be read, written or synced. The server
    /// stops rather than answer without durable leases.
    #[error(transparent)]
    Store(#[from] LeaseStoreError),
    /// Waiting on the socket or installing signal handlers failed.
    #[error("lease server I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn parse_pool(s: &str) -> Result<PoolRange, String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("pool {s:?} is not START-END"))?;
    let start = a.trim().parse().map_err(|e| format!("pool start {a:?}: {e}"))?;
    let end = b.trim().parse().map_err(|e| format!("pool end {b:?}: {e}"))?;
    Ok(PoolRange { start, end })
}

fn parse_reservation(s: &str) -> Result<(Mac, Ipv4Addr), String> {
    let (m, a) = s.split_once('=').ok_or_else(|| format!("reservation {s:?} is not MAC=ADDR"))?;
    let parts: Vec<&str> = m.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!("MAC {m:?} does not have six octets"));
    }
    let mut mac = [0u8; 6];
    for (slot, part) in mac.iter_mut().zip(&parts) {
        *slot = u8::from_str_radix(part, 16).map_err(|_| format!("MAC {m:?}: bad octet {part:?}"))?;
    }
    let addr = a.parse().map_err(|e| format!("reservation address {a:?}: {e}"))?;
    Ok((mac, addr))
}

fn wall_clock() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Runs the lease server until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<(), LeaseServeError> {
    logging::init("opie-lease");
    let mut cfg = Config::new(args.server_ip, args.pools);
    cfg.reservations = args.reservations;
    cfg.lease_time = args.lease_time;
    cfg.subnet_mask = args.subnet_mask;
    cfg.routers = args.routers;
    cfg.dns = args.dns;
    cfg.offer_timeout = args.offer_timeout;
    cfg.quarantine = args.quarantine;
    let service = open(cfg, &args.iface, &args.state_dir)?;
    let (control, requests) = smol::channel::bounded(4);
    smol::block_on(async {
        let mut signals = Signals::new([Signal::Term, Signal::Int, Signal::Usr1])?;
        let forward = async {
            while let Some(Ok(signal)) = signals.next().await {
                let request = if signal == Signal::Usr1 { Control::PrintCounters } else { Control::Stop };
                if control.send(request).await.is_err() {
                    break;
                }
            }
            Ok(())
        };
        serve(service, requests, |_| {}).or(forward).await
    })
}

/// A lease server ready to serve: the core with its log loaded and
/// compacted, the log, and the socket.
#[derive(Debug)]
pub struct Service {
    server: LeaseServer,
    store: LeaseStore,
    socket: UdpSocket,
    live: u64,
}

/// Loads the lease log from `state_dir`, compacts it and opens port 67 on
/// `iface`. The head's supervisor and `opie lease-serve` both start here.
pub fn open(cfg: Config, iface: &str, state_dir: &std::path::Path) -> Result<Service, LeaseServeError> {
    cfg.validate()?;
    let server_ip = cfg.server_ip;
    let opened = LeaseStore::open(state_dir)?;
    let mut store = opened.store;
    let server = LeaseServer::new(cfg, &opened.entries, wall_clock())?;
    // Start from a compact, damage-free log.
    let snapshot = server.snapshot();
    store.compact(&snapshot)?;
    log::info!(
        "lease log {}: {} entries loaded, {} kept after compaction",
        state_dir.display(),
        opened.entries.len(),
        snapshot.len()
    );
    let socket = lease_socket::open(iface, 67)?;
    log::info!("serving leases on {iface} as {server_ip}");
    Ok(Service { server, store, socket, live: snapshot.len() as u64 })
}

/// What the owner of a running server may ask of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Log every counter.
    PrintCounters,
    /// Log the counters and return.
    Stop,
}

/// What woke the loop.
enum Wake {
    Readable,
    Timer,
    Control(Option<Control>),
}

/// Serves until told to stop (or the control channel closes). The
/// counters go to `on_counters` whenever a wake-up changed them (the
/// supervisor shows them in `opie status`).
pub async fn serve(
    service: Service,
    control: Receiver<Control>,
    mut on_counters: impl FnMut(&Counters),
) -> Result<(), LeaseServeError> {
    let Service { mut server, mut store, socket, mut live } = service;
    let mut reported = *server.counters();
    on_counters(&reported);
    let socket = Async::new(socket)?;
    let mut buf = vec![0u8; MAX_LEN + 1];
    let mut actions = Vec::new();
    let mut send_errors = 0u64;
    loop {
        let timer = match server.next_deadline() {
            Some(at) => Timer::at(Instant::now() + at.saturating_sub(wall_clock())),
            None => Timer::never(),
        };
        let wake = async { socket.readable().await.map(|()| Wake::Readable) }
            .or(async {
                timer.await;
                Ok(Wake::Timer)
            })
            .or(async { Ok(Wake::Control(control.recv().await.ok())) })
            .await?;
        match wake {
            Wake::Timer => server.poll(wall_clock()),
            Wake::Control(Some(Control::PrintCounters)) => print_counters(server.counters(), send_errors),
            Wake::Control(_) => {
                print_counters(server.counters(), send_errors);
                return Ok(());
            }
            Wake::Readable => {
                actions.clear();
                for _ in 0..BATCH {
                    match socket.get_ref().recv_from(&mut buf) {
                        Ok((n, _)) => server.handle(&buf[..n], wall_clock(), &mut actions),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                for act in &actions {
                    if let Action::Persist(e) = act {
                        store.append(e);
                    }
                }
                // Durable before any reply leaves (the core's contract).
                store.sync()?;
                for act in &actions {
                    if let Action::Send { packet, to } = act
                        && let Err(e) = socket.get_ref().send_to(&packet.emit(), SocketAddr::V4(*to))
                    {
                        send_errors += 1;
                        log::debug!("reply to {to} not sent: {e}");
                    }
                }
                if store.records() > COMPACT_SLACK + 2 * live {
                    let snapshot = server.snapshot();
                    live = snapshot.len() as u64;
                    store.compact(&snapshot)?;
                }
            }
        }
        if *server.counters() != reported {
            reported = *server.counters();
            on_counters(&reported);
        }
    }
}

/// Logs every counter on one line.
fn print_counters(c: &Counters, send_errors: u64) {
    let fields: Vec<String> = c.fields().iter().map(|(n, v)| format!("{n}={v}")).collect();
    log::info!("lease counters: {} send_errors={send_errors}", fields.join(" "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pools_and_reservations() {
        assert_eq!(
            parse_pool("10.77.0.100-10.77.0.199"),
            Ok(PoolRange { start: Ipv4Addr::new(10, 77, 0, 100), end: Ipv4Addr::new(10, 77, 0, 199) })
        );
        assert!(parse_pool("10.77.0.100").is_err());
        assert!(parse_pool("10.77.0.100-x").is_err());
        assert_eq!(
            parse_reservation("02:00:0a:0B:00:01=10.77.0.5"),
            Ok(([2, 0, 10, 11, 0, 1], Ipv4Addr::new(10, 77, 0, 5)))
        );
        assert!(parse_reservation("02:00:0a:0b:00=10.77.0.5").is_err());
        assert!(parse_reservation("02:00:0a:0b:00:zz=10.77.0.5").is_err());
        assert!(parse_reservation("02:00:0a:0b:00:01").is_err());
    }
}
