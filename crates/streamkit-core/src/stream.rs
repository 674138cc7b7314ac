//! The stream runner: source → compositor → sinks (a tee).
//!
//! The source and compositor run in the caller's task; each sink runs in its
//! own task behind a bounded queue whose policy the sink chooses, so a slow
//! sink blocks only when it asked for lossless delivery, and a failing sink
//! is reported and dropped without stopping the others.
//!
//! Pacing: with `realtime`, frame *n* leaves at `start + n / fps`
//! (sources that are live pace themselves); otherwise as fast as possible.
//! The stream stops at the end of the source, after `max_frames`, after
//! `duration` of media time, or when a [`StopHandle`] is triggered — and
//! always closes every sink so that outputs are finalised.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::compositor::{Compositor, LayerControl};
use crate::convert::convert_into;
use crate::error::{Error, Result};
use crate::frame::{BufferPool, Frame, PixelFormat};
use crate::queue;
use crate::sink::{Sink, StreamInfo};
use crate::source::Source;
use crate::stats::{Stats, StatsSnapshot};
use crate::time::Fps;

/// How a stream runs. Everything is optional.
#[derive(Clone, Debug, Default)]
pub struct StreamOptions {
    /// Output size; default: the source's, or 1920x1080 without a source.
    pub size: Option<(u32, u32)>,
    /// Output rate; default: the source's, else 30.
    pub fps: Option<Fps>,
    /// Pace output at `fps` in real time (generated and file sources).
    pub realtime: bool,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Stop after this much media time (`duration × fps` frames).
    pub duration: Option<Duration>,
    /// Frames each sink may have queued; default 4.
    pub queue_capacity: Option<usize>,
}

/// Stops a running stream from anywhere (a Ctrl-C handler, another task).
#[derive(Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    fn new() -> StopHandle {
        StopHandle(Arc::new(watch::channel(false).0))
    }

    /// Asks the stream to stop after the frame in flight; sinks are finalised.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// Why the stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    EndOfStream,
    FrameLimit,
    Stopped,
    SourceFailed,
    AllSinksFailed,
}

/// What a finished run did.
#[derive(Debug)]
pub struct RunReport {
    pub frames_out: u64,
    pub end: EndReason,
    pub stats: StatsSnapshot,
    /// Every stage that failed (source, sinks), in the order they failed.
    pub failures: Vec<Error>,
}

impl RunReport {
    /// `Err` with the first failure, if any stage failed.
    pub fn into_result(mut self) -> Result<RunReport> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(self.failures.remove(0))
        }
    }
}

/// A pipeline ready to run.
pub struct Stream {
    source: Option<Box<dyn Source>>,
    sinks: Vec<Box<dyn Sink>>,
    compositor: Compositor,
    options: StreamOptions,
    fps: Fps,
    stats: Arc<Stats>,
    stop: StopHandle,
}

impl Stream {
    /// A stream from `source` through the compositor to every sink.
    pub fn new(source: Box<dyn Source>, sinks: Vec<Box<dyn Sink>>, options: StreamOptions) -> Stream {
        Stream::build(Some(source), sinks, options)
    }

    /// A stream without a source: layers draw on the background
    /// (`options.size`, default 1920x1080).
    pub fn generated(sinks: Vec<Box<dyn Sink>>, options: StreamOptions) -> Stream {
        Stream::build(None, sinks, options)
    }

    fn build(source: Option<Box<dyn Source>>, sinks: Vec<Box<dyn Sink>>, options: StreamOptions) -> Stream {
        let info = source.as_ref().map(|s| s.info()).unwrap_or_default();
        let fps = options.fps.or(info.fps).unwrap_or(Fps::new(30, 1));
        let size = options.size.or(match (info.width, info.height) {
            (Some(w), Some(h)) => Some((w, h)),
            _ if source.is_none() => Some((1920, 1080)),
            _ => None,
        });
        let stats = Arc::new(Stats::new());
        let compositor = Compositor::new(size, fps, stats.clone());
        Stream { source, sinks, compositor, options, fps, stats, stop: StopHandle::new() }
    }

    /// Adds, removes and re-orders layers, before or during [`Stream::run`].
    pub fn layers(&self) -> LayerControl {
        self.compositor.control()
    }

    pub fn compositor_mut(&mut self) -> &mut Compositor {
        &mut self.compositor
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Live statistics, readable while the stream runs.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn fps(&self) -> Fps {
        self.fps
    }

    /// Runs until the source ends, a limit is reached, or stop is asked;
    /// then closes the source, the layers and every sink.
    pub async fn run(mut self) -> Result<RunReport> {
        if self.sinks.is_empty() {
            return Err(Error::invalid("a stream needs at least one sink (e.g. -o out.y4m)"));
        }
        let capacity = self.options.queue_capacity.unwrap_or(4);
        let info = StreamInfo { fps: self.fps, size: self.compositor.size() };
        for sink in &mut self.sinks {
            sink.set_stream_info(&info);
        }
        let (mut outputs, tasks): (Vec<SinkTask>, Vec<_>) =
            self.sinks.drain(..).map(|sink| SinkTask::spawn(sink, capacity, self.stats.clone())).unzip();
        let mut failures = Vec::new();
        let mut converter = Converter::default();
        let limit = self.frame_limit();
        let pace = self.options.realtime && !self.source.as_ref().is_some_and(|s| s.info().live);
        // tokio's clock, so that tests can run pacing in paused (virtual) time.
        let start = tokio::time::Instant::now();
        let mut frames = 0u64;

        let end = loop {
            if limit.is_some_and(|l| frames >= l) {
                break EndReason::FrameLimit;
            }
            if self.stop.is_stopped() {
                break EndReason::Stopped;
            }
            if pace {
                let due = start + Duration::from_nanos(self.fps.frame_time_ns(frames));
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.stop.stopped() => break EndReason::Stopped,
                }
            }
            let base = match self.next_source_frame().await {
                Next::Frame(f) => f,
                Next::End => break EndReason::EndOfStream,
                Next::Stopped => break EndReason::Stopped,
                Next::Failed(e) => {
                    tracing::error!("{e}");
                    failures.push(e);
                    break EndReason::SourceFailed;
                }
            };
            let started = Instant::now();
            let composed = match self.compositor.compose(base).await {
                Ok(frame) => frame,
                Err(e) => {
                    failures.push(e.in_stage("compositor"));
                    break EndReason::SourceFailed;
                }
            };
            self.stats.stage_time("compose", started.elapsed());
            self.stats.frame_out();
            let mut converted: Vec<(PixelFormat, Result<Frame>)> = Vec::new();
            for output in &mut outputs {
                let format = match output.format {
                    Some(f) if f != composed.format() => f,
                    _ => {
                        output.send(&composed).await;
                        continue;
                    }
                };
                if !converted.iter().any(|(f, _)| *f == format) {
                    let started = Instant::now();
                    converted.push((format, converter.convert(&composed, format)));
                    self.stats.stage_time("convert", started.elapsed());
                }
                match converted.iter().find(|(f, _)| *f == format).map(|(_, c)| c) {
                    Some(Ok(frame)) => output.send(frame).await,
                    Some(Err(e)) => {
                        tracing::error!("{}: {e}; this output stops, the others go on", output.name);
                        failures.push(Error::invalid(e.to_string()).in_stage(output.name.clone()));
                        output.queue.close(); // the sink closes what it wrote
                        output.alive = false;
                    }
                    None => unreachable!("converted above"),
                }
            }
            outputs.retain_mut(|o| o.alive);
            frames += 1;
            if outputs.is_empty() {
                break EndReason::AllSinksFailed;
            }
        };

        if let Some(source) = &mut self.source {
            if let Err(e) = source.close().await {
                failures.push(e.in_stage(format!("closing {}", source.info().description)));
            }
        }
        self.compositor.close().await;
        for output in outputs {
            output.queue.close();
        }
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(e),
                Err(join) => failures.push(Error::invalid(format!("a sink task panicked: {join}"))),
            }
        }
        Ok(RunReport { frames_out: frames, end, stats: self.stats.snapshot(), failures })
    }

    fn frame_limit(&self) -> Option<u64> {
        let by_duration = self.options.duration.map(|d| (d.as_secs_f64() * self.fps.as_f64()).round() as u64);
        match (self.options.max_frames, by_duration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn next_source_frame(&mut self) -> Next {
        let Some(source) = &mut self.source else {
            return Next::Frame(None);
        };
        let started = Instant::now();
        let result = tokio::select! {
            r = source.next_frame() => r,
            _ = self.stop.stopped() => return Next::Stopped,
        };
        self.stats.stage_time("source", started.elapsed());
        match result {
            Ok(Some(frame)) => {
                self.stats.frame_in();
                Next::Frame(Some(frame))
            }
            Ok(None) => Next::End,
            Err(e) => Next::Failed(e.in_stage(source.info().description)),
        }
    }
}

enum Next {
    Frame(Option<Frame>),
    End,
    Stopped,
    Failed(Error),
}

/// Composed frames in the pixel formats sinks asked for, into pooled
/// buffers (one pool per format), so a steady stream allocates nothing.
#[derive(Default)]
struct Converter {
    pools: Vec<(PixelFormat, BufferPool)>,
}

/// Converted frames a pool keeps for reuse: enough for the sinks' queues.
const CONVERTED_FREE_BUFFERS: usize = 8;

impl Converter {
    fn convert(&mut self, frame: &Frame, format: PixelFormat) -> Result<Frame> {
        let len = format.packed_layout(frame.width(), frame.height()).byte_len();
        let pool = match self.pools.iter().position(|(f, p)| *f == format && p.buffer_len() >= len) {
            Some(i) => &self.pools[i].1,
            None => {
                self.pools.retain(|(f, _)| *f != format);
                self.pools.push((format, BufferPool::new(len, CONVERTED_FREE_BUFFERS)));
                &self.pools.last().expect("pushed").1
            }
        };
        let mut out = Frame::from_pool(pool, format, frame.width(), frame.height())?;
        convert_into(frame, &mut out)?;
        Ok(out)
    }
}

/// One sink behind its queue, in its own task.
struct SinkTask {
    name: String,
    /// The pixel format the sink wants (see [`Sink::input_format`]).
    format: Option<PixelFormat>,
    queue: queue::Sender<Frame>,
    alive: bool,
    reported_drops: u64,
    stats: Arc<Stats>,
}

impl SinkTask {
    fn spawn(sink: Box<dyn Sink>, capacity: usize, stats: Arc<Stats>) -> (SinkTask, JoinHandle<Result<()>>) {
        let (tx, rx) = queue::bounded(capacity, sink.queue_policy());
        let (name, format) = (sink.describe(), sink.input_format());
        let task = tokio::spawn(drive_sink(sink, rx, stats.clone()));
        (SinkTask { name, format, queue: tx, alive: true, reported_drops: 0, stats }, task)
    }

    async fn send(&mut self, frame: &Frame) {
        if self.queue.send(frame.clone()).await.is_err() {
            self.alive = false; // the sink task ended with an error it reports itself
        }
        let drops = self.queue.dropped();
        if drops > self.reported_drops {
            self.stats.dropped(drops - self.reported_drops);
            self.reported_drops = drops;
        }
    }
}

/// Writes queued frames until the queue closes, then finalises the sink. A
/// write error ends this sink only; it is returned after the sink is closed
/// (so that what was written stays valid).
async fn drive_sink(mut sink: Box<dyn Sink>, frames: queue::Receiver<Frame>, stats: Arc<Stats>) -> Result<()> {
    let name = sink.describe();
    let stage = format!("sink:{name}");
    let mut failure = None;
    while let Some(frame) = frames.recv().await {
        let started = Instant::now();
        if let Err(e) = sink.write(&frame).await {
            tracing::error!("{name}: {e}; this output stops, the others go on");
            failure = Some(e.in_stage(name.clone()));
            break;
        }
        stats.stage_time(&stage, started.elapsed());
        stats.latency(frame.timing.capture_time_ns);
    }
    drop(frames);
    let closed = sink.close().await.map_err(|e| e.in_stage(format!("closing {name}")));
    match failure {
        Some(e) => Err(e),
        None => closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::Canvas;
    use crate::layer::{FnLayer, FrameContext};
    use crate::source::SourceInfo;
    use crate::time::Timing;
    use crate::PixelFormat;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Grey frames numbered from 0; ends after `len` frames.
    struct Counter {
        n: u64,
        len: u64,
    }

    #[async_trait]
    impl Source for Counter {
        fn info(&self) -> SourceInfo {
            SourceInfo::new("counter").sized(16, 16).with_fps(Fps::new(30, 1))
        }
        async fn next_frame(&mut self) -> Result<Option<Frame>> {
            if self.n == self.len {
                return Ok(None);
            }
            let frame = Frame::from_vec(PixelFormat::Rgba8Premul, 16, 16, vec![128; 16 * 16 * 4])?;
            self.n += 1;
            Ok(Some(frame.with_timing(Timing::for_frame(self.n - 1, Fps::new(30, 1)))))
        }
    }

    /// (frame number, first pixel) of each frame written, and whether the sink was closed.
    type Written = (Vec<(u64, [u8; 4])>, bool);

    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Written>>);

    struct Collect(Collected);

    #[async_trait]
    impl Sink for Collect {
        fn describe(&self) -> String {
            "collect".into()
        }
        async fn write(&mut self, frame: &Frame) -> Result<()> {
            let px = frame.data()[..4].try_into().unwrap();
            self.0 .0.lock().unwrap().0.push((frame.timing.frame_number, px));
            Ok(())
        }
        async fn close(&mut self) -> Result<()> {
            self.0 .0.lock().unwrap().1 = true;
            Ok(())
        }
    }

    struct FailsAt(u64, u64, Arc<Mutex<bool>>);

    #[async_trait]
    impl Sink for FailsAt {
        fn describe(&self) -> String {
            "fails".into()
        }
        async fn write(&mut self, _: &Frame) -> Result<()> {
            self.1 += 1;
            if self.1 > self.0 {
                return Err(Error::invalid("disk full"));
            }
            Ok(())
        }
        async fn close(&mut self) -> Result<()> {
            *self.2.lock().unwrap() = true;
            Ok(())
        }
    }

    fn counter(len: u64) -> Box<dyn Source> {
        Box::new(Counter { n: 0, len })
    }

    #[tokio::test]
    async fn runs_to_the_end_of_the_source_and_closes_sinks() {
        let out = Collected::default();
        let report = Stream::new(counter(10), vec![Box::new(Collect(out.clone()))], StreamOptions::default())
            .run()
            .await
            .unwrap();
        assert_eq!((report.frames_out, report.end), (10, EndReason::EndOfStream));
        let (frames, closed) = out.0.lock().unwrap().clone();
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        assert!(closed);
        assert_eq!(report.stats.frames_out, 10);
    }

    /// Records the format and buffer address of every frame it gets.
    struct Wants(Option<PixelFormat>, Arc<Mutex<Vec<(PixelFormat, usize)>>>);

    #[async_trait]
    impl Sink for Wants {
        fn describe(&self) -> String {
            format!("wants {:?}", self.0)
        }
        fn input_format(&self) -> Option<PixelFormat> {
            self.0
        }
        async fn write(&mut self, frame: &Frame) -> Result<()> {
            self.1.lock().unwrap().push((frame.format(), frame.data().as_ptr() as usize));
            Ok(())
        }
        async fn close(&mut self) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn sinks_wanting_one_format_share_one_conversion() {
        let seen: Vec<_> = (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let sinks: Vec<Box<dyn Sink>> = vec![
            Box::new(Wants(Some(PixelFormat::I420), seen[0].clone())),
            Box::new(Wants(Some(PixelFormat::I420), seen[1].clone())),
            Box::new(Wants(None, seen[2].clone())),
        ];
        let report = Stream::new(counter(5), sinks, StreamOptions::default()).run().await.unwrap();
        assert_eq!(report.frames_out, 5);
        let [a, b, c] = [0, 1, 2].map(|i| seen[i].lock().unwrap().clone());
        assert!(a.iter().chain(&b).all(|(f, _)| *f == PixelFormat::I420));
        assert!(c.iter().all(|(f, _)| *f == PixelFormat::Rgba8Premul));
        assert_eq!(a, b, "the same converted frames, not one conversion per sink");
        assert!(report.stats.stages.iter().any(|s| s.name == "convert"), "{:?}", report.stats.stages);
    }

    #[tokio::test]
    async fn a_conversion_that_cannot_be_done_stops_only_that_sink() {
        // I420 needs even sizes: a 15x15 frame cannot be converted.
        struct Odd(u64);
        #[async_trait]
        impl Source for Odd {
            fn info(&self) -> SourceInfo {
                SourceInfo::new("odd")
            }
            async fn next_frame(&mut self) -> Result<Option<Frame>> {
                self.0 += 1;
                Ok((self.0 <= 3).then(|| Frame::new(PixelFormat::Rgba8Premul, 15, 15).unwrap()))
            }
        }
        let (wants, plain) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let sinks: Vec<Box<dyn Sink>> =
            vec![Box::new(Wants(Some(PixelFormat::I420), wants.clone())), Box::new(Wants(None, plain.clone()))];
        let report = Stream::new(Box::new(Odd(0)), sinks, StreamOptions::default()).run().await.unwrap();
        assert_eq!(report.frames_out, 3);
        assert!(wants.lock().unwrap().is_empty());
        assert_eq!(plain.lock().unwrap().len(), 3);
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(report.failures[0].to_string().contains("wants Some(I420)"), "{}", report.failures[0]);
    }

    #[tokio::test]
    async fn a_failing_sink_is_reported_and_the_others_go_on() {
        let out = Collected::default();
        let closed = Arc::new(Mutex::new(false));
        let sinks: Vec<Box<dyn Sink>> = vec![Box::new(FailsAt(3, 0, closed.clone())), Box::new(Collect(out.clone()))];
        let report = Stream::new(counter(20), sinks, StreamOptions::default()).run().await.unwrap();
        assert_eq!(report.frames_out, 20);
        assert_eq!(out.0.lock().unwrap().0.len(), 20);
        assert!(*closed.lock().unwrap(), "the failed sink is still closed (finalised)");
        assert_eq!(report.failures.len(), 1);
        let message = report.failures[0].to_string();
        assert!(message.contains("fails") && message.contains("disk full"), "{message}");
    }

    #[tokio::test]
    async fn a_panicking_layer_does_not_stop_the_stream() {
        let out = Collected::default();
        let stream = Stream::new(counter(5), vec![Box::new(Collect(out.clone()))], StreamOptions::default());
        stream.layers().add_layer(
            "bad",
            1,
            FnLayer::new(|_: &mut Canvas<'_>, ctx: &FrameContext<'_>| {
                if ctx.frame_number.is_multiple_of(2) {
                    panic!("layer bug");
                }
                Ok(())
            }),
        );
        let report = stream.run().await.unwrap();
        assert_eq!(report.frames_out, 5);
        assert_eq!(out.0.lock().unwrap().0.len(), 5);
        assert_eq!(report.stats.layer_errors, vec![("bad".to_string(), 3)]);
        assert!(report.failures.is_empty());
    }

    #[tokio::test]
    async fn layers_added_while_running_apply_to_the_next_frame() {
        let out = Collected::default();
        let stream = Stream::new(
            counter(u64::MAX),
            vec![Box::new(Collect(out.clone()))],
            StreamOptions { queue_capacity: Some(1), ..Default::default() },
        );
        let (layers, stop) = (stream.layers(), stream.stop_handle());
        let running = tokio::spawn(stream.run());
        let wait_for = |n: usize| {
            let out = out.clone();
            async move {
                while out.0.lock().unwrap().0.len() < n {
                    tokio::task::yield_now().await;
                }
            }
        };
        wait_for(3).await;
        layers.add_layer(
            "red",
            1,
            FnLayer::new(|c: &mut Canvas<'_>, _: &FrameContext<'_>| {
                c.pixels_mut()[..4].copy_from_slice(&[255, 0, 0, 255]);
                Ok(())
            }),
        );
        let seen = out.0.lock().unwrap().0.len();
        wait_for(seen + 8).await;
        stop.stop();
        let report = running.await.unwrap().unwrap();
        assert_eq!(report.end, EndReason::Stopped);
        let frames = out.0.lock().unwrap().0.clone();
        let first_red = frames.iter().position(|f| f.1 == [255, 0, 0, 255]).expect("the layer appeared");
        assert!(frames[first_red..].iter().all(|f| f.1 == [255, 0, 0, 255]), "and stayed");
        // Frames already composed or queued when the layer was added (the sink
        // queue holds one, the compositor one in flight) are the only ones without it.
        assert!(first_red <= seen + 2, "first red {first_red}, layer added after {seen}");
    }

    #[tokio::test(start_paused = true)]
    async fn realtime_paces_at_fps_and_duration_limits_frames() {
        let out = Collected::default();
        let started = tokio::time::Instant::now();
        let options = StreamOptions { realtime: true, duration: Some(Duration::from_secs(2)), ..Default::default() };
        let report = Stream::new(counter(1000), vec![Box::new(Collect(out))], options).run().await.unwrap();
        assert_eq!((report.frames_out, report.end), (60, EndReason::FrameLimit));
        let virtual_elapsed = started.elapsed();
        assert!(virtual_elapsed >= Duration::from_nanos(Fps::new(30, 1).frame_time_ns(59)), "{virtual_elapsed:?}");
    }

    #[tokio::test]
    async fn a_stream_needs_a_sink() {
        let e = Stream::new(counter(1), vec![], StreamOptions::default()).run().await.err().unwrap();
        assert!(e.to_string().contains("at least one sink"));
    }
}
