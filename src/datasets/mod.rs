//! Other chest X-ray datasets beside NIH, and NIH itself, as rows of the cross-dataset
//! tables `xr_images`, `xr_labels`, `xr_boxes`, `reports` and `datasets`
//! (docs/DATASETS.md). Each reader turns one release's files into [`DatasetRows`];
//! the warehouse module writes them.

use std::path::PathBuf;

pub mod agree;
pub mod common;
pub mod map_api;
pub mod openi;
pub mod rsna;
pub mod siim;
#[cfg(test)]
mod testutil;
pub mod vindr;
pub mod zip;

/// The 18 findings of the cross-dataset vocabulary: the 14 NIH findings plus four
/// of TorchXRayVision's default pathologies, in this order (the `targets` order of
/// cross-dataset exports).
pub const XR_FINDINGS: [&str; 18] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
    "Enlarged_Cardiomediastinum",
    "Fracture",
    "Lung_Lesion",
    "Lung_Opacity",
];

/// One row of `xr_images`.
#[derive(Debug, Clone, PartialEq)]
pub struct XrImage {
    pub dataset: &'static str,
    pub image_id: String,
    pub patient_id: Option<String>,
    pub study_id: Option<String>,
    /// `PA`, `AP`, `AP_SUPINE`, `LATERAL`, `OTHER`, or None when unknown.
    pub view: Option<&'static str>,
    pub frontal: Option<bool>,
    /// `M` or `F`.
    pub sex: Option<&'static str>,
    pub age: Option<f32>,
    pub split: Option<String>,
    pub path: Option<String>,
}

/// One row of `xr_labels`: a label a source states about an image.
#[derive(Debug, Clone, PartialEq)]
pub struct XrLabel {
    pub dataset: &'static str,
    pub image_id: String,
    pub source: String,
    pub raw_label: String,
    /// The finding by the label map; None when the map keeps it unmapped.
    pub finding: Option<String>,
    /// 1 positive, 0 negative, -1 uncertain.
    pub value: i8,
}

/// One row of `xr_boxes`: a box or a mask region.
#[derive(Debug, Clone, PartialEq)]
pub struct XrBox {
    pub dataset: &'static str,
    pub image_id: String,
    pub source: String,
    pub raw_label: String,
    pub finding: Option<String>,
    pub reader: Option<String>,
    /// Pixels of the original image, top-left origin.
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// SIIM's run-length code, unchanged.
    pub mask_rle: Option<String>,
    /// Pixel count of a mask region (SIIM: the sum of the run lengths); None for
    /// rectangular boxes, whose area is `w * h`.
    pub area: Option<f64>,
}

/// One row of `reports` (OpenI): a radiology report and the images it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub dataset: &'static str,
    pub report_id: String,
    pub findings: Option<String>,
    pub impression: Option<String>,
    pub mesh_major: Vec<String>,
    pub mesh_minor: Vec<String>,
    pub image_ids: Vec<String>,
}

/// One row of `datasets`.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    pub dataset: &'static str,
    pub title: String,
    pub source_files: Vec<String>,
    /// Filled in from the rows by [`DatasetRows::info`] callers; readers leave 0.
    pub label_sources: Vec<String>,
}

/// Everything one dataset contributes to the cross-dataset tables.
#[derive(Debug, Clone, Default)]
pub struct DatasetRows {
    pub images: Vec<XrImage>,
    pub labels: Vec<XrLabel>,
    pub boxes: Vec<XrBox>,
    pub reports: Vec<Report>,
}

/// A `--dataset NAME=PATH[,PATH...]` request.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub name: String,
    pub paths: Vec<PathBuf>,
}
