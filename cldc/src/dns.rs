//! Cell discovery from DNS SRV records `_cld._udp.<domain>` (feature `dns`).
//!
//! Targets are ordered as RFC 2782 says: lower priority first; within one priority, a
//! weighted random order (weight 0 entries are picked rarely, last-ish). Each target's
//! addresses are looked up in that order, so [`crate::core::Session`] tries members in the
//! order DNS asks for. The name server is configurable (address and port), or taken from the
//! first `nameserver` line of `/etc/resolv.conf`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use rand::Rng;

use crate::core::MAX_MEMBERS;

/// What to look up, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvQuery {
    /// The cell's domain: records are read from `_cld._udp.<domain>`.
    pub domain: String,
    /// The DNS server to ask; `None` reads `/etc/resolv.conf`.
    pub name_server: Option<SocketAddr>,
    /// Timeout of one DNS query.
    pub timeout: Duration,
    /// Tries per query.
    pub attempts: usize,
}

impl SrvQuery {
    /// A query for `domain` through the system's name server, 2 s timeout, 2 tries.
    pub fn new(domain: &str) -> SrvQuery {
        SrvQuery {
            domain: domain.trim_end_matches('.').to_string(),
            name_server: None,
            timeout: Duration::from_secs(2),
            attempts: 2,
        }
    }

    /// The same query through the DNS server at `addr`.
    pub fn with_name_server(mut self, addr: SocketAddr) -> SrvQuery {
        self.name_server = Some(addr);
        self
    }

    /// The SRV name looked up.
    pub fn srv_name(&self) -> String {
        format!("_cld._udp.{}.", self.domain)
    }
}

/// Why discovery failed; each cause has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The domain is empty.
    #[error("empty cell domain")]
    EmptyDomain,
    /// No name server was given and none was found in /etc/resolv.conf.
    #[error("no name server configured and none in /etc/resolv.conf")]
    NoNameServer,
    /// The DNS server answered that there are no such SRV records.
    #[error("no SRV records at {name}")]
    NoRecords {
        /// The name looked up.
        name: String,
    },
    /// Every SRV record has target `.`: the service is explicitly not available.
    #[error("SRV records at {name} say the service is not available (target \".\")")]
    ServiceNotAvailable {
        /// The name looked up.
        name: String,
    },
    /// The DNS server did not answer.
    #[error("DNS server {server} unreachable: {detail}")]
    Unreachable {
        /// The server asked.
        server: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// SRV targets were found but none has an address.
    #[error("no SRV target of {name} has an address")]
    NoAddresses {
        /// The name looked up.
        name: String,
    },
    /// Any other DNS failure.
    #[error("DNS lookup of {name} failed: {detail}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What went wrong.
        detail: String,
    },
}

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is tried first.
    pub priority: u16,
    /// Share of picks within one priority.
    pub weight: u16,
    /// Port of the service.
    pub port: u16,
    /// Host name (`.` means "not available").
    pub target: String,
}

/// Orders SRV records as RFC 2782 says, drawing the weighted choices from `rng`.
pub fn order_srv<R: Rng>(mut records: Vec<SrvTarget>, rng: &mut R) -> Vec<SrvTarget> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        // Zero weights go first so that they can be picked only when the draw is 0.
        let mut group: Vec<SrvTarget> = group.to_vec();
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = rng.random_range(0..=total);
            let mut running = 0u32;
            let pick = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            out.push(group.remove(pick));
        }
    }
    out
}

/// Looks up the cell's members: SRV records, ordered, then each target's addresses.
pub async fn discover(q: &SrvQuery) -> Result<Vec<SocketAddr>, DiscoveryError> {
    if q.domain.is_empty() {
        return Err(DiscoveryError::EmptyDomain);
    }
    let server = match q.name_server {
        Some(s) => s,
        None => system_name_server().ok_or(DiscoveryError::NoNameServer)?,
    };
    let resolver = resolver(server, q);
    let name = q.srv_name();
    let lookup = resolver
        .lookup(name.as_str(), RecordType::SRV)
        .await
        .map_err(|e| classify(e, server, &name))?;
    let records: Vec<SrvTarget> = lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(SrvTarget {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_ascii(),
            }),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(DiscoveryError::NoRecords { name });
    }
    let available: Vec<SrvTarget> = records.into_iter().filter(|r| r.target != ".").collect();
    if available.is_empty() {
        return Err(DiscoveryError::ServiceNotAvailable { name });
    }
    let mut members = Vec::new();
    // Ordered before the loop: a `rand::rng()` temporary in the loop's head would live
    // across its awaits and make `Session::open` a future no multi-threaded runtime can
    // spawn (`ThreadRng` is not `Send`).
    let ordered = order_srv(available, &mut rand::rng());
    for t in ordered {
        // A session remembers no more members than this; a zone with hundreds of targets
        // must not cost hundreds of address lookups (each up to timeout x attempts).
        if members.len() >= MAX_MEMBERS {
            break;
        }
        let Ok(ips) = resolver.lookup_ip(t.target.as_str()).await else {
            continue;
        };
        for ip in ips.iter() {
            let addr = SocketAddr::new(ip, t.port);
            if !members.contains(&addr) && members.len() < MAX_MEMBERS {
                members.push(addr);
            }
        }
    }
    if members.is_empty() {
        return Err(DiscoveryError::NoAddresses { name });
    }
    Ok(members)
}

fn resolver(server: SocketAddr, q: &SrvQuery) -> TokioResolver {
    let mut conn = ConnectionConfig::udp();
    conn.port = server.port();
    let ns = NameServerConfig::new(server.ip(), true, vec![conn]);
    let config = ResolverConfig::from_name_servers(vec![ns]);
    let mut builder = Resolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().timeout = q.timeout;
    builder.options_mut().attempts = q.attempts.max(1);
    builder.options_mut().cache_size = 0;
    builder.build().unwrap_or_else(|_| unreachable_resolver())
}

/// `build` fails only for configurations this module never makes; keep a defined fallback.
fn unreachable_resolver() -> TokioResolver {
    let config = ResolverConfig::from_name_servers(vec![]);
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .expect("a resolver without name servers always builds")
}

fn classify(e: NetError, server: SocketAddr, name: &str) -> DiscoveryError {
    if e.is_no_records_found() || e.is_nx_domain() {
        return DiscoveryError::NoRecords {
            name: name.to_string(),
        };
    }
    match e {
        NetError::Timeout | NetError::Io(_) | NetError::NoConnections | NetError::Busy => {
            DiscoveryError::Unreachable {
                server,
                detail: e.to_string(),
            }
        }
        other => DiscoveryError::Lookup {
            name: name.to_string(),
            detail: other.to_string(),
        },
    }
}

fn system_name_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse::<IpAddr>().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn t(priority: u16, weight: u16, name: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port: 1,
            target: name.into(),
        }
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let o = order_srv(
                vec![t(20, 100, "c"), t(10, 1, "a"), t(10, 1, "b")],
                &mut rng,
            );
            assert_eq!(o[2].target, "c");
        }
    }

    #[test]
    fn weights_set_the_share_of_first_picks() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut heavy_first = 0;
        for _ in 0..2000 {
            let o = order_srv(vec![t(10, 90, "heavy"), t(10, 10, "light")], &mut rng);
            if o[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        // Expected 1800 of 2000; the bounds are many standard deviations wide.
        assert!(
            (1650..=1950).contains(&heavy_first),
            "heavy first {heavy_first} times"
        );
    }

    #[test]
    fn zero_weight_targets_are_still_ordered() {
        let mut rng = StdRng::seed_from_u64(3);
        let o = order_srv(vec![t(1, 0, "z"), t(1, 0, "y")], &mut rng);
        assert_eq!(o.len(), 2);
    }
}
