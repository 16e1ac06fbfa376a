//! A cohort's scope and rows: the rows of `dataset_images` of the chosen datasets (NIH's
//! alone without `--dataset`, `--source` or `--uncertain`) with one three-valued
//! column per finding and `no_finding`, read from the per-image bit masks ingest
//! stored in `dataset_images` (default sources) or from `finding_states` for the chosen
//! sources and uncertainty policy.
//!
//! A finding column is TRUE when a chosen source states it positive, FALSE when one
//! states it negative or a chosen source that labels the finding has labelled the
//! image but says nothing of it (CheXpert's blank cells), and NULL when no chosen
//! source that labels the finding has labelled the image (NIH has no Fracture; an
//! image without any label knows nothing) — or, for an uncertain label, what
//! `--uncertain` says (nan: NULL, positive: TRUE, negative: FALSE). SQL's
//! three-valued logic then gives each flag its meaning: `--with X` keeps TRUE,
//! `--without X` keeps FALSE, and an image whose X is unknown is in neither. The
//! export's targets are the same columns cast to numbers.

use crate::datasets::XR_FINDINGS;
use crate::error::{Error, Result};
use crate::sql::snippets::{column_name, quote};

/// What an uncertain label becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Uncertain {
    /// U-Ignore: unknown (NULL; NaN in targets). The default.
    #[default]
    Nan,
    /// U-Ones: positive.
    Positive,
    /// U-Zeros: negative.
    Negative,
    /// U-MultiClass: unknown in cohort flags (as U-Ignore), -1 in exported targets.
    Keep,
}

impl Uncertain {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Uncertain::Nan | Uncertain::Keep => "CAST(NULL AS BOOLEAN)",
            Uncertain::Positive => "TRUE",
            Uncertain::Negative => "FALSE",
        }
    }

    /// The name recorded in provenance metadata.
    pub fn name(self) -> &'static str {
        match self {
            Uncertain::Nan => "nan (U-Ignore)",
            Uncertain::Positive => "positive (U-Ones)",
            Uncertain::Negative => "negative (U-Zeros)",
            Uncertain::Keep => "keep (U-MultiClass: -1 in targets)",
        }
    }
}

/// Whether labels from `sources` under `uncertain` are the states ingest stored (the
/// default sources, uncertain labels unknown): see [`Scope::default_states`].
pub fn reads_default_states(sources: &[String], uncertain: Uncertain) -> bool {
    sources.is_empty() && matches!(uncertain, Uncertain::Nan | Uncertain::Keep)
}

/// The dataset names cxr knows.
pub const DATASETS: [&str; 8] = crate::datasets::ALL;

/// Which images and labels a cross-dataset cohort reads.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Datasets (lower case); empty: every dataset the sources label, or all.
    pub datasets: Vec<String>,
    /// Label sources; empty: every source, but for NIH only `nih_primary`.
    pub sources: Vec<String>,
    /// The NIH source of the warehouse's own metadata (`nih_2020` or `nih_2017`).
    pub nih_primary: String,
    /// What an uncertain label counts as.
    pub uncertain: Uncertain,
    /// Take NIH's `split` from the `splits` table (`cxr split`).
    pub nih_splits_table: bool,
    /// Take each image's split from `dataset_splits` (`cxr split --dataset`), where
    /// it has the image's dataset and patient.
    pub dataset_splits: bool,
    /// `dataset_images` holds each image's states over the default sources (its
    /// `positive_findings`, ... columns; a warehouse written before them has not).
    pub image_states: bool,
    /// The cohort was given without `--dataset`, `--source` or `--uncertain`: NIH's
    /// images, whose rows also carry the names and types of the NIH `images` table
    /// (`image_index`, Int32 `patient_id`, `follow_up`, `view_position`, Int16
    /// `age`) that `--where`, `--cohort` files and the commands' NIH output read.
    pub nih_columns: bool,
    /// With `nih_columns`: also the columns only NIH's `images` table has
    /// (`orig_width`, `pixel_spacing_x`, `finding_labels`, `n_labels`, ...), joined
    /// from it because a `--where` reads them.
    pub images_columns: bool,
}

/// The columns of NIH's `images` that its `dataset_images` rows do not carry.
pub const IMAGES_ONLY_COLUMNS: [&str; 6] = [
    "orig_width",
    "orig_height",
    "pixel_spacing_x",
    "pixel_spacing_y",
    "finding_labels",
    "n_labels",
];

/// A finding of the 18 by name, case-insensitively and ignoring spaces and
/// underscores (`lung opacity` → `Lung_Opacity`).
pub fn finding(name: &str) -> Result<&'static str> {
    crate::findings::lookup_in(name, &XR_FINDINGS).ok_or_else(|| {
        crate::findings::unknown_finding(name, "18 findings across datasets", &XR_FINDINGS)
    })
}

/// `finding(label, bit) AS (VALUES ('Atelectasis', 1), ...)`: the 18 findings and
/// their bits in [`positive_mask`].
pub fn findings_bits_cte() -> String {
    findings_bits_cte_of(&XR_FINDINGS)
}

/// [`findings_bits_cte`] with only `findings` (each keeps its bit).
pub fn findings_bits_cte_of(findings: &[&str]) -> String {
    let bits: Vec<String> = XR_FINDINGS
        .iter()
        .enumerate()
        .filter(|(_, f)| findings.contains(f))
        .map(|(k, f)| format!("({}, {})", quote(f), 1u32 << k))
        .collect();
    format!("finding(label, bit) AS (VALUES {})", bits.join(", "))
}

/// The column of a cohort row holding the bits of its positive findings (or, with
/// `known`, of the findings whose state is known): the finding columns as one
/// integer. Masks replace lists where rows are compared or grouped: integers are
/// cheap to group, window and test.
pub fn positive_mask(known: bool) -> &'static str {
    if known { "known_mask" } else { "positive_mask" }
}

/// Per dataset and finding it labels, over a relation of cohort rows: `n` images
/// positive, `base` images whose state is known (a share's denominator) and `total`
/// images of the dataset. One pass over the rows: images are counted per distinct
/// (positive, known) pair of masks, and each finding's counts are sums over them.
pub fn finding_counts_sql(relation: &str) -> String {
    format!(
        "WITH {findings}
SELECT m.dataset, f.label, SUM(CASE WHEN (m.mask & f.bit) <> 0 THEN m.n ELSE 0 END) AS n,
       SUM(CASE WHEN (m.known & f.bit) <> 0 THEN m.n ELSE 0 END) AS base, MAX(m.total) AS total
FROM (
    SELECT dataset, mask, known, COUNT(*) AS n, SUM(COUNT(*)) OVER (PARTITION BY dataset) AS total
    FROM (SELECT dataset, {positive} AS mask, {known} AS known FROM {relation}) AS r
    GROUP BY dataset, mask, known
) AS m
CROSS JOIN finding f
GROUP BY m.dataset, f.label
HAVING SUM(CASE WHEN (m.known & f.bit) <> 0 THEN m.n ELSE 0 END) > 0",
        findings = findings_bits_cte(),
        positive = positive_mask(false),
        known = positive_mask(true),
    )
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Scope {
    /// The findings the scope's rows have columns for: NIH's 14 (as `images` has)
    /// for NIH's own cohorts, else the 18 of the vocabulary.
    pub fn findings(&self) -> &'static [&'static str] {
        if self.nih_columns {
            &XR_FINDINGS[..crate::findings::FINDINGS.len()]
        } else {
            &XR_FINDINGS[..]
        }
    }

    /// `PREFIX dataset IN (...)` for the scope's datasets; nothing when it has none.
    pub fn datasets_filter(&self, prefix: &str) -> String {
        if self.datasets.is_empty() {
            String::new()
        } else {
            format!("{prefix}dataset IN ({})", list(&self.datasets))
        }
    }

    /// Whether the cohort reads each image's findings as ingest resolved them into
    /// `dataset_images` and `studies`: the default sources, uncertain labels unknown.
    pub fn default_states(&self) -> bool {
        reads_default_states(&self.sources, self.uncertain)
    }

    /// Checks the dataset and source names against what the warehouse holds, and
    /// takes each source in the warehouse's spelling (`--source VINDR_r8` is
    /// `vindr_R8`, as `--dataset NIH` is `nih`).
    pub fn check(&mut self, present: &[String], sources: &[(String, String)]) -> Result<()> {
        for d in &self.datasets {
            if !DATASETS.contains(&d.as_str()) {
                return Err(Error::Usage(format!(
                    "--dataset `{d}`: unknown; the datasets are {}",
                    DATASETS.join(", ")
                )));
            }
            if !present.contains(d) {
                return Err(Error::Usage(format!(
                    "--dataset `{d}`: not in this warehouse (it holds {}); add it with `cxr ingest --dataset {d}=...`",
                    present.join(", ")
                )));
            }
        }
        let mut known: Vec<&str> = sources.iter().map(|(_, s)| s.as_str()).collect();
        known.dedup();
        for s in &mut self.sources {
            if let Some(spelled) = known.iter().find(|k| k.eq_ignore_ascii_case(s.trim())) {
                *s = spelled.to_string();
            } else {
                return Err(Error::Usage(format!(
                    "--source `{s}`: no label of this warehouse comes from it; the sources are: {}",
                    known.join(", ")
                )));
            }
        }
        // A dataset none of the chosen sources labels would come with every finding
        // unknown: said rather than answered.
        if self.sources.is_empty() {
            return Ok(());
        }
        for d in &self.datasets {
            let its: Vec<&str> = sources
                .iter()
                .filter(|(dataset, _)| dataset == d)
                .map(|(_, s)| s.as_str())
                .collect();
            if !self.sources.iter().any(|s| its.contains(&s.as_str())) {
                return Err(Error::Usage(format!(
                    "--dataset `{d}`: none of --source {} labels its images (its sources are {}); add one of them to --source or leave `{d}` out",
                    self.sources.join(","),
                    its.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The `finding_states` rows the cohort reads: its sources (for NIH only the
    /// warehouse's own release unless `--source` says otherwise) and datasets.
    fn states_sql(&self) -> String {
        let mut w = Vec::new();
        if self.sources.is_empty() {
            w.push(format!(
                "(dataset <> 'nih' OR source = {})",
                quote(&self.nih_primary)
            ));
        } else {
            w.push(format!("source IN ({})", list(&self.sources)));
        }
        if !self.datasets.is_empty() {
            w.push(format!("dataset IN ({})", list(&self.datasets)));
        }
        format!("SELECT * FROM finding_states WHERE {}", w.join(" AND "))
    }

    /// The states of every source of the chosen datasets: what a vocabulary labels is
    /// read from all its sources, chosen or not (a VinDr reader who only ever wrote
    /// `No finding` still said every finding the readers label is absent).
    fn vocabulary_states_sql(&self) -> String {
        if self.datasets.is_empty() {
            "SELECT * FROM finding_states".to_string()
        } else {
            format!(
                "SELECT * FROM finding_states WHERE dataset IN ({})",
                list(&self.datasets)
            )
        }
    }

    /// A query returning one row per image of the chosen datasets: the columns of
    /// `dataset_images`, `labels` (the positive findings, sorted), one Boolean column per
    /// finding (`lung_opacity`), TRUE / FALSE / NULL as the module says, and
    /// `no_finding`.
    ///
    /// With the default sources the states are columns of `dataset_images` (written at
    /// ingest): one scan, no join. With `--source`, from `finding_states`: a finding
    /// is positive when a chosen source says so, else uncertain when one says that,
    /// else negative when a chosen source that labels this finding (in any image) has
    /// labelled this image, else unknown. An image no chosen source labels is unknown
    /// for every finding. `no_finding` is TRUE when a chosen source states the image
    /// normal and none states a finding, or any other label, positive or uncertain;
    /// NULL for an unlabelled image and in datasets that make no normal statement.
    pub fn images_sql(&self) -> String {
        let (states, from) = if self.sources.is_empty() && self.image_states {
            let states = States {
                positive: "x.positive_findings",
                uncertain: "x.uncertain_findings",
                known: "x.known_findings",
                no_finding: "x.no_finding".into(),
            };
            (states, "dataset_images x".to_string())
        } else {
            let normal: Vec<String> = crate::datasets::DATASETS
                .iter()
                .filter(|d| d.normal_label.is_some())
                .map(|d| quote(d.name))
                .collect();
            let states = States {
                positive: "COALESCE(x.positive, 0)",
                uncertain: "COALESCE(x.uncertain, 0)",
                known: "COALESCE(x.known, 0)",
                no_finding: format!(
                    "CASE WHEN x.labelled_image IS NULL OR x.dataset NOT IN ({}) OR NOT x.states_normals THEN CAST(NULL AS BOOLEAN) \
                     ELSE x.states_normal AND x.positive = 0 AND x.uncertain = 0 AND NOT x.other_positive END",
                    normal.join(", ")
                ),
            };
            let from = format!(
                "(\n    WITH s AS ({}),
    labelled AS (
      SELECT dataset, {vocabulary} AS vocabulary, bit_or(positive | uncertain | negative | {every_image}) AS findings,
             bool_or(states_normal) AS states_normals
      FROM ({}) s GROUP BY dataset, {vocabulary}
    ),
    m AS (
      SELECT s.dataset, s.image_id, bit_or(s.positive) AS positive, bit_or(s.uncertain) AS uncertain,
             bit_or(labelled.findings) AS known, bool_or(s.states_normal) AS states_normal,
             bool_or(s.other_positive) AS other_positive, bool_or(labelled.states_normals) AS states_normals
      FROM s JOIN labelled ON labelled.dataset = s.dataset AND labelled.vocabulary = {vocabulary}
      GROUP BY s.dataset, s.image_id
    )
    SELECT x.*, m.image_id AS labelled_image, m.positive, m.uncertain, m.known, m.states_normal, m.other_positive, m.states_normals
    FROM dataset_images x LEFT JOIN m ON m.dataset = x.dataset AND m.image_id = x.image_id
  ) AS x",
                self.states_sql(),
                self.vocabulary_states_sql(),
                vocabulary = crate::datasets::vocabulary_sql("s"),
                every_image = crate::datasets::labels_every_image_sql("s")
            );
            (states, from)
        };
        self.rows_sql(&states, &from)
    }

    /// The cohort rows over `from` (aliased `x`), whose states `states` names.
    fn rows_sql(&self, states: &States, from: &str) -> String {
        let columns: Vec<String> = self
            .findings()
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let bit = 1u32 << k;
                format!(
                    "CASE WHEN ({known} & {bit}) = 0 THEN CAST(NULL AS BOOLEAN) \
                     WHEN ({positive} & {bit}) <> 0 THEN TRUE WHEN ({uncertain} & {bit}) <> 0 THEN {u} ELSE FALSE END AS {c}",
                    known = states.known,
                    positive = states.positive,
                    uncertain = states.uncertain,
                    u = self.uncertain.sql(),
                    c = column_name(f)
                )
            })
            .collect();
        // The finding columns as masks: positive is TRUE, known is not NULL.
        let (labels, known) = match self.uncertain {
            Uncertain::Positive => (
                format!(
                    "{} & ({} | {})",
                    states.known, states.positive, states.uncertain
                ),
                states.known.to_string(),
            ),
            Uncertain::Negative => (
                format!("{} & {}", states.known, states.positive),
                states.known.to_string(),
            ),
            // Uncertain and not positive: unknown.
            Uncertain::Nan | Uncertain::Keep => (
                format!("{} & {}", states.known, states.positive),
                format!(
                    "{k} - ({k} & ({u} - ({u} & {p})))",
                    k = states.known,
                    u = states.uncertain,
                    p = states.positive
                ),
            ),
        };
        let datasets = if !self.datasets.is_empty() {
            format!("x.dataset IN ({})", list(&self.datasets))
        } else if !self.sources.is_empty() {
            format!(
                "x.dataset IN (SELECT DISTINCT dataset FROM finding_states WHERE source IN ({}))",
                list(&self.sources)
            )
        } else {
            "true".to_string()
        };
        let (split, split_joins) = self.split_sql();
        let (images_columns, images_join) = self.images_columns_sql();
        format!(
            "SELECT {identity},
         {split} AS split, x.path,
         CASE WHEN {stated} = 0 AND {no_finding} IS NOT TRUE THEN NULL ELSE finding_labels({labels}) END AS labels,
         {columns},
         {labels} AS positive_mask, {known} AS known_mask,
         {no_finding} AS no_finding,
         {positive} AS positive_findings, {uncertain} AS uncertain_findings,
         {stated} AS known_findings{images_columns}
  FROM {from}{split_joins}{images_join}
  WHERE {datasets}",
            identity = self.identity_columns(),
            columns = columns.join(",\n         "),
            no_finding = states.no_finding,
            positive = states.positive,
            uncertain = states.uncertain,
            stated = states.known,
        )
    }

    /// The columns that say which image a row is and who and how it shows.
    fn identity_columns(&self) -> &'static str {
        if self.nih_columns {
            // First the names of NIH's `images` (an unknown `--where` column lists
            // them first). TRY_CAST: the casts may run before the rows of other
            // datasets are filtered out.
            "x.image_id AS image_index, TRY_CAST(x.patient_id AS INT) AS patient_id,
         TRY_CAST(x.study_order AS INT) AS follow_up, TRY_CAST(x.age AS SMALLINT) AS age, x.sex,
         x.view AS view_position, x.dataset, x.image_id, x.study_id, x.study_order, x.view,
         x.frontal, x.patient_rank, x.image_rank"
        } else {
            "x.dataset, x.image_id, x.patient_id, x.study_id, x.study_order, x.view, x.frontal,
         x.sex, x.age, x.patient_rank, x.image_rank"
        }
    }

    /// The columns only NIH's `images` has, when a `--where` reads them, and the
    /// join that gives them.
    fn images_columns_sql(&self) -> (String, &'static str) {
        if !(self.nih_columns && self.images_columns) {
            return (String::new(), "");
        }
        let columns: Vec<String> = IMAGES_ONLY_COLUMNS
            .iter()
            .map(|c| format!("ni.{c}"))
            .collect();
        (
            format!(",\n         {}", columns.join(", ")),
            "\n  LEFT JOIN images ni ON ni.image_index = x.image_id",
        )
    }

    /// Each image's split (from `splits` for NIH where `cxr split` wrote one, from
    /// `dataset_splits` where `cxr split --dataset` did, else the release's own) and
    /// the joins it needs.
    fn split_sql(&self) -> (String, String) {
        let mut split = "x.split".to_string();
        let mut joins = String::new();
        if self.nih_splits_table {
            split = "CASE WHEN x.dataset = 'nih' THEN sp.split ELSE x.split END".into();
            joins.push_str(
                "\n  LEFT JOIN splits sp ON x.dataset = 'nih' AND CAST(sp.patient_id AS VARCHAR) = x.patient_id",
            );
        }
        // NIH's own cohorts keep NIH's splits (`splits`, else the official lists);
        // `cxr split --dataset` is for cohorts across datasets.
        if self.dataset_splits && !self.nih_columns {
            split = format!("COALESCE(ds.split, {split})");
            joins.push_str(
                "\n  LEFT JOIN dataset_splits ds ON ds.dataset = x.dataset AND ds.patient = COALESCE(x.patient_id, x.image_id)",
            );
        }
        (split, joins)
    }
}

/// The expressions of a cohort's finding states (bit masks) over its rows `x`.
struct States {
    positive: &'static str,
    uncertain: &'static str,
    known: &'static str,
    no_finding: String,
}
