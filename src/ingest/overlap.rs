//! An ingest with images reads the CSVs and writes their tables while the pixel pass
//! runs: the pass starts at once (the write lock taken first), NIH's files and the
//! other datasets are read and written on other threads meanwhile, and if one fails
//! the pass is stopped and its resume cache removed (when this run created it), so a
//! bad input still writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{IngestOptions, Written, pixel_cache, read_and_write};
use crate::error::Result;
use crate::ingest::issues::Issues;
use crate::pixels::run::{PixelRun, Progress};
use crate::warehouse::{Staging, WriteLock};

/// Removes, when dropped, the resume cache of a pixel run that this ingest created and
/// completed: the ingest then failed on its inputs (a box list without its columns is
/// only found out when it is matched), and a bad input writes nothing. A pixel run that
/// itself stopped keeps its chunks, to resume from. A successful ingest removes the
/// cache itself.
pub(super) struct CacheGuard(Option<std::path::PathBuf>);

impl Drop for CacheGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Reads the inputs and writes their tables while measuring the images; hands back
/// what was written, the pixel run and the guard of its resume cache.
pub(super) fn write_while_measuring(
    opts: &IngestOptions,
    lock: &WriteLock,
    staging: &Staging,
    progress: &dyn Progress,
    issues: &mut Issues,
) -> Result<(Written, PixelRun, CacheGuard)> {
    let cache = pixel_cache(opts, lock);
    let existed = cache.exists();
    let failed = AtomicBool::new(false);
    let ((written, own_issues), run) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut own = Issues::default();
            // The tables one after another: the pixel pass keeps every core busy.
            let written = read_and_write(opts, staging, &mut own, false);
            if written.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            (written, own)
        });
        let run = crate::pixels::run::measure_until(&opts.images, &cache, progress, &failed);
        (writer.join().expect("input reader does not panic"), run)
    });
    issues.extend(own_issues);
    match written {
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&cache);
            }
            Err(e)
        }
        Ok(mut written) => {
            let run = run?;
            written.inputs.extend(run.inputs.iter().cloned());
            let guard = CacheGuard((!existed).then_some(cache));
            Ok((written, run, guard))
        }
    }
}
