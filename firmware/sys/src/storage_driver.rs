//! Carries out the group planner's steps through a [`Host`] (DESIGN §6,
//! §10): observe, ask `opie_core::storage::plan::next_step`, run that one
//! step, observe again, until the planner says done or refuses.
//!
//! Owns the observation (which tool calls make up an
//! [`Observed`](opie_core::storage::plan::Observed)) and the loop's guards:
//! a step the planner asks for twice in a row did not take effect, and a
//! bound on the number of steps. Decisions stay in the planner; the tools
//! stay behind the `Host`.

use std::time::{Duration, Instant};

use opie_core::storage::plan::{self, GroupSpec, MemberState, Mode, Next, Observed, PlanError, Step};
use thiserror::Error;

use crate::host::{Host, HostError};

/// More steps than a set-up has (create, PV, VG, LV, mkfs, mount) plus
/// re-tries: a loop that gets here is not converging.
pub const MAX_STEPS: usize = 12;

#[derive(Debug, Error)]
pub enum DriverError {
    /// Observing the host failed.
    #[error("observing the host: {0}")]
    Observe(#[source] HostError),
    /// The planner refused (foreign disk, too few members, ...).
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A step failed; the tool's words are in `source`.
    #[error("{step}: {source}")]
    Step { step: String, source: HostError },
    /// The step ran without error but the host still looks the same.
    #[error("{step}: reported success but had no effect")]
    NoProgress { step: String },
    #[error("set-up did not finish within {MAX_STEPS} steps")]
    TooManySteps,
}

/// One step that ran, with its duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub step: Step,
    pub took: Duration,
}

/// Observes what the planner needs. A member device that cannot be read
/// is reported as absent (size 0, nothing on it) when starting, so a group
/// with one ISU down still assembles degraded; when creating it is an error.
pub fn observe(host: &mut dyn Host, spec: &GroupSpec, mode: Mode) -> Result<Observed, HostError> {
    let mut obs = Observed::default();
    for device in &spec.members {
        let seen = host.device_size(device).and_then(|size| Ok((size, host.examine(device)?, host.probe(device)?)));
        match seen {
            Ok((size, examine, signatures)) => {
                obs.members.push(MemberState { device: device.clone(), size, examine, signatures });
            }
            // Missing or unreadable (an ISU that is down, an NBD device
            // whose connection died): at start-up that member is absent.
            Err(e) if mode == Mode::Start => {
                log::warn!("storage: {device} is not usable, counted as absent: {e}");
                obs.members.push(MemberState { device: device.clone(), size: 0, examine: None, signatures: vec![] });
            }
            Err(e) => return Err(e),
        }
    }
    obs.array = host.detail(&spec.md_device)?;
    if obs.array.is_some() {
        obs.array_signatures = host.probe(&spec.md_device)?;
        obs.pvs = host.pvs()?;
        obs.vgs = host.vgs()?;
        obs.lvs = host.lvs()?;
        let vg = spec.group.vg();
        if let Some(lv) =
            obs.lvs.iter().find(|l| l.vg == vg && l.name == opie_core::storage::names::DATA_LV && l.active())
        {
            obs.lv_signatures = host.probe(&lv.path)?;
        }
    }
    obs.mounts = host.mounts()?;
    Ok(obs)
}

/// Brings the group up in `mode`, calling `on_step` before each step runs
/// (for logging). Returns the steps that ran; empty when all was done.
pub fn bring_up(
    host: &mut dyn Host,
    spec: &GroupSpec,
    mode: Mode,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Vec<Ran>, DriverError> {
    let mut ran: Vec<Ran> = Vec::new();
    loop {
        let obs = observe(host, spec, mode).map_err(DriverError::Observe)?;
        let step = match plan::next_step(spec, mode, &obs)? {
            Next::Done => return Ok(ran),
            Next::Step(step) => step,
        };
        if ran.last().is_some_and(|r| r.step == step) {
            return Err(DriverError::NoProgress { step: step.describe() });
        }
        if ran.len() >= MAX_STEPS {
            return Err(DriverError::TooManySteps);
        }
        on_step(&step);
        let t = Instant::now();
        host.run_step(&step).map_err(|source| DriverError::Step { step: step.describe(), source })?;
        ran.push(Ran { step, took: t.elapsed() });
    }
}
