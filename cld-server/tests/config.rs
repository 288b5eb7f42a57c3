//! cell.toml: every bad value is refused with a message naming its key.

mod common;

use std::path::Path;
use std::time::Duration;

use cld_server::config::{CellConfig, ConfigError, TimingOverrides};
use common::{SECRET, TempDir, write_file};

const MEMBERS: &str = r#"
[[member]]
id = 1
client = "127.0.0.1:8081"
peer = "127.0.0.1:8082"
[[member]]
id = 2
client = "[::1]:8081"
peer = "[::1]:8082"
[[member]]
id = 3
client = "10.0.0.3:8081"
peer = "10.0.0.3:8082"
"#;

fn cell(extra: &str) -> String {
    format!("[cell]\nname = \"prod\"\nsecret = \"{SECRET}\"\n{extra}\n{MEMBERS}")
}

fn load(dir: &Path, text: &str) -> Result<CellConfig, ConfigError> {
    let path = write_file(dir, "cell.toml", text, 0o600);
    CellConfig::load(&path, &TimingOverrides::default())
}

fn error(dir: &Path, text: &str) -> String {
    load(dir, text)
        .expect_err("config must be refused")
        .to_string()
}

#[test]
fn a_good_config_loads_with_defaults_and_mixed_families() {
    let dir = TempDir::new("cfg-good");
    let config = load(dir.path(), &cell("")).unwrap();
    assert_eq!(config.name, "prod");
    assert_eq!(config.members.len(), 3);
    assert!(config.members[1].peer.is_ipv6());
    assert!(config.members[0].peer.is_ipv4());
    assert_eq!(config.timing.session_lease, Duration::from_secs(12));
    assert_eq!(config.timing.paxos_lease, Duration::from_millis(400));
    assert_eq!(config.timing.heartbeat, Duration::from_millis(100));
    assert!(
        !format!("{config:?}").contains(SECRET),
        "Debug prints no secret"
    );
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    let dir = TempDir::new("cfg-unknown");
    let msg = error(dir.path(), &cell("colour = \"red\""));
    assert!(msg.contains("colour"), "{msg}");
    let msg = error(
        dir.path(),
        &format!("{}\n[timing]\nheartbeat = 5\n", cell("")),
    );
    assert!(msg.contains("heartbeat"), "{msg}");
    let msg = error(dir.path(), &format!("{}\n[bogus]\n", cell("")));
    assert!(msg.contains("bogus"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn bad_values_are_refused_naming_the_key() {
    let dir = TempDir::new("cfg-bad");
    let cases: &[(&str, &str)] = &[
        (
            &cell("").replace("127.0.0.1:8082", "127.0.0.1"),
            "member[0].peer",
        ),
        (&cell("").replace("id = 3", "id = 2"), "member"),
        (&cell("").replace("id = 3", "id = 0"), "id 0"),
        (
            &cell("").replace("name = \"prod\"", "name = \"a b\""),
            "cell.name",
        ),
        (
            &cell("").replace(SECRET, "short"),
            "cell.secret: secret is 5 characters",
        ),
        (
            &format!("{}\n[timing]\nheartbeat_ms = 500\n", cell("")),
            "timing.heartbeat_ms",
        ),
        (
            &format!("{}\n[timing]\nsession_lease_ms = 10\n", cell("")),
            "timing.session_lease_ms",
        ),
        (
            &format!("{}\n[timing]\nsnapshot_every = 0\n", cell("")),
            "timing.snapshot_every",
        ),
        (
            &format!("{}\n[[user]]\nname = \"app\"\nsecret = \"x\"\n", cell("")),
            "user[0].secret",
        ),
        (
            &format!(
                "{}\n[[user]]\nname = \"app\"\nsecret = \"{SECRET}\"\n[[user]]\nname = \"app\"\nsecret = \"{SECRET}\"\n",
                cell("")
            ),
            "user[1].name",
        ),
        (
            &cell("secret_file = \"s\""),
            "cell.secret and cell.secret_file",
        ),
        ("[cell]\nname = \"x\"\n", "cell.secret: missing"),
        (
            &format!("[cell]\nname = \"x\"\nsecret = \"{SECRET}\"\n"),
            "0 members",
        ),
        (
            &cell("").replace("10.0.0.3:8082", "127.0.0.1:8082"),
            "member[2].peer: 127.0.0.1:8082 is already used",
        ),
    ];
    for (text, want) in cases {
        let msg = error(dir.path(), text);
        assert!(msg.contains(want), "wanted {want:?} in {msg:?}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn secret_files_must_be_private_and_long_enough() {
    let dir = TempDir::new("cfg-secret");
    let text = format!(
        "[cell]\nname = \"prod\"\nsecret_file = \"cell.secret\"\n{MEMBERS}\n[[user]]\nname = \"app\"\nsecret_file = \"app.secret\"\n"
    );
    write_file(dir.path(), "cell.secret", &format!("{SECRET}\n"), 0o600);
    write_file(dir.path(), "app.secret", SECRET, 0o644);
    let msg = error(dir.path(), &text);
    assert!(
        msg.contains("user[0].secret_file") && msg.contains("644"),
        "{msg}"
    );
    write_file(dir.path(), "app.secret", SECRET, 0o600);
    let config = load(dir.path(), &text).unwrap();
    assert_eq!(config.secret.expose(), SECRET.as_bytes(), "newline trimmed");
    assert_eq!(config.users[0].name, "app");
    write_file(dir.path(), "cell.secret", "too short\n", 0o600);
    let msg = error(dir.path(), &text);
    assert!(msg.contains("cell.secret_file"), "{msg}");
}

#[test]
fn a_users_file_adds_users() {
    let dir = TempDir::new("cfg-users");
    write_file(
        dir.path(),
        "users.toml",
        &format!("[[user]]\nname = \"ops\"\nsecret = \"{SECRET}\"\n"),
        0o600,
    );
    let config = load(dir.path(), &cell("users_file = \"users.toml\"")).unwrap();
    assert_eq!(config.users.len(), 1);
    write_file(dir.path(), "users.toml", "[[user]]\nnme = \"ops\"\n", 0o600);
    let msg = error(dir.path(), &cell("users_file = \"users.toml\""));
    assert!(msg.contains("nme"), "{msg}");
}

#[test]
fn flags_override_the_file_and_are_validated_too() {
    let dir = TempDir::new("cfg-flags");
    let path = write_file(
        dir.path(),
        "cell.toml",
        &format!("{}\n[timing]\npaxos_lease_ms = 1000\n", cell("")),
        0o600,
    );
    let overrides = TimingOverrides {
        paxos_lease: Some(Duration::from_millis(200)),
        session_lease: Some(Duration::from_secs(5)),
        ..TimingOverrides::default()
    };
    let config = CellConfig::load(&path, &overrides).unwrap();
    assert_eq!(config.timing.paxos_lease, Duration::from_millis(200));
    assert_eq!(config.timing.heartbeat, Duration::from_millis(50));
    assert_eq!(config.timing.session_lease, Duration::from_secs(5));
    let bad = TimingOverrides {
        heartbeat: Some(Duration::from_secs(2)),
        ..TimingOverrides::default()
    };
    let msg = CellConfig::load(&path, &bad).unwrap_err().to_string();
    assert!(msg.contains("timing.heartbeat_ms"), "{msg}");
    assert!(matches!(
        CellConfig::load(&path, &TimingOverrides::default())
            .unwrap()
            .member(libpaxos::NodeId(9)),
        Err(ConfigError::NotAMember(9))
    ));
}

#[test]
fn the_disk_reserve_defaults_to_64_mib_and_is_bounded() {
    let dir = TempDir::new("cfg-reserve");
    assert_eq!(load(dir.path(), &cell("")).unwrap().disk_reserve, 64 << 20);
    let config = load(dir.path(), &cell("disk_reserve_mb = 0")).unwrap();
    assert_eq!(config.disk_reserve, 0, "0 turns the check off");
    let config = load(dir.path(), &cell("disk_reserve_mb = 512")).unwrap();
    assert_eq!(config.disk_reserve, 512 << 20);
    let err = error(dir.path(), &cell("disk_reserve_mb = 2000000"));
    assert!(err.contains("cell.disk_reserve_mb"), "{err}");
    let err = error(dir.path(), &cell("disk_reserve_mb = -1"));
    assert!(err.contains("line 4"), "the line is named: {err}");
}

#[test]
fn sessions_per_user_defaults_to_64_and_is_bounded() {
    let dir = TempDir::new("cfg-per-user");
    assert_eq!(load(dir.path(), &cell("")).unwrap().sessions_per_user, 64);
    let config = load(dir.path(), &cell("sessions_per_user = 20000")).unwrap();
    assert_eq!(config.sessions_per_user, 20000);
    for bad in ["sessions_per_user = 0", "sessions_per_user = 100001"] {
        let err = error(dir.path(), &cell(bad));
        assert!(err.contains("cell.sessions_per_user"), "{bad}: {err}");
    }
}
