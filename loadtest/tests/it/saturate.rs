//! `loadtest fanout --saturate` against an embedded server: a short search whose steps double
//! from the start rate, each one reported with its rates, latency and server CPU, and a knee.

use crate::run_spawned;

#[test]
fn saturation_search_finds_a_knee_and_plots_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("saturate.svg");
    let plot_arg = plot.to_str().expect("utf-8 path");
    let run = run_spawned(
        "fanout",
        &[
            "--saturate",
            "--rooms",
            "4",
            "--clients",
            "5",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--warmup",
            "300ms",
            "--drain",
            "3s",
            "--quiet",
            "100ms",
            "--p99-bound",
            "100ms",
            "--max-steps",
            "4",
            "--plot",
            plot_arg,
        ],
    );
    let (r, context) = (&run.report, &run.context);
    assert!(run.out.status.success(), "{context}");
    assert_eq!((r["kind"].as_str(), r["ok"].as_bool()), (Some("saturate"), Some(true)), "{context}");
    let steps = r["steps"].as_array().expect("steps");
    assert!((2..=4).contains(&steps.len()), "{context}");
    assert_eq!(steps[0]["rate_per_writer"], 50, "{context}");
    // While steps hold the rate doubles; a failed step would start the bisection.
    for pair in steps.windows(2).filter(|p| p[0]["held"] == true) {
        let (a, b) = (pair[0]["rate_per_writer"].as_u64(), pair[1]["rate_per_writer"].as_u64());
        assert_eq!(b, a.map(|a| a * 2), "{context}");
    }
    for s in steps {
        // 4 writers x rate x 4 receivers each.
        let offered = s["rate_per_writer"].as_f64().expect("rate") * 16.0;
        assert_eq!(s["offered_deliveries_per_sec"].as_f64(), Some(offered), "{context}");
        if s["held"] == true {
            assert!(s["p99_us"].as_u64() <= Some(100_000), "{context}");
            assert!(s["deliveries_per_sec"].as_f64() > Some(offered * 0.9), "{context}");
            assert!(s["server_cpu_us_per_delivery"].as_f64() > Some(0.0), "{context}");
        } else {
            assert!(s["why_not"].is_string(), "{context}");
        }
    }
    let knee = &r["knee"];
    assert_eq!(knee["held"], true, "{context}");
    let best = steps.iter().filter(|s| s["held"] == true).filter_map(|s| s["rate_per_writer"].as_u64()).max();
    assert_eq!(knee["rate_per_writer"].as_u64(), best, "the knee is the highest rate that held; {context}");
    let stdout = String::from_utf8_lossy(&run.out.stdout);
    assert!(stdout.contains("knee"), "{context}");
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    assert_eq!(svg.matches(r#"class="step""#).count(), 2 * steps.len(), "a dot per step and panel");
}
