//! Opie's decisions, free of I/O.
//!
//! Every module here is a state machine or a pure function: inputs are
//! parsed messages, command results and the current time (passed in, never
//! read from a clock); outputs are values or actions for `opie-sys` and the
//! daemon to carry out. Nothing here opens a file, a socket or a process,
//! which is what lets the simulated cluster in `opie-testkit` run them.
#![forbid(unsafe_code)]

pub mod adoption;
pub mod api;
pub mod backup;
pub mod boot;
pub mod bringup;
pub mod config;
pub mod config_change;
pub mod ctrl;
pub mod fence;
pub mod ha;
pub mod lease;
pub mod lease_client;
pub mod menu;
pub mod nbd;
pub mod nbd_client;
pub mod recovery;
pub mod shares;
pub mod status;
pub mod storage;
pub mod web;
pub mod wizard;
