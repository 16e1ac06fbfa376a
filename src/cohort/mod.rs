//! Cohort definitions shared by the analysis and export commands: flags in, one SQL
//! relation of cohort rows out, read from the cross-dataset tables for every
//! dataset (see [`across`]). Without `--dataset`, `--source` or `--uncertain` the
//! cohort is NIH's images, its rows carrying the NIH `images` table's column names.

pub mod across;

use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::findings::{FINDINGS, lookup};
use crate::sql::snippets::{column_name, quote};

/// The cohort flags, the same on every command that takes them.
#[derive(Debug, Clone, Default, Args)]
pub struct CohortArgs {
    /// Images with this finding (repeatable: all must be present).
    #[arg(long = "with", value_name = "LABEL")]
    pub with: Vec<String>,
    /// Images with at least one of these findings (repeatable).
    #[arg(long = "any", value_name = "LABEL")]
    pub any: Vec<String>,
    /// Images without this finding (repeatable).
    #[arg(long = "without", value_name = "LABEL")]
    pub without: Vec<String>,
    /// Images with no finding at all. Across datasets: images the dataset itself
    /// states normal (NIH/CheXpert/MIMIC `No Finding`, PadChest and OpenI `normal`,
    /// VinDr `No finding`) with no label stated positive or uncertain; RSNA and SIIM
    /// make no such statement.
    #[arg(long)]
    pub no_finding: bool,
    /// Age range in years, inclusive: `40..60`, `40..`, `..60`.
    // Hyphen values reach parse_age, which refuses a negative age in words.
    #[arg(long, value_name = "MIN..MAX", allow_hyphen_values = true)]
    pub age: Option<String>,
    /// M or F (also male or female).
    #[arg(long, value_name = "M|F")]
    pub sex: Option<String>,
    /// PA or AP; with --dataset also AP_SUPINE, LATERAL, OTHER, or FRONTAL (PA, AP
    /// and AP_SUPINE).
    #[arg(long, value_name = "VIEW")]
    pub view: Option<String>,
    /// A split name (train_val, test, or one made by `cxr split`).
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// One image per patient: the earliest (by study order) among the selected images.
    #[arg(long)]
    pub first_study: bool,
    /// Only patients with at least N studies in their dataset (all their studies,
    /// whatever the other flags select).
    #[arg(long, value_name = "N")]
    pub min_studies: Option<u32>,
    /// An SQL predicate over the columns of images (and pixel_stats when present).
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: Option<String>,
    /// A saved query returning image_index (with --dataset: dataset and image_id);
    /// the cohort is limited to its images.
    #[arg(long, value_name = "FILE.sql")]
    pub cohort: Option<PathBuf>,
    /// Images of these datasets (comma-separated: nih, chexpert, mimic, padchest,
    /// vindr, rsna, siim, openi). The cohort then reads the cross-dataset tables and
    /// knows the 18 findings of docs/DATASETS.md.
    #[arg(long = "dataset", value_name = "NAMES", value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Labels from these sources only (comma-separated, e.g. chexpert,nih_2017)
    /// [default: every source of each dataset; for NIH the warehouse's own release].
    #[arg(long = "source", value_name = "NAMES", value_delimiter = ',')]
    pub sources: Vec<String>,
    /// What an uncertain label counts as: nan (U-Ignore: unknown, in neither --with
    /// nor --without), positive (U-Ones), negative (U-Zeros), keep (U-MultiClass: as
    /// nan in cohort flags, -1 in exported targets) [default: nan].
    #[arg(long, value_enum, ignore_case = true, value_name = "POLICY")]
    pub uncertain: Option<across::Uncertain>,
}

/// Whether the warehouse has pixel statistics a cohort can join by dataset and image
/// id: a non-empty `pixel_stats` (and, when the cohort's `--where` reads it, one
/// written by a cxr that keys it so).
async fn pixel_stats_keyed(wh: &crate::sql::Warehouse, cohort: &CohortArgs) -> Result<bool> {
    let rows = wh.snapshot.manifest.tables.get("pixel_stats");
    if rows.is_none_or(|n| *n == 0) {
        return Ok(false);
    }
    let reads_pixels = cohort
        .predicate
        .as_deref()
        .is_some_and(mentions_pixel_column);
    Ok(!reads_pixels || wh.has_keyed_pixel_stats().await?)
}

/// What the cohort SQL may join to.
#[derive(Debug, Clone, Default)]
pub struct Available {
    /// The warehouse has a non-empty pixel_stats table keyed by dataset and image.
    pub pixel_stats: bool,
    /// The warehouse has a `splits` table (from `cxr split`): NIH's splits then come
    /// from it.
    pub splits: bool,
    /// The split names a cohort may ask for.
    pub split_names: Vec<String>,
    /// Which images and labels the cohort reads.
    pub scope: across::Scope,
    /// The relation of the scope's rows: the view ([`COHORT_ROWS`]), or its query
    /// inline (`--show-sql`).
    pub rows: String,
    /// The warehouse has `studies` (every study of every dataset, written at ingest).
    pub studies: bool,
    /// The warehouse has the follow-up statistics of whole datasets
    /// (`followup_summary`, `followup_transitions`, written at ingest).
    pub followup_statistics: bool,
}

/// The view of a cohort's rows (all images of its scope).
pub const COHORT_ROWS: &str = "cohort_rows";

impl Available {
    /// Where the splits of the cohort's images come from, when `cxr split` made
    /// them: the note a command reading them prints, or None for the releases' own.
    pub fn split_note(&self) -> Option<&'static str> {
        let scope = &self.scope;
        let has_nih = scope.datasets.is_empty() || scope.datasets.iter().any(|d| d == "nih");
        let nih = if scope.nih_columns {
            self.splits
        } else {
            scope.nih_splits_table && has_nih
        };
        let others = !scope.nih_columns && scope.dataset_splits;
        match (nih, others) {
            (true, false) => Some("splits come from the `splits` table written by `cxr split`"),
            (false, true) => Some(
                "splits come from the `dataset_splits` table written by `cxr split --dataset` (a dataset it did not split keeps its release's own)",
            ),
            (true, true) => Some(
                "NIH's splits come from the `splits` table written by `cxr split`, the other datasets' from the `dataset_splits` table written by `cxr split --dataset` (a dataset it did not split keeps its release's own)",
            ),
            (false, false) => None,
        }
    }

    /// What a cohort reads: the scope, checked against the datasets and sources the
    /// warehouse holds, and the split names when `--split` asks. Registers what it
    /// reads and defines the view of the scope's rows.
    pub async fn for_cohort(wh: &crate::sql::Warehouse, cohort: &CohortArgs) -> Result<Available> {
        if !wh.has_table("dataset_images") {
            return Err(Error::Usage(
                "this warehouse has no cross-dataset tables; run `cxr ingest` again with this cxr"
                    .into(),
            ));
        }
        if cohort.datasets.iter().all(|d| d.trim().is_empty()) && !cohort.datasets.is_empty() {
            return Err(Error::Usage(format!(
                "--dataset needs dataset names (comma-separated): {}",
                across::DATASETS.join(", ")
            )));
        }
        let splits = wh.has_table("splits");
        let pixel_stats = pixel_stats_keyed(wh, cohort).await?;
        let mut scope = cohort.scope(wh, splits);
        scope.image_states = wh.has_column("dataset_images", "positive_findings").await?;
        // Without --dataset the scope is NIH, which every ingest writes: nothing to check.
        let present = if cohort.datasets.is_empty() {
            scope.datasets.clone()
        } else {
            wh.register(crate::sql::Register::For("datasets")).await?;
            wh.query("SELECT dataset FROM datasets ORDER BY dataset", &[])
                .await?
                .required_strings("dataset")?
        };
        let sources = if cohort.sources.is_empty() {
            Vec::new()
        } else {
            // The small `datasets` table lists every source of every dataset.
            wh.register(crate::sql::Register::For("datasets")).await?;
            let rows = wh
                .query(
                    "SELECT dataset, unnest(label_sources) AS source FROM datasets ORDER BY source, dataset",
                    &[],
                )
                .await?;
            rows.required_strings("dataset")?
                .into_iter()
                .zip(rows.required_strings("source")?)
                .collect()
        };
        scope.check(&present, &sources)?;
        // A view, not rows computed ahead: each command's filters then reach the
        // tables, and nothing is held in memory.
        let rows = scope.images_sql();
        wh.register(crate::sql::Register::For(&rows)).await?;
        wh.define_view(COHORT_ROWS, &rows).await?;
        let split_names = if cohort.split.is_some() {
            let sql = format!(
                "SELECT DISTINCT split FROM {COHORT_ROWS} WHERE split IS NOT NULL ORDER BY split"
            );
            wh.query(&sql, &[]).await?.required_strings("split")?
        } else {
            Vec::new()
        };
        Ok(Available {
            pixel_stats,
            splits,
            split_names,
            scope,
            rows: COHORT_ROWS.to_string(),
            studies: wh.has_table("studies"),
            followup_statistics: wh.has_table("followup_summary")
                && wh.has_table("followup_transitions"),
        })
    }

    /// The same, with the cohort's rows as their query rather than the view: SQL to
    /// print (`--show-sql`) and run elsewhere.
    pub fn inline(mut self) -> Available {
        self.rows = format!("(\n{}\n)", self.scope.images_sql());
        self
    }
}

/// A finding of the 14 NIH ones by name.
fn finding(name: &str) -> Result<&'static str> {
    lookup(name).ok_or_else(|| crate::findings::unknown_finding(name, "14 findings", &FINDINGS))
}

/// `--sex`: M or F, also written male or female (any case).
pub fn parse_sex(s: &str) -> Result<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "m" | "male" => Ok("M"),
        "f" | "female" => Ok("F"),
        _ => Err(Error::Usage(format!(
            "--sex `{s}`: expected M or F (male or female)"
        ))),
    }
}

/// Parses `MIN..MAX` with either end optional.
pub fn parse_age(s: &str) -> Result<(Option<i64>, Option<i64>)> {
    let bad = || {
        Error::Usage(format!(
            "--age `{s}`: expected MIN..MAX, MIN.. or ..MAX in years"
        ))
    };
    let (lo, hi) = s.split_once("..").ok_or_else(bad)?;
    let parse = |v: &str| -> Result<Option<i64>> {
        let v = v.trim();
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| bad())
        }
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if lo.is_none() && hi.is_none() {
        // Bounds nothing: it would let through the images of unknown age too, where
        // `0..` keeps only those whose age is known.
        return Err(Error::Usage(format!(
            "--age `{s}` bounds nothing; leave it out for every image, or give `0..` for the images whose age is known"
        )));
    }
    if lo.into_iter().chain(hi).any(|a| a < 0) {
        return Err(Error::Usage(format!(
            "--age `{s}`: ages are whole years, 0 or more"
        )));
    }
    if let (Some(l), Some(h)) = (lo, hi)
        && l > h
    {
        return Err(Error::Usage(format!(
            "--age `{s}`: the range is empty ({l} is above {h})"
        )));
    }
    Ok((lo, hi))
}

impl CohortArgs {
    /// The cohort in a few words, for plot titles: "Effusion, F, PA, age 40..60",
    /// or "all images".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.with.iter().cloned());
        if !self.any.is_empty() {
            parts.push(format!("any of {}", self.any.join("/")));
        }
        parts.extend(self.without.iter().map(|l| format!("no {l}")));
        if self.no_finding {
            parts.push("no finding".into());
        }
        if let Some(s) = &self.sex {
            parts.push(s.to_ascii_uppercase());
        }
        if let Some(v) = &self.view {
            parts.push(v.to_ascii_uppercase());
        }
        if let Some(a) = &self.age {
            parts.push(format!("age {a}"));
        }
        if let Some(s) = &self.split {
            parts.push(format!("split {s}"));
        }
        if self.first_study {
            parts.push("first study".into());
        }
        if let Some(n) = self.min_studies {
            parts.push(format!("≥ {n} studies"));
        }
        if let Some(p) = &self.predicate {
            parts.push(format!("where {p}"));
        }
        if !self.datasets.is_empty() {
            parts.push(self.datasets.join("+"));
        }
        if !self.sources.is_empty() {
            parts.push(format!("labels by {}", self.sources.join("+")));
        }
        if let Some(u) = self.uncertain {
            parts.push(format!("uncertain as {}", u.name()));
        }
        if let Some(c) = &self.cohort {
            parts.push(c.file_name().map_or_else(
                || c.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ));
        }
        if parts.is_empty() {
            "all images".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether no flag narrows the cohort and it is NIH's images (no `--dataset`,
    /// `--source` or `--uncertain`).
    pub fn is_empty(&self) -> bool {
        !self.narrows() && !self.across_datasets()
    }

    /// Whether a flag reads the images' findings (so that --source and --uncertain,
    /// which say how findings are read, change the cohort).
    pub fn reads_findings(&self) -> bool {
        !(self.with.is_empty()
            && self.any.is_empty()
            && self.without.is_empty()
            && !self.no_finding
            && self.predicate.is_none()
            && self.cohort.is_none())
    }

    /// Whether a flag selects some images rather than all (of the datasets chosen).
    pub fn narrows(&self) -> bool {
        !(self.with.is_empty()
            && self.any.is_empty()
            && self.without.is_empty()
            && !self.no_finding
            && self.age.is_none()
            && self.sex.is_none()
            && self.view.is_none()
            && self.split.is_none()
            && !self.first_study
            && self.min_studies.is_none()
            && self.predicate.is_none()
            && self.cohort.is_none())
    }

    /// Whether the cohort reads the cross-dataset tables.
    pub fn across_datasets(&self) -> bool {
        !self.datasets.is_empty() || !self.sources.is_empty() || self.uncertain.is_some()
    }

    /// The scope these flags ask for: without `--dataset`, `--source` or
    /// `--uncertain`, NIH's images with NIH's column names.
    pub fn scope(&self, wh: &crate::sql::Warehouse, splits: bool) -> across::Scope {
        let nih_columns = !self.across_datasets();
        let datasets = if nih_columns {
            vec!["nih".to_string()]
        } else {
            self.datasets
                .iter()
                .map(|d| crate::datasets::dataset_name(d))
                .filter(|d| !d.is_empty())
                .collect()
        };
        across::Scope {
            datasets,
            sources: self
                .sources
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            nih_primary: format!("nih_{}", wh.snapshot.manifest.metadata_revision),
            uncertain: self.uncertain.unwrap_or_default(),
            nih_splits_table: splits,
            dataset_splits: wh.has_table("dataset_splits"),
            image_states: false,
            nih_columns,
            images_columns: nih_columns
                && self
                    .predicate
                    .as_deref()
                    .is_some_and(|p| mentions_any(p, &across::IMAGES_ONLY_COLUMNS)),
        }
    }

    /// The SQL predicates over `i` (the scope's rows) and `p` (pixel_stats).
    fn predicates(&self, avail: &Available) -> Result<Vec<String>> {
        let mut w = Vec::new();
        let nih = avail.scope.nih_columns;
        // The Boolean finding columns: cheaper than searching `labels`.
        let col = |l: &str| -> Result<String> {
            let f = if nih {
                finding(l)?
            } else {
                across::finding(l)?
            };
            Ok(format!("i.{}", column_name(f)))
        };
        for l in &self.with {
            w.push(col(l)?);
        }
        if !self.any.is_empty() {
            let any: Vec<String> = self.any.iter().map(|l| col(l)).collect::<Result<_>>()?;
            w.push(format!("({})", any.join(" OR ")));
        }
        for l in &self.without {
            w.push(format!("NOT {}", col(l)?));
        }
        if self.no_finding {
            // Across datasets: stated normal by the dataset (see `across::Scope::images_sql`).
            w.push("i.no_finding".into());
        }
        if let Some(a) = &self.age {
            match parse_age(a)? {
                (Some(lo), Some(hi)) => w.push(format!("i.age BETWEEN {lo} AND {hi}")),
                (Some(lo), None) => w.push(format!("i.age >= {lo}")),
                (None, Some(hi)) => w.push(format!("i.age <= {hi}")),
                (None, None) => {}
            }
        }
        if let Some(s) = &self.sex {
            w.push(format!("i.sex = {}", quote(parse_sex(s)?)));
        }
        if let Some(v) = &self.view {
            w.push(view_predicate(v, nih)?);
        }
        if let Some(s) = &self.split {
            if !avail.split_names.iter().any(|n| n == s) {
                let from = if nih && avail.splits {
                    "the splits table (cxr split)"
                } else if nih {
                    "the official lists"
                } else if avail.scope.dataset_splits {
                    "the dataset_splits table (cxr split --dataset), else the datasets' own"
                } else {
                    "the datasets' own splits"
                };
                // NIH's own cohorts do not read `cxr split --dataset`'s table.
                let hint = if nih && avail.scope.dataset_splits {
                    "; `cxr split --dataset` splits are read by cohorts across datasets: add --dataset"
                } else {
                    ""
                };
                return Err(Error::Usage(format!(
                    "--split `{s}`: no such split in {from}; the splits are: {}{hint}",
                    if avail.split_names.is_empty() {
                        "(none)".to_string()
                    } else {
                        avail.split_names.join(", ")
                    }
                )));
            }
            w.push(format!("i.split = {}", quote(s)));
        }
        // Every patient has a study, and an image without a patient id is a patient of
        // its own with one study: below 2 nothing is left out.
        if let Some(n) = self.min_studies.filter(|&n| n >= 2) {
            // A study is a study id (an image without one is its own study); the
            // patient is compared as text, as `dataset_images` holds it.
            w.push(format!(
                "EXISTS (SELECT 1 FROM (SELECT dataset, patient_id FROM dataset_images WHERE patient_id IS NOT NULL{datasets} GROUP BY dataset, patient_id HAVING COUNT(DISTINCT COALESCE(study_id, image_id)) >= {n}) AS ms WHERE ms.dataset = i.dataset AND ms.patient_id = CAST(i.patient_id AS VARCHAR))",
                datasets = avail.scope.datasets_filter(" AND ")
            ));
        }
        if let Some(file) = &self.cohort {
            let q = crate::sql::params::QueryFile::load(file)?;
            if q.params.iter().any(|p| p.default.is_none()) {
                return Err(Error::Usage(format!(
                    "--cohort {}: every parameter needs a default to be used as a cohort\n{}",
                    file.display(),
                    q.usage()
                )));
            }
            let body =
                crate::sql::snippets::statement(&q.sql, &format!("--cohort {}", file.display()))?;
            w.push(if nih {
                // Qualified: a file returning other columns must not see the outer
                // `i.image_index` (a correlated subquery DataFusion cannot run).
                format!("i.image_index IN (SELECT saved.image_index FROM ({body}) AS saved)")
            } else {
                format!(
                    "EXISTS (SELECT 1 FROM ({body}) AS saved WHERE saved.dataset = i.dataset AND saved.image_id = i.image_id)"
                )
            });
        }
        if let Some(p) = &self.predicate {
            if !avail.pixel_stats && mentions_pixel_column(p) {
                return Err(Error::Usage(format!(
                    "--where `{p}` uses pixel statistics, but this warehouse has none (or only ones an older cxr wrote); run `cxr ingest --images ...`"
                )));
            }
            w.push(crate::sql::snippets::predicate(p)?);
        }
        Ok(w)
    }

    /// pixel_stats is joined only when a --where predicate may read it.
    fn joins_pixel_stats(&self, avail: &Available) -> bool {
        avail.pixel_stats && self.predicate.as_deref().is_some_and(mentions_pixel_column)
    }

    /// A query returning the cohort's rows: the scope's rows
    /// ([`across::Scope::images_sql`]) filtered, and with `--first-study` each
    /// patient's earliest study (by `study_order`; an image without a patient is its
    /// own).
    pub fn images_sql(&self, avail: &Available) -> Result<String> {
        let preds = self.predicates(avail)?;
        let mut filter = if preds.is_empty() {
            String::new()
        } else {
            format!("\n  WHERE {}", preds.join("\n    AND "))
        };
        if self.joins_pixel_stats(avail) {
            filter.insert_str(
                0,
                "\n  LEFT JOIN pixel_stats p ON p.dataset = i.dataset AND p.image_id = i.image_id",
            );
        }
        let rows = &avail.rows;
        if self.first_study {
            // The earliest image per patient: the smallest image_rank per patient_rank
            // (ranks written at ingest in patient, study order, study id, image id order).
            Ok(format!(
                "SELECT i.* FROM {rows} AS i{filter}\n  {and} i.image_rank IN (\n    SELECT MIN(i.image_rank) FROM {rows} AS i{filter}\n    GROUP BY i.patient_rank\n  )",
                and = if preds.is_empty() { "WHERE" } else { "AND" }
            ))
        } else {
            Ok(format!("SELECT i.* FROM {rows} AS i{filter}"))
        }
    }

    /// Whether the cohort has no image at all: one row of it is looked for (the
    /// tables its SQL names are registered first).
    pub async fn matches_nothing(
        &self,
        wh: &crate::sql::Warehouse,
        avail: &Available,
    ) -> Result<bool> {
        let probe = format!(
            "SELECT 1 AS any FROM (\n{}\n) AS cohort LIMIT 1",
            self.images_sql(avail)?
        );
        wh.register(crate::sql::Register::For(&probe)).await?;
        Ok(wh.query(&probe, &self.default_params()?).await?.is_empty())
    }

    /// The note said on stderr when a command's cohort has no image.
    pub fn nothing_matches(&self) -> String {
        format!("no image matches the cohort ({})", self.describe())
    }

    /// `--where` checked on its own before a command builds its query around it: an
    /// error in it (no such column, a text that is not a number) is then said as one
    /// of `--where`, not of SQL the user did not write. Planning and optimising find
    /// both; nothing is read.
    pub async fn check_predicate(
        &self,
        wh: &crate::sql::Warehouse,
        avail: &Available,
    ) -> Result<()> {
        let Some(p) = &self.predicate else {
            return Ok(());
        };
        let alone = CohortArgs {
            predicate: Some(p.clone()),
            datasets: self.datasets.clone(),
            sources: self.sources.clone(),
            uncertain: self.uncertain,
            ..Default::default()
        };
        let sql = format!(
            "SELECT * FROM ({}) AS cohort LIMIT 0",
            alone.images_sql(avail)?
        );
        let checked = async {
            wh.register(crate::sql::Register::For(&sql)).await?;
            for frame in wh.plan(&sql, false, &[]).await? {
                frame.create_physical_plan().await?;
            }
            Ok::<_, Error>(())
        };
        let nih = avail.scope.nih_columns;
        checked.await.map_err(|e| match e {
            Error::Usage(_) => e,
            other => Error::Usage(format!(
                "--where `{p}`: {}",
                columns_to_type(&other.to_string(), nih)
            )),
        })
    }

    /// An error met while the command ran, said as one of `--where` when it can only
    /// have come from there: a value the predicate computes (a division by zero, a
    /// cast of a text that is no number) fails only when rows are read, after
    /// [`CohortArgs::check_predicate`] passed. The commands' own SQL computes no such
    /// value, but a `--cohort` file may, so with one the error is left as it is.
    pub fn blame_predicate(&self, error: Error) -> Error {
        let Some(p) = self.predicate.as_ref().filter(|_| self.cohort.is_none()) else {
            return error;
        };
        // Only what the user's query is at fault for (exit 2), not the system's failures.
        match error {
            Error::DataFusion(_) | Error::Arrow(_) | Error::Query(_) if error.exit_code() == 2 => {
                Error::Usage(format!("--where `{p}`: {error}"))
            }
            other => other,
        }
    }

    /// Checks that the `--cohort` file returns the columns a cohort is read by:
    /// `image_index`, or across datasets `dataset` and `image_id`.
    pub async fn check_cohort_file(&self, wh: &crate::sql::Warehouse) -> Result<()> {
        let Some(file) = &self.cohort else {
            return Ok(());
        };
        let q = crate::sql::params::QueryFile::load(file)?;
        let body =
            crate::sql::snippets::statement(&q.sql, &format!("--cohort {}", file.display()))?;
        wh.register(crate::sql::Register::For(&body)).await?;
        let frames = wh
            .plan(
                &format!("SELECT * FROM ({body}) AS saved LIMIT 0"),
                false,
                &q.bind(&[])?,
            )
            .await?;
        let needed: &[&str] = if self.across_datasets() {
            &["dataset", "image_id"]
        } else {
            &["image_index"]
        };
        let schema = frames.first().map(|f| f.schema().clone());
        let has = |c: &str| {
            schema
                .as_ref()
                .is_some_and(|s| s.field_with_unqualified_name(c).is_ok())
        };
        if needed.iter().all(|c| has(c)) {
            return Ok(());
        }
        Err(Error::Usage(format!(
            "--cohort {}: a cohort query returns {} (one row per image of the cohort){}",
            file.display(),
            needed.join(" and "),
            if self.across_datasets() {
                " across datasets"
            } else {
                ""
            }
        )))
    }

    /// Saved queries whose parameters must be bound with their defaults.
    pub fn default_params(&self) -> Result<Vec<(String, datafusion::scalar::ScalarValue)>> {
        match &self.cohort {
            Some(file) => crate::sql::params::QueryFile::load(file)?.bind(&[]),
            None => Ok(Vec::new()),
        }
    }
}

/// `--view`: PA or AP for NIH; across datasets also AP_SUPINE, LATERAL, OTHER and
/// FRONTAL (any of PA, AP, AP_SUPINE).
fn view_predicate(given: &str, nih: bool) -> Result<String> {
    let v = given.trim().to_ascii_uppercase();
    if nih {
        if v != "PA" && v != "AP" {
            return Err(Error::Usage(format!(
                "--view `{given}`: expected PA or AP (with --dataset also AP_SUPINE, LATERAL, OTHER, FRONTAL)"
            )));
        }
        return Ok(format!("i.view_position = {}", quote(&v)));
    }
    match v.as_str() {
        "FRONTAL" => Ok("i.frontal".into()),
        "PA" | "AP" | "AP_SUPINE" | "LATERAL" | "OTHER" => Ok(format!("i.view = {}", quote(&v))),
        _ => Err(Error::Usage(format!(
            "--view `{given}`: expected PA, AP, AP_SUPINE, LATERAL, OTHER or FRONTAL"
        ))),
    }
}

fn mentions_pixel_column(p: &str) -> bool {
    // The columns of pixel_stats that images and dataset_images do not have; min and max
    // are left out, as they read as SQL's functions.
    const SHARED: [&str; 6] = ["dataset", "image_id", "image_index", "source", "min", "max"];
    let schema = crate::pixels::run::stats_schema();
    words(p).any(|w| !SHARED.contains(&w.as_str()) && schema.field_with_name(&w).is_ok())
}

/// An error's list of columns ("...; the columns are: a, b") as a user types them
/// in `--where`: for NIH with the columns of `images` joined when named.
fn columns_to_type(message: &str, nih: bool) -> String {
    const MARK: &str = "; the columns are: ";
    let Some((before, list)) = message.split_once(MARK) else {
        return message.to_string();
    };
    let mut names: Vec<&str> = list.split(", ").collect();
    if nih {
        for c in across::IMAGES_ONLY_COLUMNS {
            if !names.contains(&c) {
                names.push(c);
            }
        }
    }
    format!("{before}{MARK}{}", names.join(", "))
}

/// Whether a predicate names one of `columns` (a word of it, in any case).
fn mentions_any(p: &str, columns: &[&str]) -> bool {
    words(p).any(|w| columns.contains(&w.as_str()))
}

/// The lower-case words of SQL text: what may name a column.
fn words(p: &str) -> impl Iterator<Item = String> + '_ {
    p.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|w| w.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("40..60").unwrap(), (Some(40), Some(60)));
        assert_eq!(parse_age("40..").unwrap(), (Some(40), None));
        assert_eq!(parse_age("..60").unwrap(), (None, Some(60)));
        assert!(parse_age("forty").is_err());
        assert!(
            parse_age("-5..10")
                .unwrap_err()
                .to_string()
                .contains("0 or more")
        );
    }

    #[test]
    fn unknown_label_lists_the_findings() {
        let c = CohortArgs {
            with: vec!["Covid".into()],
            ..Default::default()
        };
        let e = c.images_sql(&Available::default()).unwrap_err().to_string();
        assert!(e.contains("unknown finding `Covid`") && e.contains("Pleural_Thickening"));
    }

    #[test]
    fn labels_match_case_insensitively() {
        let c = CohortArgs {
            with: vec!["effusion".into()],
            without: vec!["PNEUMOTHORAX".into()],
            ..Default::default()
        };
        let sql = c.images_sql(&Available::default()).unwrap();
        assert!(sql.contains("i.effusion"));
        assert!(sql.contains("NOT i.pneumothorax"));
    }
}
