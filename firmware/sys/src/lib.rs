//! Opie's contact with the operating system.
//!
//! The only crate that makes syscalls, opens files and sockets or runs
//! external programs. Every `unsafe` block lives here with a `SAFETY:` line
//! saying why it is sound. The decisions these calls carry out are made in
//! `opie-core`.

pub mod blockfile;
pub mod fence_store;
pub mod host;
pub mod lease_socket;
pub mod lease_store;
pub mod nbd_netlink;
pub mod netif;
pub mod random;
pub mod shares;
pub mod slots;
pub mod splice;
pub mod statedisk;
pub mod storage_driver;
pub mod system;
