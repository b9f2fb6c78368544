//! Log routing: syslog on the appliance, stderr on a host.
//!
//! The appliance runs busybox syslogd with a ring buffer (`logread`); when
//! its socket `/dev/log` exists the supervisor logs there. Elsewhere (a
//! host, a test) records go to stderr. Only the daemon picks the sink;
//! every crate logs through the `log` facade.

use std::io::Write;
use std::path::Path;

use log::{LevelFilter, Log, Metadata, Record};

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Syslog,
    Stderr,
}

/// Installs the logger once for this process; `ident` names the program
/// in syslog lines (e.g. "opie").
pub fn init(ident: &'static str) -> Sink {
    let installed = if Path::new("/dev/log").exists() {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: ident.into(),
            pid: std::process::id(),
        };
        match syslog::unix(formatter) {
            Ok(writer) => log::set_boxed_logger(Box::new(syslog::BasicLogger::new(writer))).is_ok(),
            Err(_) => false,
        }
    } else {
        false
    };
    log::set_max_level(LevelFilter::Info);
    if installed {
        return Sink::Syslog;
    }
    let _ = log::set_boxed_logger(Box::new(StderrLogger { ident }));
    Sink::Stderr
}

/// One line per record on stderr: `ident: LEVEL message`.
struct StderrLogger {
    ident: &'static str,
}

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let _ = writeln!(std::io::stderr(), "{}: {} {}", self.ident, record.level(), record.args());
    }

    fn flush(&self) {}
}
