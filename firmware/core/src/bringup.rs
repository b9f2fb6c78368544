//! The active head's storage start-up (DESIGN §10), without I/O: wait for
//! the group's members → attach each member's NBD export → create the
//! group the first time, assemble it afterwards → mount.
//!
//! The daemon tells [`Bringup`] which adopted members are ready (control
//! channel up and reporting a normal export) and the result of every step;
//! [`Bringup::next`] returns at most one step at a time, so steps never
//! overlap. Creating and assembling are one step: the storage driver
//! creates only on blank members and otherwise resumes or assembles, so a
//! head that restarts in the middle never creates twice.
//!
//! Not yet decided here: starting degraded with all but one member after a
//! timeout, and re-adding a member that comes back (the recovery planner,
//! `crate::recovery`, owns that decision).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Pause before a failed step is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The least number of members a RAID5 group has (seed 1.1).
pub const MIN_MEMBERS: usize = 2;

/// An adopted member whose export is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyMember {
    pub serial: String,
    pub addr: Ipv4Addr,
    pub export: String,
}

/// One thing for the daemon to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Attach `export` of the ISU at `addr` as `/dev/nbd{device}`.
    Attach { serial: String, addr: Ipv4Addr, export: String, device: u32 },
    /// Create (first time) or assemble the group over these devices, in
    /// member order, and mount it.
    Start { group: String, devices: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Waiting,
    Busy,
    Online,
    Failed { why: String, at: Duration },
}

/// The start-up of one group.
#[derive(Debug, Clone)]
pub struct Bringup {
    group: String,
    /// Member serial → nbd device index, in the order members were attached.
    attached: BTreeMap<String, u32>,
    phase: Phase,
    /// How many members the group has (adopted as member).
    members: usize,
    ready: usize,
}

impl Bringup {
    pub fn new(group: &str) -> Self {
        Bringup { group: group.to_string(), attached: BTreeMap::new(), phase: Phase::Waiting, members: 0, ready: 0 }
    }

    /// The next step, given the adopted member count and the ready ones.
    pub fn next(&mut self, members: usize, ready: &[ReadyMember], now: Duration) -> Option<Step> {
        self.members = members;
        self.ready = ready.len();
        match &self.phase {
            Phase::Busy | Phase::Online => return None,
            Phase::Failed { at, .. } if now < *at + RETRY_AFTER => return None,
            _ => {}
        }
        if members < MIN_MEMBERS || ready.len() < members {
            return None;
        }
        if let Some(member) = ready.iter().find(|m| !self.attached.contains_key(&m.serial)) {
            let device = (0..).find(|i| !self.attached.values().any(|d| d == i)).unwrap_or(0);
            self.phase = Phase::Busy;
            return Some(Step::Attach {
                serial: member.serial.clone(),
                addr: member.addr,
                export: member.export.clone(),
                device,
            });
        }
        let mut devices: Vec<(u32, String)> =
            ready.iter().filter_map(|m| self.attached.get(&m.serial).map(|d| (*d, format!("/dev/nbd{d}")))).collect();
        devices.sort();
        self.phase = Phase::Busy;
        Some(Step::Start { group: self.group.clone(), devices: devices.into_iter().map(|(_, d)| d).collect() })
    }

    /// The result of an `Attach` step.
    pub fn attached(&mut self, serial: &str, device: u32, result: Result<(), String>, now: Duration) {
        match result {
            Ok(()) => {
                self.attached.insert(serial.to_string(), device);
                self.phase = Phase::Waiting;
            }
            Err(why) => self.phase = Phase::Failed { why: format!("attaching {serial}: {why}"), at: now },
        }
    }

    /// The result of a `Start` step.
    pub fn started(&mut self, result: Result<(), String>, now: Duration) {
        self.phase = match result {
            Ok(()) => Phase::Online,
            Err(why) => Phase::Failed { why: format!("starting group {}: {why}", self.group), at: now },
        };
    }

    pub fn is_online(&self) -> bool {
        self.phase == Phase::Online
    }

    /// Where start-up is, in words, for `opie status`.
    pub fn describe(&self) -> String {
        let g = &self.group;
        match &self.phase {
            Phase::Online => format!("group {g}: online"),
            Phase::Failed { why, .. } => format!("group {g}: {why}; retrying"),
            Phase::Busy if self.attached.len() < self.members => {
                format!("group {g}: attaching members ({} of {} attached)", self.attached.len(), self.members)
            }
            Phase::Busy => format!("group {g}: starting RAID5, volume and filesystem"),
            Phase::Waiting if self.members < MIN_MEMBERS => {
                format!("group {g}: waiting for members ({} adopted, at least {MIN_MEMBERS} needed)", self.members)
            }
            Phase::Waiting => format!("group {g}: waiting for members ({} of {} ready)", self.ready, self.members),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> ReadyMember {
        ReadyMember { serial: format!("ISU-{n}"), addr: Ipv4Addr::new(10, 77, 0, 100 + n), export: "disk0".into() }
    }

    const T: Duration = Duration::from_secs(1000);

    #[test]
    fn waits_for_two_members_and_for_every_adopted_one() {
        let mut b = Bringup::new("g1");
        assert_eq!(b.next(1, &[member(1)], T), None);
        assert!(b.describe().contains("at least 2"));
        assert_eq!(b.next(3, &[member(1), member(2)], T), None);
        assert!(b.describe().contains("2 of 3 ready"), "{}", b.describe());
    }

    #[test]
    fn attaches_one_at_a_time_then_starts_in_attach_order() {
        let mut b = Bringup::new("g1");
        let ready = [member(2), member(1)];
        let Some(Step::Attach { serial, device, .. }) = b.next(2, &ready, T) else { panic!("attach expected") };
        assert_eq!((serial.as_str(), device), ("ISU-2", 0));
        assert_eq!(b.next(2, &ready, T), None, "a second step while one is running");
        b.attached("ISU-2", 0, Ok(()), T);
        let Some(Step::Attach { serial, device, .. }) = b.next(2, &ready, T) else { panic!("attach expected") };
        assert_eq!((serial.as_str(), device), ("ISU-1", 1));
        b.attached("ISU-1", 1, Ok(()), T);
        assert_eq!(
            b.next(2, &ready, T),
            Some(Step::Start { group: "g1".into(), devices: vec!["/dev/nbd0".into(), "/dev/nbd1".into()] })
        );
        b.started(Ok(()), T);
        assert!(b.is_online());
        assert_eq!(b.next(2, &ready, T), None);
    }

    #[test]
    fn a_failed_step_is_retried_after_a_pause() {
        let mut b = Bringup::new("g1");
        let ready = [member(1), member(2)];
        b.next(2, &ready, T);
        b.attached("ISU-1", 0, Err("refused".into()), T);
        assert!(b.describe().contains("attaching ISU-1: refused"));
        assert_eq!(b.next(2, &ready, T + Duration::from_secs(1)), None);
        assert!(matches!(b.next(2, &ready, T + RETRY_AFTER), Some(Step::Attach { .. })));
    }
}
