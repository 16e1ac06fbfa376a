//! Image bytes → one grey channel, as SCHEMA.md defines it. The format is read from
//! the bytes (PNG signature, JPEG start-of-image, DICOM `DICM`), not the name.
//!
//! Values are kept at their stored depth: 8-bit PNG and JPEG as 0–255, 16-bit PNG as
//! 0–65535, DICOM as 0 … 2^BitsStored − 1 (MONOCHROME1 inverted first, so that
//! bright is dense everywhere). Colour goes through luminance
//! L = (19595·R + 38470·G + 7471·B + 32768) >> 16 (alpha ignored; grey+alpha uses
//! the grey; a palette through its colours).

use png::{BitDepth, ColorType, Transformations};

/// Images with more pixels than this on a side are refused before any allocation.
pub const MAX_SIDE: u32 = 8192;

/// The grey values of a decoded image, at their stored depth.
#[derive(Debug)]
pub enum Pixels {
    /// 8 bits or fewer per value.
    Eight(Vec<u8>),
    /// 9 to 16 bits per value.
    Sixteen(Vec<u16>),
}

impl Pixels {
    /// The values' top 8 bits of `bits` (an 8-bit image as it is): the grey a
    /// display of the image shows.
    pub fn to_eight(&self, bits: u8) -> Vec<u8> {
        match self {
            Pixels::Eight(v) => v.clone(),
            Pixels::Sixteen(v) => {
                let shift = bits.saturating_sub(8);
                v.iter().map(|&x| (x >> shift).min(255) as u8).collect()
            }
        }
    }
}

/// The container format of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Dicom,
}

impl Format {
    /// The name in `pixel_stats.format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Dicom => "dicom",
        }
    }
}

/// A decoded image reduced to one grey channel.
#[derive(Debug)]
pub struct Grey {
    /// Decoded width.
    pub width: u32,
    /// Decoded height.
    pub height: u32,
    /// Bits per sample as the file stores them (PNG bit depth, JPEG precision,
    /// DICOM BitsAllocated).
    pub bit_depth: u8,
    /// Bits of the values measured: they run from 0 to 2^bits_stored − 1.
    pub bits_stored: u8,
    /// `grey`, `grey_alpha`, `rgb`, `rgba`, `palette`, `ycbcr`, `cmyk`.
    pub color_type: &'static str,
    /// The container format.
    pub format: Format,
    /// The values, row-major.
    pub pixels: Pixels,
    /// DICOM's header fields; None for PNG and JPEG.
    pub dicom: Option<Box<super::dicom::Header>>,
    /// The decoding memory the image holds, given back when it is dropped.
    pub memory: Reservation,
}

/// Decodes an image of any supported format. Errors are one-line descriptions.
pub fn decode(bytes: &[u8]) -> Result<Grey, String> {
    match sniff(bytes) {
        Some(Format::Png) => decode_png(bytes),
        Some(Format::Jpeg) => decode_jpeg(bytes),
        Some(Format::Dicom) => super::dicom::decode(bytes),
        None if bytes.is_empty() => Err("empty file (0 bytes)".into()),
        None if bare_data_set(bytes) => Err(
            "a DICOM data set without its file meta information (no 'DICM' prefix, no group 0002 elements): not read".into(),
        ),
        None => Err("not a PNG, JPEG or DICOM file (its first bytes say none of them)".into()),
    }
}

/// The format the bytes start like.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.get(128..132) == Some(b"DICM")
        || bytes.starts_with(b"DICM")
        || starts_with_meta_group(bytes)
    {
        Some(Format::Dicom)
    } else {
        None
    }
}

/// A DICOM data set written without the file's meta information starts with an
/// element of group 0008 (little endian), where a part-10 file has its preamble.
fn bare_data_set(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[0] == 0x08 && bytes[1] == 0x00
}

/// A DICOM stream without its 128-byte preamble starts with a (0002,xxxx) element
/// in explicit VR (its group length `UL`, or the SOP class `UI` when a writer left
/// the length out).
fn starts_with_meta_group(bytes: &[u8]) -> bool {
    bytes.len() > 8
        && bytes[0] == 0x02
        && bytes[1] == 0x00
        && bytes[4..6].iter().all(u8::is_ascii_uppercase)
}

/// The most bytes one decoded image may take (an 8192 × 4096 16-bit grey image):
/// with a worker per core, what decoding holds stays bounded whatever the headers say.
pub const MAX_DECODED_BYTES: u64 = 64 << 20;

/// Refuses an image whose decoded samples would take more than [`MAX_DECODED_BYTES`],
/// and waits for the memory to decode it in (see [`DECODING_BYTES`]).
pub fn check_decoded(
    width: u32,
    height: u32,
    channels: usize,
    bytes_per_sample: usize,
) -> Result<Reservation, String> {
    let bytes = width as u64 * height as u64 * channels as u64 * bytes_per_sample as u64;
    if bytes > MAX_DECODED_BYTES {
        return Err(format!(
            "image too large to decode ({width}×{height}, {channels} channel(s) of {} bits: {:.1} MiB; the limit is {} MiB)",
            bytes_per_sample * 8,
            bytes as f64 / (1 << 20) as f64,
            MAX_DECODED_BYTES >> 20
        ));
    }
    Ok(Reservation::take(bytes * 2))
}

/// What the images being decoded at once may hold, counted as twice their decoded
/// bytes (the decoder's buffer and the grey values made from it): however many
/// workers there are, a stream of images at the size limit is decoded one at a
/// time, not one per core (20 such PNGs in a 6 KB tar.gz took 450 MB on two cores).
pub const DECODING_BYTES: u64 = 2 * MAX_DECODED_BYTES;

/// Decoding memory taken from [`DECODING_BYTES`], given back when dropped.
#[derive(Debug)]
pub struct Reservation(u64);

static DECODING: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
static DECODED: std::sync::Condvar = std::sync::Condvar::new();

impl Reservation {
    /// Waits until `bytes` fit beside what is reserved (or nothing is), then takes them.
    fn take(bytes: u64) -> Reservation {
        let mut used = DECODING.lock().unwrap_or_else(|e| e.into_inner());
        while *used > 0 && *used + bytes > DECODING_BYTES {
            used = DECODED.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += bytes;
        Reservation(bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = DECODING.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(self.0);
        DECODED.notify_all();
    }
}

/// Refuses sizes past [`MAX_SIDE`] or empty, before anything is allocated for them.
pub fn check_size(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("empty image ({width}×{height})"));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "image too large ({width}×{height}; the limit is {MAX_SIDE}×{MAX_SIDE})"
        ));
    }
    Ok(())
}

/// Decodes a PNG of any colour type and depth.
pub fn decode_png(bytes: &[u8]) -> Result<Grey, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // EXPAND turns palettes into RGB(A) and low-bit grey into 8-bit; 16-bit stays.
    decoder.set_transformations(Transformations::EXPAND);
    let header = decoder
        .read_header_info()
        .map_err(|e| format!("bad PNG header: {e}"))?;
    let (width, height) = (header.width, header.height);
    check_size(width, height)?;
    let stored_type = header.color_type;
    let bit_depth = header.bit_depth as u8;
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("corrupt PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large for memory".to_string())?;
    let (channels, depth) = reader.output_color_type();
    let sample_bytes = if depth == BitDepth::Sixteen { 2 } else { 1 };
    let memory = check_decoded(width, height, channels.samples(), sample_bytes)?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("corrupt or truncated PNG: {e}"))?;
    buf.truncate(frame.buffer_size());
    let channels = match frame.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return Err("palette was not expanded".into()),
    };
    let layout = Layout {
        channels,
        line_size: frame.line_size,
        width: width as usize,
        height: height as usize,
    };
    let (pixels, bits_stored) = match frame.bit_depth {
        BitDepth::Eight => (Pixels::Eight(layout.grey8(buf)?), 8),
        BitDepth::Sixteen => (Pixels::Sixteen(layout.grey16_be(&buf, 16)?), 16),
        d => return Err(format!("unsupported decoded bit depth {d:?}")),
    };
    Ok(Grey {
        width,
        height,
        bit_depth,
        bits_stored,
        color_type: color_name(stored_type),
        format: Format::Png,
        pixels,
        dicom: None,
        memory,
    })
}

/// Decodes a baseline or progressive JPEG (8-bit samples).
pub fn decode_jpeg(bytes: &[u8]) -> Result<Grey, String> {
    decode_jpeg_as(bytes, false)
}

/// A JPEG whose three components are R, G and B whatever its markers say: DICOM's
/// PhotometricInterpretation RGB means the encoder applied no colour transform,
/// while a decoder reads three components without an Adobe marker as YCbCr.
pub fn decode_jpeg_stored_rgb(bytes: &[u8]) -> Result<Grey, String> {
    decode_jpeg_as(bytes, true)
}

fn decode_jpeg_as(bytes: &[u8], stored_rgb: bool) -> Result<Grey, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    // zune's own limits would refuse in its words; ours is checked from the header.
    // Strict: a truncated or corrupt stream is an error, not an image completed with
    // made-up pixels.
    let options = DecoderOptions::default()
        .set_max_width(u16::MAX as usize)
        .set_max_height(u16::MAX as usize)
        .set_strict_mode(true);
    if let Some(kind) = unsupported_frame(bytes) {
        return Err(format!(
            "{kind} JPEG is not decoded (baseline, extended and progressive are)"
        ));
    }
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder
        .decode_headers()
        .map_err(|e| jpeg_error("bad JPEG header", e))?;
    let info = decoder
        .info()
        .ok_or_else(|| "bad JPEG header".to_string())?;
    let (width, height) = (info.width as u32, info.height as u32);
    check_size(width, height)?;
    let (out, color_type, channels) = match decoder.input_colorspace() {
        Some(ColorSpace::Luma) => (ColorSpace::Luma, "grey", 1),
        // Asked for in the colour space it reads, the decoder hands the samples back
        // as they are stored.
        Some(ColorSpace::YCbCr) if stored_rgb => (ColorSpace::YCbCr, "rgb", 3),
        // Adobe's transform 0 means CMYK of four components and RGB of three; the
        // decoder settles which only as it decodes.
        Some(ColorSpace::CMYK) if info.components == 3 => (ColorSpace::RGB, "rgb", 3),
        Some(ColorSpace::YCCK) | Some(ColorSpace::CMYK) => (ColorSpace::RGB, "cmyk", 3),
        Some(ColorSpace::RGB) => (ColorSpace::RGB, "rgb", 3),
        _ => (ColorSpace::RGB, "ycbcr", 3),
    };
    // A progressive JPEG is decoded from coefficients the decoder holds for the whole
    // image (two bytes a sample of each component) beside the samples it hands back.
    let memory = if info.sof.is_sequential_dct() {
        check_decoded(width, height, channels, 1)?
    } else {
        check_decoded(width, height, channels + 2 * info.components as usize, 1)
            .map_err(|e| format!("progressive JPEG, its coefficients counted: {e}"))?
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let buf = decoder
        .decode()
        .map_err(|e| jpeg_error("corrupt or truncated JPEG", e))?;
    let layout = Layout {
        channels,
        line_size: width as usize * channels,
        width: width as usize,
        height: height as usize,
    };
    Ok(Grey {
        width,
        height,
        bit_depth: 8,
        bits_stored: 8,
        color_type,
        format: Format::Jpeg,
        pixels: Pixels::Eight(layout.grey8(buf)?),
        dicom: None,
        memory,
    })
}

fn jpeg_error(what: &str, e: zune_jpeg::errors::DecodeErrors) -> String {
    // One line: zune's texts may end in a line break.
    format!("{what}: {e:?}").trim_end().replace('\n', " ")
}

/// The first frame header's marker that zune-jpeg does not decode: lossless (SOF3),
/// hierarchical (SOF5–7) and arithmetic-coded (SOF9–15) JPEG, whose decoding failed
/// with messages about something else ("Number of components cannot be zero").
fn unsupported_frame(bytes: &[u8]) -> Option<&'static str> {
    let mut at = 2;
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        match marker {
            0xC0..=0xC2 | 0xDA => return None,
            0xC3 => return Some("lossless (SOF3)"),
            0xC5..=0xC7 => return Some("hierarchical (SOF5-7)"),
            0xC9..=0xCB | 0xCD..=0xCF => return Some("arithmetic-coded (SOF9-15)"),
            0xFF => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        at += 2 + length;
    }
    None
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
    luminance16(r as u16, g as u16, b as u16) as u8
}

/// Integer luminance of an RGB triple of any depth up to 16 bits.
#[inline]
pub fn luminance16(r: u16, g: u16, b: u16) -> u16 {
    ((19595 * r as u64 + 38470 * g as u64 + 7471 * b as u64 + 32768) >> 16) as u16
}

/// How decoded samples lie in a buffer: interleaved channels, rows `line_size`
/// bytes apart.
pub struct Layout {
    pub channels: usize,
    pub line_size: usize,
    pub width: usize,
    pub height: usize,
}

impl Layout {
    fn check(&self, len: usize, bytes_per_sample: usize) -> Result<(), String> {
        let row = self.width * self.channels * bytes_per_sample;
        if self.line_size < row || len < self.line_size * self.height {
            return Err("decoded buffer shorter than the image".into());
        }
        Ok(())
    }

    /// One 8-bit grey channel from 8-bit samples.
    pub fn grey8(&self, mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
        self.check(buf.len(), 1)?;
        let (w, h, c) = (self.width, self.height, self.channels);
        if c == 1 && self.line_size == w {
            buf.truncate(w * h);
            return Ok(buf);
        }
        let mut out = Vec::with_capacity(w * h);
        for row in buf.chunks(self.line_size).take(h) {
            let row = &row[..w * c];
            match c {
                1 => out.extend_from_slice(row),
                2 => out.extend(row.chunks_exact(2).map(|p| p[0])),
                _ => out.extend(row.chunks_exact(c).map(|p| luminance(p[0], p[1], p[2]))),
            }
        }
        Ok(out)
    }

    /// One 16-bit grey channel from big-endian 16-bit samples (PNG's order), of
    /// which the low `bits` count (the rest masked off before any luminance).
    pub fn grey16_be(&self, buf: &[u8], bits: u8) -> Result<Vec<u16>, String> {
        self.grey16(buf, bits, u16::from_be_bytes)
    }

    /// The same from little-endian samples (DICOM's, decoded).
    pub fn grey16_le(&self, buf: &[u8], bits: u8) -> Result<Vec<u16>, String> {
        self.grey16(buf, bits, u16::from_le_bytes)
    }

    fn grey16(&self, buf: &[u8], bits: u8, read: fn([u8; 2]) -> u16) -> Result<Vec<u16>, String> {
        self.check(buf.len(), 2)?;
        let (w, h, c) = (self.width, self.height, self.channels);
        let mask = ((1u32 << bits.clamp(1, 16)) - 1) as u16;
        let mut out = Vec::with_capacity(w * h);
        for row in buf.chunks(self.line_size).take(h) {
            let samples = row[..w * c * 2]
                .chunks_exact(2)
                .map(|s| read([s[0], s[1]]) & mask);
            match c {
                1 => out.extend(samples),
                2 => out.extend(samples.step_by(2)),
                _ => {
                    let v: Vec<u16> = samples.collect();
                    out.extend(v.chunks_exact(c).map(|p| luminance16(p[0], p[1], p[2])));
                }
            }
        }
        Ok(out)
    }
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
        assert_eq!(luminance16(65535, 65535, 65535), 65535);
    }

    #[test]
    fn formats_are_read_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        let mut dicom = vec![0u8; 132];
        dicom[128..].copy_from_slice(b"DICM");
        assert_eq!(sniff(&dicom), Some(Format::Dicom));
        assert_eq!(sniff(b"GIF89a"), None);
    }
}
