//! One query's share of the server's memory: a pool that refuses a query past its own
//! limit and draws everything it grants from the one pool of the server, so that
//! neither one query nor all of them together pass their limits.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// A runtime like `base` whose memory pool is one statement's share of `server`'s,
/// at most `limit` bytes.
pub fn statement_runtime(
    base: &datafusion::execution::runtime_env::RuntimeEnv,
    server: &Arc<dyn MemoryPool>,
    limit: usize,
) -> Arc<datafusion::execution::runtime_env::RuntimeEnv> {
    Arc::new(datafusion::execution::runtime_env::RuntimeEnv {
        memory_pool: Arc::new(QueryPool::new(server.clone(), limit)),
        disk_manager: base.disk_manager.clone(),
        cache_manager: base.cache_manager.clone(),
        object_store_registry: base.object_store_registry.clone(),
    })
}

/// The memory pool of one query.
#[derive(Debug)]
pub struct QueryPool {
    server: Arc<dyn MemoryPool>,
    limit: usize,
    used: AtomicUsize,
}

impl QueryPool {
    /// A pool of at most `limit` bytes, drawn from `server`.
    pub fn new(server: Arc<dyn MemoryPool>, limit: usize) -> QueryPool {
        QueryPool {
            server,
            limit,
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool of {} bytes", self.limit)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "cxr query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.server.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.server.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.server.grow(reservation, additional);
        self.used.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.server.shrink(reservation, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let claimed = self.used.fetch_add(additional, Ordering::Relaxed) + additional;
        if claimed > self.limit {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the query needs more than its memory limit of {} MiB",
                self.limit >> 20
            )));
        }
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn a_query_stops_at_its_own_limit_and_at_the_servers() {
        let server: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let first: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(server.clone(), 600));
        let second: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(server.clone(), 600));
        let a = MemoryConsumer::new("a").register(&first);
        let b = MemoryConsumer::new("b").register(&second);
        a.try_grow(500).unwrap();
        // Past the query's own 600 bytes.
        assert!(a.try_grow(200).is_err());
        assert_eq!(first.reserved(), 500);
        // Within the second query's limit, past the server's 1000.
        assert!(b.try_grow(550).is_err());
        assert_eq!(second.reserved(), 0);
        b.try_grow(400).unwrap();
        assert_eq!(server.reserved(), 900);
        drop(a);
        assert_eq!(server.reserved(), 400);
        assert_eq!(first.reserved(), 0);
    }
}
