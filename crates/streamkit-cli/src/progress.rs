//! Live status while a stream runs: one self-updating line on a terminal,
//! a plain line every few seconds when stderr is a pipe or file.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use streamkit_core::stats::{Stats, StatsSnapshot};
use tokio::task::JoinHandle;

pub struct Progress {
    task: JoinHandle<()>,
    terminal: bool,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, total: Option<u64>) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { Duration::from_millis(500) } else { Duration::from_secs(5) };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let line = status_line(&stats.snapshot(), total);
                let mut err = std::io::stderr().lock();
                let _ = if terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
                let _ = err.flush();
            }
        });
        Progress { task, terminal }
    }

    /// Stops updating and clears the live line.
    pub fn finish(self) {
        self.task.abort();
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}

pub fn status_line(snapshot: &StatsSnapshot, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => {
            let percent = snapshot.frames_out as f64 * 100.0 / total as f64;
            format!("{percent:5.1}% {snapshot}")
        }
        _ => snapshot.to_string(),
    }
}
