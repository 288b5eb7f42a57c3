//! Loopback ports for test cells. One allocator for every test binary (included with
//! `#[path]` where `common` is not a module): a port is handed out only when both TCP and
//! UDP can bind it, and never twice in one process, so two members of one cell (or two
//! cells of parallel tests) cannot be given the same address. The kernel may reuse a port
//! a test released; remembering what we handed out is what makes that harmless here.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port free for both TCP and UDP on 127.0.0.1, not handed out before in this process.
pub fn free_port() -> u16 {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port on loopback");
        let port = tcp
            .local_addr()
            .expect("local address of a bound socket")
            .port();
        if given.contains(&port) {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}
