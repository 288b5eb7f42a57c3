//! Durations on the command line: `500ms`, `12s`, `2m`, `1h`, or a bare number of seconds.

use std::time::Duration;

/// Parses `N[ms|s|m|h]` (a bare number is seconds; `N` may have a decimal part).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: not a number followed by ms, s, m or h"))?;
    let secs = value * scale;
    // A week is far beyond any timeout or benchmark; refusing more keeps the conversion exact.
    if !(0.0..=604_800.0).contains(&secs) {
        return Err(format!("{text:?}: out of range (0 to 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Shows a duration the way [`parse_duration`] reads it (`250ms`, `12s`, `1.5s`).
pub fn show_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("12s"), Ok(Duration::from_secs(12)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn garbage_units_and_huge_values_are_refused_with_the_text() {
        let e = parse_duration("5 fortnights").unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
        assert!(parse_duration("s").unwrap_err().contains("not a number"));
        assert!(parse_duration("1e9").is_err());
        assert!(
            parse_duration("9999999h")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn show_round_trips_through_parse() {
        for d in [250, 1000, 1500, 12_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&show_duration(d)), Ok(d));
        }
    }
}
