//! `cxr export`: Parquet for downstream tools — training manifests, hive-partitioned
//! datasets, the whole warehouse as plain files.

use std::path::PathBuf;

use clap::Args;

use crate::cli::AnalysisArgs;
use crate::error::{Error, Result};
use crate::export::Spec;
use crate::sql::{Register, Warehouse};

/// How an export gives its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetsForm {
    /// One `targets` list column.
    List,
    /// The list and one named Float32 column per finding.
    Wide,
}

/// Arguments of `cxr export`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cxr export --view PA --first-study --image-root /data/images-224 --out pa.parquet\n  cxr export --partition-by split --out dataset/\n  cxr export --tables /tmp/warehouse-parquet",
    // An export is Parquet, every row: the result-printing flags are refused, so
    // help does not offer them.
    mut_arg("format", |a| a.hide(true)),
    mut_arg("max_rows", |a| a.hide(true)),
    mut_arg("out", |a| a.help("The Parquet file (FILE.parquet) or, with --partition-by, the folder to write"))
)]
pub struct ExportCmd {
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// A query returning image_index that selects the images (instead of cohort flags).
    #[arg(long = "sql", value_name = "QUERY")]
    pub query: Option<String>,
    /// Adds a `path` column: DIR joined with the image file name.
    #[arg(long, value_name = "DIR", value_parser = not_empty)]
    pub image_root: Option<String>,
    /// Adds the pixel statistics columns.
    #[arg(long)]
    pub with_pixels: bool,
    /// Hive-style directories by this column (`split=test/part-0.parquet`).
    #[arg(long, value_name = "COL")]
    pub partition_by: Option<String>,
    /// zstd, zstd(N), snappy or none.
    #[arg(long, default_value = "zstd(3)")]
    pub compression: String,
    /// Rows per row group (at least 1).
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    pub row_group_size: u64,
    /// Sort the rows by this column (default: patient_id, follow_up).
    #[arg(long, value_name = "COL")]
    pub sort_by: Option<String>,
    /// Replace an existing output: a file, or a folder cxr exported.
    #[arg(long)]
    pub overwrite: bool,
    /// Also give boxes scaled to images of this side (by the 1024-px originals of NIH,
    /// RSNA and SIIM, by each image's measured size where `ingest --images` measured it).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub box_size: Option<u32>,
    /// `list`: the `targets` list only; `wide`: also one Float32 column per finding,
    /// named as the finding.
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        value_name = "FORM",
        default_value = "list"
    )]
    pub targets: TargetsForm,
    /// Export every warehouse table as plain Parquet into DIR instead.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["query", "partition_by", "image_root", "with_pixels", "sort_by", "targets"])]
    pub tables: Option<PathBuf>,
}

/// `--image-root ''` joined `/` to every file name: paths at the filesystem's root.
fn not_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("an empty folder name would make every path start at the filesystem's root; give a folder (`.` for the current one)".into())
    } else {
        Ok(text.to_string())
    }
}

impl ExportCmd {
    pub(crate) fn spec(&self) -> Result<Spec> {
        Ok(Spec {
            partition_by: self.partition_by.clone(),
            compression: crate::warehouse::parquet::parse_compression(&self.compression)?,
            row_group_size: self.row_group_size as usize,
            overwrite: self.overwrite,
            wide_targets: self.targets == TargetsForm::Wide,
        })
    }
}

/// Runs `cxr export`.
pub async fn run(cmd: ExportCmd) -> Result<()> {
    let spec = cmd.spec()?;
    if cmd.common.output.format.is_some() {
        return Err(Error::Usage(
            "cxr export writes Parquet; --format does not apply (use cxr cohort --format)".into(),
        ));
    }
    if cmd.common.output.max_rows.is_some() {
        return Err(Error::Usage(
            "cxr export writes every row; --max-rows does not apply (use cxr cohort --max-rows)"
                .into(),
        ));
    }
    if cmd.query.is_some() && !cmd.common.cohort.is_empty() {
        return Err(Error::Usage(
            "--sql selects the images itself; it cannot be combined with cohort flags".into(),
        ));
    }
    if cmd.tables.is_some()
        && (!cmd.common.cohort.is_empty()
            || cmd.common.output.out.is_some()
            || cmd.common.show_sql
            || cmd.box_size.is_some())
    {
        return Err(Error::Usage(
            "--tables DIR copies every table whole: it takes no cohort flags, --out, --show-sql or --box-size".into(),
        ));
    }
    let wh = Warehouse::open(&cmd.common.warehouse.path(), Register::All).await?;
    if let Some(dir) = &cmd.tables {
        let t = std::time::Instant::now();
        let n = crate::export::tables(&wh.snapshot, dir, cmd.overwrite, &spec.options(Vec::new()))?;
        crate::trace("copy the tables", t);
        say!("exported {n} tables to {}", dir.display());
        return Ok(());
    }
    // --show-sql writes nothing, so it needs no --out.
    let out = match (&cmd.common.output.out, cmd.common.show_sql) {
        (Some(o), _) => o.clone(),
        (None, true) => PathBuf::new(),
        (None, false) => {
            return Err(Error::Usage(
                "cxr export needs --out FILE.parquet or DIR".into(),
            ));
        }
    };
    if out
        .extension()
        .is_some_and(|e| !e.eq_ignore_ascii_case("parquet"))
    {
        return Err(Error::Usage(format!(
            "--out {}: exports are Parquet; name a .parquet file or a directory",
            out.display()
        )));
    }
    let nih = !cmd.common.cohort.across_datasets();
    if !nih && (cmd.query.is_some() || cmd.sort_by.is_some()) {
        return Err(Error::Usage(
            "--dataset exports a cohort across datasets, sorted by dataset and image_id: --sql and --sort-by apply to NIH exports only".into(),
        ));
    }
    if nih && cmd.box_size.is_some() {
        return Err(Error::Usage(
            "--box-size scales the boxes of a cross-dataset manifest: add --dataset".into(),
        ));
    }
    if nih && wh.has_table("splits") {
        say!("cxr: note: the `split` column comes from the `splits` table written by `cxr split`");
    }
    if cmd.with_pixels && !wh.has_keyed_pixel_stats().await? {
        return Err(Error::Usage(
            "--with-pixels: this warehouse has no pixel statistics (or only ones an older cxr wrote); run `cxr ingest --images ...`".into(),
        ));
    }
    let (sql, manifest) = manifest_sql(&cmd, &wh).await?;
    if cmd.common.show_sql {
        return crate::output::print_sql(&sql);
    }
    if !nih {
        note_split_origins(&wh, &manifest.scope.datasets).await?;
    }
    let params = cmd.common.cohort.default_params()?;
    let done = crate::export::run(&wh, &spec, &sql, &params, &out, &manifest)
        .await
        .map_err(|e| cmd.common.cohort.blame_predicate(e))?;
    report(&cmd, &done, &out);
    Ok(())
}

/// Says where the `split` column of a manifest across datasets comes from when `cxr
/// split` made some of it, and when it mixes such a split with some datasets' own (the
/// same name, `train`, may then mean two different things in one file).
async fn note_split_origins(wh: &Warehouse, asked: &[String]) -> Result<()> {
    let mut made: Vec<String> = Vec::new();
    if wh.has_table("splits") {
        made.push("nih".into());
    }
    if wh.has_table("dataset_splits") {
        wh.register(Register::For("dataset_splits")).await?;
        made.extend(
            wh.query("SELECT DISTINCT dataset FROM dataset_splits", &[])
                .await?
                .required_strings("dataset")?,
        );
    }
    if made.is_empty() {
        return Ok(());
    }
    let datasets = if asked.is_empty() {
        wh.register(Register::For("datasets")).await?;
        wh.query("SELECT dataset FROM datasets ORDER BY dataset", &[])
            .await?
            .required_strings("dataset")?
    } else {
        asked.to_vec()
    };
    let (ours, theirs): (Vec<&String>, Vec<&String>) =
        datasets.iter().partition(|d| made.contains(d));
    let names = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    if !ours.is_empty() && theirs.is_empty() {
        say!(
            "cxr: note: the `split` column comes from the split made by `cxr split` ({})",
            names(&ours)
        );
    } else if !ours.is_empty() {
        say!(
            "cxr: note: the `split` column mixes a split made by `cxr split` ({}) with the datasets' own ({}); `cxr split --dataset {}` makes one split over all of them",
            names(&ours),
            names(&theirs),
            datasets.join(",")
        );
    }
    Ok(())
}

/// What was exported, and a note when a narrowing cohort matched nothing.
fn report(cmd: &ExportCmd, done: &crate::export::Summary, out: &std::path::Path) {
    say!(
        "exported {} to {} ({} file{})",
        crate::output::rows(done.rows),
        out.display(),
        done.files,
        if done.files == 1 { "" } else { "s" }
    );
    if done.rows == 0 && cmd.query.is_some() {
        say!(
            "cxr: note: --sql selects no image of the warehouse (its image_index values match none)"
        );
    } else if done.rows == 0 && cmd.common.cohort.narrows() {
        say!("cxr: note: {}", cmd.common.cohort.nothing_matches());
    }
}

/// The SQL of the manifest of `cmd` (the cohort's rows as their query), and what it
/// adds to the cohort, its columns checked. The cohort
/// builder's downloads use it too.
pub(crate) async fn manifest_sql(
    cmd: &ExportCmd,
    wh: &Warehouse,
) -> Result<(String, crate::export::Manifest)> {
    let avail = crate::cohort::Available::for_cohort(wh, &cmd.common.cohort).await?;
    cmd.common.cohort.check_predicate(wh, &avail).await?;
    // The cohort's rows as their query, not the view: the SQL recorded in the file
    // (`cxr.query`) and printed by `--show-sql` runs in `cxr sql`.
    let avail = avail.inline();
    let manifest = crate::export::Manifest {
        scope: avail.scope.clone(),
        query: cmd.query.clone(),
        image_root: cmd.image_root.clone(),
        box_size: cmd.box_size,
        measured_sizes: wh.has_keyed_pixel_stats().await?,
        with_pixels: cmd.with_pixels,
        sort_by: cmd.sort_by.clone(),
    };
    let cohort = cmd.common.cohort.images_sql(&avail)?;
    let sql = manifest.sql(&cohort, &avail.rows)?;
    if !cmd.common.show_sql {
        let params = cmd.common.cohort.default_params()?;
        manifest
            .check_columns(wh, &cohort, &avail.rows, &params)
            .await?;
    }
    wh.register(Register::For(&sql)).await?;
    Ok((sql, manifest))
}
