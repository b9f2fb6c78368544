//! A [`Host`] that models disks, md arrays, LVM and mounts in memory, for
//! planner and driver tests (never for the QEMU path).
//!
//! The model follows what the real tools were seen to do (captures in
//! `firmware/core/testdata/storage`): `mdadm --create --run` overwrites
//! whatever is on its members, no questions asked; `--assemble` needs all
//! members or all but one; `pvcreate` without `-y` refuses a device with a
//! signature; LVM extents are 4 MiB; a reboot stops every array,
//! deactivates every LV and unmounts everything while disk contents stay.
//!
//! Faults: [`FakeHost::cut_power_after`] makes every call after the n-th
//! state-changing one fail (the head lost power; [`FakeHost::reboot`]
//! brings it back), [`FakeHost::cut_inside_create`] makes an `mdadm
//! --create` die after writing k superblocks, and [`FakeHost::fail_next`]
//! fails one named operation with a given stderr. Every state change is
//! logged; [`FakeHost::overwritten`] lists devices whose earlier contents
//! (someone else's data) a call destroyed, so tests can prove the planner
//! never lets that happen.

use std::collections::BTreeMap;

use opie_core::storage::exportfs::Export;
use opie_core::storage::lvm::{Lv, Pv, Vg};
use opie_core::storage::mdadm::{Detail, DetailMember, Examine, MdName, MemberRole};
use opie_core::storage::mdstat::{Mdstat, MdstatArray, MdstatMember};
use opie_core::storage::mounts::Mount;
use opie_core::storage::probe::Signature;
use opie_sys::host::{Host, HostError, MemberAction};

pub const MIB: u64 = 1024 * 1024;
const EXTENT: u64 = 4 * MIB;

/// What is on one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDisk {
    pub size: u64,
    /// The md superblock, if any.
    pub superblock: Option<Examine>,
    /// Other signatures (filesystem, PV, ...) in its first bytes.
    pub signatures: Vec<Signature>,
    /// Whether the disk is attached (an ISU that is down is not).
    pub present: bool,
}

impl FakeDisk {
    pub fn blank(size: u64) -> Self {
        FakeDisk { size, superblock: None, signatures: vec![], present: true }
    }
    /// A member of someone's array named `homehost:name`.
    pub fn member_of(size: u64, homehost: &str, name: &str, uuid: &str, raid_devices: u32) -> Self {
        FakeDisk {
            size,
            superblock: Some(Examine {
                level: "raid5".into(),
                raid_devices,
                name: MdName { homehost: Some(homehost.into()), name: name.into() },
                array_uuid: uuid.into(),
                device_uuid: None,
                events: Some(1),
            }),
            signatures: vec![Signature::MdSuperblock],
            present: true,
        }
    }
    fn holds_data(&self) -> bool {
        self.superblock.is_some() || !self.signatures.is_empty()
    }
}

/// An array's persistent contents (kept on its members, keyed by UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArrayData {
    name: MdName,
    raid_devices: u32,
    member_size: u64,
    /// The PV on it: its VG, if any.
    pv: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct LvData {
    extents: u64,
    active: bool,
    ext4: bool,
}

/// The in-memory host.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub disks: BTreeMap<String, FakeDisk>,
    arrays: BTreeMap<String, ArrayData>,
    /// md node -> (uuid, members it runs with).
    running: BTreeMap<String, (String, Vec<String>)>,
    /// (vg, lv) -> data; VGs are on arrays (by uuid).
    vgs: BTreeMap<String, String>,
    lvs: BTreeMap<(String, String), LvData>,
    mounted: Vec<Mount>,
    exports: Vec<Export>,
    next_uuid: u32,
    /// State-changing calls, in order ("mdadm --create /dev/md0 ...").
    pub log: Vec<String>,
    /// Devices whose foreign contents a call overwrote.
    pub overwritten: Vec<String>,
    changes: usize,
    cut_after: Option<usize>,
    dead: bool,
    cut_inside_create: Option<usize>,
    fail_next: Option<(String, String)>,
}

fn failed(command: &str, stderr: &str) -> HostError {
    HostError::Failed { command: command.to_string(), status: 1, stderr: stderr.to_string() }
}

impl FakeHost {
    pub fn new() -> Self {
        FakeHost::default()
    }

    pub fn with_disks(disks: impl IntoIterator<Item = (String, FakeDisk)>) -> Self {
        FakeHost { disks: disks.into_iter().collect(), ..Default::default() }
    }

    /// After `n` more state-changing calls succeed the power goes: the next
    /// one and every call after it fail until [`FakeHost::reboot`].
    pub fn cut_power_after(&mut self, n: usize) {
        self.cut_after = Some(self.changes + n);
    }

    /// The next `mdadm --create` writes `k` superblocks, then the power goes.
    pub fn cut_inside_create(&mut self, k: usize) {
        self.cut_inside_create = Some(k);
    }

    /// The next call of `op` (e.g. "mkfs.ext4") fails with `stderr`.
    pub fn fail_next(&mut self, op: &str, stderr: &str) {
        self.fail_next = Some((op.to_string(), stderr.to_string()));
    }

    /// Power back on: arrays stopped, LVs inactive, nothing mounted or
    /// exported; disks keep their contents.
    pub fn reboot(&mut self) {
        self.running.clear();
        for lv in self.lvs.values_mut() {
            lv.active = false;
        }
        self.mounted.clear();
        self.exports.clear();
        self.cut_after = None;
        self.dead = false;
        self.cut_inside_create = None;
        self.log.push("reboot".into());
    }

    /// Detach or re-attach a disk (an ISU going away).
    pub fn set_present(&mut self, device: &str, present: bool) {
        if let Some(d) = self.disks.get_mut(device) {
            d.present = present;
        }
    }

    /// How many `mdadm --create` calls ran.
    pub fn creates(&self) -> usize {
        self.log.iter().filter(|l| l.starts_with("mdadm --create")).count()
    }

    fn alive(&self) -> Result<(), HostError> {
        if self.dead {
            return Err(HostError::Io { path: "(fake host)".into(), source: std::io::Error::other("power cut") });
        }
        Ok(())
    }

    /// Every state-changing call goes through here first.
    fn change(&mut self, op: &str, line: String) -> Result<(), HostError> {
        self.alive()?;
        if self.cut_after.is_some_and(|n| self.changes >= n) {
            self.dead = true;
            return self.alive();
        }
        if let Some((o, stderr)) = self.fail_next.take() {
            if o == op {
                return Err(failed(&line, &stderr));
            }
            self.fail_next = Some((o, stderr));
        }
        self.changes += 1;
        self.log.push(line);
        Ok(())
    }

    fn disk(&self, device: &str) -> Result<&FakeDisk, HostError> {
        match self.disks.get(device) {
            Some(d) if d.present => Ok(d),
            _ => Err(HostError::Io { path: device.into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) }),
        }
    }

    fn running_uuid(&self, md: &str) -> Option<&str> {
        self.running.get(md).map(|(u, _)| u.as_str())
    }

    fn md_of_uuid(&self, uuid: &str) -> Option<&str> {
        self.running.iter().find(|(_, (u, _))| u == uuid).map(|(md, _)| md.as_str())
    }

    fn vg_extents(&self, uuid: &str) -> u64 {
        let a = &self.arrays[uuid];
        // data capacity minus LVM's metadata area, in 4 MiB extents
        ((u64::from(a.raid_devices) - 1) * a.member_size).saturating_sub(MIB) / EXTENT
    }

    fn lv_path(vg: &str, lv: &str) -> String {
        format!("/dev/{vg}/{lv}")
    }
}

impl Host for FakeHost {
    fn examine(&mut self, device: &str) -> Result<Option<Examine>, HostError> {
        self.alive()?;
        Ok(self.disk(device)?.superblock.clone())
    }

    fn detail(&mut self, md_device: &str) -> Result<Option<Detail>, HostError> {
        self.alive()?;
        let Some((uuid, members)) = self.running.get(md_device) else { return Ok(None) };
        let a = &self.arrays[uuid];
        Ok(Some(Detail {
            level: "raid5".into(),
            raid_devices: a.raid_devices,
            metadata: Some("1.2".into()),
            uuid: uuid.clone(),
            name: a.name.clone(),
            members: members
                .iter()
                .enumerate()
                .map(|(i, d)| DetailMember { device: d.clone(), role: MemberRole::Active(i as u32) })
                .collect(),
        }))
    }

    fn mdstat(&mut self) -> Result<Mdstat, HostError> {
        self.alive()?;
        Ok(Mdstat {
            personalities: vec!["raid5".into()],
            arrays: self
                .running
                .iter()
                .map(|(md, (uuid, members))| {
                    let want = self.arrays[uuid].raid_devices;
                    MdstatArray {
                        name: md.trim_start_matches("/dev/").to_string(),
                        active: true,
                        read_only: false,
                        level: Some("raid5".into()),
                        members: members
                            .iter()
                            .enumerate()
                            .map(|(i, d)| MdstatMember {
                                name: d.trim_start_matches("/dev/").to_string(),
                                slot: i as u32,
                                faulty: false,
                                spare: false,
                            })
                            .collect(),
                        blocks: None,
                        devices: Some((want, members.len() as u32)),
                        health: None,
                        progress: None,
                    }
                })
                .collect(),
        })
    }

    fn create_array(
        &mut self,
        md_device: &str,
        name: &str,
        homehost: &str,
        members: &[String],
    ) -> Result<(), HostError> {
        let line = format!("mdadm --create {md_device} --name={name} --homehost={homehost} {}", members.join(" "));
        if self.running.contains_key(md_device) {
            self.alive()?;
            return Err(failed(&line, &format!("mdadm: device {md_device} exists but is not an md array.")));
        }
        for m in members {
            self.disk(m)?;
        }
        self.change("mdadm --create", line)?;
        self.next_uuid += 1;
        let uuid = format!("fake{:04}:0000:0000:0000", self.next_uuid);
        let member_size = members.iter().map(|m| self.disks[m].size).min().unwrap_or(0);
        let sb = FakeDisk::member_of(0, homehost, name, &uuid, members.len() as u32);
        for (i, m) in members.iter().enumerate() {
            if let Some(k) = self.cut_inside_create
                && i >= k
            {
                self.cut_inside_create = None;
                self.dead = true;
                return Err(HostError::Io { path: m.clone(), source: std::io::Error::other("power cut") });
            }
            let d = self.disks.get_mut(m).expect("checked above");
            if d.holds_data() {
                self.overwritten.push(m.clone());
            }
            d.superblock = sb.superblock.clone();
            d.signatures = vec![Signature::MdSuperblock];
        }
        self.arrays.insert(
            uuid.clone(),
            ArrayData {
                name: MdName { homehost: Some(homehost.into()), name: name.into() },
                raid_devices: members.len() as u32,
                member_size,
                pv: None,
            },
        );
        self.running.insert(md_device.to_string(), (uuid, members.to_vec()));
        Ok(())
    }

    fn assemble_array(&mut self, md_device: &str, uuid: &str, members: &[String]) -> Result<(), HostError> {
        let line = format!("mdadm --assemble {md_device} --run --uuid={uuid} {}", members.join(" "));
        self.alive()?;
        if self.running.contains_key(md_device) || self.md_of_uuid(uuid).is_some() {
            return Err(failed(&line, &format!("mdadm: {md_device} is already in use.")));
        }
        let Some(a) = self.arrays.get(uuid) else {
            return Err(failed(&line, &format!("mdadm: no devices found for {md_device}")));
        };
        let want = a.raid_devices;
        let mut usable = Vec::new();
        for m in members {
            let d = self.disk(m)?;
            if d.superblock.as_ref().map(|s| s.array_uuid.as_str()) == Some(uuid) {
                usable.push(m.clone());
            }
        }
        if (usable.len() as u32) < want.saturating_sub(1).max(1) {
            return Err(failed(
                &line,
                &format!("mdadm: {md_device} assembled from {} drives - not enough to start the array.", usable.len()),
            ));
        }
        self.change("mdadm --assemble", line)?;
        self.running.insert(md_device.to_string(), (uuid.to_string(), usable));
        Ok(())
    }

    fn stop_array(&mut self, md_device: &str) -> Result<(), HostError> {
        let line = format!("mdadm --stop {md_device}");
        self.alive()?;
        if !self.running.contains_key(md_device) {
            return Err(failed(&line, &format!("mdadm: error opening {md_device}: No such file or directory")));
        }
        self.change("mdadm --stop", line)?;
        self.running.remove(md_device);
        Ok(())
    }

    /// Models membership only: fail keeps the device listed until it is
    /// removed; re-add and add list it again (no resync is modelled).
    fn manage(&mut self, md_device: &str, action: MemberAction, device: &str) -> Result<(), HostError> {
        let line = format!("mdadm --manage {md_device} {} {device}", action.option());
        self.alive()?;
        let Some((_, members)) = self.running.get(md_device) else {
            return Err(failed(&line, &format!("mdadm: error opening {md_device}: No such file or directory")));
        };
        let listed = members.iter().any(|m| m == device);
        match action {
            MemberAction::Fail | MemberAction::Remove if !listed => {
                return Err(failed(&line, &format!("mdadm: {device} is not a member of {md_device}")));
            }
            MemberAction::ReAdd | MemberAction::Add if listed => {
                return Err(failed(&line, &format!("mdadm: {device} is already a member of {md_device}")));
            }
            _ => {}
        }
        self.change("mdadm --manage", line)?;
        if let Some((_, members)) = self.running.get_mut(md_device) {
            match action {
                MemberAction::Fail => {}
                MemberAction::Remove => members.retain(|m| m != device),
                MemberAction::ReAdd | MemberAction::Add => members.push(device.to_string()),
            }
        }
        Ok(())
    }

    fn pvs(&mut self) -> Result<Vec<Pv>, HostError> {
        self.alive()?;
        let mut out = Vec::new();
        for (md, (uuid, _)) in &self.running {
            if let Some(vg) = &self.arrays[uuid].pv {
                let size = self.vg_extents(uuid) * EXTENT;
                let used: u64 = match vg {
                    Some(vg) => self.lvs.iter().filter(|((v, _), _)| v == vg).map(|(_, l)| l.extents * EXTENT).sum(),
                    None => 0,
                };
                out.push(Pv { name: md.clone(), vg: vg.clone(), size, free: size - used });
            }
        }
        Ok(out)
    }

    fn vgs(&mut self) -> Result<Vec<Vg>, HostError> {
        self.alive()?;
        let mut out = Vec::new();
        for (vg, uuid) in &self.vgs {
            if self.md_of_uuid(uuid).is_none() {
                continue; // its PV is not visible
            }
            let count = self.vg_extents(uuid);
            let used: u64 = self.lvs.iter().filter(|((v, _), _)| v == vg).map(|(_, l)| l.extents).sum();
            out.push(Vg {
                name: vg.clone(),
                size: count * EXTENT,
                free: (count - used) * EXTENT,
                extent_size: EXTENT,
                extent_count: count,
                free_count: count - used,
            });
        }
        Ok(out)
    }

    fn lvs(&mut self) -> Result<Vec<Lv>, HostError> {
        self.alive()?;
        Ok(self
            .lvs
            .iter()
            .filter(|((vg, _), _)| self.vgs.get(vg).is_some_and(|u| self.md_of_uuid(u).is_some()))
            .map(|((vg, lv), d)| Lv {
                name: lv.clone(),
                vg: vg.clone(),
                path: Self::lv_path(vg, lv),
                size: d.extents * EXTENT,
                attr: if d.active { "-wi-a-----".into() } else { "-wi-------".into() },
                origin: None,
            })
            .collect())
    }

    fn pvcreate(&mut self, device: &str) -> Result<(), HostError> {
        let line = format!("pvcreate {device}");
        self.alive()?;
        let Some(uuid) = self.running_uuid(device).map(str::to_string) else {
            return Err(failed(&line, &format!("  No device found for {device}.")));
        };
        if self.arrays[&uuid].pv.is_some() {
            return Err(failed(
                &line,
                &format!("  Can't initialize physical volume \"{device}\" of volume group without -ff"),
            ));
        }
        self.change("pvcreate", line)?;
        self.arrays.get_mut(&uuid).expect("running").pv = Some(None);
        Ok(())
    }

    fn vgcreate(&mut self, vg: &str, pv: &str) -> Result<(), HostError> {
        let line = format!("vgcreate {vg} {pv}");
        self.alive()?;
        let uuid = self.running_uuid(pv).map(str::to_string);
        let ok = uuid.as_ref().is_some_and(|u| self.arrays[u].pv == Some(None));
        if !ok || self.vgs.contains_key(vg) {
            return Err(failed(&line, &format!("  Physical volume '{pv}' is already in volume group or is not a PV")));
        }
        self.change("vgcreate", line)?;
        let uuid = uuid.expect("checked");
        self.arrays.get_mut(&uuid).expect("running").pv = Some(Some(vg.to_string()));
        self.vgs.insert(vg.to_string(), uuid);
        Ok(())
    }

    fn lvcreate(&mut self, vg: &str, lv: &str, extents: u64) -> Result<(), HostError> {
        let line = format!("lvcreate -y -Wy -Zy -n {lv} -l {extents} {vg}");
        let free = self.vgs()?.into_iter().find(|v| v.name == vg).map(|v| v.free_count);
        match free {
            None => return Err(failed(&line, &format!("  Volume group \"{vg}\" not found"))),
            Some(f) if f < extents => return Err(failed(&line, "  Insufficient free space")),
            _ => {}
        }
        if self.lvs.contains_key(&(vg.to_string(), lv.to_string())) {
            return Err(failed(&line, &format!("  Logical Volume \"{lv}\" already exists in volume group \"{vg}\"")));
        }
        self.change("lvcreate", line)?;
        self.lvs.insert((vg.to_string(), lv.to_string()), LvData { extents, active: true, ext4: false });
        Ok(())
    }

    fn vgchange(&mut self, vg: &str, active: bool) -> Result<(), HostError> {
        let line = format!("vgchange -a{} {vg}", if active { "y" } else { "n" });
        self.alive()?;
        if self.vgs.get(vg).is_none_or(|u| self.md_of_uuid(u).is_none()) {
            return Err(failed(&line, &format!("  Volume group \"{vg}\" not found")));
        }
        self.change("vgchange", line)?;
        for ((v, _), d) in self.lvs.iter_mut() {
            if v == vg {
                d.active = active;
            }
        }
        Ok(())
    }

    fn mkfs_ext4(&mut self, device: &str, label: &str) -> Result<(), HostError> {
        let line = format!("mkfs.ext4 -q -O 64bit,has_journal -L {label} {device}");
        self.alive()?;
        let key =
            self.lvs.iter().find(|((vg, lv), d)| Self::lv_path(vg, lv) == device && d.active).map(|(k, _)| k.clone());
        let Some(key) = key else {
            return Err(failed(&line, &format!("The file {device} does not exist and no size was specified.")));
        };
        self.change("mkfs.ext4", line)?;
        let d = self.lvs.get_mut(&key).expect("found");
        if d.ext4 {
            self.overwritten.push(device.to_string());
        }
        d.ext4 = true;
        Ok(())
    }

    fn resize2fs(&mut self, device: &str) -> Result<(), HostError> {
        let line = format!("resize2fs {device}");
        self.alive()?;
        if !self.lvs.iter().any(|((vg, lv), d)| Self::lv_path(vg, lv) == device && d.ext4) {
            return Err(failed(&line, "resize2fs: Bad magic number in super-block"));
        }
        self.change("resize2fs", line)
    }

    fn mount(&mut self, device: &str, target: &str, fstype: &str, options: &[String]) -> Result<(), HostError> {
        let line = format!("mount -t {fstype} -o {} {device} {target}", options.join(","));
        self.alive()?;
        let ok = self.lvs.iter().any(|((vg, lv), d)| Self::lv_path(vg, lv) == device && d.active && d.ext4);
        if !ok {
            return Err(failed(
                &line,
                &format!("mount: {target}: wrong fs type, bad option, bad superblock on {device}"),
            ));
        }
        if self.mounted.iter().any(|m| m.target == target) {
            return Err(failed(&line, &format!("mount: {target}: {device} already mounted or mount point busy.")));
        }
        self.change("mount", line)?;
        self.mounted.push(Mount {
            source: device.into(),
            target: target.into(),
            fstype: fstype.into(),
            options: options.to_vec(),
        });
        Ok(())
    }

    fn umount(&mut self, target: &str) -> Result<(), HostError> {
        let line = format!("umount {target}");
        self.alive()?;
        if !self.mounted.iter().any(|m| m.target == target) {
            return Err(failed(&line, &format!("umount: {target}: not mounted.")));
        }
        self.change("umount", line)?;
        self.mounted.retain(|m| m.target != target);
        Ok(())
    }

    fn mounts(&mut self) -> Result<Vec<Mount>, HostError> {
        self.alive()?;
        Ok(self.mounted.clone())
    }

    fn device_size(&mut self, device: &str) -> Result<u64, HostError> {
        self.alive()?;
        Ok(self.disk(device)?.size)
    }

    fn probe(&mut self, device: &str) -> Result<Vec<Signature>, HostError> {
        self.alive()?;
        if let Some(uuid) = self.running_uuid(device) {
            return Ok(if self.arrays[uuid].pv.is_some() { vec![Signature::LvmPv] } else { vec![] });
        }
        if let Some((_, d)) = self.lvs.iter().find(|((vg, lv), d)| Self::lv_path(vg, lv) == device && d.active) {
            return Ok(if d.ext4 { vec![Signature::Ext] } else { vec![] });
        }
        Ok(self.disk(device)?.signatures.clone())
    }

    fn exports(&mut self) -> Result<Vec<Export>, HostError> {
        self.alive()?;
        Ok(self.exports.clone())
    }

    fn export(&mut self, client: &str, path: &str, options: &[String]) -> Result<(), HostError> {
        let line = format!("exportfs -o {} {client}:{path}", options.join(","));
        if !self.mounted.iter().any(|m| path.starts_with(&m.target)) {
            self.alive()?;
            return Err(failed(&line, &format!("exportfs: Failed to stat {path}: No such file or directory")));
        }
        self.change("exportfs", line)?;
        self.exports.retain(|e| !(e.client == client && e.path == path));
        self.exports.push(Export { path: path.into(), client: client.into(), options: options.to_vec() });
        Ok(())
    }

    fn unexport(&mut self, client: &str, path: &str) -> Result<(), HostError> {
        let line = format!("exportfs -u {client}:{path}");
        self.alive()?;
        if !self.exports.iter().any(|e| e.client == client && e.path == path) {
            return Err(failed(&line, &format!("exportfs: Could not find '{client}:{path}' to unexport.")));
        }
        self.change("exportfs -u", line)?;
        self.exports.retain(|e| !(e.client == client && e.path == path));
        Ok(())
    }

    fn ksmbd_set_user(&mut self, user: &str, _password: &str, exists: bool) -> Result<(), HostError> {
        self.change("ksmbd.adduser", format!("ksmbd.adduser -{} {user}", if exists { "u" } else { "a" }))
    }

    fn ksmbd_delete_user(&mut self, user: &str) -> Result<(), HostError> {
        self.change("ksmbd.adduser", format!("ksmbd.adduser -d {user}"))
    }

    fn ksmbd_reload(&mut self) -> Result<(), HostError> {
        self.change("ksmbd.control", "ksmbd.control --reload".into())
    }
}
