//! Facts about this host's network that the agent acts on: which IPv4 address peers should
//! use for it, and whether it has a default route (microk8s needs one). The parsing is pure;
//! reading /proc and the interface list happens in the two small functions at the bottom.

use std::net::{IpAddr, Ipv4Addr};

/// One interface address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Interfaces that carry a default route, from the text of `/proc/net/route`.
pub fn default_route_interfaces(proc_net_route: &str) -> Vec<String> {
    proc_net_route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags …; destination 00000000 with mask 00000000.
            (cols.len() >= 8 && cols[1] == "00000000" && cols[7] == "00000000")
                .then(|| cols[0].to_owned())
        })
        .collect()
}

/// Chooses the address to advertise: the first IPv4 of the first allowed interface; without
/// an allow-list, of an interface with the default route; else any non-loopback IPv4 (an
/// isolated LAN); else loopback.
pub fn choose_advertise_ip(
    addrs: &[IfAddr],
    allowed: &[String],
    default_ifaces: &[String],
) -> IpAddr {
    let v4 = |a: &&IfAddr| a.ip.is_ipv4() && !a.ip.is_loopback();
    let pick = |names: &[String]| {
        names
            .iter()
            .find_map(|n| addrs.iter().filter(v4).find(|a| &a.name == n).map(|a| a.ip))
    };
    if !allowed.is_empty() {
        if let Some(ip) = pick(allowed) {
            return ip;
        }
    } else if let Some(ip) = pick(default_ifaces) {
        return ip;
    }
    addrs
        .iter()
        .filter(v4)
        .filter(|a| allowed.is_empty() || allowed.contains(&a.name))
        .map(|a| a.ip)
        .next()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// This host's interface addresses.
pub fn interface_addrs() -> Vec<IfAddr> {
    if_addrs::get_if_addrs()
        .map(|ifs| {
            ifs.into_iter()
                .map(|i| IfAddr {
                    ip: i.ip(),
                    name: i.name,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Interfaces with a default route on this host (empty when none, or /proc is unreadable).
pub fn default_route() -> Vec<String> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| default_route_interfaces(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eno1\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eno1\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";

    fn a(name: &str, ip: &str) -> IfAddr {
        IfAddr {
            name: name.into(),
            ip: ip.parse().expect("ip"),
        }
    }

    #[test]
    fn default_route_interface_is_found() {
        assert_eq!(default_route_interfaces(ROUTE), vec!["eno1"]);
        assert!(default_route_interfaces("Iface\tDestination\n").is_empty());
    }

    #[test]
    fn advertise_prefers_allow_list_then_default_route_over_docker() {
        let addrs = [
            a("lo", "127.0.0.1"),
            a("docker0", "172.17.0.1"),
            a("eno1", "fe80::1"),
            a("eno1", "192.168.0.5"),
            a("wg0", "10.9.0.2"),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            choose_advertise_ip(&addrs, &[], &["eno1".into()]),
            ip("192.168.0.5")
        );
        assert_eq!(
            choose_advertise_ip(&addrs, &["wg0".into()], &["eno1".into()]),
            ip("10.9.0.2")
        );
        assert_eq!(choose_advertise_ip(&addrs, &[], &[]), ip("172.17.0.1"));
        assert_eq!(choose_advertise_ip(&addrs[..1], &[], &[]), ip("127.0.0.1"));
    }
}
