//! Process CPU time and memory from /proc/PID/stat and /proc/PID/status (Linux only).

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// One reading of a process: CPU time so far and memory now.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far (VmHWM), KiB.
    pub hwm_kib: u64,
}

/// Reads processes' /proc entries; knows the clock-tick rate.
#[derive(Debug, Clone, Copy)]
pub struct Proc {
    pub pid: u32,
    pub ticks_per_sec: u64,
}

impl Proc {
    pub fn new(pid: u32) -> Self {
        Self { pid, ticks_per_sec: clock_ticks() }
    }

    /// This process.
    pub fn current() -> Self {
        Self::new(std::process::id())
    }

    pub fn sample(&self) -> anyhow::Result<Sample> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading /proc/{}/stat (is the process running?)", self.pid))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading /proc/{}/status", self.pid))?;
        let cpu_ticks = parse_cpu_ticks(&stat).context("malformed /proc/PID/stat")?;
        let (rss_kib, hwm_kib) = parse_memory(&status).context("no VmRSS in /proc/PID/status")?;
        Ok(Sample { at: Instant::now(), cpu_ticks, rss_kib, hwm_kib })
    }

    /// CPU seconds the process used between two samples.
    pub fn cpu_secs(&self, from: &Sample, to: &Sample) -> f64 {
        to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / self.ticks_per_sec as f64
    }
}

/// CPU and memory over a window, as reported.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub wall_secs: f64,
    pub cpu_secs: f64,
    /// CPU seconds per wall second, in percent of one core.
    pub cpu_pct: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_peak_kib: u64,
}

impl Usage {
    pub fn between(proc_: &Proc, from: &Sample, to: &Sample) -> Self {
        let wall_secs = to.at.saturating_duration_since(from.at).as_secs_f64();
        let cpu_secs = proc_.cpu_secs(from, to);
        Self {
            wall_secs,
            cpu_secs,
            cpu_pct: crate::report::ratio(cpu_secs * 100.0, wall_secs),
            rss_start_kib: from.rss_kib,
            rss_end_kib: to.rss_kib,
            rss_peak_kib: to.hwm_kib.max(from.hwm_kib),
        }
    }

    /// Several processes measured over the same window taken as one: CPU and memory add up (the
    /// peak is the sum of each one's peak, an upper bound: they need not peak together).
    pub fn total(parts: &[Usage]) -> Self {
        let wall_secs = parts.iter().map(|u| u.wall_secs).fold(0.0, f64::max);
        let cpu_secs = parts.iter().map(|u| u.cpu_secs).sum();
        Self {
            wall_secs,
            cpu_secs,
            cpu_pct: parts.iter().map(|u| u.cpu_pct).sum(),
            rss_start_kib: parts.iter().map(|u| u.rss_start_kib).sum(),
            rss_end_kib: parts.iter().map(|u| u.rss_end_kib).sum(),
            rss_peak_kib: parts.iter().map(|u| u.rss_peak_kib).sum(),
        }
    }
}

/// Samples every process in `procs`, in order.
pub fn sample_all(procs: &[Proc]) -> anyhow::Result<Vec<Sample>> {
    procs.iter().map(Proc::sample).collect()
}

/// CPU ticks all processes on the machine spent busy so far (every core, from /proc/stat), to tell
/// how much else ran during a window on a machine the harness shares.
pub fn machine_busy_ticks() -> Option<u64> {
    parse_machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// user + nice + system + irq + softirq + steal of the aggregate `cpu` line (idle and iowait are not busy).
fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_ascii_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let field = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(field(0) + field(1) + field(2) + field(5) + field(6) + field(7))
}

/// `getconf CLK_TCK`, or 100 (the Linux value on every common architecture) if that fails.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// utime + stime from a /proc/PID/stat line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the comm: state(3) ppid(4) ... utime is field 14 and stime field 15 of the full line.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// (VmRSS, VmHWM) in KiB from /proc/PID/status.
fn parse_memory(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_ascii_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let rss = field("VmRSS")?;
    Some((rss, field("VmHWM").unwrap_or(rss)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_awkward_comm() {
        let line = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 8 0 \
                    123456 987654321 2560 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1";
        assert_eq!(parse_cpu_ticks(line), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_memory() {
        let status = "Name:\tcodecrafter\nVmPeak:\t  900 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(parse_memory(status), Some((4096, 5120)));
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }

    #[test]
    fn machine_busy() {
        let stat = "cpu  100 5 50 9000 30 1 2 3 0 0\ncpu0 50 2 25 4500 15 1 1 2 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(161));
        assert_eq!(parse_machine_busy("intr 1 2 3\n"), None);
        assert!(machine_busy_ticks().is_some());
    }

    #[test]
    fn totals_add_up() {
        let usage = |cpu_secs: f64, rss: u64| Usage {
            wall_secs: 2.0,
            cpu_secs,
            cpu_pct: cpu_secs * 50.0,
            rss_start_kib: rss,
            rss_end_kib: rss + 10,
            rss_peak_kib: rss + 20,
        };
        let t = Usage::total(&[usage(1.0, 100), usage(0.5, 200)]);
        assert_eq!((t.wall_secs, t.cpu_secs, t.cpu_pct), (2.0, 1.5, 75.0));
        assert_eq!((t.rss_start_kib, t.rss_end_kib, t.rss_peak_kib), (300, 320, 340));
        assert_eq!(Usage::total(&[]).cpu_pct, 0.0);
    }

    #[test]
    fn reads_own_process() {
        let me = Proc::current();
        let sample = me.sample().expect("own /proc entry");
        assert!(sample.rss_kib > 0 && sample.hwm_kib >= sample.rss_kib);
        assert!(me.ticks_per_sec > 0);
    }
}
