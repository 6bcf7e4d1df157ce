//! Counters read from a Prometheus text endpoint at both edges of a window, and their rates.

use anyhow::Context as _;
use serde::Serialize;

use crate::plain_http;
use crate::report::ratio;

/// A `/metrics` page is tens of KiB; a cap keeps a wrong URL from filling memory.
const MAX_METRICS_BYTES: u64 = 8 * 1024 * 1024;

/// The value of counter `name` in a text exposition, summed over its label sets; None if absent.
pub fn counter(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        // `name{labels} value` or `name value`: anything else is a longer name sharing the prefix.
        let rest = match rest.chars().next() {
            Some('{') => rest.split_once('}').map_or("", |(_, after)| after),
            Some(' ') => rest,
            _ => continue,
        };
        if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// `GET` a metrics page; `url` is `http://host:port/path` (or a server's `ws://host:port/ws`, whose
/// `/metrics` is on the same listener).
pub async fn page(url: &str) -> anyhow::Result<String> {
    let authority = plain_http::http_authority(url)?;
    let path = match url.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/metrics", |i| &rest[i..]),
        None => "/metrics",
    };
    plain_http::get(&authority, path, MAX_METRICS_BYTES).await.with_context(|| format!("reading {url}"))
}

/// The first of `names` present in `text`, with its value.
pub fn first_counter<'a>(text: &str, names: &[&'a str]) -> Option<(&'a str, f64)> {
    names.iter().find_map(|n| Some((*n, counter(text, n)?)))
}

/// A counter over a window.
#[derive(Debug, Clone, Serialize)]
pub struct CounterRate {
    pub url: String,
    pub name: String,
    pub delta: f64,
    pub per_sec: f64,
}

impl CounterRate {
    pub fn between(url: &str, name: &str, from: f64, to: f64, secs: f64) -> Self {
        let delta = to - from;
        Self { url: url.to_owned(), name: name.to_owned(), delta, per_sec: ratio(delta, secs) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_from_text() {
        let text = "# HELP codecrafter_journal_updates_total Updates journaled.\n\
                    # TYPE codecrafter_journal_updates_total counter\n\
                    codecrafter_journal_updates_total 1234\n\
                    codecrafter_journal_updates_total_extra 5\n\
                    codecrafter_persist_writes_total{kind=\"a\"} 2\n\
                    codecrafter_persist_writes_total{kind=\"b\"} 3.5\n";
        let check = |name: &str, expected: Option<f64>| assert_eq!(counter(text, name), expected, "{name}");
        check("codecrafter_journal_updates_total", Some(1234.0));
        check("codecrafter_persist_writes_total", Some(5.5));
        check("codecrafter_journal_batches_total", None);
        check("codecrafter_journal", None);
        let names = ["codecrafter_persist_updates_total", "codecrafter_persist_writes_total"];
        assert_eq!(first_counter(text, &names), Some(("codecrafter_persist_writes_total", 5.5)));
    }

    #[test]
    fn rates() {
        let r = CounterRate::between("u", "n", 10.0, 70.0, 2.0);
        assert_eq!((r.delta, r.per_sec), (60.0, 30.0));
    }
}
