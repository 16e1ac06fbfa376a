//! How `cxr serve` answers a client's statement: on the warehouse's current version,
//! read-only, within the server's time and memory limits.
//!
//! datafusion-postgres speaks the protocol and answers `SET`, `SHOW` and transaction
//! statements; every other statement comes here (a `QueryHook` that always answers).
//! A statement is planned on the version that is current when it arrives: a commit
//! by `cxr ingest` or `cxr split` is seen by the next statement, and a running one
//! keeps its version (and its files) until it ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::threads::{LONG_TURN, Lease, Runtimes};
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    PgCatalogContextProvider, Role,
};
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::ClientPortalStore;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{CopyResponse, QueryResponse, Response};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::copy::CopyData;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use datafusion_postgres::{DfSessionService, Parser, QueryHook};
use futures::{SinkExt, StreamExt};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::sql::{Interrupt, Warehouse};
use crate::warehouse::Manifest;

/// The limits every statement runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a statement may run, rows sent included.
    pub query_time: Duration,
    /// Memory one statement's operators may hold.
    pub query_memory: usize,
}

/// The warehouse a server answers from, and what it is running.
pub struct Served {
    root: PathBuf,
    current: Mutex<Option<Arc<Version>>>,
    /// Whether versions replaced since the server started may still be on disk.
    old_versions: AtomicBool,
    limits: Limits,
    /// The memory all statements together may hold.
    server_memory: Arc<dyn MemoryPool>,
    /// Statements planned or sending rows, for draining at shutdown.
    pub running: Arc<AtomicUsize>,
    /// Memory for the smallest tables, read once per version.
    in_memory: usize,
    /// Where warehouse versions are opened (the runtime the server was started on).
    query_runtime_handle: tokio::runtime::Handle,
    /// Where statements are computed, each on a runtime of its own.
    runtimes: Arc<Runtimes>,
    /// The role clients log in as (psql's `\du` lists it).
    user: String,
    /// The connections and their cancel requests, which reach the rows being sent.
    pub cancels: Arc<super::cancel::Cancels>,
}

/// What running a statement needs of the client that asked: its own time limit
/// (`SET statement_timeout`) and its connection, whose cancel requests stop it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Asker {
    time: Option<Duration>,
    pid: i32,
}

impl Asker {
    pub(super) fn of<C: ClientInfo + ?Sized>(client: &C) -> Asker {
        Asker {
            time: client_time(client.metadata()),
            pid: client.pid_and_secret_key().0,
        }
    }
}

/// One version of the warehouse, open for clients.
struct Version {
    warehouse: Warehouse,
}

/// The version a snapshot transaction reads, kept from its first statement to its
/// end (see [`Served::version_for`]).
#[derive(Default)]
pub(super) struct TransactionVersion(std::sync::Mutex<Option<Arc<Version>>>);

impl TransactionVersion {
    fn get(&self) -> Option<Arc<Version>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn keep(&self, version: Arc<Version>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
    }

    /// At the transaction's end: the version may go.
    pub(super) fn end(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Drop for Version {
    /// datafusion-postgres's `pg_catalog` holds the session's catalogs (it lists
    /// their tables), which hold `pg_catalog`: a cycle that kept every version,
    /// in-memory tables and all, after its last statement (96 MB a commit). Taken
    /// out of its catalog once no statement reads the version, it frees the rest.
    fn drop(&mut self) {
        if let Some(catalog) = self.warehouse.ctx.catalog("datafusion") {
            let _ = catalog.deregister_schema("pg_catalog", true);
        }
    }
}

impl Served {
    /// The cohort builder's page over this warehouse, with the same limits.
    pub fn page(&self, address: std::net::SocketAddr) -> super::http::Page {
        super::http::Page {
            answers: super::cohorts::Answers {
                root: self.root.clone(),
                server_memory: self.server_memory.clone(),
                query_memory: self.limits.query_memory,
            },
            // Turns of their own: a queue of the page's requests never holds up the
            // PostgreSQL clients' statements (a `SELECT 1` waited 37 s behind 30 of
            // them). As many at once as the server's memory holds at each one's
            // limit: 30 requests at once over every dataset otherwise ran out of it.
            runtimes: Runtimes::new(cores(), self.page_turns(), None),
            query_time: self.limits.query_time,
            address,
        }
    }

    /// How many of the page's requests compute at once: two per core, at most as
    /// many as fit in the server's memory at the statement limit.
    fn page_turns(&self) -> usize {
        use datafusion::execution::memory_pool::MemoryLimit;
        let fit = match self.server_memory.memory_limit() {
            MemoryLimit::Finite(bytes) => bytes / self.limits.query_memory.max(1),
            _ => usize::MAX,
        };
        (2 * cores()).min(fit).max(1)
    }

    /// Opens the warehouse at `root` (its current version is checked now, so that a
    /// missing or damaged warehouse stops the server before it listens).
    pub async fn open(
        root: PathBuf,
        limits: Limits,
        server_memory: usize,
        in_memory: usize,
        user: String,
    ) -> Result<Served> {
        let served = Served {
            user,
            in_memory,
            query_runtime_handle: tokio::runtime::Handle::current(),
            runtimes: Runtimes::new(cores(), 2 * cores(), Some(LONG_TURN)),
            root,
            current: Mutex::new(None),
            old_versions: AtomicBool::new(false),
            limits,
            server_memory: Arc::new(GreedyMemoryPool::new(server_memory)),
            running: Arc::new(AtomicUsize::new(0)),
            cancels: Arc::new(super::cancel::Cancels::new(Arc::new(
                datafusion_postgres::pgwire::api::ConnectionManager::new(),
            ))),
        };
        served.version().await?;
        Ok(served)
    }

    /// The version `client`'s statement reads: the current one, but in a REPEATABLE
    /// READ or SERIALIZABLE transaction the one its first statement read, as
    /// PostgreSQL's snapshot (a commit meanwhile is seen after the transaction).
    async fn version_for<C: ClientInfo + ?Sized>(&self, client: &C) -> Result<Arc<Version>> {
        let level = client.metadata().get(super::transactions::ISOLATION_KEY);
        if !level.is_some_and(|l| l == "repeatable read" || l == "serializable") {
            return self.version().await;
        }
        let kept = client
            .session_extensions()
            .get_or_insert_with(TransactionVersion::default);
        if let Some(version) = kept.get() {
            return Ok(version);
        }
        let version = self.version().await?;
        kept.keep(version.clone());
        Ok(version)
    }

    /// Takes up the version a commit made, if one did, letting go of the one it
    /// replaced, and removes the old versions no statement reads: what a statement
    /// does first, for a server no statement comes to. A warehouse that cannot be
    /// opened now is left to the next statement to report.
    pub async fn follow_commits(&self) {
        let _ = self.version().await;
    }

    /// The warehouse's current version, and the old versions no statement reads
    /// any more removed: a commit removes only those unread when it commits, and a
    /// server's statements let go of theirs later.
    async fn version(&self) -> Result<Arc<Version>> {
        let version = self.current_version().await?;
        // Only while a version this server let go of may be left: not a look at the
        // warehouse's folders for every statement.
        if self.old_versions.load(Ordering::Relaxed) {
            let left = crate::warehouse::collect_unread_versions(&self.root);
            self.old_versions.store(left, Ordering::Relaxed);
        }
        Ok(version)
    }

    /// The warehouse's current version: the one open already unless a commit
    /// replaced the manifest since.
    async fn current_version(&self) -> Result<Arc<Version>> {
        let mut current = self.current.lock().await;
        let digest = Manifest::read(&self.root)?.map(|(_, digest)| digest);
        if let Some(version) = current.as_ref()
            && Some(&version.warehouse.snapshot.manifest_sha256) == digest.as_ref()
        {
            return Ok(version.clone());
        }
        // Reading tables into memory is work for the query runtime.
        let (root, in_memory) = (self.root.clone(), self.in_memory);
        let warehouse = self
            .query_runtime_handle
            .spawn(async move { Warehouse::open_for_clients(&root, in_memory).await })
            .await
            .map_err(|e| Error::Internal(format!("opening the warehouse failed: {e}")))??;
        let role = LoginRole(self.user.clone());
        setup_pg_catalog(&warehouse.ctx, "datafusion", role).map_err(|e| Error::DataFusion(*e))?;
        super::catalog::with_settings_and_database(
            &warehouse.ctx,
            "datafusion",
            DATABASE,
            &self.user,
        )
        .await?;
        let held = match warehouse.has_table("datasets") {
            true => warehouse
                .query("SELECT dataset FROM datasets ORDER BY dataset", &[])
                .await?
                .required_strings("dataset")?,
            false => Vec::new(),
        };
        super::saved::register(&warehouse.ctx, &held);
        warehouse.ctx.register_udf(server_version());
        warehouse
            .ctx
            .register_udf(constant_text("current_database", DATABASE.into()));
        warehouse.ctx.register_udf(no_such_type());
        for udf in catalog_functions(&self.user) {
            warehouse.ctx.register_udf(udf);
        }
        warehouse
            .ctx
            .register_udf(relation_sizes(&warehouse.snapshot));
        warehouse.ctx.register_udf(view_definitions());
        let version = Arc::new(Version { warehouse });
        let replaced = current.replace(version.clone()).is_some();
        self.old_versions.fetch_or(replaced, Ordering::Relaxed);
        Ok(version)
    }

    /// Plans `statement` on `version`, refusing what a client may not do, on a
    /// statement runtime, within the time limit: planning a statement of thousands of operators takes seconds of CPU that never yield,
    /// which on the protocol's thread held up every client's statements.
    /// `client_time` is the client's own `statement_timeout`, which may only lower it.
    async fn plan(
        &self,
        version: &Version,
        statement: &Statement,
        client_time: Option<Duration>,
    ) -> Result<LogicalPlan> {
        refuse_statement(statement)?;
        let state = version.warehouse.ctx.state();
        let statement = super::rewrite::user_functions_as_session_user(statement.clone());
        let planning = self
            .runtimes
            .compute(async move { plan_statement(state, &statement).await });
        let limit = client_time.map_or(self.limits.query_time, |t| t.min(self.limits.query_time));
        match tokio::time::timeout(limit, planning).await {
            Ok(planned) => planned?,
            Err(_) => Err(Error::Query(format!(
                "canceling statement: its planning ran past the time limit of {} s",
                limit.as_secs_f64()
            ))),
        }
    }

    /// Plans `statement` on `version` with `params` bound and runs it, its rows in
    /// `format`, under the connection's settings (`metadata`).
    /// Answers `statement` on the current version as a simple query is answered: no
    /// parameters, rows as text. A cursor's query and `EXECUTE`'s statement too.
    pub(super) async fn answer_as_text<C: ClientInfo + ?Sized>(
        &self,
        statement: &Statement,
        client: &C,
    ) -> PgWireResult<Response> {
        let version = self.version_for(client).await.map_err(|e| self.error(e))?;
        let no_parameters = ParamValues::List(Vec::new());
        self.answer(
            version,
            statement,
            &no_parameters,
            &Format::UnifiedText,
            client,
        )
        .await
    }

    async fn answer<C: ClientInfo + ?Sized>(
        &self,
        version: Arc<Version>,
        statement: &Statement,
        params: &ParamValues,
        format: &Format,
        client: &C,
    ) -> PgWireResult<Response> {
        let plan = self.plan_for(&version, statement, client).await?;
        let bound = self.bind(plan, params)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        self.run(version, bound, Asker::of(client), format, options)
            .await
    }

    /// A cursor's query answered as text with `params` bound: its rows, and its plan
    /// before binding, whose schema describes the cursor (psycopg's named cursors
    /// ask for it, and crashed on a cursor of no columns).
    pub(super) async fn answer_cursor<C: ClientInfo + ?Sized>(
        &self,
        statement: &Statement,
        params: &ParamValues,
        client: &C,
    ) -> PgWireResult<(Response, LogicalPlan)> {
        let version = self.version_for(client).await.map_err(|e| self.error(e))?;
        let plan = self.plan_for(&version, statement, client).await?;
        let bound = self.bind(plan.clone(), params)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let response = self
            .run(
                version,
                bound,
                Asker::of(client),
                &Format::UnifiedText,
                options,
            )
            .await?;
        Ok((response, plan))
    }

    /// `statement` planned for the client (its login name for `current_user`).
    async fn plan_for<C: ClientInfo + ?Sized>(
        &self,
        version: &Version,
        statement: &Statement,
        client: &C,
    ) -> PgWireResult<LogicalPlan> {
        let user = client.metadata().get("user").map_or("", String::as_str);
        let named = super::rewrite::with_login_user(statement, user);
        let statement = named.as_ref().unwrap_or(statement);
        let set = super::rewrite::with_session_settings(statement, client.metadata());
        let statement = set.as_ref().unwrap_or(statement);
        self.plan(version, statement, client_time(client.metadata()))
            .await
            .map_err(|e| self.error(e))
    }

    fn bind(&self, plan: LogicalPlan, params: &ParamValues) -> PgWireResult<LogicalPlan> {
        plan.replace_params_with_values(params)
            .map_err(Error::from)
            .and_then(crate::sql::text_as_lists)
            .map_err(|e| self.error(e))
    }

    /// Runs a planned statement and streams its rows within the limits.
    async fn run(
        &self,
        version: Arc<Version>,
        plan: LogicalPlan,
        asker: Asker,
        format: &Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<Response> {
        let (schema, batches) = self.execute(version, plan, asker).await?;
        let schema = super::text::sent_schema(&schema);
        let fields = Arc::new(
            arrow_schema_to_pg_fields(&schema, format, Some(options))
                .map_err(|e| user_error("XX000", e.to_string()))?,
        );
        let encoded = fields.clone();
        let rows = batches
            .map(move |batch| -> Box<dyn Iterator<Item = _> + Send + Sync> {
                let batch = batch.and_then(|batch| {
                    super::text::for_client(&encoded, batch)
                        .map_err(|e| user_error("XX000", e.to_string()))
                });
                match batch {
                    Ok(batch) => encode_recordbatch(encoded.clone(), batch),
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            })
            .flat_map(futures::stream::iter);
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }

    /// Runs `COPY (query) TO STDOUT`: the rows as PostgreSQL's text or CSV format.
    async fn copy_out(
        &self,
        version: Arc<Version>,
        copy: super::copy::CopyOut,
        asker: Asker,
    ) -> PgWireResult<Response> {
        let plan = self
            .plan(&version, &copy.query, asker.time)
            .await
            .map_err(|e| self.error(e))?;
        let (schema, batches) = self.execute(version, plan, asker).await?;
        let columns = schema.fields().len();
        let header = copy.header(&schema);
        let rows = batches.flat_map(move |batch| {
            let rows = batch.and_then(|batch| {
                copy.encode(&batch)
                    .map_err(|e| user_error("XX000", e.to_string()))
            });
            let rows: Vec<PgWireResult<Vec<u8>>> = match rows {
                Ok(rows) => rows.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(rows)
        });
        // The header goes out with the first row: clients count rows by message
        // (psql's "COPY n"), and PostgreSQL does not count the header.
        let pending = Arc::new(std::sync::Mutex::new(header));
        let first = pending.clone();
        let with_header = rows.map(move |line| {
            line.map(|line| match first.lock().ok().and_then(|mut h| h.take()) {
                Some(mut header) => {
                    header.extend(line);
                    header
                }
                None => line,
            })
        });
        let header_alone =
            futures::stream::once(async move { pending.lock().ok().and_then(|mut h| h.take()) })
                .filter_map(|header| async move { header.map(Ok) });
        let data = with_header
            .chain(header_alone)
            .map(|line| line.map(|l| CopyData::new(l.into())));
        Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
    }

    /// Starts a planned statement on its own memory pool, under the time limit: its
    /// schema and its batches. The first batch is computed here, where a client's
    /// cancel request reaches (pgwire stops the handler, not the rows it streams):
    /// sorts, joins and aggregations do their work before it. The rest is bounded by
    /// the deadline.
    async fn execute(
        &self,
        version: Arc<Version>,
        plan: LogicalPlan,
        asker: Asker,
    ) -> PgWireResult<(
        datafusion::arrow::datatypes::Schema,
        impl futures::Stream<Item = PgWireResult<RecordBatch>> + Send + use<>,
    )> {
        let running = Running::start(&self.running);
        let limit = asker
            .time
            .map_or(self.limits.query_time, |t| t.min(self.limits.query_time));
        let deadline = tokio::time::Instant::now() + limit;
        // The time limit is checked inside the plan too: an operator that loops in
        // one poll (a nested-loop join) would not see a timer until it ends. The flag
        // stops it when the client goes away or cancels.
        let interrupt = Interrupt::at(deadline.into_std());
        let state = SessionStateBuilder::new_from_existing(version.warehouse.ctx.state())
            .with_runtime_env(self.query_runtime(&version.warehouse.ctx))
            .with_physical_optimizer_rule(interrupt.rule())
            .build();
        let plan = analyzed(&state, plan);
        let frame = postgres_integers(DataFrame::new(state, plan))
            .map_err(|e| query_error(Error::from(e), self.limits.query_memory))?;
        let schema = frame.schema().as_arrow().clone();
        let memory = self.limits.query_memory;
        // Waiting for a turn counts toward the time limit.
        let mut batches = tokio::time::timeout_at(
            deadline,
            Batches::start(&self.runtimes, frame, interrupt, deadline),
        )
        .await
        .map_err(|_| timed_out(limit))?
        .map_err(|e| self.error(e))?;
        let first = batches.next(deadline, limit, memory).await;
        // The version and the running count live as long as the rows are sent.
        let held = (version, running);
        let failed = matches!(first, Some(Err(_)));
        let rest = futures::stream::unfold(
            (batches, (!failed).then_some(held)),
            move |(mut batches, held)| async move {
                let held = held?;
                match batches.next(deadline, limit, memory).await {
                    None => None,
                    Some(Err(e)) => Some((Err(e), (batches, None))),
                    Some(Ok(batch)) => Some((Ok(batch), (batches, Some(held)))),
                }
            },
        );
        let batches = futures::stream::iter(first).chain(rest);
        Ok((schema, self.cancels.until_cancelled(asker.pid, batches)))
    }

    /// A cxr error as the client sees it.
    fn error(&self, error: Error) -> PgWireError {
        query_error(error, self.limits.query_memory)
    }

    /// A runtime whose memory pool is this statement's share of the server's.
    fn query_runtime(&self, ctx: &SessionContext) -> Arc<RuntimeEnv> {
        super::memory::statement_runtime(
            &ctx.runtime_env(),
            &self.server_memory,
            self.limits.query_memory,
        )
    }
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Integer columns as the PostgreSQL types they are sent as: PostgreSQL has no 1-byte
/// or unsigned integers, and arrow-pg sends an Int8 column as `int2` but writes one
/// byte in binary results (psycopg read 2 as 512, pgjdbc failed), and an unsigned
/// 64-bit one (`row_number()`, `rank()`, `cardinality`) as `numeric` (Python's
/// `Decimal`, pandas' float64), where PostgreSQL says `bigint`.
fn postgres_integers(frame: DataFrame) -> datafusion::error::Result<DataFrame> {
    let (state, plan) = frame.into_parts();
    Ok(DataFrame::new(state, widened_below_order(plan)?))
}

/// `plan` with its integer columns widened (see [`postgres_integers`]) below the
/// sorts, limits and column-picking projections at its top: a casting projection
/// above a sort let DataFusion compute the casts in parallel and lose the order
/// (`ORDER BY` answered in shuffled blocks of 8,192 rows).
fn widened_below_order(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    use datafusion::logical_expr::{Limit, Projection, Sort};
    let below = |input: Arc<LogicalPlan>| -> datafusion::error::Result<Arc<LogicalPlan>> {
        Ok(Arc::new(widened_below_order(Arc::unwrap_or_clone(input))?))
    };
    Ok(match plan {
        LogicalPlan::Sort(Sort { expr, input, fetch }) => LogicalPlan::Sort(Sort {
            expr,
            input: below(input)?,
            fetch,
        }),
        LogicalPlan::Limit(Limit { skip, fetch, input }) => LogicalPlan::Limit(Limit {
            skip,
            fetch,
            input: below(input)?,
        }),
        LogicalPlan::Projection(projection) if picks_columns(&projection.expr) => {
            LogicalPlan::Projection(Projection::try_new(
                projection.expr,
                below(projection.input)?,
            )?)
        }
        other => widened(other)?,
    })
}

/// Whether a projection only picks and names columns.
fn picks_columns(exprs: &[datafusion::logical_expr::Expr]) -> bool {
    use datafusion::logical_expr::Expr;
    exprs.iter().all(|e| match e {
        Expr::Column(_) => true,
        Expr::Alias(alias) => matches!(alias.expr.as_ref(), Expr::Column(_)),
        _ => false,
    })
}

/// `plan` under a projection that casts its integer columns to the types sent.
fn widened(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    use datafusion::common::Column;
    use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast};
    let wider = |ty: &DataType| match ty {
        DataType::Int8 | DataType::UInt8 => Some(DataType::Int16),
        DataType::UInt16 => Some(DataType::Int32),
        DataType::UInt32 | DataType::UInt64 => Some(DataType::Int64),
        _ => None,
    };
    if !plan
        .schema()
        .fields()
        .iter()
        .any(|f| wider(f.data_type()).is_some())
    {
        return Ok(plan);
    }
    // Each column keeps its qualified name: the nodes above still find it.
    let columns: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match wider(field.data_type()) {
                Some(ty) => cast(column, ty).alias_qualified(qualifier.cloned(), field.name()),
                None => column,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

/// A statement's batches, computed on a runtime of the statement's own (see
/// [`super::threads`]) and received here: the protocol's runtime stays free for
/// cancel requests, new clients and timers. Dropped (the rows sent, the client gone
/// or cancelling), it stops the computing.
struct Batches {
    receiver: tokio::sync::mpsc::Receiver<datafusion::error::Result<RecordBatch>>,
    interrupt: Interrupt,
    _computing: Lease,
}

impl Batches {
    /// Starts computing `frame`'s batches; the computing stops at `deadline` even
    /// while no one reads them, giving back the memory its operators hold (a client
    /// that never reads, or an open cursor, held a join's tables for as long as it
    /// liked, and the next statements of others ran out of memory).
    async fn start(
        runtimes: &Arc<Runtimes>,
        frame: DataFrame,
        interrupt: Interrupt,
        deadline: tokio::time::Instant,
    ) -> Result<Batches> {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        // A turn for each batch computed (given up when it computes long), none while
        // the client reads (or does not).
        let computing = runtimes.spawn_taking_turns(|turns| {
            let failed = sender.clone();
            // A panic in the query's tasks comes out of the stream's `next`; unless it
            // is caught here the channel just closes, and the client got the rows so
            // far as the whole result (`SELECT 0` for a count).
            let work = Self::compute(turns, frame, sender, deadline);
            async move {
                if let Err(panic) =
                    futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(work)).await
                {
                    let message = crate::error::panic_text(panic.as_ref());
                    let error = datafusion::error::DataFusionError::External(Box::new(
                        Error::Internal(format!("a task of the statement stopped: {message}")),
                    ));
                    let _ = failed.send(Err(error)).await;
                }
            }
        })?;
        Ok(Batches {
            receiver,
            interrupt,
            _computing: computing,
        })
    }

    /// Computes `frame`'s batches into `sender`, until the deadline.
    async fn compute(
        turns: super::threads::Turns,
        frame: DataFrame,
        sender: tokio::sync::mpsc::Sender<datafusion::error::Result<RecordBatch>>,
        deadline: tokio::time::Instant,
    ) {
        let mut stream = match turns.within(frame.execute_stream()).await {
            None => return,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        loop {
            let Some(batch) = turns.within(stream.next()).await else {
                return;
            };
            let Some(batch) = batch else {
                return;
            };
            // Past the deadline the reader is told so by `next`.
            match tokio::time::timeout_at(deadline, sender.send(batch)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }

    /// The next batch, or the error that ends the result.
    async fn next(
        &mut self,
        deadline: tokio::time::Instant,
        limit: Duration,
        memory: usize,
    ) -> Option<PgWireResult<RecordBatch>> {
        // A batch waiting already is not a reason to go on past the limit: a client
        // reading slowly would otherwise hold the statement (and its version) for as
        // long as it reads.
        if tokio::time::Instant::now() >= deadline {
            return Some(Err(timed_out(limit)));
        }
        match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
            Err(_) => Some(Err(timed_out(limit))),
            // The computing stopped at the deadline: not the end of the rows.
            Ok(None) if tokio::time::Instant::now() >= deadline => Some(Err(timed_out(limit))),
            Ok(None) => None,
            Ok(Some(Err(_))) if tokio::time::Instant::now() >= deadline => {
                Some(Err(timed_out(limit)))
            }
            Ok(Some(batch)) => Some(batch.map_err(|e| query_error(Error::from(e), memory))),
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.interrupt.fire();
    }
}

/// `version()` as PostgreSQL words it, which clients parse (SQLAlchemy refuses a
/// server whose version does not start "PostgreSQL N.N").
fn server_version() -> datafusion::logical_expr::ScalarUDF {
    constant_text(
        "version",
        format!(
            "PostgreSQL 15.0 (cxr {}, Apache DataFusion {}, over the PostgreSQL wire protocol)",
            env!("CARGO_PKG_VERSION"),
            datafusion::DATAFUSION_VERSION
        ),
    )
}

/// The catalog's one role: the user every client logs in as.
#[derive(Debug, Clone)]
struct LoginRole(String);

#[async_trait::async_trait]
impl PgCatalogContextProvider for LoginRole {
    async fn roles(&self) -> Vec<String> {
        vec![self.0.clone()]
    }

    async fn role(&self, name: &str) -> Option<Role> {
        (name == self.0).then(|| Role {
            name: name.to_string(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

/// The database every client is in, whatever name it connected with: `cxr` (the
/// name README's connection strings use), not DataFusion's catalog name.
const DATABASE: &str = "cxr";

/// A function of no arguments that returns `text`.
fn constant_text(name: &str, text: String) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// `to_regtype(name)`: the OID of a type the server defines beyond PostgreSQL's
/// built-in ones (drivers ask for extension types such as `hstore`): there are
/// none, so NULL, which tells the client the type does not exist.
fn no_such_type() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
    )
}

/// The catalog functions psql's `\df`, `\dT` and `\d+` and SQLAlchemy's reflection call
/// that datafusion-postgres lacks, with what they answer for every object of cxr's
/// catalog: every function, type and collation is visible (there is one schema), and
/// a function's result and arguments, an object's comment, a table's size by oid
/// (psql's is asked by name, [`relation_sizes`]), an index's definition and a
/// column's sequence are not recorded in it (cxr's tables have no indexes or
/// sequences); every object's owner is `user`, the role clients log in as (`\dt`
/// shows it, `\du` lists it).
fn catalog_functions(user: &str) -> Vec<datafusion::logical_expr::ScalarUDF> {
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    let with_args = |name: &str, args: Vec<DataType>, value: ScalarValue| {
        create_udf(
            name,
            args,
            value.data_type(),
            Volatility::Immutable,
            Arc::new(move |_| Ok(ColumnarValue::Scalar(value.clone()))),
        )
    };
    let same = |name: &str, value: ScalarValue| with_args(name, vec![DataType::Int32], value);
    vec![
        same("pg_get_userbyid", ScalarValue::Utf8(Some(user.to_string()))),
        same("pg_function_is_visible", ScalarValue::Boolean(Some(true))),
        same("pg_type_is_visible", ScalarValue::Boolean(Some(true))),
        same("pg_get_function_result", ScalarValue::Utf8(None)),
        same(
            "pg_get_function_arguments",
            ScalarValue::Utf8(Some(String::new())),
        ),
        with_args(
            "pg_table_size",
            vec![DataType::Int32],
            ScalarValue::Int64(None),
        ),
        size_pretty(),
        current_setting(),
        same("pg_collation_is_visible", ScalarValue::Boolean(Some(true))),
        with_args(
            "pg_get_indexdef",
            vec![DataType::Int32, DataType::Int32, DataType::Boolean],
            ScalarValue::Utf8(None),
        ),
        with_args(
            "pg_get_serial_sequence",
            vec![DataType::Utf8, DataType::Utf8],
            ScalarValue::Utf8(None),
        ),
        with_args(
            "col_description",
            vec![DataType::Int32, DataType::Int32],
            ScalarValue::Utf8(None),
        ),
        with_args(
            "obj_description",
            vec![DataType::Int32, DataType::Utf8],
            ScalarValue::Utf8(None),
        ),
    ]
}

/// `cxr_view_definition(name)`: a view's SQL (what psql's `\d+ view` and
/// SQLAlchemy's `get_view_definition` show; [`super::rewrite::for_catalog`] asks it
/// for `pg_get_viewdef`), NULL for a table.
fn view_definitions() -> datafusion::logical_expr::ScalarUDF {
    text_function(
        "cxr_view_definition",
        DataType::Utf8,
        datafusion::logical_expr::Volatility::Immutable,
        |name| {
            Ok(datafusion::scalar::ScalarValue::Utf8(
                crate::sql::view_definition(name),
            ))
        },
    )
}

/// `cxr_relation_size(name)`: the bytes of a table's Parquet file in this version
/// (what psql's `\dt+` shows as Size; [`super::rewrite::for_catalog`] asks it for
/// `pg_table_size(c.oid)`), 0 for a view, NULL for a catalog table.
fn relation_sizes(snapshot: &crate::warehouse::Snapshot) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::scalar::ScalarValue;
    let mut sizes: HashMap<String, i64> = snapshot
        .manifest
        .tables
        .keys()
        .filter_map(|table| {
            let file = snapshot.data.join(format!("{table}.parquet"));
            let bytes = std::fs::metadata(file).ok()?.len();
            Some((table.clone(), i64::try_from(bytes).ok()?))
        })
        .collect();
    for (view, ..) in crate::sql::VIEWS {
        sizes.entry(view.to_string()).or_insert(0);
    }
    text_function(
        "cxr_relation_size",
        DataType::Int64,
        datafusion::logical_expr::Volatility::Immutable,
        move |name| Ok(ScalarValue::Int64(sizes.get(name).copied())),
    )
}

/// A function of one text argument: `answer` of each value, NULL of NULL.
fn text_function(
    name: &'static str,
    returns: DataType,
    volatility: datafusion::logical_expr::Volatility,
    answer: impl Fn(&str) -> datafusion::error::Result<datafusion::scalar::ScalarValue>
    + Send
    + Sync
    + 'static,
) -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, StringArray, new_empty_array};
    use datafusion::arrow::compute::cast;
    use datafusion::logical_expr::{ColumnarValue, create_udf};
    use datafusion::scalar::ScalarValue;
    create_udf(
        name,
        vec![DataType::Utf8],
        returns.clone(),
        volatility,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let texts = cast(&arrays[0], &DataType::Utf8)?;
            let texts = texts
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal(name.into()))?;
            if texts.is_empty() {
                return Ok(ColumnarValue::Array(new_empty_array(&returns)));
            }
            let values = (0..texts.len())
                .map(|i| match texts.is_null(i) {
                    true => ScalarValue::try_from(&returns),
                    false => answer(texts.value(i)),
                })
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
        }),
    )
}

/// `pg_size_pretty(bytes)` as PostgreSQL writes a size: bytes below 10 kB, then the
/// largest unit that keeps the number below 10,240 (half-up rounding).
fn size_pretty() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let bytes = arrays[0]
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Internal("pg_size_pretty".into())
                })?;
            let text: StringArray = (0..bytes.len())
                .map(|i| (!bytes.is_null(i)).then(|| pretty_size(bytes.value(i))))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(text)))
        }),
    )
}

/// `current_setting(name)`: the server settings clients read (SQLAlchemy reads the
/// default table access method when it reflects a table), as PostgreSQL 15 answers
/// them; another name is PostgreSQL's error.
fn current_setting() -> datafusion::logical_expr::ScalarUDF {
    use super::catalog::SETTINGS;
    use datafusion::scalar::ScalarValue;
    text_function(
        "current_setting",
        DataType::Utf8,
        datafusion::logical_expr::Volatility::Stable,
        |name| {
            let value = SETTINGS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "unrecognized configuration parameter \"{name}\""
                    ))
                })?;
            Ok(ScalarValue::Utf8(Some(value.to_string())))
        },
    )
}

fn pretty_size(bytes: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    let half_rounded = |x: i64| (x + x.signum()) / 2;
    if bytes.abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let mut half_units = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if half_units.abs() < 2 * LIMIT {
            return format!("{} {unit}", half_rounded(half_units));
        }
        half_units >>= 10;
    }
    format!("{} PB", half_rounded(half_units))
}

/// Counts a statement as running until dropped.
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(count: &Arc<AtomicUsize>) -> Running {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Statements refused before planning: nothing a client sends reads or writes a
/// file, or changes what the server serves.
fn refuse_statement(statement: &Statement) -> Result<()> {
    crate::sql::refuse_ignored_clauses(statement)?;

    let refused = match statement {
        Statement::Query(_) | Statement::Explain { .. } | Statement::ExplainTable { .. } => None,
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. } => None,
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => Some("COPY"),
        _ => Some("this statement"),
    };
    match refused {
        None => Ok(()),
        Some(what) => Err(Error::Query(format!(
            "refused: clients of cxr serve only read; {what} is not allowed (`{}`)",
            crate::sql::truncate(&statement.to_string(), 60)
        ))),
    }
}

/// The client's `SET statement_timeout` (datafusion-postgres keeps it in the
/// connection's metadata, in milliseconds; 0 is no limit).
fn client_time(metadata: &HashMap<String, String>) -> Option<Duration> {
    metadata
        .get(super::settings::TIMEOUT_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// `FETCH 0` refused: PostgreSQL fetches the current row again, which the cursors
/// cxr serves through cannot (they fetched every remaining row).
fn fetch_zero() -> PgWireError {
    user_error(
        "0A000", // feature_not_supported
        "FETCH 0 (the cursor's current row again) is not supported by cxr serve; fetch a positive count".into(),
    )
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

fn timed_out(limit: Duration) -> PgWireError {
    user_error(
        "57014",
        format!(
            "canceling statement: it ran past the time limit of {} s",
            limit.as_secs_f64()
        ),
    )
}

/// A cxr error as the client sees it, with the SQLSTATE class that fits.
/// `query_memory` is the limit a statement ran out of, if it did.
fn query_error(error: Error, query_memory: usize) -> PgWireError {
    if let Error::DataFusion(e) = &error
        && crate::error::out_of_memory(e)
    {
        return user_error(
            "53200", // out_of_memory
            format!(
                "the statement needs more memory than its limit of {} MiB (cxr serve --query-memory; sorts spill to disk, joins and aggregations cannot)",
                query_memory >> 20
            ),
        );
    }
    let message = error.to_string();
    let code = if message.starts_with("refused") {
        "25006" // read_only_sql_transaction
    } else if message.starts_with("canceling statement") {
        "57014" // query_canceled
    } else {
        sqlstate(&error)
    };
    user_error(code, message)
}

/// The SQLSTATE PostgreSQL gives the same kind of error, so that a client can tell a
/// typo (42601), a missing table or column (42P01, 42703) and bad data (22xxx) apart.
fn sqlstate(error: &Error) -> &'static str {
    use datafusion::arrow::error::ArrowError;
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError as D;
    let root = match error {
        Error::DataFusion(e) => e.find_root(),
        Error::Query(_) | Error::Usage(_) => return "42000", // syntax_error_or_access_rule_violation
        _ => return "XX000",
    };
    match root {
        D::SQL(..) => "42601", // syntax_error
        D::SchemaError(e, _) => match e.as_ref() {
            SchemaError::FieldNotFound { .. } => "42703", // undefined_column
            SchemaError::AmbiguousReference { .. } => "42702", // ambiguous_column
            _ => "42000",
        },
        D::Plan(text) if text.starts_with("table function") => "42883", // undefined_function
        D::Plan(text)
            if text.contains("queries have different number of columns")
                || text.contains("must have the same number of columns") =>
        {
            "42601" // syntax_error, as PostgreSQL's "each UNION query must have the same number of columns"
        }
        D::Plan(text) if text.starts_with("No value found for placeholder") => "42P02", // undefined_parameter
        D::Plan(text) if text.contains("not found") && text.starts_with("table") => "42P01", // undefined_table
        D::Plan(text) if grouping_error(text) => "42803", // grouping_error
        D::Plan(text) if text.contains("non-boolean predicate") => "42804", // datatype_mismatch
        D::Plan(text) if text.contains("out of bounds") && text.contains("rder by") => "42P10", // invalid_column_reference
        D::Plan(text) if text.starts_with("OFFSET must be") => "2201X", // invalid_row_count_in_result_offset_clause
        D::Plan(text) if text.starts_with("LIMIT must be") => "2201W", // invalid_row_count_in_limit_clause
        D::Plan(text) if text.contains("function") => "42883",         // undefined_function
        D::ArrowError(e, _) => match e.as_ref() {
            ArrowError::DivideByZero => "22012", // division_by_zero
            // A number that does not fit the type cast to (`CAST(70000 AS smallint)`).
            ArrowError::CastError(text) if text.starts_with("Can't cast value") => "22003", // numeric_value_out_of_range
            ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02", // invalid_text_representation
            ArrowError::ArithmeticOverflow(_) => "22003", // numeric_value_out_of_range
            _ => "22000",                                 // data_exception
        },
        D::Plan(_) | D::NotImplemented(_) => "42000",
        D::Execution(text) if text.contains("by zero") => "22012",
        D::Execution(text) if text.contains("more than one row") => "21000", // cardinality_violation
        D::Execution(_) => "22000",
        _ => "XX000",
    }
}

/// Whether a planning error is PostgreSQL's grouping error: a column neither grouped
/// nor aggregated, or an aggregate where none may be (`WHERE count(*) > 1`), which
/// mention "aggregate function" and were taken for an unknown function.
fn grouping_error(text: &str) -> bool {
    text.contains("GROUP BY")
        || text.contains("non-aggregate")
        || (text.contains("ggregate") && text.contains("not allowed"))
}

/// Whether the hooks before [`Answer`] answer this statement (session settings,
/// transactions and savepoints, cursors, `DISCARD` and `DEALLOCATE`); everything
/// else is cxr's.
fn answered_by_protocol(statement: &Statement) -> bool {
    super::cursors::is_cursor_statement(statement)
        || matches!(
            statement,
            Statement::Set { .. }
                | Statement::ShowVariable { .. }
                | Statement::ShowStatus { .. }
                | Statement::ShowCatalogs { .. }
                | Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Discard { .. }
                | Statement::Deallocate { .. }
        )
}

/// The plan of a statement that returns no rows.
pub(super) fn no_rows() -> LogicalPlan {
    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(datafusion::common::DFSchema::empty()),
    })
}

/// The hook that answers (simple protocol) and plans (extended protocol, for
/// `Describe`) every statement datafusion-postgres's own hooks did not.
pub struct Answer(pub Arc<Served>);

#[async_trait]
impl QueryHook for Answer {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let served = &self.0;
        let answer = async {
            if let Some(copy) = super::copy::CopyOut::from_statement(statement) {
                let version = served
                    .version_for(&*client)
                    .await
                    .map_err(|e| served.error(e))?;
                let mut copy = copy.map_err(|e| served.error(e))?;
                let user = client.metadata().get("user").map_or("", String::as_str);
                if let Some(named) = super::rewrite::with_login_user(&copy.query, user) {
                    copy.query = named;
                }
                return served.copy_out(version, copy, Asker::of(&*client)).await;
            }
            served.answer_as_text(statement, &*client).await
        };
        Some(answer.await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if matches!(
            statement,
            Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Discard { .. }
                | Statement::Deallocate { .. }
        ) {
            // Answered by the hooks before this one when executed: nothing to plan.
            return Some(Ok(no_rows()));
        }
        let served = &self.0;
        let plan = async {
            let version = served
                .version_for(client)
                .await
                .map_err(|e| served.error(e))?;
            served.plan_for(&version, statement, client).await
        };
        Some(plan.await)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _prepared: &LogicalPlan,
        _params: &ParamValues,
        _unused: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Executed by `Handler` below, which has the portal's result formats.
        None
    }
}

/// A client's statement as cxr plans it: catalog and naming rewrites, the plan
/// checked to only read, unnamed expressions named as `cxr sql` names them (`1 + 1`,
/// not `Int64(1) + Int64(1)`).
async fn plan_statement(
    state: datafusion::execution::SessionState,
    statement: &Statement,
) -> Result<LogicalPlan> {
    let planned = super::rewrite::for_catalog(statement);
    let statement = planned.as_ref().unwrap_or(statement);
    let named = super::rewrite::with_postgres_names(statement);
    let statement = named.as_ref().unwrap_or(statement);
    let templated = super::rewrite::with_postgres_templates(statement);
    let statement = templated.as_ref().unwrap_or(statement);
    let series = super::rewrite::with_series_as_rows(statement);
    let mut statement = series.as_ref().unwrap_or(statement).clone();
    crate::sql::text_beside_containment(&mut statement);
    crate::sql::table_function_names(&mut statement);
    let statement = &statement;
    let plan = state
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
            statement.clone(),
        )))
        .await?;
    crate::sql::statements_allowed(false)
        .verify_plan(&plan)
        .map_err(|e| {
            Error::Query(format!(
                "refused: clients of cxr serve only read ({})",
                Error::from(e)
            ))
        })?;
    let named = crate::sql::readable_names(DataFrame::new(state.clone(), plan))?;
    // Integer columns typed as they are sent (see `postgres_integers`), so that a
    // statement is described as its rows come; a plan that cannot be so wrapped is
    // kept as it is (its rows are widened when it runs).
    let named = postgres_integers(named.clone()).unwrap_or(named);
    let plan = crate::sql::text_as_lists(named.into_unoptimized_plan())?;
    Ok(analyzed(&state, plan))
}

/// `plan` with its types resolved as execution resolves them: a `UNION` of an
/// integer and a float is planned with the first branch's type and computed as the
/// common one, so describing the unresolved plan announced `int8` and sent `float8`
/// (binary clients read garbage). A plan whose parameters are not yet typed may not
/// resolve; it is kept as planned, and resolved again once they are bound.
fn analyzed(state: &datafusion::execution::SessionState, plan: LogicalPlan) -> LogicalPlan {
    state
        .analyzer()
        .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
        .unwrap_or(plan)
}

/// Statement texts from this long on are parsed off the protocol's thread.
const LONG_TEXT: usize = 64 << 10;

/// Runs `work` (which parses a statement's text) where a long text does not hold up
/// every other client: parsing megabytes of SQL takes seconds of CPU that never
/// yield, and the protocol's runtime has one thread (an 8 MB `IN` list held up
/// others' `SELECT 1` for 13 s). `block_in_place` hands that thread's other tasks to
/// a new one while this one parses.
async fn off_protocol_thread<F: std::future::Future>(text_bytes: usize, work: F) -> F::Output {
    if text_bytes < LONG_TEXT {
        return work.await;
    }
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(work))
}

/// The statement type datafusion-postgres's parser produces: the text, and the
/// statement with its plan.
pub type Prepared = (String, Option<(Statement, LogicalPlan)>);

/// The query handlers: the simple protocol through datafusion-postgres (its hooks,
/// then [`Answer`]); the extended protocol's execution here.
pub struct Handler {
    pub protocol: Arc<DfSessionService>,
    pub served: Arc<Served>,
    /// The statement hooks `protocol` was made with, in its order, and its context:
    /// a statement parsed by [`StatementParser`] goes through them as well.
    pub hooks: Vec<Arc<dyn QueryHook>>,
    pub context: Arc<SessionContext>,
    pub parser: Arc<StatementParser>,
}

impl Handler {
    pub fn new(
        context: Arc<SessionContext>,
        hooks: Vec<Arc<dyn QueryHook>>,
        served: Arc<Served>,
    ) -> Handler {
        let protocol = Arc::new(DfSessionService::new_with_hooks(
            context.clone(),
            hooks.clone(),
        ));
        let parser = Arc::new(StatementParser {
            protocol: protocol.query_parser(),
            hooks: hooks.clone(),
            context: context.clone(),
        });
        Handler {
            protocol,
            served,
            hooks,
            context,
            parser,
        }
    }
}

/// The extended protocol's parser: datafusion-postgres's, but for a statement with
/// a subquery in a select list or an array literal (see
/// [`super::rewrite::parsed_as_written`]).
pub struct StatementParser {
    protocol: Arc<Parser>,
    hooks: Vec<Arc<dyn QueryHook>>,
    context: Arc<SessionContext>,
}

impl StatementParser {
    /// Plans a statement `rewrite` has already parsed, as datafusion-postgres plans
    /// one: by the first hook that takes it, else by DataFusion.
    async fn parse_rewritten<C>(&self, client: &C, statement: Statement) -> PgWireResult<Prepared>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let text = statement.to_string();
        for hook in &self.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &self.context, client)
                .await
            {
                return Ok((text, Some((statement, plan?))));
            }
        }
        let plan = self
            .context
            .state()
            .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                statement.clone(),
            )))
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok((text, Some((statement, plan))))
    }
}

#[async_trait]
impl datafusion_postgres::pgwire::api::stmt::QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<datafusion_postgres::pgwire::api::Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // The same limits as a simple query's.
        check_text(sql)?;
        // As PostgreSQL: one statement per Parse (the second was dropped unsaid).
        // Parsed again only when the text has more than one piece (two statements,
        // or one and a trailing comment).
        let statements = crate::input::text::split_statements(sql);
        if statements.len() > 1
            && statements
                .iter()
                .filter(|s| !crate::sql::no_statement(s))
                .count()
                > 1
        {
            return Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        if super::rewrite::fetches_the_current_row(sql) {
            return Err(fetch_zero());
        }
        let fetch = super::rewrite::fetch_with_direction(sql)
            .or_else(|| super::rewrite::without_deferrable(sql));
        let sql = fetch.as_deref().unwrap_or(sql);
        let parsing = async {
            match super::rewrite::parsed_as_written(sql)
                .and_then(|statements| statements.into_iter().next())
            {
                None => self.protocol.parse_sql(client, sql, types).await,
                Some(statement) => Ok(Some(self.parse_rewritten(client, statement).await?)),
            }
        };
        let parsed = off_protocol_thread(sql.len(), parsing).await?;
        let Some((text, Some((statement, plan)))) = parsed else {
            return Ok(parsed);
        };
        let plan = typed_by_client(plan, types).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok(Some((text, Some((statement, plan)))))
    }

    fn get_parameter_types(
        &self,
        statement: &Prepared,
    ) -> PgWireResult<Vec<datafusion_postgres::pgwire::api::Type>> {
        self.protocol.get_parameter_types(statement)
    }

    /// The columns as they are sent (`text::sent_schema`): a Describe gives the
    /// types the rows come in, also for a list of lists.
    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<datafusion_postgres::pgwire::api::results::FieldInfo>> {
        match statement {
            (_, Some((_, plan))) if !matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_)) => {
                let schema = super::text::sent_schema(plan.schema().as_arrow());
                arrow_schema_to_pg_fields(&schema, format.unwrap_or(&Format::UnifiedText), None)
            }
            _ => self.protocol.get_result_schema(statement, format),
        }
    }
}

/// The statement's parameters that nothing in it types (`SELECT $1`, `$1 + $2`) take
/// the type the client gave them in Parse, as PostgreSQL's do: psycopg's `SELECT %s`
/// with a float is then described and answered as float8, not as `unknown`. One the
/// client leaves untyped too is text, as PostgreSQL resolves an `unknown` (psycopg
/// sends every `str` so).
fn typed_by_client(
    plan: LogicalPlan,
    types: &[Option<datafusion_postgres::pgwire::api::Type>],
) -> datafusion::error::Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::Expr;
    use datafusion::logical_expr::expr::Placeholder;
    use datafusion_postgres::pgwire::api::Type;
    let given = |id: &str| {
        let index = id
            .strip_prefix('$')?
            .parse::<usize>()
            .ok()?
            .checked_sub(1)?;
        match types.get(index).cloned().flatten() {
            None | Some(Type::UNKNOWN) => Some(DataType::Utf8),
            Some(ty) => arrow_type_of(&ty),
        }
    };
    let untyped = |p: &Placeholder| p.field.as_ref().is_none_or(|f| f.data_type().is_null());
    plan.transform_up_with_subqueries(|node| {
        let node = node.map_expressions(|expr| {
            expr.transform(|expr| match expr {
                Expr::Placeholder(p) if untyped(&p) => match given(&p.id) {
                    Some(ty) => {
                        let field =
                            Arc::new(datafusion::arrow::datatypes::Field::new("", ty, true));
                        Ok(Transformed::yes(Expr::Placeholder(
                            Placeholder::new_with_field(p.id, Some(field)),
                        )))
                    }
                    None => Ok(Transformed::no(Expr::Placeholder(p))),
                },
                other => Ok(Transformed::no(other)),
            })
        })?;
        if node.transformed {
            node.map_data(LogicalPlan::recompute_schema)
        } else {
            Ok(node)
        }
    })
    .map(|t| t.data)
}

/// The Arrow type a parameter of PostgreSQL type `ty` is decoded to, for the types
/// decoded the same whatever the statement infers.
fn arrow_type_of(ty: &datafusion_postgres::pgwire::api::Type) -> Option<DataType> {
    use datafusion_postgres::pgwire::api::Type;
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => {
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None)
        }
        Type::TIME => DataType::Time64(datafusion::arrow::datatypes::TimeUnit::Microsecond),
        // Arrays are decoded as lists of their element whatever the statement infers.
        Type::BOOL_ARRAY => DataType::new_list(DataType::Boolean, true),
        Type::INT2_ARRAY => DataType::new_list(DataType::Int16, true),
        Type::INT4_ARRAY => DataType::new_list(DataType::Int32, true),
        Type::INT8_ARRAY => DataType::new_list(DataType::Int64, true),
        Type::FLOAT4_ARRAY => DataType::new_list(DataType::Float32, true),
        Type::FLOAT8_ARRAY => DataType::new_list(DataType::Float64, true),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DataType::new_list(DataType::Utf8, true),
        // As `PREPARE q(numeric)` types it: the decoder gave a value of its own
        // digits a precision below its scale (0.05: 1 digit, 2 decimals) and failed.
        Type::NUMERIC => DataType::Decimal128(38, 10),
        _ => return None,
    })
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    /// A COPY failing midway ends with its error alone (see `execute.rs`).
    async fn on_query<C>(
        &self,
        client: &mut C,
        query: datafusion_postgres::pgwire::messages::simplequery::Query,
    ) -> PgWireResult<()>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        super::execute::query(self, client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        check_text(query)?;
        off_protocol_thread(query.len(), self.answer_simple(client, query)).await
    }
}

impl Handler {
    /// A simple query's statements, each answered by the first hook that takes it.
    async fn answer_simple<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        if super::rewrite::fetches_the_current_row(query) {
            return Err(fetch_zero());
        }
        let fetch = super::rewrite::fetch_with_direction(query)
            .or_else(|| super::rewrite::without_deferrable(query));
        let query = fetch.as_deref().unwrap_or(query);
        let Some(statements) = super::rewrite::parsed_as_written(query) else {
            return SimpleQueryHandler::do_query(&*self.protocol, client, query).await;
        };
        // As datafusion-postgres answers a simple query: each statement by the first
        // hook that takes it (cxr's own takes every one the others leave).
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            for hook in &self.hooks {
                if let Some(response) = hook
                    .handle_simple_query(&statement, &self.context, client)
                    .await
                {
                    responses.push(response?);
                    continue 'statements;
                }
            }
            return Err(PgWireError::ApiError(Box::new(Error::Internal(format!(
                "no answer for `{statement}`"
            )))));
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    /// Rows stream to the client as they come (see `execute.rs`).
    async fn on_execute<C>(
        &self,
        client: &mut C,
        message: datafusion_postgres::pgwire::messages::extendedquery::Execute,
    ) -> PgWireResult<()>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        super::execute::execute(self, client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let (_, Some((statement, prepared))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let transaction = client.transaction_status();
        if let Some(done) = super::settings::apply(statement, client.metadata_mut(), transaction) {
            let done = done?;
            for message in done.messages {
                client.send(message).await?;
            }
            return Ok(Response::Execution(done.tag));
        }
        if answered_by_protocol(statement) {
            return ExtendedQueryHandler::do_query(&*self.protocol, client, portal, max_rows).await;
        }
        let served = &self.served;
        // Planned again on the version current now: a prepared statement kept across
        // a commit reads the new version, never the removed files of the old.
        let version = served
            .version_for(&*client)
            .await
            .map_err(|e| served.error(e))?;
        let mut inferred = inferred_types(prepared)?;
        let client_types = &portal.statement.parameter_types;
        let wider = super::rewrite::with_wider_parameters(statement, &inferred, client_types);
        if let Some(cast) = &wider {
            let plan = served
                .plan(&version, cast, client_time(client.metadata()))
                .await
                .map_err(|e| served.error(e))?;
            inferred = inferred_types(&plan)?;
        }
        supplied_as_required(portal.parameter_len(), &inferred, client_types)?;
        let params = bound_parameters(portal, &inferred)?;
        served
            .answer(
                version,
                wider.as_ref().unwrap_or(statement),
                &params,
                &portal.result_column_format,
                &*client,
            )
            .await
    }
}

/// Refuses a Bind that gives another number of values than the statement has
/// parameters, as PostgreSQL does (08P01); a surplus was ignored, a shortfall
/// reported as a missing placeholder. The statement's count is its highest `$n` or
/// the types the client declared, whichever is more (a catalog rewrite may drop a
/// `$n` the client still sends).
fn supplied_as_required(
    supplied: usize,
    inferred: &[Option<DataType>],
    declared: &[Option<datafusion_postgres::pgwire::api::Type>],
) -> PgWireResult<()> {
    let required = inferred.len().max(declared.len());
    if supplied == required {
        return Ok(());
    }
    Err(user_error(
        "08P01",
        format!(
            "bind message supplies {supplied} parameters, but prepared statement requires {required}"
        ),
    ))
}

/// The types the plan infers for `$1`, `$2`, ..., in order.
fn inferred_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let inferred = plan
        .get_parameter_types()
        .map_err(|e| user_error("42000", Error::from(e).to_string()))?;
    // By position, a gap where the plan has no `$n` (a rewrite for the catalog can
    // drop some): the types stay with their parameters.
    let mut types: Vec<Option<DataType>> = Vec::new();
    for (name, ty) in inferred {
        let Some(k) = name
            .trim_start_matches('$')
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|&k| k < MAX_PARAMETERS)
        else {
            continue;
        };
        if types.len() <= k {
            types.resize(k + 1, None);
        }
        types[k] = ty;
    }
    Ok(types)
}

/// The most parameters a statement has: the protocol counts them in 16 bits.
const MAX_PARAMETERS: usize = 1 << 16;

/// The values a client bound to `$1`, `$2`, ..., decoded as the types the client
/// named, else as the types the plan infers (`inferred`); a NULL of no type as text.
fn bound_parameters(
    portal: &Portal<Prepared>,
    inferred: &[Option<DataType>],
) -> PgWireResult<ParamValues> {
    let types: Vec<Option<&DataType>> = inferred.iter().map(Option::as_ref).collect();
    let decoded = deserialize_parameters(portal, &types)?;
    let sent: Vec<Option<&[u8]>> = portal.parameters.iter().map(|p| p.as_deref()).collect();
    let client = &portal.statement.parameter_types;
    let decoded = super::rewrite::with_untyped_nulls(decoded, &sent, inferred, client);
    Ok(super::rewrite::without_date_zones(decoded, client))
}

/// A statement's text within the limits of every statement: its size, its tokens
/// and its depth (54000, 54001).
pub fn check_text(sql: &str) -> PgWireResult<()> {
    if sql.len() > crate::input::text::MAX_SQL_BYTES as usize {
        return Err(too_long(sql.len()));
    }
    match crate::input::text::too_deep(sql) {
        Some(why) => Err(user_error("54001", why)), // statement_too_complex
        None => Ok(()),
    }
}

fn too_long(bytes: usize) -> PgWireError {
    user_error(
        "54000", // program_limit_exceeded
        format!(
            "the statement is {bytes} bytes; statements are limited to {} MiB ({} bytes)",
            crate::input::text::MAX_SQL_BYTES >> 20,
            crate::input::text::MAX_SQL_BYTES
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility};

    /// A statement whose computing panics (as DataFusion's kernels do on an offset
    /// overflow) ends with an error, not as the end of its rows: the channel from the
    /// computing closed and the client was told `SELECT 0`.
    #[test]
    fn a_panic_while_computing_is_an_error_not_the_end_of_the_rows() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let ctx = datafusion::prelude::SessionContext::new();
            let panics = datafusion::logical_expr::create_udf(
                "panics",
                vec![DataType::Int64],
                DataType::Int64,
                Volatility::Volatile,
                Arc::new(
                    |_: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
                        panic!("offset overflow")
                    },
                ),
            );
            ctx.register_udf(panics);
            let frame = ctx
                .sql("SELECT panics(x) FROM (VALUES (1), (2)) AS t(x)")
                .await
                .unwrap();
            let runtimes = Runtimes::new(1, 1, None);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut batches = Batches::start(&runtimes, frame, Interrupt::default(), deadline)
                .await
                .unwrap();
            let first = batches
                .next(deadline, Duration::from_secs(30), 1 << 20)
                .await;
            let error = match first {
                Some(Err(e)) => e.to_string(),
                other => panic!("not an error: {:?}", other.map(|b| b.map(|b| b.num_rows()))),
            };
            assert!(error.contains("offset overflow"), "{error}");
        });
    }
}
