//! Discovery against a real DNS server on loopback: an in-process hickory-server.
#![cfg(feature = "dns")]

mod support;

use cldc::dns::{DiscoveryError, SrvQuery, discover};
use cldc::{Cell, Credentials, Session};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use support::fake_cell::FakeCell;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("valid name")
}

fn srv(prio: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name("_cld._udp.cell.test."),
        60,
        RData::SRV(SRV::new(prio, weight, port, name(target))),
    )
}

fn a(host: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(host), 60, RData::A(A(Ipv4Addr::from(ip))))
}

/// Serves zone `cell.test.` with `records` on an ephemeral loopback port.
async fn dns_server(records: Vec<Record>) -> SocketAddr {
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
    for r in records {
        zone.upsert_mut(r, 1);
    }
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
}

fn query(server: SocketAddr) -> SrvQuery {
    SrvQuery::new("cell.test").with_name_server(server)
}

#[tokio::test]
async fn srv_records_give_members_in_priority_order() {
    let server = dns_server(vec![
        srv(20, 0, 7003, "c.cell.test."),
        srv(10, 60, 7001, "a.cell.test."),
        srv(10, 40, 7002, "b.cell.test."),
        a("a.cell.test.", [127, 0, 0, 1]),
        a("b.cell.test.", [127, 0, 0, 2]),
        a("c.cell.test.", [127, 0, 0, 3]),
    ])
    .await;
    let members = discover(&query(server)).await.expect("discovered");
    assert_eq!(members.len(), 3);
    let first_two: Vec<u16> = members[..2].iter().map(|m| m.port()).collect();
    assert!(first_two.contains(&7001) && first_two.contains(&7002));
    assert_eq!(members[2], SocketAddr::from(([127, 0, 0, 3], 7003)));
}

#[tokio::test]
async fn missing_srv_record_is_reported_as_no_records() {
    let server = dns_server(vec![a("a.cell.test.", [127, 0, 0, 1])]).await;
    match discover(&query(server)).await {
        Err(DiscoveryError::NoRecords { name }) => assert_eq!(name, "_cld._udp.cell.test."),
        other => panic!("expected NoRecords, got {other:?}"),
    }
}

#[tokio::test]
async fn targets_without_addresses_are_reported() {
    let server = dns_server(vec![srv(10, 1, 7001, "ghost.cell.test.")]).await;
    assert!(matches!(
        discover(&query(server)).await,
        Err(DiscoveryError::NoAddresses { .. })
    ));
}

#[tokio::test]
async fn unreachable_name_server_is_reported_with_its_address() {
    // A bound socket that never answers.
    let mute = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = mute.local_addr().expect("bound");
    let mut q = query(addr);
    q.timeout = Duration::from_millis(200);
    q.attempts = 1;
    match discover(&q).await {
        Err(DiscoveryError::Unreachable { server, .. }) => assert_eq!(server, addr),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn session_opens_on_a_cell_found_through_srv() {
    let cell = FakeCell::start(Duration::from_secs(12)).await;
    let server = dns_server(vec![
        srv(10, 1, cell.addr.port(), "m1.cell.test."),
        a("m1.cell.test.", [127, 0, 0, 1]),
    ])
    .await;
    let creds = Credentials::new(support::USER, support::SECRET).expect("creds");
    let s = Session::open(Cell::Srv(query(server)), creds, support::options())
        .await
        .expect("session over SRV");
    s.stat("/").await.expect("stat root");
}

#[tokio::test]
async fn discovery_stops_at_the_sixteen_members_a_session_remembers() {
    let mut records = vec![];
    for i in 0..24u8 {
        let host = format!("m{i}.cell.test.");
        records.push(srv(10, 1, 7000 + u16::from(i), &host));
        records.push(a(&host, [127, 0, 1, i]));
    }
    let server = dns_server(records).await;
    let members = discover(&query(server)).await.expect("discovered");
    assert_eq!(members.len(), 16);
}
