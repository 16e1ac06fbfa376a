//! The cross-dataset training manifest: one row per image of the chosen datasets,
//! with `targets` over the 18 findings of docs/DATASETS.md and the image's boxes.
//!
//! A target is 1 when a chosen source states the finding positive, 0 when it states
//! it negative or the image's dataset labels that finding but this image has no row
//! for it (CheXpert's blank cells), NaN when the dataset never labels the finding,
//! and for an uncertain (-1) label what `--uncertain` says (U-Ignore: NaN, U-Ones: 1,
//! U-Zeros: 0).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::datasets::XR_FINDINGS;
use crate::error::{Error, Result};
use crate::sql::snippets::quote;

/// What an uncertain label becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Uncertain {
    /// U-Ignore: NaN (the default).
    Nan,
    /// U-Ones: positive.
    Positive,
    /// U-Zeros: negative.
    Negative,
}

impl Uncertain {
    fn sql(self) -> &'static str {
        match self {
            Uncertain::Nan => "NULL",
            Uncertain::Positive => "1.0",
            Uncertain::Negative => "0.0",
        }
    }

    /// The name recorded in the provenance metadata.
    pub fn name(self) -> &'static str {
        match self {
            Uncertain::Nan => "nan (U-Ignore)",
            Uncertain::Positive => "positive (U-Ones)",
            Uncertain::Negative => "negative (U-Zeros)",
        }
    }
}

/// Which rows and labels the manifest takes.
#[derive(Debug, Clone)]
pub struct XrSpec {
    /// Datasets to export.
    pub datasets: Vec<String>,
    /// Label sources to use; empty: every source of each dataset except the NIH ones
    /// that are not the warehouse's own release (`nih_primary`).
    pub sources: Vec<String>,
    /// The NIH source of the warehouse's metadata (`nih_2020` or `nih_2017`).
    pub nih_primary: String,
    /// What an uncertain label becomes.
    pub uncertain: Uncertain,
    /// Adds `path`: this folder joined with the image's relative path.
    pub image_root: Option<String>,
    /// Boxes are also given scaled to images of this side (where the original side
    /// is known: 1024 for NIH, RSNA and SIIM).
    pub box_size: Option<u32>,
}

/// The datasets cxr knows, for checking `--dataset`.
pub const DATASETS: [&str; 8] = [
    "nih", "chexpert", "mimic", "padchest", "vindr", "rsna", "siim", "openi",
];

impl XrSpec {
    /// The SQL of the manifest (one `target.<finding>` Float64 column per finding).
    pub fn sql(&self) -> Result<String> {
        for d in &self.datasets {
            if !DATASETS.contains(&d.as_str()) {
                return Err(Error::Usage(format!(
                    "--dataset `{d}`: unknown; the datasets are {}",
                    DATASETS.join(", ")
                )));
            }
        }
        let datasets = self
            .datasets
            .iter()
            .map(|d| quote(d))
            .collect::<Vec<_>>()
            .join(", ");
        let source_filter = if self.sources.is_empty() {
            format!(
                "(l.dataset <> 'nih' OR l.source = {})",
                quote(&self.nih_primary)
            )
        } else {
            format!(
                "l.source IN ({})",
                self.sources
                    .iter()
                    .map(|s| quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let states: Vec<String> = XR_FINDINGS
            .iter()
            .map(|f| {
                format!(
                    "MAX(CASE WHEN finding = {} THEN state END) AS \"st.{f}\"",
                    quote(f)
                )
            })
            .collect();
        let targets: Vec<String> = XR_FINDINGS
            .iter()
            .map(|f| {
                format!(
                    "CASE WHEN NOT COALESCE(array_has(d.labelled, {q}), false) THEN NULL \
                     ELSE CASE t.\"st.{f}\" WHEN 2 THEN 1.0 WHEN 1 THEN {u} ELSE 0.0 END END AS \"target.{f}\"",
                    q = quote(f),
                    u = self.uncertain.sql()
                )
            })
            .collect();
        let path = match &self.image_root {
            Some(root) => format!(
                "{} || i.path",
                quote(&format!("{}/", root.trim_end_matches('/')))
            ),
            None => "i.path".into(),
        };
        let scale = match self.box_size {
            Some(n) => {
                format!("CASE WHEN b.dataset IN ('nih', 'rsna', 'siim') THEN {n}.0 / 1024.0 END")
            }
            None => "CAST(NULL AS DOUBLE)".into(),
        };
        Ok(format!(
            "WITH i AS (SELECT * FROM xr_images WHERE dataset IN ({datasets})),
l AS (SELECT * FROM xr_labels l WHERE l.dataset IN ({datasets}) AND l.finding IS NOT NULL AND {source_filter}),
d AS (SELECT dataset, array_agg(DISTINCT finding) AS labelled FROM l GROUP BY dataset),
s AS (
    SELECT dataset, image_id, finding,
           MAX(CASE \"value\" WHEN 1 THEN 2 WHEN -1 THEN 1 ELSE 0 END) AS state
    FROM l GROUP BY dataset, image_id, finding
),
t AS (SELECT dataset, image_id, {states} FROM s GROUP BY dataset, image_id),
b AS (
    SELECT dataset, image_id,
           array_agg(named_struct('label', raw_label, 'finding', finding, 'reader', reader,
                                  'x', x, 'y', y, 'w', w, 'h', h,
                                  'x_scaled', x * {scale}, 'y_scaled', y * {scale},
                                  'w_scaled', w * {scale}, 'h_scaled', h * {scale})) AS boxes
    FROM xr_boxes b WHERE dataset IN ({datasets}) AND mask_rle IS NULL
    GROUP BY dataset, image_id
)
SELECT i.dataset, i.image_id, i.patient_id, {path} AS path, i.split, i.sex, i.age, i.view,
       {targets},
       bx.boxes
FROM i
LEFT JOIN d ON d.dataset = i.dataset
LEFT JOIN t ON t.dataset = i.dataset AND t.image_id = i.image_id
LEFT JOIN b AS bx ON bx.dataset = i.dataset AND bx.image_id = i.image_id
ORDER BY i.dataset, i.image_id",
            targets = targets.join(",\n       "),
            states = states.join(", ")
        ))
    }
}

/// Replaces the 18 `target.*` columns by one `targets` FixedSizeList(18, Float32),
/// NULL → NaN.
pub fn with_targets(batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let first = schema
        .index_of(&format!("target.{}", XR_FINDINGS[0]))
        .map_err(|_| Error::Query("the manifest query lost its target columns".into()))?;
    let width = XR_FINDINGS.len();
    let cols: Vec<ArrayRef> = (0..width)
        .map(|k| cast(batch.column(first + k), &DataType::Float32))
        .collect::<std::result::Result<_, _>>()?;
    let cols: Vec<&Float32Array> = cols
        .iter()
        .map(|c| {
            c.as_any()
                .downcast_ref::<Float32Array>()
                .expect("cast to Float32")
        })
        .collect();
    let mut values = Vec::with_capacity(batch.num_rows() * width);
    for r in 0..batch.num_rows() {
        for c in &cols {
            values.push(if c.is_valid(r) { c.value(r) } else { f32::NAN });
        }
    }
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let targets = FixedSizeListArray::try_new(
        item.clone(),
        width as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )?;
    let mut fields = Vec::new();
    let mut out: Vec<ArrayRef> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i == first {
            fields.push(Field::new(
                "targets",
                DataType::FixedSizeList(item.clone(), width as i32),
                false,
            ));
            out.push(Arc::new(targets.clone()));
        }
        if (first..first + width).contains(&i) {
            continue;
        }
        fields.push(f.as_ref().clone());
        out.push(batch.column(i).clone());
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), out)?)
}
