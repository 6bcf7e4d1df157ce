//! Code execution over the app channel: what a client sends (`{"type":"run",...}`), and what every
//! app client of the room receives while the run goes (`run_started`, `run_output`, `run_exit`).
//! The sender alone gets `run_queued` (or an `error` with its nonce).

use serde::{Deserialize, Serialize};

use crate::chat::ChatUser;

/// The fields of a client's `run` message (its `type` and `nonce` are read by the dispatch).
/// `code` defaults to the room document's `Y.Text` named `code`; `language` to the session's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// `run_started`: to every app client of the room, when a worker starts the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStarted {
    pub job: String,
    pub language: String,
    pub user: ChatUser,
}

/// `run_output`: one coalesced chunk of output. `seq` counts a job's chunks from 0, with no gaps,
/// across both streams, in the order the program wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub job: String,
    pub seq: u64,
    pub stream: OutputStream,
    pub data: String,
}

/// `run_exit`: the run is over. `exit_code` is `None` when the program never ran (`error` says
/// why) or its status could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunExit {
    pub job: String,
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub output_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_request_reads_its_optional_fields_and_refuses_others() {
        let full: RunRequest = serde_json::from_str(
            r#"{"type":"run","nonce":"n","language":"python","stdin":"1\n","code":"print(1)"}"#,
        )
        .unwrap();
        assert_eq!(full.language.as_deref(), Some("python"));
        assert_eq!(full.stdin.as_deref(), Some("1\n"));
        assert_eq!(full.code.as_deref(), Some("print(1)"));
        let bare: RunRequest = serde_json::from_str(r#"{"type":"run"}"#).unwrap();
        assert_eq!(bare.code, None);
        for bad in [
            r#"{"type":"run","code":5}"#,
            r#"{"type":"run","cmd":"rm -rf /"}"#,
            r#"{"type":"run","stdin":null,"x":1}"#,
        ] {
            assert!(serde_json::from_str::<RunRequest>(bad).is_err(), "{bad}");
        }
    }
}
