//! `loadtest idle --source-addrs` against an embedded server: 2,000 sockets bound round robin to
//! four loopback addresses, checked from the kernel's socket table (`/proc/net/tcp`) while they
//! sit idle: each address holds a quarter of the connections to the server's port. The report's
//! memory curve runs from no socket to all of them, and the plot draws it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::server_bin::codecrafter;

/// Established IPv4 connections to 127.0.0.1:`port`, counted by their local (source) address.
fn sources_connected_to(port: u16) -> BTreeMap<Ipv4Addr, usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("reading /proc/net/tcp");
    let mut by_source = BTreeMap::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st ...; addresses are `HEXIP:HEXPORT`, st 01 is ESTABLISHED.
        let (Some(local), Some(remote), Some(&"01")) = (fields.get(1), fields.get(2), fields.get(3)) else {
            continue;
        };
        let parse = |a: &str| {
            let (ip, port) = a.split_once(':')?;
            // The address is the kernel's in-memory (network order) word printed as a host integer.
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes());
            Some((ip, u16::from_str_radix(port, 16).ok()?))
        };
        // The server's own side of each connection has it the other way round: its remote is
        // the client, never 127.0.0.1:port.
        if let (Some((ip, _)), Some(remote)) = (parse(local), parse(remote))
            && remote == (Ipv4Addr::LOCALHOST, port)
        {
            *by_source.entry(ip).or_insert(0) += 1;
        }
    }
    by_source
}

#[test]
fn idle_sockets_come_from_every_source_address() {
    let out_dir = tempfile::tempdir().expect("temp dir");
    let (report, plot) = (out_dir.path().join("idle.json"), out_dir.path().join("idle.svg"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["idle", "--spawn"])
        .arg(codecrafter())
        .args(["--sockets", "2000", "--rooms", "20", "--settle", "3s", "--timeout", "1m"])
        .args(["--source-addrs", "127.0.0.2-127.0.0.4,127.0.0.9"])
        .arg("--report")
        .arg(&report)
        .arg("--plot")
        .arg(&plot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running loadtest");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    let mut port = None;
    // The settle time starts once every socket is synced: the harness says so, then waits.
    for line in lines.by_ref() {
        seen.push(line.clone());
        if let Some(url) = line.strip_prefix("target ws://127.0.0.1:") {
            port = url.split('/').next().and_then(|p| p.parse::<u16>().ok());
        }
        if line.contains("sockets synced in") {
            break;
        }
    }
    let port = port.unwrap_or_else(|| panic!("no target line; output so far:\n{}", seen.join("\n")));
    let sources = sources_connected_to(port);
    seen.extend(lines);
    let out = child.wait_with_output().expect("loadtest finished");
    let context = format!(
        "loadtest {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        seen.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{context}");
    let want: BTreeMap<Ipv4Addr, usize> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
        .iter()
        .map(|a| (a.parse().expect("ip"), 500))
        .collect();
    assert_eq!(sources, want, "connections to port {port} by source address; {context}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON report");
    let curve: Vec<(f64, f64)> = report["memory_curve"]
        .as_array()
        .expect("a memory curve")
        .iter()
        .map(|p| (p[0].as_f64().expect("sockets"), p[1].as_f64().expect("MiB")))
        .collect();
    assert!(curve.len() >= 40, "about 50 points: {curve:?}");
    assert_eq!((curve[0].0, curve[curve.len() - 1].0), (0.0, 2000.0), "from none to every socket");
    assert!(curve.windows(2).all(|w| w[0].0 < w[1].0), "in socket order: {curve:?}");
    assert!(curve.iter().all(|&(_, mib)| mib > 1.0), "the server's RSS: {curve:?}");
    // The kernel's part, apart from any RSS: both ends of the 2,000 loopback connections were
    // open when it was read. Machine-wide: tests running alongside open and close sockets too,
    // hence the margin of half.
    let kernel = &report["kernel"];
    let added = kernel["tcp_sockets_added"].as_i64().expect("TCP sockets counted");
    assert!(added >= 2000, "both ends of each connection: {kernel}");
    assert!(kernel["buffer_kib_after"].is_u64(), "{kernel}");
    let svg = std::fs::read_to_string(&plot).expect("plot");
    assert!(svg.contains("idle: 2000 sockets over 20 rooms, 1 node"), "{svg}");
    assert_eq!(svg.matches("<polyline class=\"curve\"").count(), 1);
}
