//! The node's state and the one loop that changes it (DESIGN §13).
//!
//! [`Node`] owns everything the supervisor knows: the status report, the
//! head's adoption registry, the ISU's pinned head key, the live control
//! links. Tasks (local socket, control connections, timers, signals) only
//! send [`Event`]s; [`Node::apply`] makes every decision, and persistence
//! happens here, before the loop answers.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use opie_core::adoption::{ADOPTION_MAGIC, ADOPTION_VERSION, Function, Registry, Seen, Standing};
use opie_core::api::{Request, Response};
use opie_core::bringup::{Bringup, ReadyMember, Step};
use opie_core::config::Role;
use opie_core::ctrl::keys::{NodeKey, fence_key, fingerprint};
use opie_core::recovery::{self, GroupView, Slot, SlotState, Spare, Step as RecoveryStep};
use opie_core::status::{IsuStatus, StatusReport};
use opie_proto::ctrl::{IsuState, Message, StatusReport as IsuReport};
use opie_proto::record::Record;
use opie_sys::slots::SlotStore;
use smol::channel::Sender;

use crate::ctrl_link::{CTRL_PORT, CtrlEvent, Keys};
use crate::export_link::ExportUpdate;
use crate::lease_link::LeaseUpdate;
use crate::settings::Settings;
use crate::shares::ShareManager;
use crate::storage_link::{AttachJob, StorageResult};

/// The head's RAID group (one group per head for now; DESIGN §6).
pub const GROUP: &str = "g1";

/// Kind tag of the ISU's copy of its head's cluster record (DESIGN §9: the
/// head's config is replicated to every ISU). The payload is the head's
/// sealed adoption record as sent, so the head's own generation is kept.
pub const CLUSTER_COPY_MAGIC: [u8; 8] = *b"OPIECPY\0";

/// Kind tag of the ISU's pinned-head record.
pub const PINNED_HEAD_MAGIC: [u8; 8] = *b"OPIEHED\0";

/// What the event loop reacts to.
#[derive(Debug)]
pub enum Event {
    /// A local client's request; the answer goes back on the sender.
    Local(Request, Sender<Response>),
    /// A control connection wants the current keys.
    Keys(Sender<Keys>),
    Ctrl(CtrlEvent),
    /// The storage-net lease client's news.
    Lease(LeaseUpdate),
    /// Head: the lease server's counters, in words.
    LeaseCounters(String),
    /// The ISU's NBD export came up or went down.
    Export(ExportUpdate),
    /// Head: a storage step finished.
    Storage(StorageResult),
    /// A task hit a problem the administrator must see.
    Alert(String),
    /// Periodic work: ISU status reports.
    Tick,
    /// Once a second: deadlines of config changes.
    Clock,
    /// SIGTERM or SIGINT: stop cleanly.
    Stop(&'static str),
}

/// Whether the loop goes on after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Work the loop must start on the node's behalf (tasks, processes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// ISU: serve the data disks over NBD, fenced with this key.
    StartExport { fence_key: [u8; 32] },
    /// Head: attach a member's export.
    Attach(AttachJob),
    /// Head: create or assemble the group over these devices and mount it.
    StartGroup { group: String, devices: Vec<String>, degraded: bool },
    /// Head: a member's ISU is gone; fail it out of the array now.
    FailMember { serial: String, device: u32 },
    /// Head: a member came back in time; attach and re-add it.
    Readd(AttachJob),
    /// Head: a spare takes a missing member's slot.
    Replace { missing: String, job: AttachJob },
}

/// The ISU's export, as the node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Export {
    /// Not adopted yet: nothing is exported before an admin says so.
    WaitingForAdoption,
    Starting,
    Up(Vec<(String, u64)>),
    Down(String),
}

/// One live control link.
#[derive(Debug)]
struct Link {
    serial: String,
    peer: SocketAddr,
    outbox: Sender<Message>,
    last_report: Option<String>,
    /// The last report as sent, for decisions.
    last_state: Option<IsuReport>,
}

/// What start-up hands the node.
#[derive(Debug)]
pub struct Setup<'a> {
    pub report: StatusReport,
    /// The node key's secret.
    pub secret: [u8; 32],
    /// How this node introduces itself on the control channel.
    pub serial: String,
    /// Where state is persisted; `None` when the state disk is unusable.
    pub state_dir: Option<&'a std::path::Path>,
    pub settings: Settings,
    /// ISU: the head's control address, if known before any lease.
    pub head: Option<SocketAddr>,
    /// Head: how long to wait for every member before starting degraded.
    pub member_wait: Duration,
    /// Head: how long a member may be gone before a spare replaces it.
    pub spare_timeout: Duration,
}

/// The node's whole mutable state.
#[derive(Debug)]
pub struct Node {
    pub report: StatusReport,
    role: Role,
    secret: [u8; 32],
    serial: String,
    started: Instant,
    /// Where adoption decisions (head) or the pinned head key (ISU) are
    /// kept; `None` when the state disk is unusable.
    store: Option<SlotStore>,
    registry: Registry,
    /// Head: generation of the stored adoption record (what ISUs copy).
    registry_generation: u64,
    /// ISU: where it keeps its copy of the head's cluster record.
    copy_store: Option<SlotStore>,
    pinned_head: Option<[u8; 32]>,
    /// ISU: where the head's control channel is, when known.
    head: Option<SocketAddr>,
    /// ISU: its NBD export.
    export: Export,
    effects: Vec<Effect>,
    /// Head: start-up of its RAID group.
    bringup: Bringup,
    /// Head: members of the running group whose ISU is gone, since when.
    missing: BTreeMap<String, Duration>,
    /// Head: members whose slot a spare took; they may come back.
    replaced_out: Vec<String>,
    /// Head: a re-add or replacement is running.
    recovering: bool,
    /// Head: when the recovery planner wants to look again.
    recovery_wake: Option<Duration>,
    /// Head: how long a member may be gone before a spare replaces it.
    spare_timeout: Duration,
    links: HashMap<[u8; 32], Link>,
    /// The running config and changes to it from the console.
    settings: Settings,
    /// Head: shares, users and groups (set up by the supervisor).
    pub shares: ShareManager,
}

impl Node {
    /// Builds the node state, loading what `state_dir` holds for its role.
    pub fn new(setup: Setup<'_>) -> Node {
        let Setup { report, secret, serial, state_dir, settings, head, member_wait, spare_timeout } = setup;
        let role = report.role;
        let store = state_dir.map(|dir| match role {
            Role::Isu => SlotStore::new(dir, "head-key", PINNED_HEAD_MAGIC),
            _ => SlotStore::new(dir, "adoption", ADOPTION_MAGIC),
        });
        let copy_store =
            state_dir.filter(|_| role == Role::Isu).map(|d| SlotStore::new(d, "cluster-copy", CLUSTER_COPY_MAGIC));
        let mut node = Node {
            report,
            role,
            registry_generation: 0,
            copy_store,
            secret,
            serial,
            started: Instant::now(),
            store,
            registry: Registry::default(),
            pinned_head: None,
            head,
            export: Export::WaitingForAdoption,
            effects: Vec::new(),
            bringup: Bringup::new(GROUP, member_wait),
            missing: BTreeMap::new(),
            replaced_out: Vec::new(),
            recovering: false,
            recovery_wake: None,
            spare_timeout,
            links: HashMap::new(),
            settings,
            shares: ShareManager::off(role),
        };
        node.load();
        if let Some(head) = node.pinned_head {
            node.start_export(head);
        }
        node.refresh_isus();
        node.plan_storage();
        node
    }

    /// Work for the loop to start, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// ISU: adopted by the head with key `head`, so export the data disks
    /// fenced with the key the two share.
    fn start_export(&mut self, head: [u8; 32]) {
        if self.role != Role::Isu || self.export != Export::WaitingForAdoption {
            return;
        }
        let pair = NodeKey::from_secret(self.secret).pair_key(&head);
        self.effects.push(Effect::StartExport { fence_key: fence_key(&pair) });
        self.export = Export::Starting;
    }

    fn load(&mut self) {
        let Some(store) = &self.store else { return };
        let loaded = match store.load() {
            Ok(report) => report.newest,
            Err(e) => return self.alert(format!("cannot read {}: {e}", self.store_name())),
        };
        let Some(loaded) = loaded else { return };
        match self.role {
            Role::Isu => match <[u8; 32]>::try_from(loaded.payload.as_slice()) {
                Ok(key) => self.pinned_head = Some(key),
                Err(_) => self.alert("pinned head key record is malformed".into()),
            },
            _ => match Registry::decode(loaded.version, &loaded.payload) {
                Ok(registry) => {
                    self.registry = registry;
                    self.registry_generation = loaded.generation;
                }
                Err(e) => self.alert(format!("adoption record unreadable: {e}")),
            },
        }
        let copy = self.copy_store.as_ref().and_then(|s| s.load().ok()?.newest);
        if let Some(copy) = copy {
            self.report.cluster_copy = describe_copy(&copy.payload).ok();
        }
    }

    fn store_name(&self) -> &'static str {
        if self.role == Role::Isu { "pinned head key" } else { "adoption record" }
    }

    fn alert(&mut self, message: String) {
        warn!("{message}");
        self.report.alerts.push(message);
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) -> Flow {
        match event {
            // Shares: carried out and answered by the share thread.
            Event::Local(Request::Shares(command), reply) => self.shares.submit(command, reply),
            Event::Local(request, reply) => {
                let response = self.answer(request);
                let _ = reply.try_send(response);
            }
            Event::Keys(reply) => {
                let _ = reply.try_send(Keys {
                    secret: self.secret,
                    serial: self.serial.clone(),
                    adopted: self.registry.adopted_keys(),
                    pinned_head: self.pinned_head,
                    head: self.head,
                });
            }
            Event::Ctrl(event) => self.on_ctrl(event),
            Event::Lease(update) => self.on_lease(update),
            Event::LeaseCounters(words) => self.report.lease_server = Some(words),
            Event::Storage(result) => {
                let now = self.started.elapsed();
                match result {
                    StorageResult::Attached { serial, device, result } => {
                        self.bringup.attached(&serial, device, result, now)
                    }
                    StorageResult::Started { result } => {
                        if result.is_ok() {
                            // Serve the group's shares as soon as its
                            // filesystem is mounted.
                            self.shares.volumes_changed();
                            // Members that were away at a degraded start
                            // are missing from now on.
                            for serial in self.member_serials() {
                                if self.bringup.device_of(&serial).is_none() {
                                    self.missing.entry(serial).or_insert(now);
                                }
                            }
                        }
                        self.bringup.started(result, now);
                    }
                    StorageResult::MemberFailed { serial, result } => {
                        if let Err(e) = result {
                            self.alert(format!("member {serial} could not be failed out of the group: {e}"));
                        }
                    }
                    StorageResult::Readded { serial, device, result } => {
                        self.recovering = false;
                        match result {
                            Ok(()) => {
                                self.missing.remove(&serial);
                                self.bringup.rejoined(&serial, device);
                            }
                            Err(e) => self.alert(format!("re-adding {serial} failed: {e}")),
                        }
                    }
                    StorageResult::Replaced { missing, spare, device, result } => {
                        self.recovering = false;
                        match result {
                            Ok(()) => {
                                self.bringup.replaced(&missing, &spare, device);
                                self.missing.remove(&missing);
                                self.replaced_out.push(missing);
                            }
                            Err(e) => self.alert(format!("spare {spare} could not replace {missing}: {e}")),
                        }
                    }
                }
                self.plan_storage();
            }
            Event::Export(update) => {
                self.export = match update {
                    ExportUpdate::Up(exports) => Export::Up(exports),
                    ExportUpdate::Down(why) => Export::Down(why),
                };
                self.report_to_head();
            }
            Event::Alert(message) => self.alert(message),
            Event::Tick => self.report_to_head(),
            Event::Clock => {
                if let Some(problem) = self.shares.tick() {
                    self.alert(problem);
                }
                if self.recovery_wake.is_some_and(|at| self.started.elapsed() >= at) {
                    self.plan_storage();
                }
                if self.settings.tick(&mut self.report) {
                    return Flow::Stop;
                }
            }
            Event::Stop(why) => {
                info!("supervisor stopping on {why}");
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Status => {
                self.report.uptime_secs = self.started.elapsed().as_secs();
                Response::Status(self.report.clone())
            }
            Request::Config => self.settings.config(),
            Request::ApplyConfig(config) => self.settings.apply(config, &mut self.report),
            Request::ConfirmConfig { generation } => self.settings.confirm(generation),
            Request::Shares(_) => Response::Refused("share requests go to the share thread".into()),
            Request::Adopt { .. } | Request::Reject { .. } if self.role != Role::Head => {
                Response::Refused(format!("only a head adopts ISUs; this node is {}", self.role))
            }
            Request::Adopt { serial, function } => {
                let before = self.registry.clone();
                let outcome = self
                    .registry
                    .adopt(&serial, function)
                    .map(|isu| format!("adopted {} (key {}) as {}", isu.serial, isu.fingerprint(), function.as_str()));
                self.commit_registry(before, outcome)
            }
            Request::Reject { serial } => {
                let before = self.registry.clone();
                let outcome = self
                    .registry
                    .reject(&serial)
                    .map(|isu| format!("rejected {} (key {})", isu.serial, isu.fingerprint()));
                self.commit_registry(before, outcome)
            }
        }
    }

    /// Persists an adoption decision before confirming it; on failure the
    /// registry goes back to `before` so memory never runs ahead of disk.
    fn commit_registry(
        &mut self,
        before: Registry,
        outcome: Result<String, opie_core::adoption::AdoptionError>,
    ) -> Response {
        let done = match outcome {
            Ok(done) => done,
            Err(e) => return Response::Refused(e.to_string()),
        };
        let saved = match (&self.store, self.registry.encode()) {
            (None, _) => Err("the state disk is not usable".to_string()),
            (Some(_), Err(e)) => Err(e.to_string()),
            (Some(store), Ok(payload)) => store.store(ADOPTION_VERSION, &payload).map_err(|e| e.to_string()),
        };
        match saved {
            Ok(generation) => self.registry_generation = generation,
            Err(e) => {
                self.registry = before;
                return Response::Refused(format!("not saved, nothing changed: {e}"));
            }
        }
        info!("{done}");
        self.refresh_isus();
        let adopted = self.registry.adopted_keys();
        for key in adopted {
            self.push_cluster_record(key);
        }
        Response::Done(format!("{done}; it joins on its next connection"))
    }

    fn on_ctrl(&mut self, event: CtrlEvent) {
        match event {
            CtrlEvent::Pending { serial, public_key } => {
                if self.registry.saw(&serial, public_key) == Seen::NewPending {
                    info!("new ISU {serial} (key {}) is pending adoption", fingerprint(&public_key));
                }
            }
            CtrlEvent::Up { serial, public_key, peer, outbox } => {
                if self.role == Role::Isu {
                    self.report.head_link = Some(format!("connected to {serial} at {peer}"));
                } else {
                    self.registry.saw(&serial, public_key);
                }
                self.links.insert(public_key, Link { serial, peer, outbox, last_report: None, last_state: None });
                self.push_cluster_record(public_key);
                self.report_to_head();
            }
            CtrlEvent::Message { public_key, message } => {
                self.on_message(public_key, message);
                self.plan_storage();
            }
            CtrlEvent::PinHead { public_key } => self.pin_head(public_key),
            CtrlEvent::Down { public_key, peer, reason } => {
                if let Some(link) = public_key.and_then(|k| self.links.remove(&k)) {
                    info!("control channel with {} ({}) down: {reason}", link.serial, link.peer);
                    self.member_lost(&link.serial);
                }
                if self.role == Role::Isu {
                    self.report.head_link = Some(format!("not connected to head {peer}: {reason}"));
                }
            }
        }
        self.refresh_isus();
    }

    /// Head: a member's control link broke while the group runs. Heartbeats
    /// notice in seconds; md alone would wait for nbd timeouts and the next
    /// write (FIELD-NOTES), so the member is failed out now and the group
    /// runs degraded until it returns or a spare replaces it.
    fn member_lost(&mut self, serial: &str) {
        if self.role != Role::Head || !self.bringup.is_online() || self.missing.contains_key(serial) {
            return;
        }
        let Some(device) = self.bringup.device_of(serial) else { return };
        warn!("group {GROUP} is degraded: member {serial} (/dev/nbd{device}) is gone");
        self.missing.insert(serial.to_string(), self.started.elapsed());
        self.effects.push(Effect::FailMember { serial: serial.to_string(), device });
    }

    /// Head: what the recovery planner sees of the running group.
    fn group_view(&self) -> GroupView {
        let by_serial = |serial: &str| {
            self.registry.isus().iter().find(|i| i.serial == serial).and_then(|i| self.links.get(&i.public_key))
        };
        let ready = |serial: &str| {
            by_serial(serial).and_then(|l| l.last_state.as_ref()).is_some_and(|s| s.state == IsuState::Normal)
        };
        let size = |serial: &str| {
            by_serial(serial).and_then(|l| l.last_state.as_ref()).and_then(|s| s.exports.first()).map(|(_, b)| *b)
        };
        let mut serials: Vec<String> = self.bringup.attached_members().map(|(s, _)| s.to_string()).collect();
        serials.extend(self.missing.keys().filter(|s| !serials.contains(s)).cloned().collect::<Vec<_>>());
        let slots: Vec<Slot> = serials
            .iter()
            .map(|serial| Slot {
                isu: serial.clone(),
                state: match self.missing.get(serial) {
                    Some(since) if ready(serial) => SlotState::Returned { since: *since },
                    Some(since) => SlotState::Missing { since: *since },
                    None => SlotState::InSync,
                },
            })
            .collect();
        let member_size = slots.iter().filter_map(|s| size(&s.isu)).min().unwrap_or(0);
        let spares = self
            .registry
            .isus()
            .iter()
            .filter(|i| i.standing == Standing::Adopted(Function::Spare) && ready(&i.serial))
            .filter_map(|i| Some(Spare { isu: i.serial.clone(), size: size(&i.serial)? }))
            .collect();
        let replaced_back = self.replaced_out.iter().filter(|s| ready(s)).cloned().collect();
        GroupView { name: GROUP.into(), member_size, slots, spares, reshaping: false, replaced_back }
    }

    /// Head: the next recovery step for a degraded group, if any.
    fn plan_recovery(&mut self) -> Vec<String> {
        if !self.bringup.is_online() || (self.missing.is_empty() && self.replaced_out.is_empty()) {
            self.recovery_wake = None;
            return Vec::new();
        }
        let plan = recovery::plan(&self.group_view(), self.started.elapsed(), self.spare_timeout);
        self.recovery_wake = plan.wake_at;
        if self.recovering {
            return plan.alerts;
        }
        match plan.step {
            Some(RecoveryStep::ReAdd { isu }) => {
                // A member away since a degraded start has no device yet.
                let device = self.bringup.device_of(&isu).unwrap_or_else(|| self.bringup.free_device());
                if let Some(job) = self.attach_job(&isu, Some(device)) {
                    self.recovering = true;
                    self.effects.push(Effect::Readd(job));
                }
            }
            Some(RecoveryStep::Replace { missing, spare }) => {
                if let Some(job) = self.attach_job(&spare, Some(self.bringup.free_device())) {
                    self.recovering = true;
                    self.effects.push(Effect::Replace { missing, job });
                }
            }
            None => {}
        }
        let mut words = plan.alerts;
        words.extend(plan.offer_as_spare.iter().map(|s| format!("{s} came back after a spare replaced it")));
        words
    }

    /// Head: serials of the ISUs adopted as members.
    fn member_serials(&self) -> Vec<String> {
        let members = self.registry.isus().iter().filter(|i| i.standing == Standing::Adopted(Function::Member));
        members.map(|i| i.serial.clone()).collect()
    }

    /// Head: how to attach `serial`'s export as `device`.
    fn attach_job(&self, serial: &str, device: Option<u32>) -> Option<AttachJob> {
        let isu = self.registry.isus().iter().find(|i| i.serial == serial)?;
        let link = self.links.get(&isu.public_key)?;
        let (export, _) = link.last_state.as_ref()?.exports.first()?;
        let std::net::IpAddr::V4(addr) = link.peer.ip() else { return None };
        let pair = NodeKey::from_secret(self.secret).pair_key(&isu.public_key);
        Some(AttachJob {
            serial: serial.to_string(),
            addr,
            export: export.clone(),
            device: device.or_else(|| self.bringup.device_of(serial))?,
            fence_key: fence_key(&pair),
        })
    }

    /// Head: asks the start-up planner for the next storage step.
    fn plan_storage(&mut self) {
        if self.role != Role::Head {
            return;
        }
        let members: Vec<&opie_core::adoption::Isu> =
            self.registry.isus().iter().filter(|i| i.standing == Standing::Adopted(Function::Member)).collect();
        let ready: Vec<ReadyMember> = members
            .iter()
            .filter_map(|isu| {
                let link = self.links.get(&isu.public_key)?;
                let state = link.last_state.as_ref()?;
                let (export, _) = state.exports.first()?;
                let std::net::IpAddr::V4(addr) = link.peer.ip() else { return None };
                (state.state == IsuState::Normal).then(|| ReadyMember {
                    serial: isu.serial.clone(),
                    addr,
                    export: export.clone(),
                })
            })
            .collect();
        let step = self.bringup.next(members.len(), &ready, self.started.elapsed());
        match step {
            Some(Step::Attach { serial, addr, export, device }) => {
                let Some(isu) = members.iter().find(|i| i.serial == serial) else { return };
                let pair = NodeKey::from_secret(self.secret).pair_key(&isu.public_key);
                self.effects.push(Effect::Attach(AttachJob {
                    serial,
                    addr,
                    export,
                    device,
                    fence_key: fence_key(&pair),
                }));
            }
            Some(Step::Start { group, devices, degraded }) => {
                self.effects.push(Effect::StartGroup { group, devices, degraded })
            }
            None => {}
        }
        let recovery = self.plan_recovery();
        let mut words = self.bringup.describe();
        for alert in recovery {
            words.push_str("; ");
            words.push_str(&alert);
        }
        self.report.storage = Some(words);
    }

    fn on_lease(&mut self, update: LeaseUpdate) {
        match update {
            LeaseUpdate::Bound { addr, server } => {
                self.report.storage_addr = Some(addr);
                self.report.lease = Some(format!("{addr} from {server}"));
                // The lease server is the active head: report to it.
                self.head = Some(SocketAddr::from((server, CTRL_PORT)));
            }
            LeaseUpdate::Searching(words) => {
                self.report.storage_addr = None;
                self.report.lease = Some(words);
            }
        }
    }

    fn on_message(&mut self, public_key: [u8; 32], message: Message) {
        let Some(link) = self.links.get_mut(&public_key) else { return };
        match message {
            Message::Status(report) => {
                let words = describe(&report);
                if link.last_report.as_deref() != Some(words.as_str()) {
                    info!("ISU {} reports {words}", link.serial);
                }
                link.last_report = Some(words);
                link.last_state = Some(report);
            }
            Message::ConfigAck { generation } => {
                info!("{} holds a copy of cluster record generation {generation}", link.serial);
            }
            Message::ConfigPush { generation, record } => {
                let outbox = link.outbox.clone();
                match self.keep_cluster_copy(generation, &record) {
                    Ok(()) => {
                        let _ = outbox.try_send(Message::ConfigAck { generation });
                    }
                    Err(e) => self.alert(format!("cluster record generation {generation} from the head not kept: {e}")),
                }
            }
            other => info!("control message from {}: {other:?}", link.serial),
        }
    }

    /// Head: sends the sealed adoption record to an adopted ISU's link so
    /// every ISU holds a copy of who is in the cluster (DESIGN §9).
    fn push_cluster_record(&mut self, key: [u8; 32]) {
        if self.role != Role::Head || self.registry_generation == 0 || !self.registry.adopted_keys().contains(&key) {
            return;
        }
        let Some(link) = self.links.get(&key) else { return };
        let record = self.registry.encode().ok().and_then(|payload| {
            let generation = self.registry_generation;
            Record { magic: ADOPTION_MAGIC, version: ADOPTION_VERSION, generation, payload: &payload }.emit().ok()
        });
        if let Some(record) = record {
            let _ = link.outbox.try_send(Message::ConfigPush { generation: self.registry_generation, record });
        }
    }

    /// ISU: keeps the head's cluster record if it parses, decodes and is
    /// newer than the copy held; an older or equal one is acknowledged and
    /// left alone.
    fn keep_cluster_copy(&mut self, generation: u64, record: &[u8]) -> Result<(), String> {
        if self.role != Role::Isu {
            return Err("only ISUs keep copies".into());
        }
        let words = describe_copy(record)?;
        let store = self.copy_store.as_ref().ok_or("the state disk is not usable")?;
        let held = store
            .load()
            .ok()
            .and_then(|r| r.newest)
            .and_then(|c| Record::parse(&c.payload, ADOPTION_MAGIC).ok().map(|r| r.generation));
        if held.is_some_and(|g| g >= generation) {
            return Ok(());
        }
        store.store(1, record).map_err(|e| e.to_string())?;
        self.report.cluster_copy = Some(words);
        Ok(())
    }

    fn pin_head(&mut self, public_key: [u8; 32]) {
        let saved = match &self.store {
            Some(store) => store.store(1, &public_key).map_err(|e| e.to_string()),
            None => Err("the state disk is not usable".into()),
        };
        match saved {
            Ok(_) => {
                info!("pinned head key {}", fingerprint(&public_key));
                self.pinned_head = Some(public_key);
                self.start_export(public_key);
            }
            Err(e) => self.alert(format!("head key {} not pinned: {e}", fingerprint(&public_key))),
        }
    }

    /// ISU: sends its status to the head over every live link.
    fn report_to_head(&mut self) {
        if self.role != Role::Isu {
            return;
        }
        let (state, exports, detail) = match &self.export {
            Export::WaitingForAdoption => (IsuState::Booting, Vec::new(), "waiting for adoption".to_string()),
            Export::Starting => (IsuState::Booting, Vec::new(), "starting the NBD server".to_string()),
            Export::Up(exports) => (IsuState::Normal, exports.clone(), String::new()),
            Export::Down(why) => (IsuState::NbdDown, Vec::new(), why.clone()),
        };
        let report = IsuReport { state, epoch: 0, exports, detail };
        self.report.export = Some(match &self.export {
            Export::WaitingForAdoption | Export::Starting => report.detail.clone(),
            Export::Up(_) | Export::Down(_) => describe(&report),
        });
        for link in self.links.values() {
            let _ = link.outbox.try_send(Message::Status(report.clone()));
        }
    }

    /// Rebuilds the status report's ISU list from registry and links.
    fn refresh_isus(&mut self) {
        if self.role == Role::Isu {
            return;
        }
        self.report.isus = self
            .registry
            .isus()
            .iter()
            .map(|isu| {
                let link = self.links.get(&isu.public_key);
                IsuStatus {
                    serial: isu.serial.clone(),
                    fingerprint: isu.fingerprint(),
                    standing: isu.standing,
                    connected: link.is_some() && matches!(isu.standing, Standing::Adopted(_)),
                    reported: link.and_then(|l| l.last_report.clone()),
                }
            })
            .collect();
    }
}

/// A held copy of the head's cluster record, in words; an error when the
/// bytes are not a valid adoption record.
fn describe_copy(record: &[u8]) -> Result<String, String> {
    let parsed = Record::parse(record, ADOPTION_MAGIC).map_err(|e| e.to_string())?;
    let registry = Registry::decode(parsed.version, parsed.payload).map_err(|e| e.to_string())?;
    let adopted = registry.adopted_keys().len();
    Ok(format!("generation {}, {adopted} adopted ISU(s)", parsed.generation))
}

/// An ISU report in words, for the status page and logs.
fn describe(report: &IsuReport) -> String {
    let state = match report.state {
        IsuState::Booting => "booting",
        IsuState::Normal => "normal",
        IsuState::DiskFailure => "disk failure",
        IsuState::MdBroken => "md broken",
        IsuState::NbdDown => "NBD server down",
    };
    let exports: Vec<String> =
        report.exports.iter().map(|(name, bytes)| format!("{name} {} MiB", bytes / (1024 * 1024))).collect();
    match (report.detail.is_empty(), exports.is_empty()) {
        (true, true) => state.to_string(),
        (true, false) => format!("{state}, exports {}", exports.join(", ")),
        (false, _) => format!("{state}: {}", report.detail),
    }
}
