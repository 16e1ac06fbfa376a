//! The cross-dataset tables (docs/DATASETS.md) as record batches.

use datafusion::arrow::array::RecordBatch;

use crate::datasets::{DatasetInfo, Report, XrBox, XrImage, XrLabel};
use crate::error::Result;
use crate::input::table::{batch, bools, f64s, i8s, i64s, list_utf8, text, utf8};

/// `xr_images`.
pub fn images_batch(rows: &[XrImage]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| r.image_id.as_str()))),
        (
            "patient_id",
            utf8(rows.iter().map(|r| r.patient_id.as_deref())),
        ),
        ("study_id", utf8(rows.iter().map(|r| r.study_id.as_deref()))),
        ("study_order", i64s(rows.iter().map(|r| r.study_order))),
        ("view", utf8(rows.iter().map(|r| r.view))),
        ("frontal", bools(rows.iter().map(|r| r.frontal))),
        ("sex", utf8(rows.iter().map(|r| r.sex))),
        (
            "age",
            std::sync::Arc::new(
                rows.iter()
                    .map(|r| r.age)
                    .collect::<datafusion::arrow::array::Float32Array>(),
            ),
        ),
        ("split", utf8(rows.iter().map(|r| r.split.as_deref()))),
        ("path", utf8(rows.iter().map(|r| r.path.as_deref()))),
    ])
}

/// `xr_labels`.
pub fn labels_batch(rows: &[XrLabel]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| r.image_id.as_str()))),
        ("source", text(rows.iter().map(|r| r.source.as_str()))),
        ("raw_label", text(rows.iter().map(|r| r.raw_label.as_str()))),
        ("finding", utf8(rows.iter().map(|r| r.finding.as_deref()))),
        ("value", i8s(rows.iter().map(|r| Some(r.value)))),
    ])
}

/// `xr_boxes`.
pub fn boxes_batch(rows: &[XrBox]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| r.image_id.as_str()))),
        ("source", text(rows.iter().map(|r| r.source.as_str()))),
        ("raw_label", text(rows.iter().map(|r| r.raw_label.as_str()))),
        ("finding", utf8(rows.iter().map(|r| r.finding.as_deref()))),
        ("reader", utf8(rows.iter().map(|r| r.reader.as_deref()))),
        ("x", f64s(rows.iter().map(|r| Some(r.x)))),
        ("y", f64s(rows.iter().map(|r| Some(r.y)))),
        ("w", f64s(rows.iter().map(|r| Some(r.w)))),
        ("h", f64s(rows.iter().map(|r| Some(r.h)))),
        ("area", f64s(rows.iter().map(|r| r.area))),
        ("mask_rle", utf8(rows.iter().map(|r| r.mask_rle.as_deref()))),
    ])
}

/// `reports`.
pub fn reports_batch(rows: &[Report]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("report_id", text(rows.iter().map(|r| r.report_id.as_str()))),
        ("findings", utf8(rows.iter().map(|r| r.findings.as_deref()))),
        (
            "impression",
            utf8(rows.iter().map(|r| r.impression.as_deref())),
        ),
        (
            "mesh_major",
            list_utf8(rows.iter().map(|r| r.mesh_major.as_slice())),
        ),
        (
            "mesh_minor",
            list_utf8(rows.iter().map(|r| r.mesh_minor.as_slice())),
        ),
        (
            "image_ids",
            list_utf8(rows.iter().map(|r| r.image_ids.as_slice())),
        ),
    ])
}

/// `datasets`: one row per dataset with its counts.
pub fn datasets_batch(rows: &[(DatasetInfo, [i64; 3])]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|(d, _)| d.dataset))),
        ("title", text(rows.iter().map(|(d, _)| d.title.as_str()))),
        (
            "source_files",
            list_utf8(rows.iter().map(|(d, _)| d.source_files.as_slice())),
        ),
        ("n_images", i64s(rows.iter().map(|(_, n)| Some(n[0])))),
        ("n_patients", i64s(rows.iter().map(|(_, n)| Some(n[1])))),
        ("n_studies", i64s(rows.iter().map(|(_, n)| Some(n[2])))),
        (
            "label_sources",
            list_utf8(rows.iter().map(|(d, _)| d.label_sources.as_slice())),
        ),
    ])
}
