//! The sandbox's own life: Docker away, images missing, the sweeper, the pool, cleanup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{KillContainerOptions, RemoveContainerOptions, StartContainerOptions};
use workers::exec::{DockerConfig, Language, Sandbox, SandboxError};

use crate::proxy::DockerProxy;
use crate::{Harness, containers_of, docker, exec_args, unique_owner, wait_until};

#[tokio::test]
async fn an_unreachable_daemon_refuses_runs_at_once_and_says_why() {
    for (host, why) in [
        ("unix:///nonexistent/docker.sock", "/nonexistent/docker.sock"),
        ("none", "turned off"),
        ("ftp://example", "unsupported Docker host"),
    ] {
        let config = DockerConfig::new(&exec_args(&[&format!("--docker-host={host}")]), unique_owner());
        let harness = Harness::start_with(config);
        wait_until("the first connection attempt", || async {
            harness.sandbox.status().reason.is_some_and(|reason| !reason.starts_with("connecting"))
        })
        .await;
        let status = harness.sandbox.status();
        assert!(!status.available, "{status:?}");
        assert!(status.reason.as_deref().is_some_and(|reason| reason.contains(why)), "{host}: {status:?}");
        let begun = Instant::now();
        let refused = harness.run("python", "print(1)", "").await;
        assert!(
            matches!(&refused, Err(SandboxError::Unavailable(reason)) if reason.contains(why)),
            "{refused:?}"
        );
        assert!(
            begun.elapsed() < Duration::from_millis(100),
            "refused at once, not after {:?}",
            begun.elapsed()
        );
        assert!(harness.sandbox.languages().iter().all(|language| !language.available));
        harness.finish().await;
    }
}

#[tokio::test]
async fn a_missing_image_makes_its_language_unavailable() {
    let mut config = DockerConfig::new(&exec_args(&["--exec-image-tag=missing"]), unique_owner());
    config.languages = Language::find("python").into_iter().collect();
    let harness = Harness::start_with(config);
    harness.wait_probed().await;
    assert!(harness.sandbox.status().available);
    let python = harness.sandbox.languages().into_iter().find(|language| language.id == "python");
    assert!(python.is_some_and(|python| !python.available && python.version.is_none()));
    let refused = harness.run("python", "print(1)", "").await;
    assert!(matches!(&refused, Err(SandboxError::LanguageUnavailable(id)) if id == "python"), "{refused:?}");
    let unknown = harness.run("Python", "print(1)", "").await;
    assert!(matches!(&unknown, Err(SandboxError::UnknownLanguage(id)) if id == "Python"), "{unknown:?}");
    harness.finish().await;
}

/// A container as a runner would leave it behind, labelled by hand; started, so removing it
/// takes the force a live leftover needs.
async fn leftover(owner: &str, expires_ms: u64) -> String {
    let docker = docker().await;
    let labels = HashMap::from([
        ("codecrafter.runner".to_owned(), "1".to_owned()),
        ("codecrafter.owner".to_owned(), owner.to_owned()),
        ("codecrafter.expires".to_owned(), expires_ms.to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some("codecrafter-runner-python:1".to_owned()),
        cmd: Some(vec!["sleep".to_owned(), "300".to_owned()]),
        labels: Some(labels),
        network_disabled: Some(true),
        ..Default::default()
    };
    let id = docker.create_container(None, body).await.expect("create a leftover").id;
    docker.start_container(&id, None::<StartContainerOptions>).await.expect("start the leftover");
    id
}

#[tokio::test]
async fn the_sweeper_removes_our_leftovers_and_expired_ones_only() {
    let owner = unique_owner();
    let other = unique_owner();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let later = now_ms + 3_600_000;
    let ours = leftover(&owner, later).await;
    let expired = leftover(&other, now_ms - 1000).await;
    let theirs = leftover(&other, later).await;

    let mut config = DockerConfig::new(&exec_args(&[]), owner.clone());
    config.languages = Language::find("python").into_iter().collect();
    let harness = Harness::start_with(config);
    harness.wait_probed().await;
    let remaining = containers_of(&other).await;
    assert!(!containers_of(&owner).await.contains(&ours), "our leftover is removed");
    assert!(!remaining.contains(&expired), "an expired one is removed, whoever's");
    assert!(remaining.contains(&theirs), "another owner's live container is left alone");
    // Another test's sweeper may have taken the expired one first.
    assert!(harness.sandbox.swept() >= 1, "{}", harness.sandbox.swept());
    harness.assert_still_serves().await;
    harness.finish().await;

    let options = RemoveContainerOptions { force: true, v: true, link: false };
    docker()
        .await
        .remove_container(&theirs, Some(options))
        .await
        .expect("remove the other owner's container");
}

#[tokio::test]
async fn warm_and_cold_runs_both_work_and_the_pool_refills() {
    let warm = Harness::start(&["--exec-pool-size=1"]).await;
    wait_until("a warm container", || async { warm.sandbox.status().pool_ready == 1 }).await;
    let outcome = warm.python("print('warm')").await;
    outcome.assert_ok();
    assert!(outcome.report.warm, "{outcome}");
    assert_eq!(outcome.stdout_text(), "warm\n");
    wait_until("the pool to refill", || async { warm.sandbox.status().pool_ready == 1 }).await;
    // Two at once: one takes the warm container, the other starts cold, and the pool never
    // holds more than its size.
    let (first, second) = tokio::join!(warm.python("print(1)"), warm.python("print(2)"));
    first.assert_ok();
    second.assert_ok();
    assert_ne!(first.report.warm, second.report.warm, "{first}\n{second}");
    assert!(warm.sandbox.status().pool_ready <= 1);
    assert!(containers_of(&warm.owner).await.len() <= 3, "one warm, at most two being removed");
    warm.finish().await;

    let cold = Harness::start(&[]).await;
    let outcome = cold.python("print('cold')").await;
    outcome.assert_ok();
    assert!(!outcome.report.warm, "{outcome}");
    assert_eq!(cold.sandbox.status().pool_ready, 0);
    cold.finish().await;
}

#[tokio::test]
async fn warm_containers_past_their_age_are_replaced() {
    let mut config = DockerConfig::new(&exec_args(&["--exec-pool-size=1"]), unique_owner());
    config.languages = Language::find("python").into_iter().collect();
    config.pool_max_age = Duration::from_millis(1500);
    let harness = Harness::start_with(config);
    wait_until("a warm container", || async { harness.sandbox.status().pool_ready == 1 }).await;
    let first = containers_of(&harness.owner).await;
    assert_eq!(first.len(), 1, "{first:?}");
    wait_until("the warm container to be replaced", || async {
        let now = containers_of(&harness.owner).await;
        now.len() == 1 && now != first
    })
    .await;
    let outcome = harness.python("print('fresh')").await;
    outcome.assert_ok();
    harness.finish().await;
}

#[tokio::test]
async fn a_run_dropped_half_way_still_removes_its_container() {
    let harness = Harness::start(&["--exec-timeout-ms=20000"]).await;
    let run = harness.python("import time\nprint('started', flush=True)\ntime.sleep(60)");
    let dropped = tokio::time::timeout(Duration::from_millis(1500), run).await;
    assert!(dropped.is_err(), "the run was still going");
    wait_until("the dropped run's container to be removed", || async {
        containers_of(&harness.owner).await.is_empty()
    })
    .await;
    assert_eq!(harness.sandbox.status().running, 0);
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn the_status_counts_runs_in_progress() {
    let harness = Harness::start(&["--exec-timeout-ms=10000"]).await;
    let (outcome, ()) = tokio::join!(
        harness.python("import sys\nprint('go', flush=True)\nsys.stdin.read()\nimport time\ntime.sleep(0.5)"),
        async {
            wait_until("the run to be counted", || async { harness.sandbox.status().running == 1 }).await;
        }
    );
    outcome.assert_ok();
    assert_eq!(harness.sandbox.status().running, 0);
    harness.finish().await;
}

#[tokio::test]
async fn execution_goes_with_docker_and_comes_back_with_it() {
    let proxy = DockerProxy::start().await;
    let mut config =
        DockerConfig::new(&exec_args(&[&format!("--docker-host={}", proxy.host)]), unique_owner());
    config.languages = Language::find("python").into_iter().collect();
    config.retry_every = Duration::from_millis(200);
    let harness = Harness::start_with(config);
    wait_until("a failed connection", || async {
        harness.sandbox.status().reason.is_some_and(|reason| reason.contains("unreachable"))
    })
    .await;
    let refused = harness.run("python", "print(1)", "").await;
    assert!(matches!(refused, Err(SandboxError::Unavailable(_))), "{refused:?}");

    proxy.open();
    harness.wait_probed().await;
    harness.assert_still_serves().await;

    proxy.close();
    wait_until("the link to drop", || async { !harness.sandbox.status().available }).await;
    let begun = Instant::now();
    let refused = harness.run("python", "print(1)", "").await;
    assert!(matches!(refused, Err(SandboxError::Unavailable(_))), "{refused:?}");
    assert!(begun.elapsed() < Duration::from_millis(100));

    proxy.open();
    harness.wait_probed().await;
    harness.assert_still_serves().await;
    harness.finish().await;
}

#[tokio::test]
async fn a_warm_container_killed_from_outside_is_replaced_not_used() {
    let harness = Harness::start(&["--exec-pool-size=1"]).await;
    wait_until("a warm container", || async { harness.sandbox.status().pool_ready == 1 }).await;
    let first = containers_of(&harness.owner).await;
    assert_eq!(first.len(), 1, "{first:?}");
    docker().await.kill_container(&first[0], None::<KillContainerOptions>).await.expect("kill it");
    wait_until("the dead container to be replaced", || async {
        let now = containers_of(&harness.owner).await;
        now.len() == 1 && now != first && harness.sandbox.status().pool_ready == 1
    })
    .await;
    let outcome = harness.python("print('alive')").await;
    outcome.assert_ok();
    assert!(outcome.report.warm, "{outcome}");
    assert_eq!(outcome.stdout_text(), "alive\n");
    harness.finish().await;
}
