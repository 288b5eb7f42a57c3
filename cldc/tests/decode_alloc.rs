//! Decoders allocate in proportion to their input, never from a length prefix, and datagrams
//! that do not authenticate cost a bounded, temporary allocation: measured with a counting
//! global allocator. One test in this binary, so nothing else allocates meanwhile.

mod support;

use cldc::core::Time;
use cldc::proto::{
    DirEntry, Event, NodeMeta, Reply, Request, Responder, ResponderLimits, Response, decode_body,
    encode_body,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Extra bytes a decode may allocate beyond what it keeps: a small constant plus a
/// fixed multiple of the input (vectors grow by doubling; a decoded value is bigger
/// in memory than on the wire, e.g. a `DirEntry` is ~100 bytes and may encode in ~12).
fn budget(input: usize) -> usize {
    4096 + 24 * input
}

fn peak_while(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

fn decode_all(bytes: &[u8]) {
    let _ = decode_body::<Request>(bytes);
    let _ = decode_body::<Response>(bytes);
    let _ = decode_body::<Event>(bytes);
}

#[test]
fn decoders_allocate_in_proportion_to_their_input() {
    // A body that claims a 4 GiB byte string and a billion directory entries.
    let huge_bytes = [7u8, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let huge_list = [0u8, 6, 0xff, 0xff, 0xff, 0xff, 0x03];
    // A listing that claims as many entries as it has bytes (postcard then trusts the
    // length as a capacity hint) but holds far fewer.
    let mut dense_claim = vec![0u8, 6, 0xd0, 0x0f]; // varint 2000
    dense_claim.extend(std::iter::repeat_n(0u8, 2000));
    for hostile in [&huge_bytes[..], &huge_list[..], &dense_claim[..]] {
        let peak = peak_while(|| decode_all(hostile));
        assert!(
            peak <= budget(hostile.len()),
            "peak {peak} for {} bytes",
            hostile.len()
        );
    }
    // Arbitrary bodies up to a full datagram and beyond.
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..4000), |bytes| {
            let peak = peak_while(|| decode_all(&bytes));
            prop_assert!(
                peak <= budget(bytes.len()),
                "peak {} for {} bytes",
                peak,
                bytes.len()
            );
            Ok(())
        })
        .expect("every input decodes within budget");
    // A legitimate, dense listing stays within the same budget.
    let meta = NodeMeta::default_for_tests();
    let entries: Vec<DirEntry> = (0..500)
        .map(|i| DirEntry {
            name: format!("n{i}"),
            meta: meta.clone(),
        })
        .collect();
    let body = encode_body(&Response::Ok(Reply::Listing { entries })).expect("encodes");
    let peak = peak_while(|| {
        let _ = decode_body::<Response>(&body);
    });
    assert!(
        peak <= budget(body.len()),
        "peak {peak} for {} bytes",
        body.len()
    );

    // Whole datagrams that do not authenticate: the receive paths of both ends allocate at
    // most a copy of the datagram while checking it, and keep nothing (no reassembly
    // memory before authentication, docs/protocol.md §8).
    let (session, server) = support::handshaken(1);
    let responder = Responder::new(support::cell_keys(), [1; 32], ResponderLimits::default());
    let (session, responder) = (RefCell::new(session), RefCell::new(responder));
    let me = server.master();
    // A sealed datagram of the session, to mutate: its header gets past every cheap check.
    let mut server = server;
    let template = server.reply(2, &Response::Ok(Reply::Deleted)).remove(0);
    let init = {
        let hs = cldc::proto::ClientHandshake::new(
            support::user(),
            &support::secret(),
            support::cell_key(),
            [3; 32],
        );
        hs.init_datagram().expect("init")
    };
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..1500),
                any::<usize>(),
                0u8..3,
            ),
            |(bytes, at, shape)| {
                // Raw bytes, a sealed datagram with a corrupted byte, or an init with one.
                let dg = match shape {
                    0 => bytes,
                    1 => {
                        let mut d = template.clone();
                        let i = at % d.len();
                        d[i] ^= 0x5a;
                        d
                    }
                    _ => {
                        let mut d = init.clone();
                        let i = at % d.len();
                        d[i] ^= 0x5a;
                        d
                    }
                };
                let base = CURRENT.load(Ordering::SeqCst);
                let mut session = session.borrow_mut();
                let mut responder = responder.borrow_mut();
                let peak = peak_while(|| {
                    session.handle_datagram(Time::default(), support::addr(1), &dg);
                    let _ = responder.check_init(
                        std::time::Duration::ZERO,
                        support::addr(9),
                        &dg,
                        1400,
                        me,
                    );
                });
                prop_assert!(
                    peak <= 4096 + 2 * dg.len(),
                    "peak {} for {} bytes",
                    peak,
                    dg.len()
                );
                prop_assert_eq!(session.reassembly_bytes(), 0);
                prop_assert!(CURRENT.load(Ordering::SeqCst) <= base + 256, "memory kept");
                Ok(())
            },
        )
        .expect("unauthenticated datagrams cost a bounded, temporary allocation");
}

trait TestMeta {
    fn default_for_tests() -> NodeMeta;
}

impl TestMeta for NodeMeta {
    fn default_for_tests() -> NodeMeta {
        NodeMeta {
            instance: cldc::proto::InstanceNumber(0),
            content_generation: cldc::proto::ContentGeneration(0),
            lock_generation: cldc::proto::LockGeneration(0),
            created: std::time::Duration::ZERO,
            modified: std::time::Duration::ZERO,
            size: 0,
            checksum: 0,
            flags: cldc::proto::NodeFlags::NONE,
        }
    }
}
