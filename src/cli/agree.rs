//! `cxr agree`: agreement between two label sources (Cohen's kappa per finding), or
//! among the readers of a multi-reader dataset (Fleiss' kappa per finding).

use clap::Args;

use datafusion::arrow::array::{ArrayRef, RecordBatch};

use crate::cli::{OutputArgs, WarehouseArg};
use crate::error::{Error, Result};
use crate::input::table::{f64s, i64s, text};
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr agree`.
#[derive(Debug, Args)]
#[command(
    mut_arg("cohort", |a| a.help("A saved query returning dataset and image_id: the images compared are limited to its images")),
    after_help = "Examples:\n  cxr agree --a nih_2020 --b google_2019\n  cxr agree --a nih_2017 --b nih_2020\n  cxr agree --a nih_2020 --b google_2019 --view PA --sex F\n\nWith VinDr-CXR ingested (cxr ingest --dataset vindr=train.csv):\n  cxr agree --readers vindr"
)]
pub struct AgreeCmd {
    /// The first label source (e.g. nih_2020).
    #[arg(
        long,
        value_name = "SOURCE",
        requires = "b",
        conflicts_with = "readers"
    )]
    pub a: Option<String>,
    /// The second label source (e.g. google_2019).
    #[arg(long, value_name = "SOURCE", requires = "a")]
    pub b: Option<String>,
    /// The images compared: the cohort flags, across datasets (--dataset, --with,
    /// --sex, ...; a finding flag reads the default sources, or --source).
    #[command(flatten)]
    pub cohort: crate::cohort::CohortArgs,
    /// Fleiss' kappa among the readers of this dataset (vindr).
    #[arg(long, value_name = "DATASET")]
    pub readers: Option<String>,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A result column of counts.
fn counts(values: impl Iterator<Item = u64>) -> ArrayRef {
    i64s(values.map(|v| Some(v as i64)))
}

/// A result column of measures rounded to `digits`, NULL where undefined.
fn measures(values: impl Iterator<Item = Option<f64>>, digits: i32) -> ArrayRef {
    let scale = 10f64.powi(digits);
    f64s(values.map(|v| v.map(|x| (x * scale).round() / scale)))
}

/// Runs `cxr agree`.
pub async fn run(cmd: AgreeCmd) -> Result<()> {
    let wh = Warehouse::open(&cmd.warehouse.path(), Register::All).await?;
    let result = if let Some(d) = &cmd.readers {
        if cmd.cohort.across_datasets() || cmd.cohort.narrows() {
            return Err(Error::Usage(
                "--readers compares every image the readers read; cohort flags apply to --a/--b"
                    .into(),
            ));
        }
        let rows = crate::agree::readers(&wh, d).await?;
        RecordBatch::try_from_iter(vec![
            ("finding", text(rows.iter().map(|r| r.finding.as_str()))),
            ("images", counts(rows.iter().map(|r| r.images))),
            ("readers", counts(rows.iter().map(|r| r.readers))),
            (
                "positive_calls",
                counts(rows.iter().map(|r| r.positive_calls)),
            ),
            ("fleiss_kappa", measures(rows.iter().map(|r| r.kappa), 4)),
        ])?
    } else {
        let (Some(a), Some(b)) = (&cmd.a, &cmd.b) else {
            return Err(Error::Usage(
                "give --a SOURCE --b SOURCE, or --readers DATASET".into(),
            ));
        };
        if a.eq_ignore_ascii_case(b) {
            return Err(Error::Usage(format!(
                "--a and --b are both {a}: a source agrees with itself; compare two sources (e.g. --a nih_2020 --b google_2019)"
            )));
        }
        // The sources compared are --a and --b; --source only says how a finding flag
        // picks the images (--uncertain also says what an uncertain label of --a or
        // --b counts as).
        if !cmd.cohort.sources.is_empty() && !cmd.cohort.reads_findings() {
            return Err(Error::Usage(
                "--source says how a finding flag (--with, --any, --without, --no-finding, --where) picks images; without one it changes nothing (the sources compared are --a and --b)".into(),
            ));
        }
        let cohort = if cmd.cohort.across_datasets() || cmd.cohort.narrows() {
            let mut c = cmd.cohort.clone();
            if !c.across_datasets() {
                // Cohort flags alone: every dataset, its default sources.
                c.uncertain = Some(Default::default());
            }
            c.check_cohort_file(&wh).await?;
            let avail = crate::cohort::Available::for_cohort(&wh, &c).await?;
            Some((c.images_sql(&avail)?, c.default_params()?, c, avail))
        } else {
            None
        };
        let rows = crate::agree::pairwise(
            &wh,
            (a, b),
            cmd.cohort.uncertain.unwrap_or_default(),
            cohort.as_ref().map(|c| c.0.as_str()),
            cohort.as_ref().map_or(&[][..], |c| &c.1),
        )
        .await?;
        let cohort_is_empty = match &cohort {
            Some((_, _, c, avail)) if rows.is_empty() => c.matches_nothing(&wh, avail).await?,
            _ => false,
        };
        if cohort_is_empty {
            say!("cxr: note: {}", cmd.cohort.nothing_matches());
        } else if rows.is_empty() {
            return Err(Error::Usage(format!(
                "`{a}` and `{b}` label no image and finding in common"
            )));
        }
        RecordBatch::try_from_iter(vec![
            ("finding", text(rows.iter().map(|r| r.finding.as_str()))),
            ("n", counts(rows.iter().map(|r| r.agreement.n))),
            ("pos_a", counts(rows.iter().map(|r| r.agreement.pos_a))),
            ("pos_b", counts(rows.iter().map(|r| r.agreement.pos_b))),
            ("both", counts(rows.iter().map(|r| r.agreement.both))),
            (
                "percent_agreement",
                measures(rows.iter().map(|r| r.agreement.percent), 2),
            ),
            ("kappa", measures(rows.iter().map(|r| r.agreement.kappa), 4)),
        ])?
    };
    let frame = wh.ctx.read_batch(result)?;
    crate::cli::emit(&wh, vec![frame], &cmd.output).await?;
    Ok(())
}
