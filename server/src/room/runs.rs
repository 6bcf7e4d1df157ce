//! The runs going on in a room, as this node saw their messages pass (`run_started`, then each
//! `run_output`), so an app client that joins mid-run is sent the run's output so far before
//! anything newer: it sees what those present saw, in the same order. A `run_exit` ends the run.
//!
//! Recorded under the room's lock, in the same step that fans the message out, and replayed to a
//! joiner in the step that adds it: a joiner gets every message exactly once.
//!
//! Bounded: at most [`MAX_LIVE_RUNS`] runs (the oldest goes first) and [`MAX_RUN_BYTES`] of frames
//! per run (the sandbox's output cap is far below it by default; past it, a joiner gets the start).
//! A run whose exit never came (its worker died) is forgotten after [`MAX_RUN_AGE`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

/// Runs remembered per room.
pub const MAX_LIVE_RUNS: usize = 16;
/// Frames remembered per run, in bytes.
pub const MAX_RUN_BYTES: usize = 4 * 1024 * 1024;
/// A run not ended by then is taken as lost.
pub const MAX_RUN_AGE: Duration = Duration::from_secs(15 * 60);

/// What identifies a run message; the rest of it is not read.
#[derive(Deserialize)]
struct RunHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    job: &'a str,
}

struct LiveRun {
    job: String,
    since: Instant,
    frames: Vec<Bytes>,
    bytes: usize,
}

#[derive(Default)]
pub(super) struct LiveRuns {
    runs: Vec<LiveRun>,
}

impl LiveRuns {
    /// Note an app message the room is fanning out (`json`, encoded as `frame`). Anything that is
    /// not a run message costs one prefix comparison.
    pub fn observe(&mut self, json: &str, frame: &Bytes, now: Instant) {
        if !json.starts_with(r#"{"type":"run_"#) {
            return;
        }
        let Ok(head) = serde_json::from_str::<RunHead<'_>>(json) else { return };
        self.runs.retain(|run| now.duration_since(run.since) < MAX_RUN_AGE);
        match head.kind {
            "run_started" => self.start(head.job, frame, now),
            // A node that opened the room mid-run keeps what it sees from then on.
            "run_output" => match self.runs.iter_mut().find(|run| run.job == head.job) {
                Some(run) => run.push(frame),
                None => self.start(head.job, frame, now),
            },
            "run_exit" => self.runs.retain(|run| run.job != head.job),
            _ => {}
        }
    }

    fn start(&mut self, job: &str, frame: &Bytes, now: Instant) {
        if self.runs.iter().any(|run| run.job == job) {
            return;
        }
        if self.runs.len() >= MAX_LIVE_RUNS {
            self.runs.remove(0);
        }
        let mut run = LiveRun { job: job.to_owned(), since: now, frames: Vec::new(), bytes: 0 };
        run.push(frame);
        self.runs.push(run);
    }

    /// Every frame of the runs going on, oldest run first, each in its order.
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        self.runs.iter().flat_map(|run| run.frames.iter())
    }

    #[cfg(test)]
    fn jobs(&self) -> Vec<&str> {
        self.runs.iter().map(|run| run.job.as_str()).collect()
    }
}

impl LiveRun {
    fn push(&mut self, frame: &Bytes) {
        if self.bytes.saturating_add(frame.len()) <= MAX_RUN_BYTES {
            self.bytes += frame.len();
            self.frames.push(frame.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(runs: &mut LiveRuns, json: &str, now: Instant) {
        runs.observe(json, &Bytes::copy_from_slice(json.as_bytes()), now);
    }

    fn replayed(runs: &LiveRuns) -> Vec<String> {
        runs.frames().map(|frame| String::from_utf8(frame.to_vec()).unwrap()).collect()
    }

    #[test]
    fn a_run_is_kept_from_its_start_to_its_exit_and_others_are_ignored() {
        let now = Instant::now();
        let mut runs = LiveRuns::default();
        let started =
            r#"{"type":"run_started","job":"a","language":"python","user":{"id":"u","username":"n"}}"#;
        let out = r#"{"type":"run_output","job":"a","seq":0,"stream":"stdout","data":"1\n"}"#;
        observe(&mut runs, started, now);
        observe(&mut runs, r#"{"type":"chat","id":"x"}"#, now);
        observe(&mut runs, out, now);
        observe(&mut runs, r#"{"type":"run_output","job":"b","seq":3,"stream":"stdout","data":"x"}"#, now);
        assert_eq!(runs.jobs(), ["a", "b"], "a run first seen mid-way is kept from there");
        assert_eq!(replayed(&runs)[..2], [started.to_owned(), out.to_owned()]);
        observe(&mut runs, r#"{"type":"run_exit","job":"a","exit_code":0}"#, now);
        assert_eq!(runs.jobs(), ["b"]);
        observe(&mut runs, r#"{"type":"run_started","job":5}"#, now);
        observe(&mut runs, r#"{"type":"run_started"#, now);
        assert_eq!(runs.jobs(), ["b"], "malformed run messages are ignored");
    }

    #[test]
    fn runs_are_bounded_in_number_size_and_age() {
        let now = Instant::now();
        let mut runs = LiveRuns::default();
        for job in 0..=MAX_LIVE_RUNS {
            observe(&mut runs, &format!(r#"{{"type":"run_started","job":"{job}"}}"#), now);
        }
        assert_eq!(runs.jobs().len(), MAX_LIVE_RUNS);
        assert_eq!(runs.jobs()[0], "1", "the oldest run went first");

        let mut runs = LiveRuns::default();
        let big = "x".repeat(MAX_RUN_BYTES / 4);
        for seq in 0..8 {
            let json = format!(r#"{{"type":"run_output","job":"j","seq":{seq},"data":"{big}"}}"#);
            observe(&mut runs, &json, now);
        }
        let kept: usize = runs.frames().map(Bytes::len).sum();
        assert!((MAX_RUN_BYTES / 2..=MAX_RUN_BYTES).contains(&kept), "{kept}");

        observe(&mut runs, r#"{"type":"run_started","job":"late"}"#, now + MAX_RUN_AGE);
        assert_eq!(runs.jobs(), ["late"], "a run older than the age limit is forgotten");
    }
}
