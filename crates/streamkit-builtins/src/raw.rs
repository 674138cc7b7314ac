//! Raw frames (`.raw`): pixels only, one frame after another, no header.
//!
//! Every frame is converted to the sink's [`PixelFormat`] and written tightly
//! packed (row padding removed): plane after plane, so I420 is the Y plane,
//! then U, then V. Nothing records the size, format or rate, so the reader
//! must be told them; [`ffmpeg_pix_fmt`] gives ffmpeg's name for each format:
//!
//! ```sh
//! streamkit run 'test:smpte?size=640x360' --frames 30 -o 'raw:-?format=rgba' \
//!   | ffplay -f rawvideo -pixel_format rgba -video_size 640x360 -framerate 30 -
//! ffmpeg -f rawvideo -pixel_format yuv420p -video_size 640x360 -framerate 30 -i out.raw out.mp4
//! ```
//!
//! | streamkit | ffmpeg `-pixel_format` | note |
//! |---|---|---|
//! | `rgba` | `rgba` | premultiplied alpha: colour is already flattened over black |
//! | `bgra` | `bgra` | straight alpha |
//! | `i420` | `yuv420p` | BT.709 limited range |
//! | `nv12` | `nv12` | BT.709 limited range |
//! | `gray8` | `gray` | limited-range luma (16..=235) |

use std::path::Path;

use async_trait::async_trait;
use streamkit_core::error::IoContext;
use streamkit_core::frame::check_size;
use streamkit_core::{convert, Error, Frame, PixelFormat, Result, Sink};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

const WRITE_BUFFER: usize = 256 * 1024;

/// ffmpeg's `-pixel_format` name for the bytes a [`RawSink`] writes in `format`.
pub fn ffmpeg_pix_fmt(format: PixelFormat) -> &'static str {
    match format {
        PixelFormat::Rgba8Premul => "rgba",
        PixelFormat::Bgra8 => "bgra",
        PixelFormat::I420 => "yuv420p",
        PixelFormat::Nv12 => "nv12",
        PixelFormat::Gray8 => "gray",
    }
}

/// The `ffplay` command line that shows a raw stream of this format and size.
pub fn ffplay_command(format: PixelFormat, width: u32, height: u32, path: &str) -> String {
    format!("ffplay -f rawvideo -pixel_format {} -video_size {width}x{height} {path}", ffmpeg_pix_fmt(format))
}

/// Writes raw frames to a file or standard output.
pub struct RawSink {
    name: String,
    writer: BufWriter<Box<dyn AsyncWrite + Unpin + Send>>,
    format: PixelFormat,
    size: Option<(u32, u32)>,
    /// Conversion target, reused frame to frame.
    scratch: Option<Frame>,
    frames: u64,
    closed: bool,
}

impl RawSink {
    /// Creates (truncates) `path`, or writes to standard output for `-`.
    pub fn create(path: impl AsRef<Path>, format: PixelFormat) -> Result<RawSink> {
        let path = path.as_ref();
        if path.as_os_str() == "-" {
            return Ok(RawSink::stdout(format));
        }
        let name = path.display().to_string();
        let file = std::fs::File::create(path).context(|| format!("creating raw {name}"))?;
        Ok(RawSink::to_writer(tokio::fs::File::from_std(file), name, format))
    }

    /// Writes to standard output (`raw:-`).
    pub fn stdout(format: PixelFormat) -> RawSink {
        RawSink::to_writer(tokio::io::stdout(), "-", format)
    }

    /// Writes to any async writer; `name` names it in errors and [`Sink::describe`].
    pub fn to_writer(
        writer: impl AsyncWrite + Unpin + Send + 'static,
        name: impl Into<String>,
        format: PixelFormat,
    ) -> RawSink {
        RawSink {
            name: name.into(),
            writer: BufWriter::with_capacity(WRITE_BUFFER, Box::new(writer)),
            format,
            size: None,
            scratch: None,
            frames: 0,
            closed: false,
        }
    }

    /// The format frames are written in.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }
}

#[async_trait]
impl Sink for RawSink {
    fn describe(&self) -> String {
        format!("raw:{}", self.name)
    }

    async fn write(&mut self, frame: &Frame) -> Result<()> {
        if self.closed {
            return Err(Error::invalid(format!("{}: write after close", self.describe())));
        }
        let (w, h) = frame.size();
        match self.size {
            None => {
                check_size(self.format, w, h).map_err(|e| Error::invalid(format!("{}: {e}", self.describe())))?;
                self.size = Some((w, h));
                tracing::info!("{}: play with: {}", self.describe(), ffplay_command(self.format, w, h, &self.name));
            }
            Some((sw, sh)) if (sw, sh) != (w, h) => {
                return Err(Error::invalid(format!(
                    "{}: frame {} is {w}x{h} but the stream started at {sw}x{sh}; raw output has no header, so the size cannot change",
                    self.describe(),
                    self.frames
                )));
            }
            Some(_) => {}
        }
        let out = converted(frame, self.format, &mut self.scratch)?;
        write_planes(&mut self.writer, out).await.context(|| format!("writing raw {}", self.name))?;
        self.frames += 1;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.writer.shutdown().await.context(|| format!("finishing raw {}", self.name))
    }
}

/// Writes every plane of `frame` tightly packed (row padding left out).
pub(crate) async fn write_planes<W: AsyncWrite + Unpin + ?Sized>(writer: &mut W, frame: &Frame) -> std::io::Result<()> {
    let packed = frame.format().packed_layout(frame.width(), frame.height());
    for (i, p) in packed.planes().iter().enumerate() {
        let (data, stride) = frame.plane(i);
        if stride == p.stride {
            writer.write_all(&data[..p.len()]).await?;
        } else {
            for row in data.chunks(stride).take(p.rows) {
                writer.write_all(&row[..p.stride]).await?;
            }
        }
    }
    Ok(())
}

/// `frame` in `format`, ready to write: the frame itself when it already is,
/// else converted into `scratch` (allocated on first use, then reused).
pub(crate) fn converted<'a>(
    frame: &'a Frame,
    format: PixelFormat,
    scratch: &'a mut Option<Frame>,
) -> Result<&'a Frame> {
    if frame.format() == format {
        return Ok(frame);
    }
    if !scratch.as_ref().is_some_and(|s| s.format() == format && s.size() == frame.size()) {
        *scratch = Some(Frame::new(format, frame.width(), frame.height())?);
    }
    let target = scratch.as_mut().expect("just filled");
    convert::convert_into(frame, target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::y4m::testutil::{have_tool, padded_copy, run_tool, TempDir};

    fn rgba_frame(n: u8, w: u32, h: u32) -> Frame {
        let data = (0..w * h * 4).map(|i| (i as u8).wrapping_mul(3).wrapping_add(n * 50)).collect();
        Frame::from_vec(PixelFormat::Rgba8Premul, w, h, data).unwrap()
    }

    #[tokio::test]
    async fn writes_packed_frames_back_to_back() {
        let dir = TempDir::new("raw");
        let path = dir.join("f.raw");
        let frames: Vec<Frame> = (0..3).map(|n| rgba_frame(n, 4, 2)).collect();
        let mut sink = RawSink::create(&path, PixelFormat::Rgba8Premul).unwrap();
        assert_eq!(sink.describe(), format!("raw:{}", path.display()));
        sink.write(&frames[0]).await.unwrap();
        sink.write(&padded_copy(&frames[1])).await.unwrap();
        sink.write(&frames[2]).await.unwrap();
        sink.close().await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 3 * 4 * 2 * 4);
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.data().to_vec()).collect();
        assert_eq!(bytes, expected);
    }

    #[tokio::test]
    async fn converts_to_the_sink_format() {
        let dir = TempDir::new("raw");
        let path = dir.join("white.yuv");
        let mut white = Frame::new(PixelFormat::Rgba8Premul, 4, 2).unwrap();
        white.data_mut().fill(255);
        let mut sink = RawSink::create(&path, PixelFormat::Nv12).unwrap();
        sink.write(&white).await.unwrap();
        sink.write(&white).await.unwrap();
        let e = sink.write(&Frame::new(PixelFormat::Rgba8Premul, 8, 2).unwrap()).await.unwrap_err().to_string();
        assert!(e.contains("frame 2 is 8x2") && e.contains("started at 4x2"), "{e}");
        sink.close().await.unwrap();
        let frame = [235, 235, 235, 235, 235, 235, 235, 235, 128, 128, 128, 128];
        assert_eq!(std::fs::read(&path).unwrap(), frame.repeat(2));
        assert_eq!(RawSink::stdout(PixelFormat::Gray8).describe(), "raw:-");
        assert_eq!(RawSink::create("-", PixelFormat::Gray8).unwrap().describe(), "raw:-");
    }

    #[test]
    fn ffmpeg_names() {
        let names: Vec<&str> = PixelFormat::ALL.iter().map(|&f| ffmpeg_pix_fmt(f)).collect();
        assert_eq!(names, ["rgba", "bgra", "yuv420p", "nv12", "gray"]);
        assert_eq!(
            ffplay_command(PixelFormat::I420, 64, 48, "-"),
            "ffplay -f rawvideo -pixel_format yuv420p -video_size 64x48 -"
        );
    }

    #[tokio::test]
    async fn ffmpeg_decodes_every_frame() {
        if !have_tool("ffmpeg") {
            return;
        }
        let dir = TempDir::new("raw");
        let path = dir.join("f.raw");
        let mut sink = RawSink::create(&path, PixelFormat::I420).unwrap();
        for n in 0..6 {
            sink.write(&rgba_frame(n, 64, 48)).await.unwrap();
        }
        sink.close().await.unwrap();
        let (_, stderr) = run_tool(
            "ffmpeg",
            &[
                "-hide_banner",
                "-nostats",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
                "-s",
                "64x48",
                "-i",
                path.to_str().unwrap(),
                "-f",
                "null",
                "-",
            ],
        );
        // With -nostats ffmpeg still prints the final progress line once.
        let frames = stderr
            .rsplit("frame=")
            .next()
            .filter(|_| stderr.contains("frame="))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no 'frame=' in ffmpeg's output: {stderr}"));
        assert_eq!(frames, 6, "{stderr}");
    }
}
