//! Property tests of the wire format: round-trips, hostile input, signatures, bounds.

mod support;

use cldc::core::{Session, Time};
use cldc::proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::Duration;
use support::{handshaken, sender_for, test_keys};

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9/._-]{0,40}"
}

fn duration() -> impl Strategy<Value = Duration> {
    (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n))
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn lock_mode() -> impl Strategy<Value = LockMode> {
    prop_oneof![Just(LockMode::Shared), Just(LockMode::Exclusive)]
}

fn meta() -> impl Strategy<Value = NodeMeta> {
    (
        any::<[u64; 3]>(),
        duration(),
        duration(),
        any::<u32>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(n, created, modified, size, checksum, flags)| NodeMeta {
            instance: InstanceNumber(n[0]),
            content_generation: ContentGeneration(n[1]),
            lock_generation: LockGeneration(n[2]),
            created,
            modified,
            size,
            checksum,
            flags: NodeFlags(flags),
        })
}

fn sequencer() -> impl Strategy<Value = Sequencer> {
    (text(), lock_mode(), any::<u64>(), any::<u64>()).prop_map(|(path, mode, g, i)| Sequencer {
        path,
        mode,
        lock_generation: LockGeneration(g),
        instance: InstanceNumber(i),
    })
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..3000)
}

fn request() -> impl Strategy<Value = Request> {
    let h = || any::<u64>().prop_map(HandleId);
    prop_oneof![
        Just(Request::NewSession),
        Just(Request::EndSession),
        (text(), any::<u32>(), any::<u32>()).prop_map(|(path, m, e)| Request::Open {
            path,
            mode: OpenMode(m),
            events: EventMask(e)
        }),
        h().prop_map(|handle| Request::Close { handle }),
        h().prop_map(|handle| Request::GetContentsAndStat { handle }),
        text().prop_map(|path| Request::Stat { path }),
        text().prop_map(|path| Request::ListDir { path }),
        (h(), proptest::option::of(any::<u64>()), data()).prop_map(|(handle, cas, data)| {
            Request::Put {
                handle,
                cas: cas.map(ContentGeneration),
                data,
            }
        }),
        text().prop_map(|path| Request::Delete { path }),
        (h(), lock_mode(), any::<bool>()).prop_map(|(handle, mode, wait)| Request::Lock {
            handle,
            mode,
            wait
        }),
        h().prop_map(|handle| Request::Unlock { handle }),
        h().prop_map(|handle| Request::GetSequencer { handle }),
        sequencer().prop_map(|sequencer| Request::CheckSequencer { sequencer }),
        Just(Request::Status),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    let member = (
        any::<u64>(),
        addr(),
        any::<bool>(),
        any::<bool>(),
        any::<[u64; 2]>(),
    )
        .prop_map(|(id, addr, is_master, reachable, ix)| MemberStatus {
            id,
            addr,
            is_master,
            reachable,
            commit_index: ix[0],
            applied_index: ix[1],
        });
    prop_oneof![
        duration().prop_map(|lease| Reply::SessionCreated { lease }),
        Just(Reply::SessionEnded),
        (any::<u64>(), meta()).prop_map(|(h, meta)| Reply::Opened {
            handle: HandleId(h),
            meta
        }),
        Just(Reply::Closed),
        (meta(), data()).prop_map(|(meta, data)| Reply::Contents { meta, data }),
        meta().prop_map(|meta| Reply::Stat { meta }),
        vec(
            (text(), meta()).prop_map(|(name, meta)| DirEntry { name, meta }),
            0..20
        )
        .prop_map(|entries| Reply::Listing { entries }),
        meta().prop_map(|meta| Reply::Written { meta }),
        Just(Reply::Deleted),
        sequencer().prop_map(|sequencer| Reply::Locked { sequencer }),
        Just(Reply::LockQueued),
        Just(Reply::Unlocked),
        sequencer().prop_map(|sequencer| Reply::Sequencer { sequencer }),
        Just(Reply::SequencerValid),
        (
            any::<u64>(),
            vec(member, 0..5),
            any::<u64>(),
            any::<u64>(),
            vec(
                (text(), any::<u64>()).prop_map(|(name, value)| StatusCounter { name, value }),
                0..5
            ),
        )
            .prop_map(
                |(e, members, sessions, last, counters)| Reply::Status(CellStatus {
                    epoch: Epoch(e),
                    members,
                    sessions,
                    last_request: RequestSeq(last),
                    counters,
                })
            ),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        reply().prop_map(Response::Ok),
        any::<u16>().prop_map(|c| Response::Err(ErrorCode::from_code(c))),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let h = || any::<u64>().prop_map(HandleId);
    prop_oneof![
        (h(), any::<u64>()).prop_map(|(handle, g)| Event::ContentsModified {
            handle,
            generation: ContentGeneration(g)
        }),
        (h(), text()).prop_map(|(handle, name)| Event::ChildAdded { handle, name }),
        (h(), text()).prop_map(|(handle, name)| Event::ChildRemoved { handle, name }),
        h().prop_map(|handle| Event::NodeDeleted { handle }),
        (h(), sequencer())
            .prop_map(|(handle, sequencer)| Event::LockAcquired { handle, sequencer }),
        h().prop_map(|handle| Event::LockConflict { handle }),
        any::<u64>().prop_map(|e| Event::MasterFailover { epoch: Epoch(e) }),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    (1u8..=7).prop_map(|k| Kind::from_u8(k).expect("known kind"))
}

fn packet_meta() -> impl Strategy<Value = PacketMeta> {
    (kind(), any::<[u64; 3]>()).prop_map(|(kind, n)| PacketMeta {
        kind,
        session: SessionId(n[0]),
        msg_seq: n[1],
        ack: EventSeq(n[2]),
    })
}

/// Packetizes `body`, shuffles the datagrams, checks each and reassembles.
fn through_the_wire(meta: &PacketMeta, body: &[u8], max: usize, order: &[usize]) -> Vec<u8> {
    let keys = test_keys();
    let key = keys.sealing_key(&sender_for(meta.kind));
    let mut dgs = encode_message(meta, body, max, &key, &mut PacketSeq(1)).expect("encodes");
    let n = dgs.len();
    for (i, j) in order.iter().enumerate() {
        dgs.swap(i % n, j % n);
    }
    let mut r = Reassembler::new(ReassemblerLimits::default());
    let mut out = None;
    for dg in &dgs {
        assert!(dg.len() <= max);
        let p =
            open_packet(dg, max, |h| Some(keys.sealing_key(&h.sender))).expect("valid datagram");
        if let Reassembled::Complete(b) = r.push(&p.header, &p.payload).expect("fits") {
            out = Some(b);
        }
    }
    out.expect("message completes")
}

/// A session whose handshake is done (session 9, epoch 1), NewSession in flight, and its
/// keys.
fn fresh_session() -> (Session, SessionKeys) {
    let (s, server) = handshaken(1);
    (s, server.keys.expect("accepted"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_request_round_trips_through_fragments(
        req in request(), meta in packet_meta(), max in MIN_DATAGRAM..=1400usize,
        order in vec(any::<usize>(), 0..8),
    ) {
        let body = encode_body(&req).expect("encodes");
        let back = through_the_wire(&meta, &body, max, &order);
        prop_assert_eq!(decode_body::<Request>(&back).expect("decodes"), req);
    }

    #[test]
    fn every_response_round_trips(resp in response()) {
        let body = encode_body(&resp).expect("encodes");
        prop_assert_eq!(decode_body::<Response>(&body).expect("decodes"), resp);
    }

    #[test]
    fn every_event_and_small_body_round_trips(ev in event(), lease in duration(), hint in proptest::option::of(addr())) {
        prop_assert_eq!(decode_body::<Event>(&encode_body(&ev).expect("e")).expect("d"), ev);
        let ka = KeepAliveReply { lease };
        prop_assert_eq!(decode_body::<KeepAliveReply>(&encode_body(&ka).expect("e")).expect("d"), ka);
        let nm = NotMaster { hint };
        prop_assert_eq!(decode_body::<NotMaster>(&encode_body(&nm).expect("e")).expect("d"), nm);
    }

    #[test]
    fn headers_round_trip(
        meta in packet_meta(), seq in any::<u64>(), count in 1..=MAX_FRAGMENTS, idx in any::<u16>(),
        epoch in any::<u64>(), member in any::<u32>(), boot in any::<u32>(),
    ) {
        let sender = Sender { epoch: Epoch(epoch), member, boot, ..sender_for(meta.kind) };
        let h = Header {
            kind: meta.kind, session: meta.session, packet_seq: PacketSeq(seq),
            msg_seq: meta.msg_seq, ack: meta.ack, sender,
            frag_index: idx % count, frag_count: count,
            pad: if sender.role == Role::Client && meta.kind != Kind::HandshakeInit { (seq % 256) as u8 } else { 0 },
        };
        let mut b = [0u8; HEADER_LEN];
        h.write(&mut b);
        prop_assert_eq!(Header::read(&b), Ok(h));
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in vec(any::<u8>(), 0..2000)) {
        let keys = test_keys();
        let _ = open_packet(&bytes, 1400, |h| Some(keys.sealing_key(&h.sender)));
        let _ = HandshakeInit::parse(&bytes, 1400);
        let _ = parse_header(&bytes, 1400);
        let _ = decode_body::<Request>(&bytes);
        let _ = decode_body::<Response>(&bytes);
        let _ = decode_body::<Event>(&bytes);
        let _ = decode_body::<KeepAliveReply>(&bytes);
        let _ = decode_body::<NotMaster>(&bytes);
        let _ = VersionReject::decode(&bytes);
        if bytes.len() >= HEADER_LEN {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&bytes[..HEADER_LEN]);
            let _ = Header::read(&h);
        }
        let (mut session, _) = fresh_session();
        let before = session.counters().datagrams_in;
        session.handle_datagram(Time::default(), support::addr(1), &bytes);
        prop_assert_eq!(session.counters().datagrams_in, before + 1);
    }

    #[test]
    fn signed_garbage_bodies_are_dropped_and_counted(
        meta in packet_meta(), body in vec(any::<u8>(), 0..1200),
    ) {
        // Correctly sealed datagrams for this session with arbitrary contents.
        let meta = PacketMeta { session: SessionId(9), ..meta };
        let (mut session, keys) = fresh_session();
        let key = keys.sealing_key(&sender_for(meta.kind));
        for dg in encode_message(&meta, &body, 1400, &key, &mut PacketSeq(1)).expect("fits") {
            session.handle_datagram(Time::default(), support::addr(1), &dg);
        }
        while session.poll_output().is_some() {}
        let c = session.counters();
        prop_assert_eq!(c.bad_tag + c.unknown_session + c.bad_header, 0);
    }

    #[test]
    fn signed_datagrams_with_arbitrary_headers_never_panic_the_session(
        frames in vec((any::<[u8; HEADER_LEN]>(), vec(any::<u8>(), 0..300)), 1..40),
        kinds in vec(prop_oneof![2u8..=7, Just(11u8)], 40),
    ) {
        // Authentic (correctly sealed) datagrams for this session whose other header fields
        // (kind, packet seq, msg seq, ack, epoch, sender, fragment numbers) and body are
        // arbitrary, so that they get past the tag and reach the window, reassembly and
        // dispatch.
        let (mut session, keys) = fresh_session();
        let mut now = Time::default();
        for (i, (mut h, body)) in frames.into_iter().enumerate() {
            h[..4].copy_from_slice(&MAGIC);
            h[4] = VERSION;
            let kind = Kind::from_u8(kinds[i]).expect("known kind");
            h[5] = kind as u8;
            h[6] = sender_for(kind).role as u8;
            h[7] = 0;
            h[8..16].copy_from_slice(&9u64.to_le_bytes());
            // Small epochs, and small fragment numbers half the time, so that some
            // datagrams pass the epoch check and some messages complete.
            h[41..48].fill(0);
            h[40] %= 3;
            if i % 2 == 0 {
                h[57] = 0;
                h[59] = 0;
                h[58] = h[58] % 3 + 1;
                h[56] %= h[58];
            }
            let Ok(header) = Header::read(&h) else { continue };
            let dg = seal_datagram(&header, &body, &keys.sealing_key(&header.sender)).expect("seals");
            session.handle_datagram(now, support::addr(1 + (i % 3) as u16), &dg);
            now = now.plus(Duration::from_millis(100));
            session.poll_timeout(now);
            while session.poll_output().is_some() {}
        }
        let c = session.counters();
        prop_assert_eq!(c.bad_tag + c.unknown_session + c.bad_magic + c.bad_version, 0);
        prop_assert!(session.reassembly_bytes() <= 4 * MAX_MESSAGE);
    }

    #[test]
    fn replay_window_matches_a_model_of_seen_seqs(
        seqs in vec(prop_oneof![0u64..200, (u64::MAX - 200)..=u64::MAX], 0..300),
    ) {
        // Model: accept a non-zero seq never seen before that is at most 63 below the highest.
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        for s in seqs {
            let fresh = s != 0 && !seen.contains(&s) && s.saturating_add(63) >= highest;
            prop_assert_eq!(w.accept(PacketSeq(s)), fresh, "seq {}", s);
            if fresh {
                seen.insert(s);
                highest = highest.max(s);
            }
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_sealed_datagram_is_refused(
        req in request(), bit in any::<usize>(), kind in kind(),
    ) {
        let keys = test_keys();
        let body = encode_body(&req).expect("encodes");
        let meta = PacketMeta { kind, session: SessionId(1), msg_seq: 1, ack: EventSeq(0) };
        let key = keys.sealing_key(&sender_for(kind));
        let mut dg = encode_message(&meta, &body, 1400, &key, &mut PacketSeq(1)).expect("fits").remove(0);
        prop_assert!(open_packet(&dg, 1400, |h| Some(keys.sealing_key(&h.sender))).is_ok());
        let bit = bit % (dg.len() * 8);
        dg[bit / 8] ^= 1 << (bit % 8);
        // Whatever the receiver derives from the (possibly altered) header, it is refused.
        prop_assert!(open_packet(&dg, 1400, |h| Some(keys.sealing_key(&h.sender))).is_err());
    }

    #[test]
    fn reassembly_memory_stays_within_its_limits(
        frags in vec((0u64..8, any::<u16>(), 1u16..64, 0usize..1300), 0..400),
    ) {
        let limits = ReassemblerLimits { max_message: 20_000, max_partial: 3 };
        let mut r = Reassembler::new(limits);
        for (seq, idx, count, len) in frags {
            let h = Header {
                kind: Kind::Reply, session: SessionId(1), packet_seq: PacketSeq(1),
                msg_seq: seq, ack: EventSeq(0), sender: sender_for(Kind::Reply),
                frag_index: idx % count, frag_count: count, pad: 0,
            };
            if let Ok(Reassembled::Complete(b)) = r.push(&h, &vec![0u8; len]) {
                prop_assert!(b.len() <= limits.max_message);
            }
            prop_assert!(r.bytes_held() <= limits.max_partial * limits.max_message);
            prop_assert!(r.partial_count() <= limits.max_partial);
        }
    }
}

#[test]
fn error_codes_are_distinct_and_round_trip() {
    let mut seen = std::collections::BTreeSet::new();
    for code in ErrorCode::ALL {
        assert!(seen.insert(code.code()), "duplicate code {}", code.code());
        assert_eq!(ErrorCode::from_code(code.code()), *code);
        let body = encode_body(&Response::Err(*code)).expect("encodes");
        assert_eq!(decode_body::<Response>(&body), Ok(Response::Err(*code)));
    }
    assert_eq!(ErrorCode::from_code(999), ErrorCode::Unrecognized(999));
}

#[test]
fn trailing_bytes_after_a_body_are_refused() {
    let mut body = encode_body(&Request::Status).expect("encodes");
    body.push(0);
    assert_eq!(decode_body::<Request>(&body), Err(DecodeError::BadBody));
}

#[test]
fn version_reject_round_trips_and_is_not_a_packet() {
    let v = VersionReject { min: 2, max: 2 };
    let b = v.encode();
    assert_eq!(VersionReject::decode(&b), Some(v));
    assert_eq!(
        open_packet(&b, 1400, |_| None).err(),
        Some(DecodeError::BadVersion(0))
    );
}

#[test]
fn reassembler_refuses_headers_built_by_hand_with_impossible_fragment_numbers() {
    // Header::read never yields these, but Header has public fields and the server reuses
    // the Reassembler: it must refuse, not index out of bounds or allocate 65535 slots.
    let mut r = Reassembler::new(ReassemblerLimits::default());
    let h = |index: u16, count: u16| Header {
        kind: Kind::Request,
        session: SessionId(1),
        packet_seq: PacketSeq(1),
        msg_seq: 1,
        ack: EventSeq(0),
        sender: sender_for(Kind::Reply),
        frag_index: index,
        frag_count: count,
        pad: 0,
    };
    assert_eq!(r.push(&h(0, 3), b"a"), Ok(Reassembled::Incomplete));
    assert_eq!(r.push(&h(5, 3), b"b"), Err(ReassembleError::BadFragment));
    assert_eq!(r.push(&h(0, 0), b"c"), Err(ReassembleError::BadFragment));
    assert_eq!(
        r.push(&h(0, MAX_FRAGMENTS + 1), b"d"),
        Err(ReassembleError::BadFragment)
    );
    assert_eq!(r.partial_count(), 1);
}

#[test]
fn reassembly_limit_above_the_protocol_maximum_is_clamped_to_it() {
    let mut r = Reassembler::new(ReassemblerLimits {
        max_message: usize::MAX,
        max_partial: 1,
    });
    let h = |index: u16| Header {
        kind: Kind::Reply,
        session: SessionId(1),
        packet_seq: PacketSeq(1),
        msg_seq: 1,
        ack: EventSeq(0),
        sender: sender_for(Kind::Reply),
        frag_index: index,
        frag_count: MAX_FRAGMENTS,
        pad: 0,
    };
    let chunk = vec![0u8; 1324];
    let mut refused = false;
    for i in 0..MAX_FRAGMENTS {
        match r.push(&h(i), &chunk) {
            Err(ReassembleError::TooLarge) => {
                refused = true;
                break;
            }
            other => assert_eq!(other, Ok(Reassembled::Incomplete)),
        }
        assert!(r.bytes_held() <= MAX_MESSAGE);
    }
    assert!(
        refused,
        "a message above MAX_MESSAGE is refused whatever the configuration"
    );
}
