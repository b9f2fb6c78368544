//! The node's state disk: where config, keys, epoch and lease log live.
//!
//! Owns preparing the state device named by `opie.state=` (DESIGN §9): a
//! blank device (all zeros at the start, as a new flash part or a fresh
//! virtual disk) is formatted as ext4 labelled `opie-state`; a device with
//! an ext4 superblock is mounted as it is; anything else is refused, since
//! it may hold somebody's data.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// Bytes at the start of the device inspected to call it blank.
const BLANK_PROBE: usize = 1024 * 1024;
/// ext4 superblock magic at byte 1024 + 0x38.
const EXT_MAGIC_OFFSET: usize = 1024 + 0x38;
const EXT_MAGIC: [u8; 2] = [0x53, 0xEF];

/// Errors preparing the state disk.
#[derive(Debug, Error)]
pub enum StateDiskError {
    /// Reading the device or creating the mount point failed.
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    /// The device holds something that is neither blank nor ext4.
    #[error("state device {0} holds data that is not an Opie state filesystem; refusing to format it")]
    Foreign(PathBuf),
    /// mkfs.ext4 failed or could not be run.
    #[error("mkfs.ext4 on {path} failed: {detail}")]
    Mkfs { path: PathBuf, detail: String },
    /// mount(2) failed.
    #[error("mount {device} on {dir}: {source}")]
    Mount { device: PathBuf, dir: PathBuf, source: io::Error },
}

/// What preparing the disk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// It was already mounted there (the supervisor was respawned).
    AlreadyMounted,
    /// An existing state filesystem was mounted.
    Mounted,
    /// The device was blank: formatted, then mounted.
    Formatted,
}

/// What the first bytes of a device say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    Blank,
    Ext4,
    Foreign,
}

/// Classifies the start of a device (pure, for tests).
pub fn classify(head: &[u8]) -> Contents {
    if head.get(EXT_MAGIC_OFFSET..EXT_MAGIC_OFFSET + 2) == Some(&EXT_MAGIC[..]) {
        Contents::Ext4
    } else if head.iter().all(|&b| b == 0) {
        Contents::Blank
    } else {
        Contents::Foreign
    }
}

/// Formats `device` if blank and mounts it on `dir`.
pub fn prepare(device: &Path, dir: &Path) -> Result<Prepared, StateDiskError> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateDiskError::Io { op, path, source }
    };
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    if is_mount_point(dir).map_err(io("read mounts for", dir))? {
        return Ok(Prepared::AlreadyMounted);
    }
    let mut head = vec![0u8; BLANK_PROBE];
    let mut file = File::open(device).map_err(io("open", device))?;
    let n = read_up_to(&mut file, &mut head).map_err(io("read", device))?;
    head.truncate(n);
    let formatted = match classify(&head) {
        Contents::Ext4 => false,
        Contents::Foreign => return Err(StateDiskError::Foreign(device.to_path_buf())),
        Contents::Blank => {
            let out = Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "opie-state"])
                .arg(device)
                .output()
                .map_err(|e| StateDiskError::Mkfs { path: device.to_path_buf(), detail: e.to_string() })?;
            if !out.status.success() {
                let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
                return Err(StateDiskError::Mkfs { path: device.to_path_buf(), detail });
            }
            true
        }
    };
    mount_ext4(device, dir)?;
    Ok(if formatted { Prepared::Formatted } else { Prepared::Mounted })
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let dir = fs::canonicalize(dir)?;
    let mounts = fs::read_to_string("/proc/self/mounts")?;
    Ok(mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir.to_string_lossy().as_ref())))
}

fn mount_ext4(device: &Path, dir: &Path) -> Result<(), StateDiskError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let err = |source| StateDiskError::Mount { device: device.to_path_buf(), dir: dir.to_path_buf(), source };
    let nul = || err(io::Error::from(io::ErrorKind::InvalidInput));
    let src = CString::new(device.as_os_str().as_bytes()).map_err(|_| nul())?;
    let target = CString::new(dir.as_os_str().as_bytes()).map_err(|_| nul())?;
    let fstype = c"ext4";
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the
    // call; the data argument may be NULL for ext4.
    let rc = unsafe {
        libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), libc::MS_NOATIME | libc::MS_NODEV, std::ptr::null())
    };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_blank_ext4_and_foreign() {
        let mut head = vec![0u8; 4096];
        assert_eq!(classify(&head), Contents::Blank);
        head[EXT_MAGIC_OFFSET..EXT_MAGIC_OFFSET + 2].copy_from_slice(&EXT_MAGIC);
        assert_eq!(classify(&head), Contents::Ext4);
        let mut foreign = vec![0u8; 4096];
        foreign[510] = 0x55;
        foreign[511] = 0xAA;
        assert_eq!(classify(&foreign), Contents::Foreign);
        assert_eq!(classify(&[]), Contents::Blank);
    }

    #[test]
    fn foreign_device_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("disk.img");
        let mut data = vec![0u8; 64 * 1024];
        data[0..4].copy_from_slice(b"XFSB");
        fs::write(&dev, &data).expect("write");
        let err = prepare(&dev, &dir.path().join("mnt")).expect_err("foreign");
        assert!(matches!(err, StateDiskError::Foreign(_)), "{err}");
        assert_eq!(fs::read(&dev).expect("read"), data);
    }
}
