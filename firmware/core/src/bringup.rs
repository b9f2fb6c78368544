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
//! When a member stays away, the group starts degraded with all but one
//! member once `member_wait` has passed since the head started waiting —
//! never with fewer, and never by creating: a degraded start only
//! assembles an existing group. Re-adding the member when it comes back is
//! the recovery planner's decision (`crate::recovery`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Default time to wait for every member before starting with all but one.
pub const DEFAULT_MEMBER_WAIT: Duration = Duration::from_secs(120);
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
    /// member order, and mount it. `degraded`: one member is missing, so
    /// only assemble (never create).
    Start { group: String, devices: Vec<String>, degraded: bool },
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
    member_wait: Duration,
    /// Since when some member has been missing (None: all ready).
    waiting_since: Option<Duration>,
}

impl Bringup {
    pub fn new(group: &str, member_wait: Duration) -> Self {
        Bringup {
            group: group.to_string(),
            attached: BTreeMap::new(),
            phase: Phase::Waiting,
            members: 0,
            ready: 0,
            member_wait,
            waiting_since: None,
        }
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
        if members < MIN_MEMBERS {
            return None;
        }
        let degraded = ready.len() < members;
        if degraded {
            let since = *self.waiting_since.get_or_insert(now);
            let waited_out = now >= since + self.member_wait;
            // RAID5 survives one missing member, never two.
            if !(waited_out && ready.len() + 1 == members) {
                return None;
            }
        } else {
            self.waiting_since = None;
        }
        if let Some(member) = ready.iter().find(|m| !self.attached.contains_key(&m.serial)) {
            let device = self.free_device();
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
        Some(Step::Start {
            group: self.group.clone(),
            devices: devices.into_iter().map(|(_, d)| d).collect(),
            degraded,
        })
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

    /// The nbd device index a member's export is attached as.
    pub fn device_of(&self, serial: &str) -> Option<u32> {
        self.attached.get(serial).copied()
    }

    /// Members attached to the running group, by serial.
    pub fn attached_members(&self) -> impl Iterator<Item = (&str, u32)> {
        self.attached.iter().map(|(s, d)| (s.as_str(), *d))
    }

    /// The lowest nbd index not in use, for a spare joining the group.
    pub fn free_device(&self) -> u32 {
        (0..).find(|i| !self.attached.values().any(|d| d == i)).unwrap_or(0)
    }

    /// A spare took a missing member's slot (attached as `device`).
    pub fn replaced(&mut self, missing: &str, spare: &str, device: u32) {
        self.attached.remove(missing);
        self.attached.insert(spare.to_string(), device);
    }

    /// A member that was away when the group started degraded is back in
    /// the running group as `device`.
    pub fn rejoined(&mut self, serial: &str, device: u32) {
        self.attached.insert(serial.to_string(), device);
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
            Phase::Waiting => match self.waiting_since {
                Some(since) if self.ready + 1 == self.members => format!(
                    "group {g}: waiting for members ({} of {} ready; starting degraded {}s after {}s)",
                    self.ready,
                    self.members,
                    self.member_wait.as_secs(),
                    since.as_secs()
                ),
                _ => format!("group {g}: waiting for members ({} of {} ready)", self.ready, self.members),
            },
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
        let mut b = Bringup::new("g1", DEFAULT_MEMBER_WAIT);
        assert_eq!(b.next(1, &[member(1)], T), None);
        assert!(b.describe().contains("at least 2"));
        assert_eq!(b.next(3, &[member(1), member(2)], T), None);
        assert!(b.describe().contains("2 of 3 ready"), "{}", b.describe());
    }

    #[test]
    fn attaches_one_at_a_time_then_starts_in_attach_order() {
        let mut b = Bringup::new("g1", DEFAULT_MEMBER_WAIT);
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
            Some(Step::Start {
                group: "g1".into(),
                devices: vec!["/dev/nbd0".into(), "/dev/nbd1".into()],
                degraded: false
            })
        );
        b.started(Ok(()), T);
        assert!(b.is_online());
        assert_eq!(b.next(2, &ready, T), None);
    }

    #[test]
    fn a_failed_step_is_retried_after_a_pause() {
        let mut b = Bringup::new("g1", DEFAULT_MEMBER_WAIT);
        let ready = [member(1), member(2)];
        b.next(2, &ready, T);
        b.attached("ISU-1", 0, Err("refused".into()), T);
        assert!(b.describe().contains("attaching ISU-1: refused"));
        assert_eq!(b.next(2, &ready, T + Duration::from_secs(1)), None);
        assert!(matches!(b.next(2, &ready, T + RETRY_AFTER), Some(Step::Attach { .. })));
    }

    #[test]
    fn one_member_missing_past_the_wait_starts_degraded_by_assembling() {
        let mut b = Bringup::new("g1", Duration::from_secs(60));
        let ready = [member(1), member(2)];
        assert_eq!(b.next(3, &ready, T), None);
        assert_eq!(b.next(3, &ready, T + Duration::from_secs(59)), None);
        let at = T + Duration::from_secs(60);
        let Some(Step::Attach { serial, device, .. }) = b.next(3, &ready, at) else { panic!("attach expected") };
        b.attached(&serial, device, Ok(()), at);
        let Some(Step::Attach { serial, device, .. }) = b.next(3, &ready, at) else { panic!("attach expected") };
        b.attached(&serial, device, Ok(()), at);
        let Some(Step::Start { degraded, devices, .. }) = b.next(3, &ready, at) else { panic!("start expected") };
        assert!(degraded);
        assert_eq!(devices.len(), 2);
    }

    #[test]
    fn two_members_missing_never_start() {
        let mut b = Bringup::new("g1", Duration::from_secs(60));
        let ready = [member(1)];
        assert_eq!(b.next(3, &ready, T), None);
        assert_eq!(b.next(3, &ready, T + Duration::from_secs(3600)), None);
    }
}
