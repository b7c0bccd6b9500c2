//! Who the client is, for the login rate limit and the per-client connection cap: the TCP
//! peer, or, when that peer is one of our own reverse proxies, the address the proxy chain
//! reports; and which addresses count as one client ([`ClientKey`]).
//!
//! A forwarding header is only as honest as whoever wrote each entry. Proxies append on the
//! right, so the entries right of the first untrusted one were written by our own hops and the
//! first untrusted one is the client as our outermost proxy saw it; anything further left is the
//! client's own claim and is never read. A peer outside `TRUSTED_PROXIES` gets no say at all.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: Option<axum::http::HeaderName>,
}

impl TrustedProxies {
    /// `header` is `None` when no proxy is trusted: the peer is then always the client.
    pub fn new(networks: Vec<IpNet>, header: Option<axum::http::HeaderName>) -> Self {
        Self { networks, header }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether `peer` is one of our proxies, whose one connection may carry many clients.
    pub fn is_proxy(&self, peer: IpAddr) -> bool {
        self.trusts(canonical(peer))
    }

    /// The client behind a request from `peer` carrying `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        let Some(name) = &self.header else {
            return peer;
        };
        if !self.trusts(peer) {
            return peer;
        }
        // Every line of the header, in order, as one list: a proxy may add a line of its own
        // instead of extending the last one, and either is the same list (RFC 9110, 5.3).
        let entries = headers
            .get_all(name)
            .iter()
            .flat_map(|line| line.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_entry) else {
                // A hop we trust passed on something we cannot read: that hop is as far as
                // the chain can be followed.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        // Every hop is ours (a health check from inside, say): the leftmost is the origin.
        client
    }
}

/// One entry of a forwarding header: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let v6 = entry.strip_prefix('[')?.strip_suffix(']')?;
    v6.parse::<IpAddr>().ok().map(canonical)
}

/// How a client is told apart from others: an IPv4 address, or an IPv6 prefix (see
/// [`ClientKeying`]), the block one subscriber is handed and can rotate through for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    V4([u8; 4]),
    /// The address's first 64 bits, those past the prefix length set to zero.
    V6([u8; 8]),
}

/// Which addresses count as one client, for every per-client limit alike: each IPv4 address
/// on its own, and IPv6 addresses by their first `ipv6_prefix` bits (`CLIENT_IPV6_PREFIX`).
///
/// A /64 is what one subscriber is handed, so it is the default. An attacker with a whole
/// /48 or /32 still has 2^16 or 2^32 of those to rotate through, and no limit per /64 can see
/// that; an operator under such an attack keys by the wider prefix instead, accepting that
/// the subscribers inside it share one allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeying {
    ipv6_prefix: u8,
}

impl ClientKeying {
    /// One subscriber's share of IPv6 space.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;
    /// A regional registry's smallest allocation to a provider: wider would lump providers
    /// together.
    pub const WIDEST_IPV6_PREFIX: u8 = 32;

    /// `None` outside `WIDEST_IPV6_PREFIX..=DEFAULT_IPV6_PREFIX`: a prefix longer than /64
    /// would let one subscriber count as many clients.
    pub fn new(ipv6_prefix: u8) -> Option<Self> {
        (Self::WIDEST_IPV6_PREFIX..=Self::DEFAULT_IPV6_PREFIX)
            .contains(&ipv6_prefix)
            .then_some(Self { ipv6_prefix })
    }

    pub fn ipv6_prefix(self) -> u8 {
        self.ipv6_prefix
    }

    /// The client `ip` belongs to.
    pub fn key(self, ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let first_64 = u64::from_be_bytes(
                    v6.octets()[..8]
                        .try_into()
                        .expect("an IPv6 address has 16 bytes"),
                );
                let kept = first_64 & (u64::MAX << (64 - u32::from(self.ipv6_prefix)));
                ClientKey::V6(kept.to_be_bytes())
            }
        }
    }
}

impl Default for ClientKeying {
    fn default() -> Self {
        Self {
            ipv6_prefix: Self::DEFAULT_IPV6_PREFIX,
        }
    }
}

/// An IPv4 client reached over an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A `TRUSTED_PROXIES` entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is neither a CIDR (10.0.0.0/8, fd00::/8) nor an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    fn proxies(nets: &[&str], header: &str) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter().map(|n| parse_network(n).unwrap()).collect(),
            Some(HeaderName::from_bytes(header.as_bytes()).unwrap()),
        )
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        assert_eq!(
            p.client_ip(ip("203.0.113.9"), &xff(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn no_trusted_header_means_the_peer() {
        let p = TrustedProxies::default();
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &xff(&["1.2.3.4"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        // The client forged the first entry; our proxy appended what it saw.
        let headers = xff(&["6.6.6.6, 198.51.100.7, 10.1.2.3"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
    }

    #[test]
    fn all_header_lines_form_one_list() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        let headers = xff(&["6.6.6.6", "198.51.100.7", "10.1.2.3"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
        // A forged first line cannot displace the one our proxy added last.
        let headers = xff(&["198.51.100.8, 6.6.6.6", "198.51.100.7"]);
        assert_eq!(p.client_ip(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
    }

    #[test]
    fn ports_and_brackets_are_understood() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        for (entry, want) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ] {
            assert_eq!(
                p.client_ip(ip("10.0.0.1"), &xff(&[entry])),
                ip(want),
                "{entry}"
            );
        }
    }

    #[test]
    fn an_unreadable_entry_stops_the_walk_at_the_hop_that_passed_it() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &xff(&["198.51.100.7, unknown, 10.9.9.9"])),
            ip("10.9.9.9")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &xff(&["garbage"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_chain_of_trusted_hops_only_yields_its_origin() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &xff(&["10.3.3.3, 10.2.2.2"])),
            ip("10.3.3.3")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_single_value_header_works_the_same() {
        let p = proxies(&["127.0.0.1"], "x-real-ip");
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(p.client_ip(ip("127.0.0.1"), &headers), ip("198.51.100.7"));
        assert_eq!(p.client_ip(ip("127.0.0.2"), &headers), ip("127.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_their_prefix_and_ipv4_clients_their_address() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let by_64 = ClientKeying::default();
        assert_eq!(
            by_64.key(ip("2001:db8:1:2::1")),
            by_64.key(ip("2001:db8:1:2:ffff:1234:5678:9abc"))
        );
        assert_ne!(
            by_64.key(ip("2001:db8:1:2::1")),
            by_64.key(ip("2001:db8:1:3::1"))
        );
        let by_48 = ClientKeying::new(48).unwrap();
        assert_eq!(
            by_48.key(ip("2001:db8:1:2::1")),
            by_48.key(ip("2001:db8:1:ffff::9"))
        );
        assert_ne!(
            by_48.key(ip("2001:db8:1:2::1")),
            by_48.key(ip("2001:db8:2:2::1"))
        );
        assert_eq!(
            by_48.key(ip("2001:db8:1::")),
            ClientKey::V6([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0])
        );
        let by_32 = ClientKeying::new(32).unwrap();
        assert_eq!(
            by_32.key(ip("2001:db8:ffff:ffff::1")),
            by_32.key(ip("2001:db8::2"))
        );
        // IPv4 ignores the prefix, mapped or not.
        assert_eq!(by_32.key(ip("::ffff:10.0.0.9")), by_32.key(ip("10.0.0.9")));
        assert_ne!(by_32.key(ip("10.0.0.9")), by_32.key(ip("10.0.0.10")));
        assert!(ClientKeying::new(31).is_none() && ClientKeying::new(65).is_none());
    }

    #[test]
    fn networks_parse_as_cidrs_or_single_addresses() {
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network("10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(parse_network("fd00::/8").unwrap().to_string(), "fd00::/8");
        for bad in ["10.0.0.0/33", "10.0.0", "example.com", "", "10.0.0.0/"] {
            let err = parse_network(bad).unwrap_err();
            assert!(err.contains("CIDR"), "{bad}: {err}");
        }
    }
}
