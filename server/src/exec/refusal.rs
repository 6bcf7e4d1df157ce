//! Why a run was refused, and how each refusal reads on the socket (`error` code) and over HTTP
//! (status and code): one table, so both surfaces say the same.

use std::time::Duration;

use axum::http::StatusCode;
use workers::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum SubmitRefusal {
    #[error("{0}")]
    UnknownLanguage(String),
    /// No runner can take it: no Docker, the language not installed, no worker seen.
    #[error("execution unavailable: {0}")]
    Unavailable(String),
    #[error("code: at most {max} bytes")]
    CodeTooLong { max: usize },
    #[error("stdin: at most {max} bytes")]
    StdinTooLong { max: usize },
    #[error("at most {per_min} runs per minute; try again in {}s", retry_after.as_secs().max(1))]
    RateLimited { per_min: u32, retry_after: Duration },
    #[error("the execution queue is full ({max} runs waiting); try again shortly")]
    QueueFull { max: u64 },
    /// The room's document could not be read for its code.
    #[error("the session's code could not be read: {0}")]
    Document(String),
    #[error("the run could not be recorded: {0}")]
    Store(storage::Error),
    #[error("the run could not be queued: {0}")]
    Queue(QueueError),
}

impl SubmitRefusal {
    /// The stable code, on the socket and over HTTP.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownLanguage(_) => "unknown_language",
            Self::Unavailable(_) => "execution_unavailable",
            Self::CodeTooLong { .. } => "code_too_long",
            Self::StdinTooLong { .. } => "stdin_too_long",
            Self::RateLimited { .. } | Self::QueueFull { .. } => "too_many_runs",
            Self::Document(_) | Self::Store(_) | Self::Queue(_) => "run_not_queued",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownLanguage(_) => StatusCode::BAD_REQUEST,
            Self::CodeTooLong { .. } | Self::StdinTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Document(_) | Self::Store(_) | Self::Queue(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Seconds a client should wait before asking again, where that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some((*retry_after).max(Duration::from_secs(1))),
            Self::QueueFull { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}
