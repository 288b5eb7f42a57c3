//! Drives a simulated 5-replica cell through a partition, a master crash and a heal, and
//! prints what was chosen, who led when, and whether every replica's log agrees.
//!
//! Run: `cargo run --release -p libpaxos --example cluster [seed]`

use std::time::Duration;

use libpaxos::sim::{Cluster, SimConfig};
use libpaxos::{Payload, Slot, Storage};

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let mut config = SimConfig::new(5, seed);
    config.network.loss = 0.01;
    config.network.duplicate = 0.01;
    let mut cell = Cluster::new(config);
    println!(
        "a simulated cell of 5 replicas (seed {seed}), 150 proposals/s, 1% loss and duplication"
    );

    cell.run_for(Duration::from_secs(1));
    let first = report(&cell, "after 1 s");

    let Some(master) = first else {
        eprintln!("no master was elected in the first second");
        std::process::exit(1);
    };
    let buddy = (master + 1) % 5;
    let majority: Vec<usize> = (0..5).filter(|&i| i != master && i != buddy).collect();
    println!(
        "\n-- cutting the master n{} and n{} off from the other three --",
        master + 1,
        buddy + 1
    );
    cell.partition(&[master, buddy], &majority);
    cell.run_for(Duration::from_secs(2));
    let second = report(&cell, "2 s into the partition");

    if let Some(new_master) = second {
        println!("\n-- crashing the new master n{} --", new_master + 1);
        cell.crash(new_master, Duration::from_secs(60));
        cell.run_for(Duration::from_secs(2));
        report(&cell, "2 s after the crash");
        println!(
            "(four replicas are up, but split two and two: no side is a majority, so no master)"
        );
    }

    println!("\n-- healing: every replica up, every link restored --");
    cell.heal_all();
    cell.run_for(Duration::from_secs(3));
    report(&cell, "3 s after the heal");

    println!("\nwho led when:");
    for (at, node, round) in &cell.leadership {
        println!(
            "  t={:>6.3}s  {node} became master (ballot round {round})",
            at.as_secs_f64()
        );
    }
    println!("\n{}", cell.summary());
    let chosen = &cell.checker.chosen;
    let commands = chosen
        .values()
        .filter(|v| matches!(v.payload, Payload::Command(_)))
        .count();
    println!(
        "chosen: {} slots ({} commands, {} no-ops); {} writes acknowledged to the client",
        chosen.len(),
        commands,
        chosen.len() - commands,
        cell.acked
    );
    let agree = logs_agree(&cell);
    if let Some(violation) = cell.violation() {
        println!("INVARIANT VIOLATED: {violation}");
        std::process::exit(1);
    }
    if !agree {
        std::process::exit(1);
    }
    println!("every invariant held at every simulated millisecond; every replica's log agrees");
}

/// Prints each replica's role and commit index; returns the master's index, if any.
fn report(cell: &Cluster, when: &str) -> Option<usize> {
    println!("{when} (t={:.3}s):", cell.now.as_secs_f64());
    for (i, node) in cell.nodes.iter().enumerate() {
        match cell.replica(i) {
            Some(r) => println!(
                "  {}  {:<12} commit {:>5}  applied {:>5}",
                node.id,
                role_name(r.role()),
                r.commit().0,
                node.applied.0
            ),
            None => println!("  {}  down", node.id),
        }
    }
    cell.master()
}

fn role_name(role: libpaxos::Role) -> String {
    match role {
        libpaxos::Role::Follower { master: Some(m) } => format!("follows {m}"),
        libpaxos::Role::Follower { master: None } => "follower".into(),
        libpaxos::Role::Candidate { .. } => "candidate".into(),
        libpaxos::Role::Recovering { .. } => "recovering".into(),
        libpaxos::Role::Master { .. } => "MASTER".into(),
    }
}

/// Every live replica's log, from its compaction point through what it applied, holds the
/// values applied everywhere (slots committed but not yet applied are still in flight).
fn logs_agree(cell: &Cluster) -> bool {
    let mut ok = true;
    for (i, node) in cell.nodes.iter().enumerate() {
        let Some(r) = cell.replica(i) else { continue };
        let storage = r.storage();
        let from = storage.compacted_through().unwrap_or(Slot::ZERO).next();
        let mut checked = 0;
        let mut slot = from;
        while slot <= node.applied.min(r.commit()) {
            let held = storage.entry(slot).ok().flatten().map(|e| e.value);
            if held.as_ref() != cell.checker.chosen.get(&slot) {
                println!("{} disagrees at slot {slot}", node.id);
                ok = false;
            }
            checked += 1;
            slot = slot.next();
        }
        println!(
            "  {} log checked: {checked} applied slots above its snapshot at {} match the chosen values",
            node.id,
            from.prev().0
        );
    }
    ok
}
