//! `mdadm --examine --export DEV` and `mdadm --detail --export MD`.
//!
//! Both print `KEY=VALUE` lines (mdadm 4.4, captured in
//! `testdata/storage/examine-*.txt` and `detail-*.txt`):
//!
//! ```text
//! MD_LEVEL=raid5                              both
//! MD_DEVICES=3                                both: raid devices of the array
//! MD_METADATA=1.2                             detail
//! MD_NAME=lab:g1                              both: "<homehost>:<name>"
//! MD_ARRAY_SIZE=96.47MB                       examine (human units, unused)
//! MD_UUID=06c87d69:d6204c30:07ef9119:e0d9892f both: the array's UUID
//! MD_UPDATE_TIME=1795612400                   examine
//! MD_DEV_UUID=20ff5274:...                    examine: this member's UUID
//! MD_EVENTS=18                                examine: event counter
//! MD_DEVICE_dev_vdb_ROLE=0                    detail: role, or "spare"/"faulty"
//! MD_DEVICE_dev_vdb_DEV=/dev/vdb              detail: the member's path
//! ```
//!
//! A device without an md superblock makes `--examine --export` print
//! nothing on stdout and exit 1 ("No md superblock detected" on stderr):
//! the host turns that into `None` before parsing, so an empty output here
//! is an error. Unknown keys are ignored (newer mdadm adds some).

use std::collections::BTreeMap;

use super::{ParseError, number};

/// `KEY=VALUE` lines into a map; lines without `=` are an error.
fn key_values(tool: &'static str, text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                map.insert(k.to_string(), v.to_string());
            }
            _ => return Err(ParseError::BadLine { tool, line: i + 1, text: line.to_string() }),
        }
    }
    if map.is_empty() {
        return Err(ParseError::Empty { tool });
    }
    Ok(map)
}

fn take(tool: &'static str, map: &BTreeMap<String, String>, key: &'static str) -> Result<String, ParseError> {
    map.get(key).cloned().ok_or(ParseError::Missing { tool, key })
}

/// `MD_DEVICES`, the array's member count, as both reports give it.
fn raid_devices(tool: &'static str, map: &BTreeMap<String, String>) -> Result<u32, ParseError> {
    let value = take(tool, map, "MD_DEVICES")?;
    u32::try_from(number(tool, "MD_DEVICES", &value)?).map_err(|_| ParseError::BadNumber {
        tool,
        what: "MD_DEVICES",
        value,
    })
}

/// `MD_NAME` split at the first colon: mdadm stores "<homehost>:<name>".
/// Opie's homehost is the cluster name, its name the group name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdName {
    /// The homehost part; `None` when the superblock name has no colon
    /// (an array created without a homehost, never one of Opie's).
    pub homehost: Option<String>,
    pub name: String,
}

impl MdName {
    pub fn parse(raw: &str) -> MdName {
        match raw.split_once(':') {
            Some((h, n)) => MdName { homehost: Some(h.to_string()), name: n.to_string() },
            None => MdName { homehost: None, name: raw.to_string() },
        }
    }
}

impl std::fmt::Display for MdName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.homehost {
            Some(h) => write!(f, "{h}:{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One member's md superblock, as `--examine --export` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examine {
    /// "raid5", "raid1", "raid0", ...
    pub level: String,
    /// Number of raid devices in the array this member belongs to.
    pub raid_devices: u32,
    pub name: MdName,
    /// The array's UUID (the same on every member).
    pub array_uuid: String,
    /// This member's own UUID, when the metadata has one (1.x does).
    pub device_uuid: Option<String>,
    /// Event counter: members with a lower count are stale.
    pub events: Option<u64>,
}

/// Parses `mdadm --examine --export` stdout of a device that has a superblock.
pub fn parse_examine(text: &str) -> Result<Examine, ParseError> {
    const T: &str = "mdadm --examine --export";
    let map = key_values(T, text)?;
    let raid_devices = raid_devices(T, &map)?;
    Ok(Examine {
        level: take(T, &map, "MD_LEVEL")?,
        raid_devices,
        // Old 0.90 superblocks have no name: report it empty, never one of ours.
        name: MdName::parse(map.get("MD_NAME").map(String::as_str).unwrap_or("")),
        array_uuid: take(T, &map, "MD_UUID")?,
        device_uuid: map.get("MD_DEV_UUID").cloned(),
        events: map.get("MD_EVENTS").map(|v| number(T, "MD_EVENTS", v)).transpose()?,
    })
}

/// A member's place in a running array, from `MD_DEVICE_<dev>_ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRole {
    /// An active slot (0-based).
    Active(u32),
    Spare,
    Faulty,
    /// Something newer mdadm reports ("journal", ...), kept verbatim.
    Other(String),
}

/// One member of a running array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailMember {
    /// Its device path (`MD_DEVICE_*_DEV`).
    pub device: String,
    pub role: MemberRole,
}

/// A running (or inactive but present) array, as `--detail --export` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub level: String,
    pub raid_devices: u32,
    pub metadata: Option<String>,
    pub uuid: String,
    pub name: MdName,
    /// Members in role order (active slots first, then spares and faulty).
    pub members: Vec<DetailMember>,
}

impl Detail {
    /// Members holding an active slot.
    pub fn active_members(&self) -> impl Iterator<Item = &DetailMember> {
        self.members.iter().filter(|m| matches!(m.role, MemberRole::Active(_)))
    }
}

/// Parses `mdadm --detail --export MD` stdout.
pub fn parse_detail(text: &str) -> Result<Detail, ParseError> {
    const T: &str = "mdadm --detail --export";
    let map = key_values(T, text)?;
    let raid_devices = raid_devices(T, &map)?;
    // MD_DEVICE_<mangled>_ROLE / _DEV pairs; the mangled name is the key.
    let mut members = Vec::new();
    for (key, role) in &map {
        let Some(tag) = key.strip_prefix("MD_DEVICE_").and_then(|k| k.strip_suffix("_ROLE")) else {
            continue;
        };
        let dev_key = format!("MD_DEVICE_{tag}_DEV");
        let device = map.get(&dev_key).cloned().ok_or(ParseError::Missing { tool: T, key: "MD_DEVICE_*_DEV" })?;
        let role = match role.as_str() {
            "spare" => MemberRole::Spare,
            "faulty" => MemberRole::Faulty,
            r => match r.parse::<u32>() {
                Ok(n) => MemberRole::Active(n),
                Err(_) => MemberRole::Other(r.to_string()),
            },
        };
        members.push(DetailMember { device, role });
    }
    members.sort_by_key(|m| match m.role {
        MemberRole::Active(n) => (0, n),
        MemberRole::Spare => (1, 0),
        MemberRole::Faulty => (2, 0),
        MemberRole::Other(_) => (3, 0),
    });
    Ok(Detail {
        level: take(T, &map, "MD_LEVEL")?,
        raid_devices,
        metadata: map.get("MD_METADATA").cloned(),
        uuid: take(T, &map, "MD_UUID")?,
        name: MdName::parse(map.get("MD_NAME").map(String::as_str).unwrap_or("")),
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    #[test]
    fn examine_of_a_member_of_our_group() {
        let e = parse_examine(&testdata::text("examine-member.txt")).expect("parses");
        assert_eq!(e.level, "raid5");
        assert_eq!(e.raid_devices, 3);
        assert_eq!(e.name, MdName { homehost: Some("lab".into()), name: "g1".into() });
        assert_eq!(e.array_uuid, "06c87d69:d6204c30:07ef9119:e0d9892f");
        assert_eq!(e.device_uuid.as_deref(), Some("0f813bff:b1d06a36:c73e4704:5fb98eb0"));
        assert_eq!(e.events, Some(18));
    }

    #[test]
    fn examine_of_another_clusters_member() {
        let e = parse_examine(&testdata::text("examine-foreign.txt")).expect("parses");
        assert_eq!(e.level, "raid1");
        assert_eq!(e.raid_devices, 2);
        assert_eq!(e.name.to_string(), "elsewhere:other");
        assert_eq!(e.array_uuid, "7e355794:aa8f38fb:3ee5ddf0:57ca4405");
    }

    #[test]
    fn examine_of_a_blank_disk_is_empty_stdout_and_an_error() {
        assert_eq!(testdata::text("examine-blank.txt"), "");
        assert!(testdata::text("examine-blank.stderr").contains("No md superblock detected"));
        assert_eq!(parse_examine(""), Err(ParseError::Empty { tool: "mdadm --examine --export" }));
    }

    #[test]
    fn detail_of_a_clean_array_lists_members_in_slot_order() {
        let d = parse_detail(&testdata::text("detail-clean.txt")).expect("parses");
        assert_eq!(d.level, "raid5");
        assert_eq!(d.raid_devices, 3);
        assert_eq!(d.metadata.as_deref(), Some("1.2"));
        assert_eq!(d.name.to_string(), "lab:g1");
        let devs: Vec<_> = d.active_members().map(|m| m.device.as_str()).collect();
        assert_eq!(devs, ["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
    }

    #[test]
    fn md_name_without_homehost() {
        assert_eq!(MdName::parse("g1"), MdName { homehost: None, name: "g1".into() });
        assert_eq!(MdName::parse("a:b:c").name, "b:c");
    }

    #[test]
    fn truncated_and_garbled_examine_and_detail_never_panic() {
        for name in ["examine-member.txt", "examine-foreign.txt"] {
            let text = testdata::text(name);
            for p in testdata::prefixes(&text) {
                let _ = parse_examine(p);
            }
        }
        for name in ["detail-clean.txt", "detail-resync.txt"] {
            let text = testdata::text(name);
            for p in testdata::prefixes(&text) {
                let _ = parse_detail(p);
            }
        }
        // A cut before MD_UUID is reported as such, not as a wrong value.
        let text = testdata::text("examine-member.txt");
        let cut = &text[..text.find("MD_UUID").expect("has MD_UUID")];
        assert_eq!(parse_examine(cut), Err(ParseError::Missing { tool: "mdadm --examine --export", key: "MD_UUID" }));
        assert!(matches!(
            parse_examine("MD_LEVEL=raid5\nMD_DEVICES=three\nMD_UUID=x\n"),
            Err(ParseError::BadNumber { what: "MD_DEVICES", .. })
        ));
        assert!(matches!(
            parse_examine("mdadm: No md superblock detected\n"),
            Err(ParseError::BadLine { line: 1, .. })
        ));
        assert!(matches!(
            parse_detail("MD_LEVEL=raid5\nMD_DEVICES=3\nMD_UUID=x\nMD_DEVICE_dev_vdb_ROLE=0\n"),
            Err(ParseError::Missing { key: "MD_DEVICE_*_DEV", .. })
        ));
    }
}
