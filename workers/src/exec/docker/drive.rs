//! One run inside a launched container: hand the program over, stream its output under the cap
//! and the wall-clock limit, and read how it ended.

use std::pin::pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{InspectContainerOptions, KillContainerOptions, WaitContainerOptions};
use futures_util::StreamExt;
use protocol::run::OutputStream;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

use super::container::{Input, Launched};
use crate::exec::{Chunk, RunReport};

/// The limits the worker enforces itself (the kernel enforces memory, pids and CPU).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// From the program handed over to its exit.
    pub timeout: Duration,
    /// Bytes of stdout and stderr together that are forwarded.
    pub output_max: usize,
}

/// How long to wait for Docker to confirm an exit after a kill: it is immediate unless the daemon
/// is in trouble, and a run must end even then.
const AFTER_KILL: Duration = Duration::from_secs(10);

/// What the launcher reads on its stdin: the program's byte length on a line, the program, then
/// the program's own stdin.
pub(super) fn launcher_input(code: &str, stdin: &str) -> Vec<u8> {
    let header = format!("{}\n", code.len());
    let mut input = Vec::with_capacity(header.len() + code.len() + stdin.len());
    input.extend_from_slice(header.as_bytes());
    input.extend_from_slice(code.as_bytes());
    input.extend_from_slice(stdin.as_bytes());
    input
}

/// Why the output loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Stdout and stderr both ended: the program exited, or closed them.
    Closed,
    TimedOut,
    Truncated,
    /// Nobody reads the output any more.
    Abandoned,
}

/// Run the program of `input` (from [`launcher_input`]) in `launched`, forwarding its output to
/// `output`. An `Err` is Docker failing, never the program.
pub(super) async fn drive(
    docker: &Docker,
    mut launched: Launched,
    input: Vec<u8>,
    output: &mpsc::Sender<Chunk>,
    limits: Limits,
) -> Result<RunReport, DockerError> {
    let Launched { id, input: writer, output: stream, .. } = &mut launched;
    let handed = Instant::now();
    let deadline = handed + limits.timeout;
    // Fed concurrently with the reading: a program that never reads its stdin fills the pipe, and
    // that must not stop its output from being read. A program that exits unread is no error.
    let mut feeding = pin!(feed(writer, input));
    let mut fed = false;
    let mut forwarded = 0usize;

    let stop = loop {
        let item = tokio::select! {
            biased;
            () = sleep_until(deadline) => break Stop::TimedOut,
            () = &mut feeding, if !fed => { fed = true; continue }
            item = stream.next() => item,
        };
        let (kind, mut bytes) = match item {
            None => break Stop::Closed,
            Some(Ok(LogOutput::StdOut { message })) => (OutputStream::Stdout, message),
            Some(Ok(LogOutput::StdErr { message })) => (OutputStream::Stderr, message),
            // Without a TTY, Docker sends nothing else.
            Some(Ok(LogOutput::StdIn { .. } | LogOutput::Console { .. })) => continue,
            Some(Err(error)) => {
                kill(docker, id).await;
                return Err(error);
            }
        };
        let room = limits.output_max - forwarded;
        let over = bytes.len() > room;
        if over {
            bytes.truncate(room);
        }
        if !bytes.is_empty() {
            forwarded += bytes.len();
            tokio::select! {
                biased;
                () = sleep_until(deadline) => break Stop::TimedOut,
                sent = output.send(Chunk { stream: kind, bytes }) => if sent.is_err() { break Stop::Abandoned },
            }
        }
        if over {
            break Stop::Truncated;
        }
    };

    let mut timed_out = stop == Stop::TimedOut;
    let exit_code = match stop {
        Stop::Closed => match tokio::time::timeout_at(deadline, wait(docker, id)).await {
            Ok(code) => code,
            // It closed its output but kept running.
            Err(_) => {
                timed_out = true;
                kill_and_wait(docker, id).await
            }
        },
        // Whatever the program still writes is read and dropped meanwhile: Docker finishes a
        // container's exit only once its attached streams are copied, and an unread stream
        // would hold that up.
        Stop::TimedOut | Stop::Truncated | Stop::Abandoned => {
            let mut killed = pin!(kill_and_wait(docker, id));
            loop {
                tokio::select! {
                    code = &mut killed => break code,
                    item = stream.next() => if item.is_none() { break killed.await },
                }
            }
        }
    };
    let duration_ms = u64::try_from(handed.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(RunReport {
        exit_code,
        duration_ms,
        timed_out,
        oom_killed: oom_killed(docker, id).await,
        output_truncated: stop == Stop::Truncated,
        warm: false,
    })
}

async fn feed(writer: &mut Input, input: Vec<u8>) {
    if writer.write_all(&input).await.is_ok() {
        // The EOF: `stdin_once` then closes the program's stdin.
        let _ = writer.shutdown().await;
    }
}

async fn kill_and_wait(docker: &Docker, id: &str) -> Option<i64> {
    kill(docker, id).await;
    timeout(AFTER_KILL, wait(docker, id)).await.ok().flatten()
}

/// The exit code, once the container has stopped; `None` if Docker could not say.
async fn wait(docker: &Docker, id: &str) -> Option<i64> {
    let mut waiting = docker.wait_container(id, None::<WaitContainerOptions>);
    match waiting.next().await {
        Some(Ok(exit)) => Some(exit.status_code),
        // bollard reports a non-zero exit as an error.
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Some(code),
        Some(Err(error)) => {
            tracing::warn!(container = %id, %error, "could not wait for a runner container");
            None
        }
        None => None,
    }
}

/// SIGKILL; an error means it has already stopped (or Docker is gone, and the wait says so).
async fn kill(docker: &Docker, id: &str) {
    let _ = docker.kill_container(id, None::<KillContainerOptions>).await;
}

async fn oom_killed(docker: &Docker, id: &str) -> bool {
    match docker.inspect_container(id, None::<InspectContainerOptions>).await {
        Ok(inspect) => inspect.state.and_then(|state| state.oom_killed).unwrap_or(false),
        Err(error) => {
            tracing::warn!(container = %id, %error, "could not inspect a runner container");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_input_is_length_line_program_stdin() {
        let check = |code: &str, stdin: &str, expected: &[u8]| {
            assert_eq!(launcher_input(code, stdin), expected, "{code:?} {stdin:?}");
        };
        check("print(1)", "", b"8\nprint(1)");
        check("", "", b"0\n");
        check("", "in", b"0\nin");
        // The length is in bytes, not characters: é is two.
        check("é", "x\n", "2\néx\n".as_bytes());
        check("a\nb\n", "12\n", b"4\na\nb\n12\n");
    }
}
