//! The backup service's decisions (seed 1.4, DESIGN §8, issue 10), free of
//! I/O.
//!
//! - [`civil`]: UTC instants, calendar dates and time zones (a fixed offset
//!   or a daylight-saving rule). The current time and the zone are inputs;
//!   nothing here reads a clock or the system's zone database.
//! - [`schedule`]: one-time, daily, weekly and cron-like schedules, parsed
//!   from text; the next run after an instant; missed runs at start-up.
//! - [`retention`]: which dated backup versions to keep and which to delete.
//! - [`job`]: one job's state machine (snapshot → copy → verify → clean up),
//!   with cancel, failure, crash recovery, queuing and alerts.
//!
//! Taking and removing LVM snapshots, mounting, running rsync and checksums,
//! and persisting a job's state belong to `opie-sys` and the daemon, which
//! carry out the [`job::Action`]s and report back with [`job::Event`]s.

pub mod civil;
pub mod job;
pub mod retention;
pub mod schedule;
