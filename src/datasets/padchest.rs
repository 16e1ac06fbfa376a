//! PadChest (`PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv[.gz]`) →
//! `dataset_images`, `dataset_labels`.
//!
//! * ids: `image_id` = `ImageID`, `patient_id` = `PatientID`, `study_id` = `StudyID`;
//!   `path` = `ImageDir/ImageID` (ImageDir is the folder number of the release).
//! * view from `Projection`: `PA`, `AP`, `AP_horizontal` → `AP_SUPINE`, `L` → `LATERAL`,
//!   `COSTAL` → `OTHER`; `EXCLUDE`, `UNK` and anything else → NULL + issue.
//! * sex from `PatientSex_DICOM`: `M`/`F`; `O`, empty and anything else → NULL + issue.
//! * age = year of `StudyDate_DICOM` − `PatientBirth` (a float year). NULL where either
//!   is missing; an unreadable value or an age outside 0–120 → NULL + issue.
//! * labels: `Labels` is a Python list literal; one row per distinct stripped item,
//!   value 1, source `padchest_physician` / `padchest_rnn` by `MethodLabel`. Empty items
//!   are dropped with one issue per image; an image without `Labels` (empty or `nan`,
//!   103 in the 160K release) or with an unreadable list gets one issue and no labels.

use polars::prelude::PlHashMap;
use std::path::PathBuf;

use crate::datasets::common::{
    Col, MAX_AGE, claim_id, date_key, frontal_of, path_inside_root, read_columns, year_of_date,
};
use crate::datasets::label_map::{LabelMap, Resolver, same_label};
use crate::datasets::{DatasetRows, ImageRow, Interner, LabelRow, Shared};
use crate::error::{Error, Result};
use crate::input::csv::CsvTable;
use crate::input::issues::Issues;

/// Dataset name.
pub const NAME: &str = "padchest";

/// A study without a date has no age and no order among its patient's studies.
/// The most distinct labels one image's `Labels` may list (the release lists at
/// most 20): each is a label row held until the dataset is written.
const MAX_LABELS_PER_IMAGE: usize = 100;

const STUDY_WITHOUT_DATE: &str = "no StudyDate_DICOM: age NULL, and the study has no place in its patient's follow-up (left out of `followup` and `studies`)";

const COLS: [Col<'static>; 10] = [
    ("ImageID", &["imageid"]),
    ("ImageDir", &["imagedir"]),
    ("StudyDate_DICOM", &["studydatedicom"]),
    ("StudyID", &["studyid"]),
    ("PatientID", &["patientid"]),
    ("PatientBirth", &["patientbirth"]),
    ("PatientSex_DICOM", &["patientsexdicom"]),
    ("Projection", &["projection"]),
    ("MethodLabel", &["methodlabel"]),
    ("Labels", &["labels"]),
];

/// Reads PadChest label files (normally one). Every file's columns are checked before
/// any row is read.
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    if paths.is_empty() {
        return Err(Error::Usage(
            "padchest needs its labels CSV (PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz)"
                .into(),
        ));
    }
    let mut tables = Vec::with_capacity(paths.len());
    for p in paths {
        tables.push(read_columns(p, issues, "PadChest", &COLS)?);
    }
    let mut rows = DatasetRows::default();
    let mut resolver = Resolver::new(map, NAME);
    let mut seen: PlHashMap<&str, (&str, u64)> = PlHashMap::default();
    for (t, pos) in &tables {
        read_table(t, pos, &mut resolver, &mut seen, &mut rows, issues)?;
    }
    Ok(rows)
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
    let v: Vec<Vec<Option<&str>>> = pos.iter().map(|&p| t.values(p)).collect::<Result<_>>()?;
    let [
        id,
        dir,
        date,
        study,
        patient,
        birth,
        sex,
        proj,
        method,
        labels,
    ] = &v[..]
    else {
        unreachable!("COLS has 10 columns")
    };
    rows.images.reserve(t.len());
    let mut shared = Interner::default();
    // Each patient's birth years (distinct), for the patients whose images disagree.
    let mut births: PlHashMap<&'t str, Vec<&'t str>> = PlHashMap::default();
    for r in 0..t.len() {
        let line = t.lines[r];
        // The image's id, shared by its labels.
        let mut shared_id: Option<Shared> = None;
        let push = |issues: &mut Issues, col: usize, v: Option<&str>, msg: &str| {
            issues.push(src, Some(line), Some(t.name(pos[col])), v, msg);
        };
        let Some(image_id) = claim_id(seen, id[r], (src, line, t.name(pos[0])), issues) else {
            continue;
        };
        let path = match dir[r] {
            Some(d) => path_inside_root(
                format!("{d}/{image_id}").into(),
                issues,
                (src, line, t.name(pos[1])),
            ),
            None => {
                push(issues, 1, None, "ImageDir is empty; path set to NULL");
                None
            }
        };
        let view = match proj[r].map(|v| v.trim().to_ascii_uppercase()).as_deref() {
            Some("PA") => Some("PA"),
            Some("AP") => Some("AP"),
            Some("AP_HORIZONTAL") => Some("AP_SUPINE"),
            Some("L") => Some("LATERAL"),
            Some("COSTAL") => Some("OTHER"),
            None => None,
            Some(_) => {
                push(
                    issues,
                    7,
                    proj[r],
                    "Projection is not a view; view set to NULL",
                );
                None
            }
        };
        let given = sex[r];
        let sex = given.and_then(crate::datasets::common::parse_sex);
        if sex.is_none() {
            push(issues, 6, given, crate::input::issues::SEX_NOT_READ);
        }
        let year = match date[r] {
            None => {
                push(issues, 2, None, STUDY_WITHOUT_DATE);
                None
            }
            Some(d) => {
                let y = year_of_date(d);
                if y.is_none() {
                    push(
                        issues,
                        2,
                        Some(d),
                        "StudyDate_DICOM is not a YYYYMMDD date; age set to NULL, and the study has no place in its patient's follow-up (left out of `followup` and `studies`)",
                    );
                }
                y
            }
        };
        if let (Some(p), Some(b)) = (patient[r], birth[r]) {
            let years = births.entry(p).or_default();
            if !years.contains(&b) {
                years.push(b);
            }
        }
        let born = match birth[r] {
            None => None,
            Some(b) => match b.parse::<f64>() {
                Ok(x) if x.is_finite() => Some(x),
                _ => {
                    push(
                        issues,
                        5,
                        Some(b),
                        "PatientBirth is not a year; age set to NULL",
                    );
                    None
                }
            },
        };
        let age = match (year, born) {
            (Some(y), Some(b)) => {
                let a = (y as f64 - b) as f32;
                if (0.0..=MAX_AGE).contains(&a) {
                    Some(a)
                } else {
                    let msg = format!(
                        "age {a} from StudyDate_DICOM {} and PatientBirth is negative or over 120; set to NULL",
                        date[r].unwrap_or("")
                    );
                    push(issues, 5, birth[r], &msg);
                    None
                }
            }
            _ => None,
        };
        let source = match method[r].map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            Some("physician") => Some("padchest_physician"),
            Some("rnn_model") => Some("padchest_rnn"),
            _ => {
                push(
                    issues,
                    8,
                    method[r],
                    "MethodLabel is not Physician or RNN_model; the image's labels are refused",
                );
                None
            }
        };
        // pandas writes a missing list as `nan`.
        match labels[r].filter(|t| !t.trim().eq_ignore_ascii_case("nan")) {
            None => push(issues, 9, labels[r], "no Labels; image kept without labels"),
            Some(text) => match parse_py_list(text) {
                None => push(
                    issues,
                    9,
                    Some(text),
                    "Labels is not a list literal; image kept without labels",
                ),
                Some(items) => {
                    let mut distinct: Vec<&str> = Vec::new();
                    let mut had_empty = false;
                    for item in &items {
                        let s = item.trim();
                        if s.is_empty() {
                            had_empty = true;
                        } else if !distinct.iter().any(|d| same_label(d, s)) {
                            // The label map reads labels in any case: one label.
                            distinct.push(s);
                        }
                        if distinct.len() > MAX_LABELS_PER_IMAGE {
                            break;
                        }
                    }
                    if distinct.len() > MAX_LABELS_PER_IMAGE {
                        push(
                            issues,
                            9,
                            Some(text),
                            "more than 100 distinct labels in one image's Labels (the release has at most 20); the image's labels are refused",
                        );
                        distinct.clear();
                    }
                    if had_empty {
                        push(issues, 9, Some(text), "empty item in Labels; ignored");
                    }
                    if items.is_empty() {
                        push(
                            issues,
                            9,
                            Some(text),
                            "Labels is an empty list; image kept without labels",
                        );
                    }
                    if let Some(source) = source {
                        for s in distinct {
                            let finding =
                                resolver.finding(s, (src, Some(line), t.name(pos[9])), issues)?;
                            rows.labels.push(LabelRow {
                                dataset: NAME,
                                image_id: shared_id.get_or_insert_with(|| image_id.into()).clone(),
                                source: shared.get(source),
                                raw_label: shared.get(s),
                                finding,
                                value: 1,
                            });
                        }
                    }
                }
            },
        }
        rows.images.push(ImageRow {
            dataset: NAME,
            image_id: image_id.into(),
            patient_id: patient[r].map(str::to_string),
            study_id: study[r].map(str::to_string),
            study_order: date[r].and_then(date_key),
            view,
            frontal: frontal_of(view),
            sex,
            age,
            split: None,
            path,
        });
    }
    patients_of_several_births(t, pos[5], births, issues);
    Ok(())
}

/// A `data_issues` row for each patient whose images give different birth years:
/// each image's age is computed from its own, so that patient's ages may not agree
/// with the time between their studies.
fn patients_of_several_births(
    t: &CsvTable,
    column: usize,
    births: PlHashMap<&str, Vec<&str>>,
    issues: &mut Issues,
) {
    let mut several: Vec<(&str, Vec<&str>)> = births
        .into_iter()
        .filter(|(_, years)| years.len() > 1)
        .collect();
    several.sort_unstable();
    for (patient, mut years) in several {
        years.sort_unstable();
        issues.push(
            &t.source,
            None,
            Some(t.name(column)),
            Some(patient),
            format!(
                "patient's images give {} birth years ({}); each image's age uses its own",
                years.len(),
                years.join(", ")
            ),
        );
    }
}

/// Parses a Python list literal of strings (`['a', " b", '']`): the items, unstripped;
/// None when the text is not such a literal.
pub fn parse_py_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(q) = chars.next() else { break };
        if q != '\'' && q != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => {
                    let e = chars.next()?;
                    item.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                c if c == q => break,
                c => item.push(c),
            }
        }
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(_) => return None,
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::*;

    #[test]
    fn python_lists() {
        let p = |s: &str| parse_py_list(s);
        assert_eq!(p("[]"), Some(vec![]));
        assert_eq!(p("['a']").unwrap(), ["a"]);
        assert_eq!(p("['a', ' b','']").unwrap(), ["a", " b", ""]);
        assert_eq!(p(r#"["it's", 'x\'y', ]"#).unwrap(), ["it's", "x'y"]);
        assert_eq!(p("nan"), None);
        assert_eq!(p("['a' 'b']"), None);
        assert_eq!(p("['unterminated]"), None);
        assert_eq!(p("[a]"), None);
    }

    /// Same columns and order as the real header (36 columns, first unnamed); the
    /// values are invented.
    const HEADER: &str = ",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,ViewPosition_DICOM,Projection,MethodProjection,Pediatric,Modality_DICOM,Manufacturer_DICOM,PhotometricInterpretation_DICOM,PixelRepresentation_DICOM,PixelAspectRatio_DICOM,SpatialResolution_DICOM,BitsStored_DICOM,WindowCenter_DICOM,WindowWidth_DICOM,Rows_DICOM,Columns_DICOM,XRayTubeCurrent_DICOM,Exposure_DICOM,ExposureInuAs_DICOM,ExposureTime,RelativeXRayExposure_DICOM,ReportID,Report,MethodLabel,Labels,Localizations,LabelsLocalizationsBySentence,labelCUIS,LocalizationsCUIS";

    #[allow(clippy::too_many_arguments)]
    fn row(
        i: usize,
        dir: &str,
        date: &str,
        birth: &str,
        sex: &str,
        proj: &str,
        method: &str,
        labels: &str,
    ) -> String {
        format!(
            "{i},img{i}.png,{dir},{date},st{},pt{},{birth},{sex},POSTEROANTERIOR,{proj},Manual,No,CR,Maker,MONOCHROME2,0,1\\1,0.1,12,2048,4096,2000,2000,100,5,5000,10,,{i},texto del informe,{method},\"{labels}\",\"['loc left']\",\"[['x', 'loc left']]\",\"['C0']\",\"['C1']\"",
            i / 2,
            i / 3
        )
    }

    fn fixture() -> String {
        let rows = [
            row(
                0,
                "0",
                "20140203",
                "1930.0",
                "M",
                "PA",
                "Physician",
                "['normal']",
            ),
            row(
                1,
                "0",
                "20140203",
                "1930.0",
                "F",
                "L",
                "RNN_model",
                "['pleural effusion', ' cardiomegaly', '', 'pleural effusion']",
            ),
            row(
                2,
                "12",
                "20150101",
                "",
                "O",
                "AP_horizontal",
                "RNN_model",
                "['Pleural Effusion', 'martian sign']",
            ),
            row(3, "12", "2015", "1999.0", "", "COSTAL", "Physician", "nan"),
            row(
                4,
                "3",
                "20150101",
                "2016.0",
                "M",
                "EXCLUDE",
                "Physician",
                "['martian sign', 'nodule']",
            ),
            row(
                5,
                "3",
                "20150101",
                "1950.0",
                "F",
                "AP",
                "Robot",
                "['nodule']",
            ),
        ];
        format!("{HEADER}\n{}\n", rows.join("\n"))
    }

    /// One label in other spellings is one label row (`MethodLabel` read in any case
    /// too); an image listing more than
    /// 100 distinct labels has its labels refused with a row (the real file lists at
    /// most 20 per image).
    #[test]
    fn labels_are_one_per_spelling_and_bounded_per_image() {
        let many: Vec<String> = (0..101).map(|k| format!("'label {k}'")).collect();
        let rows = [
            row(
                0,
                "0",
                "20140203",
                "1930.0",
                "m",
                "pa",
                "physician",
                "['Normal', 'normal ', ' NORMAL']",
            ),
            row(
                1,
                "0",
                "20140203",
                "1930.0",
                "F",
                "PA",
                "Physician",
                &format!("[{}]", many.join(", ")),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = write_gz(
            dir.path(),
            "padchest.csv.gz",
            &format!("{HEADER}\n{}\n", rows.join("\n")),
        );
        let mut issues = Issues::default();
        let rows = read(&[p], &LabelMap::default(), &mut issues).unwrap();
        let labels: Vec<(&str, &str)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.raw_label))
            .collect();
        assert_eq!(labels, [("img0.png", "Normal")]);
        assert_eq!(
            (rows.images[0].sex, rows.images[0].view),
            (Some("M"), Some("PA"))
        );
        let said: Vec<(Option<i64>, &str)> = issues
            .rows()
            .iter()
            .map(|i| (i.line, i.issue.as_str()))
            .collect();
        assert_eq!(
            said,
            [(
                Some(3),
                "more than 100 distinct labels in one image's Labels (the release has at most 20); the image's labels are refused"
            )]
        );
    }

    #[test]
    fn reads_a_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_gz(dir.path(), "padchest.csv.gz", &fixture());
        let mut issues = Issues::default();
        let rows = read(&[p], &LabelMap::default(), &mut issues).unwrap();
        assert_eq!(rows.images.len(), 6);
        let img = |i: usize| &rows.images[i];
        assert_eq!(img(0).path.as_deref(), Some("0/img0.png"));
        assert_eq!(
            (img(0).patient_id.as_deref(), img(0).study_id.as_deref()),
            (Some("pt0"), Some("st0"))
        );
        assert_eq!(
            (img(0).view, img(0).frontal, img(0).sex, img(0).age),
            (Some("PA"), Some(true), Some("M"), Some(84.0))
        );
        assert_eq!(
            (img(1).view, img(1).frontal),
            (Some("LATERAL"), Some(false))
        );
        assert_eq!(
            (img(2).view, img(2).frontal, img(2).sex, img(2).age),
            (Some("AP_SUPINE"), Some(true), None, None)
        );
        assert_eq!(
            (img(3).view, img(3).frontal, img(3).sex, img(3).age),
            (Some("OTHER"), None, None, None)
        );
        assert_eq!(
            (img(4).view, img(4).frontal, img(4).age),
            (None, None, None)
        );
        assert_eq!(img(5).view, Some("AP"));

        let labels: Vec<_> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.source, &*l.raw_label, l.finding))
            .collect();
        assert_eq!(
            labels,
            [
                ("img0.png", "padchest_physician", "normal", None),
                (
                    "img1.png",
                    "padchest_rnn",
                    "pleural effusion",
                    Some("Effusion")
                ),
                (
                    "img1.png",
                    "padchest_rnn",
                    "cardiomegaly",
                    Some("Cardiomegaly")
                ),
                (
                    "img2.png",
                    "padchest_rnn",
                    "Pleural Effusion",
                    Some("Effusion")
                ),
                ("img2.png", "padchest_rnn", "martian sign", None),
                ("img4.png", "padchest_physician", "martian sign", None),
                ("img4.png", "padchest_physician", "nodule", Some("Nodule")),
            ]
        );
        assert!(rows.labels.iter().all(|l| l.value == 1));

        let got = issue_keys(&issues);
        let want: [(i64, &str, &str); 10] = [
            (
                3,
                "Labels",
                "['pleural effusion', ' cardiomegaly', '', 'pleural effusion']",
            ),
            (4, "PatientSex_DICOM", "O"),
            (4, "Labels", "martian sign"),
            (5, "PatientSex_DICOM", ""),
            (5, "StudyDate_DICOM", "2015"),
            (5, "Labels", "nan"),
            (6, "Projection", "EXCLUDE"),
            (6, "PatientBirth", "2016.0"),
            (7, "MethodLabel", "Robot"),
            // Patient pt1's images give two birth years (no line: the patient's).
            (0, "PatientBirth", "pt1"),
        ];
        for (l, f, v) in want {
            assert!(has(&got, l, f, v), "missing {l} {f} {v} in {got:?}");
        }
        assert_eq!(got.len(), want.len(), "{got:?}");
    }

    #[test]
    fn wrong_file_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "train.csv", "Path,Sex,Age\na.jpg,Male,3\n");
        let e = read(&[p], &LabelMap::default(), &mut Issues::default()).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(
            m.contains("train.csv") && m.contains("'ImageID'") && m.contains("'Labels'"),
            "{m}"
        );
    }

    /// The real PadChest file. Counts from SOURCES.md, except where noted.
    #[test]
    fn real_file_counts() {
        let Some(dir) = shared_datasets() else { return };
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
        let mut issues = Issues::default();
        let file = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz";
        let rows = read(&[dir.join(file)], &LabelMap::default(), &mut issues).unwrap();
        say!(
            "padchest: {:.2} s wall, {:.2} s CPU",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
        assert_eq!(rows.images.len(), 160_861);
        assert_eq!(
            distinct(rows.images.iter().map(|i| i.patient_id.clone())),
            67_625
        );
        assert_eq!(
            distinct(rows.images.iter().map(|i| i.study_id.clone())),
            109_931
        );
        let n_label = |s: &str| rows.labels.iter().filter(|l| &*l.raw_label == s).count();
        assert_eq!(n_label("normal"), 50_616);
        assert_eq!(n_label("COPD signs"), 23_280);
        assert_eq!(n_label("cardiomegaly"), 15_022);
        assert_eq!(n_label("pleural effusion"), 9_853);
        assert_eq!(n_label("pneumonia"), 7_953);
        assert_eq!(n_label("pneumothorax"), 533);
        // 193 distinct non-empty stripped labels (SOURCES.md's 194 counts the empty
        // item): python3 -c "import csv,gzip,ast; r=csv.DictReader(gzip.open(F,'rt',newline=''));
        //   print(len({x.strip() for row in r if row['Labels'].startswith('[')
        //   for x in ast.literal_eval(row['Labels'])} - {''}))"
        assert_eq!(distinct(rows.labels.iter().map(|l| &*l.raw_label)), 193);
        // Every label is in the shipped map: no unknown-label issue.
        assert!(
            !issues
                .rows()
                .iter()
                .any(|i| i.issue.contains("not in the label map"))
        );
        let by = |f: &dyn Fn(&ImageRow) -> bool| rows.images.iter().filter(|i| f(i)).count();
        assert_eq!(by(&|i| i.view == Some("PA")), 91_728);
        assert_eq!(by(&|i| i.view == Some("LATERAL")), 49_579);
        assert_eq!(by(&|i| i.view == Some("AP_SUPINE")), 14_346);
        assert_eq!(by(&|i| i.view == Some("AP")), 4_559);
        assert_eq!(by(&|i| i.view == Some("OTHER")), 630);
        assert_eq!(by(&|i| i.view.is_none()), 11 + 8);
        assert_eq!(by(&|i| i.sex == Some("M")), 80_920);
        assert_eq!(by(&|i| i.sex == Some("F")), 79_919);
        assert_eq!(by(&|i| i.sex.is_none()), 18 + 4);
        let n_issue = |field: &str, what: &str| {
            issues
                .rows()
                .iter()
                .filter(|i| i.field.as_deref() == Some(field) && i.issue.contains(what))
                .count()
        };
        assert_eq!(n_issue("Labels", "empty item"), 3_041);
        assert_eq!(n_issue("Labels", "no Labels"), 103);
        assert_eq!(n_issue("Projection", ""), 11 + 8);
        assert_eq!(n_issue("PatientSex_DICOM", ""), 18 + 4);
        // Images with at least one non-empty label, per MethodLabel, and images
        // without an age, computed independently (F = the .csv.gz):
        // python3 -c "import csv,gzip,ast,collections; r=list(csv.DictReader(gzip.open(F,'rt',newline='')));
        //   print(collections.Counter(x['MethodLabel'] for x in r if x['Labels'].startswith('[')
        //   and any(i.strip() for i in ast.literal_eval(x['Labels']))),
        //   sum(1 for x in r if not x['PatientBirth'] or not 0<=int(x['StudyDate_DICOM'][:4])-float(x['PatientBirth'])<=120))"
        // → RNN_model 120928, Physician 39053; 6.
        let images_of = |src: &str| {
            distinct(
                rows.labels
                    .iter()
                    .filter(|l| &*l.source == src)
                    .map(|l| &l.image_id),
            )
        };
        assert_eq!(images_of("padchest_physician"), 39_053);
        assert_eq!(images_of("padchest_rnn"), 120_928);
        assert_eq!(by(&|i| i.age.is_none()), 6);
        // 356 patients whose images give different PatientBirth values (pandas:
        // the distinct non-empty values per PatientID).
        assert_eq!(n_issue("PatientBirth", ""), 356);
    }
}
