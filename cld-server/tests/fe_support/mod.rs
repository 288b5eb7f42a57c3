//! In-process cells with the client front end on real loopback UDP, for the front-end
//! tests: each member on its own runtime (killing one drops its tasks and sockets).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cld_server::config::{CellConfig, TimingOverrides};
use cldc::proto::{CellPrivateKey, CellPublicKey};
use cldc::{Credentials, Session, SessionOptions};

#[path = "../common/mod.rs"]
mod common;
pub use common::TempDir;

pub const USER: &str = "alice";
pub const USER_SECRET: &str = "alice-secret-alice-secret-alice-secret";
pub const CELL_SECRET: &str = "0123456789abcdef0123456789abcdef";

use common::ports::free_port;

pub use common::inproc_cell::{Member, start, start_on_memkv};
use libpaxos_db::MemKv;

pub struct Cell {
    pub dir: TempDir,
    pub config: CellConfig,
    pub members: Vec<Member>,
    pub clients: Vec<SocketAddr>,
    pub key: CellPublicKey,
    /// With `start_on_memkv`: each member's database (`MemKv`); empty on sled.
    pub stores: Vec<MemKv>,
}

impl Cell {
    /// A cell of `n` members; `timing` is extra `[timing]` lines.
    pub fn start(tag: &str, n: u64, timing: &str) -> Cell {
        Cell::start_on(tag, n, timing, false)
    }

    /// `start`, each member's database in a `MemKv` (`cld_server::start_on_kv`).
    pub fn start_on_memkv(tag: &str, n: u64, timing: &str) -> Cell {
        Cell::start_on(tag, n, timing, true)
    }

    fn start_on(tag: &str, n: u64, timing: &str, memkv: bool) -> Cell {
        let dir = TempDir::new(tag);
        let private = CellPrivateKey::from_bytes([0x42; 32]);
        let key_path = dir.path().join("cell.key");
        cldc::keyfile::write_private_key(&key_path, &private).unwrap();
        let mut text = format!(
            "[cell]\nname = \"fe\"\nsecret = \"{CELL_SECRET}\"\nkey_file = \"cell.key\"\n[timing]\npaxos_lease_ms = 300\nheartbeat_ms = 50\nelection_timeout_ms = 400\n{timing}\n"
        );
        let mut clients = Vec::new();
        for id in 1..=n {
            let client = free_port();
            clients.push(SocketAddr::from(([127, 0, 0, 1], client)));
            text.push_str(&format!(
                "[[member]]\nid = {id}\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{}\"\n",
                free_port()
            ));
        }
        text.push_str(&format!(
            "[[user]]\nname = \"{USER}\"\nsecret = \"{USER_SECRET}\"\n"
        ));
        let path = common::write_file(dir.path(), "cell.toml", &text, 0o600);
        let config = CellConfig::load(&path, &TimingOverrides::default()).unwrap();
        let stores: Vec<MemKv> = if memkv {
            (1..=n).map(|_| MemKv::new()).collect()
        } else {
            Vec::new()
        };
        let members = (1..=n)
            .map(|id| match stores.get(id as usize - 1) {
                Some(kv) => start_on_memkv(&config, id, dir.path(), kv.clone()),
                None => start(&config, id, dir.path()),
            })
            .collect();
        Cell {
            dir,
            config,
            members,
            clients,
            key: private.public(),
            stores,
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.members[i].kill();
        self.start_member(i);
    }

    /// Starts member `i` again (on its store, with `start_on_memkv`).
    pub fn start_member(&mut self, i: usize) {
        let id = i as u64 + 1;
        self.members[i] = match self.stores.get(i) {
            Some(kv) => start_on_memkv(&self.config, id, self.dir.path(), kv.clone()),
            None => start(&self.config, id, self.dir.path()),
        };
    }

    /// A power cut of member `i` (on `MemKv`): killed, its store keeping what was synced and
    /// the first `kept` unsynced batches (`start_member` restarts it on that). Returns how
    /// many batches were unsynced.
    pub fn power_cut(&mut self, i: usize, kept: usize) -> usize {
        self.members[i].kill();
        let unsynced = self.stores[i].unsynced();
        self.stores[i] = self.stores[i].crash(kept);
        unsynced
    }

    /// Member `i`'s store emptied (a lost disk; its data dir kept); it restarts on it.
    pub fn wipe_store(&mut self, i: usize) {
        self.members[i].kill();
        self.stores[i].crash(0);
        self.stores[i] = MemKv::new();
        self.start_member(i);
    }

    pub fn wait_master(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let masters: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].leased_master())
                .collect();
            if masters.len() == 1 {
                return masters[0];
            }
            assert!(Instant::now() < deadline, "no single master: {masters:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn options(&self) -> SessionOptions {
        SessionOptions {
            cell_key: Some(self.key),
            ..SessionOptions::default()
        }
    }

    pub async fn session(&self) -> Session {
        self.session_with(self.options()).await
    }

    pub async fn session_with(&self, options: SessionOptions) -> Session {
        Session::open(
            self.clients.clone(),
            Credentials::new(USER, USER_SECRET.as_bytes()).unwrap(),
            options,
        )
        .await
        .expect("session opens")
    }

    /// Sum of a counter over the running members.
    pub fn counter(&self, name: &str) -> u64 {
        self.members
            .iter()
            .filter(|m| m.rt.is_some())
            .map(|m| m.counter(name))
            .sum()
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}
