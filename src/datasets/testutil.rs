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

#[path = "../../tests/common/shared.rs"]
mod shared;
/// The folder of real dataset files, when it exists (see `tests/common/shared.rs`).
pub use shared::shared_datasets as real_dir;
