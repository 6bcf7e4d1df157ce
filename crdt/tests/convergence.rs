//! Seeded multi-client convergence: 3-5 yrs clients edit Y.Text, Y.Map and Y.Array concurrently
//! through a simulated network to a `RoomDoc` server that relays updates, with random drops,
//! reordering, disconnects with offline editing, reconnects (sync step 1/2 both ways, as
//! y-websocket does) and server restarts from a snapshot. Every run must end with every client
//! and the server holding the same content and state vector.

mod common;

use common::*;
use crdt::{Limits, RoomDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use yrs::Doc;

const SEEDS: u64 = 200;
const STEPS: usize = 500;

/// y-protocols sync messages, as the simulation needs them.
enum Msg {
    Step1(Vec<u8>),
    Step2(Vec<u8>),
    Update(Vec<u8>),
}

struct Peer {
    doc: Doc,
    online: bool,
    /// From the server, in flight; delivered in random order.
    inbox: Vec<Msg>,
}

#[derive(Default, Debug)]
struct Stats {
    dropped: usize,
    reordered: usize,
    reconnects: usize,
    restarts: usize,
    offline_edits: usize,
    /// Updates the server had to keep waiting for their dependencies.
    server_pending: usize,
    /// Updates the server relayed as its own encoding (overlapping or released ones).
    reencoded: usize,
}

struct Sim {
    rng: StdRng,
    drop_rate: f64,
    server: RoomDoc,
    peers: Vec<Peer>,
    /// To the server, in flight, with the sender's index; delivered in random order.
    to_server: Vec<(usize, Msg)>,
    stats: Stats,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.random_range(3..=5);
        let peers =
            (0..n).map(|i| Peer { doc: client(i as u64 + 1), online: false, inbox: Vec::new() }).collect();
        let mut sim = Sim {
            rng,
            drop_rate: 0.15,
            server: RoomDoc::new(Limits::default()),
            peers,
            to_server: Vec::new(),
            stats: Stats::default(),
        };
        for p in 0..n {
            sim.connect(p);
        }
        sim
    }

    fn lost(&mut self) -> bool {
        let lost = self.rng.random_bool(self.drop_rate);
        self.stats.dropped += usize::from(lost);
        lost
    }

    fn send_to_server(&mut self, from: usize, msg: Msg) {
        if !self.lost() {
            self.to_server.push((from, msg));
        }
    }

    fn send_to_peer(&mut self, to: usize, msg: Msg) {
        if self.peers[to].online && !self.lost() {
            self.peers[to].inbox.push(msg);
        }
    }

    /// Opening a connection: each side sends its state vector (sync step 1).
    fn connect(&mut self, p: usize) {
        self.peers[p].online = true;
        let sv = encoded_sv(&self.peers[p].doc);
        self.send_to_server(p, Msg::Step1(sv));
        let sv = self.server.state_vector().unwrap();
        self.send_to_peer(p, Msg::Step1(sv));
    }

    /// Everything in flight on the connection is lost with it.
    fn disconnect(&mut self, p: usize) {
        self.peers[p].online = false;
        self.peers[p].inbox.clear();
        self.to_server.retain(|(from, _)| *from != p);
    }

    fn restart_server(&mut self) {
        self.stats.restarts += 1;
        for p in 0..self.peers.len() {
            self.disconnect(p);
        }
        let snapshot = self.server.snapshot().unwrap();
        self.server = RoomDoc::from_snapshot(&snapshot, Limits::default()).expect("reload");
    }

    fn edit(&mut self, p: usize) {
        let update = random_edit(&self.peers[p].doc, &mut self.rng);
        if self.peers[p].online {
            self.send_to_server(p, Msg::Update(update));
        } else {
            self.stats.offline_edits += 1;
        }
    }

    fn pick<T>(rng: &mut StdRng, stats: &mut Stats, queue: &mut Vec<T>) -> Option<T> {
        if queue.is_empty() {
            return None;
        }
        let i = rng.random_range(0..queue.len());
        stats.reordered += usize::from(i + 1 != queue.len());
        Some(queue.remove(i))
    }

    /// The server's side: apply and relay updates (as y-websocket relays to every other
    /// connection), answer step 1 with step 2.
    fn deliver_to_server(&mut self) {
        let Some((from, msg)) = Self::pick(&mut self.rng, &mut self.stats, &mut self.to_server) else {
            return;
        };
        match msg {
            Msg::Step1(sv) => {
                let diff = self.server.diff(&sv).expect("client state vector");
                self.send_to_peer(from, Msg::Step2(diff));
            }
            Msg::Step2(update) | Msg::Update(update) => {
                let applied = self.server.apply_update(&update).expect("client update");
                self.stats.server_pending += usize::from(applied.pending);
                // As the server's room relays: the update to every other client when it integrated
                // as sent, then what else it integrated to every client.
                if applied.relay_original {
                    for to in (0..self.peers.len()).filter(|&to| to != from) {
                        self.send_to_peer(to, Msg::Update(update.clone()));
                    }
                }
                for part in applied.relay_encoded {
                    self.stats.reencoded += 1;
                    for to in 0..self.peers.len() {
                        self.send_to_peer(to, Msg::Update(part.clone()));
                    }
                }
            }
        }
    }

    fn deliver_to_peer(&mut self, p: usize) {
        let Some(msg) = Self::pick(&mut self.rng, &mut self.stats, &mut self.peers[p].inbox) else {
            return;
        };
        match msg {
            Msg::Step1(sv) => {
                let reply = diff(&self.peers[p].doc, &sv);
                self.send_to_server(p, Msg::Step2(reply));
            }
            Msg::Step2(update) | Msg::Update(update) => apply(&self.peers[p].doc, &update),
        }
    }

    fn step(&mut self) {
        let p = self.rng.random_range(0..self.peers.len());
        match self.rng.random_range(0..100) {
            0..30 => self.edit(p),
            30..55 => self.deliver_to_server(),
            55..85 => self.deliver_to_peer(p),
            85..89 if self.peers[p].online => self.connect(p), // a resync on a live connection
            89..93 if self.peers[p].online => self.disconnect(p),
            93..99 if !self.peers[p].online => {
                self.stats.reconnects += 1;
                self.connect(p);
            }
            99 if self.rng.random_bool(0.3) => self.restart_server(),
            _ => {}
        }
    }

    fn drain(&mut self) {
        while !self.to_server.is_empty() || self.peers.iter().any(|p| !p.inbox.is_empty()) {
            self.deliver_to_server();
            for p in 0..self.peers.len() {
                self.deliver_to_peer(p);
            }
        }
    }

    /// A lossless network and two rounds of handshakes: the first brings everything to the
    /// server, the second brings everything from it.
    fn settle(&mut self) {
        self.drop_rate = 0.0;
        for _ in 0..2 {
            for p in 0..self.peers.len() {
                self.connect(p);
                self.drain();
            }
        }
    }
}

fn run(seed: u64) -> Stats {
    let mut sim = Sim::new(seed);
    for _ in 0..STEPS {
        sim.step();
    }
    sim.settle();

    let expected = content(sim.server.doc());
    let expected_sv = decode_sv(&sim.server.state_vector().unwrap());
    assert!(!has_pending(sim.server.doc()), "seed {seed}: server has pending blocks");
    for (i, peer) in sim.peers.iter().enumerate() {
        if has_pending(&peer.doc) {
            use yrs::{ReadTxn, Transact};
            let t = peer.doc.transact();
            eprintln!(
                "DEBUG client {i} sv {:?} pending {:?} pds {:?} server sv {:?}",
                t.state_vector(),
                t.store().pending_update(),
                t.store().pending_ds(),
                expected_sv
            );
        }
        assert_eq!(content(&peer.doc), expected, "seed {seed}: client {i} content");
        assert_eq!(state_vector(&peer.doc), expected_sv, "seed {seed}: client {i} state vector");
        assert!(!has_pending(&peer.doc), "seed {seed}: client {i} has pending blocks");
    }
    let reloaded = RoomDoc::from_snapshot(&sim.server.snapshot().unwrap(), Limits::default()).unwrap();
    assert_eq!(content(reloaded.doc()), expected, "seed {seed}: reloaded snapshot");
    sim.stats
}

#[test]
fn clients_converge_through_a_lossy_reordering_network() {
    let mut totals = Stats::default();
    for seed in 0..SEEDS {
        let stats = run(seed);
        totals.dropped += stats.dropped;
        totals.reordered += stats.reordered;
        totals.reconnects += stats.reconnects;
        totals.restarts += stats.restarts;
        totals.offline_edits += stats.offline_edits;
        totals.server_pending += stats.server_pending;
        totals.reencoded += stats.reencoded;
    }
    // The faults the test is about did happen, many times.
    assert!(totals.dropped > 1000, "{totals:?}");
    assert!(totals.reordered > 1000, "{totals:?}");
    assert!(totals.reconnects > 500, "{totals:?}");
    assert!(totals.offline_edits > 500, "{totals:?}");
    assert!(totals.restarts > 10, "{totals:?}");
    assert!(totals.server_pending > 100, "{totals:?}");
    assert!(totals.reencoded > 100, "{totals:?}");
    eprintln!("{totals:?}");
}

/// Past 64 inputs `merge_updates` merges as a tree of merges (yrs's single merge grows worse
/// than linearly): the tree must hold exactly what applying every update does, whatever the
/// count, interleaving and edit kinds.
#[test]
fn merging_many_updates_as_a_tree_holds_what_applying_them_does() {
    for (seed, count) in [(1u64, 65usize), (2, 200), (3, 64 * 64 + 1)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let clients: Vec<Doc> = (1..=5).map(client).collect();
        let mut updates = Vec::new();
        for _ in 0..count {
            let from = &clients[rng.random_range(0..clients.len())];
            let update = random_edit(from, &mut rng);
            // Every client sees what was sent so far, as in a room, so edits build on each other.
            for other in &clients {
                apply(other, &update);
            }
            updates.push(update);
        }
        let merged = crdt::merge_updates(updates.iter().map(Vec::as_slice)).expect("merges");
        let (applied, from_merged) = (client(100), client(101));
        for update in &updates {
            apply(&applied, update);
        }
        apply(&from_merged, &merged);
        assert_eq!(content(&from_merged).text, content(&applied).text, "seed {seed}, {count} updates");
        assert_eq!(content(&from_merged).map, content(&applied).map);
        assert_eq!(content(&from_merged).array, content(&applied).array);
        assert_eq!(state_vector(&from_merged), state_vector(&applied));
    }
}
