//! The lease server: who gets which storage-net address (DESIGN §3).
//!
//! Owns the decisions of the head's DHCP-format server: pools and
//! reservations ([`Config`]), offers that time out, leases that expire,
//! quarantine of declined addresses, per-MAC rate limiting and the
//! [`Counters`] of everything dropped. It is sans-I/O: the daemon feeds it
//! datagrams and the current wall-clock time (leases outlive restarts, so
//! time is a `Duration` since the Unix epoch) and carries out the returned
//! [`Action`]s. The wire format is `opie_proto::lease`, the on-disk entries
//! `opie_proto::lease_log`; the socket, the fsync and compaction belong to
//! `opie-sys`.
//!
//! Durability contract: every [`Action::Persist`] must be durable before
//! any [`Action::Send`] that follows it leaves the host. That is what makes
//! "no address is ever given to two MACs" hold across crashes: an ACK only
//! exists once its lease is in the log, and [`LeaseServer::new`] rebuilds
//! every lease from the log. Offers are not persisted; an offer lost in a
//! crash is simply never acknowledged.

mod config;
mod counters;
mod limiter;
mod server;

pub use config::{Config, ConfigError, PoolRange, RateLimit};
pub use counters::Counters;
pub use server::{Action, LeaseServer};
