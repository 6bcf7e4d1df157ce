//! The sandbox of a process that cannot run programs (execution turned off with
//! `--docker-host none`, or no backend): every run is refused at once with the reason, and every
//! language is listed as not available.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Chunk, LanguageInfo, RunReport, RunSpec, Sandbox, SandboxError, SandboxStatus};

pub struct Unavailable {
    reason: String,
}

impl Unavailable {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

#[async_trait]
impl Sandbox for Unavailable {
    fn languages(&self) -> Vec<LanguageInfo> {
        super::languages::ALL
            .iter()
            .map(|language| LanguageInfo {
                id: language.id.to_owned(),
                name: language.name.to_owned(),
                version: None,
                available: false,
            })
            .collect()
    }

    fn status(&self) -> SandboxStatus {
        SandboxStatus { available: false, reason: Some(self.reason.clone()), running: 0, pool_ready: 0 }
    }

    async fn run(&self, _spec: RunSpec, _output: mpsc::Sender<Chunk>) -> Result<RunReport, SandboxError> {
        Err(SandboxError::Unavailable(self.reason.clone()))
    }
}
