//! The ISU's block export under the supervisor (DESIGN §5, §10: disks →
//! NBD server → report to the head).
//!
//! Once the ISU is adopted (it has pinned its head's key, so the two share
//! a fencing key), the supervisor runs `opie nbd-serve` for its data disks
//! as a child process with fencing on, and starts it again if it exits: a
//! crash of the data path never takes the supervisor (and the head's view
//! of the ISU) with it. The node's loop hears whether the export is up, and
//! reports "normal" or "NBD server down" to the head accordingly.

use std::path::PathBuf;
use std::time::Duration;

use log::{info, warn};
use opie_sys::system::DataDisk;
use smol::Timer;
use smol::channel::Sender;
use smol::process::Command;

use crate::node::Event;

/// The NBD port (DESIGN §2).
pub const NBD_PORT: u16 = 10809;
/// Pause before starting a server that exited.
const RESTART_AFTER: Duration = Duration::from_secs(2);

/// What the node's loop hears about the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportUpdate {
    /// Serving these exports (name, bytes).
    Up(Vec<(String, u64)>),
    /// Not serving; the words say why.
    Down(String),
}

/// Export names of the data disks: `disk0`, `disk1`, ... in device order.
pub fn export_names(disks: &[DataDisk]) -> Vec<(String, u64)> {
    disks.iter().enumerate().map(|(i, d)| (format!("disk{i}"), d.size)).collect()
}

/// Runs `opie nbd-serve` for `disks` until the loop goes away.
pub async fn run(disks: Vec<DataDisk>, key_file: PathBuf, state_dir: PathBuf, events: Sender<Event>) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/opie"));
    let names = export_names(&disks);
    loop {
        let mut command = Command::new(&exe);
        command
            .arg("nbd-serve")
            .arg("--listen")
            .arg(format!("0.0.0.0:{NBD_PORT}"))
            .arg("--fence-key-file")
            .arg(&key_file)
            .arg("--state-dir")
            .arg(&state_dir);
        for ((name, _), disk) in names.iter().zip(&disks) {
            command.arg("--export").arg(format!("{name}={}", disk.device.display()));
        }
        let outcome = match command.spawn() {
            Ok(mut child) => {
                info!("NBD server started for {} data disk(s)", disks.len());
                if events.send(Event::Export(ExportUpdate::Up(names.clone()))).await.is_err() {
                    let _ = child.kill();
                    return;
                }
                match child.status().await {
                    Ok(status) => format!("NBD server exited ({status})"),
                    Err(e) => format!("NBD server lost: {e}"),
                }
            }
            Err(e) => format!("NBD server cannot start: {e}"),
        };
        warn!("{outcome}; starting it again in {}s", RESTART_AFTER.as_secs());
        if events.send(Event::Export(ExportUpdate::Down(outcome))).await.is_err() {
            return;
        }
        Timer::after(RESTART_AFTER).await;
    }
}
