//! Epoch fencing inside `opie nbd-serve` (DESIGN §5 "Fencing").
//!
//! `opie_core::fence` decides whether a claim is accepted; this module
//! carries the decision out across the server's client threads:
//!
//! - [`Fencing::check`] runs in the handshake's catalog lookup (NBD_OPT_INFO,
//!   NBD_OPT_GO, NBD_OPT_EXPORT_NAME): bad, missing or stale claims are
//!   refused there with NBD_REP_ERR_POLICY and a log line.
//! - [`Fencing::enter`] runs when a client is about to enter transmission,
//!   before its GO acknowledgement leaves the server. A higher epoch is
//!   persisted first (fsynced two-slot record), then every open connection
//!   of the older grant has its socket shut down, then the live grant
//!   changes. Only then is the new head's GO acknowledged.
//! - [`Session::hold`] runs before each request: it read-locks the live
//!   grant and refuses a connection whose grant is gone. The lock is held
//!   while the request runs, and changing the grant takes the write lock,
//!   so once a new epoch is acknowledged no request of an older one can
//!   still be writing.
//!
//! Without a fencing key all of this is off: plain export names, no state.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use opie_core::fence::{Admission, Grant, Verdict, admit, judge};
use opie_proto::fence::KEY_LEN;
use opie_sys::fence_store::{EpochStore, FenceStoreError, read_key};

/// What the catalog lookup learned about a name's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Fencing is off.
    Unfenced,
    /// A valid claim, to be entered when transmission starts.
    Claim(Grant),
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, (Grant, TcpStream)>,
}

/// The fencing state of one server.
#[derive(Debug)]
pub struct Fencing {
    key: Option<[u8; KEY_LEN]>,
    store: Option<EpochStore>,
    /// The grant connections are checked against; written only under
    /// `registry`'s lock, after the grant was persisted.
    live: RwLock<Option<Grant>>,
    registry: Mutex<Registry>,
}

impl Fencing {
    /// Fencing off: plain export names.
    pub fn off() -> Self {
        Fencing { key: None, store: None, live: RwLock::new(None), registry: Mutex::default() }
    }

    /// Fencing on with the key in `key_file` and the grant persisted in
    /// `state_dir`.
    pub fn open(key_file: &Path, state_dir: &Path) -> Result<Self, FenceStoreError> {
        let key = read_key(key_file)?;
        let store = EpochStore::new(state_dir);
        let granted = store.load()?;
        match &granted {
            Some(g) => log::info!("fencing on: epoch {} granted to {:?}", g.epoch, g.head),
            None => log::info!("fencing on: no epoch granted yet"),
        }
        Ok(Fencing { key: Some(key), store: Some(store), live: RwLock::new(granted), registry: Mutex::default() })
    }

    fn granted(&self) -> Option<Grant> {
        self.live.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Checks an export name's claim against the current grant; returns
    /// the bare export name, or the reason for refusing it (also logged).
    pub fn check<'a>(&self, name: &'a str) -> Result<(&'a str, Admitted), String> {
        match admit(self.key.as_ref(), name, self.granted().as_ref()) {
            Admission::Unfenced { export } => Ok((export, Admitted::Unfenced)),
            Admission::Admit { export, claim, .. } => Ok((export, Admitted::Claim(claim))),
            Admission::Refuse { reason } => {
                // The MAC is left out of the log: it proves nothing to a reader.
                let shown = name.split_once(";mac=").map_or(name, |(claim, _)| claim);
                log::warn!("refused export name {shown:?}: {reason}");
                Err(reason)
            }
        }
    }

    /// Admits a client into transmission (see the module header for the
    /// order of persisting, dropping and switching). `sock` is the client's
    /// socket; a clone is kept to drop it when a newer epoch arrives.
    pub fn enter(&self, admitted: Admitted, sock: &TcpStream) -> Result<Session<'_>, String> {
        let Admitted::Claim(claim) = admitted else {
            return Ok(Session { fencing: self, entry: None });
        };
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = judge(self.granted().as_ref(), claim.epoch, &claim.head);
        if let Some(reason) = verdict.refusal(claim.epoch, &claim.head) {
            log::warn!("refused: {reason}");
            return Err(reason);
        }
        if verdict == Verdict::Advance {
            if let Some(store) = &self.store {
                store.store(&claim).map_err(|e| {
                    log::error!("cannot persist epoch {}: {e}", claim.epoch);
                    format!("cannot persist epoch {}: {e}", claim.epoch)
                })?;
            }
            let stale: Vec<u64> = registry.open.iter().filter(|(_, (g, _))| *g != claim).map(|(id, _)| *id).collect();
            for id in &stale {
                if let Some((old, stream)) = registry.open.get(id) {
                    log::warn!("dropping a connection of epoch {} ({:?}): superseded", old.epoch, old.head);
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
            *self.live.write().unwrap_or_else(PoisonError::into_inner) = Some(claim.clone());
            log::info!(
                "epoch {} granted to {:?} (persisted); {} older connection(s) dropped",
                claim.epoch,
                claim.head,
                stale.len()
            );
        }
        let clone = sock.try_clone().map_err(|e| format!("cannot track the connection: {e}"))?;
        let id = registry.next_id;
        registry.next_id += 1;
        registry.open.insert(id, (claim.clone(), clone));
        Ok(Session { fencing: self, entry: Some((id, claim)) })
    }
}

/// One client's standing in transmission.
#[derive(Debug)]
pub struct Session<'a> {
    fencing: &'a Fencing,
    entry: Option<(u64, Grant)>,
}

/// Proof that a request may run; the grant cannot change while it lives.
#[derive(Debug)]
pub struct Hold<'a> {
    _guard: Option<RwLockReadGuard<'a, Option<Grant>>>,
}

impl Session<'_> {
    /// Allows one request, or returns None when a newer epoch superseded
    /// this connection (the caller fails the request and hangs up).
    pub fn hold(&self) -> Option<Hold<'_>> {
        let Some((_, mine)) = &self.entry else {
            return Some(Hold { _guard: None });
        };
        let live = self.fencing.live.read().unwrap_or_else(PoisonError::into_inner);
        (live.as_ref() == Some(mine)).then_some(Hold { _guard: Some(live) })
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if let Some((id, _)) = &self.entry {
            self.fencing.registry.lock().unwrap_or_else(PoisonError::into_inner).open.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opie_proto::fence::FencedName;
    use std::io::Read;
    use std::net::TcpListener;

    const KEY: [u8; 32] = [5; 32];

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (server, _) = l.accept().expect("accept");
        (client, server)
    }

    fn fencing(dir: &Path) -> Fencing {
        let key = dir.join("key");
        std::fs::write(&key, format!("{}\n", "05".repeat(32))).expect("key");
        Fencing::open(&key, dir).expect("open")
    }

    fn claim(f: &Fencing, epoch: u64, head: &str) -> Result<Admitted, String> {
        let name = FencedName::sign(&KEY, "disk", epoch, head).expect("sign").emit();
        f.check(&name).map(|(export, a)| {
            assert_eq!(export, "disk");
            a
        })
    }

    #[test]
    fn a_higher_epoch_persists_drops_older_sessions_and_survives_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = fencing(dir.path());
        let (mut a_client, a_server) = pair();
        let a = f.enter(claim(&f, 5, "a").expect("5 admitted"), &a_server).expect("enter 5");
        assert!(a.hold().is_some());
        let (_b_client, b_server) = pair();
        let b = f.enter(claim(&f, 6, "b").expect("6 admitted"), &b_server).expect("enter 6");
        // A's requests are refused and its socket was shut down.
        assert!(a.hold().is_none());
        let mut buf = [0u8; 1];
        assert_eq!(a_client.read(&mut buf).expect("read after shutdown"), 0);
        assert!(b.hold().is_some());
        // Stale and taken claims are refused at lookup.
        assert!(claim(&f, 5, "a").is_err());
        assert!(claim(&f, 6, "a").is_err());
        // The holder may open more connections at its epoch.
        let (_c, c_server) = pair();
        let b2 = f.enter(claim(&f, 6, "b").expect("6 again"), &c_server).expect("enter 6 again");
        assert!(b2.hold().is_some() && b.hold().is_some());
        drop((a, b, b2));
        assert!(f.registry.lock().expect("lock").open.is_empty());
        // A restarted server still enforces 6.
        let again = fencing(dir.path());
        assert!(claim(&again, 5, "a").is_err());
        assert!(claim(&again, 6, "b").is_ok());
    }

    /// A claim checked at lookup but overtaken before entering is refused
    /// when it tries to enter.
    #[test]
    fn enter_rechecks_against_the_latest_grant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = fencing(dir.path());
        let late = claim(&f, 5, "a").expect("5 admitted at lookup");
        let (_b, b_server) = pair();
        let _b = f.enter(claim(&f, 6, "b").expect("6"), &b_server).expect("enter 6");
        let (_a, a_server) = pair();
        let err = f.enter(late, &a_server).expect_err("stale at entry");
        assert!(err.contains("stale epoch 5"), "{err}");
    }

    #[test]
    fn without_a_key_names_are_plain_and_nothing_is_held_back() {
        let f = Fencing::off();
        assert_eq!(f.check("disk"), Ok(("disk", Admitted::Unfenced)));
        let signed = FencedName::sign(&KEY, "disk", 1, "a").expect("sign").emit();
        assert!(f.check(&signed).is_err());
        let (_c, s) = pair();
        let session = f.enter(Admitted::Unfenced, &s).expect("enter");
        assert!(session.hold().is_some());
    }
}
