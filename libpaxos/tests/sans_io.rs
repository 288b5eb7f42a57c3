//! The core must stay sans-IO and deterministic: no ambient time, randomness, sockets, async
//! runtime or hash-ordered collections anywhere in `src/`.

use std::fs;
use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "std::net",
    "UdpSocket",
    "TcpStream",
    "Instant::now",
    "SystemTime",
    "thread_rng",
    "rand::",
    "HashMap",
    "HashSet",
    "std::thread",
    "std::fs",
];

fn visit(dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            visit(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).expect("source is UTF-8");
            for (n, line) in text.lines().enumerate() {
                for word in FORBIDDEN {
                    if line.contains(word) {
                        found.push(format!("{}:{}: {word}", path.display(), n + 1));
                    }
                }
            }
        }
    }
}

#[test]
fn the_library_source_uses_no_ambient_io_time_or_randomness() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    visit(&src, &mut found);
    assert!(
        found.is_empty(),
        "forbidden in libpaxos/src:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_would_notice_a_forbidden_word() {
    // Guards the guard: the scan really looks at the files it is meant to.
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs is readable");
    assert!(lib.contains("sans-IO"));
}
