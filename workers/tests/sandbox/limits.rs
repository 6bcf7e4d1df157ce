//! Every limit at its edge: just under passes, just over is caught.

use crate::Harness;

/// The cap of [`crate::exec_args`]: 4 KiB.
const CAP: usize = 4096;

#[tokio::test]
async fn output_of_exactly_the_cap_is_not_truncated() {
    let harness = Harness::start(&[]).await;
    let outcome = harness.python(&format!("import sys\nsys.stdout.write('x' * {CAP})")).await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout(), vec![b'x'; CAP]);
    harness.finish().await;
}

#[tokio::test]
async fn one_byte_over_the_cap_is_cut_and_killed() {
    let harness = Harness::start(&[]).await;
    // Half on each stream: the cap is over both together. The sleep shows the kill is at once.
    let code = format!(
        "import sys, time\nsys.stdout.write('o' * {half})\nsys.stdout.flush()\ntime.sleep(0.2)\n\
         sys.stderr.write('e' * {rest})\nsys.stderr.flush()\ntime.sleep(30)",
        half = CAP / 2,
        rest = CAP / 2 + 1,
    );
    let outcome = harness.python(&code).await;
    assert!(outcome.report.output_truncated, "{outcome}");
    assert!(!outcome.report.timed_out, "killed at the cap, not at the timeout: {outcome}");
    assert_eq!(outcome.report.exit_code, Some(137), "{outcome}");
    assert_eq!(outcome.stdout(), vec![b'o'; CAP / 2]);
    assert_eq!(outcome.stderr(), vec![b'e'; CAP / 2], "the chunk that passes the cap is cut at it");
    harness.finish().await;
}

#[tokio::test]
async fn a_program_printing_forever_is_stopped_at_the_cap() {
    let harness = Harness::start(&[]).await;
    let outcome = harness.python("while True:\n    print('y' * 100)").await;
    assert!(outcome.report.output_truncated && !outcome.report.timed_out, "{outcome}");
    assert_eq!(outcome.bytes(None).len(), CAP);
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn a_huge_line_without_newline_is_cut_at_the_cap() {
    let harness = Harness::start(&[]).await;
    let outcome =
        harness.python("import sys\nsys.stdout.write('z' * 10_000_000)\nimport time\ntime.sleep(30)").await;
    assert!(outcome.report.output_truncated && !outcome.report.timed_out, "{outcome}");
    assert_eq!(outcome.stdout(), vec![b'z'; CAP]);
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn the_wall_clock_limit_kills_at_its_edge() {
    let harness = Harness::start(&["--exec-timeout-ms=1500"]).await;
    let under = harness.python("import time\ntime.sleep(0.8)\nprint('woke')").await;
    under.assert_ok();
    assert_eq!(under.stdout_text(), "woke\n");

    let over =
        harness.python("import time\nprint('sleeping', flush=True)\ntime.sleep(3)\nprint('woke')").await;
    assert!(over.report.timed_out, "{over}");
    assert_eq!(over.report.exit_code, Some(137), "{over}");
    assert_eq!(over.stdout_text(), "sleeping\n", "the output before the kill is kept");
    assert!((1500..2500).contains(&over.report.duration_ms), "killed at the limit: {over}");
    harness.finish().await;
}

#[tokio::test]
async fn memory_under_the_limit_runs_and_over_it_is_oom_killed() {
    // 64 MiB of memory, no swap on top.
    let harness = Harness::start(&[]).await;
    let under = harness.python("block = b'x' * (32 << 20)\nprint(len(block) >> 20)").await;
    under.assert_ok();
    assert_eq!(under.stdout_text(), "32\n");

    let over = harness.python("block = b'x' * (200 << 20)\nprint(len(block) >> 20)").await;
    assert!(over.report.oom_killed, "{over}");
    assert_eq!(over.report.exit_code, Some(137), "{over}");
    assert!(over.stdout().is_empty(), "{over}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

/// Python is the container's only process (the launcher `exec`s it): `threads` more tasks than
/// the main thread fit in a pids limit of `threads + 1`, and one more does not.
const PIDS_PROGRAM: &str = "\
import sys, threading
stop = threading.Event()
started = 0
try:
    for _ in range(int(sys.stdin.read())):
        threading.Thread(target=stop.wait).start()
        started += 1
except RuntimeError as error:
    print('refused:', error)
stop.set()
print('started', started)
";

#[tokio::test]
async fn threads_under_the_pids_limit_start_and_one_more_is_refused() {
    let harness = Harness::start(&["--exec-pids=16"]).await;
    let under = harness.python_with_stdin(PIDS_PROGRAM, "15").await;
    under.assert_ok();
    assert_eq!(under.stdout_text(), "started 15\n");

    let over = harness.python_with_stdin(PIDS_PROGRAM, "16").await;
    over.assert_ok();
    assert!(over.stdout_text().starts_with("refused: can't start new thread"), "{over}");
    assert!(over.stdout_text().ends_with("started 15\n"), "{over}");
    harness.finish().await;
}

#[tokio::test]
async fn the_scratch_dirs_hold_their_size_and_no_more() {
    // 8 MiB each (`--exec-tmpfs-mb=8`), memory 64 MiB: the tmpfs fills before the memory does.
    let harness = Harness::start(&[]).await;
    let code = "\
import errno
for path in ('/tmp/f', '/box/f'):
    written = 0
    try:
        with open(path, 'wb') as f:
            for _ in range(16):
                f.write(b'\\0' * (1 << 20))
                f.flush()
                written += 1
    except OSError as e:
        print(path, written, errno.errorcode[e.errno])
    else:
        print(path, written, 'ok')
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let text = outcome.stdout_text();
    for path in ["/tmp/f", "/box/f"] {
        let line = text.lines().find(|line| line.starts_with(path)).unwrap_or_else(|| panic!("{outcome}"));
        let fields: Vec<&str> = line.split(' ').collect();
        let written: usize = fields[1].parse().unwrap();
        assert_eq!(fields[2], "ENOSPC", "writing past the size fails: {line}");
        assert!((7..=8).contains(&written), "{path}: {written} MiB fit in 8 MiB: {line}");
    }
    harness.finish().await;
}

#[tokio::test]
async fn half_a_cpu_gives_about_half_a_second_of_cpu_per_second() {
    let harness = Harness::start(&["--exec-cpus=0.5"]).await;
    // Spin for 1.5 s of wall clock; the CPU time the quota allowed is what the process got.
    let code = "import time\nstart = time.monotonic()\nwhile time.monotonic() - start < 1.5:\n    pass\n\
                print(time.process_time() / (time.monotonic() - start))";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let share: f64 = outcome.stdout_text().trim().parse().unwrap_or_else(|_| panic!("{outcome}"));
    // The CFS quota is 50 ms per 100 ms period: at most half, a little less on a busy machine.
    assert!((0.2..=0.6).contains(&share), "a 0.5-CPU container used {share:.2} of a CPU");
    harness.finish().await;
}
