//! [`AwarenessRegistry`]: the server's copy of y-protocols awareness (who is here, their cursors),
//! keyed by Yjs client id, with the acceptance rules of `applyAwarenessUpdate` and the outdated
//! timeout driven by times passed in.
//!
//! An awareness update payload is lib0: var-uint count, then per client var-uint client id,
//! var-uint clock, var-string JSON state (`"null"` once the client is gone).

use std::collections::BTreeMap;

use crate::lib0::{MAX_SAFE_INTEGER, Reader, write_var_string, write_var_uint};
use crate::{Error, Result};

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

#[derive(Debug)]
struct ClientMeta {
    clock: u64,
    /// JSON text as received (re-sent verbatim); `None` once removed.
    state: Option<String>,
    last_updated_ms: u64,
}

/// One decoded entry, borrowing from the payload.
struct Entry<'a> {
    client_id: u64,
    clock: u64,
    /// `None` for JSON `null`.
    state: Option<&'a str>,
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
        Self {
            timeout_ms,
            clients: BTreeMap::new(),
            with_state: 0,
            encoded: None,
        }
    }

    /// Applies an awareness update payload received at `now_ms`. An entry wins when its clock is
    /// newer than the known one (0 for an unknown client, as in y-protocols), or equal with a
    /// `null` state while a state is known. Losing entries are skipped silently. The payload is
    /// decoded and checked whole first, so a malformed one changes nothing.
    pub fn apply(&mut self, payload: &[u8], now_ms: u64) -> Result<AwarenessChange> {
        let entries = decode(payload)?;
        let mut touched = Vec::with_capacity(entries.len());
        for entry in entries {
            let (known_clock, has_state) = self
                .clients
                .get(&entry.client_id)
                .map_or((0, false), |m| (m.clock, m.state.is_some()));
            let wins = known_clock < entry.clock
                || (known_clock == entry.clock && entry.state.is_none() && has_state);
            if wins {
                self.set(
                    entry.client_id,
                    entry.clock,
                    entry.state.map(str::to_owned),
                    now_ms,
                );
                touched.push(entry.client_id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        // A payload may name a client twice; what counts is where it ended up.
        let (updated, removed) = touched
            .into_iter()
            .partition(|id| self.clients.get(id).is_some_and(|m| m.state.is_some()));
        Ok(AwarenessChange { updated, removed })
    }

    /// Every client with a state, as one awareness update payload (what a newly connected client
    /// is sent); `None` when there is nobody. Cached until the next change.
    pub fn encode_all(&mut self) -> Option<Vec<u8>> {
        if self.with_state == 0 {
            return None;
        }
        let encoded = self.encoded.get_or_insert_with(|| {
            let present = self
                .clients
                .iter()
                .filter_map(|(&id, m)| Some((id, m.clock, m.state.as_deref()?)));
            encode(self.with_state, present)
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
                // A JS peer cannot read a clock past 2^53 - 1; at that cap an equal-clock null still wins.
                let clock = meta.clock.saturating_add(1).min(MAX_SAFE_INTEGER);
                self.set(id, clock, None, now_ms);
                removed.push((id, clock, NULL_STATE));
            }
        }
        (!removed.is_empty()).then(|| encode(removed.len(), removed.into_iter()))
    }

    /// Removes every client not heard from for the timeout (last update at or before
    /// `now_ms - timeout`, as y-protocols' check) and returns the payload announcing it, or `None`.
    /// Also forgets clients removed at least a timeout ago: by then no delayed update from them
    /// is expected, and keeping them would grow the registry with every visitor.
    pub fn expire(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        let timeout = self.timeout_ms;
        let is_old = |m: &ClientMeta| now_ms.saturating_sub(m.last_updated_ms) >= timeout;
        self.clients.retain(|_, m| m.state.is_some() || !is_old(m));
        let outdated: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, m)| m.state.is_some() && is_old(m))
            .map(|(&id, _)| id)
            .collect();
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

    fn set(&mut self, client_id: u64, clock: u64, state: Option<String>, now_ms: u64) {
        let had_state = self
            .clients
            .get(&client_id)
            .is_some_and(|m| m.state.is_some());
        match (had_state, state.is_some()) {
            (false, true) => self.with_state += 1,
            (true, false) => self.with_state -= 1,
            _ => {}
        }
        self.clients.insert(
            client_id,
            ClientMeta {
                clock,
                state,
                last_updated_ms: now_ms,
            },
        );
        self.encoded = None;
    }
}

fn decode(payload: &[u8]) -> Result<Vec<Entry<'_>>> {
    let mut reader = Reader::new(payload);
    let count = reader.read_var_uint()?;
    // Each entry takes at least three bytes: refuse a count that only serves to reserve memory.
    if count > payload.len() as u64 / 3 {
        return Err(Error::MalformedAwareness("more entries than the payload can hold"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client_id = reader.read_var_uint()?;
        let clock = reader.read_var_uint()?;
        let json = reader.read_var_string()?;
        // Relayed verbatim to browsers, whose JSON.parse would throw on it mid-update.
        serde_json::from_str::<serde::de::IgnoredAny>(json)
            .map_err(|_| Error::MalformedAwareness("state is not JSON"))?;
        let state = (json.trim_matches([' ', '\t', '\n', '\r']) != NULL_STATE).then_some(json);
        entries.push(Entry {
            client_id,
            clock,
            state,
        });
    }
    // Bytes after the last entry are ignored, as lib0's decoder in y-protocols does.
    Ok(entries)
}

fn encode<'a>(count: usize, entries: impl Iterator<Item = (u64, u64, &'a str)>) -> Vec<u8> {
    let mut out = Vec::new();
    write_var_uint(&mut out, count as u64);
    for (client_id, clock, state) in entries {
        write_var_uint(&mut out, client_id);
        write_var_uint(&mut out, clock);
        write_var_string(&mut out, state);
    }
    out
}
