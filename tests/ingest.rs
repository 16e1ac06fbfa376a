//! `cxr ingest` on the shipped NIH metadata (both revisions) and on malformed inputs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

const COUNTS_2020: [(&str, i64); 14] = [
    ("Infiltration", 19_894),
    ("Effusion", 13_317),
    ("Atelectasis", 11_559),
    ("Nodule", 6_331),
    ("Mass", 5_782),
    ("Pneumothorax", 5_302),
    ("Consolidation", 4_667),
    ("Pleural_Thickening", 3_385),
    ("Cardiomegaly", 2_776),
    ("Emphysema", 2_516),
    ("Edema", 2_303),
    ("Fibrosis", 1_686),
    ("Pneumonia", 1_431),
    ("Hernia", 227),
];

const COUNTS_2017: [(&str, i64); 14] = [
    ("Infiltration", 19_870),
    ("Effusion", 13_307),
    ("Atelectasis", 11_535),
    ("Nodule", 6_323),
    ("Mass", 5_746),
    ("Pneumothorax", 5_298),
    ("Consolidation", 4_667),
    ("Pleural_Thickening", 3_385),
    ("Cardiomegaly", 2_772),
    ("Emphysema", 2_516),
    ("Edema", 2_303),
    ("Fibrosis", 1_686),
    ("Pneumonia", 1_353),
    ("Hernia", 227),
];

fn label_counts(wh: &Path) -> BTreeMap<String, i64> {
    rows(wh, "SELECT label, COUNT(*) FROM findings GROUP BY label")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect()
}

fn assert_counts(wh: &Path, expected: &[(&str, i64)]) {
    let got = label_counts(wh);
    assert_eq!(got.len(), 14, "{got:?}");
    for (label, n) in expected {
        assert_eq!(got[*label], *n, "{label}");
        let col = label.to_ascii_lowercase();
        assert_eq!(
            int(wh, &format!("SELECT COUNT(*) FROM images WHERE {col}")),
            *n,
            "{col}"
        );
    }
}

#[test]
fn revision_2020_tables_have_the_published_counts() {
    let wh = wh2020();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM images"), 112_120);
    assert_eq!(
        int(&wh, "SELECT COUNT(DISTINCT image_index) FROM images"),
        112_120
    );
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM patients"), 30_805);
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM findings"), 81_176);
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE no_finding"),
        60_361
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM images WHERE cardinality(labels) = 0"
        ),
        60_361
    );
    assert_eq!(int(&wh, "SELECT SUM(n_labels) FROM images"), 81_176);
    assert_eq!(int(&wh, "SELECT SUM(n_images) FROM patients"), 112_120);
    assert_counts(&wh, &COUNTS_2020);
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM images WHERE view_position = 'PA'"
        ),
        67_310
    );
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE sex = 'M'"),
        63_340
    );
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM images WHERE age IS NULL"), 0);
    assert_eq!(int(&wh, "SELECT MAX(age) FROM images"), 95);
}

#[test]
fn boxes_and_expert_labels() {
    let wh = wh2020();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM bboxes"), 984);
    assert_eq!(
        int(&wh, "SELECT COUNT(DISTINCT image_index) FROM bboxes"),
        880
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM bboxes WHERE label = 'Infiltration'"
        ),
        123
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM bboxes WHERE label = 'Infiltrate'"
        ),
        0
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM bboxes b JOIN images i ON i.image_index = b.image_index WHERE array_has(i.labels, b.label)"
        ),
        984
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM bboxes WHERE abs(x_224 - x * 224.0 / 1024.0) > 1e-9 OR abs(h_224 - h * 0.21875) > 1e-9"
        ),
        0
    );
    // The 123 Infiltrate spellings were normalised, each with a data_issues row.
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE source_file = 'BBox_List_2017.csv' AND value = 'Infiltrate'"
        ),
        123
    );
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM expert_labels"), 4_376);
    assert_eq!(
        int(&wh, "SELECT COUNT(DISTINCT set_id) FROM expert_labels"),
        2
    );
}

#[test]
fn official_splits_and_patients() {
    let wh = wh2020();
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE split = 'train_val'"),
        86_524
    );
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE split = 'test'"),
        25_596
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM patients WHERE split = 'train_val'"
        ),
        28_008
    );
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM patients WHERE split = 'test'"),
        2_797
    );
    // Patient rows agree with their images.
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM patients p JOIN (SELECT patient_id, MIN(follow_up) AS f, MAX(follow_up) AS l FROM images GROUP BY patient_id) i ON i.patient_id = p.patient_id WHERE i.f <> p.first_follow_up OR i.l <> p.last_follow_up"
        ),
        0
    );
    let r = rows(
        &wh,
        "SELECT n_images, first_follow_up, last_follow_up, first_age, last_age, sex FROM patients WHERE patient_id = 1",
    );
    assert_eq!(r, vec![vec!["3", "0", "2", "57", "58", "M"]]);
    let r = rows(&wh, "SELECT labels_ever FROM patients WHERE patient_id = 1");
    assert_eq!(r[0][0], "[Cardiomegaly, Effusion, Emphysema]");
}

#[test]
fn original_2017_release_ingests_with_its_own_counts() {
    let wh = wh2017();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM images"), 112_120);
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM patients"), 30_805);
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE no_finding"),
        60_412
    );
    assert_counts(&wh, &COUNTS_2017);
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE age IS NULL"),
        16
    );
    assert_eq!(int(&wh, "SELECT MAX(age) FROM images"), 95);
    // Zero-padded ids and follow-ups parse as numbers.
    assert_eq!(
        int(
            &wh,
            "SELECT follow_up FROM images WHERE image_index = '00000001_002.png'"
        ),
        2
    );
    assert_eq!(
        int(
            &wh,
            "SELECT patient_id FROM images WHERE image_index = '00030805_000.png'"
        ),
        30_805
    );
    // 26 month ages and 1 day age converted, 16 implausible ages nulled: all recorded,
    // each with its action.
    for (action, n) in [("changed", 27), ("nulled", 16)] {
        assert_eq!(
            int(
                &wh,
                &format!(
                    "SELECT COUNT(*) FROM data_issues WHERE field = 'Patient Age' AND action = '{action}'"
                )
            ),
            n,
            "{action}"
        );
    }
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE field = 'Patient Age' AND issue LIKE '%months%'"
        ),
        26
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE field = 'Patient Age' AND issue LIKE '%days%'"
        ),
        1
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE field = 'Patient Age' AND issue LIKE 'implausible%'"
        ),
        16
    );
    assert!(
        int(
            &wh,
            "SELECT MIN(line) FROM data_issues WHERE field = 'Patient Age'"
        ) >= 2
    );
    let m = manifest(&wh);
    assert_eq!(m["metadata_revision"], "2017");
    assert_eq!(m["tables"]["images"], 112_120);
}

#[test]
fn manifest_records_inputs_and_revision() {
    let wh = wh2020();
    let m = manifest(&wh);
    assert_eq!(m["format"], "cxr-warehouse");
    assert_eq!(m["metadata_revision"], "2020");
    assert_eq!(m["schema_version"], 6);
    assert_eq!(m["tables"]["findings"], 81_176);
    let inputs = m["inputs"].as_array().unwrap();
    let bbox = inputs.iter().find(|i| i["role"] == "bbox").unwrap();
    assert_eq!(bbox["size"], 92_416);
    // sha256sum data/BBox_List_2017.csv
    assert_eq!(
        bbox["sha256"],
        "0bbfea9d4c4e9771481b3023b1bc9f0df9dea924453b12986beb29b0c4d0c95b"
    );
    // The image archive is hashed while it streams: sha256sum data/sample-images-224.tar
    let images = inputs.iter().find(|i| i["role"] == "images").unwrap();
    let tar = common::data("sample-images-224.tar");
    assert_eq!(images["size"], std::fs::metadata(&tar).unwrap().len());
    assert_eq!(images["sha256"], sha256sum(&tar));
    // The data directory the manifest names holds the tables.
    let data = wh.join(m["data"].as_str().unwrap());
    assert!(data.join("images.parquet").is_file());
}

fn manifest(wh: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(wh.join("manifest.json")).unwrap()).unwrap()
}

/// The system's sha256sum, independent of cxr's hashing.
fn sha256sum(p: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

// ---------- malformed inputs ----------

fn write(dir: &Path, name: &str, content: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn ingest_metadata(dir: &Path, metadata: &Path) -> std::process::Output {
    let wh = dir.join("wh");
    run(&[
        "ingest",
        "--metadata",
        metadata.to_str().unwrap(),
        "--no-bbox",
        "--no-expert",
        "--no-splits",
        "--warehouse",
        wh.to_str().unwrap(),
    ])
}

#[test]
fn bad_values_become_data_issues_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let csv = format!(
        "\u{feff}{HEADER}\n\
         00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143\n\
         00000001_001.png,Effusion|Fracture,1,1,150,M,PA,2682,2749,0.143,0.143\n\
         00000001_001.png,Effusion,2,1,58,M,PA,2682,2749,0.143,0.143\n\
         \n\
         00000002_000.png,infiltrate|No Finding,0,abc,58,M,PA,2682,2749,0.143,0.143\n\
         00000003_000.png,No Finding,0,3,011M,X,LL,wide,2749,0.143\n\
         00000004_000.png,Mass|Mass,0,4,40,f,pa,2682,2749,0.143,0.143\n\
         00000005_000.png,Mass,0,5,45.0,F,PA,2682,2749,0.143,0.143\n\
         00000006_000.png,Mass,0,6,45y,F,PA,2682,2749,0.143,0.143"
    );
    let p = write(dir.path(), "meta.csv", csv.as_bytes());
    let out = ingest_metadata(dir.path(), &p);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM images"), 6);
    let issues = rows(
        &wh,
        "SELECT line, field, value, issue FROM data_issues ORDER BY line, field, issue",
    );
    let has = |line: &str, field: &str, needle: &str| {
        issues
            .iter()
            .any(|r| r[0] == line && r[1] == field && r[3].contains(needle))
    };
    assert!(has("3", "Patient Age", "implausible"), "{issues:?}");
    assert!(
        has("3", "Finding Labels", "unknown label 'Fracture'"),
        "{issues:?}"
    );
    assert!(has("4", "Image Index", "duplicate"), "{issues:?}");
    assert!(has("6", "Patient ID", "row refused"), "{issues:?}");
    assert!(has("7", "Patient Age", "months"), "{issues:?}");
    assert!(has("7", "Patient Gender", "not M or F"), "{issues:?}");
    assert!(has("7", "View Position", "not PA or AP"), "{issues:?}");
    assert!(has("7", "OriginalImage[Width", "set to NULL"), "{issues:?}");
    assert!(has("8", "Finding Labels", "duplicate label"), "{issues:?}");
    assert!(has("8", "Patient Gender", "normalised"), "{issues:?}");
    assert!(has("9", "Patient Age", "read as 45"), "{issues:?}");
    assert!(has("10", "Patient Age", "read as 45"), "{issues:?}");
    let r = rows(
        &wh,
        "SELECT image_index, age, sex, view_position, labels, orig_width FROM images ORDER BY image_index",
    );
    assert_eq!(
        r[1],
        vec!["00000001_001.png", "", "M", "PA", "[Effusion]", "2682"]
    );
    assert_eq!(r[2], vec!["00000003_000.png", "0", "", "", "[]", ""]);
    assert_eq!(
        r[3],
        vec!["00000004_000.png", "40", "F", "PA", "[Mass]", "2682"]
    );
    assert_eq!((r[4][1].as_str(), r[5][1].as_str()), ("45", "45"));
}

#[test]
fn both_line_endings_gzip_and_no_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{HEADER},\r\n00000001_000.png,Cardiomegaly,000,00000001,058Y,M,PA,2682,2749,0.143,0.143\r\n00000001_001.png,No Finding,001,00000001,058Y,M,AP,2682,2749,0.143,0.143"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    let p = write(dir.path(), "meta.csv.gz", &gz.finish().unwrap());
    let out = ingest_metadata(dir.path(), &p);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let r = rows(
        &wh,
        "SELECT image_index, follow_up, patient_id, age, view_position, pixel_spacing_y FROM images ORDER BY 1",
    );
    assert_eq!(
        r[0],
        vec!["00000001_000.png", "0", "1", "58", "PA", "0.143"]
    );
    assert_eq!(
        r[1],
        vec!["00000001_001.png", "1", "1", "58", "AP", "0.143"]
    );
}

#[test]
fn columns_are_found_by_name_not_position() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "Patient ID,Image Index,View Position,Patient Gender,Patient Age,Follow-up #,Finding Labels\n\
               7,00000007_000.png,AP,F,33,0,Edema|Effusion\n";
    let p = write(dir.path(), "meta.csv", csv.as_bytes());
    let out = ingest_metadata(dir.path(), &p);
    assert!(out.status.success(), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let r = rows(
        &wh,
        "SELECT image_index, patient_id, sex, age, labels, orig_width FROM images",
    );
    assert_eq!(
        r,
        vec![vec![
            "00000007_000.png",
            "7",
            "F",
            "33",
            "[Edema, Effusion]",
            ""
        ]]
    );
}

fn assert_input_error(out: &std::process::Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(out));
    let err = stderr(out);
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
}

#[test]
fn unusable_inputs_are_clear_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    assert_input_error(
        &ingest_metadata(dir.path(), &missing),
        &["nope.csv", "not found"],
    );

    let p = write(
        dir.path(),
        "nocol.csv",
        b"Image Index,Finding Labels\nx.png,Mass\n",
    );
    assert_input_error(
        &ingest_metadata(dir.path(), &p),
        &["nocol.csv", "missing required column 'Follow-up #'"],
    );

    let p = write(
        dir.path(),
        "binary.csv",
        &[0x89, b'P', b'N', b'G', 0, 0, 1, 2, 3],
    );
    assert_input_error(
        &ingest_metadata(dir.path(), &p),
        &["binary.csv", "not a CSV"],
    );

    let p = write(
        dir.path(),
        "broken.csv.gz",
        &[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert_input_error(
        &ingest_metadata(dir.path(), &p),
        &["broken.csv.gz", "corrupt gzip"],
    );

    let p = write(dir.path(), "empty.csv", b"");
    assert_input_error(&ingest_metadata(dir.path(), &p), &["empty.csv", "empty"]);
    assert!(!dir.path().join("wh").exists(), "nothing may be written");

    // Split lists that cannot be the official ones: one file given twice, an empty
    // list (each image would be in neither list, or in both).
    let metadata = common::small_metadata(dir.path(), 4);
    let listed = write(dir.path(), "listed.txt", b"00000001_000.png\n");
    let no_names = write(dir.path(), "no_names.txt", b"");
    let wh = dir.path().join("wh");
    for (lists, says) in [
        ([&listed, &listed], "the same file as the train_val list"),
        ([&listed, &no_names], "the split list is empty"),
    ] {
        let out = run(&[
            "ingest",
            "--metadata",
            metadata.to_str().unwrap(),
            "--no-other-release",
            "--no-bbox",
            "--no-expert",
            "--splits",
            lists[0].to_str().unwrap(),
            lists[1].to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ]);
        assert_input_error(&out, &[says]);
        assert!(!wh.exists(), "nothing may be written");
    }
}

#[test]
fn failed_ingest_leaves_the_previous_warehouse_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.csv",
        format!("{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n").as_bytes(),
    );
    assert!(ingest_metadata(dir.path(), &good).status.success());
    let before = snapshot(&dir.path().join("wh"));
    assert!(
        before.keys().any(|k| k.ends_with("/images.parquet"))
            && before.contains_key("manifest.json")
    );

    let bad = write(dir.path(), "bad.csv", b"Image Index\nx.png\n");
    assert_eq!(ingest_metadata(dir.path(), &bad).status.code(), Some(2));
    let bad_bbox = write(dir.path(), "bbox.csv", b"nothing,useful\n1,2\n");
    let out = run(&[
        "ingest",
        "--metadata",
        good.to_str().unwrap(),
        "--bbox",
        bad_bbox.to_str().unwrap(),
        "--no-expert",
        "--no-splits",
        "--warehouse",
        dir.path().join("wh").to_str().unwrap(),
    ]);
    assert_input_error(&out, &["bbox.csv", "missing required column"]);
    assert_eq!(snapshot(&dir.path().join("wh")), before);
    // No staging directories are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".wh."))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn a_killed_writer_leaves_nothing_a_reader_sees() {
    // A writer killed before its commit leaves a `.staging-*` directory inside the
    // warehouse: readers never look at it, and the next writer removes it.
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.csv",
        format!("{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n").as_bytes(),
    );
    assert!(ingest_metadata(dir.path(), &good).status.success());
    let wh = dir.path().join("wh");
    let stale = wh.join(".staging-19700101T000000-999999");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("images.parquet"), b"half a file").unwrap();
    let out = run(&[
        "sql",
        "--warehouse",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM images",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "n\n1\n");
    assert!(ingest_metadata(dir.path(), &good).status.success());
    assert!(!stale.exists());
}

#[test]
fn never_replaces_a_directory_that_is_not_a_warehouse() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("wh");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("thesis.tex"), "years of work").unwrap();
    let good = write(
        dir.path(),
        "good.csv",
        format!("{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n").as_bytes(),
    );
    let out = ingest_metadata(dir.path(), &good);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a cxr warehouse"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(precious.join("thesis.tex")).unwrap(),
        "years of work"
    );
}

/// Into a pipe, `ingest` writes its table of rows per table as CSV on stdout and
/// nothing else; what happened (the time, where) goes to stderr.
#[test]
fn ingest_into_a_pipe_prints_only_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let metadata = cxr::data_dir().join("Data_Entry_2017_v2020.csv.gz");
    let out = run(&common::ingest_args(
        metadata.to_str().unwrap(),
        wh.to_str().unwrap(),
    ));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    assert_eq!(rows[0], ["table", "rows"]);
    assert!(rows.iter().all(|r| r.len() == 2), "{rows:?}");
    let images = rows.iter().find(|r| r[0] == "images").unwrap();
    assert_eq!(images[1], common::nih_csv().len().to_string());
    assert!(
        stderr(&out).contains("written from the 2020 metadata"),
        "{}",
        stderr(&out)
    );
}

/// The release is the one most values are written in: an odd age (`abc`, `NaN`,
/// `057Y`) in a 2020 file is a `data_issues` row, not a sign of the 2017 release.
#[test]
fn a_few_odd_ages_do_not_change_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = common::small_metadata(dir.path(), 10);
    let text = std::fs::read_to_string(&metadata).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let odd_image = lines[6].split(',').next().unwrap().to_string();
    for (line, age) in [(2, "abc"), (4, "NaN"), (6, "057Y")] {
        let mut fields: Vec<&str> = lines[line].split(',').collect();
        fields[4] = age;
        lines[line] = fields.join(",");
    }
    std::fs::write(&metadata, lines.join("\n") + "\n").unwrap();
    let wh = dir.path().join("wh");
    let out = run(&common::ingest_args(
        metadata.to_str().unwrap(),
        wh.to_str().unwrap(),
    ));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("written from the 2020 metadata"),
        "{}",
        stderr(&out)
    );
    // `abc` and `NaN` set to NULL; `057Y`, the 2017 release's form, read and said.
    assert_eq!(
        common::int(
            &wh,
            "SELECT count(*) FROM data_issues WHERE field = 'Patient Age'"
        ),
        3
    );
    assert_eq!(
        common::rows(
            &wh,
            "SELECT line, action FROM data_issues WHERE value = '057Y' AND issue LIKE '%2017 release%'"
        ),
        [["7", "changed"]]
    );
    assert_eq!(
        common::int(
            &wh,
            &format!("SELECT age FROM images WHERE image_index = '{odd_image}'")
        ),
        57
    );

    // The other way: a 2017 file (ages `058Y`) with one age without its unit.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (i, line) in lines.iter_mut().enumerate().skip(1) {
        let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
        if i != 3 {
            fields[4] = format!("{:03}Y", fields[4].parse::<u32>().unwrap());
        }
        *line = fields.join(",");
    }
    std::fs::write(&metadata, lines.join("\n") + "\n").unwrap();
    let wh = dir.path().join("wh2017");
    let out = run(&common::ingest_args(
        metadata.to_str().unwrap(),
        wh.to_str().unwrap(),
    ));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("written from the 2017 metadata"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        common::rows(
            &wh,
            "SELECT line, action FROM data_issues WHERE field = 'Patient Age'"
        ),
        [["4", "kept"]]
    );
}

/// An NIH release states each of its 14 findings for every image, present or absent:
/// on a metadata file of a few images, a finding none of them has is absent in each
/// (a cohort without it is every image), not unknown (a cohort of none). Counted
/// here from the CSV's Finding Labels.
#[test]
fn a_few_nih_images_know_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let records = nih_csv_records("Data_Entry_2017_v2020.csv.gz");
    let first: Vec<&Vec<String>> = records.iter().take(30).collect();
    let mut text = format!("{HEADER}\n");
    for r in &first {
        text += &(r.join(",") + "\n");
    }
    let metadata = write(dir.path(), "first30.csv", text.as_bytes());
    let out = ingest_metadata(dir.path(), &metadata);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let wh = dir.path().join("wh");
    let findings = NIH_FINDINGS;
    let absent_from_all = findings
        .iter()
        .filter(|f| first.iter().all(|r| !r[1].split('|').any(|l| l == **f)))
        .count();
    assert!(absent_from_all > 0, "the first 30 rows have every finding");
    for finding in findings {
        let with = first
            .iter()
            .filter(|r| r[1].split('|').any(|l| l == finding))
            .count();
        for (flag, expected) in [("--with", with), ("--without", first.len() - with)] {
            let out = run(&[
                "cohort",
                "-w",
                wh.to_str().unwrap(),
                flag,
                finding,
                "--format",
                "csv",
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let rows = stdout(&out).lines().count().saturating_sub(1);
            assert_eq!(rows, expected, "{flag} {finding}");
        }
    }
}

/// An NIH `Finding Labels` that says nothing (empty, or separators only: `|`) is an
/// image of unknown findings everywhere: NULL in `images`' label columns, no label
/// rows, neither normal nor negative in cohorts, and unknown in `followups` (it was
/// FALSE in `images`, all-negative for `|`, and resolved then appeared Effusion in
/// `followups`). A box given twice counts once, with a row naming the first line.
#[test]
fn nih_images_without_labels_are_unknown_and_repeated_boxes_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{}\n", common::HEADER);
    for (k, labels) in ["Effusion", "", "|", "Effusion"].iter().enumerate() {
        text.push_str(&format!(
            "00000001_{k:03}.png,{labels},{k},1,50,F,PA,2048,2048,0.14,0.14\n"
        ));
    }
    let metadata = write(dir.path(), "meta.csv", text.as_bytes());
    let boxes = write(
        dir.path(),
        "boxes.csv",
        b"Image Index,Finding Label,Bbox [x,y,w,h]\n00000001_000.png,Effusion,1,2,3,4\n00000001_000.png,Effusion,1.0,2,3,4\n",
    );
    let wh = dir.path().join("wh");
    let (m, b, w) = (
        metadata.to_str().unwrap(),
        boxes.to_str().unwrap(),
        wh.to_str().unwrap(),
    );
    let out = run(&[
        "ingest",
        "--metadata",
        m,
        "--bbox",
        b,
        "--no-expert",
        "--no-splits",
        "--no-images",
        "--warehouse",
        w,
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // Images 1 and 2 say nothing: NULL labels and findings, not normal.
    assert_eq!(
        rows(
            &wh,
            "SELECT image_index, labels IS NULL, n_labels IS NULL, effusion IS NULL, no_finding FROM images ORDER BY image_index"
        ),
        [
            ["00000001_000.png", "false", "false", "false", "false"],
            ["00000001_001.png", "true", "true", "true", "false"],
            ["00000001_002.png", "true", "true", "true", "false"],
            ["00000001_003.png", "false", "false", "false", "false"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    assert_eq!(
        int(
            &wh,
            "SELECT count(*) FROM data_issues WHERE issue LIKE 'empty Finding Labels%'"
        ),
        2
    );
    assert_eq!(
        int(
            &wh,
            "SELECT count(*) FROM dataset_labels WHERE image_id IN ('00000001_001.png', '00000001_002.png')"
        ),
        0
    );
    // Nothing new or resolved is known next to an image of unknown findings.
    assert_eq!(
        int(
            &wh,
            "SELECT count(*) FROM followups WHERE cardinality(new_labels) > 0 OR cardinality(resolved_labels) > 0"
        ),
        0
    );
    // The repeated box is skipped, its row naming line 2.
    assert_eq!(int(&wh, "SELECT count(*) FROM bboxes"), 1);
    assert_eq!(
        rows(
            &wh,
            "SELECT line FROM data_issues WHERE issue = 'the same box as line 2; skipped'"
        ),
        [vec!["3".to_string()]]
    );
}
