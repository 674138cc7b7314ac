//! Clocks as one abstraction. Sources stamp frames from whichever the user
//! picks: the local monotonic clock, the system clock (realtime or TAI,
//! perhaps disciplined by ptp4l + phc2sys or NTP), a PTP hardware clock
//! (`/dev/ptpN`), our own in-process PTP client ([`crate::ptp::PtpClock`]),
//! or, in tests and simulations, a [`ManualClock`] or [`SimulatedClock`].
//!
//! Every clock can say what it read at a given `CLOCK_MONOTONIC` instant
//! ([`Clock::at_monotonic`]): frames carry their capture time on the
//! monotonic clock, and [`crate::SyncedSource`] maps it through the chosen
//! clock — the frame is stamped for the instant it was captured, not for
//! when it was read.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use streamkit_core::time::monotonic_ns;
use streamkit_core::{Error, Result};

/// What a clock knows about its own quality.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClockStatus {
    /// Synchronised to its reference (always true for a free-running
    /// reference like the monotonic clock, which is its own reference).
    pub locked: bool,
    /// A word for humans: `locked`, `unsynchronised`, `slave`, `listening`…
    pub state: String,
    /// What frames stamped from this clock name as their `sync_source`,
    /// e.g. `ptp:0:0aac52.fffe.b27ff1` or `realtime`.
    pub sync_source: String,
    /// Measured offset from the reference (ns), when the clock knows it.
    pub offset_ns: Option<i64>,
    /// Rate relative to the local monotonic clock / the reference (ppb).
    pub frequency_ppb: Option<f64>,
    /// Estimated error (ns).
    pub estimated_error_ns: Option<f64>,
}

/// A source of time in nanoseconds.
pub trait Clock: Send + Sync {
    /// Now, in this clock's timescale (ns since its epoch).
    fn now_ns(&self) -> u64;

    /// A short name: `monotonic`, `realtime`, `tai`, `phc:/dev/ptp0`, `ptp:0`.
    fn name(&self) -> String;

    fn status(&self) -> ClockStatus;

    /// What this clock read (or will read) at the `CLOCK_MONOTONIC` instant
    /// `monotonic_ns`; `None` when it cannot tell yet (a PTP client before
    /// its first measurement). The default reads both clocks back to back,
    /// which is exact for clocks that run at the monotonic rate.
    fn at_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        let (mono, own) = sample_pair(|| self.now_ns());
        Some((own as i128 - (mono as i128 - monotonic_ns as i128)).max(0) as u64)
    }
}

impl fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.name())
    }
}

/// Reads `CLOCK_MONOTONIC` around `read` (best of 3) and returns the pair
/// (monotonic midpoint, the other clock).
pub fn sample_pair(mut read: impl FnMut() -> u64) -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..3 {
        let a = monotonic_ns();
        let value = read();
        let b = monotonic_ns();
        if b - a < best.0 {
            best = (b - a, a + (b - a) / 2, value);
        }
    }
    (best.1, best.2)
}

fn clock_gettime_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC`: the capture clock. Its own reference, never steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }

    fn name(&self) -> String {
        "monotonic".into()
    }

    fn status(&self) -> ClockStatus {
        ClockStatus {
            locked: true,
            state: "free-running".into(),
            sync_source: "monotonic".into(),
            frequency_ppb: Some(0.0),
            ..ClockStatus::default()
        }
    }

    fn at_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        Some(monotonic_ns)
    }
}

/// Which system clock a [`SystemClock`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemTimescale {
    /// `CLOCK_REALTIME` (UTC).
    Realtime,
    /// `CLOCK_TAI`: realtime plus the kernel's TAI offset (which is 0 unless
    /// a daemon such as ptp4l/phc2sys or chrony set it).
    Tai,
}

/// The system clock, as disciplined by whatever runs on the machine (ptp4l +
/// phc2sys, chrony, ntpd). Its status comes from the kernel (`adjtimex`):
/// synchronised or not, estimated error, frequency correction.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    timescale: SystemTimescale,
}

impl SystemClock {
    pub fn realtime() -> SystemClock {
        SystemClock { timescale: SystemTimescale::Realtime }
    }

    pub fn tai() -> SystemClock {
        SystemClock { timescale: SystemTimescale::Tai }
    }

    fn clock_id(&self) -> libc::clockid_t {
        match self.timescale {
            SystemTimescale::Realtime => libc::CLOCK_REALTIME,
            SystemTimescale::Tai => libc::CLOCK_TAI,
        }
    }
}

/// The kernel's view of the system clock's discipline (read-only `adjtimex`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelTimeStatus {
    pub synchronised: bool,
    pub estimated_error_us: i64,
    pub frequency_ppb: f64,
    pub tai_offset_s: i32,
}

/// Reads the kernel's time status without changing anything.
pub fn kernel_time_status() -> Option<KernelTimeStatus> {
    // SAFETY: an all-zero timex with modes = 0 only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid timex.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(KernelTimeStatus {
        synchronised: state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0,
        estimated_error_us: tx.esterror as i64,
        frequency_ppb: tx.freq as f64 * 1000.0 / 65536.0,
        tai_offset_s: tx.tai,
    })
}

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        clock_gettime_ns(self.clock_id()).unwrap_or_default()
    }

    fn name(&self) -> String {
        match self.timescale {
            SystemTimescale::Realtime => "realtime".into(),
            SystemTimescale::Tai => "tai".into(),
        }
    }

    fn status(&self) -> ClockStatus {
        let kernel = kernel_time_status();
        let locked = kernel.is_some_and(|k| k.synchronised);
        let mut state = if locked { "synchronised".to_string() } else { "unsynchronised".to_string() };
        if self.timescale == SystemTimescale::Tai && kernel.is_some_and(|k| k.tai_offset_s == 0) {
            state.push_str(" (kernel TAI offset unset: TAI reads as UTC)");
        }
        ClockStatus {
            locked,
            state,
            sync_source: self.name(),
            offset_ns: None,
            frequency_ppb: kernel.map(|k| k.frequency_ppb),
            estimated_error_ns: kernel.filter(|k| k.synchronised).map(|k| k.estimated_error_us as f64 * 1000.0),
        }
    }
}

/// A PTP hardware clock (`/dev/ptpN`), read with `clock_gettime` on the
/// clock id derived from its file descriptor. When ptp4l disciplines the
/// PHC, this is the network's PTP time (usually TAI).
#[derive(Debug)]
pub struct PhcClock {
    path: String,
    fd: OwnedFd,
}

impl PhcClock {
    /// Opens `/dev/ptpN`.
    pub fn open(path: &str) -> Result<PhcClock> {
        let c_path = CString::new(path).map_err(|_| Error::invalid(format!("bad PHC path '{path}'")))?;
        // SAFETY: a valid C string; the fd is owned below.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io(format!("opening PTP hardware clock {path}"), std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let clock = PhcClock { path: path.to_string(), fd };
        if clock_gettime_ns(clock.clock_id()).is_none() {
            return Err(Error::io(format!("{path} is not a PTP clock"), std::io::Error::last_os_error()));
        }
        Ok(clock)
    }

    /// The PHC of a network interface (from `ETHTOOL_GET_TS_INFO`).
    pub fn for_interface(iface: &str) -> Result<PhcClock> {
        let info = crate::ptp::net::timestamping_info(iface)?;
        match info.phc_index {
            Some(index) => PhcClock::open(&format!("/dev/ptp{index}")),
            None => Err(Error::Unsupported(format!("interface {iface} has no PTP hardware clock"))),
        }
    }

    /// `FD_TO_CLOCKID`: the dynamic clock id of an open PHC.
    pub fn clock_id(&self) -> libc::clockid_t {
        ((!(self.fd.as_raw_fd() as libc::clockid_t)) << 3) | 3
    }
}

impl Clock for PhcClock {
    fn now_ns(&self) -> u64 {
        clock_gettime_ns(self.clock_id()).unwrap_or_default()
    }

    fn name(&self) -> String {
        format!("phc:{}", self.path)
    }

    fn status(&self) -> ClockStatus {
        ClockStatus {
            locked: true,
            state: "hardware clock (discipline unknown to us)".into(),
            sync_source: self.name(),
            ..ClockStatus::default()
        }
    }
}

/// A clock that only moves when told: deterministic tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
    /// Its time minus the monotonic time, for [`Clock::at_monotonic`].
    offset: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ns: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: AtomicU64::new(now_ns), offset: AtomicI64::new(0) })
    }

    pub fn set(&self, now_ns: u64) {
        self.now.store(now_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }

    /// `at_monotonic(m)` returns `m + offset`.
    pub fn set_monotonic_offset(&self, offset_ns: i64) {
        self.offset.store(offset_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn name(&self) -> String {
        "manual".into()
    }

    fn status(&self) -> ClockStatus {
        ClockStatus { locked: true, state: "manual".into(), sync_source: "manual".into(), ..ClockStatus::default() }
    }

    fn at_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        Some((monotonic_ns as i128 + self.offset.load(Ordering::SeqCst) as i128).max(0) as u64)
    }
}

/// The monotonic clock seen through an error: an offset and a rate error in
/// ppm — a camera's free-running oscillator, or another machine's
/// PTP-disciplined clock, in simulations.
#[derive(Debug)]
pub struct SimulatedClock {
    name: String,
    offset_ns: i64,
    drift_ppm: f64,
    start_mono: u64,
}

impl SimulatedClock {
    pub fn new(name: impl Into<String>, offset_ns: i64, drift_ppm: f64) -> SimulatedClock {
        SimulatedClock { name: name.into(), offset_ns, drift_ppm, start_mono: monotonic_ns() }
    }
}

impl Clock for SimulatedClock {
    fn now_ns(&self) -> u64 {
        self.at_monotonic(monotonic_ns()).unwrap_or_default()
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn status(&self) -> ClockStatus {
        ClockStatus {
            locked: true,
            state: "simulated".into(),
            sync_source: self.name.clone(),
            offset_ns: Some(self.offset_ns),
            frequency_ppb: Some(self.drift_ppm * 1000.0),
            ..ClockStatus::default()
        }
    }

    fn at_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        let elapsed = monotonic_ns as i128 - self.start_mono as i128;
        let drift = (elapsed as f64 * self.drift_ppm * 1e-6) as i128;
        Some((monotonic_ns as i128 + self.offset_ns as i128 + drift).max(0) as u64)
    }
}

/// A clock named by a spec, as the CLI's `--clock` takes it:
/// `monotonic`, `realtime`, `tai`, `phc:/dev/ptp0`, `phc:IFACE`, or
/// `ptp[:IFACE][?domain=N]` (starts an in-process PTP client; needs a tokio
/// runtime).
pub async fn clock_from_spec(spec: &str) -> Result<Arc<dyn Clock>> {
    let uri = streamkit_core::uri::Uri::parse(spec)?;
    let name = if uri.scheme.is_empty() { uri.body.as_str() } else { uri.scheme.as_str() };
    match name {
        "monotonic" => Ok(Arc::new(MonotonicClock)),
        "realtime" | "system" | "utc" => Ok(Arc::new(SystemClock::realtime())),
        "tai" => Ok(Arc::new(SystemClock::tai())),
        "phc" => {
            let body = uri.body.as_str();
            let clock = if body.starts_with('/') { PhcClock::open(body)? } else { PhcClock::for_interface(body)? };
            Ok(Arc::new(clock))
        }
        "ptp" => {
            let mut options = uri.options();
            let domain: Option<u8> = options.parse("domain", "a PTP domain 0-255")?;
            options.finish()?;
            let config = crate::ptp::PtpClientConfig {
                interface: (!uri.body.is_empty()).then(|| uri.body.clone()),
                domain: domain.unwrap_or(0),
                ..Default::default()
            };
            let client = crate::ptp::PtpClient::start(config).await?;
            Ok(Arc::new(client.into_clock()))
        }
        other => {
            let known = ["monotonic", "realtime", "tai", "phc", "ptp"];
            let hint = streamkit_core::uri::closest(other, known)
                .map(|k| format!("; did you mean '{k}'?"))
                .unwrap_or_default();
            Err(Error::uri(spec, format!("unknown clock '{other}'; known: {}{hint}", known.join(", "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_maps_identically() {
        assert_eq!(MonotonicClock.at_monotonic(123), Some(123));
        assert!(MonotonicClock.status().locked);
    }

    #[test]
    fn realtime_maps_through_the_current_offset() {
        let clock = SystemClock::realtime();
        let mono = monotonic_ns();
        let mapped = clock.at_monotonic(mono - 1_000_000).unwrap();
        let now = clock.now_ns();
        let gap = now as i128 - mapped as i128;
        assert!((1_000_000..1_000_000 + 50_000_000).contains(&gap), "gap {gap}");
        assert_eq!(clock.name(), "realtime");
        let _ = clock.status();
        assert!(SystemClock::tai().now_ns() >= now);
    }

    #[test]
    fn simulated_clock_drifts() {
        let clock = SimulatedClock::new("cam", 1_000, 100.0);
        let start = clock.start_mono;
        assert_eq!(clock.at_monotonic(start), Some(start + 1_000));
        // 100 ppm over one second: 100 µs.
        assert_eq!(clock.at_monotonic(start + 1_000_000_000), Some(start + 1_000_000_000 + 1_000 + 100_000));
    }

    #[test]
    fn manual_clock() {
        let clock = ManualClock::new(5);
        clock.advance(10);
        assert_eq!(clock.now_ns(), 15);
        clock.set_monotonic_offset(-3);
        assert_eq!(clock.at_monotonic(10), Some(7));
    }

    #[test]
    fn phc_errors_are_clear() {
        let e = PhcClock::open("/dev/ptp-does-not-exist").unwrap_err().to_string();
        assert!(e.contains("/dev/ptp-does-not-exist"), "{e}");
    }

    #[tokio::test]
    async fn specs() {
        assert_eq!(clock_from_spec("monotonic").await.unwrap().name(), "monotonic");
        assert_eq!(clock_from_spec("tai").await.unwrap().name(), "tai");
        let e = clock_from_spec("monotonc").await.unwrap_err().to_string();
        assert!(e.contains("did you mean 'monotonic'"), "{e}");
    }
}
