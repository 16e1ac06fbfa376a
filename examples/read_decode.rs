//! Benchmark reference for `cxr ingest --images`: the simplest fast way to do the same
//! pixel work. Reads the whole tar into memory with one `read`, finds the image members
//! in that buffer (no copies), then decodes every image (PNG, JPEG or DICOM, with the
//! same decoders) and computes
//! the same statistics `cxr` stores (`cxr::pixels::decode` + `cxr::pixels::stats`,
//! so the work per image is identical) on all cores, taking images from a shared
//! counter. It keeps nothing but a checksum: no Parquet, no metadata, no resume.
//! Prints the timings as JSON.
//!
//! Usage: read_decode FILE.tar

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: read_decode FILE.tar");
    let start = Instant::now();
    let data = std::fs::read(&path).expect("readable tar");
    let mut members: Vec<(usize, usize)> = Vec::new();
    let mut archive = tar::Archive::new(&data[..]);
    for entry in archive.entries().expect("a tar") {
        let e = entry.expect("a tar member");
        if e.header().entry_type().is_file()
            && e.path()
                .is_ok_and(|p| cxr::pixels::source::is_image_name(&p.to_string_lossy()))
        {
            let at = e.raw_file_position() as usize;
            members.push((at, e.size() as usize));
        }
    }
    let read_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let decoded = AtomicUsize::new(0);
    let checksum = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut sum = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(at, len)) = members.get(i) else {
                        break;
                    };
                    if let Ok(g) = cxr::pixels::decode::decode(&data[at..at + len]) {
                        let st = cxr::pixels::stats::compute(
                            &g.pixels,
                            g.width as usize,
                            g.height as usize,
                            g.bits_stored,
                        );
                        sum = sum.wrapping_add(st.mean.to_bits() ^ st.percentiles[2] as u64);
                        decoded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                checksum.fetch_add(sum, Ordering::Relaxed);
            });
        }
    });
    let decode_s = t.elapsed().as_secs_f64();
    let n = decoded.into_inner();
    println!(
        "{{\"images\": {n}, \"read_s\": {read_s:.3}, \"decode_s\": {decode_s:.3}, \"images_per_s\": {:.0}, \"checksum\": {}}}",
        n as f64 / (read_s + decode_s),
        checksum.into_inner()
    );
}
