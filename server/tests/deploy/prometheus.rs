//! Prometheus and Grafana (`deploy/prometheus`, `deploy/grafana`): promtool accepts the scrape
//! configs and rules and passes the rules' unit tests, every alert is tested firing and quiet,
//! every metric a rule, dashboard or autoscaler names is one the code exports, the dashboards are
//! well formed, and a running server exports what the dashboards read.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestServer, first_literals, http_get};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files under `dir` (relative to the repository) whose names end with one of `extensions`.
fn files(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for path in entries.map(|e| e.unwrap().path()) {
            if path.is_dir() {
                walk(&path, extensions, out);
            } else if extensions.iter().any(|ext| path.to_string_lossy().ends_with(ext)) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join(dir), extensions, &mut out);
    out.sort();
    out
}

/// Run promtool from the repository root; fail with everything it said.
fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool").args(args).current_dir(root()).output().unwrap_or_else(|e| {
        panic!(
            "promtool is needed ({e}): apt-get install prometheus, or `source scripts/services.sh && \
             services_install` (scripts/test.sh does)"
        )
    });
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {}:\n{said}", args.join(" "));
    said
}

#[test]
fn promtool_accepts_the_compose_scrape_config_and_finds_its_rules() {
    let said = promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    assert!(said.contains("2 rule files found"), "rule_files must reach rules/*.yml:\n{said}");
}

/// Debian's promtool is built without Kubernetes discovery, so the pod discovery is swapped for a
/// static target; everything else (relabeling regexes, rule files) is checked as written.
#[test]
fn promtool_accepts_the_kubernetes_scrape_config() {
    let config = read("deploy/prometheus/prometheus-k8s.yml");
    let discovery = "kubernetes_sd_configs:\n      - role: pod\n";
    assert!(config.contains(discovery), "prometheus-k8s.yml discovers pods");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, config.replace(discovery, "static_configs:\n      - targets: [pod:5000]\n"))
        .unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for rules in files("deploy/prometheus/rules", &[".yml"]) {
        std::fs::copy(&rules, dir.path().join("rules").join(rules.file_name().unwrap())).unwrap();
    }
    let said = promtool(&["check", "config", file.to_str().unwrap()]);
    assert!(said.contains("2 rule files found"), "{said}");
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    promtool(&[
        "check",
        "rules",
        "deploy/prometheus/rules/recording.yml",
        "deploy/prometheus/rules/alerts.yml",
    ]);
    let tests = files("deploy/prometheus/tests", &[".yml"]);
    assert!(tests.len() >= 2, "unit tests of the alerts and the recording rules: {tests:?}");
    let mut args = vec!["test".to_owned(), "rules".to_owned()];
    args.extend(tests.iter().map(|t| t.to_string_lossy().into_owned()));
    let said = promtool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(said.matches("SUCCESS").count(), tests.len(), "{said}");
}

/// promtool passes a test of a misspelled alert that expects nothing, and an alert nobody tests:
/// so every alert must have a case that fires it and one that expects it quiet.
#[test]
fn every_alert_has_a_unit_test_that_fires_it_and_one_that_must_not() {
    let alerts: BTreeSet<String> =
        yaml_values(&read("deploy/prometheus/rules/alerts.yml"), "alert").into_iter().collect();
    assert!(alerts.len() >= 15, "{alerts:?}");
    let (mut fired, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for test in files("deploy/prometheus/tests", &[".yml"]) {
        let mut current = String::new();
        for line in std::fs::read_to_string(test).unwrap().lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("alertname:") {
                current = name.trim().to_owned();
                assert!(
                    alerts.contains(&current),
                    "a test names {current}, which alerts.yml does not define"
                );
            } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
                if expected.trim() == "[]" { &mut quiet } else { &mut fired }.insert(current.clone());
            }
        }
    }
    for alert in &alerts {
        assert!(fired.contains(alert), "no unit test fires {alert}");
        assert!(quiet.contains(alert), "no unit test shows when {alert} must not fire");
    }
}

/// The metric names the code exports: those described in the three metrics files (histograms only
/// as `_bucket`, `_sum`, `_count`), the `process_*` ones and Prometheus's own `up`.
struct Exported {
    plain: HashSet<String>,
    histograms: HashSet<String>,
}

impl Exported {
    fn scan() -> Self {
        let (mut plain, mut histograms) = (HashSet::new(), HashSet::new());
        for file in ["server/src/telemetry.rs", "relay/src/metrics.rs", "workers/src/metrics.rs"] {
            let source = read(file);
            plain.extend(first_literals(&source, &["describe_counter!(", "describe_gauge!("]));
            histograms.extend(first_literals(&source, &["describe_histogram!("]));
        }
        let process = first_literals(&read("server/src/telemetry/process.rs"), &["family("]);
        assert!(process.len() >= 5 && process.iter().all(|n| n.starts_with("process_")), "{process:?}");
        plain.extend(process);
        plain.insert("up".to_owned());
        Self { plain, histograms }
    }

    fn has(&self, name: &str) -> bool {
        self.plain.contains(name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix).is_some_and(|base| self.histograms.contains(base)))
    }
}

/// PromQL words that are not metric names: functions, aggregations, keywords.
const PROMQL_WORDS: &str = "\
    abs absent absent_over_time acos acosh and asin asinh atan atan2 atanh avg avg_over_time bool \
    bottomk ceil changes clamp clamp_max clamp_min cos cosh count count_over_time count_values \
    day_of_month day_of_week day_of_year days_in_month deg delta deriv end exp floor group \
    histogram_count histogram_fraction histogram_quantile histogram_sum holt_winters hour idelta \
    increase inf irate label_join label_replace last_over_time ln log10 log2 max max_over_time min \
    min_over_time minute month nan offset or pi predict_linear present_over_time quantile \
    quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt start stddev \
    stddev_over_time stdvar stdvar_over_time sum sum_over_time tan tanh time timestamp topk unless \
    vector year";

/// Words followed by a list of label names in parentheses.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric names a PromQL expression reads. Skipped: string literals, label matchers `{...}`,
/// ranges `[...]`, label lists (`by (...)` etc.), Grafana variables (`$x`, `${x}`),
/// prometheus-adapter templates (`<<.Series>>`), numbers and durations, PromQL's own words.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut at = 0;
    // Past the bracket at `from` and its match, skipping strings inside.
    let skip_group = |from: usize, open: char, close: char| {
        let (mut depth, mut i) = (0, from);
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => i = skip_string(&chars, i) - 1,
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while at < chars.len() {
        let c = chars[at];
        if c == '"' || c == '\'' || c == '`' {
            at = skip_string(&chars, at);
        } else if c == '{' {
            at = skip_group(at, '{', '}');
        } else if c == '[' {
            at = skip_group(at, '[', ']');
        } else if c == '<' && chars.get(at + 1) == Some(&'<') {
            let end =
                (at + 2..chars.len().saturating_sub(1)).find(|&i| chars[i] == '>' && chars[i + 1] == '>');
            at = end.map_or(chars.len(), |i| i + 2);
        } else if c == '$' {
            at += 1;
            if chars.get(at) == Some(&'{') {
                at = skip_group(at, '{', '}');
            }
            while at < chars.len() && (chars[at].is_ascii_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && chars.get(at + 1).is_some_and(char::is_ascii_digit)) {
            while at < chars.len()
                && (chars[at].is_ascii_alphanumeric() || chars[at] == '.' || chars[at] == '_')
            {
                at += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = at;
            while at < chars.len()
                && (chars[at].is_ascii_alphanumeric() || chars[at] == '_' || chars[at] == ':')
            {
                at += 1;
            }
            let word: String = chars[start..at].iter().collect();
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                let next = (at..chars.len()).find(|&i| !chars[i].is_whitespace());
                if let Some(open) = next.filter(|&i| chars[i] == '(') {
                    at = skip_group(open, '(', ')');
                }
            } else if !PROMQL_WORDS.split_whitespace().any(|w| w == lower) {
                names.push(word);
            }
        } else {
            at += 1;
        }
    }
    names
}

/// Past the string literal that opens at `from`.
fn skip_string(chars: &[char], from: usize) -> usize {
    let quote = chars[from];
    let mut i = from + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' && quote != '`' { 2 } else { 1 };
    }
    i + 1
}

/// The metrics a Grafana variable's query reads: `label_values(selector, label)` reads the selector.
fn variable_query_names(query: &str) -> Vec<String> {
    match query.trim().strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) {
        Some(args) => args.rsplit_once(',').map_or_else(Vec::new, |(selector, _)| metric_names(selector)),
        None => metric_names(query),
    }
}

/// Every value of `key` in a YAML text (inline, quoted, or a block scalar), wherever it is nested:
/// our files and the adapter's rules keep PromQL in a few known keys, and no YAML crate is linked.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else { continue };
        let rest = rest.trim();
        if rest.is_empty() || rest.starts_with('|') || rest.starts_with('>') {
            let block = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect::<Vec<_>>();
            values.push(block.join("\n"));
        } else if let Some(inner) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            values.push(inner.replace("''", "'"));
        } else if let Some(inner) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            values.push(inner.replace("\\\"", "\"").replace("\\\\", "\\"));
        } else {
            values.push(rest.to_owned());
        }
    }
    values
}

/// One expression and the metric names it reads.
struct Use {
    source: String,
    expr: String,
    names: Vec<String>,
}

impl Use {
    fn new(source: String, expr: String) -> Self {
        let names = metric_names(&expr);
        Self { source, expr, names }
    }
}

/// Every expression in the rules, their unit tests, the dashboards and the Kubernetes manifests
/// (prometheus-adapter rules, or alerts and queries kept there).
fn expressions() -> Vec<Use> {
    let mut found = Vec::new();
    let mut from_yaml = |path: &Path, keys: &[&str]| {
        let text = std::fs::read_to_string(path).unwrap();
        for key in keys {
            for value in yaml_values(&text, key) {
                found.push(Use::new(format!("{} {key}", path.display()), value));
            }
        }
    };
    for path in files("deploy/prometheus/rules", &[".yml"]) {
        from_yaml(&path, &["expr"]);
    }
    // A misspelled input series would make a test prove nothing.
    for path in files("deploy/prometheus/tests", &[".yml"]) {
        from_yaml(&path, &["expr", "series"]);
    }
    for path in files("deploy/k8s", &[".yaml", ".yml"]) {
        from_yaml(&path, &["seriesQuery", "metricsQuery", "expr", "query"]);
    }
    for path in files("deploy/grafana/dashboards", &[".json"]) {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        found.extend(exprs.into_iter().map(|e| Use::new(path.display().to_string(), e)));
        for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
            let query = variable["query"]["query"].as_str().or(variable["query"].as_str());
            if let Some(query) = query.filter(|_| variable["type"] == "query") {
                let names = variable_query_names(query);
                found.push(Use {
                    source: format!("{} variable", path.display()),
                    expr: query.to_owned(),
                    names,
                });
            }
        }
    }
    found
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                out.push(expr.to_owned());
            }
            map.values().for_each(|v| collect_exprs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The names an expression reads that are neither exported nor recorded by `recorded`.
fn unknown_names(expr: &str, exported: &Exported, recorded: &HashSet<String>) -> Vec<String> {
    unknown(metric_names(expr), exported, recorded)
}

fn unknown(names: Vec<String>, exported: &Exported, recorded: &HashSet<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| if n.contains(':') { !recorded.contains(n) } else { !exported.has(n) })
        .collect()
}

fn recorded() -> HashSet<String> {
    yaml_values(&read("deploy/prometheus/rules/recording.yml"), "record").into_iter().collect()
}

#[test]
fn every_metric_a_rule_dashboard_or_autoscaler_names_is_exported() {
    let (exported, recorded) = (Exported::scan(), recorded());
    let expressions = expressions();
    let mut unknown_uses = Vec::new();
    for found in &expressions {
        for name in unknown(found.names.clone(), &exported, &recorded) {
            unknown_uses.push(format!("{name} (in {}: {})", found.source, found.expr));
        }
    }
    assert!(unknown_uses.is_empty(), "names no metrics file describes:\n{}", unknown_uses.join("\n"));
    // The scan is not vacuous: it reads the histogram in both the rules and the dashboard.
    let reads = |file: &str, name: &str| {
        expressions.iter().any(|found| found.source.contains(file) && found.names.iter().any(|n| n == name))
    };
    assert!(reads("rules/recording.yml", "codecrafter_fanout_seconds_bucket"));
    assert!(reads("dashboards/codecrafter.json", "codecrafter_fanout_seconds_bucket"));
    assert!(reads("rules/alerts.yml", "codecrafter_relay_connected"));
    // An autoscaler's metric must be one Prometheus has (the adapter may rename with `as:`).
    let mut adapter_names = HashSet::new();
    let mut hpa_names = Vec::new();
    for path in files("deploy/k8s", &[".yaml", ".yml"]) {
        let text = std::fs::read_to_string(&path).unwrap();
        adapter_names.extend(yaml_values(&text, "as"));
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2).filter(|pair| pair[0] == "metric:") {
            if let Some(name) = pair[1].strip_prefix("name:") {
                hpa_names.push((path.display().to_string(), name.trim().trim_matches('"').to_owned()));
            }
        }
    }
    for (path, name) in hpa_names {
        assert!(
            exported.has(&name) || adapter_names.contains(&name),
            "{path}: autoscaler metric {name} is not exported"
        );
    }
}

#[test]
fn the_metric_check_finds_names_and_reports_unknown_ones() {
    let (exported, recorded) = (Exported::scan(), recorded());
    let expr = r#"histogram_quantile(0.99, sum by (job, le) (rate(codecrafter_fanout_seconds_bucket{instance=~"$instance", le!="+Inf"}[$__rate_interval])))
        > on () group_left count(up offset 5m) and bool job:codecrafter_fanout_seconds:p99_5m * 1e6"#;
    assert_eq!(
        metric_names(expr),
        ["codecrafter_fanout_seconds_bucket", "up", "job:codecrafter_fanout_seconds:p99_5m"]
    );
    assert_eq!(metric_names("max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})"), Vec::<String>::new());
    assert_eq!(
        variable_query_names("label_values(codecrafter_build_info{job=\"x\"}, instance)"),
        ["codecrafter_build_info"]
    );
    assert!(unknown_names(expr, &exported, &recorded).is_empty());
    for wrong in [
        "rate(codecrafter_no_such_metric_total[5m])",
        "codecrafter_connections_bucket",      // a suffix only histograms have
        "codecrafter_fanout_seconds > 1",      // a histogram is only its series
        "job:codecrafter_not_recorded:rate5m", // a recording rule that does not exist
    ] {
        assert_eq!(unknown_names(wrong, &exported, &recorded).len(), 1, "{wrong} is reported");
    }
    assert!(
        unknown_names("sum(codecrafter_fanout_seconds_count) + process_open_fds", &exported, &recorded)
            .is_empty()
    );
}

/// The panels of a dashboard, those inside collapsed rows included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

#[test]
fn the_dashboards_are_well_formed_and_provisioned() {
    let dashboards = files("deploy/grafana/dashboards", &[".json"]);
    assert!(!dashboards.is_empty());
    let mut heatmaps = 0;
    for path in dashboards {
        let at = path.display().to_string();
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{at} is not JSON: {e}"));
        assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "{at}: uid");
        assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "{at}: schemaVersion");
        let source = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "DS_PROMETHEUS");
        assert!(
            source.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
            "{at}: DS_PROMETHEUS"
        );
        let mut ids = HashSet::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(panel["id"].as_u64().expect("a panel id")),
                "{at}: panel id of {title} repeated"
            );
            let grid = &panel["gridPos"];
            assert!(
                grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
                "{at}: {title} too wide"
            );
            if panel["type"] == "row" {
                assert!(panel.get("targets").is_none(), "{at}: row {title} has queries");
                continue;
            }
            assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{at}: {title} data source");
            let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
            let targets = targets.unwrap_or_else(|| panic!("{at}: {title} has no targets"));
            let mut ref_ids = HashSet::new();
            for target in targets {
                assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{at}: {title} expr");
                assert!(ref_ids.insert(target["refId"].as_str().unwrap()), "{at}: {title} refId repeated");
                if panel["type"] == "heatmap" {
                    assert!(
                        target["expr"].as_str().unwrap().contains("_bucket"),
                        "{at}: {title} reads buckets"
                    );
                    assert_eq!(target["format"], "heatmap", "{at}: {title} format");
                }
            }
            if panel["type"] == "heatmap" {
                assert_eq!(
                    panel["options"]["calculate"], false,
                    "{at}: {title} shows the buckets as they are"
                );
                heatmaps += 1;
            }
        }
    }
    assert!(heatmaps >= 1, "the fan-out latency heatmap");
    let datasource = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    assert_eq!(yaml_values(&datasource, "uid"), ["prometheus"]);
    assert_eq!(yaml_values(&datasource, "url"), ["http://prometheus:9090"]);
    let provider = read("deploy/grafana/provisioning/dashboards/codecrafter.yml");
    assert_eq!(yaml_values(&provider, "path"), ["/var/lib/grafana/dashboards"]);
}

/// Metrics a dashboard reads that a default test server (embedded mode, no Redis, RabbitMQ or
/// Docker) does not have, and why.
const NOT_IN_EMBEDDED_SERVER: &[(&str, &str)] = &[
    ("codecrafter_relay_connected", "set by the Redis relay only"),
    ("codecrafter_outbox_jobs", "the outbox exists with RabbitMQ only"),
    ("codecrafter_outbox_bytes", "the outbox exists with RabbitMQ only"),
    ("codecrafter_outbox_replayed_total", "the outbox exists with RabbitMQ only"),
    ("codecrafter_outbox_refused_total", "the outbox exists with RabbitMQ only"),
    ("codecrafter_broker_connected", "the outbox exists with RabbitMQ only"),
    ("codecrafter_queue_messages_ready", "polled from RabbitMQ by codecrafter-worker"),
    ("codecrafter_connections_closed_total", "resolved at the first close"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_exports_the_metrics_the_dashboards_read() {
    let server = TestServer::start(|_| {}).await;
    let (status, body) = http_get(&server.http_url("/metrics")).await;
    assert_eq!(status, 200);
    let served: HashSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let exported = Exported::scan();
    let mut missing = BTreeSet::new();
    for found in expressions().into_iter().filter(|found| found.source.contains(".json")) {
        for name in found.names {
            let eager = name.starts_with("codecrafter_") && exported.plain.contains(&name);
            if eager
                && !NOT_IN_EMBEDDED_SERVER.iter().any(|(n, _)| *n == name)
                && !served.contains(name.as_str())
            {
                missing.insert(name);
            }
        }
    }
    server.stop().await.unwrap();
    assert!(missing.is_empty(), "the dashboards read {missing:?}, which a fresh server does not export");
}
