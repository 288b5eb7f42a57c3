//! The data dir remembers its cell, member and format, and refuses to be used by another.

mod common;

use cld_server::datadir::{DataDir, DataDirError, FORMAT, IDENTITY_FILE, MemberState};
use common::TempDir;
use libpaxos::NodeId;

#[test]
fn first_start_records_the_identity_and_later_starts_check_it() {
    let tmp = TempDir::new("dd-identity");
    let dir = tmp.path().join("m1");
    let dd = DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    assert!(dd.created());
    assert_eq!(dd.identity().state, MemberState::Fresh);
    assert_eq!(dd.identity().format, FORMAT);
    drop(dd);
    let mut dd = DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    assert!(!dd.created());
    dd.set_state(MemberState::Voter).unwrap();
    let dd = DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    assert_eq!(dd.identity().state, MemberState::Voter, "state is durable");

    let err = DataDir::open(&dir, "prod", NodeId(2)).unwrap_err();
    assert!(matches!(
        err,
        DataDirError::OtherMember {
            found: 1,
            expected: 2,
            ..
        }
    ));
    assert!(err.to_string().contains("belongs to member 1"), "{err}");
    let err = DataDir::open(&dir, "test", NodeId(1)).unwrap_err();
    assert!(matches!(err, DataDirError::OtherCell { .. }));
    assert!(
        err.to_string().contains("belongs to cell \"prod\""),
        "{err}"
    );
}

#[test]
fn unknown_formats_damaged_files_and_foreign_dirs_are_refused() {
    let tmp = TempDir::new("dd-format");
    let dir = tmp.path().join("m1");
    DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    let file = dir.join(IDENTITY_FILE);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("format = 1", "format = 7\nnew_key = 1")).unwrap();
    let err = DataDir::open(&dir, "prod", NodeId(1)).unwrap_err();
    assert!(
        matches!(err, DataDirError::UnknownFormat { found: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("format version 7 is unknown"));
    std::fs::write(&file, "format = 1\ncell = [").unwrap();
    let err = DataDir::open(&dir, "prod", NodeId(1)).unwrap_err();
    assert!(matches!(err, DataDirError::Damaged { .. }), "{err}");

    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("something")).unwrap();
    let err = DataDir::open(&other, "prod", NodeId(1)).unwrap_err();
    assert!(matches!(err, DataDirError::Foreign { .. }), "{err}");
    let err = DataDir::check(&other, "prod", NodeId(1)).unwrap_err();
    assert!(matches!(err, DataDirError::Foreign { .. }), "{err}");
}

#[test]
fn the_boot_number_rises_at_every_start_and_refuses_to_wrap() {
    let tmp = TempDir::new("dd-boot");
    let dir = tmp.path().join("m1");
    let mut dd = DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    assert_eq!(dd.next_boot().unwrap(), 1);
    drop(dd);
    let mut dd = DataDir::open(&dir, "prod", NodeId(1)).unwrap();
    assert_eq!(dd.next_boot().unwrap(), 2, "durable across opens");
    std::fs::write(dir.join(cld_server::datadir::BOOT_FILE), "4294967295\n").unwrap();
    let err = dd.next_boot().unwrap_err();
    assert!(matches!(
        err,
        DataDirError::BootExhausted { boot: u32::MAX, .. }
    ));
    assert!(err.to_string().contains("wrap"), "{err}");
    std::fs::write(dir.join(cld_server::datadir::BOOT_FILE), "seven\n").unwrap();
    assert!(matches!(
        dd.next_boot().unwrap_err(),
        DataDirError::BadBoot { .. }
    ));
}

#[test]
fn a_new_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("dd-private");
    let path = tmp.path().join("data");
    cld_server::datadir::DataDir::open(&path, "c", libpaxos::NodeId(1)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
