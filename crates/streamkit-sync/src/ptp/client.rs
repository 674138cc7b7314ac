//! [`PtpClient`]: the sans-IO [`PtpPort`] on real sockets, in one tokio
//! task. The task converts kernel timestamps to the local monotonic clock,
//! feeds the port, sends what it asks, and publishes a snapshot (status and
//! [`TimeMap`]) that [`PtpClock`] reads without locking the task.
//!
//! ```no_run
//! # async fn demo() -> streamkit_core::Result<()> {
//! use std::time::Duration;
//! use streamkit_sync::{Clock, ptp::{PtpClient, PtpClientConfig}};
//! let client = PtpClient::start(PtpClientConfig { interface: Some("eth0".into()), domain: 0, ..Default::default() }).await?;
//! let status = client.wait_locked(Duration::from_secs(10)).await?;
//! println!("offset {:?} ns from {}", status.offset_ns, status.master.unwrap().port);
//! let clock = client.clock(); // a streamkit_sync::Clock
//! println!("PTP time {}", clock.now_ns());
//! # Ok(()) }
//! ```

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use streamkit_core::time::{monotonic_ns, realtime_ns};
use streamkit_core::{Error, Result};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;

use super::bmca::TableConfig;
use super::net::{self, ActiveTimestamping, PtpSockets, Stamps, TimestampingMode};
use super::port::{Channel, Input, Output, PortEvent, PortState, PtpConfig, PtpPort, PtpStatus};
use super::servo::{ServoConfig, TimeMap};
use super::wire::{ClockIdentity, EVENT_PORT, GENERAL_PORT};
use crate::clock::{sample_pair, Clock, ClockStatus};

/// Settings of a [`PtpClient`].
#[derive(Clone, Debug, Default)]
pub struct PtpClientConfig {
    /// Network interface; `None` picks the first up, multicast, IPv4 one.
    pub interface: Option<String>,
    pub domain: u8,
    pub timestamping: TimestampingMode,
    /// Our clock identity; `None` derives one from the interface's MAC and
    /// the process id (unique per process, unlike ptp4l's `FFFE` form).
    pub clock_identity: Option<ClockIdentity>,
    pub servo: Option<ServoConfig>,
    pub table: Option<TableConfig>,
    /// log2 s between Delay_Reqs; `None` follows the master.
    pub log_delay_req_interval: Option<i8>,
}

/// What the task publishes.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub status: PtpStatus,
    pub map: Option<TimeMap>,
    pub interface: String,
    pub timestamping: &'static str,
    /// Delay_Reqs stamped by the kernel (or NIC) on transmit…
    pub tx_timestamps: u64,
    /// …and those whose kernel timestamp never came (user-space time used).
    pub tx_timestamps_missed: u64,
}

/// Stops the task when the last handle (client or clock) is dropped.
#[derive(Debug)]
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An in-process PTP slave on one interface. See the module docs.
#[derive(Debug)]
pub struct PtpClient {
    snapshot: watch::Receiver<Snapshot>,
    guard: Arc<TaskGuard>,
}

impl PtpClient {
    /// Opens the sockets and starts the protocol in a tokio task. Fails
    /// when the interface does not exist or the sockets cannot be opened
    /// (binding ports 319/320 needs root or CAP_NET_BIND_SERVICE).
    pub async fn start(config: PtpClientConfig) -> Result<PtpClient> {
        let iface = match &config.interface {
            Some(name) => net::interface(name)?,
            None => net::default_interface()?,
        };
        let sockets = PtpSockets::open(&iface, config.timestamping)?;
        let identity = config.clock_identity.unwrap_or_else(|| default_identity(iface.mac));
        let port_config = PtpConfig {
            domain: config.domain,
            clock_identity: identity,
            servo: config.servo.unwrap_or_default(),
            table: config.table.unwrap_or_default(),
            log_delay_req_interval: config.log_delay_req_interval,
            ..PtpConfig::default()
        };
        let port = PtpPort::new(port_config);
        let snapshot = Snapshot {
            status: port.status(),
            map: None,
            interface: iface.name.clone(),
            timestamping: sockets.timestamping.name(),
            tx_timestamps: 0,
            tx_timestamps_missed: 0,
        };
        let (tx, rx) = watch::channel(snapshot);
        tracing::info!(
            "PTP client on {} ({} timestamps), domain {}, identity {identity}",
            iface.name,
            sockets.timestamping.name(),
            config.domain
        );
        let mut driver = Driver::new(port, sockets, tx)?;
        let task = tokio::spawn(async move {
            if let Err(e) = driver.run().await {
                tracing::error!("PTP client stopped: {e}");
                driver.core.port.set_fault(Some(e.to_string()));
                driver.core.publish();
            }
        });
        Ok(PtpClient { snapshot: rx, guard: Arc::new(TaskGuard(task.abort_handle())) })
    }

    pub fn status(&self) -> PtpStatus {
        self.snapshot.borrow().status.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Waits for the next published change (at least every Sync).
    pub async fn changed(&mut self) -> Result<()> {
        self.snapshot.changed().await.map_err(|_| Error::invalid("the PTP client task ended"))
    }

    /// Waits until the port is in the slave state.
    pub async fn wait_locked(&self, timeout: Duration) -> Result<PtpStatus> {
        let mut rx = self.snapshot.clone();
        let wait = rx.wait_for(|s| s.status.state == PortState::Slave || s.status.state == PortState::Faulty);
        let result = tokio::time::timeout(timeout, wait).await.map(|r| r.map(|s| s.status.clone()));
        match result {
            Ok(Ok(s)) if s.state == PortState::Slave => Ok(s),
            Ok(Ok(s)) => Err(Error::invalid(format!("PTP client faulty: {}", s.fault.unwrap_or_default()))),
            Ok(Err(_)) => Err(Error::invalid("the PTP client task ended")),
            Err(_) => Err(Error::invalid(format!(
                "no PTP lock within {timeout:?}: {}",
                describe(&self.snapshot.borrow().status)
            ))),
        }
    }

    /// The synchronised clock; keeps the client running while it lives.
    pub fn clock(&self) -> PtpClock {
        PtpClock { snapshot: self.snapshot.clone(), _guard: self.guard.clone() }
    }

    pub fn into_clock(self) -> PtpClock {
        self.clock()
    }
}

fn describe(status: &PtpStatus) -> String {
    match &status.master {
        None => format!("state {}, no master heard in domain {}", status.state, status.domain),
        Some(m) => format!("state {}, master {}, {} syncs", status.state, m.port, status.syncs),
    }
}

/// A process-unique identity: the MAC's OUI and NIC bytes around two bytes
/// of the process id (IEEE 1588-2019 7.5.2.2.2).
fn default_identity(mac: Option<[u8; 6]>) -> ClockIdentity {
    let pid = std::process::id();
    let middle = [(pid >> 8) as u8, pid as u8];
    let mac = mac.unwrap_or_else(|| {
        let seed = monotonic_ns() ^ realtime_ns() ^ ((pid as u64) << 32);
        let b = seed.to_be_bytes();
        // Locally administered, unicast.
        [(b[2] | 0x02) & 0xfe, b[3], b[4], b[5], b[6], b[7]]
    });
    ClockIdentity::from_mac_with(mac, middle)
}

/// The PTP client's synchronised clock: PTP time (the grandmaster's
/// timescale; TAI for most grandmasters, `CLOCK_REALTIME` of the master
/// for ptp4l with software timestamps) read through the [`TimeMap`].
#[derive(Clone, Debug)]
pub struct PtpClock {
    snapshot: watch::Receiver<Snapshot>,
    _guard: Arc<TaskGuard>,
}

impl PtpClock {
    pub fn map(&self) -> Option<TimeMap> {
        self.snapshot.borrow().map
    }

    pub fn ptp_status(&self) -> PtpStatus {
        self.snapshot.borrow().status.clone()
    }
}

impl Clock for PtpClock {
    /// PTP time now; before the first measurement, `CLOCK_REALTIME`
    /// (check [`Clock::status`]`.locked`).
    fn now_ns(&self) -> u64 {
        self.at_monotonic(monotonic_ns()).unwrap_or_else(realtime_ns)
    }

    fn name(&self) -> String {
        format!("ptp:{}", self.snapshot.borrow().status.domain)
    }

    fn status(&self) -> ClockStatus {
        let snapshot = self.snapshot.borrow();
        let s = &snapshot.status;
        ClockStatus {
            locked: s.state == PortState::Slave,
            state: s.state.name().to_string(),
            sync_source: match &s.master {
                Some(m) => format!("ptp:{}:{}", s.domain, m.grandmaster),
                None => format!("ptp:{}", s.domain),
            },
            offset_ns: s.offset_ns,
            frequency_ppb: s.frequency_ppb,
            estimated_error_ns: s.estimated_error_ns,
        }
    }

    fn at_monotonic(&self, monotonic_ns: u64) -> Option<u64> {
        self.map().map(|m| m.to_ptp(monotonic_ns))
    }
}

/// How long to wait for a Delay_Req's transmit timestamp before using the
/// user-space reading taken just before sending.
const TX_TIMESTAMP_WAIT_NS: u64 = 20_000_000;
/// How often to look for it meanwhile.
const TX_TIMESTAMP_POLL_NS: u64 = 1_000_000;

struct PendingTx {
    sequence_id: u16,
    opt_id: u32,
    user_time: u64,
    deadline: u64,
}

struct Driver {
    event: AsyncFd<OwnedFd>,
    general: AsyncFd<OwnedFd>,
    core: Core,
}

/// Everything but the receiving sockets, so that a readiness guard on a
/// socket and the port can be borrowed at once.
struct Core {
    port: PtpPort,
    /// The sending socket: never in an epoll set (see [`PtpSockets`]).
    event_tx: OwnedFd,
    general_fd: RawFd,
    timestamping: ActiveTimestamping,
    phc: Option<crate::clock::PhcClock>,
    tx: watch::Sender<Snapshot>,
    sent: u32,
    pending_tx: Option<PendingTx>,
    tx_timestamps: u64,
    tx_timestamps_missed: u64,
}

impl Driver {
    fn new(port: PtpPort, sockets: PtpSockets, tx: watch::Sender<Snapshot>) -> Result<Driver> {
        let phc = match sockets.timestamping {
            ActiveTimestamping::Hardware { phc_index } => {
                Some(crate::clock::PhcClock::open(&format!("/dev/ptp{phc_index}"))?)
            }
            _ => None,
        };
        let register = |fd: OwnedFd| {
            // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the
            // same descriptor for the AsyncFd's whole life.
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| Error::io("registering a PTP socket", e.into()))
        };
        let general = register(sockets.general)?;
        Ok(Driver {
            event: register(sockets.event)?,
            core: Core {
                port,
                event_tx: sockets.event_tx,
                general_fd: general.get_ref().as_raw_fd(),
                timestamping: sockets.timestamping,
                phc,
                tx,
                sent: 0,
                pending_tx: None,
                tx_timestamps: 0,
                tx_timestamps_missed: 0,
            },
            general,
        })
    }

    async fn run(&mut self) -> Result<()> {
        let Driver { event, general, core } = self;
        let (event_fd, general_fd) = (event.get_ref().as_raw_fd(), general.get_ref().as_raw_fd());
        let mut buf = [0u8; 2048];
        loop {
            core.flush()?;
            core.publish();
            let now = monotonic_ns();
            let mut deadline = core.port.poll_timeout().unwrap_or(now + 1_000_000_000);
            if core.pending_tx.is_some() {
                deadline = deadline.min(now + TX_TIMESTAMP_POLL_NS);
            }
            let sleep = tokio::time::sleep(Duration::from_nanos(deadline.saturating_sub(now)));
            tokio::select! {
                guard = event.readable() => {
                    let mut guard = guard.map_err(|e| Error::io("waiting on the PTP event socket", e))?;
                    core.drain(event_fd, Channel::Event, &mut buf)?;
                    guard.clear_ready();
                }
                guard = general.readable() => {
                    let mut guard = guard.map_err(|e| Error::io("waiting on the PTP general socket", e))?;
                    core.drain(general_fd, Channel::General, &mut buf)?;
                    guard.clear_ready();
                }
                _ = sleep => {}
            }
            core.poll_tx_timestamp()?;
            core.port.handle_timeout(monotonic_ns());
        }
    }
}

impl Core {
    fn publish(&self) {
        let status = self.port.status();
        let map = self.port.time_map();
        self.tx.send_modify(|s| {
            s.status = status;
            s.map = map;
            s.tx_timestamps = self.tx_timestamps;
            s.tx_timestamps_missed = self.tx_timestamps_missed;
        });
    }

    /// A kernel timestamp converted to local monotonic time.
    fn to_monotonic(&self, stamps: &Stamps) -> Option<u64> {
        match self.timestamping {
            ActiveTimestamping::Hardware { .. } => {
                let phc = self.phc.as_ref()?;
                let hw = stamps.hardware?;
                let (mono, phc_now) = sample_pair(|| phc.now_ns());
                Some((hw as i128 - (phc_now as i128 - mono as i128)).max(0) as u64)
            }
            ActiveTimestamping::Software | ActiveTimestamping::SoftwareRxOnly => {
                let sw = stamps.software?;
                let (mono, rt) = sample_pair(realtime_ns);
                Some((sw as i128 - (rt as i128 - mono as i128)).max(0) as u64)
            }
            ActiveTimestamping::User => None,
        }
    }

    fn drain(&mut self, fd: RawFd, channel: Channel, buf: &mut [u8]) -> Result<()> {
        while let Some((n, stamps)) = net::recv(fd, buf, false).map_err(|e| Error::io("receiving PTP", e))? {
            let now = monotonic_ns();
            let data = &buf[..n];
            match channel {
                Channel::Event => {
                    let rx = self.to_monotonic(&stamps).unwrap_or(now);
                    self.port.handle_input(now, Input::Event { data, rx_local_ns: rx });
                }
                Channel::General => self.port.handle_input(now, Input::General { data }),
            }
        }
        Ok(())
    }

    /// Reads the sending socket's error queue for the pending Delay_Req's
    /// transmit timestamp; past the deadline, uses the user-space time.
    fn poll_tx_timestamp(&mut self) -> Result<()> {
        let mut scratch = [0u8; 256];
        let fd = self.event_tx.as_raw_fd();
        while let Some((_, stamps)) =
            net::recv(fd, &mut scratch, true).map_err(|e| Error::io("reading transmit timestamps", e))?
        {
            let Some(pending) = &self.pending_tx else { continue };
            if stamps.id.is_some_and(|id| id != pending.opt_id) {
                continue;
            }
            if let Some(tx) = self.to_monotonic(&stamps) {
                let sequence_id = pending.sequence_id;
                self.pending_tx = None;
                self.tx_timestamps += 1;
                self.port.handle_input(monotonic_ns(), Input::TxTimestamp { sequence_id, tx_local_ns: tx });
            }
        }
        let now = monotonic_ns();
        if let Some(p) = self.pending_tx.take_if(|p| now >= p.deadline) {
            tracing::debug!("no transmit timestamp for Delay_Req {}; using the user-space time", p.sequence_id);
            self.tx_timestamps_missed += 1;
            self.port.handle_input(now, Input::TxTimestamp { sequence_id: p.sequence_id, tx_local_ns: p.user_time });
        }
        Ok(())
    }

    /// Sends what the port asks and logs its events.
    fn flush(&mut self) -> Result<()> {
        loop {
            match self.port.poll_output(monotonic_ns()) {
                Output::Transmit(t) => {
                    let (fd, port) = match t.channel {
                        Channel::Event => (self.event_tx.as_raw_fd(), EVENT_PORT),
                        Channel::General => (self.general_fd, GENERAL_PORT),
                    };
                    let user_time = monotonic_ns();
                    if let Err(e) = net::send_multicast(fd, &t.data, port) {
                        tracing::warn!("sending a PTP message: {e}");
                        continue;
                    }
                    if t.channel != Channel::Event {
                        continue;
                    }
                    let kernel_stamps =
                        matches!(self.timestamping, ActiveTimestamping::Hardware { .. } | ActiveTimestamping::Software);
                    if kernel_stamps {
                        self.pending_tx = Some(PendingTx {
                            sequence_id: t.sequence_id,
                            opt_id: self.sent,
                            user_time,
                            deadline: user_time + TX_TIMESTAMP_WAIT_NS,
                        });
                        self.sent = self.sent.wrapping_add(1);
                        self.poll_tx_timestamp()?;
                    } else {
                        let input = Input::TxTimestamp { sequence_id: t.sequence_id, tx_local_ns: user_time };
                        self.port.handle_input(user_time, input);
                    }
                }
                Output::Event(e) => log_event(&e),
                Output::Timeout(_) => return Ok(()),
            }
        }
    }
}

fn log_event(event: &PortEvent) {
    match event {
        PortEvent::StateChanged { from, to } => tracing::info!("PTP port: {from} -> {to}"),
        PortEvent::MasterChanged { from, to } => {
            let show =
                |p: &Option<super::wire::PortIdentity>| p.map(|p| p.to_string()).unwrap_or_else(|| "none".into());
            tracing::info!("PTP master: {} -> {}", show(from), show(to));
        }
        PortEvent::ServoReset => tracing::warn!("PTP servo reset (master stepped or path changed)"),
    }
}
