//! Issue 9's failover drills, in simulation (`opie_testkit::simnet`): kill
//! the active head, cut only the head-to-head links, freeze the active head
//! past the timeout and resume it, manual switchover and back twice.

use std::time::Duration;

use opie_core::ha::{Admin, Event, FailoverKind, Path, Role};
use opie_testkit::simnet::{HEAD_A, HEAD_B, SimNet};

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn service_up(net: &SimNet, h: usize) -> Option<(Duration, u64)> {
    net.events.iter().rev().find_map(|(at, n, e)| match e {
        Event::ServiceUp { epoch, .. } if *n == h => Some((*at, *epoch)),
        _ => None,
    })
}

/// Drill 1: kill the active head; the passive serves within 3 s
/// (200 ms heartbeat, 1 s dead time).
#[test]
fn kill_active_passive_takes_over_under_3s() {
    for seed in 1..=5 {
        let mut net = SimNet::with_active_a(3, seed);
        // Vary where in the heartbeat cycle the kill lands.
        net.run_for(Duration::from_millis(seed * 30));
        let e = net.epoch(HEAD_A);
        assert_eq!((net.role(HEAD_A), net.role(HEAD_B), net.epoch(HEAD_B)), (Role::Active, Role::Passive, e));
        let killed = net.now();
        net.kill(HEAD_A);
        let took = net.run_until(|n| n.role(HEAD_B) == Role::Active, SECS(10)).expect("B takes over");
        let (up, epoch) = service_up(&net, HEAD_B).expect("service up event");
        assert_eq!(up - killed, took);
        assert_eq!(epoch, e + 1);
        assert!(took < SECS(3), "seed {seed}: service up {took:?} after the kill");
        // Never declared dead before the dead time.
        let f = net.head(HEAD_B).last_failover().expect("recorded").clone();
        assert_eq!(f.kind, FailoverKind::Takeover);
        assert!(f.began - killed >= Duration::from_millis(800), "{f:?}");
        println!(
            "seed {seed}: kill→declared dead {:?}, →grant {:?}, →service up {:?} (steps {:?})",
            f.began - killed,
            f.granted.expect("granted") - killed,
            took,
            f.service_up.expect("up") - f.granted.expect("granted"),
        );
        for i in net.isu_ids() {
            assert_eq!(net.isu_grant(i).map(|g| (g.epoch, g.head.as_str())), Some((e + 1, "head-b")));
        }
        assert!(net.violations.is_empty(), "{:?}", net.violations);
    }
}

/// Drill 2: cut only the head-to-head links: no takeover, never two
/// actives. Also one path alone, and a witness minority.
#[test]
fn cut_head_links_no_takeover() {
    let mut net = SimNet::with_active_a(3, 7);
    let e = net.epoch(HEAD_A);
    net.cut(HEAD_A, HEAD_B);
    net.run_for(SECS(20));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B), net.epoch(HEAD_B)), (Role::Active, Role::Passive, e));
    assert_eq!(net.max_active, 1);
    // Head links cut and one ISU cut from A too: still a majority hears A.
    let first_isu = net.isu_ids().start;
    net.cut(HEAD_A, first_isu);
    net.run_for(SECS(20));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive));
    net.recover();
    // Only one path between the heads cut, or both cut and the passive's
    // own storage link to one ISU: nothing changes.
    for path in [Path::Storage, Path::Lan] {
        net.cut_path(HEAD_A, HEAD_B, path);
        net.run_for(SECS(10));
        assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive), "{path:?} cut");
        net.recover();
    }
    net.cut(HEAD_A, HEAD_B);
    net.cut(HEAD_B, first_isu);
    net.run_for(SECS(10));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive));
    net.recover();
    assert_eq!(net.max_active, 1);
    assert_eq!(net.epoch(HEAD_A), e);
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}

/// Drill 3: freeze the active head past the timeout, then resume it: it
/// sees the higher epoch, steps down and is passive.
#[test]
fn frozen_active_is_fenced_and_steps_down() {
    let mut net = SimNet::with_active_a(3, 11);
    let e = net.epoch(HEAD_A);
    net.freeze(HEAD_A);
    let took = net.run_until(|n| n.role(HEAD_B) == Role::Active, SECS(10)).expect("B takes over");
    assert!(took < SECS(3), "{took:?}");
    net.run_for(SECS(2));
    assert_eq!(net.role(HEAD_A), Role::Active, "frozen: knows nothing yet");
    net.thaw(HEAD_A);
    let back = net.run_until(|n| n.role(HEAD_A) == Role::Passive, SECS(5)).expect("A steps down");
    assert!(back < SECS(1), "{back:?}");
    assert!(net.events.iter().any(|(_, n, ev)| *n == HEAD_A && *ev == Event::Superseded { epoch: e + 1 }));
    assert!(net.events.iter().any(|(_, n, ev)| *n == HEAD_A && matches!(ev, Event::StepTook { step: opie_core::ha::Step::StepDown, .. })));
    net.run_for(SECS(10));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Passive, Role::Active));
    assert_eq!((net.epoch(HEAD_A), net.epoch(HEAD_B)), (e + 1, e + 1));
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}

/// A killed head that restarts from its persisted epoch never becomes
/// active on its own: it learns the newer epoch and stays passive.
#[test]
fn restarted_head_comes_back_passive() {
    let mut net = SimNet::with_active_a(3, 13);
    net.kill(HEAD_A);
    net.run_until(|n| n.role(HEAD_B) == Role::Active, SECS(10)).expect("B takes over");
    net.run_for(SECS(5));
    net.restart(HEAD_A);
    let restarted = net.now();
    net.run_for(SECS(10));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Passive, Role::Active));
    assert_eq!(net.epoch(HEAD_A), net.epoch(HEAD_B));
    let claims =
        net.events.iter().filter(|(at, n, e)| *at >= restarted && *n == HEAD_A && matches!(e, Event::Claiming { .. }));
    assert_eq!(claims.count(), 0);
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}

/// Drill 4: manual switchover and back, twice.
#[test]
fn manual_switchover_and_back_twice() {
    let mut net = SimNet::with_active_a(3, 17);
    let mut e = net.epoch(HEAD_A);
    for (from, to) in [(HEAD_A, HEAD_B), (HEAD_B, HEAD_A), (HEAD_A, HEAD_B), (HEAD_B, HEAD_A)] {
        let started = net.now();
        net.admin(from, Admin::Switchover);
        let took = net.run_until(|n| n.role(to) == Role::Active, SECS(10)).expect("switched");
        e += 1;
        assert_eq!((net.role(from), net.epoch(to)), (Role::Passive, e));
        let f = net.head(to).last_failover().expect("recorded");
        assert_eq!(f.kind, FailoverKind::Switchover);
        assert!(took < SECS(2), "switchover took {took:?}");
        println!("switchover {} → {}: {took:?} (hand-off began {:?})", net.name(from), net.name(to), f.began - started);
        net.run_for(SECS(3));
        assert_eq!((net.role(from), net.role(to)), (Role::Passive, Role::Active));
        assert_eq!(net.epoch(from), e);
    }
    // The passive head refuses the command.
    net.admin(HEAD_B, Admin::Switchover);
    net.run_for(SECS(3));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive));
    assert_eq!(net.max_active, 1);
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}

/// Both heads start fresh at once: exactly one wins the first epoch.
#[test]
fn cold_start_elects_one() {
    for seed in 1..=3 {
        let mut net = SimNet::new(3, seed);
        net.run_until(|n| !n.actives().is_empty(), SECS(10)).expect("one comes up");
        net.run_for(SECS(5));
        let actives = net.actives();
        assert_eq!(actives.len(), 1);
        let (active, e) = actives[0];
        assert_eq!(net.head(1 - active).known(), net.head(active).known(), "the loser records the winner");
        // The loser recognises the winner's hand-off at once.
        net.admin(active, Admin::Switchover);
        let took = net.run_until(|n| n.role(1 - active) == Role::Active, SECS(10)).expect("switched");
        assert!(took < SECS(2), "{took:?}");
        assert_eq!(net.epoch(1 - active), e + 1);
        assert!(net.violations.is_empty(), "{:?}", net.violations);
    }
}

/// The passive head cut off from everything (its own network failure)
/// never takes over: the ISUs' reports do not reach it, so no witness
/// majority.
#[test]
fn isolated_passive_never_takes_over() {
    let mut net = SimNet::with_active_a(3, 19);
    let e = net.epoch(HEAD_A);
    net.isolate(HEAD_B);
    net.run_for(SECS(30));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive));
    assert_eq!((net.epoch(HEAD_A), net.epoch(HEAD_B)), (e, e));
    net.recover();
    net.run_for(SECS(5));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Active, Role::Passive));
    assert_eq!(net.max_active, 1);
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}

/// The active head loses the storage net (every ISU) while the head links
/// stay up: it steps down by itself, and only then does the passive take
/// over; never two actives.
#[test]
fn active_cut_from_storage_steps_down_and_passive_takes_over() {
    let mut net = SimNet::with_active_a(3, 23);
    let e = net.epoch(HEAD_A);
    let cut = net.now();
    for i in net.isu_ids() {
        net.cut(HEAD_A, i);
    }
    let took = net.run_until(|n| n.role(HEAD_B) == Role::Active, SECS(10)).expect("B takes over");
    let stepped = net
        .events
        .iter()
        .find_map(|(at, n, ev)| (*n == HEAD_A && *ev == Event::QuorumLost).then(|| *at - cut))
        .expect("A lost its ISU quorum");
    println!("storage cut: A stepped down after {stepped:?}, B serving after {took:?}");
    assert!(took < SECS(5), "{took:?}");
    assert_eq!((net.role(HEAD_A), net.epoch(HEAD_B)), (Role::Passive, e + 1));
    net.recover();
    net.run_for(SECS(5));
    assert_eq!((net.role(HEAD_A), net.role(HEAD_B)), (Role::Passive, Role::Active));
    assert_eq!(net.epoch(HEAD_A), e + 1);
    assert_eq!(net.max_active, 1);
    assert!(net.violations.is_empty(), "{:?}", net.violations);
}
