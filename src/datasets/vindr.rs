//! VinDr-CXR (VinBigData challenge) training annotations:
//! `image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max`, one row per box or
//! per `No finding` vote, each image read by three of 17 radiologists.
//!
//! - `dataset_images`: one row per image. The file has no sex, age or view: those are
//!   NULL (the images are frontal chest films, but the file does not say which view,
//!   so `view` and `frontal` stay NULL rather than guessed). `path` is
//!   `train/<image_id>.dicom`, as the release (and TorchXRayVision) lays it out.
//! - `dataset_labels`: per reader, source `vindr_<rad_id>` (`vindr_R1` … `vindr_R17`), one
//!   row per distinct (image, reader, class_name), value 1, `No finding` included
//!   (its finding NULL by the map).
//! - `dataset_boxes`: every box, source `vindr_<rad_id>`, reader = `rad_id`, x = x_min,
//!   y = y_min, w = x_max − x_min, h = y_max − y_min. A coordinate that is not a
//!   finite number, negative, or an empty or inverted box drops the box with a `data_issues`
//!   row (the reader's label stays); coordinates on a `No finding` row are ignored
//!   with one. A box repeated (same image, reader, label in any case and coordinates as
//!   numbers) is skipped with one.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::Result;
use crate::input::issues::Issues;

use crate::datasets::common::{
    BoxKey, ImageList, RepeatedRows, bare_image, one_path, parse_finite, read_columns,
};
use crate::datasets::label_map::{LabelMap, Resolver, normalised, same_label};
use crate::datasets::{BoxRow, DatasetRows, Interner, LabelRow};

/// The dataset name.
pub const NAME: &str = "vindr";
/// The class that is a vote for no finding (no box).
pub const NO_FINDING: &str = "No finding";

/// Reads the VinDr-CXR annotation CSV (`paths` holds exactly that file; plain or gzip).
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    let path = one_path(NAME, paths)?;
    let (t, c) = read_columns(
        path,
        issues,
        "VinDr-CXR",
        &[
            ("image_id", &["imageid"]),
            ("class_name", &["classname"]),
            ("rad_id", &["radid"]),
            ("x_min", &["xmin"]),
            ("y_min", &["ymin"]),
            ("x_max", &["xmax"]),
            ("y_max", &["ymax"]),
        ],
    )?;
    let cols: Vec<Vec<Option<&str>>> = c.iter().map(|&i| t.values(i)).collect::<Result<_>>()?;
    let names: Vec<&str> = c.iter().map(|&i| t.name(i)).collect();
    let src = t.source.clone();
    let mut resolver = Resolver::new(map, NAME);
    let mut images = ImageList::default();
    let mut rows = DatasetRows::default();
    let mut seen: HashSet<(usize, String, String)> = HashSet::new();
    let mut repeated = RepeatedRows::default();
    let mut shared = Interner::default();

    for (r, &line) in t.lines.iter().enumerate() {
        let Some(image_id) = cols[0][r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[0]),
                None,
                "no image_id; row skipped",
            );
            continue;
        };
        let (img, _) = images.add(bare_image(
            NAME,
            image_id,
            Some(format!("train/{image_id}.dicom").into()),
        ));
        let Some(class) = cols[1][r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[1]),
                None,
                "no class_name; row skipped",
            );
            continue;
        };
        let Some(rad) = cols[2][r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[2]),
                None,
                "no rad_id: the reader is unknown, row skipped",
            );
            continue;
        };
        // Readers are `R1` … `R17`: another id would be a source of its own that the
        // readers' statistics (`agree --readers`, the votes) never count.
        let Some(rad) = reader_id(rad) else {
            issues.push(
                &src,
                Some(line),
                Some(names[2]),
                Some(rad),
                "rad_id is not a reader id (R1, R2, ...): the reader is unknown, row skipped",
            );
            continue;
        };
        let source = format!("vindr_{rad}");
        let finding = resolver.finding(class, (&src, Some(line), names[1]), issues)?;
        if seen.insert((img, rad.clone(), normalised(class))) {
            rows.labels.push(LabelRow {
                dataset: NAME,
                image_id: shared.get(image_id),
                source: shared.get(&source),
                raw_label: shared.get(class),
                finding,
                value: 1,
            });
        }
        let raw: Vec<Option<&str>> = (3..7).map(|k| cols[k][r]).collect();
        if same_label(class, NO_FINDING) {
            if let Some(k) = raw.iter().position(Option::is_some) {
                issues.push(
                    &src,
                    Some(line),
                    Some(names[3 + k]),
                    raw[k],
                    "coordinates on a 'No finding' row; ignored, no box",
                );
            }
            continue;
        }
        if raw.iter().all(Option::is_none) {
            issues.push(
                &src,
                Some(line),
                Some(names[3]),
                None,
                "finding without coordinates: label kept, no box",
            );
            continue;
        }
        let mut v = [0f64; 4];
        let mut bad = None;
        for k in 0..4 {
            match raw[k].and_then(parse_finite) {
                Some(x) if x >= 0.0 => v[k] = x,
                Some(_) => {
                    bad = Some((k, "negative coordinate; box dropped"));
                    break;
                }
                None => {
                    bad = Some((k, "coordinate missing or not a finite number; box dropped"));
                    break;
                }
            }
        }
        if bad.is_none() {
            if v[2] <= v[0] {
                bad = Some((
                    2,
                    "x_max not above x_min (empty or inverted box); box dropped",
                ));
            } else if v[3] <= v[1] {
                bad = Some((
                    3,
                    "y_max not above y_min (empty or inverted box); box dropped",
                ));
            }
        }
        if let Some((k, what)) = bad {
            issues.push(&src, Some(line), Some(names[3 + k]), raw[k], what);
            continue;
        }
        let key = BoxKey::rectangle(image_id, class, &rad, &v);
        if !repeated.first(key, (&src, line, names[0]), issues) {
            continue;
        }
        rows.boxes.push(BoxRow {
            dataset: NAME,
            image_id: image_id.to_string(),
            source,
            raw_label: class.to_string(),
            finding,
            reader: Some(rad.clone()),
            x: v[0],
            y: v[1],
            w: v[2] - v[0],
            h: v[3] - v[1],
            mask_rle: None,
            area: None,
        });
    }
    rows.images = images.images;
    Ok(rows)
}

/// A reader's id as `R` and its number (`r03` is `R3`), or None for another id.
fn reader_id(rad: &str) -> Option<String> {
    let digits = rad.trim().strip_prefix(['R', 'r'])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = digits.trim_start_matches('0');
    Some(format!("R{}", if number.is_empty() { "0" } else { number }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::{shared_datasets, write_fixture};

    const FIXTURE: &str = "\
image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
img_a,No finding,14,R1,,,,
img_a,No finding,14,R2,,,,
img_a,Cardiomegaly,3,R3,100.0,200.0,400.0,300.0
img_b,Nodule/Mass,8,R3,10,10,20,25
img_b,Nodule/Mass,8,R3,50,50,60,60
img_b,Pleural effusion,10,R9,5,5,1,9
img_b,Pleural effusion,10,R9,-5,5,10,9
img_b,Mystery,99,R9,1,2,3,4
img_c,Aortic enlargement,0,R12,nan,1,2,3
img_c,No finding,14,R12,1,1,2,2
img_c,Lung Opacity,7,,1,1,2,2
img_b,Nodule/Mass,8,R3,5,5,9,5
img_c,Cardiomegaly,3,bob,1,1,2,2
";

    fn map() -> crate::datasets::LabelMap {
        crate::datasets::LabelMap::default()
    }

    #[test]
    fn fixture() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(dir.path(), "vindr.csv", FIXTURE.as_bytes());
        let mut issues = Issues::default();
        let rows = read(&[p], &map(), &mut issues).unwrap();
        let ids: Vec<&str> = rows.images.iter().map(|i| &*i.image_id).collect();
        assert_eq!(ids, ["img_a", "img_b", "img_c"]);
        assert_eq!(rows.images[0].path.as_deref(), Some("train/img_a.dicom"));
        assert_eq!(rows.images[0].view, None);
        // Labels: a: R1,R2 no finding, R3 cardiomegaly; b: R3 nodule (once), R9
        // effusion (once), R9 Mystery; c: R12 aortic, R12 no finding.
        let labels: Vec<(&str, &str, &str, Option<&str>)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.source, &*l.raw_label, l.finding))
            .collect();
        assert_eq!(
            labels,
            [
                ("img_a", "vindr_R1", "No finding", None),
                ("img_a", "vindr_R2", "No finding", None),
                ("img_a", "vindr_R3", "Cardiomegaly", Some("Cardiomegaly")),
                ("img_b", "vindr_R3", "Nodule/Mass", None),
                ("img_b", "vindr_R9", "Pleural effusion", Some("Effusion")),
                ("img_b", "vindr_R9", "Mystery", None),
                ("img_c", "vindr_R12", "Aortic enlargement", None),
                ("img_c", "vindr_R12", "No finding", None),
            ]
        );
        assert!(rows.labels.iter().all(|l| l.value == 1));
        // Boxes: cardiomegaly, two nodules, Mystery.
        assert_eq!(rows.boxes.len(), 4);
        let b = &rows.boxes[0];
        assert_eq!((b.x, b.y, b.w, b.h), (100.0, 200.0, 300.0, 100.0));
        assert_eq!(b.reader.as_deref(), Some("R3"));
        assert_eq!(b.source, "vindr_R3");
        assert_eq!((rows.boxes[1].w, rows.boxes[1].h), (10.0, 15.0));
        // Issues: inverted (line 7), negative (8), Mystery unknown (9), nan (10),
        // coordinates on No finding (11), no rad_id (12), empty box (13), a rad_id
        // that is no reader's (14).
        let got: Vec<(Option<i64>, Option<&str>, Option<&str>)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.field.as_deref(), i.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(7), Some("x_max"), Some("1")),
                (Some(8), Some("x_min"), Some("-5")),
                (Some(9), Some("class_name"), Some("Mystery")),
                (Some(10), Some("x_min"), Some("nan")),
                (Some(11), Some("x_min"), Some("1")),
                (Some(12), Some("rad_id"), None),
                (Some(13), Some("y_max"), Some("5")),
                (Some(14), Some("rad_id"), Some("bob")),
            ]
        );
        assert!(issues.rows().iter().all(|i| i.source_file == "vindr.csv"));
    }

    /// A label's spelling in another case or spacing is the label (a `no finding`
    /// row is a vote for no finding, its coordinates ignored), and a reader's id with
    /// a lower-case `r` or leading zeros is the reader.
    #[test]
    fn spellings_of_one_label_or_reader_are_one() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "\
image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
img_a,no  finding,14,r03,1,1,2,2
img_a,No finding,14,R3,,,,
img_a,pleural EFFUSION,10,R010,5,5,9,9
";
        let p = write_fixture(dir.path(), "vindr.csv", csv.as_bytes());
        let mut issues = Issues::default();
        let rows = read(&[p], &map(), &mut issues).unwrap();
        let labels: Vec<(&str, &str, Option<&str>)> = rows
            .labels
            .iter()
            .map(|l| (&*l.source, &*l.raw_label, l.finding))
            .collect();
        assert_eq!(
            labels,
            [
                ("vindr_R3", "no  finding", None),
                ("vindr_R10", "pleural EFFUSION", Some("Effusion")),
            ]
        );
        assert_eq!(rows.boxes.len(), 1);
        assert_eq!(rows.boxes[0].reader.as_deref(), Some("R10"));
        let got: Vec<(Option<i64>, &str)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.issue.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                Some(2),
                "coordinates on a 'No finding' row; ignored, no box"
            )]
        );
    }

    /// A box is the same box whatever the spelling of its numbers, label or reader:
    /// lines 3 and 4 repeat line 2 and are skipped with a row each; another reader's
    /// box (line 5) and another y_max (line 6) are boxes of their own.
    #[test]
    fn the_same_box_in_other_spellings_is_one_box() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "\
image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
d,Cardiomegaly,3,R2,1,2,30,40
d,Cardiomegaly,3,R2,1.0,2.0,30.0,40.0
d,cardiomegaly,3,r02,1,2,30,40
d,Cardiomegaly,3,R3,1,2,30,40
d,Cardiomegaly,3,R2,1,2,30,41
";
        let p = write_fixture(dir.path(), "vindr.csv", csv.as_bytes());
        let mut issues = Issues::default();
        let rows = read(&[p], &map(), &mut issues).unwrap();
        let boxes: Vec<(Option<&str>, f64, f64, f64, f64)> = rows
            .boxes
            .iter()
            .map(|b| (b.reader.as_deref(), b.x, b.y, b.w, b.h))
            .collect();
        assert_eq!(
            boxes,
            [
                (Some("R2"), 1.0, 2.0, 29.0, 38.0),
                (Some("R3"), 1.0, 2.0, 29.0, 38.0),
                (Some("R2"), 1.0, 2.0, 29.0, 39.0),
            ]
        );
        let got: Vec<(Option<i64>, Option<&str>, &str)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.field.as_deref(), i.issue.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(3), Some("image_id"), "the same box as line 2; skipped"),
                (Some(4), Some("image_id"), "the same box as line 2; skipped"),
            ]
        );
        // One label per reader.
        assert_eq!(rows.labels.len(), 2);
    }

    #[test]
    fn wrong_file_names_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(
            dir.path(),
            "siim.csv",
            b"ImageId, EncodedPixels\n1.2.3,-1\n",
        );
        let e = read(&[p], &map(), &mut Issues::default()).unwrap_err();
        let m = e.to_string();
        assert_eq!(e.exit_code(), 2);
        assert!(
            m.contains("siim.csv") && m.contains("'class_name'") && m.contains("'rad_id'"),
            "{m}"
        );
    }

    /// The real file of ../shared/datasets: counts from SOURCES.md; the label counts
    /// from one independent Python run over the same file:
    /// `r=list(csv.DictReader(gzip.open('vinbigdata-train.csv.gz','rt')));
    ///  s={(x['image_id'],x['rad_id'],x['class_name']) for x in r}` → len(s) 61,274, of
    /// which 31,818 `No finding` (no inverted, negative or missing coordinates there).
    #[test]
    fn real_file() {
        let Some(dir) = shared_datasets() else { return };
        let mut issues = Issues::default();
        let rows = read(&[dir.join("vinbigdata-train.csv.gz")], &map(), &mut issues).unwrap();
        assert_eq!(rows.images.len(), 15_000);
        // Every non-"No finding" row has a box: 67,914 − 31,818.
        assert_eq!(rows.boxes.len(), 67_914 - 31_818);
        let readers: HashSet<&str> = rows
            .boxes
            .iter()
            .filter_map(|b| b.reader.as_deref())
            .collect();
        let sources: HashSet<&str> = rows.labels.iter().map(|l| &*l.source).collect();
        assert_eq!(sources.len(), 17);
        assert!(readers.len() <= 17);
        let count = |c: &str| rows.boxes.iter().filter(|b| b.raw_label == c).count();
        for (c, n) in [
            ("Aortic enlargement", 7_162),
            ("Cardiomegaly", 5_427),
            ("Pleural thickening", 4_842),
            ("Pulmonary fibrosis", 4_655),
            ("Nodule/Mass", 2_580),
            ("Lung Opacity", 2_483),
            ("Pleural effusion", 2_476),
            ("Other lesion", 2_203),
            ("Infiltration", 1_247),
            ("ILD", 1_000),
            ("Calcification", 960),
            ("Consolidation", 556),
            ("Atelectasis", 279),
            ("Pneumothorax", 226),
        ] {
            assert_eq!(count(c), n, "{c}");
        }
        // Each image read by three radiologists.
        let mut per_image: std::collections::HashMap<&str, HashSet<&str>> = Default::default();
        for l in &rows.labels {
            per_image
                .entry(&*l.image_id)
                .or_default()
                .insert(&*l.source);
        }
        assert!(per_image.values().all(|s| s.len() == 3));
        assert_eq!(
            rows.labels
                .iter()
                .filter(|l| &*l.raw_label == NO_FINDING)
                .count(),
            VINDR_NO_FINDING_LABELS
        );
        assert_eq!(rows.labels.len(), VINDR_LABELS);
        assert!(
            issues.is_empty(),
            "{:?}",
            &issues.rows()[..issues.len().min(5)]
        );
    }

    const VINDR_LABELS: usize = 61_274;
    const VINDR_NO_FINDING_LABELS: usize = 31_818;
}
