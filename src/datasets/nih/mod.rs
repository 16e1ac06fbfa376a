//! NIH ChestX-ray14, one dataset reader among the others: its files (the metadata
//! CSV, the official split lists, the 2017 boxes, Google's expert labels) read and
//! cleaned ([`read`]; each file's own module), then as rows of the cross-dataset
//! tables ([`Release::rows`]). Ingest also writes NIH's own tables (`images`,
//! `findings`, `patients`, `bboxes`, `expert_labels`, ...) from the same [`Release`].
//!
//! * `image_id` = `path` = `image_index`; `patient_id` = the patient number as text.
//! * `study_id` = `{patient}/{follow_up}`: a follow-up is one visit of the patient,
//!   which is what a study is in the other datasets (CheXpert `patient00001/study1`).
//! * view `PA`/`AP` (frontal), sex, age and split as cleaned by the NIH ingest.
//! * labels: one row per finding with value 1, raw label = the finding's name (the NIH
//!   findings are the vocabulary itself, so no map is consulted); an image without
//!   findings gets one `No Finding` row with a NULL finding; a label outside the 14 a
//!   row of its own with a NULL finding (the image is then not normal).
//! * Google 2019 (`google_2019`): each expert-labelled image gets a row per adjudicated
//!   label it has (1 or 0): `Fracture`, `Pneumothorax`, `Airspace opacity` →
//!   Lung_Opacity, `Nodule or mass` → NULL (no single finding; as TorchXRayVision).
//! * boxes: the 2017 list (`nih_bbox_2017`), in pixels of the 1024-pixel originals.

pub mod boxes;
pub mod expert;
pub mod metadata;
pub mod splits;

use std::path::{Path, PathBuf};

use polars::prelude::PlHashMap;

use self::expert::ExpertRow;
use self::metadata::Image;
use crate::datasets::{BoxRow, DatasetInfo};
use crate::datasets::{DatasetRows, ImageRow, Interner, LabelRow, Shared};
use crate::error::Result;
use crate::findings::NO_FINDING;
use crate::input::csv::{self, CsvTable};
use crate::input::issues::Issues;
use crate::warehouse::InputFile;

/// Dataset name.
pub const NAME: &str = "nih";
/// Source of the 2017 boxes.
pub const BOX_SOURCE: &str = "nih_bbox_2017";
/// The label sources of the two metadata releases (2017, 2020). Each lists an
/// image's findings among the 14, so each of the 14 it does not list is absent.
pub const RELEASE_SOURCES: [&str; 2] = ["nih_2017", "nih_2020"];

/// The files of the release that an ingest reads.
#[derive(Debug, Clone)]
pub struct Files {
    /// `Data_Entry_2017*.csv[.gz]`.
    pub metadata: PathBuf,
    /// The official train_val and test lists, if any.
    pub splits: Option<[PathBuf; 2]>,
    /// `BBox_List_2017.csv`, if any.
    pub bbox: Option<PathBuf>,
    /// Google's expert labels, if any.
    pub expert: Option<PathBuf>,
}

/// The release read and cleaned: every image with its split, the boxes and the
/// expert labels matched against the images, and each file described for the
/// manifest.
pub struct Release {
    pub images: Vec<Image>,
    pub revision: metadata::Revision,
    pub boxes: Vec<boxes::BBox>,
    pub experts: Vec<ExpertRow>,
    /// Each file read (size, SHA-256), metadata first.
    pub inputs: Vec<InputFile>,
    /// The metadata file's name, as `data_issues` and `datasets` name it.
    pub metadata_name: String,
    /// The file names of the release as the `datasets` table lists them.
    pub source_files: Vec<String>,
}

/// Reads the release: the metadata and, on another thread meanwhile, the other
/// files (which do not need the metadata until they are matched against it).
pub fn read(files: &Files, issues: &mut Issues) -> Result<Release> {
    let (meta, side) = std::thread::scope(|s| {
        let side = s.spawn(|| read_side(files));
        let meta = metadata::read(&files.metadata, issues);
        (meta, side.join().expect("side input reader does not panic"))
    });
    let (meta, side) = (meta?, side?);
    issues.extend(side.issues);
    let mut images = meta.images;
    if let Some(lists) = &side.lists {
        let sources = files
            .splits
            .as_ref()
            .map(|[a, b]| [csv::source_name(a), csv::source_name(b)])
            .unwrap_or_default();
        splits::assign(lists, &sources, &mut images, issues);
    }
    let by_name: PlHashMap<&str, &Image> =
        images.iter().map(|i| (i.image_index.as_str(), i)).collect();
    let boxes = match &side.bbox {
        Some(t) => boxes::clean(t, &by_name, issues)?,
        None => Vec::new(),
    };
    let experts = match &side.expert {
        Some(t) => expert::clean(t, &by_name, issues)?,
        None => Vec::new(),
    };
    drop(by_name);
    let mut source_files = vec![csv::source_name(&files.metadata)];
    source_files.extend(files.expert.iter().map(|p| csv::source_name(p)));
    source_files.extend(files.bbox.iter().map(|p| csv::source_name(p)));
    Ok(Release {
        images,
        revision: meta.revision,
        boxes,
        experts,
        inputs: side.inputs,
        metadata_name: csv::source_name(&files.metadata),
        source_files,
    })
}

/// The other files of the release: parsed, not yet matched against the metadata.
struct Side {
    lists: Option<[Vec<(u64, String)>; 2]>,
    bbox: Option<CsvTable>,
    expert: Option<CsvTable>,
    inputs: Vec<InputFile>,
    issues: Issues,
}

/// Describes every file (size, SHA-256) and parses the box list, the expert labels
/// and the split lists.
fn read_side(files: &Files) -> Result<Side> {
    let mut side = Side {
        lists: None,
        bbox: None,
        expert: None,
        inputs: vec![InputFile::describe("metadata", &files.metadata)?],
        issues: Issues::default(),
    };
    if let Some([train_val, test]) = &files.splits {
        side.inputs
            .push(InputFile::describe("split_train_val", train_val)?);
        side.inputs.push(InputFile::describe("split_test", test)?);
        let same = (
            std::fs::canonicalize(train_val),
            std::fs::canonicalize(test),
        );
        if matches!(same, (Ok(a), Ok(b)) if a == b) {
            return Err(crate::error::Error::input(
                test,
                "the same file as the train_val list: --splits takes the two lists, train_val then test (nothing was written)",
            ));
        }
        let lists = [csv::read_list(train_val)?, csv::read_list(test)?];
        for (list, path) in lists.iter().zip([train_val, test]) {
            if list.is_empty() {
                return Err(crate::error::Error::input(
                    path,
                    "no image names: the split list is empty (nothing was written)",
                ));
            }
        }
        side.lists = Some(lists);
    }
    if let Some(p) = &files.bbox {
        side.inputs.push(InputFile::describe("bbox", p)?);
        side.bbox = Some(CsvTable::read(p, &mut side.issues)?);
    }
    if let Some(p) = &files.expert {
        side.inputs.push(InputFile::describe("expert", p)?);
        side.expert = Some(CsvTable::read(p, &mut side.issues)?);
    }
    Ok(side)
}

impl Release {
    /// The release's rows of the cross-dataset tables: images, the labels of its own
    /// release and of the expert, the boxes; and its `datasets` row.
    pub fn rows(&self) -> (DatasetRows, DatasetInfo) {
        let source = self.revision.source();
        let mut rows = to_rows(&self.images, source);
        rows.labels.extend(expert_labels(&self.experts));
        rows.boxes.extend(self.boxes.iter().map(|b| BoxRow {
            dataset: NAME,
            image_id: b.image_index.clone(),
            source: BOX_SOURCE.into(),
            raw_label: b.label.to_string(),
            finding: Some(b.label),
            reader: None,
            x: b.xywh[0],
            y: b.xywh[1],
            w: b.xywh[2],
            h: b.xywh[3],
            area: None,
            mask_rle: None,
        }));
        let info = DatasetInfo {
            dataset: NAME,
            title: crate::datasets::dataset(NAME).map_or_else(String::new, |d| d.title.to_string()),
            source_files: self.source_files.clone(),
            label_sources: Vec::new(),
        };
        (rows, info)
    }
}

/// The other NIH label release (`--other-release`): its labels over the same
/// images, a second label source.
pub fn read_other_release(path: &Path, issues: &mut Issues) -> Result<(DatasetRows, DatasetInfo)> {
    // Only its labels are taken: what it says of ages, sexes or views (which no
    // table holds) is no issue of the warehouse's.
    let mut read_issues = Issues::default();
    let m = metadata::read(path, &mut read_issues)?;
    issues.extend(read_issues.retained(|issue| {
        issue.field.as_deref().is_none_or(|field| {
            matches!(
                crate::input::csv::squash(field).as_str(),
                "imageindex" | "findinglabels"
            )
        })
    }));
    let source = m.revision.source();
    let rows = DatasetRows {
        labels: labels_only(&m.images, source),
        ..Default::default()
    };
    let info = DatasetInfo {
        dataset: NAME,
        title: String::new(),
        source_files: vec![csv::source_name(path)],
        label_sources: vec![source.to_string()],
    };
    Ok((rows, info))
}
/// Source of the expert labels.
pub const GOOGLE_SOURCE: &str = "google_2019";

/// The four expert labels, as Google's file spells them, and their findings, in the
/// order of [`ExpertRow::flags`].
pub const GOOGLE_LABELS: [(&str, Option<&'static str>); 4] = [
    ("Fracture", Some("Fracture")),
    ("Pneumothorax", Some("Pneumothorax")),
    ("Airspace opacity", Some("Lung_Opacity")),
    ("Nodule or mass", None),
];

/// `dataset_images` and `dataset_labels` rows of one NIH label release (`nih_2020`/`nih_2017`).
pub fn to_rows(images: &[Image], source: &str) -> DatasetRows {
    DatasetRows {
        images: images.iter().map(image_row).collect(),
        labels: labels_only(images, source),
        ..Default::default()
    }
}

/// The `dataset_labels` rows of a second label release over the same images.
pub fn labels_only(images: &[Image], source: &str) -> Vec<LabelRow> {
    let mut out = Vec::with_capacity(images.len() * 2);
    let source = Shared::from(source);
    let mut raw = Interner::default();
    for img in images {
        let image_id = Shared::from(img.image_index.as_str());
        let mut row = |name: &str, finding: Option<&'static str>| LabelRow {
            dataset: NAME,
            image_id: image_id.clone(),
            source: source.clone(),
            raw_label: raw.get(name),
            finding,
            value: 1,
        };
        if metadata::is_normal(img) {
            out.push(row(NO_FINDING, None));
        }
        for &f in &img.labels {
            out.push(row(f, Some(f)));
        }
        // A label outside the 14 is kept as the release wrote it, as other datasets'
        // unmapped labels are: positive, no finding, so the image is not normal.
        for other in
            metadata::unknown_labels(&img.finding_labels).take(metadata::MAX_UNKNOWN_LABELS)
        {
            out.push(row(other, None));
        }
    }
    out
}

/// The `google_2019` rows of the expert labels.
pub fn expert_labels(rows: &[ExpertRow]) -> Vec<LabelRow> {
    let mut out = Vec::with_capacity(rows.len() * 4);
    let source = Shared::from(GOOGLE_SOURCE);
    let raw_labels = GOOGLE_LABELS.map(|(raw, _)| Shared::from(raw));
    for r in rows {
        let image_id = Shared::from(r.image_index.as_str());
        for ((flag, (_, finding)), raw) in r.flags.iter().zip(GOOGLE_LABELS).zip(&raw_labels) {
            let Some(flag) = flag else { continue };
            out.push(LabelRow {
                dataset: NAME,
                image_id: image_id.clone(),
                source: source.clone(),
                raw_label: raw.clone(),
                finding,
                value: i8::from(*flag),
            });
        }
    }
    out
}

fn image_row(img: &Image) -> ImageRow {
    let image_id: Shared = img.image_index.as_str().into();
    ImageRow {
        dataset: NAME,
        image_id: image_id.clone(),
        patient_id: Some(img.patient_id.to_string()),
        study_id: Some(format!("{}/{}", img.patient_id, img.follow_up)),
        study_order: Some(i64::from(img.follow_up)),
        view: img.view_position,
        frontal: crate::datasets::common::frontal_of(img.view_position),
        sex: img.sex,
        age: img.age.map(f32::from),
        split: img.split.map(str::to_string),
        path: Some(image_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(index: &str, patient: i32, follow: i32, labels: Vec<&'static str>) -> Image {
        Image {
            image_index: index.to_string(),
            patient_id: patient,
            follow_up: follow,
            age: Some(58),
            sex: Some("M"),
            view_position: Some("PA"),
            orig_width: None,
            orig_height: None,
            pixel_spacing_x: None,
            pixel_spacing_y: None,
            finding_labels: if labels.is_empty() {
                "No Finding".into()
            } else {
                labels.join("|")
            },
            labels,
            split: Some("test"),
            line: 2,
        }
    }

    #[test]
    fn images_and_labels() {
        let imgs = [
            image("00000001_000.png", 1, 0, vec!["Cardiomegaly", "Effusion"]),
            image("00000001_001.png", 1, 1, vec![]),
        ];
        let rows = to_rows(&imgs, "nih_2020");
        assert_eq!(rows.images.len(), 2);
        let i = &rows.images[0];
        assert_eq!(i.dataset, "nih");
        assert_eq!(i.patient_id.as_deref(), Some("1"));
        assert_eq!(i.study_id.as_deref(), Some("1/0"));
        assert_eq!(
            (i.view, i.frontal, i.sex, i.age),
            (Some("PA"), Some(true), Some("M"), Some(58.0))
        );
        assert_eq!(
            (i.split.as_deref(), i.path.as_deref()),
            (Some("test"), Some("00000001_000.png"))
        );
        let l: Vec<_> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.source, &*l.raw_label, l.finding, l.value))
            .collect();
        assert_eq!(
            l,
            [
                (
                    "00000001_000.png",
                    "nih_2020",
                    "Cardiomegaly",
                    Some("Cardiomegaly"),
                    1
                ),
                (
                    "00000001_000.png",
                    "nih_2020",
                    "Effusion",
                    Some("Effusion"),
                    1
                ),
                ("00000001_001.png", "nih_2020", "No Finding", None, 1),
            ]
        );
        assert_eq!(labels_only(&imgs, "nih_2017").len(), 3);
        assert!(
            labels_only(&imgs, "nih_2017")
                .iter()
                .all(|l| &*l.source == "nih_2017")
        );
        // The NIH findings are in the vocabulary, and the shipped map agrees.
        let map = crate::datasets::LabelMap::default();
        for f in crate::findings::FINDINGS {
            assert_eq!(map.lookup("nih", f).finding(), Some(f));
        }
        for (raw, f) in GOOGLE_LABELS {
            assert_eq!(map.lookup("nih", raw).finding(), f, "{raw}");
        }
    }

    #[test]
    fn google_labels() {
        let rows = [ExpertRow {
            image_index: "00000003_000.png".into(),
            flags: [Some(true), Some(false), None, Some(true)],
            set_id: Some("test".into()),
        }];
        let l: Vec<_> = expert_labels(&rows)
            .into_iter()
            .map(|l| {
                (
                    l.source.to_string(),
                    l.raw_label.to_string(),
                    l.finding,
                    l.value,
                )
            })
            .collect();
        assert_eq!(
            l,
            [
                (
                    "google_2019".to_string(),
                    "Fracture".to_string(),
                    Some("Fracture"),
                    1
                ),
                (
                    "google_2019".to_string(),
                    "Pneumothorax".to_string(),
                    Some("Pneumothorax"),
                    0
                ),
                (
                    "google_2019".to_string(),
                    "Nodule or mass".to_string(),
                    None,
                    1
                ),
            ]
        );
    }
}
