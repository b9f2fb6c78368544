//! Node-wide settings held by the kernel: the hostname.

use std::io;

use thiserror::Error;

/// Errors changing kernel-held settings.
#[derive(Debug, Error)]
pub enum SystemError {
    /// sethostname(2) failed (EPERM when not root, EINVAL when too long).
    #[error("sethostname {name:?}: {source}")]
    Hostname { name: String, source: io::Error },
}

/// Sets the kernel's hostname (what syslog lines and the shell show).
pub fn set_hostname(name: &str) -> Result<(), SystemError> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive
    // the call; the kernel copies them and does not need a NUL terminator.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(SystemError::Hostname { name: name.to_string(), source: io::Error::last_os_error() });
    }
    Ok(())
}

/// Ignores SIGINT and SIGQUIT in this process (a console that Ctrl-C must
/// not kill). Ignored dispositions survive exec: start children that want
/// Ctrl-C back (a shell) through [`default_interrupts`].
pub fn ignore_interrupt_signals() {
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: SIG_IGN is a valid disposition for these signals and no
        // Rust state depends on their handlers.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
}

/// Makes `command`'s process start with SIGINT and SIGQUIT at their
/// default dispositions, whatever this process does with them (a shell
/// started from the console must be interruptible, and a POSIX shell keeps
/// signals it inherits as ignored).
pub fn default_interrupts(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe functions may be called; it calls only signal(2),
    // which is, allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}

/// A stable identity for this box: the firmware's (DMI) product serial
/// when the vendor set one, else the MAC address of `iface`, else `None`.
pub fn hardware_serial(iface: &str) -> Option<String> {
    let dmi = std::fs::read_to_string("/sys/class/dmi/id/product_serial").unwrap_or_default();
    let dmi = dmi.trim();
    let placeholder = ["", "0", "None", "Not Specified", "To be filled by O.E.M.", "Default string"];
    if !placeholder.contains(&dmi) && dmi.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(dmi.to_string());
    }
    let mac = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let mac: String = mac.trim().chars().filter(|c| *c != ':').collect();
    (mac.len() == 12 && mac != "000000000000").then(|| format!("MAC-{}", mac.to_uppercase()))
}

/// A whole disk the node may export: its device path and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDisk {
    pub device: std::path::PathBuf,
    pub size: u64,
}

/// The node's data disks: every whole virtio, SCSI/SATA or NVMe disk with
/// a size, except the one holding the state device (DESIGN §9: data disks
/// hold only RAID data; the state disk is the boot flash).
pub fn data_disks(state_device: Option<&str>) -> Vec<DataDisk> {
    let state = state_device.and_then(|d| d.rsplit('/').next()).unwrap_or("");
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    let mut disks: Vec<DataDisk> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| ["vd", "sd", "xvd", "nvme"].iter().any(|p| name.starts_with(p)))
        .filter(|name| state.is_empty() || !state.starts_with(name.as_str()))
        .filter_map(|name| {
            let sectors: u64 = std::fs::read_to_string(format!("/sys/block/{name}/size")).ok()?.trim().parse().ok()?;
            (sectors > 0).then(|| DataDisk { device: format!("/dev/{name}").into(), size: sectors * 512 })
        })
        .collect();
    disks.sort_by(|a, b| a.device.cmp(&b.device));
    disks
}

/// Writes a secret (a key) to `path` readable by its owner only: created
/// with mode 0600 before any byte is written, replaced atomically.
pub fn write_secret(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn children_get_interrupts_back() {
        // As the console does; harmless for the rest of this test binary.
        ignore_interrupt_signals();
        let script = "kill -INT $$; echo survived";
        let inherited = Command::new("sh").args(["-c", script]).output().expect("run sh");
        assert_eq!(String::from_utf8_lossy(&inherited.stdout).trim(), "survived");
        let reset = default_interrupts(Command::new("sh").args(["-c", script])).output().expect("run sh");
        assert_eq!(reset.status.signal(), Some(libc::SIGINT), "{reset:?}");
        assert!(reset.stdout.is_empty());
    }
}
