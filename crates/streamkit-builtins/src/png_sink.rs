//! PNG output: one snapshot, or an image sequence.
//!
//! PNG is a lossless image format every viewer and browser opens. Frames are
//! written as 8-bit RGBA with straight (un-premultiplied) alpha, with fast
//! compression so a sequence keeps up with a live stream.
//!
//! * **Snapshot** — a path without a `%d` pattern (`snap.png`): one picture,
//!   of the last frame (written when the stream closes) or of frame `N` with
//!   `frame=N` (counted from 0).
//! * **Sequence** — a path with a printf-style number (`frames/%05d.png`,
//!   `shot-%d.png`): one picture per frame, or per `every=N` frames, numbered
//!   consecutively from `start=` (default 0), as ffmpeg's image2 muxer does.
//!   `%%` is a literal `%`.
//!
//! ```sh
//! streamkit run 'test:smpte?size=640x360' --frames 30 -o snap.png
//! streamkit run 'test:smpte?size=640x360' --frames 30 -o 'png:frames/%05d.png?every=10'
//! ```
//!
//! Each file is encoded on tokio's blocking thread pool, written to a hidden
//! temporary file in the same directory and renamed into place, so a viewer
//! (or a web server) never sees half a picture.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use streamkit_core::error::IoContext;
use streamkit_core::{convert, Error, Frame, PixelFormat, Result, Sink};
use tokio::task::JoinHandle;

/// Options for [`PngSink::create`]; each is checked against the mode the path picks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PngSinkOptions {
    /// Snapshot only: write frame `N` (0-based) instead of the last frame.
    pub frame: Option<u64>,
    /// Sequence only: write every `N`th frame (frames 0, N, 2N …); default 1.
    pub every: Option<u64>,
    /// Sequence only: the number of the first file; default 0.
    pub start: Option<u64>,
}

/// A file name with one printf-style `%d` / `%0Nd`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NumberPattern {
    prefix: String,
    width: usize,
    suffix: String,
}

impl NumberPattern {
    /// `None` when `text` has no `%d`; an error for two of them or a stray `%`.
    fn parse(text: &str) -> Result<Option<NumberPattern>> {
        let bad = |message: String| Error::invalid(format!("png:{text}: {message}"));
        let mut parts = [String::new(), String::new()];
        let mut width = None;
        let mut stray = None;
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                parts[width.is_some() as usize].push(c);
                continue;
            }
            if chars.next_if(|&(_, c)| c == '%').is_some() {
                parts[width.is_some() as usize].push('%');
                continue;
            }
            let mut digits = String::new();
            while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                digits.push(d);
            }
            if chars.next_if(|&(_, c)| c == 'd').is_none() {
                stray.get_or_insert(at);
                parts[width.is_some() as usize].push('%');
                parts[width.is_some() as usize].push_str(&digits);
                continue;
            }
            if width.is_some() {
                return Err(bad("more than one %d: an image sequence is numbered by one counter".into()));
            }
            let w: usize = if digits.is_empty() {
                0
            } else {
                digits.parse().map_err(|_| bad(format!("bad width '%{digits}d'")))?
            };
            if w > 20 {
                return Err(bad(format!("'%{digits}d' pads to {w} digits; at most 20")));
            }
            width = Some(w);
        }
        match (width, stray) {
            (None, _) => Ok(None),
            (Some(_), Some(at)) => Err(bad(format!("'%' at byte {at} is not %d, %0Nd or %%"))),
            (Some(width), None) => {
                let [prefix, suffix] = parts;
                Ok(Some(NumberPattern { prefix, width, suffix }))
            }
        }
    }

    fn path(&self, number: u64) -> PathBuf {
        PathBuf::from(format!("{}{number:0width$}{}", self.prefix, self.suffix, width = self.width))
    }
}

enum Mode {
    Snapshot {
        path: PathBuf,
        /// `frame=N`, or `None` for the last frame.
        wanted: Option<u64>,
        /// For the last-frame snapshot: a clone (shared pixels) of the newest frame.
        latest: Option<Frame>,
        written: bool,
    },
    Sequence {
        pattern: NumberPattern,
        every: u64,
        /// Frames to skip before the next file.
        skip: u64,
        next_number: u64,
    },
}

/// Writes frames as PNG files; see the [module docs](self).
pub struct PngSink {
    target: String,
    mode: Mode,
    /// Frames received so far.
    received: u64,
    /// The file being encoded, at most one at a time.
    pending: Option<JoinHandle<Result<()>>>,
    closed: bool,
}

impl PngSink {
    /// A snapshot (`snap.png`) or an image sequence (`frames/%05d.png`).
    /// Fails early when the directory does not exist or an option does not
    /// fit the mode.
    pub fn create(pattern: &str, options: PngSinkOptions) -> Result<PngSink> {
        let bad = |message: &str| Error::invalid(format!("png:{pattern}: {message}"));
        if pattern.is_empty() {
            return Err(bad("no file name"));
        }
        let number = NumberPattern::parse(pattern)?;
        let dir_of = |path: &Path| {
            path.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| ".".into())
        };
        let mode = match number {
            None => {
                if options.every.is_some() || options.start.is_some() {
                    return Err(bad("'every' and 'start' apply to image sequences; put %d or %05d in the file name"));
                }
                Mode::Snapshot { path: pattern.into(), wanted: options.frame, latest: None, written: false }
            }
            Some(number) => {
                if options.frame.is_some() {
                    return Err(bad("'frame' picks one frame for a snapshot; a %d file name writes a sequence"));
                }
                let every = options.every.unwrap_or(1);
                if every == 0 {
                    return Err(bad("'every' must be at least 1"));
                }
                Mode::Sequence { pattern: number, every, skip: 0, next_number: options.start.unwrap_or(0) }
            }
        };
        let dir = match &mode {
            Mode::Snapshot { path, .. } => dir_of(path),
            Mode::Sequence { pattern, .. } => dir_of(&pattern.path(0)),
        };
        if !dir.is_dir() {
            return Err(bad(&format!("directory '{}' does not exist", dir.display())));
        }
        Ok(PngSink { target: pattern.to_string(), mode, received: 0, pending: None, closed: false })
    }

    /// Starts encoding `frame` into `path` on the blocking pool, after the
    /// previous file has finished (so at most one is in flight).
    async fn spawn_write(&mut self, frame: Frame, path: PathBuf) -> Result<()> {
        self.finish_pending().await?;
        self.pending = Some(tokio::task::spawn_blocking(move || write_png(&frame, &path)));
        Ok(())
    }

    async fn finish_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            None => Ok(()),
            Some(task) => {
                task.await.map_err(|e| Error::invalid(format!("png:{}: encoder task failed: {e}", self.target)))?
            }
        }
    }
}

#[async_trait]
impl Sink for PngSink {
    fn describe(&self) -> String {
        format!("png:{}", self.target)
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.closed {
            return Err(Error::invalid(format!("{}: write after close", self.describe())));
        }
        let index = self.received;
        self.received += 1;
        let job = match &mut self.mode {
            Mode::Snapshot { wanted: None, latest, .. } => {
                *latest = Some(frame.clone());
                None
            }
            Mode::Snapshot { path, wanted: Some(n), written, .. } => (*n == index && !*written).then(|| {
                *written = true;
                path.clone()
            }),
            Mode::Sequence { skip, .. } if *skip > 0 => {
                *skip -= 1;
                None
            }
            Mode::Sequence { pattern, every, skip, next_number } => {
                *skip = *every - 1;
                *next_number += 1;
                Some(pattern.path(*next_number - 1))
            }
        };
        match job {
            Some(path) => self.spawn_write(frame.clone(), path).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let last = match &mut self.mode {
            Mode::Snapshot { path, wanted: None, latest, .. } => match latest.take() {
                Some(frame) => Some((frame, path.clone())),
                None => {
                    return Err(Error::invalid(format!(
                        "{}: no frame arrived, so there is no snapshot to write",
                        self.describe()
                    )))
                }
            },
            Mode::Snapshot { wanted: Some(n), written: false, .. } => {
                let n = *n;
                self.finish_pending().await?;
                return Err(Error::invalid(format!(
                    "{}: frame={n} never arrived: the stream ended after {} frame(s) (numbered from 0)",
                    self.describe(),
                    self.received
                )));
            }
            _ => None,
        };
        if let Some((frame, path)) = last {
            self.spawn_write(frame, path).await?;
        }
        self.finish_pending().await
    }
}

/// Encodes `frame` as an RGBA8 PNG at `path`, through a temporary file in
/// the same directory that is renamed into place. Blocking.
pub fn write_png(frame: &Frame, path: &Path) -> Result<()> {
    let (width, height) = frame.size();
    let encoded = encode_png(frame).map_err(|e| Error::invalid(format!("encoding {}: {e}", path.display())))?;
    let tmp = temp_path(path);
    let written = std::fs::write(&tmp, &encoded).context(|| format!("writing {}", tmp.display())).and_then(|()| {
        std::fs::rename(&tmp, path).context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    tracing::debug!("wrote {} ({width}x{height}, {} bytes)", path.display(), encoded.len());
    written
}

/// The PNG bytes of `frame`: straight-alpha RGBA, 8 bits, fast compression.
fn encode_png(frame: &Frame) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let (width, height) = frame.size();
    // Bgra8 is the straight-alpha format: the conversion un-premultiplies.
    // It is a fresh packed frame (or, for a frame already in Bgra8, a shared
    // one that `data_mut` copies once), so swapping B and R in place is safe.
    let mut rgba = convert::convert(frame, PixelFormat::Bgra8)?.into_packed();
    for px in rgba.data_mut().chunks_exact_mut(4) {
        px.swap(0, 2);
    }
    let mut out = Vec::with_capacity(rgba.data().len() / 4 + 1024);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgba.data())?;
    writer.finish()?;
    Ok(out)
}

/// A hidden, unique name next to `path` (same directory, so the rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::y4m::testutil::{ffprobe_show, have_tool, TempDir};

    fn solid(rgba: [u8; 4], w: u32, h: u32) -> Frame {
        let mut f = Frame::new(PixelFormat::Rgba8Premul, w, h).unwrap();
        for px in f.data_mut().chunks_exact_mut(4) {
            px.copy_from_slice(&rgba);
        }
        f
    }

    /// Decodes a PNG: (width, height, RGBA bytes).
    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgba, png::BitDepth::Eight));
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn names_in(dir: &TempDir) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn snapshot_of_the_last_frame() {
        let dir = TempDir::new("png");
        let path = dir.join("snap.png");
        let mut sink = PngSink::create(path.to_str().unwrap(), PngSinkOptions::default()).unwrap();
        assert_eq!(sink.describe(), format!("png:{}", path.display()));
        for n in 0..3u8 {
            sink.write(&solid([n * 10, 100, 200, 255], 6, 4)).await.unwrap();
        }
        assert!(!path.exists(), "the last-frame snapshot is written at close");
        sink.close().await.unwrap();
        let (w, h, px) = decode(&path);
        assert_eq!((w, h), (6, 4));
        assert!(px.chunks_exact(4).all(|p| p == [20, 100, 200, 255]), "{:?}", &px[..4]);
        assert_eq!(names_in(&dir), ["snap.png"], "no temporary file is left");
    }

    #[tokio::test]
    async fn snapshot_of_frame_n() {
        let dir = TempDir::new("png");
        let path = dir.join("third.png");
        let options = PngSinkOptions { frame: Some(2), ..Default::default() };
        let mut sink = PngSink::create(path.to_str().unwrap(), options.clone()).unwrap();
        for n in 0..5u8 {
            sink.write(&solid([n * 10, 0, 0, 255], 2, 2)).await.unwrap();
        }
        sink.close().await.unwrap();
        assert_eq!(decode(&path).2[..4], [20, 0, 0, 255]);

        let mut sink = PngSink::create(
            dir.join("never.png").to_str().unwrap(),
            PngSinkOptions { frame: Some(5), ..Default::default() },
        )
        .unwrap();
        for _ in 0..3 {
            sink.write(&solid([0; 4], 2, 2)).await.unwrap();
        }
        let e = sink.close().await.unwrap_err().to_string();
        assert!(e.contains("frame=5 never arrived") && e.contains("after 3 frame"), "{e}");
        assert!(!dir.join("never.png").exists());

        let mut sink = PngSink::create(dir.join("none.png").to_str().unwrap(), PngSinkOptions::default()).unwrap();
        assert!(sink.close().await.unwrap_err().to_string().contains("no frame arrived"));
    }

    #[tokio::test]
    async fn sequence_numbers_files() {
        let dir = TempDir::new("png");
        let pattern = dir.join("f%03d.png");
        let mut sink = PngSink::create(pattern.to_str().unwrap(), PngSinkOptions::default()).unwrap();
        for n in 0..4u8 {
            sink.write(&solid([n, n, n, 255], 2, 2)).await.unwrap();
        }
        sink.close().await.unwrap();
        assert_eq!(names_in(&dir), ["f000.png", "f001.png", "f002.png", "f003.png"]);
        assert_eq!(decode(&dir.join("f003.png")).2[..4], [3, 3, 3, 255]);

        let dir = TempDir::new("png");
        let pattern = dir.join("%d%%.png");
        let options = PngSinkOptions { every: Some(2), start: Some(9), ..Default::default() };
        let mut sink = PngSink::create(pattern.to_str().unwrap(), options).unwrap();
        for n in 0..5u8 {
            sink.write(&solid([n, 0, 0, 255], 2, 2)).await.unwrap();
        }
        sink.close().await.unwrap();
        assert_eq!(names_in(&dir), ["10%.png", "11%.png", "9%.png"]);
        assert_eq!(decode(&dir.join("10%.png")).2[..4], [2, 0, 0, 255]);
        assert_eq!(decode(&dir.join("11%.png")).2[..4], [4, 0, 0, 255]);
    }

    #[test]
    fn patterns_and_options_are_checked() {
        let p = NumberPattern::parse("a/b%05d.png").unwrap().unwrap();
        assert_eq!(p.path(42), PathBuf::from("a/b00042.png"));
        assert_eq!(p.path(1234567), PathBuf::from("a/b1234567.png"));
        assert_eq!(NumberPattern::parse("snap.png").unwrap(), None);
        assert_eq!(NumberPattern::parse("100%.png").unwrap(), None, "no %d: a literal snapshot path");
        let e = NumberPattern::parse("%d-%d.png").unwrap_err().to_string();
        assert!(e.contains("more than one %d"), "{e}");
        let e = NumberPattern::parse("%s-%d.png").unwrap_err().to_string();
        assert!(e.contains("'%' at byte 0"), "{e}");

        let e = PngSink::create("snap.png", PngSinkOptions { every: Some(2), ..Default::default() })
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("png:snap.png") && e.contains("%d"), "{e}");
        let e = PngSink::create("f%d.png", PngSinkOptions { frame: Some(2), ..Default::default() })
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("'frame'"), "{e}");
        let e = PngSink::create("f%d.png", PngSinkOptions { every: Some(0), ..Default::default() })
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("at least 1"), "{e}");
        let e = PngSink::create("no/such/dir/%d.png", PngSinkOptions::default()).err().unwrap().to_string();
        assert!(e.contains("directory 'no/such/dir' does not exist"), "{e}");
        assert!(
            PngSink::create("here.png", PngSinkOptions::default()).is_ok(),
            "a bare name is in the current directory"
        );
    }

    #[tokio::test]
    async fn alpha_is_unpremultiplied() {
        let dir = TempDir::new("png");
        let path = dir.join("alpha.png");
        // Straight (200, 100, 50) at alpha 128, premultiplied.
        let premul = |c: u32| ((c * 128 + 127) / 255) as u8;
        let mut frame = solid([premul(200), premul(100), premul(50), 128], 4, 2);
        frame.data_mut()[4..8].copy_from_slice(&[0, 0, 0, 0]); // transparent
        frame.data_mut()[8..12].copy_from_slice(&[10, 20, 30, 255]); // opaque
        let mut sink = PngSink::create(path.to_str().unwrap(), PngSinkOptions::default()).unwrap();
        sink.write(&frame).await.unwrap();
        sink.close().await.unwrap();
        let (_, _, px) = decode(&path);
        for (got, want) in px[..4].iter().zip([200u8, 100, 50, 128]) {
            assert!(got.abs_diff(want) <= 1, "{:?} vs {want}", &px[..4]);
        }
        assert_eq!(px[4..8], [0, 0, 0, 0]);
        assert_eq!(px[8..12], [10, 20, 30, 255]);
    }

    #[tokio::test]
    async fn writes_any_pixel_format() {
        let dir = TempDir::new("png");
        let path = dir.join("gray.png");
        let mut gray = Frame::new(PixelFormat::I420, 4, 2).unwrap();
        let (y_len, c_len) = (8, 2);
        gray.data_mut()[..y_len].fill(235);
        gray.data_mut()[y_len..y_len + 2 * c_len].fill(128);
        let mut sink = PngSink::create(path.to_str().unwrap(), PngSinkOptions::default()).unwrap();
        sink.write(&gray).await.unwrap();
        sink.close().await.unwrap();
        assert!(decode(&path).2.chunks_exact(4).all(|p| p == [255, 255, 255, 255]));
    }

    #[tokio::test]
    async fn ffprobe_sees_a_png() {
        if !have_tool("ffprobe") {
            return;
        }
        let dir = TempDir::new("png");
        let path = dir.join("probe.png");
        let mut sink = PngSink::create(path.to_str().unwrap(), PngSinkOptions::default()).unwrap();
        sink.write(&solid([10, 200, 30, 255], 64, 48)).await.unwrap();
        sink.close().await.unwrap();
        let out = ffprobe_show(&path, "stream=codec_name,width,height", "csv=p=0", &[]);
        assert_eq!(out.trim(), "png,64,48");
    }
}
