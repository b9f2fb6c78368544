//! Property test over random faults in the simulated failover cluster:
//! cuts, one-path cuts, isolations, drops, recoveries, freezes, thaws,
//! restarts, switchovers and clock steps. Safety at every tick: never two
//! heads active at the same epoch, no node's persisted epoch goes
//! backwards (`SimNet::violations`). Liveness once everything heals: one
//! active head, both heads at its epoch.

use std::time::Duration;

use opie_core::ha::{Admin, Path, Role};
use opie_testkit::simnet::{HEAD_A, HEAD_B, SimNet};
use proptest::prelude::*;

const ISUS: usize = 3;
const NODES: usize = 2 + ISUS;

#[derive(Debug, Clone)]
enum Op {
    Cut(usize, usize),
    CutPath(bool),
    Isolate(usize),
    Drop(usize, usize, u32),
    Recover,
    Freeze(usize),
    Thaw(usize),
    Restart(usize),
    Switchover(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NODES, 0..NODES).prop_map(|(a, b)| Op::Cut(a, b)),
        any::<bool>().prop_map(Op::CutPath),
        (0..NODES).prop_map(Op::Isolate),
        (0..NODES, 0..NODES, 0..=100u32).prop_map(|(a, b, p)| Op::Drop(a, b, p)),
        Just(Op::Recover),
        (0..2usize).prop_map(Op::Freeze),
        (0..2usize).prop_map(Op::Thaw),
        (0..2usize).prop_map(Op::Restart),
        (0..2usize).prop_map(Op::Switchover),
        (0..4000u64).prop_map(Op::Wait),
    ]
}

fn apply(net: &mut SimNet, op: &Op) {
    match *op {
        Op::Cut(a, b) if a != b => net.cut(a, b),
        Op::Cut(..) => {}
        Op::CutPath(storage) => net.cut_path(HEAD_A, HEAD_B, if storage { Path::Storage } else { Path::Lan }),
        Op::Isolate(n) => net.isolate(n),
        Op::Drop(a, b, pct) => net.drop(a, b, pct),
        Op::Recover => net.recover(),
        Op::Freeze(h) => net.freeze(h),
        Op::Thaw(h) => net.thaw(h),
        Op::Restart(h) => net.restart(h),
        Op::Switchover(h) => net.admin(h, Admin::Switchover),
        Op::Wait(ms) => net.run_for(Duration::from_millis(ms)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_two_actives_at_one_epoch_epochs_never_go_back(
        seed in any::<u64>(),
        ops in proptest::collection::vec((op(), 0..1500u64), 1..25),
    ) {
        let mut net = SimNet::with_active_a(ISUS, seed);
        let mut epochs = [net.epoch(HEAD_A), net.epoch(HEAD_B)];
        for (op, wait) in &ops {
            apply(&mut net, op);
            net.run_for(Duration::from_millis(*wait));
            prop_assert!(net.violations.is_empty(), "{:?} after {:?}", net.violations, op);
            // In memory too: a head's epoch never goes backwards, restart included.
            for h in [HEAD_A, HEAD_B] {
                prop_assert!(net.epoch(h) >= epochs[h], "head {h} went from {} to {}", epochs[h], net.epoch(h));
                epochs[h] = net.epoch(h);
            }
        }
        // Heal everything: one head ends up active, the other passive at
        // the same epoch.
        net.recover();
        net.thaw(HEAD_A);
        net.thaw(HEAD_B);
        net.run_for(Duration::from_secs(15));
        prop_assert!(net.violations.is_empty(), "{:?}", net.violations);
        let actives = net.actives();
        prop_assert_eq!(actives.len(), 1, "roles {:?} {:?}", net.role(HEAD_A), net.role(HEAD_B));
        let (active, epoch) = actives[0];
        prop_assert_eq!(net.role(1 - active), Role::Passive);
        prop_assert_eq!(net.epoch(1 - active), epoch);
        for i in net.isu_ids() {
            prop_assert_eq!(net.isu_grant(i).map(|g| g.epoch), Some(epoch));
        }
    }
}
