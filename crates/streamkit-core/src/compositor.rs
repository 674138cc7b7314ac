//! The compositor: the source frame at the bottom, then layers in z order,
//! blended in premultiplied RGBA.
//!
//! Layers are owned by the [`Compositor`] and changed through a
//! [`LayerControl`] handle, which any task or thread may hold: commands queue
//! up and take effect at the start of the next frame. A layer that returns an
//! error or panics is logged, counted in [`Stats`] and skipped for that frame;
//! the stream goes on.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;

use crate::blend;
use crate::canvas::Canvas;
use crate::convert;
use crate::error::{Error, Result};
use crate::frame::{BufferPool, Frame, PixelFormat};
use crate::layer::{FrameContext, Layer};
use crate::scale;
use crate::stats::Stats;
use crate::time::{Fps, Timing};

/// Pooled output buffers: enough for frames queued in sinks plus one being drawn.
const POOL_FREE_BUFFERS: usize = 8;

/// What the handle can see of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub id: String,
    pub z_index: i32,
    pub opacity: f32,
    pub visible: bool,
}

enum Command {
    Add(LayerInfo, Box<dyn Layer>),
    Remove(String),
    SetZIndex(String, i32),
    SetOpacity(String, f32),
    SetVisible(String, bool),
}

/// Adds, removes and re-orders layers of a running compositor. Cheap to
/// clone; usable from any task or thread. Changes apply on the next frame.
#[derive(Clone)]
pub struct LayerControl {
    commands: mpsc::Sender<Command>,
    current: Arc<Mutex<Vec<LayerInfo>>>,
}

impl LayerControl {
    /// Adds `layer` with an id and a z-index (higher draws on top; equal
    /// z-indexes keep the order they were added in). An existing layer with
    /// the same id is replaced.
    pub fn add_layer(&self, id: impl Into<String>, z_index: i32, layer: impl Layer + 'static) {
        self.add_boxed(id, z_index, 1.0, Box::new(layer));
    }

    /// [`LayerControl::add_layer`] for an already boxed layer, with an opacity.
    pub fn add_boxed(&self, id: impl Into<String>, z_index: i32, opacity: f32, layer: Box<dyn Layer>) {
        let info = LayerInfo { id: id.into(), z_index, opacity: opacity.clamp(0.0, 1.0), visible: true };
        self.send(Command::Add(info, layer));
    }

    pub fn remove_layer(&self, id: impl Into<String>) {
        self.send(Command::Remove(id.into()));
    }

    pub fn set_z_index(&self, id: impl Into<String>, z_index: i32) {
        self.send(Command::SetZIndex(id.into(), z_index));
    }

    /// 0.0 (invisible) to 1.0 (as drawn).
    pub fn set_opacity(&self, id: impl Into<String>, opacity: f32) {
        self.send(Command::SetOpacity(id.into(), opacity.clamp(0.0, 1.0)));
    }

    pub fn set_visible(&self, id: impl Into<String>, visible: bool) {
        self.send(Command::SetVisible(id.into(), visible));
    }

    /// The layers, bottom to top, as of the last composed frame.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.current.lock().unwrap().clone()
    }

    fn send(&self, command: Command) {
        // The compositor is gone once its stream ended; there is nothing left to change.
        let _ = self.commands.send(command);
    }
}

struct Entry {
    info: LayerInfo,
    layer: Box<dyn Layer>,
    /// Where a translucent layer draws before it is blended at its opacity.
    scratch: Option<Frame>,
}

/// Composes frames: base frame, then layers bottom to top.
pub struct Compositor {
    size: Option<(u32, u32)>,
    fps: Fps,
    background: [u8; 4],
    layers: Vec<Entry>,
    commands: mpsc::Receiver<Command>,
    control: LayerControl,
    pool: Option<BufferPool>,
    stats: Arc<Stats>,
    frames: u64,
}

impl Compositor {
    /// A compositor drawing at `size` (or the first base frame's size when
    /// `None`) and `fps`.
    pub fn new(size: Option<(u32, u32)>, fps: Fps, stats: Arc<Stats>) -> Compositor {
        let (tx, rx) = mpsc::channel();
        Compositor {
            size,
            fps,
            background: [0, 0, 0, 255],
            layers: Vec::new(),
            commands: rx,
            control: LayerControl { commands: tx, current: Arc::default() },
            pool: None,
            stats,
            frames: 0,
        }
    }

    /// Premultiplied RGBA under everything when there is no source frame
    /// (and around a letterboxed one). Opaque black by default.
    pub fn set_background(&mut self, rgba_premul: [u8; 4]) {
        self.background = rgba_premul;
    }

    pub fn control(&self) -> LayerControl {
        self.control.clone()
    }

    pub fn size(&self) -> Option<(u32, u32)> {
        self.size
    }

    /// Composes one output frame. `base` is the source's frame (any format,
    /// any size: it is converted and letterboxed to the output size).
    /// Without layers, a base frame of the output size passes through
    /// untouched (no copy).
    pub async fn compose(&mut self, base: Option<Frame>) -> Result<Frame> {
        self.apply_commands().await;
        let (width, height) = match (self.size, &base) {
            (Some(size), _) => size,
            (None, Some(frame)) => *self.size.insert(frame.size()),
            (None, None) => return Err(Error::invalid("a stream without a source needs an output size")),
        };
        let frame_number = self.frames;
        self.frames += 1;
        let visible = self.layers.iter().any(|e| e.info.visible && e.info.opacity > 0.0);
        if let Some(base) = &base {
            if !visible && base.size() == (width, height) {
                return Ok(base.clone());
            }
        }
        let mut out = self.output_frame(width, height)?;
        match &base {
            Some(b) => paint_base(b, &mut out, self.background)?,
            None => fill(out.data_mut(), self.background),
        }
        let timing =
            base.as_ref().map(|b| b.timing.clone()).unwrap_or_else(|| Timing::for_frame(frame_number, self.fps));
        let ctx = FrameContext {
            time: self.fps.frame_time_ns(frame_number) as f64 / 1e9,
            frame_number,
            fps: self.fps.as_f64(),
            width,
            height,
            base_frame: base.as_ref(),
            timing: &timing,
            opacity: 1.0,
        };
        for entry in self.layers.iter_mut().filter(|e| e.info.visible && e.info.opacity > 0.0) {
            let started = Instant::now();
            if let Err(e) = render_entry(entry, &mut out, &ctx).await {
                let count = self.stats.layer_error(&entry.info.id);
                if count == 1 || count.is_multiple_of(100) {
                    tracing::warn!(layer = %entry.info.id, errors = count, "{e}; layer skipped for this frame");
                }
            }
            self.stats.stage_time(&format!("layer:{}", entry.info.id), started.elapsed());
        }
        if let Some(b) = base {
            out.metadata = b.metadata;
        }
        out.timing = timing;
        Ok(out)
    }

    /// Closes every layer (e.g. the sources of video layers).
    pub async fn close(&mut self) {
        self.apply_commands().await;
        for mut entry in self.layers.drain(..) {
            if let Err(e) = entry.layer.close().await {
                tracing::warn!(layer = %entry.info.id, "closing layer: {e}");
            }
        }
    }

    fn output_frame(&mut self, width: u32, height: u32) -> Result<Frame> {
        let len = PixelFormat::Rgba8Premul.packed_layout(width, height).byte_len();
        let pool = self.pool.get_or_insert_with(|| BufferPool::new(len, POOL_FREE_BUFFERS));
        Frame::from_pool(pool, PixelFormat::Rgba8Premul, width, height)
    }

    async fn apply_commands(&mut self) {
        let mut changed = false;
        while let Ok(command) = self.commands.try_recv() {
            changed = true;
            match command {
                Command::Add(info, layer) => {
                    if let Some(old) = self.take(&info.id) {
                        close_layer(old).await;
                    }
                    self.layers.push(Entry { info, layer, scratch: None });
                }
                Command::Remove(id) => match self.take(&id) {
                    Some(old) => close_layer(old).await,
                    None => tracing::warn!(layer = %id, "remove_layer: no layer with this id"),
                },
                Command::SetZIndex(id, z) => self.update(&id, |info| info.z_index = z),
                Command::SetOpacity(id, o) => self.update(&id, |info| info.opacity = o),
                Command::SetVisible(id, v) => self.update(&id, |info| info.visible = v),
            }
        }
        if changed {
            self.layers.sort_by_key(|e| e.info.z_index);
            *self.control.current.lock().unwrap() = self.layers.iter().map(|e| e.info.clone()).collect();
        }
    }

    fn take(&mut self, id: &str) -> Option<Entry> {
        let index = self.layers.iter().position(|e| e.info.id == id)?;
        Some(self.layers.remove(index))
    }

    fn update(&mut self, id: &str, change: impl FnOnce(&mut LayerInfo)) {
        match self.layers.iter_mut().find(|e| e.info.id == id) {
            Some(entry) => change(&mut entry.info),
            None => tracing::warn!(layer = %id, "no layer with this id"),
        }
    }
}

async fn close_layer(mut entry: Entry) {
    if let Err(e) = entry.layer.close().await {
        tracing::warn!(layer = %entry.info.id, "closing layer: {e}");
    }
}

/// Renders one layer: straight onto the output when opaque, else onto a
/// scratch surface blended at the layer's opacity. Panics become errors.
async fn render_entry(entry: &mut Entry, out: &mut Frame, ctx: &FrameContext<'_>) -> Result<()> {
    let opacity = entry.info.opacity;
    let id = entry.info.id.clone();
    if opacity >= 1.0 || entry.layer.applies_opacity() {
        let mut canvas = Canvas::new(out)?;
        let ctx = FrameContext { opacity, ..*ctx };
        return guarded(&id, entry.layer.render(&mut canvas, &ctx)).await;
    }
    let (w, h) = out.size();
    let scratch = match &mut entry.scratch {
        Some(s) if s.size() == (w, h) => s,
        slot => slot.insert(Frame::new(PixelFormat::Rgba8Premul, w, h)?),
    };
    scratch.data_mut().fill(0);
    let mut canvas = Canvas::new(scratch)?;
    guarded(&id, entry.layer.render(&mut canvas, ctx)).await?;
    let alpha = (opacity * 255.0).round() as u8;
    blend::over_row(out.data_mut(), scratch.data(), alpha);
    Ok(())
}

async fn guarded(id: &str, render: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    match AssertUnwindSafe(render).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Layer { id: id.to_string(), message: e.to_string() }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::Layer { id: id.to_string(), message: format!("panicked: {message}") })
        }
    }
}

fn fill(pixels: &mut [u8], rgba: [u8; 4]) {
    for px in pixels.chunks_exact_mut(4) {
        px.copy_from_slice(&rgba);
    }
}

/// Draws the source frame into the output: a conversion when sizes match,
/// else scaled to fit, centred, with the background around it.
fn paint_base(base: &Frame, out: &mut Frame, background: [u8; 4]) -> Result<()> {
    if base.size() == out.size() {
        return convert::convert_into(base, out);
    }
    let rgba = convert::convert(base, PixelFormat::Rgba8Premul)?;
    let (bw, bh) = rgba.size();
    let (ow, oh) = out.size();
    let (fw, fh) = fit(bw, bh, ow, oh);
    let (x, y) = ((ow - fw) / 2, (oh - fh) / 2);
    let stride = ow as usize * 4;
    let pixels = out.data_mut();
    if (fw, fh) != (ow, oh) {
        fill(pixels, background);
    }
    let (src, src_stride) = rgba.plane(0);
    let offset = y as usize * stride + x as usize * 4;
    scale::scale_rgba(src, bw, bh, src_stride, &mut pixels[offset..], fw, fh, stride);
    Ok(())
}

/// The largest size with `w:h`'s aspect ratio that fits in `max_w`x`max_h`.
fn fit(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let by_width = (max_w, ((h as u64 * max_w as u64) / w as u64).max(1) as u32);
    if by_width.1 <= max_h {
        by_width
    } else {
        ((((w as u64 * max_h as u64) / h as u64).max(1) as u32).min(max_w), max_h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::FnLayer;

    fn solid(w: u32, h: u32, rgba: [u8; 4]) -> Frame {
        Frame::from_vec(PixelFormat::Rgba8Premul, w, h, rgba.repeat((w * h) as usize)).unwrap()
    }

    fn pixel(f: &Frame, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * f.width() + x) * 4) as usize;
        f.data()[i..i + 4].try_into().unwrap()
    }

    /// A layer filling the whole canvas with one premultiplied colour.
    fn paint_layer(rgba: [u8; 4]) -> FnLayer<impl FnMut(&mut Canvas<'_>, &FrameContext<'_>) -> Result<()> + Send> {
        FnLayer::new(move |canvas: &mut Canvas<'_>, _: &FrameContext<'_>| {
            fill(canvas.pixels_mut(), rgba);
            Ok(())
        })
    }

    fn compositor() -> Compositor {
        Compositor::new(Some((8, 8)), Fps::new(30, 1), Arc::new(Stats::new()))
    }

    #[tokio::test]
    async fn no_layers_passes_the_frame_through_without_copy() {
        let mut c = compositor();
        let base = solid(8, 8, [1, 2, 3, 255]);
        let out = c.compose(Some(base.clone())).await.unwrap();
        assert!(crate::frame::Buffer::ptr_eq(out.buffer(), base.buffer()));
    }

    #[tokio::test]
    async fn layers_draw_in_z_order_and_changes_apply_next_frame() {
        let mut c = compositor();
        let control = c.control();
        control.add_layer("red", 2, paint_layer([255, 0, 0, 255]));
        control.add_layer("green", 1, paint_layer([0, 255, 0, 255]));
        let base = solid(8, 8, [0, 0, 0, 255]);
        let out = c.compose(Some(base.clone())).await.unwrap();
        assert_eq!(pixel(&out, 3, 3), [255, 0, 0, 255], "red has the higher z");
        assert_eq!(control.layers().iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["green", "red"]);

        control.set_z_index("green", 5);
        let out = c.compose(Some(base.clone())).await.unwrap();
        assert_eq!(pixel(&out, 3, 3), [0, 255, 0, 255]);

        control.remove_layer("green");
        let out = c.compose(Some(base.clone())).await.unwrap();
        assert_eq!(pixel(&out, 3, 3), [255, 0, 0, 255]);
        control.remove_layer("red");
        let out = c.compose(Some(base.clone())).await.unwrap();
        assert_eq!(pixel(&out, 3, 3), [0, 0, 0, 255]);
    }

    #[tokio::test]
    async fn layer_changes_from_another_task_take_effect_on_the_next_frame() {
        let mut c = compositor();
        let control = c.control();
        let base = solid(8, 8, [0, 0, 0, 255]);
        assert_eq!(pixel(&c.compose(Some(base.clone())).await.unwrap(), 0, 0), [0, 0, 0, 255]);
        tokio::spawn(async move { control.add_layer("blue", 1, paint_layer([0, 0, 255, 255])) }).await.unwrap();
        assert_eq!(pixel(&c.compose(Some(base.clone())).await.unwrap(), 0, 0), [0, 0, 255, 255]);
        let control = c.control();
        std::thread::spawn(move || control.remove_layer("blue")).join().unwrap();
        assert_eq!(pixel(&c.compose(Some(base)).await.unwrap(), 0, 0), [0, 0, 0, 255]);
    }

    #[tokio::test]
    async fn opacity_blends_the_layer() {
        let mut c = compositor();
        c.control().add_boxed("white", 1, 0.5, Box::new(paint_layer([255, 255, 255, 255])));
        let out = c.compose(Some(solid(8, 8, [0, 0, 0, 255]))).await.unwrap();
        let p = pixel(&out, 0, 0);
        assert!((127..=129).contains(&p[0]) && p[3] == 255, "{p:?}");
    }

    #[tokio::test]
    async fn failing_and_panicking_layers_are_skipped_and_counted() {
        let stats = Arc::new(Stats::new());
        let mut c = Compositor::new(Some((8, 8)), Fps::new(30, 1), stats.clone());
        let control = c.control();
        control.add_layer("panics", 1, FnLayer::new(|_: &mut Canvas<'_>, _: &FrameContext<'_>| panic!("boom")));
        control.add_layer(
            "fails",
            2,
            FnLayer::new(|_: &mut Canvas<'_>, _: &FrameContext<'_>| Err(Error::invalid("nope"))),
        );
        control.add_layer("ok", 3, paint_layer([9, 9, 9, 255]));
        for _ in 0..3 {
            let out = c.compose(Some(solid(8, 8, [0, 0, 0, 255]))).await.unwrap();
            assert_eq!(pixel(&out, 1, 1), [9, 9, 9, 255], "the healthy layer still draws");
        }
        let errors = stats.snapshot().layer_errors;
        assert_eq!(errors, vec![("fails".to_string(), 3), ("panics".to_string(), 3)]);
    }

    #[tokio::test]
    async fn context_carries_time_and_base_frame() {
        let mut c = compositor();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        c.control().add_layer(
            "probe",
            0,
            FnLayer::new(move |_: &mut Canvas<'_>, ctx: &FrameContext<'_>| {
                let base = ctx.base_frame.map(|f| pixel(f, 0, 0));
                record.lock().unwrap().push((ctx.frame_number, ctx.time, ctx.fps, base));
                Ok(())
            }),
        );
        for _ in 0..2 {
            c.compose(Some(solid(8, 8, [5, 6, 7, 255]))).await.unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], (0, 0.0, 30.0, Some([5, 6, 7, 255])));
        assert_eq!(seen[1].0, 1);
        assert!((seen[1].1 - 1.0 / 30.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn output_buffers_are_recycled() {
        let mut c = compositor();
        c.control().add_layer("x", 0, paint_layer([1, 1, 1, 255]));
        let first = c.compose(None).await.unwrap();
        let ptr = first.data().as_ptr();
        drop(first);
        let second = c.compose(None).await.unwrap();
        assert_eq!(second.data().as_ptr(), ptr);
    }

    #[test]
    fn fit_keeps_aspect_ratio() {
        assert_eq!(fit(640, 360, 1920, 1080), (1920, 1080));
        assert_eq!(fit(640, 480, 1920, 1080), (1440, 1080));
        assert_eq!(fit(1080, 1920, 1920, 1080), (607, 1080));
        assert_eq!(fit(1920, 200, 1920, 1080), (1920, 200));
    }
}
