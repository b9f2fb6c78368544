//! Fakes and simulators for Opie's tests.
//!
//! `SimClock` is the time source every core state machine is driven with in
//! tests: it only moves when a test advances it.
#![forbid(unsafe_code)]

pub mod clock;
