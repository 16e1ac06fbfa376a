//! The cross-dataset tables through the command line, on small fixtures written here
//! in each release's format, and on the real files where ../shared/datasets exists.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const CHEXPERT_HEADER: &str = "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,Support Devices";

/// Four invented CheXpert rows: a positive and an uncertain label, an `Unknown` sex,
/// a lateral view, and an `LL` view marked Frontal (the source's contradiction).
fn chexpert_fixture(dir: &Path) -> PathBuf {
    let rows = [
        // Cardiomegaly 1, Pleural Effusion -1, Pneumothorax 0, the rest blank.
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,,,,,0.0,-1.0,,,",
        "CheXpert-v1.0-small/train/patient00001/study2/view1_frontal.jpg,Female,69,Frontal,PA,1.0,,,,,,,,,,,,,",
        "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Unknown,50,Lateral,,,,,,,,,,1.0,,,,,",
        "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,40,Frontal,LL,,,,,,,,,,,,,1.0,",
    ];
    let p = dir.join("train.csv");
    std::fs::write(&p, format!("{CHEXPERT_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    p
}

fn ingest(dir: &Path, extra: &[&str]) -> std::process::Output {
    let wh = dir.join("wh");
    let mut a = vec![
        "ingest",
        "--no-images",
        "--no-other-release",
        "-w",
        wh.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    run(&a)
}

/// A warehouse (`dir/wh`) of CheXpert `rows` (under the labeler's header) alone.
fn ingest_chexpert_rows<S: AsRef<str>>(dir: &Path, rows: &[S]) -> PathBuf {
    let rows: Vec<&str> = rows.iter().map(AsRef::as_ref).collect();
    let train = dir.join("train.csv");
    std::fs::write(&train, format!("{CHEXPERT_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let out = ingest(
        dir,
        &["--dataset", &format!("chexpert={}", train.display())],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    dir.join("wh")
}

/// `finding_states` as ingest wrote it equals its SQL definition over `dataset_labels`
/// (`src/sql/views/finding_states.sql`), row for row, both ways.
fn assert_states_equal_their_definition(wh: &Path) {
    let view = cxr::sql::view_sql("finding_states", "", "");
    let (table, defined) = (
        "SELECT * FROM finding_states".to_string(),
        format!("SELECT * FROM ({view})"),
    );
    for (a, b) in [(&table, &defined), (&defined, &table)] {
        assert_eq!(
            q(wh, &format!("SELECT COUNT(*) FROM ({a} EXCEPT {b})")),
            [["0"]]
        );
    }
}

fn q(wh: &Path, sql: &str) -> Vec<Vec<String>> {
    let out = run(&["sql", "-w", wh.to_str().unwrap(), "--format", "csv", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    parse_csv(&stdout(&out)).into_iter().skip(1).collect()
}

/// An image of unknown sex is drawn in the age plot, as bars of its own: the
/// fixture's one `Unknown` sex (age 50) is one grey bar in the 50-54 bin.
#[test]
fn the_age_plot_draws_images_of_unknown_sex() {
    let dir = tempfile::tempdir().unwrap();
    let train = chexpert_fixture(dir.path());
    let out = ingest(
        dir.path(),
        &["--dataset", &format!("chexpert={}", train.display())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = dir.path().join("age.svg");
    let w = dir.path().join("wh");
    let out = run(&[
        "plot",
        "age",
        "-w",
        w.to_str().unwrap(),
        "--dataset",
        "chexpert",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("sex unknown"), "no legend for unknown sex");
    assert!(
        text.matches("fill=\"#969696\"").count() >= 2,
        "no bar and legend key in grey"
    );
}

#[test]
fn chexpert_rows_labels_and_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let train = chexpert_fixture(dir.path());
    let arg = format!("chexpert={}", train.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*), COUNT(DISTINCT patient_id), COUNT(DISTINCT study_id) FROM dataset_images WHERE dataset = 'chexpert'"
        ),
        [["4", "3", "4"]]
    );
    // Patient and study from the path.
    assert_eq!(
        q(
            &wh,
            "SELECT patient_id, study_id, \"view\", frontal, sex, age FROM dataset_images WHERE dataset = 'chexpert' ORDER BY image_id"
        ),
        [
            [
                "patient00001",
                "patient00001/study1",
                "AP",
                "true",
                "F",
                "68.0"
            ],
            [
                "patient00001",
                "patient00001/study2",
                "PA",
                "true",
                "F",
                "69.0"
            ],
            [
                "patient00002",
                "patient00002/study1",
                "LATERAL",
                "false",
                "",
                "50.0"
            ],
            [
                "patient00003",
                "patient00003/study1",
                "OTHER",
                "",
                "M",
                "40.0"
            ],
        ]
    );
    // One row per non-empty label cell, values as written, mapped by the label map.
    assert_eq!(
        q(
            &wh,
            "SELECT raw_label, finding, \"value\" FROM dataset_labels WHERE dataset = 'chexpert' AND image_id LIKE '%patient00001/study1/%' ORDER BY raw_label"
        ),
        [
            ["Cardiomegaly", "Cardiomegaly", "1"],
            ["Pleural Effusion", "Effusion", "-1"],
            ["Pneumothorax", "Pneumothorax", "0"],
        ]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM dataset_labels WHERE dataset = 'chexpert'"
        ),
        [["6"]]
    );
    // Unknown sex and the LL row marked Frontal are recorded.
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE source_file = 'train.csv' AND value IN ('Unknown', 'LL')"
        ),
        [["2"]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT n_images, n_patients, label_sources FROM datasets WHERE dataset = 'chexpert'"
        ),
        [["4", "3", "[chexpert]"]]
    );
    // NIH is always there too, with Google's labels as a second source.
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM dataset_images WHERE dataset = 'nih'"
        ),
        [["112120"]]
    );
    // The names of schema version 3 still answer, as views, for saved queries.
    assert_eq!(
        q(
            &wh,
            "SELECT (SELECT COUNT(*) FROM xr_images WHERE dataset = 'chexpert') AS images, \
             (SELECT COUNT(DISTINCT image_id) FROM xr_labels WHERE dataset = 'chexpert') AS labelled, \
             (SELECT COUNT(*) FROM xr_boxes WHERE dataset = 'chexpert') AS boxes"
        ),
        [["4", "4", "0"]]
    );
}

#[test]
fn cross_dataset_manifest_targets() {
    let dir = tempfile::tempdir().unwrap();
    let train = chexpert_fixture(dir.path());
    let arg = format!("chexpert={}", train.display());
    assert!(ingest(dir.path(), &["--dataset", &arg]).status.success());
    let wh = dir.path().join("wh");
    let targets = |policy: &str| -> Vec<String> {
        let out = dir.path().join(format!("m-{policy}.parquet"));
        let r = run(&[
            "export",
            "-w",
            wh.to_str().unwrap(),
            "--dataset",
            "chexpert,nih",
            "--uncertain",
            policy,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", stderr(&r));
        // Read back through cxr's SQL over the file (targets in XR_FINDINGS order:
        // Cardiomegaly is 2nd, Effusion 5th, Hernia 8th, Pneumothorax 14th).
        q(&wh, &format!(
            "SELECT CAST(targets[2] AS VARCHAR) || ' ' || CAST(targets[5] AS VARCHAR) || ' ' || CAST(targets[8] AS VARCHAR) || ' ' || CAST(targets[14] AS VARCHAR) FROM '{}' WHERE image_id LIKE '%patient00001/study1/%'",
            out.display()
        ))
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
    };
    // Cardiomegaly 1; Effusion uncertain; Hernia never labelled by CheXpert: NaN;
    // Pneumothorax stated negative: 0.
    assert_eq!(targets("nan"), ["1.0 NaN NaN 0.0"]);
    assert_eq!(targets("positive"), ["1.0 1.0 NaN 0.0"]);
    assert_eq!(targets("negative"), ["1.0 0.0 NaN 0.0"]);
    // U-MultiClass: the uncertain Effusion stays -1.
    assert_eq!(targets("keep"), ["1.0 -1.0 NaN 0.0"]);
    // --targets wide: one named Float32 column per finding beside the list.
    let out = dir.path().join("wide.parquet");
    let r = run(&[
        "export",
        "-w",
        wh.to_str().unwrap(),
        "--dataset",
        "chexpert",
        "--targets",
        "wide",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(
        q(
            &wh,
            &format!(
                "SELECT \"Cardiomegaly\", \"Effusion\", \"Hernia\", \"Pneumothorax\", arrow_typeof(\"Effusion\"), cardinality(targets) FROM '{}' WHERE image_id LIKE '%patient00001/study1/%'",
                out.display()
            )
        ),
        [["1.0", "NaN", "NaN", "0.0", "Float32", "18"]]
    );
}

/// A cohort's first studies with `--image-root`: 70,000 patients, each path
/// joined to the folder, as a batch of tens of thousands of rows reaches `concat`
/// (it was refused as a function result of over 8 MiB). Each path is the folder
/// and the CSV's `Path`, computed here.
#[test]
fn image_root_on_a_large_cohort_of_first_studies() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = (1..=70_000)
        .map(|p| format!("CheXpert-v1.0-small/train/patient{p:05}/study1/view1_frontal.jpg"))
        .collect();
    let rows: Vec<String> = paths
        .iter()
        .map(|p| format!("{p},Female,60,Frontal,PA,,,1.0,,,,,,,,,,,"))
        .collect();
    let wh = ingest_chexpert_rows(dir.path(), &rows);
    let manifest = dir.path().join("first.parquet");
    let out = run(&[
        "export",
        "-w",
        wh.to_str().unwrap(),
        "--dataset",
        "chexpert",
        "--first-study",
        "--image-root",
        "/data",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = q(
        &wh,
        &format!("SELECT path FROM '{}' ORDER BY path", manifest.display()),
    );
    let mut want: Vec<String> = paths.iter().map(|p| format!("/data/{p}")).collect();
    want.sort();
    assert_eq!(got.len(), want.len());
    assert!(got.iter().zip(&want).all(|(row, path)| &row[0] == path));
}

#[test]
fn a_wrong_file_for_a_dataset_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("padchest.csv");
    std::fs::write(
        &wrong,
        ",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,Projection,MethodLabel,Labels\n0,a.png,1,20100101,s1,p1,1950.0,M,PA,Physician,['normal']\n",
    )
    .unwrap();
    let arg = format!("chexpert={}", wrong.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("padchest.csv") && err.contains("Frontal/Lateral"),
        "{err}"
    );
    assert!(!dir.path().join("wh").exists());
    let out = ingest(dir.path(), &["--dataset", "nosuch=x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chexpert"), "{}", stderr(&out));

    // One file given twice would be read twice: refused, by any spelling of its path.
    let train = chexpert_fixture(dir.path());
    let again = dir.path().join(".").join("train.csv");
    let arg = format!("chexpert={},{}", train.display(), again.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("given twice"), "{}", stderr(&out));
    assert!(!dir.path().join("wh").exists());
}

/// A dataset file of a header and no rows is refused, as NIH's metadata is (exit 2,
/// naming it, nothing written); a path leading out of the release's folder is set to
/// NULL with a `data_issues` row naming its line and column.
#[test]
fn an_empty_dataset_is_refused_and_a_path_out_of_its_folder_is_noted_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, format!("{CHEXPERT_HEADER}\n")).unwrap();
    let arg = format!("chexpert={}", empty.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("empty.csv") && stderr(&out).contains("a header and no records"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("wh").exists());

    let out_of_root = dir.path().join("train.csv");
    let rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,,,,,,,,,",
        "CheXpert-v1.0-small/train/patient00006/study1/../../view1_frontal.jpg,Female,40,Frontal,AP,,,,,,,,,,,,,,",
    ];
    std::fs::write(
        &out_of_root,
        format!("{CHEXPERT_HEADER}\n{}\n", rows.join("\n")),
    )
    .unwrap();
    let arg = format!("chexpert={}", out_of_root.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    assert_eq!(
        q(
            &wh,
            "SELECT line, field, value FROM data_issues WHERE issue LIKE '%leads out%'"
        ),
        [["3", "Path", rows[1].split(',').next().unwrap()]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT count(*) FROM dataset_images WHERE dataset = 'chexpert' AND path IS NULL"
        ),
        [["1"]]
    );
}

/// Datasets are written as they are read: a wrong file after good ones still fails
/// the whole ingest (exit 2, naming it) and leaves the warehouse as it was.
#[test]
fn a_wrong_file_after_written_datasets_leaves_the_warehouse_whole() {
    let dir = tempfile::tempdir().unwrap();
    let train = chexpert_fixture(dir.path());
    let good = format!("chexpert={}", train.display());
    assert!(ingest(dir.path(), &["--dataset", &good]).status.success());
    let manifest = dir.path().join("wh/manifest.json");
    let before = std::fs::read(&manifest).unwrap();
    let masks = dir.path().join("train-rle.csv");
    std::fs::write(&masks, "ImageId, EncodedPixels\n1.2.3.1, 2050 3 1021 3\n").unwrap();
    let siim = format!("siim={}", masks.display());
    let wrong = dir.path().join("vindr.csv");
    std::fs::write(&wrong, "image_id,class_name\nabc,Aortic enlargement\n").unwrap();
    let wrong_arg = format!("vindr={}", wrong.display());
    let out = ingest(
        dir.path(),
        &[
            "--dataset",
            &good,
            "--dataset",
            &siim,
            "--dataset",
            &wrong_arg,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("vindr.csv") && stderr(&out).contains("rad_id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
    let entries = std::fs::read_dir(dir.path().join("wh")).unwrap().count();
    assert_eq!(
        entries, 3,
        "a failed ingest left something behind (manifest, lock, one version)"
    );
    assert_eq!(
        q(
            &dir.path().join("wh"),
            "SELECT dataset FROM datasets ORDER BY dataset"
        ),
        [["chexpert"], ["nih"]]
    );
}

#[test]
fn agreement_between_the_two_nih_releases() {
    // Pneumonia positives in each release, counted from the shipped CSVs here.
    let count = |name: &str| -> i64 {
        nih_csv_records(name)
            .iter()
            .filter(|f| findings_of(&f[1]).contains("Pneumonia"))
            .count() as i64
    };
    let (p17, p20) = (
        count("Data_Entry_2017.csv.gz"),
        count("Data_Entry_2017_v2020.csv.gz"),
    );
    let w = wh2020();
    let out = run(&[
        "agree",
        "-w",
        w.to_str().unwrap(),
        "--a",
        "nih_2017",
        "--b",
        "nih_2020",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Piped: CSV, like every command.
    let pneumonia = |out: &std::process::Output| -> Vec<String> {
        parse_csv(&stdout(out))
            .into_iter()
            .find(|r| r[0] == "Pneumonia")
            .unwrap()
    };
    // Both releases label every member of Google's groupings: compared on the 14
    // findings alone, no grouping rows.
    let findings: Vec<String> = parse_csv(&stdout(&out))[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(findings, NIH_FINDINGS);
    let cells = pneumonia(&out);
    assert_eq!(cells[1], "112120");
    assert_eq!(cells[2].parse::<i64>().unwrap(), p17);
    assert_eq!(cells[3].parse::<i64>().unwrap(), p20);
    // With a cohort flag: the women only (column 6 of the CSV is the sex).
    let women = |name: &str| -> (i64, i64) {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(data(name)).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let f: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| c[5] == "F")
            .collect();
        let pneumonia = f
            .iter()
            .filter(|c| c[1].split('|').any(|x| x == "Pneumonia"))
            .count();
        (f.len() as i64, pneumonia as i64)
    };
    let ((n_f, p17_f), (_, p20_f)) = (
        women("Data_Entry_2017.csv.gz"),
        women("Data_Entry_2017_v2020.csv.gz"),
    );
    let out = run(&[
        "agree",
        "-w",
        w.to_str().unwrap(),
        "--a",
        "nih_2017",
        "--b",
        "nih_2020",
        "--sex",
        "F",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cells: Vec<i64> = pneumonia(&out)[1..4]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(cells, [n_f, p17_f, p20_f]);
    let out = run(&[
        "agree",
        "-w",
        w.to_str().unwrap(),
        "--a",
        "nih_2017",
        "--b",
        "nosuch",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("google_2019"), "{}", stderr(&out));
}

/// The real files, where the workplace provides them: counts from their SOURCES.md.
#[test]
fn real_files_of_every_dataset() {
    let Some(shared) = shared_datasets() else {
        return;
    };
    let f = |n: &str| shared.join(n).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        format!("chexpert={}", f("chexpert_train.csv.gz")),
        format!(
            "padchest={}",
            f("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
        ),
        format!("vindr={}", f("vinbigdata-train.csv.gz")),
        format!(
            "rsna={},{}",
            f("kaggle_stage_2_train_labels.csv.zip"),
            f("kaggle_stage_2_train_images_dicom_headers.csv.gz")
        ),
        format!("siim={}", f("siim-pneumothorax-train-rle.csv.gz")),
        format!(
            "openi={},{}",
            f("nlmcxr_dicom_metadata.csv.gz"),
            f("NLMCXR_reports.tgz")
        ),
    ];
    let mut a: Vec<&str> = Vec::new();
    for s in &specs {
        a.extend(["--dataset", s.as_str()]);
    }
    let out = ingest(dir.path(), &a);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    assert_eq!(
        q(
            &wh,
            "SELECT dataset, n_images, n_patients, n_studies FROM datasets WHERE dataset IN ('chexpert', 'padchest') ORDER BY dataset"
        ),
        [
            ["chexpert", "223414", "64540", "187641"],
            ["padchest", "160861", "67625", "109931"]
        ]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT dataset, COUNT(*) FROM dataset_images WHERE dataset IN ('vindr', 'rsna', 'siim') GROUP BY dataset ORDER BY dataset"
        ),
        [["rsna", "26684"], ["siim", "12047"], ["vindr", "15000"]]
    );
    // CheXpert Pleural Effusion: 86,187 positive, 35,396 negative, 11,628 uncertain.
    assert_eq!(
        q(
            &wh,
            "SELECT \"value\", COUNT(*) FROM dataset_labels WHERE source = 'chexpert' AND raw_label = 'Pleural Effusion' GROUP BY \"value\" ORDER BY \"value\""
        ),
        [["-1", "11628"], ["0", "35396"], ["1", "86187"]]
    );
    // PadChest: 356 patients whose images give different PatientBirth values
    // (pandas: the distinct non-empty values per PatientID).
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE field = 'PatientBirth' AND issue LIKE '%birth years%'"
        ),
        [["356"]]
    );
    // PadChest: images per label, e.g. pleural effusion 9,853, pneumothorax 533.
    assert_eq!(
        q(
            &wh,
            "SELECT raw_label, COUNT(DISTINCT image_id) FROM dataset_labels WHERE dataset = 'padchest' AND raw_label IN ('pleural effusion', 'pneumothorax') GROUP BY raw_label ORDER BY raw_label"
        ),
        [["pleural effusion", "9853"], ["pneumothorax", "533"]]
    );
    // PadChest Effusion: the images whose Labels hold pleural effusion or a loculated
    // (fissural or pleural) effusion, 9,986 in the raw file; the 40 images with only a
    // pericardial effusion (79 with one at all) are not among them.
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM dataset_images WHERE dataset = 'padchest' AND (positive_findings & 16) <> 0"
        ),
        [["9986"]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(DISTINCT image_id), COUNT(finding) FROM dataset_labels WHERE dataset = 'padchest' AND raw_label = 'pericardial effusion'"
        ),
        [["79", "0"]]
    );
    // Fleiss' kappa among VinDr's readers, in a warehouse of every dataset, within
    // the default memory limit: every one of the 15,000 images read by three.
    let out = run(&[
        "agree",
        "-w",
        wh.to_str().unwrap(),
        "--readers",
        "vindr",
        "-f",
        "csv",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    assert!(rows.len() > 5, "{rows:?}");
    for r in &rows[1..] {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("15000", "3"), "{r:?}");
    }
    // VinDr: 17 readers (some only ever voted No finding); RSNA: 9,555 boxes;
    // OpenI: 3,955 reports.
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(DISTINCT source) FROM dataset_labels WHERE dataset = 'vindr'"
        ),
        [["17"]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM dataset_boxes WHERE dataset = 'rsna'"
        ),
        [["9555"]]
    );
    assert_eq!(q(&wh, "SELECT COUNT(*) FROM reports"), [["3955"]]);
    // `frontal = false` means lateral: CheXpert's 32,387 Lateral rows and PadChest's
    // 49,579 `L` rows (SOURCES.md); COSTAL and the LL/RL rows are not "not frontal".
    assert_eq!(
        q(
            &wh,
            "SELECT dataset, COUNT(*) FROM dataset_images WHERE frontal = false AND dataset IN ('chexpert', 'padchest') GROUP BY dataset ORDER BY dataset"
        ),
        [["chexpert", "32387"], ["padchest", "49579"]]
    );
    // Patients the release does not identify are unknown, not 0.
    assert_eq!(
        q(
            &wh,
            "SELECT dataset, n_patients IS NULL FROM datasets WHERE dataset IN ('rsna', 'siim', 'vindr', 'chexpert') ORDER BY dataset"
        ),
        [
            ["chexpert", "false"],
            ["rsna", "true"],
            ["siim", "true"],
            ["vindr", "true"]
        ]
    );
    // PadChest images without any label, counted from the raw file here: unknown for
    // every finding, so in neither --with nor --without.
    let padchest = read_gz(&f(
        "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
    ));
    let records = parse_csv(&padchest);
    let labels_at = records[0].iter().position(|h| h == "Labels").unwrap();
    let unlabelled = records[1..]
        .iter()
        .filter(|r| {
            // `nan`: pandas' missing value, the 103 rows without labels (SOURCES.md).
            r[labels_at] == "nan"
                || r[labels_at]
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(',')
                    .all(|item| item.trim().trim_matches('\'').trim().is_empty())
        })
        .count();
    let total = records.len() - 1;
    assert!(unlabelled > 0);
    let count = |flags: &[&str]| -> usize {
        let mut a = vec![
            "cohort",
            "-w",
            wh.to_str().unwrap(),
            "-f",
            "csv",
            "--dataset",
            "padchest",
        ];
        a.extend_from_slice(flags);
        run_csv(&a).len() - 1
    };
    let (with, without) = (
        count(&["--with", "Effusion"]),
        count(&["--without", "Effusion"]),
    );
    assert_eq!(with + without, total - unlabelled);
    // VinDr's reader votes, counted from the raw file here: images whose readers mark
    // Cardiomegaly — at least one, more than half, all of them — and images every
    // reader calls normal (`No finding`), which each vote holds normal.
    let vindr = parse_csv(&read_gz(&f("vinbigdata-train.csv.gz")));
    let mut readers: std::collections::HashMap<&str, std::collections::HashMap<&str, Vec<&str>>> =
        Default::default();
    for r in &vindr[1..] {
        let classes = readers.entry(r[0].as_str()).or_default();
        classes
            .entry(r[3].as_str())
            .or_default()
            .push(r[1].as_str());
    }
    let by_vote = |rule: &dyn Fn(usize, usize) -> bool| {
        readers
            .values()
            .filter(|by| {
                let c = by
                    .values()
                    .filter(|cs| cs.contains(&"Cardiomegaly"))
                    .count();
                rule(c, by.len())
            })
            .count()
    };
    let expected = [
        ("vindr_any", by_vote(&|c, _| c >= 1)),
        ("vindr_majority", by_vote(&|c, n| 2 * c > n)),
        ("vindr_all", by_vote(&|c, n| c == n)),
    ];
    let all_normal = readers
        .values()
        .filter(|by| by.values().all(|cs| cs.iter().all(|c| *c == "No finding")))
        .count();
    for (vote, n) in expected {
        let vindr_count = |flags: &[&str]| {
            let mut a = vec!["cohort", "-w", wh.to_str().unwrap(), "-f", "csv"];
            a.extend_from_slice(&["--dataset", "vindr", "--source", vote]);
            a.extend_from_slice(flags);
            run_csv(&a).len() - 1
        };
        assert_eq!(vindr_count(&["--with", "Cardiomegaly"]), n, "{vote}");
        if vote == "vindr_any" {
            assert_eq!(vindr_count(&["--no-finding"]), all_normal, "{vote}");
        }
    }
    assert!(expected[0].1 > expected[1].1 && expected[1].1 > expected[2].1);
    // The states stored in dataset_images for the default sources equal those resolved
    // from finding_states when the same sources are named: the summary of every
    // dataset (positives, denominators, No Finding) and its pairs.
    let csv = |args: &[&str]| -> String {
        let mut a = vec!["-w", wh.to_str().unwrap(), "-f", "csv"];
        a.splice(0..0, args.iter().copied());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let readers: Vec<String> = (1..=17).map(|r| format!("vindr_R{r}")).collect();
    for (dataset, sources) in [
        ("chexpert", "chexpert".to_string()),
        ("padchest", "padchest_physician,padchest_rnn".to_string()),
        ("vindr", readers.join(",")),
        ("rsna", "rsna_2018".to_string()),
        ("siim", "siim_2019".to_string()),
        ("openi", "openi_mesh".to_string()),
    ] {
        for command in [&["cohort", "--summary"][..], &["cooccur"][..]] {
            let mut default = command.to_vec();
            default.extend(["--dataset", dataset]);
            let mut named = default.clone();
            named.extend(["--source", sources.as_str()]);
            assert_eq!(csv(&default), csv(&named), "{dataset} {command:?}");
        }
    }
    // A cohort across datasets on the real CheXpert file: images positive (1.0) for
    // Atelectasis, for Cardiomegaly and for both, counted from the CSV here.
    let (mut a, mut c, mut ac) = (0i64, 0i64, 0i64);
    // Effusion's denominator: images with a CheXpert label at all (rows whose 14
    // label cells are all blank know nothing) and no uncertain Effusion.
    let (mut effusion_known, mut effusion_positive, mut normal) = (0i64, 0i64, 0i64);
    {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(f("chexpert_train.csv.gz")).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let at = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (ia, ic) = (at("Atelectasis"), at("Cardiomegaly"));
        let (ie, inf) = (at("Pleural Effusion"), at("No Finding"));
        for l in lines {
            let cells: Vec<&str> = l.split(',').collect();
            let (pa, pc) = (cells[ia] == "1.0", cells[ic] == "1.0");
            a += pa as i64;
            c += pc as i64;
            ac += (pa && pc) as i64;
            let labels = &cells[inf..];
            if labels.iter().any(|v| !v.is_empty()) && cells[ie] != "-1.0" {
                effusion_known += 1;
                effusion_positive += (cells[ie] == "1.0") as i64;
            }
            // Normal: No Finding 1 and nothing positive or uncertain but devices.
            let devices = at("Support Devices");
            normal +=
                (cells[inf] == "1.0"
                    && labels.iter().enumerate().all(|(k, v)| {
                        k == 0 || inf + k == devices || (*v != "1.0" && *v != "-1.0")
                    })) as i64;
        }
    }
    // One denominator everywhere: the saved prevalence query and the summary.
    let out = run(&[
        "run",
        "prevalence_by_dataset",
        "-w",
        wh.to_str().unwrap(),
        "-f",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let row = parse_csv(&stdout(&out))
        .into_iter()
        .find(|r| r[0] == "chexpert" && r[1] == "Effusion")
        .unwrap();
    assert_eq!(
        row[3..5],
        [effusion_known.to_string(), effusion_positive.to_string()]
    );
    let summary = run_csv(&[
        "cohort",
        "-w",
        wh.to_str().unwrap(),
        "-f",
        "csv",
        "--dataset",
        "chexpert",
        "--summary",
    ]);
    let find = |item: &str| {
        summary
            .iter()
            .find(|r| r[1] == "finding" && r[2] == item)
            .unwrap()
            .clone()
    };
    let effusion = find("Effusion");
    assert_eq!(
        (effusion[3].as_str(), effusion[5].as_str()),
        (
            effusion_positive.to_string().as_str(),
            effusion_known.to_string().as_str()
        )
    );
    assert_eq!(find("No Finding")[3], normal.to_string());
    let out = run(&[
        "cooccur",
        "-w",
        wh.to_str().unwrap(),
        "-f",
        "csv",
        "--dataset",
        "chexpert",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pair = parse_csv(&stdout(&out))
        .into_iter()
        .find(|r| r[1] == "Atelectasis" && r[2] == "Cardiomegaly")
        .unwrap();
    assert_eq!(pair[3..6], [a.to_string(), c.to_string(), ac.to_string()]);
    // The follow-up of whole datasets, which ingest writes (`followup_summary`,
    // `followup_transitions`), equals the follow-up `cxr followup` computes for a
    // cohort of every image (`--where true`), on every dataset.
    for kind in [&[][..], &["--transitions"][..]] {
        let followup = |cohort: &[&str]| {
            let mut a = vec!["followup", "-w", wh.to_str().unwrap(), "-f", "csv"];
            a.extend_from_slice(kind);
            a.extend_from_slice(cohort);
            a.extend(["--dataset", "nih,chexpert,padchest,vindr,rsna,siim,openi"]);
            let out = run(&a);
            assert!(out.status.success(), "{a:?}: {}", stderr(&out));
            parse_csv(&stdout(&out))
        };
        let stored = followup(&[]);
        assert!(stored.len() > 28, "{kind:?}: {stored:?}");
        assert_eq!(stored, followup(&["--where", "true"]), "{kind:?}");
    }
}

/// Normal and unlabelled images across datasets, on CheXpert rows written here: each
/// expected value worked out by hand from the rows. `finding_states` (written by the
/// ingest) equals its SQL definition over `dataset_labels`.
#[test]
fn normal_and_unlabelled_images() {
    let dir = tempfile::tempdir().unwrap();
    let header: Vec<&str> = CHEXPERT_HEADER.split(',').collect();
    let row = |patient: u32, cells: &[(&str, &str)]| -> String {
        let mut r = vec![""; header.len()];
        let path =
            format!("CheXpert-v1.0-small/train/patient{patient:05}/study1/view1_frontal.jpg");
        r[..5].copy_from_slice(&[path.as_str(), "Female", "50", "Frontal", "PA"]);
        let mut r: Vec<String> = r.into_iter().map(str::to_string).collect();
        for (label, value) in cells {
            r[header.iter().position(|h| h == label).unwrap()] = value.to_string();
        }
        r.join(",")
    };
    let rows = [
        // Stated normal; a device beside it is not a finding.
        row(11, &[("No Finding", "1.0"), ("Support Devices", "1.0")]),
        // Stated normal, but a finding is uncertain.
        row(12, &[("No Finding", "1.0"), ("Cardiomegaly", "-1.0")]),
        // Stated normal, but a label outside the 18 is positive.
        row(13, &[("No Finding", "1.0"), ("Pleural Other", "1.0")]),
        row(14, &[("Edema", "1.0")]),
        // No label at all: unknown for everything.
        row(15, &[]),
    ];
    let wh = ingest_chexpert_rows(dir.path(), &rows);
    let w = wh.to_str().unwrap();
    let patients = |flags: &[&str]| -> Vec<String> {
        let mut a = vec!["cohort", "-w", w, "-f", "csv", "--dataset", "chexpert"];
        a.extend_from_slice(flags);
        run_csv(&a)[1..].iter().map(|r| r[2].clone()).collect()
    };
    assert_eq!(patients(&["--no-finding"]), ["patient00011"]);
    // Edema: positive on 14, blank (negative: CheXpert labels Edema) on 11-13,
    // unknown on 15, which has no label.
    assert_eq!(
        patients(&["--without", "Edema"]),
        ["patient00011", "patient00012", "patient00013"]
    );
    assert_eq!(patients(&["--with", "Edema"]), ["patient00014"]);
    // The summary's No Finding: 1 of the 4 images whose normality is known.
    let summary = run_csv(&[
        "cohort",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "chexpert",
        "--summary",
    ]);
    let no_finding = summary
        .iter()
        .find(|r| r[1] == "finding" && r[2] == "No Finding")
        .unwrap();
    assert_eq!(no_finding[3..5], ["1", "25.0"]);
    // The unlabelled image's targets are all unknown (NaN).
    let manifest = dir.path().join("m.parquet");
    let out = run(&[
        "export",
        "-w",
        w,
        "--dataset",
        "chexpert",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        q(
            &wh,
            &format!(
                "SELECT COUNT(*) FROM (SELECT unnest(targets) AS t FROM '{}' WHERE image_id LIKE '%patient00015/%') WHERE isnan(t)",
                manifest.display()
            )
        ),
        [["18"]]
    );
    // The stored table and its definition agree, row for row, both ways.
    assert_states_equal_their_definition(&wh);
    // NIH states an image normal by `No Finding`: as many as the raw CSV has.
    let nih_normal = nih_csv().iter().filter(|i| i.labels.is_empty()).count();
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM finding_states WHERE source = 'nih_2020' AND states_normal AND positive = 0"
        ),
        [[nih_normal.to_string()]]
    );
    // Rows by hand: 4 CheXpert images with labels (15 has none).
    assert_eq!(
        q(
            &wh,
            "SELECT image_id LIKE '%00011/%', positive, uncertain, negative, states_normal, other_positive FROM finding_states WHERE dataset = 'chexpert' ORDER BY image_id"
        ),
        [
            ["true", "0", "0", "0", "true", "false"],
            ["false", "0", "2", "0", "true", "false"],
            ["false", "0", "0", "0", "true", "true"],
            ["false", "8", "0", "0", "false", "false"],
        ]
    );
}

/// A warehouse in `dir` of two SIIM images: one with a mask region, one without.
fn ingest_siim_fixture(dir: &Path) -> PathBuf {
    let masks = dir.join("train-rle.csv");
    std::fs::write(
        &masks,
        "ImageId, EncodedPixels\n1.2.3.1, 2050 3 1021 3\n1.2.3.2, -1\n",
    )
    .unwrap();
    let arg = format!("siim={}", masks.display());
    let out = ingest(dir, &["--dataset", &arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("wh")
}

/// SIIM's mask regions reach the export as boxes: the bounding box of the decoded
/// run-length code, worked out by hand (Kaggle's relative column-major code on a
/// 1024 × 1024 mask: pixels 2050-2052 are column 2, rows 2-4; 1021 further on,
/// 3074-3076 are column 3, rows 2-4), scaled by `--box-size`.
#[test]
fn siim_boxes_reach_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let wh = ingest_siim_fixture(dir.path());
    let manifest = dir.path().join("m.parquet");
    let out = run(&[
        "export",
        "-w",
        wh.to_str().unwrap(),
        "--dataset",
        "siim",
        "--box-size",
        "256",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        q(
            &wh,
            &format!(
                "SELECT image_id, cardinality(boxes), boxes[1]['x'], boxes[1]['y'], boxes[1]['w'], boxes[1]['h'], \
                 boxes[1]['x_scaled'], boxes[1]['h_scaled'], boxes[1]['mask_rle'] FROM '{}' ORDER BY image_id",
                manifest.display()
            )
        ),
        [
            [
                "1.2.3.1",
                "1",
                "2.0",
                "2.0",
                "2.0",
                "3.0",
                "0.5",
                "0.75",
                "2050 3 1021 3"
            ],
            ["1.2.3.2", "", "", "", "", "", "", "", ""],
        ]
    );
}

/// An image without a patient id (SIIM gives none) is a patient of its own with one
/// study, as README says: `--min-studies 1` keeps it, `--min-studies 2` does not.
#[test]
fn an_image_without_a_patient_is_one_patient_of_one_study() {
    let dir = tempfile::tempdir().unwrap();
    let wh = ingest_siim_fixture(dir.path());
    let w = wh.to_str().unwrap();
    let count = |n: &str| {
        let out = run(&[
            "cohort",
            "-w",
            w,
            "-f",
            "csv",
            "--dataset",
            "siim",
            "--min-studies",
            n,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        parse_csv(&stdout(&out)).len() - 1
    };
    assert_eq!(count("0"), 2);
    assert_eq!(count("1"), 2);
    assert_eq!(count("2"), 0);
    // No patient has a second study, so no follow-up: not "no image matches".
    let out = run(&[
        "followup",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "siim",
        "--with",
        "Pneumothorax",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("no image matches"),
        "{}",
        stderr(&out)
    );
    // SIIM gives no order of studies: its empty follow-up says so.
    assert!(
        stderr(&out).contains("siim gives no order of studies, so no follow-up"),
        "{}",
        stderr(&out)
    );
}

/// A dataset that labels one finding (SIIM: Pneumothorax) plots one bar, named:
/// plotters drew a one-value axis without its label.
#[test]
fn a_dataset_of_one_finding_plots_a_named_bar() {
    let dir = tempfile::tempdir().unwrap();
    let wh = ingest_siim_fixture(dir.path());
    let svg = dir.path().join("siim.svg");
    let out = run(&[
        "plot",
        "labels",
        "-w",
        wh.to_str().unwrap(),
        "--dataset",
        "siim",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let svg = std::fs::read_to_string(svg).unwrap();
    let texts: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|(_, text)| text.trim()))
        .collect();
    assert!(texts.iter().any(|t| t.ends_with("(2 images)")), "{texts:?}");
    assert_eq!(
        texts.iter().filter(|t| **t == "Pneumothorax").count(),
        1,
        "the bar is not named once: {texts:?}"
    );
}

/// A gzip file's text.
fn read_gz(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The cohort flags across datasets, on the CheXpert fixture beside NIH: each
/// expected set worked out by hand from the four rows above.
#[test]
fn cohort_flags_across_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let train = chexpert_fixture(dir.path());
    let arg = format!("chexpert={}", train.display());
    assert!(ingest(dir.path(), &["--dataset", &arg]).status.success());
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let ids = |flags: &[&str]| -> Vec<String> {
        let mut a = vec!["cohort", "-w", w, "-f", "csv"];
        a.extend_from_slice(flags);
        let out = run(&a);
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let rows = parse_csv(&stdout(&out));
        assert_eq!(rows[0][..2], ["dataset", "image_id"]);
        rows[1..]
            .iter()
            .map(|r| {
                // patient00001/study1/view1_frontal.jpg → p1s1
                let p: Vec<&str> = r[1].split('/').collect();
                format!(
                    "p{}s{}",
                    p[2].trim_start_matches("patient").trim_start_matches('0'),
                    p[3].trim_start_matches("study")
                )
            })
            .collect()
    };
    let c = ["--dataset", "chexpert"];
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["--dataset", "chexpert"][..], extra].concat()
    }
    assert_eq!(ids(&c), ["p1s1", "p1s2", "p2s1", "p3s1"]);
    assert_eq!(ids(&with(&["--with", "cardiomegaly"])), ["p1s1"]);
    // Effusion is uncertain on p1s1: unknown under U-Ignore, so in neither set;
    // blank on the others, which CheXpert labels: negative.
    assert!(ids(&with(&["--with", "Effusion"])).is_empty());
    assert_eq!(
        ids(&with(&["--without", "Effusion"])),
        ["p1s2", "p2s1", "p3s1"]
    );
    let pos = with(&["--uncertain", "positive", "--with", "Effusion"]);
    assert_eq!(ids(&pos), ["p1s1"]);
    let neg = with(&["--uncertain", "negative", "--without", "Effusion"]);
    assert_eq!(ids(&neg), ["p1s1", "p1s2", "p2s1", "p3s1"]);
    // Views, sexes, first studies, a finding only the 18 know.
    assert_eq!(ids(&with(&["--view", "lateral"])), ["p2s1"]);
    assert_eq!(
        ids(&with(&["--view", "frontal", "--sex", "F"])),
        ["p1s1", "p1s2"]
    );
    assert_eq!(ids(&with(&["--first-study"])), ["p1s1", "p2s1", "p3s1"]);
    assert_eq!(ids(&with(&["--with", "Fracture"])), ["p3s1"]);
    assert_eq!(ids(&with(&["--min-studies", "2"])), ["p1s1", "p1s2"]);
    assert_eq!(ids(&with(&["--no-finding"])), ["p1s2"]);

    // A patient's follow-up: Cardiomegaly at study 1, resolved at study 2.
    let out = run(&[
        "followup",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "chexpert",
        "--patient",
        "patient00001",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][col("labels")], "[Cardiomegaly]");
    assert_eq!(rows[2][col("labels")], "[]");
    assert_eq!(rows[2][col("resolved_labels")], "[Cardiomegaly]");

    // Names the warehouse does not hold are usage errors that list what it has.
    for (flags, says) in [
        (&["--dataset", "mimic"][..], "chexpert, nih"),
        (&["--dataset", "nosuch"][..], "padchest"),
        (&["--source", "nosuch"][..], "nih_2020"),
        (
            &["--dataset", "chexpert", "--with", "Covid"][..],
            "Lung_Opacity",
        ),
        (&["--view", "LATERAL"][..], "with --dataset"),
    ] {
        let mut a = vec!["cohort", "-w", w];
        a.extend_from_slice(flags);
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        assert!(stderr(&out).contains(says), "{flags:?}: {}", stderr(&out));
    }
}

/// NIH read through the cross-dataset tables (labels from dataset_labels, studies from
/// study_order, findings as bit masks) gives the answers of the NIH tables.
#[test]
fn nih_across_datasets_matches_the_nih_tables() {
    let w = wh2020();
    let w = w.to_str().unwrap();
    let csv = |args: &[&str]| -> Vec<Vec<String>> {
        let mut a = vec!["-w", w, "-f", "csv"];
        a.splice(0..0, args.iter().copied());
        let out = run(&a);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        parse_csv(&stdout(&out))
    };
    let drop_dataset = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter().map(|r| r[1..].to_vec()).collect()
    };
    let mut nih = csv(&["cooccur", "--with", "Effusion", "--sex", "F"]);
    let mut xr = drop_dataset(csv(&[
        "cooccur",
        "--dataset",
        "nih",
        "--with",
        "Effusion",
        "--sex",
        "F",
    ]));
    nih.sort();
    xr.sort();
    assert_eq!(nih.len(), 183);
    assert_eq!(nih, xr);
    let mut nih = csv(&["followup", "--transitions", "--view", "PA"]);
    // Sorted as said: appearances, most first, then the finding.
    let sorted = |rows: &[Vec<String>], count: usize| {
        let key = |r: &Vec<String>| (-r[count].parse::<i64>().unwrap(), r[count - 1].clone());
        rows[1..].windows(2).all(|w| key(&w[0]) <= key(&w[1]))
    };
    let whole = csv(&["followup", "--transitions", "--dataset", "nih"]);
    assert!(sorted(&whole, 2), "{whole:?}");
    assert!(sorted(&nih, 1), "{nih:?}");
    let mut xr = drop_dataset(csv(&[
        "followup",
        "--transitions",
        "--dataset",
        "nih",
        "--view",
        "PA",
    ]));
    // The NIH form lists every finding; across datasets those never changing are left out.
    nih.retain(|r| r[1] != "0" || r[2] != "0");
    nih.sort();
    xr.sort();
    assert_eq!(nih, xr);
    let mut nih = csv(&["followup"]);
    let mut xr = drop_dataset(csv(&["followup", "--dataset", "nih"]));
    nih.sort();
    xr.sort();
    assert_eq!(nih, xr);
}

/// Panels across datasets come in the order asked and share their scales (unless
/// --free-scales); lift is coloured on a log scale centred on 1.
#[test]
fn plots_across_datasets_share_scales_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = chexpert_fixture(dir.path());
    let chexpert = format!("chexpert={}", fixture.display());
    let out = ingest(dir.path(), &["--dataset", &chexpert]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let plot = |args: &[&str], name: &str| -> String {
        let file = dir.path().join(name);
        let mut all = vec![
            "plot",
            "-w",
            wh.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        std::fs::read_to_string(file).unwrap()
    };
    let svg = plot(&["labels", "--dataset", "chexpert,nih"], "shared.svg");
    let (chexpert_at, nih_at) = (
        svg.find("— chexpert (4 images)").expect("a CheXpert panel"),
        svg.find("— nih (112120 images)").expect("an NIH panel"),
    );
    assert!(chexpert_at < nih_at, "panels not in the order asked");
    // CheXpert's fixture has Atelectasis, Cardiomegaly and Fracture positive in one
    // of its four images each (25 %); NIH's most common finding, Infiltration, in
    // 19,894 of 112,120 (17.7 %). Shared, both axes reach 25; free, NIH's stops short.
    // The text of each <text> element (plotters puts it on a line of its own).
    let texts = |svg: &str| -> Vec<String> {
        svg.split("</text>")
            .filter_map(|t| t.rsplit_once('>').map(|(_, text)| text.trim().to_string()))
            .collect()
    };
    let ticks = |svg: &str| texts(svg).iter().filter(|t| *t == "25").count();
    assert_eq!(ticks(&svg), 2, "the NIH panel's axis is not shared");
    let free = plot(
        &["labels", "--dataset", "chexpert,nih", "--free-scales"],
        "free.svg",
    );
    assert_eq!(ticks(&free), 1, "--free-scales kept the shared axis");

    // Heatmaps of datasets that label different findings share one axis: Fracture
    // (labelled in the CheXpert fixture, not by NIH) and Hernia (NIH's, not in the
    // fixture) head a row and a column in both panels (grey where not labelled).
    let heat = plot(&["cooccurrence", "--dataset", "chexpert,nih"], "heat.svg");
    let named = |name: &str| texts(&heat).iter().filter(|t| *t == name).count();
    assert_eq!(named("Fracture"), 4, "the axes are not shared");
    assert_eq!(named("Hernia"), 4, "the axes are not shared");
    // One dataset: one title naming it, no caption repeating it above.
    let one = plot(&["cooccurrence", "--dataset", "nih"], "one.svg");
    assert!(
        !texts(&one).iter().any(|t| t == "nih"),
        "a caption repeats the title"
    );
    assert!(
        texts(&one)
            .iter()
            .any(|t| t == "Finding co-occurrence (count) — nih")
    );
    let lift = plot(&["cooccurrence", "--metric", "lift"], "lift.svg");
    assert!(
        texts(&lift).iter().any(|t| t == "1.00"),
        "lift's scale is not centred on 1"
    );
    assert!(lift.contains("lift on a log scale"));
}

/// VinDr's reader votes, on rows written here with each expected state worked out by
/// hand: three readers per image; a statement counts in `vindr_any` when one reader
/// makes it, in `vindr_majority` when two or three do, in `vindr_all` when all three do.
/// The stored `finding_states` equals its SQL definition, votes included. Image b's
/// `No finding` and readers are spelt as a file might (`no finding`, `r4`, `R05`).
#[test]
fn vindr_reader_votes() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("vinbigdata-train.csv");
    std::fs::write(
        &csv_path,
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
a,Cardiomegaly,3,R1,10,10,20,20
a,Aortic enlargement,0,R1,10,10,20,20
a,Cardiomegaly,3,R2,11,11,21,21
a,No finding,14,R3,,,,
b,no finding,14,r4,,,,
b,No  Finding ,14,R05,,,,
b,No finding,14,R6,,,,
c,Pleural effusion,10,R1,1,1,5,5
c,Pleural effusion,10,R2,1,1,5,5
c,Pleural effusion,10,R3,1,1,5,5
c,Pneumothorax,12,R3,1,1,5,5
",
    )
    .unwrap();
    let arg = format!("vindr={}", csv_path.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    // Cardiomegaly 2, Effusion 16, Pneumothorax 8192.
    assert_eq!(
        q(
            &wh,
            "SELECT image_id, source, positive, states_normal, other_positive FROM finding_states \
             WHERE dataset = 'vindr' AND source NOT LIKE 'vindr_R%' ORDER BY image_id, source"
        ),
        [
            ["a", "vindr_all", "0", "false", "false"],
            ["a", "vindr_any", "2", "true", "true"],
            ["a", "vindr_majority", "2", "false", "false"],
            ["b", "vindr_all", "0", "true", "false"],
            ["b", "vindr_any", "0", "true", "false"],
            ["b", "vindr_majority", "0", "true", "false"],
            ["c", "vindr_all", "16", "false", "false"],
            ["c", "vindr_any", "8208", "false", "false"],
            ["c", "vindr_majority", "16", "false", "false"],
        ]
    );
    // The votes are label sources of cohorts: images with Cardiomegaly, and normal ones.
    let w = wh.to_str().unwrap();
    let images = |source: &str, flags: &[&str]| -> Vec<String> {
        let mut a = vec!["cohort", "-w", w, "-f", "csv", "--dataset", "vindr"];
        a.extend_from_slice(&["--source", source]);
        a.extend_from_slice(flags);
        run_csv(&a)[1..].iter().map(|r| r[1].clone()).collect()
    };
    assert_eq!(images("vindr_any", &["--with", "Cardiomegaly"]), ["a"]);
    assert_eq!(images("vindr_majority", &["--with", "Cardiomegaly"]), ["a"]);
    assert!(images("vindr_all", &["--with", "Cardiomegaly"]).is_empty());
    assert_eq!(images("vindr_any", &["--with", "Pneumothorax"]), ["c"]);
    assert!(images("vindr_majority", &["--with", "Pneumothorax"]).is_empty());
    for vote in ["vindr_any", "vindr_majority", "vindr_all"] {
        assert_eq!(images(vote, &["--no-finding"]), ["b"], "{vote}");
    }
    // Every reader was asked about every finding: R4-R6 wrote only `No finding`, so
    // image b is negative for Cardiomegaly, not unknown, with the default sources
    // (stored at ingest) and with the readers named (computed by the query); c too.
    let default: Vec<String> = run_csv(&[
        "cohort",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "vindr",
        "--without",
        "Cardiomegaly",
    ])[1..]
        .iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(default, ["b", "c"]);
    let readers = (1..=6)
        .map(|k| format!("vindr_R{k}"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(images(&readers, &["--without", "Cardiomegaly"]), ["b", "c"]);
    // So too for one reader, or one vote, alone: R4 wrote only `No finding` (on b),
    // and Pneumothorax, marked by R3 alone (1 of 3 on c), is absent in the majority
    // vote of every image.
    assert_eq!(images("vindr_R4", &["--without", "Cardiomegaly"]), ["b"]);
    assert_eq!(
        images("vindr_majority", &["--without", "Pneumothorax"]),
        ["a", "b", "c"]
    );
    // `datasets` lists the votes among VinDr's sources.
    let sources = q(
        &wh,
        "SELECT s FROM (SELECT unnest(label_sources) AS s FROM datasets WHERE dataset = 'vindr') WHERE s NOT LIKE 'vindr_R%' ORDER BY s",
    );
    assert_eq!(sources, [["vindr_all"], ["vindr_any"], ["vindr_majority"]]);
    // n, positives of each source and positives of both, per finding.
    let agreement = |a: &str, b: &str| -> Vec<Vec<String>> {
        let out = run(&["agree", "-w", w, "-f", "csv", "--a", a, "--b", b]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let rows = parse_csv(&stdout(&out));
        rows[1..].iter().map(|r| r[..5].to_vec()).collect()
    };
    // The votes are sources `agree` compares: majority against any, over the three
    // images both label and the findings VinDr's readers label (Cardiomegaly on a,
    // Effusion on c, Pneumothorax on c in any alone).
    assert_eq!(
        agreement("vindr_majority", "vindr_any"),
        [
            ["Cardiomegaly", "3", "1", "1", "1"],
            ["Effusion", "3", "1", "1", "1"],
            ["Pneumothorax", "3", "0", "1", "0"]
        ]
    );
    // A reader who only ever wrote `No finding` still labels what the readers label:
    // R4 against the majority, on the one image R4 read (b), every finding absent.
    assert_eq!(
        agreement("vindr_R4", "vindr_majority"),
        [
            ["Cardiomegaly", "1", "0", "0", "0"],
            ["Effusion", "1", "0", "0", "0"],
            ["Pneumothorax", "1", "0", "0", "0"]
        ]
    );
    // The stored table and its definition agree, row for row, both ways.
    assert_states_equal_their_definition(&wh);

    // Readers who marked no finding at all: said so, not "no readers".
    let none = dir.path().join("none.csv");
    std::fs::write(
        &none,
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\nb,No finding,14,R4,,,,\nb,No finding,14,R5,,,,\n",
    )
    .unwrap();
    let arg = format!("vindr={}", none.display());
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["agree", "-w", wh.to_str().unwrap(), "--readers", "vindr"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("marked no finding"),
        "{}",
        stderr(&out)
    );
}

/// `split --dataset`: one seeded split over the patients of NIH and CheXpert, checked
/// against the raw rows here: every patient once, the fractions asked, the same split
/// for the same seed, and cohorts and exports across datasets taking each image's
/// split from its patient's.
#[test]
fn one_split_across_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = chexpert_fixture(dir.path());
    let chexpert = format!("chexpert={}", fixture.display());
    let out = ingest(dir.path(), &["--dataset", &chexpert]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let split = |seed: &str| {
        let out = run(&[
            "split",
            "-w",
            w,
            "--dataset",
            "nih,chexpert",
            "--seed",
            seed,
            "--fractions",
            "0.8,0.2",
        ]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        q(
            &wh,
            "SELECT dataset, patient, split FROM dataset_splits ORDER BY dataset, patient",
        )
    };
    let rows = split("7");
    // NIH's patients in the shipped CSV, and CheXpert's three in the fixture.
    let nih = common::nih_csv();
    let nih_patients: std::collections::BTreeSet<i64> = nih.iter().map(|i| i.patient).collect();
    assert_eq!(rows.len(), nih_patients.len() + 3);
    let mut keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "a patient in two splits");
    let test = rows.iter().filter(|r| r[2] == "test").count() as f64;
    assert!((test / rows.len() as f64 - 0.2).abs() < 0.005, "{test}");
    assert_eq!(split("7"), rows, "the same seed gave another split");
    assert_ne!(split("8"), rows);
    let rows = split("7");
    let split_of: std::collections::HashMap<(String, String), String> = rows
        .iter()
        .map(|r| ((r[0].clone(), r[1].clone()), r[2].clone()))
        .collect();
    // The test images of a cohort across both: counted from the raw rows.
    let expected = nih
        .iter()
        .filter(|i| split_of[&("nih".to_string(), i.patient.to_string())] == "test")
        .count()
        + [
            ("patient00001", 2),
            ("patient00002", 1),
            ("patient00003", 1),
        ]
        .iter()
        .filter(|(p, _)| split_of[&("chexpert".to_string(), p.to_string())] == "test")
        .map(|(_, n)| n)
        .sum::<usize>();
    let cohort = run_csv(&[
        "cohort",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "nih,chexpert",
        "--split",
        "test",
    ]);
    assert_eq!(cohort.len() - 1, expected);
    // Said where the splits come from: `dataset_splits`, not NIH's `splits`.
    let said = run(&[
        "cohort",
        "-w",
        w,
        "--dataset",
        "nih,chexpert",
        "--split",
        "test",
    ]);
    assert_eq!(code(&said), Some(0), "{}", stderr(&said));
    assert!(
        stderr(&said).contains("the `dataset_splits` table written by `cxr split --dataset`"),
        "{}",
        stderr(&said)
    );
    // The manifest's split column is each image's patient's split.
    let manifest = dir.path().join("m.parquet");
    let out = run(&[
        "export",
        "-w",
        w,
        "--dataset",
        "nih,chexpert",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("comes from the split made by `cxr split` (nih, chexpert)"),
        "{}",
        stderr(&out)
    );
    let exported = q(
        &wh,
        &format!(
            "SELECT dataset, patient_id, split FROM '{}'",
            manifest.display()
        ),
    );
    assert_eq!(exported.len(), nih.len() + 4);
    for r in &exported {
        assert_eq!(split_of[&(r[0].clone(), r[1].clone())], r[2], "{r:?}");
    }
    // NIH's own cohorts keep NIH's official splits, as `images` has them.
    let own = run_csv(&["cohort", "-w", w, "-f", "csv", "--split", "test"]);
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/test_list.txt");
    let official = std::fs::read_to_string(list)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(own.len() - 1, official);
    // A dataset the warehouse does not hold is named.
    let out = run(&["split", "-w", w, "--dataset", "vindr", "--seed", "1"]);
    assert_eq!(code(&out), Some(2));
    assert!(stderr(&out).contains("--dataset vindr: not in this warehouse"));
}

/// A finding is new where the previous study says it is negative, resolved where
/// this one does: a change from or to unknown (uncertain under U-Ignore) is neither.
/// One CheXpert patient, six studies of Pleural Effusion: uncertain, positive,
/// negative, positive, uncertain, negative. Counted by hand: new at study 4 only,
/// resolved at study 3 only; not incident (unknown at the first study); of the two
/// positive studies, one is followed by a known state, negative: persistence 0.
#[test]
fn new_and_resolved_findings_are_changes_between_known_states() {
    let dir = tempfile::tempdir().unwrap();
    let effusion = ["-1.0", "1.0", "0.0", "1.0", "-1.0", "0.0"];
    let rows: Vec<String> = effusion
        .iter()
        .enumerate()
        .map(|(k, value)| {
            format!(
                "CheXpert-v1.0-small/train/patient00009/study{}/view1_frontal.jpg,Female,{},Frontal,PA,,,,,,,,,,,{value},,,",
                k + 1,
                60 + k
            )
        })
        .collect();
    let p = dir.path().join("train.csv");
    std::fs::write(&p, format!("{CHEXPERT_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let out = ingest(
        dir.path(),
        &["--dataset", &format!("chexpert={}", p.display())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let followup = |extra: &[&str]| {
        let mut a = vec!["followup", "-w", w, "-f", "csv", "--dataset", "chexpert"];
        a.extend_from_slice(extra);
        let out = run(&a);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        parse_csv(&stdout(&out))
    };
    for cohort in [&[][..], &["--where", "true"][..]] {
        // The whole dataset (read from `studies`) and a cohort (computed) agree.
        let timeline = followup(&[cohort, &["--patient", "patient00009"][..]].concat());
        let col = |name: &str| timeline[0].iter().position(|c| c == name).unwrap();
        let column = |name: &str| -> Vec<&str> {
            timeline[1..]
                .iter()
                .map(|r| r[col(name)].as_str())
                .collect()
        };
        assert_eq!(
            column("new_labels"),
            ["", "[]", "[]", "[Effusion]", "[]", "[]"],
            "{cohort:?}"
        );
        assert_eq!(
            column("resolved_labels"),
            ["", "[]", "[Effusion]", "[]", "[]", "[]"],
            "{cohort:?}"
        );
        let transitions = followup(&[cohort, &["--transitions"][..]].concat());
        let effusion_row = transitions
            .iter()
            .find(|r| r.contains(&"Effusion".to_string()))
            .unwrap();
        assert_eq!(effusion_row[2..], ["1", "1"], "{cohort:?}: {transitions:?}");
        let summary = followup(cohort);
        let head = &summary[0];
        let row = summary
            .iter()
            .find(|r| r.contains(&"Effusion".to_string()))
            .unwrap();
        let value = |name: &str| row[head.iter().position(|c| c == name).unwrap()].as_str();
        assert_eq!(
            [
                value("ever_positive"),
                value("positive_at_first"),
                value("incident"),
                value("persistence")
            ],
            ["1", "0", "0", "0.0"],
            "{cohort:?}: {summary:?}"
        );
    }
}

/// What a cohort cannot answer is said, not answered with silence or an empty
/// result that looks like one: an empty cohort in `agree` and `plot`, a `--source`
/// that labels none of a `--dataset`'s images, a name for "normal" given as a
/// finding, a table that does not exist, a dataset of whose labels nothing was read.
#[test]
fn what_a_cohort_cannot_answer_is_said() {
    let w = wh2020();
    let w = w.to_str().unwrap();
    // No image is 200 years old: agree prints its header, says why, exit 0.
    let out = run(&[
        "agree", "-w", w, "--a", "nih_2017", "--b", "nih_2020", "--age", "200..300",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(parse_csv(&stdout(&out)).len(), 1, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("no image matches the cohort"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let out = run(&[
        "plot",
        "labels",
        "-w",
        w,
        "--age",
        "200..300",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_refused(&out, "no image matches the cohort (age 200..300)");
    assert!(!svg.exists());
    // Sources that label NIH's images: answered.
    let out = run(&[
        "cohort",
        "-w",
        w,
        "--dataset",
        "nih",
        "--source",
        "google_2019,nih_2017",
        "--with",
        "Effusion",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // Normal is asked for with --no-finding, in both scopes.
    for extra in [&[][..], &["--dataset", "nih"][..]] {
        let mut a = vec!["cohort", "-w", w, "--with", "No Finding"];
        a.extend_from_slice(extra);
        let out = run(&a);
        assert_refused(&out, "--no-finding");
    }
    // --sex female is --sex F: the women of the shipped CSV.
    let women = nih_csv().iter().filter(|i| i.sex == "F").count();
    for sex in ["female", "F", "Female"] {
        let rows = run_csv(&["cohort", "-w", w, "-f", "csv", "--sex", sex]);
        assert_eq!(rows.len() - 1, women, "--sex {sex}");
    }
    // A table that does not exist: the ones that do are named.
    let out = run(&["sql", "-w", w, "SELECT * FROM nosuch"]);
    assert_eq!(code(&out), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("nosuch") && e.contains("dataset_images") && e.contains("findings"),
        "{e}"
    );
    // Two result columns of one name are refused before any file is written.
    let file = dir.path().join("two.parquet");
    let out = run(&[
        "sql",
        "-w",
        w,
        "--out",
        file.to_str().unwrap(),
        "SELECT a.image_index, b.image_index FROM images a JOIN images b USING (image_index) LIMIT 2",
    ]);
    assert_refused(&out, "two result columns are named `image_index`");
    assert!(!file.exists());
    let out = run(&["sql", "-w", w, "SELECT 1 AS a, 2 AS a"]);
    assert_refused(&out, "named `a`;");
}

/// An ingest that waited for another writer says what the version it replaced held:
/// the one the other writer committed while it waited, not the one it saw at start.
/// The test holds the write lock, lets the ingest wait on it, commits a version
/// holding CheXpert meanwhile (another warehouse's files moved in), and lets go.
#[test]
fn an_ingest_that_waited_names_what_the_version_it_replaced_held() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let fixture = chexpert_fixture(dir.path());
    let wh = dir.path().join("wh");
    let other = dir.path().join("other");
    let nih_only = ["ingest", "--no-images", "--no-other-release", "-w"];
    for (warehouse, extra) in [
        (&wh, None),
        (&other, Some(format!("chexpert={}", fixture.display()))),
    ] {
        let mut args = nih_only.to_vec();
        args.push(warehouse.to_str().unwrap());
        if let Some(spec) = &extra {
            args.extend(["--dataset", spec.as_str()]);
        }
        let out = run(&args);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    }
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(wh.join(".cxr.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut waiting = cxr()
        .args(nih_only)
        .arg(&wh)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for another cxr process") {
        line.clear();
        assert!(
            said.read_line(&mut line).unwrap() > 0,
            "the ingest ended unlocked"
        );
    }
    for entry in std::fs::read_dir(&other).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("v-") {
            std::fs::rename(entry.path(), wh.join(&name)).unwrap();
        }
    }
    std::fs::rename(other.join("manifest.json"), wh.join("manifest.json")).unwrap();
    drop(lock);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut said, &mut rest).unwrap();
    assert_eq!(waiting.wait().unwrap().code(), Some(0), "{rest}");
    assert!(
        rest.contains("the version this replaced also held chexpert"),
        "{rest}"
    );
    assert_eq!(q(&wh, "SELECT dataset FROM datasets"), [["nih"]]);
}

/// `agree` takes an uncertain label as `--uncertain` says: by default (U-Ignore) the
/// image leaves that finding's table; U-Zeros counts it absent, U-Ones present. MIMIC's
/// two labelers on four studies, Cardiomegaly by hand: CheXpert says 1, -1, 0, 1 and
/// NegBio 1, 1, 1, 0.
#[test]
fn agreement_takes_uncertain_labels_as_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let header = "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices";
    let labels = |cardiomegaly: [&str; 4]| {
        let mut text = format!("{header}\n");
        for (k, value) in cardiomegaly.iter().enumerate() {
            text.push_str(&format!("{},{},,{value},,,,,,,,,,,,\n", k + 1, 50 + k));
        }
        text
    };
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let files = [
        write(
            "metadata.csv",
            "dicom_id,subject_id,study_id,ViewPosition,StudyDate\na,1,50,PA,21800101\nb,2,51,PA,21800101\nc,3,52,PA,21800101\nd,4,53,PA,21800101\n",
        ),
        write(
            "mimic-cxr-2.0.0-chexpert.csv",
            &labels(["1.0", "-1.0", "0.0", "1.0"]),
        ),
        write(
            "mimic-cxr-2.0.0-negbio.csv",
            &labels(["1.0", "1.0", "1.0", "0.0"]),
        ),
    ];
    let arg = format!("mimic={}", files.join(","));
    let out = ingest(dir.path(), &["--dataset", &arg]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let w = dir.path().join("wh");
    // finding, n, positive by --a, positive by --b, positive by both.
    let cardiomegaly = |policy: Option<&str>| -> Vec<String> {
        let mut args = vec!["agree", "-w", w.to_str().unwrap(), "-f", "csv"];
        args.extend(["--a", "mimic_chexpert", "--b", "mimic_negbio"]);
        if let Some(p) = policy {
            args.extend(["--uncertain", p]);
        }
        let rows = run_csv(&args);
        let row = rows.iter().find(|r| r[0] == "Cardiomegaly").unwrap();
        row[..5].to_vec()
    };
    assert_eq!(cardiomegaly(None), ["Cardiomegaly", "3", "2", "2", "1"]);
    assert_eq!(
        cardiomegaly(Some("nan")),
        ["Cardiomegaly", "3", "2", "2", "1"]
    );
    assert_eq!(
        cardiomegaly(Some("negative")),
        ["Cardiomegaly", "4", "2", "3", "1"]
    );
    assert_eq!(
        cardiomegaly(Some("positive")),
        ["Cardiomegaly", "4", "3", "3", "2"]
    );
}

/// A `--source` none of whose labels cover a `--dataset` is refused, naming the
/// dataset's sources; RSNA without its DICOM headers file and OpenI without its
/// reports are said at the end of the ingest and in `data_issues`.
#[test]
fn sources_and_files_a_dataset_lacks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = chexpert_fixture(dir.path());
    let rsna = dir.path().join("stage_2_train_labels.csv");
    std::fs::write(
        &rsna,
        "patientId,x,y,width,height,Target\nr1,,,,,0\nr2,10,20,30,40,1\n",
    )
    .unwrap();
    let out = ingest(
        dir.path(),
        &[
            "--dataset",
            &format!("chexpert={}", fixture.display()),
            "--dataset",
            &format!("rsna={}", rsna.display()),
        ],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("cxr ingest: note: stage_2_train_labels.csv: no DICOM headers file given"),
        "{}",
        stderr(&out)
    );
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE issue LIKE 'no DICOM headers file given%'"
        ),
        [["1"]]
    );
    let out = run(&[
        "cohort",
        "-w",
        w,
        "--dataset",
        "nih,chexpert",
        "--source",
        "chexpert",
        "--with",
        "Cardiomegaly",
    ]);
    assert_eq!(code(&out), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("--dataset `nih`") && e.contains("nih_2020"),
        "{e}"
    );
    // Every dataset a chosen source labels: answered.
    let rows = run_csv(&[
        "cohort",
        "-w",
        w,
        "-f",
        "csv",
        "--dataset",
        "chexpert",
        "--source",
        "chexpert",
        "--with",
        "Cardiomegaly",
    ]);
    assert_eq!(rows.len() - 1, 1);
    // An ingest writes the whole warehouse from its inputs: given CheXpert alone,
    // it says that the version it replaced held RSNA too.
    let out = ingest(
        dir.path(),
        &["--dataset", &format!("chexpert={}", fixture.display())],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("the version this replaced also held rsna, which this ingest was not given"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        q(&wh, "SELECT dataset FROM datasets ORDER BY dataset"),
        [["chexpert"], ["nih"]]
    );
}

/// An image the release labels with something outside the 14 findings is not
/// normal: the label is kept as the release wrote it, and `data_issues` says so.
#[test]
fn an_unknown_nih_label_is_not_normal() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.csv");
    std::fs::write(
        &meta,
        format!(
            "{HEADER}\n00000001_000.png,Foo,0,1,50,M,PA,2048,2048,0.14,0.14\n00000002_000.png,No Finding,0,2,50,F,PA,2048,2048,0.14,0.14\n00000003_000.png,Effusion|Bar,0,3,50,F,PA,2048,2048,0.14,0.14\n"
        ),
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let out = run(&ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap()));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let w = wh.to_str().unwrap();
    for extra in [&[][..], &["--dataset", "nih"][..]] {
        let mut a = vec!["cohort", "-w", w, "-f", "csv", "--no-finding"];
        a.extend_from_slice(extra);
        let rows = run_csv(&a);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows[1].contains(&"00000002_000.png".to_string()),
            "{rows:?}"
        );
    }
    assert_eq!(
        q(
            &wh,
            "SELECT image_index, no_finding FROM images ORDER BY image_index"
        ),
        [
            ["00000001_000.png", "false"],
            ["00000002_000.png", "true"],
            ["00000003_000.png", "false"]
        ]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT image_id, raw_label FROM dataset_labels WHERE finding IS NULL ORDER BY image_id"
        ),
        [
            ["00000001_000.png", "Foo"],
            ["00000002_000.png", "No Finding"],
            ["00000003_000.png", "Bar"]
        ]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE issue LIKE 'unknown label%not normal'"
        ),
        [["2"]]
    );
}

/// A split and a partitioned export keep their values as given: a fraction of 0, a
/// name a folder cannot carry and a NULL partition value are refused, and nothing
/// is written.
#[test]
fn splits_and_partitions_keep_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 40, "wh");
    let w = wh.to_str().unwrap();
    let before = snapshot(&wh);
    for (fractions, names, said) in [
        ("0,1", "train,test", "split `train` has fraction 0"),
        ("0.5,0.5,0", "train,val,test", "split `test` has fraction 0"),
        // 20 patients: 0.001 of them is none.
        (
            "0.001,0.999",
            "tiny,rest",
            "split `tiny` would hold no patient",
        ),
        ("0.5,0.5", "x y,z", "`x y` is not a split name"),
        ("0.5,0.5", "../evil,z", "`../evil` is not a split name"),
        ("-0.2,1.2", "a,b", "-0.2 is not a fraction"),
    ] {
        let out = run(&[
            "split",
            "-w",
            w,
            "--seed",
            "1",
            "--fractions",
            fractions,
            "--names",
            names,
        ]);
        assert_eq!(code(&out), Some(2), "{fractions} {names}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
    }
    assert_eq!(
        snapshot(&wh),
        before,
        "a refused split changed the warehouse"
    );
    // Ingested with --no-splits: no image has a split, so no folder can say it.
    let out_dir = dir.path().join("parts");
    let out = run(&[
        "export",
        "-w",
        w,
        "--partition-by",
        "split",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_refused(&out, "40 of the 40 rows have no split");
    assert!(!out_dir.exists());
    // With a split, each folder is a split name as it is.
    let out = run(&[
        "split",
        "-w",
        w,
        "--seed",
        "1",
        "--fractions",
        "0.5,0.5",
        "--names",
        "a.1,b-2",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = run(&[
        "export",
        "-w",
        w,
        "--partition-by",
        "split",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut folders: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("split="))
        .collect();
    folders.sort();
    assert_eq!(folders, ["split=a.1", "split=b-2"]);
}

/// A PadChest patient whose images give different birth years is listed in
/// `data_issues`, each image's age computed from its own (the real file has 356 such
/// patients, counted with pandas).
#[test]
fn a_patient_of_several_birth_years_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("padchest.csv");
    std::fs::write(
        &csv,
        ",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,Projection,MethodLabel,Labels\n\
         0,a.png,1,20100101,s1,p1,1950.0,M,PA,Physician,['normal']\n\
         1,b.png,1,20120101,s2,p1,1952.0,M,PA,Physician,['normal']\n\
         2,c.png,1,20120101,s3,p2,1960.0,F,PA,Physician,['normal']\n\
         3,d.png,1,20130101,s4,p2,1960.0,F,PA,Physician,['normal']\n",
    )
    .unwrap();
    let out = ingest(
        dir.path(),
        &["--dataset", &format!("padchest={}", csv.display())],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    assert_eq!(
        q(
            &wh,
            "SELECT field, value, issue FROM data_issues WHERE issue LIKE '%birth years%'"
        ),
        [[
            "PatientBirth",
            "p1",
            "patient's images give 2 birth years (1950.0, 1952.0); each image's age uses its own"
        ]]
    );
    // Ages by hand: 2010 - 1950 and 2012 - 1952.
    assert_eq!(
        q(
            &wh,
            "SELECT age FROM dataset_images WHERE patient_id = 'p1' ORDER BY image_id"
        ),
        [["60.0"], ["60.0"]]
    );
}

/// A patient whose images say both sexes is listed in `data_issues`, each image
/// keeping its own sex (PadChest has 11 such patients).
#[test]
fn a_patient_of_two_sexes_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,,,,,",
        "CheXpert-v1.0-small/train/patient00001/study2/view1_frontal.jpg,Male,69,Frontal,PA,1.0,,,,,,,,,,,,,",
        "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Male,50,Frontal,PA,1.0,,,,,,,,,,,,,",
    ];
    let wh = ingest_chexpert_rows(dir.path(), &rows);
    assert_eq!(
        q(
            &wh,
            "SELECT value, issue FROM data_issues WHERE field = 'patient_id'"
        ),
        [[
            "patient00001",
            "patient's images say both sexes (1 M, 1 F); each image keeps its own, kept"
        ]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT sex FROM dataset_images WHERE patient_id = 'patient00001' ORDER BY study_id"
        ),
        [["F"], ["M"]]
    );
}

/// What a row does not say stays unknown, and what it says in another case or twice
/// counts once: PadChest's `Normal` is its `normal` (the map matches PadChest's labels
/// case-insensitively); a study without a date is named in `data_issues` (it has no
/// place in its patient's follow-up); an NIH image with an empty `Finding Labels` is
/// not normal and unknown for every finding; a box given twice is one box.
#[test]
fn unsaid_stays_unknown_and_said_twice_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let padchest = dir.path().join("padchest.csv");
    std::fs::write(
        &padchest,
        ",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,Projection,MethodLabel,Labels\n\
         0,a.png,1,20140915,s1,p1,1950.0,M,PA,Physician,['normal']\n\
         1,b.png,1,,s2,p1,1950.0,M,PA,Physician,['Normal']\n\
         2,c.png,1,2013,s3,p1,1950.0,M,PA,Physician,['cardiomegaly']\n\
         3,d.png,1,20150101,s4,p1,1950.0,M,PA,Physician,['NORMAL']\n",
    )
    .unwrap();
    let nih = dir.path().join("nih.csv");
    std::fs::write(
        &nih,
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n\
         a.png,No Finding,0,1,40,M,PA,2500,2048,0.168,0.168\n\
         b.png,,0,2,50,F,AP,2500,2048,0.168,0.168\n",
    )
    .unwrap();
    let rsna = dir.path().join("rsna.csv");
    std::fs::write(
        &rsna,
        "patientId,x,y,width,height,Target\nr1,10,10,100,100,1\nr1,10,10,100,100,1\nr1,20,20,50,50,1\n",
    )
    .unwrap();
    let siim = dir.path().join("siim.csv");
    std::fs::write(&siim, "ImageId,EncodedPixels\ns1,100 5\ns1,100 5\ns2,-1\n").unwrap();
    let wh = dir.path().join("wh");
    let out = run(&[
        "ingest",
        "--no-images",
        "--no-other-release",
        "--no-bbox",
        "--no-expert",
        "--no-splits",
        "-w",
        wh.to_str().unwrap(),
        "--metadata",
        nih.to_str().unwrap(),
        "--dataset",
        &format!("padchest={}", padchest.display()),
        "--dataset",
        &format!("rsna={}", rsna.display()),
        "--dataset",
        &format!("siim={}", siim.display()),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let w = wh.to_str().unwrap();
    // The images of a cohort, sorted (a study without a date comes last).
    let images = |dataset: &str, flags: &[&str]| -> Vec<String> {
        let mut a = vec!["cohort", "-w", w, "-f", "csv", "--dataset", dataset];
        a.extend_from_slice(flags);
        let mut ids: Vec<String> = run_csv(&a)[1..].iter().map(|r| r[1].clone()).collect();
        ids.sort();
        ids
    };
    // PadChest: a, b and d say normal, in three cases.
    assert_eq!(
        images("padchest", &["--no-finding"]),
        ["a.png", "b.png", "d.png"]
    );
    // The two studies without a valid date, each at its line (lines 3 and 4).
    assert_eq!(
        q(
            &wh,
            "SELECT line, field, action FROM data_issues WHERE source_file = 'padchest.csv' \
             AND issue LIKE '%follow-up%' ORDER BY line"
        ),
        [
            ["3", "StudyDate_DICOM", "nulled"],
            ["4", "StudyDate_DICOM", "nulled"]
        ]
    );
    // NIH: b.png is not normal, and neither with nor without Effusion.
    assert_eq!(images("nih", &["--no-finding"]), ["a.png"]);
    assert_eq!(images("nih", &["--without", "Effusion"]), ["a.png"]);
    assert!(images("nih", &["--with", "Effusion"]).is_empty());
    // A box given twice is one box, the second line named.
    assert_eq!(
        q(
            &wh,
            "SELECT dataset, image_id, COUNT(*) FROM dataset_boxes GROUP BY dataset, image_id ORDER BY dataset, image_id"
        ),
        [["rsna", "r1", "2"], ["siim", "s1", "1"]]
    );
    assert_eq!(
        q(
            &wh,
            "SELECT source_file, line, action FROM data_issues WHERE issue LIKE 'the same box as line 2%' ORDER BY source_file"
        ),
        [["rsna.csv", "3", "skipped"], ["siim.csv", "3", "skipped"]]
    );
}

/// A study that cannot be placed in its patient's timeline is left out of
/// `studies` with a `data_issues` row, as `followup --help` says: MIMIC's empty
/// `StudyDate` and a CheXpert study number too large to order were left out unsaid.
#[test]
fn studies_without_an_order_are_named_in_data_issues() {
    let dir = tempfile::tempdir().unwrap();
    let header = "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,Support Devices";
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let labels = format!("{header}\n1,50,,1.0,,,,,,,,,,,,\n1,51,,1.0,,,,,,,,,,,,\n");
    let files = [
        write(
            "metadata.csv",
            "dicom_id,subject_id,study_id,ViewPosition,StudyDate\na,1,50,PA,21800101\nb,1,51,PA,\n",
        ),
        write("mimic-cxr-2.0.0-chexpert.csv", &labels),
        write("mimic-cxr-2.0.0-negbio.csv", &labels),
    ];
    let chexpert = dir.path().join("train.csv");
    std::fs::write(
        &chexpert,
        format!(
            "{CHEXPERT_HEADER}\nCheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,,,1.0,,,,,,,,,,,\nCheXpert-v1.0-small/train/patient00001/study99999999999999999999/view1_frontal.jpg,Female,69,Frontal,AP,,,1.0,,,,,,,,,,,\n"
        ),
    )
    .unwrap();
    let mimic = format!("mimic={}", files.join(","));
    let chexpert = format!("chexpert={}", chexpert.display());
    let out = ingest(dir.path(), &["--dataset", &mimic, "--dataset", &chexpert]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let w = dir.path().join("wh");
    assert_eq!(
        q(
            &w,
            "SELECT source_file, line, field FROM data_issues WHERE issue LIKE '%no place in its patient''s follow-up%' ORDER BY source_file"
        ),
        [
            ["metadata.csv", "3", "StudyDate"],
            ["train.csv", "3", "Path"]
        ]
    );
    // One study of each patient is left in `studies`.
    assert_eq!(
        q(
            &w,
            "SELECT dataset, count(*) FROM studies WHERE dataset <> 'nih' GROUP BY dataset ORDER BY dataset"
        ),
        [["chexpert", "1"], ["mimic", "1"]]
    );
}

/// A source that states an image normal beside a finding (or another label) leaves
/// it not normal and says so in `data_issues`, for every dataset as NIH's reader
/// does; a label the dataset lets stand beside normal (CheXpert's Support Devices)
/// is no such statement.
#[test]
fn normal_beside_a_finding_is_a_data_issue() {
    let dir = tempfile::tempdir().unwrap();
    // Header order: No Finding is column 6, Edema 11, Support Devices 19.
    let wh = {
        let rows = [
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,PA,1.0,,,,,,,,,,,,,1.0",
            "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,60,Frontal,PA,1.0,,,,,1.0,,,,,,,,",
        ];
        let train = dir.path().join("train.csv");
        std::fs::write(&train, format!("{CHEXPERT_HEADER}\n{}\n", rows.join("\n"))).unwrap();
        let padchest = dir.path().join("padchest.csv");
        std::fs::write(
            &padchest,
            ",ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,Projection,MethodLabel,Labels\n\
             0,a.png,1,20140915,s1,p1,1950.0,M,PA,Physician,\"['normal', 'scoliosis']\"\n\
             1,b.png,1,20140915,s2,p2,1950.0,M,PA,Physician,['normal']\n",
        )
        .unwrap();
        let out = ingest(
            dir.path(),
            &[
                "--dataset",
                &format!("chexpert={}", train.display()),
                "--dataset",
                &format!("padchest={}", padchest.display()),
            ],
        );
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        dir.path().join("wh")
    };
    let said = rows(
        &wh,
        "SELECT value, issue, action FROM data_issues WHERE field = 'labels' ORDER BY value",
    );
    assert_eq!(
        said,
        [
            [
                "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg",
                "chexpert states the image normal (No Finding) and also Edema; the image is not normal, every label kept",
                "kept"
            ],
            [
                "a.png",
                "padchest_physician states the image normal (normal) and also scoliosis; the image is not normal, every label kept",
                "kept"
            ]
        ]
    );
    // Neither is normal; the device beside No Finding and the plain normal are.
    let normal = rows(
        &wh,
        "SELECT image_id FROM dataset_images WHERE no_finding AND dataset <> 'nih' ORDER BY image_id",
    );
    assert_eq!(
        normal,
        [
            ["CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"],
            ["b.png"]
        ]
    );
}

/// A CheXpert row whose every label column is empty is an image without labels, said
/// in `data_issues` as NIH's empty `Finding Labels` is (not normal, every finding
/// unknown).
#[test]
fn a_chexpert_row_without_labels_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let wh = ingest_chexpert_rows(
        dir.path(),
        &[
            "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,PA,,,,,,,,,,,,,,",
            "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,60,Frontal,PA,1.0,,,,,,,,,,,,,",
        ],
    );
    assert_eq!(
        rows(
            &wh,
            "SELECT line, action FROM data_issues WHERE issue LIKE 'every label column is empty%'"
        ),
        [["2", "kept"]]
    );
    assert_eq!(
        rows(
            &wh,
            "SELECT known_findings, no_finding IS NULL FROM dataset_images WHERE image_id LIKE '%patient00001/%'"
        ),
        [["0", "true"]]
    );
}
