//! The address a request came from when the gateway sits behind load balancers or reverse
//! proxies: per-client budgets need the client's address, not the proxy's.
//!
//! Only the proxies an operator names are believed. A request from any other peer is its own
//! client, whatever `X-Forwarded-For` it carries (a client can write that header too). From a
//! trusted peer the header is read from the right, the end each proxy appends to, and the
//! first address that is not a trusted proxy is the client's.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// One address, or a range of them in CIDR form (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// `192.0.2.7`, `10.0.0.0/8`, `::1` or `2001:db8::/32`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or a CIDR range such as 10.0.0.0/8"))?;
        let longest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => longest,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= longest)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {longest}"))?,
        };
        let range = Self { network, prefix };
        if range.masked(network) != network {
            return Err(format!(
                "{text:?} has bits set beyond its /{prefix} prefix (did you mean {}/{prefix}?)",
                range.masked(network)
            ));
        }
        Ok(range)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        address.is_ipv4() == self.network.is_ipv4() && self.masked(address) == self.network
    }

    fn masked(&self, address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`; it is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`http.trusted_proxies`). Empty: none is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<AddressRange>,
}

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let ranges = entries
            .iter()
            .map(|e| AddressRange::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { ranges })
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(address))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// address in `X-Forwarded-For` that is not a trusted proxy. An entry that is not an address
    /// ends the walk at the hop that wrote it, as does a chain of trusted proxies only.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // Several headers count as one list, in order (RFC 9110, section 5.3).
        let hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(address) = parse_hop(hop) else {
                return client;
            };
            client = address;
            if !self.trusts(address) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.7`, `192.0.2.7:51234`, `2001:db8::1` or
/// `[2001:db8::1]:51234`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(a) = hop.parse::<IpAddr>() {
        return Some(canonical(a));
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_static(X_FORWARDED_FOR),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ranges_parse_and_match() {
        let r = AddressRange::parse("10.0.0.0/8").unwrap();
        assert!(r.contains(ip("10.200.1.2")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(
            r.contains(ip("::ffff:10.1.2.3")),
            "an IPv4-mapped peer is its IPv4 address"
        );
        let one = AddressRange::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = AddressRange::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(AddressRange::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        for bad in ["", "localhost", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/x"] {
            assert!(AddressRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let none = TrustedProxies::default();
        let h = forwarded(&["198.51.100.1"]);
        assert_eq!(none.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let lb = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(lb.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let lb = TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        // The client wrote the first entry itself; the proxies appended the rest.
        let h = forwarded(&["1.2.3.4, 198.51.100.1", "10.0.0.9"]);
        assert_eq!(lb.client(ip("127.0.0.1"), &h), ip("198.51.100.1"));
        assert_eq!(
            lb.client(ip("10.0.0.2"), &forwarded(&["[2001:db8::1]:5000"])),
            ip("2001:db8::1")
        );
        assert_eq!(
            lb.client(ip("10.0.0.2"), &forwarded(&["198.51.100.7:443"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn without_a_usable_header_the_nearest_proxy_is_the_client() {
        let lb = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(lb.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        assert_eq!(lb.client(ip("10.0.0.2"), &forwarded(&["10.0.0.3"])), ip("10.0.0.3"));
        assert_eq!(
            lb.client(ip("10.0.0.2"), &forwarded(&["198.51.100.1, not-an-address, 10.0.0.3"])),
            ip("10.0.0.3"),
            "a garbled entry ends the walk at the hop that wrote it"
        );
    }
}
