//! The one conformance suite every [`Cache`] backend must pass. Backends call [`cache_suite`] from
//! their own test targets with a fresh, empty cache on a multi-thread runtime (so races race).
//!
//! Expiry is checked against the real clock with short TTLs. Every timing check is arranged so a
//! slow machine can only make it less sensitive, never make a correct backend fail: "still there"
//! checks run long before the deadline, "gone" checks after it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use super::{Cache, Hit};

/// The short TTL (and rate-limit window) the expiry checks wait out.
const TTL: Duration = Duration::from_millis(400);
/// How long past a deadline a "gone" check waits.
const MARGIN: Duration = Duration::from_millis(200);
/// A TTL no check waits out.
const LONG: Duration = Duration::from_secs(60);

/// Panics, with a message naming the broken property, if `cache` breaks the [`Cache`] contract.
/// Takes about a second: the properties that wait for expiry run side by side, each on its own
/// keys, which also exercises the backend under concurrent use.
pub async fn cache_suite(cache: Arc<dyn Cache>) {
    cache.ping().await.expect("ping answers");
    assert!(
        ["memory", "redis"].contains(&cache.backend_name()),
        "unknown backend name {:?}",
        cache.backend_name()
    );
    tokio::join!(
        round_trips_binary_values(&*cache),
        set_replaces_value_and_ttl(&*cache),
        expired_keys_are_absent(&*cache),
        set_if_absent_stores_only_once(&*cache),
        swap_keeps_the_original_expiry(&*cache),
        delete_reports_whether_it_removed(&*cache),
        keys_are_independent(&*cache),
        hits_count_in_a_fixed_window(&*cache),
        racing_swaps_form_one_chain(&cache),
        racing_hits_count_exactly(&cache),
        unhit_takes_back_one_hit(&*cache),
        maps_hold_fields_under_one_expiry(&*cache),
        lists_keep_their_last_items_under_one_expiry(&*cache),
    );
}

async fn lists_keep_their_last_items_under_one_expiry(cache: &dyn Cache) {
    let items = |range: &[u8]| range.iter().map(|n| vec![*n]).collect::<Vec<_>>();
    assert!(cache.list_range("list-never-set").await.unwrap().is_empty(), "a missing list has no items");
    for n in 0..5u8 {
        cache.list_push_trim("list", &[n], 3, LONG).await.unwrap();
    }
    assert_eq!(cache.list_range("list").await.unwrap(), items(&[2, 3, 4]), "the last 3, oldest first");
    cache.list_push_trim("list-of-one", b"a", 0, LONG).await.unwrap();
    cache.list_push_trim("list-of-one", &[0, 255], 0, LONG).await.unwrap();
    assert_eq!(cache.list_range("list-of-one").await.unwrap(), vec![vec![0, 255]], "keep 0 keeps one");

    assert!(
        !cache.list_fill_if_absent("list", &items(&[9]), 3, LONG).await.unwrap(),
        "a fill never overwrites a list"
    );
    assert_eq!(cache.list_range("list").await.unwrap(), items(&[2, 3, 4]));
    assert!(cache.list_fill_if_absent("list-filled", &items(&[1, 2, 3, 4]), 3, LONG).await.unwrap());
    assert_eq!(cache.list_range("list-filled").await.unwrap(), items(&[2, 3, 4]), "filled with the last 3");
    assert!(
        !cache.list_fill_if_absent("list-empty-fill", &[], 3, LONG).await.unwrap(),
        "nothing to fill with creates nothing"
    );

    cache.list_push_trim("list-expiring", b"a", 10, LONG).await.unwrap();
    cache.list_push_trim("list-expiring", b"b", 10, TTL).await.unwrap();
    assert_eq!(cache.list_range("list-expiring").await.unwrap().len(), 2, "there before the TTL");
    sleep(TTL + MARGIN).await;
    assert!(
        cache.list_range("list-expiring").await.unwrap().is_empty(),
        "the last push's TTL expires it all"
    );
    assert!(
        cache.list_fill_if_absent("list-expiring", &items(&[7]), 3, LONG).await.unwrap(),
        "an expired list is absent"
    );
    assert_eq!(cache.list_range("list-expiring").await.unwrap(), items(&[7]));
}

async fn maps_hold_fields_under_one_expiry(cache: &dyn Cache) {
    let sorted = |mut entries: Vec<(String, Vec<u8>)>| {
        entries.sort();
        entries
    };
    let entry = |field: &str, value: &[u8]| (field.to_owned(), value.to_vec());
    assert!(cache.map_entries("map-never-set").await.unwrap().is_empty(), "a missing map has no fields");
    cache.map_set("map", "node-a", b"1", LONG).await.unwrap();
    cache.map_set("map", "node-b", &[0, 255], LONG).await.unwrap();
    cache.map_set("map", "node-a", b"2", LONG).await.unwrap();
    assert_eq!(
        sorted(cache.map_entries("map").await.unwrap()),
        vec![entry("node-a", b"2"), entry("node-b", &[0, 255])],
        "map_set adds and replaces fields"
    );
    cache.map_remove("map", "node-a").await.unwrap();
    cache.map_remove("map", "never-there").await.unwrap();
    assert_eq!(cache.map_entries("map").await.unwrap(), vec![entry("node-b", &[0, 255])], "map_remove");
    cache.map_remove("map", "node-b").await.unwrap();
    assert!(cache.map_entries("map").await.unwrap().is_empty(), "the last field removed");

    cache.map_set("map-expiring", "a", b"1", LONG).await.unwrap();
    cache.map_set("map-expiring", "b", b"2", TTL).await.unwrap();
    assert_eq!(cache.map_entries("map-expiring").await.unwrap().len(), 2, "there before the TTL");
    sleep(TTL + MARGIN).await;
    assert!(
        cache.map_entries("map-expiring").await.unwrap().is_empty(),
        "the last map_set's TTL expires every field"
    );
    cache.map_set("map-expiring", "c", b"3", LONG).await.unwrap();
    assert_eq!(
        cache.map_entries("map-expiring").await.unwrap(),
        vec![entry("c", b"3")],
        "an expired map does not come back with the next field"
    );
}

#[track_caller]
fn check_value(actual: Option<Vec<u8>>, expected: Option<&[u8]>, what: &str) {
    assert_eq!(actual.as_deref(), expected, "{what}");
}

async fn round_trips_binary_values(cache: &dyn Cache) {
    check_value(cache.get("never-set").await.unwrap(), None, "a key never set is absent");
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let cases: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("not-utf8", &[0, 159, 146, 150, 255]),
        ("large", &large),
        ("clé with spaces/ünïcode:", b"v"),
    ];
    for (key, value) in cases {
        cache.set(key, value, LONG).await.unwrap();
        check_value(
            cache.get(key).await.unwrap(),
            Some(value),
            &format!("{key:?} round trips (empty is not absent)"),
        );
    }
}

async fn set_replaces_value_and_ttl(cache: &dyn Cache) {
    cache.set("ttl-lengthened", b"first", TTL).await.unwrap();
    cache.set("ttl-lengthened", b"second", LONG).await.unwrap();
    cache.set("ttl-shortened", b"first", LONG).await.unwrap();
    cache.set("ttl-shortened", b"second", TTL).await.unwrap();
    check_value(cache.get("ttl-lengthened").await.unwrap(), Some(b"second"), "set replaces the value");
    sleep(TTL + MARGIN).await;
    let lengthened = cache.get("ttl-lengthened").await.unwrap();
    check_value(lengthened, Some(b"second"), "set replaces a short TTL with a long one");
    check_value(cache.get("ttl-shortened").await.unwrap(), None, "set replaces a long TTL with a short one");
}

async fn expired_keys_are_absent(cache: &dyn Cache) {
    cache.set("expires", b"v", TTL).await.unwrap();
    check_value(cache.get("expires").await.unwrap(), Some(b"v"), "a key is there before its TTL");
    sleep(TTL + MARGIN).await;
    check_value(cache.get("expires").await.unwrap(), None, "a key is gone after its TTL");
    assert_eq!(cache.swap("expires", b"new").await.unwrap(), None, "swap on an expired key gives None");
    check_value(cache.get("expires").await.unwrap(), None, "swap does not revive an expired key");
    assert!(!cache.delete("expires").await.unwrap(), "delete of an expired key removes nothing");
}

async fn set_if_absent_stores_only_once(cache: &dyn Cache) {
    assert!(cache.set_if_absent("once", b"first", TTL).await.unwrap(), "stored when absent");
    assert!(!cache.set_if_absent("once", b"second", LONG).await.unwrap(), "refused when present");
    check_value(cache.get("once").await.unwrap(), Some(b"first"), "a refused set_if_absent changes nothing");
    sleep(TTL + MARGIN).await;
    assert!(cache.set_if_absent("once", b"third", LONG).await.unwrap(), "stored again after expiry");
    check_value(cache.get("once").await.unwrap(), Some(b"third"), "the new value after expiry");

    cache.set("plain", b"v", LONG).await.unwrap();
    assert!(!cache.set_if_absent("plain", b"w", LONG).await.unwrap(), "refused over a plain set");
}

async fn swap_keeps_the_original_expiry(cache: &dyn Cache) {
    assert_eq!(cache.swap("swap-missing", b"v").await.unwrap(), None, "swap on a missing key gives None");
    check_value(cache.get("swap-missing").await.unwrap(), None, "swap leaves a missing key missing");

    cache.set("swap", b"v1", 2 * TTL).await.unwrap();
    let set_at = Instant::now();
    sleep(TTL / 2).await;
    check_value(cache.swap("swap", b"v2").await.unwrap(), Some(b"v1"), "swap returns the previous value");
    check_value(cache.get("swap").await.unwrap(), Some(b"v2"), "swap stores the new value");
    // The original expiry is at most `set_at + 2 TTL`. Had swap restarted the TTL (or dropped it),
    // the key would live until at least `set_at + 2.5 TTL`, after this check.
    sleep_until(set_at + 2 * TTL + TTL / 4).await;
    check_value(cache.get("swap").await.unwrap(), None, "the swapped key expires at the original time");
}

async fn delete_reports_whether_it_removed(cache: &dyn Cache) {
    cache.set("delete", b"v", LONG).await.unwrap();
    assert!(cache.delete("delete").await.unwrap(), "delete of a present key is true");
    check_value(cache.get("delete").await.unwrap(), None, "a deleted key is gone");
    assert!(!cache.delete("delete").await.unwrap(), "a second delete is false");
    assert!(!cache.delete("delete-never-set").await.unwrap(), "delete of a key never set is false");
}

async fn keys_are_independent(cache: &dyn Cache) {
    let keys: [(&str, &[u8]); 3] = [("near", b"1"), ("near-by", b"2"), ("NEAR", b"3")];
    for (key, value) in keys {
        cache.set(key, value, LONG).await.unwrap();
    }
    assert!(cache.delete("near").await.unwrap());
    check_value(cache.get("near-by").await.unwrap(), Some(b"2"), "deleting a key leaves its neighbours");
    check_value(cache.get("NEAR").await.unwrap(), Some(b"3"), "keys are case-sensitive");

    cache.hit("counter-a", LONG).await.unwrap();
    cache.hit("counter-a", LONG).await.unwrap();
    assert_eq!(cache.hit("counter-b", LONG).await.unwrap().count, 1, "counters are independent");
}

#[track_caller]
fn check_reset_in(hit: Hit, window: Duration, what: &str) {
    let reset_in = hit.reset_in;
    assert!(
        reset_in > Duration::ZERO && reset_in <= window,
        "{what}: reset_in {reset_in:?} not in (0, {window:?}]"
    );
}

async fn hits_count_in_a_fixed_window(cache: &dyn Cache) {
    for expected in 1..=5 {
        let hit = cache.hit("hits", LONG).await.unwrap();
        assert_eq!(hit.count, expected, "hits count 1, 2, 3…");
        check_reset_in(hit, LONG, "a hit in the window");
    }

    // Whether a hit lands inside the window depends on when it reaches the cache; on a loaded
    // machine a `sleep(TTL / 2)` can overshoot the whole window. A try whose second hit did not
    // complete within TTL of the first one's start proves nothing either way: try again, on a key
    // of its own.
    for attempt in 0..5 {
        let key = format!("window-{attempt}");
        let start = Instant::now();
        let first = cache.hit(&key, TTL).await.unwrap();
        let first_done = Instant::now();
        assert_eq!(first.count, 1);
        check_reset_in(first, TTL, "the first hit");
        sleep(TTL / 2).await;
        let elapsed = first_done.elapsed();
        let second = cache.hit(&key, TTL).await.unwrap();
        if start.elapsed() >= TTL {
            continue;
        }
        assert_eq!(second.count, 2, "a second hit in the window counts 2");
        // A fixed window does not move with each hit; 5 ms covers Redis's whole-millisecond clock.
        let at_most = TTL.saturating_sub(elapsed) + Duration::from_millis(5);
        assert!(
            second.reset_in <= at_most,
            "reset_in {:?} counts down (at most {at_most:?})",
            second.reset_in
        );

        sleep_until(first_done + TTL + MARGIN).await;
        let after = cache.hit(&key, TTL).await.unwrap();
        assert_eq!(after.count, 1, "the count starts again after the window");
        check_reset_in(after, TTL, "the first hit of a new window");
        return;
    }
    panic!(
        "in 5 tries, no second hit completed within {TTL:?} of the first: the machine is too loaded to test the window"
    );
}

async fn unhit_takes_back_one_hit(cache: &dyn Cache) {
    cache.unhit("unhit-never-hit").await.unwrap();
    check_value(cache.get("unhit-never-hit").await.unwrap(), None, "unhit never creates a counter");

    // As in `hits_count_in_a_fixed_window`: the zero-count hit must land in the first hit's window
    // to show that the window is kept, and on a loaded machine `sleep_until(3/4 TTL)` can overshoot
    // it. A try where that hit did not complete within TTL of the first hit's start proves
    // nothing either way: try again, on a key of its own.
    let mut proven = false;
    for attempt in 0..5 {
        let key = format!("unhit-{attempt}");
        let start = Instant::now();
        cache.hit(&key, TTL).await.unwrap();
        let first_done = Instant::now();
        cache.hit(&key, TTL).await.unwrap();
        cache.hit(&key, TTL).await.unwrap();
        cache.unhit(&key).await.unwrap();
        let again = cache.hit(&key, TTL).await.unwrap().count;
        if start.elapsed() >= TTL {
            continue;
        }
        assert_eq!(again, 3, "3 hits, one taken back, one more: 3");
        sleep_until(first_done + TTL * 3 / 4).await;
        for _ in 0..5 {
            cache.unhit(&key).await.unwrap();
        }
        let at_zero = cache.hit(&key, TTL).await.unwrap().count;
        if start.elapsed() >= TTL {
            continue;
        }
        assert_eq!(at_zero, 1, "unhit stops at zero");
        // Taken back to zero, the counter keeps its window. Had that last hit started a new one,
        // it would still be counting at this check (at least 3/4 TTL + TTL after the first hit).
        sleep_until(first_done + TTL + MARGIN).await;
        assert_eq!(cache.hit(&key, TTL).await.unwrap().count, 1, "the first hit's window ended");
        proven = true;
        break;
    }
    assert!(
        proven,
        "in 5 tries, no zero-count hit completed within {TTL:?} of the first hit: the machine is too loaded to test the window"
    );

    cache.hit("unhit-expired", TTL).await.unwrap();
    sleep(TTL + MARGIN).await;
    cache.unhit("unhit-expired").await.unwrap();
    check_value(cache.get("unhit-expired").await.unwrap(), None, "unhit does not revive an expired counter");
}

/// Racing swaps are linearizable: each sees the value the previous one stored, so the values they
/// return plus the final value are the original and every swapper's value, each exactly once.
async fn racing_swaps_form_one_chain(cache: &Arc<dyn Cache>) {
    cache.set("swap-race", b"original", LONG).await.unwrap();
    let swappers: Vec<_> = (0..16)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.swap("swap-race", format!("swapper-{i}").as_bytes()).await })
        })
        .collect();
    let mut seen = Vec::new();
    for swapper in swappers {
        seen.push(swapper.await.unwrap().unwrap().expect("a swap of a present key returns its value"));
    }
    let originals = seen.iter().filter(|value| value.as_slice() == b"original").count();
    assert_eq!(originals, 1, "exactly one of 16 racing swaps sees the original value");

    seen.push(cache.get("swap-race").await.unwrap().expect("the key survives the swaps"));
    let distinct: BTreeSet<Vec<u8>> = seen.iter().cloned().collect();
    let mut expected: BTreeSet<Vec<u8>> = (0..16).map(|i| format!("swapper-{i}").into_bytes()).collect();
    expected.insert(b"original".to_vec());
    assert_eq!(seen.len(), distinct.len(), "no value was seen twice");
    assert_eq!(distinct, expected, "the swaps form one chain from the original");
}

async fn racing_hits_count_exactly(cache: &Arc<dyn Cache>) {
    let hitters: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.hit("hit-race", LONG).await })
        })
        .collect();
    let mut counts = Vec::new();
    for hitter in hitters {
        counts.push(hitter.await.unwrap().unwrap().count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u64>>(), "50 racing hits count 1..=50, each once");
}
