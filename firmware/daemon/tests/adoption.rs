//! Discovery and adoption over the control channel, on loopback: an ISU
//! supervisor introduces itself to a head supervisor, shows as pending,
//! joins only after `opie adopt`, and both sides keep what they learned
//! across restarts.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{Node, free_port};

fn start(dir: &std::path::Path, name: &str, cmdline: &str, extra: &[String]) -> (Node, common::Supervisor) {
    let node = Node::within(dir, name, cmdline);
    let args: Vec<&str> = extra.iter().map(String::as_str).collect();
    let sup = node.start(&args);
    (node, sup)
}

#[test]
fn isu_is_pending_until_adopted_then_connects_and_both_remember() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let head_args = vec!["--ctrl-listen".to_string(), format!("127.0.0.1:{port}")];
    let isu_args = vec!["--ctrl-head".to_string(), format!("127.0.0.1:{port}"), "--serial".into(), "ISU-0042".into()];
    let (head, head_sup) = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    let (isu, isu_sup) = start(dir.path(), "isu", "opie.role=isu opie.hostname=isu1", &isu_args);

    let listed = head.wait_for("isu: ISU-0042 key");
    assert!(listed.contains("pending adoption, not connected"), "{listed}");
    let isu_view = isu.wait_for("head link: not connected");
    assert!(isu_view.contains("not adopted"), "{isu_view}");

    // Adopting an unknown ISU is a clear error and changes nothing.
    let out = head.opie(&["adopt", "ISU-9999", "--as", "member"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pending ISU"), "{out:?}");
    // An ISU cannot adopt.
    let out = isu.opie(&["adopt", "ISU-0042", "--as", "member"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a head adopts"), "{out:?}");

    let out = head.opie(&["adopt", "ISU-0042", "--as", "member"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("adopted ISU-0042"));
    // The ISU's own report reaches the head's status.
    head.wait_for("adopted as member, connected, booting");
    isu.wait_for("head link: connected to head1");
    // The ISU keeps a copy of the head's cluster record (DESIGN §9).
    isu.wait_for("cluster copy: generation 1, 1 adopted ISU(s)");
    let isu_key = std::fs::read(dir.path().join("isu/state/head-key.a")).expect("head key pinned on the ISU");
    assert!(!isu_key.is_empty());

    // Restart the head: the adoption persisted, the ISU reconnects.
    drop(head_sup);
    let (head, _head_sup) = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    head.wait_for("isu: ISU-0042");
    head.wait_for("adopted as member, connected");
    drop(isu_sup);
}

#[test]
fn rejected_isu_never_joins_and_an_impostor_head_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let head_args = vec!["--ctrl-listen".to_string(), format!("127.0.0.1:{port}")];
    let isu_args = vec!["--ctrl-head".to_string(), format!("127.0.0.1:{port}"), "--serial".into(), "ISU-7".into()];
    let (head, head_sup) = start(dir.path(), "head", "opie.role=head opie.hostname=head1", &head_args);
    let (isu, _isu_sup) = start(dir.path(), "isu", "opie.role=isu opie.hostname=isu7", &isu_args);
    head.wait_for("isu: ISU-7 key");
    let out = head.opie(&["reject", "ISU-7"]);
    assert!(out.status.success(), "{out:?}");
    sleep(Duration::from_secs(3));
    let text = head.status();
    assert!(text.contains("isu: ISU-7") && text.contains("rejected, not connected"), "{text}");
    // Adopt it on a second, fresh head (another key) after the ISU pinned
    // none: then a third head on the same port is refused by key.
    drop(head_sup);
    let (head2, head2_sup) = start(dir.path(), "head2", "opie.role=head opie.hostname=head2", &head_args);
    head2.wait_for("isu: ISU-7 key");
    assert!(head2.opie(&["adopt", "ISU-7", "--as", "spare"]).status.success());
    head2.wait_for("adopted as spare, connected");
    drop(head2_sup);
    // Another head on the same address, whose admin adopts the ISU too:
    // the ISU holds to the head key it pinned.
    let (impostor, impostor_sup) = start(dir.path(), "head3", "opie.role=head opie.hostname=evil", &head_args);
    impostor.wait_for("isu: ISU-7 key");
    assert!(impostor.opie(&["adopt", "ISU-7", "--as", "member"]).status.success());
    let refused = isu.wait_for("is not the pinned head key");
    assert!(refused.contains("head link: not connected"), "{refused}");
    assert!(!impostor.status().contains("connected, booting"), "impostor got a report");
    drop(impostor_sup);
}
