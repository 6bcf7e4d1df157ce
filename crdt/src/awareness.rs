//! [`AwarenessRegistry`]: the server's copy of y-protocols awareness (who is here, their cursors),
//! keyed by Yjs client id, with the acceptance rules of `applyAwarenessUpdate` and the outdated
//! timeout driven by times passed in.
//!
//! The payload codec is `protocol`'s; this adds the rules, and checks that each state is JSON.
//!
//! A client connection may set only the awareness ids it introduced (an id nobody holds, or one it
//! already holds): entries for ids another connection holds are left out, so no client can
//! overwrite someone else's cursor or name. A reconnecting user takes over the ids its earlier
//! connection held. Each connection may hold [`AwarenessLimits::max_clients`] ids with states of
//! at most [`AwarenessLimits::max_state_bytes`]; an update past either is refused whole.

use std::collections::BTreeMap;

use protocol::{AwarenessEntry, decode_awareness_update, encode_awareness_update};

use crate::{Error, Result};

/// `Number.MAX_SAFE_INTEGER`: the largest clock a JS peer can read back.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The JSON text y-protocols sends for a removed client.
const NULL_STATE: &str = "null";

/// Client ids an [`AwarenessRegistry::apply`] call changed, sorted and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwarenessChange {
    /// Now have a state: the sending connection speaks for them.
    pub updated: Vec<u64>,
    /// Now have no state (the payload carried `null` for them).
    pub removed: Vec<u64>,
}

/// Bounds on what one connection may put into a room's awareness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwarenessLimits {
    /// Largest state, in bytes of JSON text.
    pub max_state_bytes: usize,
    /// Most client ids one connection may hold at once (a Yjs document has one; it changes
    /// id only after a rare clash).
    pub max_clients: usize,
}

impl Default for AwarenessLimits {
    fn default() -> Self {
        Self { max_state_bytes: 16 * 1024, max_clients: 4 }
    }
}

/// The connection an awareness update comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The connection, unique within the process.
    pub conn: u64,
    /// Who is signed in on it (any stable number per user), or 0 for nobody: a connection of the
    /// same user may take over the ids an earlier one held.
    pub principal: u64,
}

impl Owner {
    fn may_take_over(&self, holder: &Owner) -> bool {
        holder.conn == self.conn || (self.principal != 0 && holder.principal == self.principal)
    }
}

/// What [`AwarenessRegistry::apply_from`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub change: AwarenessChange,
    /// Entries for ids held by another connection were left out: this payload holds the rest and
    /// is what to relay. `None` when every entry was kept: relay the update as received.
    pub filtered: Option<Vec<u8>>,
}

#[derive(Debug)]
struct ClientMeta {
    clock: u64,
    /// JSON text as received (re-sent verbatim); `None` once removed.
    state: Option<String>,
    last_updated_ms: u64,
    /// The local connection that set the present state; `None` for states from other nodes and
    /// for removed clients.
    owner: Option<Owner>,
}

#[derive(Debug)]
pub struct AwarenessRegistry {
    timeout_ms: u64,
    /// Ordered so that encoded payloads are deterministic. Removed clients stay (their clock still
    /// decides which later updates win) until they have been gone for a timeout.
    clients: BTreeMap<u64, ClientMeta>,
    /// How many entries of `clients` have a state.
    with_state: usize,
    /// `encode_all`'s last answer; cleared by every change.
    encoded: Option<Vec<u8>>,
}

impl AwarenessRegistry {
    /// `timeout_ms`: a client not heard from for this long is removed by [`Self::expire`].
    /// y-protocols' `outdatedTimeout` is 30 000; clients re-announce every 15 s.
    pub fn new(timeout_ms: u64) -> Self {
        Self { timeout_ms, clients: BTreeMap::new(), with_state: 0, encoded: None }
    }

    /// Applies an awareness update payload another server node relayed, received at `now_ms`
    /// (that node applied its own connections' limits and ownership). An entry wins when its
    /// clock is newer than the known one (0 for an unknown client, as in y-protocols), or equal
    /// with a `null` state while a state is known. Losing entries are skipped silently. The
    /// payload is decoded and checked whole first, so a malformed one changes nothing.
    pub fn apply(&mut self, payload: &[u8], now_ms: u64) -> Result<AwarenessChange> {
        let entries = decode(payload)?;
        Ok(self.apply_entries(&entries, None, now_ms))
    }

    /// Applies an awareness update from the local connection `owner`, within `limits`: entries
    /// for ids another connection holds are left out (see [`Accepted::filtered`]); a state over
    /// the size limit, or more ids than the connection may hold, refuses the update whole.
    pub fn apply_from(
        &mut self,
        payload: &[u8],
        now_ms: u64,
        owner: Owner,
        limits: &AwarenessLimits,
    ) -> Result<Accepted> {
        let mut entries = decode(payload)?;
        if let Some(&(client_id, _, state)) =
            entries.iter().find(|(_, _, state)| state.is_some_and(|s| s.len() > limits.max_state_bytes))
        {
            let len = state.map_or(0, str::len);
            return Err(Error::AwarenessStateTooLarge { client_id, len, max: limits.max_state_bytes });
        }
        let before = entries.len();
        entries.retain(|(client_id, _, _)| self.may_set(*client_id, &owner));
        let filtered = (entries.len() != before).then(|| {
            encode(entries.iter().map(|&(id, clock, state)| (id, clock, state.unwrap_or(NULL_STATE))))
        });
        let held = self.held_after(&entries, &owner);
        if held > limits.max_clients {
            return Err(Error::TooManyAwarenessClients { held, max: limits.max_clients });
        }
        let change = self.apply_entries(&entries, Some(owner), now_ms);
        Ok(Accepted { change, filtered })
    }

    /// Whether `owner` may set `client_id`: nobody else holds a state for it.
    fn may_set(&self, client_id: u64, owner: &Owner) -> bool {
        match self.clients.get(&client_id) {
            Some(meta) if meta.state.is_some() => {
                meta.owner.is_some_and(|holder| owner.may_take_over(&holder))
            }
            _ => true,
        }
    }

    /// How many ids `owner` would hold with states once `entries` (all of which it may set) are
    /// applied, counting only entries whose clock wins.
    fn held_after(&self, entries: &[(u64, u64, Option<&str>)], owner: &Owner) -> usize {
        let mut held: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, m)| m.state.is_some() && m.owner.is_some_and(|h| owner.may_take_over(&h)))
            .map(|(&id, _)| id)
            .collect();
        for &(client_id, clock, state) in entries {
            if !self.wins(client_id, clock, state.is_none()) {
                continue;
            }
            match (state.is_some(), held.iter().position(|&id| id == client_id)) {
                (true, None) => held.push(client_id),
                (false, Some(at)) => {
                    held.swap_remove(at);
                }
                _ => {}
            }
        }
        held.len()
    }

    fn wins(&self, client_id: u64, clock: u64, is_null: bool) -> bool {
        let (known_clock, has_state) =
            self.clients.get(&client_id).map_or((0, false), |m| (m.clock, m.state.is_some()));
        known_clock < clock || (known_clock == clock && is_null && has_state)
    }

    fn apply_entries(
        &mut self,
        entries: &[(u64, u64, Option<&str>)],
        owner: Option<Owner>,
        now_ms: u64,
    ) -> AwarenessChange {
        let mut touched = Vec::with_capacity(entries.len());
        for &(client_id, clock, state) in entries {
            if self.wins(client_id, clock, state.is_none()) {
                let owner = state.and(owner);
                self.set(client_id, clock, state.map(str::to_owned), owner, now_ms);
                touched.push(client_id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        // A payload may name a client twice; what counts is where it ended up.
        let (updated, removed) =
            touched.into_iter().partition(|id| self.clients.get(id).is_some_and(|m| m.state.is_some()));
        AwarenessChange { updated, removed }
    }

    /// Every client with a state, as one awareness update payload (what a newly connected client
    /// is sent); `None` when there is nobody. Cached until the next change.
    pub fn encode_all(&mut self) -> Option<Vec<u8>> {
        if self.with_state == 0 {
            return None;
        }
        let encoded = self.encoded.get_or_insert_with(|| {
            let present = self.clients.iter().filter_map(|(&id, m)| Some((id, m.clock, m.state.as_deref()?)));
            encode(present)
        });
        Some(encoded.clone())
    }

    /// Removes these clients' states (for instance those a closed connection spoke for). Each
    /// removal bumps the clock, so every y-protocols peer accepts the `null` that goes out.
    /// Returns that payload, or `None` when none of them had a state.
    pub fn remove(&mut self, client_ids: &[u64], now_ms: u64) -> Option<Vec<u8>> {
        let mut removed = Vec::new();
        for &id in client_ids {
            if let Some(meta) = self.clients.get(&id).filter(|m| m.state.is_some()) {
                // A JS peer cannot read a clock past 2^53 - 1; at that cap an equal-clock null
                // still wins.
                let clock = meta.clock.saturating_add(1).min(MAX_SAFE_INTEGER);
                self.set(id, clock, None, None, now_ms);
                removed.push((id, clock, NULL_STATE));
            }
        }
        (!removed.is_empty()).then(|| encode(removed))
    }

    /// Removes the states connection `conn` holds (it closed), as [`Self::remove`] does. Ids a
    /// later connection of the same user took over are no longer its own and stay.
    pub fn remove_held_by(&mut self, conn: u64, now_ms: u64) -> Option<Vec<u8>> {
        let held: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, m)| m.state.is_some() && m.owner.is_some_and(|o| o.conn == conn))
            .map(|(&id, _)| id)
            .collect();
        if held.is_empty() {
            return None;
        }
        self.remove(&held, now_ms)
    }

    /// Removes every client not heard from for the timeout (last update at or before
    /// `now_ms - timeout`, as y-protocols' check) and returns the payload announcing it, or `None`.
    /// Also forgets clients removed at least a timeout ago: by then no delayed update from them
    /// is expected, and keeping them would grow the registry with every visitor.
    pub fn expire(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        let timeout = self.timeout_ms;
        let is_old = |m: &ClientMeta| now_ms.saturating_sub(m.last_updated_ms) >= timeout;
        self.clients.retain(|_, m| m.state.is_some() || !is_old(m));
        let outdated: Vec<u64> =
            self.clients.iter().filter(|(_, m)| m.state.is_some() && is_old(m)).map(|(&id, _)| id).collect();
        self.remove(&outdated, now_ms)
    }

    /// Clients that currently have a state.
    pub fn len(&self) -> usize {
        self.with_state
    }

    pub fn is_empty(&self) -> bool {
        self.with_state == 0
    }

    /// The known clock of a client, present or removed.
    pub fn clock(&self, client_id: u64) -> Option<u64> {
        self.clients.get(&client_id).map(|m| m.clock)
    }

    /// The JSON state of a present client.
    pub fn state(&self, client_id: u64) -> Option<&str> {
        self.clients.get(&client_id)?.state.as_deref()
    }

    fn set(&mut self, client_id: u64, clock: u64, state: Option<String>, owner: Option<Owner>, now_ms: u64) {
        let had_state = self.clients.get(&client_id).is_some_and(|m| m.state.is_some());
        match (had_state, state.is_some()) {
            (false, true) => self.with_state += 1,
            (true, false) => self.with_state -= 1,
            _ => {}
        }
        self.clients.insert(client_id, ClientMeta { clock, state, last_updated_ms: now_ms, owner });
        self.encoded = None;
    }
}

/// A decoded entry with its state checked: `None` for JSON `null`.
fn decode(payload: &[u8]) -> Result<Vec<(u64, u64, Option<&str>)>> {
    decode_awareness_update(payload)?
        .into_iter()
        .map(|AwarenessEntry { client_id, clock, state }| {
            // Relayed verbatim to browsers, whose JSON.parse would throw on it mid-update.
            serde_json::from_str::<serde::de::IgnoredAny>(state)
                .map_err(|_| Error::AwarenessStateNotJson { client_id })?;
            // JSON.parse(" null ") is null too, though lib0 peers always send exactly "null".
            let is_null = state.trim_matches([' ', '\t', '\n', '\r']) == NULL_STATE;
            Ok((client_id, clock, (!is_null).then_some(state)))
        })
        .collect()
}

fn encode<'a>(entries: impl IntoIterator<Item = (u64, u64, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_awareness_update(
        entries.into_iter().map(|(client_id, clock, state)| AwarenessEntry { client_id, clock, state }),
        &mut out,
    );
    out
}
