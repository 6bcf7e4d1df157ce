//! The container as Docker holds it: every isolation setting of `exec/docker/spec.rs`, read back
//! from the daemon on a warm container (created, attached and started, waiting for a program).

use std::collections::HashMap;

use bollard::query_parameters::InspectContainerOptions;
use workers::exec::Sandbox;

use crate::{Harness, containers_of, docker, wait_until};

#[tokio::test]
async fn the_container_is_created_as_specified() {
    let harness = Harness::start(&["--exec-pool-size=1"]).await;
    wait_until("a warm container", || async { harness.sandbox.status().pool_ready == 1 }).await;
    let ids = containers_of(&harness.owner).await;
    assert_eq!(ids.len(), 1, "{ids:?}");
    let inspect =
        docker().await.inspect_container(&ids[0], None::<InspectContainerOptions>).await.expect("inspect");

    let state = inspect.state.expect("state");
    assert_eq!(state.running, Some(true), "a warm container is started, its launcher waiting");

    let config = inspect.config.expect("config");
    assert_eq!(config.image.as_deref(), Some("codecrafter-runner-python:1"));
    assert_eq!(config.cmd, Some(vec!["/usr/local/bin/codecrafter-run".to_owned(), "python".to_owned()]));
    assert_eq!(config.user.as_deref(), Some("65534:65534"));
    assert_eq!(config.working_dir.as_deref(), Some("/box"));
    assert_eq!(config.hostname.as_deref(), Some("sandbox"));
    let mut env = config.env.expect("env");
    env.sort();
    assert_eq!(
        env,
        [
            "GOCACHE=/box/.cache/go",
            "GOPATH=/box/go",
            "HOME=/box",
            "LANG=C.UTF-8",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
        ]
    );
    assert_eq!(config.tty, Some(false));
    assert_eq!(config.open_stdin, Some(true));
    assert_eq!(config.stdin_once, Some(true));
    let labels = config.labels.expect("labels");
    assert_eq!(labels.get("codecrafter.runner").map(String::as_str), Some("1"));
    assert_eq!(labels.get("codecrafter.owner"), Some(&harness.owner));
    let expires: u64 = labels.get("codecrafter.expires").and_then(|at| at.parse().ok()).expect("an expiry");
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    // Max pool age (10 min) + timeout (3 s) + 60 s after its creation, a moment ago.
    let lifetime = 600_000 + 3_000 + 60_000;
    assert!((now_ms + lifetime - 30_000..=now_ms + lifetime).contains(&expires), "{expires} vs now {now_ms}");

    let host = inspect.host_config.expect("host config");
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(64 << 20), "no swap beyond the memory");
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(32));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(
        host.tmpfs,
        Some(HashMap::from([
            ("/tmp".to_owned(), "rw,noexec,nosuid,nodev,size=8m,mode=1777".to_owned()),
            ("/box".to_owned(), "rw,exec,nosuid,nodev,size=8m,mode=1777".to_owned()),
        ]))
    );
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(host.cap_add.unwrap_or_default().is_empty());
    assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_owned()]));
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.auto_remove, Some(false));
    assert_eq!(host.log_config.and_then(|log| log.typ).as_deref(), Some("none"));
    let ulimits: Vec<_> =
        host.ulimits.unwrap_or_default().into_iter().map(|u| (u.name, u.soft, u.hard)).collect();
    assert_eq!(
        ulimits,
        [(Some("nofile".to_owned()), Some(256), Some(256)), (Some("core".to_owned()), Some(0), Some(0))]
    );
    assert!(host.binds.unwrap_or_default().is_empty(), "no bind mounts");
    assert!(host.mounts.unwrap_or_default().is_empty(), "no mounts");
    assert!(inspect.mounts.unwrap_or_default().is_empty(), "no volumes");
    harness.finish().await;
}
