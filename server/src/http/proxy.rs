//! Who the client is behind reverse proxies: its IP (for every per-IP limit: the API, failed
//! logins, WebSocket connects) and whether it spoke HTTPS (for HSTS). One function each, used by
//! every caller, so a limit and a header can never disagree on whom to trust.
//!
//! nginx (`$proxy_add_x_forwarded_for`), AWS ALB and Traefik *append* the address they saw to
//! `X-Forwarded-For`, after whatever the client sent. So only the right-hand end of the list is
//! written by our proxies; the left-most entry is the client's to choose. The client is the
//! right-most address that is not one of our proxies:
//! - `--trusted-proxies <CIDR,...>`: when the TCP peer is in the list, walk the list from the
//!   right, skipping addresses in it; the first one that is not is the client. From any other peer
//!   the headers are ignored. Checked by address, so a client that reaches the server directly
//!   cannot spoof anything.
//! - `--proxy-hops N`: there are exactly N proxies in front; the client is the N-th entry from the
//!   right (the left-most, when there are fewer). Use it when the proxies' addresses are not known.
//! - `--trust-proxy` (the old flag): one proxy in front, i.e. `--proxy-hops 1`. It used to take the
//!   left-most entry, which the client controls.
//!
//! Several `X-Forwarded-For` headers are one list, in order. An entry that is not an address
//! stops the walk: the client is then the last address a trusted hop vouched for (the proxy
//! itself at worst), never something the client wrote.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

use crate::cidr::{Cidr, canonical};
use crate::config::Config;

/// Whose forwarding headers count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust<'a> {
    Nobody,
    Hops(usize),
    Addresses(&'a [Cidr]),
}

fn trust(config: &Config) -> Trust<'_> {
    if !config.trusted_proxies.is_empty() {
        Trust::Addresses(&config.trusted_proxies)
    } else if config.proxy_hops > 0 {
        Trust::Hops(config.proxy_hops)
    } else if config.trust_proxy {
        Trust::Hops(1)
    } else {
        Trust::Nobody
    }
}

/// The client's IP: `peer` (the TCP connection's), or what trusted proxies say (see the module).
pub fn client_ip(config: &Config, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), canonical);
    match trust(config) {
        Trust::Nobody => peer,
        Trust::Addresses(trusted) => {
            let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
            if !is_trusted(peer) {
                return peer;
            }
            let mut client = peer;
            for entry in forwarded_for(headers).iter().rev() {
                let Some(ip) = parse_entry(entry) else { break };
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            client
        }
        Trust::Hops(hops) => {
            let entries = forwarded_for(headers);
            // Every entry right of the client's was written by one of our proxies.
            let from = entries.len().saturating_sub(hops);
            entries[from..].iter().find_map(|entry| parse_entry(entry)).unwrap_or(peer)
        }
    }
}

/// Whether a trusted proxy says the client came over HTTPS (`X-Forwarded-Proto`, the right-most
/// value: the word of the proxy nearest to us). Never from an untrusted peer.
pub fn forwarded_https(config: &Config, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
    let trusted = match trust(config) {
        Trust::Nobody => false,
        Trust::Hops(_) => true,
        Trust::Addresses(trusted) => {
            peer.is_some_and(|peer| trusted.iter().any(|range| range.contains(peer)))
        }
    };
    trusted
        && list(headers, "x-forwarded-proto").last().is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The bucket a per-IP limit counts `ip` in: the address itself for IPv4, its /64 for IPv6 (one
/// subscriber's LAN gets a whole /64 and may pick any address in it).
pub fn bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
            format!("{network}/64")
        }
    }
}

fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    list(headers, "x-forwarded-for")
}

/// Every value of the header `name`, comma-separated entries of all its lines, in order. A line
/// that is not text is one entry that parses as nothing.
fn list<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{fffd}").split(','))
        .map(str::trim)
        .collect()
}

/// `203.0.113.7`, `2001:db8::1`, and the forms with a port some proxies write (`203.0.113.7:5123`,
/// `[2001:db8::1]:5123`); anything else is not an address.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(canonical(ip))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use clap::Parser;

    use super::*;

    const PROXY: &str = "10.0.0.2";

    fn config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("codecrafter").chain(args.iter().copied()))
    }

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in forwarded {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[track_caller]
    fn check(args: &[&str], peer: &str, forwarded: &[&str], expected: &str) {
        let ip = client_ip(&config(args), &headers(forwarded), Some(peer.parse().unwrap()));
        assert_eq!(
            ip,
            expected.parse::<IpAddr>().unwrap(),
            "{args:?}, peer {peer}, X-Forwarded-For {forwarded:?}"
        );
    }

    #[test]
    fn without_trust_the_peer_is_the_client() {
        check(&[], PROXY, &["198.51.100.1, 203.0.113.7"], PROXY);
        check(&[], "::ffff:203.0.113.9", &[], "203.0.113.9");
    }

    #[test]
    fn trusted_addresses_take_the_right_most_untrusted_entry() {
        let args = ["--trusted-proxies", "10.0.0.0/8, fd00::/8"];
        check(&args, PROXY, &["203.0.113.7"], "203.0.113.7");
        check(&args, PROXY, &["198.51.100.66, 203.0.113.7"], "203.0.113.7");
        check(&args, PROXY, &["198.51.100.66, 203.0.113.7, 10.1.2.3"], "203.0.113.7");
        check(&args, PROXY, &["198.51.100.66", "203.0.113.7, 10.1.2.3"], "203.0.113.7");
        check(&args, "fd00::1", &["2001:db8::5, fd00::9"], "2001:db8::5");
        check(&args, "::ffff:10.0.0.2", &["[2001:db8::5]:4000"], "2001:db8::5");
        check(&args, PROXY, &["203.0.113.7:5123"], "203.0.113.7");
        // Every hop trusted: the left-most is the origin.
        check(&args, PROXY, &["10.9.9.9, 10.1.2.3"], "10.9.9.9");
        // Headers from a peer we do not trust are the client's own words.
        check(&args, "198.51.100.1", &["203.0.113.7"], "198.51.100.1");
        // No header, or an empty one: the proxy itself.
        check(&args, PROXY, &[], PROXY);
        check(&args, PROXY, &[""], PROXY);
    }

    #[test]
    fn malformed_entries_stop_at_the_last_vouched_address() {
        let args = ["--trusted-proxies", "10.0.0.0/8"];
        check(&args, PROXY, &["garbage, 203.0.113.7"], "203.0.113.7");
        check(&args, PROXY, &["203.0.113.7, garbage"], PROXY);
        check(&args, PROXY, &["203.0.113.7, unknown, 10.1.2.3"], "10.1.2.3");
        check(&args, PROXY, &["203.0.113.7,,10.1.2.3"], "10.1.2.3");
        check(&args, PROXY, &["203.0.113.7/24"], PROXY);
        let mut not_text = headers(&["203.0.113.7"]);
        not_text.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let ip = client_ip(&config(&args), &not_text, Some(PROXY.parse().unwrap()));
        assert_eq!(ip, PROXY.parse::<IpAddr>().unwrap(), "a line that is not text is not an address");
    }

    #[test]
    fn hops_count_proxies_from_the_right() {
        check(&["--proxy-hops", "1"], PROXY, &["198.51.100.66, 203.0.113.7"], "203.0.113.7");
        check(&["--trust-proxy"], PROXY, &["198.51.100.66, 198.51.100.67, 203.0.113.7"], "203.0.113.7");
        check(&["--proxy-hops", "2"], PROXY, &["198.51.100.66, 203.0.113.7, 10.0.0.1"], "203.0.113.7");
        check(&["--proxy-hops", "2"], PROXY, &["198.51.100.66", "203.0.113.7", "10.0.0.1"], "203.0.113.7");
        // Fewer entries than proxies: the left-most there is.
        check(&["--proxy-hops", "3"], PROXY, &["203.0.113.7, 10.0.0.1"], "203.0.113.7");
        // The client's slot is not an address: the next hop to the right, then the peer.
        check(&["--proxy-hops", "2"], PROXY, &["198.51.100.66, junk, 10.0.0.1"], "10.0.0.1");
        check(&["--trust-proxy"], PROXY, &["203.0.113.7, junk"], PROXY);
        check(&["--trust-proxy"], PROXY, &[], PROXY);
    }

    #[test]
    fn https_only_on_a_trusted_proxys_word() {
        let https = |args: &[&str], peer: &str, protos: &[&str]| {
            let mut headers = HeaderMap::new();
            for proto in protos {
                headers.append("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
            }
            forwarded_https(&config(args), &headers, Some(peer.parse().unwrap()))
        };
        assert!(!https(&[], PROXY, &["https"]), "no proxy trusted");
        assert!(https(&["--trust-proxy"], PROXY, &["https"]));
        assert!(https(&["--trusted-proxies", "10.0.0.0/8"], PROXY, &["HTTPS"]));
        assert!(!https(&["--trusted-proxies", "10.0.0.0/8"], "198.51.100.1", &["https"]), "untrusted peer");
        assert!(!https(&["--proxy-hops", "2"], PROXY, &["https, http"]), "the nearest proxy's word counts");
        assert!(https(&["--proxy-hops", "2"], PROXY, &["http", "https"]));
        assert!(!https(&["--trust-proxy"], PROXY, &[]));
    }

    #[test]
    fn cidrs_parse_and_match() {
        let range = |text: &str| text.parse::<Cidr>();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(range("10.0.0.0/8").unwrap().contains(ip("10.255.1.2")));
        assert!(!range("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(range("10.0.0.0/8").unwrap().contains(ip("::ffff:10.1.1.1")), "mapped IPv4 matches");
        assert!(range("203.0.113.7").unwrap().contains(ip("203.0.113.7")));
        assert!(!range("203.0.113.7").unwrap().contains(ip("203.0.113.8")));
        assert!(range("0.0.0.0/0").unwrap().contains(ip("198.51.100.1")));
        assert!(!range("0.0.0.0/0").unwrap().contains(ip("::1")), "an IPv4 range holds no IPv6");
        assert!(range("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(range("fd00::/8").unwrap().contains(ip("fdff::1")));
        assert!(range("::1").unwrap().contains(ip("::1")));
        assert_eq!(range(" 10.1.2.3/16 ").unwrap().to_string(), "10.1.2.3/16");
        for bad in ["10.0.0.0/33", "::/129", "10.0.0/8", "proxy", "10.0.0.0/", "10.0.0.0/-1", ""] {
            assert!(range(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(bucket(ip("2001:db8:1:2:ffff::1")), "2001:db8:1:2::/64");
        assert_eq!(bucket(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(bucket(ip("::ffff:203.0.113.7")), "203.0.113.7");

        fn ip(text: &str) -> IpAddr {
            text.parse().unwrap()
        }
    }
}
