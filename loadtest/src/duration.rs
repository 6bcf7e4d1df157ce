//! Durations in human units, both ways: the flags' parser (`1h30m`, `2m30s`, `1.5s`, `500ms`) and
//! the one formatter every printed duration and plot title goes through. JSON reports keep plain
//! numbers of seconds; this is for people.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Fraction digits kept per component: beyond nanoseconds of an hour they change nothing.
const MAX_FRACTION_DIGITS: usize = 18;
const UNITS: &str = "ms, s, m (or min) and h";

/// Parses one or more `<number><unit>` components in descending unit order, each unit at most once
/// (`1h30m`, `2m30s`, `1.5s`, `500ms`), or a bare number of seconds (`7`). Units: ms, s, m or min,
/// h. Refuses an empty string, a sign, an unknown or missing unit, anything after the last unit,
/// and a total too large for a `Duration`.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration: give e.g. 30s, 2m30s or 500ms".to_owned());
    }
    if s.starts_with(['-', '+']) {
        return Err(format!("{input:?}: a duration has no sign"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return to_duration(component_nanos(s, NANOS_PER_SEC, input)?, input);
    }
    let mut rest = s;
    let mut total: u128 = 0;
    // Rank of the previous unit (h 0, m 1, s 2, ms 3): each must be smaller than the next, so a
    // typo such as `30m1h` or `1s1s` is an error, not a sum.
    let mut previous_rank = None;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("{input:?}: expected a number at {rest:?}"));
        }
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let (unit_nanos, rank) = match unit {
            "h" => (3600 * NANOS_PER_SEC, 0),
            "m" | "min" => (60 * NANOS_PER_SEC, 1),
            "s" => (NANOS_PER_SEC, 2),
            "ms" => (NANOS_PER_SEC / 1000, 3),
            "" => return Err(format!("{input:?}: {number} has no unit (use {UNITS})")),
            _ => return Err(format!("{input:?}: unknown unit {unit:?} (use {UNITS})")),
        };
        if previous_rank.is_some_and(|p| rank <= p) {
            return Err(format!("{input:?}: units must go from largest to smallest, each once"));
        }
        previous_rank = Some(rank);
        let nanos = component_nanos(number, unit_nanos, input)?;
        total = total.checked_add(nanos).ok_or_else(|| too_long(input))?;
        rest = after;
    }
    to_duration(total, input)
}

/// `number` (digits with an optional fraction) times `unit_nanos`, exactly.
fn component_nanos(number: &str, unit_nanos: u128, input: &str) -> Result<u128, String> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(format!("{input:?}: {number:?} is not a number"));
    }
    // Only digits are left, so a parse error is an overflow.
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long(input))? };
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u128 = fraction.parse().map_err(|_| too_long(input))?;
        digits * unit_nanos / 10u128.pow(fraction.len() as u32)
    };
    whole.checked_mul(unit_nanos).and_then(|n| n.checked_add(fraction_nanos)).ok_or_else(|| too_long(input))
}

fn to_duration(nanos: u128, input: &str) -> Result<Duration, String> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_long(input))?;
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

fn too_long(input: &str) -> String {
    format!("{input:?}: too long for a duration")
}

/// A duration in human units: `1h30m`, `2m30s`, `45s`, `1.5s`, `250ms`, `800µs`. Below a minute
/// three significant digits; from a minute on whole seconds, as hours, minutes and seconds with
/// the zero ones left out. [`parse`] reads every form back (except µs, which no flag needs).
pub fn human(d: Duration) -> String {
    human_secs(d.as_secs_f64())
}

/// [`human`] for a number of seconds (elapsed and CPU times the harness keeps as `f64`); negative
/// or NaN reads as zero.
pub fn human_secs(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    // The thresholds sit where rounding to three digits would reach the next unit (999.7 ms
    // prints as 1s, not 1000ms).
    if secs == 0.0 {
        "0s".to_owned()
    } else if secs < 0.000_999_5 {
        format!("{}µs", three_digits(secs * 1e6))
    } else if secs < 0.999_5 {
        format!("{}ms", three_digits(secs * 1e3))
    } else if secs < 59.95 {
        format!("{}s", three_digits(secs))
    } else {
        let total = secs.round() as u64;
        let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
        let mut out = String::new();
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                out.push_str(&format!("{value}{unit}"));
            }
        }
        out
    }
}

/// Three significant digits for a value in [0.1, 1000), without trailing zeros.
fn three_digits(v: f64) -> String {
    let decimals = if v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else {
        2
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_forms() {
        let check = |input: &str, expected: Duration| {
            assert_eq!(parse(input), Ok(expected), "{input}");
        };
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        check("1h30m", secs(5400));
        check("2m30s", secs(150));
        check("1.5s", ms(1500));
        check("500ms", ms(500));
        check("90s", secs(90));
        check("1h", secs(3600));
        check("2min", secs(120));
        check("1h2m3s4ms", ms(3_723_004));
        check("1.5h30m", secs(7200));
        check(".5s", ms(500));
        check("7", secs(7));
        check("0.25", ms(250));
        check("0s", Duration::ZERO);
        check(" 5s ", secs(5));
        check("0.1s", ms(100));
        check("1.0000000001s", Duration::new(1, 0));
        check("18446744073709551615s", Duration::new(u64::MAX, 0));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for input in [
            "", "   ", "-1s", "+1s", "-5", "s", "ms", "5x", "5sec", "5d", "1h30", "5s!", "1h 30m", "30m1h",
            "1s1s", "1m2min", "1..5s", "1.5.2s", ".s", "5 s", "1e3s",
        ] {
            let got = parse(input);
            assert!(got.is_err(), "{input:?} parsed as {got:?}");
        }
        for overflow in
            ["18446744073709551616s", "99999999999999999999999999999999999999999h", "5124095576030432h"]
        {
            let err = parse(overflow).expect_err(overflow);
            assert!(err.contains("too long"), "{overflow}: {err}");
        }
        assert!(parse("5h").is_ok(), "hours are a unit now");
    }

    #[test]
    fn formats_in_human_units() {
        let check = |d: Duration, expected: &str| assert_eq!(human(d), expected, "{d:?}");
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        check(secs(5400), "1h30m");
        check(secs(150), "2m30s");
        check(secs(45), "45s");
        check(ms(1500), "1.5s");
        check(ms(250), "250ms");
        check(secs(3600), "1h");
        check(secs(3605), "1h5s");
        check(secs(60), "1m");
        check(Duration::ZERO, "0s");
        check(Duration::from_micros(800), "800µs");
        check(Duration::from_micros(1500), "1.5ms");
        check(Duration::from_micros(999_700), "1s");
        check(ms(59_970), "1m");
        check(ms(12_345), "12.3s");
        check(ms(2_346), "2.35s");
        assert_eq!(human_secs(-1.0), "0s");
        assert_eq!(human_secs(f64::NAN), "0s");
    }

    #[test]
    fn printed_forms_read_back() {
        for d in [5400, 150, 45, 3605, 86_400 + 61].map(Duration::from_secs).into_iter().chain([
            Duration::from_millis(1500),
            Duration::from_millis(250),
            Duration::from_millis(12_300),
        ]) {
            assert_eq!(parse(&human(d)), Ok(d), "{}", human(d));
        }
    }
}
