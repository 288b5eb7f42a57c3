//! How long the checkers take on histories of the size a simulated run records.
//! `cargo bench -p sim-tests --bench checkers`

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sim_tests::check::{CheckConfig, check_all, check_linearizability};
use support::register::generate_sized;

fn linearizability(c: &mut Criterion) {
    let mut group = c.benchmark_group("linearizability");
    for (ops, clients) in [(100, 5), (1000, 5), (1000, 20), (5000, 10)] {
        let history = generate_sized(7, true, ops..ops + 1, 1..clients + 1).history;
        let config = CheckConfig::default();
        assert!(!check_linearizability(&history, &config).is_fail());
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{ops}ops-{clients}clients")),
            &history,
            |b, h| b.iter(|| check_linearizability(h, &config)),
        );
    }
    group.finish();
}

fn all_checks(c: &mut Criterion) {
    let history = generate_sized(7, true, 1000..1001, 1..6).history;
    let config = CheckConfig::default();
    c.bench_function("check_all/1000ops", |b| {
        b.iter(|| check_all(&history, &config))
    });
}

criterion_group!(benches, linearizability, all_checks);
criterion_main!(benches);
