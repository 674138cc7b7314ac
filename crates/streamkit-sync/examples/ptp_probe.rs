//! Runs the in-process PTP client and prints one JSON line per Sync used
//! (and on every state change), for tests and for looking at a network.
//!
//! ```text
//! cargo run -p streamkit-sync --example ptp_probe -- --iface eth0 --domain 0 --duration 30
//! ```
//!
//! Besides the status, each line carries `error_vs_realtime_ns`: our PTP
//! clock minus this machine's `CLOCK_REALTIME` at the same instant. When the
//! grandmaster runs on the same machine's clock (ptp4l with software
//! timestamps in another network namespace), that is our true error.

use std::time::{Duration, Instant};

use serde_json::json;
use streamkit_core::time::realtime_ns;
use streamkit_sync::clock::{sample_pair, Clock};
use streamkit_sync::ptp::{PtpClient, PtpClientConfig, PtpStatus, TimestampingMode};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn line(status: &PtpStatus, started: Instant, error: Option<i64>) -> serde_json::Value {
    let rejected: serde_json::Map<String, serde_json::Value> =
        status.rejected.iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.name().to_string(), json!(n))).collect();
    json!({
        "t_ms": started.elapsed().as_millis() as u64,
        "state": status.state.name(),
        "offset_ns": status.offset_ns,
        "error_vs_realtime_ns": error,
        "mean_path_delay_ns": status.mean_path_delay_ns,
        "frequency_ppb": status.frequency_ppb.map(|f| (f * 10.0).round() / 10.0),
        "master": status.master.map(|m| m.port.to_string()),
        "grandmaster": status.master.map(|m| m.grandmaster.to_string()),
        "steps_removed": status.master.map(|m| m.steps_removed),
        "syncs": status.syncs,
        "delay_exchanges": status.delay_exchanges,
        "rejected": rejected,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> streamkit_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let duration = Duration::from_secs_f64(arg(&args, "--duration").and_then(|d| d.parse().ok()).unwrap_or(30.0));
    let config = PtpClientConfig {
        interface: arg(&args, "--iface"),
        domain: arg(&args, "--domain").and_then(|d| d.parse().ok()).unwrap_or(0),
        timestamping: arg(&args, "--timestamping").and_then(|t| TimestampingMode::parse(&t)).unwrap_or_default(),
        ..Default::default()
    };
    let mut client = PtpClient::start(config).await?;
    let clock = client.clock();
    let started = Instant::now();
    let snapshot = client.snapshot();
    println!(
        "{}",
        json!({"event": "started", "interface": snapshot.interface, "timestamping": snapshot.timestamping,
               "identity": snapshot.status.port_identity.to_string()})
    );
    let (mut last_syncs, mut last_state) = (u64::MAX, None);
    while started.elapsed() < duration {
        let left = duration.saturating_sub(started.elapsed());
        if tokio::time::timeout(left, client.changed()).await.is_err() {
            break;
        }
        let status = client.status();
        if status.syncs == last_syncs && Some(status.state) == last_state {
            continue;
        }
        (last_syncs, last_state) = (status.syncs, Some(status.state));
        let (mono, rt) = sample_pair(realtime_ns);
        let error = clock.at_monotonic(mono).map(|ours| ours as i64 - rt as i64);
        let mut value = line(&status, started, error);
        let snapshot = client.snapshot();
        value["tx_timestamps"] = json!(snapshot.tx_timestamps);
        value["tx_timestamps_missed"] = json!(snapshot.tx_timestamps_missed);
        println!("{value}");
    }
    Ok(())
}
