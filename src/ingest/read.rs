//! Reading the other datasets: each on a thread of its own, a few at once, handed on
//! in the order they were given.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Condvar, Mutex};

use super::IngestOptions;
use crate::datasets::{DatasetInfo, DatasetRows, LabelMap, nih};
use crate::error::{Error, Result};
use crate::input::issues::Issues;

/// One dataset as read: its rows, what describes it, and its `data_issues`.
pub(super) type Part = (DatasetRows, DatasetInfo, Issues);

/// The label map the readers resolve with: the user's, or the shipped one.
pub(super) fn label_map(opts: &IngestOptions) -> Result<LabelMap> {
    match &opts.label_map {
        Some(p) => LabelMap::from_file(p),
        None => Ok(LabelMap::default()),
    }
}

/// Reads the datasets (then the other NIH release, its labels only) on `readers`
/// threads of `scope` and yields each in the order given as soon as
/// those before it are taken. A reader that finishes early waits for its turn, so at
/// most one dataset per reader waits in memory beside the one being written. Dropping
/// the receiver stops the readers after the datasets they are reading.
pub(super) fn each_dataset<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    opts: &'s IngestOptions,
    map: &'s LabelMap,
    readers: usize,
) -> Receiver<Result<Part>> {
    let jobs = opts.datasets.len() + usize::from(opts.other_release.is_some());
    let (send, receive) = sync_channel(0);
    let order = std::sync::Arc::new(Order::default());
    for _ in 0..readers.min(jobs) {
        let (send, order) = (send.clone(), order.clone());
        scope.spawn(move || {
            while let Some(job) = order.take(jobs) {
                // The dataset handed on before is freed by the writer's thread; the
                // memory comes back to this thread's heap only when it collects.
                super::give_back_freed_memory();
                let part = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    read_job(opts, map, job)
                }))
                .unwrap_or_else(|_| Err(Error::Internal("a dataset reader panicked".into())));
                order.in_turn(job, || send.send(part).is_ok());
            }
        });
    }
    receive
}

/// Which job is next to read and whose turn it is to hand its dataset on.
#[derive(Default)]
struct Order {
    next: AtomicUsize,
    turn: Mutex<usize>,
    handed: Condvar,
    stopped: AtomicBool,
}

impl Order {
    /// The next job to read, or None when all are taken or the receiver is gone.
    fn take(&self, jobs: usize) -> Option<usize> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let job = self.next.fetch_add(1, Ordering::Relaxed);
        (job < jobs).then_some(job)
    }

    /// Waits until the jobs before `job` are handed on, then runs `hand` (false when
    /// the receiver is gone) and gives the turn to the next.
    fn in_turn(&self, job: usize, hand: impl FnOnce() -> bool) {
        let mut turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        while *turn != job {
            turn = self.handed.wait(turn).unwrap_or_else(|e| e.into_inner());
        }
        if !hand() {
            self.stopped.store(true, Ordering::Relaxed);
        }
        *turn += 1;
        self.handed.notify_all();
    }
}

/// Job `job`: the dataset of that position, or past the datasets the other NIH release.
fn read_job(opts: &IngestOptions, map: &LabelMap, job: usize) -> Result<Part> {
    let mut issues = Issues::default();
    let started = std::time::Instant::now();
    let (rows, info) = match opts.datasets.get(job) {
        Some(spec) => crate::datasets::read(spec, map, &mut issues)?,
        None => {
            let path = opts
                .other_release
                .as_ref()
                .ok_or_else(|| Error::Internal("no dataset for a reader's job".into()))?;
            nih::read_other_release(path, &mut issues)?
        }
    };
    crate::trace(&format!("  read {}", info.dataset), started);
    Ok((rows, info, issues))
}
