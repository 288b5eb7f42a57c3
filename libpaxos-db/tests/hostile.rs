//! Hostile input: damaged snapshot files and arbitrary command or record bytes give errors,
//! never panics or silent acceptance.

mod common;

use std::sync::OnceLock;

use common::{CREATE_RW, TempDir};
use libpaxos_db::{ClientOp, Command, EventMask};
use proptest::prelude::*;

/// A valid snapshot file's bytes (a few files, a session, a handle, a lock).
fn valid_snapshot() -> &'static Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = TempDir::new("hostile-src");
        let (mut db, _) =
            libpaxos_db::Database::open(libpaxos_db::DbConfig::new(dir.path())).expect("open");
        let h = libpaxos_db::HandleId(1);
        let mut slot = 0;
        for seq in 1..=5u64 {
            slot += 1;
            let op = match seq {
                1 => ClientOp::NewSession {
                    user: "u".into(),
                    lease: std::time::Duration::from_secs(1),
                    keys: vec![7; 64],
                },
                2 => ClientOp::Open {
                    path: "/a".into(),
                    mode: CREATE_RW | libpaxos_db::OpenMode::LOCK,
                    events: EventMask::NONE,
                },
                3 => ClientOp::Put {
                    handle: h,
                    data: b"contents".to_vec(),
                    cas: None,
                },
                4 => ClientOp::Lock {
                    handle: h,
                    mode: libpaxos_db::LockMode::Exclusive,
                    wait: false,
                },
                _ => ClientOp::Open {
                    path: "/b".into(),
                    mode: CREATE_RW,
                    events: EventMask::NONE,
                },
            };
            let command = Command::Client(libpaxos_db::ClientRequest {
                session: libpaxos_db::SessionId(1),
                seq: libpaxos_db::RequestSeq(seq),
                time: libpaxos_db::WallTime(seq),
                op,
            });
            db.apply(&common::committed(slot, 0, &command))
                .expect("apply");
        }
        let info = db.take_snapshot().expect("snapshot");
        std::fs::read(&info.path).expect("read snapshot")
    })
}

fn verify_bytes(bytes: &[u8]) -> Result<libpaxos_db::SnapshotInfo, libpaxos_db::DbError> {
    let dir = TempDir::new("hostile");
    let path = dir.path().join("snapshot-00000000000000000005.cld");
    std::fs::write(&path, bytes).expect("write");
    libpaxos_db::snapshot::verify(&path)
}

#[test]
fn the_valid_snapshot_verifies() {
    assert!(verify_bytes(valid_snapshot()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_changed_byte_is_refused(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut bytes = valid_snapshot().clone();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(verify_bytes(&bytes).is_err());
    }

    #[test]
    fn any_truncation_is_refused(at in any::<prop::sample::Index>()) {
        let bytes = valid_snapshot();
        let cut = at.index(bytes.len());
        prop_assert!(verify_bytes(&bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_are_refused(tail in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut bytes = valid_snapshot()[..28].to_vec();
        bytes.extend_from_slice(&tail);
        prop_assert!(verify_bytes(&bytes).is_err());
    }

    #[test]
    fn arbitrary_command_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::decode(&bytes);
        let _ = libpaxos_db::codec::decode::<libpaxos_db::Node>(&bytes);
    }
}
