//! Caps on plain HTTP connections, in total and per client IP, taken at accept (before a byte of
//! the request is read) and released when the connection closes or upgrades to a WebSocket. The
//! per-IP count is by TCP peer, IPv6 by /64 (one subscriber gets a whole /64, as the rate limits
//! count it), and skips the trusted reverse proxies, whose connections carry many clients.
//!
//! Why a WebSocket leaves the count: WebSockets have their own cap (`--max-connections`, default
//! 100,000), and a few IPs legitimately hold thousands of them (a NAT, a load harness on
//! 127.0.0.1). What these caps bound is the cheap attack: connections that send nothing or half
//! a request and hold a descriptor each. An upgrade has passed the WebSocket admission (throttle,
//! connection slot) by then.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cidr::Cidr;
use crate::telemetry::{HttpRefusal, Metrics};

pub struct ConnectionLimits {
    /// 0 = unlimited.
    max_total: usize,
    /// 0 = unlimited (and no per-IP bookkeeping at all).
    max_per_ip: usize,
    /// Peers not held to `max_per_ip`.
    exempt: Vec<Cidr>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted plain HTTP connection; dropping it gives the place back.
pub struct HttpSlot {
    limits: Arc<ConnectionLimits>,
    /// The per-IP key it counts under, if any.
    ip: Option<IpAddr>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize, exempt: Vec<Cidr>) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_ip, exempt, open: Mutex::new(Open::default()) })
    }

    /// Count a new connection from `peer`, or say which cap it would pass.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<HttpSlot, HttpRefusal> {
        let peer = peer.to_canonical();
        let ip = (self.max_per_ip > 0 && !self.exempt.iter().any(|range| range.contains(peer)))
            .then(|| per_ip_key(peer));
        let mut open = self.open.lock();
        if self.max_total > 0 && open.total >= self.max_total {
            return Err(HttpRefusal::Total);
        }
        if let Some(ip) = ip {
            let from_ip = open.by_ip.entry(ip).or_insert(0);
            if *from_ip >= self.max_per_ip {
                return Err(HttpRefusal::PerIp);
            }
            *from_ip += 1;
        }
        open.total += 1;
        drop(open);
        Metrics::get().http_connections.increment(1.0);
        Ok(HttpSlot { limits: self.clone(), ip })
    }

    /// Plain HTTP connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().total
    }

    fn release(&self, ip: Option<IpAddr>) {
        let mut open = self.open.lock();
        open.total -= 1;
        if let Some(ip) = ip
            && let Some(from_ip) = open.by_ip.get_mut(&ip)
        {
            *from_ip -= 1;
            if *from_ip == 0 {
                // Keep the map as small as the set of IPs connected right now.
                open.by_ip.remove(&ip);
            }
        }
        drop(open);
        Metrics::get().http_connections.decrement(1.0);
    }
}

/// The address an IP counts under: itself for IPv4, its /64 network for IPv6.
fn per_ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_cap_admits_n_and_refuses_the_next_until_one_leaves() {
        let limits = ConnectionLimits::new(0, 2, Vec::new());
        let first = limits.admit(A).unwrap();
        let _second = limits.admit(A).unwrap();
        assert_eq!(limits.admit(A).err(), Some(HttpRefusal::PerIp));
        // Another address has its own budget.
        let _other = limits.admit(B).unwrap();
        drop(first);
        let _third = limits.admit(A).expect("a place was given back");
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn total_cap_admits_n_and_refuses_the_next_whatever_the_ip() {
        let limits = ConnectionLimits::new(2, 0, Vec::new());
        let _a = limits.admit(A).unwrap();
        let b = limits.admit(B).unwrap();
        assert_eq!(limits.admit(B).err(), Some(HttpRefusal::Total));
        drop(b);
        let _c = limits.admit(A).unwrap();
    }

    #[test]
    fn zero_means_unlimited_and_the_ip_map_empties() {
        let limits = ConnectionLimits::new(0, 0, Vec::new());
        let slots: Vec<_> = (0..1000).map(|_| limits.admit(A).unwrap()).collect();
        assert_eq!(limits.open(), 1000);
        drop(slots);
        let limits = ConnectionLimits::new(0, 5, Vec::new());
        drop(limits.admit(A).unwrap());
        assert!(limits.open.lock().by_ip.is_empty(), "no entry left for an IP with no connection");
    }

    #[test]
    fn ipv6_counts_by_64_mapped_ipv4_as_ipv4_and_proxies_are_exempt() {
        let proxy: Cidr = "10.0.0.0/24".parse().unwrap();
        let limits = ConnectionLimits::new(0, 1, vec![proxy]);
        let _one = limits.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let same_64 = limits.admit("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(same_64.err(), Some(HttpRefusal::PerIp), "another address of the same /64");
        let _other_64 = limits.admit("2001:db8:1:3::1".parse().unwrap()).unwrap();
        let _v4 = limits.admit("192.0.2.7".parse().unwrap()).unwrap();
        let mapped = limits.admit("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped.err(), Some(HttpRefusal::PerIp), "the IPv4-mapped form is the same client");
        // A trusted proxy carries many clients: no per-IP cap for it.
        let from_proxy: Vec<_> = (0..5).map(|_| limits.admit(A).unwrap()).collect();
        assert_eq!(from_proxy.len(), 5);
    }
}
