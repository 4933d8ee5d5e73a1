//! Percentiles of latency samples.

use std::time::Duration;

/// Summary of latency samples.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Number of samples.
    pub n: usize,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
}

impl Latency {
    /// Summarises `samples` (at least one).
    pub fn of(samples: &mut [Duration]) -> Latency {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1e6
        };
        Latency {
            n: samples.len(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let l = Latency::of(&mut s);
        assert_eq!(l.n, 100);
        assert_eq!(l.p50_us.round(), 51.0);
        assert_eq!(l.p99_us.round(), 99.0);
    }
}
