//! Deterministic synthetic images for tests and benchmarks, and the shipped sample
//! tar made from real NIH PNGs the way the images-224 release was made.

use std::io::Write;
use std::path::{Path, PathBuf};

use png::{BitDepth, ColorType};

use crate::error::{Error, IoContext, Result};
use crate::pixels::decode::decode;

/// Folder of the members inside generated tars, as in the images-224 release.
pub const MEMBER_DIR: &str = "images-224";

/// A small, fast, deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A chest-X-ray-like grey image: bright body, darker lungs, a spine, noise.
pub fn chest_image(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let s = size as f64;
    let exposure = 0.75 + 0.5 * rng.unit();
    let lung_dx = 0.17 + 0.04 * rng.unit();
    let lung_w = 0.13 + 0.04 * rng.unit();
    let lung_h = 0.28 + 0.06 * rng.unit();
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = (x as f64 / s - 0.5, y as f64 / s - 0.5);
            let body = 1.0 - ((u / 0.46).powi(2) + (v / 0.55).powi(2)).min(1.0);
            let mut val = 20.0 + 170.0 * body.sqrt();
            for side in [-1.0, 1.0] {
                let d = ((u - side * lung_dx) / lung_w).powi(2) + ((v + 0.02) / lung_h).powi(2);
                if d < 1.0 {
                    val -= 95.0 * (1.0 - d).sqrt();
                }
            }
            val += 60.0 * (-(u / 0.035).powi(2)).exp() * (v > -0.45) as u8 as f64;
            val = val * exposure + (rng.unit() - 0.5) * 12.0;
            out.push(val.clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// Encodes pixels as PNG. `data` is laid out as `color` and `depth` require.
pub fn encode_png(
    data: &[u8],
    width: u32,
    height: u32,
    color: ColorType,
    depth: BitDepth,
    palette: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(depth);
        if let Some(p) = palette {
            enc.set_palette(p);
        }
        let mut w = enc.write_header().expect("valid PNG header");
        w.write_image_data(data)
            .expect("image data matches the header");
    }
    out
}

/// An 8-bit grey PNG.
pub fn grey_png(pixels: &[u8], width: u32, height: u32) -> Vec<u8> {
    encode_png(
        pixels,
        width,
        height,
        ColorType::Grayscale,
        BitDepth::Eight,
        None,
    )
}

/// `names`, padded to `count` with a synthetic pattern (patients 90,000,000 on, which
/// no NIH release uses).
pub fn pad_names(mut names: Vec<String>, count: usize) -> Vec<String> {
    names.truncate(count);
    let mut extra = 0;
    while names.len() < count {
        names.push(format!(
            "{:08}_{:03}.png",
            90_000_000 + extra / 1000,
            extra % 1000
        ));
        extra += 1;
    }
    names
}

/// Options of `cxr synth images`.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of regular images.
    pub count: usize,
    /// Side in pixels.
    pub size: usize,
    /// Add the edge cases (RGBA, 16-bit, palette, large, truncated, non-PNG, duplicate, oversize).
    pub edge_cases: bool,
    /// Seed of the generator.
    pub seed: u64,
    /// Member names to use first (e.g. real NIH image names), padded as needed.
    pub names: Vec<String>,
}

/// Appends one regular file to a tar with deterministic metadata.
fn append(builder: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut h, path, data)
}

fn append_dir(builder: &mut tar::Builder<impl Write>, path: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    builder.append_data(&mut h, path, std::io::empty())
}

/// Writes a tar of synthetic images; returns the number of edge-case members.
pub fn write_tar(out: &Path, opts: &SynthOptions) -> Result<usize> {
    let extra = if opts.edge_cases { 8 } else { 0 };
    let all = pad_names(opts.names.clone(), opts.count + extra);
    // Written aside and renamed into place: an interrupted run leaves no half archive.
    let mut file = crate::warehouse::AtomicFile::create(out)?;
    let mut b = tar::Builder::new(file.writer());
    let io = |e| Error::io(format!("{}: cannot write", out.display()), e);
    append_dir(&mut b, &format!("{MEMBER_DIR}/")).map_err(io)?;
    let side = opts.size as u32;
    for (i, name) in all.iter().take(opts.count).enumerate() {
        let px = chest_image(opts.size, opts.seed.wrapping_add(i as u64));
        append(
            &mut b,
            &format!("{MEMBER_DIR}/{name}"),
            &grey_png(&px, side, side),
        )
        .map_err(io)?;
    }
    let mut edge_members = 0;
    if opts.edge_cases {
        for (path, data) in edge_cases(&all[opts.count..], opts.size, opts.seed) {
            match data {
                Some(d) => append(&mut b, &path, &d).map_err(io)?,
                None => append_dir(&mut b, &path).map_err(io)?,
            }
            edge_members += 1;
        }
    }
    b.into_inner().map_err(io)?;
    file.commit()?;
    Ok(edge_members)
}

/// The edge-case members: (path, bytes or None for a directory).
pub fn edge_cases(names: &[String], size: usize, seed: u64) -> Vec<(String, Option<Vec<u8>>)> {
    let side = size as u32;
    let px = chest_image(size, seed ^ 0xED6E);
    let rgba: Vec<u8> = px.iter().flat_map(|&v| [v, v, v, 255]).collect();
    let wide: Vec<u8> = px
        .iter()
        .flat_map(|&v| (v as u16 * 257).to_be_bytes())
        .collect();
    let palette: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    let big = chest_image(1024, seed ^ 0xB16);
    let good = grey_png(&px, side, side);
    let truncated = good[..good.len() / 2].to_vec();
    let n = |i: usize| format!("{MEMBER_DIR}/{}", names[i]);
    vec![
        (
            n(0),
            Some(encode_png(
                &rgba,
                side,
                side,
                ColorType::Rgba,
                BitDepth::Eight,
                None,
            )),
        ),
        (
            n(1),
            Some(encode_png(
                &wide,
                side,
                side,
                ColorType::Grayscale,
                BitDepth::Sixteen,
                None,
            )),
        ),
        (
            n(2),
            Some(encode_png(
                &px,
                side,
                side,
                ColorType::Indexed,
                BitDepth::Eight,
                Some(palette),
            )),
        ),
        (n(3), Some(grey_png(&big, 1024, 1024))),
        (n(4), Some(truncated)),
        (
            format!("{MEMBER_DIR}/README.txt"),
            Some(b"not an image\n".to_vec()),
        ),
        (format!("{MEMBER_DIR}/dup/{}", names[0]), Some(good)),
        (n(5), Some(oversize_header())),
    ]
}

/// A PNG whose header claims 10000 × 10000 pixels (and has no image data).
pub fn oversize_header() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&10_000u32.to_be_bytes());
    ihdr.extend_from_slice(&10_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Resizes so the short side is `side` (area averaging), then centre-crops to
/// `side × side`.
pub fn resize_crop(pixels: &[u8], width: usize, height: usize, side: usize) -> Vec<u8> {
    let scale = side as f64 / width.min(height) as f64;
    let (tw, th) = (
        ((width as f64 * scale).round() as usize).max(side),
        ((height as f64 * scale).round() as usize).max(side),
    );
    let rows: Vec<Vec<f64>> = pixels
        .chunks_exact(width)
        .map(|r| area_resample(&r.iter().map(|&v| v as f64).collect::<Vec<_>>(), tw))
        .collect();
    let mut out = vec![0u8; side * side];
    let (x0, y0) = ((tw - side) / 2, (th - side) / 2);
    for x in 0..side {
        let col: Vec<f64> = rows.iter().map(|r| r[x0 + x]).collect();
        let resized = area_resample(&col, th);
        for y in 0..side {
            out[y * side + x] = resized[y0 + y].round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Resamples a line to `n` values, each the average of the source interval it covers.
fn area_resample(src: &[f64], n: usize) -> Vec<f64> {
    let ratio = src.len() as f64 / n as f64;
    (0..n)
        .map(|i| {
            let (a, b) = (i as f64 * ratio, (i + 1) as f64 * ratio);
            let mut sum = 0.0;
            let mut j = a.floor() as usize;
            while (j as f64) < b && j < src.len() {
                let overlap = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                sum += src[j] * overlap;
                j += 1;
            }
            sum / (b - a)
        })
        .collect()
}

/// Builds the sample tar from full-size PNGs in `dir`: grey, short side resized to
/// `side`, centre-cropped. Returns the number of images.
pub fn sample_tar(dir: &Path, out: &Path, side: usize) -> Result<u64> {
    let _listing = std::fs::read_dir(dir).ctx(|| format!("{}: cannot list", dir.display()))?;
    // Subfolders are walked, as `ingest --images DIR` walks them.
    let files: Vec<PathBuf> = crate::pixels::source::walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    if files.is_empty() {
        return Err(Error::input(
            dir,
            "no .png files in this folder or its subfolders",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for f in &files {
        if !names.insert(f.file_name()) {
            return Err(Error::input(
                f,
                "another PNG of the same name is in another subfolder; image names must be unique",
            ));
        }
    }
    // Written aside and renamed into place: an interrupted run leaves no half archive.
    let mut file = crate::warehouse::AtomicFile::create(out)?;
    let mut b = tar::Builder::new(file.writer());
    let io = |e| Error::io(format!("{}: cannot write", out.display()), e);
    for f in &files {
        let bytes = std::fs::read(f).ctx(|| format!("{}: cannot read", f.display()))?;
        let g = decode(&bytes).map_err(|e| Error::input(f, e))?;
        let small = resize_crop(
            &g.pixels.to_eight(g.bits_stored),
            g.width as usize,
            g.height as usize,
            side,
        );
        let name = f.file_name().expect("files have names").to_string_lossy();
        append(
            &mut b,
            &format!("{MEMBER_DIR}/{name}"),
            &grey_png(&small, side as u32, side as u32),
        )
        .map_err(io)?;
    }
    b.into_inner().map_err(io)?;
    file.commit()?;
    Ok(files.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resample_averages() {
        assert_eq!(area_resample(&[0.0, 10.0, 20.0, 30.0], 2), vec![5.0, 25.0]);
        let r = area_resample(&[0.0, 30.0, 60.0], 2);
        assert!((r[0] - 10.0).abs() < 1e-12 && (r[1] - 50.0).abs() < 1e-12);
    }

    #[test]
    fn synthetic_images_are_deterministic() {
        assert_eq!(chest_image(32, 7), chest_image(32, 7));
        assert_ne!(chest_image(32, 7), chest_image(32, 8));
    }

    #[test]
    fn oversize_header_is_refused_before_decoding() {
        let err = decode(&oversize_header()).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }
}
