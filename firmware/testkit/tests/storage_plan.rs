//! The group planner driven through `opie_sys::storage_driver` against the
//! fake host: first set-up, refusal of foreign disks, resume after a power
//! cut at every step, start-up with all, all but one and too few members.

use opie_core::storage::names::{ClusterName, GroupName};
use opie_core::storage::plan::{GroupSpec, Mode, PlanError, Step};
use opie_core::storage::probe::Signature;
use opie_sys::host::Host;
use opie_sys::storage_driver::{DriverError, bring_up};
use opie_testkit::fake_host::{FakeDisk, FakeHost, MIB};
use proptest::prelude::*;

const DISKS: [&str; 4] = ["/dev/nbd0", "/dev/nbd1", "/dev/nbd2", "/dev/nbd3"];

fn spec(n: usize) -> GroupSpec {
    GroupSpec::new(
        ClusterName::new("lab").expect("valid"),
        GroupName::new("g1").expect("valid"),
        "/dev/md0",
        DISKS[..n].iter().map(|s| s.to_string()).collect(),
    )
}

fn blank_host(sizes: &[u64]) -> FakeHost {
    FakeHost::with_disks(DISKS.iter().zip(sizes).map(|(d, s)| (d.to_string(), FakeDisk::blank(*s))))
}

fn run(host: &mut FakeHost, spec: &GroupSpec, mode: Mode) -> Result<Vec<Step>, DriverError> {
    bring_up(host, spec, mode, &mut |_| {}).map(|ran| ran.into_iter().map(|r| r.step).collect())
}

fn mounted(host: &mut FakeHost) -> bool {
    host.mounts().expect("mounts").iter().any(|m| m.target == "/srv/g1" && m.source == "/dev/opie_g1/data")
}

#[test]
fn first_set_up_runs_every_step_once_then_nothing() {
    let mut host = blank_host(&[64 * MIB, 64 * MIB, 48 * MIB]);
    let steps = run(&mut host, &spec(3), Mode::Create).expect("set up");
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            Step::CreateArray { .. } => "create",
            Step::AssembleArray { .. } => "assemble",
            Step::CreatePv { .. } => "pv",
            Step::CreateVg { .. } => "vg",
            Step::CreateLv { .. } => "lv",
            Step::ActivateVg { .. } => "activate",
            Step::MakeFs { .. } => "mkfs",
            Step::Mount { .. } => "mount",
        })
        .collect();
    assert_eq!(kinds, ["create", "pv", "vg", "lv", "mkfs", "mount"]);
    let Step::CreateArray { member_size, unused, .. } = &steps[0] else { panic!("create first") };
    assert_eq!(*member_size, 48 * MIB);
    assert_eq!(unused.len(), 2);
    // 2 x 48 MiB data - 1 MiB metadata = 23 extents; 15 % = 4 kept free.
    let Step::CreateLv { extents, reserved_extents, .. } = &steps[3] else { panic!("lv fourth") };
    assert_eq!((*extents, *reserved_extents), (19, 4));
    assert!(mounted(&mut host));
    // Running it again is a no-op: everything is already there.
    assert_eq!(run(&mut host, &spec(3), Mode::Create).expect("idempotent"), []);
    assert_eq!(run(&mut host, &spec(3), Mode::Start).expect("idempotent"), []);
    assert_eq!(host.creates(), 1);
    assert_eq!(host.overwritten, Vec::<String>::new());
}

#[test]
fn reboot_then_start_assembles_activates_and_mounts() {
    let mut host = blank_host(&[48 * MIB; 3]);
    run(&mut host, &spec(3), Mode::Create).expect("set up");
    host.reboot();
    let steps = run(&mut host, &spec(3), Mode::Start).expect("start");
    assert!(
        matches!(&steps[..], [Step::AssembleArray { missing: 0, .. }, Step::ActivateVg { .. }, Step::Mount { .. }]),
        "{steps:?}"
    );
    assert!(mounted(&mut host));
}

#[test]
fn start_with_one_member_gone_runs_degraded_and_with_two_gone_refuses() {
    let mut host = blank_host(&[48 * MIB; 3]);
    run(&mut host, &spec(3), Mode::Create).expect("set up");
    host.reboot();
    host.set_present("/dev/nbd1", false);
    let steps = run(&mut host, &spec(3), Mode::Start).expect("degraded start");
    assert!(
        matches!(&steps[0], Step::AssembleArray { members, missing: 1, .. } if members == &["/dev/nbd0", "/dev/nbd2"])
    );
    assert!(mounted(&mut host));
    host.reboot();
    host.set_present("/dev/nbd2", false);
    let err = run(&mut host, &spec(3), Mode::Start).expect_err("refused");
    assert!(matches!(err, DriverError::Plan(PlanError::TooFewToAssemble { found: 1, total: 3, .. })), "{err}");
    assert!(err.to_string().contains("never fewer than all but one"), "{err}");
    assert!(!mounted(&mut host));
}

#[test]
fn a_failing_tool_stops_with_its_stderr_and_a_rerun_resumes() {
    let mut host = blank_host(&[48 * MIB; 3]);
    host.fail_next("mkfs.ext4", "mkfs.ext4: Device size reported to be zero.");
    let err = run(&mut host, &spec(3), Mode::Create).expect_err("mkfs fails");
    let text = err.to_string();
    assert!(text.starts_with("make ext4") && text.contains("Device size reported to be zero"), "{text}");
    let steps = run(&mut host, &spec(3), Mode::Create).expect("resumes");
    assert!(matches!(&steps[..], [Step::MakeFs { .. }, Step::Mount { .. }]), "{steps:?}");
    assert_eq!(host.creates(), 1);
}

#[test]
fn a_create_cut_after_some_superblocks_is_never_recreated() {
    let mut host = blank_host(&[48 * MIB; 3]);
    host.cut_inside_create(1);
    assert!(run(&mut host, &spec(3), Mode::Create).is_err());
    host.reboot();
    let err = run(&mut host, &spec(3), Mode::Create).expect_err("refused");
    assert!(matches!(err, DriverError::Plan(PlanError::TooFewToAssemble { found: 1, .. })), "{err}");
    assert_eq!(host.creates(), 1);
    assert_eq!(host.overwritten, Vec::<String>::new());
}

/// What may sit on a disk before set-up.
#[derive(Debug, Clone, Copy)]
enum Content {
    Blank,
    OtherCluster,
    OtherGroup,
    Filesystem,
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        4 => Just(Content::Blank),
        1 => Just(Content::OtherCluster),
        1 => Just(Content::OtherGroup),
        1 => Just(Content::Filesystem),
    ]
}

fn disk(c: Content, size: u64) -> FakeDisk {
    match c {
        Content::Blank => FakeDisk::blank(size),
        Content::OtherCluster => FakeDisk::member_of(size, "elsewhere", "g1", "other:1", 3),
        Content::OtherGroup => FakeDisk::member_of(size, "lab", "g7", "other:2", 3),
        Content::Filesystem => FakeDisk { signatures: vec![Signature::Ext], ..FakeDisk::blank(size) },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Never writes over foreign data; refuses naming the first foreign
    /// disk; otherwise survives a power cut after any number of steps and
    /// a reboot, resumes to a mounted group with one create, and starts
    /// again after another reboot.
    #[test]
    fn never_creates_over_foreign_data_and_resumes_after_any_cut(
        n in 2usize..=4,
        contents in proptest::collection::vec(content(), 4),
        sizes in proptest::collection::vec(24u64..=64, 4),
        cut in 0usize..8,
    ) {
        let mut host = FakeHost::with_disks(
            DISKS.iter().zip(contents.iter().zip(&sizes)).map(|(d, (c, s))| (d.to_string(), disk(*c, s * MIB))),
        );
        let spec = spec(n);
        let foreign = DISKS[..n].iter().zip(&contents).find(|(_, c)| !matches!(c, Content::Blank)).map(|(d, _)| *d);
        host.cut_power_after(cut);
        let first = run(&mut host, &spec, Mode::Create);
        if let Some(dev) = foreign {
            let err = first.expect_err("foreign data refused");
            prop_assert!(err.to_string().contains(&format!("refusing {dev}:")), "{}", err);
            prop_assert!(host.log.is_empty(), "changed the host: {:?}", host.log);
            return Ok(());
        }
        if cut < 6 {
            prop_assert!(first.is_err());
            host.reboot();
            run(&mut host, &spec, Mode::Create).map_err(|e| TestCaseError::fail(e.to_string()))?;
        } else {
            prop_assert!(first.is_ok());
        }
        prop_assert!(mounted(&mut host));
        prop_assert_eq!(host.creates(), 1);
        prop_assert_eq!(&host.overwritten, &Vec::<String>::new());
        host.reboot();
        run(&mut host, &spec, Mode::Start).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(mounted(&mut host));
        prop_assert_eq!(host.creates(), 1);
    }
}
