//! Network interface addressing through the classic socket ioctls.
//!
//! Owns setting a static IPv4 address and bringing a link up: what the
//! seed's serial-console fallback (1.7.3) and the storage net's static
//! addresses need. Leased addresses and routes will go through rtnetlink
//! with the lease client.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use thiserror::Error;

/// Errors configuring an interface.
#[derive(Debug, Error)]
pub enum NetifError {
    /// The interface name does not fit `IFNAMSIZ` or holds a NUL.
    #[error("interface name {0:?} is not valid")]
    BadName(String),
    /// An ioctl on the interface failed (no such device, no permission...).
    #[error("{op} on {iface}: {source}")]
    Ioctl { op: &'static str, iface: String, source: io::Error },
}

/// Sets `addr` with `netmask` on `iface` and brings it up.
pub fn set_ipv4(iface: &str, addr: Ipv4Addr, netmask: Ipv4Addr) -> Result<(), NetifError> {
    let sock = control_socket().map_err(|source| NetifError::Ioctl { op: "socket", iface: iface.into(), source })?;
    let mut req = ifreq_for(iface)?;
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR", iface)?;
    req.ifr_ifru.ifru_netmask = sockaddr_in(netmask);
    ioctl(&sock, libc::SIOCSIFNETMASK, &mut req, "SIOCSIFNETMASK", iface)?;
    set_up(&sock, iface)
}

/// Brings `iface` up without touching its addresses.
pub fn link_up(iface: &str) -> Result<(), NetifError> {
    let sock = control_socket().map_err(|source| NetifError::Ioctl { op: "socket", iface: iface.into(), source })?;
    set_up(&sock, iface)
}

fn set_up(sock: &OwnedFd, iface: &str) -> Result<(), NetifError> {
    let mut req = ifreq_for(iface)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req, "SIOCGIFFLAGS", iface)?;
    // SAFETY: SIOCGIFFLAGS just filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req, "SIOCSIFFLAGS", iface)
}

fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_for(iface: &str) -> Result<libc::ifreq, NetifError> {
    let bytes = iface.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(NetifError::BadName(iface.into()));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(addr).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and
    // sockaddr has no invalid bit patterns; this is the cast the kernel's
    // ioctl ABI expects.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl(
    sock: &OwnedFd,
    request: libc::Ioctl,
    req: &mut libc::ifreq,
    op: &'static str,
    iface: &str,
) -> Result<(), NetifError> {
    // SAFETY: `req` is a valid, initialised ifreq that outlives the call,
    // and every request used here reads or writes exactly one ifreq.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(NetifError::Ioctl { op, iface: iface.into(), source: io::Error::last_os_error() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        assert!(matches!(set_ipv4("", Ipv4Addr::LOCALHOST, Ipv4Addr::BROADCAST), Err(NetifError::BadName(_))));
        assert!(matches!(link_up("a-name-far-too-long"), Err(NetifError::BadName(_))));
    }

    #[test]
    fn missing_interface_is_a_clear_error() {
        let err = link_up("opienosuch0").expect_err("no such interface");
        assert!(err.to_string().contains("opienosuch0"), "{err}");
    }
}

/// The interface's hardware (MAC) address, from sysfs.
pub fn mac_address(iface: &str) -> Result<[u8; 6], NetifError> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).map_err(|source| NetifError::Ioctl {
        op: "read MAC address",
        iface: iface.into(),
        source,
    })?;
    parse_mac(text.trim()).ok_or_else(|| NetifError::BadName(format!("{iface}: MAC address {:?}", text.trim())))
}

/// Removes the interface's IPv4 address (the lease is gone).
pub fn clear_ipv4(iface: &str) -> Result<(), NetifError> {
    let sock = control_socket().map_err(|source| NetifError::Ioctl { op: "socket", iface: iface.into(), source })?;
    let mut req = ifreq_for(iface)?;
    // Setting 0.0.0.0 deletes the primary address (what `ifconfig IF 0` does).
    req.ifr_ifru.ifru_addr = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    ioctl(&sock, libc::SIOCSIFADDR, &mut req, "SIOCSIFADDR", iface)
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod mac_tests {
    #[test]
    fn parses_sysfs_mac_text() {
        assert_eq!(super::parse_mac("52:54:00:12:34:5f"), Some([0x52, 0x54, 0, 0x12, 0x34, 0x5f]));
        assert_eq!(super::parse_mac("52:54:00:12:34"), None);
        assert_eq!(super::parse_mac("52:54:00:12:34:5f:00"), None);
        assert_eq!(super::parse_mac("zz:54:00:12:34:5f"), None);
        assert!(super::mac_address("lo").is_ok());
    }
}
