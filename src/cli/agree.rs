//! `cxr agree`: agreement between two label sources (Cohen's kappa per finding), or
//! among the readers of a multi-reader dataset (Fleiss' kappa per finding).

use clap::Args;

use crate::cli::WarehouseArg;
use crate::error::{Error, Result};
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr agree`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  cxr agree --a nih_2020 --b google_2019\n  cxr agree --a nih_2017 --b nih_2020\n  cxr agree --a nih_2020 --b google_2019 --view PA --sex F\n  cxr agree --readers vindr"
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
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "NULL".into())
}

/// Runs `cxr agree`.
pub async fn run(cmd: AgreeCmd) -> Result<()> {
    let wh = Warehouse::open(&cmd.warehouse.path(), Register::All).await?;
    let mut t;
    if let Some(d) = &cmd.readers {
        if cmd.cohort.is_xr() || cmd.cohort.narrows() {
            return Err(Error::Usage(
                "--readers compares every image the readers read; cohort flags apply to --a/--b"
                    .into(),
            ));
        }
        let rows = crate::agree::readers(&wh, d).await?;
        t = crate::output::text_table(
            [
                "finding",
                "images",
                "readers",
                "positive_calls",
                "fleiss_kappa",
            ]
            .map(String::from)
            .to_vec(),
        );
        for r in rows {
            t.add_row(vec![
                r.finding,
                r.images.to_string(),
                r.readers.to_string(),
                r.positive_calls.to_string(),
                opt(r.kappa, 4),
            ]);
        }
    } else {
        let (Some(a), Some(b)) = (&cmd.a, &cmd.b) else {
            return Err(Error::Usage(
                "give --a SOURCE --b SOURCE, or --readers DATASET".into(),
            ));
        };
        // The sources compared are --a and --b; --source and --uncertain only say how
        // a finding flag picks the images.
        if (!cmd.cohort.sources.is_empty() || cmd.cohort.uncertain.is_some())
            && !cmd.cohort.reads_findings()
        {
            return Err(Error::Usage(
                "--source and --uncertain say how a finding flag (--with, --any, --without, --no-finding, --where) picks images; without one they change nothing (the sources compared are --a and --b)".into(),
            ));
        }
        let cohort = if cmd.cohort.is_xr() || cmd.cohort.narrows() {
            let mut c = cmd.cohort.clone();
            if !c.is_xr() {
                // Cohort flags alone: every dataset, its default sources.
                c.uncertain = Some(Default::default());
            }
            let avail = crate::cohort::Available::for_cohort(&wh, Some(&c)).await?;
            Some((c.images_sql(&avail)?, c.default_params()?))
        } else {
            None
        };
        let rows = crate::agree::pairwise(
            &wh,
            a,
            b,
            cohort.as_ref().map(|c| c.0.as_str()),
            cohort.as_ref().map_or(&[][..], |c| &c.1),
        )
        .await?;
        if rows.is_empty() {
            return Err(Error::Usage(format!(
                "`{a}` and `{b}` label no image and finding in common"
            )));
        }
        t = crate::output::text_table(
            [
                "finding",
                "n",
                "pos_a",
                "pos_b",
                "both",
                "percent_agreement",
                "kappa",
            ]
            .map(String::from)
            .to_vec(),
        );
        for r in rows {
            let g = r.agreement;
            t.add_row(vec![
                r.finding,
                g.n.to_string(),
                g.pos_a.to_string(),
                g.pos_b.to_string(),
                g.both.to_string(),
                opt(g.percent, 2),
                opt(g.kappa, 4),
            ]);
        }
    }
    crate::output::print_text(&t.to_string())
}
