//! Host integration tests for `opie nbd-serve`: the real binary on
//! 127.0.0.1, driven by stock clients (nbdinfo, nbdcopy, nbdsh from libnbd;
//! qemu-img) and by a raw client built on `opie_proto::nbd` for the cases
//! stock clients never produce (garbage, truncation, vanishing clients,
//! oversized and out-of-range requests, memory under load).
//!
//! A missing tool fails the test with the Debian package to install; no
//! test is skipped silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use opie_proto::nbd::{
    CLIENT_FIXED_NEWSTYLE, CLIENT_NO_ZEROES, ClientOption, GREETING_LEN, Greeting, Info, InfoRequest,
    OPTION_REPLY_HEADER_LEN, OptionReply, REQUEST_LEN, ReplyBody, Request, SIMPLE_REPLY_LEN, SimpleReply, cmd, errno,
    opt, rep, tflag,
};

const MIB: usize = 1024 * 1024;

/// A running `opie nbd-serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Starts the server with `exports` (name, path) and extra flags.
    fn start(exports: &[(&str, &Path)], extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opie"));
        cmd.args(["nbd-serve", "--listen", "127.0.0.1:0"]);
        for (name, path) in exports {
            cmd.arg("--export").arg(format!("{name}={}", path.display()));
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn opie");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listening line");
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("no 'listening on' line, got {line:?}; log: {log}")
        });
        Server { child, port, _dir: dir, log }
    }

    fn uri(&self, name: &str) -> String {
        format!("nbd://127.0.0.1:{}/{name}", self.port)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        s
    }

    /// Fails the test if the server process has exited.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("server exited with {status}; log:\n{log}");
        }
    }

    /// Peak resident set size of the server, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM value");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn image(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write image");
    path
}

/// Runs a tool, failing the test with the package name if it is missing
/// and with its output if it fails.
fn run(tool: &str, package: &str, args: &[&str]) -> Output {
    let output = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install the Debian package {package}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn sha256(path: &Path) -> String {
    let out = run("sha256sum", "coreutils", &[path.to_str().expect("utf-8 path")]);
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_owned()
}

/// A minimal NBD client speaking the wire format directly.
struct RawClient {
    sock: TcpStream,
}

impl RawClient {
    /// Reads the greeting and sends the client flags.
    fn greet(sock: TcpStream) -> RawClient {
        let mut c = RawClient { sock };
        let mut g = [0u8; GREETING_LEN];
        c.sock.read_exact(&mut g).expect("greeting");
        let greeting = Greeting::parse(&g).expect("valid greeting");
        assert_ne!(greeting.flags & 1, 0, "fixed newstyle offered");
        c.sock.write_all(&(CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES).to_be_bytes()).expect("flags");
        c
    }

    fn send_option(&mut self, option: ClientOption<'_>) {
        let mut out = Vec::new();
        option.emit(&mut out);
        self.sock.write_all(&out).expect("send option");
    }

    fn read_reply(&mut self) -> OptionReply {
        let mut buf = vec![0u8; OPTION_REPLY_HEADER_LEN];
        self.sock.read_exact(&mut buf).expect("reply header");
        let len = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
        buf.resize(OPTION_REPLY_HEADER_LEN + len, 0);
        self.sock.read_exact(&mut buf[OPTION_REPLY_HEADER_LEN..]).expect("reply data");
        OptionReply::parse(&buf).expect("valid reply").0
    }

    /// Sends NBD_OPT_GO for `name`; returns (size, flags) or the error code.
    fn go(&mut self, name: &str) -> Result<(u64, u16), u32> {
        self.send_option(ClientOption::Go(InfoRequest::new(name, &[0, 3])));
        let mut export = None;
        loop {
            let reply = self.read_reply();
            assert_eq!(reply.option, opt::GO);
            match reply.body {
                ReplyBody::Info(Info::Export { size, flags }) => export = Some((size, flags)),
                ReplyBody::Info(_) => {}
                ReplyBody::Ack => return Ok(export.expect("NBD_INFO_EXPORT before ACK")),
                ReplyBody::Error { code, .. } => return Err(code),
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }

    fn request(&mut self, command: u16, flags: u16, offset: u64, length: u32, handle: u64) {
        let req = Request { flags, command, handle, offset, length };
        self.sock.write_all(&req.emit()).expect("send request");
    }

    fn simple_reply(&mut self) -> SimpleReply {
        let mut buf = [0u8; SIMPLE_REPLY_LEN];
        self.sock.read_exact(&mut buf).expect("simple reply");
        SimpleReply::parse(&buf).expect("valid simple reply")
    }

    fn read(&mut self, offset: u64, len: u32, handle: u64) -> Result<Vec<u8>, u32> {
        self.request(cmd::READ, 0, offset, len, handle);
        let reply = self.simple_reply();
        assert_eq!(reply.handle, handle);
        if reply.error != 0 {
            return Err(reply.error);
        }
        let mut data = vec![0u8; len as usize];
        self.sock.read_exact(&mut data).expect("read data");
        Ok(data)
    }

    fn write(&mut self, offset: u64, data: &[u8], handle: u64) -> u32 {
        self.request(cmd::WRITE, 0, offset, data.len() as u32, handle);
        self.sock.write_all(data).expect("payload");
        let reply = self.simple_reply();
        assert_eq!(reply.handle, handle);
        reply.error
    }

    /// True once the server has closed the connection.
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.sock.read(&mut byte), Ok(0) | Err(_))
    }
}

fn raw_session(server: &Server, name: &str) -> RawClient {
    let mut c = RawClient::greet(server.connect());
    c.go(name).expect("GO accepted");
    c
}

#[test]
fn nbdinfo_reports_size_flags_block_sizes_and_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = image(dir.path(), "a.img", &vec![0; 3 * MIB]);
    let b = image(dir.path(), "b.img", &vec![0; MIB]);
    let server = Server::start(&[("alpha", &a), ("beta", &b)], &[]);
    let out = run("nbdinfo", "libnbd-bin", &[&server.uri("alpha")]);
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "export-size: 3145728",
        "is_read_only: false",
        "can_flush: true",
        "can_fua: true",
        "can_trim: true",
        "can_zero: true",
        "can_multi_conn: true",
        "block_size_minimum: 1",
        "block_size_preferred: 4096",
        "block_size_maximum: 33554432",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let out = run("nbdinfo", "libnbd-bin", &["--list", &server.uri("")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("export=\"alpha\""), "{text}");
    assert!(text.contains("export=\"beta\""), "{text}");
    assert!(text.contains("export-size: 1048576"), "{text}");
    // An unknown export is refused and the server keeps serving.
    let missing = Command::new("nbdinfo").arg(server.uri("gamma")).output().expect("nbdinfo runs");
    assert!(!missing.status.success());
    run("nbdinfo", "libnbd-bin", &["--size", &server.uri("beta")]);
}

#[test]
fn read_only_exports_say_so_and_refuse_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let contents = pattern(MIB, 7);
    let path = image(dir.path(), "ro.img", &contents);
    let server = Server::start(&[("ro", &path)], &["--read-only"]);
    let out = run("nbdinfo", "libnbd-bin", &[&server.uri("ro")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is_read_only: true"), "{text}");
    assert!(text.contains("can_trim: false"), "{text}");
    let mut c = raw_session(&server, "ro");
    assert_eq!(c.write(0, &[1, 2, 3], 1), errno::EPERM);
    c.request(cmd::TRIM, 0, 0, 4096, 2);
    assert_eq!(c.simple_reply().error, errno::EPERM);
    assert_eq!(c.read(0, 4096, 3).expect("read"), contents[..4096]);
    assert_eq!(std::fs::read(&path).expect("image"), contents);
}

#[test]
fn nbdcopy_round_trip_keeps_every_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = image(dir.path(), "src.img", &pattern(24 * MIB + 12345, 1));
    let disk = image(dir.path(), "disk.img", &vec![0; 24 * MIB + 12345]);
    let back = dir.path().join("back.img");
    let server = Server::start(&[("disk", &disk)], &[]);
    run("nbdcopy", "libnbd-bin", &[src.to_str().expect("path"), &server.uri("disk")]);
    run("nbdcopy", "libnbd-bin", &[&server.uri("disk"), back.to_str().expect("path")]);
    let want = sha256(&src);
    assert_eq!(sha256(&back), want);
    assert_eq!(sha256(&disk), want);
}

#[test]
fn nbdsh_reads_writes_trims_zeroes_and_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image_path = image(dir.path(), "disk.img", &vec![0xaa; 4 * MIB]);
    let server = Server::start(&[("disk", &image_path)], &[]);
    let script = r#"
import errno
assert h.get_size() == 4 * 1024 * 1024
assert h.can_flush() and h.can_fua() and h.can_trim() and h.can_zero()
assert h.can_multi_conn()
assert not h.can_df() and not h.can_cache() and not h.can_fast_zero()
h.pwrite(b"opie" * 1024, 8192)
h.pwrite(b"\x01" * 100, 4 * 1024 * 1024 - 100, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b"opie" * 1024
assert h.pread(100, 4 * 1024 * 1024 - 100) == b"\x01" * 100
h.trim(65536, 65536)
assert h.pread(65536, 65536) in (b"\0" * 65536, b"\xaa" * 65536)
h.zero(5000, 1000000, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(5000, 1000000) == b"\0" * 5000
assert h.pread(1, 999999) == b"\xaa" and h.pread(1, 1005000) == b"\xaa"
h.zero(1048576, 2000000)
assert h.pread(1048576, 2000000) == b"\0" * 1048576
assert h.pread(1, 1999999) == b"\xaa"
h.zero(10, 3500000, nbd.CMD_FLAG_FUA)
h.flush()
try:
    h.pread(4096, 4 * 1024 * 1024 - 100)
    raise AssertionError("read past the end succeeded")
except nbd.Error as e:
    assert e.errnum == errno.EINVAL, e
assert h.pread(1, 0) == b"\xaa"
"#;
    // nbdsh starts `python3` from PATH; the libnbd bindings
    // (python3-libnbd) belong to the system interpreter in /usr/bin, so put
    // it first in case another python3 shadows it.
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let output = Command::new("nbdsh")
        .args(["-u", &server.uri("disk"), "-c", script])
        .env("PATH", path)
        .output()
        .expect("cannot run nbdsh: install the Debian package python3-libnbd");
    assert!(
        output.status.success(),
        "nbdsh script failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let data = std::fs::read(&image_path).expect("image");
    assert_eq!(&data[8192..8196], b"opie");
    assert!(data[1000000..1005000].iter().all(|&b| b == 0));
    assert_eq!((data[999999], data[1005000], data[1999999]), (0xaa, 0xaa, 0xaa));
    assert!(data[2000000..3048576].iter().all(|&b| b == 0));
    assert!(data[3500000..3500010].iter().all(|&b| b == 0));
    assert!(data[4 * MIB - 100..].iter().all(|&b| b == 1));
}

#[test]
fn qemu_img_converts_and_compares_over_nbd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut contents = pattern(16 * MIB, 3);
    // A zero run lets qemu-img use WRITE_ZEROES.
    contents[4 * MIB..8 * MIB].fill(0);
    let src = image(dir.path(), "src.img", &contents);
    let disk = image(dir.path(), "disk.img", &vec![0x55; 16 * MIB]);
    let server = Server::start(&[("disk", &disk)], &[]);
    let uri = server.uri("disk");
    let out = run("qemu-img", "qemu-utils", &["info", &uri]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("16 MiB"), "{}", String::from_utf8_lossy(&out.stdout));
    run("qemu-img", "qemu-utils", &["convert", "-n", "-f", "raw", "-O", "raw", src.to_str().expect("path"), &uri]);
    run("qemu-img", "qemu-utils", &["compare", "-f", "raw", "-F", "raw", src.to_str().expect("path"), &uri]);
    assert_eq!(std::fs::read(&disk).expect("image"), contents);
}

#[test]
fn handshake_options_are_answered_and_unknown_exports_do_not_end_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = image(dir.path(), "disk.img", &pattern(MIB, 5));
    let server = Server::start(&[("disk", &path)], &[]);
    let mut c = RawClient::greet(server.connect());
    for option in [opt::STARTTLS, opt::STRUCTURED_REPLY, opt::LIST_META_CONTEXT, opt::EXTENDED_HEADERS, 77] {
        c.send_option(ClientOption::Other { option, data: &[] });
        let reply = c.read_reply();
        assert_eq!((reply.option, reply.reply_type()), (option, rep::ERR_UNSUP));
    }
    assert_eq!(c.go("nope"), Err(rep::ERR_UNKNOWN));
    c.send_option(ClientOption::Info(InfoRequest::new("disk", &[])));
    let mut types = Vec::new();
    loop {
        let reply = c.read_reply();
        types.push(reply.reply_type());
        if reply.body == ReplyBody::Ack {
            break;
        }
    }
    assert_eq!(types, vec![rep::INFO, rep::INFO, rep::ACK]);
    let (size, flags) = c.go("disk").expect("GO");
    assert_eq!(size, MIB as u64);
    assert_ne!(flags & tflag::CAN_MULTI_CONN, 0);
    assert_eq!(c.read(0, 16, 1).expect("read"), pattern(MIB, 5)[..16]);
    // An oversized option is skipped and refused; ABORT is acknowledged.
    let mut c = RawClient::greet(server.connect());
    let data = vec![0u8; 20000];
    c.send_option(ClientOption::Other { option: opt::SET_META_CONTEXT, data: &data });
    assert_eq!(c.read_reply().reply_type(), rep::ERR_TOO_BIG);
    c.send_option(ClientOption::Abort);
    assert_eq!(c.read_reply().body, ReplyBody::Ack);
    assert!(c.closed_by_server());
}

#[test]
fn export_name_option_serves_old_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = image(dir.path(), "disk.img", &pattern(MIB, 9));
    let server = Server::start(&[("disk", &path)], &[]);
    let mut c = RawClient::greet(server.connect());
    c.send_option(ClientOption::ExportName { name: "disk" });
    let mut reply = [0u8; 10];
    c.sock.read_exact(&mut reply).expect("export name reply");
    assert_eq!(u64::from_be_bytes(reply[..8].try_into().expect("8 bytes")), MIB as u64);
    assert_eq!(c.read(4096, 8, 1).expect("read"), pattern(MIB, 9)[4096..4104]);
    // An unknown name has no error reply: the server hangs up.
    let mut c = RawClient::greet(server.connect());
    c.send_option(ClientOption::ExportName { name: "nope" });
    assert!(c.closed_by_server());
}

#[test]
fn garbage_truncation_and_vanishing_clients_leave_the_server_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let contents = pattern(4 * MIB, 11);
    let path = image(dir.path(), "disk.img", &contents);
    let mut server = Server::start(&[("disk", &path)], &[]);

    // Garbage instead of client flags and options.
    let mut s = server.connect();
    let mut g = [0u8; GREETING_LEN];
    s.read_exact(&mut g).expect("greeting");
    s.write_all(b"\0\0\0\x01GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("garbage");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("server closes");
    assert!(rest.is_empty(), "server answered garbage with {rest:?}");

    // Bad client flags.
    let mut s = server.connect();
    s.read_exact(&mut g).expect("greeting");
    s.write_all(&0xffff_ffffu32.to_be_bytes()).expect("flags");
    s.read_to_end(&mut rest).expect("server closes");
    assert!(rest.is_empty(), "server answered bad flags with {rest:?}");

    // Handshakes cut short at every stage.
    for cut in [0usize, 2, 4, 10, 20, 27] {
        let mut s = server.connect();
        s.read_exact(&mut g).expect("greeting");
        let mut bytes = (CLIENT_FIXED_NEWSTYLE).to_be_bytes().to_vec();
        ClientOption::Go(InfoRequest::new("disk", &[])).emit(&mut bytes);
        s.write_all(&bytes[..cut.min(bytes.len())]).expect("partial");
        drop(s);
    }

    // A client that vanishes halfway through a write payload, and one that
    // vanishes halfway through a request header.
    let mut c = raw_session(&server, "disk");
    c.request(cmd::WRITE, 0, 0, MIB as u32, 1);
    c.sock.write_all(&vec![0xee; 1000]).expect("part of payload");
    c.sock.shutdown(Shutdown::Both).expect("shutdown");
    let mut c = raw_session(&server, "disk");
    c.sock
        .write_all(
            &Request { flags: 0, command: cmd::READ, handle: 1, offset: 0, length: 4096 }.emit()[..REQUEST_LEN / 2],
        )
        .expect("half header");
    drop(c);

    // Garbage in the transmission phase ends only that session.
    let mut c = raw_session(&server, "disk");
    c.sock.write_all(&[0x42; REQUEST_LEN]).expect("garbage request");
    assert!(c.closed_by_server());

    // The next clients are served, stock and raw alike.
    server.assert_alive();
    run("nbdinfo", "libnbd-bin", &["--size", &server.uri("disk")]);
    let mut c = raw_session(&server, "disk");
    let got = c.read(0, MIB as u32, 7).expect("read");
    // The vanished write may have written its first chunk or nothing, never
    // anything past what was sent.
    assert_eq!(got[1000..], contents[1000..MIB]);
    server.assert_alive();
}

#[test]
fn oversized_out_of_range_and_unknown_requests_get_errors_in_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let contents = pattern(2 * MIB, 13);
    let path = image(dir.path(), "disk.img", &contents);
    let mut server = Server::start(&[("disk", &path)], &[]);
    let mut c = raw_session(&server, "disk");
    // A 64 MiB read is refused without data; the session stays in step.
    assert_eq!(c.read(0, 64 * MIB as u32, 1), Err(errno::EINVAL));
    assert_eq!(c.read(2 * MIB as u64, 1, 2), Err(errno::EINVAL));
    assert_eq!(c.read(u64::MAX - 1, 4, 3), Err(errno::EINVAL));
    // An out-of-range write is refused after its payload is drained.
    assert_eq!(c.write(2 * MIB as u64 - 2, &[9; 100], 4), errno::ENOSPC);
    for command in [cmd::CACHE, cmd::BLOCK_STATUS, cmd::RESIZE, 99] {
        c.request(command, 0, 0, 4096, 5);
        assert_eq!(c.simple_reply().error, errno::EINVAL, "command {command}");
    }
    c.request(cmd::WRITE_ZEROES, 1 << 4, 0, 4096, 6); // FAST_ZERO, not offered
    assert_eq!(c.simple_reply().error, errno::EINVAL);
    assert_eq!(c.read(0, 4096, 8).expect("read"), contents[..4096]);
    c.request(cmd::FLUSH, 0, 0, 0, 9);
    assert_eq!(c.simple_reply().error, 0);
    // A 4 GiB write cannot be drained: refused, then the server hangs up.
    c.request(cmd::WRITE, 0, 0, u32::MAX, 10);
    let reply = c.simple_reply();
    assert_eq!((reply.handle, reply.error), (10, errno::EINVAL));
    assert!(c.closed_by_server());
    server.assert_alive();
    assert_eq!(std::fs::read(&path).expect("image"), contents);
    // Disconnect is clean.
    let mut c = raw_session(&server, "disk");
    c.request(cmd::DISC, 0, 0, 0, 11);
    assert!(c.closed_by_server());
}

#[test]
fn read_errors_are_replied_as_eio_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let contents = pattern(4 * MIB, 23);
    let path = image(dir.path(), "disk.img", &contents);
    let mut server = Server::start(&[("disk", &path)], &[]);
    let mut c = raw_session(&server, "disk");
    assert_eq!(c.read(3 * MIB as u64, 512 * 1024, 1).expect("large read"), contents[3 * MIB..3 * MIB + 512 * 1024]);
    // The backing file shrinks under the server: the export still claims
    // 4 MiB, so reads past the new end fail in the storage layer.
    std::fs::File::options().write(true).open(&path).expect("open").set_len(MIB as u64).expect("truncate");
    assert_eq!(c.read(2 * MIB as u64, 4096, 2), Err(errno::EIO), "small read (reply buffer path)");
    assert_eq!(c.read(MIB as u64 - 4096, 8192, 3), Err(errno::EIO), "read across the new end");
    assert_eq!(c.read(2 * MIB as u64, 512 * 1024, 4), Err(errno::EIO), "large read (splice path)");
    assert_eq!(c.read(2 * MIB as u64, 512 * 1024, 5), Err(errno::EIO), "large read (copy path)");
    assert_eq!(c.read(0, 4096, 6).expect("small read"), contents[..4096]);
    assert_eq!(c.read(0, 768 * 1024, 7).expect("large read"), contents[..768 * 1024]);
    // Writes past the new end succeed and grow the file back.
    assert_eq!(c.write(3 * MIB as u64, &[5; 100], 8), 0);
    assert_eq!(c.read(3 * MIB as u64, 100, 9).expect("read back"), vec![5; 100]);
    server.assert_alive();
}

#[test]
fn pipelined_requests_are_all_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let contents = pattern(8 * MIB, 17);
    let path = image(dir.path(), "disk.img", &contents);
    let server = Server::start(&[("disk", &path)], &[]);
    let mut c = raw_session(&server, "disk");
    // 64 reads of mixed sizes sent before any reply is read.
    let sizes = [512u32, 4096, 65536, 65537, 1 << 20, 3 << 20];
    let mut batch = Vec::new();
    for i in 0..64u64 {
        let len = sizes[i as usize % sizes.len()];
        let offset = (i * 77_777) % (8 * MIB as u64 - u64::from(len));
        batch.extend_from_slice(&Request { flags: 0, command: cmd::READ, handle: i, offset, length: len }.emit());
    }
    c.sock.write_all(&batch).expect("send batch");
    for i in 0..64u64 {
        let len = sizes[i as usize % sizes.len()] as usize;
        let offset = ((i * 77_777) % (8 * MIB as u64 - len as u64)) as usize;
        let reply = c.simple_reply();
        assert_eq!((reply.handle, reply.error), (i, 0));
        let mut data = vec![0u8; len];
        c.sock.read_exact(&mut data).expect("data");
        assert!(data == contents[offset..offset + len], "request {i}");
    }
}

#[test]
fn memory_stays_bounded_under_32_clients_sending_maximum_requests() {
    const CLIENTS: usize = 32;
    const MAX: usize = 32 * MIB;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = image(dir.path(), "disk.img", &[]);
    std::fs::File::options().write(true).open(&path).expect("open").set_len(MAX as u64).expect("size");
    let mut server = Server::start(&[("disk", &path)], &["--max-clients", "64"]);
    let payload = std::sync::Arc::new(pattern(MAX, 19));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut c = raw_session(&server, "disk");
            let payload = std::sync::Arc::clone(&payload);
            std::thread::spawn(move || {
                // Every client writes the same bytes, so the result is
                // known whatever the interleaving.
                assert_eq!(c.write(0, &payload, i as u64), 0);
                let got = c.read(0, MAX as u32, 1000 + i as u64).expect("read back");
                assert!(got == *payload, "client {i} read other bytes");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    server.assert_alive();
    let peak = server.peak_rss();
    // Holding each 32 MiB request whole would need over 1 GiB; the chunked
    // server needs a few MiB per client.
    assert!(peak < 160 * MIB as u64, "peak RSS {} MiB with {CLIENTS} clients", peak / MIB as u64);
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(std::fs::read(&path).expect("image") == *payload);
}
