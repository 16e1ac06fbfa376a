//! Other chest X-ray datasets beside NIH, and NIH itself, as rows of the cross-dataset
//! tables `dataset_images`, `dataset_labels`, `dataset_boxes`, `reports` and `datasets`
//! (docs/DATASETS.md). Each reader turns one release's files into [`DatasetRows`];
//! the warehouse module writes them.

pub mod chexpert;
pub mod common;
pub mod label_map;
pub mod mimic;
pub mod nih;

pub mod padchest;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::input::issues::Issues;
pub use label_map::LabelMap;

pub mod agree;
pub mod openi;
pub mod rsna;
pub mod siim;
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

/// One row of `dataset_images`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub dataset: &'static str,
    /// Shared with the image's labels (and its path where the id is the path).
    pub image_id: Shared,
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
    pub path: Option<Shared>,
}

/// Text that many rows repeat (an image's id in each of its labels, a source, a raw
/// label): one allocation shared by all of them. A dataset has millions of labels
/// and a few hundred distinct sources and raw labels.
pub type Shared = std::sync::Arc<str>;

/// Hands out one [`Shared`] per distinct text.
#[derive(Debug, Default)]
pub struct Interner(std::collections::HashSet<Shared>);

impl Interner {
    /// The shared copy of `text`.
    pub fn get(&mut self, text: &str) -> Shared {
        if let Some(s) = self.0.get(text) {
            return s.clone();
        }
        let s: Shared = text.into();
        self.0.insert(s.clone());
        s
    }
}

/// One row of `dataset_labels`: a label a source states about an image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    pub dataset: &'static str,
    pub image_id: Shared,
    pub source: Shared,
    pub raw_label: Shared,
    /// The finding by the label map; None when the map keeps it unmapped.
    pub finding: Option<&'static str>,
    /// 1 positive, 0 negative, -1 uncertain.
    pub value: i8,
}

/// One row of `dataset_boxes`: a box or a mask region.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxRow {
    pub dataset: &'static str,
    pub image_id: String,
    pub source: String,
    pub raw_label: String,
    pub finding: Option<&'static str>,
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
    pub images: Vec<ImageRow>,
    pub labels: Vec<LabelRow>,
    pub boxes: Vec<BoxRow>,
    pub reports: Vec<Report>,
}

impl DatasetRows {
    /// Gives back the vectors' unused capacity.
    pub fn shrink_to_fit(&mut self) {
        self.images.shrink_to_fit();
        self.labels.shrink_to_fit();
        self.boxes.shrink_to_fit();
        self.reports.shrink_to_fit();
    }
}

/// A `--dataset NAME=PATH[,PATH...]` request.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub name: String,
    pub paths: Vec<PathBuf>,
}

/// How a dataset's files (`--dataset NAME=PATH[,PATH...]`) become rows.
pub type Reader = fn(&[PathBuf], &LabelMap, &mut Issues) -> Result<DatasetRows>;

/// One dataset cxr reads: everything ingest, cohorts, exports, plots and messages
/// need to know about it. Adding a dataset is a reader module and one entry of
/// [`DATASETS`].
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// The name in `--dataset`, in the `dataset` column and in queries.
    pub name: &'static str,
    /// The release, as the `datasets` table titles it.
    pub title: &'static str,
    /// Its reader; None for NIH, which `ingest` reads from its own flags (metadata,
    /// boxes, expert labels, official splits).
    pub read: Option<Reader>,
    /// The raw label by which the dataset states an image normal (no finding at all),
    /// as its source spells it; None where it makes no such statement (RSNA and SIIM
    /// label one finding each: whether their images are normal is unknown).
    pub normal_label: Option<&'static str>,
    /// Raw labels a normal statement allows beside it: CheXpert's and MIMIC's labeler
    /// set `No Finding` whatever `Support Devices` says (a device is not a finding).
    pub beside_normal: Option<&'static str>,
    /// The side in pixels of the square originals its boxes are measured in, where
    /// every image has the same (VinDr's sizes vary and are not in its CSV).
    pub box_image_side: Option<u32>,
    /// Where each reader (radiologist) of an image is a label source of its own.
    pub readers: Option<Readers>,
    /// How an image file's path gives its `image_id` (`ingest --images`).
    pub image_naming: ImageNaming,
    /// Whether its files order a patient's studies (NIH's follow-up number,
    /// CheXpert's study number, a study date): where not, it has no follow-up.
    pub orders_studies: bool,
}

/// How the path of an image file (a member of an archive, or a file in a folder,
/// the folder's own name first) gives the image's id in its dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNaming {
    /// The file name (`00000001_000.png`; PadChest's `ImageID`).
    FileName,
    /// The file name without its extension (a DICOM's `<id>.dcm`, MIMIC's
    /// `<dicom_id>.jpg`, OpenI's `<imageid>.png`).
    Stem,
    /// The path from its last folder whose name starts with this (CheXpert's
    /// `Path`, `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`,
    /// inside a folder `/data/CheXpert` too); the whole path when no folder does.
    PathFrom(&'static str),
}

impl ImageNaming {
    /// The image id of the file at `path` (`/`-separated; empty and `.` folders,
    /// as in `a//b` or `./a`, are no folders).
    pub fn image_id(self, path: &str) -> String {
        let parts: Vec<&str> = path
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        let name = parts.last().copied().unwrap_or_default();
        match self {
            ImageNaming::FileName => name.to_ascii_lowercase(),
            ImageNaming::Stem => name
                .rsplit_once('.')
                .map_or(name, |(stem, _)| stem)
                .to_string(),
            ImageNaming::PathFrom(prefix) => {
                // The dataset's own folder as it spells it, the path below it in
                // lower case as its CSV writes it.
                let start = parts.iter().rposition(|part| part.starts_with(prefix));
                let (top, below) = match start {
                    Some(at) => (Some(parts[at]), &parts[at + 1..]),
                    None => (None, &parts[..]),
                };
                top.into_iter()
                    .map(str::to_string)
                    .chain(below.iter().map(|part| part.to_ascii_lowercase()))
                    .collect::<Vec<_>>()
                    .join("/")
            }
        }
    }
}

/// A dataset's readers and the label sources of their votes.
#[derive(Debug, Clone, Copy)]
pub struct Readers {
    /// The sources that are readers start with this (`vindr_R` of `vindr_R8`).
    pub source_prefix: &'static str,
    /// The sources of the votes, in the order of [`VOTE_RULES`]: a statement counts
    /// when any reader of the image makes it, when more than half do, when all do.
    pub votes: [&'static str; 3],
}

impl Readers {
    /// Whether `source` is one of these readers or one of their votes: sources that
    /// share one vocabulary.
    pub fn share(&self, source: &str) -> bool {
        source.starts_with(self.source_prefix) || self.votes.contains(&source)
    }
}

/// The label vocabulary a source belongs to: the source itself, except that the
/// readers of a multi-reader dataset and their votes share one (each reader was
/// asked about every finding the dataset labels, whether or not they ever marked
/// it): a finding any reader labels is known, negative unless stated, in every image
/// the readers read, for each reader and each vote.
pub fn vocabulary<'a>(dataset: &str, source: &'a str) -> &'a str {
    match self::dataset(dataset).and_then(|d| d.readers) {
        Some(r) if r.share(source) => r.source_prefix,
        _ => source,
    }
}

/// The findings a source states, present or absent, for every image it labels,
/// as a mask of [`XR_FINDINGS`]: an NIH release's 14 (a metadata file of a few
/// images may show no Pneumonia, which is still absent in each, not unknown). Every
/// other source knows what it labels in some image of its dataset, read from its
/// labels: 0 here.
pub fn labels_every_image(dataset: &str, source: &str) -> i32 {
    if dataset == nih::NAME && nih::RELEASE_SOURCES.contains(&source) {
        nih_release_mask()
    } else {
        0
    }
}

/// [`labels_every_image`] as SQL over a row's `dataset` and `source` columns
/// (qualified by `table`).
pub fn labels_every_image_sql(table: &str) -> String {
    let sources: Vec<String> = nih::RELEASE_SOURCES
        .iter()
        .map(|s| format!("'{s}'"))
        .collect();
    format!(
        "CAST(CASE WHEN {table}.dataset = '{}' AND {table}.source IN ({}) THEN {} ELSE 0 END AS INT)",
        nih::NAME,
        sources.join(", "),
        nih_release_mask()
    )
}

/// The bits of NIH's 14 findings among [`XR_FINDINGS`].
fn nih_release_mask() -> i32 {
    XR_FINDINGS
        .iter()
        .enumerate()
        .filter(|(_, f)| crate::findings::FINDINGS.contains(f))
        .fold(0, |mask, (k, _)| mask | 1 << k)
}

/// [`vocabulary`] as SQL over a row's `dataset` and `source` columns (`s.`-qualified
/// by `table`).
pub fn vocabulary_sql(table: &str) -> String {
    let cases: Vec<String> = DATASETS
        .iter()
        .filter_map(|d| d.readers.map(|r| (d.name, r)))
        .map(|(name, readers)| {
            let prefix = readers.source_prefix;
            let votes: Vec<String> = readers.votes.iter().map(|v| format!("'{v}'")).collect();
            let votes = votes.join(", ");
            format!(
                "WHEN {table}.dataset = '{name}' AND (starts_with({table}.source, '{prefix}') OR {table}.source IN ({votes})) THEN '{prefix}'"
            )
        })
        .collect();
    if cases.is_empty() {
        format!("{table}.source")
    } else {
        format!("CASE {} ELSE {table}.source END", cases.join(" "))
    }
}

/// The rules of the reader votes: a statement (a finding positive, uncertain or
/// negative; the image normal; another label) counts when at least one reader of the
/// image makes it, when more than half of them do, when every one does.
pub const VOTE_RULES: [&str; 3] = ["any", "majority", "all"];

/// Every dataset cxr reads, NIH first.
pub const DATASETS: [Dataset; 8] = [
    Dataset {
        name: nih::NAME,
        title: "NIH ChestX-ray14",
        // Read from its own flags (`--metadata`, `--bbox`, `--expert`, `--splits`)
        // by `nih::read`, into its own tables as well as the cross-dataset ones.
        read: None,
        normal_label: Some("No Finding"),
        beside_normal: None,
        box_image_side: Some(1024),
        readers: None,
        image_naming: ImageNaming::FileName,
        orders_studies: true,
    },
    Dataset {
        name: chexpert::NAME,
        title: "CheXpert v1.0",
        read: Some(chexpert::read),
        normal_label: Some("No Finding"),
        beside_normal: Some("Support Devices"),
        box_image_side: None,
        readers: None,
        image_naming: ImageNaming::PathFrom("CheXpert-v1.0"),
        orders_studies: true,
    },
    Dataset {
        name: mimic::NAME,
        title: "MIMIC-CXR-JPG 2.0.0",
        read: Some(mimic::read),
        normal_label: Some("No Finding"),
        beside_normal: Some("Support Devices"),
        box_image_side: None,
        readers: None,
        image_naming: ImageNaming::Stem,
        orders_studies: true,
    },
    Dataset {
        name: padchest::NAME,
        title: "PadChest",
        read: Some(padchest::read),
        normal_label: Some("normal"),
        beside_normal: None,
        box_image_side: None,
        readers: None,
        image_naming: ImageNaming::FileName,
        orders_studies: true,
    },
    Dataset {
        name: vindr::NAME,
        title: "VinDr-CXR",
        read: Some(vindr::read),
        normal_label: Some("No finding"),
        beside_normal: None,
        box_image_side: None,
        readers: Some(Readers {
            source_prefix: "vindr_R",
            votes: ["vindr_any", "vindr_majority", "vindr_all"],
        }),
        image_naming: ImageNaming::Stem,
        orders_studies: false,
    },
    Dataset {
        name: rsna::NAME,
        title: "RSNA Pneumonia Detection Challenge 2018",
        read: Some(rsna::read),
        normal_label: None,
        beside_normal: None,
        box_image_side: Some(1024),
        readers: None,
        image_naming: ImageNaming::Stem,
        orders_studies: false,
    },
    Dataset {
        name: siim::NAME,
        title: "SIIM-ACR Pneumothorax Segmentation",
        read: Some(siim::read),
        normal_label: None,
        beside_normal: None,
        box_image_side: Some(1024),
        readers: None,
        image_naming: ImageNaming::Stem,
        orders_studies: false,
    },
    Dataset {
        name: openi::NAME,
        title: "OpenI (Indiana University chest X-rays)",
        read: Some(openi::read),
        normal_label: Some("normal"),
        beside_normal: None,
        box_image_side: None,
        readers: None,
        image_naming: ImageNaming::Stem,
        orders_studies: false,
    },
];

/// SQL for the width and the height, in pixels, of the original image of each row of
/// `dataset_boxes` aliased `boxes`: the dataset's one size where all its originals share
/// it, else the size measured from the image's DICOM file in `pixel_stats` aliased
/// `pixels` (joined on dataset and image_id; a resized PNG or JPEG copy is not the
/// original the boxes are drawn on). NULL where neither is known, and always NULL
/// when `measured` is false: the warehouse has no such `pixel_stats`.
pub fn box_frame_sql(boxes: &str, pixels: &str, measured: bool) -> (String, String) {
    let fixed: Vec<String> = DATASETS
        .iter()
        .filter_map(|d| {
            let side = d.box_image_side?;
            Some(format!("WHEN '{}' THEN {side}.0", d.name))
        })
        .collect();
    let fixed = format!("CASE {boxes}.dataset {} END", fixed.join(" "));
    let side = |column: &str| {
        if measured {
            format!(
                "COALESCE({fixed}, CASE WHEN {pixels}.format = 'dicom' THEN CAST({pixels}.{column} AS DOUBLE) END)"
            )
        } else {
            fixed.clone()
        }
    };
    (side("width"), side("height"))
}

#[cfg(test)]
mod naming_tests {
    use super::ImageNaming::*;

    #[test]
    fn names_are_read_in_lower_case() {
        assert_eq!(FileName.image_id("x/00000003_004.PNG"), "00000003_004.png");
        assert_eq!(
            PathFrom("CheXpert-v1.0").image_id("d/CheXpert-v1.0/train/p1/s1/view1_frontal.JPG"),
            "CheXpert-v1.0/train/p1/s1/view1_frontal.jpg"
        );
        assert_eq!(FileName.image_id("README"), "readme");
    }

    #[test]
    fn image_ids_from_paths() {
        assert_eq!(
            FileName.image_id("images/00000001_000.png"),
            "00000001_000.png"
        );
        assert_eq!(
            Stem.image_id("train/0005e8e3701dfb1dd93d53e2ff537b6e.dicom"),
            "0005e8e3701dfb1dd93d53e2ff537b6e"
        );
        let chexpert = PathFrom("CheXpert-v1.0");
        let id = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg";
        assert_eq!(chexpert.image_id(id), id);
        assert_eq!(chexpert.image_id(&format!("CheXpert/{id}")), id);
        assert_eq!(
            chexpert.image_id("train/patient00001/study1/view1_frontal.jpg"),
            "train/patient00001/study1/view1_frontal.jpg"
        );
        // Names copied by tools that upper-case them, doubled and `.` folders.
        assert_eq!(
            chexpert
                .image_id("./x//CheXpert-v1.0-small/TRAIN/patient00001//study1/VIEW1_FRONTAL.JPG"),
            id
        );
        assert_eq!(
            FileName.image_id("1/135803415504923515076821959678074435083_FZIS7D.PNG"),
            "135803415504923515076821959678074435083_fzis7d.png"
        );
    }
}

/// The names of [`DATASETS`], in order.
pub const ALL: [&str; 8] = {
    let mut out = [""; 8];
    let mut i = 0;
    while i < 8 {
        out[i] = DATASETS[i].name;
        i += 1;
    }
    out
};

/// A dataset's name as the registry and the warehouse write it, from a name given
/// in any case (`NIH`, ` siim`): every flag and parameter that names a dataset
/// reads it through this.
pub fn dataset_name(given: &str) -> String {
    given.trim().to_ascii_lowercase()
}

/// The dataset called `name` (in any case).
pub fn dataset(name: &str) -> Option<&'static Dataset> {
    let name = dataset_name(name);
    DATASETS.iter().find(|d| d.name == name)
}

/// The names of the datasets `--dataset` reads (all but NIH).
pub fn readable() -> Vec<&'static str> {
    DATASETS
        .iter()
        .filter(|d| d.read.is_some())
        .map(|d| d.name)
        .collect()
}

/// Whether `dataset` states images normal (has a normal label).
pub fn states_normal(dataset: &str) -> bool {
    self::dataset(dataset).is_some_and(|d| d.normal_label.is_some())
}

/// Reads one `--dataset NAME=PATH[,PATH...]` request into rows and its `datasets` row.
/// A file that is not of the named dataset is an input error (exit 2) naming the file
/// and its missing columns, raised before any row is returned.
pub fn read(
    spec: &DatasetSpec,
    map: &LabelMap,
    issues: &mut Issues,
) -> Result<(DatasetRows, DatasetInfo)> {
    let Some((entry, read)) = dataset(&spec.name).and_then(|d| Some((d, d.read?))) else {
        return Err(Error::Usage(format!(
            "unknown dataset '{}'; known datasets: {}",
            spec.name,
            readable().join(", ")
        )));
    };
    let mut rows = read(&spec.paths, map, issues)?;
    // The rows wait in memory while the dataset before them is written: without the
    // slack of their vectors' doubling (up to half of CheXpert's 850,000 labels).
    rows.shrink_to_fit();
    let info = DatasetInfo {
        dataset: entry.name,
        title: entry.title.to_string(),
        source_files: spec
            .paths
            .iter()
            .map(|p| crate::input::csv::source_name(p))
            .collect(),
        label_sources: common::label_sources(&rows.labels),
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
#[path = "../../tests/common/shared.rs"]
mod shared_files;

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixture helpers for the reader tests.
    use std::path::{Path, PathBuf};

    use crate::input::issues::Issues;

    /// Writes `bytes` as `dir/name` and returns its path.
    pub fn write_fixture(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Writes `text` to `dir/name` and returns the path.
    pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        write_fixture(dir, name, text.as_bytes())
    }

    /// Gzips `bytes`.
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes `text` gzip-compressed to `dir/name`.
    pub fn write_gz(dir: &Path, name: &str, text: &str) -> PathBuf {
        write_fixture(dir, name, &gzip(text.as_bytes()))
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

    /// The folder of real dataset files, when it exists (see `tests/common/shared.rs`).
    pub use super::shared_files::shared_datasets;

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
