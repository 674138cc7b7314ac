//! The three kinds of time a frame carries, kept apart as str0m does:
//!
//! * **media time** — [`Timing::pts`] in units of [`Timing::time_base`], from the source;
//! * **capture time** — [`Timing::capture_time_ns`], `CLOCK_MONOTONIC` when the
//!   frame was produced (comparable across processes on one machine);
//! * **synchronised wall time** — [`Timing::ptp_time_ns`], set only when a
//!   shared clock (PTP) stamped the frame.

use std::fmt;
use std::sync::Arc;

/// A rational number of seconds per tick (e.g. 1/30 or 1/90000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeBase {
    pub num: u32,
    pub den: u32,
}

impl TimeBase {
    pub const NANOS: TimeBase = TimeBase { num: 1, den: 1_000_000_000 };
    pub const RTP_VIDEO: TimeBase = TimeBase { num: 1, den: 90_000 };

    pub const fn new(num: u32, den: u32) -> TimeBase {
        TimeBase { num, den }
    }

    /// Converts a tick count to nanoseconds.
    pub fn to_ns(self, ticks: i64) -> i64 {
        (ticks as i128 * self.num as i128 * 1_000_000_000 / self.den.max(1) as i128) as i64
    }

    /// Converts nanoseconds to the nearest tick.
    pub fn from_ns(self, ns: i64) -> i64 {
        let denom = self.num.max(1) as i128 * 1_000_000_000;
        let num = ns as i128 * self.den as i128;
        ((num + denom / 2).div_euclid(denom)) as i64
    }
}

impl Default for TimeBase {
    fn default() -> Self {
        TimeBase::NANOS
    }
}

impl fmt::Display for TimeBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// A frame rate as a fraction (30000/1001 for NTSC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub const fn new(num: u32, den: u32) -> Fps {
        Fps { num, den }
    }

    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den.max(1) as f64
    }

    /// Duration of one frame in nanoseconds.
    pub fn frame_ns(self) -> u64 {
        (self.den as u64 * 1_000_000_000) / self.num.max(1) as u64
    }

    /// Nanoseconds from the start to frame `n`, exact for fractional rates.
    pub fn frame_time_ns(self, n: u64) -> u64 {
        (n as u128 * self.den as u128 * 1_000_000_000 / self.num.max(1) as u128) as u64
    }

    /// The time base whose tick is one frame.
    pub fn frame_time_base(self) -> TimeBase {
        TimeBase::new(self.den, self.num)
    }

    /// Parses `30`, `29.97`, or `30000/1001`.
    pub fn parse(text: &str) -> Option<Fps> {
        let fps = if let Some((n, d)) = text.split_once('/') {
            Fps::new(n.trim().parse().ok()?, d.trim().parse().ok()?)
        } else if let Ok(n) = text.parse::<u32>() {
            Fps::new(n, 1)
        } else {
            let f: f64 = text.parse().ok()?;
            if (f - 29.97).abs() < 0.01 {
                Fps::new(30000, 1001)
            } else if (f - 59.94).abs() < 0.01 {
                Fps::new(60000, 1001)
            } else {
                Fps::new((f * 1000.0).round() as u32, 1000)
            }
        };
        (fps.num > 0 && fps.den > 0 && fps.as_f64() <= 1000.0).then_some(fps)
    }
}

impl fmt::Display for Fps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Timing carried by every frame (the design's `TimestampedFrame` fields).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timing {
    /// Presentation timestamp in `time_base` units.
    pub pts: i64,
    pub time_base: TimeBase,
    /// `CLOCK_MONOTONIC` nanoseconds when the frame was captured or generated.
    pub capture_time_ns: u64,
    /// Time from a synchronised clock (PTP), when one stamped the frame.
    pub ptp_time_ns: Option<u64>,
    /// Sequential counter from the source, starting at 0.
    pub frame_number: u64,
    /// Which clock `ptp_time_ns` came from, e.g. `ptp:0:001122.fffe.334455`.
    pub sync_source: Option<Arc<str>>,
    /// Measured drift from the reference clock, in nanoseconds.
    pub drift_ns: i64,
}

impl Timing {
    /// Timing for frame `n` of a source running at `fps`, captured now.
    pub fn for_frame(n: u64, fps: Fps) -> Timing {
        Timing {
            pts: n as i64,
            time_base: fps.frame_time_base(),
            capture_time_ns: monotonic_ns(),
            frame_number: n,
            ..Timing::default()
        }
    }

    /// The presentation time in nanoseconds.
    pub fn pts_ns(&self) -> i64 {
        self.time_base.to_ns(self.pts)
    }

    /// The best time for matching frames across sources: PTP if present,
    /// else capture time.
    pub fn sync_time_ns(&self) -> u64 {
        self.ptp_time_ns.unwrap_or(self.capture_time_ns)
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` in nanoseconds: the capture clock, shared by every
/// process on the machine.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_parsing() {
        assert_eq!(Fps::parse("30"), Some(Fps::new(30, 1)));
        assert_eq!(Fps::parse("30000/1001"), Some(Fps::new(30000, 1001)));
        assert_eq!(Fps::parse("29.97"), Some(Fps::new(30000, 1001)));
        assert_eq!(Fps::parse("0"), None);
        assert_eq!(Fps::parse("abc"), None);
        assert_eq!(Fps::new(30, 1).frame_ns(), 33_333_333);
        assert_eq!(Fps::new(30000, 1001).frame_time_ns(30000), 1_001_000_000_000);
    }

    #[test]
    fn time_base_round_trip() {
        let tb = TimeBase::RTP_VIDEO;
        assert_eq!(tb.to_ns(90_000), 1_000_000_000);
        assert_eq!(tb.from_ns(1_000_000_000), 90_000);
        assert_eq!(Fps::new(30, 1).frame_time_base().to_ns(30), 1_000_000_000);
    }

    #[test]
    fn monotonic_advances() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
        assert!(realtime_ns() > 1_600_000_000_000_000_000);
    }
}
