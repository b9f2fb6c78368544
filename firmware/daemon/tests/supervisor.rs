//! The supervisor and `opie status` on a host: role from boot parameters,
//! config and node key persisted across restarts, clear argument errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const OPIE: &str = env!("CARGO_BIN_EXE_opie");

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new(cmdline: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cmdline"), cmdline).expect("write cmdline");
        Node { dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("supervisor.sock")
    }

    fn start(&self) -> Supervisor {
        let child = Command::new(OPIE)
            .arg("supervisor")
            .arg("--cmdline")
            .arg(self.dir.path().join("cmdline"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--socket")
            .arg(self.socket())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supervisor");
        let sup = Supervisor { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "supervisor did not open its socket");
            sleep(Duration::from_millis(20));
        }
        sup
    }

    fn status(&self) -> String {
        let out = opie(&["status", "--socket", self.socket().to_str().expect("utf-8 path")]);
        assert!(out.status.success(), "opie status failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 status")
    }
}

/// A running supervisor; killed if a test fails before stopping it.
struct Supervisor {
    child: Option<Child>,
}

impl Supervisor {
    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn opie(args: &[&str]) -> Output {
    Command::new(OPIE).args(args).output().expect("run opie")
}

fn line<'a>(status: &'a str, key: &str) -> &'a str {
    status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} line in:\n{status}"))
}

#[test]
fn preseeded_isu_persists_config_and_key_across_restarts() {
    let node = Node::new("console=ttyS0 opie.role=isu opie.hostname=isu7 opie.storage_addr=10.77.0.17/24\n");
    let sup = node.start();
    let first = node.status();
    assert_eq!(line(&first, "role:"), "role: isu");
    assert_eq!(line(&first, "hostname:"), "hostname: isu7");
    assert_eq!(line(&first, "config:"), "config: preseeded from boot parameters, generation 1");
    assert_eq!(line(&first, "storage net:"), "storage net: eth0 10.77.0.17/24");
    let out = sup.stop();
    assert!(out.status.success(), "supervisor exit: {:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("opie supervisor started: role=isu hostname=isu7"));
    assert!(!node.socket().exists(), "socket left behind after a clean stop");

    // Boot parameters now say "head", but the stored config wins.
    std::fs::write(node.dir.path().join("cmdline"), "opie.role=head opie.hostname=other\n").expect("write");
    let sup = node.start();
    let second = node.status();
    assert_eq!(line(&second, "role:"), "role: isu");
    assert_eq!(line(&second, "config:"), "config: stored, generation 1");
    assert_eq!(line(&second, "node key:"), line(&first, "node key:"), "node key changed across restart");
    sup.stop();
}

#[test]
fn no_parameters_and_no_config_is_factory_state() {
    let node = Node::new("console=ttyS0 quiet\n");
    let sup = node.start();
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: unconfigured");
    assert!(line(&status, "config:").contains("factory defaults"), "{status}");
    sup.stop();
}

#[test]
fn a_damaged_config_slot_falls_back_and_is_not_fatal() {
    let node = Node::new("opie.role=head opie.hostname=head1\n");
    node.start().stop();
    let state = node.dir.path().join("state");
    // A torn write of generation 2 into the other slot.
    std::fs::write(state.join("config.b"), b"OPIECFG\0garbage").expect("write");
    let sup = node.start();
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: head");
    assert_eq!(line(&status, "config:"), "config: stored, generation 1");
    sup.stop();
}

#[test]
fn bad_boot_parameters_stop_with_a_clear_message() {
    let node = Node::new("opie.role=nas\n");
    let out = Command::new(OPIE)
        .args(["supervisor", "--cmdline"])
        .arg(node.dir.path().join("cmdline"))
        .arg("--state-dir")
        .arg(node.dir.path().join("state"))
        .arg("--socket")
        .arg(node.socket())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opie.role") && err.contains("\"nas\""), "{err}");
}

#[test]
fn argument_errors_exit_non_zero_and_help_lists_subcommands() {
    let out = opie(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
    let help = opie(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for sub in ["supervisor", "console", "status", "version"] {
        assert!(text.contains(sub), "--help does not list {sub}:\n{text}");
    }
    let version = opie(&["version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("opie {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn status_without_a_supervisor_says_so() {
    let out = opie(&["status", "--socket", "/nonexistent/opie.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the supervisor")
            && err.contains(Path::new("/nonexistent/opie.sock").to_str().expect("str")),
        "{err}"
    );
}
