//! The names Opie gives a group's storage objects, and the rules for the
//! names an administrator chooses.
//!
//! A group "g1" of cluster "lab" is the md array named `lab:g1` (mdadm's
//! `homehost:name`, 32 bytes at most in a 1.2 superblock), the volume group
//! `opie_g1`, the data volume `opie_g1/data` and the ext4 label `g1`.

use std::fmt;

use thiserror::Error;

/// md 1.2 superblocks have a 32-byte name field. mdadm 4.4 (super1.c,
/// `init_super1`) stores "homehost:name" only when it is shorter than 32
/// bytes; otherwise it silently stores the bare name and the homehost (our
/// cluster) is lost. Opie's names always leave room for the prefix.
pub const MD_NAME_MAX: usize = 32;
pub const CLUSTER_NAME_MAX: usize = 14;
/// Also the ext4 label limit (16 bytes).
pub const GROUP_NAME_MAX: usize = 16;
const _: () = assert!(CLUSTER_NAME_MAX + 1 + GROUP_NAME_MAX < MD_NAME_MAX);
/// The data volume's name inside the group's VG.
pub const DATA_LV: &str = "data";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("{what} name is empty")]
    Empty { what: &'static str },
    #[error("{what} name {name:?} is longer than {max} characters")]
    TooLong { what: &'static str, name: String, max: usize },
    #[error("{what} name {name:?}: use letters, digits, '-' and '_', starting with a letter or digit")]
    BadCharacter { what: &'static str, name: String },
}

fn check(what: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.len() > max {
        return Err(NameError::TooLong { what, name: name.to_string(), max });
    }
    let ok_first = name.as_bytes()[0].is_ascii_alphanumeric();
    if !ok_first || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(NameError::BadCharacter { what, name: name.to_string() });
    }
    Ok(())
}

/// The cluster's name: the md homehost of every array Opie creates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn new(name: &str) -> Result<Self, NameError> {
        check("cluster", name, CLUSTER_NAME_MAX)?;
        Ok(ClusterName(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A RAID group's name (the md name, the VG's suffix, the ext4 label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    pub fn new(name: &str) -> Result<Self, NameError> {
        check("group", name, GROUP_NAME_MAX)?;
        Ok(GroupName(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The group's volume group.
    pub fn vg(&self) -> String {
        format!("opie_{}", self.0)
    }
    /// The data volume's device path (LVM makes it; no udev needed).
    pub fn lv_path(&self) -> String {
        format!("/dev/{}/{DATA_LV}", self.vg())
    }
    /// The same volume as device-mapper names it (`-` doubled inside names).
    pub fn mapper_path(&self) -> String {
        format!("/dev/mapper/{}-{DATA_LV}", self.vg().replace('-', "--"))
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names() {
        let g = GroupName::new("g-1").expect("valid");
        assert_eq!(g.vg(), "opie_g-1");
        assert_eq!(g.lv_path(), "/dev/opie_g-1/data");
        assert_eq!(g.mapper_path(), "/dev/mapper/opie_g--1-data");
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert_eq!(GroupName::new(""), Err(NameError::Empty { what: "group" }));
        assert!(matches!(GroupName::new("a23456789abcdefgh"), Err(NameError::TooLong { max: 16, .. })));
        assert!(matches!(GroupName::new("-x"), Err(NameError::BadCharacter { .. })));
        assert!(matches!(ClusterName::new("lab:1"), Err(NameError::BadCharacter { .. })));
        assert!(matches!(ClusterName::new("a/b"), Err(NameError::BadCharacter { .. })));
        assert!(ClusterName::new("lab").is_ok());
        assert!(ClusterName::new("abcdefghijklmn").is_ok());
        assert!(matches!(ClusterName::new("abcdefghijklmno"), Err(NameError::TooLong { max: 14, .. })));
    }
}
