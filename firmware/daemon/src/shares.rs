//! Shares, users and groups in the daemon (DESIGN §7, §12): the
//! supervisor's share manager and the `opie share|user|group` commands.
//!
//! [`ShareManager`] lives in the node's state ([`crate::node::Node`]);
//! the event loop hands it `Request::Shares`, and its own thread carries
//! them out through `opie_sys::shares::ShareService` (validate, persist,
//! apply) and answers the client. Only an active head serves shares;
//! other roles refuse. The commands here are
//! thin clients of the local socket, so the console and the web page can
//! use the same requests.
//!
//! Passwords: `opie user add|passwd` reads the password from a prompt with
//! echo off (twice) on a terminal, else one line of stdin; the NT hash is
//! computed here and only the hash crosses the socket.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use opie_core::api::Response;
use opie_core::config::Role;
use opie_core::shares::{Access, Network, SHARES_MAGIC, Share, ShareCommand, ShareEdit, SharesView, nt_hash};
use opie_sys::shares::{Outcome, RealShareHost, ShareService};
use opie_sys::slots::SlotStore;
use smol::channel::Sender;

use crate::DEFAULT_SOCKET;
use crate::local::{self, ShareAnswer};

/// How often (in clock ticks of one second) the head looks for data
/// volumes that were mounted or unmounted since the last apply.
const POLL_EVERY: u32 = 5;

/// Work for the share thread.
#[derive(Debug)]
enum Job {
    /// A local client's command; the answer goes straight back to it.
    Run(ShareCommand, Sender<Response>),
    /// Serve shares of data volumes mounted since the last look.
    Poll,
}

/// The node's share manager. On a head, a thread of its own owns the
/// `ShareService` and runs its commands, so starting nfsd or ksmbd (seconds
/// under load) never holds up the event loop, which also serves leases and
/// control links (DESIGN §13: slow commands run on helper threads that
/// only exchange messages). Elsewhere it refuses.
#[derive(Debug)]
pub struct ShareManager {
    jobs: Option<mpsc::Sender<Job>>,
    /// Problems the share thread found on its own (start-up, polls).
    problems: Option<mpsc::Receiver<String>>,
    role: Role,
    ticks: u32,
}

fn response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done(text) => Response::Done(text),
        Outcome::Refused(text) => Response::Refused(text),
        Outcome::View(view) => Response::Shares(view),
    }
}

impl ShareManager {
    /// For nodes that serve no shares (and before start-up set it up).
    pub fn off(role: Role) -> Self {
        ShareManager { jobs: None, problems: None, role, ticks: 0 }
    }

    /// A head's manager: loads the record from `state_dir` and starts the
    /// share thread, which serves the record at once (`live`: on the
    /// appliance only). Returns alerts about the record.
    pub fn open(role: Role, hostname: &str, state_dir: Option<&Path>, live: bool) -> (Self, Vec<String>) {
        if role != Role::Head {
            return (ShareManager::off(role), Vec::new());
        }
        let store = state_dir.map(|d| SlotStore::new(d, "shares", SHARES_MAGIC));
        let (mut service, mut alerts) = ShareService::open(store, RealShareHost::default(), hostname, live);
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (report, problems) = mpsc::channel::<String>();
        let spawned = std::thread::Builder::new().name("shares".into()).spawn(move || {
            if let Err(e) = service.apply() {
                let _ = report.send(format!("shares not fully served: {e}"));
            }
            // Ends when the manager (the node) is dropped.
            while let Ok(job) = inbox.recv() {
                match job {
                    Job::Run(command, reply) => {
                        let _ = reply.try_send(response(service.run(command)));
                    }
                    Job::Poll => {
                        if let Some(Err(e)) = service.poll() {
                            let _ = report.send(format!("shares not fully served: {e}"));
                        }
                    }
                }
            }
        });
        match spawned {
            Ok(_) => (ShareManager { jobs: Some(jobs), problems: Some(problems), role, ticks: 0 }, alerts),
            Err(e) => {
                alerts.push(format!("shares not served: cannot start the share thread: {e}"));
                (ShareManager::off(role), alerts)
            }
        }
    }

    /// Hands a command to the share thread, which answers on `reply`.
    pub fn submit(&mut self, command: ShareCommand, reply: Sender<Response>) {
        let Some(jobs) = &self.jobs else {
            let _ = reply.try_send(Response::Refused(format!("only a head serves shares; this node is {}", self.role)));
            return;
        };
        if let Err(mpsc::SendError(Job::Run(_, reply))) = jobs.send(Job::Run(command, reply)) {
            let _ = reply.try_send(Response::Refused("the share manager has stopped; nothing changed".into()));
        }
    }

    /// A data volume was just mounted (a group came online): serve its
    /// shares now rather than at the next poll.
    pub fn volumes_changed(&self) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Poll);
        }
    }

    /// Once a second: every few seconds, asks the share thread to serve
    /// shares whose data volume was just mounted; returns what it found
    /// wrong since the last tick, for the admin.
    pub fn tick(&mut self) -> Option<String> {
        self.ticks += 1;
        if let Some(jobs) = self.jobs.as_ref().filter(|_| self.ticks.is_multiple_of(POLL_EVERY)) {
            let _ = jobs.send(Job::Poll);
        }
        let found: Vec<String> = self.problems.as_ref()?.try_iter().collect();
        (!found.is_empty()).then(|| found.join("; "))
    }
}

// ---- commands ----------------------------------------------------------

#[derive(Debug, clap::Args)]
pub struct ShareArgs {
    #[command(subcommand)]
    command: ShareCli,
    /// The supervisor's local socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum ShareCli {
    /// Create a share: a directory on the data volume, served over NFS
    /// and/or SMB.
    Create(CreateArgs),
    /// List shares.
    List,
    /// Change a share's protocols, access, clients or users.
    Change(ChangeArgs),
    /// Stop serving a share. Its directory and files are kept.
    Remove { name: String },
    /// Serve what is configured now (after mounting a data volume, or
    /// after fixing what made an earlier change fail to apply).
    Apply,
}

#[derive(Debug, clap::Args)]
struct ProtocolArgs {
    /// Serve over NFS (v3 and v4) to these client networks (CIDR, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "CIDR,...")]
    nfs: Option<Vec<String>>,
    /// NFS clients may only read.
    #[arg(long)]
    nfs_ro: bool,
    /// Serve over SMB (2/3).
    #[arg(long)]
    smb: bool,
    /// SMB users may only read.
    #[arg(long)]
    smb_ro: bool,
    /// A user (or @group) allowed over SMB; repeat or comma-separate.
    /// Without any, every local user may connect.
    #[arg(long = "smb-user", value_delimiter = ',', value_name = "USER")]
    smb_users: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    name: String,
    #[command(flatten)]
    protocols: ProtocolArgs,
    /// The directory, relative to the data volume [default: NAME].
    #[arg(long)]
    path: Option<String>,
    /// The data volume's mount point [default: the one mounted].
    #[arg(long)]
    pool: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ChangeArgs {
    name: String,
    #[command(flatten)]
    protocols: ProtocolArgs,
    /// NFS clients may read and write again.
    #[arg(long, conflicts_with = "nfs_ro")]
    nfs_rw: bool,
    /// Stop serving over NFS.
    #[arg(long, conflicts_with_all = ["nfs", "nfs_ro", "nfs_rw"])]
    no_nfs: bool,
    /// SMB users may read and write again.
    #[arg(long, conflicts_with = "smb_ro")]
    smb_rw: bool,
    /// Stop serving over SMB.
    #[arg(long, conflicts_with_all = ["smb", "smb_ro", "smb_rw", "smb_users"])]
    no_smb: bool,
    /// Let every local user connect over SMB (clears --smb-user).
    #[arg(long, conflicts_with = "smb_users")]
    smb_all_users: bool,
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCli,
    /// The supervisor's local socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum UserCli {
    /// Add a local user for SMB; the password comes from a prompt or stdin.
    Add { name: String },
    /// Change a user's password (prompt or stdin).
    Passwd { name: String },
    /// List users and groups.
    List,
    /// Remove a user no share or group names.
    Remove { name: String },
}

#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCli,
    /// The supervisor's local socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum GroupCli {
    /// Create a group or replace its members (use it as --smb-user @NAME).
    Set { name: String, members: Vec<String> },
    /// Remove a group no share names.
    Remove { name: String },
}

fn networks(list: &[String]) -> Result<Vec<Network>, Box<dyn std::error::Error>> {
    list.iter()
        .map(|n| n.trim().parse::<Network>())
        .collect::<Result<Vec<Network>, _>>()
        .map_err(|e| format!("{e}; nothing changed").into())
}

fn edit(p: &ProtocolArgs) -> Result<ShareEdit, Box<dyn std::error::Error>> {
    let mut e = ShareEdit {
        nfs_clients: p.nfs.as_deref().map(networks).transpose()?,
        nfs_access: p.nfs_ro.then_some(Access::ReadOnly),
        smb: p.smb.then_some(true),
        smb_access: p.smb_ro.then_some(Access::ReadOnly),
        ..ShareEdit::default()
    };
    if !p.smb_users.is_empty() {
        e.smb_users = Some(p.smb_users.iter().map(|u| u.trim().to_string()).collect());
    }
    Ok(e)
}

fn send(socket: &Path, command: ShareCommand) -> Result<(), Box<dyn std::error::Error>> {
    match local::share_command(socket, command)? {
        ShareAnswer::Done(text) => println!("{text}"),
        ShareAnswer::View(view) => print!("{}", render_view(&view)),
    }
    Ok(())
}

fn list(socket: &Path, users: bool) -> Result<(), Box<dyn std::error::Error>> {
    match local::share_command(socket, ShareCommand::List)? {
        ShareAnswer::View(view) if users => print!("{}", render_users(&view)),
        ShareAnswer::View(view) => print!("{}", render_view(&view)),
        ShareAnswer::Done(text) => println!("{text}"),
    }
    Ok(())
}

fn describe_share(s: &Share) -> String {
    let nfs = match &s.nfs {
        Some(n) => format!(
            "NFS {} to {}",
            n.access.as_str(),
            n.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
        ),
        None => "NFS off".into(),
    };
    let smb = match &s.smb {
        Some(m) if m.users.is_empty() => format!("SMB {} for every local user", m.access.as_str()),
        Some(m) => format!("SMB {} for {}", m.access.as_str(), m.users.join(", ")),
        None => "SMB off".into(),
    };
    format!("{}: {} (fsid {})\n  {nfs}\n  {smb}\n", s.name, s.dir(), s.fsid)
}

/// `opie share list`.
pub fn render_view(v: &SharesView) -> String {
    if v.shares.is_empty() {
        return "no shares\n".into();
    }
    v.shares.iter().map(describe_share).collect()
}

/// `opie user list`.
pub fn render_users(v: &SharesView) -> String {
    let mut out = String::new();
    if v.users.is_empty() {
        out.push_str("no users\n");
    }
    for u in &v.users {
        out.push_str(&format!("user {u}\n"));
    }
    for g in &v.groups {
        out.push_str(&format!(
            "group {}: {}\n",
            g.name,
            if g.members.is_empty() { "(no members)".into() } else { g.members.join(", ") }
        ));
    }
    out
}

fn stty(arg: &str) -> bool {
    Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status().is_ok_and(|s| s.success())
}

/// The password: prompted twice with echo off on a terminal, else the
/// first line of stdin.
fn read_password(user: &str) -> Result<String, Box<dyn std::error::Error>> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err("no password on stdin".into());
        }
        return Ok(password);
    }
    let hidden = stty("-echo");
    if !hidden {
        eprintln!("Note: this terminal cannot hide input; the password will show as you type.");
    }
    let ask = |prompt: &str| -> io::Result<String> {
        eprint!("{prompt}");
        io::stderr().flush()?;
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        if hidden {
            eprintln!();
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = ask(&format!("Password for {user}: "));
    let second = first.as_ref().ok().map(|_| ask("Again: "));
    if hidden {
        stty("echo");
    }
    let (first, second) = (first?, second.transpose()?.unwrap_or_default());
    if first != second {
        return Err("the passwords differ; nothing changed".into());
    }
    Ok(first)
}

pub fn run_share(args: ShareArgs) -> Result<(), Box<dyn std::error::Error>> {
    let socket = &args.socket;
    match args.command {
        ShareCli::Create(a) => {
            let command = ShareCommand::Create { name: a.name, pool: a.pool, path: a.path, edit: edit(&a.protocols)? };
            send(socket, command)
        }
        ShareCli::List => list(socket, false),
        ShareCli::Change(a) => {
            let mut e = edit(&a.protocols)?;
            e.nfs_off = a.no_nfs;
            if a.nfs_rw {
                e.nfs_access = Some(Access::ReadWrite);
            }
            if a.smb_rw {
                e.smb_access = Some(Access::ReadWrite);
            }
            if a.no_smb {
                e.smb = Some(false);
            }
            if a.smb_all_users {
                e.smb_users = Some(Vec::new());
            }
            if e == ShareEdit::default() {
                return Err("nothing to change: give --nfs, --nfs-ro/--nfs-rw, --no-nfs, --smb, --smb-ro/--smb-rw, \
                            --smb-user, --smb-all-users or --no-smb"
                    .into());
            }
            send(socket, ShareCommand::Change { name: a.name, edit: e })
        }
        ShareCli::Remove { name } => send(socket, ShareCommand::Remove { name }),
        ShareCli::Apply => send(socket, ShareCommand::Apply),
    }
}

pub fn run_user(args: UserArgs) -> Result<(), Box<dyn std::error::Error>> {
    let socket = &args.socket;
    match args.command {
        UserCli::Add { name } => {
            opie_core::shares::check_user_name("user", &name)?;
            let hash = nt_hash(&read_password(&name)?)?;
            send(socket, ShareCommand::SetUser { name, nt_hash: hash, create: true })
        }
        UserCli::Passwd { name } => {
            let hash = nt_hash(&read_password(&name)?)?;
            send(socket, ShareCommand::SetUser { name, nt_hash: hash, create: false })
        }
        UserCli::List => list(socket, true),
        UserCli::Remove { name } => send(socket, ShareCommand::RemoveUser { name }),
    }
}

pub fn run_group(args: GroupArgs) -> Result<(), Box<dyn std::error::Error>> {
    let socket = &args.socket;
    match args.command {
        GroupCli::Set { name, members } => send(socket, ShareCommand::SetGroup { name, members }),
        GroupCli::Remove { name } => send(socket, ShareCommand::RemoveGroup { name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opie_core::shares::{Group, Nfs, Smb};

    #[test]
    fn a_head_answers_from_its_share_thread_and_keeps_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Not live: a development host's /etc is never touched.
        let (mut m, alerts) = ShareManager::open(Role::Head, "head1", Some(dir.path()), false);
        assert!(alerts.is_empty(), "{alerts:?}");
        let ask = |m: &mut ShareManager, c: ShareCommand| {
            let (reply, answer) = smol::channel::bounded(1);
            m.submit(c, reply);
            answer.recv_blocking().expect("the share thread answers")
        };
        let hash = nt_hash("Secret-1").expect("hash");
        assert_eq!(
            ask(&mut m, ShareCommand::SetUser { name: "alice".into(), nt_hash: hash, create: true }),
            Response::Done("user alice added; not applied: this supervisor does not run the appliance".into())
        );
        let create = ShareCommand::Create {
            name: "docs".into(),
            pool: None,
            path: None,
            edit: ShareEdit { smb: Some(true), ..ShareEdit::default() },
        };
        assert_eq!(
            ask(&mut m, create),
            Response::Refused("name the data volume with --pool (not running the appliance); nothing changed".into())
        );
        drop(m);
        // A restarted supervisor reads the user back.
        let (mut m, _) = ShareManager::open(Role::Head, "head1", Some(dir.path()), false);
        match ask(&mut m, ShareCommand::List) {
            Response::Shares(v) => assert_eq!(v.users, ["alice"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.tick(), None);
    }

    #[test]
    fn listings_read_as_words() {
        let v = SharesView {
            shares: vec![
                Share {
                    name: "docs".into(),
                    pool: "/srv/g1".into(),
                    path: "docs".into(),
                    fsid: 1,
                    nfs: Some(Nfs {
                        clients: vec!["192.168.77.0/24".parse().expect("net")],
                        access: Access::ReadWrite,
                    }),
                    smb: Some(Smb { access: Access::ReadOnly, users: vec!["alice".into(), "@staff".into()] }),
                },
                Share { name: "x".into(), pool: "/srv/g1".into(), path: "a/x".into(), fsid: 3, nfs: None, smb: None },
            ],
            users: vec!["alice".into()],
            groups: vec![Group { name: "staff".into(), members: vec![] }],
        };
        assert_eq!(
            render_view(&v),
            "docs: /srv/g1/docs (fsid 1)\n  NFS read-write to 192.168.77.0/24\n  SMB read-only for alice, @staff\n\
             x: /srv/g1/a/x (fsid 3)\n  NFS off\n  SMB off\n"
        );
        assert_eq!(render_users(&v), "user alice\ngroup staff: (no members)\n");
        assert_eq!(render_view(&SharesView { shares: vec![], users: vec![], groups: vec![] }), "no shares\n");
    }

    #[test]
    fn command_line_options_become_edits() {
        let p = ProtocolArgs {
            nfs: Some(vec!["192.168.77.0/24".into(), " 10.0.0.0/8".into()]),
            nfs_ro: true,
            smb: true,
            smb_ro: false,
            smb_users: vec!["alice".into()],
        };
        let e = edit(&p).expect("edit");
        assert_eq!(e.nfs_clients.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            (e.nfs_access, e.smb, e.smb_users.clone()),
            (Some(Access::ReadOnly), Some(true), Some(vec!["alice".into()]))
        );
        let bad = ProtocolArgs { nfs: Some(vec!["192.168.77.1/24".into()]), ..p };
        assert_eq!(
            edit(&bad).expect_err("host bits").to_string(),
            "client network \"192.168.77.1/24\": host bits are set; the network is 192.168.77.0/24; nothing changed"
        );
        // Not a head: refused in words.
        let mut off = ShareManager::off(Role::Isu);
        let (reply, answer) = smol::channel::bounded(1);
        off.submit(ShareCommand::List, reply);
        assert_eq!(
            answer.try_recv().expect("answered at once"),
            Response::Refused("only a head serves shares; this node is isu".into())
        );
        assert_eq!(off.tick(), None);
    }
}
