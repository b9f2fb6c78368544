//! The one way Opie runs the storage tools (DESIGN §13, issue 6 "External
//! tools"): mdadm, the LVM commands, mkfs.ext4, resize2fs, mount/umount,
//! exportfs, ksmbd.control and ksmbd.adduser, plus the two reads that go
//! with them (a device's size and its first bytes, `/proc/mounts`).
//!
//! [`Host`] is the trait the storage driver and the daemon use; every method
//! returns typed output (parsed by `opie_core::storage`) or a [`HostError`]
//! carrying the tool's exit status and stderr. [`RealHost`] runs the real
//! programs with `std::process::Command`: stdin from /dev/null (mdadm and
//! LVM never prompt), stdout and stderr captured, a timeout per call after
//! which the process is killed. `opie_testkit::fake_host::FakeHost` models
//! the same calls in memory for unit tests.
//!
//! Commands are built by pure `*_args` functions so their exact argument
//! lists are unit-tested here without running anything.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use opie_core::storage::exportfs::{self, Export};
use opie_core::storage::lvm::{self, Lv, Pv, Vg};
use opie_core::storage::mdadm::{self, Detail, Examine};
use opie_core::storage::mdstat::{self, Mdstat};
use opie_core::storage::mounts::{self, Mount};
use opie_core::storage::probe::{self, PROBE_BYTES, Signature};
use opie_core::storage::{ParseError, plan::Step};
use thiserror::Error;

/// Why a host operation failed.
#[derive(Debug, Error)]
pub enum HostError {
    /// The program could not be started (not installed, not executable).
    #[error("{tool}: cannot run: {source}")]
    Spawn { tool: String, source: io::Error },
    /// The program ran and exited unsuccessfully; `stderr` is what it said.
    #[error("{command}: exit status {status}: {stderr}")]
    Failed { command: String, status: i32, stderr: String },
    /// The program was killed by a signal.
    #[error("{command}: killed by signal {signal}: {stderr}")]
    Signalled { command: String, signal: i32, stderr: String },
    /// The program did not finish in time and was killed.
    #[error("{command}: no answer within {} s, killed", after.as_secs())]
    Timeout { command: String, after: Duration },
    /// It answered, but not in a form Opie can read.
    #[error("{command}: {source}")]
    Parse { command: String, source: ParseError },
    /// Reading a file or device failed.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

/// A change to one member of a running array (`mdadm --manage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// Mark the member faulty: md stops using it at once.
    Fail,
    /// Take a failed member out of the array.
    Remove,
    /// Put a member that left back; the write-intent bitmap resyncs only
    /// what changed while it was away.
    ReAdd,
    /// Add a new member (a spare): a full rebuild onto it.
    Add,
}

impl MemberAction {
    /// The mdadm option for this action.
    pub fn option(self) -> &'static str {
        match self {
            MemberAction::Fail => "--fail",
            MemberAction::Remove => "--remove",
            MemberAction::ReAdd => "--re-add",
            MemberAction::Add => "--add",
        }
    }
}

/// What a storage node's operating system offers Opie. One implementation
/// runs the real tools ([`RealHost`]); tests use a fake.
pub trait Host {
    /// `mdadm --examine --export DEV`; `None` when DEV has no md superblock.
    fn examine(&mut self, device: &str) -> Result<Option<Examine>, HostError>;
    /// `mdadm --detail --export MD`; `None` when the array does not run.
    fn detail(&mut self, md_device: &str) -> Result<Option<Detail>, HostError>;
    /// `/proc/mdstat`.
    fn mdstat(&mut self) -> Result<Mdstat, HostError>;
    /// `mdadm --create` (see [`create_args`]).
    fn create_array(
        &mut self,
        md_device: &str,
        name: &str,
        homehost: &str,
        members: &[String],
    ) -> Result<(), HostError>;
    /// `mdadm --assemble --run --uuid=UUID MD MEMBERS...` (an inactive,
    /// half-assembled MD is stopped first).
    fn assemble_array(&mut self, md_device: &str, uuid: &str, members: &[String]) -> Result<(), HostError>;
    /// `mdadm --stop MD`.
    fn stop_array(&mut self, md_device: &str) -> Result<(), HostError>;
    /// `mdadm --manage MD --fail|--remove|--re-add|--add DEV`.
    fn manage(&mut self, md_device: &str, action: MemberAction, device: &str) -> Result<(), HostError>;
    fn pvs(&mut self) -> Result<Vec<Pv>, HostError>;
    fn vgs(&mut self) -> Result<Vec<Vg>, HostError>;
    fn lvs(&mut self) -> Result<Vec<Lv>, HostError>;
    /// `pvcreate DEV` (no -y: LVM refuses a device with a signature).
    fn pvcreate(&mut self, device: &str) -> Result<(), HostError>;
    fn vgcreate(&mut self, vg: &str, pv: &str) -> Result<(), HostError>;
    /// `lvcreate -y -Wy -Zy -n LV -l EXTENTS VG`.
    fn lvcreate(&mut self, vg: &str, lv: &str, extents: u64) -> Result<(), HostError>;
    /// `vgchange -ay VG` or `-an`.
    fn vgchange(&mut self, vg: &str, active: bool) -> Result<(), HostError>;
    /// `mkfs.ext4 -q -O 64bit,has_journal -L LABEL DEV` (no -F: mke2fs
    /// refuses what it recognises).
    fn mkfs_ext4(&mut self, device: &str, label: &str) -> Result<(), HostError>;
    /// `resize2fs DEV` (grow to the device, online when mounted).
    fn resize2fs(&mut self, device: &str) -> Result<(), HostError>;
    /// Makes TARGET if missing, then `mount -t FSTYPE -o OPTIONS DEV TARGET`.
    fn mount(&mut self, device: &str, target: &str, fstype: &str, options: &[String]) -> Result<(), HostError>;
    fn umount(&mut self, target: &str) -> Result<(), HostError>;
    /// `/proc/self/mounts`.
    fn mounts(&mut self) -> Result<Vec<Mount>, HostError>;
    /// A block device's size in bytes.
    fn device_size(&mut self, device: &str) -> Result<u64, HostError>;
    /// Signatures in the device's first [`PROBE_BYTES`].
    fn probe(&mut self, device: &str) -> Result<Vec<Signature>, HostError>;
    /// `exportfs -v`.
    fn exports(&mut self) -> Result<Vec<Export>, HostError>;
    /// `exportfs -o OPTIONS CLIENT:PATH`; PATH must be a directory.
    fn export(&mut self, client: &str, path: &str, options: &[String]) -> Result<(), HostError>;
    /// `exportfs -u CLIENT:PATH`.
    fn unexport(&mut self, client: &str, path: &str) -> Result<(), HostError>;
    /// `ksmbd.adduser -a USER -p PASSWORD` (`-u` when the user exists).
    fn ksmbd_set_user(&mut self, user: &str, password: &str, exists: bool) -> Result<(), HostError>;
    /// `ksmbd.adduser -d USER`.
    fn ksmbd_delete_user(&mut self, user: &str) -> Result<(), HostError>;
    /// `ksmbd.control --reload`: ksmbd.mountd re-reads its config and users.
    fn ksmbd_reload(&mut self) -> Result<(), HostError>;

    /// Runs one planner step.
    fn run_step(&mut self, step: &Step) -> Result<(), HostError> {
        match step {
            Step::CreateArray { md_device, members, name, homehost, .. } => {
                self.create_array(md_device, name, homehost, members)
            }
            Step::AssembleArray { md_device, uuid, members, .. } => self.assemble_array(md_device, uuid, members),
            Step::CreatePv { device } => self.pvcreate(device),
            Step::CreateVg { vg, pv } => self.vgcreate(vg, pv),
            Step::CreateLv { vg, lv, extents, .. } => self.lvcreate(vg, lv, *extents),
            Step::ActivateVg { vg } => self.vgchange(vg, true),
            Step::MakeFs { device, label } => self.mkfs_ext4(device, label),
            Step::Mount { device, target, options } => self.mount(device, target, "ext4", options),
        }
    }
}

// ---- argument lists (pure) ------------------------------------------------

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `mdadm --create` for a new RAID5 group.
pub fn create_args(md_device: &str, name: &str, homehost: &str, members: &[String]) -> Vec<String> {
    let mut a = strings(&["--create", md_device, "--level=5"]);
    a.push(format!("--raid-devices={}", members.len()));
    a.extend(strings(&["--bitmap=internal", "--metadata=1.2", "--run"]));
    a.push(format!("--name={name}"));
    a.push(format!("--homehost={homehost}"));
    a.extend(members.iter().cloned());
    a
}

pub fn assemble_args(md_device: &str, uuid: &str, members: &[String]) -> Vec<String> {
    let mut a = strings(&["--assemble", md_device, "--run"]);
    a.push(format!("--uuid={uuid}"));
    a.extend(members.iter().cloned());
    a
}

/// `pvs`/`vgs`/`lvs` with Opie's report options and `fields`.
pub fn report_args(fields: &str) -> Vec<String> {
    let mut a = strings(&lvm::REPORT_OPTIONS);
    a.push(lvm::NO_SUFFIX.to_string());
    a.push("-o".to_string());
    a.push(fields.to_string());
    a
}

pub fn lvcreate_args(vg: &str, lv: &str, extents: u64) -> Vec<String> {
    strings(&["-y", "-Wy", "-Zy", "-n", lv, "-l", &extents.to_string(), vg])
}

pub fn mkfs_args(device: &str, label: &str) -> Vec<String> {
    strings(&["-q", "-O", "64bit,has_journal", "-L", label, device])
}

pub fn mount_args(device: &str, target: &str, fstype: &str, options: &[String]) -> Vec<String> {
    let mut a = strings(&["-t", fstype]);
    if !options.is_empty() {
        a.push("-o".to_string());
        a.push(options.join(","));
    }
    a.push(device.to_string());
    a.push(target.to_string());
    a
}

pub fn export_args(client: &str, path: &str, options: &[String]) -> Vec<String> {
    let mut a = Vec::new();
    if !options.is_empty() {
        a.push("-o".to_string());
        a.push(options.join(","));
    }
    a.push(format!("{client}:{path}"));
    a
}

// ---- the real host ---------------------------------------------------------

/// Kernel modules the storage stack needs (RAID5 personality, LVM's
/// device-mapper).
pub const MODULES: [&str; 2] = ["raid456", "dm-mod"];

/// Output of a finished program.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real tools. Stateless: every call starts a process.
#[derive(Debug, Clone)]
pub struct RealHost {
    /// For quick queries (examine, reports, mount).
    pub short_timeout: Duration,
    /// For mdadm --create/--assemble, mkfs and resize2fs.
    pub long_timeout: Duration,
}

impl Default for RealHost {
    fn default() -> Self {
        RealHost { short_timeout: Duration::from_secs(30), long_timeout: Duration::from_secs(300) }
    }
}

fn command_line(tool: &str, args: &[String]) -> String {
    let mut s = tool.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '|' || c == '"') {
            s.push('\'');
            s.push_str(a);
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error ends the capture; what was read so far is kept.
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `tool args...` with stdin from /dev/null and a timeout; returns its
/// output whatever the exit status (callers decide what is a failure).
pub fn run_with_timeout(tool: &str, args: &[String], timeout: Duration) -> Result<Output, HostError> {
    let command = command_line(tool, args);
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // LVM complains on stderr about every inherited descriptor.
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .spawn()
        .map_err(|source| HostError::Spawn { tool: tool.to_string(), source })?;
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Kill and reap; the readers end when the pipes close.
                let _ = child.kill();
                let _ = child.wait();
                let _ = (out.join(), err.join());
                return Err(HostError::Timeout { command, after: timeout });
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(source) => return Err(HostError::Spawn { tool: tool.to_string(), source }),
        }
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).trim_end().to_string();
    match status.code() {
        Some(code) => Ok(Output { status: code, stdout, stderr }),
        None => {
            use std::os::unix::process::ExitStatusExt;
            Err(HostError::Signalled { command, signal: status.signal().unwrap_or(0), stderr })
        }
    }
}

impl RealHost {
    fn run(&self, tool: &str, args: &[String], timeout: Duration) -> Result<String, HostError> {
        let out = run_with_timeout(tool, args, timeout)?;
        if out.status != 0 {
            return Err(HostError::Failed {
                command: command_line(tool, args),
                status: out.status,
                stderr: out.stderr,
            });
        }
        Ok(out.stdout)
    }

    fn quick(&self, tool: &str, args: &[String]) -> Result<String, HostError> {
        self.run(tool, args, self.short_timeout)
    }

    fn slow(&self, tool: &str, args: &[String]) -> Result<String, HostError> {
        self.run(tool, args, self.long_timeout)
    }

    /// Before the first array: mdadm's run directory, the RAID5 personality
    /// and device-mapper for LVM (modules on Debian's kernel; modprobe
    /// succeeds at once for built-ins and loaded modules).
    fn prepare_md(&self) -> Result<(), HostError> {
        std::fs::create_dir_all("/run/mdadm").map_err(|source| HostError::Io { path: "/run/mdadm".into(), source })?;
        for module in MODULES {
            self.quick("modprobe", &strings(&[module]))?;
        }
        Ok(())
    }

    fn report<T>(&self, tool: &str, fields: &str, parse: fn(&str) -> Result<T, ParseError>) -> Result<T, HostError> {
        let args = report_args(fields);
        let text = self.quick(tool, &args)?;
        parse(&text).map_err(|source| HostError::Parse { command: command_line(tool, &args), source })
    }
}

fn parsed<T>(command: &str, r: Result<T, ParseError>) -> Result<T, HostError> {
    r.map_err(|source| HostError::Parse { command: command.to_string(), source })
}

impl Host for RealHost {
    fn examine(&mut self, device: &str) -> Result<Option<Examine>, HostError> {
        let args = strings(&["--examine", "--export", device]);
        let out = run_with_timeout("mdadm", &args, self.short_timeout)?;
        // mdadm 4.4: no superblock is exit 1 with empty stdout and
        // "No md superblock detected" on stderr (testdata examine-blank).
        if out.status != 0 {
            if out.stdout.trim().is_empty() && out.stderr.contains("No md superblock detected") {
                return Ok(None);
            }
            return Err(HostError::Failed {
                command: command_line("mdadm", &args),
                status: out.status,
                stderr: out.stderr,
            });
        }
        parsed(&command_line("mdadm", &args), mdadm::parse_examine(&out.stdout)).map(Some)
    }

    fn detail(&mut self, md_device: &str) -> Result<Option<Detail>, HostError> {
        // mdadm removes a stopped array's node itself (no udev), and an
        // inactive node has no array: both mean "not running".
        let name = md_device.strip_prefix("/dev/").unwrap_or(md_device);
        let stat = self.mdstat()?;
        match stat.array(name) {
            Some(a) if a.active => {}
            _ => return Ok(None),
        }
        let args = strings(&["--detail", "--export", md_device]);
        let text = self.quick("mdadm", &args)?;
        parsed(&command_line("mdadm", &args), mdadm::parse_detail(&text)).map(Some)
    }

    fn mdstat(&mut self) -> Result<Mdstat, HostError> {
        // The file appears when the md module loads; before that (a head
        // just booted, Debian's md is a module) no array runs.
        let text = match std::fs::read_to_string("/proc/mdstat") {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Mdstat::default()),
            Err(source) => return Err(HostError::Io { path: "/proc/mdstat".into(), source }),
        };
        parsed("/proc/mdstat", mdstat::parse(&text))
    }

    fn create_array(
        &mut self,
        md_device: &str,
        name: &str,
        homehost: &str,
        members: &[String],
    ) -> Result<(), HostError> {
        self.prepare_md()?;
        self.slow("mdadm", &create_args(md_device, name, homehost, members)).map(drop)
    }

    fn assemble_array(&mut self, md_device: &str, uuid: &str, members: &[String]) -> Result<(), HostError> {
        self.prepare_md()?;
        // An earlier assembly that stopped half-way leaves the node
        // inactive and holding some members: release it first, or mdadm
        // refuses with "already in use".
        let name = md_device.strip_prefix("/dev/").unwrap_or(md_device);
        if self.mdstat()?.array(name).is_some_and(|a| !a.active) {
            self.stop_array(md_device)?;
        }
        self.slow("mdadm", &assemble_args(md_device, uuid, members)).map(drop)
    }

    fn stop_array(&mut self, md_device: &str) -> Result<(), HostError> {
        self.quick("mdadm", &strings(&["--stop", md_device])).map(drop)
    }

    fn manage(&mut self, md_device: &str, action: MemberAction, device: &str) -> Result<(), HostError> {
        self.quick("mdadm", &strings(&["--manage", md_device, action.option(), device])).map(drop)
    }

    fn pvs(&mut self) -> Result<Vec<Pv>, HostError> {
        self.report("pvs", lvm::PVS_FIELDS, lvm::parse_pvs)
    }

    fn vgs(&mut self) -> Result<Vec<Vg>, HostError> {
        self.report("vgs", lvm::VGS_FIELDS, lvm::parse_vgs)
    }

    fn lvs(&mut self) -> Result<Vec<Lv>, HostError> {
        self.report("lvs", lvm::LVS_FIELDS, lvm::parse_lvs)
    }

    fn pvcreate(&mut self, device: &str) -> Result<(), HostError> {
        self.quick("pvcreate", &strings(&[device])).map(drop)
    }

    fn vgcreate(&mut self, vg: &str, pv: &str) -> Result<(), HostError> {
        self.quick("vgcreate", &strings(&[vg, pv])).map(drop)
    }

    fn lvcreate(&mut self, vg: &str, lv: &str, extents: u64) -> Result<(), HostError> {
        self.quick("lvcreate", &lvcreate_args(vg, lv, extents)).map(drop)
    }

    fn vgchange(&mut self, vg: &str, active: bool) -> Result<(), HostError> {
        self.quick("vgchange", &strings(&[if active { "-ay" } else { "-an" }, vg])).map(drop)
    }

    fn mkfs_ext4(&mut self, device: &str, label: &str) -> Result<(), HostError> {
        self.slow("mkfs.ext4", &mkfs_args(device, label)).map(drop)
    }

    fn resize2fs(&mut self, device: &str) -> Result<(), HostError> {
        self.slow("resize2fs", &strings(&[device])).map(drop)
    }

    fn mount(&mut self, device: &str, target: &str, fstype: &str, options: &[String]) -> Result<(), HostError> {
        std::fs::create_dir_all(target).map_err(|source| HostError::Io { path: target.into(), source })?;
        // Journal replay after a crash happens inside mount: give it time.
        self.slow("mount", &mount_args(device, target, fstype, options)).map(drop)
    }

    fn umount(&mut self, target: &str) -> Result<(), HostError> {
        self.quick("umount", &strings(&[target])).map(drop)
    }

    fn mounts(&mut self) -> Result<Vec<Mount>, HostError> {
        let text = std::fs::read_to_string("/proc/self/mounts")
            .map_err(|source| HostError::Io { path: "/proc/self/mounts".into(), source })?;
        parsed("/proc/self/mounts", mounts::parse(&text))
    }

    fn device_size(&mut self, device: &str) -> Result<u64, HostError> {
        block_device_size(Path::new(device))
    }

    fn probe(&mut self, device: &str) -> Result<Vec<Signature>, HostError> {
        let head = read_head(Path::new(device), PROBE_BYTES)?;
        Ok(probe::probe(&head))
    }

    fn exports(&mut self) -> Result<Vec<Export>, HostError> {
        let text = self.quick("exportfs", &strings(&["-v"]))?;
        parsed("exportfs -v", exportfs::parse(&text))
    }

    fn export(&mut self, client: &str, path: &str, options: &[String]) -> Result<(), HostError> {
        // exportfs 2.8 keeps an entry whose directory it cannot stat in its
        // table (and exits 1): refuse before it runs, so a failed export
        // leaves nothing behind.
        if !Path::new(path).is_dir() {
            return Err(HostError::Io { path: path.to_string(), source: io::Error::other("not a directory") });
        }
        self.quick("exportfs", &export_args(client, path, options)).map(drop)
    }

    fn unexport(&mut self, client: &str, path: &str) -> Result<(), HostError> {
        self.quick("exportfs", &[String::from("-u"), format!("{client}:{path}")]).map(drop)
    }

    fn ksmbd_set_user(&mut self, user: &str, password: &str, exists: bool) -> Result<(), HostError> {
        let flag = if exists { "-u" } else { "-a" };
        self.quick("ksmbd.adduser", &strings(&[flag, user, "-p", password])).map(drop)
    }

    fn ksmbd_delete_user(&mut self, user: &str) -> Result<(), HostError> {
        self.quick("ksmbd.adduser", &strings(&["-d", user])).map(drop)
    }

    fn ksmbd_reload(&mut self) -> Result<(), HostError> {
        self.quick("ksmbd.control", &strings(&["--reload"])).map(drop)
    }
}

/// Size of a block device (or regular file) in bytes: seek to its end.
pub fn block_device_size(path: &Path) -> Result<u64, HostError> {
    use std::io::{Seek, SeekFrom};
    let io_err = |source| HostError::Io { path: path.display().to_string(), source };
    let mut f = File::open(path).map_err(io_err)?;
    f.seek(SeekFrom::End(0)).map_err(io_err)
}

/// Up to `len` bytes from the start of a device (less when it is smaller).
pub fn read_head(path: &Path, len: usize) -> Result<Vec<u8>, HostError> {
    let io_err = |source| HostError::Io { path: path.display().to_string(), source };
    let f = File::open(path).map_err(io_err)?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf).map_err(io_err)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_command_is_the_documented_one() {
        let members = strings(&["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        assert_eq!(
            command_line("mdadm", &create_args("/dev/md0", "g1", "lab", &members)),
            "mdadm --create /dev/md0 --level=5 --raid-devices=3 --bitmap=internal --metadata=1.2 --run \
             --name=g1 --homehost=lab /dev/vdb /dev/vdc /dev/vdd"
        );
        assert_eq!(
            command_line("mdadm", &assemble_args("/dev/md0", "u:v", &members[..2])),
            "mdadm --assemble /dev/md0 --run --uuid=u:v /dev/vdb /dev/vdc"
        );
        assert_eq!(
            command_line("lvcreate", &lvcreate_args("opie_g1", "data", 18)),
            "lvcreate -y -Wy -Zy -n data -l 18 opie_g1"
        );
        assert_eq!(
            command_line("mkfs.ext4", &mkfs_args("/dev/opie_g1/data", "g1")),
            "mkfs.ext4 -q -O 64bit,has_journal -L g1 /dev/opie_g1/data"
        );
        assert_eq!(
            command_line(
                "mount",
                &mount_args("/dev/opie_g1/data", "/srv/g1", "ext4", &strings(&["acl", "user_xattr"]))
            ),
            "mount -t ext4 -o acl,user_xattr /dev/opie_g1/data /srv/g1"
        );
        assert_eq!(
            command_line("lvs", &report_args(lvm::LVS_FIELDS)),
            "lvs --config 'log {command_names=0 prefix=\"\"}' --noheadings --separator '|' --units b --nosuffix \
             -o lv_name,vg_name,lv_path,lv_size,lv_attr,origin"
        );
        assert_eq!(
            export_args("10.0.0.0/8", "/srv/g1/a", &strings(&["rw", "sync"])),
            strings(&["-o", "rw,sync", "10.0.0.0/8:/srv/g1/a"])
        );
    }

    #[test]
    fn a_failing_tool_reports_status_and_stderr() {
        let err =
            RealHost::default().quick("sh", &strings(&["-c", "echo out; echo broken >&2; exit 3"])).expect_err("fails");
        match err {
            HostError::Failed { command, status, stderr } => {
                assert_eq!(
                    (command.as_str(), status, stderr.as_str()),
                    ("sh -c 'echo out; echo broken >&2; exit 3'", 3, "broken")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(RealHost::default().quick("/nonexistent/tool", &[]), Err(HostError::Spawn { .. })));
    }

    #[test]
    fn a_hung_tool_is_killed_at_its_timeout() {
        let t = Instant::now();
        let err = run_with_timeout("sleep", &strings(&["30"]), Duration::from_millis(200)).expect_err("times out");
        assert!(matches!(err, HostError::Timeout { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let out = run_with_timeout("sh", &strings(&["-c", "head -c 200000 /dev/zero; cat"]), Duration::from_secs(10))
            .expect("runs");
        // Big output does not deadlock the pipe; stdin is /dev/null so `cat` ends.
        assert_eq!((out.status, out.stdout.len()), (0, 200000));
    }

    #[test]
    fn device_size_and_head_of_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("disk");
        let f = File::create(&p).expect("create");
        f.set_len(3 * 1024 * 1024).expect("size");
        assert_eq!(block_device_size(&p).expect("size"), 3 * 1024 * 1024);
        assert_eq!(read_head(&p, PROBE_BYTES).expect("head").len(), PROBE_BYTES);
        let mut h = RealHost::default();
        assert_eq!(h.probe(p.to_str().expect("utf-8")).expect("probe"), []);
        assert!(matches!(h.device_size("/nonexistent/disk"), Err(HostError::Io { .. })));
    }
}
