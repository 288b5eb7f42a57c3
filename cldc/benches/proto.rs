//! Hot paths of the wire protocol: encoding, signing, checking and reassembling messages.

use cldc::proto::{
    Epoch, EventSeq, HandleId, Kind, PacketMeta, PacketSeq, Reassembled, Reassembler,
    ReassemblerLimits, Request, Secret, SessionId, UserName, encode_body, encode_message,
    open_packet,
};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn meta() -> PacketMeta {
    PacketMeta {
        kind: Kind::Request,
        session: SessionId(7),
        user: UserName::new("bench").expect("valid name"),
        msg_seq: 1,
        ack: EventSeq(0),
        epoch: Epoch(1),
    }
}

fn bench_small_request(c: &mut Criterion) {
    let secret = Secret::new(b"bench-secret").expect("valid secret");
    let req = Request::GetContentsAndStat {
        handle: HandleId(3),
    };
    c.bench_function("encode+sign small request", |b| {
        b.iter(|| {
            let body = encode_body(black_box(&req)).expect("encodes");
            let mut seq = PacketSeq(1);
            encode_message(&meta(), &body, 1400, &secret, &mut seq).expect("fits")
        })
    });
    let body = encode_body(&req).expect("encodes");
    let dgs = encode_message(&meta(), &body, 1400, &secret, &mut PacketSeq(1)).expect("fits");
    c.bench_function("check+parse small datagram", |b| {
        b.iter(|| open_packet(black_box(&dgs[0]), 1400, |_| Some(&secret)).expect("valid"))
    });
}

fn bench_large_put(c: &mut Criterion) {
    let secret = Secret::new(b"bench-secret").expect("valid secret");
    let req = Request::Put {
        handle: HandleId(3),
        cas: None,
        data: vec![7u8; 128 * 1024],
    };
    let body = encode_body(&req).expect("encodes");
    let dgs = encode_message(&meta(), &body, 1400, &secret, &mut PacketSeq(1)).expect("fits");
    c.bench_function("encode+sign 128 KiB put", |b| {
        b.iter(|| encode_message(&meta(), black_box(&body), 1400, &secret, &mut PacketSeq(1)))
    });
    c.bench_function("check+reassemble 128 KiB put", |b| {
        b.iter(|| {
            let mut r = Reassembler::new(ReassemblerLimits::default());
            let mut out = None;
            for dg in &dgs {
                let p = open_packet(dg, 1400, |_| Some(&secret)).expect("valid");
                if let Ok(Reassembled::Complete(b)) = r.push(&p.header, p.payload) {
                    out = Some(b);
                }
            }
            out
        })
    });
}

criterion_group!(benches, bench_small_request, bench_large_put);
criterion_main!(benches);
