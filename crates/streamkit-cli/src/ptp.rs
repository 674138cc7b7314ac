//! `streamkit ptp status`: the in-process PTP client's live status, like
//! `ptp4l -m` or `pmc 'GET CURRENT_DATA_SET'`.
//!
//! ```text
//! streamkit ptp status --iface eth0 --domain 0 --duration 30 --json
//! ```
//!
//! One line per interval (and one at every state change); with `--json`,
//! one JSON object per line with `state`, `offset_ns`, `mean_path_delay_ns`
//! and `master`, among others. It never touches the machine's clock.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use streamkit_core::{Error, Result};
use streamkit_sync::ptp::client::Snapshot;
use streamkit_sync::ptp::{PtpClient, PtpClientConfig, PtpStatus, TimestampingMode};

#[derive(Args)]
pub struct PtpArgs {
    #[command(subcommand)]
    pub command: PtpCommand,
}

#[derive(Subcommand)]
pub enum PtpCommand {
    /// Run the PTP client (slave only) and print its state, offset and path delay.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    /// Network interface (default: the first up, multicast, IPv4 one).
    #[arg(long)]
    pub iface: Option<String>,
    /// PTP domain, 0-255 (SMPTE ST 2059-2 uses 127).
    #[arg(long, default_value_t = 0)]
    pub domain: u8,
    /// Seconds to run, then exit (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds between lines (at most 1).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Timestamps: auto (hardware if the NIC can), hardware, software, user.
    #[arg(long, default_value = "auto")]
    pub timestamping: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn ptp(args: PtpArgs) -> Result<()> {
    match args.command {
        PtpCommand::Status(args) => status(args).await,
    }
}

async fn status(args: StatusArgs) -> Result<()> {
    let timestamping = TimestampingMode::parse(&args.timestamping).ok_or_else(|| {
        Error::invalid(format!("unknown timestamping '{}'; known: auto, hardware, software, user", args.timestamping))
    })?;
    if !(args.interval > 0.0 && args.interval <= 1.0) {
        return Err(Error::invalid(format!("--interval {} must be in (0, 1] seconds", args.interval)));
    }
    let duration = match args.duration {
        Some(d) if !(d >= 0.0 && d.is_finite()) => {
            return Err(Error::invalid(format!("--duration {d} must be a positive number of seconds")))
        }
        Some(d) => Some(Duration::from_secs_f64(d)),
        None => None,
    };
    let config =
        PtpClientConfig { interface: args.iface.clone(), domain: args.domain, timestamping, ..Default::default() };
    let mut client = PtpClient::start(config).await?;
    let started = Instant::now();
    let first = client.snapshot();
    if !args.json {
        println!(
            "PTP client on {} ({} timestamps), domain {}, port {}",
            first.interface, first.timestamping, args.domain, first.status.port_identity
        );
    }
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(args.interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_state = first.status.state;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let left = duration.map(|d| d.saturating_sub(started.elapsed()));
        if left.is_some_and(|l| l.is_zero()) {
            break;
        }
        let deadline = tokio::time::sleep(left.unwrap_or(Duration::from_secs(3600)));
        tokio::select! {
            _ = ticker.tick() => {}
            changed = client.changed() => {
                changed?;
                if client.status().state == last_state {
                    continue;
                }
            }
            _ = deadline => break,
            _ = &mut ctrl_c => break,
        }
        let snapshot = client.snapshot();
        last_state = snapshot.status.state;
        let elapsed = started.elapsed().as_secs_f64();
        if args.json {
            println!("{}", status_json(&snapshot, elapsed));
        } else {
            println!("{}", status_line(&snapshot.status, elapsed));
        }
    }
    Ok(())
}

fn status_json(snapshot: &Snapshot, elapsed: f64) -> Value {
    let s = &snapshot.status;
    let rejected: serde_json::Map<String, Value> =
        s.rejected.iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.name().to_string(), json!(n))).collect();
    let round = |x: Option<f64>| x.map(|v| (v * 10.0).round() / 10.0);
    json!({
        "time_s": (elapsed * 1000.0).round() / 1000.0,
        "state": s.state.name(),
        "locked": s.state == streamkit_sync::ptp::PortState::Slave,
        "offset_ns": s.offset_ns,
        "mean_path_delay_ns": s.mean_path_delay_ns,
        "master": s.master.map(|m| m.port.to_string()),
        "grandmaster": s.master.map(|m| m.grandmaster.to_string()),
        "steps_removed": s.master.map(|m| m.steps_removed),
        "grandmaster_priority1": s.master.map(|m| m.priority1),
        "grandmaster_clock_class": s.master.map(|m| m.quality.clock_class),
        "ptp_timescale": s.master.map(|m| m.ptp_timescale),
        "domain": s.domain,
        "frequency_ppb": round(s.frequency_ppb),
        "sync_jitter_ns": round(s.sync_jitter_ns),
        "estimated_error_ns": round(s.estimated_error_ns),
        "syncs": s.syncs,
        "delay_exchanges": s.delay_exchanges,
        "foreign_masters": s.foreign_masters,
        "log_sync_interval": s.log_sync_interval,
        "log_delay_req_interval": s.log_delay_req_interval,
        "port_identity": s.port_identity.to_string(),
        "interface": snapshot.interface,
        "timestamping": snapshot.timestamping,
        "rejected": rejected,
        "fault": s.fault,
    })
}

fn status_line(s: &PtpStatus, elapsed: f64) -> String {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    let master = s.master.map(|m| format!("{} (steps {})", m.port, m.steps_removed)).unwrap_or_else(|| "none".into());
    let freq = s.frequency_ppb.map(|f| format!("{f:+.1}")).unwrap_or_else(|| "-".into());
    let rejected = s.rejected.total();
    let mut line = format!(
        "ptp[{elapsed:8.3}] {:<12} master {master}  offset {:>8} ns  delay {:>7} ns  freq {freq:>8} ppb  syncs {}  domain {}",
        s.state.name(),
        opt(s.offset_ns),
        opt(s.mean_path_delay_ns),
        s.syncs,
        s.domain,
    );
    if rejected > 0 {
        line.push_str(&format!("  ignored {rejected}"));
    }
    if let Some(fault) = &s.fault {
        line.push_str(&format!("  fault: {fault}"));
    }
    line
}
