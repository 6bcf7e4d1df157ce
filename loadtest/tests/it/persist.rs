//! `loadtest persist` against an embedded server: every update is acknowledged as saved, timed,
//! and found in its room afterwards; the journal's group commits are read from `/metrics`.

use crate::run_spawned;

#[test]
fn paced_writers_get_every_update_acknowledged() {
    let run = run_spawned(
        "persist",
        &["--rooms", "3", "--writers", "2", "--rate", "25", "--duration", "2s", "--warmup", "500ms"],
    );
    let (r, context) = (&run.report, &run.context);
    assert!(run.out.status.success(), "{context}");
    assert_eq!(r["ok"], true, "{context}");

    let t = &r["throughput"];
    assert_eq!(t["unacknowledged"], 0, "{context}");
    let (sent, acked) = (t["updates_sent"].as_u64(), t["updates_acked"].as_u64());
    // 6 writers x 25/s over 2.5 s: about 375 updates; scheduling may shave a few.
    assert!(sent > Some(300), "{context}");
    assert_eq!(acked, sent, "every update sent was acknowledged; {context}");
    let per_sec = t["acked_per_sec"].as_f64().expect("acked_per_sec");
    assert!((100.0..200.0).contains(&per_sec), "about 150 updates/s persisted; {context}");

    let l = &r["ack_latency"];
    assert!(l["count"].as_u64() > Some(200), "updates of the window were timed; {context}");
    assert!(l["p50_us"].as_u64() > Some(0), "{context}");
    assert!(l["p99_us"].as_u64() >= l["p50_us"].as_u64(), "{context}");
    assert!(l["max_us"].as_u64() < Some(5_000_000), "a saved took over 5 s; {context}");

    let j = &r["journal"];
    assert!(j["updates"].as_f64() > Some(0.0), "the server's journal counters moved; {context}");
    assert!(j["updates_per_batch"].as_f64() >= Some(1.0), "{context}");
    assert!(r["server"]["window"]["cpu_secs"].as_f64() > Some(0.0), "{context}");

    let v = &r["verify"];
    assert_eq!((v["rooms_checked"].as_u64(), v["passed"].as_u64()), (Some(3), Some(3)), "{context}");
}

#[test]
fn saturating_writers_keep_their_window_and_lose_nothing() {
    let run = run_spawned(
        "persist",
        &["--rooms", "2", "--saturate", "--in-flight", "8", "--duration", "1s", "--warmup", "300ms"],
    );
    let (r, context) = (&run.report, &run.context);
    assert!(run.out.status.success(), "{context}");
    let t = &r["throughput"];
    assert_eq!(t["unacknowledged"], 0, "{context}");
    assert_eq!(t["offered_per_sec"], 0.0, "{context}");
    assert!(t["updates_acked"].as_u64() > Some(16), "more than one window went through; {context}");
    assert_eq!(t["updates_acked"], t["updates_sent"], "{context}");
    assert_eq!(r["verify"]["passed"], 2, "{context}");
}
