//! The training manifest: one row per image of a cohort, with `targets` over the
//! findings its datasets can label — NIH's 14 for a cohort without `--dataset`
//! (with NIH's column names), the 18 of docs/DATASETS.md across datasets (with each
//! image's boxes).
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
use datafusion::scalar::ScalarValue;

use crate::cohort::across::{Scope, Uncertain};
use crate::datasets::XR_FINDINGS;
use crate::error::{Error, Result};
use crate::findings::FINDINGS;
use crate::sql::Warehouse;
use crate::sql::snippets::{column_name, quote, statement};

/// What the manifest adds to a cohort's rows.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The datasets, sources and uncertainty policy (recorded as provenance); NIH's
    /// column names when the cohort was given without `--dataset`.
    pub scope: Scope,
    /// A query returning `image_index` that selects NIH's images instead of a cohort.
    pub query: Option<String>,
    /// Adds `path`: this folder joined with the image's relative path.
    pub image_root: Option<String>,
    /// Boxes are also given scaled to images of this side (from the dataset's one
    /// original size, or the image's measured size; NULL where neither is known).
    pub box_size: Option<u32>,
    /// The warehouse's `pixel_stats` gives images' sizes by dataset and image id.
    pub measured_sizes: bool,
    /// Adds the pixel statistics columns (NULL for an image not measured).
    pub with_pixels: bool,
    /// Sort column (default: NIH's patient_id, follow_up, image_index; across
    /// datasets dataset, image_id).
    pub sort_by: Option<String>,
}

/// A plain column name, or a usage error.
pub fn ident(col: &str) -> Result<String> {
    if !col.is_empty() && col.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(col.to_string())
    } else {
        Err(Error::Usage(format!("`{col}` is not a column name")))
    }
}

impl Manifest {
    /// The findings of `targets`, in order.
    pub fn targets(&self) -> Vec<&'static str> {
        if self.scope.nih_columns {
            FINDINGS.to_vec()
        } else {
            XR_FINDINGS.to_vec()
        }
    }

    /// The SQL of the manifest over `cohort` (a cohort's rows, see `cohort::across`;
    /// `rows` the relation of all rows of its scope, which `--sql` selects from): one
    /// `target.<finding>` column per finding, the finding's three-valued column as a
    /// number (NULL stays NULL, NaN in the file).
    pub fn sql(&self, cohort: &str, rows: &str) -> Result<String> {
        let selection = match &self.query {
            Some(q) => format!(
                "SELECT i.* FROM {rows} AS i\nJOIN (SELECT DISTINCT image_index FROM (\n{}\n) AS q) AS s ON s.image_index = i.image_index",
                statement(q, "--sql")?
            ),
            None => cohort.to_string(),
        };
        // A path that would leave the root (a warehouse an older cxr wrote) is NULL.
        let path = match &self.image_root {
            Some(root) => format!(
                "CASE WHEN i.path LIKE '/%' OR i.path = '..' OR i.path LIKE '../%' OR i.path LIKE '%/../%' OR i.path LIKE '%/..' THEN NULL ELSE {} || i.path END",
                quote(&format!("{}/", root.trim_end_matches('/')))
            ),
            None => "i.path".into(),
        };
        let targets = self.target_columns().join(",\n       ");
        let (columns, boxes, order) = if self.scope.nih_columns {
            let path = self
                .image_root
                .as_ref()
                .map(|_| format!(",\n       {path} AS path"))
                .unwrap_or_default();
            (
                format!(
                    "i.image_index, i.patient_id, i.follow_up, i.age, i.sex, i.view_position, i.split, i.labels,\n       {targets}{path}"
                ),
                String::new(),
                "patient_id, follow_up, image_index",
            )
        } else {
            (
                format!(
                    "i.dataset, i.image_id, i.patient_id, {path} AS path, i.split, i.sex, i.age, i.view,\n       {targets},\n       bx.boxes"
                ),
                format!(
                    "\nLEFT JOIN ({}) AS bx ON bx.dataset = i.dataset AND bx.image_id = i.image_id",
                    self.boxes_sql()
                ),
                "dataset, image_id",
            )
        };
        let (pixel_columns, pixel_join) = if self.with_pixels {
            (
                ",\n       p.* EXCLUDE (dataset, image_id, image_index)",
                "\nLEFT JOIN pixel_stats p ON p.dataset = i.dataset AND p.image_id = i.image_id",
            )
        } else {
            ("", "")
        };
        let order = match &self.sort_by {
            Some(col) => ident(col)?,
            None => order.to_string(),
        };
        Ok(format!(
            "WITH i AS (\n{selection}\n)\nSELECT {columns}{pixel_columns}\nFROM i{boxes}{pixel_join}\nORDER BY {order}"
        ))
    }

    /// One `target.<finding>` column per finding of [`Manifest::targets`].
    fn target_columns(&self) -> Vec<String> {
        let keep = self.scope.uncertain == Uncertain::Keep;
        self.targets()
            .iter()
            .map(|f| {
                let c = column_name(f);
                let bit = XR_FINDINGS.iter().position(|x| x == f).map_or(0, |k| 1u32 << k);
                if keep {
                    // U-MultiClass: an uncertain finding (not stated positive) is -1.
                    format!(
                        "CASE WHEN i.{c} IS NULL AND (i.uncertain_findings & {bit}) <> 0 THEN -1.0 ELSE CAST(i.{c} AS DOUBLE) END AS \"target.{f}\""
                    )
                } else {
                    format!("CAST(i.{c} AS DOUBLE) AS \"target.{f}\"")
                }
            })
            .collect()
    }

    /// Each image's boxes of `dataset_boxes` as one list, in the datasets of the scope.
    fn boxes_sql(&self) -> String {
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
        let in_datasets = self.scope.datasets_filter(" WHERE b.");
        format!(
            "SELECT b.dataset, b.image_id,
           array_agg(named_struct('label', b.raw_label, 'finding', b.finding, 'reader', b.reader,
                                  'x', b.x, 'y', b.y, 'w', b.w, 'h', b.h,
                                  'x_scaled', b.x * {x_scale}, 'y_scaled', b.y * {y_scale},
                                  'w_scaled', b.w * {x_scale}, 'h_scaled', b.h * {y_scale},
                                  'mask_rle', b.mask_rle)) AS boxes
    FROM dataset_boxes b{sizes}{in_datasets}
    GROUP BY b.dataset, b.image_id"
        )
    }

    /// Checks the columns the flags name, before the export runs: `--sql` returns
    /// `image_index`, `--sort-by` names a column of the manifest. DataFusion's own
    /// errors would list the query's internal names instead.
    pub async fn check_columns(
        &self,
        wh: &Warehouse,
        cohort: &str,
        rows: &str,
        params: &[(String, ScalarValue)],
    ) -> Result<()> {
        let columns = |sql: String| async move {
            let frames = wh
                .plan(
                    &format!("SELECT * FROM ({sql}) AS q LIMIT 0"),
                    false,
                    params,
                )
                .await?;
            Ok::<_, Error>(frames.first().map_or_else(Vec::new, |f| {
                f.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
            }))
        };
        if let Some(q) = &self.query {
            let returned = columns(statement(q, "--sql")?).await?;
            if !returned.iter().any(|c| c == "image_index") {
                return Err(Error::Usage(format!(
                    "--sql must return image_index (one row per image of the manifest); it returns {}",
                    returned.join(", ")
                )));
            }
        }
        if let Some(col) = &self.sort_by {
            let unsorted = Manifest {
                sort_by: None,
                ..self.clone()
            };
            let manifest = columns(unsorted.sql(cohort, rows)?).await?;
            if !manifest.iter().any(|c| c == col) {
                // The columns one can sort by (the targets are folded into a list).
                let plain: Vec<&String> = manifest.iter().filter(|c| ident(c).is_ok()).collect();
                return Err(Error::Usage(format!(
                    "--sort-by `{col}`: no such column in the export; its columns are: {}",
                    plain
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
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
