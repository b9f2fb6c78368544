//! `opie console`: the serial-console menu on ttyS0.
//!
//! A line-based numbered menu for an 80x24 dumb terminal with the node's
//! status line on top (DESIGN §12). It reads status from the supervisor
//! over the local socket and never holds node state itself. The first-boot
//! wizard and the adoption screens join this menu with the operator
//! interfaces issue.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::Command;

use crate::{DEFAULT_SOCKET, local};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// One menu entry: its number, label and what it does.
struct Item {
    key: &'static str,
    label: &'static str,
    action: fn(&Args, &mut dyn Write) -> io::Result<()>,
}

const MENU: &[Item] = &[
    Item { key: "1", label: "Show status", action: show_status },
    Item { key: "2", label: "Shell", action: shell },
    Item { key: "3", label: "Reboot", action: reboot },
];

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    ignore_interrupts();
    let stdin = io::stdin();
    let mut out = io::stdout();
    let mut line = String::new();
    loop {
        draw(&args, &mut out)?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            // The serial line closed (hangup): init respawns us.
            return Ok(());
        }
        let choice = line.trim();
        match MENU.iter().find(|item| item.key == choice) {
            Some(item) => (item.action)(&args, &mut out)?,
            None if choice.is_empty() => {}
            None => writeln!(out, "'{choice}' is not a menu choice: type a number from 1 to {}.", MENU.len())?,
        }
    }
}

/// The status line (role, host, storage address, alerts) and the menu.
fn draw(args: &Args, out: &mut dyn Write) -> io::Result<()> {
    let status = match local::fetch_status(&args.socket) {
        Ok(r) => {
            let addr = r.storage_addr.map_or_else(|| "no address".to_string(), |a| a.to_string());
            let alerts = match r.alerts.len() {
                0 => "no alerts".to_string(),
                n => format!("{n} ALERT(S)"),
            };
            format!("Opie {} | {} | {} | {} {} | {}", r.version, r.role, r.hostname, r.storage_iface, addr, alerts)
        }
        Err(e) => format!("Opie | supervisor not answering: {e}"),
    };
    let status: String = status.chars().take(79).collect();
    writeln!(out, "\n{status}\n{}", "-".repeat(79))?;
    for item in MENU {
        writeln!(out, "  {}) {}", item.key, item.label)?;
    }
    write!(out, "Choice: ")?;
    out.flush()
}

fn show_status(args: &Args, out: &mut dyn Write) -> io::Result<()> {
    match local::fetch_status(&args.socket) {
        Ok(report) => write!(out, "\n{}", report.render()),
        Err(e) => writeln!(out, "\n{e}"),
    }
}

fn shell(_: &Args, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "Starting a shell; type 'exit' to return to the menu.")?;
    match Command::new("/bin/sh").arg("-l").status() {
        Ok(_) => Ok(()),
        Err(e) => writeln!(out, "cannot start /bin/sh: {e}"),
    }
}

fn reboot(_: &Args, out: &mut dyn Write) -> io::Result<()> {
    write!(out, "Reboot this node now? Type 'yes' to confirm: ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return writeln!(out, "Not rebooting.");
    }
    match Command::new("reboot").status() {
        Ok(s) if s.success() => writeln!(out, "Rebooting."),
        Ok(s) => writeln!(out, "reboot failed: {s}"),
        Err(e) => writeln!(out, "cannot run reboot: {e}"),
    }
}

/// Ctrl-C at the menu must not kill the console (issue 7); the shell it
/// starts gets default signal handling back from exec.
fn ignore_interrupts() {
    opie_sys::system::ignore_interrupt_signals();
}
