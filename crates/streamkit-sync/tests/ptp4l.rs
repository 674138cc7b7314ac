//! Real-peer tests: linuxptp's `ptp4l` as grandmaster in one network
//! namespace, our PTP client in another, joined by veth pairs.
//!
//! Both namespaces share the machine's clock, and ptp4l with software
//! timestamps serves `CLOCK_REALTIME`, so our synchronised clock minus
//! `CLOCK_REALTIME` at the same instant is our true error. ptp4l's own
//! slave (free running: it does not steer the shared clock) runs beside us
//! on the same interface for comparison.
//!
//! Needs root (namespaces, ports 319/320) and ptp4l: skipped with a note
//! otherwise — except under `CI=true`, where a missing tool or root fails.
//! Every namespace and process is removed by a guard, also on failure.
//!
//! Our client runs in a child process: this test binary re-executed inside
//! the namespace (`ip netns exec NS <this binary> probe_child --exact`),
//! with `STREAMKIT_PTP_PROBE` telling `probe_child` what to do.

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streamkit_testkit::netns::{self, ip, wait_line, Lab};

const PROBE_ENV: &str = "STREAMKIT_PTP_PROBE";

/// The two scenarios share the machine's two cores: one at a time, so the
/// accuracy measurement is not disturbed by the other test.
static SERIAL: Mutex<()> = Mutex::new(());

/// ptp4l present, root and `ip`; else skip (or fail in CI).
fn can_run() -> bool {
    if std::env::var(PROBE_ENV).is_ok() {
        return false; // we are the child
    }
    streamkit_testkit::require_tool("ptp4l") && netns::available("the PTP real-peer test")
}

fn ptp4l_master(lab: &mut Lab, ns: &str, dev: &str, priority1: u8, extra: &[&str]) -> (String, mpsc::Receiver<String>) {
    let priority = format!("--priority1={priority1}");
    let mut cmd = vec!["ptp4l", "-i", dev, "-S", "-m", "--masterOnly=1", &priority, "--logSyncInterval=-3"];
    cmd.extend_from_slice(extra);
    let label = format!("ptp4l-master-{priority1}");
    let rx = lab.spawn(&label, ns, &cmd, &[]);
    let mut seen = Vec::new();
    let line = wait_line(&rx, &mut seen, Duration::from_secs(30), |l| l.contains("as best master"));
    let line = line.unwrap_or_else(|| panic!("ptp4l grandmaster did not start:\n{}", seen.join("\n")));
    // "selected local clock 8a6ce9.fffe.c6fa6d as best master"
    let identity = line.split_whitespace().skip_while(|w| *w != "clock").nth(1).expect("identity").to_string();
    assert!(
        wait_line(&rx, &mut seen, Duration::from_secs(5), |l| l.contains("grand master role")).is_some()
            || seen.iter().any(|l| l.contains("grand master role")),
        "ptp4l did not become grandmaster:\n{}",
        seen.join("\n")
    );
    (identity, rx)
}

fn probe(lab: &mut Lab, ns: &str, dev: &str, seconds: u32) -> mpsc::Receiver<String> {
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap().to_string();
    let spec = format!("{dev} 0 {seconds}");
    lab.spawn("probe", ns, &[&exe, "probe_child", "--exact", "--nocapture", "--test-threads=1"], &[(PROBE_ENV, spec)])
}

fn p95(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * 0.95).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Probe lines as JSON ("PROBE {...}").
fn parse_probe(line: &str) -> Option<Value> {
    serde_json::from_str(line.strip_prefix("PROBE ")?).ok()
}

/// (|offset|, path delay) of ptp4l's "master offset … path delay …" lines.
fn parse_ptp4l_sample(line: &str) -> Option<(f64, f64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "offset")?;
    (words.get(at - 1) == Some(&"master")).then_some(())?;
    let offset: f64 = words.get(at + 1)?.parse().ok()?;
    let delay: f64 = words.last()?.parse().ok()?;
    Some((offset.abs(), delay))
}

/// Sends hostile PTP datagrams into namespace `ns` through `dev` (from a
/// thread that joins the namespace; the test process stays where it is).
fn send_hostile(ns: &str, dev: &str, domain: u8) {
    use streamkit_sync::ptp::wire::{
        self, Announce, Body, ClockIdentity, ClockQuality, Header, Message, MessageType, PortIdentity, Timestamp,
    };
    let (ns, dev) = (ns.to_string(), dev.to_string());
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
        // SAFETY: a namespace fd; affects only this thread.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let index = std::ffi::CString::new(dev).unwrap();
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(index.as_ptr()) };
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: index as i32,
        };
        let zero: libc::c_int = 0;
        // SAFETY: valid option buffers of the sizes given.
        unsafe {
            let fd = socket.as_raw_fd();
            let size = std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t;
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                &mreq as *const _ as *const libc::c_void,
                size,
            );
            let int = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            libc::setsockopt(
                fd,
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_LOOP,
                &zero as *const _ as *const libc::c_void,
                int,
            );
        }
        let stranger = PortIdentity { clock: ClockIdentity([0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1]), port: 1 };
        let sync = |domain: u8| {
            Message {
                header: Header::new(MessageType::Sync, domain, stranger, 7),
                body: Body::Sync { origin_timestamp: Timestamp::from_ns(1) },
            }
            .to_bytes()
        };
        let mut wrong_version = sync(domain);
        wrong_version[1] = 1;
        let worse = Message {
            header: Header::new(MessageType::Announce, domain, stranger, 1),
            body: Body::Announce(Announce {
                origin_timestamp: Timestamp::default(),
                current_utc_offset: 37,
                grandmaster_priority1: 250,
                grandmaster_quality: ClockQuality {
                    clock_class: 255,
                    clock_accuracy: 0xfe,
                    offset_scaled_log_variance: 0xffff,
                },
                grandmaster_priority2: 255,
                grandmaster_identity: stranger.clock,
                steps_removed: 0,
                time_source: 0xa0,
            }),
        }
        .to_bytes();
        let datagrams: Vec<(Vec<u8>, u16)> = vec![
            (vec![0x0b, 0x02, 0, 0x40, 0, 0, 0, 0, 0, 0], wire::GENERAL_PORT),
            (wrong_version, wire::EVENT_PORT),
            (sync(domain.wrapping_add(5)), wire::EVENT_PORT),
            (worse, wire::GENERAL_PORT),
            (sync(domain), wire::EVENT_PORT),
        ];
        for _ in 0..5 {
            for (data, port) in &datagrams {
                socket.send_to(data, (wire::PRIMARY_MULTICAST, *port)).expect("sending a hostile datagram");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .join()
    .expect("hostile sender");
}

/// The child: our client in the namespace, one JSON line per Sync.
#[test]
fn probe_child() {
    let Ok(spec) = std::env::var(PROBE_ENV) else { return };
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let (iface, domain, seconds): (String, u8, u64) =
        (parts[0].into(), parts[1].parse().unwrap(), parts[2].parse().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async move {
        use streamkit_core::time::realtime_ns;
        use streamkit_sync::clock::{sample_pair, Clock};
        use streamkit_sync::ptp::{PtpClient, PtpClientConfig};
        let config = PtpClientConfig { interface: Some(iface), domain, ..Default::default() };
        let mut client = PtpClient::start(config).await.expect("starting the PTP client");
        let clock = client.clock();
        let started = Instant::now();
        let mut last = (u64::MAX, None);
        while started.elapsed() < Duration::from_secs(seconds) {
            let left = Duration::from_secs(seconds).saturating_sub(started.elapsed());
            if tokio::time::timeout(left, client.changed()).await.is_err() {
                break;
            }
            let s = client.status();
            if (s.syncs, Some(s.state)) == last {
                continue;
            }
            last = (s.syncs, Some(s.state));
            let (mono, rt) = sample_pair(realtime_ns);
            let error = clock.at_monotonic(mono).map(|ours| ours as i64 - rt as i64);
            let rejected: serde_json::Map<String, Value> =
                s.rejected.iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.name().to_string(), json!(n))).collect();
            let line = json!({
                "t_ms": started.elapsed().as_millis() as u64,
                "state": s.state.name(),
                "offset_ns": s.offset_ns,
                "error_ns": error,
                "mean_path_delay_ns": s.mean_path_delay_ns,
                "grandmaster": s.master.map(|m| m.grandmaster.to_string()),
                "syncs": s.syncs,
                "rejected": rejected,
                "tx_timestamps_missed": client.snapshot().tx_timestamps_missed,
            });
            println!("PROBE {line}");
        }
    });
}

#[test]
fn ptp4l_grandmaster_lock_accuracy_and_hostile_packets() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    let mut lab = Lab::new("a");
    let (a, b) = (lab.ns("A"), lab.ns("B"));
    let (va, vb) = lab.veth(&a, "a", &b, "b");
    lab.up(&a, &va, Some("10.77.0.1/24"));
    lab.up(&b, &vb, Some("10.77.0.2/24"));
    let (gm, _gm_lines) = ptp4l_master(&mut lab, &a, &va, 1, &[]);

    // ptp4l's own slave beside ours: free running (the clock is shared),
    // one sample per second (the most ptp4l prints when not steering).
    let theirs = lab.spawn(
        "ptp4l-slave",
        &b,
        &["ptp4l", "-i", &vb, "-s", "-S", "-m", "--free_running=1", "--freq_est_interval=0", "--summary_interval=-3"],
        &[],
    );
    let seconds = 40;
    let ours = probe(&mut lab, &b, &vb, seconds);
    let started = Instant::now();

    let mut samples: Vec<Value> = Vec::new();
    let mut all = Vec::new();
    let mut lock_ms = None;
    let mut injected_at = None;
    while started.elapsed() < Duration::from_secs(seconds as u64 + 10) {
        let Ok(line) = ours.recv_timeout(Duration::from_secs(2)) else {
            if started.elapsed() > Duration::from_secs(seconds as u64 + 2) {
                break;
            }
            continue;
        };
        all.push(line.clone());
        let Some(v) = parse_probe(&line) else { continue };
        if v["state"] == "slave" && lock_ms.is_none() {
            lock_ms = v["t_ms"].as_u64();
        }
        if lock_ms.is_some() {
            samples.push(v.clone());
        }
        // Halfway, once locked: hostile datagrams from the grandmaster's side.
        if lock_ms.is_some() && injected_at.is_none() && started.elapsed() > Duration::from_secs(seconds as u64 / 2) {
            send_hostile(&a, &va, 0);
            injected_at = Some(samples.len());
        }
    }
    let lock_ms = lock_ms.unwrap_or_else(|| panic!("our client never locked:\n{}", all.join("\n")));
    assert!(lock_ms <= 10_000, "lock took {lock_ms} ms (deadline 10 s)");
    let last = samples.last().expect("samples after lock").clone();
    assert_eq!(last["grandmaster"], json!(gm));
    assert_eq!(last["state"], "slave", "still locked after the hostile datagrams: {last}");

    // Settle 2 s after lock, then: true error, reported offset, path delay.
    let settled: Vec<&Value> = samples.iter().filter(|v| v["t_ms"].as_u64().unwrap() >= lock_ms + 2_000).collect();
    let errors: Vec<f64> = settled.iter().filter_map(|v| v["error_ns"].as_f64()).map(f64::abs).collect();
    let offsets: Vec<f64> = settled.iter().filter_map(|v| v["offset_ns"].as_f64()).map(f64::abs).collect();
    let delays: Vec<f64> = settled.iter().filter_map(|v| v["mean_path_delay_ns"].as_f64()).collect();
    let (error_p95, offset_p95, delay) = (p95(errors.clone()), p95(offsets), median(delays));
    let mean_error: f64 = settled.iter().filter_map(|v| v["error_ns"].as_f64()).sum::<f64>() / errors.len() as f64;

    // Every hostile class counted, none of them steering.
    let rejected = &last["rejected"];
    for reason in ["truncated", "wrong_version", "wrong_domain", "not_best_master", "not_selected_master"] {
        assert!(rejected[reason].as_u64().unwrap_or(0) >= 5, "{reason} not counted: {rejected}");
    }
    let after: Vec<f64> =
        samples[injected_at.expect("injected")..].iter().filter_map(|v| v["error_ns"].as_f64()).map(f64::abs).collect();

    let mut their_lines = Vec::new();
    while let Ok(line) = theirs.try_recv() {
        their_lines.push(line);
    }
    let theirs: Vec<(f64, f64)> = their_lines.iter().filter_map(|l| parse_ptp4l_sample(l)).skip(2).collect();
    let report = if theirs.len() >= 5 {
        format!(
            "ptp4l's slave: |offset| p95 {:.0} ns over {} samples, path delay {:.0} ns",
            p95(theirs.iter().map(|t| t.0).collect()),
            theirs.len(),
            median(theirs.iter().map(|t| t.1).collect())
        )
    } else {
        format!("ptp4l's slave printed too few samples:\n{}", their_lines.join("\n"))
    };
    println!(
        "PTP vs ptp4l grandmaster (software timestamps, veth): locked {lock_ms} ms after start; \
         ours: |error| p95 {error_p95:.0} ns (mean {mean_error:+.0} ns) over {} samples, reported |offset| p95 \
         {offset_p95:.0} ns, path delay {delay:.0} ns; after hostile datagrams |error| max {:.0} ns; {report}",
        errors.len(),
        after.iter().cloned().fold(0.0, f64::max),
    );
    // Functional bounds only (the goal, p95 ≤ 1 µs, is reported above).
    assert!(error_p95 < 20_000.0, "our clock is {error_p95} ns off (p95)");
    assert!(delay > 0.0 && delay < 1_000_000.0, "path delay {delay}");
    assert_eq!(last["tx_timestamps_missed"], 0, "every Delay_Req had a kernel transmit timestamp");
}

#[test]
fn ptp4l_two_masters_best_is_followed_then_failover() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run() {
        return;
    }
    // Three namespaces on one bridge (in a fourth): two grandmasters, us.
    let mut lab = Lab::new("f");
    let (m1, m2, c, s) = (lab.ns("M"), lab.ns("N"), lab.ns("C"), lab.ns("S"));
    let bridge = format!("br{}", lab.tag());
    ip(&["-n", &s, "link", "add", &bridge, "type", "bridge", "mcast_snooping", "0"]);
    ip(&["-n", &s, "link", "set", &bridge, "up"]);
    let mut ends = Vec::new();
    for (ns, name, addr) in [(&m1, "m", "10.78.0.1/24"), (&m2, "n", "10.78.0.2/24"), (&c, "c", "10.78.0.3/24")] {
        let (inner, port) = lab.veth(ns, name, &s, &format!("{name}s"));
        lab.up(ns, &inner, Some(addr));
        ip(&["-n", &s, "link", "set", &port, "master", &bridge]);
        lab.up(&s, &port, None);
        ends.push(inner);
    }
    // Announces every 0.5 s: masters come up and time out faster.
    let fast = ["--logAnnounceInterval=-1"];
    let (best, _best_lines) = ptp4l_master(&mut lab, &m1, &ends[0], 10, &fast);
    let (backup, _backup_lines) = ptp4l_master(&mut lab, &m2, &ends[1], 20, &fast);
    assert_ne!(best, backup);
    let ours = probe(&mut lab, &c, &ends[2], 30);

    let mut seen = Vec::new();
    let follows = |gm: &str| {
        let gm = gm.to_string();
        move |l: &str| parse_probe(l).is_some_and(|v| v["state"] == "slave" && v["grandmaster"] == json!(gm))
    };
    let started = Instant::now();
    if wait_line(&ours, &mut seen, Duration::from_secs(15), follows(&best)).is_none() {
        panic!("never locked to the better master {best} (backup {backup}):\n{}", seen.join("\n"));
    }
    let locked = started.elapsed();
    // It stays with the better one while both run.
    std::thread::sleep(Duration::from_secs(3));
    let mut recent = Vec::new();
    while let Ok(line) = ours.try_recv() {
        recent.push(line);
    }
    let last = recent.iter().rev().find_map(|l| parse_probe(l)).expect("probe lines");
    assert_eq!(last["grandmaster"], json!(best), "switched away from the better master: {last}");

    lab.kill("ptp4l-master-10");
    let killed = Instant::now();
    if wait_line(&ours, &mut seen, Duration::from_secs(15), follows(&backup)).is_none() {
        panic!("no failover to {backup} after {best} stopped:\n{}", seen.join("\n"));
    }
    println!(
        "two masters: locked to the better ({best}) after {} ms; failed over to {backup} and locked {} ms after the \
         better one was killed",
        locked.as_millis(),
        killed.elapsed().as_millis()
    );
}
