//! The supervisor and `opie status` on a host: role from boot parameters,
//! config and node key persisted across restarts, clear argument errors.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Node, OPIE, line};

fn opie(args: &[&str]) -> Output {
    Command::new(OPIE).args(args).output().expect("run opie")
}

#[test]
fn preseeded_isu_persists_config_and_key_across_restarts() {
    let node = Node::new("console=ttyS0 opie.role=isu opie.hostname=isu7 opie.storage_addr=10.77.0.17/24\n");
    let sup = node.start(&[]);
    let first = node.status();
    assert_eq!(line(&first, "role:"), "role: isu");
    assert_eq!(line(&first, "hostname:"), "hostname: isu7");
    assert_eq!(line(&first, "config:"), "config: preseeded from boot parameters, generation 1");
    assert_eq!(line(&first, "storage net:"), "storage net: eth0 10.77.0.17/24");
    let exit = sup.stop();
    assert!(exit.success(), "supervisor exit: {exit:?}");
    assert!(node.log().contains("opie supervisor started: role=isu hostname=isu7"), "{}", node.log());
    assert!(!node.socket().exists(), "socket left behind after a clean stop");

    // Boot parameters now say "head", but the stored config wins.
    node.set_cmdline("opie.role=head opie.hostname=other\n");
    let sup = node.start(&[]);
    let second = node.status();
    assert_eq!(line(&second, "role:"), "role: isu");
    assert_eq!(line(&second, "config:"), "config: stored, generation 1");
    assert_eq!(line(&second, "node key:"), line(&first, "node key:"), "node key changed across restart");
    sup.stop();
}

#[test]
fn no_parameters_and_no_config_is_factory_state() {
    let node = Node::new("console=ttyS0 quiet\n");
    let sup = node.start(&[]);
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: unconfigured");
    assert!(line(&status, "config:").contains("factory defaults"), "{status}");
    sup.stop();
}

#[test]
fn a_damaged_config_slot_falls_back_and_is_not_fatal() {
    let node = Node::new("opie.role=head opie.hostname=head1\n");
    node.start(&[]).stop();
    let state = node.dir().join("state");
    // A torn write of generation 2 into the other slot.
    std::fs::write(state.join("config.b"), b"OPIECFG\0garbage").expect("write");
    let sup = node.start(&[]);
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
        .arg(node.dir().join("cmdline"))
        .arg("--state-dir")
        .arg(node.dir().join("state"))
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
