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
/// `../shared/datasets` beside the crate), when it exists. Without it a test on real
/// files says it is skipped and returns early, except under CI (`CI` set), which
/// always has the files: there a missing folder fails the test.
pub fn real_dir() -> Option<PathBuf> {
    let p = std::env::var_os("CXR_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/datasets"))
        });
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "real dataset files not found at {} (CI is set: they must be there)",
        p.display()
    );
    eprintln!("SKIPPED: real dataset files not found at {}", p.display());
    None
}
