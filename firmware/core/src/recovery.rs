//! The recovery planner: what to do about a degraded RAID group (seed 1.10,
//! DESIGN §11), decided without I/O.
//!
//! Input is what the monitor knows about one group at a time `now`: each
//! member slot (in sync, missing since when, rebuilding), the adopted
//! spares and whether a reshape is running. Output is at most one step per
//! call, plus alerts:
//!
//! - a member that comes back while its slot is still its own is re-added
//!   through the write-intent bitmap (seconds, not a full rebuild);
//! - a member missing for longer than the admin's spare timeout is replaced
//!   by the smallest spare that is big enough, and rebuild starts;
//! - a member that comes back after its slot was given away becomes a
//!   spare only when the admin confirms (its data is stale);
//! - never: more than one replacement at a time, a spare smaller than the
//!   group's member size, any change while a reshape or rebuild runs, any
//!   automatic action on a group that has lost more members than RAID5
//!   survives.
//!
//! The monitor feeds observations, the daemon carries out the step through
//! mdadm and tells the planner the result in the next snapshot.

use std::time::Duration;

/// Default time a member may be missing before a spare replaces it.
pub const DEFAULT_SPARE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// One member slot of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The ISU whose export holds this slot.
    pub isu: String,
    pub state: SlotState,
}

/// A slot's state as md and the monitor see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    InSync,
    /// Failed or unreachable since the given time.
    Missing {
        since: Duration,
    },
    /// Gone, and its ISU is reachable again (its export answers).
    Returned {
        since: Duration,
    },
    /// Being rebuilt or re-added.
    Recovering,
}

/// An adopted spare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spare {
    pub isu: String,
    pub size: u64,
}

/// What the planner knows about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub name: String,
    /// Bytes each member contributes; a spare must have at least this.
    pub member_size: u64,
    pub slots: Vec<Slot>,
    pub spares: Vec<Spare>,
    pub reshaping: bool,
    /// ISUs that held a slot until it was given to a spare, back now.
    pub replaced_back: Vec<String>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `mdadm --re-add` the returned member: the bitmap resyncs the rest.
    ReAdd { isu: String },
    /// Give the missing member's slot to this spare and rebuild.
    Replace { missing: String, spare: String },
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub step: Option<Step>,
    /// Conditions the admin must see, in words.
    pub alerts: Vec<String>,
    /// ISUs the admin may confirm as spares (they came back replaced).
    pub offer_as_spare: Vec<String>,
    /// When to plan again if nothing changes (a spare timeout running out).
    pub wake_at: Option<Duration>,
}

/// Plans the next step for `group` at `now`.
pub fn plan(group: &GroupView, now: Duration, spare_timeout: Duration) -> Plan {
    let mut plan = Plan { offer_as_spare: group.replaced_back.clone(), ..Plan::default() };
    let missing: Vec<(&Slot, Duration)> = group
        .slots
        .iter()
        .filter_map(|s| match s.state {
            SlotState::Missing { since } | SlotState::Returned { since } => Some((s, since)),
            _ => None,
        })
        .collect();
    let recovering = group.slots.iter().any(|s| s.state == SlotState::Recovering);
    if missing.is_empty() {
        return plan;
    }
    if missing.len() > 1 {
        // RAID5 has lost data redundancy twice over: no automatic step can
        // help, and a wrong one could make it worse.
        let names: Vec<&str> = missing.iter().map(|(s, _)| s.isu.as_str()).collect();
        plan.alerts.push(format!(
            "group {} has {} members missing ({}): it is offline until they return; nothing is done automatically",
            group.name,
            missing.len(),
            names.join(", ")
        ));
        return plan;
    }
    let (slot, since) = missing[0];
    plan.alerts.push(format!("group {} is degraded: {} is missing", group.name, slot.isu));
    if group.reshaping || recovering {
        plan.alerts.push(format!("group {}: waiting for the running reshape or rebuild before recovering", group.name));
        return plan;
    }
    if let SlotState::Returned { .. } = slot.state {
        plan.step = Some(Step::ReAdd { isu: slot.isu.clone() });
        return plan;
    }
    let deadline = since + spare_timeout;
    if now < deadline {
        plan.wake_at = Some(deadline);
        return plan;
    }
    let fitting = group.spares.iter().filter(|s| s.size >= group.member_size).min_by_key(|s| (s.size, s.isu.clone()));
    match fitting {
        Some(spare) => plan.step = Some(Step::Replace { missing: slot.isu.clone(), spare: spare.isu.clone() }),
        None if group.spares.is_empty() => {
            plan.alerts.push(format!("group {}: no spare to replace {}; adopt an ISU as a spare", group.name, slot.isu))
        }
        None => plan.alerts.push(format!(
            "group {}: every spare is smaller than the member size of {} bytes; none can replace {}",
            group.name, group.member_size, slot.isu
        )),
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;
    const TIMEOUT: Duration = DEFAULT_SPARE_TIMEOUT;

    fn group(states: &[SlotState], spares: &[u64]) -> GroupView {
        GroupView {
            name: "g1".into(),
            member_size: 4 * GIB,
            slots: states.iter().enumerate().map(|(i, s)| Slot { isu: format!("isu{i}"), state: *s }).collect(),
            spares: spares
                .iter()
                .enumerate()
                .map(|(i, size)| Spare { isu: format!("spare{i}"), size: *size })
                .collect(),
            reshaping: false,
            replaced_back: Vec::new(),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn healthy_group_needs_nothing() {
        let p = plan(&group(&[SlotState::InSync; 3], &[4 * GIB]), secs(100), TIMEOUT);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn member_back_within_the_timeout_is_re_added() {
        let g = group(&[SlotState::InSync, SlotState::Returned { since: secs(10) }, SlotState::InSync], &[4 * GIB]);
        assert_eq!(plan(&g, secs(30), TIMEOUT).step, Some(Step::ReAdd { isu: "isu1".into() }));
    }

    #[test]
    fn spare_waits_for_the_timeout_then_replaces() {
        let g = group(&[SlotState::Missing { since: secs(10) }, SlotState::InSync, SlotState::InSync], &[4 * GIB]);
        let early = plan(&g, secs(10) + TIMEOUT - secs(1), TIMEOUT);
        assert_eq!(early.step, None);
        assert_eq!(early.wake_at, Some(secs(10) + TIMEOUT));
        assert!(early.alerts[0].contains("degraded"));
        let late = plan(&g, secs(10) + TIMEOUT, TIMEOUT);
        assert_eq!(late.step, Some(Step::Replace { missing: "isu0".into(), spare: "spare0".into() }));
    }

    #[test]
    fn smallest_fitting_spare_is_chosen_and_small_ones_never() {
        let g = group(&[SlotState::Missing { since: secs(0) }, SlotState::InSync], &[2 * GIB, 8 * GIB, 5 * GIB]);
        assert_eq!(
            plan(&g, TIMEOUT, TIMEOUT).step,
            Some(Step::Replace { missing: "isu0".into(), spare: "spare2".into() })
        );
        let small = group(&[SlotState::Missing { since: secs(0) }, SlotState::InSync], &[2 * GIB]);
        let p = plan(&small, TIMEOUT, TIMEOUT);
        assert_eq!(p.step, None);
        assert!(p.alerts.iter().any(|a| a.contains("smaller than the member size")), "{p:?}");
    }

    #[test]
    fn two_missing_members_mean_no_automatic_action() {
        let g = group(
            &[SlotState::Missing { since: secs(0) }, SlotState::Returned { since: secs(0) }, SlotState::InSync],
            &[4 * GIB],
        );
        let p = plan(&g, TIMEOUT * 2, TIMEOUT);
        assert_eq!(p.step, None);
        assert!(p.alerts[0].contains("2 members missing"));
    }

    #[test]
    fn nothing_happens_during_a_reshape_or_rebuild() {
        let mut g = group(&[SlotState::Missing { since: secs(0) }, SlotState::InSync, SlotState::InSync], &[4 * GIB]);
        g.reshaping = true;
        assert_eq!(plan(&g, TIMEOUT * 2, TIMEOUT).step, None);
        let g = group(&[SlotState::Missing { since: secs(0) }, SlotState::Recovering, SlotState::InSync], &[4 * GIB]);
        assert_eq!(plan(&g, TIMEOUT * 2, TIMEOUT).step, None);
    }

    #[test]
    fn replaced_member_that_returns_is_only_offered_as_spare() {
        let mut g = group(&[SlotState::InSync; 3], &[]);
        g.replaced_back = vec!["isu9".into()];
        let p = plan(&g, secs(5), TIMEOUT);
        assert_eq!(p.step, None);
        assert_eq!(p.offer_as_spare, vec!["isu9".to_string()]);
    }

    fn slot_state() -> impl Strategy<Value = SlotState> {
        prop_oneof![
            4 => Just(SlotState::InSync),
            1 => (0u64..2000).prop_map(|s| SlotState::Missing { since: secs(s) }),
            1 => (0u64..2000).prop_map(|s| SlotState::Returned { since: secs(s) }),
            1 => Just(SlotState::Recovering),
        ]
    }

    proptest! {
        /// Whatever the group looks like, the planner never loses
        /// redundancy by its own action: it never picks a too-small spare,
        /// never acts with more than one member missing or while a reshape
        /// or rebuild runs, and never replaces before the timeout.
        #[test]
        fn never_acts_unsafely(
            states in prop::collection::vec(slot_state(), 2..8),
            spares in prop::collection::vec(1u64..10, 0..4),
            reshaping in any::<bool>(),
            now in 0u64..4000,
        ) {
            let mut g = group(&states, &spares.iter().map(|s| s * GIB).collect::<Vec<_>>());
            g.reshaping = reshaping;
            let p = plan(&g, secs(now), secs(600));
            let gone = states.iter().filter(|s| matches!(s, SlotState::Missing { .. } | SlotState::Returned { .. })).count();
            if let Some(step) = &p.step {
                prop_assert_eq!(gone, 1);
                prop_assert!(!reshaping);
                prop_assert!(!states.contains(&SlotState::Recovering));
                if let Step::Replace { missing, spare } = step {
                    let chosen = g.spares.iter().find(|s| &s.isu == spare).expect("a listed spare");
                    prop_assert!(chosen.size >= g.member_size);
                    let slot = g.slots.iter().find(|s| &s.isu == missing).expect("a listed slot");
                    match slot.state {
                        SlotState::Missing { since } => prop_assert!(secs(now) >= since + secs(600)),
                        other => prop_assert!(false, "replaced a slot in state {:?}", other),
                    }
                }
            }
            if let Some(wake) = p.wake_at {
                prop_assert!(wake > secs(now));
            }
        }
    }
}
