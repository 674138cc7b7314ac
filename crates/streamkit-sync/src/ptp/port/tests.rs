//! The port driven by simulated masters, faster than real time.

use super::*;
use crate::ptp::wire::{Announce, ClockQuality, FLAG_TWO_STEP};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const EPOCH: i128 = 1_700_000_000_000_000_000;

/// Deterministic uniform noise in [-1, 1).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A master whose clock is `local + offset` running `ppb` fast, `delay_ns`
/// away, with uniform jitter on every one-way trip.
struct SimMaster {
    port: PortIdentity,
    priority1: u8,
    clock_class: u8,
    domain: u8,
    offset: i128,
    ppb: f64,
    delay_ns: u64,
    jitter_ns: f64,
    two_step: bool,
    log_sync: i8,
    log_announce: i8,
    sync_seq: u16,
    announce_seq: u16,
    next_sync: u64,
    next_announce: u64,
    alive: bool,
    noise: Noise,
}

impl SimMaster {
    fn new(id: u8, priority1: u8) -> SimMaster {
        SimMaster {
            port: PortIdentity { clock: ClockIdentity([0xaa, id, 0, 0xff, 0xfe, 0, 0, id]), port: 1 },
            priority1,
            clock_class: 248,
            domain: 0,
            offset: EPOCH,
            ppb: 0.0,
            delay_ns: 2_500,
            jitter_ns: 0.0,
            two_step: true,
            log_sync: -3,
            log_announce: 0,
            sync_seq: 0,
            announce_seq: 0,
            next_sync: 0,
            next_announce: 0,
            alive: true,
            noise: Noise(0x1234_5678 + id as u64),
        }
    }

    fn time(&self, local: u64) -> i128 {
        local as i128 + self.offset + (local as f64 * self.ppb * 1e-9) as i128
    }

    fn trip(&mut self) -> u64 {
        (self.delay_ns as f64 + self.noise.next() * self.jitter_ns).max(0.0) as u64
    }

    fn header(&self, message_type: MessageType, seq: u16, log: i8) -> Header {
        let mut h = Header::new(message_type, self.domain, self.port, seq);
        h.log_message_interval = log;
        h
    }

    fn announce(&self) -> Vec<u8> {
        let body = Body::Announce(Announce {
            origin_timestamp: Timestamp::default(),
            current_utc_offset: 37,
            grandmaster_priority1: self.priority1,
            grandmaster_quality: ClockQuality {
                clock_class: self.clock_class,
                clock_accuracy: 0xfe,
                offset_scaled_log_variance: 0xffff,
            },
            grandmaster_priority2: 128,
            grandmaster_identity: self.port.clock,
            steps_removed: 0,
            time_source: 0xa0,
        });
        Message { header: self.header(MessageType::Announce, self.announce_seq, self.log_announce), body }.to_bytes()
    }

    /// Sends what is due at `now` into the port.
    fn tick(&mut self, now: u64, port: &mut PtpPort) {
        if !self.alive {
            return;
        }
        if now >= self.next_announce {
            self.announce_seq = self.announce_seq.wrapping_add(1);
            port.handle_input(now, Input::General { data: &self.announce() });
            self.next_announce = now + bmca::log_interval_ns(self.log_announce);
        }
        if now >= self.next_sync {
            self.sync_seq = self.sync_seq.wrapping_add(1);
            let t1 = self.time(now);
            let rx = now + self.trip();
            let mut header = self.header(MessageType::Sync, self.sync_seq, self.log_sync);
            if self.two_step {
                header.flags = FLAG_TWO_STEP;
                let sync = Message { header, body: Body::Sync { origin_timestamp: Timestamp::default() } };
                port.handle_input(rx, Input::Event { data: &sync.to_bytes(), rx_local_ns: rx });
                // Part of t1 travels in the correction field, as a transparent clock would put it.
                let follow = Message {
                    header: Header {
                        correction: 100 << 16,
                        ..self.header(MessageType::FollowUp, self.sync_seq, self.log_sync)
                    },
                    body: Body::FollowUp { precise_origin_timestamp: Timestamp::from_ns(t1 - 100) },
                };
                port.handle_input(rx + 20 * 1000, Input::General { data: &follow.to_bytes() });
            } else {
                let sync = Message { header, body: Body::Sync { origin_timestamp: Timestamp::from_ns(t1) } };
                port.handle_input(rx, Input::Event { data: &sync.to_bytes(), rx_local_ns: rx });
            }
            self.next_sync = now + bmca::log_interval_ns(self.log_sync);
        }
    }

    /// Answers a Delay_Req sent at `tx` (if it is a Delay_Req addressed to the domain).
    fn answer(&mut self, tx: u64, data: &[u8], port: &mut PtpPort) {
        if !self.alive {
            return;
        }
        let Ok(Message { header, body: Body::DelayReq { .. } }) = wire::parse(data) else { return };
        if header.domain != self.domain {
            return;
        }
        let arrival = tx + self.trip();
        let t4 = self.time(arrival);
        let mut resp = self.header(MessageType::DelayResp, header.sequence_id, 0);
        resp.correction = 50 << 16;
        let body = Body::DelayResp { receive_timestamp: Timestamp::from_ns(t4 + 50), requesting_port: header.source };
        port.handle_input(arrival + 30 * 1000, Input::General { data: &Message { header: resp, body }.to_bytes() });
    }
}

/// Runs the port against `masters` from `from` to `to` in 1 ms steps;
/// calls `each` after every step.
fn run(
    port: &mut PtpPort,
    masters: &mut [SimMaster],
    from: u64,
    to: u64,
    mut each: impl FnMut(u64, &mut PtpPort, &mut [SimMaster]),
) -> Vec<PortEvent> {
    let mut events = Vec::new();
    let mut now = from;
    while now < to {
        for m in masters.iter_mut() {
            m.tick(now, port);
        }
        port.handle_timeout(now);
        loop {
            match port.poll_output(now) {
                Output::Transmit(t) => {
                    assert_eq!(t.channel, Channel::Event);
                    port.handle_input(now, Input::TxTimestamp { sequence_id: t.sequence_id, tx_local_ns: now });
                    for m in masters.iter_mut() {
                        m.answer(now, &t.data, port);
                    }
                }
                Output::Event(e) => events.push(e),
                Output::Timeout(_) => break,
            }
        }
        each(now, port, masters);
        now += MS;
    }
    events
}

fn error_ns(port: &PtpPort, master: &SimMaster, at: u64) -> i128 {
    port.time_map().expect("a time map").to_ptp(at) as i128 - master.time(at)
}

fn converges(two_step: bool) {
    let mut port = PtpPort::new(PtpConfig::default());
    let mut m = SimMaster::new(1, 128);
    m.two_step = two_step;
    m.ppb = 20_000.0; // 20 ppm
    m.jitter_ns = 500.0;
    m.delay_ns = 3_000;
    let mut locked_at = None;
    let mut masters = [m];
    run(&mut port, &mut masters, 10 * S, 40 * S, |now, port, _| {
        if port.is_locked() && locked_at.is_none() {
            locked_at = Some(now - 10 * S);
        }
    });
    let locked_at = locked_at.expect("locked");
    // Two announces qualify the master (1 s apart), then Syncs and two delay exchanges.
    assert!(locked_at < 4 * S, "locked after {} ms", locked_at / MS);
    let status = port.status();
    assert_eq!(status.state, PortState::Slave);
    assert_eq!(status.master.unwrap().port, masters[0].port);
    assert!((status.mean_path_delay_ns.unwrap() - 3_000).abs() < 300, "{status:?}");
    assert!((status.frequency_ppb.unwrap() - 20_000.0).abs() < 100.0, "{status:?}");
    for at in [40 * S, 40 * S + 100 * MS] {
        let err = error_ns(&port, &masters[0], at);
        assert!(err.abs() < 300, "two_step {two_step}: error {err} ns");
    }
    assert_eq!(status.rejected.get(Reject::Outlier), 0);
    assert!(status.syncs > 200);
}

#[test]
fn converges_two_step() {
    converges(true);
}

#[test]
fn converges_one_step() {
    converges(false);
}

#[test]
fn follows_the_best_master_and_fails_over() {
    let mut port = PtpPort::new(PtpConfig::default());
    let mut worse = SimMaster::new(1, 100);
    worse.offset = EPOCH + 5_000; // a different timescale, to see whom we follow
    let better = SimMaster::new(2, 50);
    let mut masters = [worse, better];
    let events = run(&mut port, &mut masters, S, 10 * S, |_, _, _| {});
    let status = port.status();
    assert_eq!(status.state, PortState::Slave);
    assert_eq!(status.master.unwrap().port, masters[1].port, "priority1 50 beats 100");
    assert!(error_ns(&port, &masters[1], 10 * S).abs() < 100);
    assert!(status.rejected.get(Reject::NotBestMaster) > 0, "the worse master's announces are counted");
    assert!(status.rejected.get(Reject::NotSelectedMaster) > 0, "and its Syncs ignored");
    assert!(events.iter().any(|e| matches!(e, PortEvent::MasterChanged { to: Some(p), .. } if *p == masters[1].port)));

    // The better master dies: after 3 announce intervals we take the other.
    masters[1].alive = false;
    let mut failed_over_at = None;
    run(&mut port, &mut masters, 10 * S, 20 * S, |now, port, masters| {
        let follows_worse = port.status().master.is_some_and(|m| m.port == masters[0].port);
        if follows_worse && port.is_locked() && failed_over_at.is_none() {
            failed_over_at = Some(now - 10 * S);
        }
    });
    let after = failed_over_at.expect("failed over");
    assert!(after <= 5 * S, "failover took {} ms", after / MS);
    assert!(error_ns(&port, &masters[0], 20 * S).abs() < 100);
}

#[test]
fn announce_timeout_without_backup_goes_listening_and_holds_over() {
    let mut port = PtpPort::new(PtpConfig::default());
    let mut masters = [SimMaster::new(1, 128)];
    run(&mut port, &mut masters, S, 8 * S, |_, _, _| {});
    assert!(port.is_locked());
    masters[0].alive = false;
    run(&mut port, &mut masters, 8 * S, 15 * S, |_, _, _| {});
    assert_eq!(port.state(), PortState::Listening);
    assert!(port.status().master.is_none());
    // Holdover: the last map still tells the time.
    assert!(error_ns(&port, &masters[0], 15 * S).abs() < 100);
}

#[test]
fn domain_selection_ignores_other_domains() {
    let mut port = PtpPort::new(PtpConfig { domain: 127, ..PtpConfig::default() });
    let mut other = SimMaster::new(1, 1);
    other.domain = 0;
    let mut ours = SimMaster::new(2, 200);
    ours.domain = 127;
    ours.offset = EPOCH + 1_000_000;
    let mut masters = [other, ours];
    run(&mut port, &mut masters, S, 8 * S, |_, _, _| {});
    assert_eq!(port.status().master.unwrap().port, masters[1].port);
    assert!(port.status().rejected.get(Reject::WrongDomain) > 0);
    assert!(error_ns(&port, &masters[1], 8 * S).abs() < 100);
}

fn hostile_datagrams(master: &SimMaster, us: PortIdentity) -> Vec<(Channel, Vec<u8>, Reject)> {
    let sync = |m: &SimMaster, t: i128| {
        Message {
            header: Header { flags: 0, ..m.header(MessageType::Sync, 999, -3) },
            body: Body::Sync { origin_timestamp: Timestamp::from_ns(t) },
        }
        .to_bytes()
    };
    let good = sync(master, EPOCH);
    let mut out = Vec::new();
    out.push((Channel::Event, good[..20].to_vec(), Reject::Truncated));
    out.push((Channel::Event, Vec::new(), Reject::Truncated));
    let mut long = good.clone();
    long[2..4].copy_from_slice(&200u16.to_be_bytes());
    out.push((Channel::Event, long, Reject::Truncated));
    let mut v1 = good.clone();
    v1[1] = 0x01;
    out.push((Channel::Event, v1, Reject::WrongVersion));
    let mut v3 = good.clone();
    v3[1] = 0x03;
    out.push((Channel::Event, v3, Reject::WrongVersion));
    let mut unknown = good.clone();
    unknown[0] = 0x07;
    out.push((Channel::Event, unknown, Reject::UnknownType));
    let mut bad_ns = good.clone();
    bad_ns[40..44].copy_from_slice(&u32::MAX.to_be_bytes());
    out.push((Channel::Event, bad_ns, Reject::BadTimestamp));
    let mut domain = good.clone();
    domain[4] = 42;
    out.push((Channel::Event, domain, Reject::WrongDomain));
    let mut sdo = good.clone();
    sdo[0] |= 0x10;
    out.push((Channel::Event, sdo, Reject::WrongSdo));
    out.push((Channel::General, good.clone(), Reject::WrongPort));
    // Our own Delay_Req looped back.
    let own = Message {
        header: Header::new(MessageType::DelayReq, 0, us, 1),
        body: Body::DelayReq { origin_timestamp: Timestamp::default() },
    };
    out.push((Channel::Event, own.to_bytes(), Reject::OwnMessage));
    // Another slave's Delay_Req, and a management message.
    let mut stranger = SimMaster::new(0x77, 128);
    let other_req = Message {
        header: stranger.header(MessageType::DelayReq, 5, 0x7f),
        body: Body::DelayReq { origin_timestamp: Timestamp::default() },
    };
    out.push((Channel::Event, other_req.to_bytes(), Reject::NotForSlave));
    let management = Message { header: stranger.header(MessageType::Management, 5, 0x7f), body: Body::Other };
    out.push((Channel::General, management.to_bytes(), Reject::NotForSlave));
    // A forged announce from a worse clock.
    stranger.priority1 = 250;
    stranger.clock_class = 255;
    out.push((Channel::General, stranger.announce(), Reject::NotBestMaster));
    // An announce that went round the world.
    let mut looped = stranger.announce();
    looped[61..63].copy_from_slice(&255u16.to_be_bytes());
    out.push((Channel::General, looped, Reject::StepsRemoved));
    // The master's own Sync replayed (its sequence id 999 is far off).
    out.push((Channel::Event, good.clone(), Reject::BadSequence));
    // A Sync (one second off) and Follow_Up from a master we do not follow.
    stranger.offset = EPOCH + S as i128;
    out.push((Channel::Event, sync(&stranger, stranger.time(0)), Reject::NotSelectedMaster));
    let follow = Message {
        header: stranger.header(MessageType::FollowUp, 1, -3),
        body: Body::FollowUp { precise_origin_timestamp: Timestamp::default() },
    };
    out.push((Channel::General, follow.to_bytes(), Reject::NotSelectedMaster));
    // Delay_Resps: for another slave, and for a request we never sent.
    let resp = |requesting: PortIdentity, seq: u16| {
        Message {
            header: master.header(MessageType::DelayResp, seq, 0),
            body: Body::DelayResp { receive_timestamp: Timestamp::default(), requesting_port: requesting },
        }
        .to_bytes()
    };
    out.push((Channel::General, resp(stranger.port, 1), Reject::OtherRequester));
    out.push((Channel::General, resp(us, 0xdead), Reject::Unmatched));
    out
}

#[test]
fn hostile_datagrams_are_counted_and_never_steer() {
    let mut port = PtpPort::new(PtpConfig::default());
    let mut masters = [SimMaster::new(1, 128)];
    masters[0].log_sync = 0; // one Sync per second: room between them
    run(&mut port, &mut masters, S, 10 * S + 500 * MS, |_, _, _| {});
    assert!(port.is_locked());
    let before = port.status();
    let map_before = port.time_map().unwrap();
    let hostile = hostile_datagrams(&masters[0], before.port_identity);
    let now = 10 * S + 500 * MS;
    for (channel, data, _) in &hostile {
        match channel {
            Channel::Event => port.handle_input(now, Input::Event { data, rx_local_ns: now }),
            Channel::General => port.handle_input(now, Input::General { data }),
        }
    }
    let after = port.status();
    for reason in Reject::ALL {
        let expected = hostile.iter().filter(|(_, _, r)| *r == reason).count() as u64;
        assert_eq!(
            after.rejected.get(reason) - before.rejected.get(reason),
            expected,
            "{}: expected {expected}",
            reason.name()
        );
    }
    assert_eq!(port.time_map().unwrap(), map_before, "no hostile datagram moved the clock");
    assert_eq!(after.state, PortState::Slave);
    assert_eq!(after.master, before.master);
    assert_eq!(after.syncs, before.syncs);
}

#[test]
fn fuzzed_datagrams_never_panic_or_steer() {
    for seed in [99, 7, 12345] {
        fuzz(seed);
    }
}

fn fuzz(seed: u64) {
    let mut port = PtpPort::new(PtpConfig::default());
    let mut masters = [SimMaster::new(1, 128)];
    run(&mut port, &mut masters, S, 8 * S, |_, _, _| {});
    assert!(port.is_locked());
    let templates: Vec<Vec<u8>> = hostile_datagrams(&masters[0], port.status().port_identity)
        .into_iter()
        .map(|(_, d, _)| d)
        .chain([masters[0].announce()])
        .collect();
    let mut noise = Noise(seed);
    let mut rand = move || ((noise.next() + 1.0) * 1e6) as usize;
    run(&mut port, &mut masters, 8 * S, 20 * S, |now, port, masters| {
        // Ten mutated datagrams per millisecond between the real traffic:
        // random bytes flipped, but the master's identity kept, so some of
        // them pass as the master's own messages.
        for _ in 0..10 {
            let mut d = templates[rand() % templates.len()].clone();
            if d.len() >= 30 && rand() % 2 == 0 {
                d[20..30].copy_from_slice(&masters[0].announce()[20..30]);
            }
            for _ in 0..rand() % 4 {
                let at = rand() % d.len().max(1);
                if let Some(b) = d.get_mut(at) {
                    *b = rand() as u8;
                }
            }
            d.truncate(rand() % (d.len() + 8));
            if rand() % 2 == 0 {
                port.handle_input(now, Input::Event { data: &d, rx_local_ns: now });
            } else {
                port.handle_input(now, Input::General { data: &d });
            }
        }
    });
    assert!(port.status().rejected.total() > 100_000);
    let err = error_ns(&port, &masters[0], 20 * S);
    let status = port.status();
    let counts: Vec<_> =
        status.rejected.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{}={n}", r.name())).collect();
    assert!(
        err.abs() < 2_000,
        "seed {seed}: error {err} ns after the fuzzing: {status:?} {counts:?} {:?}",
        port.time_map()
    );
}
