//! `streamkit run`: build a stream from URIs and run it until done or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use streamkit_core::registry::Registry;
use streamkit_core::stream::{RunReport, Stream, StreamOptions};
use streamkit_core::uri::Size;
use streamkit_core::{Error, Fps, Result};
use streamkit_sync::{Clock, SyncedSource};

use crate::progress::Progress;

#[derive(Args)]
pub struct RunArgs {
    /// Where frames come from, e.g. 'test:smpte?size=1280x720', clip.y4m, or - (stdin).
    /// Without one, layers draw on a black canvas of --size.
    pub source: Option<String>,
    /// A layer over the source (repeatable; later ones draw on top unless z= says otherwise),
    /// e.g. 'text:Frame {frame}', 'clock:', 'image:logo.png?pos=top-right', 'video:test:ball?scale=0.3'.
    #[arg(short, long = "layer", value_name = "URI")]
    pub layers: Vec<String>,
    /// Where frames go (repeatable: every output gets every frame), e.g. out.y4m, 'png:frames/%05d.png', - (stdout).
    #[arg(short, long = "output", value_name = "URI")]
    pub outputs: Vec<String>,
    /// Output frame rate (default: the source's, else 30), e.g. 30, 29.97, 30000/1001.
    #[arg(long, value_parser = parse_fps)]
    pub fps: Option<Fps>,
    /// Output size WIDTHxHEIGHT (default: the source's; other sizes are letterboxed).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<Size>,
    /// Stop after this much media time: 10, 10s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Pace output at the frame rate (live); default is as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Stamp each frame's PTP time from this clock: monotonic, realtime, tai,
    /// phc:/dev/ptp0, phc:IFACE, or ptp:IFACE?domain=N (an in-process PTP client).
    #[arg(long, value_name = "CLOCK")]
    pub clock: Option<String>,
    /// No progress line.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let registry = crate::plugins::registry();
    let clock = match &args.clock {
        Some(spec) => Some(streamkit_sync::clock::clock_from_spec(spec).await?),
        None => None,
    };
    let stream = build(&registry, &args, clock)?;
    let total = args.frames.or(args.duration.map(|d| (d.as_secs_f64() * stream.fps().as_f64()).round() as u64));
    let stop = stream.stop_handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: finishing outputs (Ctrl-C again to abort)");
            stop.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let progress = (!args.quiet).then(|| Progress::start(stream.stats(), total));
    let report = stream.run().await;
    if let Some(p) = progress {
        p.finish();
    }
    let report = report?;
    if !args.quiet {
        summarise(&report);
    }
    report.into_result().map(|_| ())
}

/// Builds source, layers and sinks from the arguments.
pub fn build(registry: &Registry, args: &RunArgs, clock: Option<Arc<dyn Clock>>) -> Result<Stream> {
    if args.outputs.is_empty() {
        return Err(Error::invalid("no output: add -o OUT (e.g. -o out.y4m, -o 'snap.png', or -o - to pipe)"));
    }
    let sinks = args.outputs.iter().map(|o| registry.build_sink(o)).collect::<Result<Vec<_>>>()?;
    let options = StreamOptions {
        size: args.size.map(|s| (s.0, s.1)),
        fps: args.fps,
        realtime: args.realtime,
        max_frames: args.frames,
        duration: args.duration,
        queue_capacity: None,
    };
    let stream = match &args.source {
        Some(uri) => {
            let source = registry.build_source(uri)?;
            let source = match clock {
                Some(clock) => Box::new(SyncedSource::new(source, clock)),
                None => source,
            };
            Stream::new(source, sinks, options)
        }
        None if args.layers.is_empty() => {
            return Err(Error::invalid("nothing to show: give a source (e.g. 'test:smpte') or at least one --layer"))
        }
        None => Stream::generated(sinks, options),
    };
    let control = stream.layers();
    for (index, uri) in args.layers.iter().enumerate() {
        let spec = registry.build_layer(uri)?;
        let scheme = uri.split(':').next().unwrap_or("layer");
        let id = spec.id.unwrap_or_else(|| format!("{scheme}{}", index + 1));
        control.add_boxed(id, spec.z_index.unwrap_or(index as i32 + 1), spec.opacity, spec.layer);
    }
    Ok(stream)
}

fn summarise(report: &RunReport) {
    let s = &report.stats;
    eprintln!(
        "{} frames in {:.2} s ({:.1} fps), ended: {:?}{}",
        report.frames_out,
        s.elapsed.as_secs_f64(),
        s.average_fps,
        report.end,
        if s.dropped > 0 { format!(", {} dropped", s.dropped) } else { String::new() }
    );
    let stages: Vec<String> = s.stages.iter().map(|st| format!("{} {:.2} ms", st.name, st.mean_ms)).collect();
    if !stages.is_empty() {
        eprintln!("mean per frame: {}", stages.join(", "));
    }
    for (layer, count) in &s.layer_errors {
        eprintln!("layer '{layer}' failed on {count} frames (skipped on those frames)");
    }
}

fn parse_fps(text: &str) -> std::result::Result<Fps, String> {
    Fps::parse(text).ok_or_else(|| format!("'{text}' is not a frame rate: use 30, 29.97 or 30000/1001"))
}

fn parse_size(text: &str) -> std::result::Result<Size, String> {
    text.parse().map_err(|e: Error| e.to_string())
}

/// `10`, `10s`, `1.5s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration: use 10, 10s, 500ms or 2m");
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").unwrap_err().contains("10s"));
    }
}
