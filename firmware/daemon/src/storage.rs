//! `opie storage ...`: a head's RAID groups by hand (DESIGN §6, §10).
//!
//! Wiring only: `opie_core::storage::plan` decides, `opie_sys::storage_driver`
//! runs the steps through `opie_sys::host::RealHost`. Each step and its
//! duration is printed and logged.
//!
//! - `create-group --name G DEV...`: first set-up of group G (RAID5 with an
//!   internal bitmap, LVM, 64-bit ext4 mounted acl,user_xattr at /srv/G);
//!   re-running it resumes an interrupted set-up and changes nothing on a
//!   group that is up. Refuses, naming the disk, any member that holds
//!   another cluster's or group's data or any other signature.
//! - `assemble --name G DEV...`: start-up: assemble with all members or all
//!   but one (degraded), activate, mount (the journal replays); never
//!   creates anything.
//! - `status`: arrays from /proc/mdstat with their names and progress,
//!   data volumes and where they are mounted.
//! - `exports`, `export`, `unexport`, `smb-user`, `smb-reload`,
//!   `resize-fs`: the `Host` calls the share manager and group growth are
//!   built on, one each, for an operator (and the QEMU test) to run by hand.

use std::time::Instant;

use opie_core::storage::mdadm::MemberRole;
use opie_core::storage::names::{ClusterName, GroupName};
use opie_core::storage::plan::{GroupSpec, Mode, Step};
use opie_sys::host::{Host, MemberAction, RealHost};
use opie_sys::storage_driver::bring_up;

use crate::logging;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StorageCommand {
    /// First set-up of a RAID5 group over blank member devices (resumes an
    /// interrupted set-up; does nothing when the group is already up).
    CreateGroup(GroupArgs),
    /// Start an existing group: assemble (all members, or all but one),
    /// activate its volumes and mount its filesystem.
    Assemble(GroupArgs),
    /// Show arrays, data volumes and mounts.
    Status,
    /// List the kernel NFS server's exports (`exportfs -v`, parsed).
    Exports,
    /// Export a directory over NFS now (`exportfs -o OPTIONS CLIENT:PATH`).
    Export(ExportArgs),
    /// Stop exporting a directory (`exportfs -u CLIENT:PATH`).
    Unexport(UnexportArgs),
    /// Add or change an SMB user of ksmbd; the password is read from stdin.
    SmbUser(SmbUserArgs),
    /// Make ksmbd.mountd re-read its configuration and users.
    SmbReload,
    /// Grow an ext4 filesystem to its (grown) volume, online when mounted.
    ResizeFs(ResizeArgs),
    /// Change one member of a running array: fail, remove, re-add (the
    /// bitmap resyncs what changed) or add (a spare: full rebuild).
    Member(MemberArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MemberVerb {
    Fail,
    Remove,
    ReAdd,
    Add,
}

#[derive(Debug, clap::Args)]
struct MemberArgs {
    #[arg(value_enum)]
    action: MemberVerb,
    /// The member device, e.g. /dev/nbd1.
    device: String,
    /// The array.
    #[arg(long, default_value = "/dev/md0")]
    md: String,
}

#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// Who may mount: a host, a network (10.0.0.0/8) or `*`.
    #[arg(long)]
    client: String,
    #[arg(long)]
    path: String,
    /// Export options, comma-separated.
    #[arg(long, default_value = "rw,sync,no_subtree_check")]
    options: String,
}

#[derive(Debug, clap::Args)]
struct UnexportArgs {
    #[arg(long)]
    client: String,
    #[arg(long)]
    path: String,
}

#[derive(Debug, clap::Args)]
struct SmbUserArgs {
    #[arg(long)]
    user: String,
    /// The user exists already: change its password.
    #[arg(long)]
    update: bool,
}

#[derive(Debug, clap::Args)]
struct ResizeArgs {
    /// The filesystem's device (e.g. /dev/opie_g1/data).
    device: String,
}

#[derive(Debug, clap::Args)]
struct GroupArgs {
    /// The group's name (md name, VG opie_<name>, ext4 label).
    #[arg(long)]
    name: String,
    /// The cluster's name: the md homehost of the group's array.
    #[arg(long, default_value = "opie")]
    cluster: String,
    /// The md device node to use.
    #[arg(long, default_value = "/dev/md0")]
    md: String,
    /// Percent of the volume group kept free for backup snapshots.
    #[arg(long, default_value_t = opie_core::storage::plan::DEFAULT_RESERVE_PERCENT)]
    reserve: u8,
    /// Where to mount the data volume [default: /srv/<name>].
    #[arg(long)]
    mount_point: Option<String>,
    /// Member devices, in order (for a head: its /dev/nbdX).
    #[arg(required = true)]
    members: Vec<String>,
}

fn spec(a: GroupArgs) -> Result<GroupSpec, Box<dyn std::error::Error>> {
    let mut s = GroupSpec::new(ClusterName::new(&a.cluster)?, GroupName::new(&a.name)?, &a.md, a.members);
    s.reserve_percent = a.reserve;
    if let Some(m) = a.mount_point {
        s.mount_point = m;
    }
    Ok(s)
}

fn bring(args: GroupArgs, mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    logging::init("opie-storage");
    let spec = spec(args)?;
    let verb = if mode == Mode::Create { "create-group" } else { "assemble" };
    let t0 = Instant::now();
    let mut host = RealHost::default();
    let mut n = 0;
    let mut step_start = Instant::now();
    let result = bring_up(&mut host, &spec, mode, &mut |step: &Step| {
        n += 1;
        step_start = Instant::now();
        println!("step {n}: {}", step.describe());
        log::info!("storage {verb} {}: step {n}: {}", spec.group, step.describe());
    });
    match result {
        Ok(ran) => {
            for (i, r) in ran.iter().enumerate() {
                log::info!("storage {verb} {}: step {} took {:.2} s", spec.group, i + 1, r.took.as_secs_f64());
                println!("  step {} took {:.2} s", i + 1, r.took.as_secs_f64());
            }
            let what = if ran.is_empty() { "already up" } else { "up" };
            println!(
                "group {} {what}: {} mounted at {} ({} steps, {:.1} s)",
                spec.group,
                spec.group.lv_path(),
                spec.mount_point,
                ran.len(),
                t0.elapsed().as_secs_f64()
            );
            log::info!("storage {verb} {}: {what} after {:.1} s", spec.group, t0.elapsed().as_secs_f64());
            Ok(())
        }
        Err(e) => {
            log::error!("storage {verb} {}: {e}", spec.group);
            Err(e.into())
        }
    }
}

fn status() -> Result<(), Box<dyn std::error::Error>> {
    let mut host = RealHost::default();
    let stat = host.mdstat()?;
    if stat.arrays.is_empty() {
        println!("no arrays running");
    }
    for a in &stat.arrays {
        let dev = format!("/dev/{}", a.name);
        let state = if a.degraded() { "degraded" } else { "clean" };
        let progress = a
            .progress
            .as_ref()
            .map(|p| match p.percent {
                Some(pct) => format!(", {} {pct:.1}%", p.operation),
                None => format!(", {} waiting", p.operation),
            })
            .unwrap_or_default();
        if !a.active {
            let held: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
            println!("{dev}: inactive (stopped), holding {}", held.join(" "));
            continue;
        }
        let detail = host.detail(&dev)?;
        let name = detail.as_ref().map(|d| d.name.to_string()).unwrap_or_else(|| "?".into());
        let (want, have) = a.devices.unwrap_or((0, 0));
        println!("{dev}: {name} {} {state}{progress}, {have}/{want} members", a.level.as_deref().unwrap_or("-"));
        if let Some(d) = &detail {
            for m in &d.members {
                let role = match &m.role {
                    MemberRole::Active(n) => format!("slot {n}"),
                    MemberRole::Spare => "spare".into(),
                    MemberRole::Faulty => "faulty".into(),
                    MemberRole::Other(o) => o.clone(),
                };
                println!("  {} {role}", m.device);
            }
        }
    }
    if stat.arrays.iter().any(|a| a.active) {
        let mounts = host.mounts()?;
        for lv in host.lvs()? {
            let mounted = mounts
                .iter()
                .find(|m| {
                    m.source == lv.path
                        || m.source
                            == format!("/dev/mapper/{}-{}", lv.vg.replace('-', "--"), lv.name.replace('-', "--"))
                })
                .map(|m| format!("mounted at {}", m.target))
                .unwrap_or_else(|| "not mounted".into());
            let state = if lv.active() { "active" } else { "inactive" };
            println!("{}: {} MiB, {state}, {mounted}", lv.path, lv.size / (1024 * 1024));
        }
        for vg in host.vgs()? {
            println!("{}: {} of {} extents free (snapshot reserve)", vg.name, vg.free_count, vg.extent_count);
        }
    }
    Ok(())
}

fn exports(host: &mut RealHost) -> Result<(), Box<dyn std::error::Error>> {
    let list = host.exports()?;
    if list.is_empty() {
        println!("no NFS exports");
    }
    for e in list {
        println!("{} {} ({})", e.path, e.client, e.options.join(","));
    }
    Ok(())
}

fn options(list: &str) -> Vec<String> {
    list.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect()
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut host = RealHost::default();
    match args.command {
        StorageCommand::CreateGroup(a) => bring(a, Mode::Create),
        StorageCommand::Assemble(a) => bring(a, Mode::Start),
        StorageCommand::Status => status(),
        StorageCommand::Exports => exports(&mut host),
        StorageCommand::Export(a) => Ok(host.export(&a.client, &a.path, &options(&a.options))?),
        StorageCommand::Unexport(a) => Ok(host.unexport(&a.client, &a.path)?),
        StorageCommand::SmbUser(a) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err("smb-user: no password on stdin".into());
            }
            Ok(host.ksmbd_set_user(&a.user, password, a.update)?)
        }
        StorageCommand::SmbReload => Ok(host.ksmbd_reload()?),
        StorageCommand::ResizeFs(a) => Ok(host.resize2fs(&a.device)?),
        StorageCommand::Member(a) => {
            let action = match a.action {
                MemberVerb::Fail => MemberAction::Fail,
                MemberVerb::Remove => MemberAction::Remove,
                MemberVerb::ReAdd => MemberAction::ReAdd,
                MemberVerb::Add => MemberAction::Add,
            };
            host.manage(&a.md, action, &a.device)?;
            println!("{} {} {}", a.md, action.option().trim_start_matches('-'), a.device);
            Ok(())
        }
    }
}
