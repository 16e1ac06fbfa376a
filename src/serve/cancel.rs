//! Cancel requests that reach a statement's rows as well as its computing. pgwire's
//! cancel stops the handler while it computes the first batch; once rows are being
//! sent (a large `COPY ... TO STDOUT`) only this reaches them: each connection's valid
//! cancel requests are counted, and a statement's batches end with 57014 once the
//! count moves past what it was when the statement started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::stream::{Stream, StreamExt};
use pgwire::api::ConnectionManager;
use pgwire::api::cancel::CancelHandler;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;

/// The server's connections, and the cancel requests each has had.
pub struct Cancels {
    manager: Arc<ConnectionManager>,
    /// Valid requests (right key) per connection's process id.
    asked: Mutex<HashMap<i32, u64>>,
}

impl Cancels {
    pub fn new(manager: Arc<ConnectionManager>) -> Cancels {
        Cancels {
            manager,
            asked: Mutex::new(HashMap::new()),
        }
    }

    /// The connections, which the startup registers and the cancel requests name.
    pub fn manager(&self) -> Arc<ConnectionManager> {
        self.manager.clone()
    }

    fn count(&self, pid: i32) -> u64 {
        self.asked
            .lock()
            .map_or(0, |asked| asked.get(&pid).copied().unwrap_or(0))
    }

    /// `batches` until connection `pid` asks to cancel: then one 57014 error, the end.
    pub fn until_cancelled<T, S>(
        self: &Arc<Self>,
        pid: i32,
        batches: S,
    ) -> impl Stream<Item = PgWireResult<T>> + Send + 'static + use<T, S>
    where
        T: Send + 'static,
        S: Stream<Item = PgWireResult<T>> + Send + 'static,
    {
        let cancels = self.clone();
        let start = cancels.count(pid);
        batches.scan(false, move |stopped, batch| {
            let next = if *stopped {
                None
            } else if cancels.count(pid) != start {
                *stopped = true;
                Some(Err(PgWireError::QueryCanceled))
            } else {
                Some(batch)
            };
            futures::future::ready(next)
        })
    }
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        if !self.manager.cancel(request.pid, &request.secret_key).await {
            // As PostgreSQL logs it: a guessed key, or a connection that has left.
            say!(
                "cxr serve: a cancel request for process {} with a wrong key (or no such connection): ignored",
                request.pid
            );
            return;
        }
        if let Ok(mut asked) = self.asked.lock() {
            *asked.entry(request.pid).or_default() += 1;
        }
    }
}
