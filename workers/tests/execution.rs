//! The execution handler behind the in-process queue, on a real embedded store, with a recording
//! room output: what a room sees of a run (order, `seq`, coalescing), what the record keeps, the
//! concurrency cap, redeliveries, panics, and the session's statistics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use protocol::app::AppMessage;
use protocol::job::{ExecutionJob, Job};
use protocol::run::{OutputStream, RunExit};
use storage::model::{ExecutionRecord, Session, new_id};
use storage::{EmbeddedStore, ExecutionStore, SessionStore};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use workers::exec::{
    Chunk, CoalesceConfig, ExecutionConfig, ExecutionHandler, LanguageInfo, RunReport, RunSpec, Sandbox,
    SandboxError, SandboxStatus,
};
use workers::{
    Attempt, DispatchConfig, Dispatcher, InProcessQueue, InProcessQueueConfig, JobHandler, JobQueue,
    RecordingOutput,
};

const TIMEOUT: Duration = Duration::from_secs(20);

/// What a scripted run does, step by step, then how it ends.
#[derive(Clone)]
enum Step {
    Out(OutputStream, &'static [u8]),
    Wait(Duration),
    /// Wait until the test releases one run ([`ScriptedSandbox::release`]).
    Hold,
}

#[derive(Clone)]
enum End {
    Exit(RunReport),
    Error(SandboxError),
    Panic,
}

#[derive(Clone)]
struct Script {
    steps: Vec<Step>,
    end: End,
}

fn exits(code: i64, duration_ms: u64) -> End {
    End::Exit(RunReport { exit_code: Some(code), duration_ms, ..RunReport::default() })
}

/// A scripted [`Sandbox`]: it stands in for Docker only to script chunk timing and the failure
/// paths a real container cannot produce on demand (`SandboxError::Failed` mid-run, a panic, a run
/// held until the test lets it go); the real-Docker path is tested with the Docker backend. A
/// job's `code` names its script.
struct ScriptedSandbox {
    scripts: Mutex<HashMap<String, Script>>,
    /// `+job` when a run starts, `-job` when it ends, in order.
    events: Mutex<Vec<String>>,
    held: Semaphore,
}

impl Default for ScriptedSandbox {
    fn default() -> Self {
        Self { scripts: Mutex::default(), events: Mutex::default(), held: Semaphore::new(0) }
    }
}

impl ScriptedSandbox {
    fn script(&self, code: &str, steps: Vec<Step>, end: End) {
        self.scripts.lock().unwrap().insert(code.to_owned(), Script { steps, end });
    }

    fn release(&self) {
        self.held.add_permits(1);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn starts(&self) -> usize {
        self.events().iter().filter(|e| e.starts_with('+')).count()
    }
}

#[async_trait]
impl Sandbox for ScriptedSandbox {
    fn languages(&self) -> Vec<LanguageInfo> {
        let info =
            LanguageInfo { id: "python".into(), name: "Python".into(), version: None, available: true };
        vec![info]
    }

    fn status(&self) -> SandboxStatus {
        SandboxStatus { available: true, ..SandboxStatus::default() }
    }

    async fn run(&self, spec: RunSpec, output: mpsc::Sender<Chunk>) -> Result<RunReport, SandboxError> {
        let script = self.scripts.lock().unwrap().get(&spec.code).cloned().expect("a script for the code");
        self.events.lock().unwrap().push(format!("+{}", spec.job));
        for step in script.steps {
            match step {
                Step::Out(stream, bytes) => {
                    let _ = output.send(Chunk { stream, bytes: Bytes::from_static(bytes) }).await;
                }
                Step::Wait(time) => tokio::time::sleep(time).await,
                Step::Hold => self.held.acquire().await.expect("never closed").forget(),
            }
        }
        self.events.lock().unwrap().push(format!("-{}", spec.job));
        match script.end {
            End::Exit(report) => Ok(report),
            End::Error(error) => Err(error),
            End::Panic => panic!("the scripted sandbox panics"),
        }
    }
}

struct Setup {
    sandbox: Arc<ScriptedSandbox>,
    store: Arc<EmbeddedStore>,
    output: Arc<RecordingOutput>,
    handler: ExecutionHandler,
    queue: Arc<InProcessQueue>,
    _dir: tempfile::TempDir,
}

fn setup(concurrency: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let sandbox = Arc::new(ScriptedSandbox::default());
    let output = Arc::new(RecordingOutput::default());
    let config = ExecutionConfig {
        concurrency,
        coalesce: CoalesceConfig::default(),
        output_max_bytes: 1024,
        store_attempts: 2,
        store_retry_delay: Duration::from_millis(5),
    };
    let handler = ExecutionHandler::new(sandbox.clone(), store.clone(), output.clone(), config);
    let dispatcher = Dispatcher::new(DispatchConfig::default()).register(handler.clone());
    let queue = InProcessQueue::start(
        dispatcher,
        InProcessQueueConfig::default(),
        &TaskTracker::new(),
        CancellationToken::new(),
    );
    Setup { sandbox, store, output, handler, queue, _dir: dir }
}

fn job(room: &str, code: &str) -> ExecutionJob {
    ExecutionJob {
        id: new_id(),
        room: room.into(),
        user_id: new_id(),
        username: "ann".into(),
        language: "python".into(),
        code: code.into(),
        stdin: String::new(),
        created_at: storage::clock::now_millis(),
    }
}

impl Setup {
    async fn publish(&self, job: &ExecutionJob) {
        self.queue.publish(Job::Execution(job.clone())).await.unwrap();
    }

    /// Every message sent for `job`, once its `run_exit` was sent and its record is finished.
    async fn finished(&self, job: &ExecutionJob) -> (Vec<AppMessage>, ExecutionRecord) {
        let messages = tokio::time::timeout(TIMEOUT, async {
            loop {
                let messages = messages_of(&self.output, &job.id);
                if messages.iter().any(|m| matches!(m, AppMessage::RunExit(_))) {
                    return messages;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no run_exit for {}", job.code));
        let record = self.record_when(job, |r| r.is_finished()).await;
        (messages, record)
    }

    async fn record_when(
        &self,
        job: &ExecutionJob,
        done: impl Fn(&ExecutionRecord) -> bool,
    ) -> ExecutionRecord {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(record) = self.store.execution(&job.id).await.unwrap().filter(&done) {
                    return record;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the record of {} never got there", job.code))
    }
}

/// The messages of `job`, in the order they were sent.
fn messages_of(output: &RecordingOutput, job: &str) -> Vec<AppMessage> {
    output
        .sent()
        .into_iter()
        .map(|(_, message)| message)
        .filter(|message| match message {
            AppMessage::RunStarted(m) => m.job == job,
            AppMessage::RunOutput(m) => m.job == job,
            AppMessage::RunExit(m) => m.job == job,
            _ => false,
        })
        .collect()
}

fn exit_of(messages: &[AppMessage]) -> RunExit {
    match messages.last() {
        Some(AppMessage::RunExit(exit)) => exit.clone(),
        other => panic!("the last message is not run_exit: {other:?}"),
    }
}

/// The run's output as `(stream, text)`, neighbouring messages of one stream joined; and checks
/// the messages are `run_started`, then outputs with `seq` 0, 1, 2..., then `run_exit`.
fn streams(messages: &[AppMessage]) -> Vec<(OutputStream, String)> {
    assert!(matches!(messages.first(), Some(AppMessage::RunStarted(_))), "run_started first: {messages:?}");
    exit_of(messages);
    let mut joined: Vec<(OutputStream, String)> = Vec::new();
    for (expected_seq, message) in messages[1..messages.len() - 1].iter().enumerate() {
        let AppMessage::RunOutput(output) = message else { panic!("only run_output between: {message:?}") };
        assert_eq!(output.seq, expected_seq as u64, "seq from 0 without gaps");
        match joined.last_mut() {
            Some((stream, text)) if *stream == output.stream => text.push_str(&output.data),
            _ => joined.push((output.stream, output.data.clone())),
        }
    }
    joined
}

use OutputStream::{Stderr, Stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_sees_started_then_ordered_output_then_exit() {
    let s = setup(4);
    let wait = Step::Wait(Duration::from_millis(30));
    let steps = vec![
        Step::Out(Stdout, b"a"),
        wait.clone(),
        Step::Out(Stderr, b"b"),
        Step::Out(Stdout, b"c"),
        wait,
        Step::Out(Stdout, "d\u{e9}".as_bytes()),
        Step::Out(Stderr, b"\xff"),
    ];
    s.sandbox.script("mixed", steps, exits(3, 70));
    let job = job(&new_id(), "mixed");
    s.publish(&job).await;
    let (messages, record) = s.finished(&job).await;
    let AppMessage::RunStarted(started) = &messages[0] else { unreachable!() };
    assert_eq!((started.language.as_str(), started.user.username.as_str()), ("python", "ann"));
    assert_eq!(started.user.id, job.user_id);
    assert_eq!(
        streams(&messages),
        [
            (Stdout, "a".to_owned()),
            (Stderr, "b".to_owned()),
            (Stdout, "cd\u{e9}".to_owned()),
            (Stderr, "\u{fffd}".to_owned())
        ]
    );
    let exit = exit_of(&messages);
    assert_eq!((exit.exit_code, exit.duration_ms, exit.error), (Some(3), 70, None));
    assert_eq!(record.status, "completed", "any exit code is a completed run");
    assert_eq!((record.stdout.as_str(), record.stderr.as_str()), ("acd\u{e9}", "b\u{fffd}"));
    assert_eq!((record.exit_code, record.duration_ms), (Some(3), Some(70)));
    assert!(record.started_at.is_some() && record.finished_at >= record.started_at);
    let room_of_all = s.output.sent().iter().all(|(room, _)| *room == job.room);
    assert!(room_of_all, "everything went to the job's room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tiny_chunks_become_few_messages() {
    let s = setup(4);
    let steps = (0..300).map(|i| Step::Out(if i % 100 == 99 { Stderr } else { Stdout }, b"x")).collect();
    s.sandbox.script("tiny", steps, exits(0, 5));
    let job = job(&new_id(), "tiny");
    s.publish(&job).await;
    let (messages, record) = s.finished(&job).await;
    let joined = streams(&messages);
    let total: usize = joined.iter().map(|(_, text)| text.len()).sum();
    assert_eq!(total, 300, "every byte once");
    assert_eq!(
        joined.iter().filter(|(stream, _)| *stream == Stderr).count(),
        3,
        "the 3 stderr bytes in place"
    );
    assert!(messages.len() - 2 < 40, "300 chunks became {} messages", messages.len() - 2);
    assert_eq!(record.stdout.len(), 297);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ending_is_recorded_with_its_status_and_told_to_the_room() {
    let s = setup(4);
    let report = |f: fn(&mut RunReport)| {
        let mut report = RunReport { exit_code: Some(137), duration_ms: 9, ..RunReport::default() };
        f(&mut report);
        End::Exit(report)
    };
    let out = || vec![Step::Out(Stdout, b"partial")];
    s.sandbox.script("timeout", out(), report(|r| r.timed_out = true));
    s.sandbox.script("oom", out(), report(|r| r.oom_killed = true));
    s.sandbox.script("flood", out(), report(|r| r.output_truncated = true));
    s.sandbox.script("broken", out(), End::Error(SandboxError::Failed("the daemon went away".into())));
    s.sandbox.script("refused", vec![], End::Error(SandboxError::LanguageUnavailable("cobol".into())));
    let cases = [
        ("timeout", "timed_out", Some(137), None),
        ("oom", "failed", Some(137), None),
        ("flood", "failed", Some(137), None),
        ("broken", "failed", None, Some("sandbox failure: the daemon went away")),
        ("refused", "failed", None, Some("language \"cobol\" is not installed on this runner")),
    ];
    let room = new_id();
    let jobs: Vec<_> = cases.iter().map(|(code, ..)| job(&room, code)).collect();
    for job in &jobs {
        s.publish(job).await;
    }
    for (job, (code, status, exit_code, error)) in jobs.iter().zip(cases) {
        let (messages, record) = s.finished(job).await;
        let exit = exit_of(&messages);
        assert_eq!(record.status, status, "{code}");
        assert_eq!((record.exit_code, exit.exit_code), (exit_code, exit_code), "{code}");
        assert_eq!((record.error.as_deref(), exit.error.as_deref()), (error, error), "{code}");
        assert_eq!((record.timed_out, exit.timed_out), (code == "timeout", code == "timeout"), "{code}");
        assert_eq!((record.oom_killed, exit.oom_killed), (code == "oom", code == "oom"), "{code}");
        assert_eq!((record.truncated, exit.output_truncated), (code == "flood", code == "flood"), "{code}");
        let ran = code != "refused";
        assert_eq!(record.stdout, if ran { "partial" } else { "" }, "{code}");
        assert_eq!(record.duration_ms.is_some(), ran, "{code}: a run never started has no duration");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_beyond_the_cap_wait_for_a_free_slot() {
    let s = setup(2);
    s.sandbox.script("held", vec![Step::Hold], exits(0, 1));
    let room = new_id();
    let jobs: Vec<_> = (0..3).map(|_| job(&room, "held")).collect();
    for job in &jobs {
        s.publish(job).await;
    }
    tokio::time::timeout(TIMEOUT, async {
        while s.sandbox.starts() < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("two runs start");
    assert_eq!(s.handler.running(), 2);
    for _ in 0..3 {
        s.sandbox.release();
    }
    for job in &jobs {
        s.finished(job).await;
    }
    let events = s.sandbox.events();
    let mut running = 0;
    let mut most = 0;
    for event in &events {
        running += if event.starts_with('+') { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!(most, 2, "never more than the cap at once: {events:?}");
    assert!(events[2].starts_with('-'), "the third run started only after one ended: {events:?}");
    s.handler.wait_for_runs().await;
    assert_eq!(s.handler.running(), 0, "every slot is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_found_running_is_cancelled_and_not_run_again() {
    let s = setup(2);
    s.sandbox.script("once", vec![Step::Out(Stdout, b"hi")], exits(0, 1));
    let job = job(&new_id(), "once");
    let running = ExecutionRecord {
        status: "running".into(),
        started_at: Some(job.created_at + 1),
        ..workers::exec::queued_record(&job)
    };
    s.store.save_execution(&running).await.unwrap();
    // A redelivery, as the broker makes it after the worker running the job died.
    let handled = s.handler.handle(&[Attempt { job: &job, delivery_count: 2 }]).await;
    assert!(handled.is_ok());
    let (messages, record) = s.finished(&job).await;
    assert_eq!(messages.len(), 1, "only run_exit: {messages:?}");
    let exit = exit_of(&messages);
    assert_eq!((exit.exit_code, exit.error.as_deref()), (None, Some("the worker running it stopped")));
    assert_eq!(
        (record.status.as_str(), record.error.as_deref()),
        ("cancelled", Some("the worker running it stopped"))
    );

    // Handed again once finished: nothing at all happens. A sentinel run proves it.
    s.handler.handle(&[Attempt { job: &job, delivery_count: 3 }]).await.unwrap();
    let sentinel = self::job(&job.room, "once");
    s.publish(&sentinel).await;
    s.finished(&sentinel).await;
    assert_eq!(messages_of(&s.output, &job.id).len(), 1, "no second run_exit");
    assert_eq!(
        s.sandbox.events(),
        [format!("+{}", sentinel.id), format!("-{}", sentinel.id)],
        "only the sentinel ran"
    );
}

/// A job handed again while this handler runs it (its ack was lost with the broker connection) is
/// that same run: neither cancelled nor run twice, and it does not wait for a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_handed_again_while_it_runs_here_is_left_to_that_run() {
    let s = setup(1);
    s.sandbox.script("held", vec![Step::Out(Stdout, b"x"), Step::Hold], exits(0, 1));
    let job = job(&new_id(), "held");
    s.publish(&job).await;
    s.record_when(&job, |r| r.status == "running").await;
    let redelivery = [Attempt { job: &job, delivery_count: 2 }];
    let again = tokio::time::timeout(TIMEOUT, s.handler.handle(&redelivery)).await;
    assert!(again.expect("no wait for the only slot").is_ok());
    s.sandbox.release();
    let (messages, record) = s.finished(&job).await;
    assert_eq!(record.status, "completed");
    assert_eq!(streams(&messages), [(Stdout, "x".to_owned())], "one run_started, one run_exit");
    assert_eq!(s.sandbox.starts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sandbox_fails_its_run_and_the_next_job_still_runs() {
    let s = setup(1);
    s.sandbox.script("panics", vec![Step::Out(Stdout, b"before")], End::Panic);
    s.sandbox.script("fine", vec![Step::Out(Stdout, b"ok")], exits(0, 2));
    let room = new_id();
    let (bad, good) = (job(&room, "panics"), job(&room, "fine"));
    s.publish(&bad).await;
    s.publish(&good).await;
    let (messages, record) = s.finished(&bad).await;
    assert_eq!((record.status.as_str(), record.error.as_deref()), ("failed", Some("internal error")));
    assert_eq!(exit_of(&messages).error.as_deref(), Some("internal error"));
    let (_, record) = s.finished(&good).await;
    assert_eq!(record.status, "completed", "the dispatcher and the slot survived the panic");
    assert_eq!(s.queue.dead_letters().total(), 0, "a run's panic is the run's, not the job's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_counts_each_run_once() {
    let s = setup(2);
    let owner = new_id();
    let session = Session {
        id: new_id(),
        title: "t".into(),
        description: String::new(),
        language: Default::default(),
        owner,
        collaborators: Vec::new(),
        is_public: false,
        is_locked: false,
        max_collaborators: 10,
        status: Default::default(),
        metadata: Default::default(),
        created_at: 1,
        updated_at: 1,
        revision: 0,
    };
    s.store.create_session(&session).await.unwrap();
    s.sandbox.script("ten", vec![], exits(0, 10));
    s.sandbox.script("thirty", vec![], exits(1, 30));
    let (ten, thirty) = (job(&session.id, "ten"), job(&session.id, "thirty"));
    for job in [&ten, &thirty] {
        s.publish(job).await;
        s.finished(job).await;
    }
    // A redelivery of a finished run counts nothing (and runs nothing).
    s.handler.handle(&[Attempt { job: &ten, delivery_count: 2 }]).await.unwrap();
    s.handler.wait_for_runs().await;
    let stored = s.store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(stored.metadata.total_executions, 2);
    assert!(
        (stored.metadata.average_execution_time - 20.0).abs() < 1e-9,
        "{}",
        stored.metadata.average_execution_time
    );
    assert_eq!(s.sandbox.starts(), 2);
}
