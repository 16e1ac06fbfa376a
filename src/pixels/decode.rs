//! PNG bytes → one 8-bit grey channel, as SCHEMA.md defines it: 8-bit grey as
//! stored; 16-bit as value >> 8; RGB(A) and palette through luminance
//! L = (19595·R + 38470·G + 7471·B + 32768) >> 16; grey+alpha uses the grey.

use png::{BitDepth, ColorType, Transformations};

/// Images with more pixels than this on a side are refused before any allocation.
pub const MAX_SIDE: u32 = 8192;

/// A decoded image reduced to one grey channel.
#[derive(Debug)]
pub struct Grey {
    /// Decoded width.
    pub width: u32,
    /// Decoded height.
    pub height: u32,
    /// Bit depth as stored.
    pub bit_depth: u8,
    /// Colour type as stored: `grey`, `grey_alpha`, `rgb`, `rgba`, `palette`.
    pub color_type: &'static str,
    /// Row-major grey values.
    pub pixels: Vec<u8>,
}

/// Decodes a PNG and reduces it to grey. Errors are one-line descriptions.
pub fn decode(bytes: &[u8]) -> Result<Grey, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // STRIP_16 keeps the high byte (value >> 8); EXPAND turns palettes into RGB(A)
    // and low-bit grey into 8-bit.
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let header = decoder
        .read_header_info()
        .map_err(|e| format!("bad PNG header: {e}"))?;
    let (width, height) = (header.width, header.height);
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width}×{height})"));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "image too large ({width}×{height}; the limit is {MAX_SIDE}×{MAX_SIDE})"
        ));
    }
    let stored_type = header.color_type;
    let bit_depth = header.bit_depth as u8;
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("corrupt PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large for memory".to_string())?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt or truncated PNG: {e}"))?;
    buf.truncate(frame.buffer_size());
    let pixels = to_grey(
        buf,
        frame.color_type,
        frame.bit_depth,
        frame.line_size,
        width,
        height,
    )?;
    Ok(Grey {
        width,
        height,
        bit_depth,
        color_type: color_name(stored_type),
        pixels,
    })
}

/// The SCHEMA.md name of a PNG colour type.
pub fn color_name(c: ColorType) -> &'static str {
    match c {
        ColorType::Grayscale => "grey",
        ColorType::GrayscaleAlpha => "grey_alpha",
        ColorType::Rgb => "rgb",
        ColorType::Rgba => "rgba",
        ColorType::Indexed => "palette",
    }
}

/// Integer luminance of an RGB triple.
#[inline]
pub fn luminance(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 32768) >> 16) as u8
}

fn to_grey(
    mut buf: Vec<u8>,
    color: ColorType,
    depth: BitDepth,
    line_size: usize,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, String> {
    if depth != BitDepth::Eight {
        return Err(format!("unsupported decoded bit depth {depth:?}"));
    }
    let channels = match color {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err("palette was not expanded".into()),
    };
    let (w, h) = (width as usize, height as usize);
    if line_size < w * channels || buf.len() < line_size * h {
        return Err("decoded buffer shorter than the image".into());
    }
    if channels == 1 && line_size == w {
        buf.truncate(w * h);
        return Ok(buf);
    }
    let mut out = Vec::with_capacity(w * h);
    for row in buf.chunks(line_size).take(h) {
        let row = &row[..w * channels];
        match channels {
            1 => out.extend_from_slice(row),
            2 => out.extend(row.chunks_exact(2).map(|p| p[0])),
            _ => out.extend(
                row.chunks_exact(channels)
                    .map(|p| luminance(p[0], p[1], p[2])),
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_weights() {
        assert_eq!(luminance(0, 0, 0), 0);
        assert_eq!(luminance(255, 255, 255), 255);
        assert_eq!(luminance(100, 100, 100), 100);
        assert_eq!(luminance(255, 0, 0), 76);
        assert_eq!(luminance(0, 255, 0), 150);
        assert_eq!(luminance(0, 0, 255), 29);
    }
}
