//! The supervisor: the long-running `opie` that busybox init respawns.
//!
//! Start-up: read the boot parameters, prepare the state disk, load the
//! config (or persist the preseed), apply the hostname and storage-net
//! address, then run one event loop that owns the node's state. Other tasks
//! (the local socket, signal handling, later the role's servers) only send
//! [`Event`]s to that loop; nothing else touches the state (DESIGN §13).
//!
//! Problems that an administrator can fix (a foreign state disk, an
//! interface that is missing) become alerts, and the supervisor keeps
//! running: exiting would only make init respawn it into the same problem.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{error, info, warn};
use opie_core::api::{REQUEST_MAGIC, RESPONSE_MAGIC, Request, Response};
use opie_core::boot::{BootParams, ConfigSource, choose_config, default_head};
use opie_core::bringup::DEFAULT_MEMBER_WAIT;
use opie_core::config::{CONFIG_MAGIC, CONFIG_VERSION, Config, ConfigError, HeadNet, LanAddr, Role};
use opie_core::config_change::CONFIRM_WINDOW;
use opie_core::ctrl::keys::{NODE_KEY_MAGIC, NODE_KEY_VERSION, NodeKey, fingerprint};
use opie_core::lease::{Config as LeaseConfig, PoolRange};
use opie_core::recovery::DEFAULT_SPARE_TIMEOUT;
use opie_core::status::StatusReport;
use opie_sys::slots::SlotStore;
use opie_sys::statedisk::{self, Prepared};
use opie_sys::system::DataDisk;
use opie_sys::{netif, random, system};
use smol::channel::Sender;
use smol::net::TcpListener;
use smol::net::unix::UnixListener;
use smol::prelude::*;
use thiserror::Error;

use crate::ctrl_link::{self, CTRL_PORT, LoopHandle};
use crate::export_link::{self, ExportUpdate};
use crate::lease_link::{self, LEASE_MAGIC};
use crate::lease_serve;
use crate::node::{Effect, Event, Flow, Node, Setup};
use crate::settings::Settings;
use crate::shares::ShareManager;
use crate::storage_link;
use crate::{DEFAULT_SOCKET, DEFAULT_STATE_DIR, local, logging, web};

/// The supervisor's executor: one thread runs every task; it lives as long
/// as the process, so tasks may spawn further tasks on it.
static EXECUTOR: smol::Executor<'static> = smol::Executor::new();

#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Directory for persisted state (the state disk's mount point).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// File holding the kernel command line to read boot parameters from.
    #[arg(long)]
    cmdline: Option<PathBuf>,
    /// Local socket for `opie status`.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// This process runs the node itself: mount the state disk named by
    /// `opie.state=`, set the hostname and configure interfaces. Without it
    /// the supervisor changes nothing outside its state dir and socket, so
    /// it can run on any host (tests, development).
    #[arg(long)]
    appliance: bool,
    /// Head: address the control channel listens on.
    #[arg(long)]
    ctrl_listen: Option<SocketAddr>,
    /// ISU: the head's control-channel address (default: the `opie.head`
    /// boot parameter or the storage subnet's first host, port 7780).
    #[arg(long)]
    ctrl_head: Option<SocketAddr>,
    /// The serial this node introduces itself with (default: DMI product
    /// serial, else the storage interface's MAC address).
    #[arg(long)]
    serial: Option<String>,
    /// Seconds a network change from the console waits for its
    /// confirmation before it rolls back (tests shorten it).
    #[arg(long, default_value_t = CONFIRM_WINDOW.as_secs(), hide = true)]
    confirm_window_secs: u64,
}

impl Args {
    /// The arguments of bare `opie`: defaults, appliance mode when started
    /// by init.
    pub fn for_init(appliance: bool) -> Self {
        Args { appliance, confirm_window_secs: CONFIRM_WINDOW.as_secs(), ..Args::default() }
    }
}

/// Errors that stop the supervisor: only those no admin action at run time
/// can fix.
#[derive(Debug, Error)]
pub enum SupervisorError {
    #[error("reading boot parameters from {path}: {source}")]
    Cmdline { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    BootParam(#[from] opie_core::boot::BootParamError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("local socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("signal handling: {0}")]
    Signals(std::io::Error),
    #[error("control channel cannot listen on {addr}: {source}")]
    Ctrl { addr: SocketAddr, source: std::io::Error },
}

/// What start-up established, before any task runs.
struct Startup {
    boot: BootParams,
    state_dir: PathBuf,
    /// Whether state may be written to `state_dir`.
    persist: bool,
    config: Config,
    source: ConfigSource,
    generation: u64,
    alerts: Vec<String>,
}

/// Reads boot parameters, prepares the state disk, loads (or preseeds)
/// the config and, on the appliance, applies hostname and addresses.
/// Idempotent: `opie sysinit` runs it early in boot and the supervisor
/// again when init starts it.
fn prepare(args: &Args) -> Result<Startup, SupervisorError> {
    let state_dir = args.state_dir.clone().unwrap_or_else(|| DEFAULT_STATE_DIR.into());
    let cmdline_path = args.cmdline.clone().unwrap_or_else(|| "/proc/cmdline".into());
    let cmdline = fs::read_to_string(&cmdline_path)
        .map_err(|source| SupervisorError::Cmdline { path: cmdline_path.clone(), source })?;
    let boot = BootParams::parse(&cmdline).map_err(SupervisorError::from)?;
    let mut alerts = Vec::new();
    let persist = prepare_state(&boot, &state_dir, args.appliance, &mut alerts);
    let store = SlotStore::new(&state_dir, "config", CONFIG_MAGIC);
    let (config, source, generation) = load_config(&store, &boot, persist, &mut alerts)?;
    if args.appliance {
        apply_system(&config, &mut alerts);
    }
    Ok(Startup { boot, state_dir, persist, config, source, generation, alerts })
}

/// `opie sysinit`: the early-boot half of start-up, run by rcS before the
/// system logger starts, so that syslog lines carry the configured host
/// name and the state disk is ready before any service needs it.
pub fn sysinit(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    logging::init("opie");
    let prepared = prepare(&Args { appliance: true, ..args })?;
    info!("sysinit: role={} hostname={}", prepared.config.role, prepared.config.hostname);
    Ok(())
}

pub fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let sink = logging::init("opie");
    let socket = args.socket.clone().unwrap_or_else(|| DEFAULT_SOCKET.into());
    let Startup { boot, state_dir, persist, config, source, generation, mut alerts } = prepare(&args)?;
    let node_key = load_node_key(&state_dir, persist, &mut alerts);

    let started = format!("opie supervisor started: role={} hostname={}", config.role, config.hostname);
    info!("{started}");
    if sink == logging::Sink::Syslog {
        // The console shows that the node came up even when nobody reads
        // syslog.
        eprintln!("{started}");
    }

    // ISUs introduce themselves by hardware serial (what is printed on the
    // box); heads by host name, which is what ISU consoles show.
    let serial = match config.role {
        Role::Isu => args
            .serial
            .clone()
            .or_else(|| opie_sys::system::hardware_serial(&config.storage.iface))
            .unwrap_or_else(|| config.hostname.clone()),
        _ => args.serial.clone().unwrap_or_else(|| config.hostname.clone()),
    };
    let ctrl = match config.role {
        Role::Head => Some(Ctrl::Listen(args.ctrl_listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], CTRL_PORT))))),
        Role::Isu => Some(Ctrl::Connect),
        Role::Unconfigured => None,
    };
    // A head appliance serves the web page on its LAN side (DESIGN §12), as
    // a child process that reads and changes everything through the local
    // socket; a crash in it never takes the supervisor along.
    if args.appliance && config.role == Role::Head {
        EXECUTOR.spawn(web::supervise(web::LAN_LISTEN, socket.clone())).detach();
    }
    // Where the head is before any lease says so: the command line, or on
    // the appliance the boot parameter or the default .1 of a static
    // storage subnet. A host (a test, a developer's machine) connects only
    // where it is told: its networks are not the storage net.
    let derived = args.appliance.then(|| default_head(&boot, &config)).flatten();
    let head = args.ctrl_head.or_else(|| derived.map(|ip| SocketAddr::from((ip, CTRL_PORT))));
    // An ISU without a static address leases one (DESIGN §3). Only on the
    // appliance: on a host the storage interface is not ours to address.
    let leases = args.appliance && config.role == Role::Isu && config.storage.static_addr.is_none();
    // The head serves storage-net leases from its pool (DESIGN §3), with
    // its lease log on the state disk; without a durable log it serves none.
    let lease_server = match (args.appliance, &config.head, config.storage.static_addr) {
        (true, Some(net), Some(addr)) if persist => {
            let mut cfg = LeaseConfig::new(addr.addr, vec![PoolRange { start: net.pool_start, end: net.pool_end }]);
            cfg.subnet_mask = addr.netmask();
            match lease_serve::open(cfg, &config.storage.iface, &state_dir) {
                Ok(service) => Some(service),
                Err(e) => {
                    alert(&mut alerts, format!("lease server not started: {e}"));
                    None
                }
            }
        }
        (true, Some(_), _) => {
            alert(
                &mut alerts,
                "lease server not started: it needs a static storage address and a usable state disk".into(),
            );
            None
        }
        _ => None,
    };
    // An ISU exports its data disks once adopted; the granted epochs live
    // on the state disk (DESIGN §5), so no export without one. Only on the
    // appliance: a host's disks are never ours to export.
    let isu_disks = (args.appliance && config.role == Role::Isu && persist)
        .then(|| opie_sys::system::data_disks(boot.state_device.as_deref()));
    let lease_client = leases.then(|| {
        let store = persist.then(|| SlotStore::new(&state_dir, "lease", LEASE_MAGIC));
        // What a new ISU tells the lease server about itself (option 43).
        let disks: Vec<String> = isu_disks
            .iter()
            .flatten()
            .map(|d| format!("{}:{}MiB", d.device.display(), d.size / (1024 * 1024)))
            .collect();
        let vendor_info = format!("serial={serial};key={};disks={}", fingerprint(&node_key.public()), disks.join(","));
        (config.storage.iface.clone(), config.hostname.clone(), vendor_info, store)
    });
    let mut report = StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        role: config.role,
        hostname: config.hostname.clone(),
        config_origin: source.into(),
        config_generation: generation,
        storage_iface: config.storage.iface.clone(),
        storage_addr: config.storage.static_addr,
        state_dir: state_dir.display().to_string(),
        key_fingerprint: fingerprint(&node_key.public()),
        head_link: (config.role == Role::Isu).then(|| "not connected yet".to_string()),
        lease: lease_client.as_ref().map(|_| "looking for a lease server".to_string()),
        export: (config.role == Role::Isu).then(|| "waiting for adoption".to_string()),
        storage: (config.role == Role::Head).then(|| "waiting for members".to_string()),
        alerts,
        ..StatusReport::default()
    };
    let export = isu_disks.map(|disks| (disks, state_dir.join("nbd")));
    let window = Duration::from_secs(args.confirm_window_secs);
    let settings =
        Settings::new(config, generation, persist.then_some(state_dir.as_path()), args.appliance, window, &mut report);
    let mut node = Node::new(Setup {
        report,
        secret: node_key.secret_bytes(),
        serial,
        state_dir: persist.then_some(state_dir.as_path()),
        settings,
        head,
        member_wait: boot.member_wait.map_or(DEFAULT_MEMBER_WAIT, Duration::from_secs),
        spare_timeout: boot.spare_timeout.map_or(DEFAULT_SPARE_TIMEOUT, Duration::from_secs),
    });
    // A head serves its shares (DESIGN §7) from the record on its state disk.
    let hostname = node.report.hostname.clone();
    let (shares, share_alerts) =
        ShareManager::open(node.report.role, &hostname, persist.then_some(state_dir.as_path()), args.appliance);
    node.shares = shares;
    for a in share_alerts {
        warn!("{a}");
        node.report.alerts.push(a);
    }
    let tasks = Tasks { ctrl, lease_client, lease_server, export };
    smol::block_on(event_loop(node, &socket, tasks))?;
    Ok(())
}

/// On the appliance, mounts (formatting if blank) the state disk named by
/// `opie.state=`. Returns whether config may be persisted in `state_dir`.
fn prepare_state(boot: &BootParams, state_dir: &Path, appliance: bool, alerts: &mut Vec<String>) -> bool {
    let device = boot.state_device.as_ref().filter(|_| appliance);
    let Some(device) = device else {
        return fs::create_dir_all(state_dir)
            .map_err(|e| alert(alerts, format!("state dir {}: {e}", state_dir.display())))
            .is_ok();
    };
    match statedisk::prepare(Path::new(device), state_dir) {
        Ok(Prepared::Formatted) => {
            info!("state disk {device} was blank: formatted and mounted on {}", state_dir.display());
            true
        }
        Ok(Prepared::Mounted | Prepared::AlreadyMounted) => {
            info!("state disk {device} mounted on {}", state_dir.display());
            true
        }
        Err(e) => {
            alert(alerts, format!("state disk not usable, settings will not be saved: {e}"));
            false
        }
    }
}

/// Loads the stored config or persists the preseed. A stored config that
/// does not decode is never overwritten: the node runs unconfigured until
/// an admin decides.
fn load_config(
    store: &SlotStore,
    boot: &BootParams,
    persist: bool,
    alerts: &mut Vec<String>,
) -> Result<(Config, ConfigSource, u64), SupervisorError> {
    let mut generation = 0;
    let mut stored = None;
    let mut keep_unsaved = !persist;
    if persist {
        match store.load() {
            Ok(report) => {
                for (path, damage) in &report.damaged {
                    warn!("config slot {} is damaged ({damage}); the other slot is used", path.display());
                }
                if let Some(loaded) = report.newest {
                    match Config::decode(loaded.version, &loaded.payload) {
                        Ok(config) => {
                            generation = loaded.generation;
                            stored = Some(config);
                        }
                        Err(e) => {
                            alert(
                                alerts,
                                format!(
                                    "stored config (generation {}) is unreadable and kept untouched: {e}",
                                    loaded.generation
                                ),
                            );
                            keep_unsaved = true;
                        }
                    }
                }
            }
            Err(e) => {
                alert(alerts, format!("cannot read stored config: {e}"));
                keep_unsaved = true;
            }
        }
    }
    let (config, source) = choose_config(stored, boot)?;
    if source == ConfigSource::Preseeded && !keep_unsaved {
        match config.encode().map(|payload| store.store(CONFIG_VERSION, &payload)) {
            Ok(Ok(g)) => {
                generation = g;
                info!("preseeded config saved as generation {g}");
            }
            Ok(Err(e)) => alert(alerts, format!("saving preseeded config failed: {e}")),
            Err(e) => alert(alerts, format!("preseeded config invalid: {e}")),
        }
    }
    Ok((config, source, generation))
}

/// Loads the node's key pair, making and saving one on first boot. A key
/// record that exists but cannot be read is kept untouched (adoption is
/// pinned to it) and the node runs with a temporary key until an admin
/// looks.
fn load_node_key(state_dir: &Path, persist: bool, alerts: &mut Vec<String>) -> NodeKey {
    let store = SlotStore::new(state_dir, "node-key", NODE_KEY_MAGIC);
    let mut may_save = persist;
    if persist {
        match store.load() {
            Ok(report) => match report.newest.map(|k| NodeKey::decode(k.version, &k.payload)) {
                Some(Ok(key)) => return key,
                Some(Err(e)) => {
                    alert(alerts, format!("stored node key unusable, kept untouched: {e}"));
                    may_save = false;
                }
                None if !report.damaged.is_empty() => {
                    alert(alerts, "stored node key is damaged in both slots; kept untouched".to_string());
                    may_save = false;
                }
                None => {}
            },
            Err(e) => {
                alert(alerts, format!("cannot read node key: {e}"));
                may_save = false;
            }
        }
    }
    let key = match random::bytes::<32>() {
        Ok(secret) => NodeKey::from_secret(secret),
        Err(e) => {
            // Without the kernel's randomness no key is safe; init respawns
            // the supervisor, which tries again.
            error!("no randomness for a node key: {e}");
            std::process::exit(1);
        }
    };
    if may_save {
        match store.store(NODE_KEY_VERSION, &key.secret_bytes()) {
            Ok(_) => info!("new node key {} saved", fingerprint(&key.public())),
            Err(e) => alert(alerts, format!("node key not saved: {e}")),
        }
    } else {
        alert(alerts, format!("running with a temporary node key {}", fingerprint(&key.public())));
    }
    key
}

/// Applies hostname and the static storage-net address.
pub(crate) fn apply_system(config: &Config, alerts: &mut Vec<String>) {
    if let Err(e) = system::set_hostname(&config.hostname) {
        warn!("hostname not set: {e}");
    }
    if let Some(addr) = config.storage.static_addr {
        match netif::set_ipv4(&config.storage.iface, addr.addr, addr.netmask()) {
            Ok(()) => info!("storage net {} configured as {addr}", config.storage.iface),
            Err(e) => alert(alerts, format!("storage address {addr} not configured: {e}")),
        }
    }
    // A head's static LAN address; its gateway route and a DHCP LAN come
    // with the LAN client.
    if let Some(HeadNet { lan_iface, lan: LanAddr::Static { addr, .. }, .. }) = &config.head {
        match netif::set_ipv4(lan_iface, addr.addr, addr.netmask()) {
            Ok(()) => info!("LAN {lan_iface} configured as {addr}"),
            Err(e) => alert(alerts, format!("LAN address {addr} not configured: {e}")),
        }
    }
}

fn alert(alerts: &mut Vec<String>, message: String) {
    error!("{message}");
    alerts.push(message);
}

/// The control channel's part for this role.
enum Ctrl {
    /// Head: accept ISU connections here.
    Listen(SocketAddr),
    /// ISU: keep a connection to the head (whose address the node knows).
    Connect,
}

/// Interval of the ISU's status reports to its head.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How long a local client may take to send its request.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The lease client's interface, host name, option-43 text and
/// remembered-lease store.
type LeaseClientArgs = (String, String, String, Option<SlotStore>);

/// The tasks a node's role runs beside its event loop.
struct Tasks {
    ctrl: Option<Ctrl>,
    lease_client: Option<LeaseClientArgs>,
    lease_server: Option<lease_serve::Service>,
    /// ISU: its data disks and where the NBD server keeps granted epochs;
    /// started once the ISU is adopted (see `Effect::StartExport`).
    export: Option<(Vec<DataDisk>, PathBuf)>,
}

/// Runs the node: spawns the tasks that feed events and applies them, in
/// order, to the one [`Node`].
async fn event_loop(mut node: Node, socket: &Path, tasks: Tasks) -> Result<(), SupervisorError> {
    let Tasks { ctrl, lease_client, lease_server, mut export } = tasks;
    let (events, inbox) = smol::channel::bounded::<Event>(256);
    let listener = bind_socket(socket)?;
    let signals = async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
        .map_err(SupervisorError::Signals)?;
    let executor = &EXECUTOR;
    executor.spawn(serve_local(listener, events.clone())).detach();
    executor.spawn(forward_signals(signals, events.clone())).detach();
    executor.spawn(clock(events.clone())).detach();
    let handle = LoopHandle { events: events.clone() };
    match ctrl {
        Some(Ctrl::Listen(addr)) => {
            let listener = TcpListener::bind(addr).await.map_err(|source| SupervisorError::Ctrl { addr, source })?;
            info!("control channel listening on {addr}");
            executor.spawn(ctrl_link::listen(listener, handle, executor)).detach();
        }
        Some(Ctrl::Connect) => {
            executor.spawn(ctrl_link::connect_forever(handle)).detach();
            executor.spawn(ticks(events.clone())).detach();
        }
        None => {}
    }
    if let Some(service) = lease_server {
        let events = events.clone();
        executor
            .spawn(async move {
                // The sender stays in this task: the server runs as long as
                // the supervisor does.
                let (_keep, control) = smol::channel::bounded(1);
                let counters = events.clone();
                let report = move |c: &opie_core::lease::Counters| {
                    let _ = counters.try_send(Event::LeaseCounters(c.summary()));
                };
                if let Err(e) = lease_serve::serve(service, control, report).await {
                    let _ = events.send(Event::Alert(format!("lease server stopped: {e}"))).await;
                }
            })
            .detach();
    }
    if let Some((iface, hostname, vendor_info, store)) = lease_client {
        info!("storage net {iface}: no static address, leasing one");
        executor.spawn(lease_link::run(iface, hostname, vendor_info, store, events.clone())).detach();
    }
    let result = executor
        .run(async {
            while let Ok(event) = inbox.recv().await {
                if node.apply(event) == Flow::Stop {
                    break;
                }
                for effect in node.take_effects() {
                    match effect {
                        Effect::StartExport { fence_key } => {
                            start_export(executor, export.take(), socket, fence_key, &events).await
                        }
                        Effect::Attach(job) => {
                            let key_dir = storage_link::key_dir(socket);
                            let head_id = node.report.hostname.clone();
                            executor.spawn(storage_link::attach(job, key_dir, head_id, events.clone())).detach();
                        }
                        Effect::FailMember { serial, device } => {
                            executor.spawn(storage_link::fail_member(serial, device, events.clone())).detach();
                        }
                        Effect::Readd(job) => {
                            let key_dir = storage_link::key_dir(socket);
                            let head_id = node.report.hostname.clone();
                            executor.spawn(storage_link::readd_member(job, key_dir, head_id, events.clone())).detach();
                        }
                        Effect::Replace { missing, job } => {
                            let key_dir = storage_link::key_dir(socket);
                            let head_id = node.report.hostname.clone();
                            let task = storage_link::replace_member(missing, job, key_dir, head_id, events.clone());
                            executor.spawn(task).detach();
                        }
                        Effect::StartGroup { group, devices, degraded } => {
                            let task = storage_link::start_group(group, devices, degraded, events.clone());
                            executor.spawn(task).detach();
                        }
                    }
                }
            }
            Ok(())
        })
        .await;
    let _ = fs::remove_file(socket);
    result
}

fn bind_socket(path: &Path) -> Result<UnixListener, SupervisorError> {
    let err = |source| SupervisorError::Socket { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    // A socket file left by a previous (crashed) supervisor blocks bind.
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    UnixListener::bind(path).map_err(err)
}

/// Accepts local clients; each gets its own task so a slow one cannot
/// hold up the others.
async fn serve_local(listener: UnixListener, events: Sender<Event>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let events = events.clone();
                EXECUTOR.spawn(answer_local(stream, events)).detach();
            }
            Err(e) => {
                warn!("local socket accept failed: {e}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request (bounded in size and time), asks the loop, answers.
async fn answer_local(mut stream: smol::net::unix::UnixStream, events: Sender<Event>) {
    let mut bytes = Vec::new();
    let mut limited = (&mut stream).take(local::READ_LIMIT);
    let read = limited.read_to_end(&mut bytes);
    let timed_out = async {
        smol::Timer::after(LOCAL_TIMEOUT).await;
        Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
    };
    let response = match read.or(timed_out).await {
        Err(e) => Response::Refused(format!("request not read: {e}")),
        Ok(_) => match local::open::<Request>(REQUEST_MAGIC, &bytes) {
            Err(e) => Response::Refused(e.to_string()),
            Ok(request) => {
                let (reply, answer) = smol::channel::bounded(1);
                if events.send(Event::Local(request, reply)).await.is_err() {
                    return;
                }
                match answer.recv().await {
                    Ok(response) => response,
                    Err(_) => return,
                }
            }
        },
    };
    match local::seal(RESPONSE_MAGIC, &response) {
        Ok(bytes) => {
            if let Err(e) = stream.write_all(&bytes).await {
                warn!("local client went away: {e}");
            }
        }
        Err(e) => error!("local response cannot be sealed: {e}"),
    }
}

/// ISU: writes the fencing key where only root reads it (tmpfs, next to
/// the local socket; it is derived again at every start, never stored)
/// and runs the NBD server task.
async fn start_export(
    executor: &'static smol::Executor<'static>,
    export: Option<(Vec<DataDisk>, PathBuf)>,
    socket: &Path,
    fence_key: [u8; 32],
    events: &Sender<Event>,
) {
    let Some((disks, epoch_dir)) = export else { return };
    if disks.is_empty() {
        let _ = events.send(Event::Export(ExportUpdate::Down("no data disks found".into()))).await;
        return;
    }
    if let Err(e) = fs::create_dir_all(&epoch_dir) {
        let why = format!("epoch directory {} not created: {e}", epoch_dir.display());
        let _ = events.send(Event::Export(ExportUpdate::Down(why))).await;
        return;
    }
    let key_file = socket.with_file_name("fence.key");
    if let Err(e) = opie_sys::system::write_secret(&key_file, &fence_key) {
        let _ = events.send(Event::Export(ExportUpdate::Down(format!("fencing key not written: {e}")))).await;
        return;
    }
    executor.spawn(export_link::run(disks, key_file, epoch_dir, events.clone())).detach();
}

async fn ticks(events: Sender<Event>) {
    loop {
        smol::Timer::after(REPORT_EVERY).await;
        if events.send(Event::Tick).await.is_err() {
            return;
        }
    }
}

/// Sends [`Event::Clock`] once a second (config-change deadlines).
async fn clock(events: Sender<Event>) {
    loop {
        smol::Timer::after(Duration::from_secs(1)).await;
        if events.send(Event::Clock).await.is_err() {
            return;
        }
    }
}

async fn forward_signals(mut signals: async_signal::Signals, events: Sender<Event>) {
    while let Some(Ok(signal)) = signals.next().await {
        let name = match signal {
            async_signal::Signal::Term => "SIGTERM",
            _ => "SIGINT",
        };
        if events.send(Event::Stop(name)).await.is_err() {
            return;
        }
    }
}
