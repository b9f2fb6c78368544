//! The active head's storage steps as child processes (DESIGN §10):
//! `opie nbd-attach` for each member and `opie storage create-group` for
//! the group, chosen by `opie_core::bringup` in the node's loop.
//!
//! Each step runs the same binary's subcommand, so every step can also be
//! run and tested by hand, and a step that crashes or hangs never takes the
//! supervisor with it. The result goes back to the loop as an event.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{info, warn};
use smol::channel::Sender;
use smol::process::{Command, Output};

use crate::export_link::NBD_PORT;
use crate::node::Event;

/// The epoch this head claims when it attaches (DESIGN §5). One head per
/// cluster holds epoch 1; the active/passive work bumps and persists it at
/// every takeover.
pub const HEAD_EPOCH: u64 = 1;

/// What a step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageResult {
    Attached { serial: String, device: u32, result: Result<(), String> },
    Started { result: Result<(), String> },
    MemberFailed { serial: String, result: Result<(), String> },
    Readded { serial: String, device: u32, result: Result<(), String> },
    Replaced { missing: String, spare: String, device: u32, result: Result<(), String> },
}

fn exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/opie"))
}

/// The last lines a failed child printed, for the status page.
fn failure(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let text = if text.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { text };
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).rev().take(2).collect();
    format!("{} ({})", tail.into_iter().rev().collect::<Vec<_>>().join("; "), out.status)
}

async fn run(command: &mut Command) -> Result<(), String> {
    match command.output().await {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(failure(&out)),
        Err(e) => Err(format!("cannot run: {e}")),
    }
}

/// One member to attach: its export at `addr` as /dev/nbd`device`, signed
/// with the fencing key the head shares with that ISU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachJob {
    pub serial: String,
    pub addr: Ipv4Addr,
    pub export: String,
    pub device: u32,
    pub fence_key: [u8; 32],
}

/// Attaches a member's export, claiming this head's epoch.
pub async fn attach(job: AttachJob, key_dir: PathBuf, head_id: String, events: Sender<Event>) {
    let (serial, device) = (job.serial.clone(), job.device);
    let result = attach_export(&job, &key_dir, &head_id).await;
    let _ = events.send(Event::Storage(StorageResult::Attached { serial, device, result })).await;
}

async fn attach_export(job: &AttachJob, key_dir: &Path, head_id: &str) -> Result<(), String> {
    let AttachJob { serial, addr, export, device, fence_key } = job;
    let key_file = key_dir.join(format!("fence-nbd{device}.key"));
    opie_sys::system::write_secret(&key_file, fence_key).map_err(|e| format!("fencing key not written: {e}"))?;
    // The nbd driver is a module on Debian's kernel; built in on Opie's
    // own. A missing module shows up as the attach's error.
    let _ = Command::new("modprobe").arg("nbd").output().await;
    let result = run(Command::new(exe())
        .arg("nbd-attach")
        .arg("--server")
        .arg(format!("{addr}:{NBD_PORT}"))
        .arg("--export")
        .arg(export)
        .arg("--epoch")
        .arg(HEAD_EPOCH.to_string())
        .arg("--fence-key-file")
        .arg(&key_file)
        .arg("--head-id")
        .arg(head_id)
        .arg("--device")
        .arg(format!("/dev/nbd{device}")))
    .await;
    match &result {
        Ok(()) => info!("attached {serial}'s {export} as /dev/nbd{device}"),
        Err(e) => warn!("attaching {serial}'s {export}: {e}"),
    }
    result
}

async fn member(verb: &str, device: u32) -> Result<(), String> {
    run(Command::new(exe()).args(["storage", "member", verb, &format!("/dev/nbd{device}")])).await
}

async fn detach(device: u32) -> Result<(), String> {
    run(Command::new(exe()).args(["nbd-detach", "--device", &format!("/dev/nbd{device}")])).await
}

/// A member's ISU is gone: fail and remove it from the array at once (md
/// alone would notice only at the next write after the nbd timeouts) and
/// free its nbd device for when it comes back.
pub async fn fail_member(serial: String, device: u32, events: Sender<Event>) {
    let result = async {
        member("fail", device).await?;
        member("remove", device).await?;
        detach(device).await
    }
    .await;
    match &result {
        Ok(()) => info!("{serial} (/dev/nbd{device}) failed and removed from the group"),
        Err(e) => warn!("failing {serial} (/dev/nbd{device}): {e}"),
    }
    let _ = events.send(Event::Storage(StorageResult::MemberFailed { serial, result })).await;
}

/// A member came back within the spare timeout: attach its export again
/// and re-add it; the write-intent bitmap resyncs only what changed.
pub async fn readd_member(job: AttachJob, key_dir: PathBuf, head_id: String, events: Sender<Event>) {
    let (serial, device) = (job.serial.clone(), job.device);
    let started = std::time::Instant::now();
    let _ = detach(device).await;
    let result = async {
        attach_export(&job, &key_dir, &head_id).await?;
        member("re-add", device).await
    }
    .await;
    match &result {
        Ok(()) => info!("{serial} re-added as /dev/nbd{device} in {:?}", round(started.elapsed())),
        Err(e) => warn!("re-adding {serial}: {e}"),
    }
    let _ = events.send(Event::Storage(StorageResult::Readded { serial, device, result })).await;
}

/// The spare timeout ran out: the spare's export joins in the missing
/// member's place and md rebuilds onto it.
pub async fn replace_member(missing: String, job: AttachJob, key_dir: PathBuf, head_id: String, events: Sender<Event>) {
    let (spare, device) = (job.serial.clone(), job.device);
    let result = async {
        attach_export(&job, &key_dir, &head_id).await?;
        member("add", device).await
    }
    .await;
    match &result {
        Ok(()) => info!("spare {spare} replaces {missing} as /dev/nbd{device}; rebuild started"),
        Err(e) => warn!("spare {spare} could not replace {missing}: {e}"),
    }
    let _ = events.send(Event::Storage(StorageResult::Replaced { missing, spare, device, result })).await;
}

/// Creates (first time) or assembles the group and mounts it; with a
/// member missing (`degraded`) it only assembles, never creates.
pub async fn start_group(group: String, devices: Vec<String>, degraded: bool, events: Sender<Event>) {
    let started = std::time::Instant::now();
    let verb = if degraded { "assemble" } else { "create-group" };
    let result = run(Command::new(exe()).args(["storage", verb, "--name", &group]).args(&devices)).await;
    match &result {
        Ok(()) => info!(
            "group {group} online{} over {} in {:?}",
            if degraded { " (degraded)" } else { "" },
            devices.join(" "),
            round(started.elapsed())
        ),
        Err(e) => warn!("group {group} did not start: {e}"),
    }
    let _ = events.send(Event::Storage(StorageResult::Started { result })).await;
}

fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Where per-member fencing keys are written: tmpfs beside the socket.
pub fn key_dir(socket: &Path) -> PathBuf {
    socket.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/run/opie"))
}
