//! Benchmark reference for `cxr ingest --images`: read every member of a tar into
//! memory (sequentially), then decode all PNGs with the png crate and build a
//! 256-bin histogram, in parallel on all cores. Prints the two timings and the
//! resulting images/s of this read-then-decode loop.
//!
//! Usage: cargo run --release --example read_decode -- FILE.tar

use std::io::Read;
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: read_decode FILE.tar");
    let start = Instant::now();
    let mut archive =
        tar::Archive::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut members: Vec<Vec<u8>> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        if e.header().entry_type().is_file()
            && e.path().unwrap().to_string_lossy().ends_with(".png")
        {
            let mut buf = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut buf).unwrap();
            members.push(buf);
        }
    }
    let read_s = start.elapsed().as_secs_f64();
    let t = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let decoded = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(bytes) = members.get(i) else { break };
                    let mut d = png::Decoder::new(&bytes[..]);
                    d.set_transformations(
                        png::Transformations::EXPAND | png::Transformations::STRIP_16,
                    );
                    let Ok(mut r) = d.read_info() else { continue };
                    let mut buf = vec![0u8; r.output_buffer_size()];
                    if r.next_frame(&mut buf).is_ok() {
                        let mut hist = [0u64; 256];
                        for &v in &buf {
                            hist[v as usize] += 1;
                        }
                        std::hint::black_box(hist);
                        decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let decode_s = t.elapsed().as_secs_f64();
    let n = decoded.into_inner();
    println!(
        "{{\"images\": {n}, \"read_s\": {read_s:.3}, \"decode_s\": {decode_s:.3}, \"images_per_s\": {:.0}}}",
        n as f64 / (read_s + decode_s)
    );
}
