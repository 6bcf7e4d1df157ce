//! Which languages this runner can run, and their versions: the launcher of each runner image is
//! asked (`codecrafter-run --version LANG`) in a container with the run limits.

use std::time::Duration;

use bollard::Docker;
use bytes::BytesMut;
use protocol::run::OutputStream;
use tokio::sync::mpsc;

use super::container::{Keeper, LaunchError, launch};
use super::drive::{Limits, drive};
use super::spec;
use crate::exec::ExecArgs;
use crate::exec::languages::Language;

/// What the probe found out about one language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Probe {
    pub version: Option<String>,
    pub available: bool,
}

/// A version check is not a user's program: a JVM on half a core needs more than a test's 1 s.
const PROBE_TIMEOUT_AT_LEAST: Duration = Duration::from_secs(20);

/// Everything a version line could take.
const PROBE_OUTPUT_MAX: usize = 4096;

/// What a probe needs, owned: probes run concurrently on a stream.
pub(super) struct ProbeContext {
    pub docker: Docker,
    pub keeper: Keeper,
    pub args: ExecArgs,
    pub owner: String,
    pub lifetime: Duration,
}

/// Ask the runner of `language` for its version. A missing image, or a launcher that fails, is a
/// language not available here (logged, not an error).
pub(super) async fn probe(context: &ProbeContext, language: &Language) -> Probe {
    let image = language.image(&context.args);
    let body = spec::container(
        &context.args,
        &context.owner,
        context.lifetime,
        image.clone(),
        spec::version_cmd(language.id),
    );
    let launched = match launch(&context.docker, &context.keeper, body).await {
        Ok(launched) => launched,
        Err(LaunchError::NoImage) => {
            tracing::info!(language = language.id, %image, "runner image not installed: language unavailable");
            return Probe::default();
        }
        Err(LaunchError::Docker(error)) => {
            tracing::warn!(language = language.id, %image, %error, "could not probe a runner image");
            return Probe::default();
        }
    };
    let limits =
        Limits { timeout: context.args.timeout().max(PROBE_TIMEOUT_AT_LEAST), output_max: PROBE_OUTPUT_MAX };
    let (sender, mut receiver) = mpsc::channel(16);
    let run = async move { drive(&context.docker, launched, Vec::new(), &sender, limits).await };
    let collect = async {
        let (mut stdout, mut stderr) = (BytesMut::new(), BytesMut::new());
        while let Some(chunk) = receiver.recv().await {
            match chunk.stream {
                OutputStream::Stdout => stdout.extend_from_slice(&chunk.bytes),
                OutputStream::Stderr => stderr.extend_from_slice(&chunk.bytes),
            }
        }
        (stdout, stderr)
    };
    let (report, (stdout, stderr)) = tokio::join!(run, collect);
    let version = String::from_utf8_lossy(&stdout)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned);
    match (report, version) {
        (Ok(report), Some(version)) if report.exit_code == Some(0) => {
            tracing::info!(language = language.id, %version, "runner ready");
            Probe { version: Some(version), available: true }
        }
        (report, _) => {
            tracing::warn!(
                language = language.id,
                %image,
                ?report,
                stderr = %String::from_utf8_lossy(&stderr),
                "runner image did not report its version: language unavailable"
            );
            Probe::default()
        }
    }
}
