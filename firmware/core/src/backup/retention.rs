//! Retention: which dated backup versions of one job to keep and which to
//! delete (issue 10 "retention (keep N daily, N weekly)").
//!
//! A policy keeps, among *successful* versions, the newest version of each
//! of the `daily` most recent local days that have one, of the `weekly`
//! most recent ISO weeks (Monday to Sunday, ISO week-numbering year) and,
//! optionally, of the `monthly` most recent months. A version may be kept
//! for several reasons at once. Besides the policy:
//!
//! - the newest successful version is always kept (it is the next run's
//!   `--link-dest` and the last good copy), even with every count at 0;
//! - a version a restore is reading is never deleted;
//! - failed or cancelled versions (partial trees) are deleted unless a
//!   restore is reading them.
//!
//! The caller lists finished versions only; a run in progress is not a
//! version yet. Deleting the trees is the daemon's work.

use std::collections::BTreeSet;

use super::civil::{UnixTime, Zone};

/// How many versions to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Newest version of each of this many most recent days.
    pub daily: u32,
    /// Newest version of each of this many most recent ISO weeks.
    pub weekly: u32,
    /// Newest version of each of this many most recent months, if set.
    pub monthly: Option<u32>,
}

/// One finished version on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The version's name on the target (its dated directory).
    pub name: String,
    /// When the run that wrote it started.
    pub started: UnixTime,
    /// Whether the run completed and verified.
    pub ok: bool,
    /// Whether a restore is reading it now.
    pub in_use: bool,
}

/// Why a version is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    NewestSuccess,
    InUse,
    Daily,
    Weekly,
    Monthly,
}

/// The decision for every version given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Kept versions with their reasons, newest first.
    pub keep: Vec<(String, BTreeSet<Reason>)>,
    /// Versions to delete, oldest first.
    pub delete: Vec<String>,
}

/// Maps a version's start to its day, ISO week or month.
type BucketOf<'a> = &'a dyn Fn(UnixTime) -> (i32, u8, u8);

/// Decides which of `versions` to keep under `policy`, with days, weeks and
/// months counted in `zone`'s local time. Versions with the same start are
/// ordered by name, so the result does not depend on the input order.
pub fn plan(versions: &[Version], policy: &Policy, zone: &Zone) -> Plan {
    let mut order: Vec<&Version> = versions.iter().collect();
    order.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.name.cmp(&a.name)));
    let mut reasons: Vec<BTreeSet<Reason>> = vec![BTreeSet::new(); order.len()];

    if let Some(i) = order.iter().position(|v| v.ok) {
        reasons[i].insert(Reason::NewestSuccess);
    }
    for (i, v) in order.iter().enumerate() {
        if v.in_use {
            reasons[i].insert(Reason::InUse);
        }
    }
    let buckets: [(Reason, u32, BucketOf<'_>); 3] = [
        (Reason::Daily, policy.daily, &|t| {
            let d = zone.date_at(t);
            (d.year, d.month, d.day)
        }),
        (Reason::Weekly, policy.weekly, &|t| {
            let (y, w) = zone.date_at(t).iso_week();
            (y, w, 0)
        }),
        (Reason::Monthly, policy.monthly.unwrap_or(0), &|t| {
            let d = zone.date_at(t);
            (d.year, d.month, 0)
        }),
    ];
    for (reason, count, bucket_of) in buckets {
        let mut seen = Vec::new();
        for (i, v) in order.iter().enumerate() {
            if !v.ok || seen.len() >= count as usize {
                continue;
            }
            let bucket = bucket_of(v.started);
            if !seen.contains(&bucket) {
                seen.push(bucket);
                reasons[i].insert(reason);
            }
        }
    }

    let mut result = Plan::default();
    for (v, why) in order.iter().zip(reasons) {
        if why.is_empty() {
            result.delete.push(v.name.clone());
        } else {
            result.keep.push((v.name.clone(), why));
        }
    }
    result.delete.reverse();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::civil::{DAY, Date, DstRule};
    use proptest::prelude::*;

    fn at(y: i32, m: u8, d: u8, h: u8) -> UnixTime {
        UnixTime(Date::new(y, m, d).expect("date").naive_at(h, 0))
    }

    fn version(t: UnixTime, ok: bool) -> Version {
        Version { name: t.stamp(), started: t, ok, in_use: false }
    }

    fn kept(p: &Plan) -> Vec<&str> {
        p.keep.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn daily_and_weekly() {
        // Two runs a day for 21 days, from Monday 2026-11-02.
        let mut vs = Vec::new();
        for day in 0..21 {
            let t = at(2026, 11, 2, 2).plus(day * DAY);
            vs.push(version(t, true));
            vs.push(version(t.plus(12 * 3600), true));
        }
        let p = plan(&vs, &Policy { daily: 3, weekly: 2, monthly: None }, &Zone::UTC);
        // Days 22, 21, 20 (newest of each, the 14:00 run); the newest of
        // week 47 is the 22nd's (already kept); week 46's newest is the 15th.
        assert_eq!(
            kept(&p),
            vec!["2026-11-22T140000Z", "2026-11-21T140000Z", "2026-11-20T140000Z", "2026-11-15T140000Z"]
        );
        assert_eq!(p.keep[0].1, BTreeSet::from([Reason::NewestSuccess, Reason::Daily, Reason::Weekly]));
        assert_eq!(p.delete.len(), 42 - 4);
        assert_eq!(p.delete[0], "2026-11-02T020000Z", "oldest first");
    }

    #[test]
    fn failures_in_use_and_newest_success() {
        let vs = vec![
            version(at(2026, 11, 25, 2), false),
            version(at(2026, 11, 24, 2), false),
            version(at(2026, 11, 20, 2), true),
            Version { in_use: true, ..version(at(2026, 10, 1, 2), true) },
            Version { in_use: true, ..version(at(2026, 9, 1, 2), false) },
        ];
        let none = Policy { daily: 0, weekly: 0, monthly: None };
        let p = plan(&vs, &none, &Zone::UTC);
        assert_eq!(kept(&p), vec!["2026-11-20T020000Z", "2026-10-01T020000Z", "2026-09-01T020000Z"]);
        assert_eq!(p.delete, vec!["2026-11-24T020000Z", "2026-11-25T020000Z"]);
    }

    #[test]
    fn monthly_and_iso_week_across_new_year() {
        // Thu 2026-12-31 and Fri 2027-01-01 are both in ISO week 2026-W53.
        let vs = vec![
            version(at(2027, 1, 1, 2), true),
            version(at(2026, 12, 31, 2), true),
            version(at(2026, 12, 27, 2), true),
            version(at(2026, 11, 30, 2), true),
        ];
        let p = plan(&vs, &Policy { daily: 0, weekly: 2, monthly: None }, &Zone::UTC);
        assert_eq!(kept(&p), vec!["2027-01-01T020000Z", "2026-12-27T020000Z"]);
        let p = plan(&vs, &Policy { daily: 0, weekly: 0, monthly: Some(3) }, &Zone::UTC);
        assert_eq!(kept(&p), vec!["2027-01-01T020000Z", "2026-12-31T020000Z", "2026-11-30T020000Z"]);
    }

    #[test]
    fn days_are_local() {
        // 23:30 UTC on the 24th is already the 25th in CET.
        let cet = Zone::new(3600, Some(DstRule::Eu)).expect("offset");
        let vs = vec![version(at(2026, 11, 24, 23).plus(1800), true), version(at(2026, 11, 25, 1), true)];
        let p = plan(&vs, &Policy { daily: 2, weekly: 0, monthly: None }, &cet);
        assert_eq!(kept(&p), vec!["2026-11-25T010000Z"]);
        let p = plan(&vs, &Policy { daily: 2, weekly: 0, monthly: None }, &Zone::UTC);
        assert_eq!(p.keep.len(), 2);
    }

    fn arb_versions() -> impl Strategy<Value = Vec<Version>> {
        prop::collection::vec((0i64..200 * DAY, any::<bool>(), prop::bool::weighted(0.1)), 0..60).prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (offset, ok, in_use))| Version {
                    name: format!("v{i:03}"),
                    started: UnixTime(1_780_000_000 + offset),
                    ok,
                    in_use,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn retention_properties(
            vs in arb_versions(),
            daily in 0u32..10,
            weekly in 0u32..6,
            monthly in prop::option::of(0u32..4),
        ) {
            let policy = Policy { daily, weekly, monthly };
            let p = plan(&vs, &policy, &Zone::UTC);
            let keep: BTreeSet<&str> = p.keep.iter().map(|(n, _)| n.as_str()).collect();
            let delete: BTreeSet<&str> = p.delete.iter().map(String::as_str).collect();
            // Every version decided exactly once.
            prop_assert_eq!(keep.len() + delete.len(), vs.len());
            prop_assert!(keep.is_disjoint(&delete));
            // The newest successful version is kept.
            if let Some(newest) = vs.iter().filter(|v| v.ok).max_by(|a, b| {
                a.started.cmp(&b.started).then_with(|| a.name.cmp(&b.name))
            }) {
                prop_assert!(keep.contains(newest.name.as_str()));
            }
            // Versions in use are never deleted.
            for v in vs.iter().filter(|v| v.in_use) {
                prop_assert!(keep.contains(v.name.as_str()));
            }
            // Keep counts: exactly min(N, distinct buckets with a success).
            let count = |r: Reason| p.keep.iter().filter(|(_, why)| why.contains(&r)).count();
            let distinct = |f: &dyn Fn(UnixTime) -> (i32, u8, u8)| {
                vs.iter().filter(|v| v.ok).map(|v| f(v.started)).collect::<BTreeSet<_>>().len()
            };
            let days = distinct(&|t| { let d = t.utc_date(); (d.year, d.month, d.day) });
            let weeks = distinct(&|t| { let (y, w) = t.utc_date().iso_week(); (y, w, 0) });
            let months = distinct(&|t| { let d = t.utc_date(); (d.year, d.month, 0) });
            prop_assert_eq!(count(Reason::Daily), days.min(daily as usize));
            prop_assert_eq!(count(Reason::Weekly), weeks.min(weekly as usize));
            prop_assert_eq!(count(Reason::Monthly), months.min(monthly.unwrap_or(0) as usize));
            // Nothing else is kept: a kept version has a policy reason, or
            // is the newest success, or is in use; failures only when in use.
            for (name, why) in &p.keep {
                let v = vs.iter().find(|v| &v.name == name).expect("listed");
                prop_assert!(v.ok || why == &BTreeSet::from([Reason::InUse]));
            }
        }
    }
}
