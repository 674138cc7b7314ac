//! `streamkit probe`: what a source yields.

use clap::Args;
use streamkit_core::{Frame, Result};

#[derive(Args)]
pub struct ProbeArgs {
    /// The source to inspect.
    pub source: String,
    /// How many frames to read and describe.
    #[arg(long, default_value_t = 5)]
    pub frames: u64,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn probe(args: ProbeArgs) -> Result<()> {
    let registry = crate::plugins::registry();
    let mut source = registry.build_source(&args.source)?;
    let info = source.info();
    if args.json {
        let json = serde_json::json!({
            "source": info.description,
            "width": info.width,
            "height": info.height,
            "fps": info.fps.map(|f| f.to_string()),
            "live": info.live,
        });
        println!("{json}");
    } else {
        let size = match (info.width, info.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "unknown size".into(),
        };
        let fps = info.fps.map(|f| format!("{f} fps")).unwrap_or_else(|| "unknown rate".into());
        println!("{}: {size}, {fps}{}", info.description, if info.live { ", live" } else { "" });
    }
    for _ in 0..args.frames {
        let Some(frame) = source.next_frame().await? else {
            println!("{}", if args.json { r#"{"end_of_stream":true}"# } else { "end of stream" });
            break;
        };
        if args.json {
            println!("{}", frame_json(&frame));
        } else {
            println!("{}", frame_line(&frame));
        }
    }
    source.close().await
}

fn frame_json(frame: &Frame) -> serde_json::Value {
    let t = &frame.timing;
    let metadata: serde_json::Map<String, serde_json::Value> =
        frame.metadata.iter().map(|(k, v)| (k.to_string(), v.into())).collect();
    serde_json::json!({
        "frame_number": t.frame_number,
        "pts": t.pts,
        "time_base": t.time_base.to_string(),
        "pts_ns": t.pts_ns(),
        "capture_time_ns": t.capture_time_ns,
        "ptp_time_ns": t.ptp_time_ns,
        "sync_source": t.sync_source.as_deref(),
        "drift_ns": t.drift_ns,
        "format": frame.format().name(),
        "width": frame.width(),
        "height": frame.height(),
        "metadata": metadata,
    })
}

fn frame_line(frame: &Frame) -> String {
    let t = &frame.timing;
    let mut line = format!(
        "frame {:>5}  pts {} ({:.3} s)  capture {} ns  {} {}x{}",
        t.frame_number,
        t.pts,
        t.pts_ns() as f64 / 1e9,
        t.capture_time_ns,
        frame.format(),
        frame.width(),
        frame.height()
    );
    if let Some(ptp) = t.ptp_time_ns {
        line += &format!("  ptp {ptp} ns");
    }
    for (k, v) in frame.metadata.iter() {
        line += &format!("  {k}={v}");
    }
    line
}
