//! `loadtest fanout` against an embedded server in one hot room, where the server merges the
//! updates that queue while a round is written: a frame then carries several writers' updates.
//! The harness must count each of them once, keep each writer's order, see nothing lost, and
//! find the room converged.

use crate::run_spawned;

#[test]
fn merged_rounds_deliver_every_writer_s_update_once_and_in_order() {
    let run = run_spawned(
        "fanout",
        &[
            "--rooms",
            "1",
            "--clients",
            "12",
            "--writers",
            "8",
            "--rate",
            "500",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--server-arg=--max-messages-per-sec=100000",
            "--server-arg=--message-burst=100000",
        ],
    );
    let (r, context) = (&run.report, &run.context);
    assert!(run.out.status.success(), "{context}");
    assert_eq!(r["ok"], true, "{context}");
    let d = &r["deliveries"];
    assert!(d["expected"].as_u64() > Some(0), "{context}");
    assert_eq!(d["received"], d["expected"], "{context}");
    assert_eq!(
        (d["missing"].as_u64(), d["extra"].as_u64(), d["gaps"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{context}"
    );
    // A writer gets its own update back only inside a merged frame that also carries another
    // writer's: some rounds did merge several writers' updates, and every token in them counted.
    assert!(d["echoes"].as_u64() > Some(0), "no round merged several writers' updates; {context}");
    let c = &r["convergence"];
    assert_eq!((c["rooms_checked"].as_u64(), c["passed"].as_u64()), (Some(1), Some(1)), "{context}");
}
