//! Per-image statistics over one grey channel, all from a single pass: a histogram
//! of every stored value (mean, std, min, max, percentiles) and 9 × 8 cell sums (the
//! difference hash). Values keep their stored depth; the normalised statistics
//! divide by the largest value the depth allows, and the entropy and the 16-bin
//! histogram are taken over the top 8 and 4 bits, so that an 8-bit JPEG, a 16-bit
//! PNG and a 12-bit DICOM compare on one scale.

use super::decode::Pixels;

/// The statistics of one image, as stored in `pixel_stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Mean value.
    pub mean: f64,
    /// Population standard deviation (ddof 0).
    pub std: f64,
    /// Smallest value.
    pub min: i32,
    /// Largest value.
    pub max: i32,
    /// Nearest-rank percentiles 1, 5, 50, 95, 99.
    pub percentiles: [i32; 5],
    /// The largest value of the depth: 2^bits − 1 (255 for 8 bits).
    pub scale: f64,
    /// Shannon entropy, in bits, of the 256-bin histogram of the top 8 bits.
    pub entropy: f64,
    /// 16 equal bins over the depth's range (the top 4 bits).
    pub histogram: [i32; 16],
    /// 64-bit difference hash, 16 lower-case hex digits.
    pub dhash: String,
}

/// The percentiles reported, in `Stats::percentiles` order.
pub const PERCENTILES: [u64; 5] = [1, 5, 50, 95, 99];

/// Computes the statistics of a `width × height` image of `bits`-bit values. The
/// image must not be empty.
pub fn compute(pixels: &Pixels, width: usize, height: usize, bits: u8) -> Stats {
    match pixels {
        Pixels::Eight(grey) if bits >= 8 => compute8(grey, width, height),
        // DICOM: fewer than 8 bits stored in 8 allocated.
        Pixels::Eight(grey) => {
            let wide: Vec<u16> = grey.iter().map(|&v| v as u16).collect();
            compute16(&wide, width, height, bits)
        }
        Pixels::Sixteen(values) => compute16(values, width, height, bits),
    }
}

/// Statistics of 8-bit values (the NIH images: the path that must stay fast).
pub fn compute8(grey: &[u8], width: usize, height: usize) -> Stats {
    debug_assert_eq!(grey.len(), width * height);
    // Four interleaved histograms avoid stalls on runs of equal values.
    let mut hists = [[0u32; 256]; 4];
    let grid = Grid::new(width, height);
    let mut cells = [0u64; 72];
    for (y, row) in grey.chunks_exact(width).enumerate() {
        grid.add_row(&mut cells, y, row);
        let quads = row.chunks_exact(4);
        for &v in quads.remainder() {
            hists[0][v as usize] += 1;
        }
        for q in quads {
            hists[0][q[0] as usize] += 1;
            hists[1][q[1] as usize] += 1;
            hists[2][q[2] as usize] += 1;
            hists[3][q[3] as usize] += 1;
        }
    }
    let hist: Vec<u64> = (0..256)
        .map(|v| hists.iter().map(|x| x[v] as u64).sum())
        .collect();
    from_histogram(&hist, 8, &cells, &grid.cell_counts())
}

/// Statistics of values of up to 16 bits; bits above `bits` are masked off (DICOM
/// keeps overlays there).
pub fn compute16(values: &[u16], width: usize, height: usize, bits: u8) -> Stats {
    debug_assert_eq!(values.len(), width * height);
    let bits = bits.clamp(1, 16);
    let mask = ((1u32 << bits) - 1) as u16;
    let mut hist = vec![0u64; 1 << bits];
    let grid = Grid::new(width, height);
    let mut cells = [0u64; 72];
    let mut row_values = Vec::with_capacity(width);
    for (y, row) in values.chunks_exact(width).enumerate() {
        row_values.clear();
        row_values.extend(row.iter().map(|&v| v & mask));
        grid.add_row(&mut cells, y, &row_values);
        for &v in &row_values {
            hist[v as usize] += 1;
        }
    }
    from_histogram(&hist, bits, &cells, &grid.cell_counts())
}

/// The 9 × 8 grid of the difference hash: pixel (x, y) is in cell
/// (y * 8 / height, x * 9 / width).
struct Grid {
    width: usize,
    height: usize,
    /// Each column of cells' first and past-last pixel.
    bounds: Vec<(usize, usize)>,
    /// Pixels per column of cells.
    columns: [u64; 9],
}

impl Grid {
    fn new(width: usize, height: usize) -> Grid {
        let col_cell: Vec<usize> = (0..width).map(|x| x * 9 / width).collect();
        let bounds = (0..9)
            .map(|c| {
                let a = col_cell.iter().position(|&k| k == c).unwrap_or(width);
                let b = col_cell.iter().rposition(|&k| k == c).map_or(a, |i| i + 1);
                (a, b)
            })
            .collect();
        let mut columns = [0u64; 9];
        col_cell.iter().for_each(|&c| columns[c] += 1);
        Grid {
            width,
            height,
            bounds,
            columns,
        }
    }

    fn add_row<T: Copy + Into<u64>>(&self, cells: &mut [u64; 72], y: usize, row: &[T]) {
        debug_assert_eq!(row.len(), self.width);
        let base = (y * 8 / self.height) * 9;
        for (c, &(a, b)) in self.bounds.iter().enumerate() {
            cells[base + c] += row[a..b].iter().map(|&v| v.into()).sum::<u64>();
        }
    }

    fn cell_counts(&self) -> [u64; 72] {
        let mut rows = [0u64; 8];
        (0..self.height).for_each(|y| rows[y * 8 / self.height] += 1);
        let mut counts = [0u64; 72];
        for r in 0..8 {
            for c in 0..9 {
                counts[r * 9 + c] = rows[r] * self.columns[c];
            }
        }
        counts
    }
}

/// Moves a `bits`-bit value to `to` bits: the top bits when narrowing, shifted up
/// when widening.
fn rescale_bits(v: usize, bits: u8, to: u8) -> usize {
    if bits >= to {
        v >> (bits - to)
    } else {
        v << (to - bits)
    }
}

fn from_histogram(hist: &[u64], bits: u8, cells: &[u64; 72], counts: &[u64; 72]) -> Stats {
    let n: u64 = hist.iter().sum();
    let nf = n as f64;
    let sum: u64 = hist.iter().enumerate().map(|(v, &c)| v as u64 * c).sum();
    let mean = sum as f64 / nf;
    let var = hist
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(v, &c)| c as f64 * (v as f64 - mean).powi(2))
        .sum::<f64>()
        / nf;
    let min = hist.iter().position(|&c| c > 0).unwrap_or(0) as i32;
    let max = hist.iter().rposition(|&c| c > 0).unwrap_or(0) as i32;
    let mut percentiles = [0i32; 5];
    for (k, q) in PERCENTILES.iter().enumerate() {
        // Smallest v with at least q % of pixels <= v (numpy "inverted_cdf").
        let mut cum = 0u64;
        for (v, &c) in hist.iter().enumerate() {
            cum += c;
            if cum * 100 >= q * n {
                percentiles[k] = v as i32;
                break;
            }
        }
    }
    let mut top8 = [0u64; 256];
    let mut histogram = [0i32; 16];
    for (v, &c) in hist.iter().enumerate().filter(|(_, c)| **c > 0) {
        top8[rescale_bits(v, bits, 8)] += c;
        histogram[rescale_bits(v, bits, 4)] += c as i32;
    }
    let entropy = top8
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / nf;
            -p * p.log2()
        })
        .sum::<f64>();
    Stats {
        mean,
        std: var.sqrt(),
        min,
        max,
        percentiles,
        scale: ((1u64 << bits) - 1) as f64,
        entropy: if entropy == 0.0 { 0.0 } else { entropy },
        histogram,
        dhash: dhash(cells, counts),
    }
}

/// Bit i (row-major, most significant first) is set when cell (r, c+1) is brighter
/// than cell (r, c), on the 9 × 8 grid of cell means. Compared exactly as
/// `sum_a * count_b` vs `sum_b * count_a`, so equal pixels give equal hashes.
fn dhash(cells: &[u64; 72], counts: &[u64; 72]) -> String {
    let mut bits: u64 = 0;
    for r in 0..8 {
        for c in 0..8 {
            let (a, b) = (r * 9 + c, r * 9 + c + 1);
            let brighter = cells[b] * counts[a].max(1) > cells[a] * counts[b].max(1);
            bits = (bits << 1) | brighter as u64;
        }
    }
    format!("{bits:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_image() {
        let s = compute8(&[100u8; 64 * 48], 64, 48);
        assert_eq!((s.mean, s.std, s.min, s.max), (100.0, 0.0, 100, 100));
        assert_eq!(s.percentiles, [100; 5]);
        assert_eq!(s.entropy, 0.0);
        assert_eq!(s.histogram[6], 64 * 48);
        assert_eq!(s.dhash, "0000000000000000");
    }

    #[test]
    fn two_level_image() {
        // Left half 0, right half 255: mean 127.5, std 127.5, entropy 1 bit.
        let (w, h) = (20usize, 10usize);
        let img: Vec<u8> = (0..w * h)
            .map(|i| if i % w < w / 2 { 0 } else { 255 })
            .collect();
        let s = compute8(&img, w, h);
        assert_eq!(s.mean, 127.5);
        assert_eq!(s.std, 127.5);
        assert_eq!(s.entropy, 1.0);
        assert_eq!(s.percentiles, [0, 0, 0, 255, 255]);
        assert_eq!(s.histogram[0], 100);
        assert_eq!(s.histogram[15], 100);
    }

    #[test]
    fn gradient_percentiles_are_nearest_rank() {
        // Eight rows of 0..=255: the q-th percentile is the smallest v with
        // (v+1)/256 >= q/100.
        let img: Vec<u8> = (0..8).flat_map(|_| 0..=255u8).collect();
        let s = compute8(&img, 256, 8);
        assert_eq!(s.mean, 127.5);
        assert!((s.std - ((256.0f64 * 256.0 - 1.0) / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.percentiles, [2, 12, 127, 243, 253]);
        assert_eq!(s.entropy, 8.0);
        assert_eq!(s.histogram, [128; 16]);
        assert_eq!(s.dhash, "ffffffffffffffff");
    }

    #[test]
    fn sixteen_bits_keep_their_values_and_share_the_eight_bit_scale() {
        // A 12-bit gradient 0..=4095 over 4096 pixels, with overlay bits above bit 11.
        let img: Vec<u16> = (0..4096u16).map(|v| v | 0x8000).collect();
        let s = compute16(&img, 64, 64, 12);
        assert_eq!((s.min, s.max, s.scale), (0, 4095, 4095.0));
        assert_eq!(s.mean, 2047.5);
        assert_eq!(s.percentiles[2], 2047);
        // Every top-8-bit value holds 16 pixels: 8 bits of entropy; 256 per 16th.
        assert_eq!(s.entropy, 8.0);
        assert_eq!(s.histogram, [256; 16]);
    }
}
