//! An ingest with images reads the CSVs while the pixel pass runs: the pass starts at
//! once (taking the write lock first), the metadata and side inputs are read on
//! another thread meanwhile, and if they fail the pass is stopped and its resume
//! cache removed (when this run created it), so a bad input still writes nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{IngestOptions, Side, metadata, pixel_cache, read_inputs};
use crate::error::Result;
use crate::ingest::issues::Issues;
use crate::pixels::run::{PixelRun, Progress};
use crate::warehouse::WriteLock;

/// What [`read_while_measuring`] hands back: the inputs read, the lock, the pixel run,
/// and the guard of its resume cache.
pub(super) type Overlapped = ((metadata::Metadata, Side), WriteLock, PixelRun, CacheGuard);

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

/// Reads the inputs and measures the images at the same time.
pub(super) fn read_while_measuring(
    opts: &IngestOptions,
    progress: &dyn Progress,
    issues: &mut Issues,
) -> Result<Overlapped> {
    let lock = WriteLock::acquire(&opts.warehouse)?;
    let cache = pixel_cache(opts, &lock);
    let existed = cache.exists();
    let failed = AtomicBool::new(false);
    let ((read, read_issues), run) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut own = Issues::default();
            let read = read_inputs(opts, &mut own);
            if read.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            (read, own)
        });
        let run = crate::pixels::run::measure_until(&opts.images, &cache, progress, &failed);
        (reader.join().expect("input reader does not panic"), run)
    });
    issues.extend(read_issues);
    match read {
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&cache);
            }
            Err(e)
        }
        Ok((meta, mut side)) => {
            let run = run?;
            side.inputs.extend(run.inputs.iter().cloned());
            let guard = CacheGuard((!existed).then_some(cache));
            Ok(((meta, side), lock, run, guard))
        }
    }
}
