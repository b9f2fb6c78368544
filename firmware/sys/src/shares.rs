//! Serving the head's shares (DESIGN §7, issue 6 "Shares"): the system
//! side of `opie_core::shares`.
//!
//! [`ShareHost`] is a sibling of [`crate::host::Host`] for what shares
//! need: which data volumes are mounted, share directories (created
//! without following symlinks), the NFS and ksmbd configuration files
//! (written crash-safely: temp file, fsync, rename, fsync of the
//! directory), and starting or reloading the kernel NFS server and ksmbd.
//! [`RealShareHost`] does it on the appliance; `opie_testkit::fake_shares`
//! models it in memory.
//!
//! [`apply`] makes the system serve what a [`Shares`] record says and
//! changes only what differs, so applying twice runs nothing the second
//! time. [`ShareService`] owns the record: every change is validated
//! (`opie_core::shares`), checked against the filesystem (no symlink on the
//! way to a share's directory), persisted as a sealed two-slot record, and
//! only then applied. A refused change leaves record and system as they
//! were; an apply that fails after the save says what failed.
//!
//! NFS start-up order (FIELD-NOTES "NFS server"): nfsd module, the nfsd
//! filesystem on /proc/fs/nfsd, `rpcbind -w`, `rpc.mountd`, then
//! `rpc.nfsd --lease-time 10 --grace-time 10` (short grace for fast
//! failover), then `exportfs -ra`. ksmbd: module, `ksmbd.mountd` once, then
//! `ksmbd.control --reload` after changes to ksmbd.conf or ksmbdpwd.db
//! (which the head renders itself from the stored NT hashes, so users
//! survive a reboot without their passwords being stored).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::info;
use opie_core::shares::{
    self, SHARE_DIR_MODE, SHARE_OWNER, SHARES_VERSION, ShareCommand, ShareError, Shares, SharesView,
};
use opie_core::storage::mounts;
use thiserror::Error;

use crate::host::{HostError, run_with_timeout};
use crate::slots::SlotStore;

/// The files the share manager owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigFile {
    /// `/etc/exports`.
    Exports,
    /// `/etc/ksmbd/ksmbd.conf`.
    KsmbdConf,
    /// `/etc/ksmbd/ksmbdpwd.db` (mode 0600: it holds NT hashes).
    KsmbdPasswords,
}

impl ConfigFile {
    /// Where the file lives on the appliance.
    pub fn path(self) -> &'static str {
        match self {
            ConfigFile::Exports => "/etc/exports",
            ConfigFile::KsmbdConf => "/etc/ksmbd/ksmbd.conf",
            ConfigFile::KsmbdPasswords => "/etc/ksmbd/ksmbdpwd.db",
        }
    }
}

/// What lies at a share's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    Missing,
    Directory,
    /// A symlink at this path on the way: refused, it could lead anywhere.
    Symlink(String),
    /// Something that is not a directory at this path.
    NotDirectory(String),
}

/// What serving shares needs from the system.
pub trait ShareHost {
    /// Mount points of the mounted Opie data volumes.
    fn data_volumes(&mut self) -> Result<Vec<String>, HostError>;
    /// Walks `pool/path` component by component without following links.
    fn dir_state(&mut self, pool: &str, path: &str) -> Result<DirState, HostError>;
    /// Creates the missing components of `pool/path` (owner
    /// [`SHARE_OWNER`], mode [`SHARE_DIR_MODE`]); existing ones keep their
    /// owner, mode and ACLs.
    fn make_dir(&mut self, pool: &str, path: &str) -> Result<(), HostError>;
    fn read_config(&mut self, file: ConfigFile) -> Result<Option<String>, HostError>;
    /// Replaces the file crash-safely.
    fn write_config(&mut self, file: ConfigFile, text: &str) -> Result<(), HostError>;
    /// Whether nfsd runs with threads.
    fn nfs_running(&mut self) -> Result<bool, HostError>;
    /// Starts whichever parts of the NFS server are not running.
    fn start_nfs(&mut self) -> Result<(), HostError>;
    /// `exportfs -ra`: the kernel's export table becomes /etc/exports.
    fn exportfs_reload(&mut self) -> Result<(), HostError>;
    /// Whether ksmbd.mountd runs.
    fn smb_running(&mut self) -> Result<bool, HostError>;
    /// Loads ksmbd and starts ksmbd.mountd.
    fn start_smb(&mut self) -> Result<(), HostError>;
    /// `ksmbd.control --reload`.
    fn smb_reload(&mut self) -> Result<(), HostError>;
}

/// Why serving the shares failed.
#[derive(Debug, Error)]
pub enum ApplyError {
    /// A system call or tool failed; what was done before it stays done.
    #[error("{step}: {source}")]
    Host { step: String, source: HostError },
    /// Some shares cannot be served (the others are).
    #[error("{}", .0.join("; "))]
    Shares(Vec<String>),
}

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Changes made, in order ("created /srv/g1/docs", "NFS server started").
    pub actions: Vec<String>,
    /// Shares whose data volume is not mounted.
    pub waiting: Vec<String>,
}

impl Applied {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.actions.is_empty() {
            parts.push("nothing needed changing".to_string());
        } else {
            parts.push(self.actions.join(", "));
        }
        if !self.waiting.is_empty() {
            parts.push(format!("waiting for their data volume: {}", self.waiting.join(", ")));
        }
        parts.join("; ")
    }
}

fn step<T>(what: impl Into<String>, r: Result<T, HostError>) -> Result<T, ApplyError> {
    r.map_err(|source| ApplyError::Host { step: what.into(), source })
}

/// Makes the system serve `shares` (see the module header); changes only
/// what differs. `hostname` names the SMB server.
pub fn apply(host: &mut dyn ShareHost, shares: &Shares, hostname: &str) -> Result<Applied, ApplyError> {
    let mut done = Applied::default();
    let mounted = step("listing mounted data volumes", host.data_volumes())?;
    let mut live = shares.clone();
    let mut problems = Vec::new();
    live.shares.retain(|s| {
        if !mounted.contains(&s.pool) {
            done.waiting.push(format!("{} ({})", s.name, s.pool));
            return false;
        }
        true
    });
    let mut ok = Vec::new();
    for s in live.shares.drain(..) {
        let state = match host.dir_state(&s.pool, &s.path) {
            Ok(state) => state,
            Err(e) => {
                problems.push(format!("share {}: {e}", s.name));
                continue;
            }
        };
        match state {
            DirState::Directory => ok.push(s),
            DirState::Missing => match host.make_dir(&s.pool, &s.path) {
                Ok(()) => {
                    done.actions.push(format!("created {}", s.dir()));
                    ok.push(s);
                }
                Err(e) => problems.push(format!("share {}: creating {}: {e}", s.name, s.dir())),
            },
            DirState::Symlink(at) => problems
                .push(format!("share {}: {at} is a symlink; not served (it could lead outside the volume)", s.name)),
            DirState::NotDirectory(at) => {
                problems.push(format!("share {}: {at} is not a directory; not served", s.name))
            }
        }
    }
    live.shares = ok;
    let (want_nfs, want_smb) = live.wants(&mounted);

    let exports = live.render_exports(&mounted);
    let exports_changed = write_if_changed(host, ConfigFile::Exports, &exports)?;
    let nfs_up = step("checking the NFS server", host.nfs_running())?;
    if want_nfs && !nfs_up {
        step("starting the NFS server", host.start_nfs())?;
        step("exportfs -ra", host.exportfs_reload())?;
        done.actions.push("NFS server started".into());
    } else if nfs_up && exports_changed {
        step("exportfs -ra", host.exportfs_reload())?;
        done.actions.push("NFS exports reloaded".into());
    }

    let conf = live.render_ksmbd_conf(hostname, &mounted);
    let conf_changed = write_if_changed(host, ConfigFile::KsmbdConf, &conf)?;
    let users_changed = write_if_changed(host, ConfigFile::KsmbdPasswords, &live.render_ksmbd_passwords())?;
    let smb_up = step("checking ksmbd", host.smb_running())?;
    if want_smb && !smb_up {
        step("starting ksmbd", host.start_smb())?;
        done.actions.push("SMB server started".into());
    } else if smb_up && (conf_changed || users_changed) {
        step("ksmbd.control --reload", host.smb_reload())?;
        done.actions.push("SMB configuration reloaded".into());
    }
    if problems.is_empty() { Ok(done) } else { Err(ApplyError::Shares(problems)) }
}

fn write_if_changed(host: &mut dyn ShareHost, file: ConfigFile, text: &str) -> Result<bool, ApplyError> {
    let name = file.path();
    if step(format!("reading {name}"), host.read_config(file))?.as_deref() == Some(text) {
        return Ok(false);
    }
    step(format!("writing {name}"), host.write_config(file, text))?;
    Ok(true)
}

/// The answer to a [`ShareCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Carried out; the text says what happened.
    Done(String),
    /// Refused or failed; the text says why and whether anything changed.
    Refused(String),
    /// The listing.
    View(SharesView),
}

/// Owns the shares record: validate, persist, then apply.
#[derive(Debug)]
pub struct ShareService<H> {
    store: Option<SlotStore>,
    shares: Shares,
    pub host: H,
    hostname: String,
    /// Whether to touch the system at all (false when the supervisor does
    /// not run the appliance: a development host keeps its /etc).
    live: bool,
    /// Data volumes mounted at the last apply (to notice new mounts).
    last_volumes: Option<Vec<String>>,
}

impl<H: ShareHost> ShareService<H> {
    /// Loads the record from `store` (none when the state disk is not
    /// usable: then nothing can be changed). Returns alerts for the admin.
    pub fn open(store: Option<SlotStore>, host: H, hostname: &str, live: bool) -> (Self, Vec<String>) {
        let mut alerts = Vec::new();
        let mut shares = Shares::default();
        if let Some(store) = &store {
            match store.load() {
                Ok(report) => {
                    if let Some(l) = report.newest {
                        match Shares::decode(l.version, &l.payload) {
                            Ok(s) => shares = s,
                            Err(e) => alerts.push(format!("shares record (generation {}): {e}", l.generation)),
                        }
                    }
                }
                Err(e) => alerts.push(format!("cannot read the shares record: {e}")),
            }
        }
        let service = ShareService { store, shares, host, hostname: hostname.to_string(), live, last_volumes: None };
        (service, alerts)
    }

    pub fn shares(&self) -> &Shares {
        &self.shares
    }

    /// Serves the current record; remembers which volumes were mounted.
    pub fn apply(&mut self) -> Result<Applied, ApplyError> {
        if !self.live {
            return Ok(Applied {
                actions: vec!["not applied: this supervisor does not run the appliance".into()],
                waiting: Vec::new(),
            });
        }
        self.last_volumes = self.host.data_volumes().ok();
        let r = apply(&mut self.host, &self.shares, &self.hostname);
        match &r {
            Ok(a) if !a.actions.is_empty() => info!("shares applied: {}", a.describe()),
            Ok(_) => {}
            Err(e) => log::warn!("shares not fully applied: {e}"),
        }
        r
    }

    /// Applies again when the set of mounted data volumes changed since
    /// the last apply (a group was assembled or stopped). Cheap: one read
    /// of /proc/self/mounts when nothing changed.
    pub fn poll(&mut self) -> Option<Result<Applied, ApplyError>> {
        if !self.live || self.shares.shares.is_empty() {
            return None;
        }
        let now = self.host.data_volumes().ok();
        if now.is_none() || now == self.last_volumes {
            return None;
        }
        Some(self.apply())
    }

    /// Carries out one command from the local API.
    pub fn run(&mut self, command: ShareCommand) -> Outcome {
        let refused = |e: ShareError| Outcome::Refused(format!("{e}; nothing changed"));
        let (next, done) = match command {
            ShareCommand::List => return Outcome::View(self.shares.view()),
            ShareCommand::Apply => {
                return match self.apply() {
                    Ok(a) => Outcome::Done(format!("shares applied: {}", a.describe())),
                    Err(e) => Outcome::Refused(format!("applying the shares failed: {e}")),
                };
            }
            ShareCommand::Create { name, pool, path, edit } => {
                let pool = match self.choose_pool(pool) {
                    Ok(p) => p,
                    Err(why) => return Outcome::Refused(format!("{why}; nothing changed")),
                };
                let next = match self.shares.create(&name, &pool, path.as_deref(), &edit) {
                    Ok(n) => n,
                    Err(e) => return refused(e),
                };
                let share = next.share(&name).cloned().expect("create added the share");
                if let Err(why) = self.check_dir(&share.pool, &share.path) {
                    return Outcome::Refused(format!("{why}; nothing changed"));
                }
                (next, format!("share {name} created at {}", share.dir()))
            }
            ShareCommand::Change { name, edit } => match self.shares.change(&name, &edit) {
                Ok(n) => (n, format!("share {name} changed")),
                Err(e) => return refused(e),
            },
            ShareCommand::Remove { name } => match self.shares.remove(&name) {
                Ok((n, gone)) => (
                    n,
                    format!(
                        "share {name} removed: no longer exported over NFS or SMB; its directory {} and the files in it are kept",
                        gone.dir()
                    ),
                ),
                Err(e) => return refused(e),
            },
            ShareCommand::SetUser { name, nt_hash, create } => match self.shares.set_user(&name, nt_hash, create) {
                Ok(n) => (n, if create { format!("user {name} added") } else { format!("password of {name} changed") }),
                Err(e) => return refused(e),
            },
            ShareCommand::RemoveUser { name } => match self.shares.remove_user(&name) {
                Ok(n) => (n, format!("user {name} removed")),
                Err(e) => return refused(e),
            },
            ShareCommand::SetGroup { name, members } => match self.shares.set_group(&name, &members) {
                Ok(n) => (n, format!("group {name}: {}", n_members(&members))),
                Err(e) => return refused(e),
            },
            ShareCommand::RemoveGroup { name } => match self.shares.remove_group(&name) {
                Ok(n) => (n, format!("group {name} removed")),
                Err(e) => return refused(e),
            },
        };
        if let Err(why) = self.save(&next) {
            return Outcome::Refused(format!("not saved, nothing changed: {why}"));
        }
        self.shares = next;
        info!("{done}");
        match self.apply() {
            Ok(a) => Outcome::Done(format!("{done}; {}", a.describe())),
            Err(e) => Outcome::Refused(format!(
                "{done} and saved, but serving it failed: {e}; fix that and run `opie share apply`"
            )),
        }
    }

    fn save(&self, next: &Shares) -> Result<(), String> {
        let store = self.store.as_ref().ok_or("the state disk is not usable")?;
        let payload = next.encode().map_err(|e| e.to_string())?;
        store.store(SHARES_VERSION, &payload).map(drop).map_err(|e| e.to_string())
    }

    fn choose_pool(&mut self, pool: Option<String>) -> Result<String, String> {
        if !self.live {
            return pool.ok_or_else(|| "name the data volume with --pool (not running the appliance)".to_string());
        }
        let mounted = self.host.data_volumes().map_err(|e| format!("cannot list data volumes: {e}"))?;
        match pool {
            Some(p) if mounted.contains(&p) => Ok(p),
            Some(p) => Err(format!(
                "{p} is not a mounted Opie data volume (mounted: {})",
                if mounted.is_empty() { "none".to_string() } else { mounted.join(", ") }
            )),
            None => match mounted.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err("no data volume is mounted: create or assemble a group first (opie storage)".into()),
                many => Err(format!("several data volumes are mounted; name one with --pool: {}", many.join(", "))),
            },
        }
    }

    fn check_dir(&mut self, pool: &str, path: &str) -> Result<(), String> {
        if !self.live {
            return Ok(());
        }
        match self.host.dir_state(pool, path).map_err(|e| e.to_string())? {
            DirState::Missing | DirState::Directory => Ok(()),
            DirState::Symlink(at) => Err(format!("{at} is a symlink: a share must not lead outside its data volume")),
            DirState::NotDirectory(at) => Err(format!("{at} exists and is not a directory")),
        }
    }
}

fn n_members(members: &[String]) -> String {
    if members.is_empty() { "no members".into() } else { members.join(", ") }
}

// ---- the real system ---------------------------------------------------

/// Serves shares on the appliance.
#[derive(Debug, Clone)]
pub struct RealShareHost {
    pub timeout: Duration,
}

impl Default for RealShareHost {
    fn default() -> Self {
        RealShareHost { timeout: Duration::from_secs(30) }
    }
}

/// The nfsd control filesystem.
const NFSD_FS: &str = "/proc/fs/nfsd";

fn io_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> HostError {
    let path = path.as_ref().display().to_string();
    move |source| HostError::Io { path, source }
}

/// Whether a process with this command name (`/proc/PID/comm`) runs.
fn process_running(comm: &str) -> Result<bool, HostError> {
    for entry in fs::read_dir("/proc").map_err(io_err("/proc"))? {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may exit between read_dir and read: skip it.
        if fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim_end() == comm) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `rpc.nfsd` arguments: short lease and grace (fast failover), 8 threads.
pub fn nfsd_args() -> Vec<String> {
    ["--lease-time", "10", "--grace-time", "10", "8"].iter().map(|s| s.to_string()).collect()
}

impl RealShareHost {
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), HostError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = run_with_timeout(tool, &args, self.timeout)?;
        if out.status != 0 {
            let mut command = tool.to_string();
            for a in &args {
                command.push(' ');
                command.push_str(a);
            }
            return Err(HostError::Failed { command, status: out.status, stderr: out.stderr });
        }
        Ok(())
    }
}

/// Writes `text` to `path` crash-safely: `path.tmp` (mode `mode`), fsync,
/// rename over `path`, fsync the directory. A crash leaves the old file or
/// the new one, plus at most a stray `.tmp` that the next write replaces.
pub fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), HostError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f =
        OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(io_err(&tmp))?;
    // The mode given at open only applies to a new file.
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|p| !p.is_empty())
}

impl ShareHost for RealShareHost {
    fn data_volumes(&mut self) -> Result<Vec<String>, HostError> {
        let text = fs::read_to_string("/proc/self/mounts").map_err(io_err("/proc/self/mounts"))?;
        let list =
            mounts::parse(&text).map_err(|source| HostError::Parse { command: "/proc/self/mounts".into(), source })?;
        Ok(shares::data_volume_mounts(&list))
    }

    fn dir_state(&mut self, pool: &str, path: &str) -> Result<DirState, HostError> {
        let mut at = PathBuf::from(pool);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Ok(DirState::Symlink(pool.to_string())),
            Ok(m) if !m.is_dir() => return Ok(DirState::NotDirectory(pool.to_string())),
            Ok(_) => {}
            Err(e) => return Err(io_err(&at)(e)),
        }
        for part in components(path) {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Ok(DirState::Symlink(at.display().to_string())),
                Ok(m) if !m.is_dir() => return Ok(DirState::NotDirectory(at.display().to_string())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DirState::Missing),
                Err(e) => return Err(io_err(&at)(e)),
            }
        }
        Ok(DirState::Directory)
    }

    fn make_dir(&mut self, pool: &str, path: &str) -> Result<(), HostError> {
        let mut at = PathBuf::from(pool);
        for part in components(path) {
            at.push(part);
            match fs::DirBuilder::new().mode(SHARE_DIR_MODE).create(&at) {
                Ok(()) => {
                    std::os::unix::fs::lchown(&at, Some(SHARE_OWNER.0), Some(SHARE_OWNER.1)).map_err(io_err(&at))?;
                    // After chown (which clears setgid): the mode including
                    // setgid, past the umask.
                    fs::set_permissions(&at, fs::Permissions::from_mode(SHARE_DIR_MODE)).map_err(io_err(&at))?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let m = fs::symlink_metadata(&at).map_err(io_err(&at))?;
                    if m.file_type().is_symlink() || !m.is_dir() {
                        return Err(io_err(&at)(io::Error::other("appeared as a symlink or file; not followed")));
                    }
                }
                Err(e) => return Err(io_err(&at)(e)),
            }
        }
        Ok(())
    }

    fn read_config(&mut self, file: ConfigFile) -> Result<Option<String>, HostError> {
        let path = file.path();
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path)(e)),
        }
    }

    fn write_config(&mut self, file: ConfigFile, text: &str) -> Result<(), HostError> {
        let mode = if file == ConfigFile::KsmbdPasswords { 0o600 } else { 0o644 };
        write_atomic(Path::new(file.path()), text, mode)
    }

    fn nfs_running(&mut self) -> Result<bool, HostError> {
        match fs::read_to_string(format!("{NFSD_FS}/threads")) {
            Ok(t) => Ok(t.trim().parse::<u32>().unwrap_or(0) > 0),
            Err(_) => Ok(false),
        }
    }

    fn start_nfs(&mut self) -> Result<(), HostError> {
        self.run("modprobe", &["nfsd"])?;
        if !Path::new(NFSD_FS).join("threads").exists() {
            self.run("mount", &["-t", "nfsd", "nfsd", NFSD_FS])?;
        }
        // rpcbind before mountd: mountd registers the v3 MOUNT service.
        if !process_running("rpcbind")? {
            fs::create_dir_all("/run/rpcbind").map_err(io_err("/run/rpcbind"))?;
            self.run("rpcbind", &["-w"])?;
        }
        fs::create_dir_all("/var/lib/nfs").map_err(io_err("/var/lib/nfs"))?;
        if !process_running("rpc.mountd")? {
            self.run("rpc.mountd", &[])?;
        }
        let args = nfsd_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("rpc.nfsd", &args)
    }

    fn exportfs_reload(&mut self) -> Result<(), HostError> {
        self.run("exportfs", &["-ra"])
    }

    fn smb_running(&mut self) -> Result<bool, HostError> {
        process_running("ksmbd.mountd")
    }

    fn start_smb(&mut self) -> Result<(), HostError> {
        self.run("modprobe", &["ksmbd"])?;
        self.run("ksmbd.mountd", &[])
    }

    fn smb_reload(&mut self) -> Result<(), HostError> {
        self.run("ksmbd.control", &["--reload"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sub/ksmbdpwd.db");
        write_atomic(&p, "a:1\n", 0o600).expect("write");
        write_atomic(&p, "b:2\n", 0o600).expect("rewrite");
        assert_eq!(fs::read_to_string(&p).expect("read"), "b:2\n");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        assert!(!dir.path().join("sub/ksmbdpwd.db.tmp").exists());
    }

    #[test]
    fn dir_state_refuses_symlinks_on_the_way_and_make_dir_never_follows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = dir.path().join("pool");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&pool).expect("pool");
        fs::create_dir_all(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, pool.join("link")).expect("symlink");
        fs::write(pool.join("file"), "x").expect("file");
        let p = pool.to_str().expect("utf-8");
        let mut h = RealShareHost::default();
        assert_eq!(h.dir_state(p, "docs").expect("state"), DirState::Missing);
        assert_eq!(h.dir_state(p, "link/docs").expect("state"), DirState::Symlink(format!("{p}/link")));
        assert_eq!(h.dir_state(p, "link").expect("state"), DirState::Symlink(format!("{p}/link")));
        assert_eq!(h.dir_state(p, "file/x").expect("state"), DirState::NotDirectory(format!("{p}/file")));
        assert!(h.make_dir(p, "link/docs").is_err());
        assert!(!outside.join("docs").exists(), "nothing made through the symlink");
        // Not root in every test environment: chown to nobody may fail; a
        // directory made by root is checked in the QEMU test.
        if h.make_dir(p, "a/b").is_ok() {
            assert_eq!(h.dir_state(p, "a/b").expect("state"), DirState::Directory);
            let mode = fs::metadata(pool.join("a/b")).expect("meta").permissions().mode() & 0o7777;
            assert_eq!(mode, SHARE_DIR_MODE);
        }
    }

    #[test]
    fn nfsd_gets_short_lease_and_grace() {
        assert_eq!(nfsd_args().join(" "), "--lease-time 10 --grace-time 10 8");
    }
}
