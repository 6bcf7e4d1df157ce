//! Spreading a run over several spawned server nodes that share rooms through Redis: which node a
//! client talks to, the flag checks clap cannot express, and the Redis settings every node gets.

use anyhow::{Context as _, bail};

use crate::cli::Common;
use crate::target::is_loopback;

/// Server flags the harness sets on every node itself when `--redis-url` is given; passing them
/// again through `--server-arg` would make the server refuse a repeated flag at startup.
const NODE_REDIS_FLAGS: [&str; 3] = ["--redis-url", "--redis-prefix", "--jwt-secret"];

/// The node client `client` (0-based within its room, writers first) of room `room` talks to.
///
/// Shifting by the room number makes every room span all nodes (once it has as many clients as
/// there are nodes) and puts a room's writers on different nodes, so updates have to cross the
/// relay; shifting also spreads the first writers, and with them the load, evenly over the nodes.
pub fn node_of(room: usize, client: usize, nodes: usize) -> usize {
    (room + client) % nodes.max(1)
}

/// Checks the node and Redis flags before anything is spawned.
pub fn check(common: &Common) -> anyhow::Result<()> {
    if common.nodes > 1 && common.redis_url.is_none() {
        bail!(
            "--nodes {} spreads every room over {} servers, and they share rooms only through Redis: \
             give --redis-url redis://127.0.0.1:6379 (or LOADTEST_REDIS_URL)",
            common.nodes,
            common.nodes
        );
    }
    let Some(url) = &common.redis_url else { return Ok(()) };
    if let Some(arg) =
        common.server_args.iter().find(|a| NODE_REDIS_FLAGS.iter().any(|flag| a.starts_with(flag)))
    {
        bail!(
            "with --redis-url the harness gives every node {} itself; drop --server-arg {arg}",
            NODE_REDIS_FLAGS.join(", ")
        );
    }
    let client = redis::Client::open(url.as_str()).with_context(|| format!("not a Redis URL: {url}"))?;
    let host = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => host.clone(),
        // A Unix socket is on this machine by definition.
        _ => return Ok(()),
    };
    if !(common.allow_remote || is_loopback(host.trim_start_matches('[').trim_end_matches(']'))) {
        bail!("refusing non-loopback Redis {host:?} (pass --allow-remote if you really mean it)");
    }
    Ok(())
}

/// What every node of one run is told about Redis: the same URL, a key and channel prefix of this
/// run's own (runs sharing a Redis never hear each other's rooms) and the same JWT secret (the
/// server refuses to start scaled out without one, and nodes sharing state must share it).
#[derive(Debug, Clone)]
pub struct SharedRedis {
    pub url: String,
    pub prefix: String,
    secret: String,
}

impl SharedRedis {
    pub fn new(url: &str) -> Self {
        let secret: String = (0..4).map(|_| format!("{:016x}", rand::random::<u64>())).collect();
        Self { url: url.to_owned(), prefix: format!("loadtest-{:016x}:", rand::random::<u64>()), secret }
    }

    /// The server arguments that join a node to the others.
    pub fn server_args(&self) -> [&str; 6] {
        ["--redis-url", &self.url, "--redis-prefix", &self.prefix, "--jwt-secret", &self.secret]
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn rooms_span_nodes_and_writers_land_apart() {
        // Two nodes, two writers: in every room the writers sit on different nodes.
        for room in 0..4 {
            assert_ne!(node_of(room, 0, 2), node_of(room, 1, 2), "room {room}");
        }
        // Three nodes, ten clients: every room reaches every node, nearly evenly.
        for room in 0..5 {
            let mut per_node = [0; 3];
            (0..10).for_each(|client| per_node[node_of(room, client, 3)] += 1);
            assert!(per_node.iter().all(|&n| (3..=4).contains(&n)), "room {room}: {per_node:?}");
        }
        // One writer per room: the writers of consecutive rooms alternate between the nodes.
        assert_eq!((0..4).map(|room| node_of(room, 0, 2)).collect::<Vec<_>>(), [0, 1, 0, 1]);
        // One node: everyone on it.
        assert!((0..7).all(|client| node_of(3, client, 1) == 0));
    }

    fn common(argv: &[&str]) -> Result<Common, clap::Error> {
        let cli = Cli::try_parse_from(["loadtest", "fanout"].iter().chain(argv))?;
        let Command::Fanout(args) = cli.command else { panic!("fanout expected") };
        Ok(args.common)
    }

    #[test]
    fn flag_checks() {
        let ok = |argv: &[&str]| check(&common(argv).expect("parses")).expect("valid");
        let refused = |argv: &[&str]| check(&common(argv).expect("parses")).expect_err("refused").to_string();

        ok(&["--spawn", "srv"]);
        ok(&["--spawn", "srv", "--nodes", "1", "--redis-url", "redis://127.0.0.1:6379"]);
        ok(&["--spawn", "srv", "--nodes", "3", "--redis-url", "redis://localhost:6379/2"]);
        ok(&["--spawn", "srv", "--nodes", "2", "--redis-url", "redis+unix:///run/redis.sock"]);
        ok(&["--spawn", "srv", "--nodes", "2", "--redis-url", "redis://10.0.0.5", "--allow-remote"]);

        assert!(refused(&["--spawn", "srv", "--nodes", "2"]).contains("--redis-url"));
        assert!(
            refused(&["--spawn", "s", "--nodes", "2", "--redis-url", "redis://10.0.0.5"])
                .contains("non-loopback")
        );
        assert!(refused(&["--spawn", "s", "--redis-url", "http://127.0.0.1"]).contains("not a Redis URL"));
        let twice =
            refused(&["--spawn", "s", "--redis-url", "redis://127.0.0.1", "--server-arg=--jwt-secret=abc"]);
        assert!(twice.contains("drop --server-arg --jwt-secret=abc"), "{twice}");
    }

    #[test]
    fn clap_ties_nodes_and_redis_to_spawn() {
        assert_eq!(common(&["--spawn", "srv"]).expect("parses").nodes, 1);
        // Several nodes or a Redis only make sense for servers the harness starts.
        assert!(common(&["--url", "ws://127.0.0.1:1/ws", "--nodes", "2"]).is_err());
        assert!(common(&["--url", "ws://127.0.0.1:1/ws", "--redis-url", "redis://127.0.0.1"]).is_err());
        assert!(common(&["--spawn", "srv", "--nodes", "0"]).is_err());
        // The default of 1 does not count as given, so attached runs still parse.
        assert!(common(&["--url", "ws://127.0.0.1:1/ws"]).is_ok());
    }

    #[test]
    fn every_node_gets_the_same_run_specific_settings() {
        let redis = SharedRedis::new("redis://127.0.0.1:6379");
        let args = redis.server_args();
        assert_eq!(args[..2], ["--redis-url", "redis://127.0.0.1:6379"]);
        assert!(args[3].starts_with("loadtest-") && args[3].ends_with(':'), "{}", args[3]);
        assert!(args[5].len() >= 32, "the server wants a secret of at least 32 bytes");
        assert_ne!(SharedRedis::new("redis://x").prefix, redis.prefix, "a prefix per run");
    }
}
