//! One backup job's state machine (DESIGN §8, issue 10 "Backups"): when to
//! run, the steps of a run, and what is recorded and alerted.
//!
//! A run goes idle → snapshotting (take snapshot, mount it read-only) →
//! copying (to a dated path, `--link-dest` the last good version) →
//! verifying → cleaning up (remove the snapshot) → idle, then records its
//! result. Cancel or a failed step from any state goes to cleaning up, so
//! the snapshot is always removed.
//!
//! - **No overlap**: a run that falls due (or is asked for) while one is
//!   running is queued once; more due slots while queued add nothing. A
//!   cancel also drops the queued run.
//! - **Crash recovery**: the daemon persists [`JobState`] after every
//!   [`Job::handle`] that returned actions, before carrying them out. A job
//!   found mid-run at start-up first removes the leftover snapshot
//!   ([`Action::RemoveSnapshot`] is the first action), records the run as
//!   failed, and then runs once more if a slot was missed
//!   ([`schedule::on_startup`], from the interrupted run's start).
//! - **Snapshot removal fails**: the run is recorded as failed and the next
//!   run removes the leftover before taking a new snapshot.
//! - **Alerts**: when a run fails (not when cancelled), and once when the
//!   job has not succeeded within twice its schedule's
//!   [`schedule::interval`] of the end of its last success (or of its
//!   creation); the once-flag is not persisted, so a restart may repeat it.
//!
//! Actions are carried out in order, each finished before the next, and
//! each reports back with an [`Event`] naming the run it belongs to; events
//! of another run, or of a step that is not in flight, are ignored (a copy
//! that ends after a cancel, for example). What "snapshot", "mount" and
//! "copy" mean (LVM, rsync) is `opie-sys`'s business.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::civil::{UnixTime, Zone};
use super::schedule::{self, Schedule, Startup};

/// Runs kept in a job's history.
pub const HISTORY_LEN: usize = 32;

/// Identifies one run of a job; increases with every run.
pub type RunId = u64;

/// What a job's configuration says, as far as the state machine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub schedule: Schedule,
    /// The administrator's time zone, in which the schedule is read.
    pub zone: Zone,
    /// The job's directory on the target; versions are dated below it.
    pub target: String,
}

/// The state a job is in, as shown on the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Snapshotting,
    Copying,
    Verifying,
    CleaningUp,
}

/// The step of a run that is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Removing a snapshot left behind by an earlier run, before this
    /// run takes its own.
    RemoveLeftover,
    Snapshot,
    Mount,
    Copy,
    Verify,
    RemoveSnapshot,
}

impl Step {
    fn phase(self) -> Phase {
        match self {
            Step::RemoveLeftover | Step::Snapshot | Step::Mount => Phase::Snapshotting,
            Step::Copy => Phase::Copying,
            Step::Verify => Phase::Verifying,
            Step::RemoveSnapshot => Phase::CleaningUp,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::RemoveLeftover => "removing leftover snapshot",
            Step::Snapshot => "taking snapshot",
            Step::Mount => "mounting snapshot",
            Step::Copy => "copying",
            Step::Verify => "verifying",
            Step::RemoveSnapshot => "removing snapshot",
        })
    }
}

/// What the copy reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Success,
    Cancelled,
    Failed(String),
}

/// One finished run, for the history and the status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run: RunId,
    pub started: UnixTime,
    pub ended: UnixTime,
    /// The dated version this run wrote (complete only on success).
    pub dest: String,
    pub stats: Option<CopyStats>,
    pub outcome: Outcome,
}

/// The run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub started: UnixTime,
    pub dest: String,
    pub step: Step,
    pub stats: Option<CopyStats>,
    /// Set once the run is cleaning up: how it will be recorded.
    pub outcome: Option<Outcome>,
}

/// Everything the daemon persists for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub created: UnixTime,
    pub next_id: RunId,
    pub last_start: Option<UnixTime>,
    pub last_success: Option<RunRecord>,
    pub last_error: Option<(UnixTime, String)>,
    /// Newest last, at most [`HISTORY_LEN`].
    pub history: VecDeque<RunRecord>,
    pub run: Option<Run>,
    /// A snapshot could not be removed; the next run removes it first.
    pub leftover_snapshot: bool,
}

/// Something for the daemon to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take the backup snapshot of the source volume.
    TakeSnapshot { run: RunId },
    /// Mount the snapshot read-only in a private place.
    MountReadOnly { run: RunId },
    /// Copy the mounted snapshot to `dest`, hard-linking unchanged files
    /// against `link_dest` (the last good version) when there is one.
    Copy { run: RunId, dest: String, link_dest: Option<String> },
    /// Verify `dest` against the snapshot (checksums of changed files).
    Verify { run: RunId, dest: String },
    /// Stop the copy or verify in flight (after a cancel).
    Abort { run: RunId },
    /// Unmount and remove the backup snapshot; no error if there is none.
    RemoveSnapshot { run: RunId },
    /// Store a finished run (also in the job state's history).
    Record(RunRecord),
    /// Tell the administrator.
    Alert(Alert),
}

/// A condition the status page and log raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// A run failed.
    Failed { job: String, error: String },
    /// No success within twice the schedule's interval; `last_success` is
    /// when the last successful run ended.
    Overdue { job: String, last_success: Option<UnixTime> },
}

/// An input to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Time passed; runs what is due and raises overdue alerts.
    Tick,
    /// The administrator asked for a run now.
    RunNow,
    /// The administrator cancelled the run in progress.
    Cancel,
    /// A step of `run` finished.
    Done { run: RunId, done: Done },
    /// A step of `run` failed.
    Failed { run: RunId, step: Step, error: String },
}

/// A finished step and what it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    SnapshotTaken,
    Mounted,
    Copied(CopyStats),
    Verified,
    SnapshotRemoved,
}

/// One backup job.
#[derive(Debug, Clone)]
pub struct Job {
    spec: JobSpec,
    state: JobState,
    next_run: Option<UnixTime>,
    queued: bool,
    overdue_at: Option<UnixTime>,
    overdue_alerted: bool,
}

impl Job {
    /// Brings a job up at `now`: a new job when `state` is `None`, else
    /// the persisted one. A one-time job that never ran starts now; a job
    /// found mid-run removes its leftover snapshot first; a missed slot
    /// runs once.
    pub fn start(spec: JobSpec, state: Option<JobState>, now: UnixTime) -> (Job, Vec<Action>) {
        let state = state.unwrap_or(JobState {
            created: now,
            next_id: 1,
            last_start: None,
            last_success: None,
            last_error: None,
            history: VecDeque::new(),
            run: None,
            leftover_snapshot: false,
        });
        let mut job = Job { spec, state, next_run: None, queued: false, overdue_at: None, overdue_alerted: false };
        job.refresh_overdue();
        let mut actions = Vec::new();
        let startup =
            schedule::on_startup(&job.spec.schedule, job.state.last_start, job.state.created, now, &job.spec.zone);
        let due = match startup {
            Startup::RunNow { .. } => {
                job.next_run = schedule::next_after(&job.spec.schedule, now, &job.spec.zone);
                true
            }
            Startup::Wait(next) => {
                job.next_run = next;
                false
            }
        };
        if let Some(run) = &mut job.state.run {
            let interrupted = run.step;
            log::warn!("backup {}: run {} interrupted while {interrupted}", job.spec.name, run.id);
            run.step = Step::RemoveSnapshot;
            // A run that had verified (or been cancelled) keeps that outcome.
            if run.outcome.is_none() {
                run.outcome = Some(Outcome::Failed(format!("interrupted while {interrupted}: the head restarted")));
            }
            actions.push(Action::RemoveSnapshot { run: run.id });
            job.queued = due;
        } else if due {
            actions.extend(job.start_run(now));
        }
        actions.extend(job.check_overdue(now));
        (job, actions)
    }

    /// Applies one event at time `now`.
    pub fn handle(&mut self, event: Event, now: UnixTime) -> Vec<Action> {
        let mut actions = match event {
            Event::Tick => self.tick(now),
            Event::RunNow => self.request_run(now),
            Event::Cancel => self.cancel(),
            Event::Done { run, done } => self.done(run, done, now),
            Event::Failed { run, step, error } => self.failed(run, step, error, now),
        };
        actions.extend(self.check_overdue(now));
        actions
    }

    /// When the job next wants a [`Event::Tick`].
    pub fn next_deadline(&self) -> Option<UnixTime> {
        let overdue = self.overdue_at.filter(|_| !self.overdue_alerted);
        match (self.next_run, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// What to persist.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    pub fn phase(&self) -> Phase {
        self.state.run.as_ref().map_or(Phase::Idle, |r| r.step.phase())
    }

    /// The next scheduled run (`None`: none scheduled).
    pub fn next_run(&self) -> Option<UnixTime> {
        self.next_run
    }

    /// Whether a run waits for the current one to end.
    pub fn queued(&self) -> bool {
        self.queued
    }

    fn tick(&mut self, now: UnixTime) -> Vec<Action> {
        match self.next_run {
            Some(at) if at <= now => {
                self.next_run = schedule::next_after(&self.spec.schedule, now, &self.spec.zone);
                self.request_run(now)
            }
            _ => Vec::new(),
        }
    }

    fn request_run(&mut self, now: UnixTime) -> Vec<Action> {
        if self.state.run.is_some() {
            self.queued = true;
            Vec::new()
        } else {
            self.start_run(now)
        }
    }

    fn start_run(&mut self, now: UnixTime) -> Vec<Action> {
        let id = self.state.next_id;
        self.state.next_id += 1;
        self.state.last_start = Some(now);
        let step = if self.state.leftover_snapshot { Step::RemoveLeftover } else { Step::Snapshot };
        self.state.run = Some(Run {
            id,
            started: now,
            dest: format!("{}/{}", self.spec.target.trim_end_matches('/'), now.stamp()),
            step,
            stats: None,
            outcome: None,
        });
        vec![match step {
            Step::RemoveLeftover => Action::RemoveSnapshot { run: id },
            _ => Action::TakeSnapshot { run: id },
        }]
    }

    fn cancel(&mut self) -> Vec<Action> {
        self.queued = false;
        let Some(run) = &mut self.state.run else { return Vec::new() };
        if run.outcome.is_some() {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if matches!(run.step, Step::Copy | Step::Verify) {
            actions.push(Action::Abort { run: run.id });
        }
        run.outcome = Some(Outcome::Cancelled);
        run.step = Step::RemoveSnapshot;
        actions.push(Action::RemoveSnapshot { run: run.id });
        actions
    }

    /// The run in progress, if `id` is it and `step` is in flight.
    fn current(&mut self, id: RunId, step: Step) -> Option<&mut Run> {
        match &mut self.state.run {
            Some(run) if run.id == id && run.step == step => Some(run),
            _ => {
                log::debug!("backup {}: ignoring a stale report of run {id} {step}", self.spec.name);
                None
            }
        }
    }

    fn done(&mut self, id: RunId, done: Done, now: UnixTime) -> Vec<Action> {
        let step = match (done, self.state.run.as_ref().map(|r| r.step)) {
            (Done::SnapshotRemoved, Some(Step::RemoveLeftover)) => Step::RemoveLeftover,
            (Done::SnapshotRemoved, _) => Step::RemoveSnapshot,
            (Done::SnapshotTaken, _) => Step::Snapshot,
            (Done::Mounted, _) => Step::Mount,
            (Done::Copied(_), _) => Step::Copy,
            (Done::Verified, _) => Step::Verify,
        };
        let link_dest = self.state.last_success.as_ref().map(|r| r.dest.clone());
        let Some(run) = self.current(id, step) else { return Vec::new() };
        match done {
            Done::SnapshotRemoved if step == Step::RemoveLeftover => {
                run.step = Step::Snapshot;
                self.state.leftover_snapshot = false;
                vec![Action::TakeSnapshot { run: id }]
            }
            Done::SnapshotRemoved => self.finish(now),
            Done::SnapshotTaken => {
                run.step = Step::Mount;
                vec![Action::MountReadOnly { run: id }]
            }
            Done::Mounted => {
                run.step = Step::Copy;
                vec![Action::Copy { run: id, dest: run.dest.clone(), link_dest }]
            }
            Done::Copied(stats) => {
                run.stats = Some(stats);
                run.step = Step::Verify;
                vec![Action::Verify { run: id, dest: run.dest.clone() }]
            }
            Done::Verified => {
                run.outcome = Some(Outcome::Success);
                run.step = Step::RemoveSnapshot;
                vec![Action::RemoveSnapshot { run: id }]
            }
        }
    }

    fn failed(&mut self, id: RunId, step: Step, error: String, now: UnixTime) -> Vec<Action> {
        let Some(run) = self.current(id, step) else { return Vec::new() };
        let message = format!("{step}: {error}");
        match step {
            Step::RemoveSnapshot | Step::RemoveLeftover => {
                // Keep the first cause; a cancelled run that cannot clean
                // up has failed.
                let cause = match run.outcome.take() {
                    Some(Outcome::Failed(first)) => format!("{first}; {message}"),
                    _ => message,
                };
                run.outcome = Some(Outcome::Failed(cause));
                self.state.leftover_snapshot = true;
                self.finish(now)
            }
            _ => {
                run.outcome = Some(Outcome::Failed(message));
                run.step = Step::RemoveSnapshot;
                vec![Action::RemoveSnapshot { run: id }]
            }
        }
    }

    /// Records the run in progress and starts the queued one, if any.
    fn finish(&mut self, now: UnixTime) -> Vec<Action> {
        let Some(run) = self.state.run.take() else { return Vec::new() };
        let record = RunRecord {
            run: run.id,
            started: run.started,
            ended: now,
            dest: run.dest,
            stats: run.stats,
            outcome: run.outcome.unwrap_or(Outcome::Cancelled),
        };
        let mut actions = Vec::new();
        match &record.outcome {
            Outcome::Success => {
                self.state.last_success = Some(record.clone());
                self.refresh_overdue();
            }
            Outcome::Failed(error) => {
                self.state.last_error = Some((now, error.clone()));
                actions.push(Action::Alert(Alert::Failed { job: self.spec.name.clone(), error: error.clone() }));
            }
            Outcome::Cancelled => {}
        }
        if self.state.history.len() == HISTORY_LEN {
            self.state.history.pop_front();
        }
        self.state.history.push_back(record.clone());
        actions.insert(0, Action::Record(record));
        if std::mem::take(&mut self.queued) {
            actions.extend(self.start_run(now));
        }
        actions
    }

    /// Recomputes when the job becomes overdue, from the end of its last
    /// success (or its creation): a long run that just succeeded is not
    /// overdue.
    fn refresh_overdue(&mut self) {
        let anchor = self.state.last_success.as_ref().map_or(self.state.created, |r| r.ended);
        self.overdue_at =
            schedule::interval(&self.spec.schedule, anchor, &self.spec.zone).map(|interval| anchor.plus(2 * interval));
        self.overdue_alerted = false;
    }

    fn check_overdue(&mut self, now: UnixTime) -> Option<Action> {
        match self.overdue_at {
            Some(at) if at <= now && !self.overdue_alerted => {
                self.overdue_alerted = true;
                Some(Action::Alert(Alert::Overdue {
                    job: self.spec.name.clone(),
                    last_success: self.state.last_success.as_ref().map(|r| r.ended),
                }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::civil::{DAY, Date, HOUR};
    use proptest::prelude::*;

    /// 2026-11-23 (a Monday) at `h:m` UTC, plus `days`.
    fn t(days: i64, h: u8, m: u8) -> UnixTime {
        UnixTime(Date::new(2026, 11, 23).expect("date").naive_at(h, m)).plus(days * DAY)
    }

    fn spec(schedule: &str) -> JobSpec {
        JobSpec {
            name: "office".to_string(),
            schedule: schedule.parse().expect("schedule"),
            zone: Zone::UTC,
            target: "/backup/office/".to_string(),
        }
    }

    /// A daily 02:30 job created on Sunday 22 November at noon.
    fn daily() -> Job {
        let (job, actions) = Job::start(spec("daily 02:30"), None, t(-1, 12, 0));
        assert_eq!(actions, vec![]);
        assert_eq!(job.next_run(), Some(t(0, 2, 30)));
        job
    }

    fn done(job: &mut Job, run: RunId, d: Done, now: UnixTime) -> Vec<Action> {
        job.handle(Event::Done { run, done: d }, now)
    }

    /// Drives run `run` from its snapshot to success; returns the last
    /// actions (the record and whatever follows).
    fn complete(job: &mut Job, run: RunId, now: UnixTime) -> Vec<Action> {
        done(job, run, Done::SnapshotTaken, now);
        done(job, run, Done::Mounted, now);
        done(job, run, Done::Copied(CopyStats { files: 3, bytes: 300 }), now);
        done(job, run, Done::Verified, now);
        done(job, run, Done::SnapshotRemoved, now)
    }

    fn alerts(actions: &[Action]) -> Vec<&Alert> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Alert(alert) => Some(alert),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_run_goes_through_every_step() {
        let mut job = daily();
        assert_eq!(job.handle(Event::Tick, t(0, 2, 29)), vec![]);
        assert_eq!(job.handle(Event::Tick, t(0, 2, 30)), vec![Action::TakeSnapshot { run: 1 }]);
        assert_eq!(job.phase(), Phase::Snapshotting);
        assert_eq!(job.next_run(), Some(t(1, 2, 30)));
        let now = t(0, 2, 31);
        assert_eq!(done(&mut job, 1, Done::SnapshotTaken, now), vec![Action::MountReadOnly { run: 1 }]);
        assert_eq!(
            done(&mut job, 1, Done::Mounted, now),
            vec![Action::Copy { run: 1, dest: "/backup/office/2026-11-23T023000Z".to_string(), link_dest: None }]
        );
        assert_eq!(job.phase(), Phase::Copying);
        let stats = CopyStats { files: 10, bytes: 1000 };
        assert_eq!(
            done(&mut job, 1, Done::Copied(stats), now),
            vec![Action::Verify { run: 1, dest: "/backup/office/2026-11-23T023000Z".to_string() }]
        );
        assert_eq!(job.phase(), Phase::Verifying);
        assert_eq!(done(&mut job, 1, Done::Verified, now), vec![Action::RemoveSnapshot { run: 1 }]);
        assert_eq!(job.phase(), Phase::CleaningUp);
        let end = t(0, 3, 0);
        let record = RunRecord {
            run: 1,
            started: t(0, 2, 30),
            ended: end,
            dest: "/backup/office/2026-11-23T023000Z".to_string(),
            stats: Some(stats),
            outcome: Outcome::Success,
        };
        assert_eq!(done(&mut job, 1, Done::SnapshotRemoved, end), vec![Action::Record(record.clone())]);
        assert_eq!(job.phase(), Phase::Idle);
        assert_eq!(job.state().last_success, Some(record));
        assert_eq!(job.next_deadline(), Some(t(1, 2, 30)));

        // The next run hard-links against the first.
        assert_eq!(job.handle(Event::Tick, t(1, 2, 30)), vec![Action::TakeSnapshot { run: 2 }]);
        done(&mut job, 2, Done::SnapshotTaken, t(1, 2, 31));
        let copy = done(&mut job, 2, Done::Mounted, t(1, 2, 31));
        assert_eq!(
            copy,
            vec![Action::Copy {
                run: 2,
                dest: "/backup/office/2026-11-24T023000Z".to_string(),
                link_dest: Some("/backup/office/2026-11-23T023000Z".to_string())
            }]
        );
    }

    #[test]
    fn runs_never_overlap_and_queue_once() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        done(&mut job, 1, Done::SnapshotTaken, t(0, 2, 31));
        done(&mut job, 1, Done::Mounted, t(0, 2, 31));
        // A copy that takes two days: the next two slots and a manual
        // request queue one run.
        assert_eq!(job.handle(Event::Tick, t(1, 2, 30)), vec![]);
        assert_eq!(job.handle(Event::RunNow, t(1, 9, 0)), vec![]);
        // Two days without a success since creation: overdue, still no
        // second run.
        assert_eq!(
            job.handle(Event::Tick, t(2, 2, 30)),
            vec![Action::Alert(Alert::Overdue { job: "office".to_string(), last_success: None })]
        );
        assert!(job.queued());
        assert_eq!(job.phase(), Phase::Copying);
        done(&mut job, 1, Done::Copied(CopyStats::default()), t(2, 5, 0));
        done(&mut job, 1, Done::Verified, t(2, 5, 0));
        let end = done(&mut job, 1, Done::SnapshotRemoved, t(2, 5, 0));
        assert!(matches!(end[0], Action::Record(RunRecord { run: 1, outcome: Outcome::Success, .. })));
        assert_eq!(end[1..], [Action::TakeSnapshot { run: 2 }]);
        assert!(!job.queued());
        let end = complete(&mut job, 2, t(2, 6, 0));
        assert_eq!(end.len(), 1, "no third run: {end:?}");
        assert_eq!(job.phase(), Phase::Idle);
        assert_eq!(job.next_run(), Some(t(3, 2, 30)));
    }

    #[test]
    fn cancel_removes_the_snapshot_and_ignores_late_reports() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        done(&mut job, 1, Done::SnapshotTaken, t(0, 2, 31));
        done(&mut job, 1, Done::Mounted, t(0, 2, 31));
        job.handle(Event::RunNow, t(0, 2, 40));
        assert_eq!(
            job.handle(Event::Cancel, t(0, 2, 45)),
            vec![Action::Abort { run: 1 }, Action::RemoveSnapshot { run: 1 }]
        );
        assert!(!job.queued(), "cancel drops the queued run");
        assert_eq!(job.phase(), Phase::CleaningUp);
        // The aborted copy reports late; it changes nothing.
        let late = Event::Failed { run: 1, step: Step::Copy, error: "killed".to_string() };
        assert_eq!(job.handle(late, t(0, 2, 46)), vec![]);
        assert_eq!(job.handle(Event::Cancel, t(0, 2, 46)), vec![]);
        let end = done(&mut job, 1, Done::SnapshotRemoved, t(0, 2, 47));
        assert!(matches!(&end[..], [Action::Record(RunRecord { outcome: Outcome::Cancelled, .. })]));
        assert_eq!(job.state().last_error, None);
        assert_eq!(job.phase(), Phase::Idle);
        // Reports of a finished run are ignored too.
        assert_eq!(done(&mut job, 1, Done::Verified, t(0, 3, 0)), vec![]);
    }

    #[test]
    fn a_failed_step_cleans_up_records_and_alerts() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        done(&mut job, 1, Done::SnapshotTaken, t(0, 2, 31));
        done(&mut job, 1, Done::Mounted, t(0, 2, 31));
        done(&mut job, 1, Done::Copied(CopyStats::default()), t(0, 3, 0));
        let fail = Event::Failed { run: 1, step: Step::Verify, error: "checksum mismatch".to_string() };
        assert_eq!(job.handle(fail, t(0, 3, 10)), vec![Action::RemoveSnapshot { run: 1 }]);
        let end = done(&mut job, 1, Done::SnapshotRemoved, t(0, 3, 11));
        let error = "verifying: checksum mismatch".to_string();
        assert_eq!(alerts(&end), vec![&Alert::Failed { job: "office".to_string(), error: error.clone() }]);
        assert_eq!(job.state().last_error, Some((t(0, 3, 11), error)));
        assert_eq!(job.state().last_success, None);
    }

    #[test]
    fn a_snapshot_that_cannot_be_removed_is_removed_before_the_next_run() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        done(&mut job, 1, Done::SnapshotTaken, t(0, 2, 31));
        let fail = Event::Failed { run: 1, step: Step::Mount, error: "EIO".to_string() };
        job.handle(fail, t(0, 2, 32));
        let busy = Event::Failed { run: 1, step: Step::RemoveSnapshot, error: "busy".to_string() };
        let end = job.handle(busy, t(0, 2, 33));
        assert_eq!(
            alerts(&end),
            vec![&Alert::Failed {
                job: "office".to_string(),
                error: "mounting snapshot: EIO; removing snapshot: busy".to_string()
            }]
        );
        assert_eq!(job.phase(), Phase::Idle);
        assert_eq!(job.handle(Event::Tick, t(1, 2, 30)), vec![Action::RemoveSnapshot { run: 2 }]);
        assert_eq!(job.phase(), Phase::Snapshotting);
        assert_eq!(done(&mut job, 2, Done::SnapshotRemoved, t(1, 2, 31)), vec![Action::TakeSnapshot { run: 2 }]);
        let end = complete(&mut job, 2, t(1, 3, 0));
        assert!(matches!(&end[..], [Action::Record(RunRecord { outcome: Outcome::Success, .. })]));
        assert!(!job.state().leftover_snapshot);
    }

    #[test]
    fn crash_mid_copy_cleans_up_first_then_runs_the_missed_slot() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        done(&mut job, 1, Done::SnapshotTaken, t(0, 2, 31));
        done(&mut job, 1, Done::Mounted, t(0, 2, 31));
        // The daemon persisted the state; the head dies mid-copy and comes
        // back two days later.
        let bytes = postcard::to_allocvec(job.state()).expect("encodes");
        let state: JobState = postcard::from_bytes(&bytes).expect("decodes");
        let (mut job, actions) = Job::start(spec("daily 02:30"), Some(state), t(2, 8, 0));
        assert_eq!(
            actions,
            vec![
                Action::RemoveSnapshot { run: 1 },
                Action::Alert(Alert::Overdue { job: "office".to_string(), last_success: None })
            ],
            "cleanup first"
        );
        assert_eq!(job.phase(), Phase::CleaningUp);
        assert!(job.queued(), "a slot was missed while down");
        let end = done(&mut job, 1, Done::SnapshotRemoved, t(2, 8, 1));
        let error = "interrupted while copying: the head restarted".to_string();
        assert!(
            matches!(&end[0], Action::Record(RunRecord { run: 1, outcome: Outcome::Failed(e), .. }) if *e == error)
        );
        assert_eq!(alerts(&end), vec![&Alert::Failed { job: "office".to_string(), error }]);
        assert_eq!(end.last(), Some(&Action::TakeSnapshot { run: 2 }), "the missed run, once");
        assert_eq!(job.next_run(), Some(t(3, 2, 30)));
    }

    #[test]
    fn startup_runs_a_missed_slot_once() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        complete(&mut job, 1, t(0, 3, 0));
        let state = job.state().clone();
        // Down for three slots.
        let (job, actions) = Job::start(spec("daily 02:30"), Some(state.clone()), t(3, 9, 0));
        assert_eq!(actions[0], Action::TakeSnapshot { run: 2 });
        assert_eq!(
            alerts(&actions),
            vec![&Alert::Overdue { job: "office".to_string(), last_success: Some(t(0, 3, 0)) }]
        );
        assert_eq!(job.next_run(), Some(t(4, 2, 30)));
        // Back before the next slot: nothing to do.
        let (job, actions) = Job::start(spec("daily 02:30"), Some(state), t(0, 9, 0));
        assert_eq!(actions, vec![]);
        assert_eq!(job.next_run(), Some(t(1, 2, 30)));
    }

    #[test]
    fn one_time_job_runs_at_creation_only() {
        let (mut job, actions) = Job::start(spec("once"), None, t(0, 10, 0));
        assert_eq!(actions, vec![Action::TakeSnapshot { run: 1 }]);
        complete(&mut job, 1, t(0, 11, 0));
        assert_eq!(job.next_deadline(), None, "no schedule, no overdue alert");
        assert_eq!(job.handle(Event::Tick, t(30, 0, 0)), vec![]);
        let (_, actions) = Job::start(spec("once"), Some(job.state().clone()), t(40, 0, 0));
        assert_eq!(actions, vec![]);
    }

    #[test]
    fn alert_when_not_succeeded_within_twice_the_interval() {
        let mut job = daily();
        job.handle(Event::Tick, t(0, 2, 30));
        complete(&mut job, 1, t(0, 3, 0));
        // Tuesday's run fails.
        job.handle(Event::Tick, t(1, 2, 30));
        let fail = Event::Failed { run: 2, step: Step::Snapshot, error: "no space".to_string() };
        job.handle(fail, t(1, 2, 31));
        let end = done(&mut job, 2, Done::SnapshotRemoved, t(1, 2, 32));
        assert_eq!(alerts(&end).len(), 1);
        assert_eq!(job.handle(Event::Tick, t(1, 23, 0)), vec![]);
        // Monday's run succeeded at 03:00; two days later it is overdue,
        // though Wednesday's run has started.
        assert_eq!(job.next_deadline(), Some(t(2, 2, 30)));
        assert_eq!(job.handle(Event::Tick, t(2, 2, 30)), vec![Action::TakeSnapshot { run: 3 }]);
        assert_eq!(job.next_deadline(), Some(t(2, 3, 0)));
        assert_eq!(
            job.handle(Event::Tick, t(2, 3, 0)),
            vec![Action::Alert(Alert::Overdue { job: "office".to_string(), last_success: Some(t(0, 3, 0)) })]
        );
        // Once only, until the next success.
        assert_eq!(job.handle(Event::Tick, t(2, 3, 30)), vec![]);
        complete(&mut job, 3, t(2, 4, 0));
        assert_eq!(job.next_deadline(), Some(t(3, 2, 30)));
        // A job that never succeeds is overdue two intervals after creation.
        let (mut never, _) = Job::start(spec("weekly mon 02:30"), None, t(0, 12, 0));
        assert_eq!(never.handle(Event::Tick, t(7, 2, 30)), vec![Action::TakeSnapshot { run: 1 }]);
        let late = never.handle(Event::Tick, t(14, 2, 30).plus(9 * HOUR + 30 * 60));
        assert_eq!(alerts(&late), vec![&Alert::Overdue { job: "office".to_string(), last_success: None }]);
    }

    #[test]
    fn history_is_bounded() {
        let (mut job, _) = Job::start(spec("once"), None, t(0, 0, 0));
        complete(&mut job, 1, t(0, 0, 1));
        for i in 0..(HISTORY_LEN as i64 + 5) {
            let now = t(1 + i, 0, 0);
            let run = job.state().next_id;
            assert_eq!(job.handle(Event::RunNow, now), vec![Action::TakeSnapshot { run }]);
            complete(&mut job, run, now);
        }
        assert_eq!(job.state().history.len(), HISTORY_LEN);
        assert_eq!(job.state().history.back().map(|r| r.run), Some(HISTORY_LEN as u64 + 6));
    }

    /// A driver's input in the model test.
    #[derive(Debug, Clone)]
    enum Input {
        Tick(i64),
        RunNow,
        Cancel,
        /// Report the step in flight as done.
        Succeed,
        /// Report the step in flight as failed.
        Fail,
        /// A report for some run and step, probably stale.
        Stale(RunId, u8),
        /// The head restarts; a snapshot being taken may or may not exist.
        Crash {
            taken: bool,
            down_for: i64,
        },
    }

    fn arb_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            3 => (0i64..2 * DAY).prop_map(Input::Tick),
            1 => Just(Input::RunNow),
            1 => Just(Input::Cancel),
            8 => Just(Input::Succeed),
            2 => Just(Input::Fail),
            1 => (0u64..6, 0u8..5).prop_map(|(r, s)| Input::Stale(r, s)),
            1 => (any::<bool>(), 0i64..4 * DAY).prop_map(|(taken, down_for)| Input::Crash { taken, down_for }),
        ]
    }

    fn done_for(step: Step) -> Done {
        match step {
            Step::Snapshot => Done::SnapshotTaken,
            Step::Mount => Done::Mounted,
            Step::Copy => Done::Copied(CopyStats::default()),
            Step::Verify => Done::Verified,
            Step::RemoveLeftover | Step::RemoveSnapshot => Done::SnapshotRemoved,
        }
    }

    proptest! {
        /// Whatever happens, a snapshot is never taken while one exists,
        /// an idle job has no snapshot unless it knows of a leftover, runs
        /// are recorded once each in order, and history stays bounded.
        #[test]
        fn job_model(inputs in prop::collection::vec(arb_input(), 1..80), cron in any::<bool>()) {
            let schedule = if cron { "0 */6 * * *" } else { "daily 02:30" };
            let mut now = t(0, 0, 0);
            let (mut job, mut actions) = Job::start(spec(schedule), None, now);
            let mut snapshot = false;
            let mut recorded: Vec<RunId> = Vec::new();
            for input in inputs {
                for action in &actions {
                    match action {
                        Action::TakeSnapshot { .. } => prop_assert!(!snapshot, "snapshot taken twice"),
                        Action::Record(r) => {
                            prop_assert!(recorded.last().is_none_or(|l| *l < r.run));
                            recorded.push(r.run);
                        }
                        _ => {}
                    }
                }
                if job.phase() == Phase::Idle {
                    prop_assert!(!snapshot || job.state().leftover_snapshot);
                }
                prop_assert!(job.state().history.len() <= HISTORY_LEN);
                let inflight = job.state().run.as_ref().map(|r| (r.id, r.step));
                let event = match input {
                    Input::Tick(dt) => {
                        now = now.plus(dt);
                        Event::Tick
                    }
                    Input::RunNow => Event::RunNow,
                    Input::Cancel => Event::Cancel,
                    Input::Succeed | Input::Fail => {
                        let Some((run, step)) = inflight else {
                            actions = Vec::new();
                            continue;
                        };
                        now = now.plus(60);
                        if matches!(input, Input::Fail) {
                            Event::Failed { run, step, error: "boom".to_string() }
                        } else {
                            Event::Done { run, done: done_for(step) }
                        }
                    }
                    Input::Stale(run, i) => {
                        let step = [Step::Snapshot, Step::Mount, Step::Copy, Step::Verify, Step::RemoveSnapshot][i as usize];
                        Event::Done { run, done: done_for(step) }
                    }
                    Input::Crash { taken, down_for } => {
                        if taken && matches!(inflight, Some((_, Step::Snapshot))) {
                            snapshot = true;
                        }
                        now = now.plus(down_for);
                        let bytes = postcard::to_allocvec(job.state()).expect("encodes");
                        let state = postcard::from_bytes(&bytes).expect("decodes");
                        let was_running = job.state().run.is_some();
                        (job, actions) = Job::start(spec(schedule), Some(state), now);
                        if was_running {
                            let first = actions.first();
                            prop_assert!(
                                matches!(first, Some(Action::RemoveSnapshot { .. })),
                                "cleanup first, got {:?}",
                                first
                            );
                        }
                        continue;
                    }
                };
                // Model the snapshot from the reports the job accepts.
                if let Event::Done { run, done } = &event
                    && inflight.is_some_and(|(id, step)| *run == id && done_for(step) == *done)
                {
                    match done {
                        Done::SnapshotTaken => snapshot = true,
                        Done::SnapshotRemoved => snapshot = false,
                        _ => {}
                    }
                }
                actions = job.handle(event, now);
            }
        }
    }
}
