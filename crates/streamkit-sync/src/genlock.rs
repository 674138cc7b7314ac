//! Genlock-style pacing: frame instants aligned to the clock's epoch, as
//! SMPTE ST 2059-1 aligns signals to the PTP epoch. Frame `k` is due at
//! `k × frame_period` since the epoch (exactly, for fractional rates such
//! as 30000/1001), so independent processes on different machines sharing a
//! PTP clock produce frames at the same instants without talking to each
//! other.

use std::sync::Arc;
use std::time::Duration;

use streamkit_core::Fps;

use crate::clock::Clock;

/// One aligned frame instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FrameInstant {
    /// Frames since the epoch.
    pub index: u64,
    /// The instant on the pacer's clock (ns since its epoch).
    pub time_ns: u64,
}

/// Paces frames on the grid `epoch + k × period` of a clock.
pub struct GenlockPacer {
    clock: Arc<dyn Clock>,
    fps: Fps,
    epoch_ns: u64,
    last: Option<u64>,
    spin_ns: u64,
}

impl GenlockPacer {
    /// A pacer on `clock` at `fps`, aligned to the clock's epoch (the PTP
    /// epoch for PTP time).
    pub fn new(clock: Arc<dyn Clock>, fps: Fps) -> GenlockPacer {
        GenlockPacer { clock, fps, epoch_ns: 0, last: None, spin_ns: 0 }
    }

    /// Aligns to another origin (ns on the clock) instead of its epoch.
    pub fn with_epoch(mut self, epoch_ns: u64) -> GenlockPacer {
        self.epoch_ns = epoch_ns;
        self
    }

    /// After sleeping (tokio's timer has 1 ms resolution), spin for up to
    /// this long so [`GenlockPacer::wait_next`] returns within microseconds
    /// of the instant. 0 (the default) never spins.
    pub fn with_spin(mut self, spin: Duration) -> GenlockPacer {
        self.spin_ns = spin.as_nanos() as u64;
        self
    }

    pub fn fps(&self) -> Fps {
        self.fps
    }

    /// The instant of frame `index`.
    pub fn instant_of(&self, index: u64) -> u64 {
        self.epoch_ns.saturating_add(self.fps.frame_time_ns(index))
    }

    /// The first frame index whose instant is at or after `time_ns`.
    pub fn index_at_or_after(&self, time_ns: u64) -> u64 {
        let since = time_ns.saturating_sub(self.epoch_ns) as u128;
        // frame_time_ns(k) = floor(k·den·1e9 / num) ≥ since  ⇔  k ≥ since·num / (den·1e9)
        let (num, den) = (self.fps.num.max(1) as u128, self.fps.den.max(1) as u128 * 1_000_000_000);
        (since * num).div_ceil(den) as u64
    }

    /// The next aligned instant at or after now, strictly after the last one
    /// this pacer returned (so frames are never repeated; after a stall,
    /// missed instants are skipped, not replayed).
    pub fn next_frame_instant(&mut self) -> FrameInstant {
        let mut index = self.index_at_or_after(self.clock.now_ns());
        if let Some(last) = self.last {
            index = index.max(last + 1);
        }
        self.last = Some(index);
        FrameInstant { index, time_ns: self.instant_of(index) }
    }

    /// Waits until the clock reaches the next aligned instant and returns it.
    pub async fn wait_next(&mut self) -> FrameInstant {
        let next = self.next_frame_instant();
        loop {
            let now = self.clock.now_ns();
            if now >= next.time_ns {
                return next;
            }
            let left = next.time_ns - now;
            if left <= self.spin_ns {
                tokio::task::yield_now().await;
                continue;
            }
            // Sleep in pieces: the clock may run at a slightly different rate
            // from tokio's (or be stepped), so look again before the end.
            let nap = (left - self.spin_ns).min(100_000_000);
            tokio::time::sleep(Duration::from_nanos(nap)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn instants_are_on_the_epoch_grid() {
        let clock = ManualClock::new(1_000_000_000_000 + 1);
        let mut pacer = GenlockPacer::new(clock.clone(), Fps::new(30000, 1001));
        let first = pacer.next_frame_instant();
        // 1000 s at 29.97 fps: frame 29970.03 → 29971 is the first at or after.
        assert_eq!(first.index, 29971);
        assert_eq!(first.time_ns, Fps::new(30000, 1001).frame_time_ns(29971));
        assert!(first.time_ns >= clock.now_ns());
        let second = pacer.next_frame_instant();
        assert_eq!(second.index, first.index + 1, "never the same instant twice");
    }

    #[test]
    fn exact_instants_are_due_at_themselves() {
        let clock = ManualClock::new(2_000_000_000);
        let mut pacer = GenlockPacer::new(clock, Fps::new(25, 1));
        assert_eq!(pacer.next_frame_instant(), FrameInstant { index: 50, time_ns: 2_000_000_000 });
    }

    #[test]
    fn two_pacers_started_apart_share_every_instant() {
        let clock = ManualClock::new(1_700_000_000_123_456_789);
        let fps = Fps::new(60000, 1001);
        let mut a = GenlockPacer::new(clock.clone(), fps);
        let mut a_instants = Vec::new();
        for _ in 0..100 {
            let i = a.next_frame_instant();
            a_instants.push(i);
            clock.set(i.time_ns + 3_000_000); // run a little late each frame
        }
        // B starts 0.7 s after A (on the same clock, e.g. another machine).
        clock.set(a_instants[0].time_ns + 700_000_000);
        let mut b = GenlockPacer::new(clock.clone(), fps);
        let mut b_instants = Vec::new();
        for _ in 0..50 {
            let i = b.next_frame_instant();
            b_instants.push(i);
            clock.set(i.time_ns + 1);
        }
        let mut shared = 0;
        for i in &b_instants {
            if let Some(j) = a_instants.iter().find(|j| j.index == i.index) {
                assert_eq!(i.time_ns, j.time_ns, "frame {} differs", i.index);
                shared += 1;
            }
        }
        assert!(shared >= 40, "{shared} shared instants");
        assert_eq!(b_instants[0].index, fps.frame_time_base().from_ns(700_000_000) as u64 + a_instants[0].index);
    }

    #[tokio::test]
    async fn wait_next_returns_on_the_grid_never_early() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::MonotonicClock);
        let mut pacer = GenlockPacer::new(clock.clone(), Fps::new(100, 1)).with_spin(Duration::from_micros(500));
        let mut previous = pacer.wait_next().await;
        for _ in 0..5 {
            let next = pacer.wait_next().await;
            // Never early; on the grid; a stall (a loaded machine) skips
            // instants rather than replaying them. Lateness is not asserted.
            assert!(clock.now_ns() >= next.time_ns);
            assert!(next.index > previous.index);
            assert_eq!(next.time_ns - previous.time_ns, (next.index - previous.index) * 10_000_000);
            previous = next;
        }
    }
}
