//! File shares, local SMB users and groups (DESIGN §7, issue 6 "Shares"):
//! the definitions, their validation and the text of the files the kernel
//! NFS server and ksmbd read.
//!
//! Owns: [`Shares`] (the one record the head persists: shares, users,
//! groups, the next NFS fsid), every check an administrator's change must
//! pass ([`ShareError`], one variant per cause), and the renderers
//! [`Shares::render_exports`], [`Shares::render_ksmbd_conf`] and
//! [`Shares::render_ksmbd_passwords`]. Leaves to `opie_sys::shares`
//! everything that touches the system: whether a data volume is mounted,
//! creating share directories (and refusing symlinks on the way), writing
//! the files, starting nfsd/ksmbd and reloading them.
//!
//! A share is a directory `POOL/PATH` where POOL is the mount point of a
//! group's data volume (`/srv/<group>`) and PATH is relative, made of plain
//! name components (no `..`, no `.`, no empty parts), by default the share's
//! name. Symlinks are checked where they live, on the filesystem, before
//! anything is saved.
//!
//! Passwords are never stored: a user record holds the NT hash
//! (MD4 of the UTF-16LE password) because that is what ksmbd's user
//! database (`ksmbdpwd.db(5)`: `name:base64(nt_hash)`) holds, so the head
//! can rebuild that file at every boot. [`User`]'s `Debug` hides the hash.
//!
//! Persistence: postcard in an `opie_sys::slots` record of kind
//! [`SHARES_MAGIC`]; enum variants and struct fields are positional, so
//! only append and bump [`SHARES_VERSION`] when a layout changes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Kind tag of the shares record on the state disk.
pub const SHARES_MAGIC: [u8; 8] = *b"OPIESHR\0";
/// Layout version of [`Shares`].
pub const SHARES_VERSION: u16 = 1;
/// Share names: ksmbd share names are at most 64 bytes; we keep them short
/// enough for a path component and a console column.
pub const SHARE_NAME_MAX: usize = 32;
/// ksmbd.adduser: user names are [1, 48) bytes; POSIX tools like 32.
pub const USER_NAME_MAX: usize = 32;
/// ksmbd: passwords are at most 128 bytes of UTF-8.
pub const PASSWORD_MAX: usize = 128;
/// Most shares, users, groups, clients per share: bounds what one record
/// (and one rendered file) can hold.
pub const MAX_ITEMS: usize = 256;
/// The uid/gid NFS maps a client's root to (root_squash) and the user all
/// SMB access is forced to, so files written over either protocol can be
/// read and changed over the other: `nobody:nogroup`.
pub const SHARE_OWNER: (u32, u32) = (65534, 65534);
/// Mode of a new share directory: group-writable, setgid so new entries
/// keep the directory's group; POSIX default ACLs set later are kept.
pub const SHARE_DIR_MODE: u32 = 0o2775;

/// Read-only or read-write, per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        }
    }
}

/// An IPv4 client network for NFS, `a.b.c.d/len` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Network {
    pub addr: [u8; 4],
    pub prefix: u8,
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.addr;
        write!(f, "{a}.{b}.{c}.{d}/{}", self.prefix)
    }
}

impl FromStr for Network {
    type Err = ShareError;

    /// `a.b.c.d/len`, or a bare address meaning one host (`/32`).
    fn from_str(s: &str) -> Result<Self, ShareError> {
        let bad = |why: &str| ShareError::BadNetwork { network: s.to_string(), why: why.to_string() };
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, len)) => {
                let len: u8 = len.parse().map_err(|_| bad("the prefix length must be a number 0-32"))?;
                (ip, len)
            }
            None => (s, 32),
        };
        if prefix > 32 {
            return Err(bad("the prefix length must be 0-32"));
        }
        let parts: Vec<&str> = ip.split('.').collect();
        if parts.len() != 4 {
            return Err(bad("expected an IPv4 network like 192.168.1.0/24"));
        }
        let mut addr = [0u8; 4];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("expected an IPv4 network like 192.168.1.0/24"));
            }
            addr[i] = p.parse().map_err(|_| bad("each address part must be 0-255"))?;
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        let value = u32::from_be_bytes(addr);
        if value & !mask != 0 {
            let net = Network { addr: (value & mask).to_be_bytes(), prefix };
            return Err(bad(&format!("host bits are set; the network is {net}")));
        }
        Ok(Network { addr, prefix })
    }
}

/// NFS export settings of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nfs {
    /// Who may mount; at least one network.
    pub clients: Vec<Network>,
    pub access: Access,
}

/// SMB settings of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smb {
    pub access: Access,
    /// Who may connect: user names and `@group` names of [`Shares`];
    /// empty means every local user.
    pub users: Vec<String>,
}

/// One share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub name: String,
    /// Mount point of the data volume the share lives on (`/srv/g1`).
    pub pool: String,
    /// The share's directory relative to `pool` (plain components).
    pub path: String,
    /// NFS `fsid=`: assigned once at creation, never reused, so clients'
    /// file handles survive restarts and failover.
    pub fsid: u32,
    pub nfs: Option<Nfs>,
    pub smb: Option<Smb>,
}

impl Share {
    /// The share's directory.
    pub fn dir(&self) -> String {
        format!("{}/{}", self.pool.trim_end_matches('/'), self.path)
    }
}

/// MD4 of a UTF-16LE password: what ksmbd authenticates against. A
/// secret: its `Debug` shows nothing of it, so it never reaches a log.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtHash(pub [u8; 16]);

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NtHash(<hidden>)")
    }
}

/// A local user (for SMB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub nt_hash: NtHash,
}

/// A local group: a name for a list of users in a share's valid users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
}

/// Everything the head serves: the persisted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shares {
    pub shares: Vec<Share>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// The fsid the next new share gets (fsid 0 is NFSv4's root: never used).
    pub next_fsid: u32,
}

impl Default for Shares {
    fn default() -> Self {
        Shares { shares: Vec::new(), users: Vec::new(), groups: Vec::new(), next_fsid: 1 }
    }
}

/// Changes to a share's protocols; `None` leaves a setting as it is. Used
/// for `share create` (on a share with both protocols off) and `change`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareEdit {
    /// Turn NFS on for these networks (replacing the list).
    pub nfs_clients: Option<Vec<Network>>,
    /// Turn NFS off.
    pub nfs_off: bool,
    pub nfs_access: Option<Access>,
    /// Turn SMB on (`Some(true)`) or off (`Some(false)`).
    pub smb: Option<bool>,
    pub smb_access: Option<Access>,
    /// Replace SMB's valid users (names or `@group`).
    pub smb_users: Option<Vec<String>>,
}

/// What the local API asks of the share manager (`Request::Shares`).
/// Positional like every API enum: only append variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareCommand {
    /// Shares, user names and groups.
    List,
    /// A new share on `pool` (default: the one mounted data volume) in
    /// directory `path` (default: the share's name).
    Create {
        name: String,
        pool: Option<String>,
        path: Option<String>,
        edit: ShareEdit,
    },
    Change {
        name: String,
        edit: ShareEdit,
    },
    /// Stop serving a share; its directory and files stay.
    Remove {
        name: String,
    },
    /// Add a user (`create`) or change a user's password.
    SetUser {
        name: String,
        nt_hash: NtHash,
        create: bool,
    },
    RemoveUser {
        name: String,
    },
    /// Create a group or replace its members.
    SetGroup {
        name: String,
        members: Vec<String>,
    },
    RemoveGroup {
        name: String,
    },
    /// Serve what the record says now (after a data volume was mounted,
    /// or after fixing what made an earlier apply fail).
    Apply,
}

/// A listing for clients: no password hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharesView {
    pub shares: Vec<Share>,
    pub users: Vec<String>,
    pub groups: Vec<Group>,
}

/// Why a change to the shares is refused. Nothing is changed when one of
/// these is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShareError {
    /// A share, user or group name breaks the naming rules.
    #[error("{what} name {name:?} is not allowed: {why}")]
    BadName { what: &'static str, name: String, why: &'static str },
    /// The name is taken.
    #[error("{what} {name:?} already exists")]
    Duplicate { what: &'static str, name: String },
    /// No such share, user or group.
    #[error("no {what} named {name:?}")]
    Unknown { what: &'static str, name: String },
    /// Two shares would use the same directory, or one inside another.
    #[error("share {name:?} would use {dir}, which overlaps share {other:?} ({other_dir})")]
    Overlap { name: String, dir: String, other: String, other_dir: String },
    /// A share path that leaves its pool or is not a plain relative path.
    #[error("path {path:?} is not allowed: {why}")]
    BadPath { path: String, why: &'static str },
    /// A pool that is not an absolute plain path.
    #[error("data volume path {pool:?} is not allowed: {why}")]
    BadPool { pool: String, why: &'static str },
    /// A client network that does not parse.
    #[error("client network {network:?}: {why}")]
    BadNetwork { network: String, why: String },
    /// NFS on with no client networks.
    #[error("share {name:?}: NFS needs at least one client network (--nfs CIDR,...)")]
    NoClients { name: String },
    /// A valid user or group that does not exist.
    #[error("share {share:?}: {what} {name:?} does not exist (add it first)")]
    UnknownMember { share: String, what: &'static str, name: String },
    /// Removing a user or group a share (or group) still names.
    #[error("{what} {name:?} is still used by {user_of}; change that first")]
    InUse { what: &'static str, name: String, user_of: String },
    /// A password ksmbd cannot take.
    #[error("password is not allowed: {0}")]
    BadPassword(&'static str),
    /// A limit on how many items one record holds.
    #[error("at most {MAX_ITEMS} {0}")]
    TooMany(&'static str),
    /// All fsids used (never in practice: 4 billion shares).
    #[error("no NFS fsid left")]
    FsidsExhausted,
    /// The stored record does not decode.
    #[error("shares record unreadable: {0}")]
    Decode(String),
}

fn check_name(what: &'static str, name: &str, max: usize, lower_only: bool) -> Result<(), ShareError> {
    let bad = |why| Err(ShareError::BadName { what, name: name.to_string(), why });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > max {
        return bad("longer than 32 characters");
    }
    let first = name.as_bytes()[0];
    let first_ok = if lower_only { first.is_ascii_lowercase() || first == b'_' } else { first.is_ascii_alphanumeric() };
    if !first_ok {
        return bad(if lower_only { "start with a lowercase letter or '_'" } else { "start with a letter or digit" });
    }
    let ok = |b: u8| {
        if lower_only {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
        } else {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
        }
    };
    if !name.bytes().all(ok) {
        return bad(if lower_only {
            "use lowercase letters, digits, '_' and '-'"
        } else {
            "use letters, digits, '_' and '-'"
        });
    }
    // ksmbd reserves these section names.
    if !lower_only && ["global", "ipc$", "homes", "printers"].contains(&name.to_ascii_lowercase().as_str()) {
        return bad("it is reserved by SMB");
    }
    Ok(())
}

/// A share name: letters, digits, `_`, `-`, at most 32, not an SMB
/// reserved section name.
pub fn check_share_name(name: &str) -> Result<(), ShareError> {
    check_name("share", name, SHARE_NAME_MAX, false)
}

/// A user or group name: lowercase POSIX-style, at most 32.
pub fn check_user_name(what: &'static str, name: &str) -> Result<(), ShareError> {
    check_name(what, name, USER_NAME_MAX, true)
}

/// A share path relative to its pool: plain components only.
pub fn check_path(path: &str) -> Result<(), ShareError> {
    let bad = |why| Err(ShareError::BadPath { path: path.to_string(), why });
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.starts_with('/') {
        return bad("it must be relative to the data volume");
    }
    if path.len() > 255 {
        return bad("longer than 255 characters");
    }
    for part in path.split('/') {
        match part {
            "" => return bad("it has an empty component (//, or a trailing /)"),
            "." | ".." => return bad("'.' and '..' would leave the data volume"),
            _ => {}
        }
        if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return bad("use letters, digits, '_', '-' and '.' in each component");
        }
    }
    Ok(())
}

/// A pool: an absolute path of plain components.
pub fn check_pool(pool: &str) -> Result<(), ShareError> {
    let bad = |why| Err(ShareError::BadPool { pool: pool.to_string(), why });
    let Some(rest) = pool.strip_prefix('/') else { return bad("it must be absolute") };
    if rest.is_empty() {
        return bad("the root filesystem holds no shares");
    }
    for part in rest.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("it must be a plain path without '.', '..' or '//'");
        }
        if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            return bad("use letters, digits, '_', '-' and '.'");
        }
    }
    Ok(())
}

/// Checks a password ksmbd can take and returns its NT hash.
pub fn nt_hash(password: &str) -> Result<NtHash, ShareError> {
    if password.is_empty() {
        return Err(ShareError::BadPassword("it is empty"));
    }
    if password.len() > PASSWORD_MAX {
        return Err(ShareError::BadPassword("longer than 128 bytes"));
    }
    if password.contains(['\n', '\r', '\0']) {
        return Err(ShareError::BadPassword("it contains a line break or NUL"));
    }
    let utf16: Vec<u8> = password.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    Ok(NtHash(md4(&utf16)))
}

/// Mount points of mounted Opie data volumes (`opie_<group>/data`, ext4),
/// as `/proc/self/mounts` lists them (device-mapper names or LVM paths).
pub fn data_volume_mounts(mounts: &[crate::storage::mounts::Mount]) -> Vec<String> {
    let mut out: Vec<String> = mounts
        .iter()
        .filter(|m| m.fstype == "ext4")
        .filter(|m| {
            let lvm = m
                .source
                .strip_prefix("/dev/opie_")
                .and_then(|r| r.strip_suffix("/data"))
                .is_some_and(|g| !g.contains('/'));
            let mapper =
                m.source.strip_prefix("/dev/mapper/opie_").is_some_and(|r| r.ends_with("-data") && !r.contains('/'));
            lvm || mapper
        })
        .map(|m| m.target.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether directory `a` is `b` or lies inside it (or the other way round).
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    inside(a, b) || inside(b, a)
}

impl Shares {
    /// Decodes a stored record of `version`.
    pub fn decode(version: u16, payload: &[u8]) -> Result<Shares, ShareError> {
        if version != SHARES_VERSION {
            return Err(ShareError::Decode(format!("version {version}, this firmware reads {SHARES_VERSION}")));
        }
        let s: Shares = postcard::from_bytes(payload).map_err(|e| ShareError::Decode(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    pub fn encode(&self) -> Result<Vec<u8>, ShareError> {
        self.validate()?;
        postcard::to_allocvec(self).map_err(|e| ShareError::Decode(e.to_string()))
    }

    /// Every rule at once (on load and before every write).
    pub fn validate(&self) -> Result<(), ShareError> {
        if self.shares.len() > MAX_ITEMS {
            return Err(ShareError::TooMany("shares"));
        }
        if self.users.len() > MAX_ITEMS {
            return Err(ShareError::TooMany("users"));
        }
        if self.groups.len() > MAX_ITEMS {
            return Err(ShareError::TooMany("groups"));
        }
        let mut users = BTreeSet::new();
        for u in &self.users {
            check_user_name("user", &u.name)?;
            if !users.insert(u.name.as_str()) {
                return Err(ShareError::Duplicate { what: "user", name: u.name.clone() });
            }
        }
        let mut groups = BTreeSet::new();
        for g in &self.groups {
            check_user_name("group", &g.name)?;
            if !groups.insert(g.name.as_str()) {
                return Err(ShareError::Duplicate { what: "group", name: g.name.clone() });
            }
            if g.members.len() > MAX_ITEMS {
                return Err(ShareError::TooMany("members in a group"));
            }
            for m in &g.members {
                if !users.contains(m.as_str()) {
                    return Err(ShareError::UnknownMember {
                        share: format!("@{}", g.name),
                        what: "user",
                        name: m.clone(),
                    });
                }
            }
        }
        let mut names = BTreeSet::new();
        let mut fsids = BTreeSet::new();
        for (i, s) in self.shares.iter().enumerate() {
            check_share_name(&s.name)?;
            check_pool(&s.pool)?;
            check_path(&s.path)?;
            if !names.insert(s.name.to_ascii_lowercase()) {
                return Err(ShareError::Duplicate { what: "share", name: s.name.clone() });
            }
            if s.fsid == 0 || s.fsid >= self.next_fsid || !fsids.insert(s.fsid) {
                return Err(ShareError::Decode(format!("share {:?} has a bad or repeated fsid {}", s.name, s.fsid)));
            }
            for other in &self.shares[..i] {
                if overlaps(&s.dir(), &other.dir()) {
                    return Err(ShareError::Overlap {
                        name: s.name.clone(),
                        dir: s.dir(),
                        other: other.name.clone(),
                        other_dir: other.dir(),
                    });
                }
            }
            if let Some(nfs) = &s.nfs {
                if nfs.clients.is_empty() {
                    return Err(ShareError::NoClients { name: s.name.clone() });
                }
                if nfs.clients.len() > MAX_ITEMS {
                    return Err(ShareError::TooMany("client networks per share"));
                }
            }
            if let Some(smb) = &s.smb {
                if smb.users.len() > MAX_ITEMS {
                    return Err(ShareError::TooMany("valid users per share"));
                }
                for u in &smb.users {
                    let (what, name, known) = match u.strip_prefix('@') {
                        Some(g) => ("group", g, groups.contains(g)),
                        None => ("user", u.as_str(), users.contains(u.as_str())),
                    };
                    if !known {
                        return Err(ShareError::UnknownMember { share: s.name.clone(), what, name: name.to_string() });
                    }
                }
            }
        }
        Ok(())
    }

    pub fn share(&self, name: &str) -> Option<&Share> {
        self.shares.iter().find(|s| s.name == name)
    }

    /// Adds a share with both protocols off, then applies `edit`.
    /// `path` defaults to the share's name. Returns the new record; `self`
    /// is unchanged (the caller persists the result, then keeps it).
    pub fn create(&self, name: &str, pool: &str, path: Option<&str>, edit: &ShareEdit) -> Result<Shares, ShareError> {
        check_share_name(name)?;
        check_pool(pool)?;
        if self.shares.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
            return Err(ShareError::Duplicate { what: "share", name: name.to_string() });
        }
        let path = path.unwrap_or(name).trim_end_matches('/');
        check_path(path)?;
        let mut next = self.clone();
        let fsid = next.next_fsid;
        next.next_fsid = fsid.checked_add(1).ok_or(ShareError::FsidsExhausted)?;
        let mut share = Share {
            name: name.to_string(),
            pool: pool.to_string(),
            path: path.to_string(),
            fsid,
            nfs: None,
            smb: None,
        };
        apply_edit(&mut share, edit)?;
        next.shares.push(share);
        next.validate()?;
        Ok(next)
    }

    /// Changes a share's protocols.
    pub fn change(&self, name: &str, edit: &ShareEdit) -> Result<Shares, ShareError> {
        let mut next = self.clone();
        let share = next
            .shares
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| ShareError::Unknown { what: "share", name: name.to_string() })?;
        apply_edit(share, edit)?;
        next.validate()?;
        Ok(next)
    }

    /// Removes a share definition (never its directory).
    pub fn remove(&self, name: &str) -> Result<(Shares, Share), ShareError> {
        let mut next = self.clone();
        let i = next
            .shares
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ShareError::Unknown { what: "share", name: name.to_string() })?;
        let gone = next.shares.remove(i);
        Ok((next, gone))
    }

    /// Adds a user (`create`) or changes an existing user's password.
    pub fn set_user(&self, name: &str, nt_hash: NtHash, create: bool) -> Result<Shares, ShareError> {
        check_user_name("user", name)?;
        let mut next = self.clone();
        match (next.users.iter_mut().find(|u| u.name == name), create) {
            (Some(_), true) => return Err(ShareError::Duplicate { what: "user", name: name.to_string() }),
            (None, false) => return Err(ShareError::Unknown { what: "user", name: name.to_string() }),
            (Some(u), false) => u.nt_hash = nt_hash,
            (None, true) => next.users.push(User { name: name.to_string(), nt_hash }),
        }
        next.validate()?;
        Ok(next)
    }

    /// Removes a user that no share and no group names.
    pub fn remove_user(&self, name: &str) -> Result<Shares, ShareError> {
        if !self.users.iter().any(|u| u.name == name) {
            return Err(ShareError::Unknown { what: "user", name: name.to_string() });
        }
        let users_of: Vec<String> = self
            .shares
            .iter()
            .filter(|s| s.smb.as_ref().is_some_and(|smb| smb.users.iter().any(|u| u == name)))
            .map(|s| format!("share {}", s.name))
            .chain(
                self.groups.iter().filter(|g| g.members.iter().any(|m| m == name)).map(|g| format!("group {}", g.name)),
            )
            .collect();
        if !users_of.is_empty() {
            return Err(ShareError::InUse { what: "user", name: name.to_string(), user_of: users_of.join(", ") });
        }
        let mut next = self.clone();
        next.users.retain(|u| u.name != name);
        Ok(next)
    }

    /// Creates or replaces a group's member list.
    pub fn set_group(&self, name: &str, members: &[String]) -> Result<Shares, ShareError> {
        check_user_name("group", name)?;
        if self.users.iter().any(|u| u.name == name) {
            return Err(ShareError::Duplicate { what: "user (groups and users share names)", name: name.to_string() });
        }
        let mut next = self.clone();
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        match next.groups.iter_mut().find(|g| g.name == name) {
            Some(g) => g.members = members,
            None => next.groups.push(Group { name: name.to_string(), members }),
        }
        next.validate()?;
        Ok(next)
    }

    /// Removes a group no share names.
    pub fn remove_group(&self, name: &str) -> Result<Shares, ShareError> {
        if !self.groups.iter().any(|g| g.name == name) {
            return Err(ShareError::Unknown { what: "group", name: name.to_string() });
        }
        let at = format!("@{name}");
        let users_of: Vec<String> = self
            .shares
            .iter()
            .filter(|s| s.smb.as_ref().is_some_and(|smb| smb.users.contains(&at)))
            .map(|s| format!("share {}", s.name))
            .collect();
        if !users_of.is_empty() {
            return Err(ShareError::InUse { what: "group", name: name.to_string(), user_of: users_of.join(", ") });
        }
        let mut next = self.clone();
        next.groups.retain(|g| g.name != name);
        Ok(next)
    }

    /// What a client may see.
    pub fn view(&self) -> SharesView {
        SharesView {
            shares: self.shares.clone(),
            users: self.users.iter().map(|u| u.name.clone()).collect(),
            groups: self.groups.clone(),
        }
    }

    /// `/etc/exports` for the shares whose pool is in `mounted` (a share on
    /// a volume that is not mounted is not exported: its directory would be
    /// on the root filesystem).
    pub fn render_exports(&self, mounted: &[String]) -> String {
        let mut out = String::from("# Written by the Opie supervisor from its shares record; changes here are lost.\n");
        for s in self.shares.iter().filter(|s| mounted.contains(&s.pool)) {
            let Some(nfs) = &s.nfs else { continue };
            let access = match nfs.access {
                Access::ReadOnly => "ro",
                Access::ReadWrite => "rw",
            };
            out.push_str(&s.dir());
            for client in &nfs.clients {
                out.push_str(&format!(" {client}({access},sync,no_subtree_check,root_squash,fsid={})", s.fsid));
            }
            out.push('\n');
        }
        out
    }

    /// Users a share's valid-users entry stands for, groups expanded
    /// (ksmbd's `@group` means a system group, which these are not).
    fn valid_users(&self, smb: &Smb) -> Vec<String> {
        let mut users = BTreeSet::new();
        for u in &smb.users {
            match u.strip_prefix('@') {
                Some(g) => {
                    for group in self.groups.iter().filter(|x| x.name == g) {
                        users.extend(group.members.iter().cloned());
                    }
                }
                None => {
                    users.insert(u.clone());
                }
            }
        }
        users.into_iter().collect()
    }

    /// `/etc/ksmbd/ksmbd.conf` for the shares whose pool is in `mounted`.
    pub fn render_ksmbd_conf(&self, netbios_name: &str, mounted: &[String]) -> String {
        let mut out = String::from("; Written by the Opie supervisor from its shares record; changes here are lost.\n");
        out.push_str("[global]\n");
        out.push_str(&format!("\tnetbios name = {}\n", netbios(netbios_name)));
        out.push_str("\tserver min protocol = SMB2_10\n");
        out.push_str("\tmap to guest = never\n");
        out.push_str("\trestrict anonymous = 2\n");
        for s in self.shares.iter().filter(|s| mounted.contains(&s.pool)) {
            let Some(smb) = &s.smb else { continue };
            out.push_str(&format!("\n[{}]\n", s.name));
            out.push_str(&format!("\tpath = {}\n", s.dir()));
            out.push_str(&format!("\tread only = {}\n", if smb.access == Access::ReadOnly { "yes" } else { "no" }));
            out.push_str("\tguest ok = no\n");
            let users = self.valid_users(smb);
            if !smb.users.is_empty() {
                // A group with no members must still let nobody in.
                let list = if users.is_empty() { "@opie-nobody".to_string() } else { users.join(", ") };
                out.push_str(&format!("\tvalid users = {list}\n"));
            }
            out.push_str("\tforce user = nobody\n");
            out.push_str("\tforce group = nogroup\n");
            out.push_str("\tcreate mask = 0664\n");
            out.push_str("\tdirectory mask = 2775\n");
        }
        out
    }

    /// `/etc/ksmbd/ksmbdpwd.db`: `name:base64(nt_hash)` per user.
    pub fn render_ksmbd_passwords(&self) -> String {
        self.users.iter().map(|u| format!("{}:{}\n", u.name, base64(&u.nt_hash.0))).collect()
    }

    /// Whether any share on a mounted pool has NFS (SMB) on.
    pub fn wants(&self, mounted: &[String]) -> (bool, bool) {
        let live = || self.shares.iter().filter(|s| mounted.contains(&s.pool));
        (live().any(|s| s.nfs.is_some()), live().any(|s| s.smb.is_some()))
    }
}

/// A NetBIOS name from a host name: at most 15 characters, upper case.
fn netbios(host: &str) -> String {
    let mut n: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(15)
        .collect::<String>()
        .to_ascii_uppercase();
    if n.is_empty() {
        n = "OPIE".into();
    }
    n
}

fn apply_edit(share: &mut Share, edit: &ShareEdit) -> Result<(), ShareError> {
    if edit.nfs_off {
        if edit.nfs_clients.is_some() || edit.nfs_access.is_some() {
            return Err(ShareError::BadNetwork {
                network: "--no-nfs".into(),
                why: "cannot turn NFS off and set its clients or access at once".into(),
            });
        }
        share.nfs = None;
    }
    if let Some(clients) = &edit.nfs_clients {
        let mut clients = clients.clone();
        clients.sort();
        clients.dedup();
        let access = share.nfs.as_ref().map(|n| n.access).unwrap_or(Access::ReadWrite);
        share.nfs = Some(Nfs { clients, access });
    }
    if let Some(access) = edit.nfs_access {
        match &mut share.nfs {
            Some(n) => n.access = access,
            None => return Err(ShareError::NoClients { name: share.name.clone() }),
        }
    }
    match edit.smb {
        Some(false) => {
            if edit.smb_access.is_some() || edit.smb_users.is_some() {
                return Err(ShareError::BadName {
                    what: "option",
                    name: "--no-smb".into(),
                    why: "cannot turn SMB off and set its access or users at once",
                });
            }
            share.smb = None;
        }
        Some(true) if share.smb.is_none() => share.smb = Some(Smb { access: Access::ReadWrite, users: Vec::new() }),
        _ => {}
    }
    // Access or users given without --smb turn SMB on too: that is what
    // the administrator asked for.
    if edit.smb_access.is_some() || edit.smb_users.is_some() {
        let smb = share.smb.get_or_insert(Smb { access: Access::ReadWrite, users: Vec::new() });
        if let Some(a) = edit.smb_access {
            smb.access = a;
        }
        if let Some(users) = &edit.smb_users {
            let mut users = users.clone();
            users.sort();
            users.dedup();
            smb.users = users;
        }
    }
    Ok(())
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// MD4 (RFC 1320): only for NT password hashes, which is what SMB's NTLM
/// and ksmbd's user database use. Not a security choice of Opie's.
pub fn md4(input: &[u8]) -> [u8; 16] {
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
    let g = |x: u32, y: u32, z: u32| (x & y) | (x & z) | (y & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    for block in msg.chunks_exact(64) {
        let mut x = [0u32; 16];
        for (i, w) in x.iter_mut().enumerate() {
            *w = u32::from_le_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for &i in &[0usize, 4, 8, 12] {
            a = a.wrapping_add(f(b, c, d)).wrapping_add(x[i]).rotate_left(3);
            d = d.wrapping_add(f(a, b, c)).wrapping_add(x[i + 1]).rotate_left(7);
            c = c.wrapping_add(f(d, a, b)).wrapping_add(x[i + 2]).rotate_left(11);
            b = b.wrapping_add(f(c, d, a)).wrapping_add(x[i + 3]).rotate_left(19);
        }
        for &i in &[0usize, 1, 2, 3] {
            let k = 0x5a82_7999u32;
            a = a.wrapping_add(g(b, c, d)).wrapping_add(x[i]).wrapping_add(k).rotate_left(3);
            d = d.wrapping_add(g(a, b, c)).wrapping_add(x[i + 4]).wrapping_add(k).rotate_left(5);
            c = c.wrapping_add(g(d, a, b)).wrapping_add(x[i + 8]).wrapping_add(k).rotate_left(9);
            b = b.wrapping_add(g(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(k).rotate_left(13);
        }
        for &i in &[0usize, 2, 1, 3] {
            let k = 0x6ed9_eba1u32;
            a = a.wrapping_add(h(b, c, d)).wrapping_add(x[i]).wrapping_add(k).rotate_left(3);
            d = d.wrapping_add(h(a, b, c)).wrapping_add(x[i + 8]).wrapping_add(k).rotate_left(9);
            c = c.wrapping_add(h(d, a, b)).wrapping_add(x[i + 4]).wrapping_add(k).rotate_left(11);
            b = b.wrapping_add(h(c, d, a)).wrapping_add(x[i + 12]).wrapping_add(k).rotate_left(15);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn net(s: &str) -> Network {
        s.parse().expect("network")
    }

    #[test]
    fn md4_matches_rfc_1320_and_nt_hashes_match_known_values() {
        for (input, want) in [
            ("", "31d6cfe0d16ae931b73c59d7e0c089c0"),
            ("a", "bde52cb31de33e46245e05fbdbd6fb24"),
            ("abc", "a448017aaf21d8525fc10ae87aa6729d"),
            ("message digest", "d9130a8164549fe818874806e1c7014b"),
            ("abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "e33b4ddc9c38f2199c3e7b164fcc0536",
            ),
        ] {
            assert_eq!(hex(&md4(input.as_bytes())), want, "md4({input:?})");
        }
        // The NT hash of "password", as every NTLM reference lists it.
        assert_eq!(hex(&nt_hash("password").expect("hash").0), "8846f7eaee8fb117ad06bdd830b7586c");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(nt_hash(""), Err(ShareError::BadPassword("it is empty")));
        assert!(nt_hash(&"x".repeat(129)).is_err());
        assert!(nt_hash("a\nb").is_err());
    }

    #[test]
    fn data_volumes_are_found_in_mounts() {
        use crate::storage::mounts::parse;
        let text = "/dev/root / rootfs rw 0 0\n\
                    /dev/mapper/opie_g1-data /srv/g1 ext4 rw,relatime 0 0\n\
                    /dev/opie_g--2/data /srv/g-2 ext4 rw 0 0\n\
                    /dev/mapper/opie_g1-snap /mnt/snap ext4 ro 0 0\n\
                    /dev/mapper/other-data /srv/other ext4 rw 0 0\n\
                    /dev/mapper/opie_g3-data /srv/g3 xfs rw 0 0\n\
                    /dev/vda /var/lib/opie ext4 rw 0 0\n";
        let mounts = parse(text).expect("parse");
        assert_eq!(data_volume_mounts(&mounts), vec!["/srv/g-2".to_string(), "/srv/g1".to_string()]);
    }

    #[test]
    fn networks_parse_and_refuse_clearly() {
        assert_eq!(net("192.168.77.0/24"), Network { addr: [192, 168, 77, 0], prefix: 24 });
        assert_eq!(net("10.0.0.7").to_string(), "10.0.0.7/32");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        let err = "192.168.77.5/24".parse::<Network>().expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "client network \"192.168.77.5/24\": host bits are set; the network is 192.168.77.0/24"
        );
        for bad in [
            "",
            "1.2.3/24",
            "1.2.3.4/33",
            "1.2.3.256/32",
            "a.b.c.d/8",
            "1.2.3.4/x",
            "1.2.3.4.5/32",
            "::1/128",
            "+1.2.3.4",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?} accepted");
        }
    }

    fn edit_nfs(clients: &[&str]) -> ShareEdit {
        ShareEdit { nfs_clients: Some(clients.iter().map(|c| net(c)).collect()), ..ShareEdit::default() }
    }

    fn sample() -> Shares {
        let s = Shares::default()
            .set_user("alice", nt_hash("Secret-1").expect("hash"), true)
            .and_then(|s| s.set_user("bob", nt_hash("password").expect("hash"), true))
            .and_then(|s| s.set_group("staff", &["bob".into(), "alice".into()]))
            .expect("users");
        let docs =
            ShareEdit { smb: Some(true), smb_users: Some(vec!["alice".into()]), ..edit_nfs(&["192.168.77.0/24"]) };
        let s = s.create("docs", "/srv/g1", None, &docs).expect("docs");
        let pub_edit = ShareEdit {
            nfs_access: Some(Access::ReadOnly),
            smb_access: Some(Access::ReadOnly),
            smb_users: Some(vec!["@staff".into()]),
            ..edit_nfs(&["10.1.0.0/16", "192.168.77.0/24"])
        };
        let s = s.create("public", "/srv/g1", Some("archive/public"), &pub_edit).expect("public");
        s.create("scratch", "/srv/g2", None, &edit_nfs(&["192.168.77.10"])).expect("scratch")
    }

    #[test]
    fn exports_golden_text() {
        let s = sample();
        assert_eq!(
            s.render_exports(&["/srv/g1".into(), "/srv/g2".into()]),
            "# Written by the Opie supervisor from its shares record; changes here are lost.\n\
             /srv/g1/docs 192.168.77.0/24(rw,sync,no_subtree_check,root_squash,fsid=1)\n\
             /srv/g1/archive/public 10.1.0.0/16(ro,sync,no_subtree_check,root_squash,fsid=2) \
             192.168.77.0/24(ro,sync,no_subtree_check,root_squash,fsid=2)\n\
             /srv/g2/scratch 192.168.77.10/32(rw,sync,no_subtree_check,root_squash,fsid=3)\n"
        );
        // A volume that is not mounted: its shares are left out.
        assert_eq!(
            s.render_exports(&["/srv/g2".into()]),
            "# Written by the Opie supervisor from its shares record; changes here are lost.\n\
             /srv/g2/scratch 192.168.77.10/32(rw,sync,no_subtree_check,root_squash,fsid=3)\n"
        );
        assert_eq!(s.wants(&["/srv/g2".into()]), (true, false));
        assert_eq!(s.wants(&["/srv/g1".into()]), (true, true));
        assert_eq!(s.wants(&[]), (false, false));
    }

    #[test]
    fn ksmbd_conf_and_passwords_golden_text() {
        let s = sample();
        assert_eq!(
            s.render_ksmbd_conf("head1", &["/srv/g1".into(), "/srv/g2".into()]),
            "; Written by the Opie supervisor from its shares record; changes here are lost.\n\
             [global]\n\
             \tnetbios name = HEAD1\n\
             \tserver min protocol = SMB2_10\n\
             \tmap to guest = never\n\
             \trestrict anonymous = 2\n\
             \n\
             [docs]\n\
             \tpath = /srv/g1/docs\n\
             \tread only = no\n\
             \tguest ok = no\n\
             \tvalid users = alice\n\
             \tforce user = nobody\n\
             \tforce group = nogroup\n\
             \tcreate mask = 0664\n\
             \tdirectory mask = 2775\n\
             \n\
             [public]\n\
             \tpath = /srv/g1/archive/public\n\
             \tread only = yes\n\
             \tguest ok = no\n\
             \tvalid users = alice, bob\n\
             \tforce user = nobody\n\
             \tforce group = nogroup\n\
             \tcreate mask = 0664\n\
             \tdirectory mask = 2775\n"
        );
        assert_eq!(
            s.render_ksmbd_passwords(),
            format!("alice:{}\nbob:iEb36u6PsRetBr3YMLdYbA==\n", base64(&nt_hash("Secret-1").expect("hash").0))
        );
    }

    #[test]
    fn bad_input_is_refused_with_clear_errors_and_nothing_changes() {
        let s = sample();
        let before = s.clone();
        let e = ShareEdit::default();
        let msg = |r: Result<Shares, ShareError>| r.expect_err("refused").to_string();
        assert_eq!(msg(s.create("docs", "/srv/g1", Some("other"), &e)), "share \"docs\" already exists");
        assert_eq!(msg(s.create("DOCS", "/srv/g1", Some("other"), &e)), "share \"DOCS\" already exists");
        assert_eq!(
            msg(s.create("up", "/srv/g1", Some("../etc"), &e)),
            "path \"../etc\" is not allowed: '.' and '..' would leave the data volume"
        );
        assert!(msg(s.create("up", "/srv/g1", Some("a/../../b"), &e)).contains("'..'"));
        assert!(msg(s.create("abs", "/srv/g1", Some("/etc"), &e)).contains("relative"));
        assert!(msg(s.create("sp", "/srv/g1", Some("a b"), &e)).contains("use letters"));
        assert!(msg(s.create("bad name", "/srv/g1", None, &e)).starts_with("share name \"bad name\" is not allowed"));
        assert!(msg(s.create("-x", "/srv/g1", None, &e)).contains("start with a letter or digit"));
        assert!(msg(s.create("global", "/srv/g1", None, &e)).contains("reserved"));
        assert!(msg(s.create(&"a".repeat(33), "/srv/g1", None, &e)).contains("longer than 32"));
        assert!(msg(s.create("x", "/", None, &e)).contains("root filesystem"));
        assert!(msg(s.create("x", "srv/g1", None, &e)).contains("absolute"));
        assert!(msg(s.create("x", "/srv/../etc", None, &e)).contains("plain path"));
        assert_eq!(
            msg(s.create("inner", "/srv/g1", Some("docs/inner"), &e)),
            "share \"inner\" would use /srv/g1/docs/inner, which overlaps share \"docs\" (/srv/g1/docs)"
        );
        assert!(msg(s.create("outer", "/srv/g1", Some("archive"), &e)).contains("overlaps share \"public\""));
        assert_eq!(
            msg(s.create("n", "/srv/g1", None, &ShareEdit { nfs_clients: Some(vec![]), ..e.clone() })),
            "share \"n\": NFS needs at least one client network (--nfs CIDR,...)"
        );
        assert_eq!(
            msg(s.create("n", "/srv/g1", None, &ShareEdit { smb_users: Some(vec!["carol".into()]), ..e.clone() })),
            "share \"n\": user \"carol\" does not exist (add it first)"
        );
        assert!(
            msg(s.create("n", "/srv/g1", None, &ShareEdit { smb_users: Some(vec!["@nogroup".into()]), ..e.clone() }))
                .contains("group \"nogroup\" does not exist")
        );
        assert!(
            msg(s.change("docs", &ShareEdit { nfs_access: Some(Access::ReadOnly), nfs_off: true, ..e.clone() }))
                .contains("cannot turn NFS off")
        );
        assert_eq!(msg(s.change("nope", &e)), "no share named \"nope\"");
        assert_eq!(msg(s.set_user("alice", NtHash([0; 16]), true)), "user \"alice\" already exists");
        assert_eq!(msg(s.set_user("carol", NtHash([0; 16]), false)), "no user named \"carol\"");
        assert!(msg(s.set_user("Alice", NtHash([0; 16]), true)).contains("lowercase"));
        assert_eq!(
            msg(s.remove_user("alice")),
            "user \"alice\" is still used by share docs, group staff; change that first"
        );
        assert_eq!(msg(s.remove_group("staff")), "group \"staff\" is still used by share public; change that first");
        assert!(msg(s.set_group("crew", &["zed".into()])).contains("user \"zed\" does not exist"));
        assert!(s.remove("nope").is_err());
        assert_eq!(s, before, "refusals never change the record");
    }

    #[test]
    fn change_remove_and_fsids_stay_stable() {
        let s = sample();
        let s2 = s
            .change("docs", &ShareEdit { nfs_access: Some(Access::ReadOnly), smb: Some(false), ..ShareEdit::default() })
            .expect("change");
        let docs = s2.share("docs").expect("docs");
        assert_eq!(docs.nfs.as_ref().map(|n| n.access), Some(Access::ReadOnly));
        assert_eq!(docs.smb, None);
        assert_eq!(docs.fsid, 1);
        let (s3, gone) = s2.remove("docs").expect("remove");
        assert_eq!(gone.dir(), "/srv/g1/docs");
        // A new share never reuses a removed share's fsid.
        let s4 = s3.create("docs2", "/srv/g1", None, &edit_nfs(&["10.0.0.0/8"])).expect("create");
        assert_eq!(s4.share("docs2").map(|d| d.fsid), Some(4));
        assert_eq!(s4.share("public").map(|d| d.fsid), Some(2));
        let s5 = s4.remove_user("alice");
        assert!(s5.is_err(), "alice is still in group staff");
        let s6 = s4.set_group("staff", &["bob".into()]).and_then(|s| s.remove_user("alice")).expect("remove alice");
        assert_eq!(s6.view().users, vec!["bob".to_string()]);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        /// One administrator action, drawn from a small alphabet of names
        /// so that collisions (duplicates, overlaps, users in use) happen.
        #[derive(Debug, Clone)]
        enum Op {
            Create(usize, Option<usize>, ShareEdit),
            Change(usize, ShareEdit),
            Remove(usize),
            AddUser(usize),
            RemoveUser(usize),
            SetGroup(usize, Vec<usize>),
            RemoveGroup(usize),
        }

        const SHARE_NAMES: [&str; 4] = ["docs", "pub", "a", "b"];
        const PATHS: [&str; 5] = ["docs", "x/y", "x", "../up", "a//b"];
        const USERS: [&str; 3] = ["alice", "bob", "carol"];
        const GROUPS: [&str; 2] = ["staff", "bob"];

        fn edit() -> impl Strategy<Value = ShareEdit> {
            let nets = prop::option::of(prop::collection::vec((any::<[u8; 4]>(), 0u8..=32), 0..3));
            let users = prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["alice", "bob", "carol", "@staff", "@bob", "@none"]),
                0..3,
            ));
            let access = || prop::option::of(prop::sample::select(vec![Access::ReadOnly, Access::ReadWrite]));
            (nets, any::<bool>(), access(), prop::option::of(any::<bool>()), access(), users).prop_map(
                |(nets, nfs_off, nfs_access, smb, smb_access, users)| ShareEdit {
                    // Mask host bits: the parser refuses them, edits never hold them.
                    nfs_clients: nets.map(|v| {
                        v.into_iter()
                            .map(|(a, p)| {
                                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                                Network { addr: (u32::from_be_bytes(a) & mask).to_be_bytes(), prefix: p }
                            })
                            .collect()
                    }),
                    nfs_off,
                    nfs_access,
                    smb,
                    smb_access,
                    smb_users: users.map(|u| u.into_iter().map(String::from).collect()),
                },
            )
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..SHARE_NAMES.len(), prop::option::of(0..PATHS.len()), edit())
                    .prop_map(|(n, p, e)| Op::Create(n, p, e)),
                (0..SHARE_NAMES.len(), edit()).prop_map(|(n, e)| Op::Change(n, e)),
                (0..SHARE_NAMES.len()).prop_map(Op::Remove),
                (0..USERS.len()).prop_map(Op::AddUser),
                (0..USERS.len()).prop_map(Op::RemoveUser),
                (0..GROUPS.len(), prop::collection::vec(0..USERS.len(), 0..3)).prop_map(|(g, m)| Op::SetGroup(g, m)),
                (0..GROUPS.len()).prop_map(Op::RemoveGroup),
            ]
        }

        fn step(s: &Shares, op: &Op) -> Result<Shares, ShareError> {
            match op {
                Op::Create(n, p, e) => s.create(SHARE_NAMES[*n], "/srv/g1", p.map(|p| PATHS[p]), e),
                Op::Change(n, e) => s.change(SHARE_NAMES[*n], e),
                Op::Remove(n) => s.remove(SHARE_NAMES[*n]).map(|(next, _)| next),
                Op::AddUser(u) => s.set_user(USERS[*u], NtHash([*u as u8; 16]), true),
                Op::RemoveUser(u) => s.remove_user(USERS[*u]),
                Op::SetGroup(g, m) => {
                    s.set_group(GROUPS[*g], &m.iter().map(|u| USERS[*u].to_string()).collect::<Vec<_>>())
                }
                Op::RemoveGroup(g) => s.remove_group(GROUPS[*g]),
            }
        }

        proptest! {
            /// Whatever an administrator does: a refused action changes
            /// nothing, an accepted one leaves a record that validates,
            /// round-trips through its encoding, never reuses an fsid, and
            /// renders exactly one exports line per NFS share and one
            /// ksmbd section per SMB share, all inside the pool.
            #[test]
            fn every_action_keeps_the_record_valid(ops in prop::collection::vec(op(), 1..40)) {
                let mut s = Shares::default();
                let mut fsids_seen = BTreeSet::new();
                for op in &ops {
                    let before = s.clone();
                    match step(&s, op) {
                        Err(_) => prop_assert_eq!(&s, &before),
                        Ok(next) => {
                            prop_assert!(next.validate().is_ok());
                            prop_assert!(next.next_fsid >= s.next_fsid);
                            for sh in &next.shares {
                                if !s.shares.iter().any(|o| o.name == sh.name) {
                                    prop_assert!(fsids_seen.insert(sh.fsid), "fsid {} reused", sh.fsid);
                                }
                                prop_assert!(sh.dir().starts_with("/srv/g1/") && !sh.dir().contains(".."));
                            }
                            let bytes = next.encode().expect("valid record encodes");
                            prop_assert_eq!(&Shares::decode(SHARES_VERSION, &bytes).expect("decodes"), &next);
                            s = next;
                        }
                    }
                    let mounted = vec!["/srv/g1".to_string()];
                    let exports = s.render_exports(&mounted);
                    prop_assert_eq!(exports.lines().count() - 1, s.shares.iter().filter(|x| x.nfs.is_some()).count());
                    let conf = s.render_ksmbd_conf("head1", &mounted);
                    prop_assert_eq!(conf.matches("\n[").count() - 1, s.shares.iter().filter(|x| x.smb.is_some()).count());
                    prop_assert_eq!(s.render_ksmbd_passwords().lines().count(), s.users.len());
                }
            }

            /// Arbitrary bytes never panic the record decoder.
            #[test]
            fn arbitrary_records_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = Shares::decode(SHARES_VERSION, &bytes);
            }
        }
    }

    #[test]
    fn record_round_trips_and_hides_hashes_from_debug() {
        let s = sample();
        let bytes = s.encode().expect("encode");
        assert_eq!(Shares::decode(SHARES_VERSION, &bytes).expect("decode"), s);
        assert!(Shares::decode(SHARES_VERSION + 1, &bytes).is_err());
        for len in 0..bytes.len() {
            assert!(Shares::decode(SHARES_VERSION, &bytes[..len]).is_err(), "prefix {len} decoded");
        }
        let debug = format!("{s:?}");
        assert!(debug.contains("alice") && debug.contains("<hidden>"));
        let hash = nt_hash("Secret-1").expect("hash").0;
        assert!(!debug.contains(&format!("{:?}", hash)) && !debug.contains(&hex(&hash)));
        assert_eq!(format!("{:?}", NtHash(hash)), "NtHash(<hidden>)");
    }
}
