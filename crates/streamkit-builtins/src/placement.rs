//! Options shared by the built-in layers: colours and where on the canvas a
//! thing goes (`pos=top-right`, or explicit `x=`/`y=`).

use streamkit_core::canvas::Color;
use streamkit_core::uri::Options;
use streamkit_core::{Error, Result};

/// Named colours, `#rgb`, `#rrggbb` or `#rrggbbaa` (straight alpha).
pub fn parse_color(text: &str) -> Result<Color> {
    let named = match text.to_ascii_lowercase().as_str() {
        "white" => Some([255, 255, 255, 255]),
        "black" => Some([0, 0, 0, 255]),
        "red" => Some([255, 0, 0, 255]),
        "green" => Some([0, 200, 0, 255]),
        "blue" => Some([0, 0, 255, 255]),
        "yellow" => Some([255, 255, 0, 255]),
        "cyan" => Some([0, 255, 255, 255]),
        "magenta" => Some([255, 0, 255, 255]),
        "gray" | "grey" => Some([128, 128, 128, 255]),
        "orange" => Some([255, 165, 0, 255]),
        "transparent" => Some([0, 0, 0, 0]),
        _ => None,
    };
    let rgba = match named {
        Some(rgba) => rgba,
        None => parse_hex(text).ok_or_else(|| {
            Error::invalid(format!(
                "'{text}' is not a colour: use a name (white, black, red, green, blue, yellow, cyan, magenta, gray, orange, transparent) or #rrggbb / #rrggbbaa (write # as %23 in a URI)"
            ))
        })?,
    };
    Ok(Color::from_rgba8(rgba[0], rgba[1], rgba[2], rgba[3]))
}

fn parse_hex(text: &str) -> Option<[u8; 4]> {
    let hex = text.strip_prefix('#')?;
    let digit = |i: usize, len: usize| u8::from_str_radix(hex.get(i..i + len)?, 16).ok();
    match hex.len() {
        3 => Some([digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17, 255]),
        6 => Some([digit(0, 2)?, digit(2, 2)?, digit(4, 2)?, 255]),
        8 => Some([digit(0, 2)?, digit(2, 2)?, digit(4, 2)?, digit(6, 2)?]),
        _ => None,
    }
}

/// A colour option, e.g. `color=white`.
pub fn color_option(options: &mut Options<'_>, key: &'static str) -> Result<Option<Color>> {
    options.string(key).map(parse_color).transpose()
}

/// Where a box of some size goes on the canvas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    pub anchor: Anchor,
    pub x: Option<f32>,
    pub y: Option<f32>,
    /// Distance from the canvas edge for anchored placement, in pixels.
    pub margin: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

const ANCHORS: [(&str, Anchor); 9] = [
    ("top-left", Anchor::TopLeft),
    ("top", Anchor::Top),
    ("top-right", Anchor::TopRight),
    ("left", Anchor::Left),
    ("center", Anchor::Center),
    ("right", Anchor::Right),
    ("bottom-left", Anchor::BottomLeft),
    ("bottom", Anchor::Bottom),
    ("bottom-right", Anchor::BottomRight),
];

impl Placement {
    pub fn anchored(anchor: Anchor) -> Placement {
        Placement { anchor, x: None, y: None, margin: 32.0 }
    }

    /// Reads `pos=`, `x=`, `y=` and `margin=`, starting from `default`.
    pub fn from_options(options: &mut Options<'_>, default: Anchor) -> Result<Placement> {
        let mut placement = Placement::anchored(default);
        if let Some(pos) = options.string("pos") {
            placement.anchor = ANCHORS.iter().find(|(name, _)| *name == pos).map(|(_, a)| *a).ok_or_else(|| {
                Error::invalid(format!(
                    "pos={pos} is not a position; known: {}",
                    ANCHORS.map(|(name, _)| name).join(", ")
                ))
            })?;
        }
        placement.x = options.parse("x", "a number of pixels")?;
        placement.y = options.parse("y", "a number of pixels")?;
        if let Some(margin) = options.parse("margin", "a number of pixels")? {
            placement.margin = margin;
        }
        Ok(placement)
    }

    /// The top-left corner of a `w`x`h` box on a `canvas_w`x`canvas_h` canvas.
    pub fn resolve(&self, canvas_w: f32, canvas_h: f32, w: f32, h: f32) -> (f32, f32) {
        use Anchor::*;
        let m = self.margin;
        let ax = match self.anchor {
            TopLeft | Left | BottomLeft => m,
            Top | Center | Bottom => (canvas_w - w) / 2.0,
            TopRight | Right | BottomRight => canvas_w - w - m,
        };
        let ay = match self.anchor {
            TopLeft | Top | TopRight => m,
            Left | Center | Right => (canvas_h - h) / 2.0,
            BottomLeft | Bottom | BottomRight => canvas_h - h - m,
        };
        (self.x.unwrap_or(ax), self.y.unwrap_or(ay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamkit_core::uri::Uri;

    #[test]
    fn colours() {
        assert_eq!(parse_color("white").unwrap(), Color::WHITE);
        assert_eq!(parse_color("#ff000080").unwrap(), Color::from_rgba8(255, 0, 0, 128));
        assert_eq!(parse_color("#0f0").unwrap(), Color::from_rgba8(0, 255, 0, 255));
        assert!(parse_color("#12").unwrap_err().to_string().contains("#rrggbb"));
    }

    #[test]
    fn placement() {
        let uri = Uri::parse("x:?pos=bottom-right&margin=10").unwrap();
        let mut o = uri.options();
        let p = Placement::from_options(&mut o, Anchor::TopLeft).unwrap();
        assert_eq!(p.resolve(100.0, 50.0, 20.0, 10.0), (70.0, 30.0));
        let uri = Uri::parse("x:?x=5&pos=middle").unwrap();
        let e = Placement::from_options(&mut uri.options(), Anchor::TopLeft).unwrap_err().to_string();
        assert!(e.contains("pos=middle") && e.contains("bottom-right"), "{e}");
    }
}
