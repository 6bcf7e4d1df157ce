//! Hand-written SVGs: the latency CDF on a log-scale x axis and deliveries per second over time;
//! and, HdrHistogram style, latency by percentile on a log axis of 1 / (1 - p) with one curve per
//! series; and bars (compare's CPU per delivery by target). Plain panels are all a benchmark
//! report needs, so no plotting crate.

use std::fmt::Write as _;

const W: f64 = 460.0;
const H: f64 = 320.0;
const M_LEFT: f64 = 60.0;
const M_RIGHT: f64 = 20.0;
const M_TOP: f64 = 40.0;
const M_BOTTOM: f64 = 45.0;

/// What the plot shows.
pub struct PlotData<'a> {
    pub title: &'a str,
    /// `[latency_us, fraction]`, increasing.
    pub cdf: &'a [[f64; 2]],
    /// Deliveries per second from time zero.
    pub per_second: &'a [u64],
    /// Seconds of warm-up at the start of `per_second`, then the measured seconds; bars outside
    /// the measured window are drawn light.
    pub warmup_secs: f64,
    pub measured_secs: f64,
}

/// The start of an SVG document `width` wide: white background and the title above the panels.
fn document(title: &str, width: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" font-family="sans-serif" font-size="11">"#,
        h = H + 30.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="14">{}</text>"#, escape(title));
    s
}

pub fn svg(d: &PlotData<'_>) -> String {
    let mut s = document(d.title, 2.0 * W);
    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    cdf_panel(&mut s, d.cdf);
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g transform="translate({W},30)">"#);
    rate_panel(&mut s, d.per_second, d.warmup_secs, d.measured_secs);
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// One curve of the percentile plot: a run, or one part of it.
pub struct Series<'a> {
    pub label: &'a str,
    /// `[percentile (0..100), latency_us]`, percentile increasing (see `report::percentile_points`).
    pub points: &'a [[f64; 2]],
}

/// Colours of successive series (matplotlib's first five).
const PALETTE: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
/// Width of the legend beside the percentile panel.
const LEGEND_W: f64 = 220.0;
/// The percentile axis shows at least 0% to 99.999% whatever the sample count, so plots of
/// different runs line up.
const MIN_NINES: i32 = 5;

/// Latency (log scale, y) by percentile (x at log10(1 / (1 - p)): ticks 0%, 90%, 99%, 99.9%, ...).
pub fn percentile_svg(title: &str, series: &[Series<'_>]) -> String {
    let mut s = document(title, W + LEGEND_W);
    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    percentile_panel(&mut s, series);
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// Position of percentile `p` (0..100) on the axis: 0 at 0%, 1 at 90%, 2 at 99%, ...
fn nines(p: f64) -> f64 {
    // 100% is infinitely far out; no curve reaches it (the last point is 1 - 1/count).
    (1.0 / (1.0 - (p / 100.0).clamp(0.0, 1.0 - 1e-12))).log10()
}

/// The label of tick `n` (0 → 0%, 1 → 90%, 3 → 99.9%).
fn nines_label(n: i32) -> String {
    match n {
        ..=0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        2 => "99%".to_owned(),
        _ => format!("99.{}%", "9".repeat((n - 2) as usize)),
    }
}

fn percentile_panel(s: &mut String, series: &[Series<'_>]) {
    frame(s, "latency by percentile", "percentile", "latency (log scale)");
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let all = || series.iter().flat_map(|c| c.points.iter());
    let (Some(min), Some(max)) = (
        all().map(|p| p[1].max(1.0)).min_by(f64::total_cmp),
        all().map(|p| p[1].max(1.0)).max_by(f64::total_cmp),
    ) else {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no samples</text>"#,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
        return;
    };
    let right = all().map(|p| nines(p[0]).ceil() as i32).max().unwrap_or(0).max(MIN_NINES);
    let lo = min.log10().floor();
    let hi = max.log10().ceil().max(lo + 1.0);
    let x = |p: f64| x0 + nines(p) / f64::from(right) * (x1 - x0);
    let y = |us: f64| y0 - (us.max(1.0).log10() - lo) / (hi - lo) * (y0 - y1);
    for n in 0..=right {
        let px = x0 + f64::from(n) / f64::from(right) * (x1 - x0);
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{y0}" stroke="#ddd"/>"##);
        let _ = writeln!(
            s,
            r#"<text class="x-tick" x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y0 + 14.0,
            nines_label(n)
        );
    }
    for decade in lo as i32..=hi as i32 {
        let py = y(10f64.powi(decade));
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd" stroke-dasharray="3,3"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 4.0,
            py + 4.0,
            decade_label(decade)
        );
    }
    for (i, curve) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = String::new();
        for p in curve.points {
            let _ = write!(points, "{:.1},{:.1} ", x(p[0]), y(p[1]));
        }
        let _ = writeln!(
            s,
            r#"<polyline class="series" points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.trim_end()
        );
        let ly = y1 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly:.1}" x2="{}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/>"#,
            W + 4.0,
            W + 24.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}">{}</text>"#, W + 28.0, ly + 4.0, escape(curve.label));
    }
}

/// Plot area: x from M_LEFT to W - M_RIGHT, y from M_TOP (top) to H - M_BOTTOM (bottom).
fn frame(s: &mut String, title: &str, x_label: &str, y_label: &str) {
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        y1 - 18.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        x1 - x0,
        y0 - y1
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        H - 8.0,
        escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{y}" text-anchor="middle" transform="rotate(-90 14 {y})">{}</text>"#,
        escape(y_label),
        y = (y0 + y1) / 2.0
    );
}

fn cdf_panel(s: &mut String, cdf: &[[f64; 2]]) {
    frame(s, "fan-out latency CDF", "latency (log scale)", "fraction of deliveries");
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let Some((first, last)) = cdf.first().zip(cdf.last()) else {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no samples</text>"#,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
        return;
    };
    let lo = first[0].max(1.0).log10().floor();
    let hi = last[0].max(1.0).log10().ceil().max(lo + 1.0);
    let x = |us: f64| x0 + (us.max(1.0).log10() - lo) / (hi - lo) * (x1 - x0);
    let y = |f: f64| y0 - f.clamp(0.0, 1.0) * (y0 - y1);
    for decade in lo as i32..=hi as i32 {
        let px = x(10f64.powi(decade));
        let _ = writeln!(s, r##"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{y0}" stroke="#ddd"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y0 + 14.0,
            decade_label(decade)
        );
    }
    // 1.0 is the frame's top edge; labelling it would collide with 0.99.
    for f in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99] {
        let py = y(f);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd" stroke-dasharray="3,3"/>"##
        );
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{f}</text>"#, x0 - 4.0, py + 4.0);
    }
    let mut points = String::new();
    for p in cdf {
        let _ = write!(points, "{:.1},{:.1} ", x(p[0]), y(p[1]));
    }
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##,
        points.trim_end()
    );
}

fn rate_panel(s: &mut String, per_second: &[u64], warmup_secs: f64, measured_secs: f64) {
    frame(s, "deliveries per second", "seconds since writers started", "deliveries/s");
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let n = per_second.len().max(1) as f64;
    // 10% headroom so a flat rate does not sit on the frame.
    let top = nice_ceil(per_second.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1);
    let bar = (x1 - x0) / n;
    let y = |v: f64| y0 - v / top * (y0 - y1);
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let _ =
            writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"#, x0 - 4.0, y(v) + 4.0);
    }
    for (i, &count) in per_second.iter().enumerate() {
        let h = y0 - y(count as f64);
        // Second i covers [i, i+1): it is measured if it lies inside the window.
        let measured = i as f64 >= warmup_secs && (i + 1) as f64 <= warmup_secs + measured_secs;
        let fill = if measured { "#2ca02c" } else { "#b5dcb5" };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"/>"#,
            x0 + i as f64 * bar,
            y0 - h,
            (bar - 1.0).max(0.5)
        );
    }
    // Above the frame, where no bar can cover it.
    let _ = writeln!(
        s,
        r##"<text x="{x1}" y="{}" fill="#777" text-anchor="end">light bars: warm-up and drain</text>"##,
        y1 - 3.0
    );
    let step = ((n / 10.0).ceil() as usize).max(1);
    for i in (0..per_second.len()).step_by(step) {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{i}</text>"#,
            x0 + (i as f64 + 0.5) * bar,
            y0 + 14.0
        );
    }
}

/// One step of a saturation search, as plotted.
pub struct SatPoint {
    /// Deliveries/s offered.
    pub offered: f64,
    /// Deliveries/s achieved over the step's window.
    pub achieved: f64,
    pub p99_us: f64,
    pub held: bool,
}

/// Colours of steps that held and that failed.
const HELD: &str = "#2ca02c";
const FAILED: &str = "#d62728";

/// A saturation search: achieved vs offered deliveries/s (with the ideal diagonal), and p99
/// (log scale) vs offered with the bound; steps that held green, failed red.
pub fn saturation_svg(title: &str, points: &[SatPoint], bound_us: f64) -> String {
    let mut sorted: Vec<&SatPoint> = points.iter().collect();
    sorted.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let mut s = document(title, 2.0 * W);
    let top = nice_ceil(sorted.iter().map(|p| p.offered.max(p.achieved)).fold(1.0, f64::max) * 1.05);
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let x = |v: f64| x0 + v / top * (x1 - x0);

    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    frame(&mut s, "deliveries/s: achieved vs offered", "offered deliveries/s", "achieved deliveries/s");
    let y = |v: f64| y0 - v / top * (y0 - y1);
    linear_ticks(&mut s, top, &x, &y);
    let _ = writeln!(
        s,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#999" stroke-dasharray="4,3"/>"##
    );
    steps_curve(&mut s, &sorted, |p| (x(p.offered), y(p.achieved)));
    let _ = writeln!(s, "</g>");

    let _ = writeln!(s, r#"<g transform="translate({W},30)">"#);
    frame(&mut s, "p99 latency vs offered deliveries/s", "offered deliveries/s", "p99 (log scale)");
    let lats = || sorted.iter().map(|p| p.p99_us.max(1.0)).chain([bound_us.max(1.0)]);
    let lo = lats().fold(f64::INFINITY, f64::min).log10().floor();
    let hi = lats().fold(1.0, f64::max).log10().ceil().max(lo + 1.0);
    let ly = |us: f64| y0 - (us.max(1.0).log10() - lo) / (hi - lo) * (y0 - y1);
    linear_ticks(&mut s, top, &x, &|_| f64::NAN);
    for decade in lo as i32..=hi as i32 {
        let py = ly(10f64.powi(decade));
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd" stroke-dasharray="3,3"/>"##
        );
        let label = decade_label(decade);
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#, x0 - 4.0, py + 4.0);
    }
    let by = ly(bound_us);
    let _ = writeln!(
        s,
        r#"<line class="bound" x1="{x0}" y1="{by:.1}" x2="{x1}" y2="{by:.1}" stroke="{FAILED}" stroke-dasharray="6,3"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{:.1}" fill="{FAILED}" text-anchor="end">p99 bound</text>"#,
        x1 - 4.0,
        by - 4.0
    );
    steps_curve(&mut s, &sorted, |p| (x(p.offered), ly(p.p99_us)));
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// One curve on linear axes from 0 (the idle run's memory as sockets connect): `[x, y]` points in
/// x order.
pub fn curve_svg(title: &str, x_label: &str, y_label: &str, points: &[[f64; 2]]) -> String {
    let mut s = document(title, W);
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let top_x = nice_ceil(points.iter().map(|p| p[0]).fold(1.0, f64::max));
    let top_y = nice_ceil(points.iter().map(|p| p[1]).fold(1.0, f64::max) * 1.05);
    let x = |v: f64| x0 + v / top_x * (x1 - x0);
    let y = |v: f64| y0 - v / top_y * (y0 - y1);
    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    frame(&mut s, "", x_label, y_label);
    for i in 0..=4 {
        let (vx, vy) = (top_x * f64::from(i) / 4.0, top_y * f64::from(i) / 4.0);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(vx),
            y0 + 14.0,
            tick(vx)
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 4.0,
            y(vy) + 4.0,
            tick(vy)
        );
    }
    let line: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p[0]), y(p[1]))).collect();
    let _ = writeln!(
        s,
        r##"<polyline class="curve" points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"##,
        line.join(" "),
        PALETTE[0]
    );
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// One bar of a bar chart: a target's figure, and the single runs it summarises.
pub struct Bar<'a> {
    pub label: &'a str,
    /// The bar's height; None draws no bar and says "no reading".
    pub value: Option<f64>,
    /// Each run's figure, drawn as a ring on the bar (empty for a single run).
    pub runs: &'a [f64],
}

/// Vertical bars on a linear axis from 0, one per label, each value written inside its bar's top
/// (above it when the bar is too short), the runs as rings.
pub fn bar_svg(title: &str, y_label: &str, bars: &[Bar<'_>]) -> String {
    let mut s = document(title, W);
    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    frame(&mut s, y_label, "", y_label);
    let (x0, x1, y0, y1) = (M_LEFT, W - M_RIGHT, H - M_BOTTOM, M_TOP);
    let values = || bars.iter().flat_map(|b| b.value.into_iter().chain(b.runs.iter().copied()));
    let top = nice_ceil(values().fold(0.0, f64::max).max(1e-9) * 1.05);
    let y = |v: f64| y0 - v.max(0.0) / top * (y0 - y1);
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let py = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#ddd" stroke-dasharray="3,3"/>"##
        );
        let _ =
            writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, x0 - 4.0, py + 4.0, tick(v));
    }
    if bars.iter().any(|b| !b.runs.is_empty()) {
        // Above the frame, where no bar can cover it.
        let _ = writeln!(
            s,
            r##"<text x="{x1}" y="{}" fill="#777" text-anchor="end">bar: median; rings: each run</text>"##,
            y1 - 3.0
        );
    }
    let slot = (x1 - x0) / bars.len().max(1) as f64;
    for (i, bar) in bars.iter().enumerate() {
        let mid = x0 + (i as f64 + 0.5) * slot;
        let _ = writeln!(
            s,
            r#"<text x="{mid:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y0 + 14.0,
            escape(bar.label)
        );
        let Some(value) = bar.value else {
            let _ =
                writeln!(s, r#"<text x="{mid:.1}" y="{}" text-anchor="middle">no reading</text>"#, y0 - 6.0);
            continue;
        };
        let (width, colour, top_y) = (slot * 0.6, PALETTE[i % PALETTE.len()], y(value));
        let _ = writeln!(
            s,
            r#"<rect class="bar" x="{:.1}" y="{top_y:.1}" width="{width:.1}" height="{:.1}" fill="{colour}"/>"#,
            mid - width / 2.0,
            y0 - top_y
        );
        let (label_y, fill) =
            if y0 - top_y >= 20.0 { (top_y + 14.0, "white") } else { (top_y - 4.0, "black") };
        let _ = writeln!(
            s,
            r#"<text x="{mid:.1}" y="{label_y:.1}" fill="{fill}" text-anchor="middle">{}</text>"#,
            tick(value)
        );
        for &run in bar.runs {
            let _ = writeln!(
                s,
                r##"<circle class="run" cx="{:.1}" cy="{:.1}" r="3" fill="none" stroke="#333"/>"##,
                mid + width / 2.0 - 8.0,
                y(run)
            );
        }
    }
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// A tick or bar value with the decimals it needs (`1500`, `187.5`, `125`, `12.5`, `0.42`).
fn tick(v: f64) -> String {
    match v.abs() {
        a if a >= 1000.0 || v.fract() == 0.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

/// Five ticks on the x axis (0..top) and, where `y` gives a number, on the y axis too.
fn linear_ticks(s: &mut String, top: f64, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) {
    let (x0, y0) = (M_LEFT, H - M_BOTTOM);
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{v:.0}</text>"#, x(v), y0 + 14.0);
        let py = y(v);
        if py.is_finite() {
            let _ =
                writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"#, x0 - 4.0, py + 4.0);
        }
    }
}

/// A grey line through the steps in offered order, and a dot per step coloured by its verdict.
fn steps_curve(s: &mut String, sorted: &[&SatPoint], at: impl Fn(&SatPoint) -> (f64, f64)) {
    let line: Vec<String> = sorted.iter().map(|p| at(p)).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(s, r##"<polyline points="{}" fill="none" stroke="#777"/>"##, line.join(" "));
    for p in sorted {
        let (cx, cy) = at(p);
        let colour = if p.held { HELD } else { FAILED };
        let _ = writeln!(s, r#"<circle class="step" cx="{cx:.1}" cy="{cy:.1}" r="4" fill="{colour}"/>"#);
    }
}

/// 10^decade µs in human units (`1µs`, `100ms`, `10s`).
fn decade_label(decade: i32) -> String {
    crate::duration::human(std::time::Duration::from_micros(10u64.pow(decade.clamp(0, 12) as u32)))
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at least `v`.
fn nice_ceil(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small well-formedness check: tags balance, attributes are quoted, no stray `<` or `&`.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert!(!text.contains('>'), "stray > in {text:?}");
            for (i, _) in text.match_indices('&') {
                let entity = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)),
                    "bad entity"
                );
            }
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "nested < in {tag:?}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("tag name"));
            }
            rest = &rest[close + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(rest.trim().is_empty());
    }

    #[test]
    fn plot_is_well_formed() {
        let cdf = [[80.0, 0.01], [150.0, 0.5], [900.0, 0.99], [25_000.0, 1.0]];
        let per_second = [0, 900, 9000, 9001, 8999, 120];
        let data = PlotData {
            title: "rooms <100 x 10> & more",
            cdf: &cdf,
            per_second: &per_second,
            warmup_secs: 1.0,
            measured_secs: 3.0,
        };
        let svg = svg(&data);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("&lt;100 x 10&gt; &amp; more"));
        assert_eq!(svg.matches("fill=\"#2ca02c\"").count(), 3, "measured seconds 1, 2, 3");
        assert_eq!(svg.matches("fill=\"#b5dcb5\"").count(), 3, "warm-up second 0, drain seconds 4, 5");
        assert_well_formed(&svg);
    }

    #[test]
    fn empty_plot_is_well_formed() {
        assert_well_formed(&svg(&PlotData {
            title: "empty",
            cdf: &[],
            per_second: &[],
            warmup_secs: 0.0,
            measured_secs: 0.0,
        }));
    }

    /// The `(x, y)` of every point of each `class="series"` polyline.
    fn curves(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.lines()
            .filter(|l| l.contains(r#"class="series""#))
            .map(|l| {
                let points = l.split(r#"points=""#).nth(1).and_then(|r| r.split('"').next()).expect("points");
                (points.split_whitespace())
                    .map(|p| {
                        let (x, y) = p.split_once(',').expect("x,y");
                        (x.parse().expect("x"), y.parse().expect("y"))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn percentile_plot_has_nines_ticks_and_one_rising_curve_per_series() {
        let mut a = crate::report::new_histogram();
        let mut b = crate::report::new_histogram();
        for us in 1..=20_000u64 {
            crate::report::record_latency(&mut a, 100 + us % 900);
            crate::report::record_latency(&mut b, 200 + us * 3);
        }
        let (pa, pb) = (crate::report::percentile_points(&a), crate::report::percentile_points(&b));
        let series =
            [Series { label: "rooms, 1 node", points: &pa }, Series { label: "rooms, 2 nodes", points: &pb }];
        let svg = percentile_svg("rooms, 2 nodes: 30s <measured>", &series);
        assert_well_formed(&svg);
        assert!(svg.contains("rooms, 2 nodes: 30s &lt;measured&gt;"));
        let ticks: Vec<&str> = (svg.lines().filter(|l| l.contains(r#"class="x-tick""#)))
            .filter_map(|l| l.split('>').nth(1)?.split('<').next())
            .collect();
        assert_eq!(ticks, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        let curves = curves(&svg);
        assert_eq!(curves.len(), 2);
        for curve in &curves {
            assert!(curve.len() > 50, "{curve:?}");
            // Right along the percentile axis; up (smaller SVG y) or level in latency.
            assert!(curve.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 >= w[1].1), "{curve:?}");
            assert!(curve.iter().all(|&(x, y)| (M_LEFT..=W - M_RIGHT).contains(&x) && (M_TOP..=H - M_BOTTOM).contains(&y)));
        }
        // 20,000 samples: the last point is at 1 - 1/20,000 = 99.995%, between the last two ticks.
        let tick = |n: f64| M_LEFT + n / 5.0 * (W - M_RIGHT - M_LEFT);
        let end = curves[0].last().expect("points").0;
        assert!(end > tick(4.0) && end < tick(5.0), "{end}");
        assert!(svg.contains(">rooms, 2 nodes</text>"), "legend");
    }

    #[test]
    fn percentile_axis_grows_past_five_nines_and_empty_plots_say_so() {
        let points: Vec<[f64; 2]> = vec![[0.0, 10.0], [99.99999, 100.0]];
        let svg = percentile_svg("t", &[Series { label: "many", points: &points }]);
        assert!(svg.contains(">99.99999%</text>"), "7 nines for a point past 6");
        assert_well_formed(&svg);
        let empty = percentile_svg("t", &[Series { label: "none", points: &[] }]);
        assert!(empty.contains("no samples"));
        assert_well_formed(&empty);
        assert_eq!((nines(0.0), nines(90.0)), (0.0, 1.0));
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn saturation_plot_has_a_dot_per_step_and_the_bound() {
        let step = |offered: f64, achieved: f64, p99_us: f64, held: bool| SatPoint {
            offered,
            achieved,
            p99_us,
            held,
        };
        let points = [
            step(36_000.0, 35_990.0, 900.0, true),
            step(9_000.0, 9_000.0, 400.0, true),
            step(72_000.0, 51_000.0, 180_000.0, false),
        ];
        let svg = saturation_svg("saturation <rooms>", &points, 50_000.0);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"class="step""#).count(), 6, "a dot per step in each panel");
        assert_eq!(svg.matches(&format!(r#"fill="{FAILED}"/>"#)).count(), 2, "the failed step, twice");
        assert_eq!(svg.matches(r#"class="bound""#).count(), 1);
        assert!(svg.contains(">50ms</text>") || svg.contains(">10ms</text>"), "log decades labelled");
        assert_well_formed(&saturation_svg("no steps", &[], 50_000.0));
    }

    #[test]
    fn bar_chart_has_a_bar_per_reading_and_a_dot_per_run() {
        let bars = [
            Bar { label: "codecrafter", value: Some(2.5), runs: &[2.4, 2.6] },
            Bar { label: "y <ws> & co", value: Some(7.75), runs: &[7.5, 8.0] },
            Bar { label: "hocuspocus", value: None, runs: &[] },
        ];
        let svg = bar_svg("µs CPU per delivery <rooms>", "µs CPU per delivery", &bars);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert_eq!(svg.matches(r#"class="run""#).count(), 4);
        assert!(svg.contains(">y &lt;ws&gt; &amp; co</text>") && svg.contains(">no reading</text>"));
        assert!(svg.contains(">2.50</text>") && svg.contains(">7.75</text>"), "values written");
        assert!(svg.contains("rings: each run"));
        // Heights in proportion: 7.75 / 2.5 = 3.1.
        let heights: Vec<f64> = (svg.lines().filter(|l| l.contains(r#"class="bar""#)))
            .filter_map(|l| l.split(r#"height=""#).nth(1)?.split('"').next()?.parse().ok())
            .collect();
        assert!((heights[1] / heights[0] - 3.1).abs() < 0.01, "{heights:?}");
        assert_well_formed(&bar_svg("none", "x", &[]));
        assert_eq!(
            (tick(1500.0), tick(12.5), tick(0.421), tick(0.0)),
            ("1500".into(), "12.5".into(), "0.42".into(), "0".into())
        );
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceil(9001.0), 10_000.0);
        assert_eq!(nice_ceil(1500.0), 1500.0);
        assert_eq!(nice_ceil(21_890.0), 25_000.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(
            (decade_label(0), decade_label(2), decade_label(3), decade_label(7)),
            ("1µs".into(), "100µs".into(), "1ms".into(), "10s".into())
        );
    }
}
