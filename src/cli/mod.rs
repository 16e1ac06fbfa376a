//! Command-line definitions (clap derive) and dispatch: one module per subcommand.

pub mod agree;
pub mod cohort;
pub mod cooccur;
pub mod export;
pub mod followup;
pub mod ingest;
pub mod inspect;
pub mod plot;
pub mod plot_boxes;
pub mod run;
pub mod serve;
pub mod shell;
pub mod split;
pub mod sql;
pub mod synth;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};
use crate::output::Format;

/// Parses a command line. A negative number is taken as the value of the flag before
/// it, so `--min-studies -1` is refused as a value ("invalid value '-1'") rather than
/// as an unknown flag.
pub fn parse<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    fn negatives(command: clap::Command) -> clap::Command {
        command
            .mut_args(|a| {
                if a.get_action().takes_values() {
                    a.allow_negative_numbers(true)
                } else {
                    a
                }
            })
            .mut_subcommands(negatives)
    }
    let mut command = plot_flags(negatives(Cli::command()));
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// `plot` takes the analysis flags but writes a picture: its help says what `--out`
/// takes and leaves out the result flags it refuses (`--format`, `--max-rows`).
fn plot_flags(command: clap::Command) -> clap::Command {
    command.mut_subcommand("plot", |plot| {
        plot.mut_arg("format", |a| a.hide(true))
            .mut_arg("max_rows", |a| a.hide(true))
            .mut_arg("out", |a| a.help("Write the plot to FILE (.svg or .png)"))
    })
}

/// clap's error text with Rust's number-parsing messages in words.
pub fn plain_clap_error(text: &str) -> String {
    const WORDS: [(&str, &str); 8] = [
        ("invalid digit found in string", "not a whole number"),
        ("invalid float literal", "not a number"),
        (
            "cannot parse float from empty string",
            "empty; a number is needed",
        ),
        (
            "cannot parse integer from empty string",
            "empty; a whole number is needed",
        ),
        ("number too large to fit in target type", "too large"),
        (
            "is not in 0..=4294967295",
            "is not a whole number from 0 to 4,294,967,295",
        ),
        (
            "is not in 0..=18446744073709551615",
            "is not a whole number from 0 to 18,446,744,073,709,551,615",
        ),
        (
            "is not in 1..18446744073709551615",
            "is not a whole number of 1 or more",
        ),
    ];
    WORDS
        .iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

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
    /// Build the Parquet warehouse from NIH's CSVs (shipped in data/) and other datasets' files.
    Ingest(ingest::IngestArgs),
    /// Run SQL over the warehouse tables and views.
    Sql(sql::SqlArgs),
    /// Run a saved, parameterised query from queries/.
    Run(run::RunArgs),
    /// Generate synthetic image archives (tests, benchmarks) or the shipped sample.
    Synth(synth::SynthArgs),
    /// The images of a cohort, or a summary of it.
    Cohort(cohort::CohortCmd),
    /// The finding co-occurrence matrix of a cohort (NIH 14 × 14; across datasets, the 18 findings).
    Cooccur(cooccur::CooccurCmd),
    /// Patient timelines, per-finding longitudinal statistics, transitions.
    Followup(followup::FollowupCmd),
    /// Plots: co-occurrence heatmap, finding prevalence, age by sex, pixel means.
    Plot(plot::PlotCmd),
    /// Parquet for downstream tools: training manifests, partitioned datasets, tables.
    Export(export::ExportCmd),
    /// Show a Parquet file's schema, row groups and provenance metadata.
    Inspect(inspect::InspectCmd),
    /// Patient-level splits: official, or random and reproducible, optionally stratified.
    Split(split::SplitCmd),
    /// Agreement between label sources (Cohen's kappa) or readers (Fleiss' kappa).
    Agree(agree::AgreeCmd),
    /// Interactive SQL shell over the warehouse.
    Shell(shell::ShellArgs),
    /// Serve the warehouse over the PostgreSQL wire protocol (psql, JDBC, pandas), and
    /// with --http the cohort builder page for the browser.
    Serve(serve::ServeArgs),
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
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Output format [default: table on a terminal, csv otherwise]
    #[arg(long, short = 'f', value_enum, ignore_case = true)]
    pub format: Option<Format>,
    /// Write the full result to FILE (.parquet, .csv, .json, .ndjson) instead of printing it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Rows shown by the table format (0 for all) [default: 40]; the other formats print every row and refuse it, as `--out` does.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
}

impl OutputArgs {
    /// Rows the table format shows.
    pub fn max_rows(&self) -> usize {
        self.max_rows.unwrap_or(40)
    }

    /// Refuses the output flags for a command (or mode) that prints or writes no
    /// query result: they would be silently ignored.
    pub fn refuse(&self, what: &str) -> Result<()> {
        let given: Vec<&str> = [
            ("--format", self.format.is_some()),
            ("--out", self.out.is_some()),
            ("--max-rows", self.max_rows.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "{what} does not use {}",
            given.join(", ")
        )))
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // The shell cancels a running query on Ctrl-C; the server drains and stops.
    if !matches!(cli.command, Command::Shell(_) | Command::Serve(_)) {
        exit_on_interrupt();
    }
    let start = std::time::Instant::now();
    let result = match cli.command {
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
        Command::Inspect(a) => inspect::run(a),
        Command::Split(a) => block_on(split::run(a)),
        Command::Agree(a) => block_on(agree::run(a)),
        Command::Serve(a) => block_on(serve::run(a)),
    };
    crate::trace("the whole command", start);
    result
}

/// Ctrl-C ends the process at once with exit code 130. Nothing is lost: every
/// write is to a temporary name or a staging directory that only a rename makes
/// visible, and the next writer clears what is left. (The shell handles Ctrl-C
/// itself: it cancels the running query.)
fn exit_on_interrupt() {
    extern "C" fn on_sigint(_: libc::c_int) {
        const MSG: &[u8] = b"cxr: interrupted\n";
        // Only async-signal-safe calls here.
        unsafe {
            libc::write(2, MSG.as_ptr().cast(), MSG.len());
            libc::_exit(130);
        }
    }
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: installs a handler that calls only async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

pub use crate::input::text::STACK_BYTES;

/// A multi-threaded tokio runtime for the query engine.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::input::text::STACK_BYTES)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

/// Runs a future on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    runtime()?.block_on(f)
}

/// The command line with `cxr sql`'s SQL moved behind `--` when it starts with an SQL
/// comment (`-- the darkest images ...`): clap would take it for an unknown flag. Any
/// other argument that starts with `-` is still a flag, so a mistyped flag is named
/// in the error.
pub fn sql_comment_last(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let is_sql = args.get(1).is_some_and(|a| a == "sql");
    let comment = |a: &std::ffi::OsString| {
        a.to_str().is_some_and(|s| {
            s.strip_prefix("--")
                .is_some_and(|rest| rest.starts_with(char::is_whitespace))
        })
    };
    if is_sql
        && !args.iter().any(|a| a == "--")
        && let Some(at) = args.iter().position(comment)
    {
        let sql = args.remove(at);
        args.push("--".into());
        args.push(sql);
    }
    args
}

/// Prints every result, or writes the one result to `--out`; returns the rows of
/// the last.
/// Refuses a result with two columns of one name (`a.image_index, b.image_index` of
/// a join): a Parquet file keeps one of them when read back, a JSON object one key.
pub fn refuse_repeated_names(df: &datafusion::prelude::DataFrame) -> Result<()> {
    let fields = df.schema().fields();
    for (k, f) in fields.iter().enumerate() {
        if fields[..k].iter().any(|g| g.name() == f.name()) {
            return Err(Error::Query(format!(
                "two result columns are named `{}`; rename one with AS",
                f.name()
            )));
        }
    }
    Ok(())
}

/// Plans and prints the statements of `sql` one at a time, as psql runs a script:
/// the plans of a whole script held at once took about 40 KB each (half a million
/// `SELECT 1;` took 17 GB). One statement is [`emit`]ted as it is, to `--out` too.
pub async fn emit_script(
    wh: &crate::sql::Warehouse,
    sql: &str,
    allow_write: bool,
    params: &[(String, datafusion::scalar::ScalarValue)],
    out: &OutputArgs,
) -> Result<crate::output::Tally> {
    let statements: Vec<&str> = crate::input::text::split_statements(sql)
        .into_iter()
        .filter(|s| !crate::sql::no_statement(s))
        .collect();
    if statements.len() < 2 {
        return emit(wh, wh.plan(sql, allow_write, params).await?, out).await;
    }
    if out.out.is_some() {
        return Err(Error::Usage(format!(
            "--out writes one result, but the SQL has {} statements",
            statements.len()
        )));
    }
    let mut tally = crate::output::Tally::default();
    for statement in statements {
        // The parser counts lines from the statement's start; the user counts them
        // from the script's (counted on an error only: per statement, the counting
        // of every line before it grew with the square of a long script).
        let start = statement.as_ptr() as usize - sql.as_ptr() as usize;
        let frames = wh
            .plan(statement, allow_write, params)
            .await
            .map_err(|e| in_script_lines(e, sql[..start].matches('\n').count()))?;
        tally = emit(wh, frames, out).await?;
    }
    Ok(tally)
}

/// A parse error of one statement of a script, its `Line: N` counted from the
/// script's first line.
fn in_script_lines(error: Error, lines_before: usize) -> Error {
    let Error::Query(text) = error else {
        return error;
    };
    const MARK: &str = "Line: ";
    let mut shifted = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(MARK) {
        let digits = rest[at + MARK.len()..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let number = &rest[at + MARK.len()..at + MARK.len() + digits];
        shifted.push_str(&rest[..at + MARK.len()]);
        match number.parse::<usize>() {
            Ok(n) => shifted.push_str(&(n + lines_before).to_string()),
            Err(_) => shifted.push_str(number),
        }
        rest = &rest[at + MARK.len() + digits..];
    }
    shifted.push_str(rest);
    Error::Query(shifted)
}

pub async fn emit(
    wh: &crate::sql::Warehouse,
    frames: Vec<datafusion::prelude::DataFrame>,
    out: &OutputArgs,
) -> Result<crate::output::Tally> {
    let format = out
        .format
        .unwrap_or_else(crate::output::Format::default_for_stdout);
    if out.max_rows.is_some()
        && out.out.is_none()
        && out.format.is_none()
        && format != crate::output::Format::Table
    {
        return Err(Error::Usage(
            "--max-rows limits a table; stdout is not a terminal, so the result prints as CSV \
             with every row (add --format table for a table, or use LIMIT in the SQL)"
                .into(),
        ));
    }
    if out.max_rows.is_some() && (out.out.is_some() || format != crate::output::Format::Table) {
        return Err(Error::Usage(
            "--max-rows limits the rows of a table on the terminal; --out and the other formats \
             give every row (use LIMIT in the SQL)"
                .into(),
        ));
    }
    for df in &frames {
        refuse_repeated_names(df)?;
    }
    if let Some(path) = &out.out {
        crate::warehouse::refuse_inside(&wh.snapshot.root, path, "--out")?;
        crate::warehouse::files::check_file_target(path)?;
        if let Some(f) = out.format
            && crate::output::Format::from_extension(path)? != Some(f)
        {
            return Err(Error::Usage(format!(
                "--format {} and --out {} disagree: the file's extension sets its format",
                f.to_possible_value()
                    .map_or("?".into(), |v| v.get_name().to_string()),
                path.display()
            )));
        }
        let [df]: [datafusion::prelude::DataFrame; 1] =
            frames.try_into().map_err(|f: Vec<_>| {
                Error::Usage(format!(
                    "--out writes one result, but the SQL has {} statements",
                    f.len()
                ))
            })?;
        let t = std::time::Instant::now();
        let tally = crate::output::write_file(df, path).await?;
        crate::trace("run and write", t);
        say!(
            "wrote {} to {}",
            crate::output::rows(tally.rows),
            path.display()
        );
        return Ok(tally);
    }
    let mut tally = crate::output::Tally::default();
    for df in frames {
        tally = crate::output::print_stream(
            df,
            format,
            out.max_rows(),
            crate::output::Asked::CommandLine,
        )
        .await?;
    }
    Ok(tally)
}

/// Flags shared by the analysis commands: the cohort, `--show-sql`, the warehouse
/// and the output.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    #[command(flatten)]
    pub cohort: crate::cohort::CohortArgs,
    /// Print the SQL the command would run (to save or edit) instead of running it.
    #[arg(long, conflicts_with_all = ["out", "format", "max_rows"])]
    pub show_sql: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub output: OutputArgs,
    /// A patient the cohort must have, or the command is refused before it prints
    /// (`followup --patient`): checked on the warehouse the command opens anyway.
    #[arg(skip)]
    pub patient_required: Option<String>,
}

impl AnalysisArgs {
    async fn prepare(
        &self,
        build: impl FnOnce(&str, &crate::cohort::Available) -> Result<String>,
    ) -> Result<(crate::sql::Warehouse, String, crate::cohort::Available)> {
        // Start-up stays short: only what the command's SQL names is registered, and
        // the split names are read only when --split needs them.
        let wh = crate::sql::Warehouse::open(&self.warehouse.path(), crate::sql::Register::For(""))
            .await?;
        let t = std::time::Instant::now();
        self.cohort.check_cohort_file(&wh).await?;
        let mut avail = crate::cohort::Available::for_cohort(&wh, &self.cohort).await?;
        self.cohort.check_predicate(&wh, &avail).await?;
        if self.show_sql {
            avail = avail.inline();
        }
        let sql = build(&self.cohort.images_sql(&avail)?, &avail)?;
        // Said once, after the arguments were checked, and only where a split is read.
        if let Some(note) = avail.split_note().filter(|_| self.cohort.split.is_some()) {
            say!("cxr: note: {note}");
        }
        wh.register(crate::sql::Register::For(&sql)).await?;
        if let Some(p) = self.patient_required.as_ref().filter(|_| !self.show_sql) {
            // The patient's images in the cohort; when none, in the datasets chosen:
            // a patient not there is an error, one the cohort leaves out a note (as
            // any cohort that matches nothing).
            let scope = crate::cohort::CohortArgs {
                datasets: self.cohort.datasets.clone(),
                sources: self.cohort.sources.clone(),
                uncertain: self.cohort.uncertain,
                ..Default::default()
            };
            if !has_patient(&wh, &self.cohort, &avail, p).await? {
                if !self.cohort.narrows() || !has_patient(&wh, &scope, &avail, p).await? {
                    let datasets = match scope.datasets.as_slice() {
                        [] => String::new(),
                        names => format!(" (--dataset {})", names.join(",")),
                    };
                    return Err(crate::Error::Usage(format!(
                        "patient {p} has no images in this warehouse{datasets}"
                    )));
                }
                say!(
                    "cxr: note: no image of patient {p} matches the cohort ({})",
                    self.cohort.describe()
                );
            }
        }
        crate::trace("build the SQL, register its tables", t);
        Ok((wh, sql, avail))
    }

    /// Builds the command's SQL around the cohort (its query, and what the warehouse
    /// has) and runs or prints it.
    pub async fn run(
        self,
        build: impl FnOnce(&str, &crate::cohort::Available) -> Result<String>,
    ) -> Result<()> {
        let (wh, sql, avail) = self.prepare(build).await?;
        if self.show_sql {
            return crate::output::print_sql(&sql);
        }
        let params = self.cohort.default_params()?;
        let ran = async { emit(&wh, wh.plan(&sql, false, &params).await?, &self.output).await };
        let tally = ran.await.map_err(|e| self.cohort.blame_predicate(e))?;
        self.note_if_empty(&wh, &avail, tally).await
    }

    /// Says so on stderr when a narrowing cohort has no image: when nothing was
    /// printed, or every number printed was zero (images without findings have no
    /// co-occurrences), the cohort itself is looked at (an empty answer alone does not
    /// say it: a cohort whose patients have one study each has no follow-up).
    async fn note_if_empty(
        &self,
        wh: &crate::sql::Warehouse,
        avail: &crate::cohort::Available,
        tally: crate::output::Tally,
    ) -> Result<()> {
        if !self.cohort.narrows() || tally.nonzero {
            return Ok(());
        }
        if self.cohort.matches_nothing(wh, avail).await? {
            say!("cxr: note: {}", self.cohort.nothing_matches());
        }
        Ok(())
    }

    /// Whether the cohort has no image (for a command that found nothing to show and
    /// says why): opens the warehouse again, which only the error path pays for.
    pub async fn matches_nothing(&self) -> Result<bool> {
        if !self.cohort.narrows() {
            return Ok(false);
        }
        let wh = crate::sql::Warehouse::open(&self.warehouse.path(), crate::sql::Register::For(""))
            .await?;
        let avail = crate::cohort::Available::for_cohort(&wh, &self.cohort).await?;
        self.cohort.matches_nothing(&wh, &avail).await
    }

    /// Like [`AnalysisArgs::run`] in two steps: `stage` (SQL around the cohort) is
    /// computed once into the in-memory table `name`, which `build`'s SQL reads
    /// several times. `--show-sql` is not served here: the caller prints the one-query
    /// form instead.
    pub async fn run_staged(
        self,
        name: &str,
        stage: impl FnOnce(&str, &crate::cohort::Available) -> Result<String>,
        build: impl FnOnce(&crate::cohort::Available) -> Result<String>,
    ) -> Result<()> {
        let (wh, staged, avail) = self.prepare(stage).await?;
        let params = self.cohort.default_params()?;
        let t = std::time::Instant::now();
        wh.remember(name, &staged, &params)
            .await
            .map_err(|e| self.cohort.blame_predicate(e))?;
        crate::trace("compute the cohort once", t);
        let frames = wh.plan(&build(&avail)?, false, &[]).await?;
        let tally = emit(&wh, frames, &self.output).await?;
        self.note_if_empty(&wh, &avail, tally).await
    }

    /// Builds and runs the command's SQL, returning the result for computing on.
    pub async fn query(
        &self,
        build: impl FnOnce(&str, &crate::cohort::Available) -> Result<String>,
    ) -> Result<crate::sql::Rows> {
        let (wh, sql, _) = self.prepare(build).await?;
        let t = std::time::Instant::now();
        let rows = wh.query(&sql, &self.cohort.default_params()?).await;
        crate::trace("plan and run", t);
        rows.map_err(|e| self.cohort.blame_predicate(e))
    }
}

/// Whether the images of `cohort` hold any of patient `patient`'s.
async fn has_patient(
    wh: &crate::sql::Warehouse,
    cohort: &crate::cohort::CohortArgs,
    avail: &crate::cohort::Available,
    patient: &str,
) -> Result<bool> {
    let probe = format!(
        "WITH cohort AS (\n{}\n)\nSELECT 1 AS found FROM cohort WHERE patient_id = {} LIMIT 1",
        cohort.images_sql(avail)?,
        crate::sql::snippets::quote(patient)
    );
    wh.register(crate::sql::Register::For(&probe)).await?;
    Ok(!wh
        .query(&probe, &cohort.default_params()?)
        .await?
        .is_empty())
}
