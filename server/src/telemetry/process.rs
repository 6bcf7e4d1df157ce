//! The standard `process_*` metrics Prometheus expects of every exporter (the names and help
//! texts of the Go and Python clients), read from `/proc` at each scrape. Rendered as text and
//! appended to the exporter's output: CPU seconds are a float counter, which the `metrics` crate's
//! integer counters cannot carry. Off Linux (no `/proc`) nothing is written.

use std::fmt::Write;

/// The process metrics in Prometheus text format, each with its HELP and TYPE lines.
pub fn render() -> String {
    let mut out = String::new();
    let Some(stat) = Stat::read() else { return out };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let mut family = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (stat.utime + stat.stime) as f64 / ticks,
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        (stat.rss_pages * rustix::param::page_size() as u64) as f64,
    );
    family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", stat.vsize as f64);
    family("process_threads", "gauge", "Number of OS threads in the process.", stat.threads as f64);
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        family("process_open_fds", "gauge", "Number of open file descriptors.", entries.count() as f64);
    }
    if let Ok((soft, _hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        family("process_max_fds", "gauge", "Maximum number of open file descriptors.", soft as f64);
    }
    if let Some(boot) = boot_time() {
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot as f64 + stat.start_ticks as f64 / ticks,
        );
    }
    out
}

/// The fields of `/proc/self/stat` we report (see proc(5)).
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    fn parse(text: &str) -> Option<Self> {
        // Field 2, the command name, is in parentheses and may hold spaces and parentheses: the
        // fields we want come after the last `)`, starting with field 3.
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

/// Seconds since the epoch at which the machine booted (`btime` in `/proc/stat`).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn the_stat_line_is_read_after_the_command_name_whatever_it_holds() {
        let line = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 \
                    12345 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = Stat::parse(line).expect("parses");
        assert_eq!((stat.utime, stat.stime), (250, 75));
        assert_eq!(stat.threads, 7);
        assert_eq!(stat.start_ticks, 12345);
        assert_eq!(stat.vsize, 987_654_321);
        assert_eq!(stat.rss_pages, 2048);
    }

    #[test]
    fn every_family_has_help_and_type_on_linux() {
        let text = super::render();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} lacks HELP:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} lacks TYPE:\n{text}");
        }
    }
}
