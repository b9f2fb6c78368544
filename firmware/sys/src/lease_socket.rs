//! The lease server's UDP socket: port 67 on one interface.
//!
//! Owns creating the socket the way a DHCP server on a multi-homed head
//! needs it: bound to 0.0.0.0:67 (clients without an address send from
//! 0.0.0.0 to 255.255.255.255, which only a wildcard bind receives),
//! restricted to one interface with `SO_BINDTODEVICE` so the LAN side never
//! sees the storage net's server, allowed to broadcast with `SO_BROADCAST`,
//! and non-blocking so the daemon can drain bursts. What to send is
//! decided by `opie_core::lease`.

use std::ffi::CString;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{FromRawFd, OwnedFd};

use thiserror::Error;

/// Receive buffer asked for: room for several thousand queued datagrams.
const RCVBUF: libc::c_int = 4 * 1024 * 1024;

/// Errors creating the lease socket.
#[derive(Debug, Error)]
pub enum LeaseSocketError {
    /// The interface name is empty, too long or contains a NUL byte.
    #[error("interface name {0:?} is not valid")]
    BadInterface(String),
    /// A socket call failed.
    #[error("{op} for interface {iface}: {source}")]
    Os { op: &'static str, iface: String, source: io::Error },
}

/// Opens a non-blocking UDP socket on 0.0.0.0:`port`, bound to `iface`,
/// with broadcast allowed. Needs CAP_NET_RAW (bind to device) and
/// CAP_NET_BIND_SERVICE for ports below 1024.
pub fn open(iface: &str, port: u16) -> Result<UdpSocket, LeaseSocketError> {
    let name = CString::new(iface).map_err(|_| LeaseSocketError::BadInterface(iface.to_owned()))?;
    if iface.is_empty() || name.as_bytes_with_nul().len() > libc::IFNAMSIZ {
        return Err(LeaseSocketError::BadInterface(iface.to_owned()));
    }
    let os = |op: &'static str| {
        let source = io::Error::last_os_error();
        LeaseSocketError::Os { op, iface: iface.to_owned(), source }
    };
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
    if fd < 0 {
        return Err(os("socket"));
    }
    // SAFETY: fd is a freshly created socket that nothing else owns; the
    // OwnedFd closes it on every early return below.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let one: libc::c_int = 1;
    for (opt, op) in [(libc::SO_REUSEADDR, "SO_REUSEADDR"), (libc::SO_BROADCAST, "SO_BROADCAST")] {
        // SAFETY: `one` is a live c_int and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os(op));
        }
    }
    // A burst of clients (a rack powering up, a benchmark) must not
    // overflow the default receive buffer of ~200 KiB; root may go past
    // rmem_max with SO_RCVBUFFORCE, anyone else gets what SO_RCVBUF allows.
    let rcvbuf: libc::c_int = RCVBUF;
    let forced = [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF].into_iter().any(|opt| {
        // SAFETY: `rcvbuf` is a live c_int and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                opt,
                (&rcvbuf as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        rc == 0
    });
    if !forced {
        return Err(os("SO_RCVBUF"));
    }
    let bytes = name.as_bytes_with_nul();
    // SAFETY: `bytes` is a NUL-terminated name of at most IFNAMSIZ bytes,
    // alive for the call; the length passed is exactly its length.
    let rc = unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os("SO_BINDTODEVICE"));
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::UNSPECIFIED).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a fully initialised sockaddr_in and the length
    // passed is its size.
    let rc = unsafe {
        libc::bind(raw, (&addr as *const libc::sockaddr_in).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(os("bind"));
    }
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_interface_names_are_refused_before_any_syscall() {
        assert!(matches!(open("", 67), Err(LeaseSocketError::BadInterface(_))));
        assert!(matches!(open("a\0b", 67), Err(LeaseSocketError::BadInterface(_))));
        assert!(matches!(open("an-interface-name-too-long", 67), Err(LeaseSocketError::BadInterface(_))));
    }

    #[test]
    fn opens_on_loopback_and_receives() {
        // Port 0 lets the kernel pick, so the test needs no privileges
        // beyond SO_BINDTODEVICE (tests run as root here).
        let sock = open("lo", 0).expect("socket on lo");
        let port = sock.local_addr().expect("addr").port();
        let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
        sender.send_to(b"hello", ("127.0.0.1", port)).expect("send");
        sock.set_nonblocking(false).expect("blocking");
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 16];
        let (n, _) = sock.recv_from(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"hello");
    }
}
