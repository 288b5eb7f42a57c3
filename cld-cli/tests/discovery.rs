//! `--domain` with `--dns-server`: the real binary finds the cell through DNS SRV records
//! served on loopback, and a domain without records is "unreachable" (exit 3).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Cell, ok, outcome};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid name")
}

/// Serves zone `cell.test.` with `_cld._udp.cell.test. SRV` -> `m1.cell.test:port` on an
/// ephemeral loopback port, on `rt`.
fn dns_server(rt: &tokio::runtime::Runtime, port: u16) -> SocketAddr {
    rt.block_on(async {
        let origin = name("cell.test.");
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.cell.test."),
            name("admin.cell.test."),
            1,
            3600,
            600,
            86400,
            60,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1);
        zone.upsert_mut(
            Record::from_rdata(
                name("_cld._udp.cell.test."),
                60,
                RData::SRV(SRV::new(10, 1, port, name("m1.cell.test."))),
            ),
            1,
        );
        zone.upsert_mut(
            Record::from_rdata(name("m1.cell.test."), 60, RData::A(A(Ipv4Addr::LOCALHOST))),
            1,
        );
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("bound");
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        addr
    })
}

#[test]
fn the_cell_is_found_through_srv_records() {
    let c = Cell::start(Duration::from_secs(12));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = dns_server(&rt, c.addr.port());
    ok(c.cldcli()
        .env_remove("CLD_CELL")
        .args(["--domain", "cell.test", "--dns-server", &dns.to_string()])
        .args(["put", "/found", "via-srv"])
        .output()
        .unwrap());
    let out = ok(c
        .cldcli()
        .env_remove("CLD_CELL")
        .env("CLD_DOMAIN", "cell.test")
        .env("CLD_DNS_SERVER", dns.to_string())
        .args(["cat", "/found"])
        .output()
        .unwrap());
    assert_eq!(out, "via-srv");
    let (code, _, err) = outcome(
        &c.cldcli()
            .env_remove("CLD_CELL")
            .args(["--domain", "nothing.test", "--dns-server", &dns.to_string()])
            .args(["ls", "/"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("_cld._udp.nothing.test."), "{err}");
}
