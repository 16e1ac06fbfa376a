//! Threads of their own for each running statement.
//!
//! One poll of an operator can run for seconds (a nested-loop join over every pair
//! of rows). On one shared pool such a statement held every worker, and a
//! `SELECT count(*)` beside it waited past its time limit. Each statement therefore
//! runs on a runtime no other statement uses, and the operating system shares the
//! cores between statements. Runtimes are kept for the next statement: starting
//! threads for each one added half a millisecond to a point lookup. At most two per
//! core start computing at once, the others wait their turn (within their time
//! limit): with one runtime for each of 16 clients, throughput fell by a fifth, the
//! 99th percentile rose from 0.6 to 0.9 s and the server's memory more than doubled.
//! A statement that computes for more than a second gives its turn up
//! ([`within_turn`]), so that long statements slow the next ones rather than stop them.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Idle statement runtimes, each with one worker per partition of a plan.
pub struct Runtimes {
    idle: Mutex<Vec<Runtime>>,
    workers: usize,
    /// Statements computing at once.
    turns: Arc<Semaphore>,
    /// The most idle runtimes kept.
    at_once: usize,
}

/// The turns to compute: a statement sending rows takes one for each batch it
/// computes, not for the time its client takes to read them (four clients that
/// never read would otherwise hold every turn).
pub struct Turns(Arc<Semaphore>);

impl Turns {
    /// Waits for a turn; None once the server is stopping.
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().acquire_owned().await.ok()
    }
}

/// How long work computes on one turn before it gives the turn to the next
/// statement and computes on beside it: four statements joining every row with every
/// row held every turn for minutes, and a `SELECT 1` waited until they ended. Memory
/// stays bounded by each statement's pool inside the server's.
const LONG_TURN: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `work` holding `turn`, given back when the work ends or after [`LONG_TURN`]
/// of it (checked where the work waits: a plan's partitions compute in tasks of
/// their own, so its stream waits often).
pub async fn within_turn<T>(turn: OwnedSemaphorePermit, work: impl Future<Output = T>) -> T {
    let work = std::pin::pin!(work);
    let mut work = work;
    tokio::select! {
        done = &mut work => done,
        _ = tokio::time::sleep(LONG_TURN) => {
            drop(turn);
            work.await
        }
    }
}

impl Runtimes {
    /// Runtimes of `workers` threads, `at_once` of them computing at a time.
    pub fn new(workers: usize, at_once: usize) -> Arc<Runtimes> {
        Arc::new(Runtimes {
            idle: Mutex::new(Vec::new()),
            workers: workers.max(1),
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            at_once: at_once.max(1),
        })
    }

    /// Runs `work` on a runtime no other statement is using, when its turn comes,
    /// holding the turn until it ends or computes long ([`within_turn`]).
    pub async fn spawn<F>(self: &Arc<Self>, work: F) -> Result<Lease>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let turn = Turns(self.turns.clone())
            .take()
            .await
            .ok_or_else(|| Error::Internal("the server is stopping".into()))?;
        self.spawn_taking_turns(|_| within_turn(turn, work))
    }

    /// Runs the work `make` gives on a runtime no other statement is using; the work
    /// takes its turns itself ([`Turns`]).
    pub fn spawn_taking_turns<F>(self: &Arc<Self>, make: impl FnOnce(Turns) -> F) -> Result<Lease>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let runtime = match idle {
            Some(runtime) => runtime,
            None => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.workers)
                .thread_name("cxr-statement")
                .thread_stack_size(crate::input::text::STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| Error::io("cannot start a statement's threads", e))?,
        };
        let task = runtime.spawn(make(Turns(self.turns.clone())));
        Ok(Lease {
            runtime: Some(runtime),
            task,
            pool: self.clone(),
        })
    }
}

impl Runtimes {
    /// Runs `work` on a runtime of its own when its turn comes and gives its result:
    /// CPU work that never yields (planning a statement) off the caller's thread.
    pub async fn compute<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (send, receive) = tokio::sync::oneshot::channel();
        let _lease = self
            .spawn(async move {
                let _ = send.send(work.await);
            })
            .await?;
        receive
            .await
            .map_err(|_| Error::Internal("a statement's work stopped".into()))
    }
}

impl Drop for Runtimes {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which async code may not do.
        if let Ok(mut idle) = self.idle.lock() {
            for runtime in idle.drain(..) {
                runtime.shutdown_background();
            }
        }
    }
}

/// A runtime running one statement's work; dropped, the work is stopped.
pub struct Lease {
    runtime: Option<Runtime>,
    task: JoinHandle<()>,
    pool: Arc<Runtimes>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if !self.task.is_finished() {
            // Still in a poll (the statement's interrupt ends it): its threads are
            // left to finish it and stop, and the next statement gets new ones.
            self.task.abort();
            runtime.shutdown_background();
            return;
        }
        // Kept for the next statement, at most one per turn.
        match self.pool.idle.lock() {
            Ok(mut idle) if idle.len() < self.pool.at_once => idle.push(runtime),
            _ => runtime.shutdown_background(),
        }
    }
}
