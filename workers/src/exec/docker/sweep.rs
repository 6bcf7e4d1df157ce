//! The sweeper: runner containers left behind by an earlier life of this process (same owner) or
//! by anyone past their expiry are removed, at start and after every reconnect.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use super::container::Keeper;
use super::spec::{LABEL_EXPIRES, LABEL_OWNER, LABEL_RUNNER, now_ms};

/// Remove the leftovers; returns how many were removed. Containers a run or the pool of this
/// process holds now are never touched.
pub(super) async fn sweep(docker: &Docker, owner: &str, keeper: &Keeper) -> Result<usize, DockerError> {
    let list = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), vec![format!("{LABEL_RUNNER}=1")])])),
        ..Default::default()
    };
    let now = now_ms();
    let mut removed = 0;
    for container in docker.list_containers(Some(list)).await? {
        let Some(id) = container.id else { continue };
        let labels = container.labels.unwrap_or_default();
        if keeper.holds(&id) || !leftover(&labels, owner, now) {
            continue;
        }
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => removed += 1,
            // Removed meanwhile (by its own run, or another sweeper).
            Err(DockerError::DockerResponseServerError { status_code: 404 | 409, .. }) => {}
            Err(error) => {
                tracing::warn!(container = %id, %error, "sweeper could not remove a runner container")
            }
        }
    }
    Ok(removed)
}

/// Ours from before, or expired. An expiry that does not parse is no expiry: another owner's
/// container is only ever removed by its clock.
fn leftover(labels: &HashMap<String, String>, owner: &str, now_ms: u64) -> bool {
    let ours = labels.get(LABEL_OWNER).is_some_and(|label| label == owner);
    let expired =
        labels.get(LABEL_EXPIRES).and_then(|at| at.parse::<u64>().ok()).is_some_and(|at| at < now_ms);
    ours || expired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(owner: &str, expires: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_RUNNER.to_owned(), "1".to_owned()),
            (LABEL_OWNER.to_owned(), owner.to_owned()),
            (LABEL_EXPIRES.to_owned(), expires.to_owned()),
        ])
    }

    #[test]
    fn ours_or_expired_only() {
        let check = |labels: HashMap<String, String>, expected: bool| {
            assert_eq!(leftover(&labels, "me", 1_000), expected, "{labels:?}");
        };
        check(labels("me", "5000"), true);
        check(labels("other", "5000"), false);
        check(labels("other", "999"), true);
        check(labels("other", "1000"), false);
        check(labels("other", "soon"), false);
        check(labels("me-too", "5000"), false);
        check(HashMap::new(), false);
    }
}
