//! Zero-copy moves between a file and a socket through a pipe (splice(2)).
//!
//! The NBD server receives large WRITE payloads with this (socket → pipe →
//! file: the received data is copied once, into the page cache, instead of
//! twice through a user buffer) and answers large READs with it: the data moves from the
//! page cache into a pipe as page references, then from the pipe into the
//! socket, without being copied through user memory. Filling the pipe reads
//! the file, so a read error is seen *before* the reply header is sent and
//! can still be reported as an NBD error (which a plain sendfile could not
//! do). What to send and when is decided by the caller; this module only
//! moves bytes.
//!
//! Page references mean a write landing on the same pages after the fill
//! but before the socket sends them can show up in the reply. A client can
//! only observe that for a write it issued without waiting for the read's
//! reply, which NBD leaves unordered anyway.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// A pipe used as a splice buffer: each [`SplicePipe::fill_from`] is
/// followed by a [`SplicePipe::drain_to`] of what it moved. After a failed
/// call the contents are unknown and the pipe must be replaced.
#[derive(Debug)]
pub struct SplicePipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl SplicePipe {
    /// Creates a pipe and asks for `capacity` bytes of buffer; the kernel
    /// may grant less (`/proc/sys/fs/pipe-max-size` for unprivileged users).
    pub fn new(capacity: usize) -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`, which has room
        // for exactly two.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created by pipe2 and are owned
        // by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let want = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ takes an int argument, no pointers.
        let mut granted = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
        if granted < 0 {
            // SAFETY: F_GETPIPE_SZ takes no argument.
            granted = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        }
        if granted <= 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SplicePipe { read, write, capacity: granted as usize })
    }

    /// Moves up to `len` bytes of `file` at `offset` into the (empty)
    /// pipe and returns how many it moved: fewer than `len` when the pipe
    /// filled up (a pipe holds whole or partial pages, so unaligned data
    /// fits fewer bytes than its capacity). Never returns 0 for `len > 0`:
    /// a file ending early is `UnexpectedEof`.
    pub fn fill_from(&mut self, file: &impl AsFd, offset: u64, len: usize) -> io::Result<usize> {
        let mut off = libc::loff_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut filled = 0;
        while filled < len {
            // SAFETY: `off` is a live loff_t the kernel reads and advances;
            // the output offset is null as pipes have none; both
            // descriptors are open for the duration of the call.
            let n = unsafe {
                libc::splice(
                    file.as_fd().as_raw_fd(),
                    &mut off,
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    len - filled,
                    // Non-blocking on the pipe side only: a full pipe
                    // returns EAGAIN instead of waiting for a reader.
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => filled += n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => {}
                        io::ErrorKind::WouldBlock if filled > 0 => break,
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(filled)
    }

    /// Moves up to `len` bytes arriving on `socket` into the (empty) pipe
    /// and returns how many: at least one, waiting for data if none is
    /// queued. The socket's data is taken by reference, not copied. End of
    /// stream is `UnexpectedEof`.
    pub fn fill_from_socket(&mut self, socket: &impl AsFd, len: usize) -> io::Result<usize> {
        loop {
            // SAFETY: both offsets are null (a socket and a pipe have none);
            // both descriptors are open for the duration of the call.
            let n = unsafe {
                libc::splice(
                    socket.as_fd().as_raw_fd(),
                    std::ptr::null_mut(),
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    len.min(self.capacity),
                    libc::SPLICE_F_MOVE,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => return Ok(n as usize),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Writes `len` bytes from the pipe into `file` at `offset`. On error,
    /// returns how many bytes were written before it; the rest are still in
    /// the pipe for [`SplicePipe::read_into`].
    pub fn drain_to_file(&mut self, file: &impl AsFd, offset: u64, len: usize) -> Result<(), (usize, io::Error)> {
        let mut off = libc::loff_t::try_from(offset).map_err(|_| (0, io::Error::from_raw_os_error(libc::EINVAL)))?;
        let mut done = 0;
        while done < len {
            // SAFETY: `off` is a live loff_t the kernel reads and advances;
            // the pipe has no offset; both descriptors are open for the
            // duration of the call.
            let n = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    file.as_fd().as_raw_fd(),
                    &mut off,
                    len - done,
                    libc::SPLICE_F_MOVE,
                )
            };
            match n {
                0 => return Err((done, io::ErrorKind::WriteZero.into())),
                n if n > 0 => done += n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err((done, e));
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies exactly `buf.len()` bytes out of the pipe (which must hold
    /// at least that many) into `buf`.
    pub fn read_into(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            // SAFETY: the pointer and length describe `rest`, which stays
            // mutably borrowed for the whole call.
            let n = unsafe { libc::read(self.read.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
            match n {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n if n > 0 => done += n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves `len` bytes from the pipe into `socket`. With `more`, the
    /// kernel is told more data follows (it holds back a partial segment).
    pub fn drain_to(&mut self, socket: &impl AsFd, len: usize, more: bool) -> io::Result<()> {
        let flags = libc::SPLICE_F_MOVE | if more { libc::SPLICE_F_MORE } else { 0 };
        let mut left = len;
        while left > 0 {
            // SAFETY: both offsets are null (a pipe and a socket have none);
            // both descriptors are open for the duration of the call.
            let n = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    socket.as_fd().as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                    flags,
                )
            };
            match n {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n if n > 0 => left -= n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sends all of `bytes` on `socket` with MSG_MORE: the kernel waits for the
/// data that follows (a splice) before sending a partial segment, so a
/// reply header and its data leave together.
pub fn send_more(socket: &impl AsFd, bytes: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: the pointer and length describe `rest`, which stays
        // borrowed and initialised for the whole call.
        let n = unsafe {
            libc::send(
                socket.as_fd().as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        match n {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n if n > 0 => sent += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn file_bytes_reach_the_socket_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&client).read_to_end(&mut got).expect("read");
            got
        });
        let mut pipe = SplicePipe::new(1 << 20).expect("pipe");
        assert!(pipe.capacity >= 4096);
        send_more(&server, b"head").expect("header");
        let mut offset = 1000usize;
        let end = data.len() - 1000;
        while offset < end {
            // Unaligned offsets: each fill may move less than asked.
            let n = pipe.fill_from(&file, offset as u64, end - offset).expect("fill");
            assert!(n > 0 && n <= pipe.capacity);
            pipe.drain_to(&server, n, offset + n < end).expect("drain");
            offset += n;
        }
        drop(server);
        let got = reader.join().expect("reader");
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[1000..data.len() - 1000]);
    }

    #[test]
    fn socket_bytes_reach_the_file_and_can_be_read_back_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("target");
        std::fs::write(&path, vec![0u8; 4 << 20]).expect("write");
        let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut client, &sent).expect("send"));
        let mut pipe = SplicePipe::new(1 << 20).expect("pipe");
        let mut done = 0;
        while done < data.len() - 1000 {
            let n = pipe.fill_from_socket(&server, data.len() - 1000 - done).expect("fill");
            pipe.drain_to_file(&file, 777 + done as u64, n).map_err(|(_, e)| e).expect("drain");
            done += n;
        }
        // The last bytes leave the pipe by copy, as after a failed splice.
        let n = pipe.fill_from_socket(&server, 1000).expect("fill");
        let mut tail = vec![0u8; n];
        pipe.read_into(&mut tail).expect("read out");
        assert_eq!(tail, data[done..done + n]);
        writer.join().expect("writer");
        let written = std::fs::read(&path).expect("read");
        assert!(written[777..777 + done] == data[..done]);
        assert!(written[..777].iter().all(|&b| b == 0));
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("short");
        std::fs::write(&path, [1u8; 100]).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let mut pipe = SplicePipe::new(65536).expect("pipe");
        let err = pipe.fill_from(&file, 50, 100).expect_err("short file");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
