//! Hot paths of the wire protocol: encoding and sealing, opening and reassembling messages,
//! and the handshake (docs/performance.md, cldc rows).

use cldc::proto::{
    CellKeys, CellPrivateKey, ClientHandshake, Epoch, EventSeq, HandleId, HandshakeInit,
    HandshakeOutcome, Kind, PacketMeta, PacketSeq, Reassembled, Reassembler, ReassemblerLimits,
    Request, Role, Secret, Sender, SessionId, SessionKeys, UserName, encode_body, encode_message,
    open_packet, parse_header, respond,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn meta() -> PacketMeta {
    PacketMeta {
        kind: Kind::Request,
        session: SessionId(7),
        msg_seq: 1,
        ack: EventSeq(0),
    }
}

fn user() -> UserName {
    UserName::new("bench").expect("valid name")
}

fn secret() -> Secret {
    Secret::new(b"bench-secret-bench-secret-bench-secret").expect("valid secret")
}

fn cell() -> CellPrivateKey {
    CellPrivateKey::from_bytes([0x42; 32])
}

fn accepted() -> HandshakeOutcome {
    HandshakeOutcome::Accepted {
        session: SessionId(7),
        epoch: Epoch(1),
    }
}

fn master() -> Sender {
    Sender {
        role: Role::Master,
        epoch: Epoch(1),
        member: 1,
        boot: 1,
    }
}

/// The keys of one real handshake.
fn keys() -> SessionKeys {
    let hs = ClientHandshake::new(user(), &secret(), cell().public(), [3; 32]);
    let init = HandshakeInit::parse(&hs.init_datagram().expect("init"), 1400).expect("parses");
    let (_, keys) = respond(
        &CellKeys::new(cell(), None),
        &init,
        &secret(),
        &accepted(),
        master(),
        [4; 32],
    )
    .expect("handshake");
    keys.expect("accepted")
}

fn bench_small_request(c: &mut Criterion) {
    let keys = keys();
    let key = keys.sealing_key(&Sender::client(Epoch(1)));
    let req = Request::GetContentsAndStat {
        handle: HandleId(3),
    };
    c.bench_function("encode+seal small request", |b| {
        b.iter(|| {
            let body = encode_body(black_box(&req)).expect("encodes");
            let mut seq = PacketSeq(1);
            encode_message(&meta(), &body, 1400, &key, &mut seq).expect("fits")
        })
    });
    let body = encode_body(&req).expect("encodes");
    let dgs = encode_message(&meta(), &body, 1400, &key, &mut PacketSeq(1)).expect("fits");
    c.bench_function("open+parse small datagram (cached key)", |b| {
        b.iter(|| open_packet(black_box(&dgs[0]), 1400, |_| Some(key.clone())).expect("valid"))
    });
    c.bench_function("open+parse small datagram (key derived)", |b| {
        b.iter(|| {
            open_packet(black_box(&dgs[0]), 1400, |h| {
                Some(keys.sealing_key(&h.sender))
            })
            .expect("valid")
        })
    });
}

fn bench_large_put(c: &mut Criterion) {
    let keys = keys();
    let key = keys.sealing_key(&Sender::client(Epoch(1)));
    let req = Request::Put {
        handle: HandleId(3),
        cas: None,
        data: vec![7u8; 128 * 1024],
    };
    let body = encode_body(&req).expect("encodes");
    let dgs = encode_message(&meta(), &body, 1400, &key, &mut PacketSeq(1)).expect("fits");
    c.bench_function("encode+seal 128 KiB put", |b| {
        b.iter(|| encode_message(&meta(), black_box(&body), 1400, &key, &mut PacketSeq(1)))
    });
    c.bench_function("open+reassemble 128 KiB put", |b| {
        b.iter(|| {
            let mut r = Reassembler::new(ReassemblerLimits::default());
            let mut out = None;
            for dg in &dgs {
                let p = open_packet(dg, 1400, |_| Some(key.clone())).expect("valid");
                if let Ok(Reassembled::Complete(b)) = r.push(&p.header, &p.payload) {
                    out = Some(b);
                }
            }
            out
        })
    });
}

fn bench_handshake(c: &mut Criterion) {
    let cell_keys = CellKeys::new(cell(), None);
    let hs = ClientHandshake::new(user(), &secret(), cell().public(), [3; 32]);
    let init_dg = hs.init_datagram().expect("init");
    let init = HandshakeInit::parse(&init_dg, 1400).expect("parses");
    c.bench_function("handshake: client init", |b| {
        b.iter(|| {
            ClientHandshake::new(user(), &secret(), cell().public(), [3; 32])
                .init_datagram()
                .expect("init")
        })
    });
    c.bench_function("handshake: cell answer (respond)", |b| {
        b.iter(|| {
            respond(
                &cell_keys,
                black_box(&init),
                &secret(),
                &accepted(),
                master(),
                [4; 32],
            )
            .expect("answers")
        })
    });
    let (reply, _) =
        respond(&cell_keys, &init, &secret(), &accepted(), master(), [4; 32]).expect("answers");
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    c.bench_function("handshake: client reads the reply", |b| {
        b.iter(|| hs.read_reply(&h, black_box(body)).expect("reads"))
    });
}

/// v1's cost in the same run: the HMAC-SHA256 tag (keyed by the secret) over the same
/// datagram sizes, computed and checked, without v2's encryption.
fn bench_v1_baseline(c: &mut Criterion) {
    use hmac::{Hmac, Mac};
    type HmacSha256 = Hmac<sha2::Sha256>;
    let secret = b"bench-secret-bench-secret-bench-secret";
    let tag = |data: &[u8]| {
        let mut m = <HmacSha256 as Mac>::new_from_slice(secret).expect("any key length");
        m.update(data);
        m.finalize().into_bytes()
    };
    let small = vec![1u8; 84 + 3];
    c.bench_function("v1 baseline: hmac sign+verify small datagram", |b| {
        b.iter(|| {
            let t = tag(black_box(&small));
            tag(black_box(&small)) == t
        })
    });
    let big: Vec<Vec<u8>> = (0..103).map(|_| vec![7u8; 1400 - 32]).collect();
    c.bench_function(
        "v1 baseline: hmac sign+verify 103 datagrams (128 KiB put)",
        |b| {
            b.iter(|| {
                big.iter().all(|d| {
                    let t = tag(black_box(d));
                    tag(black_box(d)) == t
                })
            })
        },
    );
}

criterion_group!(
    benches,
    bench_small_request,
    bench_large_put,
    bench_handshake,
    bench_v1_baseline
);
criterion_main!(benches);
