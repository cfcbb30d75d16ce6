//! LAN discovery over mDNS (`_muster._tcp.local.`, mdns-sd): this agent advertises its gRPC
//! port with a TXT record (cluster name, node id, node name, protocol version; never a secret)
//! and browses for the same type, turning resolved records into [`DiscoveryEvent`]s.
//!
//! Discovery only seeds the membership: what it finds is a hint that someone may be out there,
//! and membership decides who is alive. Records of another cluster are ignored; malformed or
//! hostile records are logged once per instance and dropped.
//!
//! Interfaces: the configured allow-list when there is one; otherwise the interface that owns
//! the listen address when the agent listens on one address (so an agent bound to loopback
//! never multicasts on a real network); otherwise every IPv4 interface but loopback. IPv6 is
//! not used: peers are reached over IPv4 first, and dual records only double the traffic.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use log::Level;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::EventBus;
use crate::journal::{Event, Field};

/// The DNS-SD service type muster advertises.
pub const SERVICE_TYPE: &str = "_muster._tcp.local.";
/// Protocol version carried in TXT `proto`; agents ignore records of other versions.
pub const PROTOCOL_VERSION: u32 = 1;

/// What discovery needs to know about this agent.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// Cluster name (TXT `cluster`).
    pub cluster: String,
    /// Node id (TXT `id`).
    pub node_id: String,
    /// Node name (TXT `name`, and the instance name).
    pub node_name: String,
    /// The gRPC port peers should connect to.
    pub port: u16,
    /// Interface allow-list from the config; empty means "choose" (see the module doc).
    pub interfaces: Vec<String>,
    /// The API's listen IP (unspecified when listening on all interfaces).
    pub listen_ip: IpAddr,
}

/// A peer seen on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub node_id: String,
    /// Its node name.
    pub name: String,
    /// Where its gRPC API answers, IPv4 first.
    pub addrs: Vec<SocketAddr>,
}

/// What discovery reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// A peer's record was resolved (again).
    Seen(Peer),
    /// A peer withdrew its record (or it expired).
    Gone {
        /// The peer's node id.
        node_id: String,
    },
}

/// Why a TXT record was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A required key is absent.
    #[error("TXT record lacks `{0}`")]
    Missing(&'static str),
    /// The node id is not 32 lowercase hex digits.
    #[error("TXT `id` {0:?} is not a node id (32 lowercase hex digits)")]
    BadId(String),
    /// The node name is empty or too long.
    #[error("TXT `name` {0:?} is not a node name")]
    BadName(String),
    /// `proto` is not a number.
    #[error("TXT `proto` {0:?} is not a number")]
    BadProto(String),
    /// Another protocol version.
    #[error("protocol version {0} is not supported (this agent speaks {PROTOCOL_VERSION})")]
    UnsupportedProto(u32),
    /// No usable address or port.
    #[error("record has no usable IPv4 address or port")]
    NoAddress,
}

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// mdns-sd refused.
    #[error("mDNS {action}: {source}")]
    Mdns {
        /// What was being done.
        action: &'static str,
        /// The library's error.
        source: mdns_sd::Error,
    },
}

/// Checks a resolved record. `Ok(None)`: valid but not for us (another cluster, or ourselves).
pub fn parse_record(
    own_cluster: &str,
    own_id: &str,
    txt: &HashMap<String, String>,
    ips: &[IpAddr],
    port: u16,
) -> Result<Option<Peer>, RecordError> {
    let get = |k: &'static str| {
        txt.get(k)
            .map(String::as_str)
            .ok_or(RecordError::Missing(k))
    };
    let proto = get("proto")?;
    let proto: u32 = proto
        .parse()
        .map_err(|_| RecordError::BadProto(proto.to_owned()))?;
    if proto != PROTOCOL_VERSION {
        return Err(RecordError::UnsupportedProto(proto));
    }
    if get("cluster")? != own_cluster {
        return Ok(None);
    }
    let id = get("id")?;
    if id.len() != 32
        || !id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err(RecordError::BadId(id.to_owned()));
    }
    if id == own_id {
        return Ok(None);
    }
    let name = get("name")?;
    if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_control() || c == ' ') {
        return Err(RecordError::BadName(name.to_owned()));
    }
    let mut v4: Vec<SocketAddr> = ips
        .iter()
        .filter(|ip| ip.is_ipv4() && !ip.is_unspecified() && !ip.is_multicast())
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    v4.sort();
    if v4.is_empty() || port == 0 {
        return Err(RecordError::NoAddress);
    }
    Ok(Some(Peer {
        node_id: id.to_owned(),
        name: name.to_owned(),
        addrs: v4,
    }))
}

/// A running advertiser and browser.
pub struct Discovery {
    daemon: ServiceDaemon,
}

impl Discovery {
    /// Starts advertising and browsing; events arrive on the returned channel until `stop`
    /// fires or [`Discovery::shutdown`] is called.
    pub fn start(
        cfg: &DiscoveryConfig,
        events: EventBus,
        stop: CancellationToken,
    ) -> Result<(Discovery, mpsc::Receiver<DiscoveryEvent>), DiscoveryError> {
        let mdns = |action| move |source| DiscoveryError::Mdns { action, source };
        let daemon = ServiceDaemon::new().map_err(mdns("daemon start"))?;
        select_interfaces(&daemon, cfg).map_err(mdns("interface selection"))?;
        let proto = PROTOCOL_VERSION.to_string();
        let props = [
            ("cluster", cfg.cluster.as_str()),
            ("id", cfg.node_id.as_str()),
            ("name", cfg.node_name.as_str()),
            ("proto", proto.as_str()),
        ];
        let short_id: String = cfg.node_id.chars().take(8).collect();
        let instance = format!("{}-{short_id}", cfg.node_name);
        let host = format!("muster-{short_id}.local.");
        let info = if cfg.listen_ip.is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", cfg.port, &props[..])
                .map(ServiceInfo::enable_addr_auto)
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &instance,
                &host,
                cfg.listen_ip,
                cfg.port,
                &props[..],
            )
        }
        .map_err(mdns("service record"))?;
        daemon.register(info).map_err(mdns("register"))?;
        let browse = daemon.browse(SERVICE_TYPE).map_err(mdns("browse"))?;

        let (tx, rx) = mpsc::channel(256);
        let cluster = cfg.cluster.clone();
        let own_id = cfg.node_id.clone();
        tokio::spawn(async move {
            let mut by_fullname: HashMap<String, String> = HashMap::new();
            let mut reported: HashSet<String> = HashSet::new();
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = browse.recv_async() => match ev {
                        Ok(ev) => ev,
                        Err(_) => return,
                    },
                };
                let out = match ev {
                    ServiceEvent::ServiceResolved(svc) => {
                        let txt: HashMap<String, String> = svc
                            .txt_properties
                            .iter()
                            .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                            .collect();
                        let ips: Vec<IpAddr> =
                            svc.addresses.iter().map(|a| a.to_ip_addr()).collect();
                        match parse_record(&cluster, &own_id, &txt, &ips, svc.port) {
                            Ok(Some(peer)) => {
                                by_fullname.insert(svc.fullname.clone(), peer.node_id.clone());
                                DiscoveryEvent::Seen(peer)
                            }
                            Ok(None) => continue,
                            Err(e) => {
                                // Log once per instance: a broken neighbour must not flood the journal.
                                if reported.insert(svc.fullname.clone()) {
                                    events.emit(
                                        Level::Warn,
                                        Event::MessageRejected,
                                        &svc.fullname,
                                        &[(Field::Error, &e.to_string())],
                                        format!("ignoring mDNS record {}: {e}", svc.fullname),
                                    );
                                }
                                continue;
                            }
                        }
                    }
                    ServiceEvent::ServiceRemoved(_, fullname) => {
                        match by_fullname.remove(&fullname) {
                            Some(node_id) => DiscoveryEvent::Gone { node_id },
                            None => continue,
                        }
                    }
                    _ => continue,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        Ok((Discovery { daemon }, rx))
    }

    /// Withdraws our record (peers see it go) and stops the mDNS thread.
    pub fn shutdown(self) {
        // Best effort: the process is stopping anyway; peers also notice through the mesh.
        let _ = self.daemon.shutdown();
    }
}

fn select_interfaces(daemon: &ServiceDaemon, cfg: &DiscoveryConfig) -> Result<(), mdns_sd::Error> {
    daemon.disable_interface(IfKind::All)?;
    if !cfg.interfaces.is_empty() {
        let names: Vec<IfKind> = cfg
            .interfaces
            .iter()
            .map(|n| IfKind::Name(n.clone()))
            .collect();
        daemon.enable_interface(names)?;
        daemon.disable_interface(IfKind::IPv6)?;
    } else if !cfg.listen_ip.is_unspecified() {
        daemon.enable_interface(IfKind::Addr(cfg.listen_ip))?;
    } else {
        daemon.enable_interface(IfKind::IPv4)?;
        daemon.disable_interface(IfKind::LoopbackV4)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "00000000000000000000000000000001";
    const PEER: &str = "0123456789abcdef0123456789abcdef";

    fn txt(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn good() -> HashMap<String, String> {
        txt(&[
            ("cluster", "lab"),
            ("id", PEER),
            ("name", "n2"),
            ("proto", "1"),
        ])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn valid_record_becomes_a_peer_with_ipv4_addresses_only() {
        let peer = parse_record("lab", ME, &good(), &[ip("fe80::1"), ip("198.18.0.2")], 7440)
            .expect("valid")
            .expect("for us");
        assert_eq!(peer.node_id, PEER);
        assert_eq!(peer.name, "n2");
        assert_eq!(
            peer.addrs,
            vec!["198.18.0.2:7440".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn other_cluster_and_self_are_ignored_quietly() {
        let mut other = good();
        other.insert("cluster".into(), "elsewhere".into());
        assert_eq!(
            parse_record("lab", ME, &other, &[ip("198.18.0.2")], 7440),
            Ok(None)
        );
        assert_eq!(
            parse_record("lab", PEER, &good(), &[ip("198.18.0.2")], 7440),
            Ok(None)
        );
    }

    #[test]
    fn malformed_records_are_rejected_with_the_reason() {
        let with = |k: &str, v: &str| {
            let mut t = good();
            t.insert(k.into(), v.into());
            t
        };
        let without = |k: &str| {
            let mut t = good();
            t.remove(k);
            t
        };
        let a = [ip("198.18.0.2")];
        let v6 = [ip("fe80::1")];
        type Case<'a> = (HashMap<String, String>, &'a [IpAddr], u16, RecordError);
        let cases: Vec<Case> = vec![
            (without("id"), &a, 7440, RecordError::Missing("id")),
            (without("proto"), &a, 7440, RecordError::Missing("proto")),
            (
                without("cluster"),
                &a,
                7440,
                RecordError::Missing("cluster"),
            ),
            (without("name"), &a, 7440, RecordError::Missing("name")),
            (
                with("id", "xyz"),
                &a,
                7440,
                RecordError::BadId("xyz".into()),
            ),
            (
                with("id", &PEER.to_uppercase()),
                &a,
                7440,
                RecordError::BadId(PEER.to_uppercase()),
            ),
            (
                with("proto", "one"),
                &a,
                7440,
                RecordError::BadProto("one".into()),
            ),
            (
                with("proto", "2"),
                &a,
                7440,
                RecordError::UnsupportedProto(2),
            ),
            (
                with("name", ""),
                &a,
                7440,
                RecordError::BadName(String::new()),
            ),
            (
                with("name", "a\nb"),
                &a,
                7440,
                RecordError::BadName("a\nb".into()),
            ),
            (good(), &[], 7440, RecordError::NoAddress),
            (good(), &v6, 7440, RecordError::NoAddress),
            (good(), &a, 0, RecordError::NoAddress),
        ];
        for (t, ips, port, want) in cases {
            assert_eq!(
                parse_record("lab", ME, &t, ips, port),
                Err(want.clone()),
                "{want}"
            );
        }
    }
}
