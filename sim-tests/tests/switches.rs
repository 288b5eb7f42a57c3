//! Each test-only bug, switched on, is caught by the matching checker within a few seeds
//! (issue 12, "prove the checkers bite"). The seed that catches it is printed with its time.

use std::time::Instant;

use sim_tests::Check;
use sim_tests::cell::{RunConfig, Switches, run};
use sim_tests::faults::Scenario;

/// Runs `scenarios` from seed 1 with `switches` on until `check` fails; returns the seed.
fn caught_by(switches: Switches, scenarios: &[Scenario], check: Check, max_seeds: u64) -> u64 {
    let started = Instant::now();
    for seed in 1..=max_seeds {
        for &scenario in scenarios {
            let mut config = RunConfig::new(scenario, seed);
            config.switches = switches;
            let outcome = run(&config);
            let failed: Vec<Check> = outcome
                .report
                .verdicts
                .iter()
                .filter(|(_, v)| v.is_fail())
                .map(|(c, _)| *c)
                .collect();
            if failed.contains(&check) {
                // The control: the same seed without the switch passes that check, so the
                // switch (not some other bug) is what the check caught.
                let mut control = config.clone();
                control.switches = Switches::default();
                let clean = run(&control);
                assert!(
                    clean.report.verdict(check).is_some_and(|v| !v.is_fail()),
                    "{} seed {seed} fails {check} without the switch too:\n{}",
                    scenario.name(),
                    clean.report
                );
                eprintln!(
                    "{switches:?}: {check} caught it at {} seed {seed} after {:.1} s (all failing: {failed:?})",
                    scenario.name(),
                    started.elapsed().as_secs_f64()
                );
                return seed;
            }
        }
    }
    panic!("{switches:?} not caught by {check} in {max_seeds} seeds of {scenarios:?}");
}

#[test]
fn a_client_that_ignores_its_lease_is_caught_by_lock_safety() {
    let switches = Switches {
        client_ignores_lease: true,
        ..Switches::default()
    };
    caught_by(
        switches,
        &[Scenario::ClientPause, Scenario::MasterIsolated],
        Check::LockSafety,
        30,
    );
}

#[test]
fn acknowledging_before_the_fsync_is_caught_by_durability() {
    let switches = Switches {
        ack_before_sync: true,
        ..Switches::default()
    };
    caught_by(switches, &[Scenario::CellRestart], Check::Durability, 30);
}

#[test]
fn reads_without_a_lease_are_caught_by_linearizability() {
    let mut switches = Switches::default();
    switches.server.read_without_lease = true;
    caught_by(
        switches,
        &[Scenario::MasterIsolated],
        Check::Linearizability,
        120,
    );
}

#[test]
fn keepalives_answered_by_a_deposed_master_are_caught_by_lock_safety() {
    let mut switches = Switches::default();
    switches.server.keepalive_without_lease = true;
    caught_by(switches, &[Scenario::MasterIsolated], Check::LockSafety, 60);
}

#[test]
fn expiring_sessions_early_is_caught_by_lock_safety() {
    let mut switches = Switches::default();
    switches.server.early_expiry = true;
    caught_by(
        switches,
        &[Scenario::ClientPause, Scenario::MasterIsolated],
        Check::LockSafety,
        30,
    );
}
