//! The control channel between heads and ISUs (DESIGN §4), without I/O.
//!
//! `keys` owns node keys and key derivation; `session` owns one
//! connection's handshake, authentication, ordering and liveness. The
//! daemon feeds a session the bytes it reads and the current time and
//! carries out the actions it returns.

pub mod keys;
pub mod session;
