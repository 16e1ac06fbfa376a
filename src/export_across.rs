//! The cross-dataset training manifest: one row per image of the chosen datasets,
//! with `targets` over the 18 findings of docs/DATASETS.md and the image's boxes.
//!
//! A target is 1 when a chosen source states the finding positive, 0 when one states
//! it negative or a chosen source that labels the finding has labelled the image but
//! says nothing of it (CheXpert's blank cells), NaN when no chosen source that labels
//! the finding has labelled the image (an image without labels is NaN throughout), and
//! for an uncertain (-1) label what `--uncertain` says (U-Ignore: NaN, U-Ones: 1,
//! U-Zeros: 0, U-MultiClass `keep`: -1).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::cohort::across::{Scope, Uncertain};
use crate::datasets::XR_FINDINGS;
use crate::error::{Error, Result};
use crate::sql::snippets::{column_name, quote};

/// What the manifest adds to a cross-dataset cohort.
#[derive(Debug, Clone)]
pub struct AcrossSpec {
    /// The datasets, sources and uncertainty policy (recorded as provenance).
    pub scope: Scope,
    /// Adds `path`: this folder joined with the image's relative path.
    pub image_root: Option<String>,
    /// Boxes are also given scaled to images of this side (from the dataset's one
    /// original size, or the image's measured size; NULL where neither is known).
    pub box_size: Option<u32>,
    /// The warehouse's `pixel_stats` gives images' sizes by dataset and image id.
    pub measured_sizes: bool,
    /// Adds the pixel statistics columns (NULL for an image not measured).
    pub with_pixels: bool,
}

impl AcrossSpec {
    /// The SQL of the manifest over `cohort` (rows of a cross-dataset cohort, see
    /// `cohort::across`): one `target.<finding>` column per finding, the finding's
    /// three-valued column as a number (NULL stays NULL, NaN in the file).
    pub fn sql(&self, cohort: &str) -> String {
        let targets: Vec<String> = XR_FINDINGS
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let c = column_name(f);
                if self.scope.uncertain == Uncertain::Keep {
                    // U-MultiClass: an uncertain finding (not stated positive) is -1.
                    format!(
                        "CASE WHEN i.{c} IS NULL AND (i.uncertain_findings & {}) <> 0 THEN -1.0 ELSE CAST(i.{c} AS DOUBLE) END AS \"target.{f}\"",
                        1u32 << k
                    )
                } else {
                    format!("CAST(i.{c} AS DOUBLE) AS \"target.{f}\"")
                }
            })
            .collect();
        let path = match &self.image_root {
            Some(root) => format!(
                "{} || i.path",
                quote(&format!("{}/", root.trim_end_matches('/')))
            ),
            None => "i.path".into(),
        };
        let (width, height) = crate::datasets::box_frame_sql("b", "p", self.measured_sizes);
        let (x_scale, y_scale) = match self.box_size {
            Some(n) => (format!("{n}.0 / {width}"), format!("{n}.0 / {height}")),
            None => ("CAST(NULL AS DOUBLE)".into(), "CAST(NULL AS DOUBLE)".into()),
        };
        let sizes = if self.measured_sizes && self.box_size.is_some() {
            " LEFT JOIN pixel_stats p ON p.dataset = b.dataset AND p.image_id = b.image_id"
        } else {
            ""
        };
        let in_datasets = if self.scope.datasets.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self.scope.datasets.iter().map(|d| quote(d)).collect();
            format!(" WHERE b.dataset IN ({})", names.join(", "))
        };
        let (pixel_columns, pixel_join) = if self.with_pixels {
            (
                ",\n       p.* EXCLUDE (dataset, image_id, image_index)",
                "\nLEFT JOIN pixel_stats p ON p.dataset = i.dataset AND p.image_id = i.image_id",
            )
        } else {
            ("", "")
        };
        format!(
            "WITH i AS (
{cohort}
),
b AS (
    SELECT b.dataset, b.image_id,
           array_agg(named_struct('label', b.raw_label, 'finding', b.finding, 'reader', b.reader,
                                  'x', b.x, 'y', b.y, 'w', b.w, 'h', b.h,
                                  'x_scaled', b.x * {x_scale}, 'y_scaled', b.y * {y_scale},
                                  'w_scaled', b.w * {x_scale}, 'h_scaled', b.h * {y_scale},
                                  'mask_rle', b.mask_rle)) AS boxes
    FROM xr_boxes b{sizes}{in_datasets}
    GROUP BY b.dataset, b.image_id
)
SELECT i.dataset, i.image_id, i.patient_id, {path} AS path, i.split, i.sex, i.age, i.view,
       {targets},
       bx.boxes{pixel_columns}
FROM i
LEFT JOIN b AS bx ON bx.dataset = i.dataset AND bx.image_id = i.image_id{pixel_join}
ORDER BY i.dataset, i.image_id",
            targets = targets.join(",\n       "),
        )
    }
}

/// Replaces the `target.<finding>` columns (one per name, in order, numbers or NULL)
/// by one `targets` FixedSizeList(Float32) with NULL as NaN, and with `wide` also
/// keeps each as a Float32 column named by its finding.
pub fn with_targets(batch: &RecordBatch, names: &[&str], wide: bool) -> Result<RecordBatch> {
    let schema = batch.schema();
    let first = schema
        .index_of(&format!("target.{}", names[0]))
        .map_err(|_| Error::Query("the manifest query lost its target columns".into()))?;
    let width = names.len();
    let cols: Vec<ArrayRef> = (0..width)
        .map(|k| cast(batch.column(first + k), &DataType::Float32))
        .collect::<std::result::Result<_, _>>()?;
    let cols: Vec<Float32Array> = cols
        .iter()
        .map(|c| {
            c.as_any()
                .downcast_ref::<Float32Array>()
                .expect("cast to Float32")
                .iter()
                .map(|v| Some(v.unwrap_or(f32::NAN)))
                .collect()
        })
        .collect();
    let mut values = Vec::with_capacity(batch.num_rows() * width);
    for r in 0..batch.num_rows() {
        values.extend(cols.iter().map(|c| c.value(r)));
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
            if wide {
                for (name, col) in names.iter().zip(&cols) {
                    fields.push(Field::new(*name, DataType::Float32, false));
                    out.push(Arc::new(col.clone()));
                }
            }
        }
        if (first..first + width).contains(&i) {
            continue;
        }
        fields.push(f.as_ref().clone());
        out.push(batch.column(i).clone());
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), out)?)
}
