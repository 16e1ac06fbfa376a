//! Per-image statistics over one 8-bit grey channel, all from a single pass: a
//! 256-bin histogram (mean, std, min, max, percentiles, entropy, 16-bin histogram)
//! and 9 × 8 cell sums (the difference hash).

/// The statistics of one image, as stored in `pixel_stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Mean grey value.
    pub mean: f64,
    /// Population standard deviation (ddof 0).
    pub std: f64,
    /// Smallest value.
    pub min: i16,
    /// Largest value.
    pub max: i16,
    /// Nearest-rank percentiles 1, 5, 50, 95, 99.
    pub percentiles: [i16; 5],
    /// Shannon entropy of the 256-bin histogram, in bits.
    pub entropy: f64,
    /// 16 equal bins over 0–255 (value >> 4).
    pub histogram: [i32; 16],
    /// 64-bit difference hash, 16 lower-case hex digits.
    pub dhash: String,
}

/// The percentiles reported, in `Stats::percentiles` order.
pub const PERCENTILES: [u64; 5] = [1, 5, 50, 95, 99];

/// Computes the statistics of a `width × height` grey image (row-major, one byte per
/// pixel). The image must not be empty.
pub fn compute(grey: &[u8], width: usize, height: usize) -> Stats {
    debug_assert_eq!(grey.len(), width * height);
    // Four interleaved histograms avoid stalls on runs of equal values.
    let mut hists = [[0u32; 256]; 4];
    // The dhash grid's column boundaries: pixel x belongs to cell x * 9 / width.
    let col_cell: Vec<usize> = (0..width).map(|x| x * 9 / width).collect();
    let bounds: Vec<(usize, usize)> = (0..9)
        .map(|c| {
            let a = col_cell.iter().position(|&k| k == c).unwrap_or(width);
            let b = col_cell.iter().rposition(|&k| k == c).map_or(a, |i| i + 1);
            (a, b)
        })
        .collect();
    let mut cells = [0u64; 72];
    for (y, row) in grey.chunks_exact(width).enumerate() {
        let base = (y * 8 / height) * 9;
        for (c, &(a, b)) in bounds.iter().enumerate() {
            cells[base + c] += row[a..b].iter().map(|&v| v as u64).sum::<u64>();
        }
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
    let mut hist = [0u64; 256];
    for (v, h) in hist.iter_mut().enumerate() {
        *h = hists.iter().map(|x| x[v] as u64).sum();
    }
    let mut cols = [0u64; 9];
    col_cell.iter().for_each(|&c| cols[c] += 1);
    let mut rows = [0u64; 8];
    (0..height).for_each(|y| rows[y * 8 / height] += 1);
    let mut cell_counts = [0u64; 72];
    for r in 0..8 {
        for c in 0..9 {
            cell_counts[r * 9 + c] = rows[r] * cols[c];
        }
    }
    from_histogram(&hist, &cells, &cell_counts)
}

fn from_histogram(hist: &[u64; 256], cells: &[u64; 72], counts: &[u64; 72]) -> Stats {
    let n: u64 = hist.iter().sum();
    let nf = n as f64;
    let sum: u64 = hist.iter().enumerate().map(|(v, &c)| v as u64 * c).sum();
    let mean = sum as f64 / nf;
    let var = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| c as f64 * (v as f64 - mean).powi(2))
        .sum::<f64>()
        / nf;
    let min = hist.iter().position(|&c| c > 0).unwrap_or(0) as i16;
    let max = hist.iter().rposition(|&c| c > 0).unwrap_or(0) as i16;
    let mut percentiles = [0i16; 5];
    for (k, q) in PERCENTILES.iter().enumerate() {
        // Smallest v with at least q % of pixels <= v (numpy "inverted_cdf").
        let mut cum = 0u64;
        for (v, &c) in hist.iter().enumerate() {
            cum += c;
            if cum * 100 >= q * n {
                percentiles[k] = v as i16;
                break;
            }
        }
    }
    let entropy = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / nf;
            -p * p.log2()
        })
        .sum::<f64>();
    let mut histogram = [0i32; 16];
    for (v, &c) in hist.iter().enumerate() {
        histogram[v >> 4] += c as i32;
    }
    Stats {
        mean,
        std: var.sqrt(),
        min,
        max,
        percentiles,
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
        let s = compute(&[100u8; 64 * 48], 64, 48);
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
        let s = compute(&img, w, h);
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
        let s = compute(&img, 256, 8);
        assert_eq!(s.mean, 127.5);
        assert!((s.std - ((256.0f64 * 256.0 - 1.0) / 12.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.percentiles, [2, 12, 127, 243, 253]);
        assert_eq!(s.entropy, 8.0);
        assert_eq!(s.histogram, [128; 16]);
        assert_eq!(s.dhash, "ffffffffffffffff");
    }
}
