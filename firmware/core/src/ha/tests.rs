//! Table tests for each rule of `ha` (module docs list them).

use super::*;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn g(epoch: u64, head: &str) -> Grant {
    Grant { epoch, head: head.into() }
}

fn cfg() -> HaConfig {
    HaConfig::new("b", "a", &["i1", "i2", "i3"])
}

fn hb(from: &str, grant: Option<Grant>, role: Role) -> Heartbeat {
    Heartbeat { from: from.into(), grant, role, handoff: false }
}

fn w(isu: &str, grant: Option<Grant>, hears: bool) -> Witness {
    Witness { isu: isu.into(), grant, hears_holder: hears }
}

fn run(head: &mut Head, input: Input, now: Duration) -> Vec<Action> {
    let mut out = Vec::new();
    head.handle(input, now, &mut out);
    out
}

fn claimed(out: &[Action]) -> Option<u64> {
    out.iter().find_map(|a| match a {
        Action::AskGrant(g) => Some(g.epoch),
        _ => None,
    })
}

/// Passive `b` watching active `a` at epoch 3, 3 ISUs.
fn passive() -> Head {
    let mut h = Head::new(cfg(), Some(g(3, "a")), Duration::ZERO).expect("valid");
    for path in PATHS {
        run(&mut h, Input::Heartbeat { path, hb: hb("a", Some(g(3, "a")), Role::Active) }, Duration::ZERO);
    }
    h
}

/// A change to a valid config and the error it must cause.
type BadConfig = (fn(&mut HaConfig), HaError);

#[test]
fn config_validation_table() {
    let ok = cfg();
    assert_eq!(ok.validate(), Ok(()));
    let table: &[BadConfig] = &[
        (|c| c.heartbeat = Duration::ZERO, HaError::Heartbeat),
        (|c| c.heartbeat = Duration::from_secs(1), HaError::Heartbeat),
        (|c| c.dead_time = Duration::from_millis(399), HaError::DeadTime),
        (|c| c.grant_timeout = Duration::ZERO, HaError::GrantTimeout),
        (|c| c.isus.clear(), HaError::NoIsus),
        (|c| c.peer = "b".into(), HaError::Names),
        (|c| c.isus.push("i1".into()), HaError::Names),
        (|c| c.isus.push("a".into()), HaError::Names),
    ];
    for (break_it, want) in table {
        let mut c = ok.clone();
        break_it(&mut c);
        assert_eq!(c.validate(), Err(want.clone()), "{c:?}");
        assert!(Head::new(c, None, Duration::ZERO).is_err());
    }
    assert_eq!(HaConfig::new("a", "b", &["x"]).majority(), 1);
    assert_eq!(HaConfig::new("a", "b", &["x", "y"]).majority(), 2);
    assert_eq!(HaConfig::new("a", "b", &["x", "y", "z", "q"]).majority(), 3);
}

/// Rule: dead only when both paths are silent for the dead time and a
/// majority of ISUs reported fresh that they lost the active head.
#[test]
fn declares_dead_only_on_both_paths_and_witness_majority() {
    // (storage beat at, lan beat at, ISUs that lost it, report age, tick at, takes over)
    let table: &[(u64, u64, usize, u64, u64, bool)] = &[
        (0, 0, 2, 0, 1000, true),
        (0, 0, 3, 0, 1000, true),
        (0, 0, 2, 0, 999, false),     // dead time not over
        (0, 500, 3, 0, 1000, false),  // LAN still heard
        (500, 0, 3, 0, 1000, false),  // storage still heard
        (0, 0, 1, 0, 1000, false),    // ISU minority: head-to-head links cut
        (0, 0, 0, 0, 5000, false),    // every ISU hears it
        (0, 0, 3, 1001, 3000, false), // reports too old
        (0, 0, 3, 1000, 3000, true),
    ];
    for &(storage, lan, lost, age, at, want) in table {
        let mut h = passive();
        let now = ms(at);
        run(&mut h, Input::Heartbeat { path: Path::Storage, hb: hb("a", Some(g(3, "a")), Role::Active) }, ms(storage));
        run(&mut h, Input::Heartbeat { path: Path::Lan, hb: hb("a", Some(g(3, "a")), Role::Active) }, ms(lan));
        for (n, isu) in ["i1", "i2", "i3"].iter().enumerate() {
            run(&mut h, Input::Witness(w(isu, Some(g(3, "a")), n >= lost)), now - ms(age));
        }
        let out = run(&mut h, Input::Tick, now);
        assert_eq!(claimed(&out).is_some(), want, "row {:?}", (storage, lan, lost, age, at));
        assert_eq!(h.role() == Role::Candidate, want);
    }
}

#[test]
fn passive_heartbeats_do_not_count_as_alive_but_candidate_ones_do() {
    for (role, takes_over) in
        [(Role::Passive, true), (Role::Fenced, true), (Role::Candidate, false), (Role::Active, false)]
    {
        let mut h = passive();
        for path in PATHS {
            run(&mut h, Input::Heartbeat { path, hb: hb("a", Some(g(3, "a")), role) }, 600 * MS);
        }
        for isu in ["i1", "i2", "i3"] {
            run(&mut h, Input::Witness(w(isu, Some(g(3, "a")), false)), 1000 * MS);
        }
        let out = run(&mut h, Input::Tick, 1000 * MS);
        assert_eq!(claimed(&out).is_some(), takes_over, "{role:?}");
    }
}

/// Rule: persist the claim before asking, and before anything uses it.
#[test]
fn takeover_persists_then_asks_then_runs_steps_in_order() {
    let mut h = passive();
    for isu in ["i1", "i2", "i3"] {
        run(&mut h, Input::Witness(w(isu, Some(g(3, "a")), false)), 900 * MS);
    }
    let out = run(&mut h, Input::Tick, 1000 * MS);
    let persist = out.iter().position(|a| *a == Action::Persist(g(4, "b"))).expect("persisted");
    let ask = out.iter().position(|a| *a == Action::AskGrant(g(4, "b"))).expect("asked");
    assert!(persist < ask);
    assert_eq!(h.epoch(), 4);
    let reply = |isu: &str, granted| GrantReply { isu: isu.into(), epoch: 4, granted, holder: Some(g(4, "b")) };
    assert!(run(&mut h, Input::GrantReply(reply("i1", true)), 1010 * MS).is_empty());
    let out = run(&mut h, Input::GrantReply(reply("i3", true)), 1020 * MS);
    assert_eq!(out, vec![Action::Run { step: Step::AttachNbd, epoch: 4 }]);
    let mut t = 1020;
    for (i, step) in TAKEOVER.iter().enumerate() {
        assert_eq!(h.role(), Role::Candidate);
        // A late or foreign result does not advance the sequence.
        assert!(run(&mut h, Input::StepDone { step: Step::Flush, ok: true }, ms(t)).is_empty());
        t += 100;
        let out = run(&mut h, Input::StepDone { step: *step, ok: true }, ms(t));
        assert_eq!(out[0], Action::Event(Event::StepTook { step: *step, took: 100 * MS }));
        if let Some(next) = TAKEOVER.get(i + 1) {
            assert_eq!(out[1], Action::Run { step: *next, epoch: 4 });
        } else {
            assert!(out.contains(&Action::Event(Event::ServiceUp { epoch: 4, took: ms(t - 1000) })));
        }
    }
    assert_eq!(h.role(), Role::Active);
    let f = h.last_failover().expect("recorded");
    assert_eq!(
        (f.kind, f.epoch, f.began, f.granted, f.service_up),
        (FailoverKind::Takeover, 4, 1000 * MS, Some(1020 * MS), Some(ms(t)))
    );
    assert_eq!(f.steps.iter().map(|s| s.step).collect::<Vec<_>>(), TAKEOVER.to_vec());
    assert_eq!(f.steps[0].started, 1020 * MS);
}

/// Rule: a takeover is abandoned when the ISUs refuse (another head won),
/// when an ISU shows a higher epoch, or when the grant times out.
#[test]
fn takeover_abandoned_table() {
    // (replies: (isu, granted, holder), tick at, abandoned)
    type Row = (&'static [(&'static str, bool, (u64, &'static str))], u64, bool);
    let table: &[Row] = &[
        (&[("i1", false, (4, "a")), ("i2", false, (4, "a"))], 1010, true),
        (&[("i1", false, (4, "a")), ("i2", true, (4, "b"))], 1010, false),
        (&[("i1", false, (4, "a")), ("i2", true, (4, "b")), ("i3", true, (4, "b"))], 1010, false),
        (&[("i1", false, (9, "a"))], 1010, true),
        (&[("i1", true, (4, "b"))], 1499, false),
        (&[("i1", true, (4, "b"))], 1500, true),
    ];
    for (replies, at, want) in table {
        let mut h = passive();
        for isu in ["i1", "i2", "i3"] {
            run(&mut h, Input::Witness(w(isu, None, false)), 900 * MS);
        }
        assert_eq!(claimed(&run(&mut h, Input::Tick, 1000 * MS)), Some(4));
        let mut out = Vec::new();
        for (isu, granted, (e, holder)) in replies.iter() {
            let r = GrantReply { isu: (*isu).into(), epoch: 4, granted: *granted, holder: Some(g(*e, holder)) };
            h.handle(Input::GrantReply(r), 1005 * MS, &mut out);
        }
        h.handle(Input::Tick, ms(*at), &mut out);
        let abandoned = out.iter().any(|a| matches!(a, Action::Event(Event::Abandoned { epoch: 4 })));
        assert_eq!(abandoned, *want, "{replies:?} at {at}");
        assert_eq!(h.role() == Role::Passive, *want);
        // Refused because another head holds our epoch: it is recorded as the holder.
        let lost_race = replies.iter().filter(|(_, granted, (e, _))| !granted && *e == 4).count() >= 2;
        assert_eq!(
            h.known(),
            Some(&if lost_race {
                g(4, "a")
            } else if replies[0].2.0 == 9 {
                g(9, "a")
            } else {
                g(4, "b")
            })
        );
        assert!(!out.iter().any(|a| matches!(a, Action::Run { .. })) || !*want);
        // After an abandon, no new claim before another dead time.
        if *want {
            assert_eq!(claimed(&run(&mut h, Input::Tick, ms(*at) + 500 * MS)), None);
        }
    }
}

/// Rule: higher accepted, lower refused, equal only from the same head;
/// an active head that sees a higher epoch persists it, then steps down.
#[test]
fn epoch_comparison_on_heartbeats_table() {
    // (known, heartbeat grant, learns, steps down)
    let table: &[(Grant, Grant, bool, bool)] = &[
        (g(4, "b"), g(5, "a"), true, true),
        (g(4, "b"), g(9, "b"), true, true),
        (g(4, "b"), g(4, "b"), false, false),
        (g(4, "b"), g(4, "a"), false, false), // taken: equal epoch from another head
        (g(4, "b"), g(3, "a"), false, false), // stale
    ];
    for (known, theirs, learns, steps_down) in table {
        let mut h = active(known.epoch);
        assert_eq!(h.known(), Some(known));
        let out = run(
            &mut h,
            Input::Heartbeat { path: Path::Lan, hb: hb("a", Some(theirs.clone()), Role::Active) },
            5000 * MS,
        );
        assert_eq!(out.first() == Some(&Action::Persist(theirs.clone())), *learns, "{theirs:?}");
        assert_eq!(h.known(), Some(if *learns { theirs } else { known }));
        let stepping = out.iter().position(|a| matches!(a, Action::Run { step: Step::StepDown, .. }));
        assert_eq!(stepping.is_some(), *steps_down);
        if *steps_down {
            assert_eq!(h.role(), Role::Fenced);
            run(&mut h, Input::StepDone { step: Step::StepDown, ok: true }, 5050 * MS);
            assert_eq!(h.role(), Role::Passive);
        } else {
            assert_eq!(h.role(), Role::Active);
        }
        // A stale peer gets an immediate answer so it learns the newer epoch.
        let answered = out.iter().any(|a| matches!(a, Action::Beat { to: BeatTo::Peer(Path::Lan), .. }));
        assert_eq!(answered, theirs.epoch < known.epoch);
    }
}

/// `b` active at `epoch` (through a takeover).
fn active(epoch: u64) -> Head {
    let mut h = Head::new(cfg(), Some(g(epoch - 1, "a")), Duration::ZERO).expect("valid");
    for isu in ["i1", "i2", "i3"] {
        run(&mut h, Input::Witness(w(isu, Some(g(epoch - 1, "a")), false)), 1000 * MS);
    }
    assert_eq!(claimed(&run(&mut h, Input::Tick, 1000 * MS)), Some(epoch));
    for isu in ["i1", "i2"] {
        let r = GrantReply { isu: isu.into(), epoch, granted: true, holder: Some(g(epoch, "b")) };
        run(&mut h, Input::GrantReply(r), 1000 * MS);
    }
    for step in TAKEOVER {
        run(&mut h, Input::StepDone { step, ok: true }, 1000 * MS);
    }
    assert_eq!(h.role(), Role::Active);
    h
}

#[test]
fn higher_epoch_from_witness_or_grant_reply_also_fences() {
    let mut h = active(4);
    let out = run(&mut h, Input::Witness(w("i2", Some(g(5, "a")), true)), 2000 * MS);
    assert_eq!(out[0], Action::Persist(g(5, "a")));
    assert_eq!(h.role(), Role::Fenced);
    // Reports from unknown ISUs are ignored.
    let mut h = active(4);
    assert!(run(&mut h, Input::Witness(w("rogue", Some(g(50, "a")), true)), 2000 * MS).is_empty());
    assert_eq!(h.epoch(), 4);
    // An ISU behind the active head's epoch is asked again.
    let mut h = active(4);
    for (grant, asks) in [(None, true), (Some(g(3, "a")), true), (Some(g(4, "b")), false)] {
        let out = run(&mut h, Input::Witness(w("i3", grant, false)), 2000 * MS);
        assert_eq!(out.contains(&Action::AskGrant(g(4, "b"))), asks);
    }
}

/// Rule: a head always starts passive, whatever epoch it persisted.
#[test]
fn restart_is_always_passive() {
    for persisted in [None, Some(g(7, "b")), Some(g(7, "a"))] {
        let mut h = Head::new(cfg(), persisted.clone(), 10 * MS).expect("valid");
        assert_eq!(h.role(), Role::Passive);
        assert_eq!(h.known(), persisted.as_ref());
        // Sees the peer active at a higher epoch: learns it, stays passive.
        let out =
            run(&mut h, Input::Heartbeat { path: Path::Storage, hb: hb("a", Some(g(8, "a")), Role::Active) }, 20 * MS);
        assert_eq!(out[0], Action::Persist(g(8, "a")));
        assert_eq!(h.role(), Role::Passive);
        // No takeover within the dead time after start, even if ISUs say lost.
        for isu in ["i1", "i2", "i3"] {
            run(&mut h, Input::Witness(w(isu, None, false)), 30 * MS);
        }
        assert_eq!(claimed(&run(&mut h, Input::Tick, 900 * MS)), None);
    }
}

#[test]
fn heartbeats_every_interval_on_both_paths_and_to_isus() {
    let mut h = Head::new(cfg(), None, Duration::ZERO).expect("valid");
    let out = run(&mut h, Input::Tick, Duration::ZERO);
    let to: Vec<BeatTo> = out
        .iter()
        .filter_map(|a| match a {
            Action::Beat { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(to, vec![BeatTo::Peer(Path::Storage), BeatTo::Peer(Path::Lan), BeatTo::Isus]);
    assert!(run(&mut h, Input::Tick, 199 * MS).is_empty());
    assert_eq!(run(&mut h, Input::Tick, 200 * MS).len(), 3);
    assert!(h.next_deadline().is_some_and(|d| d <= 400 * MS));
}

/// Manual switchover: the active side stops exports, flushes, releases;
/// the passive side takes over on the hand-off.
#[test]
fn switchover_hands_off_in_order() {
    let mut b = active(4);
    let out = run(&mut b, Input::Admin(Admin::Switchover), 2000 * MS);
    assert_eq!(out, vec![Action::Run { step: Step::StopExports, epoch: 4 }]);
    for (i, step) in HANDOFF.iter().enumerate() {
        assert_eq!(b.role(), Role::Active);
        let out = run(&mut b, Input::StepDone { step: *step, ok: true }, ms(2010 + i as u64));
        if let Some(next) = HANDOFF.get(i + 1) {
            assert_eq!(out[1], Action::Run { step: *next, epoch: 4 });
        } else {
            assert!(out.contains(&Action::Event(Event::HandedOff)));
        }
    }
    assert_eq!(b.role(), Role::Passive);
    let beat = b.beat();
    assert!(beat.handoff && beat.role == Role::Passive && beat.grant == Some(g(4, "b")));
    // The other head (a, passive, knows epoch 4 held by b) takes over at once.
    let mut a =
        Head::new(HaConfig::new("a", "b", &["i1", "i2", "i3"]), Some(g(4, "b")), Duration::ZERO).expect("valid");
    let out = run(&mut a, Input::Heartbeat { path: Path::Lan, hb: beat.clone() }, 2013 * MS);
    assert!(out.contains(&Action::Event(Event::HandoffReceived)));
    assert_eq!(claimed(&out), Some(5));
    assert_eq!(a.last_failover().map(|f| f.kind), Some(FailoverKind::Switchover));
    // A hand-off of an older epoch, or from a head that did not hold it, is not one.
    for grant in [g(3, "b"), g(4, "a")] {
        let mut a = Head::new(HaConfig::new("a", "b", &["i1"]), Some(g(4, "b")), Duration::ZERO).expect("valid");
        let hb = Heartbeat { grant: Some(grant), ..beat.clone() };
        assert_eq!(claimed(&run(&mut a, Input::Heartbeat { path: Path::Lan, hb }, 2013 * MS)), None);
    }
    // Switchover only applies on an idle active head.
    let mut p = passive();
    let out = run(&mut p, Input::Admin(Admin::Switchover), Duration::ZERO);
    assert!(matches!(out[..], [Action::Event(Event::Refused { .. })]));
}

#[test]
fn failed_takeover_step_steps_down() {
    let mut h = passive();
    for isu in ["i1", "i2", "i3"] {
        run(&mut h, Input::Witness(w(isu, None, false)), 1000 * MS);
    }
    run(&mut h, Input::Tick, 1000 * MS);
    for isu in ["i1", "i2"] {
        run(
            &mut h,
            Input::GrantReply(GrantReply { isu: isu.into(), epoch: 4, granted: true, holder: None }),
            1000 * MS,
        );
    }
    run(&mut h, Input::StepDone { step: Step::AttachNbd, ok: true }, 1100 * MS);
    let out = run(&mut h, Input::StepDone { step: Step::AssembleMd, ok: false }, 1200 * MS);
    assert!(out.contains(&Action::Event(Event::StepFailed { step: Step::AssembleMd })));
    assert!(out.contains(&Action::Run { step: Step::StepDown, epoch: 4 }));
    assert_eq!(h.role(), Role::Fenced);
    run(&mut h, Input::StepDone { step: Step::StepDown, ok: true }, 1300 * MS);
    assert_eq!(h.role(), Role::Passive);
}

/// The ISU side: one comparison (fence::judge), persist before replying.
#[test]
fn granter_table() {
    // (current grant, claim, granted, grant after)
    let table: &[(Option<Grant>, Grant, bool, Option<Grant>)] = &[
        (None, g(1, "a"), true, Some(g(1, "a"))),
        (Some(g(3, "a")), g(4, "b"), true, Some(g(4, "b"))),
        (Some(g(3, "a")), g(3, "a"), true, Some(g(3, "a"))),
        (Some(g(3, "a")), g(3, "b"), false, Some(g(3, "a"))),
        (Some(g(3, "a")), g(2, "b"), false, Some(g(3, "a"))),
    ];
    for (grant, claim, granted, after) in table {
        let mut isu = Granter::new("i1", &["a", "b"], grant.clone(), 200 * MS, 1000 * MS);
        let mut out = Vec::new();
        isu.handle(IsuInput::Ask(claim.clone()), Duration::ZERO, &mut out);
        let reply = IsuAction::Reply {
            to: claim.head.clone(),
            reply: GrantReply { isu: "i1".into(), epoch: claim.epoch, granted: *granted, holder: after.clone() },
        };
        let advanced = grant.as_ref().is_none_or(|g| claim.epoch > g.epoch);
        if advanced {
            assert_eq!(out, vec![IsuAction::Persist(claim.clone()), reply]);
        } else {
            assert_eq!(out, vec![reply]);
        }
        assert_eq!(isu.grant(), after.as_ref());
    }
}

#[test]
fn granter_witnesses_the_holder() {
    let mut isu = Granter::new("i1", &["a", "b"], Some(g(3, "a")), 200 * MS, 1000 * MS);
    let report = |isu: &mut Granter, now| {
        let mut out = Vec::new();
        isu.handle(IsuInput::Tick, now, &mut out);
        out.iter()
            .map(|a| match a {
                IsuAction::Report { report, .. } => report.hears_holder,
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(report(&mut isu, Duration::ZERO), vec![false, false]);
    let mut out = Vec::new();
    // A beat from a non-holder, from the holder at another epoch or from a
    // passive holder is not hearing it.
    isu.handle(IsuInput::Beat(hb("b", Some(g(3, "a")), Role::Passive)), 100 * MS, &mut out);
    isu.handle(IsuInput::Beat(hb("a", Some(g(2, "a")), Role::Active)), 100 * MS, &mut out);
    isu.handle(IsuInput::Beat(hb("a", Some(g(3, "a")), Role::Passive)), 100 * MS, &mut out);
    assert_eq!(report(&mut isu, 200 * MS), vec![false, false]);
    isu.handle(IsuInput::Beat(hb("a", Some(g(3, "a")), Role::Active)), 300 * MS, &mut out);
    assert!(out.is_empty());
    assert!(report(&mut isu, 350 * MS).is_empty(), "one report per interval");
    assert_eq!(report(&mut isu, 400 * MS), vec![true, true]);
    assert_eq!(report(&mut isu, 1299 * MS), vec![true, true]);
    assert_eq!(report(&mut isu, 1500 * MS), vec![false, false]);
}

/// An active head that no ISU majority hears for the dead time steps down.
#[test]
fn active_steps_down_when_no_isu_majority_hears_it() {
    // (ISUs reporting "I hear you" every 200 ms, steps down by 3 s)
    for (hearing, steps_down) in [(3, false), (2, false), (1, true), (0, true)] {
        let mut h = active(4);
        let mut stepped = None;
        for t in (1000..3000u64).step_by(200) {
            for isu in ["i1", "i2", "i3"].iter().take(hearing) {
                run(&mut h, Input::Witness(w(isu, Some(g(4, "b")), true)), ms(t));
            }
            let out = run(&mut h, Input::Tick, ms(t + 100));
            if out.contains(&Action::Event(Event::QuorumLost)) {
                stepped = Some(t + 100);
            }
        }
        assert_eq!(stepped.is_some(), steps_down, "{hearing} hearing");
        if let Some(at) = stepped {
            // Not before the dead time after service up (1 s).
            assert!(at > 2000, "{at}");
            assert_eq!(h.role(), Role::Fenced);
        } else {
            assert_eq!(h.role(), Role::Active);
        }
    }
    // Reports about another epoch or holder do not count.
    let mut h = active(4);
    for t in (1000..3000u64).step_by(200) {
        run(&mut h, Input::Witness(w("i1", Some(g(3, "a")), true)), ms(t));
        run(&mut h, Input::Witness(w("i2", Some(g(4, "a")), true)), ms(t));
        run(&mut h, Input::Witness(w("i3", Some(g(4, "b")), true)), ms(t));
        run(&mut h, Input::Tick, ms(t + 100));
    }
    assert_eq!(h.role(), Role::Fenced);
}
