//! Command-line definitions (clap derive) and dispatch: one module per subcommand.

pub mod cohort;
pub mod cooccur;
pub mod export;
pub mod followup;
pub mod ingest;
pub mod plot;
pub mod run;
pub mod shell;
pub mod split;
pub mod sql;
pub mod synth;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::output::Format;

/// cxr: SQL analytics over the NIH ChestX-ray14 metadata and images.
#[derive(Debug, Parser)]
#[command(name = "cxr", version, about, propagate_version = true)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the Parquet warehouse from the NIH CSVs (shipped in data/ by default).
    #[command(
        after_help = "Example:\n  cxr ingest\n  cxr ingest --metadata Data_Entry_2017.csv --warehouse /tmp/wh"
    )]
    Ingest(ingest::IngestArgs),
    /// Run SQL over the warehouse tables and views.
    #[command(
        after_help = "Example:\n  cxr sql \"SELECT label, count(*) AS n FROM findings GROUP BY label ORDER BY n DESC\""
    )]
    Sql(sql::SqlArgs),
    /// Run a saved, parameterised query from queries/.
    #[command(
        after_help = "Example:\n  cxr run --list\n  cxr run cohort --param finding=Effusion --param sex=F"
    )]
    Run(run::RunArgs),
    /// Generate synthetic image archives (tests, benchmarks) or the shipped sample.
    #[command(
        after_help = "Example:\n  cxr synth images --count 1000 --edge-cases --out /tmp/synth.tar\n  cxr ingest --images /tmp/synth.tar"
    )]
    Synth(synth::SynthArgs),
    /// The images of a cohort, or a summary of it.
    #[command(
        after_help = "Example:\n  cxr cohort --with Effusion --without Pneumothorax --sex F --age 40..60 --view PA --summary"
    )]
    Cohort(cohort::CohortCmd),
    /// The 14 × 14 finding co-occurrence matrix of a cohort.
    #[command(after_help = "Example:\n  cxr cooccur --metric lift --view PA")]
    Cooccur(cooccur::CooccurCmd),
    /// Patient timelines, per-finding longitudinal statistics, transitions.
    #[command(
        after_help = "Example:\n  cxr followup --patient 18404\n  cxr followup --transitions"
    )]
    Followup(followup::FollowupCmd),
    /// Plots: co-occurrence heatmap, finding prevalence, age by sex, pixel means.
    #[command(
        after_help = "Example:\n  cxr plot cooccurrence --metric lift --out cooc.svg\n  cxr plot age --with Effusion --out age.png"
    )]
    Plot(plot::PlotCmd),
    /// Parquet for downstream tools: training manifests, partitioned datasets, tables.
    #[command(
        after_help = "Example:\n  cxr export --view PA --first-study --image-root /data/images-224 --out pa.parquet\n  cxr export --partition-by split --out dataset/\n  cxr export --tables /tmp/warehouse-parquet"
    )]
    Export(export::ExportCmd),
    /// Show a Parquet file's schema, row groups and provenance metadata.
    #[command(after_help = "Example:\n  cxr inspect pa.parquet")]
    Inspect(export::InspectCmd),
    /// Patient-level splits: official, or random and reproducible, optionally stratified.
    #[command(
        after_help = "Example:\n  cxr split --seed 7 --fractions 0.7,0.1,0.2 --stratify\n  cxr split --official\n  cxr split --check"
    )]
    Split(split::SplitCmd),
    /// Interactive SQL shell over the warehouse.
    #[command(
        after_help = "Example:\n  cxr shell\n  cxr> \\d images\n  cxr> SELECT count(*) FROM patients;"
    )]
    Shell(shell::ShellArgs),
}

/// Where the warehouse is.
#[derive(Debug, Clone, Args)]
pub struct WarehouseArg {
    /// Warehouse directory [default: $CXR_WAREHOUSE or ./warehouse]
    #[arg(long, short = 'w', value_name = "DIR")]
    pub warehouse: Option<PathBuf>,
}

impl WarehouseArg {
    /// The warehouse directory to use.
    pub fn path(&self) -> PathBuf {
        self.warehouse
            .clone()
            .unwrap_or_else(crate::default_warehouse)
    }
}

/// How query results are printed or written.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format [default: table on a terminal, csv otherwise]
    #[arg(long, short = 'f', value_enum)]
    pub format: Option<Format>,
    /// Write the full result to FILE (.parquet, .csv, .json, .ndjson) instead of printing it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows shown by the table format (0 for all); other formats print every row.
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub max_rows: usize,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(a) => ingest::run(a),
        Command::Sql(a) => block_on(sql::run(a)),
        Command::Run(a) => block_on(run::run(a)),
        Command::Shell(a) => shell::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Cohort(a) => block_on(cohort::run(a)),
        Command::Cooccur(a) => block_on(cooccur::run(a)),
        Command::Followup(a) => block_on(followup::run(a)),
        Command::Export(a) => block_on(export::run(a)),
        Command::Plot(a) => block_on(plot::run(a)),
        Command::Inspect(a) => export::inspect(a),
        Command::Split(a) => block_on(split::run(a)),
    }
}

/// A multi-threaded tokio runtime for the query engine.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    runtime()?.block_on(f)
}

/// Prints every result, or writes the last one to `--out`.
pub async fn emit(frames: Vec<datafusion::prelude::DataFrame>, out: &OutputArgs) -> Result<()> {
    let n = frames.len();
    for (i, df) in frames.into_iter().enumerate() {
        if i + 1 == n
            && let Some(path) = &out.out
        {
            let rows = crate::output::write_file(df, path).await?;
            eprintln!(
                "wrote {} rows to {}",
                crate::output::thousands(rows),
                path.display()
            );
            continue;
        }
        let (schema, batches) = crate::sql::collect(df).await?;
        if schema.fields().is_empty() {
            continue;
        }
        let format = out
            .format
            .unwrap_or_else(crate::output::Format::default_for_stdout);
        crate::output::print_batches(&schema, &batches, format, out.max_rows)?;
    }
    Ok(())
}

/// Flags shared by the analysis commands: the cohort, `--show-sql`, the warehouse
/// and the output.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    #[command(flatten)]
    pub cohort: crate::cohort::CohortArgs,
    /// Print the SQL the command would run (to save or edit) instead of running it.
    #[arg(long)]
    pub show_sql: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl AnalysisArgs {
    async fn prepare(
        &self,
        build: impl FnOnce(&str) -> Result<String>,
    ) -> Result<(crate::sql::Warehouse, String)> {
        let wh =
            crate::sql::Warehouse::open(&self.warehouse.path(), crate::sql::Register::All).await?;
        let avail = crate::cohort::Available::of(&wh)?;
        let sql = build(&self.cohort.images_sql(avail)?)?;
        Ok((wh, sql))
    }

    /// Builds the command's SQL around the cohort and runs or prints it.
    pub async fn run(self, build: impl FnOnce(&str) -> Result<String>) -> Result<()> {
        let (wh, sql) = self.prepare(build).await?;
        if self.show_sql {
            println!("{sql};");
            return Ok(());
        }
        let frames = wh.plan(&sql, false, &self.cohort.default_params()?).await?;
        emit(frames, &self.output).await
    }

    /// Builds and runs the command's SQL, returning the rows as text.
    pub async fn rows(
        &self,
        build: impl FnOnce(&str) -> Result<String>,
    ) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<Vec<String>>)> {
        let (wh, sql) = self.prepare(build).await?;
        let mut frames = wh.plan(&sql, false, &self.cohort.default_params()?).await?;
        let df = frames
            .pop()
            .ok_or_else(|| Error::Query("no statement".into()))?;
        let (schema, batches) = crate::sql::collect(df).await?;
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(crate::output::rows_as_text(b, "")?);
        }
        Ok((schema, rows))
    }
}
