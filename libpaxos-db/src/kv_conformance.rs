//! The conformance suite every [`KvStore`] must pass (sled's and the in-memory one).
//!
//! Implement [`Harness`] for an engine (how to make a fresh store, crash one, reopen one) and
//! call [`run_all`] from a test. Each check panics naming the rule that was broken.

use std::ops::Bound;

use crate::kv::{KvStore, WriteBatch};

/// How the suite makes, crashes and reopens stores of one engine.
pub trait Harness {
    /// The engine under test.
    type Store: KvStore;
    /// A new, empty store.
    fn fresh(&mut self) -> Self::Store;
    /// A power cut: whatever was not synced may be lost (whole batches, a prefix of them in
    /// commit order). Returns the store as found after restarting.
    fn crash(&mut self, store: Self::Store) -> Self::Store;
    /// Closes the store cleanly and opens it again.
    fn reopen(&mut self, store: Self::Store) -> Self::Store;
}

/// Runs every check.
pub fn run_all<H: Harness>(harness: &mut H) {
    a_new_store_is_empty(harness);
    reads_see_commits_before_sync(harness);
    a_batch_applies_in_order(harness);
    ranges_are_ordered_bounded_and_limited(harness);
    last_is_the_highest_key(harness);
    tree_names_list_the_non_empty_trees_in_order(harness);
    trees_are_independent(harness);
    drop_trees_removes_whole_trees(harness);
    synced_writes_survive_a_crash(harness);
    a_batch_is_atomic_across_a_crash(harness);
    batches_survive_a_crash_in_commit_order(harness);
    reopen_keeps_everything_synced(harness);
    values_of_any_size_round_trip(harness);
}

fn key(i: u64) -> Vec<u8> {
    i.to_be_bytes().to_vec()
}

fn one(tree: &str, k: u64, value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.insert(tree, key(k), value);
    batch
}

fn keys<S: KvStore>(store: &S, tree: &str) -> Vec<Vec<u8>> {
    store
        .range(tree, Bound::Unbounded, Bound::Unbounded, usize::MAX)
        .expect("range")
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// A fresh store has no trees and no keys.
pub fn a_new_store_is_empty<H: Harness>(h: &mut H) {
    let s = h.fresh();
    assert!(
        s.tree_names().expect("names").is_empty(),
        "new store has trees"
    );
    assert_eq!(s.get("t", b"k").expect("get"), None, "new store has a key");
    assert_eq!(s.last("t").expect("last"), None, "new store has a last key");
    assert!(keys(&s, "t").is_empty(), "new store ranges over keys");
    s.commit(&WriteBatch::new())
        .expect("an empty batch commits");
    s.sync().expect("sync");
}

/// A committed batch is readable at once, before any sync.
pub fn reads_see_commits_before_sync<H: Harness>(h: &mut H) {
    let s = h.fresh();
    s.commit(&one("t", 1, b"a")).expect("commit");
    assert_eq!(
        s.get("t", &key(1)).expect("get"),
        Some(b"a".to_vec()),
        "read own write"
    );
    s.commit(&one("t", 1, b"b")).expect("commit");
    assert_eq!(
        s.get("t", &key(1)).expect("get"),
        Some(b"b".to_vec()),
        "insert replaces"
    );
}

/// Writes of one batch apply in order: later ones win, a dropped tree loses what came before.
pub fn a_batch_applies_in_order<H: Harness>(h: &mut H) {
    let s = h.fresh();
    s.commit(&one("t", 9, b"old")).expect("commit");
    let mut batch = WriteBatch::new();
    batch.insert("t", key(1), b"x".as_slice());
    batch.remove("t", key(1));
    batch.insert("t", key(2), b"y".as_slice());
    batch.insert("t", key(2), b"z".as_slice());
    batch.remove("t", key(3));
    s.commit(&batch).expect("commit");
    assert_eq!(
        s.get("t", &key(1)).expect("get"),
        None,
        "remove after insert"
    );
    assert_eq!(
        s.get("t", &key(2)).expect("get"),
        Some(b"z".to_vec()),
        "last insert wins"
    );
    let mut batch = WriteBatch::new();
    batch.insert("t", key(4), b"w".as_slice());
    batch.drop_tree("t");
    batch.insert("t", key(5), b"v".as_slice());
    s.commit(&batch).expect("commit");
    assert_eq!(
        keys(&s, "t"),
        vec![key(5)],
        "drop_tree removes what was before it"
    );
}

/// Ranges come in key order, honour each kind of bound and the limit, and are empty when
/// inverted.
pub fn ranges_are_ordered_bounded_and_limited<H: Harness>(h: &mut H) {
    let s = h.fresh();
    let mut batch = WriteBatch::new();
    for i in [5u64, 1, 9, 3, 7] {
        batch.insert("t", key(i), vec![i as u8]);
    }
    s.commit(&batch).expect("commit");
    let got = |from: Bound<&[u8]>, to: Bound<&[u8]>, limit: usize| -> Vec<u8> {
        s.range("t", from, to, limit)
            .expect("range")
            .into_iter()
            .map(|(_, v)| v[0])
            .collect()
    };
    let (k3, k7) = (key(3), key(7));
    use Bound::{Excluded, Included, Unbounded};
    assert_eq!(got(Unbounded, Unbounded, 100), [1, 3, 5, 7, 9], "order");
    assert_eq!(
        got(Included(&k3), Included(&k7), 100),
        [3, 5, 7],
        "inclusive"
    );
    assert_eq!(got(Excluded(&k3), Excluded(&k7), 100), [5], "exclusive");
    assert_eq!(got(Included(&k3), Unbounded, 2), [3, 5], "limit");
    assert_eq!(got(Unbounded, Excluded(&k3), 100), [1], "upper bound");
    assert_eq!(
        got(Included(&k7), Included(&k3), 100),
        [] as [u8; 0],
        "inverted"
    );
    assert_eq!(
        got(Excluded(&k7), Excluded(&k7), 100),
        [] as [u8; 0],
        "empty"
    );
    assert_eq!(got(Unbounded, Unbounded, 0), [] as [u8; 0], "limit 0");
}

/// `last` is the pair with the highest key.
pub fn last_is_the_highest_key<H: Harness>(h: &mut H) {
    let s = h.fresh();
    let mut batch = WriteBatch::new();
    for i in [2u64, 8, 4] {
        batch.insert("t", key(i), vec![i as u8]);
    }
    s.commit(&batch).expect("commit");
    assert_eq!(s.last("t").expect("last"), Some((key(8), vec![8])), "last");
    let mut batch = WriteBatch::new();
    batch.remove("t", key(8));
    s.commit(&batch).expect("commit");
    assert_eq!(
        s.last("t").expect("last"),
        Some((key(4), vec![4])),
        "last after remove"
    );
}

/// Trees appear with their first key and go with their last.
pub fn tree_names_list_the_non_empty_trees_in_order<H: Harness>(h: &mut H) {
    let s = h.fresh();
    s.commit(&one("b", 1, b"x")).expect("commit");
    s.commit(&one("a", 1, b"x")).expect("commit");
    s.get("c", &key(1))
        .expect("reading a tree does not create it");
    assert_eq!(s.tree_names().expect("names"), ["a", "b"], "names in order");
    let mut batch = WriteBatch::new();
    batch.remove("b", key(1));
    s.commit(&batch).expect("commit");
    assert_eq!(
        s.tree_names().expect("names"),
        ["a"],
        "an emptied tree is gone"
    );
    let mut batch = WriteBatch::new();
    batch.drop_tree("a");
    s.commit(&batch).expect("commit");
    assert!(
        s.tree_names().expect("names").is_empty(),
        "a dropped tree is gone"
    );
}

/// The same key in two trees is two keys.
pub fn trees_are_independent<H: Harness>(h: &mut H) {
    let s = h.fresh();
    let mut batch = WriteBatch::new();
    batch.insert("a", key(1), b"in a".as_slice());
    batch.insert("b", key(1), b"in b".as_slice());
    s.commit(&batch).expect("commit");
    let mut batch = WriteBatch::new();
    batch.drop_tree("a");
    s.commit(&batch).expect("commit");
    assert_eq!(
        s.get("b", &key(1)).expect("get"),
        Some(b"in b".to_vec()),
        "other tree kept"
    );
}

/// `drop_trees` removes the named trees and nothing else.
pub fn drop_trees_removes_whole_trees<H: Harness>(h: &mut H) {
    let s = h.fresh();
    let mut batch = WriteBatch::new();
    for tree in ["a", "b", "c"] {
        batch.insert(tree, key(1), b"x".as_slice());
        batch.insert(tree, key(2), b"y".as_slice());
    }
    s.commit(&batch).expect("commit");
    s.drop_trees(&["a".to_owned(), "c".to_owned(), "never".to_owned()])
        .expect("drop_trees");
    assert_eq!(
        s.tree_names().expect("names"),
        ["b"],
        "drop_trees left trees"
    );
    assert_eq!(keys(&s, "b").len(), 2, "drop_trees touched another tree");
    s.commit(&one("a", 3, b"z"))
        .expect("a dropped tree can be written again");
    assert_eq!(keys(&s, "a"), vec![key(3)]);
}

/// Whatever was synced is there after a crash.
pub fn synced_writes_survive_a_crash<H: Harness>(h: &mut H) {
    let s = h.fresh();
    s.commit(&one("t", 1, b"a")).expect("commit");
    s.commit(&one("u", 2, b"b")).expect("commit");
    s.sync().expect("sync");
    let s = h.crash(s);
    assert_eq!(
        s.get("t", &key(1)).expect("get"),
        Some(b"a".to_vec()),
        "synced write lost"
    );
    assert_eq!(
        s.get("u", &key(2)).expect("get"),
        Some(b"b".to_vec()),
        "synced write lost"
    );
}

/// A crash keeps a batch whole or not at all.
pub fn a_batch_is_atomic_across_a_crash<H: Harness>(h: &mut H) {
    for attempt in 0..3 {
        let s = h.fresh();
        s.commit(&one("t", 0, b"base")).expect("commit");
        s.sync().expect("sync");
        let mut batch = WriteBatch::new();
        for i in 1..=20u64 {
            batch.insert(if i % 2 == 0 { "t" } else { "u" }, key(i), vec![i as u8]);
        }
        batch.remove("t", key(0));
        s.commit(&batch).expect("commit");
        let s = h.crash(s);
        let t = keys(&s, "t");
        let u = keys(&s, "u");
        let whole = t.len() == 10 && u.len() == 10;
        let none = t == [key(0)] && u.is_empty();
        assert!(
            whole || none,
            "attempt {attempt}: a batch survived in part: t {t:?} u {u:?}"
        );
    }
}

/// After a crash, a batch survives only with every batch committed before it.
pub fn batches_survive_a_crash_in_commit_order<H: Harness>(h: &mut H) {
    for attempt in 0..4 {
        let s = h.fresh();
        for i in 1..=5u64 {
            s.commit(&one("t", i, b"x")).expect("commit");
        }
        let s = h.crash(s);
        let got = keys(&s, "t");
        let prefix: Vec<Vec<u8>> = (1..=got.len() as u64).map(key).collect();
        assert_eq!(
            got, prefix,
            "attempt {attempt}: not a prefix of the commits"
        );
    }
}

/// A clean close and reopen keeps what was synced.
pub fn reopen_keeps_everything_synced<H: Harness>(h: &mut H) {
    let s = h.fresh();
    s.commit(&one("t", 1, b"a")).expect("commit");
    s.sync().expect("sync");
    let s = h.reopen(s);
    assert_eq!(
        s.get("t", &key(1)).expect("get"),
        Some(b"a".to_vec()),
        "reopen lost a write"
    );
    assert_eq!(
        s.tree_names().expect("names"),
        ["t"],
        "reopen changed the trees"
    );
}

/// Values of every size (around 2 KiB, the sled engine's chunk size, and far above sled's blob
/// threshold) read back whole through `get`, `range` and `last`, across overwrites by smaller
/// and larger values, removals, a tree drop inside a batch, and a crash after the sync.
pub fn values_of_any_size_round_trip<H: Harness>(h: &mut H) {
    const SIZES: [usize; 8] = [0, 1, 2047, 2048, 2049, 6145, 200_000, 600_000];
    let value = |size: usize, salt: u8| -> Vec<u8> {
        (0..size)
            .map(|b| (b as u8).wrapping_mul(13).wrapping_add(salt))
            .collect()
    };
    let n = SIZES.len();
    let s = h.fresh();
    for (round, salt) in [(0usize, 1u8), (3, 2), (5, 3)] {
        let mut batch = WriteBatch::new();
        for k in 0..n {
            batch.insert("big", key(k as u64), value(SIZES[(k + round) % n], salt));
        }
        s.commit(&batch).expect("commit");
        for k in 0..n {
            assert_eq!(
                s.get("big", &key(k as u64)).expect("get"),
                Some(value(SIZES[(k + round) % n], salt)),
                "value {k} (round {round}) did not read back whole"
            );
        }
        let all = s
            .range("big", Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .expect("range");
        let want: Vec<_> = (0..n)
            .map(|k| (key(k as u64), value(SIZES[(k + round) % n], salt)))
            .collect();
        assert!(all == want, "range over large values (round {round})");
        let keys_only = s
            .range_keys("big", Bound::Excluded(&key(1)), Bound::Unbounded, 3)
            .expect("range_keys");
        assert_eq!(keys_only, vec![key(2), key(3), key(4)], "range_keys");
        assert!(
            s.last("big").expect("last") == want.last().cloned(),
            "last over large values"
        );
    }
    // Removing large values (and a key written twice in one batch) leaves nothing behind.
    let mut batch = WriteBatch::new();
    batch.remove("big", key(6));
    batch.insert("big", key(7), value(300_000, 9));
    batch.insert("big", key(7), value(10, 9));
    s.commit(&batch).expect("commit");
    assert_eq!(s.get("big", &key(6)).expect("get"), None, "removed");
    assert_eq!(s.get("big", &key(7)).expect("get"), Some(value(10, 9)));
    s.sync().expect("sync");
    let s = h.crash(s);
    assert_eq!(
        keys(&s, "big").len(),
        n - 1,
        "synced large values survive a crash"
    );
    assert_eq!(
        s.get("big", &key(5)).expect("get"),
        Some(value(SIZES[(5 + 5) % n], 3))
    );
    // A tree dropped in a batch after a large insert: empty, and writable again.
    let mut batch = WriteBatch::new();
    batch.insert("big", key(99), value(100_000, 4));
    batch.drop_tree("big");
    batch.insert("big", key(1), value(5000, 5));
    s.commit(&batch).expect("commit");
    assert_eq!(keys(&s, "big"), vec![key(1)], "drop_tree in a batch");
    assert_eq!(s.get("big", &key(1)).expect("get"), Some(value(5000, 5)));
    s.drop_trees(&["big".to_owned()]).expect("drop_trees");
    assert!(s.tree_names().expect("names").is_empty(), "dropped");
    s.commit(&one("big", 2, &value(4100, 6))).expect("commit");
    assert_eq!(s.get("big", &key(2)).expect("get"), Some(value(4100, 6)));
}
