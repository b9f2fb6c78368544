//! The supervisor's side of config changes from the console (issue 7).
//!
//! Owns the running config as the event loop sees it: answering "what is
//! the config", applying a new one (checked by
//! `opie_core::config_change`, persisted through the config slot store as
//! the next generation before the answer, then applied to the system on
//! the appliance and shown in the status report), confirming a network
//! change, and restoring the previous config when the confirmation does not
//! come in time. Runs inside [`crate::node::Node`]'s loop; nothing here
//! blocks longer than one slot write.

use std::time::{Duration, Instant};

use log::{error, info, warn};
use opie_core::api::Response;
use opie_core::boot::ConfigSource;
use opie_core::config::{CONFIG_VERSION, Config, Role};
use opie_core::config_change::ConfigChanges;
use opie_core::status::StatusReport;
use opie_sys::slots::SlotStore;

use crate::supervisor::apply_system;

/// Grace between answering the confirmation of a role change and stopping
/// for init to respawn the supervisor in its new role.
const RESTART_GRACE: Duration = Duration::from_secs(1);

/// The running config, its store and any change on probation.
#[derive(Debug)]
pub struct Settings {
    changes: ConfigChanges,
    /// `None` when the state disk is unusable: nothing can be saved.
    store: Option<SlotStore>,
    /// Whether this process runs the node (hostname, interfaces, respawn
    /// by init); off on a development host.
    appliance: bool,
    started: Instant,
    /// The role this process started in and runs the services of.
    start_role: Role,
    /// When to stop so init restarts the supervisor in a new role.
    restart_at: Option<Duration>,
}

impl Settings {
    pub fn new(config: Config, generation: u64, store: Option<SlotStore>, appliance: bool, window: Duration) -> Self {
        Settings {
            start_role: config.role,
            changes: ConfigChanges::new(config, generation, window),
            store,
            appliance,
            started: Instant::now(),
            restart_at: None,
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Answers `Request::Config`.
    pub fn config(&self) -> Response {
        let (config, generation) = self.changes.running();
        Response::Config { config: config.clone(), generation }
    }

    /// Answers `Request::ApplyConfig`: check, persist, run.
    pub fn apply(&mut self, new: Config, report: &mut StatusReport) -> Response {
        if let Err(e) = self.changes.check(&new) {
            return Response::Refused(format!("not saved: {e}"));
        }
        let generation = match self.persist(&new) {
            Ok(g) => g,
            Err(e) => return Response::Refused(format!("not saved, nothing changed: {e}")),
        };
        let deadline = self.changes.applied(new, generation, self.now());
        self.run(report);
        info!(
            "config generation {generation} applied{}",
            if deadline.is_some() { "; network change waits for confirmation" } else { "" }
        );
        if deadline.is_none() {
            self.restart_if_new_role();
        }
        let confirm_within_secs = deadline.map(|d| d.saturating_sub(self.now()).as_millis().div_ceil(1000) as u64);
        Response::Applied { generation, confirm_within_secs }
    }

    /// Answers `Request::ConfirmConfig`.
    pub fn confirm(&mut self, generation: u64) -> Response {
        match self.changes.confirm(generation) {
            Ok(()) => {
                info!("network change of config generation {generation} confirmed");
                self.restart_if_new_role();
                Response::Done(format!("network settings of generation {generation} kept"))
            }
            Err(e) => Response::Refused(e.to_string()),
        }
    }

    /// Once a second: rolls back an unconfirmed change whose time is up.
    /// Returns whether the supervisor should stop (to be respawned in its
    /// new role).
    pub fn tick(&mut self, report: &mut StatusReport) -> bool {
        let now = self.now();
        if let Some(previous) = self.changes.due(now).cloned() {
            match self.persist(&previous) {
                Ok(generation) => {
                    self.changes.restored(generation);
                    let message = format!(
                        "network change not confirmed within the time allowed: previous settings restored (generation {generation})"
                    );
                    warn!("{message}");
                    report.alerts.push(message);
                    self.run(report);
                }
                Err(e) => error!("restoring the previous config failed, retrying: {e}"),
            }
        }
        self.restart_at.is_some_and(|at| now >= at)
    }

    /// A new role (first set-up) takes effect by a restart: init respawns
    /// the supervisor, which starts the role's services. Only on the
    /// appliance; on a host nobody would respawn it.
    fn restart_if_new_role(&mut self) {
        if self.appliance && self.changes.running().0.role != self.start_role {
            info!("role is now {}: restarting the supervisor in it", self.changes.running().0.role);
            self.restart_at = Some(self.now() + RESTART_GRACE);
        }
    }

    fn persist(&self, config: &Config) -> Result<u64, String> {
        let store = self.store.as_ref().ok_or("the state disk is not usable")?;
        let payload = config.encode().map_err(|e| e.to_string())?;
        store.store(CONFIG_VERSION, &payload).map_err(|e| e.to_string())
    }

    /// Shows the running config in the status report and, on the
    /// appliance, applies its hostname and storage address.
    fn run(&self, report: &mut StatusReport) {
        let (config, generation) = self.changes.running();
        report.role = config.role;
        report.hostname = config.hostname.clone();
        report.config_origin = ConfigSource::Stored.into();
        report.config_generation = generation;
        report.storage_iface = config.storage.iface.clone();
        report.storage_addr = config.storage.static_addr;
        if self.appliance {
            apply_system(config, &mut report.alerts);
        }
    }
}
