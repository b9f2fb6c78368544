//! Host integration test of epoch fencing in `opie nbd-serve` (issue 5
//! "Fencing"): the real binary on 127.0.0.1 with a fencing key and a state
//! directory, driven by a client that negotiates with
//! `opie_core::nbd_client` (the handshake `opie nbd-attach` uses) and sends
//! requests with `opie_proto::nbd`.
//!
//! Head A attaches at epoch 5 and writes; head B attaches at 6; A's next
//! write fails and its connection is gone; B reads A's earlier data and its
//! own; stale, forged, plain and taken names are refused with
//! NBD_REP_ERR_POLICY; after a server restart epoch 6 is still enforced.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opie_core::nbd_client::{ClientError, ClientHandshake, Step};
use opie_proto::fence::FencedName;
use opie_proto::nbd::{
    GREETING_LEN, Greeting, OPTION_REPLY_HEADER_LEN, OptionReply, REQUEST_LEN, Request, SIMPLE_REPLY_LEN, SimpleReply,
    cmd, errno, rep,
};

const KEY: [u8; 32] = [0x42; 32];
const SIZE: usize = 1024 * 1024;

/// A running `opie nbd-serve`, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, image: &Path) -> Server {
        let key = dir.join("fence.key");
        let hex: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&key, hex).expect("key file");
        let state = dir.join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let log = dir.join(format!("server-{}.log", std::fs::read_dir(dir).expect("dir").count()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_opie"))
            .args(["nbd-serve", "--listen", "127.0.0.1:0"])
            .arg("--export")
            .arg(format!("disk={}", image.display()))
            .arg("--fence-key-file")
            .arg(&key)
            .arg("--state-dir")
            .arg(&state)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn opie");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
        let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
            panic!("no 'listening on' line, got {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        Server { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A head's NBD connection after a successful handshake.
struct Head {
    sock: TcpStream,
}

/// Negotiates `name` with the client handshake of `opie nbd-attach`.
fn attach(port: u16, name: &str) -> Result<Head, ClientError> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut hs = ClientHandshake::new(name);
    let mut g = [0u8; GREETING_LEN];
    sock.read_exact(&mut g).expect("greeting");
    let out = hs.on_greeting(Greeting::parse(&g).expect("greeting parses"))?;
    sock.write_all(&out).expect("send GO");
    loop {
        let mut buf = vec![0u8; OPTION_REPLY_HEADER_LEN];
        sock.read_exact(&mut buf).expect("reply header");
        let len = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
        buf.resize(OPTION_REPLY_HEADER_LEN + len, 0);
        sock.read_exact(&mut buf[OPTION_REPLY_HEADER_LEN..]).expect("reply data");
        let (reply, _) = OptionReply::parse(&buf).expect("reply parses");
        if let Step::Ready(n) = hs.on_reply(&reply)? {
            assert_eq!(n.size, SIZE as u64);
            return Ok(Head { sock });
        }
    }
}

fn claim(epoch: u64, head: &str) -> String {
    FencedName::sign(&KEY, "disk", epoch, head).expect("sign").emit()
}

impl Head {
    fn send(&mut self, command: u16, offset: u64, length: u32, handle: u64, payload: &[u8]) -> std::io::Result<()> {
        let req = Request { flags: 0, command, handle, offset, length };
        let mut bytes = req.emit().to_vec();
        assert_eq!(bytes.len(), REQUEST_LEN);
        bytes.extend_from_slice(payload);
        self.sock.write_all(&bytes)
    }

    /// The reply to a request: Ok(error code), or Err when the connection
    /// is gone.
    fn reply(&mut self, handle: u64) -> std::io::Result<u32> {
        let mut buf = [0u8; SIMPLE_REPLY_LEN];
        self.sock.read_exact(&mut buf)?;
        let r = SimpleReply::parse(&buf).expect("simple reply");
        assert_eq!(r.handle, handle);
        Ok(r.error)
    }

    fn write(&mut self, offset: u64, data: &[u8], handle: u64) -> std::io::Result<u32> {
        self.send(cmd::WRITE, offset, data.len() as u32, handle, data)?;
        self.reply(handle)
    }

    fn read(&mut self, offset: u64, len: usize, handle: u64) -> Vec<u8> {
        self.send(cmd::READ, offset, len as u32, handle, &[]).expect("send read");
        assert_eq!(self.reply(handle).expect("read reply"), 0);
        let mut data = vec![0u8; len];
        self.sock.read_exact(&mut data).expect("read data");
        data
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.sock.read(&mut byte), Ok(0) | Err(_))
    }
}

fn refused_by_policy(result: Result<Head, ClientError>) -> String {
    match result {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, rep::ERR_POLICY, "refused with {code:#x}: {message}");
            message
        }
        Err(e) => panic!("expected NBD_REP_ERR_POLICY, got {e}"),
        Ok(_) => panic!("expected NBD_REP_ERR_POLICY, the export was granted"),
    }
}

#[test]
fn a_newer_epoch_fences_the_older_head_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("disk.img");
    std::fs::write(&image, vec![0u8; SIZE]).expect("image");
    let server = Server::start(dir.path(), &image);

    // Fencing is on: plain, forged and malformed names are refused.
    let msg = refused_by_policy(attach(server.port, "disk"));
    assert!(msg.contains("epoch"), "{msg}");
    let forged = FencedName::sign(&[1; 32], "disk", 99, "mallory").expect("sign").emit();
    assert!(refused_by_policy(attach(server.port, &forged)).contains("bad mac"));

    // Head A at epoch 5 writes.
    let mut a = attach(server.port, &claim(5, "headA")).expect("A attaches at 5");
    let a_data = vec![0xaa; 8192];
    assert_eq!(a.write(0, &a_data, 1).expect("A writes"), 0);

    // Head B takes over at epoch 6 and writes elsewhere.
    let mut b = attach(server.port, &claim(6, "headB")).expect("B attaches at 6");
    let b_data = vec![0xbb; 8192];
    assert_eq!(b.write(65536, &b_data, 1).expect("B writes"), 0);

    // A's next write fails and its connection is gone.
    let late = vec![0xee; 4096];
    match a.write(65536, &late, 2) {
        Ok(code) => {
            assert_eq!(code, errno::ESHUTDOWN, "A's write after the takeover got {code}");
            assert!(a.closed(), "A's connection is still open");
        }
        Err(_) => assert!(a.closed()),
    }
    assert!(a.closed(), "A's connection is still open");

    // B's data is intact, and so is what A wrote before the takeover.
    assert_eq!(b.read(65536, 8192, 2), b_data);
    assert_eq!(b.read(0, 8192, 3), a_data);

    // A cannot come back at 5, nor claim B's epoch 6.
    assert!(refused_by_policy(attach(server.port, &claim(5, "headA"))).contains("stale epoch 5"));
    assert!(refused_by_policy(attach(server.port, &claim(6, "headA"))).contains("held by"));
    // B may open a second connection at its own epoch.
    let mut b2 = attach(server.port, &claim(6, "headB")).expect("B reconnects at 6");
    assert_eq!(b2.read(65536, 8192, 1), b_data);
    let log = server.log();
    assert!(log.contains("epoch 6 granted to \"headB\""), "log:\n{log}");
    assert!(log.contains("stale epoch 5"), "log:\n{log}");
    drop((a, b, b2, server));

    // Restart: epoch 6 is still enforced.
    let server = Server::start(dir.path(), &image);
    assert!(refused_by_policy(attach(server.port, &claim(5, "headA"))).contains("stale epoch 5"));
    let mut b = attach(server.port, &claim(6, "headB")).expect("B reattaches at 6 after the restart");
    assert_eq!(b.read(65536, 8192, 1), b_data);
    // And a later takeover still works.
    let mut c = attach(server.port, &claim(7, "headA")).expect("A takes over at 7");
    assert!(b.write(0, &late, 2).map_or(true, |code| code == errno::ESHUTDOWN));
    assert!(b.closed());
    assert_eq!(c.read(0, 8192, 1), a_data);
}
