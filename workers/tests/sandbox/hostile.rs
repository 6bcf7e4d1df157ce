//! Hostile programs: each is contained and reported, and the sandbox serves the next run.

use std::collections::BTreeMap;

use crate::Harness;

#[tokio::test]
async fn a_fork_bomb_is_contained_by_the_pids_limit_and_the_timeout() {
    let harness = Harness::start(&["--exec-timeout-ms=2000"]).await;
    let code = "\
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
";
    let outcome = harness.python(code).await;
    // 64 pythons may pass 128 MiB before the clock runs out, on a loaded machine: either limit
    // ends it, and the process count never passes the pids limit meanwhile.
    assert!(outcome.report.timed_out || outcome.report.oom_killed, "{outcome}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed() {
    let harness = Harness::start(&[]).await;
    let outcome = harness.python("hog = []\nwhile True:\n    hog.append(b'x' * (1 << 20))").await;
    assert!(outcome.report.oom_killed && !outcome.report.timed_out, "{outcome}");
    assert_eq!(outcome.report.exit_code, Some(137), "{outcome}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn an_infinite_loop_is_killed_at_the_timeout() {
    let harness = Harness::start(&["--exec-timeout-ms=1000"]).await;
    let outcome = harness.python("while True:\n    pass").await;
    assert!(outcome.report.timed_out, "{outcome}");
    assert_eq!(outcome.report.exit_code, Some(137), "{outcome}");
    assert!((1000..2000).contains(&outcome.report.duration_ms), "{outcome}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn the_root_filesystem_is_read_only_and_only_the_scratch_dirs_are_writable() {
    let harness = Harness::start(&[]).await;
    let code = "\
import os
for path in ['/x', '/etc/x', '/usr/x', '/usr/local/bin/codecrafter-run', '/box/x', '/tmp/x']:
    try:
        with open(path, 'w') as file:
            file.write('x')
        print(path, 'written')
    except OSError as error:
        print(path, error.strerror)
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let results = lines_by_path(&outcome.stdout_text());
    for path in ["/x", "/etc/x", "/usr/x", "/usr/local/bin/codecrafter-run"] {
        assert_ne!(results[path], "written", "{path} must not be writable: {outcome}");
    }
    assert_eq!(results["/x"], "Read-only file system", "{outcome}");
    assert_eq!(results["/box/x"], "written", "{outcome}");
    assert_eq!(results["/tmp/x"], "written", "{outcome}");
    harness.finish().await;
}

#[tokio::test]
async fn nothing_executes_from_tmp() {
    let harness = Harness::start(&[]).await;
    let code = "\
import os, shutil, subprocess
shutil.copy('/bin/true', '/tmp/true')
os.chmod('/tmp/true', 0o755)
with open('/tmp/script.sh', 'w') as script:
    script.write('#!/bin/sh\\necho ran\\n')
os.chmod('/tmp/script.sh', 0o755)
for path in ['/tmp/true', '/tmp/script.sh']:
    try:
        subprocess.run([path], check=True)
        print(path, 'ran')
    except OSError as error:
        print(path, error.strerror)
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let results = lines_by_path(&outcome.stdout_text());
    assert_eq!(results["/tmp/true"], "Permission denied", "{outcome}");
    assert_eq!(results["/tmp/script.sh"], "Permission denied", "{outcome}");
    harness.finish().await;
}

#[tokio::test]
async fn host_files_are_out_of_reach() {
    let harness = Harness::start(&[]).await;
    let code = "\
try:
    open('/etc/shadow').read()
    print('shadow read')
except OSError as error:
    print('shadow', error.strerror)
print(open('/proc/mounts').read(), end='')
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let stdout = outcome.stdout_text();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("shadow Permission denied"), "{outcome}");
    // Docker's own files aside, nothing of the host is mounted in: no bind mount, no socket.
    let docker_files = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];
    for mount in lines {
        let point = mount.split_whitespace().nth(1).unwrap_or_default();
        let standard = point == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|root| point == *root || point.starts_with(&format!("{root}/")))
            || ["/tmp", "/box"].contains(&point)
            || docker_files.contains(&point);
        assert!(standard, "unexpected mount {mount:?}: {outcome}");
    }
    harness.finish().await;
}

#[tokio::test]
async fn there_is_no_network_but_loopback() {
    let harness = Harness::start(&[]).await;
    // Only the loopback is ever contacted: nothing may leave the machine, even in a test.
    let code = "\
import os, socket
print(sorted(os.listdir('/sys/class/net')))
try:
    socket.create_connection(('127.0.0.1', 1), timeout=1)
    print('connected')
except OSError as error:
    print('refused', type(error).__name__)
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout_text(), "['lo']\nrefused ConnectionRefusedError\n");
    harness.finish().await;
}

#[tokio::test]
async fn the_program_has_no_privileges() {
    let harness = Harness::start(&[]).await;
    let code = "\
import os
print(os.getuid(), os.getgid(), os.getgroups())
for line in open('/proc/self/status'):
    if line.split(':')[0] in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'):
        print(line, end='')
";
    let outcome = harness.python(code).await;
    outcome.assert_ok();
    let stdout = outcome.stdout_text();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("65534 65534 [65534]"), "{outcome}");
    let status: BTreeMap<&str, &str> =
        lines.filter_map(|line| line.split_once(':')).map(|(key, value)| (key, value.trim())).collect();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status.get(cap), Some(&"0000000000000000"), "{cap}: {outcome}");
    }
    assert_eq!(status.get("NoNewPrivs"), Some(&"1"), "{outcome}");
    harness.finish().await;
}

#[tokio::test]
async fn the_program_sees_nothing_of_the_workers_environment() {
    let harness = Harness::start(&[]).await;
    let outcome = harness
        .python("import os\nfor key in sorted(os.environ):\n    print(f'{key}={os.environ[key]}')")
        .await;
    outcome.assert_ok();
    let stdout = outcome.stdout_text();
    let seen: BTreeMap<&str, &str> = stdout.lines().filter_map(|line| line.split_once('=')).collect();
    // What the container is given (checked exactly in `lifecycle`), and what the launcher adds.
    let given = [
        "HOME",
        "HOSTNAME",
        "LANG",
        "PATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "GOPATH",
        "GOCACHE",
    ];
    let launcher = [
        "CGO_ENABLED",
        "GO111MODULE",
        "GOFLAGS",
        "GOPROXY",
        "GOTMPDIR",
        "GOTOOLCHAIN",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "PWD",
        "OLDPWD",
    ];
    for key in seen.keys() {
        assert!(given.contains(key) || launcher.contains(key), "{key} leaked into the program: {outcome}");
    }
    assert_eq!(seen.get("HOSTNAME"), Some(&"sandbox"), "{outcome}");
    assert_eq!(seen.get("HOME"), Some(&"/box"), "{outcome}");
    // The worker's own variables (this test's included) never reach it.
    assert!(std::env::var("CODECRAFTER_TEST_DOCKER_HOST").is_ok());
    assert!(!stdout.contains("CODECRAFTER") && !stdout.contains("docker.sock"), "{outcome}");
    harness.finish().await;
}

#[tokio::test]
async fn a_program_that_never_reads_a_large_stdin_still_finishes() {
    let harness = Harness::start(&[]).await;
    let stdin = "x".repeat(64 * 1024);
    let outcome = harness.python_with_stdin("print('done without reading')", &stdin).await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout_text(), "done without reading\n");
    // And one that prints a lot without reading: its output is read while its stdin is full.
    let outcome = harness
        .python_with_stdin("import sys\nfor i in range(300):\n    print(i)\nsys.stdout.flush()", &stdin)
        .await;
    outcome.assert_ok();
    assert_eq!(outcome.stdout_text().lines().count(), 300);
    harness.finish().await;
}

#[tokio::test]
async fn a_program_reading_stdin_forever_after_its_end_is_killed_at_the_timeout() {
    let harness = Harness::start(&["--exec-timeout-ms=1000"]).await;
    let outcome =
        harness.python_with_stdin("import sys\nwhile True:\n    sys.stdin.read()", "some input").await;
    assert!(outcome.report.timed_out, "{outcome}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn a_program_that_closes_its_output_and_keeps_running_is_killed_at_the_timeout() {
    let harness = Harness::start(&["--exec-timeout-ms=1000"]).await;
    let code = "import os, time\nprint('bye', flush=True)\nos.close(1)\nos.close(2)\ntime.sleep(60)";
    let outcome = harness.python(code).await;
    assert!(outcome.report.timed_out, "{outcome}");
    assert_eq!(outcome.stdout_text(), "bye\n");
    assert!((1000..2500).contains(&outcome.report.duration_ms), "{outcome}");
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn symlinks_planted_by_a_program_touch_nothing_on_the_host() {
    let harness = Harness::start(&[]).await;
    // A canary on the host, at a path the symlinks point to; the sandbox must never write
    // through a path inside the container (it copies no file in or out).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let canary = dir.path().join("canary.txt");
    std::fs::write(&canary, "untouched").expect("write the canary");
    let canary = canary.display().to_string();
    let code = format!(
        "\
import os
targets = {{
    '/box/main.py': '/etc/passwd',
    '/box/output.txt': '/proc/1/root/etc/passwd',
    '/box/main': '{canary}',
    '/box/Main.class': '/proc/1/root{canary}',
    '/tmp/main.py': '{canary}',
    '/tmp/stdout': '/proc/self/root/etc/shadow',
}}
for link, target in targets.items():
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(target, link)
for link in targets:
    try:
        with open(link, 'w') as file:
            file.write('overwritten')
        print(link, 'written')
    except OSError as error:
        print(link, error.strerror)
"
    );
    let outcome = harness.python(&code).await;
    outcome.assert_ok();
    assert_eq!(std::fs::read_to_string(&canary).expect("read the canary"), "untouched");
    let entries: Vec<_> =
        std::fs::read_dir(dir.path()).expect("list").map(|entry| entry.map(|e| e.file_name())).collect();
    assert_eq!(entries.len(), 1, "nothing new beside the canary: {entries:?}");
    // The next run starts from a fresh /box, whatever the last one planted.
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn eight_runs_at_once_each_get_their_own_output() {
    let harness = Harness::start(&["--exec-timeout-ms=10000"]).await;
    let runs = (0..8).map(|index| {
        let harness = &harness;
        async move {
            let code = "import sys, time\nn = int(sys.stdin.read())\ntime.sleep(0.2)\nprint(n * n)";
            (index, harness.python_with_stdin(code, &index.to_string()).await)
        }
    });
    for (index, outcome) in futures_util::future::join_all(runs).await {
        outcome.assert_ok();
        assert_eq!(outcome.stdout_text(), format!("{}\n", index * index));
    }
    harness.finish().await;
}

/// `path rest of line` lines, by path.
fn lines_by_path(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(path, rest)| (path.to_owned(), rest.to_owned()))
        .collect()
}
