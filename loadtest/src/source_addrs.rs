//! `--source-addrs`: the local addresses client sockets are bound to, round robin, before they
//! connect. One source address reaches one server port through at most its ephemeral port range
//! (about 28k ports on Linux), so more sockets than that need several; every 127.0.0.0/8 address
//! works on Linux loopback without configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

/// Most addresses one flag may expand to: far past any need, short of a typo's /8.
const MAX_ADDRS: u128 = 4096;

/// The parsed list, in order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AddrList(pub Vec<IpAddr>);

/// `A,B,...` where each item is an address or an inclusive range `FIRST-LAST` of one family.
pub fn parse(s: &str) -> Result<AddrList, String> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for item in s.split(',').map(str::trim) {
        let ip = |t: &str| t.trim().parse::<IpAddr>().map_err(|_| format!("not an IP address: {t:?}"));
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => (ip(item)?, ip(item)?),
        };
        let (lo, hi) = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(format!("{item}: a range's ends must be of one address family")),
        };
        if hi < lo {
            return Err(format!("{item}: the range ends before it starts"));
        }
        if (hi - lo + 1) + addrs.len() as u128 > MAX_ADDRS {
            return Err(format!("more than {MAX_ADDRS} source addresses"));
        }
        for n in lo..=hi {
            let addr = match first {
                IpAddr::V4(_) => IpAddr::from(Ipv4Addr::from(u32::try_from(n).expect("within the v4 range"))),
                IpAddr::V6(_) => IpAddr::from(Ipv6Addr::from(n)),
            };
            if addrs.contains(&addr) {
                return Err(format!("{addr} is listed twice"));
            }
            addrs.push(addr);
        }
    }
    Ok(AddrList(addrs))
}

/// Hands out the addresses in turn, one per socket.
#[derive(Debug)]
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceAddrs {
    pub fn new(list: &AddrList) -> Option<Self> {
        (!list.0.is_empty()).then(|| Self { addrs: list.0.clone(), next: AtomicUsize::new(0) })
    }

    /// The address for the next socket.
    pub fn next(&self) -> IpAddr {
        self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> AddrList {
        AddrList(list.iter().map(|s| s.parse().expect("ip")).collect())
    }

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse("127.0.0.2,127.0.0.3"), Ok(ips(&["127.0.0.2", "127.0.0.3"])));
        assert_eq!(
            parse("127.0.0.1-127.0.0.4"),
            Ok(ips(&["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]))
        );
        assert_eq!(
            parse("127.0.0.9, 127.0.0.254-127.0.1.1"),
            Ok(ips(&["127.0.0.9", "127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"])),
            "a range crosses octets"
        );
        assert_eq!(parse("::1"), Ok(ips(&["::1"])));
        assert_eq!(parse("fd00::1-fd00::2"), Ok(ips(&["fd00::1", "fd00::2"])));
    }

    #[test]
    fn refusals() {
        for bad in
            ["", "127.0.0.1,", "localhost", "127.0.0.3-127.0.0.1", "127.0.0.1-::1", "127.0.0.1,127.0.0.1"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let err = parse("127.0.0.0-127.255.255.255").expect_err("too many");
        assert!(err.contains("4096"), "{err}");
    }

    #[test]
    fn round_robin() {
        let s = SourceAddrs::new(&ips(&["127.0.0.2", "127.0.0.3"])).expect("non-empty");
        let got: Vec<String> = (0..5).map(|_| s.next().to_string()).collect();
        assert_eq!(got, ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3", "127.0.0.2"]);
        assert!(SourceAddrs::new(&AddrList(Vec::new())).is_none());
    }
}
