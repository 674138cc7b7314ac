//! `image:` — a still picture (PNG) over the video: a logo, a watermark.
//!
//! `--layer 'image:logo.png?pos=top-right&width=200&opacity=0.8'`

use async_trait::async_trait;
use streamkit_core::canvas::{Canvas, Image};
use streamkit_core::error::IoContext;
use streamkit_core::uri::Uri;
use streamkit_core::{scale, Error, FrameContext, Layer, Result};

use crate::placement::{Anchor, Placement};

/// A picture drawn at the same place every frame.
pub struct ImageLayer {
    image: Image,
    placement: Placement,
}

impl ImageLayer {
    pub fn new(image: Image, placement: Placement) -> ImageLayer {
        ImageLayer { image, placement }
    }

    /// `image:PATH?width=&height=&pos=&x=&y=&margin=`; with only one of
    /// width/height the other keeps the aspect ratio.
    pub fn from_uri(uri: &Uri) -> Result<ImageLayer> {
        let mut o = uri.options();
        let width: Option<u32> = o.parse("width", "a width in pixels")?;
        let height: Option<u32> = o.parse("height", "a height in pixels")?;
        let placement = Placement::from_options(&mut o, Anchor::TopLeft)?;
        o.finish()?;
        let image = load_png(&uri.body)?;
        let (w, h) = (image.width(), image.height());
        let size = match (width, height) {
            (Some(w2), Some(h2)) => (w2, h2),
            (Some(w2), None) => (w2, (h as u64 * w2 as u64 / w as u64).max(1) as u32),
            (None, Some(h2)) => ((w as u64 * h2 as u64 / h as u64).max(1) as u32, h2),
            (None, None) => (w, h),
        };
        Ok(ImageLayer::new(resized(image, size)?, placement))
    }
}

fn resized(image: Image, (w, h): (u32, u32)) -> Result<Image> {
    if (w, h) == (image.width(), image.height()) {
        return Ok(image);
    }
    streamkit_core::frame::check_size(streamkit_core::PixelFormat::Rgba8Premul, w, h)?;
    let mut out = vec![0; w as usize * h as usize * 4];
    let stride = image.width() as usize * 4;
    scale::scale_rgba(image.pixels(), image.width(), image.height(), stride, &mut out, w, h, w as usize * 4);
    Image::from_rgba_premul(w, h, out)
}

/// Decodes a PNG file (any colour type and depth) to premultiplied RGBA.
pub fn load_png(path: &str) -> Result<Image> {
    let file = std::fs::File::open(path).context(|| format!("opening image {path}"))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let bad = |e: png::DecodingError| Error::invalid(format!("{path} is not a readable PNG: {e}"));
    let mut reader = decoder.read_info().map_err(bad)?;
    let mut data = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut data).map_err(bad)?;
    let channels = info.color_type.samples();
    let rgba: Vec<u8> = data[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|px| {
            let (r, g, b, a) = match *px {
                [v] => (v, v, v, 255),
                [v, a] => (v, v, v, a),
                [r, g, b] => (r, g, b, 255),
                [r, g, b, a] => (r, g, b, a),
                _ => unreachable!("normalize_to_color8 gives 1 to 4 channels"),
            };
            let premul = |c: u8| ((c as u32 * a as u32 + 127) / 255) as u8;
            [premul(r), premul(g), premul(b), a]
        })
        .collect();
    Image::from_rgba_premul(info.width, info.height, rgba)
}

#[async_trait]
impl Layer for ImageLayer {
    async fn render(&mut self, canvas: &mut Canvas<'_>, ctx: &FrameContext<'_>) -> Result<()> {
        let (w, h) = (self.image.width() as f32, self.image.height() as f32);
        let (x, y) = self.placement.resolve(ctx.width as f32, ctx.height as f32, w, h);
        canvas.draw_image(&self.image, x.round(), y.round(), ctx.opacity);
        Ok(())
    }

    fn applies_opacity(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &std::path::Path, w: u32, h: u32, rgba: [u8; 4]) {
        let file = std::fs::File::create(path).unwrap();
        let mut enc = png::Encoder::new(file, w, h);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(&rgba.repeat((w * h) as usize)).unwrap();
    }

    #[test]
    fn loads_premultiplies_and_scales() {
        let path = std::env::temp_dir().join(format!("sk-logo-{}.png", std::process::id()));
        write_png(&path, 4, 2, [200, 100, 50, 128]);
        let image = load_png(path.to_str().unwrap()).unwrap();
        assert_eq!(&image.pixels()[..4], &[100, 50, 25, 128]);
        let uri = Uri::parse(&format!("image:{}?width=8&pos=center", path.display())).unwrap();
        let layer = ImageLayer::from_uri(&uri).unwrap();
        assert_eq!((layer.image.width(), layer.image.height()), (8, 4));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_and_bad_files_are_named() {
        let e = load_png("/no/such/logo.png").err().unwrap().to_string();
        assert!(e.contains("/no/such/logo.png"), "{e}");
        let path = std::env::temp_dir().join(format!("sk-bad-{}.png", std::process::id()));
        std::fs::write(&path, b"not a png").unwrap();
        let e = load_png(path.to_str().unwrap()).err().unwrap().to_string();
        assert!(e.contains("not a readable PNG"), "{e}");
        std::fs::remove_file(path).unwrap();
    }
}
