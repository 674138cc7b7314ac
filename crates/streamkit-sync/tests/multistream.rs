//! MultiStreamCompositor with real (async) sources: concurrency, end of
//! stream, errors, and SyncedSource stamping in between.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use streamkit_core::{Error, Frame, PixelFormat, Result, Source, SourceInfo, Timing};
use streamkit_sync::{CompositorOptions, ManualClock, MultiStreamCompositor, SyncMode, SyncedSource};

/// Frames with given capture times, each after a delay; then an end or an error.
struct Scripted {
    times: Vec<u64>,
    delay: Duration,
    next: usize,
    fail_at_end: bool,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Scripted {
    fn new(times: Vec<u64>, delay_ms: u64) -> Scripted {
        Scripted {
            times,
            delay: Duration::from_millis(delay_ms),
            next: 0,
            fail_at_end: false,
            closed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }
}

#[async_trait]
impl Source for Scripted {
    fn info(&self) -> SourceInfo {
        SourceInfo::new("scripted")
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        tokio::time::sleep(self.delay).await;
        let Some(&t) = self.times.get(self.next) else {
            return if self.fail_at_end { Err(Error::invalid("camera unplugged")) } else { Ok(None) };
        };
        self.next += 1;
        let timing = Timing { capture_time_ns: t, frame_number: self.next as u64, ..Timing::default() };
        Ok(Some(Frame::new(PixelFormat::Gray8, 2, 2)?.with_timing(timing)))
    }

    async fn close(&mut self) -> Result<()> {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

const PERIOD: u64 = 33_333_333;

fn times(offset: u64, count: u64, skip: &[u64]) -> Vec<u64> {
    (0..count).filter(|k| !skip.contains(k)).map(|k| 1_000_000_000 + k * PERIOD + offset).collect()
}

#[tokio::test]
async fn strict_sets_from_concurrent_sources_then_end() {
    let mut compositor = MultiStreamCompositor::new(CompositorOptions {
        sync_tolerance_ns: 500_000,
        sync_mode: SyncMode::Strict,
        ..CompositorOptions::default()
    });
    // Different delivery speeds; cam_2 misses frame 3.
    let sources = [
        Scripted::new(times(0, 10, &[]), 1),
        Scripted::new(times(200_000, 10, &[]), 3),
        Scripted::new(times(400_000, 10, &[3]), 2),
    ];
    let closed: Vec<_> = sources.iter().map(|s| s.closed.clone()).collect();
    for (i, s) in sources.into_iter().enumerate() {
        compositor.add_synced_source(format!("cam_{i}"), Box::new(s)).unwrap();
    }
    assert!(compositor.add_synced_source("cam_0", Box::new(Scripted::new(vec![], 0))).is_err(), "duplicate id");
    let mut sets = Vec::new();
    while let Some(set) = compositor.get_synced_frames().await.unwrap() {
        sets.push(set);
    }
    assert_eq!(sets.len(), 9);
    for set in &sets {
        assert!(set.is_complete());
        assert_eq!(set.skew_ns, 400_000);
        let numbers: Vec<u64> = set.frames.iter().map(|f| f.frame.timing.frame_number).collect();
        assert!(set.get("cam_1").is_some());
        // cam_2's numbering is one behind after its missing frame.
        assert_eq!(numbers[0], numbers[1]);
    }
    // Frame 3 of cam_0 and cam_1 had no partner from cam_2: dropped, counted.
    let stats = compositor.stats();
    assert_eq!((stats.sources[0].unmatched, stats.sources[1].unmatched, stats.sources[2].unmatched), (1, 1, 0));
    compositor.close().await.unwrap();
    assert!(closed.iter().all(|c| c.load(std::sync::atomic::Ordering::SeqCst)), "every source closed");
    assert!(compositor.add_synced_source("late", Box::new(Scripted::new(vec![], 0))).is_err());
}

#[tokio::test]
async fn strict_returns_a_source_error() {
    let mut compositor = MultiStreamCompositor::new(CompositorOptions::default());
    let mut failing = Scripted::new(times(0, 2, &[]), 1);
    failing.fail_at_end = true;
    compositor.add_synced_source("a", Box::new(failing)).unwrap();
    compositor.add_synced_source("b", Box::new(Scripted::new(times(0, 5, &[]), 1))).unwrap();
    let mut got = 0;
    let error = loop {
        match compositor.get_synced_frames().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("expected the error"),
            Err(e) => break e.to_string(),
        }
    };
    assert_eq!(got, 2);
    assert!(error.contains("source 'a'") && error.contains("camera unplugged"), "{error}");
    assert!(compositor.get_synced_frames().await.unwrap().is_none());
}

#[tokio::test]
async fn best_effort_goes_on_without_a_failed_or_slow_source() {
    let mut compositor = MultiStreamCompositor::new(CompositorOptions {
        sync_tolerance_ns: 500_000,
        sync_mode: SyncMode::BestEffort,
        // Generous: only a source that has not delivered yet is waited for,
        // and a loaded machine must not turn a late frame into a lost set.
        max_wait: Duration::from_secs(1),
        ..CompositorOptions::default()
    });
    let mut failing = Scripted::new(times(0, 3, &[]), 1);
    failing.fail_at_end = true;
    compositor.add_synced_source("a", Box::new(failing)).unwrap();
    compositor.add_synced_source("b", Box::new(Scripted::new(times(100_000, 8, &[]), 1))).unwrap();
    compositor.add_synced_source("c", Box::new(Scripted::new(times(300_000, 8, &[5]), 2))).unwrap();
    let mut sizes = Vec::new();
    while let Some(set) = compositor.get_synced_frames().await.unwrap() {
        sizes.push(set.len());
    }
    // 3 complete sets, then b and c alone (c misses frame 5, so that one is b alone: dropped).
    assert_eq!(sizes, vec![3, 3, 3, 2, 2, 2, 2]);
    let stats = compositor.stats();
    assert_eq!(stats.partial_sets, 4);
    assert_eq!(stats.sources[1].unmatched, 1);
}

#[tokio::test]
async fn synced_sources_are_matched_on_ptp_time() {
    // Two "machines" whose monotonic clocks differ by 7 ms, each with a PTP
    // clock that knows it: capture times alone would never match, PTP times do.
    let clock_a = ManualClock::new(0);
    let clock_b = ManualClock::new(0);
    clock_b.set_monotonic_offset(7_000_000);
    let mut compositor =
        MultiStreamCompositor::new(CompositorOptions { sync_tolerance_ns: 500_000, ..CompositorOptions::default() });
    let a = SyncedSource::new(Box::new(Scripted::new(times(7_000_000, 5, &[]), 1)), clock_a);
    let b = SyncedSource::new(Box::new(Scripted::new(times(100_000, 5, &[]), 1)), clock_b);
    compositor.add_synced_source("a", Box::new(a)).unwrap();
    compositor.add_synced_source("b", Box::new(b)).unwrap();
    let mut sets = 0;
    while let Some(set) = compositor.get_synced_frames().await.unwrap() {
        assert_eq!(set.skew_ns, 100_000);
        assert!(set.frames.iter().all(|f| f.frame.timing.ptp_time_ns.is_some()));
        sets += 1;
    }
    assert_eq!(sets, 5);
}
