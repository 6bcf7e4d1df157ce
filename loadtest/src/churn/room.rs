//! One churned room: open it, leave one text edit, close politely; later reopen it and read the
//! edit back. Plus the seeded pick of which rooms to reopen.

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use protocol::{Message, SyncMessage};
use yrs::{Doc, GetString as _, ReadTxn as _, Text as _, Transact as _};

use crate::client::{self, Endpoint, Local};
use crate::duration::human;

/// Longest wait for the server to answer our close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Room `index` of run `run_id` (the run id keeps reruns against one server apart).
pub fn name(run_id: u64, index: usize) -> String {
    format!("churn-{run_id}-{index}")
}

/// The text room `index` is given: different in every room, so a room served another's document
/// (or a stale snapshot) fails the check rather than passing by coincidence.
pub fn text(run_id: u64, index: usize) -> String {
    format!("churn {run_id} room {index}")
}

/// A sync update frame inserting `text` at the start of Y.Text `text` of a fresh document.
fn edit(text: &str) -> Bytes {
    let doc = Doc::new();
    let ytext = doc.get_or_insert_text("text");
    let mut txn = doc.transact_mut();
    ytext.insert(&mut txn, 0, text);
    let update = txn.encode_update_v1();
    Message::Sync(SyncMessage::Update(&update)).encode_to_vec().into()
}

/// Connects, syncs, sends one update and closes. The server reads a connection's frames in order,
/// so it has applied the update by the time it answers our close frame; waiting for that answer
/// (rather than dropping the socket after sending) also avoids a TCP reset that could throw away
/// frames the server had received but not yet read.
pub async fn open_once(url: &Endpoint, text: &str) -> anyhow::Result<()> {
    let (mut ws, _) = client::connect_synced(url, Local::Empty).await?;
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        ws.send(edit(text)).await.context("sending the update")?;
        ws.close_and_drain().await
    })
    .await;
    match closed {
        Ok(result) => result,
        Err(_) => bail!("{url}: the server did not answer the close frame within {}", human(CLOSE_TIMEOUT)),
    }
}

/// Reopens a room with a fresh client and compares its Y.Text `text` with what was written.
pub async fn check(url: &Endpoint, want: &str) -> Result<(), String> {
    let doc = client::fetch_doc(url).await.map_err(|e| format!("reopening failed: {e:#}"))?;
    let txn = doc.transact();
    let got = txn.get_text("text").map(|t| t.get_string(&txn)).unwrap_or_default();
    if got == want { Ok(()) } else { Err(format!("text is {got:?}, expected {want:?}")) }
}

/// Up to `k` distinct entries of `candidates`, picked uniformly with a seeded generator (the
/// report records the seed, so a failing sample can be rerun), in ascending order.
pub fn pick(candidates: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut pool = candidates.to_vec();
    let k = k.min(pool.len());
    let mut state = seed;
    // Partial Fisher–Yates: the first k slots end up a uniform sample.
    for i in 0..k {
        let j = i + (splitmix64(&mut state) % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool.sort_unstable();
    pool
}

/// SplitMix64: tiny, well mixed, and no dependency for a 20-element sample.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use yrs::Update;
    use yrs::updates::decoder::Decode as _;

    use super::*;

    #[test]
    fn picks_distinct_candidates_reproducibly() {
        let candidates: Vec<usize> = (0..10_000).filter(|i| i % 3 != 0).collect();
        let a = pick(&candidates, 20, 42);
        assert_eq!(a.len(), 20);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted and distinct: {a:?}");
        assert!(a.iter().all(|i| i % 3 != 0 && *i < 10_000));
        assert_eq!(a, pick(&candidates, 20, 42));
        assert_ne!(a, pick(&candidates, 20, 43));
        assert_eq!(pick(&[5, 1, 3], 10, 7), vec![1, 3, 5]);
        assert!(pick(&[], 3, 1).is_empty());
    }

    #[test]
    fn edit_inserts_the_text() {
        let frame = edit("churn 1 room 2");
        let mut items = protocol::decode_frame(&frame);
        let Some(Ok((Message::Sync(SyncMessage::Update(update)), _))) = items.next() else {
            panic!("one sync update expected")
        };
        let doc = Doc::new();
        doc.transact_mut().apply_update(Update::decode_v1(update).expect("v1")).expect("applies");
        let txn = doc.transact();
        assert_eq!(txn.get_text("text").map(|t| t.get_string(&txn)).as_deref(), Some("churn 1 room 2"));
        assert_ne!(text(1, 2), text(1, 12));
        assert_eq!(name(7, 3), "churn-7-3");
    }
}
