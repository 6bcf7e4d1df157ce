//! `loadtest compare` against a spawned CodeCrafter and both peers of `loadtest/peers`
//! (@y/websocket-server and Hocuspocus, started by the harness with `peers/start.sh`, which runs
//! `npm ci` when `node_modules` is missing): one report with a run per target, every update
//! delivered, the table, the ratios, and the plot and HTML files. Fails, never skips, when a peer
//! cannot be started (the harness then exits 2 without a report).

use crate::run_spawned;

#[test]
fn compare_codecrafter_with_both_peers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plot, html) = (dir.path().join("compare.svg"), dir.path().join("compare.html"));
    let run = run_spawned(
        "compare",
        &[
            "--peer",
            "y-websocket-server",
            "--peer",
            "hocuspocus",
            "--shape",
            "rooms",
            "--rooms",
            "3",
            "--clients",
            "3",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--timeout",
            "1m",
            "--plot",
            plot.to_str().expect("utf-8 path"),
            "--html",
            html.to_str().expect("utf-8 path"),
        ],
    );
    let (r, context) = (&run.report, &run.context);
    assert!(run.out.status.success(), "{context}");
    assert_eq!((r["kind"].as_str(), r["ok"].as_bool()), (Some("compare"), Some(true)), "{context}");
    let targets = ["codecrafter", "y-websocket-server", "hocuspocus"];
    assert_eq!(r["config"]["targets"], serde_json::json!(targets), "{context}");
    let runs = r["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{context}");
    for (run, target) in runs.iter().zip(targets) {
        assert_eq!(run["target"], target, "{context}");
        let d = &run["report"]["deliveries"];
        assert!(d["received"].as_u64() > Some(0), "{target}: {context}");
        assert_eq!(d["received"], d["expected"], "{target}: {context}");
        for zero in ["missing", "extra", "gaps", "disconnected_clients"] {
            assert_eq!(d[zero], 0, "{target} {zero}: {context}");
        }
        assert!(run["report"]["server"]["window"]["cpu_secs"].is_number(), "{target} measured; {context}");
    }
    let table = r["table"].as_array().expect("table");
    assert_eq!(table.len(), 3, "{context}");
    assert!(table.iter().all(|row| row["deliveries_per_sec"].as_f64() > Some(0.0)), "{context}");
    let ratios = r["ratios"].as_array().expect("ratios");
    let against: Vec<_> = ratios.iter().map(|x| (&x["target"], &x["baseline"])).collect();
    assert_eq!(against.len(), 2, "{context}");
    assert!(against.iter().all(|(_, b)| *b == "codecrafter"), "{context}");
    assert!(ratios.iter().all(|x| x["p99"]["median"].as_f64() > Some(0.0)), "{context}");

    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(stdout.contains("ratios against codecrafter"), "{context}");
    let bars = std::fs::read_to_string(&plot).expect("the bar chart was written");
    assert_eq!(bars.matches(r#"class="bar""#).count(), 3, "{bars}");
    let percentiles =
        std::fs::read_to_string(dir.path().join("compare-percentiles.svg")).expect("percentiles");
    assert_eq!(percentiles.matches(r#"class="series""#).count(), 3, "{percentiles}");
    let page = std::fs::read_to_string(&html).expect("the page was written");
    assert_eq!(page.matches("<svg ").count(), 2);
    assert!(targets.iter().all(|t| page.contains(&format!("<td>{t}</td>"))), "{page}");
}
