//! What the daemon's host tests share: a node's files in a temp dir (its
//! kernel command line, state dir and local socket), a running supervisor
//! that is killed if a test fails, and `opie` subcommands against it.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const OPIE: &str = env!("CARGO_BIN_EXE_opie");

/// A node's files: `cmdline`, `state/`, `supervisor.sock` and the
/// supervisor's log `supervisor.log`, in a directory of their own.
pub struct Node {
    dir: PathBuf,
    /// Keeps a temp dir made for this node alive.
    _temp: Option<tempfile::TempDir>,
}

impl Node {
    /// A node in a fresh temp dir, booted with `cmdline`.
    pub fn new(cmdline: &str) -> Node {
        let temp = tempfile::tempdir().expect("tempdir");
        let node = Node { dir: temp.path().to_path_buf(), _temp: Some(temp) };
        node.set_cmdline(cmdline);
        node
    }

    /// A node in `parent/name` (several nodes of one test share a parent).
    pub fn within(parent: &Path, name: &str, cmdline: &str) -> Node {
        let node = Node { dir: parent.join(name), _temp: None };
        std::fs::create_dir_all(&node.dir).expect("mkdir node");
        node.set_cmdline(cmdline);
        node
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn set_cmdline(&self, cmdline: &str) {
        std::fs::write(self.dir.join("cmdline"), cmdline).expect("write cmdline");
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("supervisor.sock")
    }

    /// What the supervisors of this node wrote on stderr, all runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("supervisor.log")).unwrap_or_default()
    }

    /// Starts `opie supervisor` with `extra` arguments and waits until its
    /// socket answers.
    pub fn start(&self, extra: &[&str]) -> Supervisor {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("supervisor.log"))
            .expect("open supervisor log");
        let child = Command::new(OPIE)
            .arg("supervisor")
            .arg("--cmdline")
            .arg(self.dir.join("cmdline"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--socket")
            .arg(self.socket())
            .args(extra)
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn supervisor");
        let sup = Supervisor { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.opie(&["status"]).status.success() {
            assert!(Instant::now() < deadline, "supervisor did not answer on its socket:\n{}", self.log());
            sleep(Duration::from_millis(20));
        }
        sup
    }

    /// Runs `opie ARGS --socket <this node's socket>`.
    pub fn opie(&self, args: &[&str]) -> Output {
        Command::new(OPIE).args(args).arg("--socket").arg(self.socket()).output().expect("run opie")
    }

    /// `opie status`, which must succeed.
    pub fn status(&self) -> String {
        let out = self.opie(&["status"]);
        assert!(out.status.success(), "opie status failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 status")
    }

    /// Polls `opie status` until it contains `needle` (10 s at most).
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.opie(&["status"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "status never showed {needle:?}; last:\n{text}");
            sleep(Duration::from_millis(100));
        }
    }
}

/// A running supervisor; killed if a test fails before stopping it.
pub struct Supervisor {
    child: Option<Child>,
}

impl Supervisor {
    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        child.wait().expect("wait")
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

/// The first line of `status` starting with `key`.
pub fn line<'a>(status: &'a str, key: &str) -> &'a str {
    status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} line in:\n{status}"))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
