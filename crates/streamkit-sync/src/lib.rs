//! # streamkit-sync
//!
//! Time synchronisation for multi-camera work: frames from several cameras,
//! possibly on several machines, captured at the same instant and matched
//! by time.
//!
//! * [`ptp`] — an IEEE 1588-2019 (PTP) ordinary clock, slave only, inside
//!   the process: UDP/IPv4 multicast, kernel software or NIC hardware
//!   timestamps, domains 0–255, best master selection with failover, the
//!   end-to-end delay mechanism, and a *synchronised clock in the process*
//!   (it never steps or slews the machine's clock). The protocol core
//!   ([`ptp::PtpPort`]) is sans-IO: datagrams and time in, datagrams and
//!   timeouts out; [`ptp::PtpClient`] runs it on sockets in a tokio task.
//! * [`clock`] — one [`Clock`] trait for the monotonic, realtime and TAI
//!   system clocks, a PTP hardware clock (`/dev/ptpN`), our PTP client
//!   ([`ptp::PtpClock`]) and simulated clocks; sources stamp frames from
//!   whichever the user picks ([`clock::clock_from_spec`]).
//! * [`SyncedSource`] — wraps any source and stamps each frame's
//!   `ptp_time_ns`, `sync_source` and `drift_ns` from a clock.
//! * [`GenlockPacer`] — frame `k` at `k × period` since the clock's epoch
//!   (SMPTE ST 2059-1 style), so independent processes capture together.
//! * [`Aligner`] (sans-IO) and [`MultiStreamCompositor`] — one frame per
//!   source within a tolerance, `strict` or `best_effort`, bounded buffers,
//!   sync quality per set and over time, O(n) in buffer depth.
//!
//! ```no_run
//! # async fn demo(cameras: Vec<Box<dyn streamkit_core::Source>>) -> streamkit_core::Result<()> {
//! use std::sync::Arc;
//! use streamkit_sync::{ptp::{PtpClient, PtpClientConfig}, CompositorOptions, MultiStreamCompositor, SyncMode, SyncedSource};
//!
//! let ptp = PtpClient::start(PtpClientConfig { interface: Some("eth0".into()), domain: 0, ..Default::default() }).await?;
//! let clock = Arc::new(ptp.clock());
//! let mut compositor = MultiStreamCompositor::new(CompositorOptions {
//!     sync_tolerance_ns: 500_000,
//!     sync_mode: SyncMode::Strict,
//!     ..Default::default()
//! });
//! for (i, camera) in cameras.into_iter().enumerate() {
//!     compositor.add_synced_source(format!("cam_{i}"), Box::new(SyncedSource::new(camera, clock.clone())))?;
//! }
//! while let Some(set) = compositor.get_synced_frames().await? {
//!     println!("{} frames within {} ns", set.len(), set.skew_ns);
//! }
//! # Ok(()) }
//! ```
//!
//! ## Why our own PTP core and not statime
//!
//! statime (0.4) is a fine sans-IO PTP stack — ordinary and boundary
//! clocks, master and slave, P2P, a Kalman filter — and it was the first
//! candidate. We implement the slave-only ordinary clock ourselves
//! (about 1,600 lines of code: messages, BMCA, servo, port) because of what
//! this engine needs from it:
//!
//! 1. *Time as an input.* statime's filters call back into a `Clock`
//!    (`now()`, `set_frequency()`, `step_clock()`) from inside
//!    `handle_*`, and its `OverlayClock` reads the underlying clock when
//!    re-anchoring; our core never reads a clock, and its product is a
//!    plain value — a [`ptp::TimeMap`] (offset + rate against
//!    `CLOCK_MONOTONIC`) that maps *past* capture instants of frames, not
//!    only "now".
//! 2. *Accounting of what is rejected.* statime drops malformed,
//!    wrong-version and wrong-domain packets silently (a `log::warn!` at
//!    most) and gives no per-reason counters; the issue asks for every
//!    hostile class counted, which would mean parsing every datagram twice.
//! 3. *Integration weight for one port.* `Port<'a, …>` borrows its
//!    `PtpInstance` (statime-linux `Box::leak`s it), and the port moves
//!    between `InBmca`/`Running` type states on every BMCA cycle with five
//!    timers driven through `PortAction`s — more code than the slave-only
//!    protocol itself. It also brings `fixed`, `az`, `libm`, `rand` 0.8 and
//!    `log` (we use `tracing`).
//! 4. *Control of the estimator for software timestamps*: a robust
//!    regression over Syncs with delay measurements evaluated at their own
//!    instant, outlier rejection by median absolute deviation, and sanity
//!    bounds (±1000 ppm, path delay) that keep forged Syncs from steering.
//!
//! What we give up: master and boundary clock roles, the peer-delay
//! mechanism, 802.1AS, TLVs and authentication. Should streamkit need to
//! *be* a grandmaster, statime is the way to get it.
//!
//! ## Measured here (veth between two network namespaces, ptp4l 3.1.1 as grandmaster)
//!
//! `tests/ptp4l.rs`, software timestamps, 8 Syncs/s, 1 Delay_Req/s, on a
//! busy 2-core machine, three runs: lock 5.5–6.0 s after our client starts
//! (two announces 2 s apart qualify the master, then 2 s of Syncs); our
//! clock's true error (against the `CLOCK_REALTIME` both namespaces share)
//! |error| p95 184–335 ns, mean −100 to +2 ns; the reported per-Sync offset
//! |offset| p95 329–509 ns; path delay 2.2–2.4 µs. ptp4l's own free-running
//! slave in the same runs: |offset| p95 356–1160 ns (it prints one sample a
//! second), path delay 2.3–2.4 µs. Two grandmasters: the better one
//! followed, and 2.4–5.3 s from killing it to lock on the other (announces
//! every 0.5 s).
//!
//! One lesson from those runs: a socket watched by epoll receives its
//! transmit timestamp *before* the kernel wakes the watchers, and that
//! wake-up (≈1.2 µs on veth) then delays the packet itself, biasing every
//! slave-to-master delay (our clock was 0.4–0.8 µs off). Delay_Reqs
//! therefore leave through a socket no epoll set watches
//! ([`ptp::net::PtpSockets`]).

pub mod align;
pub mod clock;
pub mod genlock;
pub mod multistream;
pub mod ptp;
pub mod synced;

pub use align::{AlignConfig, AlignStats, AlignedSet, Aligner, SyncMode};
pub use clock::{Clock, ClockStatus, ManualClock, MonotonicClock, PhcClock, SimulatedClock, SystemClock};
pub use genlock::{FrameInstant, GenlockPacer};
pub use multistream::{CompositorOptions, MultiStreamCompositor, SyncedFrame, SyncedSet};
pub use synced::SyncedSource;
