//! The group planner: from what the host shows now to the next step that
//! brings a RAID group up (DESIGN §6, §10; issue 6 "First set-up").
//!
//! Sans-I/O and stateless: the driver (`opie_sys::storage_driver`) observes
//! the host ([`Observed`]: every member's md superblock and signatures, the
//! array, the LVM reports, the data volume's signatures, the mounts), asks
//! [`next_step`] what to do, runs that one [`Step`] through the `Host`, and
//! observes again. The result of each step is fed back as the next
//! observation, so a head that reboots in the middle of a set-up resumes
//! where the disks say it stopped: nothing is remembered between calls,
//! nothing is done twice.
//!
//! Two modes:
//! - [`Mode::Create`], the first set-up of a group: blank members become
//!   `mdadm --create ... --level=5 --bitmap=internal --run --name=<group>
//!   --homehost=<cluster>`, then a PV, the VG `opie_<group>`, the data LV
//!   leaving `reserve_percent` of the VG's extents free for copy-on-write
//!   snapshots, a 64-bit ext4 with a journal, mounted `acl,user_xattr`.
//! - [`Mode::Start`], start-up: only assemble, activate and mount; a missing
//!   PV, VG, LV or filesystem is an error, never created.
//!
//! Safety rules, each a [`PlanError`] naming the disk:
//! - a member whose md superblock names another cluster or another group,
//!   or that holds any other signature (filesystem, PV, partition table),
//!   is never written to;
//! - an array is assembled with all its members or all but one, never
//!   fewer; members of one group that disagree on the array UUID stop it;
//! - pvcreate and mkfs run only on a device whose first bytes are blank.
//!
//! Member size is the smallest member's: md sizes every member to the
//! smallest one given, and [`Step::CreateArray`] reports it (and the surplus
//! of bigger members) so it can be shown as unused.

use thiserror::Error;

use super::lvm::{Lv, Pv, Vg};
use super::mdadm::{Detail, Examine, MdName};
use super::mounts::Mount;
use super::names::{ClusterName, DATA_LV, GroupName};
use super::probe::Signature;

/// RAID5 over md needs at least two members (DESIGN §6).
pub const MIN_MEMBERS: usize = 2;
/// Smaller members are refused: md's superblock, bitmap and LVM's metadata
/// need room (the QEMU tests use 32 MiB disks).
pub const MIN_MEMBER_BYTES: u64 = 16 * 1024 * 1024;
/// Free extents kept for copy-on-write snapshots unless told otherwise.
pub const DEFAULT_RESERVE_PERCENT: u8 = 15;
/// Mount options of every data volume (DESIGN §6).
pub const MOUNT_OPTIONS: [&str; 2] = ["acl", "user_xattr"];

/// What the group should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub cluster: ClusterName,
    pub group: GroupName,
    /// The md node to create or assemble, `/dev/mdN`.
    pub md_device: String,
    /// The adopted members' block devices (for a head: `/dev/nbdX`).
    pub members: Vec<String>,
    /// Percent of the VG's extents left free for snapshots (0-90).
    pub reserve_percent: u8,
    pub mount_point: String,
}

impl GroupSpec {
    /// A spec with the defaults: reserve 15 %, mounted at `/srv/<group>`.
    pub fn new(cluster: ClusterName, group: GroupName, md_device: &str, members: Vec<String>) -> Self {
        let mount_point = format!("/srv/{group}");
        GroupSpec {
            cluster,
            group,
            md_device: md_device.to_string(),
            members,
            reserve_percent: DEFAULT_RESERVE_PERCENT,
            mount_point,
        }
    }

    fn md_name(&self) -> MdName {
        MdName { homehost: Some(self.cluster.as_str().to_string()), name: self.group.as_str().to_string() }
    }
}

/// First set-up or start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Start,
}

/// One member device as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub device: String,
    /// Size in bytes.
    pub size: u64,
    /// `mdadm --examine`, `None` when the device has no md superblock.
    pub examine: Option<Examine>,
    /// What the signature probe found in the first bytes.
    pub signatures: Vec<Signature>,
}

/// Everything the planner looks at, observed in one round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// In the order of [`GroupSpec::members`].
    pub members: Vec<MemberState>,
    /// `mdadm --detail` of the spec's md node, `None` when it does not run.
    pub array: Option<Detail>,
    /// Signatures at the start of the running array (where the PV goes).
    pub array_signatures: Vec<Signature>,
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
    /// Signatures at the start of the data LV, when it is active.
    pub lv_signatures: Vec<Signature>,
    pub mounts: Vec<Mount>,
}

/// One action for the driver to run through the `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `mdadm --create MD --level=5 --raid-devices=N --bitmap=internal
    /// --metadata=1.2 --run --name=GROUP --homehost=CLUSTER MEMBERS...`,
    /// stdin from /dev/null.
    CreateArray {
        md_device: String,
        members: Vec<String>,
        name: String,
        homehost: String,
        /// The smallest member's size: what every member contributes.
        member_size: u64,
        /// Bytes of bigger members md leaves unused, per member.
        unused: Vec<(String, u64)>,
    },
    /// `mdadm --assemble MD --run --uuid=UUID MEMBERS...` (degraded when a
    /// member is missing).
    AssembleArray { md_device: String, uuid: String, members: Vec<String>, missing: usize },
    /// `pvcreate DEVICE`.
    CreatePv { device: String },
    /// `vgcreate VG PV`.
    CreateVg { vg: String, pv: String },
    /// `lvcreate -y -Wy -Zy -n LV -l EXTENTS VG`.
    CreateLv { vg: String, lv: String, extents: u64, reserved_extents: u64 },
    /// `vgchange -ay VG`.
    ActivateVg { vg: String },
    /// `mkfs.ext4 -q -O 64bit,has_journal -L LABEL DEVICE`.
    MakeFs { device: String, label: String },
    /// `mount -t ext4 -o acl,user_xattr DEVICE TARGET` (TARGET made first).
    Mount { device: String, target: String, options: Vec<String> },
}

impl Step {
    /// One line for logs and the CLI.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateArray { md_device, members, name, homehost, member_size, .. } => format!(
                "create RAID5 {md_device} ({homehost}:{name}) over {} ({} MiB per member)",
                members.join(" "),
                member_size / (1024 * 1024)
            ),
            Step::AssembleArray { md_device, members, missing, .. } => {
                let deg = if *missing > 0 { format!(", degraded: {missing} missing") } else { String::new() };
                format!("assemble {md_device} from {}{deg}", members.join(" "))
            }
            Step::CreatePv { device } => format!("create LVM physical volume on {device}"),
            Step::CreateVg { vg, pv } => format!("create volume group {vg} on {pv}"),
            Step::CreateLv { vg, lv, extents, reserved_extents } => {
                format!("create {vg}/{lv}: {extents} extents, {reserved_extents} kept free for snapshots")
            }
            Step::ActivateVg { vg } => format!("activate volume group {vg}"),
            Step::MakeFs { device, label } => format!("make ext4 (64-bit, journal) {label:?} on {device}"),
            Step::Mount { device, target, options } => format!("mount {device} on {target} ({})", options.join(",")),
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Step(Step),
    /// The group is up: array running, data volume mounted.
    Done,
}

/// Why the planner will not go on. Every variant names what it refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("a RAID5 group needs at least {MIN_MEMBERS} members, got {got}")]
    TooFewMembers { got: usize },
    #[error("{device} is listed twice")]
    DuplicateMember { device: String },
    #[error("reserve of {percent} % is out of range (0-90)")]
    BadReserve { percent: u8 },
    #[error("observed {got} members for {want} listed (driver bug)")]
    ObservationMismatch { want: usize, got: usize },
    #[error(
        "refusing {device}: it holds data of another cluster ({found:?}, array {uuid}); this cluster is {cluster:?}"
    )]
    OtherCluster { device: String, found: String, uuid: String, cluster: String },
    #[error("refusing {device}: it holds data of group {found:?} (array {uuid}), not of group {group:?}")]
    OtherGroup { device: String, found: String, uuid: String, group: String },
    #[error("refusing {device}: it holds {what}")]
    ForeignData { device: String, what: &'static str },
    #[error("refusing {device}: {size} bytes is smaller than the {MIN_MEMBER_BYTES}-byte minimum")]
    MemberTooSmall { device: String, size: u64 },
    #[error("members of group {group:?} disagree on its array: {first} has {uuid_a}, {second} has {uuid_b}")]
    MixedArrays { group: String, first: String, uuid_a: String, second: String, uuid_b: String },
    #[error(
        "group {group:?} has {found} of its {total} members here ({devices}); assembling needs at least {need}: never fewer than all but one"
    )]
    TooFewToAssemble { group: String, found: usize, total: u32, need: u32, devices: String },
    #[error("no member carries group {group:?}: nothing to start (create it first)")]
    NoSuchGroup { group: String },
    #[error(
        "group {group:?} already exists with {total} members; {device} is not one of them (growing is a separate step)"
    )]
    NotAMember { group: String, total: u32, device: String },
    #[error("{md_device} runs array {found:?}, not group {want:?}")]
    WrongArray { md_device: String, found: String, want: String },
    #[error("{device} belongs to volume group {found:?}, expected {want:?}")]
    WrongVg { device: String, found: String, want: String },
    #[error("{device} holds {what} but LVM does not list it as a physical volume")]
    UnlistedData { device: String, what: &'static str },
    #[error("group {group:?}: {what} is missing on start-up; refusing to create it (run create-group to set up)")]
    MissingOnStart { group: String, what: String },
    #[error("volume group {vg} has {free} free extents, the data volume needs {need}")]
    NoSpace { vg: String, free: u64, need: u64 },
    #[error("{target} is busy: {mounted} is mounted there")]
    MountPointBusy { target: String, mounted: String },
}

fn validate(spec: &GroupSpec, mode: Mode, obs: &Observed) -> Result<(), PlanError> {
    // A new group needs two members; starting one needs the members that
    // are here, which for a degraded two-member group is one (the
    // all-but-one rule is checked against the array's own member count).
    let least = if mode == Mode::Create { MIN_MEMBERS } else { 1 };
    if spec.members.len() < least {
        return Err(PlanError::TooFewMembers { got: spec.members.len() });
    }
    for (i, d) in spec.members.iter().enumerate() {
        if spec.members[..i].contains(d) {
            return Err(PlanError::DuplicateMember { device: d.clone() });
        }
    }
    if spec.reserve_percent > 90 {
        return Err(PlanError::BadReserve { percent: spec.reserve_percent });
    }
    if obs.members.len() != spec.members.len() {
        return Err(PlanError::ObservationMismatch { want: spec.members.len(), got: obs.members.len() });
    }
    Ok(())
}

/// Refuses a member that holds another cluster's or group's array.
fn foreign_md(spec: &GroupSpec, m: &MemberState, e: &Examine) -> Option<PlanError> {
    let want = spec.md_name();
    if e.name == want {
        return None;
    }
    let found = e.name.to_string();
    if e.name.homehost.as_deref() != Some(spec.cluster.as_str()) {
        Some(PlanError::OtherCluster {
            device: m.device.clone(),
            found,
            uuid: e.array_uuid.clone(),
            cluster: spec.cluster.to_string(),
        })
    } else {
        Some(PlanError::OtherGroup {
            device: m.device.clone(),
            found,
            uuid: e.array_uuid.clone(),
            group: spec.group.to_string(),
        })
    }
}

/// The next step for the array itself, when it does not run yet.
fn array_step(spec: &GroupSpec, mode: Mode, obs: &Observed) -> Result<Step, PlanError> {
    // First every member that carries something that is not ours.
    for m in &obs.members {
        match &m.examine {
            Some(e) => {
                if let Some(err) = foreign_md(spec, m, e) {
                    return Err(err);
                }
            }
            None => {
                if let Some(s) = m.signatures.iter().find(|s| **s != Signature::MdSuperblock) {
                    return Err(PlanError::ForeignData { device: m.device.clone(), what: s.describe() });
                }
            }
        }
    }
    let ours: Vec<(&MemberState, &Examine)> =
        obs.members.iter().filter_map(|m| m.examine.as_ref().map(|e| (m, e))).collect();
    if ours.is_empty() {
        if mode == Mode::Start {
            return Err(PlanError::NoSuchGroup { group: spec.group.to_string() });
        }
        // A superblock mdadm --examine could not read but the probe saw
        // (a damaged one) is not blank either.
        if let Some(m) = obs.members.iter().find(|m| !m.signatures.is_empty()) {
            return Err(PlanError::ForeignData { device: m.device.clone(), what: Signature::MdSuperblock.describe() });
        }
        if let Some(m) = obs.members.iter().find(|m| m.size < MIN_MEMBER_BYTES) {
            return Err(PlanError::MemberTooSmall { device: m.device.clone(), size: m.size });
        }
        let member_size = obs.members.iter().map(|m| m.size).min().unwrap_or(0);
        return Ok(Step::CreateArray {
            md_device: spec.md_device.clone(),
            members: spec.members.clone(),
            name: spec.group.to_string(),
            homehost: spec.cluster.to_string(),
            member_size,
            unused: obs
                .members
                .iter()
                .filter(|m| m.size > member_size)
                .map(|m| (m.device.clone(), m.size - member_size))
                .collect(),
        });
    }
    let (first, fe) = ours[0];
    if let Some((other, oe)) = ours.iter().find(|(_, e)| e.array_uuid != fe.array_uuid) {
        return Err(PlanError::MixedArrays {
            group: spec.group.to_string(),
            first: first.device.clone(),
            uuid_a: fe.array_uuid.clone(),
            second: other.device.clone(),
            uuid_b: oe.array_uuid.clone(),
        });
    }
    let total = fe.raid_devices;
    if mode == Mode::Create {
        // Re-running a create over an existing group: every listed disk
        // must be one of its members (or a member that lost its superblock
        // when the group is all there but one).
        let blanks: Vec<&MemberState> = obs.members.iter().filter(|m| m.examine.is_none()).collect();
        if spec.members.len() > total as usize
            && let Some(b) = blanks.first()
        {
            return Err(PlanError::NotAMember { group: spec.group.to_string(), total, device: b.device.clone() });
        }
    }
    let need = total.saturating_sub(1).max(1);
    let found = ours.len();
    if (found as u32) < need {
        return Err(PlanError::TooFewToAssemble {
            group: spec.group.to_string(),
            found,
            total,
            need,
            devices: ours.iter().map(|(m, _)| m.device.as_str()).collect::<Vec<_>>().join(" "),
        });
    }
    Ok(Step::AssembleArray {
        md_device: spec.md_device.clone(),
        uuid: fe.array_uuid.clone(),
        members: ours.iter().map(|(m, _)| m.device.clone()).collect(),
        missing: (total as usize).saturating_sub(found),
    })
}

fn missing_on_start(spec: &GroupSpec, what: impl Into<String>) -> PlanError {
    PlanError::MissingOnStart { group: spec.group.to_string(), what: what.into() }
}

/// Decides the next step towards `spec` in `mode`, given `obs`.
pub fn next_step(spec: &GroupSpec, mode: Mode, obs: &Observed) -> Result<Next, PlanError> {
    validate(spec, mode, obs)?;
    // 1. The array.
    let Some(detail) = &obs.array else {
        return array_step(spec, mode, obs).map(Next::Step);
    };
    if detail.name != spec.md_name() {
        return Err(PlanError::WrongArray {
            md_device: spec.md_device.clone(),
            found: detail.name.to_string(),
            want: spec.md_name().to_string(),
        });
    }
    // 2. The physical volume on it.
    let vg_name = spec.group.vg();
    let pv: Option<&Pv> = obs.pvs.iter().find(|p| p.name == spec.md_device);
    let Some(pv) = pv else {
        if let Some(s) = obs.array_signatures.first() {
            return Err(PlanError::UnlistedData { device: spec.md_device.clone(), what: s.describe() });
        }
        return match mode {
            Mode::Create => Ok(Next::Step(Step::CreatePv { device: spec.md_device.clone() })),
            Mode::Start => Err(missing_on_start(spec, format!("the LVM physical volume on {}", spec.md_device))),
        };
    };
    // 3. The volume group.
    match &pv.vg {
        None => {
            return match mode {
                Mode::Create => Ok(Next::Step(Step::CreateVg { vg: vg_name, pv: pv.name.clone() })),
                Mode::Start => Err(missing_on_start(spec, format!("volume group {vg_name}"))),
            };
        }
        Some(vg) if *vg != vg_name => {
            return Err(PlanError::WrongVg { device: pv.name.clone(), found: vg.clone(), want: vg_name });
        }
        Some(_) => {}
    }
    let Some(vg) = obs.vgs.iter().find(|v| v.name == vg_name) else {
        // pvs names the VG but vgs does not list it: LVM is inconsistent.
        return Err(missing_on_start(spec, format!("volume group {vg_name} (pvs lists it, vgs does not)")));
    };
    // 4. The data volume.
    let Some(lv) = obs.lvs.iter().find(|l| l.vg == vg_name && l.name == DATA_LV) else {
        if mode == Mode::Start {
            return Err(missing_on_start(spec, format!("data volume {vg_name}/{DATA_LV}")));
        }
        let reserved = (vg.extent_count * u64::from(spec.reserve_percent)).div_ceil(100);
        let extents = vg.extent_count - reserved;
        if extents == 0 || vg.free_count < extents {
            return Err(PlanError::NoSpace { vg: vg_name, free: vg.free_count, need: extents.max(1) });
        }
        return Ok(Next::Step(Step::CreateLv {
            vg: vg_name,
            lv: DATA_LV.to_string(),
            extents,
            reserved_extents: reserved,
        }));
    };
    if !lv.active() {
        return Ok(Next::Step(Step::ActivateVg { vg: vg_name }));
    }
    // 5. The filesystem.
    if !obs.lv_signatures.contains(&Signature::Ext) {
        if let Some(s) = obs.lv_signatures.first() {
            return Err(PlanError::ForeignData { device: lv.path.clone(), what: s.describe() });
        }
        return match mode {
            Mode::Create => Ok(Next::Step(Step::MakeFs { device: lv.path.clone(), label: spec.group.to_string() })),
            Mode::Start => Err(missing_on_start(spec, format!("the filesystem on {}", lv.path))),
        };
    }
    // 6. The mount.
    let ours = [lv.path.clone(), spec.group.lv_path(), spec.group.mapper_path()];
    match obs.mounts.iter().rev().find(|m| m.target == spec.mount_point) {
        Some(m) if ours.contains(&m.source) => Ok(Next::Done),
        Some(m) => Err(PlanError::MountPointBusy { target: spec.mount_point.clone(), mounted: m.source.clone() }),
        None => Ok(Next::Step(Step::Mount {
            device: lv.path.clone(),
            target: spec.mount_point.clone(),
            options: MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::mdadm::{MdName, parse_examine};
    use crate::storage::testdata;

    const MIB: u64 = 1024 * 1024;

    fn spec(members: &[&str]) -> GroupSpec {
        GroupSpec::new(
            ClusterName::new("lab").expect("valid"),
            GroupName::new("g1").expect("valid"),
            "/dev/md0",
            members.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn blank(dev: &str, size: u64) -> MemberState {
        MemberState { device: dev.into(), size, examine: None, signatures: vec![] }
    }

    fn member_of(dev: &str, text: &str) -> MemberState {
        MemberState {
            device: dev.into(),
            size: 48 * MIB,
            examine: Some(parse_examine(text).expect("parses")),
            signatures: vec![Signature::MdSuperblock],
        }
    }

    #[test]
    fn blank_members_are_created_at_the_smallest_size() {
        let s = spec(&["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        let obs = Observed {
            members: vec![blank("/dev/vdb", 64 * MIB), blank("/dev/vdc", 32 * MIB), blank("/dev/vdd", 48 * MIB)],
            ..Default::default()
        };
        let Ok(Next::Step(Step::CreateArray { members, name, homehost, member_size, unused, .. })) =
            next_step(&s, Mode::Create, &obs)
        else {
            panic!("expected a create")
        };
        assert_eq!((name.as_str(), homehost.as_str(), member_size), ("g1", "lab", 32 * MIB));
        assert_eq!(members, ["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        assert_eq!(unused, [("/dev/vdb".to_string(), 32 * MIB), ("/dev/vdd".to_string(), 16 * MIB)]);
        // Start-up never creates.
        assert_eq!(next_step(&s, Mode::Start, &obs), Err(PlanError::NoSuchGroup { group: "g1".into() }));
    }

    #[test]
    fn another_clusters_disk_is_refused_by_name() {
        let s = spec(&["/dev/vdb", "/dev/vdc", "/dev/vdf"]);
        let obs = Observed {
            members: vec![
                blank("/dev/vdb", 48 * MIB),
                blank("/dev/vdc", 48 * MIB),
                member_of("/dev/vdf", &testdata::text("examine-foreign.txt")),
            ],
            ..Default::default()
        };
        let err = next_step(&s, Mode::Create, &obs).expect_err("refused");
        assert!(
            matches!(&err, PlanError::OtherCluster { device, found, .. } if device == "/dev/vdf" && found == "elsewhere:other")
        );
        assert!(err.to_string().starts_with("refusing /dev/vdf: it holds data of another cluster"), "{err}");
    }

    #[test]
    fn another_groups_disk_and_a_filesystem_are_refused() {
        let s = GroupSpec { group: GroupName::new("g2").expect("valid"), ..spec(&["/dev/vdb", "/dev/vdc"]) };
        let obs = Observed {
            members: vec![member_of("/dev/vdb", &testdata::text("examine-member.txt")), blank("/dev/vdc", 48 * MIB)],
            ..Default::default()
        };
        let err = next_step(&s, Mode::Create, &obs).expect_err("refused");
        assert!(
            matches!(&err, PlanError::OtherGroup { device, found, .. } if device == "/dev/vdb" && found == "lab:g1"),
            "{err}"
        );
        let mut fs = blank("/dev/vdc", 48 * MIB);
        fs.signatures = vec![Signature::Ext];
        let obs = Observed { members: vec![blank("/dev/vdb", 48 * MIB), fs], ..Default::default() };
        assert_eq!(
            next_step(&spec(&["/dev/vdb", "/dev/vdc"]), Mode::Create, &obs),
            Err(PlanError::ForeignData { device: "/dev/vdc".into(), what: "an ext2/3/4 filesystem" })
        );
    }

    #[test]
    fn spec_errors() {
        let obs = Observed { members: vec![blank("/dev/vdb", 48 * MIB)], ..Default::default() };
        assert_eq!(next_step(&spec(&["/dev/vdb"]), Mode::Create, &obs), Err(PlanError::TooFewMembers { got: 1 }));
        let obs =
            Observed { members: vec![blank("/dev/vdb", 48 * MIB), blank("/dev/vdb", 48 * MIB)], ..Default::default() };
        assert_eq!(
            next_step(&spec(&["/dev/vdb", "/dev/vdb"]), Mode::Create, &obs),
            Err(PlanError::DuplicateMember { device: "/dev/vdb".into() })
        );
        let obs =
            Observed { members: vec![blank("/dev/vdb", 48 * MIB), blank("/dev/vdc", 8 * MIB)], ..Default::default() };
        assert_eq!(
            next_step(&spec(&["/dev/vdb", "/dev/vdc"]), Mode::Create, &obs),
            Err(PlanError::MemberTooSmall { device: "/dev/vdc".into(), size: 8 * MIB })
        );
    }

    fn ours(dev: &str, uuid: &str, total: u32) -> MemberState {
        MemberState {
            device: dev.into(),
            size: 48 * MIB,
            examine: Some(Examine {
                level: "raid5".into(),
                raid_devices: total,
                name: MdName { homehost: Some("lab".into()), name: "g1".into() },
                array_uuid: uuid.into(),
                device_uuid: None,
                events: Some(10),
            }),
            signatures: vec![Signature::MdSuperblock],
        }
    }

    #[test]
    fn assemble_with_all_or_all_but_one_never_fewer() {
        let s = spec(&["/dev/nbd0", "/dev/nbd1", "/dev/nbd2"]);
        let all = Observed {
            members: vec![ours("/dev/nbd0", "u", 3), ours("/dev/nbd1", "u", 3), ours("/dev/nbd2", "u", 3)],
            ..Default::default()
        };
        for mode in [Mode::Create, Mode::Start] {
            assert!(matches!(next_step(&s, mode, &all),
                Ok(Next::Step(Step::AssembleArray { ref members, missing: 0, .. })) if members.len() == 3));
        }
        let mut one_gone = all.clone();
        one_gone.members[1] = blank("/dev/nbd1", 48 * MIB);
        assert!(matches!(next_step(&s, Mode::Start, &one_gone),
            Ok(Next::Step(Step::AssembleArray { ref members, missing: 1, .. })) if members == &["/dev/nbd0", "/dev/nbd2"]));
        let mut two_gone = one_gone.clone();
        two_gone.members[2] = blank("/dev/nbd2", 48 * MIB);
        let err = next_step(&s, Mode::Start, &two_gone).expect_err("refused");
        assert!(matches!(err, PlanError::TooFewToAssemble { found: 1, total: 3, need: 2, .. }), "{err}");
        // The same holds for a create that crashed half-way through writing
        // superblocks: never re-created over the one that has it.
        assert!(matches!(next_step(&s, Mode::Create, &two_gone), Err(PlanError::TooFewToAssemble { .. })));
        let mut mixed = all.clone();
        mixed.members[2] = ours("/dev/nbd2", "v", 3);
        assert!(matches!(next_step(&s, Mode::Start, &mixed), Err(PlanError::MixedArrays { .. })));
    }

    #[test]
    fn create_over_an_existing_group_with_an_extra_disk_is_refused() {
        let s = spec(&["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        let obs = Observed {
            members: vec![ours("/dev/vdb", "u", 2), ours("/dev/vdc", "u", 2), blank("/dev/vdd", 48 * MIB)],
            ..Default::default()
        };
        assert!(
            matches!(next_step(&s, Mode::Create, &obs), Err(PlanError::NotAMember { ref device, .. }) if device == "/dev/vdd")
        );
    }

    fn running(s: &GroupSpec) -> Observed {
        let detail = crate::storage::mdadm::parse_detail(&testdata::text("detail-clean.txt")).expect("parses");
        Observed {
            members: s.members.iter().map(|d| ours(d, "06c87d69:d6204c30:07ef9119:e0d9892f", 3)).collect(),
            array: Some(detail),
            ..Default::default()
        }
    }

    #[test]
    fn lvm_filesystem_and_mount_follow_in_order() {
        use crate::storage::{lvm, mounts};
        let s = spec(&["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        let mut obs = running(&s);
        assert_eq!(next_step(&s, Mode::Create, &obs), Ok(Next::Step(Step::CreatePv { device: "/dev/md0".into() })));
        assert!(matches!(next_step(&s, Mode::Start, &obs), Err(PlanError::MissingOnStart { .. })));
        obs.pvs = lvm::parse_pvs(&testdata::text("pvs-novg.txt")).expect("parses");
        assert_eq!(
            next_step(&s, Mode::Create, &obs),
            Ok(Next::Step(Step::CreateVg { vg: "opie_g1".into(), pv: "/dev/md0".into() }))
        );
        obs.pvs = lvm::parse_pvs(&testdata::text("pvs.txt")).expect("parses");
        obs.vgs = lvm::parse_vgs(&testdata::text("vgs.txt")).expect("parses");
        // 22 extents, 15 % kept: ceil(3.3) = 4 free, 18 for data (what the
        // capture's `lvcreate -l 85%VG` also gave).
        assert_eq!(
            next_step(&s, Mode::Create, &obs),
            Ok(Next::Step(Step::CreateLv {
                vg: "opie_g1".into(),
                lv: "data".into(),
                extents: 18,
                reserved_extents: 4
            }))
        );
        obs.lvs = lvm::parse_lvs(&testdata::text("lvs.txt")).expect("parses");
        obs.vgs = lvm::parse_vgs(&testdata::text("vgs-after-lv.txt")).expect("parses");
        assert_eq!(
            next_step(&s, Mode::Create, &obs),
            Ok(Next::Step(Step::MakeFs { device: "/dev/opie_g1/data".into(), label: "g1".into() }))
        );
        obs.lv_signatures = vec![Signature::Ext];
        assert!(
            matches!(next_step(&s, Mode::Create, &obs), Ok(Next::Step(Step::Mount { ref target, .. })) if target == "/srv/g1")
        );
        obs.mounts = mounts::parse(&testdata::text("proc-mounts.txt")).expect("parses");
        assert_eq!(next_step(&s, Mode::Create, &obs), Ok(Next::Done));
        assert_eq!(next_step(&s, Mode::Start, &obs), Ok(Next::Done));
        // An inactive LV (after a reboot) is activated, not re-created.
        obs.lvs[0].attr = "-wi-------".into();
        assert_eq!(next_step(&s, Mode::Start, &obs), Ok(Next::Step(Step::ActivateVg { vg: "opie_g1".into() })));
    }

    #[test]
    fn foreign_contents_above_the_array_are_refused() {
        use crate::storage::lvm;
        let s = spec(&["/dev/vdb", "/dev/vdc", "/dev/vdd"]);
        let mut obs = running(&s);
        obs.array_signatures = vec![Signature::Ext];
        assert!(matches!(next_step(&s, Mode::Create, &obs), Err(PlanError::UnlistedData { .. })));
        obs.array_signatures = vec![];
        obs.pvs = vec![lvm::Pv { name: "/dev/md0".into(), vg: Some("vg0".into()), size: 1, free: 1 }];
        assert!(matches!(next_step(&s, Mode::Create, &obs), Err(PlanError::WrongVg { .. })));
        obs.pvs = lvm::parse_pvs(&testdata::text("pvs.txt")).expect("parses");
        obs.vgs = lvm::parse_vgs(&testdata::text("vgs-after-lv.txt")).expect("parses");
        obs.lvs = lvm::parse_lvs(&testdata::text("lvs.txt")).expect("parses");
        obs.lv_signatures = vec![Signature::Xfs];
        assert!(matches!(
            next_step(&s, Mode::Create, &obs),
            Err(PlanError::ForeignData { what: "an XFS filesystem", .. })
        ));
        obs.lv_signatures = vec![Signature::Ext];
        obs.mounts =
            vec![Mount { source: "/dev/vdz".into(), target: "/srv/g1".into(), fstype: "ext4".into(), options: vec![] }];
        assert!(matches!(next_step(&s, Mode::Create, &obs), Err(PlanError::MountPointBusy { .. })));
        let mut other = running(&s);
        other.array.as_mut().expect("array").name = MdName { homehost: Some("lab".into()), name: "g9".into() };
        assert!(matches!(next_step(&s, Mode::Start, &other), Err(PlanError::WrongArray { .. })));
    }
}
