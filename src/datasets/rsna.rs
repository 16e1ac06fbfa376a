//! RSNA Pneumonia Detection Challenge 2018: the stage-2 training labels
//! (`patientId,x,y,width,height,Target`, one row per box or per negative image;
//! plain, gzip, or a `.zip` holding the one CSV) and the DICOM header fields
//! (a leading unnamed index column, then `PatientID`, `PatientSex`, `PatientAge`,
//! `ViewPosition`, ...).
//!
//! - `dataset_images`: one row per image (`patientId` is a per-image UID, so it is the
//!   image id and `patient_id` stays NULL: the release has no patient key). Sex `M`/`F`,
//!   age (over 120 → NULL with a `data_issues` row), view `PA`/`AP` from the headers.
//!   `path` is `stage_2_train_images/<patientId>.dcm`. An image in one file but not the
//!   other is kept, with a `data_issues` row.
//! - `dataset_labels`: one row per image, source `rsna_2018`, raw label `Pneumonia`, value
//!   = Target (0/1); rows of one image disagreeing on Target give 1 and an issue.
//! - `dataset_boxes`: one row per Target-1 box (x, y, width, height as given), raw label
//!   `Pneumonia`; a box repeated (its numbers equal, `10` and `10.0` alike) is skipped
//!   with a `data_issues` row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, read_bytes, squash};
use crate::input::issues::Issues;

use super::zip::{is_zip, read_member};
use crate::datasets::common::{
    BoxKey, ImageList, RepeatedRows, age_or_issue, bare_image, box_geometry_problem, frontal_of,
    parse_finite, require_all, sex_or_issue,
};
use crate::datasets::label_map::{LabelMap, Resolver};
use crate::datasets::{BoxRow, DatasetRows, LabelRow, Shared};

/// The dataset name.
pub const NAME: &str = "rsna";
/// The label source.
pub const SOURCE: &str = "rsna_2018";
/// The raw label of the Target column.
pub const RAW_LABEL: &str = "Pneumonia";

/// Reads a CSV that may be plain, gzip, or the one CSV of a zip archive.
pub fn read_table(path: &Path, issues: &mut Issues) -> Result<CsvTable> {
    let bytes = read_bytes(path)?;
    let table = if is_zip(&bytes) {
        let (_, member) = read_member(path, &bytes, |n| n.to_ascii_lowercase().ends_with(".csv"))?;
        CsvTable::from_bytes(path, &member, issues)?
    } else {
        CsvTable::from_bytes(path, &bytes, issues)?
    };
    Ok(table)
}

fn has(t: &CsvTable, name: &str) -> bool {
    t.header.iter().any(|h| squash(h) == name)
}

/// Reads the labels file and the headers file, in either order (told apart by their
/// columns: `Target` or `ViewPosition`); the headers file may be left out.
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    if paths.is_empty() || paths.len() > 2 {
        return Err(Error::Usage(format!(
            "dataset 'rsna' takes the labels CSV (or .zip) and optionally the DICOM headers CSV, got {} files",
            paths.len()
        )));
    }
    let mut labels = None;
    let mut headers = None;
    for p in paths {
        let t = read_table(p, issues)?;
        if has(&t, "viewposition") && !has(&t, "target") {
            if headers.replace(t).is_some() {
                return Err(Error::Usage(
                    "dataset 'rsna': two DICOM headers files given".into(),
                ));
            }
        } else if labels.is_none() {
            labels = Some(t);
        } else {
            // Two files that both look like labels: check the second as headers so
            // the error names its missing columns.
            require_all(&t, "RSNA Pneumonia DICOM headers", HEADER_COLUMNS)?;
        }
    }
    let Some(labels) = labels else {
        return Err(Error::Usage(
            "dataset 'rsna': no labels file (patientId,x,y,width,height,Target) given".into(),
        ));
    };
    if headers.is_none() {
        issues.push(
            &labels.source,
            None,
            None,
            None,
            "no DICOM headers file given (stage_2_train_images_dicom_headers.csv): sex, age and view are NULL for every image",
        );
    }
    read_tables(&labels, headers.as_ref(), map, issues)
}

const LABEL_COLUMNS: &[(&str, &[&str])] = &[
    ("patientId", &["patientid"]),
    ("x", &["x"]),
    ("y", &["y"]),
    ("width", &["width"]),
    ("height", &["height"]),
    ("Target", &["target"]),
];

const HEADER_COLUMNS: &[(&str, &[&str])] = &[
    ("PatientID", &["patientid"]),
    ("PatientSex", &["patientsex"]),
    ("PatientAge", &["patientage"]),
    ("ViewPosition", &["viewposition"]),
];

fn read_tables(
    t: &CsvTable,
    headers: Option<&CsvTable>,
    map: &LabelMap,
    issues: &mut Issues,
) -> Result<DatasetRows> {
    let c = require_all(t, "RSNA Pneumonia", LABEL_COLUMNS)?;
    let h_cols = headers
        .map(|h| require_all(h, "RSNA Pneumonia DICOM headers", HEADER_COLUMNS))
        .transpose()?;
    // After the columns, as every reader: a one-line file that is no RSNA file at
    // all is said as one (its header named), not as an empty one.
    for table in std::iter::once(t).chain(headers) {
        table.refuse_if_empty()?;
    }
    let cols: Vec<Vec<Option<&str>>> = c.iter().map(|&i| t.values(i)).collect::<Result<_>>()?;
    let names: Vec<&str> = c.iter().map(|&i| t.name(i)).collect();
    let src = t.source.clone();
    let mut resolver = Resolver::new(map, NAME);
    let (source, raw_label) = (Shared::from(SOURCE), Shared::from(RAW_LABEL));
    let finding = resolver.finding(RAW_LABEL, (&src, None, names[5]), issues)?;
    let mut images = ImageList::default();
    let mut target: Vec<Option<i8>> = Vec::new();
    let mut first_line: Vec<u64> = Vec::new();
    let mut rows = DatasetRows::default();
    let mut repeated = RepeatedRows::default();

    for (r, &line) in t.lines.iter().enumerate() {
        let Some(id) = cols[0][r] else {
            issues.push(
                &src,
                Some(line),
                Some(names[0]),
                None,
                "no patientId; row skipped",
            );
            continue;
        };
        let (img, new) = images.add(bare_image(
            NAME,
            id,
            Some(format!("stage_2_train_images/{id}.dcm").into()),
        ));
        if new {
            target.push(None);
            first_line.push(line);
        }
        let tv = match cols[5][r].map(|v| parse_finite(v).unwrap_or(f64::NAN)) {
            Some(0.0) => 0i8,
            Some(1.0) => 1i8,
            _ => {
                issues.push(
                    &src,
                    Some(line),
                    Some(names[5]),
                    cols[5][r],
                    "Target is not 0 or 1; row skipped",
                );
                continue;
            }
        };
        match target[img] {
            Some(prev) if prev != tv => {
                issues.push(
                    &src,
                    Some(line),
                    Some(names[5]),
                    cols[5][r],
                    "rows of this image disagree on Target: label set to 1",
                );
                target[img] = Some(1);
            }
            _ => target[img] = Some(target[img].unwrap_or(tv).max(tv)),
        }
        let raw: Vec<Option<&str>> = (1..5).map(|k| cols[k][r]).collect();
        if tv == 0 {
            if let Some(k) = raw.iter().position(Option::is_some) {
                issues.push(
                    &src,
                    Some(line),
                    Some(names[1 + k]),
                    raw[k],
                    "box on a Target 0 row; ignored",
                );
            }
            continue;
        }
        let mut v = [0f64; 4];
        let mut bad = None;
        for k in 0..4 {
            match raw[k].and_then(parse_finite) {
                Some(x) => v[k] = x,
                None if raw.iter().all(Option::is_none) => {
                    bad = Some((k, "Target 1 row without a box: label kept, no box"));
                    break;
                }
                None => {
                    bad = Some((
                        k,
                        "box coordinate missing or not a finite number; box dropped",
                    ));
                    break;
                }
            }
        }
        if let Some((k, what)) = bad {
            issues.push(&src, Some(line), Some(names[1 + k]), raw[k], what);
            continue;
        }
        if let Some(why) = box_geometry_problem(v) {
            let shown = format!("{},{},{},{}", v[0], v[1], v[2], v[3]);
            let what = format!("{why}; box refused");
            issues.push(
                &src,
                Some(line),
                Some("x,y,width,height"),
                Some(&shown),
                what,
            );
            continue;
        }
        let key = BoxKey::rectangle(id, RAW_LABEL, "", &v);
        if !repeated.first(key, (&src, line, names[0]), issues) {
            continue;
        }
        rows.boxes.push(BoxRow {
            dataset: NAME,
            image_id: id.to_string(),
            source: SOURCE.to_string(),
            raw_label: RAW_LABEL.to_string(),
            finding,
            reader: None,
            x: v[0],
            y: v[1],
            w: v[2],
            h: v[3],
            mask_rle: None,
            area: None,
        });
    }
    for (img, tv) in target.iter().enumerate() {
        if let Some(tv) = *tv {
            rows.labels.push(LabelRow {
                dataset: NAME,
                image_id: images.images[img].image_id.clone(),
                source: source.clone(),
                raw_label: raw_label.clone(),
                finding,
                value: tv,
            });
        }
    }

    if let (Some(h), Some(hc)) = (headers, h_cols) {
        let hv: Vec<Vec<Option<&str>>> = hc.iter().map(|&i| h.values(i)).collect::<Result<_>>()?;
        let hn: Vec<&str> = hc.iter().map(|&i| h.name(i)).collect();
        let hsrc = h.source.clone();
        let n_labelled = images.images.len();
        let mut seen: HashMap<usize, u64> = HashMap::new();
        for (r, &line) in h.lines.iter().enumerate() {
            let Some(id) = hv[0][r] else {
                issues.push(
                    &hsrc,
                    Some(line),
                    Some(hn[0]),
                    None,
                    "no PatientID; row skipped",
                );
                continue;
            };
            let (img, new) = images.add(bare_image(
                NAME,
                id,
                Some(format!("stage_2_train_images/{id}.dcm").into()),
            ));
            if new {
                issues.push(
                    &hsrc,
                    Some(line),
                    Some(hn[0]),
                    Some(id),
                    "image in the DICOM headers but not in the labels file: kept without labels",
                );
            }
            if let Some(prev) = seen.insert(img, line) {
                issues.push(
                    &hsrc,
                    Some(line),
                    Some(hn[0]),
                    Some(id),
                    format!("image listed again (first at line {prev}): this row ignored"),
                );
                seen.insert(img, prev);
                continue;
            }
            let sex = sex_or_issue(hv[1][r], &hsrc, line, hn[1], issues);
            let age = age_or_issue(hv[2][r], &hsrc, line, hn[2], issues);
            let view = match hv[3][r].map(str::to_ascii_uppercase).as_deref() {
                Some("PA") => Some("PA"),
                Some("AP") => Some("AP"),
                Some(_) => {
                    issues.push(
                        &hsrc,
                        Some(line),
                        Some(hn[3]),
                        hv[3][r],
                        "view is not PA or AP: set to OTHER",
                    );
                    Some("OTHER")
                }
                None => {
                    issues.push(
                        &hsrc,
                        Some(line),
                        Some(hn[3]),
                        None,
                        "view missing; set to NULL",
                    );
                    None
                }
            };
            let im = images.at(img);
            im.sex = sex;
            im.age = age;
            im.view = view;
            im.frontal = frontal_of(view);
        }
        for (img, &line) in first_line.iter().enumerate().take(n_labelled) {
            if !seen.contains_key(&img) {
                issues.push(
                    &src,
                    Some(line),
                    Some(names[0]),
                    Some(&*images.images[img].image_id),
                    "image not in the DICOM headers file: sex, age and view NULL",
                );
            }
        }
    }
    rows.images = images.images;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::{gzip, shared_datasets, write_fixture};
    use crate::datasets::zip::tests::make_zip;

    const LABELS: &str = "\
patientId,x,y,width,height,Target
p1,,,,,0
p2,300.0,120.0,200.0,350.0,1
p2,600.0,140.0,250.0,400.0,1
p3,,,,,1
p4,1,2,3,4,0
p5,,,,,2
p6,-1,2,3,4,1
p6,10,20,0,40,1
p6,900,20,200,40,1
";

    const HEADERS: &str = "\
,BodyPartExamined,Modality,PatientAge,PatientID,PatientSex,ViewPosition
0,CHEST,CR,43,p1,F,AP
1,CHEST,CR,155,p2,M,PA
2,CHEST,CR,30,p3,O,LL
3,CHEST,CR,50,p4,M,PA
4,CHEST,CR,50,p9,M,PA
5,CHEST,CR,51,p1,M,PA
";

    #[test]
    fn fixture_zip_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        let z = write_fixture(
            dir.path(),
            "labels.csv.zip",
            &make_zip("stage_2_train_labels.csv", LABELS.as_bytes()),
        );
        let plain = write_fixture(dir.path(), "labels.csv", LABELS.as_bytes());
        let h = write_fixture(dir.path(), "headers.csv.gz", &gzip(HEADERS.as_bytes()));
        let map = crate::datasets::LabelMap::default();
        let mut issues = Issues::default();
        // Either order.
        let rows = read(&[h.clone(), z.clone()], &map, &mut issues).unwrap();
        let mut issues2 = Issues::default();
        let rows2 = read(&[plain.clone(), h.clone()], &map, &mut issues2).unwrap();
        assert_eq!(rows.labels, rows2.labels);
        assert_eq!(rows.images, rows2.images);
        assert_eq!(issues.len(), issues2.len());

        let ids: Vec<&str> = rows.images.iter().map(|i| &*i.image_id).collect();
        assert_eq!(ids, ["p1", "p2", "p3", "p4", "p5", "p6", "p9"]);
        let labels: Vec<(&str, i8)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, l.value))
            .collect();
        assert_eq!(
            labels,
            [("p1", 0), ("p2", 1), ("p3", 1), ("p4", 0), ("p6", 1)]
        );
        assert!(
            rows.labels
                .iter()
                .all(|l| &*l.source == "rsna_2018" && l.finding == Some("Pneumonia"))
        );
        assert_eq!(rows.boxes.len(), 2);
        assert_eq!(
            (
                rows.boxes[1].x,
                rows.boxes[1].y,
                rows.boxes[1].w,
                rows.boxes[1].h
            ),
            (600.0, 140.0, 250.0, 400.0)
        );
        let p1 = &rows.images[0];
        assert_eq!(
            (p1.sex, p1.age, p1.view, p1.frontal),
            (Some("F"), Some(43.0), Some("AP"), Some(true))
        );
        assert_eq!(p1.patient_id, None);
        let p2 = &rows.images[1];
        assert_eq!((p2.sex, p2.age, p2.view), (Some("M"), None, Some("PA")));
        let p3 = &rows.images[2];
        assert_eq!((p3.sex, p3.view, p3.frontal), (None, Some("OTHER"), None));
        #[allow(clippy::type_complexity)]
        let got: Vec<(&str, Option<i64>, Option<&str>, Option<&str>)> = issues
            .rows()
            .iter()
            .map(|i| {
                (
                    i.source_file.as_str(),
                    i.line,
                    i.field.as_deref(),
                    i.value.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("labels.csv.zip", Some(5), Some("x"), None),
                ("labels.csv.zip", Some(6), Some("x"), Some("1")),
                ("labels.csv.zip", Some(7), Some("Target"), Some("2")),
                (
                    "labels.csv.zip",
                    Some(8),
                    Some("x,y,width,height"),
                    Some("-1,2,3,4")
                ),
                (
                    "labels.csv.zip",
                    Some(9),
                    Some("x,y,width,height"),
                    Some("10,20,0,40")
                ),
                (
                    "labels.csv.zip",
                    Some(10),
                    Some("x,y,width,height"),
                    Some("900,20,200,40")
                ),
                ("headers.csv.gz", Some(3), Some("PatientAge"), Some("155")),
                ("headers.csv.gz", Some(4), Some("PatientSex"), Some("O")),
                ("headers.csv.gz", Some(4), Some("ViewPosition"), Some("LL")),
                ("headers.csv.gz", Some(6), Some("PatientID"), Some("p9")),
                ("headers.csv.gz", Some(7), Some("PatientID"), Some("p1")),
                ("labels.csv.zip", Some(7), Some("patientId"), Some("p5")),
                ("labels.csv.zip", Some(8), Some("patientId"), Some("p6")),
            ]
        );
    }

    /// A box is the same box whatever the spelling of its numbers: line 3 repeats
    /// line 2 (`10.0` is `10`) and is skipped with a row; line 4's other height is
    /// a box of its own.
    #[test]
    fn the_same_box_in_other_spellings_is_one_box() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "\
patientId,x,y,width,height,Target
p12,10,20,30,40,1
p12,10.0,20.00,3e1,40,1
p12,10,20,30,41,1
";
        let p = write_fixture(dir.path(), "labels.csv", csv.as_bytes());
        let mut issues = Issues::default();
        let rows = read(&[p], &crate::datasets::LabelMap::default(), &mut issues).unwrap();
        let boxes: Vec<[f64; 4]> = rows.boxes.iter().map(|b| [b.x, b.y, b.w, b.h]).collect();
        assert_eq!(boxes, [[10.0, 20.0, 30.0, 40.0], [10.0, 20.0, 30.0, 41.0]]);
        // Besides the row for the missing headers file (no line).
        let got: Vec<(Option<i64>, Option<&str>, &str)> = issues
            .rows()
            .iter()
            .filter(|i| i.line.is_some())
            .map(|i| (i.line, i.field.as_deref(), i.issue.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                Some(3),
                Some("patientId"),
                "the same box as line 2; skipped"
            )]
        );
        assert_eq!(issues.len(), 2);
    }

    #[test]
    fn wrong_files() {
        let dir = tempfile::tempdir().unwrap();
        let v = write_fixture(dir.path(), "vindr.csv", b"image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\na,No finding,14,R1,,,,\n");
        let e = read(
            &[v],
            &crate::datasets::LabelMap::default(),
            &mut Issues::default(),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("vindr.csv") && m.contains("'patientId'") && m.contains("'Target'"),
            "{m}"
        );
        // A one-line file that is no RSNA file: its missing columns, as the other
        // readers say it, not "a header and no records".
        let notes = write_fixture(dir.path(), "notes.txt", b"hello world\n");
        let m = read(
            &[notes],
            &crate::datasets::LabelMap::default(),
            &mut Issues::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("notes.txt") && m.contains("missing column(s) 'patientId'"),
            "{m}"
        );
        let junk = write_fixture(dir.path(), "junk.zip", b"PK\x03\x04garbage");
        assert!(
            read(
                &[junk],
                &crate::datasets::LabelMap::default(),
                &mut Issues::default()
            )
            .is_err()
        );
    }

    /// Real files: counts from SOURCES.md; Target-positive images (6,012) and ages
    /// over 120 (5: 148, 150, 151, 153, 155) from one independent Python run
    /// (`csv.DictReader` over the zip member and the headers file).
    #[test]
    fn real_files() {
        let Some(dir) = shared_datasets() else { return };
        let mut issues = Issues::default();
        let rows = read(
            &[
                dir.join("kaggle_stage_2_train_labels.csv.zip"),
                dir.join("kaggle_stage_2_train_images_dicom_headers.csv.gz"),
            ],
            &crate::datasets::LabelMap::default(),
            &mut issues,
        )
        .unwrap();
        assert_eq!(rows.images.len(), 26_684);
        assert_eq!(rows.labels.len(), 26_684);
        assert_eq!(rows.boxes.len(), 9_555);
        assert_eq!(rows.labels.iter().filter(|l| l.value == 1).count(), 6_012);
        let n = |f: &dyn Fn(&super::super::ImageRow) -> bool| {
            rows.images.iter().filter(|i| f(i)).count()
        };
        assert_eq!(n(&|i| i.sex == Some("M")), 15_166);
        assert_eq!(n(&|i| i.sex == Some("F")), 11_518);
        assert_eq!(n(&|i| i.view == Some("PA")), 14_511);
        assert_eq!(n(&|i| i.view == Some("AP")), 12_173);
        assert_eq!(n(&|i| i.age.is_none()), 5);
        assert_eq!(
            issues.len(),
            5,
            "{:?}",
            &issues.rows()[..issues.len().min(8)]
        );
        assert!(
            issues
                .rows()
                .iter()
                .all(|i| i.field.as_deref() == Some("PatientAge"))
        );
    }
}
