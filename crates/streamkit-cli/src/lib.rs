//! `streamkit` — compose video from sources, layers and sinks named by URIs.
//!
//! A library too, so that other front ends run the very same CLI
//! ([`run_cli`]: `python -m streamkit …`) and share its plugin [`plugins::registry`].

mod bench;
mod list;
pub mod plugins;
mod probe;
mod progress;
mod ptp;
mod run;
mod serve;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  # SMPTE bars with a frame counter, 300 frames to a Y4M file ffmpeg and mpv read
  streamkit run 'test:smpte?size=1920x1080&fps=30' --layer 'text:Frame {frame}' --frames 300 -o out.y4m

  # Several outputs at once, and a PNG snapshot of frame 100
  streamkit run test:ball --frames 300 -o out.y4m -o 'snap.png?frame=100'

  # Pipe into ffplay in real time (y4m:- is Y4M on stdout; plain - is the streamkit wire format)
  streamkit run test:ball --realtime -o y4m:- | ffplay -

  # Live HLS in the browser: write segments and serve them at http://127.0.0.1:8080/
  streamkit run test:ball --realtime -o 'hls:out/live?serve=127.0.0.1:8080'

  # PTP: lock to a grandmaster on eth0 and print offset/delay as JSON lines; stamp frames with PTP time
  streamkit ptp status --iface eth0 --domain 0 --duration 30 --json
  streamkit run 'test:smpte' --clock 'ptp:eth0?domain=0' --frames 300 -o out.mp4

  # What schemes exist, and what a source yields
  streamkit list
  streamkit probe 'test:checker?size=640x360' --frames 3

URIs: scheme:body?key=value&… (a bare path picks its scheme by extension; - is stdin/stdout).
Run `streamkit list` for every scheme, its options and an example.";

#[derive(Parser)]
#[command(name = "streamkit", version, about = "Real-time video: sources → compositor → sinks", after_help = EXAMPLES)]
struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a stream: a source, any layers, one or more outputs.
    Run(run::RunArgs),
    /// List plugins, URI schemes, their options and examples.
    List,
    /// Show what a source yields: size, rate and each frame's timing.
    Probe(probe::ProbeArgs),
    /// Whole-pipeline benchmark scenarios (see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Serve an HLS folder over HTTP with a player page (127.0.0.1 by default).
    Serve(serve::ServeArgs),
    /// PTP (IEEE 1588) time sync: the in-process client's live status.
    Ptp(ptp::PtpArgs),
}

/// Runs the command line with `args` (the first is the program name) and
/// returns the process exit status (0 success, 1 failure, 2 usage). Logging is initialised once per process.
pub fn run_cli<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code() as u8;
        }
    };
    init_logging(cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::List => list::list(),
            Command::Probe(args) => probe::probe(args).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Serve(args) => serve::serve(args).await,
            Command::Ptp(args) => ptp::ptp(args).await,
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("streamkit: error: {e}");
            1
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    // try_init: a host process (Python) may run the CLI more than once.
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
