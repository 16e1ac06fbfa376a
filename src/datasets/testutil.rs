//! Test helpers: fixtures in a temporary folder, and the shared real files.

use std::path::{Path, PathBuf};

/// Writes `bytes` as `dir/name` and returns its path.
pub fn write_fixture(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Gzips `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The folder of real dataset files (`CXR_SHARED_DATASETS`, else
/// `../shared/datasets` beside the crate), when it exists; tests on real files
/// return early without it.
pub fn real_dir() -> Option<PathBuf> {
    let p = std::env::var_os("CXR_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets"))
        });
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "real dataset files not found at {}: test skipped",
            p.display()
        );
        None
    }
}
