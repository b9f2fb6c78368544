//! Head failover (DESIGN §5 fencing, §10, §11 "Failover"; issue 9): which
//! head is active, when the passive one takes over, and how a stale head
//! steps down.
//!
//! Two pieces, both sans-I/O (time is an input, actions come out):
//!
//! - [`Head`], one per head. Roles: [`Role::Passive`] watches the peer's
//!   heartbeats on both paths (storage net and LAN) and the ISUs' witness
//!   reports; [`Role::Candidate`] is taking over (epoch grant, then the
//!   takeover [`Step`]s in order); [`Role::Active`] serves;
//!   [`Role::Fenced`] saw a higher epoch and is stepping down, after which
//!   it is passive.
//! - [`Granter`], the ISU side: it grants epochs (through
//!   [`crate::fence::judge`], the one comparison) and witnesses whether it
//!   still hears the head that holds its grant.
//!
//! Rules:
//! - The passive head declares the active dead only when no heartbeat from
//!   an active (or taking-over) peer arrived on *either* path for the dead
//!   time, *and* a majority of the known ISUs report fresh that they lost
//!   it. Cutting only the head-to-head links therefore never starts a
//!   takeover: the ISUs still hear the active head.
//! - Every epoch is persisted ([`Action::Persist`]) before anything that uses
//!   it; the driver carries out actions in order and completes a persist
//!   before the actions after it.
//! - A takeover claims epoch E+1 from the ISUs; it needs a majority of
//!   grants, and is abandoned when a majority can no longer be reached, when
//!   an ISU shows a higher epoch, or when the grant timeout passes.
//! - Any head that sees a higher epoch (heartbeat, witness report, grant
//!   reply) persists it; an active or taking-over head then steps down. A
//!   head always starts passive: a head that comes back never becomes active
//!   on its own, only through a takeover the ISUs grant.
//! - An active head that no majority of ISUs has reported hearing for the
//!   dead time steps down by itself: it cannot reach its storage, and
//!   stepping down (heartbeats now say passive) lets the peer, if the ISUs
//!   also lost this head, take over instead of waiting on the LAN path's
//!   heartbeats forever.
//! - Manual switchover: the active head stops exports, flushes, releases,
//!   becomes passive and says so in its heartbeats (`handoff`); the passive
//!   head then takes over at once (still through an ISU grant). Switching
//!   back is the same command on the other head.
//!
//! Not here: sockets, the control-channel encoding of these messages, the
//! commands behind each [`Step`] (`opie_sys`/daemon), config sync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use thiserror::Error;

use crate::fence::{Grant, Verdict, judge};

/// The two networks heartbeats travel on; both must be silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    /// The storage switch (also the path to the ISUs).
    Storage,
    /// The office LAN.
    Lan,
}

/// Every path a heartbeat is sent on.
pub const PATHS: [Path; 2] = [Path::Storage, Path::Lan];

/// A head's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serving: holds the current epoch.
    Active,
    /// Watching the peer.
    Passive,
    /// Taking over: asking for an epoch grant, then running takeover steps.
    Candidate,
    /// Saw a higher epoch; stepping down, then passive.
    Fenced,
}

/// One step a head carries out; the driver reports each with
/// [`Input::StepDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Connect NBD to every ISU with the new epoch (fences the old head).
    AttachNbd,
    /// Assemble md (the write-intent bitmap limits resync).
    AssembleMd,
    /// Activate the LVM volume group.
    ActivateLvm,
    /// Mount the filesystem (journal replay).
    Mount,
    /// Take the service address and send a gratuitous ARP.
    TakeAddress,
    /// Start NFS with a short grace time.
    StartNfs,
    /// Start SMB exports.
    StartSmb,
    /// Switchover: stop NFS and SMB exports.
    StopExports,
    /// Switchover: flush filesystem, LVM and md.
    Flush,
    /// Switchover: unmount, stop md, detach NBD, drop the service address.
    Release,
    /// Fenced: stop serving now (exports, address, NBD), no flush owed.
    StepDown,
}

/// Takeover steps, in order.
pub const TAKEOVER: [Step; 7] = [
    Step::AttachNbd,
    Step::AssembleMd,
    Step::ActivateLvm,
    Step::Mount,
    Step::TakeAddress,
    Step::StartNfs,
    Step::StartSmb,
];
/// Clean hand-off steps of a manual switchover, in order.
pub const HANDOFF: [Step; 3] = [Step::StopExports, Step::Flush, Step::Release];
/// Steps of a fenced head.
pub const STEP_DOWN: [Step; 1] = [Step::StepDown];

/// A head's heartbeat, to the peer on each path and to every ISU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sending head.
    pub from: String,
    /// The highest epoch the sender knows, and its holder.
    pub grant: Option<Grant>,
    /// The sender's role.
    pub role: Role,
    /// The sender released its epoch for a manual switchover.
    pub handoff: bool,
}

/// An ISU's witness report to a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The reporting ISU.
    pub isu: String,
    /// The ISU's grant (None: never granted).
    pub grant: Option<Grant>,
    /// "I still hear the holder of my grant at that epoch" (false: "I lost it").
    pub hears_holder: bool,
}

/// An ISU's answer to a grant request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantReply {
    /// The answering ISU.
    pub isu: String,
    /// The epoch asked for.
    pub epoch: u64,
    /// Whether the ISU granted it (and persisted it first).
    pub granted: bool,
    /// The ISU's grant after deciding.
    pub holder: Option<Grant>,
}

/// Admin commands (console and web page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    /// On the active head: hand the service to the passive head.
    Switchover,
}

/// Inputs of a [`Head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed; call at least by [`Head::next_deadline`].
    Tick,
    /// A heartbeat arrived on `path`.
    Heartbeat { path: Path, hb: Heartbeat },
    /// An ISU's witness report.
    Witness(Witness),
    /// An ISU's answer to [`Action::AskGrant`].
    GrantReply(GrantReply),
    /// A step finished.
    StepDone { step: Step, ok: bool },
    /// An admin command.
    Admin(Admin),
}

/// Where a heartbeat goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatTo {
    /// The peer head on one path.
    Peer(Path),
    /// Every ISU (storage net, control channel).
    Isus,
}

/// What happened, for the log and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Both paths silent and a majority of ISUs lost the active head.
    PeerDead,
    /// The peer released for a manual switchover.
    HandoffReceived,
    /// A takeover claimed `epoch`.
    Claiming { epoch: u64 },
    /// A takeover was abandoned (refused, timed out or superseded).
    Abandoned { epoch: u64 },
    /// A step finished, with how long it took.
    StepTook { step: Step, took: Duration },
    /// A takeover step failed; the head steps down.
    StepFailed { step: Step },
    /// The service is up at `epoch`.
    ServiceUp { epoch: u64, took: Duration },
    /// A higher epoch was seen.
    Superseded { epoch: u64 },
    /// The hand-off finished; this head is passive.
    HandedOff,
    /// No majority of ISUs heard this active head for the dead time.
    QuorumLost,
    /// An admin command that does not apply in this role.
    Refused { why: &'static str },
}

/// Actions for the driver, carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Persist this grant as the head's epoch before the following actions.
    Persist(Grant),
    /// Send a heartbeat.
    Beat { to: BeatTo, hb: Heartbeat },
    /// Ask every ISU to grant this epoch to this head.
    AskGrant(Grant),
    /// Carry out a step for `epoch`, then report [`Input::StepDone`].
    Run { step: Step, epoch: u64 },
    /// Log and show.
    Event(Event),
}

/// How the head came to take over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverKind {
    /// The active head died.
    Takeover,
    /// Manual switchover.
    Switchover,
}

/// Timing of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepTiming {
    pub step: Step,
    pub started: Duration,
    pub finished: Duration,
}

/// The last failover this head ran, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    pub kind: FailoverKind,
    pub epoch: u64,
    /// When the last active heartbeat arrived (start of the silence).
    pub silent_since: Duration,
    /// When the peer was declared dead (or the hand-off received).
    pub began: Duration,
    /// When the epoch grant was won.
    pub granted: Option<Duration>,
    pub steps: Vec<StepTiming>,
    /// When the last step finished.
    pub service_up: Option<Duration>,
}

/// A [`HaConfig`] that cannot work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HaError {
    /// The heartbeat interval is zero or not under a second.
    #[error("heartbeat interval must be above 0 and under 1 s")]
    Heartbeat,
    /// The dead time is shorter than two heartbeats.
    #[error("dead time must be at least two heartbeat intervals")]
    DeadTime,
    /// The grant timeout is zero.
    #[error("grant timeout must be above 0")]
    GrantTimeout,
    /// No ISU to witness and grant.
    #[error("at least one ISU is needed as a witness")]
    NoIsus,
    /// The peer is this head, or an ISU is named twice.
    #[error("head and ISU names must be distinct")]
    Names,
}

/// A head's failover settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    pub me: String,
    pub peer: String,
    /// The known ISUs (the witnesses and epoch granters).
    pub isus: Vec<String>,
    pub heartbeat: Duration,
    pub dead_time: Duration,
    pub grant_timeout: Duration,
}

impl HaConfig {
    /// Issue 9's figures: 200 ms heartbeat, 1 s dead time.
    pub fn new(me: &str, peer: &str, isus: &[&str]) -> Self {
        HaConfig {
            me: me.into(),
            peer: peer.into(),
            isus: isus.iter().map(|s| (*s).to_owned()).collect(),
            heartbeat: Duration::from_millis(200),
            dead_time: Duration::from_secs(1),
            grant_timeout: Duration::from_millis(500),
        }
    }

    pub fn validate(&self) -> Result<(), HaError> {
        if self.heartbeat.is_zero() || self.heartbeat >= Duration::from_secs(1) {
            return Err(HaError::Heartbeat);
        }
        if self.dead_time < self.heartbeat * 2 {
            return Err(HaError::DeadTime);
        }
        if self.grant_timeout.is_zero() {
            return Err(HaError::GrantTimeout);
        }
        if self.isus.is_empty() {
            return Err(HaError::NoIsus);
        }
        let names: BTreeSet<&str> =
            self.isus.iter().map(String::as_str).chain([self.me.as_str(), self.peer.as_str()]).collect();
        if names.len() != self.isus.len() + 2 {
            return Err(HaError::Names);
        }
        Ok(())
    }

    /// Grants or reports needed: more than half the known ISUs.
    pub fn majority(&self) -> usize {
        self.isus.len() / 2 + 1
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Asking {
        claim: Grant,
        since: Duration,
        granted: BTreeSet<String>,
        refused: BTreeSet<String>,
        /// The head an ISU granted our epoch to instead.
        winner: Option<Grant>,
    },
    Running {
        epoch: u64,
        steps: &'static [Step],
        idx: usize,
        started: Duration,
    },
}

/// One head's failover state machine.
#[derive(Debug, Clone)]
pub struct Head {
    cfg: HaConfig,
    role: Role,
    known: Option<Grant>,
    phase: Phase,
    handoff: bool,
    /// Last heartbeat from an active or taking-over peer, per path.
    last_peer: [Duration; 2],
    /// Latest witness report per ISU: when, and whether it lost the peer.
    reports: BTreeMap<String, (Duration, bool)>,
    /// Latest report per ISU that it hears this head at the known epoch.
    hears_me: BTreeMap<String, Duration>,
    /// Last time a majority of ISUs reported hearing this active head.
    quorum_at: Duration,
    next_beat: Duration,
    /// No new takeover attempt before this time (after an abandon).
    retry_at: Duration,
    failover: Option<Failover>,
    kind: FailoverKind,
}

impl Head {
    /// A head starting at `now` with its persisted epoch. It always starts
    /// passive and waits a full dead time before it may declare the peer
    /// dead.
    pub fn new(cfg: HaConfig, persisted: Option<Grant>, now: Duration) -> Result<Self, HaError> {
        cfg.validate()?;
        Ok(Head {
            cfg,
            role: Role::Passive,
            known: persisted,
            phase: Phase::Idle,
            handoff: false,
            last_peer: [now; 2],
            reports: BTreeMap::new(),
            hears_me: BTreeMap::new(),
            quorum_at: now,
            next_beat: now,
            retry_at: now,
            failover: None,
            kind: FailoverKind::Takeover,
        })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The highest epoch this head knows (0: none).
    pub fn epoch(&self) -> u64 {
        self.known.as_ref().map_or(0, |g| g.epoch)
    }

    /// The persisted grant.
    pub fn known(&self) -> Option<&Grant> {
        self.known.as_ref()
    }

    pub fn config(&self) -> &HaConfig {
        &self.cfg
    }

    /// The last takeover or switchover this head ran.
    pub fn last_failover(&self) -> Option<&Failover> {
        self.failover.as_ref()
    }

    /// When the head next needs a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut d = self.next_beat;
        if let Phase::Asking { since, .. } = &self.phase {
            d = d.min(*since + self.cfg.grant_timeout);
        }
        if self.role == Role::Passive && matches!(self.phase, Phase::Idle) {
            let silent = self.last_peer.iter().max().copied().unwrap_or_default() + self.cfg.dead_time;
            d = d.min(silent.max(self.retry_at));
        }
        Some(d)
    }

    /// Applies one input at `now`, appending actions to `out`.
    pub fn handle(&mut self, input: Input, now: Duration, out: &mut Vec<Action>) {
        match input {
            Input::Tick => self.tick(now, out),
            Input::Heartbeat { path, hb } => self.heartbeat(path, hb, now, out),
            Input::Witness(w) => self.witness(w, now, out),
            Input::GrantReply(r) => self.grant_reply(r, now, out),
            Input::StepDone { step, ok } => self.step_done(step, ok, now, out),
            Input::Admin(Admin::Switchover) => self.switchover(now, out),
        }
    }

    fn beat(&self) -> Heartbeat {
        Heartbeat { from: self.cfg.me.clone(), grant: self.known.clone(), role: self.role, handoff: self.handoff }
    }

    fn send_beats(&mut self, now: Duration, out: &mut Vec<Action>) {
        let hb = self.beat();
        for path in PATHS {
            out.push(Action::Beat { to: BeatTo::Peer(path), hb: hb.clone() });
        }
        out.push(Action::Beat { to: BeatTo::Isus, hb });
        self.next_beat = now + self.cfg.heartbeat;
    }

    fn tick(&mut self, now: Duration, out: &mut Vec<Action>) {
        if now >= self.next_beat {
            self.send_beats(now, out);
        }
        if let Phase::Asking { claim, since, .. } = &self.phase
            && now >= *since + self.cfg.grant_timeout
        {
            let epoch = claim.epoch;
            self.abandon(epoch, now, out);
        }
        if self.role == Role::Passive
            && matches!(self.phase, Phase::Idle)
            && now >= self.retry_at
            && self.peer_silent(now)
            && self.witnesses_lost(now)
        {
            out.push(Action::Event(Event::PeerDead));
            self.claim(FailoverKind::Takeover, now, out);
        }
        if self.role == Role::Active
            && matches!(self.phase, Phase::Idle)
            && now.saturating_sub(self.quorum_at) > self.cfg.dead_time
        {
            out.push(Action::Event(Event::QuorumLost));
            self.start_step_down(now, out);
        }
    }

    /// No heartbeat from an active or taking-over peer on any path for the
    /// dead time.
    fn peer_silent(&self, now: Duration) -> bool {
        self.last_peer.iter().all(|t| now.saturating_sub(*t) >= self.cfg.dead_time)
    }

    /// A majority of the known ISUs reported, within the dead time, that
    /// they do not hear the peer holding their grant.
    fn witnesses_lost(&self, now: Duration) -> bool {
        let lost = self
            .cfg
            .isus
            .iter()
            .filter_map(|i| self.reports.get(i))
            .filter(|(at, lost)| *lost && now.saturating_sub(*at) <= self.cfg.dead_time)
            .count();
        lost >= self.cfg.majority()
    }

    /// Starts a takeover: persist the claim of E+1, then ask the ISUs.
    fn claim(&mut self, kind: FailoverKind, now: Duration, out: &mut Vec<Action>) {
        let claim = Grant { epoch: self.epoch() + 1, head: self.cfg.me.clone() };
        out.push(Action::Persist(claim.clone()));
        self.known = Some(claim.clone());
        self.role = Role::Candidate;
        self.handoff = false;
        self.kind = kind;
        self.failover = Some(Failover {
            kind,
            epoch: claim.epoch,
            silent_since: self.last_peer.iter().max().copied().unwrap_or_default(),
            began: now,
            granted: None,
            steps: Vec::new(),
            service_up: None,
        });
        out.push(Action::Event(Event::Claiming { epoch: claim.epoch }));
        out.push(Action::AskGrant(claim.clone()));
        self.phase =
            Phase::Asking { claim, since: now, granted: BTreeSet::new(), refused: BTreeSet::new(), winner: None };
        // Tell the peer (and the ISUs) at once that a takeover is under way.
        self.send_beats(now, out);
    }

    fn abandon(&mut self, epoch: u64, now: Duration, out: &mut Vec<Action>) {
        out.push(Action::Event(Event::Abandoned { epoch }));
        self.role = Role::Passive;
        self.phase = Phase::Idle;
        self.retry_at = now + self.cfg.dead_time;
    }

    /// Learns a grant judged higher than the known one: persist it first,
    /// then step down from whatever used the old epoch.
    fn learn(&mut self, grant: Grant, now: Duration, out: &mut Vec<Action>) {
        let epoch = grant.epoch;
        out.push(Action::Persist(grant.clone()));
        self.known = Some(grant);
        self.handoff = false;
        out.push(Action::Event(Event::Superseded { epoch }));
        match (&self.phase, self.role) {
            (Phase::Asking { claim, .. }, _) => {
                let e = claim.epoch;
                self.abandon(e, now, out);
            }
            (Phase::Running { steps, .. }, _) if *steps == STEP_DOWN => {}
            (Phase::Running { .. }, _) | (Phase::Idle, Role::Active) => self.start_step_down(now, out),
            (Phase::Idle, _) => {}
        }
    }

    fn start_step_down(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.role = Role::Fenced;
        self.run_steps(&STEP_DOWN, now, out);
    }

    fn run_steps(&mut self, steps: &'static [Step], now: Duration, out: &mut Vec<Action>) {
        let epoch = self.epoch();
        self.phase = Phase::Running { epoch, steps, idx: 0, started: now };
        out.push(Action::Run { step: steps[0], epoch });
    }

    /// Judges a grant someone else holds or saw; learns it when higher.
    fn consider(&mut self, grant: Option<&Grant>, now: Duration, out: &mut Vec<Action>) -> Option<Verdict> {
        let g = grant?;
        let verdict = judge(self.known.as_ref(), g.epoch, &g.head);
        if verdict == Verdict::Advance {
            self.learn(g.clone(), now, out);
        }
        Some(verdict)
    }

    fn heartbeat(&mut self, path: Path, hb: Heartbeat, now: Duration, out: &mut Vec<Action>) {
        if hb.from != self.cfg.peer {
            return;
        }
        let verdict = self.consider(hb.grant.as_ref(), now, out);
        if matches!(hb.role, Role::Active | Role::Candidate) {
            self.last_peer[path as usize] = now;
        }
        match verdict {
            // The peer is behind (a frozen head waking up): answer at once
            // so it learns the newer epoch.
            Some(Verdict::Stale { .. }) => {
                out.push(Action::Beat { to: BeatTo::Peer(path), hb: self.beat() });
            }
            None if self.known.is_some() => {
                out.push(Action::Beat { to: BeatTo::Peer(path), hb: self.beat() });
            }
            // The peer released the epoch we know, which it held.
            Some(Verdict::Current)
                if hb.handoff
                    && self.role == Role::Passive
                    && matches!(self.phase, Phase::Idle)
                    && hb.grant.as_ref().is_some_and(|g| g.head == self.cfg.peer) =>
            {
                out.push(Action::Event(Event::HandoffReceived));
                self.claim(FailoverKind::Switchover, now, out);
            }
            _ => {}
        }
    }

    fn witness(&mut self, w: Witness, now: Duration, out: &mut Vec<Action>) {
        if !self.cfg.isus.contains(&w.isu) {
            return;
        }
        let behind = w.grant.as_ref().is_none_or(|g| g.epoch < self.epoch());
        self.consider(w.grant.as_ref(), now, out);
        // An ISU that missed the grant (cut off during the takeover) is
        // asked again, as the NBD reconnect with the current claim would.
        if behind
            && self.role == Role::Active
            && let Some(k) = &self.known
        {
            out.push(Action::AskGrant(k.clone()));
        }
        let hears_peer = w.hears_holder && w.grant.as_ref().is_some_and(|g| g.head == self.cfg.peer);
        let hears_me =
            w.hears_holder && w.grant.as_ref().is_some_and(|g| g.head == self.cfg.me && Some(g) == self.known.as_ref());
        if hears_me {
            self.hears_me.insert(w.isu.clone(), now);
        } else {
            self.hears_me.remove(&w.isu);
        }
        let fresh = self.hears_me.values().filter(|t| now.saturating_sub(**t) <= self.cfg.dead_time).count();
        if fresh >= self.cfg.majority() {
            self.quorum_at = now;
        }
        self.reports.insert(w.isu, (now, !hears_peer));
    }

    fn grant_reply(&mut self, r: GrantReply, now: Duration, out: &mut Vec<Action>) {
        if !self.cfg.isus.contains(&r.isu) {
            return;
        }
        if !r.granted {
            self.consider(r.holder.as_ref(), now, out);
        }
        let majority = self.cfg.majority();
        let n = self.cfg.isus.len();
        let Phase::Asking { claim, granted, refused, winner, .. } = &mut self.phase else {
            return;
        };
        if r.epoch != claim.epoch {
            return;
        }
        if r.granted {
            granted.insert(r.isu);
        } else {
            refused.insert(r.isu);
            // Our epoch, granted to another head: it won the race.
            if let Some(h) = r.holder.filter(|h| matches!(judge(Some(claim), h.epoch, &h.head), Verdict::Taken { .. }))
            {
                *winner = Some(h);
            }
        }
        let epoch = claim.epoch;
        if granted.len() >= majority {
            if let Some(f) = self.failover.as_mut() {
                f.granted = Some(now);
            }
            self.run_steps(&TAKEOVER, now, out);
        } else if refused.len() > n - majority {
            // Another head won this epoch. Record it as the holder (same
            // epoch, so nothing goes backwards): its heartbeats and a later
            // hand-off from it are then recognised as current.
            let winner = winner.take();
            self.abandon(epoch, now, out);
            if let Some(w) = winner {
                out.push(Action::Persist(w.clone()));
                self.known = Some(w);
            }
        }
    }

    fn step_done(&mut self, step: Step, ok: bool, now: Duration, out: &mut Vec<Action>) {
        let Phase::Running { epoch, steps, idx, started } = self.phase.clone() else {
            return;
        };
        if steps[idx] != step {
            return;
        }
        out.push(Action::Event(Event::StepTook { step, took: now.saturating_sub(started) }));
        if steps == TAKEOVER
            && let Some(f) = self.failover.as_mut()
        {
            f.steps.push(StepTiming { step, started, finished: now });
        }
        if !ok && steps == TAKEOVER {
            out.push(Action::Event(Event::StepFailed { step }));
            self.start_step_down(now, out);
            return;
        }
        // A failed hand-off or step-down step still moves on: the head
        // stops serving either way, and the ISUs fence it.
        if idx + 1 < steps.len() {
            self.phase = Phase::Running { epoch, steps, idx: idx + 1, started: now };
            out.push(Action::Run { step: steps[idx + 1], epoch });
            return;
        }
        self.phase = Phase::Idle;
        if steps == TAKEOVER {
            self.role = Role::Active;
            self.quorum_at = now;
            let began = self.failover.as_ref().map_or(now, |f| f.began);
            if let Some(f) = self.failover.as_mut() {
                f.service_up = Some(now);
            }
            out.push(Action::Event(Event::ServiceUp { epoch, took: now.saturating_sub(began) }));
            self.send_beats(now, out);
        } else if steps == HANDOFF {
            self.role = Role::Passive;
            self.handoff = true;
            self.last_peer = [now; 2];
            self.retry_at = now + self.cfg.dead_time;
            out.push(Action::Event(Event::HandedOff));
            self.send_beats(now, out);
        } else {
            self.role = Role::Passive;
            self.last_peer = [now; 2];
            self.send_beats(now, out);
        }
    }

    fn switchover(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.role != Role::Active || !matches!(self.phase, Phase::Idle) {
            out.push(Action::Event(Event::Refused { why: "switchover is started on the active head" }));
            return;
        }
        self.run_steps(&HANDOFF, now, out);
    }
}

/// Inputs of an ISU's [`Granter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsuInput {
    Tick,
    /// A head's heartbeat (control channel).
    Beat(Heartbeat),
    /// A head asks for this epoch.
    Ask(Grant),
}

/// Actions of an ISU's [`Granter`], carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsuAction {
    /// Persist the new grant before answering (and drop NBD connections of
    /// older epochs: `fence`'s caller does that).
    Persist(Grant),
    /// Answer a grant request.
    Reply { to: String, reply: GrantReply },
    /// Witness report to a head.
    Report { to: String, report: Witness },
}

/// The ISU side: grants epochs, witnesses the holder.
#[derive(Debug, Clone)]
pub struct Granter {
    id: String,
    heads: Vec<String>,
    grant: Option<Grant>,
    heard_holder: Option<Duration>,
    interval: Duration,
    lost_after: Duration,
    next_report: Duration,
}

impl Granter {
    /// An ISU with its persisted grant, reporting to `heads` every
    /// `interval` and calling the holder lost after `lost_after` of silence.
    pub fn new(id: &str, heads: &[&str], grant: Option<Grant>, interval: Duration, lost_after: Duration) -> Self {
        Granter {
            id: id.into(),
            heads: heads.iter().map(|s| (*s).to_owned()).collect(),
            grant,
            heard_holder: None,
            interval,
            lost_after,
            next_report: Duration::ZERO,
        }
    }

    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    pub fn handle(&mut self, input: IsuInput, now: Duration, out: &mut Vec<IsuAction>) {
        match input {
            IsuInput::Tick if now >= self.next_report => {
                let hears = self.heard_holder.is_some_and(|t| now.saturating_sub(t) < self.lost_after);
                for h in &self.heads {
                    out.push(IsuAction::Report {
                        to: h.clone(),
                        report: Witness { isu: self.id.clone(), grant: self.grant.clone(), hears_holder: hears },
                    });
                }
                self.next_report = now + self.interval;
            }
            IsuInput::Tick => {}
            IsuInput::Beat(hb) => {
                // Only a serving (or taking-over) holder is heard: a passive
                // holder, after a hand-off, is as good as lost.
                let serving = matches!(hb.role, Role::Active | Role::Candidate);
                if serving && self.grant.as_ref().is_some_and(|g| g.head == hb.from && hb.grant.as_ref() == Some(g)) {
                    self.heard_holder = Some(now);
                }
            }
            IsuInput::Ask(claim) => {
                let verdict = judge(self.grant.as_ref(), claim.epoch, &claim.head);
                if verdict == Verdict::Advance {
                    out.push(IsuAction::Persist(claim.clone()));
                    self.grant = Some(claim.clone());
                    self.heard_holder = Some(now);
                }
                out.push(IsuAction::Reply {
                    to: claim.head.clone(),
                    reply: GrantReply {
                        isu: self.id.clone(),
                        epoch: claim.epoch,
                        granted: verdict.admits(),
                        holder: self.grant.clone(),
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
