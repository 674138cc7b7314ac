//! A token-bucket pacer: spreads a frame's packets over the frame interval.
//!
//! A 1080p raw frame is about 3,500 packets; sent back to back they reach
//! the receiver's socket faster than it drains, and the kernel drops what
//! does not fit its receive buffer. The pacer lets bytes out at `rate` with
//! bursts of at most `burst` bytes. Sans-IO: it is told the time and says
//! when the next packet may go; the caller sleeps.
//!
//! ```
//! use streamkit_rtp::pacer::Pacer;
//! let mut pacer = Pacer::new(8_000_000, 2_000); // 1 MB/s, 2 kB bursts
//! assert_eq!(pacer.ready_at(0, 1_500), 0);      // the bucket starts full
//! pacer.consume(0, 1_500);
//! assert_eq!(pacer.ready_at(0, 1_500), 1_000_000); // 1 ms later there are 1,500 bytes again
//! ```

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Pacer {
    bytes_per_ns: f64,
    burst: f64,
    tokens: f64,
    last_ns: Option<u64>,
}

impl Pacer {
    /// `rate_bps` in bits per second; `burst_bytes` the bucket size.
    pub fn new(rate_bps: u64, burst_bytes: usize) -> Pacer {
        let burst = burst_bytes.max(1) as f64;
        Pacer { bytes_per_ns: rate_bps.max(1) as f64 / 8e9, burst, tokens: burst, last_ns: None }
    }

    /// Changes the rate (bits per second) and bucket size, keeping the tokens.
    pub fn set_rate(&mut self, rate_bps: u64, burst_bytes: usize) {
        self.bytes_per_ns = rate_bps.max(1) as f64 / 8e9;
        self.burst = burst_bytes.max(1) as f64;
        self.tokens = self.tokens.min(self.burst);
    }

    /// The rate in bits per second.
    pub fn rate_bps(&self) -> u64 {
        (self.bytes_per_ns * 8e9) as u64
    }

    fn refill(&mut self, now_ns: u64) {
        if let Some(last) = self.last_ns {
            let elapsed = now_ns.saturating_sub(last) as f64;
            self.tokens = (self.tokens + elapsed * self.bytes_per_ns).min(self.burst);
        }
        self.last_ns = Some(now_ns.max(self.last_ns.unwrap_or(0)));
    }

    /// When a packet of `bytes` may be sent (`now_ns` if at once). A packet
    /// larger than the bucket waits for a full bucket, then goes.
    pub fn ready_at(&mut self, now_ns: u64, bytes: usize) -> u64 {
        self.refill(now_ns);
        let needed = (bytes as f64).min(self.burst);
        if self.tokens >= needed {
            now_ns
        } else {
            now_ns + ((needed - self.tokens) / self.bytes_per_ns).ceil() as u64
        }
    }

    /// Records that `bytes` were sent at `now_ns`.
    pub fn consume(&mut self, now_ns: u64, bytes: usize) {
        self.refill(now_ns);
        self.tokens -= bytes as f64;
    }
}

/// The pacing for one frame: a rate that sends `frame_bytes` in `spread`
/// of the frame interval (never below `min_rate_bps`), and a bucket of a
/// quarter millisecond at that rate (at least 4 packets, at most 64 KiB) —
/// small next to a default 208 KiB socket receive buffer, large next to
/// the ~60 µs a sleeping thread oversleeps.
pub fn frame_rate_for(frame_bytes: usize, frame_ns: u64, spread: f64, min_rate_bps: u64, mtu: usize) -> (u64, usize) {
    let window_ns = (frame_ns as f64 * spread).max(1.0);
    let rate = ((frame_bytes as f64 * 8e9 / window_ns) as u64).max(min_rate_bps).max(8_000);
    let burst = ((rate as f64 / 8.0 * 250e-6) as usize).clamp(4 * mtu, 64 * 1024.max(4 * mtu));
    (rate, burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_at_the_rate_after_the_first_burst() {
        // 1,000-byte packets at 8 Mb/s (1 MB/s = one packet per ms), bucket of 3 packets.
        let mut pacer = Pacer::new(8_000_000, 3_000);
        let mut now = 0;
        let mut times = Vec::new();
        for _ in 0..10 {
            now = pacer.ready_at(now, 1_000);
            pacer.consume(now, 1_000);
            times.push(now);
        }
        assert_eq!(&times[..3], &[0, 0, 0]);
        for pair in times[3..].windows(2) {
            assert_eq!(pair[1] - pair[0], 1_000_000);
        }
    }

    #[test]
    fn idle_time_refills_no_more_than_the_bucket() {
        let mut pacer = Pacer::new(8_000_000, 2_000);
        pacer.consume(0, 2_000);
        assert_eq!(pacer.ready_at(10_000_000_000, 2_000), 10_000_000_000);
        pacer.consume(10_000_000_000, 2_000);
        assert!(pacer.ready_at(10_000_000_000, 1_000) > 10_000_000_000);
    }

    #[test]
    fn frame_rate_spreads_a_frame_over_most_of_its_interval() {
        // A 1080p UYVY frame at 30 fps over 80 % of 33.3 ms.
        let (rate, burst) = frame_rate_for(4_147_200, 33_333_333, 0.8, 0, 1200);
        assert!((1_200_000_000..1_300_000_000).contains(&rate), "{rate}");
        assert!((4_800..=65_536).contains(&burst), "{burst}");
        // A small H.264 frame keeps the floor rate.
        assert_eq!(frame_rate_for(1_000, 33_333_333, 0.8, 20_000_000, 1200).0, 20_000_000);
    }
}
