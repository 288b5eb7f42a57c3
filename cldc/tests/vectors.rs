//! The test vectors of docs/protocol.md §16, byte for byte. If one of these fails, either
//! the code or the spec changed the wire format: fix whichever is wrong.

mod support;

use cldc::proto::*;
use sha2::{Digest, Sha256};

const SESSION: SessionId = SessionId(0x0102030405060708);

const INIT: &str = "434c44720208000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000100616c6963650000000000000000000000000000000000000000000000000000007880961439a7d453000000000000000000000000000000007b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13126af78785ec6ba81ea223a1e376b375";
const REPLY: &str = "434c447202090200080706050403020100000000000000000000000000000000000000000000000001000000000000000200000003000000000001000faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20fa90b44f11d2899ce47dee8b8f52dcfbb2d96f5c9d0ec83886b387064be0129ebbfa04437c14bb31";
const RECORD: &str = "a0827c1942fc6ce2182153f2390a7f7bc1d3a348ddbb263427a34d44b29e966b66a9963c0a84fdb228e6f4c03d6624550a0fb9b757518e262f799b7e98ad7acd";
const NEW_SESSION: &str = "434c447202010017080706050403020101000000000000000100000000000000000000000000000001000000000000000000000000000000000001003c9c4713afb204950ffb90f9cf850e3f9cc91b8d9f37ade57ffc86b9cbb33dae82ffdf312913ea5f";
const EVENT: &str = "434c447202050100080706050403020101000000000000000100000000000000000000000000000001000000000000000200000003000000000001005bb5d93d16eae9c1f82d08d5eb1d74a04253bb";
const NOT_MASTER: &str = "434c44720207020008070605040302010100000000000000040000000000000000000000000000000100000000000000020000000300000000000100ef5a605e8a311d5acba702009806d7f1886297125aebfb00";
const ERROR_REPLY: &str = "434c447202020100080706050403020101000000000000000200000000000000000000000000000001000000000000000200000003000000000001005ab68ae759ce797ee79ea6aec71135f26713";
const FRAGMENTS: [(usize, &str, &str); 2] = [
    (
        588,
        "434c44720201000008070605040302010100000000000000030000000000000000000000000000000100000000000000000000000000000000000200",
        "af7303ce7d028e30024bb3b427bfe32edd8da3da153844ec56f1713dc8ebf1a0",
    ),
    (
        169,
        "434c44720201000008070605040302010200000000000000030000000000000000000000000000000100000000000000000000000000000001000200",
        "ed79037a85883e23b119f22bc26491756c41f8a8924dbeb7ce495bafdfc06c55",
    ),
];
const PSK: &str = "8a790157a8fe9a909802e700814fac915faab734e21d669dbe32da3a294ebd49";
const CELL_PUBLIC: &str = "EyxEK+AQ+9V+cmAzKKp25x/MwVA6riGTJ9FNnJmT9HI=";
const CELL_KEY_ID: &str = "7880961439a7d453";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn user() -> UserName {
    UserName::new("alice").expect("valid")
}

/// The spec's secret: the 32 ASCII bytes "alice's secret is 32 bytes long!".
fn secret() -> Secret {
    Secret::new(b"alice's secret is 32 bytes long!").expect("valid")
}

fn cell() -> CellPrivateKey {
    CellPrivateKey::from_bytes([0x42; 32])
}

fn master() -> Sender {
    Sender {
        role: Role::Master,
        epoch: Epoch(1),
        member: 2,
        boot: 3,
    }
}

struct Vectors {
    init: Vec<u8>,
    reply: Vec<u8>,
    keys: SessionKeys,
}

fn handshake() -> Vectors {
    let hs = ClientHandshake::new(user(), &secret(), cell().public(), [0x11; 32]);
    let init = hs.init_datagram().expect("init");
    let parsed = HandshakeInit::parse(&init, 1400).expect("parses");
    let outcome = HandshakeOutcome::Accepted {
        session: SESSION,
        epoch: Epoch(1),
    };
    let keys_cell = CellKeys::new(cell(), None);
    let (reply, keys) = respond(
        &keys_cell,
        &parsed,
        &secret(),
        &outcome,
        master(),
        [0x22; 32],
    )
    .expect("answers");
    let keys = keys.expect("accepted");
    let (h, body) = parse_header(&reply, 1400).expect("parses");
    let (got, client_keys) = hs.read_reply(&h, body).expect("reads");
    assert_eq!(got, outcome);
    assert!(client_keys.expect("keys") == keys, "both ends agree");
    Vectors { init, reply, keys }
}

fn sealed(
    keys: &SessionKeys,
    sender: Sender,
    kind: Kind,
    msg_seq: u64,
    body: &[u8],
    max: usize,
) -> Vec<Vec<u8>> {
    let meta = PacketMeta {
        kind,
        session: SESSION,
        msg_seq,
        ack: EventSeq(0),
    };
    encode_message(
        &meta,
        body,
        max,
        &keys.sealing_key(&sender),
        &mut PacketSeq(1),
    )
    .expect("encodes")
}

#[test]
fn the_handshake_vectors_hold() {
    let v = handshake();
    assert_eq!(cell().public().to_base64(), CELL_PUBLIC);
    assert_eq!(hex(&cell().public().key_id()), CELL_KEY_ID);
    assert_eq!(hex(secret().psk(&user()).as_ref()), PSK);
    assert_eq!(hex(&v.init), INIT);
    assert_eq!(hex(&v.reply), REPLY);
    assert_eq!(
        hex(&postcard::to_allocvec(&v.keys).expect("encodes")),
        RECORD
    );
}

#[test]
fn the_sealed_datagram_vectors_hold() {
    let v = handshake();
    let client = Sender::client(Epoch(1));
    let body = encode_body(&Request::NewSession).expect("encodes");
    assert_eq!(
        hex(&sealed(&v.keys, client, Kind::Request, 1, &body, 1400)[0]),
        NEW_SESSION
    );
    let ev = Event::ContentsModified {
        handle: HandleId(5),
        generation: ContentGeneration(9),
    };
    let body = encode_body(&ev).expect("encodes");
    assert_eq!(
        hex(&sealed(&v.keys, master(), Kind::Event, 1, &body, 1400)[0]),
        EVENT
    );
    let nm = NotMaster {
        hint: Some("10.0.0.2:8081".parse().expect("addr")),
    };
    let stateless = Sender {
        role: Role::Stateless,
        ..master()
    };
    let body = encode_body(&nm).expect("encodes");
    assert_eq!(
        hex(&sealed(&v.keys, stateless, Kind::NotMaster, 4, &body, 1400)[0]),
        NOT_MASTER
    );
    let body = encode_body(&Response::Err(ErrorCode::NoSuchNode)).expect("encodes");
    assert_eq!(
        hex(&sealed(&v.keys, master(), Kind::Reply, 2, &body, 1400)[0]),
        ERROR_REPLY
    );
    let put = Request::Put {
        handle: HandleId(5),
        cas: None,
        data: vec![0xab; 600],
    };
    let body = encode_body(&put).expect("encodes");
    let frags = sealed(&v.keys, client, Kind::Request, 3, &body, MIN_DATAGRAM);
    assert_eq!(frags.len(), 2);
    for (d, (len, header, digest)) in frags.iter().zip(FRAGMENTS) {
        assert_eq!(
            (d.len(), hex(&d[..HEADER_LEN]), hex(&Sha256::digest(d))),
            (len, header.to_string(), digest.to_string())
        );
    }
    // And each opens back with the keys of the other end.
    for dg in [&frags[0], &frags[1]] {
        assert!(open_packet(dg, 1400, |h| Some(v.keys.sealing_key(&h.sender))).is_ok());
    }
}

/// Prints every vector (run with `--nocapture` to regenerate the spec's §16).
#[test]
fn print_vectors() {
    let v = handshake();
    println!("cell public key: {}", cell().public().to_base64());
    println!("cell key id: {}", hex(&cell().public().key_id()));
    println!("psk: {}", hex(secret().psk(&user()).as_ref()));
    println!("init: {}", hex(&v.init));
    println!("reply: {}", hex(&v.reply));
    println!(
        "record: {}",
        hex(&postcard::to_allocvec(&v.keys).expect("enc"))
    );
    let client = Sender::client(Epoch(1));
    let ns = sealed(
        &v.keys,
        client,
        Kind::Request,
        1,
        &encode_body(&Request::NewSession).expect("e"),
        1400,
    );
    println!("newsession: {}", hex(&ns[0]));
    let ev = Event::ContentsModified {
        handle: HandleId(5),
        generation: ContentGeneration(9),
    };
    let e = sealed(
        &v.keys,
        master(),
        Kind::Event,
        1,
        &encode_body(&ev).expect("e"),
        1400,
    );
    println!("event: {}", hex(&e[0]));
    let nm = NotMaster {
        hint: Some("10.0.0.2:8081".parse().expect("addr")),
    };
    let stateless = Sender {
        role: Role::Stateless,
        ..master()
    };
    let n = sealed(
        &v.keys,
        stateless,
        Kind::NotMaster,
        4,
        &encode_body(&nm).expect("e"),
        1400,
    );
    println!("notmaster: {}", hex(&n[0]));
    let r = sealed(
        &v.keys,
        master(),
        Kind::Reply,
        2,
        &encode_body(&Response::Err(ErrorCode::NoSuchNode)).expect("e"),
        1400,
    );
    println!("error: {}", hex(&r[0]));
    let put = Request::Put {
        handle: HandleId(5),
        cas: None,
        data: vec![0xab; 600],
    };
    let f = sealed(
        &v.keys,
        client,
        Kind::Request,
        3,
        &encode_body(&put).expect("e"),
        MIN_DATAGRAM,
    );
    for d in &f {
        println!(
            "frag len {} header {} sha256 {}",
            d.len(),
            hex(&d[..HEADER_LEN]),
            hex(&Sha256::digest(d))
        );
    }
}

#[test]
fn over_long_varints_decode_to_their_value_and_overflowing_ones_are_refused() {
    // docs/protocol.md §4.1: senders write minimal varints; a receiver takes an over-long
    // one for its value (nothing compares body bytes), and refuses one that overflows.
    assert_eq!(decode_body::<u64>(&[0x80, 0x00]), Ok(0));
    assert_eq!(decode_body::<u64>(&[0x00]), Ok(0));
    assert_eq!(
        decode_body::<u32>(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
        Err(DecodeError::BadBody)
    );
    assert_eq!(encode_body(&300u64).expect("encodes"), vec![0xac, 0x02]);
}
