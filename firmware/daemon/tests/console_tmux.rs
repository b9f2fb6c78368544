//! `opie console` on a pseudo-terminal (tmux, 80x24) against a real
//! supervisor on a temporary state dir: the first-boot wizard with wrong
//! answers at every step, confirmation and rollback of network changes,
//! the menu (Ctrl-C, ISU list and adoption, bad choices, network and
//! password re-runs), and the saved config surviving a supervisor restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Node, OPIE, Supervisor, line};
/// How long one screen may take to appear (hashing a password included).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts the node's supervisor with a network-change confirmation window
/// of `secs` and a control channel on loopback.
fn start(node: &Node, secs: u64) -> Supervisor {
    start_with(node, secs, &["--ctrl-listen", "127.0.0.1:0"])
}

fn start_with(node: &Node, secs: u64, extra: &[&str]) -> Supervisor {
    let window = secs.to_string();
    let mut args = vec!["--confirm-window-secs", window.as_str()];
    args.extend_from_slice(extra);
    node.start(&args)
}

/// `opie console` in its own tmux server, on an 80x24 pane.
struct Console {
    server: String,
}

impl Console {
    fn start(socket: &Path) -> Console {
        static N: AtomicUsize = AtomicUsize::new(0);
        let server = format!("opie-console-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let command = format!("{OPIE} console --socket {}", socket.display());
        let console = Console { server };
        let status = console
            .tmux()
            .args(["new-session", "-d", "-x", "80", "-y", "24", &command])
            .status()
            .expect("tmux is needed for this test (tools/install-deps installs it)");
        assert!(status.success(), "tmux new-session failed");
        console
    }

    fn tmux(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.server, "-f", "/dev/null"]);
        cmd
    }

    /// Everything the pane showed, scrollback included.
    fn history(&self) -> String {
        let out = self.tmux().args(["capture-pane", "-p", "-J", "-S", "-"]).output().expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The visible 80x24 screen.
    fn screen(&self) -> String {
        let out = self.tmux().args(["capture-pane", "-p"]).output().expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        assert!(self.tmux().arg("send-keys").args(keys).status().expect("send-keys").success());
    }

    /// Waits until `needle` has been shown `count` times.
    fn wait_count(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let history = self.history();
            if history.matches(needle).count() >= count {
                return history;
            }
            assert!(Instant::now() < deadline, "{needle:?} did not appear (x{count}); the pane shows:\n{history}");
            sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `needle` to appear (once more than it has so far is not
    /// needed: use [`ask`](Self::ask) for answers).
    fn expect(&self, needle: &str) -> String {
        self.wait_count(needle, 1)
    }

    /// Types `line` and Enter, then waits for `needle` to be shown once
    /// more than before.
    fn ask(&self, line: &str, needle: &str) -> String {
        let before = self.history().matches(needle).count();
        if !line.is_empty() {
            self.keys(&["-l", "--", line]);
        }
        self.keys(&["Enter"]);
        self.wait_count(needle, before + 1)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

#[test]
fn first_boot_wizard_with_wrong_inputs_then_menu_and_restart() {
    let node = Node::new("console=ttyS0 quiet\n");
    let sup = start(&node, 60);
    let c = Console::start(&node.socket());
    c.expect("Role: head or isu [isu]: ");
    c.ask("nas", "Error: \"nas\" is not one of the choices: type head or isu");
    c.ask("b", "Error: this is the first step");
    c.ask("head", "step 2 - hostname");
    c.ask("-bad", "Error: hostname \"-bad\" must be");
    c.ask("head-1", "step 3 - LAN address");
    c.ask("wifi", "type dhcp or static");
    c.ask("static", "LAN address (b = back): ");
    c.ask("192.168.1.10", "Error: \"192.168.1.10\" is not an IPv4 address with prefix");
    c.ask("192.168.1.0/24", "Error: 192.168.1.0/24 is the network or broadcast address");
    c.ask("192.168.1.10/24", "Gateway (b = back) [192.168.1.1]: ");
    c.ask("10.0.0.1", "Error: gateway 10.0.0.1 is outside the LAN subnet 192.168.1.0/24");
    c.ask("192.168.1.10", "Error: gateway 192.168.1.10 is this head's own LAN address");
    c.ask("192.168.1.254", "step 6 - storage subnet");
    c.ask("10.77.0.5/24", "Error: 10.77.0.5/24 is not a network address: the subnet is 10.77.0.0/24");
    c.ask("192.168.0.0/16", "overlaps the storage subnet");
    c.ask("", "step 7 - lease pool");
    c.ask("10.77.0.1-10.77.0.50", "contains 10.77.0.1, a head's storage address");
    c.ask("10.77.0.100-10.77.1.5", "Error: pool address 10.77.1.5 is outside the storage subnet");
    c.ask("10.77.0.90-10.77.0.80", "Error: pool start 10.77.0.90 is after its end 10.77.0.80");
    // Back keeps the subnet answer, and forward again keeps it too.
    c.ask("b", "Storage subnet (b = back) [10.77.0.0/24]: ");
    c.ask("", "Lease pool (b = back) [10.77.0.100-10.77.0.199]: ");
    c.ask("10.77.0.20-10.77.0.80", "step 8 - active head");
    c.ask("3", "Error: \"3\" is not one of the choices: type 1 or 2");
    c.ask("1", "step 9 - admin password");
    c.ask("", "Error: an answer is needed here: there is no default password");
    c.ask("short", "Error: the password must have at least 8 characters");
    c.ask("s3cret-pw", "Admin password again (b = back): ");
    c.ask("s3cret-px", "Error: the two passwords differ");
    c.ask("s3cret-pw", "Admin password again (b = back): ");
    let summary = c.ask("s3cret-pw", "Save these settings (b = back) [yes]: ");
    assert!(!summary.contains("s3cret"), "a password was echoed:\n{summary}");
    for want in [
        "LAN:              192.168.1.10/24, gateway 192.168.1.254",
        "Lease pool:       10.77.0.20 - 10.77.0.80",
        "This head:        head 1 (active at first start), 10.77.0.1/24",
    ] {
        assert!(summary.contains(want), "summary lacks {want:?}:\n{summary}");
    }
    c.ask("maybe", "type yes to save, or b to go back");
    c.ask("yes", "Type yes within");
    c.ask("no", "Only yes keeps them.");
    c.ask("yes", "Confirmed: network settings of generation 1 kept.");
    c.expect("Opie | head-1 | head | LAN 192.168.1.10/24 | storage 10.77.0.1/24 | no alerts");
    c.expect("Choice (number or name): ");

    // Ctrl-C at the menu does not end the console.
    c.keys(&["C-c"]);
    sleep(Duration::from_millis(300));
    c.ask("2", "No ISUs known yet: none has said hello to this head.");
    c.ask("", "Choice (number or name): ");
    c.ask("9", "Error: \"9\" is not a menu choice");
    c.ask("reboot", "Reboot this node now? Type yes to confirm: ");
    c.ask("no", "Not rebooting.");
    let status = c.ask("status", "Press Enter to return to the menu.");
    assert!(status.contains("config: stored, generation 1"), "{status}");
    let screen = c.screen();
    assert!(screen.lines().count() <= 24 && screen.lines().all(|l| l.len() <= 80), "{screen}");
    c.ask("", "Choice (number or name): ");

    let first = node.status();
    assert_eq!(line(&first, "role:"), "role: head");
    assert_eq!(line(&first, "hostname:"), "hostname: head-1");
    assert_eq!(line(&first, "config:"), "config: stored, generation 1");
    assert_eq!(line(&first, "storage net:"), "storage net: eth0 10.77.0.1/24");
    // The password is stored hashed, never in clear.
    let slot = std::fs::read(node.dir().join("state/config.a")).expect("config slot");
    assert!(!slot.windows(9).any(|w| w == b"s3cret-pw"), "password stored in clear");

    let exit = sup.stop();
    assert!(exit.success(), "supervisor exit: {exit:?}");
    let sup = start(&node, 60);
    let second = node.status();
    assert_eq!(line(&second, "role:"), "role: head");
    assert_eq!(line(&second, "hostname:"), "hostname: head-1");
    assert_eq!(line(&second, "config:"), "config: stored, generation 1");
    sup.stop();
}

#[test]
fn unconfirmed_network_change_rolls_back_and_the_menu_edits_settings() {
    let node = Node::new("console=ttyS0 quiet\n");
    let sup = start(&node, 3);
    let c = Console::start(&node.socket());
    c.expect("Role: head or isu [isu]: ");
    c.ask("isu", "Hostname (b = back) [opie-isu]: ");
    c.ask("isu-5", "Storage address: leased or static (b = back) [leased]: ");
    c.ask("static", "Storage address (b = back): ");
    c.ask("10.77.0.15/33", "Error: \"10.77.0.15/33\" is not an IPv4 address with prefix");
    c.ask("10.77.0.2/24", "Error: 10.77.0.2 is a head's address");
    c.ask("10.77.0.15/31", "Error: prefix /31 is outside /8../30");
    c.ask("10.77.0.15/24", "New admin password (b = back): ");
    c.ask("isu-password", "Admin password again (b = back): ");
    c.ask("isu-password", "Storage address:  10.77.0.15/24");
    c.ask("", "Type yes within");
    // Nobody confirms: the supervisor restores factory state and the
    // wizard starts again.
    c.expect("Not confirmed in time: the previous settings are being restored.");
    c.wait_count("Role: head or isu [isu]: ", 2);
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: unconfigured");
    assert_eq!(line(&status, "config:"), "config: stored, generation 2");
    assert!(status.contains("alert: network change not confirmed"), "{status}");

    // A leased ISU changes no network: saved without confirmation.
    c.ask("isu", "Hostname (b = back) [opie-isu]: ");
    c.ask("isu-5", "[leased]: ");
    c.ask("", "New admin password (b = back): ");
    c.ask("isu-password", "Admin password again (b = back): ");
    c.ask("isu-password", "Storage address:  leased from the active head");
    c.ask("yes", "Saved (settings generation 3).");
    c.expect("Opie | isu-5 | isu | storage leased | 1 ALERT");
    c.ask("isus", "This node is isu: ISUs are listed on the heads.");
    c.ask("", "Choice (number or name): ");

    // Network settings: b on the first step cancels.
    c.ask("3", "== Opie network settings: step 1 - storage address ==");
    c.ask("b", "Cancelled; nothing changed.");
    // Password reset: twice, with a mismatch first.
    c.ask("password", "== Opie admin password: step 1 - admin password ==");
    c.ask("new-password", "Admin password again (b = back): ");
    c.ask("other-password", "Error: the two passwords differ");
    c.ask("new-password", "Admin password again (b = back): ");
    c.ask("new-password", "Saved (settings generation 4).");
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: isu");
    assert_eq!(line(&status, "hostname:"), "hostname: isu-5");
    assert_eq!(line(&status, "config:"), "config: stored, generation 4");
    sup.stop();
}

#[test]
fn a_supervisor_restart_before_the_confirmation_rolls_the_change_back() {
    let node = Node::new("console=ttyS0 quiet\n");
    let sup = start(&node, 60);
    let c = Console::start(&node.socket());
    c.expect("Role: head or isu [isu]: ");
    c.ask("isu", "Hostname (b = back) [opie-isu]: ");
    c.ask("isu-6", "[leased]: ");
    c.ask("static", "Storage address (b = back): ");
    c.ask("10.77.0.16/24", "New admin password (b = back): ");
    c.ask("isu-password", "Admin password again (b = back): ");
    c.ask("isu-password", "Save these settings (b = back) [yes]: ");
    c.ask("", "Type yes within");
    assert_eq!(line(&node.status(), "storage net:"), "storage net: eth0 10.77.0.16/24");
    // The supervisor goes away (init would respawn it) before the admin
    // confirms: the new one restores the previous settings at start.
    sup.stop();
    let sup = start(&node, 60);
    let status = node.status();
    assert_eq!(line(&status, "role:"), "role: unconfigured");
    assert_eq!(line(&status, "config:"), "config: stored, generation 2");
    assert!(status.contains("alert: the supervisor restarted before a network change was confirmed"), "{status}");
    // The late confirmation is refused with the reason.
    c.ask("yes", "Error: generation 1 is not waiting for a confirmation");
    c.wait_count("Role: head or isu [isu]: ", 2);
    sup.stop();
    // Settled: a further restart keeps the restored config.
    let sup = start(&node, 60);
    assert_eq!(line(&node.status(), "config:"), "config: stored, generation 2");
    sup.stop();
}

#[test]
fn a_head_adopts_a_pending_isu_from_the_console() {
    let port = common::free_port();
    let ctrl = format!("127.0.0.1:{port}");
    let head = Node::new("opie.role=head opie.hostname=head1\n");
    let head_sup = start_with(&head, 60, &["--ctrl-listen", &ctrl]);
    let c = Console::start(&head.socket());
    c.expect("Opie | head1 | head | LAN dhcp | storage 10.77.0.1/24 | no alerts");
    c.ask("isus", "No ISUs known yet: none has said hello to this head.");
    c.ask("", "Choice (number or name): ");

    let isu = Node::new("opie.role=isu opie.hostname=isu1\n");
    let isu_sup = start_with(&isu, 60, &["--ctrl-head", &ctrl, "--serial", "ISU-0042"]);
    let deadline = Instant::now() + SCREEN_TIMEOUT;
    while !head.status().contains("isu: ISU-0042") {
        assert!(Instant::now() < deadline, "the ISU never said hello:\n{}", head.status());
        sleep(Duration::from_millis(100));
    }
    c.ask("2", "1 ISU(s), 1 pending adoption:");
    c.expect("ISU-0042 key ");
    c.ask("adopt ISU-0042 parity", "Error: \"adopt ISU-0042 parity\" is not understood");
    c.ask("adopt ISU-9999 member", "Error: ");
    c.ask("adopt ISU-0042 spare", "Done: adopted ISU-0042");
    c.expect("Press Enter to return to the menu.");
    let status = head.status();
    assert!(status.contains("isu: ISU-0042") && status.contains("adopted as spare"), "{status}");
    c.ask("", "Choice (number or name): ");
    isu_sup.stop();
    head_sup.stop();
}
