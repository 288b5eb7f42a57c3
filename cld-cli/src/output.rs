//! How results look: text tables for people, JSON objects with `--json`.

use std::time::Duration;

use cldc::core::SessionEvent;
use cldc::proto::{CellStatus, DirEntry, Event, NodeFlags, NodeMeta};
use serde_json::{Value, json};

/// A node's metadata as JSON.
pub fn meta_json(meta: &NodeMeta) -> Value {
    json!({
        "kind": kind(meta),
        "ephemeral": meta.flags.contains(NodeFlags::EPHEMERAL),
        "instance": meta.instance.0,
        "content_generation": meta.content_generation.0,
        "lock_generation": meta.lock_generation.0,
        "created": time_text(meta.created),
        "modified": time_text(meta.modified),
        "created_unix_ms": meta.created.as_millis() as u64,
        "modified_unix_ms": meta.modified.as_millis() as u64,
        "size": meta.size,
        "checksum": format!("{:016x}", meta.checksum),
    })
}

fn kind(meta: &NodeMeta) -> &'static str {
    if meta.flags.contains(NodeFlags::DIRECTORY) {
        "directory"
    } else {
        "file"
    }
}

/// `stat` as text, one `key: value` per line.
pub fn stat_text(path: &str, meta: &NodeMeta) -> String {
    let mut kind = kind(meta).to_string();
    if meta.flags.contains(NodeFlags::EPHEMERAL) {
        kind.push_str(", ephemeral");
    }
    format!(
        "path: {path}\nkind: {kind}\nsize: {}\ninstance: {}\ncontent generation: {}\n\
         lock generation: {}\ncreated: {}\nmodified: {}\nchecksum: {:016x}\n",
        meta.size,
        meta.instance.0,
        meta.content_generation.0,
        meta.lock_generation.0,
        time_text(meta.created),
        time_text(meta.modified),
        meta.checksum,
    )
}

/// `ls` as text: names (directories with a `/`), or with `-l` one line per entry with kind,
/// size, content and lock generations and modify time.
pub fn ls_text(entries: &[DirEntry], long: bool) -> String {
    let mut out = String::new();
    for e in entries {
        let slash = if e.meta.flags.contains(NodeFlags::DIRECTORY) {
            "/"
        } else {
            ""
        };
        let name = printable(&e.name);
        if long {
            let k = if e.meta.flags.contains(NodeFlags::DIRECTORY) {
                'd'
            } else {
                '-'
            };
            let eph = if e.meta.flags.contains(NodeFlags::EPHEMERAL) {
                'e'
            } else {
                '-'
            };
            out.push_str(&format!(
                "{k}{eph} {:>7} gen {:>5} lockgen {:>4} {} {name}{slash}\n",
                e.meta.size,
                e.meta.content_generation.0,
                e.meta.lock_generation.0,
                time_text(e.meta.modified),
            ));
        } else {
            out.push_str(&format!("{name}{slash}\n"));
        }
    }
    out
}

/// `ls` as JSON.
pub fn ls_json(dir: &str, entries: &[DirEntry]) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": e.name, "meta": meta_json(&e.meta)}))
        .collect();
    json!({"path": dir, "entries": list})
}

/// Control characters in names are shown escaped so a listing cannot rewrite the terminal.
pub fn printable(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// A time since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn time_text(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `status` as a table.
pub fn status_text(s: &CellStatus) -> String {
    let master = s
        .members
        .iter()
        .find(|m| m.is_master)
        .map_or("none".to_string(), |m| {
            format!("member {} ({})", m.id, m.addr)
        });
    let mut out = format!(
        "epoch {}   master {master}   sessions {}\n\n",
        s.epoch.0, s.sessions
    );
    out.push_str(&format!(
        "{:<4} {:<22} {:<7} {:<10} {:>10} {:>10}\n",
        "ID", "CLIENT ADDRESS", "ROLE", "REACHABLE", "COMMIT", "APPLIED"
    ));
    for m in &s.members {
        out.push_str(&format!(
            "{:<4} {:<22} {:<7} {:<10} {:>10} {:>10}\n",
            m.id,
            m.addr.to_string(),
            if m.is_master { "master" } else { "replica" },
            if m.reachable { "yes" } else { "no" },
            m.commit_index,
            m.applied_index
        ));
    }
    if !s.counters.is_empty() {
        out.push_str("\ncounters (the master's):\n");
        let width = s.counters.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &s.counters {
            out.push_str(&format!("  {:<width$} {}\n", printable(&c.name), c.value));
        }
    }
    out
}

/// `status` as JSON.
pub fn status_json(s: &CellStatus) -> Value {
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "addr": m.addr.to_string(),
                "is_master": m.is_master,
                "reachable": m.reachable,
                "commit_index": m.commit_index,
                "applied_index": m.applied_index,
            })
        })
        .collect();
    let counters: serde_json::Map<String, Value> = s
        .counters
        .iter()
        .map(|c| (c.name.clone(), json!(c.value)))
        .collect();
    json!({
        "epoch": s.epoch.0,
        "master": s.members.iter().find(|m| m.is_master).map(|m| m.id),
        "sessions": s.sessions,
        "members": members,
        "counters": counters,
    })
}

/// A session event seen by `watch`, as text and as JSON.
pub fn event_text(path: &str, ev: &SessionEvent) -> (String, Value) {
    match ev {
        SessionEvent::Server(e) => match e {
            Event::ContentsModified { generation, .. } => (
                format!("{path}: contents modified (generation {})", generation.0),
                json!({"event": "contents_modified", "path": path, "generation": generation.0}),
            ),
            Event::ChildAdded { name, .. } => (
                format!("{path}: child added: {}", printable(name)),
                json!({"event": "child_added", "path": path, "name": name}),
            ),
            Event::ChildRemoved { name, .. } => (
                format!("{path}: child removed: {}", printable(name)),
                json!({"event": "child_removed", "path": path, "name": name}),
            ),
            Event::NodeDeleted { .. } => (
                format!("{path}: deleted"),
                json!({"event": "node_deleted", "path": path}),
            ),
            Event::LockAcquired { sequencer, .. } => (
                format!("{path}: lock acquired"),
                json!({"event": "lock_acquired", "path": path,
                       "sequencer": crate::sequencer::format_sequencer(sequencer)}),
            ),
            Event::LockConflict { .. } => (
                format!("{path}: another session wants a conflicting lock"),
                json!({"event": "lock_conflict", "path": path}),
            ),
            Event::MasterFailover { epoch } => (
                format!("master fail-over (epoch {})", epoch.0),
                json!({"event": "master_failover", "epoch": epoch.0}),
            ),
        },
        SessionEvent::Jeopardy => (
            "session in jeopardy: looking for the master".into(),
            json!({"event": "jeopardy"}),
        ),
        SessionEvent::Safe => ("session safe again".into(), json!({"event": "safe"})),
        SessionEvent::Expired => ("session expired".into(), json!({"event": "expired"})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cldc::proto::{
        ContentGeneration, Epoch, InstanceNumber, LockGeneration, MemberStatus, RequestSeq,
        StatusCounter,
    };

    fn meta(flags: NodeFlags, size: u32) -> NodeMeta {
        NodeMeta {
            instance: InstanceNumber(3),
            content_generation: ContentGeneration(5),
            lock_generation: LockGeneration(2),
            created: Duration::from_millis(1_700_000_000_123),
            modified: Duration::from_secs(1_700_000_100),
            size,
            checksum: 0xabc,
            flags,
        }
    }

    #[test]
    fn times_are_utc_iso_8601() {
        assert_eq!(time_text(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            time_text(Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            time_text(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn ls_marks_directories_and_long_format_shows_generations() {
        let entries = vec![
            DirEntry {
                name: "d".into(),
                meta: meta(NodeFlags::DIRECTORY, 0),
            },
            DirEntry {
                name: "f".into(),
                meta: meta(NodeFlags::EPHEMERAL, 12),
            },
        ];
        assert_eq!(ls_text(&entries, false), "d/\nf\n");
        let long = ls_text(&entries, true);
        let lines: Vec<&str> = long.lines().collect();
        assert!(lines[0].starts_with("d- "), "{long}");
        assert!(
            lines[1].starts_with("-e      12 gen     5 lockgen    2 "),
            "{long}"
        );
        assert!(lines[1].ends_with(" f"), "{long}");
        let j = ls_json("/x", &entries);
        assert_eq!(j["entries"][1]["meta"]["size"], 12);
        assert_eq!(j["entries"][0]["meta"]["kind"], "directory");
    }

    #[test]
    fn names_with_control_characters_cannot_rewrite_the_terminal() {
        assert_eq!(printable("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }

    #[test]
    fn stat_shows_every_field() {
        let t = stat_text("/f", &meta(NodeFlags::EPHEMERAL, 7));
        for want in [
            "path: /f",
            "kind: file, ephemeral",
            "size: 7",
            "instance: 3",
            "content generation: 5",
            "lock generation: 2",
            "checksum: 0000000000000abc",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
    }

    fn status() -> CellStatus {
        CellStatus {
            epoch: Epoch(4),
            members: vec![
                MemberStatus {
                    id: 1,
                    addr: "127.0.0.1:7001".parse().unwrap(),
                    is_master: false,
                    reachable: true,
                    commit_index: 10,
                    applied_index: 9,
                },
                MemberStatus {
                    id: 2,
                    addr: "127.0.0.1:7002".parse().unwrap(),
                    is_master: true,
                    reachable: true,
                    commit_index: 10,
                    applied_index: 10,
                },
            ],
            sessions: 3,
            last_request: RequestSeq(2),
            counters: vec![StatusCounter {
                name: "bad_tag".into(),
                value: 1,
            }],
        }
    }

    #[test]
    fn status_table_names_the_master_and_each_members_indexes() {
        let t = status_text(&status());
        assert!(
            t.starts_with("epoch 4   master member 2 (127.0.0.1:7002)   sessions 3"),
            "{t}"
        );
        let row = t.lines().find(|l| l.starts_with("2 ")).unwrap();
        assert!(row.contains("master"), "{row}");
        let row1 = t.lines().find(|l| l.starts_with("1 ")).unwrap();
        assert!(
            row1.contains("replica") && row1.trim_end().ends_with("9"),
            "{row1}"
        );
        assert!(t.contains("bad_tag 1"), "{t}");
        let j = status_json(&status());
        assert_eq!(j["master"], 2);
        assert_eq!(j["members"][0]["applied_index"], 9);
        assert_eq!(j["counters"]["bad_tag"], 1);
    }
}
