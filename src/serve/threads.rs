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
//! ([`Turns::hold`]), so that long statements slow the next ones rather than stop them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// How long work computes on one turn before it gives it up ([`Turns::hold`]);
    /// None: until it ends.
    long_turn: Option<Duration>,
    /// Where the turns given up are timed: the runtime that made these, not the
    /// statement's own, whose threads its plan may hold in polls for minutes.
    timers: tokio::runtime::Handle,
}

/// The turns to compute: a statement sending rows takes one for each batch it
/// computes, not for the time its client takes to read them (four clients that
/// never read would otherwise hold every turn).
#[derive(Clone)]
pub struct Turns {
    semaphore: Arc<Semaphore>,
    long_turn: Option<Duration>,
    timers: tokio::runtime::Handle,
}

impl Turns {
    /// Waits for a turn; None once the server is stopping.
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// Runs `work` on a turn (waited for); None once the server is stopping.
    pub async fn within<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let turn = self.take().await?;
        Some(self.hold(turn, work).await)
    }

    /// Runs `work` holding `turn`, given back when the work ends or, for statements,
    /// after [`LONG_TURN`] of it: four statements joining every row with every row
    /// held every turn for minutes, and a `SELECT 1` waited until they ended. The
    /// work then computes on beside the next statements (each within its memory pool,
    /// inside the server's).
    pub async fn hold<T>(&self, turn: OwnedSemaphorePermit, work: impl Future<Output = T>) -> T {
        let Some(long) = self.long_turn else {
            let done = work.await;
            drop(turn);
            return done;
        };
        let held = Arc::new(Mutex::new(Some(turn)));
        let giving_up = {
            let held = held.clone();
            self.timers.spawn(async move {
                tokio::time::sleep(long).await;
                if let Ok(mut held) = held.lock() {
                    held.take();
                }
            })
        };
        let done = work.await;
        giving_up.abort();
        if let Ok(mut held) = held.lock() {
            held.take();
        }
        done
    }
}

/// How long a statement computes on one turn before giving it up.
pub const LONG_TURN: Duration = Duration::from_secs(1);

impl Runtimes {
    /// Runtimes of `workers` threads, `at_once` of them starting to compute at a
    /// time, each giving its turn up after `long_turn` (None: holding it to the end).
    /// Called on the runtime that times the turns.
    pub fn new(workers: usize, at_once: usize, long_turn: Option<Duration>) -> Arc<Runtimes> {
        Arc::new(Runtimes {
            idle: Mutex::new(Vec::new()),
            workers: workers.max(1),
            turns: Arc::new(Semaphore::new(at_once.max(1))),
            at_once: at_once.max(1),
            long_turn,
            timers: tokio::runtime::Handle::current(),
        })
    }

    fn turns(&self) -> Turns {
        Turns {
            semaphore: self.turns.clone(),
            long_turn: self.long_turn,
            timers: self.timers.clone(),
        }
    }

    /// Runs `work` on a runtime no other statement is using, when its turn comes,
    /// holding the turn until it ends or computes long ([`Turns::hold`]).
    pub async fn spawn<F>(self: &Arc<Self>, work: F) -> Result<Lease>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let turns = self.turns();
        let turn = turns
            .take()
            .await
            .ok_or_else(|| Error::Internal("the server is stopping".into()))?;
        self.spawn_taking_turns(|turns| async move { turns.hold(turn, work).await })
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
            None => statement_runtime(self.workers)?,
        };
        let task = runtime.spawn(make(self.turns()));
        Ok(Lease {
            runtime: Some(runtime),
            task,
            pool: self.clone(),
        })
    }
}

/// A runtime of `workers` threads for one statement. Tokio panics when the system
/// will not start a thread (no memory for its stack): that is this statement's
/// error, sent to its client, not the end of the client's connection.
fn statement_runtime(workers: usize) -> Result<Runtime> {
    const WHAT: &str = "cannot start a statement's threads (the server is short of memory or threads; try again when other statements have ended)";
    std::panic::catch_unwind(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("cxr-statement")
            .thread_stack_size(crate::input::text::STACK_BYTES)
            .enable_all()
            .build()
    })
    .map_err(|panic| {
        Error::io(
            WHAT,
            std::io::Error::other(crate::error::panic_text(&*panic)),
        )
    })?
    .map_err(|e| Error::io(WHAT, e))
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
