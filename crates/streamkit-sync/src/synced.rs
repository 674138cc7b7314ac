//! [`SyncedSource`]: any source, its frames stamped with a shared clock
//! (design §1, `SyncedSource`).

use std::sync::Arc;

use async_trait::async_trait;
use streamkit_core::time::monotonic_ns;
use streamkit_core::{Frame, Result, Source, SourceInfo};

use crate::clock::Clock;

/// Wraps a source and stamps each frame's [`streamkit_core::Timing`]:
///
/// * `ptp_time_ns` — the frame's capture time (`capture_time_ns`, on the
///   monotonic clock) mapped through the clock, so a frame read late is
///   still stamped for the instant it was captured. Left `None` while the
///   clock cannot tell the time (a PTP client before its first measurement).
/// * `sync_source` — which clock, e.g. `ptp:0:0aac52.fffe.b27ff1`.
/// * `drift_ns` — how far the clock has moved against the local monotonic
///   clock since this source's first stamped frame: `(ptp − ptp₀) −
///   (capture − capture₀)`. It grows by the frequency error (20 ppm is
///   20 µs per second) and jumps when the reference is stepped.
///
/// A frame without a capture time (0) is stamped with the time it arrived.
pub struct SyncedSource {
    inner: Box<dyn Source>,
    clock: Arc<dyn Clock>,
    first: Option<(u64, u64)>,
    /// The clock's `sync_source` name, shared by the frames, and when it was
    /// last asked for (the name changes with the master; asking a system
    /// clock costs a syscall, so not for every frame).
    sync_source: Option<(String, Arc<str>, u64)>,
}

impl SyncedSource {
    pub fn new(inner: Box<dyn Source>, clock: Arc<dyn Clock>) -> SyncedSource {
        SyncedSource { inner, clock, first: None, sync_source: None }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Stamps one frame (what [`Source::next_frame`] does to each).
    pub fn stamp(&mut self, mut frame: Frame) -> Frame {
        let timing = &mut frame.timing;
        if timing.capture_time_ns == 0 {
            timing.capture_time_ns = monotonic_ns();
        }
        let Some(sync_time) = self.clock.at_monotonic(timing.capture_time_ns) else {
            timing.ptp_time_ns = None;
            return frame;
        };
        timing.ptp_time_ns = Some(sync_time);
        let (mono0, sync0) = *self.first.get_or_insert((timing.capture_time_ns, sync_time));
        let drift = (sync_time as i128 - sync0 as i128) - (timing.capture_time_ns as i128 - mono0 as i128);
        timing.drift_ns = drift.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        // One shared name per change, looked up at most every 100 ms.
        let now = timing.capture_time_ns;
        let fresh = self.sync_source.as_ref().is_some_and(|(_, _, at)| now.abs_diff(*at) < 100_000_000);
        if !fresh {
            let name = self.clock.status().sync_source;
            match &mut self.sync_source {
                Some((cached, _, at)) if *cached == name => *at = now,
                _ => self.sync_source = Some((name.clone(), Arc::from(name.as_str()), now)),
            }
        }
        timing.sync_source = self.sync_source.as_ref().map(|(_, shared, _)| shared.clone());
        frame
    }
}

#[async_trait]
impl Source for SyncedSource {
    fn info(&self) -> SourceInfo {
        let mut info = self.inner.info();
        info.description = format!("{} (synced to {})", info.description, self.clock.name());
        info
    }

    async fn next_frame(&mut self) -> Result<Option<Frame>> {
        let frame = self.inner.next_frame().await?;
        Ok(frame.map(|f| self.stamp(f)))
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SimulatedClock};
    use streamkit_core::{PixelFormat, Timing};

    /// Frames captured one second apart, the first at `base + 1 s`.
    struct Frames(u64, u64);

    #[async_trait]
    impl Source for Frames {
        fn info(&self) -> SourceInfo {
            SourceInfo::new("frames")
        }

        async fn next_frame(&mut self) -> Result<Option<Frame>> {
            self.0 += 1;
            let frame = Frame::new(PixelFormat::Gray8, 2, 2)?;
            let timing =
                Timing { capture_time_ns: self.1 + self.0 * 1_000_000_000, frame_number: self.0, ..Timing::default() };
            Ok(Some(frame.with_timing(timing)))
        }
    }

    #[tokio::test]
    async fn stamps_capture_time_through_the_clock() {
        let clock = ManualClock::new(0);
        clock.set_monotonic_offset(5_000);
        let mut source = SyncedSource::new(Box::new(Frames(0, 0)), clock);
        let f = source.next_frame().await.unwrap().unwrap();
        assert_eq!(f.timing.ptp_time_ns, Some(1_000_005_000));
        assert_eq!(f.timing.sync_source.as_deref(), Some("manual"));
        assert_eq!(f.timing.drift_ns, 0);
        assert!(source.info().description.contains("synced to manual"));
    }

    #[tokio::test]
    async fn drift_accumulates_the_frequency_error() {
        let clock = Arc::new(SimulatedClock::new("sim", 0, 50.0)); // 50 ppm fast
                                                                   // Captures after the clock started: long before it, the drifted time
                                                                   // would be negative (clamped to 0) once the machine has been up ~6 h.
        let mut source = SyncedSource::new(Box::new(Frames(0, monotonic_ns())), clock);
        let first = source.next_frame().await.unwrap().unwrap();
        let second = source.next_frame().await.unwrap().unwrap();
        assert_eq!(first.timing.drift_ns, 0);
        // One second of capture time later: 50 µs of drift.
        assert!((second.timing.drift_ns - 50_000).abs() <= 1, "{}", second.timing.drift_ns);
        // The shared name is one allocation.
        assert!(Arc::ptr_eq(first.timing.sync_source.as_ref().unwrap(), second.timing.sync_source.as_ref().unwrap()));
    }
}
