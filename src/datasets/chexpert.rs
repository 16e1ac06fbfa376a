//! CheXpert v1.0 (`train.csv`, optionally `valid.csv`) → `dataset_images`, `dataset_labels`.
//!
//! * ids come from `Path` (`CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`):
//!   patient `patient00001`, study `patient00001/study1`; `image_id` and `path` are
//!   `Path` unchanged.
//! * split: the `train`/`valid`/`test` segment of `Path`, else the file name.
//! * sex: `Male`/`Female` → `M`/`F`; anything else (`Unknown`, empty) → NULL + issue.
//! * age: kept as given (0 included); not a number, negative or over 120 → NULL + issue.
//! * view: `Lateral` → `LATERAL`; `Frontal` with `AP/PA` `AP`/`PA` → that. The 17 rows
//!   marked `Frontal` whose `AP/PA` is `LL`/`RL` (a lateral decubitus code) contradict
//!   themselves: view `OTHER`, `frontal` NULL (neither claim is trusted), one issue each.
//! * labels: one row per non-empty cell of the 14 label columns, value 1/0/-1, source
//!   `chexpert`; any other cell value is refused with an issue.

use polars::prelude::PlHashMap;
use std::path::PathBuf;

use crate::datasets::common::{
    Col, age_or_issue, claim_id, frontal_of, label_value, path_inside_root, read_columns,
};
use crate::datasets::label_map::{LabelMap, Resolver};
use crate::datasets::{DatasetRows, ImageRow, LabelRow, Shared};
use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, squash};
use crate::input::issues::Issues;

/// Dataset name.
pub const NAME: &str = "chexpert";
/// Label source.
pub const SOURCE: &str = "chexpert";

/// The 14 label columns of the CheXpert labeler, as in the header.
pub const LABEL_COLUMNS: [&str; 14] = [
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
];

const BASE: [Col<'static>; 5] = [
    ("Path", &["path"]),
    ("Sex", &["sex"]),
    ("Age", &["age"]),
    ("Frontal/Lateral", &["frontallateral"]),
    ("AP/PA", &["appa"]),
];

/// Reads CheXpert CSV files (train.csv, valid.csv). Every file's columns are checked
/// before any row is read.
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    if paths.is_empty() {
        return Err(Error::Usage(
            "chexpert needs at least one file (train.csv, valid.csv)".into(),
        ));
    }
    let mut tables = Vec::with_capacity(paths.len());
    for p in paths {
        let squashed: Vec<String> = LABEL_COLUMNS.iter().map(|n| squash(n)).collect();
        let aliases: Vec<[&str; 1]> = squashed.iter().map(|s| [s.as_str()]).collect();
        let mut cols: Vec<Col> = BASE.to_vec();
        cols.extend(
            LABEL_COLUMNS
                .iter()
                .zip(&aliases)
                .map(|(n, a)| (*n, &a[..])),
        );
        tables.push(read_columns(p, issues, "CheXpert", &cols)?);
    }
    let mut rows = DatasetRows::default();
    let mut resolver = Resolver::new(map, NAME);
    let mut seen: PlHashMap<&str, (&str, u64)> = PlHashMap::default();
    for (t, pos) in &tables {
        read_table(t, pos, &mut resolver, &mut seen, &mut rows, issues)?;
    }
    Ok(rows)
}

fn split_of(path_value: &str, file: &str) -> Option<String> {
    for seg in path_value.split('/') {
        if matches!(seg, "train" | "valid" | "test") {
            return Some(seg.to_string());
        }
    }
    let f = file.to_ascii_lowercase();
    ["valid", "train", "test"]
        .into_iter()
        .find(|s| f.contains(s))
        .map(str::to_string)
}

/// (patient, study) from a CheXpert path: `.../patientNNNNN/studyN/<image>`.
fn ids_of(path_value: &str) -> Option<(String, String)> {
    let numbered = |s: &str, prefix: &str| {
        s.strip_prefix(prefix)
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut it = path_value.split('/');
    while let Some(seg) = it.next() {
        if numbered(seg, "patient") {
            let study = it.next().filter(|s| numbered(s, "study"))?;
            it.next().filter(|f| !f.is_empty())?;
            return Some((seg.to_string(), format!("{seg}/{study}")));
        }
    }
    None
}

/// N of a study id `patientNNNNN/studyN`.
fn study_number(study_id: &str) -> Option<i64> {
    study_id.rsplit_once("/study")?.1.parse().ok()
}

fn read_table<'t>(
    t: &'t CsvTable,
    pos: &[usize],
    resolver: &mut Resolver,
    seen: &mut PlHashMap<&'t str, (&'t str, u64)>,
    rows: &mut DatasetRows,
    issues: &mut Issues,
) -> Result<()> {
    let src: &'t str = &t.source;
    let (path, sex, age, fl, appa) = (
        t.values(pos[0])?,
        t.values(pos[1])?,
        t.values(pos[2])?,
        t.values(pos[3])?,
        t.values(pos[4])?,
    );
    let labels: Vec<Vec<Option<&str>>> = pos[5..]
        .iter()
        .map(|&p| t.values(p))
        .collect::<Result<_>>()?;
    // Map each label column once, by the labeler's name of the column its header
    // matched (`PLEURAL EFFUSION` and `pleural_effusion` are `Pleural Effusion`).
    let label_names: Vec<&str> = LABEL_COLUMNS.to_vec();
    let findings: Vec<Option<&'static str>> = label_names
        .iter()
        .zip(&pos[5..])
        .map(|(n, &p)| resolver.finding(n, (src, Some(1), t.name(p)), issues))
        .collect::<Result<_>>()?;
    let raw_labels: Vec<Shared> = label_names.iter().map(|n| Shared::from(*n)).collect();
    let source = Shared::from(SOURCE);
    rows.images.reserve(t.len());
    rows.labels
        .reserve(labels.iter().map(|c| c.iter().flatten().count()).sum());
    for r in 0..t.len() {
        let line = t.lines[r];
        let push = |issues: &mut Issues, col: usize, v: Option<&str>, msg: &str| {
            issues.push(src, Some(line), Some(t.name(pos[col])), v, msg);
        };
        let Some(p) = claim_id(seen, path[r], (src, line, t.name(pos[0])), issues) else {
            continue;
        };
        // The image's id, shared by its labels and its path.
        let image_id: Shared = p.into();
        let ids = ids_of(p);
        if ids.is_none() {
            push(
                issues,
                0,
                Some(p),
                "no patientNNNNN/studyN in Path; patient_id and study_id set to NULL",
            );
        }
        let (patient_id, study_id) = ids.unzip();
        let study_order = study_id.as_deref().and_then(study_number);
        if study_id.is_some() && study_order.is_none() {
            push(
                issues,
                0,
                Some(p),
                "the study number in Path is too large to order; the study has no place in its patient's follow-up (left out of `followup` and `studies`)",
            );
        }
        let given = sex[r];
        let sex = given.and_then(crate::datasets::common::parse_sex);
        if sex.is_none() {
            push(issues, 1, given, crate::input::issues::SEX_NOT_READ);
        }
        // As every reader reads ages (DICOM's `045Y` too); an empty one is no issue.
        let age = age[r].and_then(|v| age_or_issue(Some(v), src, line, t.name(pos[2]), issues));
        // Read in any case: the release writes `Frontal` and `AP`.
        let upper = |v: Option<&str>| v.map(|v| v.trim().to_ascii_uppercase());
        let (side, code) = (upper(fl[r]), upper(appa[r]));
        let (view, frontal) = match (side.as_deref(), code.as_deref()) {
            (Some("LATERAL"), _) => (Some("LATERAL"), Some(false)),
            (Some("FRONTAL"), Some("AP")) => (Some("AP"), Some(true)),
            (Some("FRONTAL"), Some("PA")) => (Some("PA"), Some(true)),
            (Some("FRONTAL"), None) => {
                push(
                    issues,
                    4,
                    None,
                    "AP/PA is empty on a row marked Frontal; view set to NULL, frontal kept TRUE",
                );
                (None, Some(true))
            }
            (Some("FRONTAL"), Some("LL" | "RL")) => {
                push(
                    issues,
                    4,
                    appa[r],
                    "lateral AP/PA code on a row marked Frontal; view set to OTHER, frontal to NULL",
                );
                (Some("OTHER"), None)
            }
            (Some("FRONTAL"), Some(_)) => {
                push(
                    issues,
                    4,
                    appa[r],
                    "unknown AP/PA value; view set to NULL, frontal kept TRUE",
                );
                (None, Some(true))
            }
            (None, _) => {
                push(
                    issues,
                    3,
                    None,
                    "Frontal/Lateral is empty; view and frontal set to NULL",
                );
                (None, None)
            }
            (Some(_), _) => {
                push(
                    issues,
                    3,
                    fl[r],
                    "Frontal/Lateral is neither Frontal nor Lateral; view set to NULL",
                );
                (None, None)
            }
        };
        debug_assert!(view.is_none() || frontal.is_none() || frontal_of(view) == frontal);
        let labelled = rows.labels.len();
        for (k, col) in labels.iter().enumerate() {
            let Some(v) = col[r] else { continue };
            let Some(value) = label_value(v) else {
                push(
                    issues,
                    5 + k,
                    Some(v),
                    "label value is not 1.0, 0.0 or -1.0; label refused",
                );
                continue;
            };
            rows.labels.push(LabelRow {
                dataset: NAME,
                image_id: image_id.clone(),
                source: source.clone(),
                raw_label: raw_labels[k].clone(),
                finding: findings[k],
                value,
            });
        }
        if rows.labels.len() == labelled {
            // As NIH's empty `Finding Labels`: said, not read as normal.
            let cells = match labels.iter().any(|col| col[r].is_some()) {
                true => "no label cell holds 1.0, 0.0 or -1.0",
                false => "every label column is empty",
            };
            issues.push(
                src,
                Some(line),
                None,
                None,
                format!("{cells}; image kept without labels (every finding unknown, not normal)"),
            );
        }
        rows.images.push(ImageRow {
            dataset: NAME,
            image_id: image_id.clone(),
            patient_id,
            study_order,
            study_id,
            view,
            frontal,
            sex,
            age,
            split: split_of(p, src),
            path: path_inside_root(image_id, issues, (src, line, t.name(pos[0]))),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::*;

    const HEADER: &str = "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices";

    fn fixture() -> String {
        let rows = [
            // line 2: frontal AP, positive effusion, uncertain atelectasis
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,,1.0,,,,,-1.0,0.0,1.0,,,1.0",
            // line 3: lateral, male, no finding
            "CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg,Male,68,Lateral,,1.0,,,,,,,,,,,,,",
            // line 4: PA, unknown sex, age 0
            "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Unknown,0,Frontal,PA,,0.0,,,,,,,,,,,,",
            // line 5: LL on frontal, age 130, bad label cell
            "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,130,Frontal,LL,,,2.0,,,,,,,,,,,",
            // line 6: duplicate path
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,,,,,,,,,,,,",
            // line 7: path without ids, empty sex
            "somewhere/else.jpg,,40,Frontal,AP,,,,,,,,,,,,,,",
        ];
        format!("{HEADER}\n{}\n", rows.join("\n"))
    }

    /// Sex and view read in any case and with spaces around, as the other readers
    /// read them: a lower-case `female` is not an unknown sex.
    #[test]
    fn values_in_another_case_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,female,68,frontal,pa,,,,,,,,,,,,,,",
            "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg, MALE ,68,LATERAL,,,,,,,,,,,,,,,",
        ];
        let p = write(
            dir.path(),
            "train.csv",
            &format!("{HEADER}\n{}\n", rows.join("\n")),
        );
        let mut issues = Issues::default();
        let rows = read(&[p], &LabelMap::default(), &mut issues).unwrap();
        let got: Vec<_> = rows
            .images
            .iter()
            .map(|i| (i.sex, i.view, i.frontal))
            .collect();
        assert_eq!(
            got,
            [
                (Some("F"), Some("PA"), Some(true)),
                (Some("M"), Some("LATERAL"), Some(false))
            ]
        );
        // Both rows have no label cell: said, and nothing else.
        assert!(
            issues
                .rows()
                .iter()
                .all(|i| i.issue.starts_with("every label column is empty")),
            "{:?}",
            issues.rows()
        );
        assert_eq!(issues.len(), 2);
    }

    #[test]
    fn reads_a_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "train.csv", &fixture());
        let map = LabelMap::default();
        let mut issues = Issues::default();
        let rows = read(&[p], &map, &mut issues).unwrap();
        assert_eq!(rows.images.len(), 5);
        let i0 = &rows.images[0];
        assert_eq!(i0.patient_id.as_deref(), Some("patient00001"));
        assert_eq!(i0.study_id.as_deref(), Some("patient00001/study1"));
        assert_eq!(
            (i0.view, i0.frontal, i0.sex),
            (Some("AP"), Some(true), Some("F"))
        );
        assert_eq!(i0.age, Some(68.0));
        assert_eq!(i0.split.as_deref(), Some("train"));
        assert_eq!(i0.path.as_deref(), Some(&*i0.image_id));
        let i1 = &rows.images[1];
        assert_eq!(
            (i1.view, i1.frontal, i1.sex),
            (Some("LATERAL"), Some(false), Some("M"))
        );
        let i2 = &rows.images[2];
        assert_eq!((i2.view, i2.sex, i2.age), (Some("PA"), None, Some(0.0)));
        let i3 = &rows.images[3];
        assert_eq!((i3.view, i3.frontal, i3.age), (Some("OTHER"), None, None));
        let i4 = &rows.images[4];
        assert_eq!((i4.patient_id.as_ref(), i4.study_id.as_ref()), (None, None));

        let l0: Vec<_> = rows
            .labels
            .iter()
            .filter(|l| l.image_id == i0.image_id)
            .map(|l| (&*l.raw_label, l.finding, l.value))
            .collect();
        assert_eq!(
            l0,
            [
                ("Lung Opacity", Some("Lung_Opacity"), 1),
                ("Atelectasis", Some("Atelectasis"), -1),
                ("Pneumothorax", Some("Pneumothorax"), 0),
                ("Pleural Effusion", Some("Effusion"), 1),
                ("Support Devices", None, 1),
            ]
        );
        assert!(rows.labels.iter().all(|l| &*l.source == "chexpert"));
        assert_eq!(rows.labels.len(), 5 + 1 + 1);

        let got = issue_keys(&issues);
        for want in [
            (4, "Sex", "Unknown"),
            (5, "AP/PA", "LL"),
            (5, "Age", "130"),
            (5, "Cardiomegaly", "2.0"),
            (
                6,
                "Path",
                "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
            ),
            (7, "Path", "somewhere/else.jpg"),
            (7, "Sex", ""),
        ] {
            assert!(
                has(&got, want.0, want.1, want.2),
                "missing {want:?} in {got:?}"
            );
        }
        // Lines 5 (its one label cell refused) and 7 (none) are images without labels.
        let unlabelled: Vec<(Option<i64>, &str)> = issues
            .rows()
            .iter()
            .filter(|i| i.issue.ends_with("(every finding unknown, not normal)"))
            .map(|i| (i.line, &i.issue[..20]))
            .collect();
        assert_eq!(
            unlabelled,
            [
                (Some(5), "no label cell holds "),
                (Some(7), "every label column i")
            ]
        );
        assert_eq!(got.len(), 9, "{got:?}");
        assert!(issues.rows().iter().all(|i| i.source_file == "train.csv"));
    }

    #[test]
    fn a_header_in_other_case_keeps_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let header = HEADER
            .to_uppercase()
            .replace("PLEURAL EFFUSION", "pleural_effusion");
        let text = format!(
            "{header}\nCheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,,1.0,,,,,-1.0,0.0,1.0,,,1.0\n"
        );
        let p = write(dir.path(), "train.csv", &text);
        let mut issues = Issues::default();
        let rows = read(&[p], &LabelMap::default(), &mut issues).unwrap();
        let labels: Vec<_> = rows
            .labels
            .iter()
            .map(|l| (&*l.raw_label, l.finding, l.value))
            .collect();
        // As the fixture's first image reads with the labeler's own header.
        assert_eq!(
            labels,
            [
                ("Lung Opacity", Some("Lung_Opacity"), 1),
                ("Atelectasis", Some("Atelectasis"), -1),
                ("Pneumothorax", Some("Pneumothorax"), 0),
                ("Pleural Effusion", Some("Effusion"), 1),
                ("Support Devices", None, 1),
            ]
        );
        assert!(issues.rows().is_empty(), "{:?}", issue_keys(&issues));
    }

    #[test]
    fn valid_file_gets_valid_split() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{HEADER}\nCheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,,1.0,,,,,,,,,,,,\n"
        );
        let v = write(dir.path(), "valid.csv", &text);
        let t = write(dir.path(), "train.csv", &fixture());
        let mut issues = Issues::default();
        let rows = read(&[t, v], &LabelMap::default(), &mut issues).unwrap();
        assert_eq!(rows.images.last().unwrap().split.as_deref(), Some("valid"));
        assert_eq!(
            split_of("x.jpg", "CheXpert_valid.csv").as_deref(),
            Some("valid")
        );
    }

    #[test]
    fn wrong_file_is_an_input_error_naming_missing_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "padchest.csv",
            ",ImageID,ImageDir,PatientID\n0,a.png,0,1\n",
        );
        let e = read(&[p], &LabelMap::default(), &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(
            m.contains("padchest.csv") && m.contains("'Path'") && m.contains("'Frontal/Lateral'"),
            "{m}"
        );
    }

    /// The real `chexpert_train.csv.gz`; counts from SOURCES.md.
    #[test]
    fn real_file_counts() {
        let Some(dir) = shared_datasets() else { return };
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
        let mut issues = Issues::default();
        let rows = read(
            &[dir.join("chexpert_train.csv.gz")],
            &LabelMap::default(),
            &mut issues,
        )
        .unwrap();
        say!(
            "chexpert: {:.2} s wall, {:.2} s CPU",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
        assert_eq!(rows.images.len(), 223_414);
        assert_eq!(
            distinct(rows.images.iter().map(|i| i.patient_id.clone())),
            64_540
        );
        assert_eq!(
            distinct(rows.images.iter().map(|i| i.study_id.clone())),
            187_641
        );
        let counts = |label: &str| {
            let mut c = [0usize; 3];
            for l in rows.labels.iter().filter(|l| &*l.raw_label == label) {
                c[(l.value + 1) as usize] += 1;
            }
            (c[2], c[1], c[0])
        };
        assert_eq!(counts("Pleural Effusion"), (86_187, 35_396, 11_628));
        assert_eq!(counts("Atelectasis"), (33_376, 1_328, 33_739));
        assert_eq!(counts("No Finding"), (22_381, 0, 0));
        // Pleural Effusion: the 90,203 empty cells (SOURCES.md) have no row.
        let effusion_images = rows
            .labels
            .iter()
            .filter(|l| &*l.raw_label == "Pleural Effusion")
            .map(|l| &*l.image_id)
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert_eq!(rows.images.len() - effusion_images, 90_203);
        let by = |f: &dyn Fn(&ImageRow) -> bool| rows.images.iter().filter(|i| f(i)).count();
        assert_eq!(by(&|i| i.sex == Some("M")), 132_636);
        assert_eq!(by(&|i| i.sex == Some("F")), 90_777);
        assert_eq!(by(&|i| i.sex.is_none()), 1);
        assert_eq!(by(&|i| i.view == Some("LATERAL")), 32_387);
        assert_eq!(by(&|i| i.view == Some("AP")), 161_590);
        assert_eq!(by(&|i| i.view == Some("PA")), 29_420);
        assert_eq!(by(&|i| i.view == Some("OTHER")), 16 + 1);
        assert_eq!(by(&|i| i.age == Some(0.0)), 3);
        assert_eq!(by(&|i| i.split.as_deref() == Some("train")), 223_414);
        // Issues: the Unknown sex, the 17 LL/RL rows and the 12 rows of empty label
        // cells (counted from the file with pandas), nothing else.
        assert_eq!(
            issues.len(),
            1 + 17 + 12,
            "{:?}",
            &issues.rows()[..issues.len().min(5)]
        );
    }
}
