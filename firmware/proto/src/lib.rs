//! Opie's wire and on-disk formats.
//!
//! This crate owns byte layouts and nothing else: every module parses
//! untrusted bytes into typed values (never panicking, never allocating more
//! than the input justifies) and emits typed values back into bytes. It does
//! no I/O and reads no clock; `opie-core` decides, `opie-sys` moves bytes.
#![forbid(unsafe_code)]

pub mod ctrl;
pub mod fence;
pub mod lease;
pub mod lease_log;
pub mod nbd;
pub mod record;
