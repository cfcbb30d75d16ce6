//! The pieces of a join grant: a fresh token, and the join URL the follower can reach.
//!
//! Owns: [`new_token`], [`url_ip`] and [`choose_url`].
//! Does not own: running `add-node` (the driver) or deciding when to grant (`entry.rs`).

use std::net::IpAddr;

use crate::rng::Rng;

/// A fresh join token: 16 random bytes as 32 lowercase hex digits, the form `add-node`
/// generates itself. Hex cannot contain `/`, `|`, whitespace or the word `help`, which would
/// break the join string, the token file or add-node's argument parsing.
pub fn new_token(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// The IP of a join URL as `add-node --format json` prints it (`IP:25000/TOKEN/CHECK`, IPv6
/// possibly in brackets).
pub fn url_ip(url: &str) -> Option<IpAddr> {
    let authority = url.split('/').next()?;
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    match authority.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address without a port.
        Some((host, _)) if !host.contains(':') => host.parse().ok(),
        _ => authority.parse().ok(),
    }
}

/// The URL to give a follower whose requests come from `follower`, in this order:
/// 1. the URL on the entry's address the request arrived at (`met_on`): the follower
///    demonstrably reaches it;
/// 2. a URL whose IP lies on one of the entry's networks (`local_nets`: address and prefix
///    length) that also contains the follower's address: the subnet where they met;
/// 3. the URL of the same address family sharing the longest prefix with the follower.
///
/// Loopback URLs are never chosen. `None` when no URL of the follower's family exists.
pub fn choose_url<'a>(
    urls: &'a [String],
    follower: IpAddr,
    met_on: Option<IpAddr>,
    local_nets: &[(IpAddr, u8)],
) -> Option<&'a str> {
    let candidates: Vec<(&'a str, IpAddr)> = urls
        .iter()
        .filter_map(|u| Some((u.as_str(), url_ip(u)?)))
        .filter(|(_, ip)| !ip.is_loopback() && ip.is_ipv4() == follower.is_ipv4())
        .collect();
    if let Some(met) = met_on
        && let Some((u, _)) = candidates.iter().find(|(_, ip)| *ip == met)
    {
        return Some(u);
    }
    let shared = candidates.iter().find(|(_, ip)| {
        local_nets
            .iter()
            .any(|(net, len)| net == ip && same_prefix(*ip, follower) >= u32::from(*len))
    });
    if let Some((u, _)) = shared {
        return Some(u);
    }
    // `rev` so that of equally good URLs the first listed wins.
    candidates
        .iter()
        .rev()
        .max_by_key(|(_, ip)| same_prefix(*ip, follower))
        .map(|(u, _)| *u)
}

/// Number of leading bits two addresses of one family share (0 across families).
fn same_prefix(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a) ^ u128::from(b)).leading_zeros(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn tokens_are_32_lowercase_hex_and_differ() {
        let mut rng = Rng::new(1);
        let a = new_token(&mut rng);
        let b = new_token(&mut rng);
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        // Leading zeros are kept: the width is fixed.
        assert_eq!(format!("{:016x}", 1u64).len(), 16);
    }

    #[test]
    fn url_ip_parses_the_forms_add_node_prints() {
        assert_eq!(url_ip("10.0.0.1:25000/abc/def"), Some(ip("10.0.0.1")));
        assert_eq!(url_ip("[fd00::1]:25000/abc"), Some(ip("fd00::1")));
        assert_eq!(url_ip("fd00::1/abc"), Some(ip("fd00::1")));
        assert_eq!(url_ip("none:25000/abc"), None);
    }

    #[test]
    fn choose_url_table() {
        let urls: Vec<String> = [
            "172.17.0.1:25000/t/c",
            "10.1.0.5:25000/t/c",
            "198.18.0.1:25000/t/c",
            "127.0.0.1:25000/t/c",
            "[fd00::5]:25000/t/c",
        ]
        .map(str::to_owned)
        .to_vec();
        let nets = [
            (ip("10.1.0.5"), 16),
            (ip("198.18.0.1"), 24),
            (ip("172.17.0.1"), 16),
        ];
        type Case<'a> = (
            &'a str,
            IpAddr,
            Option<IpAddr>,
            &'a [(IpAddr, u8)],
            Option<&'a str>,
        );
        let cases: [Case<'_>; 7] = [
            (
                "the address the request arrived at wins",
                ip("198.18.0.7"),
                Some(ip("10.1.0.5")),
                &nets,
                Some("10.1.0.5:25000/t/c"),
            ),
            (
                "otherwise the subnet shared with the follower",
                ip("198.18.0.7"),
                None,
                &nets,
                Some("198.18.0.1:25000/t/c"),
            ),
            (
                "a routed follower gets the longest common prefix",
                ip("10.2.3.4"),
                None,
                &nets,
                Some("10.1.0.5:25000/t/c"),
            ),
            (
                "without interface data, longest prefix",
                ip("198.18.1.9"),
                None,
                &[],
                Some("198.18.0.1:25000/t/c"),
            ),
            (
                "IPv6 follower gets the IPv6 URL",
                ip("fd00::9"),
                None,
                &nets,
                Some("[fd00::5]:25000/t/c"),
            ),
            (
                "a met_on that is not among the URLs falls through",
                ip("198.18.0.7"),
                Some(ip("192.0.2.1")),
                &nets,
                Some("198.18.0.1:25000/t/c"),
            ),
            (
                "loopback is never chosen",
                ip("127.0.0.1"),
                Some(ip("127.0.0.1")),
                &[],
                Some("10.1.0.5:25000/t/c"),
            ),
        ];
        for (name, follower, met_on, nets, want) in cases {
            assert_eq!(
                choose_url(&urls, follower, met_on, nets),
                want,
                "case: {name}"
            );
        }
        assert_eq!(choose_url(&urls[..1], ip("fd00::1"), None, &[]), None);
    }
}
