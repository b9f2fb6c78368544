//! A [`ShareHost`] in memory, for the share manager's tests (never for the
//! QEMU path).
//!
//! Models what `opie_sys::shares::RealShareHost` touches: mounted data
//! volumes, directories and symlinks under them, the three config files,
//! whether nfsd and ksmbd.mountd run. Every call that changes something is
//! appended to [`FakeShareHost::log`], so a test can prove a second apply
//! runs nothing. [`FakeShareHost::fail`] makes one named operation fail
//! with a given stderr; [`FakeShareHost::reboot`] loses what a reboot
//! loses (files in /etc, running servers, mounts) and keeps directories on
//! the data volumes.

use std::collections::{BTreeMap, BTreeSet};

use opie_sys::host::HostError;
use opie_sys::shares::{ConfigFile, DirState, ShareHost};

#[derive(Debug, Default)]
pub struct FakeShareHost {
    /// Mount points of mounted data volumes.
    pub mounted: Vec<String>,
    /// Existing directories (absolute paths).
    pub dirs: BTreeSet<String>,
    /// Symlinks (absolute paths) and regular files: both refused on the way.
    pub symlinks: BTreeSet<String>,
    pub files_not_dirs: BTreeSet<String>,
    pub files: BTreeMap<ConfigFile, String>,
    pub nfs_running: bool,
    pub smb_running: bool,
    /// State-changing calls, in order.
    pub log: Vec<String>,
    /// Operation name → stderr: that operation fails once.
    pub fail: BTreeMap<&'static str, String>,
}

impl FakeShareHost {
    /// A head with one data volume mounted at `pool`.
    pub fn with_pool(pool: &str) -> Self {
        let mut h = FakeShareHost::default();
        h.mount(pool);
        h
    }

    pub fn mount(&mut self, pool: &str) {
        self.mounted.push(pool.to_string());
        self.dirs.insert(pool.to_string());
    }

    /// Power cycle: /etc is rebuilt from the image, nothing runs, nothing
    /// is mounted; the data volumes' directories stay.
    pub fn reboot(&mut self) {
        self.files.clear();
        self.nfs_running = false;
        self.smb_running = false;
        self.mounted.clear();
        self.log.clear();
    }

    fn op(&mut self, name: &'static str, entry: String) -> Result<(), HostError> {
        if let Some(stderr) = self.fail.remove(name) {
            return Err(HostError::Failed { command: entry, status: 1, stderr });
        }
        self.log.push(entry);
        Ok(())
    }
}

fn join(pool: &str, path: &str) -> impl Iterator<Item = String> {
    let mut at = pool.trim_end_matches('/').to_string();
    path.split('/').filter(|p| !p.is_empty()).map(String::from).collect::<Vec<_>>().into_iter().map(move |p| {
        at = format!("{at}/{p}");
        at.clone()
    })
}

impl ShareHost for FakeShareHost {
    fn data_volumes(&mut self) -> Result<Vec<String>, HostError> {
        let mut v = self.mounted.clone();
        v.sort();
        Ok(v)
    }

    fn dir_state(&mut self, pool: &str, path: &str) -> Result<DirState, HostError> {
        for at in join(pool, path) {
            if self.symlinks.contains(&at) {
                return Ok(DirState::Symlink(at));
            }
            if self.files_not_dirs.contains(&at) {
                return Ok(DirState::NotDirectory(at));
            }
            if !self.dirs.contains(&at) {
                return Ok(DirState::Missing);
            }
        }
        Ok(DirState::Directory)
    }

    fn make_dir(&mut self, pool: &str, path: &str) -> Result<(), HostError> {
        for at in join(pool, path) {
            if self.symlinks.contains(&at) || self.files_not_dirs.contains(&at) {
                return Err(HostError::Io { path: at, source: std::io::Error::other("not a directory") });
            }
            if self.dirs.insert(at.clone()) {
                self.op("mkdir", format!("mkdir {at}"))?;
            }
        }
        Ok(())
    }

    fn read_config(&mut self, file: ConfigFile) -> Result<Option<String>, HostError> {
        Ok(self.files.get(&file).cloned())
    }

    fn write_config(&mut self, file: ConfigFile, text: &str) -> Result<(), HostError> {
        self.op("write", format!("write {}", file.path()))?;
        self.files.insert(file, text.to_string());
        Ok(())
    }

    fn nfs_running(&mut self) -> Result<bool, HostError> {
        Ok(self.nfs_running)
    }

    fn start_nfs(&mut self) -> Result<(), HostError> {
        self.op("start_nfs", "start nfs".into())?;
        self.nfs_running = true;
        Ok(())
    }

    fn exportfs_reload(&mut self) -> Result<(), HostError> {
        self.op("exportfs", "exportfs -ra".into())
    }

    fn smb_running(&mut self) -> Result<bool, HostError> {
        Ok(self.smb_running)
    }

    fn start_smb(&mut self) -> Result<(), HostError> {
        self.op("start_smb", "start ksmbd".into())?;
        self.smb_running = true;
        Ok(())
    }

    fn smb_reload(&mut self) -> Result<(), HostError> {
        self.op("smb_reload", "ksmbd.control --reload".into())
    }
}
