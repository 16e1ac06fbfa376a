//! NIH ChestX-ray14 → the cross-dataset tables, from the already-cleaned metadata
//! ([`Image`]) and Google's expert labels ([`ExpertRow`]).
//!
//! * `image_id` = `path` = `image_index`; `patient_id` = the patient number as text.
//! * `study_id` = `{patient}/{follow_up}`: a follow-up is one visit of the patient,
//!   which is what a study is in the other datasets (CheXpert `patient00001/study1`).
//! * view `PA`/`AP` (frontal), sex, age and split as cleaned by the NIH ingest.
//! * labels: one row per finding with value 1, raw label = the finding's name (the NIH
//!   findings are the vocabulary itself, so no map is consulted); an image without
//!   findings gets one `No Finding` row with a NULL finding.
//! * Google 2019 (`google_2019`): each expert-labelled image gets a row per adjudicated
//!   label it has (1 or 0): `Fracture`, `Pneumothorax`, `Airspace opacity` →
//!   Lung_Opacity, `Nodule or mass` → NULL (no single finding; as TorchXRayVision).

use crate::datasets::{DatasetRows, ImageRow, Interner, LabelRow, Shared};
use crate::findings::NO_FINDING;
use crate::ingest::expert::ExpertRow;
use crate::ingest::metadata::Image;

/// Dataset name.
pub const NAME: &str = "nih";
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

/// `xr_images` and `xr_labels` rows of one NIH label release (`nih_2020`/`nih_2017`).
pub fn to_rows(images: &[Image], source: &str) -> DatasetRows {
    DatasetRows {
        images: images.iter().map(image_row).collect(),
        labels: labels_only(images, source),
        ..Default::default()
    }
}

/// The `xr_labels` rows of a second label release over the same images.
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
        if img.labels.is_empty() {
            out.push(row(NO_FINDING, None));
        }
        for &f in &img.labels {
            out.push(row(f, Some(f)));
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
    ImageRow {
        dataset: NAME,
        image_id: img.image_index.clone(),
        patient_id: Some(img.patient_id.to_string()),
        study_id: Some(format!("{}/{}", img.patient_id, img.follow_up)),
        study_order: Some(i64::from(img.follow_up)),
        view: img.view_position,
        frontal: crate::datasets::common::frontal_of(img.view_position),
        sex: img.sex,
        age: img.age.map(f32::from),
        split: img.split.map(str::to_string),
        path: Some(img.image_index.clone()),
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
            finding_labels: labels.join("|"),
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
