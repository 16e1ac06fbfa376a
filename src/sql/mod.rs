//! The SQL layer: a DataFusion `SessionContext` over a warehouse, with the built-in
//! views, read-only statement checks and saved parameterised queries.

mod array_literals;
pub(crate) use array_literals::{
    as_lists as text_as_lists, cast_to_text_array, text_beside_containment,
};
mod files;
mod functions;
mod growth;
mod interrupt;
mod overflow;
pub mod params;
mod rows;
pub mod snippets;
mod write_options;

pub use interrupt::Interrupt;
pub use rows::Rows;

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, ParquetReadOptions};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::DFParser;

use crate::error::{Error, Result};
use crate::warehouse::Snapshot;

/// The built-in views: (name, SQL template, tables it reads). Their SQL lives in
/// `views/`, written over `{images}` (and `{findings}`) so that the analysis commands
/// can run the same definitions over a cohort (`finding_states` reads `dataset_labels`). Ingest stores both as tables too
/// (`ingest::derived`); a view is registered only where the warehouse has no table.
pub const VIEWS: [(&str, &str, &[&str]); 6] = [
    (
        "cooccurrence",
        include_str!("views/cooccurrence.sql"),
        &["images"],
    ),
    (
        "followups",
        include_str!("views/followups.sql"),
        &["images"],
    ),
    (
        "finding_states",
        include_str!("views/finding_states.sql"),
        &["dataset_labels"],
    ),
    // The names the cross-dataset tables had before schema version 4, kept for
    // users' saved queries.
    (
        "xr_images",
        "SELECT * FROM dataset_images",
        &["dataset_images"],
    ),
    (
        "xr_labels",
        "SELECT * FROM dataset_labels",
        &["dataset_labels"],
    ),
    (
        "xr_boxes",
        "SELECT * FROM dataset_boxes",
        &["dataset_boxes"],
    ),
];

/// The SQL of a built-in view over the given relations.
pub fn view_sql(name: &str, images: &str, findings: &str) -> String {
    let (_, template, _) = VIEWS
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("a built-in view name");
    template
        .replace("{images}", images)
        .replace("{findings}", findings)
}

/// The SQL of a built-in view as registered (over `images` and `findings`), for
/// clients that ask for a view's definition; None for any other name.
pub fn view_definition(name: &str) -> Option<String> {
    VIEWS
        .iter()
        .any(|(n, _, _)| *n == name)
        .then(|| view_sql(name, "images", "findings").trim().to_string())
}

/// A warehouse opened for querying: one snapshot, its tables and the views.
pub struct Warehouse {
    /// The DataFusion context with tables and views registered.
    pub ctx: SessionContext,
    /// The version of the warehouse every table is read from.
    pub snapshot: Snapshot,
}

/// Which tables and views to register.
pub enum Register<'a> {
    /// Everything in the warehouse (the shell, `\d`).
    All,
    /// Only what this SQL text can refer to: start-up stays short for one-off queries.
    For(&'a str),
}

impl Warehouse {
    /// Opens the warehouse at `dir`, registering its tables and the built-in views.
    /// Files named in a query (`FROM 'x.parquet'`) are read too.
    pub async fn open(dir: &Path, register: Register<'_>) -> Result<Warehouse> {
        Self::open_with(dir, register, None).await
    }

    /// Like [`Warehouse::open`], with queries that `interrupt` can stop mid-batch.
    pub async fn open_with(
        dir: &Path,
        register: Register<'_>,
        interrupt: Option<&Interrupt>,
    ) -> Result<Warehouse> {
        let t = std::time::Instant::now();
        let snapshot = Snapshot::open(dir)?;
        let ctx = context(interrupt)?.enable_url_table();
        let wh = Warehouse { ctx, snapshot };
        wh.register(register).await?;
        crate::trace("open warehouse", t);
        Ok(wh)
    }

    /// The warehouse as `cxr serve` offers it to clients: every table and view, and
    /// no file outside it (no `FROM 'path'`).
    /// The smallest tables are read once into memory, up to `in_memory` bytes of
    /// Arrow arrays: a server answers many statements from them.
    pub async fn open_for_clients(dir: &Path, in_memory: usize) -> Result<Warehouse> {
        let wh = Warehouse {
            ctx: context(None)?,
            snapshot: Snapshot::open(dir)?,
        };
        wh.register(Register::All).await?;
        if in_memory > 0 {
            wh.keep_in_memory(in_memory).await?;
        }
        Ok(wh)
    }

    /// The warehouse for one request of a server: no file a query names is read
    /// (no `FROM 'path'`), its plans stop at `interrupt`, and its memory is that of
    /// the runtime `runtime` makes from the default one.
    pub fn open_for_request(
        dir: &Path,
        interrupt: &Interrupt,
        runtime: impl FnOnce(&RuntimeEnv) -> std::sync::Arc<RuntimeEnv>,
    ) -> Result<Warehouse> {
        let base = context(Some(interrupt))?;
        let state = SessionStateBuilder::new_from_existing(base.state())
            .with_runtime_env(runtime(&base.runtime_env()))
            .build();
        Ok(Warehouse {
            ctx: SessionContext::new_with_state(state),
            snapshot: Snapshot::open(dir)?,
        })
    }

    /// Replaces the smallest tables (by their files) by in-memory copies while they
    /// fit in `budget` bytes, and registers the views again over them.
    async fn keep_in_memory(&self, budget: usize) -> Result<()> {
        let mut tables: Vec<(u64, String)> = self
            .snapshot
            .tables()?
            .into_iter()
            .map(|(name, path)| (crate::warehouse::files::size_on_disk(&path), name))
            .collect();
        tables.sort();
        let mut used = 0;
        for (file_bytes, name) in tables {
            // Arrays never take less memory than their compressed files.
            if used + file_bytes as usize > budget {
                break;
            }
            let frame = self.ctx.table(name.as_str()).await?;
            let schema = frame.schema().as_arrow().clone();
            let partitions = frame.collect_partitioned().await?;
            let bytes: usize = partitions
                .iter()
                .flatten()
                .map(|b| b.get_array_memory_size())
                .sum();
            if used + bytes > budget {
                break;
            }
            used += bytes;
            let table = datafusion::datasource::MemTable::try_new(schema.into(), partitions)?;
            self.ctx.deregister_table(name.as_str())?;
            self.ctx
                .register_table(name.as_str(), std::sync::Arc::new(table))?;
        }
        for (name, _, _) in VIEWS {
            if self.snapshot.table(name).is_none() {
                self.ctx.deregister_table(name)?;
            }
        }
        self.register(Register::All).await
    }

    /// Registers the tables and views `register` asks for that are not registered
    /// yet. A view the warehouse stores materialised (`followups`, `cooccurrence`,
    /// written by ingest) is registered as that table: same columns, no computing.
    pub async fn register(&self, register: Register<'_>) -> Result<()> {
        let stored = self.snapshot.tables()?;
        let is_stored = |n: &str| stored.iter().any(|(s, _)| s == n);
        let wanted = Wanted::new(&register, &is_stored);
        for (name, path) in &stored {
            if wanted.table(name) && !self.ctx.table_exist(name.as_str())? {
                let rows = self
                    .snapshot
                    .manifest
                    .tables
                    .get(name)
                    .copied()
                    .unwrap_or(0);
                crate::warehouse::parquet::check_table(path, rows)?;
                let url = files::literal_url(path)?;
                self.ctx
                    .register_parquet(name.as_str(), &url, ParquetReadOptions::default())
                    .await?;
            }
        }
        for (name, _, reads) in VIEWS {
            if wanted.view(name)
                && !is_stored(name)
                && !self.ctx.table_exist(name)?
                && reads.iter().all(|t| is_stored(t))
            {
                let view = self
                    .ctx
                    .sql(&view_sql(name, "images", "findings"))
                    .await?
                    .into_view();
                self.ctx.register_table(name, view)?;
            }
        }
        Ok(())
    }

    /// A planning error about a table that does not exist, with the names that do.
    fn name_the_tables(&self, e: datafusion::error::DataFusionError) -> Error {
        let error = Error::from(e);
        let text = error.to_string();
        if !(text.contains("table '") && text.contains("not found")) {
            return error;
        }
        let mut names: Vec<String> = self
            .snapshot
            .tables()
            .map(|t| t.into_iter().map(|(n, _)| n).collect())
            .unwrap_or_default();
        let views: Vec<String> = VIEWS
            .iter()
            .filter(|(n, _, reads)| {
                !names.iter().any(|s| s == n) && reads.iter().all(|t| self.has_table(t))
            })
            .map(|(n, _, _)| n.to_string())
            .collect();
        names.extend(views);
        names.sort();
        Error::Query(format!(
            "{text}; the warehouse's tables and views are: {}",
            names.join(", ")
        ))
    }

    /// Whether the warehouse stores a table of this name.
    pub fn has_table(&self, name: &str) -> bool {
        self.snapshot.table(name).is_some()
    }

    /// Whether the warehouse's `pixel_stats` is keyed by dataset and image id (an older
    /// cxr wrote NIH's only, by image_index).
    pub async fn has_keyed_pixel_stats(&self) -> Result<bool> {
        Ok(self.has_table("pixel_stats") && self.has_column("pixel_stats", "dataset").await?)
    }

    /// Whether a table or view has a column of this name (the warehouse's table is
    /// registered first if it is not yet).
    pub async fn has_column(&self, table: &str, column: &str) -> Result<bool> {
        if !self.ctx.table_exist(table)? {
            if !self.has_table(table) {
                return Ok(false);
            }
            self.register(Register::For(table)).await?;
        }
        let provider = self.ctx.table_provider(table).await?;
        Ok(provider.schema().field_with_name(column).is_ok())
    }

    /// Plans every `;`-separated statement of `sql`, refusing writes unless
    /// `allow_write`, and binds `params` to `$name` placeholders.
    pub async fn plan(
        &self,
        sql: &str,
        allow_write: bool,
        params: &[(String, ScalarValue)],
    ) -> Result<Vec<DataFrame>> {
        let t = std::time::Instant::now();
        if let Some(why) = crate::input::text::too_deep(sql) {
            return Err(Error::Query(why));
        }
        let statements =
            DFParser::parse_sql(sql).map_err(|e| Error::Query(Error::from(e).to_string()))?;
        if statements.is_empty() {
            return Err(Error::Usage("no SQL statement to run".into()));
        }
        let options = statements_allowed(allow_write);
        let mut frames = Vec::with_capacity(statements.len());
        for mut statement in statements {
            let text = statement_text(&statement);
            if let datafusion::sql::parser::Statement::Statement(s) = &mut statement {
                refuse_ignored_clauses(s)?;
                caret_as_power(s);
                text_beside_containment(s);
                table_function_names(s);
            }
            files::prepare(&self.ctx, &statement).await?;
            let plan = self
                .ctx
                .state()
                .statement_to_plan(statement)
                .await
                .map_err(|e| self.name_the_tables(e))?;
            if options.verify_plan(&plan).is_err() {
                // What the statement would do, in words (DataFusion names its plan
                // node: "DDL not supported: CreateMemoryTable").
                let what = match &plan {
                    datafusion::logical_expr::LogicalPlan::Ddl(_) => {
                        "it creates or drops tables, views or functions"
                    }
                    datafusion::logical_expr::LogicalPlan::Dml(_)
                    | datafusion::logical_expr::LogicalPlan::Copy(_) => "it writes data",
                    _ => "it changes the session",
                };
                return Err(Error::Query(format!(
                    "refused: the warehouse is read-only and {what}; `cxr sql --allow-write` (or `cxr shell --allow-write`) runs `{}`",
                    truncate(&text, 60)
                )));
            }
            self.refuse_writes_inside(&plan)?;
            let (plan, copied) = match plan {
                datafusion::logical_expr::LogicalPlan::Copy(copy) => {
                    let file = CopiedFile::of(copy.clone())?;
                    let plan = match &file {
                        Some(f) => f.plan.clone(),
                        None => datafusion::logical_expr::LogicalPlan::Copy(literal_folder(copy)?),
                    };
                    (plan, file)
                }
                plan => (plan, None),
            };
            let mut df = self
                .ctx
                .execute_logical_plan(array_literals::as_lists(plan)?)
                .await?;
            if !params.is_empty() {
                let values: Vec<(&str, ScalarValue)> = params
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect();
                df = df.with_param_values(values)?;
                let (state, plan) = df.into_parts();
                df = DataFrame::new(state, array_literals::as_lists(plan)?);
            }
            if let Some(file) = copied {
                df = file.write(&self.ctx, df).await?;
            }
            frames.push(readable_names(df)?);
        }
        crate::trace("plan", t);
        Ok(frames)
    }
}

/// `a ^ b` is `a` to the power `b`, as in PostgreSQL and through `cxr serve`: the
/// generic SQL dialect reads `^` as a bitwise XOR (`2 ^ 10` was 8 here and 1024
/// there).
fn caret_as_power(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, visit_expressions_mut};
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::BinaryOp { op, .. } = expr
            && *op == BinaryOperator::BitwiseXor
        {
            *op = BinaryOperator::PGExp;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// A table function's name as PostgreSQL reads it: lower case unless quoted, and
/// without its quotes. DataFusion looks the function up by the name as written
/// (`Top_Pairs(5)` and `"top_pairs"(5)` were not found; tables were).
pub(crate) fn table_function_names(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{ObjectNamePart, TableFactor, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct Names;
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, table: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                args: Some(_),
                ..
            } = table
                && let [ObjectNamePart::Identifier(ident)] = name.0.as_mut_slice()
                && ident.quote_style.take().is_none()
            {
                ident.value = ident.value.to_lowercase();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Names);
}

/// A COPY into a folder, its target given to DataFusion as a literal URL: a `[1]`
/// in the path is part of its name, not a pattern.
fn literal_folder(
    copy: datafusion::logical_expr::dml::CopyTo,
) -> Result<datafusion::logical_expr::dml::CopyTo> {
    let mut url = files::literal_url(&local_path(&copy.output_url)?)?;
    if copy.output_url.ends_with('/') && !url.ends_with('/') {
        url.push('/');
    }
    Ok(datafusion::logical_expr::dml::CopyTo {
        output_url: url,
        ..copy
    })
}

/// A `COPY ... TO` one file, written as `--out` writes: into a hidden file beside
/// the target, renamed over it once whole. A COPY failing midway had left a part of
/// its rows at the target, in place of the file that was there.
struct CopiedFile {
    /// The COPY into the hidden file.
    plan: datafusion::logical_expr::LogicalPlan,
    hidden: std::path::PathBuf,
    target: std::path::PathBuf,
}

impl CopiedFile {
    /// The COPY `copy` into a hidden file, or None where it writes a folder (a
    /// partitioned COPY, a target ending in `/`, naming a folder or without an
    /// extension, which DataFusion takes for a folder).
    fn of(copy: datafusion::logical_expr::dml::CopyTo) -> Result<Option<CopiedFile>> {
        let target = local_path(&copy.output_url)?;
        let (Some(_), Some(extension)) = (target.file_name(), target.extension()) else {
            return Ok(None);
        };
        if copy.output_url.ends_with('/') || !copy.partition_by.is_empty() || target.is_dir() {
            return Ok(None);
        }
        // A temporary name as `--out` makes one (so that the next write of the target
        // removes what an interrupted COPY left), with the extension last: DataFusion
        // writes one file to a path that has one.
        crate::warehouse::files::sweep_stale(&target);
        let temporary = crate::warehouse::files::temp_beside(&target);
        let hidden = temporary.with_extension(format!("tmp.{}", extension.to_string_lossy()));
        let plan =
            datafusion::logical_expr::LogicalPlan::Copy(datafusion::logical_expr::dml::CopyTo {
                output_url: files::literal_url(&hidden)?,
                ..copy
            });
        Ok(Some(CopiedFile {
            plan,
            hidden,
            target,
        }))
    }

    /// Runs the COPY `df` into the hidden file and renames it over the target; the
    /// hidden file is removed if it fails. Its answer (the row count) as a frame.
    async fn write(self, ctx: &SessionContext, df: DataFrame) -> Result<DataFrame> {
        let written = match df.collect().await {
            Ok(batches) => std::fs::rename(&self.hidden, &self.target)
                .map(|()| batches)
                .map_err(|e| Error::io(format!("COPY TO {}", self.target.display()), e)),
            Err(e) => Err(e.into()),
        };
        if written.is_err() {
            let _ = std::fs::remove_file(&self.hidden);
        }
        Ok(ctx.read_batches(written?)?)
    }
}

/// Result columns named by DataFusion after an unnamed expression spell its literals
/// as SQL does: `1 + 1`, `upper('x')` (DataFusion: `Int64(1) + Int64(1)`,
/// `upper(Utf8("x"))`). A name that would then repeat another is left as it was.
pub(crate) fn readable_names(df: DataFrame) -> Result<DataFrame> {
    use std::sync::LazyLock;
    static NUMBER: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\b(?:U?Int(?:8|16|32|64)|Float(?:16|32|64)|Boolean)\(([^()]*)\)")
            .expect("a valid pattern")
    });
    static TEXT: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"\b(?:Utf8|Utf8View|LargeUtf8)\("((?:[^"\\]|\\.)*)"\)"#)
            .expect("a valid pattern")
    });
    if !matches!(
        df.logical_plan(),
        datafusion::logical_expr::LogicalPlan::Projection(_)
            | datafusion::logical_expr::LogicalPlan::Sort(_)
            | datafusion::logical_expr::LogicalPlan::Limit(_)
    ) {
        return Ok(df);
    }
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut taken: std::collections::HashSet<String> = names.iter().cloned().collect();
    let mut df = df;
    for old in &names {
        let new = NUMBER.replace_all(old, "$1");
        let new = TEXT.replace_all(&new, "'$1'").into_owned();
        if new != *old && taken.insert(new.clone()) {
            df = df.with_column_renamed(old, &new)?;
        }
    }
    Ok(df)
}

impl Warehouse {
    /// With `--allow-write`, statements may write files, but never inside the
    /// warehouse: not `COPY ... TO` there, not an external table located there, not
    /// an `INSERT` into one of its tables. Every node of the plan is checked, so a
    /// write wrapped in `EXPLAIN ANALYZE` or a subquery is checked too.
    fn refuse_writes_inside(&self, plan: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let mut refused = Ok(());
        plan.apply_with_subqueries(|node| {
            refused = self.refuse_write_node(node);
            Ok(if refused.is_ok() {
                TreeNodeRecursion::Continue
            } else {
                TreeNodeRecursion::Stop
            })
        })?;
        refused
    }

    /// [`Warehouse::refuse_writes_inside`] for one node of a plan.
    fn refuse_write_node(&self, node: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
        use datafusion::logical_expr::{DdlStatement, LogicalPlan};
        let root = &self.snapshot.root;
        match node {
            LogicalPlan::Copy(copy) => {
                let schema = copy.input.schema().inner().clone();
                for (key, value) in &copy.options {
                    write_options::check(key, value, Some(&schema))?;
                }
                let target = local_path(&copy.output_url)?;
                crate::warehouse::files::refuse_special(&target)?;
                crate::warehouse::refuse_inside(root, &target, "COPY TO")?;
                // As `--out`: into a folder that exists (a file or a folder of files).
                crate::warehouse::files::check_folder_exists(&target)?;
                crate::warehouse::files::check_writable(&target)
            }
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(t)) => {
                for location in &t.locations {
                    crate::warehouse::refuse_inside(root, &local_path(location)?, "LOCATION")?;
                }
                Ok(())
            }
            // `--allow-write` is for writing files, not for lifting the memory limit
            // (or moving the spill folder).
            LogicalPlan::Statement(statement) => {
                use datafusion::logical_expr::Statement as S;
                let variable = match statement {
                    S::SetVariable(set) => &set.variable,
                    S::ResetVariable(reset) => &reset.variable,
                    _ => return Ok(()),
                };
                if let S::SetVariable(set) = statement {
                    write_options::check(&set.variable, &set.value, None)?;
                }
                if variable
                    .to_ascii_lowercase()
                    .starts_with("datafusion.runtime.")
                {
                    return Err(Error::Query(format!(
                        "refused: `{variable}` is not a session setting: the memory limit is CXR_MEMORY_LIMIT's"
                    )));
                }
                Ok(())
            }
            LogicalPlan::Dml(dml) if self.has_table(dml.table_name.table()) => {
                Err(Error::Query(format!(
                    "refused: `{}` is a warehouse table, and the warehouse is written only by cxr ingest and cxr split",
                    dml.table_name
                )))
            }
            _ => Ok(()),
        }
    }
}

impl Warehouse {
    /// Runs one read-only statement and collects its result for computing on.
    /// Runs one statement and gives its batches as they are computed.
    pub async fn stream(
        &self,
        sql: &str,
        params: &[(String, ScalarValue)],
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        let mut frames = self.plan(sql, false, params).await?;
        match (frames.pop(), frames.is_empty()) {
            (Some(df), true) => Ok(df.execute_stream().await?),
            _ => Err(Error::Query("expected exactly one statement".into())),
        }
    }

    pub async fn query(&self, sql: &str, params: &[(String, ScalarValue)]) -> Result<Rows> {
        let mut frames = self.plan(sql, false, params).await?;
        let df = match (frames.pop(), frames.is_empty()) {
            (Some(df), true) => df,
            _ => return Err(Error::Query("expected exactly one statement".into())),
        };
        let t = std::time::Instant::now();
        let (schema, batches) = collect(df).await?;
        crate::trace("run", t);
        Rows::new(&schema, &batches)
    }
}

impl Warehouse {
    /// Runs `sql` once and registers its result in memory as the table `name`, for
    /// a relation that several parts of one query read (DataFusion inlines a CTE at
    /// every reference, so a costly one would be computed again each time).
    /// Registers `sql` as a view named `name` (replacing one of that name): queries
    /// over it are planned as one, so their filters reach the view's tables.
    pub async fn define_view(&self, name: &str, sql: &str) -> Result<()> {
        let view = self.ctx.sql(sql).await?.into_view();
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, view)?;
        Ok(())
    }

    pub async fn remember(
        &self,
        name: &str,
        sql: &str,
        params: &[(String, ScalarValue)],
    ) -> Result<()> {
        let (schema, batches) = collect(self.plan(sql, false, params).await?.remove(0)).await?;
        // As many partitions as the context has: every query of it reads on every core.
        let parts = self.ctx.state().config().target_partitions().max(1);
        let mut partitions = vec![Vec::new(); parts];
        for (k, batch) in batches.into_iter().enumerate() {
            partitions[k % parts].push(batch);
        }
        let table = datafusion::datasource::MemTable::try_new(schema, partitions)?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, std::sync::Arc::new(table))?;
        Ok(())
    }
}

/// A DataFusion context as every cxr query runs in: cxr's functions, the memory
/// limit, strings read as Utf8, every core.
fn context(interrupt: Option<&Interrupt>) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    // Strings read from Parquet as Utf8 rather than Utf8View: a sort accounts each
    // view batch with the whole buffers it points into, so a sort of a few
    // hundred thousand short rows claimed gigabytes against the memory limit
    // (`agree --readers` over a warehouse of several datasets).
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    // A glob over a partitioned export (`'dataset/*/*.parquet'`) matches files in
    // its folders; a warehouse table's folder has none below it.
    config
        .options_mut()
        .execution
        .listing_table_ignore_subdirectory = false;
    // A CSV file named in a query may hold line breaks inside quoted fields (cxr's
    // own `--out` writes them): read each file from its start, not in byte ranges
    // that begin inside a record.
    config.options_mut().catalog.newlines_in_values = true;
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(memory_limit()?, 1.0)
        .build_arc()?;
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_analyzer_rule(std::sync::Arc::new(growth::CappedCalls::default()))
        .with_analyzer_rule(std::sync::Arc::new(
            overflow::CheckedIntegerArithmetic::default(),
        ))
        .with_optimizer_rule(std::sync::Arc::new(growth::BoundedPlans));
    if let Some(interrupt) = interrupt {
        state = state.with_physical_optimizer_rule(interrupt.rule());
    }
    let ctx = SessionContext::new_with_state(state.build());
    for function in functions::all() {
        ctx.register_udf(function);
    }
    growth::check_every_function(&ctx);
    for function in functions::aggregates() {
        ctx.register_udaf(function);
    }
    // Replaces DataFusion's `sum`, by name.
    ctx.register_udaf(datafusion::logical_expr::AggregateUDF::from(
        overflow::CheckedSum::default(),
    ));
    Ok(ctx)
}

/// The memory a query's operators (sorts, joins, aggregations) may hold at once,
/// past which sorts spill to disk and the rest stop with an error: 512 MiB, or
/// `CXR_MEMORY_LIMIT` (`512MiB`, `2GiB`, or bytes).
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

pub fn memory_limit() -> Result<usize> {
    let Ok(text) = std::env::var("CXR_MEMORY_LIMIT") else {
        return Ok(DEFAULT_MEMORY_LIMIT);
    };
    size_setting(&format!("CXR_MEMORY_LIMIT={text}"), &text)
}

/// A size given as `setting` (a flag or a variable with its value, for the message).
pub fn size_setting(setting: &str, text: &str) -> Result<usize> {
    parse_size(text).ok_or_else(|| {
        Error::Usage(format!(
            "{setting}: not a size (e.g. 512MiB, 2GiB or a number of bytes)"
        ))
    })
}

/// What statements may do: read only, or also write (`cxr sql --allow-write`).
pub fn statements_allowed(allow_write: bool) -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(allow_write)
        .with_allow_dml(allow_write)
        .with_allow_statements(allow_write)
}

/// `123`, `512KiB`, `512MiB`, `2GiB` (also `MB`/`GB`, read as powers of 2).
fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: usize = t[..digits].parse().ok()?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift).filter(|&n| n > 0)
}

/// A statement as the user would write it again. DataFusion prints `COPY ... TO` with
/// its target unquoted, which does not parse: the target is quoted here.
fn statement_text(statement: &datafusion::sql::parser::Statement) -> String {
    use datafusion::sql::parser::Statement;
    match statement {
        Statement::CopyTo(copy) => {
            let mut quoted = copy.clone();
            quoted.target = format!("'{}'", copy.target.replace('\'', "''"));
            quoted.to_string()
        }
        other => other.to_string(),
    }
}

/// Whether `sql` holds no statement (blank, or comments only); false if it does not
/// parse, so that the error is reported where it is planned.
pub fn no_statement(sql: &str) -> bool {
    // Tokens, not a parse: parsing a deep statement is the cost `too_deep` guards
    // (48 nested `ARRAY[` parsed for minutes), and blanks, comments and semicolons are
    // tokens of their own.
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    // A text of too many tokens to tokenize whole is a statement its planning refuses.
    if crate::input::text::too_many_tokens(sql) {
        return false;
    }
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .is_ok_and(|tokens| {
            tokens
                .iter()
                .all(|t| matches!(t, Token::Whitespace(_) | Token::SemiColon | Token::EOF))
        })
}

/// Runs a planned query to completion.
pub async fn collect(df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema: SchemaRef = df.schema().inner().clone();
    let batches = df.collect().await?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    Ok((schema, batches))
}

pub fn truncate(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        one_line.chars().take(n).collect::<String>() + "…"
    }
}

/// Names the SQL text may refer to: a cheap superset from its identifiers.
struct Wanted {
    words: Option<BTreeSet<String>>,
}

impl Wanted {
    fn new(register: &Register<'_>, is_stored: &dyn Fn(&str) -> bool) -> Wanted {
        let words = match register {
            Register::All => None,
            Register::For(sql) => {
                let lower = sql.to_ascii_lowercase();
                let mut words: BTreeSet<String> = lower
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
                // Catalogue queries see everything.
                if words.contains("information_schema") || words.contains("show") {
                    return Wanted { words: None };
                }
                for (view, _, tables) in VIEWS {
                    if words.contains(view) && !is_stored(view) {
                        words.extend(tables.iter().map(|t| t.to_string()));
                    }
                }
                Some(words)
            }
        };
        Wanted { words }
    }

    fn table(&self, name: &str) -> bool {
        self.words
            .as_ref()
            .is_none_or(|w| w.contains(&name.to_ascii_lowercase()))
    }

    fn view(&self, name: &str) -> bool {
        self.table(name)
    }
}

/// The local path a statement's URL writes to, read as DataFusion reads it
/// (`file:/a`, `file://localhost/a`, %-escapes, a plain path), so that no spelling
/// of a path inside the warehouse slips past the check.
fn local_path(url: &str) -> Result<std::path::PathBuf> {
    // A plain path is the file it names (DataFusion would read `[1]` as a pattern).
    let scheme = url.split_once(':').map(|(s, _)| s);
    let is_url = scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !is_url || std::path::Path::new(url).is_absolute() {
        let mut path = std::path::absolute(url)
            .map_err(|e| Error::io(format!("`{url}`: cannot resolve"), e))?;
        // A folder is named with its separator, as DataFusion's URL of it ends in `/`
        // (through a link, the folder it points to).
        if path.is_dir() {
            path.push("");
        }
        return Ok(path);
    }
    let parsed = datafusion::datasource::listing::ListingTableUrl::parse(url)?;
    if parsed.scheme() != "file" {
        return Err(Error::Query(format!(
            "`{url}`: cxr writes only to local files"
        )));
    }
    parsed
        .get_url()
        .to_file_path()
        .map_err(|_| Error::Query(format!("`{url}`: not a local file path")))
}

/// Clauses DataFusion parses and then ignores, refused rather than answered as if
/// they were not there: `TABLESAMPLE` (the whole table was counted) and `FOR
/// UPDATE`/`FOR SHARE` (the warehouse has no locks to take).
pub fn refuse_ignored_clauses(
    statement: &datafusion::sql::sqlparser::ast::Statement,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Query, TableFactor, Visit, Visitor};
    use std::ops::ControlFlow;
    struct Finder;
    impl Visitor for Finder {
        type Break = &'static str;
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<&'static str> {
            if !query.locks.is_empty() {
                return ControlFlow::Break(
                    "FOR UPDATE and FOR SHARE are not supported: the warehouse is read-only and has no row locks",
                );
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, table: &TableFactor) -> ControlFlow<&'static str> {
            if let TableFactor::Table {
                sample: Some(_), ..
            } = table
            {
                return ControlFlow::Break(
                    "TABLESAMPLE is not supported (it would read the whole table); sample with ORDER BY random() LIMIT n",
                );
            }
            ControlFlow::Continue(())
        }
    }
    match statement.visit(&mut Finder) {
        ControlFlow::Break(why) => Err(Error::Query(why.into())),
        ControlFlow::Continue(()) => Ok(()),
    }
}
