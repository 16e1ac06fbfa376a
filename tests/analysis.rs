//! Cohort, co-occurrence, follow-up and plot commands; export, inspect and split.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

fn wh() -> String {
    wh2020().to_str().unwrap().to_string()
}

fn csv_rows(args: &[&str]) -> Vec<Vec<String>> {
    let w = wh();
    let mut a: Vec<&str> = args.to_vec();
    a.extend_from_slice(&["-w", &w, "--format", "csv"]);
    let out = run(&a);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    parse_csv(&stdout(&out)).into_iter().skip(1).collect()
}

#[test]
fn cohort_flags_give_published_counts() {
    let r = csv_rows(&[
        "cohort",
        "--with",
        "Effusion",
        "--without",
        "Pneumothorax",
        "--sex",
        "F",
        "--age",
        "40..60",
        "--view",
        "PA",
    ]);
    assert_eq!(r.len(), 1_416);
    assert_eq!(
        r.iter()
            .map(|r| r[1].as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        761
    );
    assert_eq!(
        csv_rows(&["cohort", "--view", "PA", "--first-study"]).len(),
        28_868
    );
    // Case-insensitive labels, open-ended ages.
    assert_eq!(
        csv_rows(&["cohort", "--with", "hernia", "--age", "..30"]).len() as i64,
        int(
            &wh2020(),
            "SELECT COUNT(*) FROM images WHERE hernia AND age <= 30"
        )
    );
    assert_eq!(
        csv_rows(&[
            "cohort",
            "--any",
            "Hernia",
            "--any",
            "Edema",
            "--no-finding"
        ])
        .len(),
        0
    );
    assert_eq!(
        csv_rows(&["cohort", "--min-studies", "50", "--split", "test"]).len() as i64,
        int(
            &wh2020(),
            "SELECT COUNT(*) FROM images i JOIN patients p ON p.patient_id = i.patient_id WHERE p.n_images >= 50 AND i.split = 'test'"
        )
    );
    let out = run(&["cohort", "-w", &wh(), "--with", "Covid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Pleural_Thickening"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cohort_summary_and_pixel_predicates() {
    let r = csv_rows(&["cohort", "--with", "Effusion", "--summary"]);
    let get = |m: &str, i: &str| {
        r.iter()
            .find(|x| x[0] == m && x[1] == i)
            .map(|x| x[2].clone())
            .unwrap()
    };
    assert_eq!(get("images", ""), "13317");
    assert_eq!(get("finding", "Infiltration"), "4000");
    // The shipped sample has pixel statistics for 24 images.
    let r = csv_rows(&["cohort", "--where", "mean > 0"]);
    assert_eq!(r.len(), 24);
}

#[test]
fn show_sql_runs_through_cxr_sql_with_the_same_rows() {
    for args in [
        vec!["cohort", "--with", "Mass", "--view", "AP", "--first-study"],
        vec!["cooccur", "--metric", "jaccard", "--sex", "M"],
        vec!["followup", "--transitions", "--view", "PA"],
    ] {
        let w = wh();
        let mut a = args.clone();
        a.extend_from_slice(&["-w", &w, "--show-sql"]);
        let sql = stdout(&run(&a));
        assert!(sql.trim_end().ends_with(';'), "{sql}");
        let via_sql = run(&["sql", "-w", &w, "--format", "csv", &sql]);
        assert!(via_sql.status.success(), "{}", stderr(&via_sql));
        let direct = csv_rows(&args);
        assert_eq!(
            parse_csv(&stdout(&via_sql))[1..].to_vec(),
            direct,
            "{args:?}"
        );
    }
}

/// The header line of `cxr cooccur --metric lift` as CSV.
fn lift_header() -> String {
    let out = run(&[
        "cooccur",
        "-w",
        &wh(),
        "--metric",
        "lift",
        "--format",
        "csv",
    ]);
    stdout(&out).lines().next().unwrap_or("").to_string()
}

#[test]
fn cooccur_matches_counts_from_the_csv() {
    // Expected pair counts straight from the CSV, without cxr.
    let images = nih_csv();
    let mut n = std::collections::BTreeMap::<(String, String), i64>::new();
    let mut single = std::collections::BTreeMap::<String, i64>::new();
    for i in &images {
        for a in &i.labels {
            *single.entry(a.clone()).or_default() += 1;
            for b in &i.labels {
                if a != b {
                    *n.entry((a.clone(), b.clone())).or_default() += 1;
                }
            }
        }
    }
    let r = csv_rows(&["cooccur"]);
    assert_eq!(r.len(), 182);
    for x in &r {
        let key = (x[0].clone(), x[1].clone());
        assert_eq!(x[2].parse::<i64>().unwrap(), single[&x[0]], "n_a {key:?}");
        assert_eq!(x[3].parse::<i64>().unwrap(), single[&x[1]], "n_b {key:?}");
        let expected = n.get(&key).copied().unwrap_or(0);
        assert_eq!(x[4].parse::<i64>().unwrap(), expected, "n_ab {key:?}");
    }
    let lift = csv_rows(&["cooccur", "--metric", "lift"]);
    let e = lift
        .iter()
        .find(|x| x[0] == "Effusion" && x[1] == "Infiltration")
        .unwrap();
    // Printed rounded to 4 decimals, under the metric's name.
    assert_eq!(lift_header(), "label_a,label_b,n_a,n_b,n_ab,lift");
    assert!(
        (e[5].parse::<f64>().unwrap() - 4000.0 * 112_120.0 / (13_317.0 * 19_894.0)).abs() <= 5e-5
    );
    assert!(
        e[5].split('.').nth(1).is_some_and(|d| d.len() <= 4),
        "{}",
        e[5]
    );
    // The matrix form on a table as wide as the matrix; on a narrow one, the pairs one
    // per row, as many as a table shows (40 of the 182).
    let w = wh();
    let wide = cxr()
        .args(["cooccur", "-w", &w, "--format", "table"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let t = stdout(&wide);
    assert!(
        t.contains("Pleural_Thickening") && t.contains("4000"),
        "{t}"
    );
    let narrow = cxr()
        .args(["cooccur", "-w", &w, "--format", "table"])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let t = stdout(&narrow);
    assert!(t.contains("182 rows (40 shown"), "{t}");
}

#[test]
fn followup_timeline_and_transitions() {
    let t = csv_rows(&["followup", "--patient", "18404"]);
    assert_eq!(t.len(), 19);
    assert_eq!(t[0][0], "1");
    assert_eq!(t[0][6], "", "no new_labels on the first study");
    // A cohort that leaves out every image of a patient who is there matches
    // nothing: a note and exit 0, as any such cohort (the CSV: no Hernia on 18404).
    assert!(
        nih_csv()
            .iter()
            .filter(|i| i.patient == 18404)
            .all(|i| !i.labels.contains("Hernia"))
    );
    let w = wh();
    let out = run(&[
        "followup",
        "-w",
        &w,
        "--patient",
        "18404",
        "--with",
        "Hernia",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: no image of patient 18404 matches the cohort"),
        "{}",
        stderr(&out)
    );
    // Appearances per finding between consecutive studies, from the CSV.
    let mut images = nih_csv();
    images.sort_by(|a, b| {
        (a.patient, a.follow_up, &a.index).cmp(&(b.patient, b.follow_up, &b.index))
    });
    let mut appeared = std::collections::BTreeMap::<String, i64>::new();
    for w in images.windows(2) {
        if w[0].patient == w[1].patient {
            for l in w[1].labels.difference(&w[0].labels) {
                *appeared.entry(l.clone()).or_default() += 1;
            }
        }
    }
    let tr = csv_rows(&["followup", "--transitions"]);
    assert_eq!(tr.len(), 14);
    for row in &tr {
        assert_eq!(
            row[1].parse::<i64>().unwrap(),
            appeared[&row[0]],
            "{}",
            row[0]
        );
    }
    let summary = csv_rows(&["followup"]);
    let eff = summary.iter().find(|r| r[0] == "Effusion").unwrap();
    let ever: i64 = eff[2].parse().unwrap();
    let first: i64 = eff[3].parse().unwrap();
    let incident: i64 = eff[4].parse().unwrap();
    assert_eq!(ever, first + incident);
    assert_eq!(
        ever,
        int(
            &wh2020(),
            "SELECT COUNT(DISTINCT patient_id) FROM images WHERE effusion AND patient_id IN (SELECT patient_id FROM patients WHERE n_images >= 2)"
        )
    );
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

#[test]
fn plots_are_valid_files_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let w = wh();
    for (kind, file, size) in [
        ("cooccurrence", "c.png", "1000x800"),
        ("labels", "l.svg", "900x600"),
        ("age", "a.png", "800x500"),
        ("pixels", "p.svg", "700x500"),
    ] {
        let out_path = dir.path().join(file);
        let out = run(&[
            "plot",
            kind,
            "-w",
            &w,
            "--size",
            size,
            "--out",
            out_path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let (ew, eh): (u32, u32) = {
            let (a, b) = size.split_once('x').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        };
        if file.ends_with(".png") {
            assert_eq!(png_size(&out_path), (ew, eh));
        } else {
            let svg = std::fs::read_to_string(&out_path).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
            assert!(
                svg.contains(&format!("width=\"{ew}\""))
                    && svg.contains(&format!("height=\"{eh}\""))
            );
            if kind == "labels" {
                assert!(
                    svg.contains("Pleural Thickening")
                        && svg.contains("% of the images whose state is known")
                );
            }
        }
    }
}

fn read_parquet(
    path: &str,
) -> (
    datafusion::arrow::datatypes::SchemaRef,
    Vec<datafusion::arrow::array::RecordBatch>,
) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let df = ctx.read_parquet(path, Default::default()).await.unwrap();
        let schema = df.schema().inner().clone();
        (schema, df.collect().await.unwrap())
    })
}

#[test]
fn export_training_manifest_reads_back() {
    use datafusion::arrow::array::{Array, FixedSizeListArray, Float32Array, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pa.parquet");
    let w = wh();
    let out = run(&[
        "export",
        "-w",
        &w,
        "--view",
        "PA",
        "--first-study",
        "--image-root",
        "/data/img",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (schema, batches) = read_parquet(file.to_str().unwrap());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 28_868);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "image_index",
            "patient_id",
            "follow_up",
            "age",
            "sex",
            "view_position",
            "split",
            "labels",
            "targets",
            "path"
        ]
    );
    // targets equal the boolean columns: compare every image's vector to its labels.
    let mut positives = 0.0f32;
    for b in &batches {
        let t = b
            .column_by_name("targets")
            .unwrap()
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        // DataFusion reads strings back as views: cast for the comparison.
        let text = |name: &str| {
            let c = datafusion::arrow::compute::cast(
                b.column_by_name(name).unwrap(),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            c.as_any().downcast_ref::<StringArray>().unwrap().clone()
        };
        let (p, idx) = (text("path"), text("image_index"));
        assert_eq!(t.value_length(), 14);
        let v = t.values().as_any().downcast_ref::<Float32Array>().unwrap();
        positives += v.values().iter().sum::<f32>();
        assert_eq!(p.value(0), format!("/data/img/{}", idx.value(0)));
    }
    let expected = int(
        &wh2020(),
        "WITH f AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS r FROM images WHERE view_position = 'PA') SELECT SUM(n_labels) FROM f WHERE r = 1",
    );
    assert_eq!(positives as i64, expected);
    // Provenance metadata, shown by inspect.
    let info = stdout(&run(&["inspect", file.to_str().unwrap()]));
    assert!(
        info.contains("cxr.targets: [\"Atelectasis\"")
            && info.contains("cxr.manifest_sha256")
            && info.contains("cxr.query"),
        "{info}"
    );
    assert!(info.contains("targets: FixedSizeList(14"), "{info}");
}

#[test]
fn partitioned_export_keeps_partition_values_once() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ds");
    let w = wh();
    let out = run(&[
        "export",
        "-w",
        &w,
        "--partition-by",
        "split",
        "--compression",
        "snappy",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out_dir.join("split=test/part-0.parquet").exists());
    let (schema, _) = read_parquet(out_dir.join("split=test/part-0.parquet").to_str().unwrap());
    assert!(
        schema.field_with_name("split").is_err(),
        "partition column must not be inside the files"
    );
    let n = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let opts = datafusion::prelude::ParquetReadOptions::default().table_partition_cols(vec![(
            "split".to_string(),
            datafusion::arrow::datatypes::DataType::Utf8,
        )]);
        ctx.register_parquet("ds", out_dir.to_str().unwrap(), opts)
            .await
            .unwrap();
        let b = ctx
            .sql("SELECT split, COUNT(*) FROM ds GROUP BY split ORDER BY split")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for batch in &b {
            rows.extend(cxr::output::rows_as_text(batch, "").unwrap());
        }
        rows.into_iter().map(|r| r.join(",")).collect::<Vec<_>>()
    });
    assert_eq!(n, ["test,25596", "train_val,86524"]);

    let tables = dir.path().join("tables");
    let out = run(&["export", "-w", &w, "--tables", tables.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for t in [
        "images",
        "findings",
        "patients",
        "bboxes",
        "expert_labels",
        "data_issues",
        "pixel_stats",
        "pixel_errors",
    ] {
        assert!(tables.join(format!("{t}.parquet")).exists(), "{t}");
    }
}

fn copy_warehouse(to: &Path) {
    copy_tree(&wh2020(), to);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `split --official` of a warehouse ingested without the lists has no assignment
/// to write: refused, nothing committed (it wrote an empty `splits`, exit 0).
#[test]
fn official_split_without_the_lists_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let meta = common::small_metadata(dir.path(), 20);
    let w = dir.path().join("wh");
    let ws = w.to_str().unwrap();
    let out = run(&common::ingest_args(meta.to_str().unwrap(), ws));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = common::snapshot(&w);
    let out = run(&["split", "-w", ws, "--official"]);
    common::assert_refused(&out, "no image of this warehouse is in an official list");
    assert!(common::snapshot(&w) == before, "the warehouse changed");
}

#[test]
fn splits_official_random_and_stratified() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("wh");
    copy_warehouse(&w);
    let ws = w.to_str().unwrap();
    let out = run(&["split", "-w", ws, "--official"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        int(
            &w,
            "SELECT COUNT(*) FROM images i JOIN splits s ON s.patient_id = i.patient_id WHERE s.split = 'train_val'"
        ),
        86_524
    );
    assert_eq!(
        int(
            &w,
            "SELECT COUNT(*) FROM images i JOIN splits s ON s.patient_id = i.patient_id WHERE s.split = 'test'"
        ),
        25_596
    );
    // The note about where splits come from is said where a split is read, once.
    let reads = run(&["cohort", "-w", ws, "--split", "test", "--summary"]);
    assert_eq!(code(&reads), Some(0), "{}", stderr(&reads));
    assert_eq!(
        stderr(&reads).matches("`splits` table").count(),
        1,
        "{}",
        stderr(&reads)
    );
    for args in [
        &["cohort", "-w", ws, "--with", "Hernia", "--summary"][..],
        &["followup", "-w", ws, "--patient", "1"][..],
        &["cohort", "-w", ws, "--sex", "X"][..],
    ] {
        let out = run(args);
        assert!(
            !stderr(&out).contains("`splits` table"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let check = run(&["split", "-w", ws, "--check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let lines: Vec<String> = stdout(&check).lines().map(str::to_string).collect();
    // The header, the official lists and the splits table: no patient in two splits.
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1..].iter().all(|l| l.ends_with(",0")), "{lines:?}");
    // In one order, run after run.
    assert!(
        lines[1].starts_with("official") && lines[2].starts_with("splits table"),
        "{lines:?}"
    );

    let assignment = |seed: &str, stratify: bool| {
        let out_file = dir.path().join(format!("a{seed}{stratify}.parquet"));
        let mut a = vec![
            "split",
            "-w",
            ws,
            "--seed",
            seed,
            "--fractions",
            "0.7,0.1,0.2",
            "--out",
            out_file.to_str().unwrap(),
        ];
        if stratify {
            a.push("--stratify");
        }
        let out = run(&a);
        assert!(out.status.success(), "{}", stderr(&out));
        rows(
            &w,
            "SELECT patient_id, split FROM splits ORDER BY patient_id",
        )
    };
    let a = assignment("7", false);
    assert_eq!(a, assignment("7", false), "same seed, same split");
    assert_ne!(a, assignment("8", false));
    assert_eq!(a.len(), 30_805, "one row per patient: nobody in two splits");
    let n = |s: &str| a.iter().filter(|r| r[1] == s).count() as f64 / 30_805.0;
    assert!((n("train") - 0.7).abs() < 0.001 && (n("val") - 0.1).abs() < 0.001);

    assignment("7", true);
    // Every finding's image prevalence per split within 0.25 points (and 15 %) of the whole.
    let prev = rows(
        &w,
        "SELECT f.label, s.split, COUNT(*) FROM findings f JOIN splits s ON s.patient_id = f.patient_id GROUP BY 1, 2",
    );
    let sizes = rows(
        &w,
        "SELECT s.split, COUNT(*) FROM images i JOIN splits s ON s.patient_id = i.patient_id GROUP BY 1",
    );
    let size = |s: &str| {
        sizes.iter().find(|r| r[0] == s).unwrap()[1]
            .parse::<f64>()
            .unwrap()
    };
    for r in &prev {
        let whole = int(
            &w,
            &format!("SELECT COUNT(*) FROM findings WHERE label = '{}'", r[0]),
        ) as f64
            / 112_120.0
            * 100.0;
        let here = r[2].parse::<f64>().unwrap() / size(&r[1]) * 100.0;
        assert!(
            (here - whole).abs() < 0.25 && (here - whole).abs() / whole < 0.15,
            "{r:?}: {here} vs {whole}"
        );
    }
    // The cohort flag uses the new split.
    assert_eq!(
        csv_rows_in(ws, &["cohort", "--split", "val"]).len() as i64,
        int(
            &w,
            "SELECT COUNT(*) FROM images i JOIN splits s ON s.patient_id = i.patient_id WHERE s.split = 'val'"
        )
    );
}

fn csv_rows_in(w: &str, args: &[&str]) -> Vec<Vec<String>> {
    let mut a: Vec<&str> = args.to_vec();
    a.extend_from_slice(&["-w", w, "--format", "csv"]);
    let out = run(&a);
    assert!(out.status.success(), "{}", stderr(&out));
    parse_csv(&stdout(&out)).into_iter().skip(1).collect()
}

/// `followup --with X` follows the patients ever positive for X; its statistics cover
/// those with two or more studies, and it says so. Counted from the raw CSV here.
#[test]
fn followup_with_a_finding_says_whom_it_covers() {
    let images = nih_csv();
    let mut studies: std::collections::HashMap<i64, (usize, bool)> = Default::default();
    for i in &images {
        let e = studies.entry(i.patient).or_default();
        e.0 += 1;
        e.1 |= i.labels.contains("Effusion");
    }
    let ever = studies.values().filter(|(_, eff)| *eff).count();
    let followed = studies.values().filter(|(n, eff)| *eff && *n >= 2).count();
    assert!(followed < ever);
    let out = run(&[
        "followup",
        "-w",
        wh2020().to_str().unwrap(),
        "-f",
        "csv",
        "--with",
        "Effusion",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("two or more studies"),
        "{}",
        stderr(&out)
    );
    let rows = parse_csv(&stdout(&out));
    let at = rows[0].iter().position(|c| c == "patients").unwrap();
    let effusion = rows.iter().find(|r| r[0] == "Effusion").unwrap();
    assert_eq!(effusion[at], followed.to_string());
}

/// `agree` between NIH's labels and Google's expert labels compares Google's
/// groupings too (nodule or mass; airspace opacity = consolidation, infiltration or
/// pneumonia), and writes CSV like every command: each count worked out here from the
/// two raw files.
#[test]
fn agree_compares_the_expert_groupings() {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(data("google2019_nih-chest-xray-labels.csv.gz")).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    let rows = parse_csv(&text);
    let at = |n: &str| rows[0].iter().position(|h| h == n).unwrap();
    let nih: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
        nih_csv().into_iter().map(|i| (i.index, i.labels)).collect();
    let expected = |name: &str, members: &[&str]| -> Vec<String> {
        let (mut n, mut pos_a, mut pos_b, mut both) = (0, 0, 0, 0);
        for r in rows[1..].iter().filter(|r| r.len() > 1) {
            let Some(labels) = nih.get(&r[at("Image Index")]) else {
                continue;
            };
            let a = members.iter().any(|m| labels.contains(*m));
            let b = r[at(name)] == "YES";
            n += 1;
            pos_a += a as i64;
            pos_b += b as i64;
            both += (a && b) as i64;
        }
        [
            name.to_string(),
            n.to_string(),
            pos_a.to_string(),
            pos_b.to_string(),
            both.to_string(),
        ]
        .to_vec()
    };
    // The sources named in any case, as --source names them.
    for (a, b) in [("nih_2020", "google_2019"), ("NIH_2020", "Google_2019")] {
        let out = run(&[
            "agree",
            "-w",
            wh2020().to_str().unwrap(),
            "-f",
            "csv",
            "--a",
            a,
            "--b",
            b,
        ]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let got: Vec<Vec<String>> = parse_csv(&stdout(&out))[1..]
            .iter()
            .map(|r| r[..5].to_vec())
            .collect();
        assert_eq!(
            got,
            [
                expected(
                    "Airspace opacity",
                    &["Consolidation", "Infiltration", "Pneumonia"]
                ),
                expected("Nodule or mass", &["Mass", "Nodule"]),
                expected("Pneumothorax", &["Pneumothorax"]),
            ]
        );
    }
}

/// The follow-up of a whole dataset is read from `studies` (written at ingest); of
/// a cohort it is computed from the cohort's rows. A cohort of every image
/// (`--where true`) must give the same rows.
#[test]
fn followup_of_the_whole_warehouse_equals_the_same_computed_for_a_cohort() {
    for extra in [
        &[][..],
        &["--transitions"][..],
        &["--patient", "18404"][..],
        &["--dataset", "nih"][..],
        &["--dataset", "nih", "--transitions"][..],
    ] {
        let mut whole = vec!["followup"];
        whole.extend_from_slice(extra);
        let read = csv_rows(&whole);
        assert!(read.len() > 3, "{extra:?}: {read:?}");
        let mut cohort = whole.clone();
        cohort.extend_from_slice(&["--where", "true"]);
        assert_eq!(read, csv_rows(&cohort), "{extra:?}");
    }
    // An NIH id is a number: written with a leading zero it is the same patient.
    assert_eq!(
        csv_rows(&["followup", "--patient", "018404"]),
        csv_rows(&["followup", "--patient", "18404"])
    );
}

/// `split --official` gives a patient a split only when every image of theirs is in
/// that one list: an image in neither list leaves the patient out (as SCHEMA.md says),
/// as an image in each does.
#[test]
fn official_split_leaves_out_a_patient_with_an_image_in_no_list() {
    let dir = tempfile::tempdir().unwrap();
    // Patients 1, 2 and 3, two images each.
    let metadata = common::small_metadata(dir.path(), 6);
    let lists = [
        (
            "tv.txt",
            "00000001_000.png\n00000001_001.png\n00000002_000.png\n",
        ),
        ("te.txt", "00000003_000.png\n00000003_001.png\n"),
    ];
    for (name, text) in lists {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let w = dir.path().join("wh");
    let (m, ws) = (metadata.to_str().unwrap(), w.to_str().unwrap());
    let tv = dir.path().join("tv.txt");
    let te = dir.path().join("te.txt");
    let out = run(&[
        "ingest",
        "--metadata",
        m,
        "--splits",
        tv.to_str().unwrap(),
        te.to_str().unwrap(),
        "--no-bbox",
        "--no-expert",
        "--no-images",
        "--no-other-release",
        "-w",
        ws,
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = run(&["split", "-w", ws, "--official"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let rows = csv_rows_in(
        ws,
        &[
            "sql",
            "SELECT patient_id, split FROM splits ORDER BY patient_id",
        ],
    );
    assert_eq!(rows, [["1", "train_val"], ["3", "test"]]);
}

/// An image NIH leaves unlabelled (empty `Finding Labels`) is in no agreement table
/// and in no prevalence's denominator: every count here worked out by hand from the
/// rows below.
#[test]
fn unlabelled_images_stay_out_of_agreement_and_prevalence() {
    let dir = tempfile::tempdir().unwrap();
    // Four patients, one image each: a Effusion, b unlabelled, c normal, d Mass and
    // Pneumothorax.
    let images = [
        ("00000001_000.png", "Effusion", 1),
        ("00000002_000.png", "", 2),
        ("00000003_000.png", "No Finding", 3),
        ("00000004_000.png", "Mass|Pneumothorax", 4),
    ];
    let mut metadata = format!("{HEADER}\n");
    let mut expert =
        format!("{HEADER},Fracture,Pneumothorax,Airspace opacity,Nodule or mass,Set Id\n");
    for (image, labels, patient) in images {
        let fields = format!("{image},{labels},0,{patient},50,F,PA,2048,2048,0.14,0.14");
        metadata.push_str(&format!("{fields}\n"));
        // Google read a, b and c: Pneumothorax on a.
        if patient < 4 {
            let pneumothorax = if patient == 1 { "YES" } else { "NO" };
            expert.push_str(&format!("{fields},NO,{pneumothorax},NO,NO,test\n"));
        }
    }
    let (meta, google) = (dir.path().join("meta.csv"), dir.path().join("google.csv"));
    std::fs::write(&meta, metadata).unwrap();
    std::fs::write(&google, expert).unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let out = run(&[
        "ingest",
        "--no-images",
        "--no-bbox",
        "--no-splits",
        "--no-other-release",
        "--metadata",
        meta.to_str().unwrap(),
        "--expert",
        google.to_str().unwrap(),
        "-w",
        w,
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let nih = rows(
        &wh,
        "SELECT DISTINCT source FROM dataset_labels WHERE source LIKE 'nih_%'",
    );
    assert_eq!(nih.len(), 1, "{nih:?}");
    // Pneumothorax over a and c (b has no NIH label): NIH no on both, Google yes on a.
    let out = run(&[
        "agree",
        "-w",
        w,
        "-f",
        "csv",
        "--a",
        &nih[0][0],
        "--b",
        "google_2019",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let agree = parse_csv(&stdout(&out));
    let pneumothorax = agree.iter().find(|r| r[0] == "Pneumothorax");
    assert_eq!(
        pneumothorax.map(|r| r[..5].to_vec()),
        Some(
            ["Pneumothorax", "2", "0", "1", "0"]
                .map(String::from)
                .to_vec()
        ),
        "{agree:?}"
    );
    // The saved query counts the same two images: n, both, NIH only, Google only, neither.
    let out = run(&["run", "expert_agreement", "-w", w, "-f", "csv"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let saved = parse_csv(&stdout(&out));
    let row = saved.iter().find(|r| r[0] == "pneumothorax").unwrap();
    assert_eq!(row[1..6], ["2", "0", "0", "1", "1"], "{saved:?}");
    // The split's prevalence table: Effusion is 1 of the 3 labelled images (b is
    // not a 0), and per split 1 of that split's labelled images.
    let out = run(&[
        "split",
        "-w",
        w,
        "--seed",
        "7",
        "--fractions",
        "0.5,0.5",
        "--stratify",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let table = parse_csv(&stdout(&out));
    let effusion = table.iter().find(|r| r[0] == "Effusion %");
    let effusion = effusion.unwrap_or_else(|| panic!("{table:?}"));
    let column = |name: &str| table[0].iter().position(|h| h == name).unwrap();
    assert_eq!(effusion[column("(all)")], "33.33", "{table:?}");
    let split_of = |patient: i64| {
        rows(
            &wh,
            &format!("SELECT split FROM splits WHERE patient_id = {patient}"),
        )[0][0]
            .clone()
    };
    let split = split_of(1);
    let labelled_beside_a = [3, 4].iter().filter(|&&p| split_of(p) == split).count();
    let expected = format!("{:.2}", 100.0 / (1 + labelled_beside_a) as f64);
    assert_eq!(effusion[column(&split)], expected, "{table:?}");
}
