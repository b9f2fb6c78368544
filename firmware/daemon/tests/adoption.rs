//! Discovery and adoption over the control channel, on loopback: an ISU
//! supervisor introduces itself to a head supervisor, shows as pending,
//! joins only after `opie adopt`, and both sides keep what they learned
//! across restarts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const OPIE: &str = env!("CARGO_BIN_EXE_opie");

/// A supervisor running with its own state dir and socket.
struct Supervisor {
    child: Child,
    socket: PathBuf,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn start(dir: &Path, name: &str, cmdline: &str, extra: &[String]) -> Supervisor {
    let node = dir.join(name);
    std::fs::create_dir_all(&node).expect("mkdir");
    std::fs::write(node.join("cmdline"), cmdline).expect("cmdline");
    let socket = node.join("sock");
    let child = Command::new(OPIE)
        .arg("supervisor")
        .arg("--cmdline")
        .arg(node.join("cmdline"))
        .arg("--state-dir")
        .arg(node.join("state"))
        .arg("--socket")
        .arg(&socket)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let sup = Supervisor { child, socket };
    wait_for(&sup, "role:");
    sup
}

fn opie(args: &[&str], socket: &Path) -> Output {
    Command::new(OPIE).args(args).arg("--socket").arg(socket).output().expect("run opie")
}

fn status(sup: &Supervisor) -> String {
    String::from_utf8(opie(&["status"], &sup.socket).stdout).expect("utf-8")
}

/// Polls `opie status` until it contains `needle` (10 s at most).
fn wait_for(sup: &Supervisor, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = if sup.socket.exists() { status(sup) } else { String::new() };
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "status never showed {needle:?}; last:\n{text}");
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn isu_is_pending_until_adopted_then_connects_and_both_remember() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let head_args = vec!["--ctrl-listen".to_string(), format!("127.0.0.1:{port}")];
    let isu_args = vec!["--ctrl-head".to_string(), format!("127.0.0.1:{port}"), "--serial".into(), "ISU-0042".into()];
    let head = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    let isu = start(dir.path(), "isu", "opie.role=isu opie.hostname=isu1", &isu_args);

    let listed = wait_for(&head, "isu: ISU-0042 key");
    assert!(listed.contains("pending adoption, not connected"), "{listed}");
    let isu_view = wait_for(&isu, "head link: not connected");
    assert!(isu_view.contains("not adopted"), "{isu_view}");

    // Adopting an unknown ISU is a clear error and changes nothing.
    let out = opie(&["adopt", "ISU-9999", "--as", "member"], &head.socket);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pending ISU"), "{out:?}");
    // An ISU cannot adopt.
    let out = opie(&["adopt", "ISU-0042", "--as", "member"], &isu.socket);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a head adopts"), "{out:?}");

    let out = opie(&["adopt", "ISU-0042", "--as", "member"], &head.socket);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("adopted ISU-0042"));
    // The ISU's own report reaches the head's status.
    wait_for(&head, "adopted as member, connected, booting");
    wait_for(&isu, "head link: connected to head1");
    let isu_key = std::fs::read(dir.path().join("isu/state/head-key.a")).expect("head key pinned on the ISU");
    assert!(!isu_key.is_empty());

    // Restart the head: the adoption persisted, the ISU reconnects.
    drop(head);
    let head = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    wait_for(&head, "isu: ISU-0042");
    wait_for(&head, "adopted as member, connected");
    drop(isu);
}

#[test]
fn rejected_isu_never_joins_and_an_impostor_head_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let head_args = vec!["--ctrl-listen".to_string(), format!("127.0.0.1:{port}")];
    let isu_args = vec!["--ctrl-head".to_string(), format!("127.0.0.1:{port}"), "--serial".into(), "ISU-7".into()];
    let head = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    let isu = start(dir.path(), "isu", "opie.role=isu opie.hostname=isu7", &isu_args);
    wait_for(&head, "isu: ISU-7 key");
    let out = opie(&["reject", "ISU-7"], &head.socket);
    assert!(out.status.success(), "{out:?}");
    sleep(Duration::from_secs(3));
    let text = status(&head);
    assert!(text.contains("isu: ISU-7") && text.contains("rejected, not connected"), "{text}");
    // Adopt it on a second, fresh head (another key) after the ISU pinned
    // none: then a third head on the same port is refused by key.
    drop(head);
    let head2 = start(dir.path(), "head2", "opie.role=head opie.hostname=head2", &head_args);
    wait_for(&head2, "isu: ISU-7 key");
    assert!(opie(&["adopt", "ISU-7", "--as", "spare"], &head2.socket).status.success());
    wait_for(&head2, "adopted as spare, connected");
    drop(head2);
    // Another head on the same address, whose admin adopts the ISU too:
    // the ISU holds to the head key it pinned.
    let impostor = start(dir.path(), "head3", "opie.role=head opie.hostname=evil", &head_args);
    wait_for(&impostor, "isu: ISU-7 key");
    assert!(opie(&["adopt", "ISU-7", "--as", "member"], &impostor.socket).status.success());
    let refused = wait_for(&isu, "is not the pinned head key");
    assert!(refused.contains("head link: not connected"), "{refused}");
    assert!(!status(&impostor).contains("connected, booting"), "impostor got a report");
    drop(impostor);
}
