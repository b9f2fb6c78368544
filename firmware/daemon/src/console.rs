//! `opie console`: the serial console on ttyS0 of every node.
//!
//! Drives the sans-I/O screens of `opie_core::wizard` and `opie_core::menu`
//! on a line-based 80x24 dumb terminal (DESIGN §12, issue 7). A node in
//! factory state (role `unconfigured` in the supervisor's status) gets the
//! first-boot wizard; its result goes to the supervisor as one apply-config
//! request, and a network change is confirmed here within the time the
//! supervisor allows or it rolls back. A set-up node gets the numbered menu
//! with the status line on top. The console never holds node state: it asks
//! the supervisor over the local socket each time it draws.
//!
//! Terminal handling: lines come from a reader thread that reads one line
//! only when asked, so a shell started from the menu owns the terminal
//! alone; passwords are read with echo off (`stty -echo`); the size comes
//! from `stty size`, 80x24 when the terminal reports 0x0. Ctrl-C and
//! Ctrl-\ are ignored; end of input (hang-up) ends the console and init
//! starts it again.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use opie_core::api::Request;
use opie_core::config::{Config, PASSWORD_ITERATIONS, Role};
use opie_core::menu::{self, IsuAction, Item, TermSize};
use opie_core::wizard::{Reply, Wizard};

use crate::{DEFAULT_SOCKET, local};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

/// How long to wait before asking a silent supervisor again.
const RETRY: Duration = Duration::from_secs(3);

/// One line of input, or why there is none.
enum Input {
    Line(String),
    /// End of input: the terminal hung up.
    Eof,
    TimedOut,
}

/// The end of the serial line was reached; the console exits.
struct Hangup;

/// Line input on demand plus output, for one terminal.
struct Terminal {
    want: Sender<()>,
    lines: Receiver<io::Result<Option<String>>>,
    /// A line was asked for and not yet received (after a time-out).
    outstanding: bool,
    /// Whether the terminal echoes input (off while a password is typed).
    echo: bool,
    out: io::Stdout,
}

impl Terminal {
    fn new() -> Self {
        let (want, wanted) = mpsc::channel::<()>();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = io::stdin();
            while wanted.recv().is_ok() {
                let mut line = String::new();
                let read = stdin.lock().read_line(&mut line).map(|n| (n > 0).then_some(line));
                if send.send(read).is_err() {
                    return;
                }
            }
        });
        Terminal { want, lines, outstanding: false, echo: true, out: io::stdout() }
    }

    /// Reads one line, waiting at most `timeout` when given.
    fn read(&mut self, timeout: Option<Duration>) -> Input {
        if !self.outstanding && self.want.send(()).is_err() {
            return Input::Eof;
        }
        self.outstanding = true;
        let got = match timeout {
            None => self.lines.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => self.lines.recv_timeout(t),
        };
        match got {
            Ok(Ok(Some(line))) => {
                self.outstanding = false;
                if !self.echo {
                    // The Enter that ended the line was not echoed either.
                    self.print("\n");
                }
                Input::Line(line.trim_end_matches(['\r', '\n']).to_string())
            }
            Ok(Ok(None) | Err(_)) | Err(RecvTimeoutError::Disconnected) => Input::Eof,
            Err(RecvTimeoutError::Timeout) => Input::TimedOut,
        }
    }

    /// Reads a line with no time limit; `Err` on hang-up.
    fn line(&mut self) -> Result<String, Hangup> {
        match self.read(None) {
            Input::Line(line) => Ok(line),
            Input::Eof | Input::TimedOut => Err(Hangup),
        }
    }

    /// Turns the terminal's echo on or off (for passwords). Off takes
    /// effect before the prompt is shown, so type-ahead is not echoed
    /// either.
    fn set_echo(&mut self, on: bool) {
        if on != self.echo && stty(&[if on { "echo" } else { "-echo" }]).is_some() {
            self.echo = on;
        }
    }

    fn print(&mut self, text: &str) {
        // A console whose output is gone has nobody to tell.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn size(&self) -> TermSize {
        let reported = stty(&["size"]).and_then(|text| {
            let mut words = text.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((words.next()??, words.next()??))
        });
        reported.map_or_else(TermSize::default, |(rows, cols)| TermSize::reported(rows, cols))
    }

    /// Shows `text` a screen at a time, then waits for Enter.
    fn paged(&mut self, text: &str) -> Result<(), Hangup> {
        let pages = menu::pages(text, self.size());
        let last = pages.len() - 1;
        for (i, page) in pages.iter().enumerate() {
            self.print(page);
            self.print(if i == last { "Press Enter to return to the menu. " } else { "-- more: press Enter -- " });
            self.line()?;
        }
        Ok(())
    }
}

/// Runs `stty` on the console's terminal; its output, or `None` when it
/// fails (no terminal, no stty).
fn stty(args: &[&str]) -> Option<String> {
    let out = Command::new("stty").args(args).stdin(Stdio::inherit()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // Ctrl-C at the menu must not kill the console (issue 7); the shell it
    // starts gets Ctrl-C back (`default_interrupts`).
    opie_sys::system::ignore_interrupt_signals();
    let mut term = Terminal::new();
    // Ends only when the terminal hangs up: init starts a fresh console.
    let _ = serve(&args, &mut term);
    Ok(())
}

fn serve(args: &Args, term: &mut Terminal) -> Result<(), Hangup> {
    let mut welcomed = false;
    loop {
        let status = local::fetch_status(&args.socket);
        match &status {
            Ok(report) if report.role == Role::Unconfigured => {
                if !welcomed {
                    term.print("\nWelcome to Opie. This node is not set up yet; the questions below set it up.\n");
                    term.print("Defaults are in [brackets]: press Enter to take them. Type b to go back.\n\n");
                    welcomed = true;
                }
                let salt = match opie_sys::random::bytes::<16>() {
                    Ok(salt) => salt,
                    Err(e) => {
                        term.print(&format!("No randomness for the password salt ({e}); trying again.\n"));
                        std::thread::sleep(RETRY);
                        continue;
                    }
                };
                wizard(args, term, Wizard::first_boot(salt, PASSWORD_ITERATIONS))?;
                continue;
            }
            Ok(_) | Err(_) => {}
        }
        let size = term.size();
        let config = local::fetch_config(&args.socket).ok().map(|(config, _)| config);
        let lan = config.as_ref().and_then(menu::lan_words);
        let error = status.as_ref().map_err(ToString::to_string);
        term.print(&format!(
            "\n{}",
            menu::menu_screen(error.as_ref().copied().map_err(String::as_str), lan.as_deref(), size)
        ));
        let line = term.line()?;
        match menu::parse_choice(&line) {
            Ok(None) => {}
            Ok(Some(item)) => menu_item(args, term, item, config)?,
            Err(e) => term.print(&format!("Error: {e}\n")),
        }
    }
}

fn menu_item(args: &Args, term: &mut Terminal, item: Item, config: Option<Config>) -> Result<(), Hangup> {
    let needs_config = matches!(item, Item::Network | Item::Password);
    let config = match config {
        Some(config) => Some(config),
        None if needs_config => match local::fetch_config(&args.socket) {
            Ok((config, _)) => Some(config),
            Err(e) => {
                term.print(&format!("Error: cannot read the settings: {e}\n"));
                return Ok(());
            }
        },
        None => None,
    };
    match (item, config) {
        (Item::Status, _) => match local::fetch_status(&args.socket) {
            Ok(report) => term.paged(&report.render()),
            Err(e) => {
                term.print(&format!("Error: {e}\n"));
                Ok(())
            }
        },
        (Item::Isus, _) => isus(args, term),
        (Item::Network, Some(config)) => wizard(args, term, Wizard::network(&config)),
        (Item::Password, Some(config)) => match opie_sys::random::bytes::<16>() {
            Ok(salt) => wizard(args, term, Wizard::password(&config, salt, PASSWORD_ITERATIONS)),
            Err(e) => {
                term.print(&format!("Error: no randomness for the password salt: {e}\n"));
                Ok(())
            }
        },
        (Item::Network | Item::Password, None) => Ok(()),
        (Item::Reboot, _) => reboot(term),
        (Item::Shell, _) => {
            shell(term);
            Ok(())
        }
    }
}

/// The ISU list; on a head with pending ISUs, adopt and reject until the
/// admin presses Enter.
fn isus(args: &Args, term: &mut Terminal) -> Result<(), Hangup> {
    loop {
        let report = match local::fetch_status(&args.socket) {
            Ok(report) => report,
            Err(e) => {
                term.print(&format!("Error: {e}\n"));
                return Ok(());
            }
        };
        if !menu::has_pending(&report) {
            return term.paged(&menu::isus_screen(&report));
        }
        term.print(&format!("\n{}", menu::isus_screen(&report)));
        term.print("adopt SERIAL member, adopt SERIAL spare, reject SERIAL, or Enter for the menu: ");
        let request = match menu::parse_isu_action(&term.line()?) {
            Ok(None) => return Ok(()),
            Ok(Some(IsuAction::Adopt { serial, function })) => Request::Adopt { serial, function },
            Ok(Some(IsuAction::Reject { serial })) => Request::Reject { serial },
            Err(e) => {
                term.print(&format!("Error: {e}\n"));
                continue;
            }
        };
        match local::command(&args.socket, &request) {
            Ok(done) => term.print(&format!("Done: {done}.\n")),
            Err(e) => term.print(&format!("Error: {e}\n")),
        }
    }
}

/// Runs a wizard to its save (or cancel) and hands the result over; the
/// terminal echoes again afterwards, whatever happened.
fn wizard(args: &Args, term: &mut Terminal, wizard: Wizard) -> Result<(), Hangup> {
    let result = run_wizard(args, term, wizard);
    term.set_echo(true);
    result
}

fn run_wizard(args: &Args, term: &mut Terminal, mut wizard: Wizard) -> Result<(), Hangup> {
    show(term, &wizard, &wizard.screen());
    loop {
        let line = term.line()?;
        match wizard.input(&line) {
            Reply::Screen(screen) => show(term, &wizard, &screen),
            Reply::Cancelled => {
                term.print("Cancelled; nothing changed.\n");
                return Ok(());
            }
            Reply::Save(config) => match local::apply_config(&args.socket, &config) {
                Ok((generation, None)) => {
                    term.print(&format!("Saved (settings generation {generation}).\n"));
                    return Ok(());
                }
                Ok((generation, Some(secs))) => {
                    term.set_echo(true);
                    return confirm(args, term, generation, secs);
                }
                Err(e) => show(term, &wizard, &format!("Error: {e}\n{}", wizard.screen())),
            },
        }
    }
}

/// Shows a wizard screen with echo set for its step: off before a
/// password prompt appears, so type-ahead is not echoed either.
fn show(term: &mut Terminal, wizard: &Wizard, screen: &str) {
    term.set_echo(!wizard.secret());
    term.print("\n");
    if wizard.secret() && term.echo {
        term.print("Note: this terminal cannot hide input; the password will show as you type.\n");
    }
    term.print(screen);
}

/// Asks the admin to keep a network change within `secs` seconds.
fn confirm(args: &Args, term: &mut Terminal, generation: u64, secs: u64) -> Result<(), Hangup> {
    term.print(&format!(
        "Saved and applied (settings generation {generation}). The network settings changed:\n\
         if they are not confirmed within {secs} seconds, the previous ones come back.\n"
    ));
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        term.print(&format!("Keep the new network settings? Type yes within {} s: ", left.as_millis().div_ceil(1000)));
        match term.read(Some(left)) {
            Input::Eof => return Err(Hangup),
            Input::TimedOut => {
                term.print("\nNot confirmed in time: the previous settings are being restored.\n");
                wait_for_rollback(args, generation);
                return Ok(());
            }
            Input::Line(line) if line.trim().eq_ignore_ascii_case("yes") => {
                match local::command(&args.socket, &Request::ConfirmConfig { generation }) {
                    Ok(done) => term.print(&format!("Confirmed: {done}.\n")),
                    Err(e) => term.print(&format!("Error: {e}\n")),
                }
                return Ok(());
            }
            Input::Line(_) => term.print("Only yes keeps them.\n"),
        }
    }
}

/// Waits (a few seconds at most) until the supervisor has replaced
/// `generation`, so the next screen shows the restored settings.
fn wait_for_rollback(args: &Args, generation: u64) {
    let give_up = Instant::now() + RETRY;
    while Instant::now() < give_up {
        if local::fetch_config(&args.socket).is_ok_and(|(_, current)| current != generation) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn reboot(term: &mut Terminal) -> Result<(), Hangup> {
    term.print("Reboot this node now? Type yes to confirm: ");
    if !term.line()?.trim().eq_ignore_ascii_case("yes") {
        term.print("Not rebooting.\n");
        return Ok(());
    }
    match Command::new("reboot").status() {
        Ok(s) if s.success() => term.print("Rebooting.\n"),
        Ok(s) => term.print(&format!("Error: reboot failed: {s}\n")),
        Err(e) => term.print(&format!("Error: cannot run reboot: {e}\n")),
    }
    Ok(())
}

fn shell(term: &mut Terminal) {
    term.print("Starting a shell; type 'exit' to return to the menu.\n");
    if let Err(e) = opie_sys::system::default_interrupts(Command::new("/bin/sh").arg("-l")).status() {
        term.print(&format!("Error: cannot start /bin/sh: {e}\n"));
    }
}
