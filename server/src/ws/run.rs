//! `run`: a member who may write sends `{"type":"run","nonce","language"?,"stdin"?,"code"?}`; it
//! gets `{"type":"run_queued","job","nonce"}` once the run is recorded and queued, or an `error`
//! with the nonce (see `crate::exec` for the checks and their codes). What follows reaches every
//! app client of the room on every node, from the worker that runs it: `run_started`,
//! `run_output`…, `run_exit`. A client joining mid-run is sent the run so far (`room/runs.rs`).
//!
//! Viewers and locked sessions are refused by the dispatch (`read_only`: [`Needs::Writer`]); an
//! anonymous client of a free room has no account to count its runs against
//! (`run_sign_in_required`).

use std::sync::Arc;

use protocol::app::AppMessage;
use protocol::chat::ChatUser;
use protocol::run::RunRequest;
use tokio_util::task::TaskTracker;

use super::app::{AppHandler, Needs, Refusal, Request, Sender};
use crate::access::SessionDirectory;
use crate::exec::{Executions, Submission, SubmitRefusal};
use crate::room::{ConnId, Rooms};

/// The `run` [`AppHandler`].
pub struct RunHandler {
    executions: Arc<Executions>,
    sessions: Arc<SessionDirectory>,
    rooms: Arc<Rooms>,
    /// Where submissions run, so shutdown waits for them.
    tasks: TaskTracker,
}

impl RunHandler {
    pub fn new(
        executions: Arc<Executions>,
        sessions: Arc<SessionDirectory>,
        rooms: Arc<Rooms>,
        tasks: TaskTracker,
    ) -> Self {
        Self { executions, sessions, rooms, tasks }
    }
}

impl AppHandler for RunHandler {
    fn needs(&self) -> Needs {
        Needs::Writer
    }

    /// Reads the message here; the checks that need I/O (session, rate, document, record, queue)
    /// run on a task of their own, which answers the sender.
    fn handle(&self, sender: &Sender<'_>, request: &Request<'_>) -> Result<Option<AppMessage>, Refusal> {
        let Some(user) = sender.user else {
            return Err(Refusal { code: "run_sign_in_required", message: "sign in to run code".to_owned() });
        };
        let run: RunRequest = serde_json::from_str(request.json).map_err(|error| Refusal {
            code: "malformed_run",
            message: format!("a run message has optional string fields language, stdin and code: {error}"),
        })?;
        let room = sender.room.to_owned();
        let conn = sender.conn;
        let user = user.clone();
        let nonce = request.head.nonce.clone();
        let executions = self.executions.clone();
        let sessions = self.sessions.clone();
        let rooms = self.rooms.clone();
        self.tasks.spawn(async move {
            let session = match sessions.get(&room).await {
                Ok(session) => session,
                Err(error) => {
                    answer(&rooms, &room, conn, refused(&SubmitRefusal::Store(error), nonce));
                    return;
                }
            };
            let submission = Submission {
                room: room.clone(),
                session,
                user: ChatUser { id: user.id, username: user.username },
                language: run.language,
                code: run.code,
                stdin: run.stdin,
            };
            let reply = match executions.submit(submission).await {
                Ok(job) => AppMessage::RunQueued { job, nonce },
                Err(refusal) => refused(&refusal, nonce),
            };
            answer(&rooms, &room, conn, reply);
        });
        Ok(None)
    }
}

fn refused(refusal: &SubmitRefusal, nonce: Option<String>) -> AppMessage {
    crate::telemetry::Metrics::get().execution_refused(refusal.code());
    AppMessage::error_for(refusal.code(), refusal.to_string(), nonce)
}

fn answer(rooms: &Rooms, room: &str, conn: ConnId, message: AppMessage) {
    if let Some(open) = rooms.get(room) {
        open.send_app_to(conn, &message.to_json());
    }
}
