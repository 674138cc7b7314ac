//! [`MultiStreamCompositor`] (design §3): frames from several synced
//! sources, matched by time into sets — for 3D tracking and multi-camera
//! work, where a set must hold frames captured at the same instant.
//!
//! Each source runs in its own tokio task and pushes frames into one
//! bounded channel; [`MultiStreamCompositor::get_synced_frames`] feeds them
//! to the sans-IO [`Aligner`] and returns its next set.
//!
//! ```no_run
//! # async fn demo(cams: Vec<Box<dyn streamkit_core::Source>>) -> streamkit_core::Result<()> {
//! use streamkit_sync::{MultiStreamCompositor, CompositorOptions, SyncMode};
//! let mut compositor = MultiStreamCompositor::new(CompositorOptions {
//!     sync_tolerance_ns: 500_000,
//!     sync_mode: SyncMode::Strict,
//!     ..Default::default()
//! });
//! for (i, cam) in cams.into_iter().enumerate() {
//!     compositor.add_synced_source(format!("cam_{i}"), cam)?;
//! }
//! while let Some(set) = compositor.get_synced_frames().await? {
//!     println!("{} frames, skew {} ns", set.len(), set.skew_ns);
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use streamkit_core::time::monotonic_ns;
use streamkit_core::{Error, Frame, Result, Source};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::align::{AlignConfig, AlignStats, AlignedSet, Aligner, SyncMode};

/// Settings of a [`MultiStreamCompositor`].
#[derive(Clone, Copy, Debug)]
pub struct CompositorOptions {
    /// Largest spread of sync times within a set (design default: 1 ms).
    pub sync_tolerance_ns: u64,
    pub sync_mode: SyncMode,
    /// Frames buffered per source before the oldest is dropped.
    pub max_buffer: usize,
    /// Best effort: how long to wait for a source that has not delivered.
    pub max_wait: Duration,
    /// Best effort: smallest set returned.
    pub min_sources: usize,
}

impl Default for CompositorOptions {
    fn default() -> Self {
        CompositorOptions {
            sync_tolerance_ns: 1_000_000,
            sync_mode: SyncMode::Strict,
            max_buffer: 32,
            max_wait: Duration::from_millis(50),
            min_sources: 2,
        }
    }
}

/// One source's frame in a set.
#[derive(Clone, Debug)]
pub struct SyncedFrame {
    pub id: Arc<str>,
    pub frame: Frame,
}

/// Frames captured within the tolerance of each other, one per source.
#[derive(Clone, Debug)]
pub struct SyncedSet {
    /// In the order the sources were added.
    pub frames: Vec<SyncedFrame>,
    /// Sources without a frame in this set (best effort only).
    pub missing: Vec<Arc<str>>,
    /// Mean sync time of the frames.
    pub reference_time_ns: u64,
    /// Latest minus earliest sync time: this set's sync quality.
    pub skew_ns: u64,
}

impl SyncedSet {
    pub fn get(&self, id: &str) -> Option<&Frame> {
        self.frames.iter().find(|f| &*f.id == id).map(|f| &f.frame)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Frame)> {
        self.frames.iter().map(|f| (&*f.id, &f.frame))
    }
}

type Message = (usize, Result<Option<Frame>>);

/// See the module docs.
pub struct MultiStreamCompositor {
    options: CompositorOptions,
    aligner: Aligner<Frame>,
    ids: Vec<Arc<str>>,
    waiting: Vec<Box<dyn Source>>,
    rx: Option<mpsc::Receiver<Message>>,
    started: bool,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl MultiStreamCompositor {
    pub fn new(options: CompositorOptions) -> MultiStreamCompositor {
        let config = AlignConfig {
            tolerance_ns: options.sync_tolerance_ns,
            mode: options.sync_mode,
            max_buffer: options.max_buffer,
            max_wait_ns: options.max_wait.as_nanos() as u64,
            min_members: options.min_sources,
        };
        MultiStreamCompositor {
            options,
            aligner: Aligner::new(config),
            ids: Vec::new(),
            waiting: Vec::new(),
            rx: None,
            started: false,
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    pub fn options(&self) -> &CompositorOptions {
        &self.options
    }

    /// Adds a source (typically a [`crate::SyncedSource`]) before the first
    /// [`MultiStreamCompositor::get_synced_frames`].
    pub fn add_synced_source(&mut self, id: impl Into<String>, source: Box<dyn Source>) -> Result<()> {
        let id = id.into();
        if self.started {
            return Err(Error::invalid(format!("cannot add source '{id}': the compositor already started")));
        }
        if self.ids.iter().any(|existing| **existing == *id) {
            return Err(Error::invalid(format!("a source named '{id}' was already added")));
        }
        let id: Arc<str> = Arc::from(id);
        self.aligner.add_source(id.clone());
        self.ids.push(id);
        self.waiting.push(source);
        Ok(())
    }

    /// Sync quality so far: sets, skew (mean, jitter, max), per-source
    /// offsets, drift and drops.
    pub fn stats(&self) -> &AlignStats {
        self.aligner.stats()
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let (tx, rx) = mpsc::channel::<Message>(self.ids.len().max(1) * 4);
        for (index, source) in self.waiting.drain(..).enumerate() {
            let (tx, stop) = (tx.clone(), self.stop.subscribe());
            self.tasks.push(tokio::spawn(pump(index, source, tx, stop)));
        }
        self.rx = Some(rx);
    }

    /// The next set of frames captured at the same instant, or `Ok(None)`
    /// when no more can come (strict: a source ended; best effort: too few
    /// sources are left). Strict mode returns a source's error; best effort
    /// logs it and goes on without that source.
    pub async fn get_synced_frames(&mut self) -> Result<Option<SyncedSet>> {
        self.start();
        loop {
            if let Some(set) = self.aligner.poll(monotonic_ns()) {
                return Ok(Some(self.to_synced(set)));
            }
            if self.aligner.is_finished() {
                return Ok(None);
            }
            let Some(rx) = self.rx.as_mut() else { return Ok(None) }; // closed
            let message = match self.aligner.poll_timeout() {
                Some(deadline) => {
                    let wait = Duration::from_nanos(deadline.saturating_sub(monotonic_ns()));
                    match tokio::time::timeout(wait, rx.recv()).await {
                        Ok(message) => message,
                        Err(_) => continue,
                    }
                }
                None => rx.recv().await,
            };
            let Some(message) = message else {
                // Every source task is gone.
                for i in 0..self.ids.len() {
                    self.aligner.end_source(i);
                }
                continue;
            };
            self.accept(message)?;
            // Take everything already queued before matching.
            while let Some(message) = self.rx.as_mut().and_then(|rx| rx.try_recv().ok()) {
                self.accept(message)?;
            }
        }
    }

    fn accept(&mut self, (index, result): Message) -> Result<()> {
        match result {
            Ok(Some(frame)) => {
                let time = frame.timing.sync_time_ns();
                self.aligner.push(index, time, frame, monotonic_ns());
            }
            Ok(None) => self.aligner.end_source(index),
            Err(e) => {
                self.aligner.end_source(index);
                let e = e.in_stage(format!("source '{}'", self.ids[index]));
                if self.options.sync_mode == SyncMode::Strict {
                    return Err(e);
                }
                tracing::warn!("{e}; continuing without it");
            }
        }
        Ok(())
    }

    fn to_synced(&self, set: AlignedSet<Frame>) -> SyncedSet {
        SyncedSet {
            frames: set
                .members
                .into_iter()
                .map(|m| SyncedFrame { id: self.ids[m.source].clone(), frame: m.item })
                .collect(),
            missing: set.missing.into_iter().map(|i| self.ids[i].clone()).collect(),
            reference_time_ns: set.reference_ns,
            skew_ns: set.skew_ns,
        }
    }

    /// Stops the source tasks and closes every source.
    pub async fn close(&mut self) -> Result<()> {
        let _ = self.stop.send(true);
        self.rx = None;
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        for mut source in self.waiting.drain(..) {
            source.close().await?;
        }
        Ok(())
    }
}

impl Drop for MultiStreamCompositor {
    fn drop(&mut self) {
        // The tasks see it, close their sources and end.
        let _ = self.stop.send(true);
    }
}

async fn pump(index: usize, mut source: Box<dyn Source>, tx: mpsc::Sender<Message>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = tokio::select! {
            next = source.next_frame() => next,
            _ = stop.wait_for(|s| *s) => break,
        };
        let last = !matches!(next, Ok(Some(_)));
        let sent = tokio::select! {
            sent = tx.send((index, next)) => sent.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !sent || last {
            break;
        }
    }
    if let Err(e) = source.close().await {
        tracing::warn!("closing source {index}: {e}");
    }
}
