//! Live pipeline statistics: frame counts, rate, per-stage time, drops,
//! layer errors and end-to-end latency (capture time → written by a sink).
//!
//! Every stage records into one shared [`Stats`]; anyone (the CLI's status
//! line, a Python caller, a test) takes a [`StatsSnapshot`] at any time.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many recent latency samples the percentiles are computed over.
const LATENCY_WINDOW: usize = 512;
/// How far back the "current fps" looks.
const RATE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Default, Clone, Copy)]
struct StageTotals {
    count: u64,
    total_ns: u64,
    max_ns: u64,
}

#[derive(Default)]
struct Inner {
    stages: BTreeMap<String, StageTotals>,
    layer_errors: BTreeMap<String, u64>,
    latency_ns: VecDeque<u64>,
    output_times: VecDeque<Instant>,
}

/// Counters shared by every stage of one stream.
pub struct Stats {
    started: Instant,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped: AtomicU64,
    inner: Mutex<Inner>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            inner: Mutex::default(),
        }
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats::default()
    }

    /// A frame arrived from the source.
    pub fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A composed frame left the compositor towards the sinks.
    pub fn frame_out(&self) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        inner.output_times.push_back(now);
        while inner.output_times.front().is_some_and(|t| now.duration_since(*t) > RATE_WINDOW) {
            inner.output_times.pop_front();
        }
    }

    /// Frames a queue policy dropped (a sink fell behind).
    pub fn dropped(&self, count: u64) {
        self.dropped.fetch_add(count, Ordering::Relaxed);
    }

    /// Time spent in one stage for one frame (`source`, `compose`,
    /// `sink:<name>`, `layer:<id>` …).
    pub fn stage_time(&self, stage: &str, elapsed: Duration) {
        let ns = elapsed.as_nanos() as u64;
        let mut inner = self.inner.lock().unwrap();
        let totals = match inner.stages.get_mut(stage) {
            Some(t) => t,
            None => inner.stages.entry(stage.to_string()).or_default(),
        };
        totals.count += 1;
        totals.total_ns += ns;
        totals.max_ns = totals.max_ns.max(ns);
    }

    pub fn layer_error(&self, layer_id: &str) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        let count = inner.layer_errors.entry(layer_id.to_string()).or_default();
        *count += 1;
        *count
    }

    /// End-to-end latency of one frame: from its capture to now.
    pub fn latency(&self, capture_time_ns: u64) {
        if capture_time_ns == 0 {
            return;
        }
        let latency = crate::time::monotonic_ns().saturating_sub(capture_time_ns);
        let mut inner = self.inner.lock().unwrap();
        if inner.latency_ns.len() == LATENCY_WINDOW {
            inner.latency_ns.pop_front();
        }
        inner.latency_ns.push_back(latency);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.inner.lock().unwrap();
        let elapsed = self.started.elapsed();
        let frames_out = self.frames_out.load(Ordering::Relaxed);
        let mut latencies: Vec<u64> = inner.latency_ns.iter().copied().collect();
        latencies.sort_unstable();
        let percentile = |p: f64| -> Option<f64> {
            let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            latencies.get(idx).map(|ns| *ns as f64 / 1e6)
        };
        let fps = match (inner.output_times.front(), inner.output_times.back()) {
            (Some(first), Some(last)) if inner.output_times.len() > 1 => {
                (inner.output_times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64().max(1e-9)
            }
            _ => 0.0,
        };
        StatsSnapshot {
            elapsed,
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out,
            dropped: self.dropped.load(Ordering::Relaxed),
            fps,
            average_fps: frames_out as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_p50_ms: percentile(0.5),
            latency_p99_ms: percentile(0.99),
            stages: inner
                .stages
                .iter()
                .map(|(name, t)| StageTime {
                    name: name.clone(),
                    frames: t.count,
                    mean_ms: t.total_ns as f64 / t.count.max(1) as f64 / 1e6,
                    max_ms: t.max_ns as f64 / 1e6,
                })
                .collect(),
            layer_errors: inner.layer_errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

/// Mean and worst time of one stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTime {
    pub name: String,
    pub frames: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

/// Statistics at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsSnapshot {
    pub elapsed: Duration,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    /// Output rate over the last two seconds.
    pub fps: f64,
    /// Output rate since the start.
    pub average_fps: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub stages: Vec<StageTime>,
    pub layer_errors: Vec<(String, u64)>,
}

impl StatsSnapshot {
    pub fn stage(&self, name: &str) -> Option<&StageTime> {
        self.stages.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for StatsSnapshot {
    /// One status line: `frame 120 | 30.0 fps | latency p50 3.1 ms p99 5.0 ms | dropped 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {} | {:.1} fps", self.frames_out, self.fps)?;
        if let (Some(p50), Some(p99)) = (self.latency_p50_ms, self.latency_p99_ms) {
            write!(f, " | latency p50 {p50:.1} ms p99 {p99:.1} ms")?;
        }
        write!(f, " | dropped {}", self.dropped)?;
        let errors: u64 = self.layer_errors.iter().map(|(_, n)| n).sum();
        if errors > 0 {
            write!(f, " | layer errors {errors}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reports_what_was_recorded() {
        let stats = Stats::new();
        for _ in 0..3 {
            stats.frame_in();
            stats.frame_out();
            stats.stage_time("compose", Duration::from_millis(2));
        }
        stats.stage_time("compose", Duration::from_millis(8));
        stats.dropped(2);
        stats.layer_error("bad");
        stats.layer_error("bad");
        stats.latency(crate::time::monotonic_ns() - 5_000_000);
        let snap = stats.snapshot();
        assert_eq!((snap.frames_in, snap.frames_out, snap.dropped), (3, 3, 2));
        let compose = snap.stage("compose").unwrap();
        assert_eq!(compose.frames, 4);
        assert!((compose.mean_ms - 3.5).abs() < 1e-9 && (compose.max_ms - 8.0).abs() < 1e-9);
        assert_eq!(snap.layer_errors, vec![("bad".to_string(), 2)]);
        assert!(snap.latency_p50_ms.unwrap() >= 5.0);
        let line = snap.to_string();
        assert!(line.contains("frame 3") && line.contains("dropped 2") && line.contains("layer errors 2"), "{line}");
    }
}
