//! What a runner container is: its image, command, limits and labels, as one create request.
//! Every isolation property of a run is decided here, in one place.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use crate::exec::ExecArgs;

/// Marks every container this code creates, so the sweeper can find them.
pub(super) const LABEL_RUNNER: &str = "codecrafter.runner";
/// Which process created the container (`ExecArgs::owner`).
pub(super) const LABEL_OWNER: &str = "codecrafter.owner";
/// When any sweeper may remove it (unix ms), whoever its owner.
pub(super) const LABEL_EXPIRES: &str = "codecrafter.expires";

/// The launcher inside every runner image (`deploy/runners/codecrafter-run`).
const LAUNCHER: &str = "/usr/local/bin/codecrafter-run";

/// The whole environment of a program: nothing of the worker's own (no secret can leak in).
const ENV: [&str; 7] = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/box",
    "LANG=C.UTF-8",
    "PYTHONUNBUFFERED=1",
    "PYTHONDONTWRITEBYTECODE=1",
    "GOCACHE=/box/.cache/go",
    "GOPATH=/box/go",
];

/// `nobody:nogroup`: no file of the image belongs to it, and it is not root in any namespace.
const USER: &str = "65534:65534";

/// The command of a run: the launcher reads the program from stdin.
pub(super) fn run_cmd(language: &str) -> Vec<String> {
    vec![LAUNCHER.to_owned(), language.to_owned()]
}

/// The command of a version probe: the launcher prints one line.
pub(super) fn version_cmd(language: &str) -> Vec<String> {
    vec![LAUNCHER.to_owned(), "--version".to_owned(), language.to_owned()]
}

/// The create request of a runner container.
pub(super) fn container(
    args: &ExecArgs,
    owner: &str,
    lifetime: Duration,
    image: String,
    cmd: Vec<String>,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image),
        cmd: Some(cmd),
        // Docker puts the host name in the environment (`HOSTNAME`): a fixed one says nothing of
        // the container's id.
        hostname: Some("sandbox".to_owned()),
        // The image's entrypoint, if any, must not wrap the launcher.
        entrypoint: Some(Vec::new()),
        user: Some(USER.to_owned()),
        working_dir: Some("/box".to_owned()),
        env: Some(ENV.iter().map(|var| (*var).to_owned()).collect()),
        labels: Some(labels(owner, lifetime)),
        // The program and its stdin come in over the attach stream, and its EOF ends the stdin.
        open_stdin: Some(true),
        stdin_once: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        // Without a TTY stdout and stderr stay apart (multiplexed) and bytes pass unaltered.
        tty: Some(false),
        network_disabled: Some(true),
        host_config: Some(host_config(args)),
        ..Default::default()
    }
}

fn host_config(args: &ExecArgs) -> HostConfig {
    let memory = i64::try_from(args.memory_mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX);
    let tmpfs_mb = args.tmpfs_mb;
    HostConfig {
        network_mode: Some("none".to_owned()),
        memory: Some(memory),
        // Equal to the memory: no swap on top of it, so passing the limit is an OOM kill.
        memory_swap: Some(memory),
        nano_cpus: Some((args.cpus * 1e9) as i64),
        pids_limit: Some(args.pids),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([
            ("/tmp".to_owned(), format!("rw,noexec,nosuid,nodev,size={tmpfs_mb}m,mode=1777")),
            // The launcher writes the program (and compiled binaries) here, so exec is allowed.
            ("/box".to_owned(), format!("rw,exec,nosuid,nodev,size={tmpfs_mb}m,mode=1777")),
        ])),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        ulimits: Some(vec![ulimit("nofile", 256), ulimit("core", 0)]),
        // Output comes over the attach stream; no log file of a hostile program's output on disk.
        log_config: Some(HostConfigLogConfig { typ: Some("none".to_owned()), config: None }),
        // We remove it ourselves, after reading its exit code and OOM flag.
        auto_remove: Some(false),
        init: Some(false),
        privileged: Some(false),
        ..Default::default()
    }
}

fn ulimit(name: &str, limit: i64) -> ResourcesUlimits {
    ResourcesUlimits { name: Some(name.to_owned()), soft: Some(limit), hard: Some(limit) }
}

fn labels(owner: &str, lifetime: Duration) -> HashMap<String, String> {
    let expires = now_ms().saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX));
    HashMap::from([
        (LABEL_RUNNER.to_owned(), "1".to_owned()),
        (LABEL_OWNER.to_owned(), owner.to_owned()),
        (LABEL_EXPIRES.to_owned(), expires.to_string()),
    ])
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or_default()
}
