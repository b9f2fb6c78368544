//! Host integration tests of `opie lease-serve` against stock DHCP clients.
//!
//! Each test builds its own lab: a server network namespace with a bridge
//! (10.77.0.1/24) and one client namespace per client, each joined to the
//! bridge by a veth pair, so every client has its own MAC. All traffic
//! stays inside these namespaces. Names carry the test's tag and this
//! process's id, and the lab removes everything it made when dropped, also
//! when a test fails. Needs root, `ip` (iproute2), busybox udhcpc, ISC
//! dhclient, dhcpcd and python3 (for hand-made bad datagrams).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const OPIE: &str = env!("CARGO_BIN_EXE_opie");
const SERVER_IP: &str = "10.77.0.1";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// A server namespace, client namespaces and the links between them.
struct Lab {
    server_ns: String,
    /// (namespace, interface, MAC) per client.
    clients: Vec<(String, String, String)>,
    bridge: String,
    dir: tempfile::TempDir,
    server: Option<Child>,
}

impl Lab {
    /// `tag` is a short name unique among the tests (at most 4 letters).
    fn new(tag: &str, clients: usize) -> Lab {
        let pid = std::process::id();
        let server_ns = format!("opie-{tag}-{pid}-s");
        let bridge = format!("{tag}br");
        let mut lab = Lab {
            server_ns: server_ns.clone(),
            clients: Vec::new(),
            bridge: bridge.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            server: None,
        };
        ip(&["netns", "add", &server_ns]);
        ip(&["-n", &server_ns, "link", "set", "lo", "up"]);
        ip(&["-n", &server_ns, "link", "add", &bridge, "type", "bridge"]);
        ip(&["-n", &server_ns, "addr", "add", &format!("{SERVER_IP}/24"), "dev", &bridge]);
        ip(&["-n", &server_ns, "link", "set", &bridge, "up"]);
        for i in 0..clients {
            let ns = format!("opie-{tag}-{pid}-c{i}");
            ip(&["netns", "add", &ns]);
            lab.clients.push((
                ns.clone(),
                format!("{tag}c{i}"),
                format!("02:00:00:77:{:02x}:{:02x}", pid % 256, i + 1),
            ));
            let (_, cif, mac) = lab.clients[i].clone();
            let sif = format!("{tag}s{i}");
            ip(&["link", "add", "name", &sif, "netns", &server_ns, "type", "veth", "peer", "name", &cif, "netns", &ns]);
            ip(&["-n", &server_ns, "link", "set", &sif, "master", &bridge, "up"]);
            ip(&["-n", &ns, "link", "set", &cif, "address", &mac, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the server on the bridge and waits until it serves.
    fn start_server(&mut self, pool: &str, extra: &[&str]) {
        let serving = |text: &str| text.matches("serving leases on").count();
        let before = serving(&self.log_text());
        let log = fs::OpenOptions::new().create(true).append(true).open(self.server_log()).expect("server log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server_ns, OPIE, "lease-serve", "--iface", &self.bridge])
            .args(["--server-ip", SERVER_IP, "--pool", pool, "--state-dir"])
            .arg(self.state_dir())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn opie lease-serve");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while serving(&self.log_text()) == before {
            assert!(Instant::now() < deadline, "server did not start:\n{}", self.log_text());
            sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.server_log()).unwrap_or_default()
    }

    /// Kills the server with SIGKILL: a crash, nothing flushed on exit.
    fn crash_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            child.kill().expect("kill server");
            child.wait().expect("reap server");
        }
    }

    /// Asks the server for its counters (SIGUSR1) and parses them.
    fn counters(&self) -> HashMap<String, u64> {
        let pid = self.server.as_ref().expect("server running").id().to_string();
        let lines = |t: &str| t.matches("lease counters:").count();
        let before = lines(&self.log_text());
        run(Command::new("kill").args(["-USR1", &pid]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&self.log_text()) == before {
            assert!(Instant::now() < deadline, "no counters printed:\n{}", self.log_text());
            sleep(Duration::from_millis(50));
        }
        let text = self.log_text();
        let line = text.lines().rev().find(|l| l.contains("lease counters:")).expect("counter line");
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().expect("counter value")))
            .collect()
    }

    /// Where [`Lab::configuring_script`] records udhcpc's events.
    fn events(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// A udhcpc script that configures the address it is given (so udhcpc
    /// can renew and release from it) and records "bound ADDR" or
    /// "renew ADDR" in [`Lab::events`].
    fn configuring_script(&self) -> PathBuf {
        let script = self.dir.path().join("udhcpc.sh");
        let body = format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr replace \"$ip/24\" dev \"$interface\"; echo \"$1 $ip\" >> {} ;; esac\n",
            self.events().display()
        );
        fs::write(&script, body).expect("script");
        run(Command::new("chmod").arg("+x").arg(&script));
        script
    }

    fn client(&self, i: usize) -> (&str, &str) {
        let (ns, iface, _) = &self.clients[i];
        (ns, iface)
    }

    /// busybox udhcpc, one shot: the address it obtained, if any.
    fn udhcpc(&self, i: usize, extra: &[&str]) -> Option<String> {
        let (ns, iface) = self.client(i);
        let out = Command::new("timeout")
            .args(["30", "ip", "netns", "exec", ns, "udhcpc", "-i", iface, "-f", "-q", "-s", "/bin/true"])
            .args(extra)
            .output()
            .expect("run udhcpc");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // The last lease counts: with -a udhcpc reports a lease, then
        // declines it if the address answers ARP.
        text.lines()
            .filter_map(|l| l.split("lease of ").nth(1))
            .next_back()
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let namespaces = std::iter::once(self.server_ns.clone()).chain(self.clients.iter().map(|c| c.0.clone()));
        for ns in namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn in_pool(addr: &str) -> bool {
    let last: u8 = addr.strip_prefix("10.77.0.").and_then(|l| l.parse().ok()).unwrap_or(0);
    (100..=199).contains(&last)
}

/// Reads a child's stderr until a line contains `needle`; returns it.
fn wait_line(child: &mut Child, needle: &str, timeout: Duration) -> Option<String> {
    let stderr = child.stderr.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&needle) {
                let _ = tx.send(line);
                return;
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

#[test]
fn udhcpc_gets_a_pool_address() {
    let mut lab = Lab::new("ud", 1);
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    let addr = lab.udhcpc(0, &["-n", "-t", "5", "-T", "1"]).expect("udhcpc got no lease");
    assert!(in_pool(&addr), "{addr} is outside the pool");
    // Asking again (a reboot) gives the same address.
    assert_eq!(lab.udhcpc(0, &["-n", "-t", "5", "-T", "1"]), Some(addr));
    let c = lab.counters();
    assert_eq!((c["offers"], c["acks"]), (2, 2), "{c:?}");
}

#[test]
fn dhclient_gets_a_pool_address() {
    let mut lab = Lab::new("dh", 1);
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    let (ns, iface) = lab.client(0);
    let lease_file = lab.dir.path().join("dhclient.leases");
    let pid_file = lab.dir.path().join("dhclient.pid");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "dhclient", "-d", "-v", "-1", "-sf", "/bin/true", "-cf", "/dev/null", "-lf"])
        .arg(&lease_file)
        .arg("-pf")
        .arg(&pid_file)
        .arg(iface)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dhclient");
    let line = wait_line(&mut child, "bound to", Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("dhclient did not bind");
    let addr = line.split("bound to ").nth(1).and_then(|r| r.split_whitespace().next()).expect("address");
    assert!(in_pool(addr), "{addr} is outside the pool");
    let leases = fs::read_to_string(&lease_file).expect("lease file");
    assert!(leases.contains(&format!("fixed-address {addr};")), "{leases}");
    assert!(leases.contains(&format!("option dhcp-server-identifier {SERVER_IP};")), "{leases}");
}

#[test]
fn dhcpcd_gets_a_pool_address() {
    let mut lab = Lab::new("dc", 1);
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    let (ns, iface) = lab.client(0);
    let out = Command::new("timeout")
        .args(["40", "ip", "netns", "exec", ns, "dhcpcd", "-4", "-1", "-B", "-A", "-L", "-K", "-t", "30"])
        .args(["-f", "/dev/null", "-c", "/bin/true", iface])
        .output()
        .expect("run dhcpcd");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let addr = text
        .lines()
        .find_map(|l| l.split("leased ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("dhcpcd got no lease:\n{text}"))
        .to_owned();
    assert!(in_pool(&addr), "{addr} is outside the pool");
    let shown = run(Command::new("ip").args(["-n", ns, "-4", "addr", "show", "dev", iface]));
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&addr), "address not configured by dhcpcd");
}

#[test]
fn full_pool_survives_a_crash_and_clients_keep_their_addresses() {
    let mut lab = Lab::new("rs", 3);
    lab.start_server("10.77.0.100-10.77.0.101", &[]);
    let once = ["-n", "-t", "3", "-T", "1"];
    let a = lab.udhcpc(0, &once).expect("first client");
    let b = lab.udhcpc(1, &once).expect("second client");
    assert_ne!(a, b);
    lab.crash_server();
    // A torn write at the crash: half a record of garbage at the tail.
    let log = lab.state_dir().join("lease.log");
    let mut bytes = fs::read(&log).expect("lease log");
    bytes.extend_from_slice(&[0x4f; 20]);
    fs::write(&log, bytes).expect("tear the log");
    lab.start_server("10.77.0.100-10.77.0.101", &[]);
    assert!(lab.log_text().contains("dropped 20 bytes"), "damage not reported:\n{}", lab.log_text());
    assert_eq!(lab.udhcpc(2, &once), None, "a third MAC got an address from a full pool after restart");
    let c = lab.counters();
    assert_eq!(c["offers"], 0);
    assert!(c["pool_exhausted"] >= 1);
    assert!(lab.log_text().contains("lease pool exhausted"), "no warning logged");
    // The first two come back (INIT-REBOOT style, asking for their address)
    // and keep what they had; the server kept serving after exhaustion.
    assert_eq!(lab.udhcpc(0, &["-n", "-t", "3", "-T", "1", "-r", &a]), Some(a.clone()));
    assert_eq!(lab.udhcpc(1, &["-n", "-t", "3", "-T", "1", "-r", &b]), Some(b.clone()));
}

#[test]
fn renewal_after_restart_keeps_the_address_and_release_is_counted() {
    // A long-running udhcpc configures its address; after a server crash and
    // restart, SIGUSR1 makes it renew by unicast from that address.
    let mut lab = Lab::new("rn", 1);
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    let (ns, iface) = lab.client(0);
    let script = lab.configuring_script();
    let events = lab.events();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "udhcpc", "-i", iface, "-f", "-t", "5", "-T", "1", "-s"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn udhcpc");
    let read_events = || fs::read_to_string(&events).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_events().contains("bound ") {
        assert!(Instant::now() < deadline, "udhcpc never bound");
        sleep(Duration::from_millis(100));
    }
    let addr = read_events().lines().next().and_then(|l| l.split_whitespace().nth(1)).expect("address").to_owned();
    lab.crash_server();
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    run(Command::new("kill").args(["-USR1", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !read_events().contains("renew ") {
        assert!(Instant::now() < deadline, "udhcpc never renewed:\n{}", lab.log_text());
        sleep(Duration::from_millis(100));
    }
    assert!(read_events().contains(&format!("renew {addr}")), "renewed a different address: {}", read_events());
    assert_eq!(lab.counters()["acks"], 1, "the renewal was acknowledged by the restarted server");
    // SIGUSR2 makes udhcpc release its lease.
    run(Command::new("kill").args(["-USR2", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.counters()["releases"] == 0 {
        assert!(Instant::now() < deadline, "release never arrived");
        sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn declined_address_is_not_offered_again() {
    let mut lab = Lab::new("dl", 2);
    // Something on the link already answers ARP for .100: udhcpc -a sees
    // the conflict after the ACK and declines.
    ip(&["-n", &lab.server_ns, "addr", "add", "10.77.0.100/24", "dev", &lab.bridge]);
    lab.start_server("10.77.0.100-10.77.0.101", &[]);
    let got = lab.udhcpc(0, &["-a", "-t", "3", "-T", "1", "-A", "1"]);
    assert_eq!(got.as_deref(), Some("10.77.0.101"), "the decliner gets the other address");
    let c = lab.counters();
    assert_eq!(c["declines"], 1);
    // .100 is quarantined and .101 is leased: a second client gets nothing,
    // also after a restart.
    assert_eq!(lab.udhcpc(1, &["-n", "-t", "2", "-T", "1"]), None);
    lab.crash_server();
    lab.start_server("10.77.0.100-10.77.0.101", &[]);
    assert_eq!(lab.udhcpc(1, &["-n", "-t", "2", "-T", "1"]), None);
    assert_eq!(lab.counters()["offers"], 0);
}

/// Sends hand-made datagrams from client 0 (given 10.77.0.50) to port 67.
fn send_raw(lab: &Lab, script: &str) {
    let (ns, iface) = lab.client(0);
    ip(&["-n", ns, "addr", "add", "10.77.0.50/24", "dev", iface]);
    let path: &Path = &lab.dir.path().join("send.py");
    fs::write(path, script).expect("script");
    run(Command::new("ip").args(["netns", "exec", ns, "python3"]).arg(path));
}

#[test]
fn bad_datagrams_and_floods_are_dropped_and_counted() {
    let mut lab = Lab::new("bd", 2);
    lab.start_server("10.77.0.100-10.77.0.199", &[]);
    send_raw(
        &lab,
        r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def pkt(hlen=6, cookie=b"\x63\x82\x53\x63", opts=b"\x35\x01\x01\xff", mac=b"\x02\x00\x00\x00\xbb\x01"):
    h = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, hlen, 0, 0x1234, 0, 0, b"\0"*4, b"\0"*4, b"\0"*4, b"\0"*4)
    return h + mac + b"\0"*10 + b"\0"*192 + cookie + opts
dst = ("10.77.0.1", 67)
s.sendto(pkt(hlen=200), dst)               # hlen > 16
s.sendto(pkt(cookie=b"\0\0\0\0"), dst)     # no magic cookie
s.sendto(pkt(opts=b"\x35\x01\x01\x0c\xf0ab"), dst)  # option runs past the end
s.sendto(pkt(opts=b"\x35\x01\x01"), dst)   # no END option
s.sendto(b"\x01\x01\x06", dst)             # tiny
s.sendto(pkt() + b"\0"*1800, dst)          # oversized (fragmented, reassembled)
for _ in range(500):                       # flood from one MAC
    s.sendto(pkt(mac=b"\x02\x00\x00\x00\xcc\x01"), dst)
"#,
    );
    // Give the server time to drain everything before asking.
    sleep(Duration::from_millis(500));
    let c = lab.counters();
    assert_eq!(c["dropped_bad_hlen"], 1, "{c:?}");
    assert_eq!(c["dropped_no_cookie"], 1, "{c:?}");
    assert_eq!(c["dropped_bad_options"], 2, "{c:?}");
    assert_eq!(c["dropped_too_short"], 1, "{c:?}");
    assert_eq!(c["dropped_too_long"], 1, "{c:?}");
    assert_eq!(c["received"], 506, "{c:?}");
    assert!(c["dropped_rate_limited"] >= 400, "{c:?}");
    assert!(c["offers"] <= 100, "{c:?}");
    // Still serving, and serving others.
    let addr = lab.udhcpc(1, &["-n", "-t", "5", "-T", "1"]).expect("server stopped serving");
    assert!(in_pool(&addr));
}
