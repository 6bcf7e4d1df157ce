//! No loss: after the run, a fresh client per room syncs, and the room's text must hold every
//! update a `saved` acknowledged (markers `writer:0..acked` of each writer).

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt as _, stream};
use serde::Serialize;
use yrs::{GetString as _, ReadTxn as _, Transact as _};

use crate::client;
use crate::marker;

/// One room's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RoomCheck {
    pub room: String,
    /// Updates its writers were told are durable.
    pub acked: u64,
    /// Of those, how many the room's text lacks.
    pub missing: u64,
    /// Why the room could not be read, if it could not.
    pub error: Option<String>,
}

impl RoomCheck {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.error.is_none()
    }
}

/// Acknowledged updates of `acked` (writer index → count) absent from `text`.
pub fn missing(text: &str, acked: &[(u32, u64)]) -> u64 {
    let present: HashSet<(u32, u32)> =
        marker::scan_all(text).0.iter().map(|(m, _)| (m.writer, m.seq)).collect();
    let mut missing = 0;
    for &(writer, count) in acked {
        missing += (0..count).filter(|&seq| !present.contains(&(writer, seq as u32))).count() as u64;
    }
    missing
}

/// Fetches each room (name → URL) with a fresh client and checks its writers' acknowledged
/// updates are there; a few rooms at a time.
pub async fn check_rooms(
    rooms: Vec<(String, client::Endpoint)>,
    acked: &HashMap<String, Vec<(u32, u64)>>,
) -> Vec<RoomCheck> {
    stream::iter(rooms)
        .map(|(room, endpoint)| async move {
            let want = acked.get(&room).map_or(&[][..], Vec::as_slice);
            let total = want.iter().map(|(_, n)| n).sum();
            match client::fetch_doc(&endpoint).await {
                Ok(doc) => {
                    let txn = doc.transact();
                    let text = txn.get_text("text").map(|t| t.get_string(&txn)).unwrap_or_default();
                    RoomCheck { room, acked: total, missing: missing(&text, want), error: None }
                }
                Err(e) => RoomCheck { room, acked: total, missing: total, error: Some(format!("{e:#}")) },
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marker::Marker;

    #[test]
    fn counts_acknowledged_tokens_the_text_lacks() {
        let token = |writer, seq| Marker { sent_us: 1, writer, seq }.text();
        let text = [token(0, 0), token(1, 0), token(0, 1), token(0, 3)].concat();
        assert_eq!(missing(&text, &[(0, 2), (1, 1)]), 0);
        assert_eq!(missing(&text, &[(0, 4)]), 1, "seq 2 is missing");
        assert_eq!(missing(&text, &[(1, 3)]), 2);
        assert_eq!(missing("", &[(0, 0)]), 0, "nothing acknowledged, nothing owed");
    }
}
