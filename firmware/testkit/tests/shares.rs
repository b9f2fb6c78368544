//! The share manager (`opie_sys::shares`) against the in-memory share host:
//! validate → persist → apply, idempotent applies, refusals that change
//! nothing, symlinks refused, volumes that are not mounted yet, a reboot
//! that rebuilds everything from the record, failures that say what failed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use opie_core::shares::{Access, SHARES_MAGIC, ShareCommand, ShareEdit, nt_hash};
use opie_sys::shares::{ConfigFile, Outcome, ShareService};
use opie_sys::slots::SlotStore;
use opie_testkit::fake_shares::FakeShareHost;

/// A fresh state directory, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "opie-shares-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("state dir");
        StateDir(p)
    }
    fn store(&self) -> SlotStore {
        SlotStore::new(&self.0, "shares", SHARES_MAGIC)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn service(dir: &StateDir, host: FakeShareHost) -> ShareService<FakeShareHost> {
    let (s, alerts) = ShareService::open(Some(dir.store()), host, "head1", true);
    assert!(alerts.is_empty(), "{alerts:?}");
    s
}

fn done(o: Outcome) -> String {
    match o {
        Outcome::Done(text) => text,
        other => panic!("expected done, got {other:?}"),
    }
}

fn refused(o: Outcome) -> String {
    match o {
        Outcome::Refused(text) => text,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn add_alice() -> ShareCommand {
    ShareCommand::SetUser { name: "alice".into(), nt_hash: nt_hash("Secret-1").expect("hash"), create: true }
}

fn create_docs() -> ShareCommand {
    ShareCommand::Create {
        name: "docs".into(),
        pool: None,
        path: None,
        edit: ShareEdit {
            nfs_clients: Some(vec!["192.168.77.0/24".parse().expect("net")]),
            smb: Some(true),
            smb_users: Some(vec!["alice".into()]),
            ..ShareEdit::default()
        },
    }
}

#[test]
fn create_persists_then_serves_and_a_second_apply_runs_nothing() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    assert_eq!(done(s.run(add_alice())), "user alice added; nothing needed changing");
    // Only the password file changed: nothing to start for a user alone.
    assert_eq!(s.host.log, ["write /etc/exports", "write /etc/ksmbd/ksmbd.conf", "write /etc/ksmbd/ksmbdpwd.db"]);
    s.host.log.clear();
    let text = done(s.run(create_docs()));
    assert_eq!(
        text,
        "share docs created at /srv/g1/docs; created /srv/g1/docs, NFS server started, SMB server started"
    );
    assert_eq!(
        s.host.log,
        [
            "mkdir /srv/g1/docs",
            "write /etc/exports",
            "start nfs",
            "exportfs -ra",
            "write /etc/ksmbd/ksmbd.conf",
            "start ksmbd"
        ]
    );
    assert!(
        s.host.files[&ConfigFile::Exports]
            .contains("/srv/g1/docs 192.168.77.0/24(rw,sync,no_subtree_check,root_squash,fsid=1)")
    );
    assert!(s.host.files[&ConfigFile::KsmbdConf].contains("[docs]\n\tpath = /srv/g1/docs\n\tread only = no\n"));
    assert!(s.host.files[&ConfigFile::KsmbdPasswords].starts_with("alice:"));

    s.host.log.clear();
    assert_eq!(done(s.run(ShareCommand::Apply)), "shares applied: nothing needed changing");
    assert!(s.host.log.is_empty(), "second apply ran {:?}", s.host.log);

    // The record survived: a new service (a restarted supervisor) reads it.
    let again = service(&dir, FakeShareHost::default());
    assert_eq!(again.shares(), s.shares());
}

#[test]
fn refusals_change_neither_record_nor_system() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    done(s.run(add_alice()));
    done(s.run(create_docs()));
    let before = s.shares().clone();
    let stored = dir.store().load().expect("load").newest.expect("stored").generation;
    s.host.log.clear();
    let cases = [
        (create_docs(), "share \"docs\" already exists; nothing changed"),
        (
            ShareCommand::Create {
                name: "etc".into(),
                pool: None,
                path: Some("../../etc".into()),
                edit: ShareEdit::default(),
            },
            "path \"../../etc\" is not allowed: '.' and '..' would leave the data volume; nothing changed",
        ),
        (
            ShareCommand::Create {
                name: "x".into(),
                pool: Some("/srv/g9".into()),
                path: None,
                edit: ShareEdit::default(),
            },
            "/srv/g9 is not a mounted Opie data volume (mounted: /srv/g1); nothing changed",
        ),
        (
            ShareCommand::Change {
                name: "docs".into(),
                edit: ShareEdit { smb_users: Some(vec!["mallory".into()]), ..ShareEdit::default() },
            },
            "share \"docs\": user \"mallory\" does not exist (add it first); nothing changed",
        ),
        (ShareCommand::Remove { name: "nope".into() }, "no share named \"nope\"; nothing changed"),
        (
            ShareCommand::RemoveUser { name: "alice".into() },
            "user \"alice\" is still used by share docs; change that first; nothing changed",
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(refused(s.run(cmd)), want);
    }
    assert_eq!(s.shares(), &before);
    assert!(s.host.log.is_empty(), "refusals ran {:?}", s.host.log);
    assert_eq!(dir.store().load().expect("load").newest.expect("stored").generation, stored, "nothing was written");
}

#[test]
fn a_symlink_on_the_way_is_refused_before_saving_and_never_served() {
    let dir = StateDir::new();
    let mut host = FakeShareHost::with_pool("/srv/g1");
    host.symlinks.insert("/srv/g1/evil".into());
    let mut s = service(&dir, host);
    let text = refused(s.run(ShareCommand::Create {
        name: "evil".into(),
        pool: None,
        path: Some("evil/inner".into()),
        edit: ShareEdit { nfs_clients: Some(vec!["10.0.0.0/8".parse().expect("net")]), ..ShareEdit::default() },
    }));
    assert_eq!(text, "/srv/g1/evil is a symlink: a share must not lead outside its data volume; nothing changed");
    assert!(s.shares().shares.is_empty());
    assert!(dir.store().load().expect("load").newest.is_none());

    // A symlink that appears after the share was made: the share is not
    // served, the others are, and the answer says which and why.
    let edit = ShareEdit { nfs_clients: Some(vec!["10.0.0.0/8".parse().expect("net")]), ..ShareEdit::default() };
    done(s.run(ShareCommand::Create { name: "a".into(), pool: None, path: None, edit: edit.clone() }));
    done(s.run(ShareCommand::Create { name: "b".into(), pool: None, path: None, edit }));
    s.host.dirs.remove("/srv/g1/a");
    s.host.symlinks.insert("/srv/g1/a".into());
    let text = refused(s.run(ShareCommand::Apply));
    assert_eq!(
        text,
        "applying the shares failed: share a: /srv/g1/a is a symlink; not served (it could lead outside the volume)"
    );
    let exports = &s.host.files[&ConfigFile::Exports];
    assert!(!exports.contains("/srv/g1/a ") && exports.contains("/srv/g1/b "), "{exports}");
}

#[test]
fn remove_stops_serving_keeps_the_directory_and_says_so() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    done(s.run(add_alice()));
    done(s.run(create_docs()));
    s.host.log.clear();
    let text = done(s.run(ShareCommand::Remove { name: "docs".into() }));
    assert_eq!(
        text,
        "share docs removed: no longer exported over NFS or SMB; its directory /srv/g1/docs and the files in it are kept; \
         NFS exports reloaded, SMB configuration reloaded"
    );
    assert!(s.host.dirs.contains("/srv/g1/docs"));
    assert!(!s.host.files[&ConfigFile::Exports].contains("docs"));
    assert!(!s.host.files[&ConfigFile::KsmbdConf].contains("[docs]"));
    assert_eq!(
        s.host.log,
        ["write /etc/exports", "exportfs -ra", "write /etc/ksmbd/ksmbd.conf", "ksmbd.control --reload"]
    );
}

#[test]
fn change_to_read_only_and_password_change_reload_only_what_changed() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    done(s.run(add_alice()));
    done(s.run(create_docs()));
    s.host.log.clear();
    done(s.run(ShareCommand::Change {
        name: "docs".into(),
        edit: ShareEdit { nfs_access: Some(Access::ReadOnly), ..ShareEdit::default() },
    }));
    assert_eq!(s.host.log, ["write /etc/exports", "exportfs -ra"]);
    assert!(s.host.files[&ConfigFile::Exports].contains("(ro,sync,"));
    s.host.log.clear();
    let text = done(s.run(ShareCommand::SetUser {
        name: "alice".into(),
        nt_hash: nt_hash("Secret-2").expect("hash"),
        create: false,
    }));
    assert_eq!(text, "password of alice changed; SMB configuration reloaded");
    assert_eq!(s.host.log, ["write /etc/ksmbd/ksmbdpwd.db", "ksmbd.control --reload"]);
}

#[test]
fn shares_wait_for_their_volume_and_a_reboot_rebuilds_everything_from_the_record() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    done(s.run(add_alice()));
    done(s.run(create_docs()));
    let files = s.host.files.clone();

    // Power cycle: /etc from the image, nothing runs, nothing mounted.
    let mut host = std::mem::take(&mut s.host);
    host.reboot();
    let mut s = service(&dir, host);
    let applied = s.apply().expect("apply");
    assert_eq!(applied.waiting, ["docs (/srv/g1)"]);
    assert!(!s.host.nfs_running && !s.host.smb_running, "nothing served before the volume is mounted");
    assert!(!s.host.files[&ConfigFile::Exports].contains("docs"));
    assert!(s.poll().is_none(), "no new volume, nothing to do");

    // `opie storage assemble` mounts the volume: the next poll serves it.
    s.host.mount("/srv/g1");
    let applied = s.poll().expect("a volume appeared").expect("apply");
    assert_eq!(applied.actions, ["NFS server started", "SMB server started"]);
    assert_eq!(s.host.files, files, "same files as before the reboot, users included");
    assert!(s.poll().is_none());
}

#[test]
fn a_failing_tool_after_the_save_says_what_failed() {
    let dir = StateDir::new();
    let mut host = FakeShareHost::with_pool("/srv/g1");
    host.fail.insert("start_nfs", "rpc.nfsd: unable to set any sockets for nfsd".into());
    let mut s = service(&dir, host);
    let text = refused(s.run(ShareCommand::Create {
        name: "docs".into(),
        pool: None,
        path: None,
        edit: ShareEdit { nfs_clients: Some(vec!["10.0.0.0/8".parse().expect("net")]), ..ShareEdit::default() },
    }));
    assert_eq!(
        text,
        "share docs created at /srv/g1/docs and saved, but serving it failed: starting the NFS server: start nfs: \
         exit status 1: rpc.nfsd: unable to set any sockets for nfsd; fix that and run `opie share apply`"
    );
    assert_eq!(s.shares().shares.len(), 1, "the definition is kept");
    assert!(dir.store().load().expect("load").newest.is_some());
    // Fixed (the failure was one-off): apply serves it.
    assert_eq!(done(s.run(ShareCommand::Apply)), "shares applied: NFS server started");
}

#[test]
fn create_picks_the_one_mounted_volume_or_asks() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::default());
    let create = |pool: Option<&str>| ShareCommand::Create {
        name: "docs".into(),
        pool: pool.map(String::from),
        path: None,
        edit: ShareEdit::default(),
    };
    assert_eq!(
        refused(s.run(create(None))),
        "no data volume is mounted: create or assemble a group first (opie storage); nothing changed"
    );
    s.host.mount("/srv/g1");
    s.host.mount("/srv/g2");
    assert_eq!(
        refused(s.run(create(None))),
        "several data volumes are mounted; name one with --pool: /srv/g1, /srv/g2; nothing changed"
    );
    assert_eq!(done(s.run(create(Some("/srv/g2")))), "share docs created at /srv/g2/docs; created /srv/g2/docs");
}

#[test]
fn the_listing_carries_no_password_hashes() {
    let dir = StateDir::new();
    let mut s = service(&dir, FakeShareHost::with_pool("/srv/g1"));
    done(s.run(add_alice()));
    done(s.run(ShareCommand::SetGroup { name: "staff".into(), members: vec!["alice".into()] }));
    match s.run(ShareCommand::List) {
        Outcome::View(v) => {
            assert_eq!(v.users, ["alice"]);
            assert_eq!(v.groups[0].members, ["alice"]);
        }
        other => panic!("{other:?}"),
    }
}
