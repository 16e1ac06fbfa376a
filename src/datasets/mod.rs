//! Other chest X-ray datasets beside NIH, and NIH itself, as rows of the cross-dataset
//! tables `xr_images`, `xr_labels`, `xr_boxes`, `reports` and `datasets`
//! (docs/DATASETS.md). Each reader turns one release's files into [`DatasetRows`];
//! the warehouse module writes them.

pub mod chexpert;
pub mod fields;
pub mod label_map;
pub mod mimic;

pub mod padchest;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::input::issues::Issues;
pub use label_map::{LabelMap, Lookup};

pub mod agree;
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
pub const XR_FINDINGS: [&str; 18] = {
    let extra = [
        "Enlarged_Cardiomediastinum",
        "Fracture",
        "Lung_Lesion",
        "Lung_Opacity",
    ];
    let mut out = [""; 18];
    let mut i = 0;
    while i < 18 {
        out[i] = if i < 14 {
            crate::findings::FINDINGS[i]
        } else {
            extra[i - 14]
        };
        i += 1;
    }
    out
};

/// One row of `xr_images`.
#[derive(Debug, Clone, PartialEq)]
pub struct XrImage {
    pub dataset: &'static str,
    pub image_id: String,
    pub patient_id: Option<String>,
    pub study_id: Option<String>,
    /// Sorts a patient's studies in time (NIH follow-up number, CheXpert study
    /// number, PadChest and MIMIC study date as YYYYMMDD); None where the release
    /// gives no order. A key, not a rank.
    pub study_order: Option<i64>,
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

/// The dataset names `read` knows.
pub const KNOWN: [&str; 7] = [
    "chexpert", "mimic", "padchest", "vindr", "rsna", "siim", "openi",
];

/// Every dataset name of the cross-dataset tables: NIH, always ingested, then [`KNOWN`].
pub const ALL: [&str; 8] = [
    "nih", "chexpert", "mimic", "padchest", "vindr", "rsna", "siim", "openi",
];

/// The raw label by which each dataset states an image normal (no finding at all), as
/// its source spells it. RSNA and SIIM label one finding each and make no such
/// statement: whether their images are normal is unknown.
pub const NORMAL_LABELS: [(&str, &str); 6] = [
    ("nih", "No Finding"),
    ("chexpert", "No Finding"),
    ("mimic", "No Finding"),
    ("padchest", "normal"),
    ("vindr", "No finding"),
    ("openi", "normal"),
];

/// Raw labels a normal statement allows beside it: CheXpert's and MIMIC's labeler
/// set `No Finding` whatever `Support Devices` says (a device is not a finding).
pub const BESIDE_NORMAL: [(&str, &str); 2] = [
    ("chexpert", "Support Devices"),
    ("mimic", "Support Devices"),
];

/// Whether `dataset` states images normal (has a [`NORMAL_LABELS`] entry).
pub fn states_normal(dataset: &str) -> bool {
    NORMAL_LABELS.iter().any(|(d, _)| *d == dataset)
}

/// Reads one `--dataset NAME=PATH[,PATH...]` request into rows and its `datasets` row.
/// A file that is not of the named dataset is an input error (exit 2) naming the file
/// and its missing columns, raised before any row is returned.
pub fn read(
    spec: &DatasetSpec,
    map: &LabelMap,
    issues: &mut Issues,
) -> Result<(DatasetRows, DatasetInfo)> {
    let (dataset, title, rows): (&'static str, &str, DatasetRows) = match spec.name.as_str() {
        "chexpert" => (
            chexpert::NAME,
            "CheXpert v1.0",
            chexpert::read(&spec.paths, map, issues)?,
        ),
        "padchest" => (
            padchest::NAME,
            "PadChest",
            padchest::read(&spec.paths, map, issues)?,
        ),
        "mimic" => (
            mimic::NAME,
            "MIMIC-CXR-JPG 2.0.0",
            mimic::read(&spec.paths, map, issues)?,
        ),
        "vindr" => (
            "vindr",
            "VinDr-CXR",
            vindr::read_vindr(&spec.paths, map, issues)?,
        ),
        "rsna" => (
            "rsna",
            "RSNA Pneumonia Detection Challenge 2018",
            rsna::read_rsna(&spec.paths, map, issues)?,
        ),
        "siim" => (
            "siim",
            "SIIM-ACR Pneumothorax Segmentation",
            siim::read_siim(&spec.paths, map, issues)?,
        ),
        "openi" => (
            "openi",
            "OpenI (Indiana University chest X-rays)",
            openi::read_openi(&spec.paths, map, issues)?,
        ),
        other => {
            return Err(Error::Usage(format!(
                "unknown dataset '{other}'; known datasets: {}",
                KNOWN.join(", ")
            )));
        }
    };
    let info = DatasetInfo {
        dataset,
        title: title.to_string(),
        source_files: spec
            .paths
            .iter()
            .map(|p| crate::input::csv::source_name(p))
            .collect(),
        label_sources: fields::label_sources(&rows.labels),
    };
    Ok((rows, info))
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn read_dispatches_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "train.csv",
            "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices\n\
             CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,\n",
        );
        let spec = DatasetSpec {
            name: "chexpert".into(),
            paths: vec![p.clone()],
        };
        let map = LabelMap::default();
        let (rows, info) = read(&spec, &map, &mut Issues::default()).unwrap();
        assert_eq!(rows.images.len(), 1);
        assert_eq!(info.dataset, "chexpert");
        assert_eq!(info.source_files, ["train.csv"]);
        assert_eq!(info.label_sources, ["chexpert"]);

        // The CheXpert file given as PadChest: an input error naming file and columns.
        let spec = DatasetSpec {
            name: "padchest".into(),
            paths: vec![p.clone()],
        };
        let e = read(&spec, &map, &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(matches!(e, Error::Input { .. }));
        assert!(e.to_string().contains("train.csv") && e.to_string().contains("'ImageID'"));

        let spec = DatasetSpec {
            name: "nosuch".into(),
            paths: vec![p],
        };
        let e = read(&spec, &map, &mut Issues::default()).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(e.to_string().contains("chexpert, mimic, padchest"), "{e}");
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixture helpers for the reader tests.
    use std::path::{Path, PathBuf};

    use crate::input::issues::Issues;

    /// Writes `text` to `dir/name` and returns the path.
    pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `text` gzip-compressed to `dir/name`.
    pub fn write_gz(dir: &Path, name: &str, text: &str) -> PathBuf {
        use std::io::Write;
        let p = dir.join(name);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        p
    }

    /// (line, field, value) of every issue; None becomes "".
    pub fn issue_keys(issues: &Issues) -> Vec<(i64, String, String)> {
        issues
            .rows()
            .iter()
            .map(|i| {
                (
                    i.line.unwrap_or(0),
                    i.field.clone().unwrap_or_default(),
                    i.value.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Whether `keys` has (line, field, value).
    pub fn has(keys: &[(i64, String, String)], line: i64, field: &str, value: &str) -> bool {
        keys.iter()
            .any(|(l, f, v)| *l == line && f == field && v == value)
    }

    /// The shared real files (see [`super::testutil::real_dir`]).
    pub fn shared_datasets() -> Option<PathBuf> {
        super::testutil::real_dir()
    }

    /// CPU seconds used by this process so far (user + system, all threads), from
    /// /proc/self/stat; 0 where unavailable. Timings of the real-file tests report it
    /// beside wall time, which is meaningless on a loaded machine.
    pub fn cpu_seconds() -> f64 {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return 0.0;
        };
        // Fields after the command name (which is in parentheses): utime is the 12th,
        // stime the 13th, in clock ticks (100 per second on Linux).
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (tick(11) + tick(12)) / 100.0
    }

    /// Number of distinct values.
    pub fn distinct<T: std::hash::Hash + Eq>(it: impl Iterator<Item = T>) -> usize {
        it.collect::<std::collections::HashSet<_>>().len()
    }
}
