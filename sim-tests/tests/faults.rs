//! Fault plans: deterministic per seed, ordered, healed at the end, and each scenario keeps
//! the promise its name makes.

use std::collections::BTreeSet;

use sim_tests::faults::{Action, FaultPlan, PlanConfig, Scenario, SplitMix64, Target};
use sim_tests::history::SimTime;

const SEEDS: u64 = 200;

fn plans(config: PlanConfig) -> impl Iterator<Item = FaultPlan> {
    Scenario::ALL.into_iter().flat_map(move |scenario| {
        (0..SEEDS).map(move |seed| FaultPlan::generate(scenario, seed, config))
    })
}

#[test]
fn splitmix64_gives_the_published_sequence() {
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
}

#[test]
fn a_seed_gives_one_plan_and_seeds_differ() {
    for scenario in Scenario::ALL {
        let config = PlanConfig::default();
        let a = FaultPlan::generate(scenario, 7, config);
        assert_eq!(a, FaultPlan::generate(scenario, 7, config));
        let distinct: BTreeSet<String> = (0..20)
            .map(|seed| format!("{:?}", FaultPlan::generate(scenario, seed, config).faults))
            .collect();
        assert!(
            distinct.len() > 15,
            "{scenario:?}: only {} distinct plans",
            distinct.len()
        );
    }
}

#[test]
fn plans_are_ordered_and_end_healed() {
    for config in [
        PlanConfig::default(),
        PlanConfig {
            members: 5,
            ..PlanConfig::default()
        },
    ] {
        for plan in plans(config) {
            let times: Vec<SimTime> = plan.faults.iter().map(|f| f.at).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{plan:?}");
            let last = plan.faults.last().unwrap();
            assert_eq!((last.at, &last.action), (plan.heal_at, &Action::Heal));
            assert_eq!(plan.heal_at, SimTime(config.faulty_ms * 1_000_000));
            assert!(
                plan.faults.len() >= 2,
                "{:?} seed {}: no fault",
                plan.scenario,
                plan.seed
            );
        }
    }
}

/// Members down or cut off at once, counting `Master` as one more member (the worst case).
fn worst_unavailable(plan: &FaultPlan) -> usize {
    let mut isolated: BTreeSet<String> = BTreeSet::new();
    let mut crashed: BTreeSet<String> = BTreeSet::new();
    // Paused members and when they resume.
    let mut paused: Vec<(String, SimTime)> = Vec::new();
    let name = |t: &Target| format!("{t:?}");
    let mut worst = 0;
    for fault in &plan.faults {
        paused.retain(|(_, until)| *until > fault.at);
        match &fault.action {
            Action::PauseMember { member, ms } => {
                paused.push((name(member), fault.at.plus(ms * 1_000_000)));
            }
            Action::Isolate(side) => isolated.extend(side.iter().map(name)),
            Action::Crash(t) | Action::Wipe(t) => {
                crashed.insert(name(t));
            }
            Action::CellCrash => {
                crashed.insert("all".to_owned());
            }
            Action::HealNetwork => isolated.clear(),
            Action::RestartAll => crashed.clear(),
            Action::Heal => {
                isolated.clear();
                crashed.clear();
                paused.clear();
            }
            _ => {}
        }
        let mut down: BTreeSet<&String> = isolated.union(&crashed).collect();
        down.extend(paused.iter().map(|(m, _)| m));
        let count = if crashed.contains("all") {
            usize::MAX
        } else {
            down.len()
        };
        worst = worst.max(count);
    }
    worst
}

#[test]
fn scenarios_that_promise_a_majority_keep_one() {
    for members in [3u64, 5] {
        let config = PlanConfig {
            members,
            ..PlanConfig::default()
        };
        let minority = ((members - 1) / 2) as usize;
        for plan in plans(config) {
            let worst = worst_unavailable(&plan);
            if plan.scenario.may_lose_quorum() {
                assert!(
                    worst > minority,
                    "{:?} seed {} never loses quorum",
                    plan.scenario,
                    plan.seed
                );
            } else {
                assert!(
                    worst <= minority,
                    "{:?} seed {} takes {worst} of {members} members away",
                    plan.scenario,
                    plan.seed
                );
            }
        }
    }
}

#[test]
fn a_paused_client_is_paused_past_its_lease() {
    let config = PlanConfig::default();
    for seed in 0..SEEDS {
        let plan = FaultPlan::generate(Scenario::ClientPause, seed, config);
        let pauses: Vec<u64> = plan
            .faults
            .iter()
            .filter_map(|f| match f.action {
                Action::PauseClient { client, ms } => {
                    assert!((1..=config.clients).contains(&client.0));
                    Some(ms)
                }
                _ => None,
            })
            .collect();
        assert!(!pauses.is_empty());
        assert!(pauses.iter().all(|&ms| ms > config.lease_ms), "{pauses:?}");
    }
}

#[test]
fn a_drifting_master_runs_exactly_at_the_drift_bound() {
    let config = PlanConfig::default();
    for seed in 0..SEEDS {
        let plan = FaultPlan::generate(Scenario::MasterClockDrift, seed, config);
        for fault in &plan.faults {
            match fault.action {
                Action::ClockRate { member, ppm } => {
                    assert_eq!(member, Target::Master);
                    assert_eq!(ppm.unsigned_abs(), config.drift_ppm);
                }
                Action::Heal => {}
                ref other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn every_scenario_has_a_name_that_finds_it() {
    for scenario in Scenario::ALL {
        assert_eq!(Scenario::from_name(scenario.name()), Some(scenario));
    }
    assert_eq!(Scenario::from_name("nope"), None);
}
