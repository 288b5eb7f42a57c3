//! Random register histories generated from the sequential model: linearizable by
//! construction.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sim_tests::history::{History, Op, OpResult};

use super::*;

#[derive(Clone, Debug)]
enum State {
    Absent,
    Present(String, u64),
}

pub struct Generated {
    pub history: History,
}

/// A random history whose every op takes effect (or, if unknown, maybe not) at a
/// linearization point inside its interval, so it is linearizable by construction.
pub fn generate(seed: u64, deletes: bool) -> Generated {
    generate_sized(seed, deletes, 5..60, 1..6)
}

/// As [`generate`], with `ops` operations by `clients` clients.
pub fn generate_sized(
    seed: u64,
    deletes: bool,
    ops: core::ops::Range<usize>,
    clients: core::ops::Range<u32>,
) -> Generated {
    let mut rng = StdRng::seed_from_u64(seed);
    let paths = ["/a", "/b", "/c"];
    let n_paths = rng.random_range(1..=paths.len());
    let n_ops = rng.random_range(ops);
    let mut states = vec![State::Absent; n_paths];
    let mut b = Builder::new();
    let mut t = 40u64;
    let mut written = 0;
    for _ in 0..n_ops {
        let p = rng.random_range(0..n_paths);
        let path = paths[p];
        let lin = t;
        t += rng.random_range(1..8);
        let invoke = lin.saturating_sub(rng.random_range(0..30));
        let complete = lin + rng.random_range(0..30);
        let client = rng.random_range(clients.clone());
        let roll = rng.random_range(0..100);
        let state = states[p].clone();
        let (op, mut result, after) = match state {
            State::Absent if roll < 70 || !deletes && roll < 90 => {
                let excl = rng.random_bool(0.5);
                let op = if excl { create_excl() } else { create() };
                (op, created(0), State::Present(String::new(), 0))
            }
            State::Absent if roll < 90 => {
                if rng.random_bool(0.5) {
                    (get(), absent(), State::Absent)
                } else {
                    (put("x"), absent(), State::Absent)
                }
            }
            State::Absent => (delete(), absent(), State::Absent),
            State::Present(data, g) => {
                written += 1;
                let value = format!("v{written}");
                if roll < 30 {
                    (get(), read(&data, g), State::Present(data, g))
                } else if roll < 55 {
                    (
                        put(&value),
                        self::written(g + 1),
                        State::Present(value, g + 1),
                    )
                } else if roll < 70 {
                    (
                        put_if(&value, g),
                        self::written(g + 1),
                        State::Present(value, g + 1),
                    )
                } else if roll < 80 {
                    let stale = g + rng.random_range(1..3);
                    (put_if(&value, stale), stale_cas(), State::Present(data, g))
                } else if roll < 88 && deletes {
                    (delete(), ok(), State::Absent)
                } else if roll < 94 {
                    (create_excl(), exists(), State::Present(data, g))
                } else {
                    (create(), created(g), State::Present(data, g))
                }
            }
        };
        let mut after = Some(after);
        let mutating = !matches!(op, Op::Get {}) && matches!(result, OpResult::Ok(_));
        let fate = rng.random_range(0..100);
        if mutating && fate < 12 {
            // The client never learns; half the time the op never took effect.
            result = unknown();
            if fate < 6 {
                after = None;
            }
        } else if fate >= 96 {
            result = refused();
            after = None;
        } else if matches!(op, Op::Get {}) && fate < 4 {
            result = unknown();
        }
        if let Some(after) = after {
            states[p] = after;
        }
        let unknown_op = result == OpResult::Unknown;
        let id = b.op(client, path, op, invoke, complete, result);
        if unknown_op && rng.random_bool(0.5) {
            // Known to have taken effect (if at all) by `complete`, as when its session ended.
            b.bound(id, complete);
        }
    }
    // Final reads, after everything settled.
    t += 100;
    for (p, state) in states.iter().enumerate() {
        let result = match state {
            State::Absent => absent(),
            State::Present(data, g) => read(data, *g),
        };
        b.op(9, paths[p], get(), t, t + 1, result);
    }
    Generated { history: b.build() }
}
