//! Fakes and simulators for Opie's tests.
//!
//! `SimClock` is the time source every core state machine is driven with in
//! tests: it only moves when a test advances it. `FakeHost` models disks,
//! md arrays, LVM and mounts behind `opie_sys::host::Host` for the storage
//! planner's and driver's tests.
//! `SimNet` runs the head-failover state machines (`opie_core::ha`) on an
//! in-memory network with cuts, drops, freezes and restarts.
#![forbid(unsafe_code)]

pub mod clock;
pub mod fake_host;
pub mod fake_shares;
pub mod simnet;
