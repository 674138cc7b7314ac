//! The sans-IO PTP port: an IEEE 1588 ordinary clock that is only ever a
//! slave. It never reads a clock and never touches a socket — time and
//! datagrams are inputs, datagrams to send and the next timeout are outputs
//! (as in str0m):
//!
//! ```
//! use streamkit_sync::ptp::{PtpPort, PtpConfig, Input, Output};
//! let mut port = PtpPort::new(PtpConfig::default());
//! let now = 1_000_000_000; // local CLOCK_MONOTONIC ns, from the caller
//! port.handle_input(now, Input::General { data: &[0u8; 10] });
//! assert_eq!(port.status().rejected.total(), 1); // truncated: counted, ignored
//! while let Output::Transmit(t) = port.poll_output(now) { /* send t.data */ }
//! ```
//!
//! The I/O around it ([`super::client`]) feeds it receive timestamps (kernel
//! software or hardware, converted to the local monotonic clock) and the
//! transmit timestamp of each Delay_Req.

use std::collections::VecDeque;
use std::fmt;

use super::bmca::{self, Admitted, ForeignMasters, MasterDataset, TableConfig};
use super::servo::{Servo, ServoConfig, TimeMap, Verdict};
use super::wire::{
    self, Body, ClockIdentity, ClockQuality, Header, Message, MessageType, ParseError, PortIdentity, Timestamp,
};

/// Settings of a [`PtpPort`].
#[derive(Clone, Debug)]
pub struct PtpConfig {
    /// PTP domain, 0–255 (SMPTE ST 2059-2 uses 127).
    pub domain: u8,
    /// `majorSdoId` accepted and sent (0 for the default and media profiles).
    pub major_sdo_id: u8,
    pub clock_identity: ClockIdentity,
    pub port_number: u16,
    pub table: TableConfig,
    pub servo: ServoConfig,
    /// log2 seconds between Delay_Reqs; `None` follows the master's
    /// `logMinDelayReqInterval` (from its Delay_Resp), as IEEE 1588 requires.
    pub log_delay_req_interval: Option<i8>,
}

impl Default for PtpConfig {
    fn default() -> Self {
        PtpConfig {
            domain: 0,
            major_sdo_id: 0,
            clock_identity: ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 1]),
            port_number: 1,
            table: TableConfig::default(),
            servo: ServoConfig::default(),
            log_delay_req_interval: None,
        }
    }
}

/// The port state (IEEE 1588 9.2.5, the states a slave-only clock uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortState {
    Initializing,
    /// No qualified master.
    Listening,
    /// A master is selected; the clock is not yet trustworthy.
    Uncalibrated,
    /// Locked to the master.
    Slave,
    /// The I/O failed; see the status's `fault`.
    Faulty,
}

impl PortState {
    pub fn name(self) -> &'static str {
        match self {
            PortState::Initializing => "initializing",
            PortState::Listening => "listening",
            PortState::Uncalibrated => "uncalibrated",
            PortState::Slave => "slave",
            PortState::Faulty => "faulty",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a datagram (or a sample) was ignored. Every one is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Shorter than its header, its `messageLength` or its body.
    Truncated,
    /// `versionPTP` is not 2.
    WrongVersion,
    /// An unassigned message type.
    UnknownType,
    /// Nanoseconds ≥ 10^9 in a timestamp.
    BadTimestamp,
    /// Another domain.
    WrongDomain,
    /// Another `majorSdoId` (transportSpecific).
    WrongSdo,
    /// An event message on the general port or the reverse.
    WrongPort,
    /// Our own message looped back, or an announce naming us.
    OwnMessage,
    /// A valid message a slave has no use for (peer delay, signaling,
    /// management, other slaves' Delay_Reqs).
    NotForSlave,
    /// An announce with stepsRemoved ≥ 255.
    StepsRemoved,
    /// An announce from a master that loses the comparison with ours.
    NotBestMaster,
    /// A new foreign master while the table is full of better ones.
    TableFull,
    /// Sync, Follow_Up or Delay_Resp from a port that is not our master.
    NotSelectedMaster,
    /// A Delay_Resp answering another slave.
    OtherRequester,
    /// A Follow_Up or Delay_Resp matching nothing we wait for.
    Unmatched,
    /// A Sync whose sequence id repeats or jumps (forged or replayed).
    BadSequence,
    /// A Sync or delay measurement the servo rejected as an outlier.
    Outlier,
}

impl Reject {
    pub const ALL: [Reject; 17] = [
        Reject::Truncated,
        Reject::WrongVersion,
        Reject::UnknownType,
        Reject::BadTimestamp,
        Reject::WrongDomain,
        Reject::WrongSdo,
        Reject::WrongPort,
        Reject::OwnMessage,
        Reject::NotForSlave,
        Reject::StepsRemoved,
        Reject::NotBestMaster,
        Reject::TableFull,
        Reject::NotSelectedMaster,
        Reject::OtherRequester,
        Reject::Unmatched,
        Reject::BadSequence,
        Reject::Outlier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::WrongVersion => "wrong_version",
            Reject::UnknownType => "unknown_type",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::WrongDomain => "wrong_domain",
            Reject::WrongSdo => "wrong_sdo",
            Reject::WrongPort => "wrong_port",
            Reject::OwnMessage => "own_message",
            Reject::NotForSlave => "not_for_slave",
            Reject::StepsRemoved => "steps_removed",
            Reject::NotBestMaster => "not_best_master",
            Reject::TableFull => "table_full",
            Reject::NotSelectedMaster => "not_selected_master",
            Reject::OtherRequester => "other_requester",
            Reject::Unmatched => "unmatched",
            Reject::BadSequence => "bad_sequence",
            Reject::Outlier => "outlier",
        }
    }

    fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).expect("listed")
    }
}

impl From<ParseError> for Reject {
    fn from(e: ParseError) -> Reject {
        match e {
            ParseError::Truncated { .. } => Reject::Truncated,
            ParseError::Version(_) => Reject::WrongVersion,
            ParseError::UnknownType(_) => Reject::UnknownType,
            ParseError::BadTimestamp => Reject::BadTimestamp,
        }
    }
}

/// Counts of ignored datagrams, per [`Reject`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts([u64; Reject::ALL.len()]);

impl RejectCounts {
    pub fn get(&self, reason: Reject) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// (reason, count) for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Reject, u64)> + '_ {
        Reject::ALL.iter().map(|&r| (r, self.get(r)))
    }

    fn add(&mut self, reason: Reject) {
        self.0[reason.index()] += 1;
    }
}

/// What the port knows of its master.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MasterInfo {
    /// The port we take Sync from.
    pub port: PortIdentity,
    pub grandmaster: ClockIdentity,
    pub steps_removed: u16,
    pub priority1: u8,
    pub quality: ClockQuality,
    pub priority2: u8,
    pub current_utc_offset: i16,
    /// The grandmaster's timescale is PTP (TAI); otherwise arbitrary.
    pub ptp_timescale: bool,
    pub time_source: u8,
}

/// A snapshot of the port: what `streamkit ptp status` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct PtpStatus {
    pub state: PortState,
    pub domain: u8,
    pub port_identity: PortIdentity,
    pub master: Option<MasterInfo>,
    /// Our clock minus the master's at the last Sync (ptp4l's "master offset").
    pub offset_ns: Option<i64>,
    pub mean_path_delay_ns: Option<i64>,
    /// How much faster the master runs than our local monotonic clock (ppb).
    pub frequency_ppb: Option<f64>,
    /// Robust standard deviation of the Sync measurements (ns).
    pub sync_jitter_ns: Option<f64>,
    /// Estimated standard error of the synchronised clock (ns).
    pub estimated_error_ns: Option<f64>,
    pub foreign_masters: usize,
    pub syncs: u64,
    pub delay_exchanges: u64,
    /// log2 s between Syncs, as the master announces it.
    pub log_sync_interval: Option<i8>,
    /// log2 s between our Delay_Reqs.
    pub log_delay_req_interval: i8,
    /// Local time of the last Sync used.
    pub last_sync_local_ns: Option<u64>,
    pub rejected: RejectCounts,
    /// Why the port is faulty.
    pub fault: Option<String>,
}

/// Which UDP port a datagram goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// 319: timestamped.
    Event,
    /// 320.
    General,
}

/// A datagram to send to the PTP multicast group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub channel: Channel,
    pub data: Vec<u8>,
    /// Report its transmit timestamp with [`Input::TxTimestamp`] and this id.
    pub sequence_id: u16,
}

/// Something the application may want to log.
#[derive(Clone, Debug, PartialEq)]
pub enum PortEvent {
    StateChanged { from: PortState, to: PortState },
    MasterChanged { from: Option<PortIdentity>, to: Option<PortIdentity> },
    ServoReset,
}

/// An input to [`PtpPort::handle_input`]. All times are local monotonic ns.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A datagram from the event port (319), received at `rx_local_ns`.
    Event { data: &'a [u8], rx_local_ns: u64 },
    /// A datagram from the general port (320).
    General { data: &'a [u8] },
    /// When the Delay_Req with `sequence_id` left.
    TxTimestamp { sequence_id: u16, tx_local_ns: u64 },
}

/// What [`PtpPort::poll_output`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Transmit(Transmit),
    Event(PortEvent),
    /// Nothing to do until this local time (call [`PtpPort::handle_timeout`] then).
    Timeout(u64),
}

#[derive(Clone, Copy, Debug)]
struct PendingSync {
    sequence_id: u16,
    rx_local_ns: u64,
    correction_ns: i128,
}

#[derive(Clone, Copy, Debug)]
struct PendingFollowUp {
    sequence_id: u16,
    origin_ns: i128,
    correction_ns: i128,
}

#[derive(Clone, Copy, Debug)]
struct PendingDelay {
    sequence_id: u16,
    tx_local_ns: Option<u64>,
    /// Master receive time minus the Delay_Resp correction, once answered.
    t4_ns: Option<i128>,
}

const PENDING: usize = 8;
/// A Sync may skip this many sequence ids (lost packets) and still count.
const SEQUENCE_WINDOW: u16 = 32;
/// With no Sync accepted for this long, any sequence id is taken (the
/// master restarted its counter).
const SEQUENCE_RESYNC_NS: u64 = 2_000_000_000;
const NEVER: u64 = u64::MAX;

/// The port. See the module docs.
pub struct PtpPort {
    config: PtpConfig,
    identity: PortIdentity,
    state: PortState,
    fault: Option<String>,
    masters: ForeignMasters,
    parent: Option<MasterDataset>,
    servo: Servo,
    /// The last good map, kept through a master change or a servo reset.
    holdover: Option<TimeMap>,
    syncs: VecDeque<PendingSync>,
    follow_ups: VecDeque<PendingFollowUp>,
    delay: Option<PendingDelay>,
    next_delay_req: u64,
    delay_seq: u16,
    master_log_delay_interval: i8,
    log_sync_interval: Option<i8>,
    rng: u64,
    rejected: RejectCounts,
    sync_count: u64,
    delay_count: u64,
    last_sync_local_ns: Option<u64>,
    /// Sequence id and arrival of the last Sync taken from the master.
    last_sync_seq: Option<(u16, u64)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PortEvent>,
}

impl PtpPort {
    pub fn new(config: PtpConfig) -> PtpPort {
        let identity = PortIdentity { clock: config.clock_identity, port: config.port_number };
        let seed = u64::from_be_bytes(config.clock_identity.0) ^ 0x9e37_79b9_7f4a_7c15;
        let mut port = PtpPort {
            masters: ForeignMasters::new(config.table),
            servo: Servo::new(config.servo),
            config,
            identity,
            state: PortState::Initializing,
            fault: None,
            parent: None,
            holdover: None,
            syncs: VecDeque::new(),
            follow_ups: VecDeque::new(),
            delay: None,
            next_delay_req: NEVER,
            delay_seq: 0,
            master_log_delay_interval: 0,
            log_sync_interval: None,
            rng: seed.max(1),
            rejected: RejectCounts::default(),
            sync_count: 0,
            delay_count: 0,
            last_sync_local_ns: None,
            last_sync_seq: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        port.set_state(PortState::Listening);
        port
    }

    pub fn config(&self) -> &PtpConfig {
        &self.config
    }

    pub fn state(&self) -> PortState {
        self.state
    }

    /// The synchronised clock: local monotonic → PTP time. Present once a
    /// Sync and a delay exchange were measured (also while uncalibrated and
    /// in holdover after losing the master; see [`PtpPort::is_locked`]).
    pub fn time_map(&self) -> Option<TimeMap> {
        match (self.servo.locked(), self.holdover) {
            // A fresh estimate from a few samples is worse than the holdover.
            (false, Some(holdover)) => Some(holdover),
            _ => self.servo.map().or(self.holdover),
        }
    }

    pub fn is_locked(&self) -> bool {
        self.state == PortState::Slave
    }

    /// Handles one input at local time `now`.
    pub fn handle_input(&mut self, now: u64, input: Input<'_>) {
        match input {
            Input::Event { data, rx_local_ns } => self.receive(now, data, Channel::Event, rx_local_ns),
            Input::General { data } => self.receive(now, data, Channel::General, now),
            Input::TxTimestamp { sequence_id, tx_local_ns } => {
                if let Some(pending) = self.delay.as_mut().filter(|d| d.sequence_id == sequence_id) {
                    pending.tx_local_ns.get_or_insert(tx_local_ns);
                    self.complete_delay();
                }
            }
        }
        self.handle_timeout(now);
    }

    /// The I/O failed (`Some(reason)`) or works again (`None`).
    pub fn set_fault(&mut self, fault: Option<String>) {
        self.fault = fault;
        if self.fault.is_some() {
            self.set_state(PortState::Faulty);
        } else if self.state == PortState::Faulty {
            self.set_state(PortState::Listening);
        }
    }

    /// Runs timers due at `now`: master timeouts (failover) and Delay_Reqs.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.state == PortState::Faulty {
            return;
        }
        if !self.masters.expire(now).is_empty() {
            self.decide(now);
        }
        if self.parent.is_some() && now >= self.next_delay_req {
            self.send_delay_req(now);
        }
    }

    /// The next output: a datagram to send, an event, or when to call
    /// [`PtpPort::handle_timeout`] next.
    pub fn poll_output(&mut self, now: u64) -> Output {
        if let Some(t) = self.transmits.pop_front() {
            return Output::Transmit(t);
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        Output::Timeout(self.poll_timeout().unwrap_or(now + 1_000_000_000))
    }

    /// When [`PtpPort::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let delay = if self.parent.is_some() { self.next_delay_req } else { NEVER };
        let expiry = self.masters.next_expiry().unwrap_or(NEVER);
        let next = delay.min(expiry);
        (next != NEVER).then_some(next)
    }

    pub fn status(&self) -> PtpStatus {
        let locked_map = self.servo.map();
        PtpStatus {
            state: self.state,
            domain: self.config.domain,
            port_identity: self.identity,
            master: self.parent.map(|p| MasterInfo {
                port: p.sender,
                grandmaster: p.grandmaster_identity,
                steps_removed: p.steps_removed,
                priority1: p.priority1,
                quality: p.quality,
                priority2: p.priority2,
                current_utc_offset: p.current_utc_offset,
                ptp_timescale: p.flags & wire::FLAG_PTP_TIMESCALE != 0,
                time_source: p.time_source,
            }),
            offset_ns: self.servo.last_offset_ns().map(|o| o.round() as i64),
            mean_path_delay_ns: self.servo.mean_path_delay_ns().map(|d| d.round() as i64),
            frequency_ppb: self.servo.frequency_ppb(),
            sync_jitter_ns: self.servo.sync_jitter_ns(),
            estimated_error_ns: locked_map.map(|m| m.error_ns),
            foreign_masters: self.masters.len(),
            syncs: self.sync_count,
            delay_exchanges: self.delay_count,
            log_sync_interval: self.log_sync_interval,
            log_delay_req_interval: self.delay_log_interval(),
            last_sync_local_ns: self.last_sync_local_ns,
            rejected: self.rejected,
            fault: self.fault.clone(),
        }
    }

    fn reject(&mut self, reason: Reject) {
        self.rejected.add(reason);
    }

    fn set_state(&mut self, to: PortState) {
        if self.state != to {
            self.events.push_back(PortEvent::StateChanged { from: self.state, to });
            self.state = to;
        }
    }

    fn receive(&mut self, now: u64, data: &[u8], channel: Channel, rx_local_ns: u64) {
        if self.state == PortState::Faulty {
            return;
        }
        let message = match wire::parse(data) {
            Ok(m) => m,
            Err(e) => return self.reject(e.into()),
        };
        let h = message.header;
        if h.domain != self.config.domain {
            return self.reject(Reject::WrongDomain);
        }
        if h.major_sdo_id != self.config.major_sdo_id {
            return self.reject(Reject::WrongSdo);
        }
        if h.source.clock == self.identity.clock {
            return self.reject(Reject::OwnMessage);
        }
        let expected = if h.message_type.is_event() { Channel::Event } else { Channel::General };
        if channel != expected {
            return self.reject(Reject::WrongPort);
        }
        match message.body {
            Body::Announce(ref announce) => self.on_announce(now, &h, announce),
            Body::Sync { origin_timestamp } => self.on_sync(&h, origin_timestamp, rx_local_ns),
            Body::FollowUp { precise_origin_timestamp } => self.on_follow_up(&h, precise_origin_timestamp),
            Body::DelayResp { receive_timestamp, requesting_port } => {
                self.on_delay_resp(&h, receive_timestamp, requesting_port)
            }
            Body::DelayReq { .. } | Body::Other => self.reject(Reject::NotForSlave),
        }
    }

    fn is_parent(&self, source: &PortIdentity) -> bool {
        self.parent.is_some_and(|p| p.sender == *source)
    }

    fn on_announce(&mut self, now: u64, h: &Header, announce: &wire::Announce) {
        if announce.steps_removed >= 255 {
            return self.reject(Reject::StepsRemoved);
        }
        if announce.grandmaster_identity == self.identity.clock {
            return self.reject(Reject::OwnMessage);
        }
        let dataset = MasterDataset::from_announce(h, announce, self.identity);
        if self.masters.record(dataset, h.log_message_interval, now) == Admitted::TableFull {
            return self.reject(Reject::TableFull);
        }
        self.decide(now);
        if let Some(parent) = self.parent {
            if parent.sender != h.source && bmca::compare(&dataset, &parent) == std::cmp::Ordering::Greater {
                self.reject(Reject::NotBestMaster);
            }
        }
    }

    /// The state decision: follow the best qualified foreign master.
    fn decide(&mut self, now: u64) {
        let best = self.masters.best(now).map(|m| m.dataset);
        match (best, self.parent) {
            (Some(best), Some(parent)) if best.sender == parent.sender => self.parent = Some(best),
            (Some(best), previous) => {
                self.change_master(previous.map(|p| p.sender), Some(best));
                self.set_state(PortState::Uncalibrated);
            }
            (None, Some(previous)) => {
                self.change_master(Some(previous.sender), None);
                self.set_state(PortState::Listening);
            }
            (None, None) => {}
        }
    }

    fn change_master(&mut self, from: Option<PortIdentity>, to: Option<MasterDataset>) {
        if let Some(map) = self.servo.map() {
            self.holdover = Some(map);
        }
        self.events.push_back(PortEvent::MasterChanged { from, to: to.map(|d| d.sender) });
        self.parent = to;
        self.servo.reset();
        self.syncs.clear();
        self.follow_ups.clear();
        self.delay = None;
        self.next_delay_req = NEVER;
        self.master_log_delay_interval = 0;
        self.log_sync_interval = None;
        self.last_sync_seq = None;
    }

    fn on_sync(&mut self, h: &Header, origin: Timestamp, rx_local_ns: u64) {
        if !self.is_parent(&h.source) {
            return self.reject(Reject::NotSelectedMaster);
        }
        if let Some((last, at)) = self.last_sync_seq {
            let ahead = h.sequence_id.wrapping_sub(last);
            let fresh = (1..=SEQUENCE_WINDOW).contains(&ahead);
            if !fresh && rx_local_ns.saturating_sub(at) < SEQUENCE_RESYNC_NS {
                return self.reject(Reject::BadSequence);
            }
        }
        self.last_sync_seq = Some((h.sequence_id, rx_local_ns));
        self.log_sync_interval = Some(h.log_message_interval);
        if !h.two_step() {
            return self.sync_sample(rx_local_ns, origin.as_ns() + h.correction_ns());
        }
        if let Some(i) = self.follow_ups.iter().position(|f| f.sequence_id == h.sequence_id) {
            let f = self.follow_ups.remove(i).expect("index from position");
            return self.sync_sample(rx_local_ns, f.origin_ns + f.correction_ns + h.correction_ns());
        }
        if self.syncs.len() == PENDING {
            self.syncs.pop_front();
            self.reject(Reject::Unmatched);
        }
        self.syncs.push_back(PendingSync { sequence_id: h.sequence_id, rx_local_ns, correction_ns: h.correction_ns() });
    }

    fn on_follow_up(&mut self, h: &Header, precise_origin: Timestamp) {
        if !self.is_parent(&h.source) {
            return self.reject(Reject::NotSelectedMaster);
        }
        if let Some(i) = self.syncs.iter().position(|s| s.sequence_id == h.sequence_id) {
            let s = self.syncs.remove(i).expect("index from position");
            // Older Syncs never got their Follow_Up.
            for _ in 0..i {
                self.syncs.pop_front();
                self.reject(Reject::Unmatched);
            }
            return self.sync_sample(s.rx_local_ns, precise_origin.as_ns() + h.correction_ns() + s.correction_ns);
        }
        // The Follow_Up overtook its Sync (they arrive on different sockets).
        if self.follow_ups.len() == PENDING {
            self.follow_ups.pop_front();
            self.reject(Reject::Unmatched);
        }
        self.follow_ups.push_back(PendingFollowUp {
            sequence_id: h.sequence_id,
            origin_ns: precise_origin.as_ns(),
            correction_ns: h.correction_ns(),
        });
    }

    fn sync_sample(&mut self, t2: u64, t1: i128) {
        self.last_sync_local_ns = Some(t2);
        let before = self.servo.map();
        match self.servo.sync(t2, t1) {
            Verdict::Used { .. } => self.sync_count += 1,
            Verdict::Outlier => self.reject(Reject::Outlier),
            Verdict::Reset => {
                self.reject(Reject::Outlier);
                self.holdover = before.or(self.holdover);
                self.events.push_back(PortEvent::ServoReset);
                if self.state == PortState::Slave {
                    self.set_state(PortState::Uncalibrated);
                }
            }
        }
        if self.next_delay_req == NEVER {
            // First Sync from this master: measure the delay right away.
            self.next_delay_req = t2;
        }
        self.update_lock();
    }

    fn update_lock(&mut self) {
        if self.state == PortState::Uncalibrated && self.servo.locked() {
            self.holdover = None;
            self.set_state(PortState::Slave);
        }
    }

    fn delay_log_interval(&self) -> i8 {
        self.config.log_delay_req_interval.unwrap_or(self.master_log_delay_interval).clamp(-7, 6)
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn send_delay_req(&mut self, now: u64) {
        if self.delay.is_some_and(|d| d.t4_ns.is_none() || d.tx_local_ns.is_none()) {
            // The previous exchange never completed; it is abandoned.
            self.reject(Reject::Unmatched);
        }
        self.delay_seq = self.delay_seq.wrapping_add(1);
        let origin = self.time_map().map(|m| Timestamp::from_ns(m.to_ptp(now) as i128)).unwrap_or_default();
        let header = Header::new(MessageType::DelayReq, self.config.domain, self.identity, self.delay_seq);
        let header = Header { major_sdo_id: self.config.major_sdo_id, ..header };
        let data = Message { header, body: Body::DelayReq { origin_timestamp: origin } }.to_bytes();
        self.transmits.push_back(Transmit { channel: Channel::Event, data, sequence_id: self.delay_seq });
        self.delay = Some(PendingDelay { sequence_id: self.delay_seq, tx_local_ns: None, t4_ns: None });
        // Uniform in [I/2, 3I/2]: mean I, never in lockstep with other slaves.
        let interval = bmca::log_interval_ns(self.delay_log_interval());
        let jitter = self.random() % interval.max(1);
        self.next_delay_req = now + interval / 2 + jitter;
    }

    fn on_delay_resp(&mut self, h: &Header, receive: Timestamp, requesting: PortIdentity) {
        if !self.is_parent(&h.source) {
            return self.reject(Reject::NotSelectedMaster);
        }
        if requesting != self.identity {
            return self.reject(Reject::OtherRequester);
        }
        let Some(pending) = self.delay.as_mut().filter(|d| d.sequence_id == h.sequence_id && d.t4_ns.is_none()) else {
            return self.reject(Reject::Unmatched);
        };
        pending.t4_ns = Some(receive.as_ns() - h.correction_ns());
        if h.log_message_interval != 0x7f {
            self.master_log_delay_interval = h.log_message_interval;
        }
        self.complete_delay();
    }

    fn complete_delay(&mut self) {
        let Some(PendingDelay { tx_local_ns: Some(t3), t4_ns: Some(t4), .. }) = self.delay else { return };
        self.delay = None;
        match self.servo.delay(t3, t4) {
            Verdict::Used { .. } => self.delay_count += 1,
            Verdict::Outlier | Verdict::Reset => self.reject(Reject::Outlier),
        }
        self.update_lock();
    }
}

#[cfg(test)]
mod tests;
