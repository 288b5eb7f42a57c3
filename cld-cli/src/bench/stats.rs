//! What a benchmark measures: latencies in an HdrHistogram (microseconds, 3 significant
//! digits), operations per second of the run, and errors.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly (longer ones are clamped to it): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// One worker's measurements; merged at the end.
pub struct Recorder {
    hist: Histogram<u64>,
    per_second: Vec<u64>,
    errors: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant bounds are valid"),
            per_second: Vec::new(),
            errors: 0,
        }
    }

    /// One operation that took `latency` and completed `at` after the run's start.
    pub fn record(&mut self, latency: Duration, at: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
        let second = usize::try_from(at.as_secs()).unwrap_or(usize::MAX);
        if second < 86_400 {
            if self.per_second.len() <= second {
                self.per_second.resize(second + 1, 0);
            }
            self.per_second[second] += 1;
        }
    }

    /// One failed operation.
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// Adds `other`'s measurements to these.
    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            *a += b;
        }
        self.errors += other.errors;
    }

    /// Operations recorded.
    pub fn ops(&self) -> u64 {
        self.hist.len()
    }

    /// The summary of a run of `elapsed`.
    pub fn summary(&self, run: RunInfo, elapsed: Duration) -> Summary {
        let ops = self.hist.len();
        let secs = elapsed.as_secs_f64();
        let q = |f: f64| {
            if ops == 0 {
                0
            } else {
                self.hist.value_at_quantile(f)
            }
        };
        let mut per_second = self.per_second.clone();
        // Only whole seconds of the measured window.
        per_second.truncate(elapsed.as_secs().max(1) as usize);
        let histogram = if ops == 0 {
            Vec::new()
        } else {
            self.hist
                .iter_log(10, 1.25)
                .filter(|v| v.count_since_last_iteration() > 0)
                .map(|v| Bucket {
                    upto_us: v.value_iterated_to(),
                    count: v.count_since_last_iteration(),
                })
                .collect()
        };
        Summary {
            idle: None,
            run,
            elapsed_s: secs,
            ops,
            errors: self.errors,
            ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            latency_us: Latency {
                p50: q(0.50),
                p90: q(0.90),
                p99: q(0.99),
                p999: q(0.999),
                max: if ops == 0 { 0 } else { self.hist.max() },
                mean: if ops == 0 { 0.0 } else { self.hist.mean() },
            },
            throughput_per_s: per_second,
            histogram,
        }
    }
}

/// What was run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunInfo {
    /// The workload's name.
    pub workload: String,
    /// Sessions.
    pub sessions: u32,
    /// File size for put/get.
    pub size: u32,
    /// The requested duration, seconds.
    pub duration_s: f64,
}

/// Latency percentiles, microseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// One histogram bucket: operations with latency up to `upto_us` (above the previous one).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Bucket {
    /// Upper bound, microseconds.
    pub upto_us: u64,
    /// Operations in the bucket.
    pub count: u64,
}

/// The result of a run (the `--json` report).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// What was run.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Measured time, seconds.
    pub elapsed_s: f64,
    /// Operations completed.
    pub ops: u64,
    /// Operations failed.
    pub errors: u64,
    /// ops / elapsed.
    pub ops_per_sec: f64,
    /// Latency percentiles.
    pub latency_us: Latency,
    /// Operations completed in each second of the run.
    pub throughput_per_s: Vec<u64>,
    /// Latency histogram (log-spaced buckets, empty ones left out).
    pub histogram: Vec<Bucket>,
    /// idle-sessions only: what became of the held sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleOutcome>,
}

/// What became of the sessions an idle-sessions run held.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct IdleOutcome {
    /// Sessions that went into jeopardy (their lease ran out before a keepalive was
    /// answered); also counted in `errors`.
    pub jeopardy: u64,
    /// Sessions that expired (lost) while held.
    pub expired: u64,
    /// Handshakes restarted on another member while opening (no answer in time). Each may
    /// leave a session the cell created but nobody uses, which the cell expires after the
    /// lease: the cell's `sessions_expired` counts those too.
    pub handshake_restarts: u64,
}

/// A latency for people: `850us`, `1.25ms`, `2.10s`.
pub fn show_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

impl Summary {
    /// The text report.
    pub fn text(&self) -> String {
        let l = &self.latency_us;
        let mut text = format!(
            "workload {} | {} sessions | {:.1} s | size {} B\n\
             ops {} (errors {}) | {:.1} ops/s\n\
             latency p50 {} | p90 {} | p99 {} | p99.9 {} | max {}\n",
            self.run.workload,
            self.run.sessions,
            self.elapsed_s,
            self.run.size,
            self.ops,
            self.errors,
            self.ops_per_sec,
            show_us(l.p50),
            show_us(l.p90),
            show_us(l.p99),
            show_us(l.p999),
            show_us(l.max),
        );
        if let Some(i) = &self.idle {
            text.push_str(&format!(
                "held sessions: {} went into jeopardy, {} expired | handshakes restarted while opening: {}\n",
                i.jeopardy, i.expired, i.handshake_restarts
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            workload: "put".into(),
            sessions: 2,
            size: 100,
            duration_s: 2.0,
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_latencies() {
        let mut r = Recorder::new();
        // 1..=1000 ms, one each: p50 is 500 ms, p99 990 ms, max 1000 ms (3 digits).
        for ms in 1..=1000u64 {
            r.record(Duration::from_millis(ms), Duration::from_millis(ms));
        }
        let s = r.summary(info(), Duration::from_secs(2));
        assert_eq!(s.ops, 1000);
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(s.latency_us.p50, 500_000), "{:?}", s.latency_us);
        assert!(near(s.latency_us.p90, 900_000), "{:?}", s.latency_us);
        assert!(near(s.latency_us.p99, 990_000), "{:?}", s.latency_us);
        assert!(near(s.latency_us.p999, 999_000), "{:?}", s.latency_us);
        assert!(near(s.latency_us.max, 1_000_000), "{:?}", s.latency_us);
        assert!((s.ops_per_sec - 500.0).abs() < 1e-9);
        // Completed at 1..=1000 ms: 999 in second 0, 1 in second 1.
        assert_eq!(s.throughput_per_s, vec![999, 1]);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), 1000);
    }

    #[test]
    fn merging_adds_counts_and_seconds() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.record(Duration::from_micros(100), Duration::from_millis(10));
        b.record(Duration::from_micros(300), Duration::from_millis(1500));
        b.error();
        a.merge(&b);
        let s = a.summary(info(), Duration::from_secs(2));
        assert_eq!(s.ops, 2);
        assert_eq!(s.errors, 1);
        assert_eq!(s.throughput_per_s, vec![1, 1]);
        assert_eq!(s.latency_us.max, 300);
    }

    #[test]
    fn an_empty_run_reports_zeros_not_a_panic() {
        let s = Recorder::new().summary(info(), Duration::ZERO);
        assert_eq!(s.ops, 0);
        assert_eq!(s.ops_per_sec, 0.0);
        assert_eq!(s.latency_us.max, 0);
        assert!(s.histogram.is_empty());
    }

    #[test]
    fn the_json_report_has_the_documented_fields() {
        let mut r = Recorder::new();
        r.record(Duration::from_micros(1500), Duration::from_millis(5));
        let v = serde_json::to_value(r.summary(info(), Duration::from_secs(1))).unwrap();
        for key in [
            "workload",
            "sessions",
            "ops",
            "ops_per_sec",
            "latency_us",
            "histogram",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert!(v["latency_us"]["p999"].as_u64().is_some());
    }

    #[test]
    fn latencies_read_naturally() {
        assert_eq!(show_us(850), "850us");
        assert_eq!(show_us(1250), "1.25ms");
        assert_eq!(show_us(2_100_000), "2.10s");
    }
}
