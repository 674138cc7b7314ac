//! `null:` — a sink that discards frames (benchmarks, dry runs).

use async_trait::async_trait;
use streamkit_core::{Frame, Result, Sink};

/// Counts frames and drops them.
#[derive(Default)]
pub struct NullSink {
    pub frames: u64,
}

#[async_trait]
impl Sink for NullSink {
    fn describe(&self) -> String {
        "null:".into()
    }

    async fn write(&mut self, _frame: &Frame) -> Result<()> {
        self.frames += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
