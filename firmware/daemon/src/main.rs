//! `opie`: the one binary of the Opie appliance.
//!
//! Without a subcommand it is the supervisor that busybox init respawns;
//! each subcommand exposes one subsystem on its own so it can be run and
//! tested on a plain Linux host (DESIGN §1). This file only parses
//! arguments and dispatches; each subcommand lives in its own module.
#![forbid(unsafe_code)]

mod console;
mod ctrl_link;
mod export_link;
mod lease_link;
mod lease_serve;
mod local;
mod logging;
mod nbd_attach;
mod nbd_fence;
mod nbd_serve;
mod node;
mod settings;
mod shares;
mod storage;
mod storage_link;
mod supervisor;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use opie_core::adoption::Function;
use opie_core::api::Request;

/// Where the supervisor listens for local clients (`opie status`, console).
pub const DEFAULT_SOCKET: &str = "/run/opie/supervisor.sock";
/// Where the node's state lives (the mounted state disk on the appliance).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/opie";

#[derive(Debug, Parser)]
#[command(name = "opie", version, about = "Opie clustered storage appliance firmware")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node supervisor (the default when no subcommand is given).
    Supervisor(supervisor::Args),
    /// Early boot (run by rcS): prepare the state disk, apply hostname and
    /// addresses from the stored or preseeded config, then exit.
    Sysinit(supervisor::Args),
    /// Run the serial-console menu.
    Console(console::Args),
    /// Print the running supervisor's status.
    Status(StatusArgs),
    /// Adopt a pending ISU (head): as a RAID member or a spare.
    Adopt(AdoptArgs),
    /// Reject a pending ISU (head): it stays out of storage.
    Reject(RejectArgs),
    /// Serve files or block devices over NBD (the ISU's block transport).
    NbdServe(nbd_serve::Args),
    /// Attach an ISU's NBD export to /dev/nbdN (head side, kernel driver).
    NbdAttach(nbd_attach::AttachArgs),
    /// Disconnect /dev/nbdN.
    NbdDetach(nbd_attach::DetachArgs),
    /// Serve storage-net leases (DHCP format) from address pools.
    LeaseServe(lease_serve::Args),
    /// A head's RAID groups: create-group, assemble, status.
    Storage(storage::Args),
    /// Shares (head): create, list, change, remove, apply.
    Share(shares::ShareArgs),
    /// Local users for SMB (head): add, passwd, list, remove.
    User(shares::UserArgs),
    /// Local groups of users for SMB (head): set, remove.
    Group(shares::GroupArgs),
    /// Serve the web page (a head appliance's supervisor starts it on the LAN).
    Web(web::Args),
    /// Print the firmware version.
    Version,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AdoptAs {
    Member,
    Spare,
}

#[derive(Debug, clap::Args)]
struct AdoptArgs {
    /// The ISU's serial or key fingerprint, as `opie status` lists it.
    isu: String,
    /// What the ISU is for.
    #[arg(long = "as", value_enum)]
    function: AdoptAs,
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RejectArgs {
    /// The ISU's serial or key fingerprint, as `opie status` lists it.
    isu: String,
    /// The supervisor's local socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // Bare `opie` is what busybox init respawns on the appliance; run from
        // a shell on a host it must not touch the host's disks or names.
        None => supervisor::run(supervisor::Args::for_init(std::os::unix::process::parent_id() == 1)),
        Some(Command::Supervisor(args)) => supervisor::run(args),
        Some(Command::Sysinit(args)) => supervisor::sysinit(args),
        Some(Command::Console(args)) => console::run(args),
        Some(Command::Status(args)) => {
            local::fetch_status(&args.socket).map(|report| print!("{}", report.render())).map_err(Into::into)
        }
        Some(Command::Adopt(args)) => {
            let function = match args.function {
                AdoptAs::Member => Function::Member,
                AdoptAs::Spare => Function::Spare,
            };
            let request = Request::Adopt { serial: args.isu, function };
            local::command(&args.socket, &request).map(|done| println!("{done}")).map_err(Into::into)
        }
        Some(Command::Reject(args)) => local::command(&args.socket, &Request::Reject { serial: args.isu })
            .map(|done| println!("{done}"))
            .map_err(Into::into),
        Some(Command::NbdServe(args)) => nbd_serve::run(args).map_err(Into::into),
        Some(Command::NbdAttach(args)) => nbd_attach::attach(args).map_err(Into::into),
        Some(Command::NbdDetach(args)) => nbd_attach::detach(args).map_err(Into::into),
        Some(Command::LeaseServe(args)) => lease_serve::run(args).map_err(Into::into),
        Some(Command::Storage(args)) => storage::run(args),
        Some(Command::Share(args)) => shares::run_share(args),
        Some(Command::User(args)) => shares::run_user(args),
        Some(Command::Group(args)) => shares::run_group(args),
        Some(Command::Web(args)) => web::run(args),
        Some(Command::Version) => {
            println!("opie {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("opie: {err}");
            ExitCode::FAILURE
        }
    }
}
