//! A hand-written SVG: the latency CDF on a log-scale x axis, and deliveries per second over time.
//! Two plain panels are all a benchmark report needs, so no plotting crate.

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

pub fn svg(d: &PlotData<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#,
        w = 2.0 * W,
        h = H + 30.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="10" y="20" font-size="14">{}</text>"#, escape(d.title));
    let _ = writeln!(s, r#"<g transform="translate(0,30)">"#);
    cdf_panel(&mut s, d.cdf);
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, r#"<g transform="translate({W},30)">"#);
    rate_panel(&mut s, d.per_second, d.warmup_secs, d.measured_secs);
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
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

fn decade_label(decade: i32) -> String {
    match decade {
        ..=2 => format!("{} µs", 10u64.pow(decade.max(0) as u32)),
        3..=5 => format!("{} ms", 10u64.pow((decade - 3) as u32)),
        _ => format!("{} s", 10u64.pow((decade - 6).min(9) as u32)),
    }
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

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceil(9001.0), 10_000.0);
        assert_eq!(nice_ceil(1500.0), 1500.0);
        assert_eq!(nice_ceil(21_890.0), 25_000.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(
            (decade_label(0), decade_label(2), decade_label(3), decade_label(7)),
            ("1 µs".into(), "100 µs".into(), "1 ms".into(), "10 s".into())
        );
    }
}
