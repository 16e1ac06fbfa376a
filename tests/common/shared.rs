//! The folder of the other datasets' real files, for the integration tests and (by
//! `#[path]`) the library's unit tests: one definition of where it is and of what a
//! test does without it.

use std::path::{Path, PathBuf};

/// `CXR_SHARED_DATASETS`, else `../shared/datasets` beside the crate, when it holds
/// the files (its SOURCES.md). Without it a real-file test says it is skipped and
/// returns early, except under CI (`CI` set), which always has the files: there a
/// missing folder fails the test.
pub fn shared_datasets() -> Option<PathBuf> {
    let p = std::env::var_os("CXR_SHARED_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    if p.join("SOURCES.md").exists() {
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
