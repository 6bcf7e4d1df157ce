//! The server's top-level modules import each other without a cycle (ARCHITECTURE.md, "Layers"):
//! `scripts/module_graph.py` reads every `crate::` path under `server/src` and fails on a cycle.

use std::process::Command;

#[test]
fn the_servers_top_level_modules_have_no_import_cycle() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new("python3")
        .arg("scripts/module_graph.py")
        .current_dir(root)
        .output()
        .expect("python3 runs scripts/module_graph.py (apt-get install python3)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("no cycle"), "{report}");
    // The check sees the graph: the edges it must find are there.
    assert!(report.lines().any(|l| l.starts_with("http ") && l.contains("state")), "{report}");
}
