//! What the kernel holds for TCP sockets, machine-wide (Linux): the count and buffer pages from
//! `/proc/net/sockstat`, and the socket objects' slab caches from `/proc/slabinfo` (readable by
//! root only; absent otherwise). None of it is in any process's RSS, so the idle run reports it
//! apart from the server's memory. On loopback both ends of every connection are on this machine.

use serde::Serialize;

/// Slab caches that grow by one object per TCP socket: the socket itself and its inode.
const SOCKET_SLABS: [&str; 2] = ["TCP", "sock_inode_cache"];

/// One reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// TCP sockets in use.
    pub tcp_sockets: u64,
    /// Memory in TCP socket buffers, KiB.
    pub buffer_kib: u64,
    /// Memory in the sockets' slab objects, KiB; `None` where /proc/slabinfo is not readable.
    pub slab_kib: Option<u64>,
}

impl Reading {
    /// Now; `None` where /proc/net/sockstat cannot be read (not Linux).
    pub fn now() -> Option<Self> {
        let (tcp_sockets, pages) = parse_sockstat(&std::fs::read_to_string("/proc/net/sockstat").ok()?)?;
        let slab_kib = std::fs::read_to_string("/proc/slabinfo").ok().and_then(|s| parse_slab_kib(&s));
        Some(Self { tcp_sockets, buffer_kib: pages * page_kib(), slab_kib })
    }
}

/// The kernel's part of the idle sockets, between a reading before they opened and one after they
/// settled.
#[derive(Debug, Clone, Serialize)]
pub struct KernelCost {
    /// TCP sockets opened meanwhile, machine-wide: on loopback, both ends of each connection.
    pub tcp_sockets_added: i64,
    pub buffer_kib_before: u64,
    pub buffer_kib_after: u64,
    /// Growth of the sockets' slab objects per socket added, KiB; `None` without /proc/slabinfo.
    pub slab_kib_per_socket: Option<f64>,
}

impl KernelCost {
    pub fn between(before: &Reading, after: &Reading) -> Self {
        let added = after.tcp_sockets as i64 - before.tcp_sockets as i64;
        let slab_kib_per_socket = before
            .slab_kib
            .zip(after.slab_kib)
            .filter(|_| added > 0)
            .map(|(b, a)| (a as f64 - b as f64) / added as f64);
        Self {
            tcp_sockets_added: added,
            buffer_kib_before: before.buffer_kib,
            buffer_kib_after: after.buffer_kib,
            slab_kib_per_socket,
        }
    }
}

/// (TCP sockets in use, TCP buffer pages) from /proc/net/sockstat's `TCP:` line.
fn parse_sockstat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let value =
        |name: &str| fields.iter().position(|f| *f == name).and_then(|i| fields.get(i + 1)?.parse().ok());
    Some((value("inuse")?, value("mem")?))
}

/// KiB held by the [`SOCKET_SLABS`] caches: active objects × object size.
fn parse_slab_kib(text: &str) -> Option<u64> {
    let mut bytes = 0u64;
    let mut found = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if let [name, active, _total, size, ..] = fields[..]
            && SOCKET_SLABS.contains(&name)
        {
            bytes += active.parse::<u64>().ok()? * size.parse::<u64>().ok()?;
            found += 1;
        }
    }
    (found > 0).then_some(bytes / 1024)
}

fn page_kib() -> u64 {
    page_size_bytes().map_or(4, |bytes| bytes / 1024)
}

/// The page size, from `getconf` (4 KiB on every common Linux machine if that fails).
fn page_size_bytes() -> Option<u64> {
    let out = std::process::Command::new("getconf").arg("PAGESIZE").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok().filter(|&b: &u64| b >= 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_and_slabinfo_lines_are_read() {
        let sockstat = "sockets: used 295\nTCP: inuse 27 orphan 0 tw 3 alloc 30 mem 12\nUDP: inuse 2 mem 4\n";
        assert_eq!(parse_sockstat(sockstat), Some((27, 12)));
        let slabinfo = "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\n\
                        TCP 100 120 2432 13 8 : tunables 0 0 0\n\
                        sock_inode_cache 200 210 832 39 8 : tunables 0 0 0\n\
                        UDP 5 10 1216 26 8 : tunables 0 0 0\n";
        assert_eq!(parse_slab_kib(slabinfo), Some((100 * 2432 + 200 * 832) / 1024));
        assert_eq!(parse_slab_kib("slabinfo - version: 2.1\n"), None);
        let cost = KernelCost::between(
            &Reading { tcp_sockets: 10, buffer_kib: 40, slab_kib: Some(1000) },
            &Reading { tcp_sockets: 30, buffer_kib: 48, slab_kib: Some(1064) },
        );
        assert_eq!((cost.tcp_sockets_added, cost.slab_kib_per_socket), (20, Some(3.2)));
    }
}
