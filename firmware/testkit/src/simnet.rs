//! A simulated head-failover cluster: two [`Head`]s and N ISU [`Granter`]s
//! on an in-memory network, driven by [`SimClock`] (STYLE: raft-rs
//! harness style, `cut`/`isolate`/`drop`/`recover`).
//!
//! Every [`SimNet::step`] advances the clock by one tick (10 ms), delivers
//! the messages due, completes the takeover steps due (each step takes a
//! simulated time, [`step_time`]), then ticks every running node. Faults:
//! cut a pair of nodes (all paths or one), isolate a node, drop a share of
//! the messages from one node to another (seeded), freeze a node (no ticks,
//! messages to it are lost: SIGSTOP), thaw it, restart a head from its
//! persisted epoch, and recover the network.
//!
//! Every step checks the safety invariants and records each breach in
//! [`SimNet::violations`]: never two heads active at the same epoch, and no
//! node's persisted epoch ever goes backwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opie_core::fence::Grant;
use opie_core::ha::{
    Action, Admin, BeatTo, Event, GrantReply, Granter, HaConfig, Head, Heartbeat, Input, IsuAction, IsuInput, Path,
    Role, Step, Witness,
};

use crate::clock::SimClock;

/// A node: 0 and 1 are the heads, 2.. the ISUs.
pub type NodeId = usize;
/// The first head.
pub const HEAD_A: NodeId = 0;
/// The second head.
pub const HEAD_B: NodeId = 1;

/// Simulated time per step.
pub const TICK: Duration = Duration::from_millis(10);

/// How long each step takes in the simulation (rough figures for a small
/// array on a LAN: attach and assemble dominate).
pub fn step_time(step: Step) -> Duration {
    Duration::from_millis(match step {
        Step::AttachNbd => 150,
        Step::AssembleMd => 200,
        Step::ActivateLvm => 100,
        Step::Mount => 250,
        Step::TakeAddress => 20,
        Step::StartNfs => 150,
        Step::StartSmb => 100,
        Step::StopExports => 100,
        Step::Flush => 150,
        Step::Release => 100,
        Step::StepDown => 50,
    })
}

#[derive(Debug, Clone)]
enum Msg {
    Beat(Heartbeat),
    Witness(Witness),
    Ask(Grant),
    Reply(GrantReply),
}

#[derive(Debug, Clone)]
struct Packet {
    from: NodeId,
    to: NodeId,
    path: Path,
    at: Duration,
    msg: Msg,
}

/// The simulated cluster.
#[derive(Debug)]
pub struct SimNet {
    pub clock: SimClock,
    names: Vec<String>,
    cfgs: [HaConfig; 2],
    heads: [Head; 2],
    persisted: Vec<Option<Grant>>,
    isus: Vec<Granter>,
    cut: BTreeSet<(NodeId, NodeId, Path)>,
    drops: BTreeMap<(NodeId, NodeId), u32>,
    frozen: BTreeSet<NodeId>,
    queue: Vec<Packet>,
    steps: Vec<(NodeId, Step, Duration)>,
    rng: u64,
    /// Every event the heads logged: when, which head, what.
    pub events: Vec<(Duration, NodeId, Event)>,
    /// Every breach of a safety invariant seen so far.
    pub violations: Vec<String>,
    /// The most heads seen active at once.
    pub max_active: usize,
}

impl SimNet {
    /// Two fresh heads (no epoch yet, both passive) and `isus` fresh ISUs,
    /// with issue 9's timing (200 ms heartbeat, 1 s dead time).
    pub fn new(isus: usize, seed: u64) -> Self {
        let mut names = vec!["head-a".to_owned(), "head-b".to_owned()];
        names.extend((0..isus).map(|i| format!("isu{i}")));
        let isu_names: Vec<&str> = names[2..].iter().map(String::as_str).collect();
        let cfg_a = HaConfig::new(&names[0], &names[1], &isu_names);
        let cfg_b = HaConfig::new(&names[1], &names[0], &isu_names);
        let heads = [
            Head::new(cfg_a.clone(), None, Duration::ZERO).expect("valid config"),
            Head::new(cfg_b.clone(), None, Duration::ZERO).expect("valid config"),
        ];
        let isus = isu_names
            .iter()
            .map(|n| Granter::new(n, &[&names[0], &names[1]], None, cfg_a.heartbeat, cfg_a.dead_time))
            .collect();
        SimNet {
            clock: SimClock::default(),
            persisted: vec![None; names.len()],
            names,
            cfgs: [cfg_a, cfg_b],
            heads,
            isus,
            cut: BTreeSet::new(),
            drops: BTreeMap::new(),
            frozen: BTreeSet::new(),
            queue: Vec::new(),
            steps: Vec::new(),
            rng: seed | 1,
            events: Vec::new(),
            violations: Vec::new(),
            max_active: 0,
        }
    }

    /// A cluster where head A has become active (B held frozen meanwhile),
    /// then B has joined as passive and learnt A's epoch.
    pub fn with_active_a(isus: usize, seed: u64) -> Self {
        let mut net = SimNet::new(isus, seed);
        net.freeze(HEAD_B);
        net.run_until(|n| n.role(HEAD_A) == Role::Active, Duration::from_secs(10)).expect("head A comes up");
        net.thaw(HEAD_B);
        net.run_for(Duration::from_secs(1));
        net
    }

    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    pub fn name(&self, n: NodeId) -> &str {
        &self.names[n]
    }

    pub fn head(&self, n: NodeId) -> &Head {
        &self.heads[n]
    }

    pub fn role(&self, n: NodeId) -> Role {
        self.heads[n].role()
    }

    pub fn epoch(&self, n: NodeId) -> u64 {
        self.heads[n].epoch()
    }

    /// The ISUs' node ids.
    pub fn isu_ids(&self) -> std::ops::Range<NodeId> {
        2..self.names.len()
    }

    /// ISU `n`'s grant.
    pub fn isu_grant(&self, n: NodeId) -> Option<&Grant> {
        self.isus[n - 2].grant()
    }

    /// Heads that are active (including frozen ones), with their epochs.
    pub fn actives(&self) -> Vec<(NodeId, u64)> {
        (0..2).filter(|&h| self.role(h) == Role::Active).map(|h| (h, self.epoch(h))).collect()
    }

    // --- faults ---

    fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
        (a.min(b), a.max(b))
    }

    /// Cuts every path between `a` and `b`.
    pub fn cut(&mut self, a: NodeId, b: NodeId) {
        for path in [Path::Storage, Path::Lan] {
            self.cut_path(a, b, path);
        }
    }

    /// Cuts one path between `a` and `b`.
    pub fn cut_path(&mut self, a: NodeId, b: NodeId, path: Path) {
        let (a, b) = Self::pair(a, b);
        self.cut.insert((a, b, path));
    }

    /// Cuts `n` from every other node.
    pub fn isolate(&mut self, n: NodeId) {
        for other in 0..self.names.len() {
            if other != n {
                self.cut(n, other);
            }
        }
    }

    /// Drops `pct` percent of the messages from `from` to `to` (seeded).
    pub fn drop(&mut self, from: NodeId, to: NodeId, pct: u32) {
        self.drops.insert((from, to), pct.min(100));
    }

    /// Heals every cut and drop (frozen nodes stay frozen).
    pub fn recover(&mut self) {
        self.cut.clear();
        self.drops.clear();
    }

    /// Stops ticking `n` and loses every message to it (SIGSTOP); its
    /// outstanding steps wait.
    pub fn freeze(&mut self, n: NodeId) {
        self.frozen.insert(n);
    }

    /// Resumes a frozen node.
    pub fn thaw(&mut self, n: NodeId) {
        self.frozen.remove(&n);
    }

    /// Kills `n` for good (a frozen node that never thaws).
    pub fn kill(&mut self, n: NodeId) {
        self.freeze(n);
    }

    /// Restarts head `h` from its persisted epoch; outstanding steps are lost.
    pub fn restart(&mut self, h: NodeId) {
        assert!(h < 2, "only heads restart here");
        let now = self.now();
        self.heads[h] = Head::new(self.cfgs[h].clone(), self.persisted[h].clone(), now).expect("valid config");
        self.steps.retain(|(n, _, _)| *n != h);
        self.thaw(h);
    }

    /// An admin command on head `h` (ignored while it is frozen).
    pub fn admin(&mut self, h: NodeId, cmd: Admin) {
        if !self.frozen.contains(&h) {
            self.head_input(h, Input::Admin(cmd));
        }
    }

    // --- driving ---

    fn next_rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn id(&self, name: &str) -> Option<NodeId> {
        self.names.iter().position(|n| n == name)
    }

    fn send(&mut self, from: NodeId, to: NodeId, path: Path, msg: Msg) {
        let (a, b) = Self::pair(from, to);
        if self.cut.contains(&(a, b, path)) {
            return;
        }
        if let Some(&pct) = self.drops.get(&(from, to))
            && self.next_rand() % 100 < u64::from(pct)
        {
            return;
        }
        let at = self.now() + Duration::from_millis(1);
        self.queue.push(Packet { from, to, path, at, msg });
    }

    fn persist(&mut self, n: NodeId, g: Grant) {
        if let Some(old) = &self.persisted[n]
            && g.epoch < old.epoch
        {
            self.violations.push(format!(
                "{:?}: {} persisted epoch {} after {}",
                self.now(),
                self.names[n],
                g.epoch,
                old.epoch
            ));
        }
        self.persisted[n] = Some(g);
    }

    fn head_input(&mut self, h: NodeId, input: Input) {
        let now = self.now();
        let mut out = Vec::new();
        self.heads[h].handle(input, now, &mut out);
        let peer = 1 - h;
        for action in out {
            match action {
                Action::Persist(g) => self.persist(h, g),
                Action::Beat { to: BeatTo::Peer(path), hb } => self.send(h, peer, path, Msg::Beat(hb)),
                Action::Beat { to: BeatTo::Isus, hb } => {
                    for i in self.isu_ids() {
                        self.send(h, i, Path::Storage, Msg::Beat(hb.clone()));
                    }
                }
                Action::AskGrant(g) => {
                    for i in self.isu_ids() {
                        self.send(h, i, Path::Storage, Msg::Ask(g.clone()));
                    }
                }
                Action::Run { step, .. } => self.steps.push((h, step, now + step_time(step))),
                Action::Event(e) => self.events.push((now, h, e)),
            }
        }
    }

    fn isu_input(&mut self, n: NodeId, input: IsuInput) {
        let now = self.now();
        let mut out = Vec::new();
        self.isus[n - 2].handle(input, now, &mut out);
        for action in out {
            match action {
                IsuAction::Persist(g) => self.persist(n, g),
                IsuAction::Reply { to, reply } => {
                    if let Some(to) = self.id(&to) {
                        self.send(n, to, Path::Storage, Msg::Reply(reply));
                    }
                }
                IsuAction::Report { to, report } => {
                    if let Some(to) = self.id(&to) {
                        self.send(n, to, Path::Storage, Msg::Witness(report));
                    }
                }
            }
        }
    }

    /// One tick: deliver, complete steps, tick nodes, check invariants.
    pub fn step(&mut self) {
        self.clock.advance(TICK);
        let now = self.now();
        let (due, later): (Vec<Packet>, Vec<Packet>) =
            std::mem::take(&mut self.queue).into_iter().partition(|p| p.at <= now);
        self.queue = later;
        for p in due {
            if self.frozen.contains(&p.to) {
                continue;
            }
            match (p.to < 2, p.msg) {
                (true, Msg::Beat(hb)) => self.head_input(p.to, Input::Heartbeat { path: p.path, hb }),
                (true, Msg::Witness(w)) => self.head_input(p.to, Input::Witness(w)),
                (true, Msg::Reply(r)) => self.head_input(p.to, Input::GrantReply(r)),
                (false, Msg::Beat(hb)) => self.isu_input(p.to, IsuInput::Beat(hb)),
                (false, Msg::Ask(g)) => self.isu_input(p.to, IsuInput::Ask(g)),
                (to_head, msg) => unreachable!("{msg:?} to head {to_head} from {}", p.from),
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.steps).into_iter().partition(|(n, _, at)| *at <= now && !self.frozen.contains(n));
        self.steps = waiting;
        for (h, step, _) in done {
            self.head_input(h, Input::StepDone { step, ok: true });
        }
        for n in 0..self.names.len() {
            if self.frozen.contains(&n) {
                continue;
            }
            if n < 2 {
                self.head_input(n, Input::Tick);
            } else {
                self.isu_input(n, IsuInput::Tick);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let actives = self.actives();
        self.max_active = self.max_active.max(actives.len());
        if let [(_, ea), (_, eb)] = actives[..]
            && ea == eb
        {
            self.violations.push(format!("{:?}: both heads active at epoch {ea}", self.now()));
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now() + d;
        while self.now() < end {
            self.step();
        }
    }

    /// Runs until `pred` holds, at most `limit`; returns the simulated time
    /// it took, or None.
    pub fn run_until(&mut self, mut pred: impl FnMut(&SimNet) -> bool, limit: Duration) -> Option<Duration> {
        let start = self.now();
        while !pred(self) {
            if self.now() - start >= limit {
                return None;
            }
            self.step();
        }
        Some(self.now() - start)
    }
}
