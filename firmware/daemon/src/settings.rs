//! The supervisor's side of config changes from the console (issue 7).
//!
//! Owns the running config as the event loop sees it: answering "what is
//! the config", applying a new one (checked by
//! `opie_core::config_change`, persisted through the config slot store as
//! the next generation before the answer, then applied to the system on
//! the appliance and shown in the status report), confirming a network
//! change, and restoring the previous config when the confirmation does not
//! come in time, or when the supervisor restarts before it came (the
//! probation record, see `opie_core::config_change`). Runs inside
//! [`crate::node::Node`]'s loop; nothing here blocks longer than two slot
//! writes.

use std::path::Path;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use opie_core::api::Response;
use opie_core::boot::ConfigSource;
use opie_core::config::{CONFIG_MAGIC, CONFIG_VERSION, Config, Role};
use opie_core::config_change::{ConfigChanges, PROBATION_MAGIC, PROBATION_VERSION, Probation};
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
    /// Config and probation stores; `None` when the state disk is
    /// unusable: nothing can be saved.
    stores: Option<(SlotStore, SlotStore)>,
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
    /// Starts from the config loaded at start-up (`generation` 0 when none
    /// is stored) kept in `state_dir`. A change left on probation by a
    /// previous supervisor is rolled back here, and `report` says so.
    pub fn new(
        config: Config,
        generation: u64,
        state_dir: Option<&Path>,
        appliance: bool,
        window: Duration,
        report: &mut StatusReport,
    ) -> Self {
        let stores = state_dir.map(|dir| {
            (SlotStore::new(dir, "config", CONFIG_MAGIC), SlotStore::new(dir, "config-probation", PROBATION_MAGIC))
        });
        let mut settings = Settings {
            start_role: config.role,
            changes: ConfigChanges::new(config, generation, window),
            stores,
            appliance,
            started: Instant::now(),
            restart_at: None,
        };
        settings.finish_probation(generation, report);
        settings
    }

    /// Restores the previous config if the loaded one was never confirmed.
    fn finish_probation(&mut self, loaded: u64, report: &mut StatusReport) {
        let Some((_, probation_store)) = &self.stores else { return };
        let probation = match probation_store.load() {
            Ok(found) => match found.newest.map(|r| Probation::decode(r.version, &r.payload)) {
                Some(Ok(probation)) => probation,
                Some(Err(e)) => return report.alerts.push(format!("config probation record unreadable: {e}")),
                None => return,
            },
            Err(e) => return report.alerts.push(format!("cannot read the config probation record: {e}")),
        };
        let Some(previous) = probation.unsettled(loaded).cloned() else { return };
        match self.persist(&previous).and_then(|generation| self.settle(generation).map(|()| generation)) {
            Ok(generation) => {
                let message = format!(
                    "the supervisor restarted before a network change was confirmed: previous settings restored (generation {generation})"
                );
                warn!("{message}");
                report.alerts.push(message);
                self.changes = ConfigChanges::new(previous, generation, self.window());
                self.run(report);
                self.restart("the previous settings are back");
            }
            Err(e) => {
                let message = format!("an unconfirmed network change could not be rolled back: {e}");
                error!("{message}");
                report.alerts.push(message);
            }
        }
    }

    fn window(&self) -> Duration {
        self.changes.window()
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
        let needs_confirm = match self.changes.check(&new) {
            Ok(needs) => needs,
            Err(e) => return Response::Refused(format!("not saved: {e}")),
        };
        if needs_confirm {
            // The way back is on disk before the change is.
            let (running, running_generation) = self.changes.running();
            let probation = Probation { previous_generation: running_generation, previous: Some(running.clone()) };
            if let Err(e) = self.write_probation(&probation) {
                return Response::Refused(format!("not saved, nothing changed: {e}"));
            }
        }
        let generation = match self.persist(&new) {
            Ok(g) => g,
            Err(e) => {
                if needs_confirm {
                    // Left unsettled, the record would undo the next
                    // change that is saved.
                    let _ = self.settle(self.changes.running().1);
                }
                return Response::Refused(format!("not saved, nothing changed: {e}"));
            }
        };
        let deadline = self.changes.applied(new, generation, self.now());
        self.run(report);
        info!(
            "config generation {generation} applied{}",
            if deadline.is_some() { "; network change waits for confirmation" } else { "" }
        );
        if deadline.is_none() && self.changes.running().0.role != self.start_role {
            self.restart("the node has its role");
        }
        let confirm_within_secs = deadline.map(|d| d.saturating_sub(self.now()).as_millis().div_ceil(1000) as u64);
        Response::Applied { generation, confirm_within_secs }
    }

    /// Answers `Request::ConfirmConfig`.
    pub fn confirm(&mut self, generation: u64) -> Response {
        match self.changes.confirm(generation) {
            Ok(()) => {
                info!("network change of config generation {generation} confirmed");
                if let Err(e) = self.settle(generation) {
                    let message = format!("confirmation not saved ({e}): a supervisor restart would undo the change");
                    error!("{message}");
                    return Response::Refused(message);
                }
                self.restart("new network settings confirmed");
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
                    if let Err(e) = self.settle(generation) {
                        // A restart restores the previous config once more:
                        // harmless.
                        warn!("probation record not settled: {e}");
                    }
                    let message = format!(
                        "network change not confirmed within the time allowed: previous settings restored (generation {generation})"
                    );
                    warn!("{message}");
                    report.alerts.push(message);
                    self.run(report);
                    self.restart("the previous settings are back");
                }
                Err(e) => error!("restoring the previous config failed, retrying: {e}"),
            }
        }
        self.restart_at.is_some_and(|at| now >= at)
    }

    /// A new role or network plan takes effect by a restart: init respawns
    /// the supervisor, which starts the role's services (lease server,
    /// control channel) from the stored config. Only on the appliance; on a
    /// host nobody would respawn it.
    fn restart(&mut self, why: &str) {
        if self.appliance {
            info!("{why}: restarting the supervisor to run with it");
            self.restart_at = Some(self.now() + RESTART_GRACE);
        }
    }

    fn persist(&self, config: &Config) -> Result<u64, String> {
        let (store, _) = self.stores.as_ref().ok_or("the state disk is not usable")?;
        let payload = config.encode().map_err(|e| e.to_string())?;
        store.store(CONFIG_VERSION, &payload).map_err(|e| e.to_string())
    }

    fn write_probation(&self, probation: &Probation) -> Result<(), String> {
        let (_, store) = self.stores.as_ref().ok_or("the state disk is not usable")?;
        let payload = probation.encode().map_err(|e| e.to_string())?;
        store.store(PROBATION_VERSION, &payload).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Marks the probation record settled: the config of `generation`
    /// (confirmed or restored) runs, nothing is to be restored at start.
    fn settle(&self, generation: u64) -> Result<(), String> {
        self.write_probation(&Probation { previous_generation: generation, previous: None })
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

#[cfg(test)]
mod tests {
    use super::*;
    use opie_core::status::ConfigOrigin;

    fn report(config: &Config) -> StatusReport {
        StatusReport {
            version: "test".into(),
            role: config.role,
            hostname: config.hostname.clone(),
            storage_iface: config.storage.iface.clone(),
            storage_addr: config.storage.static_addr,
            ..StatusReport::default()
        }
    }

    fn factory() -> Config {
        Config::new(Role::Unconfigured, "opie")
    }

    fn head() -> Config {
        Config::new(Role::Head, "head-1")
    }

    /// Starts settings as the supervisor does: from what the store holds.
    fn boot(dir: &Path, window: Duration) -> (Settings, StatusReport) {
        let store = SlotStore::new(dir, "config", CONFIG_MAGIC);
        let (config, generation) = match store.load().expect("load").newest {
            Some(l) => (Config::decode(l.version, &l.payload).expect("decode"), l.generation),
            None => (factory(), 0),
        };
        let mut report = report(&config);
        let settings = Settings::new(config, generation, Some(dir), false, window, &mut report);
        (settings, report)
    }

    fn applied(response: Response) -> (u64, Option<u64>) {
        match response {
            Response::Applied { generation, confirm_within_secs } => (generation, confirm_within_secs),
            other => panic!("not applied: {other:?}"),
        }
    }

    #[test]
    fn confirmed_change_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, mut r) = boot(dir.path(), Duration::from_secs(60));
        assert_eq!(applied(s.apply(head(), &mut r)), (1, Some(60)));
        assert_eq!((r.role, r.config_generation, r.config_origin), (Role::Head, 1, ConfigOrigin::Stored));
        assert!(matches!(s.confirm(1), Response::Done(_)));
        assert!(matches!(s.confirm(1), Response::Refused(_)));
        let (s, r) = boot(dir.path(), Duration::from_secs(60));
        assert_eq!(s.changes.running(), (&head(), 1));
        assert!(r.alerts.is_empty(), "{:?}", r.alerts);
    }

    #[test]
    fn unconfirmed_change_is_undone_by_a_restart_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, mut r) = boot(dir.path(), Duration::from_secs(60));
        applied(s.apply(head(), &mut r));
        drop(s);
        let (s, r) = boot(dir.path(), Duration::from_secs(60));
        assert_eq!(s.changes.running(), (&factory(), 2));
        assert_eq!((r.role, r.config_generation), (Role::Unconfigured, 2));
        assert!(r.alerts[0].contains("restarted before a network change was confirmed"), "{:?}", r.alerts);
        // Settled: the next start restores nothing more.
        let (s, r) = boot(dir.path(), Duration::from_secs(60));
        assert_eq!(s.changes.running(), (&factory(), 2));
        assert!(r.alerts.is_empty());
    }

    #[test]
    fn the_clock_rolls_back_after_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, mut r) = boot(dir.path(), Duration::ZERO);
        applied(s.apply(head(), &mut r));
        assert!(!s.tick(&mut r), "a host supervisor never stops for a restart");
        assert_eq!((r.role, r.config_generation), (Role::Unconfigured, 2));
        assert!(r.alerts[0].contains("not confirmed within the time allowed"));
        assert!(matches!(s.confirm(1), Response::Refused(_)));
        let (s, _) = boot(dir.path(), Duration::ZERO);
        assert_eq!(s.changes.running(), (&factory(), 2));
    }

    #[test]
    fn refused_changes_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, mut r) = boot(dir.path(), Duration::from_secs(60));
        let isu = Config::new(Role::Isu, "isu-1");
        assert_eq!(applied(s.apply(isu, &mut r)), (1, None), "a leased ISU changes no network");
        let Response::Refused(why) = s.apply(head(), &mut r) else { panic!("role change accepted") };
        assert!(why.contains("role cannot change"), "{why}");
        let mut bad = Config::new(Role::Isu, "isu-1");
        bad.hostname = "no spaces".into();
        assert!(matches!(s.apply(bad, &mut r), Response::Refused(_)));
        assert_eq!(s.config(), Response::Config { config: Config::new(Role::Isu, "isu-1"), generation: 1 });
        let store = SlotStore::new(dir.path(), "config", CONFIG_MAGIC);
        assert_eq!(store.load().expect("load").newest.expect("stored").generation, 1);
    }

    #[test]
    fn without_a_state_disk_nothing_is_applied() {
        let mut r = report(&factory());
        let mut s = Settings::new(factory(), 0, None, false, Duration::from_secs(60), &mut r);
        let Response::Refused(why) = s.apply(head(), &mut r) else { panic!("applied without a disk") };
        assert!(why.contains("state disk is not usable"), "{why}");
        assert_eq!(r.role, Role::Unconfigured);
    }
}
