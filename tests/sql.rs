//! The SQL layer: views, saved queries, read-only checks, output formats.

mod common;

use std::path::Path;

use common::*;

#[test]
fn cooccurrence_view_matches_published_pairs() {
    let wh = wh2020();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM cooccurrence"), 182);
    let pair = |a: &str, b: &str| {
        int(
            &wh,
            &format!("SELECT n_ab FROM cooccurrence WHERE label_a = '{a}' AND label_b = '{b}'"),
        )
    };
    assert_eq!(pair("Effusion", "Infiltration"), 4_000);
    assert_eq!(pair("Infiltration", "Effusion"), 4_000);
    assert_eq!(pair("Atelectasis", "Effusion"), 3_275);
    assert_eq!(pair("Atelectasis", "Infiltration"), 3_264);
    // Definitions: p(b|a), jaccard and lift from the counts.
    let r = rows(
        &wh,
        "SELECT n_a, n_b, n_ab, p_b_given_a, jaccard, lift FROM cooccurrence WHERE label_a = 'Effusion' AND label_b = 'Infiltration'",
    );
    let v: Vec<f64> = r[0].iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!((v[0], v[1], v[2]), (13_317.0, 19_894.0, 4_000.0));
    assert!((v[3] - 4000.0 / 13317.0).abs() < 1e-12);
    assert!((v[4] - 4000.0 / (13317.0 + 19894.0 - 4000.0)).abs() < 1e-12);
    assert!((v[5] - 4000.0 * 112_120.0 / (13317.0 * 19894.0)).abs() < 1e-9);
    // Every ordered pair once, never a finding with itself.
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM cooccurrence WHERE label_a = label_b"
        ),
        0
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(DISTINCT label_a || '/' || label_b) FROM cooccurrence"
        ),
        182
    );
}

#[test]
fn followups_view() {
    let wh = wh2020();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM followups"), 112_120);
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM followups WHERE new_labels IS NULL"
        ),
        30_805
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM followups WHERE prev_labels IS NULL"
        ),
        30_805
    );
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM followups WHERE study_rank = 1"),
        30_805
    );
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM followups WHERE patient_id = 18404"
        ),
        19
    );
    // Patient 1: Cardiomegaly, then Cardiomegaly|Emphysema, then Cardiomegaly|Effusion.
    let r = rows(
        &wh,
        "SELECT study_rank, new_labels, resolved_labels FROM followups WHERE patient_id = 1 ORDER BY study_rank",
    );
    assert_eq!(r[0], vec!["1", "", ""]);
    assert_eq!(r[1], vec!["2", "[Emphysema]", "[]"]);
    assert_eq!(r[2], vec!["3", "[Effusion]", "[Emphysema]"]);
    // Appearances agree with an independent computation over consecutive studies.
    let appeared = int(&wh, "SELECT SUM(cardinality(new_labels)) FROM followups");
    let independent = int(
        &wh,
        "WITH s AS (SELECT patient_id, image_index, ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY follow_up, image_index) AS r FROM images) \
         SELECT COUNT(*) FROM s cur JOIN s prev ON prev.patient_id = cur.patient_id AND prev.r = cur.r - 1 \
         JOIN findings f ON f.image_index = cur.image_index \
         WHERE NOT EXISTS (SELECT 1 FROM findings g WHERE g.image_index = prev.image_index AND g.label = f.label)",
    );
    assert_eq!(appeared, independent);
}

#[test]
fn materialised_tables_equal_their_views() {
    // followups and cooccurrence are written at ingest; the views' SQL over the base
    // tables must give the same rows, column for column (and the same types: EXCEPT
    // would refuse different ones).
    let wh = wh2020();
    for name in ["followups", "cooccurrence"] {
        let view = cxr::sql::view_sql(name, "images", "findings");
        for (a, b) in [
            (
                format!("SELECT * FROM {name}"),
                format!("SELECT * FROM ({view})"),
            ),
            (
                format!("SELECT * FROM ({view})"),
                format!("SELECT * FROM {name}"),
            ),
        ] {
            assert_eq!(
                int(&wh, &format!("SELECT COUNT(*) FROM ({a} EXCEPT {b})")),
                0,
                "{name}"
            );
        }
    }
    let columns = [
        (
            "followups",
            "patient_id image_index follow_up study_rank age labels prev_labels new_labels resolved_labels",
        ),
        (
            "cooccurrence",
            "label_a label_b n_a n_b n_ab p_b_given_a jaccard lift",
        ),
    ];
    for (name, cols) in columns {
        let view = cxr::sql::view_sql(name, "images", "findings");
        for c in cols.split(' ') {
            // Strings read from Parquet come back as Utf8View, VALUES give Utf8: the
            // same stored type.
            let ty = |from: &str| {
                rows(
                    &wh,
                    &format!("SELECT arrow_typeof({c}) FROM {from} LIMIT 1"),
                )[0][0]
                    .replace("Utf8View", "Utf8")
            };
            assert_eq!(ty(name), ty(&format!("({view})")), "{name}.{c}");
        }
    }
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM followups"), 112_120);
}

fn wh_arg() -> String {
    wh2020().to_str().unwrap().to_string()
}

#[test]
fn saved_cohort_query_with_parameters() {
    let wh = wh_arg();
    let out = run(&[
        "run",
        "effusion_cohort",
        "-w",
        &wh,
        "--format",
        "csv",
        "--param",
        "finding=Effusion",
        "--param",
        "exclude=Pneumothorax",
        "--param",
        "sex=F",
        "--param",
        "min_age=40",
        "--param",
        "max_age=60",
        "--param",
        "view=PA",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    assert_eq!(rows[0][0], "image_index");
    let body = &rows[1..];
    assert_eq!(body.len(), 1_416);
    let patients: std::collections::BTreeSet<&str> = body.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(patients.len(), 761);
}

#[test]
fn first_study_pa_gives_torchxrayvision_count() {
    let out = run(&["run", "first_study", "-w", &wh_arg(), "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(parse_csv(&stdout(&out)).len() - 1, 28_868);
}

#[test]
fn parameter_errors_list_the_parameters() {
    let wh = wh_arg();
    let out = run(&[
        "run",
        "effusion_cohort",
        "-w",
        &wh,
        "--param",
        "min_age=forty",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`forty` is not a valid INT") && err.contains("--param min_age INT 0.. = 0"),
        "{err}"
    );

    let out = run(&["run", "effusion_cohort", "-w", &wh, "--param", "colour=red"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown parameter `colour`"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("needs.sql");
    std::fs::write(
        &q,
        "-- @description needs a value\n-- @param n INT\nSELECT $n AS n\n",
    )
    .unwrap();
    let out = run(&["run", q.to_str().unwrap(), "-w", &wh]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing value for parameter `n`"),
        "{}",
        stderr(&out)
    );
    let out = run(&["run", q.to_str().unwrap(), "-w", &wh, "-p", "n=7"]);
    assert_eq!(stdout(&out), "n\n7\n");

    std::fs::write(&q, "-- @description undeclared\nSELECT $m AS m\n").unwrap();
    let out = run(&["run", q.to_str().unwrap(), "-w", &wh]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("declares no `-- @param m"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn writes_are_refused_unless_allowed() {
    let wh = wh_arg();
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "COPY (SELECT 1) TO '/tmp/cxr-refused.csv'",
        "INSERT INTO images SELECT * FROM images",
    ] {
        let out = run(&["sql", "-w", &wh, sql]);
        assert!(!out.status.success(), "{sql} ran");
        assert!(
            stderr(&out).contains("read-only") && stderr(&out).contains("--allow-write"),
            "{sql}: {}",
            stderr(&out)
        );
        // In words, not DataFusion's plan node names.
        assert!(
            !stderr(&out).contains("not supported") && !stderr(&out).contains("MemoryTable"),
            "{sql}: {}",
            stderr(&out)
        );
    }
    assert!(!std::path::Path::new("/tmp/cxr-refused.csv").exists());
    let out = run(&[
        "sql",
        "-w",
        &wh,
        "--allow-write",
        "CREATE VIEW v AS SELECT 41 + 1 AS x; SELECT x FROM v",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "x\n42\n");
    // --allow-write writes files; it does not lift the memory limit.
    for sql in [
        "SET datafusion.runtime.memory_limit = '8G'; SELECT 1",
        "RESET datafusion.runtime.memory_limit; SELECT 1",
    ] {
        let out = run(&["sql", "-w", &wh, "--allow-write", sql]);
        assert_eq!(out.status.code(), Some(2), "{sql}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("CXR_MEMORY_LIMIT"),
            "{}",
            stderr(&out)
        );
    }
}

const Q: &str = "SELECT label, COUNT(*) AS n, array_agg(DISTINCT patient_id % 2) AS parity FROM findings WHERE label IN ('Hernia', 'Edema') GROUP BY label ORDER BY label";

#[test]
fn every_output_format_parses_back() {
    let wh = wh_arg();
    let get = |fmt: &str| {
        let out = run(&["sql", "-w", &wh, "--format", fmt, Q]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let csv = parse_csv(&get("csv"));
    assert_eq!(csv[0], vec!["label", "n", "parity"]);
    assert_eq!(csv[1][..2], ["Edema".to_string(), "2303".to_string()]);
    assert_eq!(csv[2][..2], ["Hernia".to_string(), "227".to_string()]);

    let json: serde_json::Value = serde_json::from_str(&get("json")).unwrap();
    assert_eq!(json[1]["label"], "Hernia");
    assert_eq!(json[1]["n"], 227);
    assert!(json[1]["parity"].is_array());

    let nd = get("ndjson");
    let lines: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["n"], 2303);

    let md = get("markdown");
    let md_lines: Vec<&str> = md.lines().collect();
    assert_eq!(md_lines[0], "| label | n | parity |");
    assert!(md_lines[2].starts_with("| Edema | 2303 |"));

    let table = get("table");
    assert!(
        table.contains("Hernia") && table.contains("227") && table.contains("2 rows"),
        "{table}"
    );
}

#[test]
fn out_files_in_every_format() {
    let wh = wh_arg();
    let dir = tempfile::tempdir().unwrap();
    for ext in ["parquet", "csv", "json", "ndjson"] {
        let path = dir.path().join(format!("r.{ext}"));
        let out = run(&["sql", "-w", &wh, "--out", path.to_str().unwrap(), Q]);
        assert!(out.status.success(), "{ext}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
        assert!(path.exists(), "{ext}");
    }
    // Parquet reads back through DataFusion with the same rows.
    let p = dir.path().join("r.parquet");
    let n = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let df = ctx
            .read_parquet(p.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        df.count().await.unwrap()
    });
    assert_eq!(n, 2);
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
    assert_eq!(parse_csv(&csv).len(), 3);
    let bad = run(&[
        "sql",
        "-w",
        &wh,
        "--out",
        dir.path().join("r.xlsx").to_str().unwrap(),
        Q,
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn every_shipped_query_runs() {
    let wh = wh_arg();
    let (queries, unreadable) = cxr::sql::params::list().unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert!(queries.len() >= 10, "{} queries", queries.len());
    for q in queries {
        assert!(!q.description.is_empty(), "{} has no description", q.name);
        let out = run(&["run", &q.name, "-w", &wh, "--format", "csv"]);
        assert!(out.status.success(), "{}: {}", q.name, stderr(&out));
        assert!(!stdout(&out).is_empty(), "{}", q.name);
    }
}

#[test]
fn shipped_queries_give_known_answers() {
    let wh = wh_arg();
    let csv = |args: &[&str]| {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-w", &wh, "--format", "csv"]);
        let out = run(&a);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        parse_csv(&stdout(&out))
    };
    assert_eq!(
        csv(&["patient_leakage"]).len(),
        1,
        "header only: no patient in two splits"
    );
    let top = csv(&["top_pairs", "-p", "top=1"]);
    assert_eq!(
        top[1][..3],
        [
            "Effusion".to_string(),
            "Infiltration".to_string(),
            "4000".to_string()
        ]
    );
    // A value outside a parameter's declared range is a usage error naming the range,
    // not an empty answer.
    for bad in ["top=-1", "top=0"] {
        let out = run(&["run", "top_pairs", "-p", bad, "-w", &wh]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let said = stderr(&out);
        assert!(
            said.contains("outside the range 1.. of parameter `top`"),
            "{said}"
        );
        assert!(stdout(&out).is_empty());
    }
    let timeline = csv(&["patient_timeline", "-p", "patient=18404"]);
    assert_eq!(timeline.len() - 1, 19);
    let counts = csv(&["label_counts"]);
    assert_eq!(
        counts[1][..2],
        ["No Finding".to_string(), "60361".to_string()]
    );
    // Appearances per finding equal the finding's count in followups.new_labels.
    let transitions = csv(&["transitions"]);
    let effusion = transitions.iter().find(|r| r[0] == "Effusion").unwrap();
    let direct = int(
        &wh2020(),
        "SELECT COUNT(*) FROM followups WHERE array_has(new_labels, 'Effusion')",
    );
    assert_eq!(effusion[1].parse::<i64>().unwrap(), direct);
}

#[test]
fn missing_or_incompatible_warehouse_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "sql",
        "-w",
        dir.path().join("none").to_str().unwrap(),
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no warehouse at") && stderr(&out).contains("cxr ingest"),
        "{}",
        stderr(&out)
    );

    let fake = dir.path().join("old");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(
        fake.join("manifest.json"),
        r#"{"schema_version": 99, "cxr_version": "9", "created": "x", "metadata_revision": "2020", "inputs": [], "tables": {}}"#,
    )
    .unwrap();
    let out = run(&["sql", "-w", fake.to_str().unwrap(), "SELECT 1"]);
    assert!(
        stderr(&out).contains("schema_version 99"),
        "{}",
        stderr(&out)
    );
}

/// A gzipped CSV named in a query is read as DataFusion reads a plain one: the sum
/// of a column equals the one worked out from the rows written here.
#[test]
fn gzip_csv_files_are_read_as_tables() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ages.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut expected = 0;
    enc.write_all(b"image,age\n").unwrap();
    for i in 0..1000 {
        let age = (i * 7) % 90;
        expected += age;
        enc.write_all(format!("img{i},{age}\n").as_bytes()).unwrap();
    }
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    let sql = format!(
        "SELECT COUNT(*) AS n, SUM(age) AS total FROM '{}'",
        path.display()
    );
    let rows = run_csv(&["sql", "-w", &wh_arg(), &sql]);
    assert_eq!(rows[1], ["1000".to_string(), expected.to_string()]);
}

/// Errors a person reads: no Rust debug prints, no DataFusion category prefixes, a
/// negative number taken as a flag's (refused) value.
#[test]
fn errors_are_in_plain_words() {
    let w = wh_arg();
    let dir = tempfile::tempdir().unwrap();
    let not_gzip = dir.path().join("not-gzip.csv.gz");
    std::fs::write(&not_gzip, "a,b\n1,2\n").unwrap();
    let not_gzip_sql = format!("SELECT * FROM '{}'", not_gzip.display());
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/top_pairs.sql");
    let queries = queries.to_str().unwrap();
    for (args, says) in [
        (
            vec!["sql", "-w", &w, &not_gzip_sql],
            "not-gzip.csv.gz: cannot be decompressed as its name says",
        ),
        (
            vec!["cohort", "-w", &w, "--cohort", queries],
            "a cohort query returns image_index",
        ),
        (
            vec!["sql", "-w", &w, "SELEC 1"],
            "the SQL does not parse: Expected: an SQL statement, found: SELEC",
        ),
        (
            vec![
                "sql",
                "-w",
                &w,
                "SELECT COUNT(*) FILTER (WHERE image_index IN (SELECT image_index FROM findings)) FROM images",
            ],
            "not supported: Physical plan does not support logical expression InSubquery",
        ),
        (
            vec!["cohort", "-w", &w, "--where", "age >"],
            "--where `age >`: the SQL does not parse",
        ),
        (
            vec!["sql", "-w", &w, "SELECT 1 FROM 'nosuch.csv'"],
            "nosuch.csv: no such file",
        ),
        (
            vec!["followup", "-w", &w, "--min-studies", "-1"],
            "invalid value '-1' for '--min-studies <N>'",
        ),
    ] {
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        for internal in [
            "ParserError(",
            " { ",
            "Error during planning",
            "This feature",
        ] {
            assert!(!err.contains(internal), "{args:?}: {err}");
        }
    }
}

/// A value a CSV read in SQL cannot take is named by its file, line and column
/// (DataFusion's reader named no file, and counted lines from the start of the part
/// of the file one thread read: line 49073 for a value on line 100002).
#[test]
fn a_csv_value_of_the_wrong_type_is_named_by_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late.csv");
    let mut text = String::from("a,b\n");
    for i in 0..100_000 {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("5,notanumber\n");
    std::fs::write(&late, text).unwrap();
    let out = run(&[
        "sql",
        "-w",
        &wh_arg(),
        &format!("SELECT sum(b) FROM '{}'", late.display()),
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    // The header is line 1: the 100,001st record is on line 100,002.
    assert!(
        stderr(&out).contains(&format!(
            "{}, line 100002, column 2 (`b`): 'notanumber' is not a value of type Int64",
            late.display()
        )),
        "{}",
        stderr(&out)
    );
}

/// Integer `+`, `-` and `*` fail on overflow, as PostgreSQL's do, where DataFusion's
/// wrapped around: the cube of a SMALLINT age (95³ = 857,375) was 5,407. A wider
/// type gives the value, computed here from the CSV.
#[test]
fn integer_overflow_is_an_error_not_a_wrapped_number() {
    let w = wh_arg();
    // Ages over 120 are NULL in the warehouse (data_issues rows).
    let oldest = nih_csv()
        .iter()
        .map(|i| i.age)
        .filter(|&a| a <= 120)
        .max()
        .unwrap();
    assert!(oldest.pow(3) > i64::from(i16::MAX), "{oldest}");
    for (sql, says) in [
        (
            "SELECT max(age * age * age) FROM images",
            "out of range for smallint",
        ),
        ("SELECT 9223372036854775807 + 1", "out of range for bigint"),
        ("SELECT -9223372036854775807 - 2", "out of range for bigint"),
        // Unary minus of the smallest value of a type.
        (
            "SELECT -x FROM (VALUES (CAST(-32768 AS SMALLINT))) t(x)",
            "32768 is out of range for smallint",
        ),
        (
            "SELECT -x FROM (VALUES (CAST(-9223372036854775807 AS BIGINT) - 1)) t(x)",
            "out of range for bigint",
        ),
        // Sums of bigints leaving bigint's range: over all rows, per group, distinct,
        // and in a sliding window frame (rows 1 and 2).
        (
            "SELECT sum(CAST(age AS BIGINT) * 1000000000000000) FROM images",
            "sum is out of range for bigint",
        ),
        (
            "SELECT sex, sum(CAST(age AS BIGINT) * 1000000000000000) FROM images GROUP BY sex",
            "sum is out of range for bigint",
        ),
        (
            "SELECT sum(DISTINCT x) FROM (VALUES (9223372036854775807), (1), (1)) t(x)",
            "sum is out of range for bigint",
        ),
        (
            "SELECT o, sum(x) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
             FROM (VALUES (1, 9223372036854775807), (2, 1), (3, -5)) t(o, x)",
            "sum is out of range for bigint",
        ),
        (
            "SELECT o, sum(DISTINCT x) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) \
             FROM (VALUES (1, 9223372036854775807), (2, 1), (3, -5)) t(o, x)",
            "sum is out of range for bigint",
        ),
    ] {
        let out = run(&["sql", "-w", &w, sql]);
        assert_eq!(code(&out), Some(2), "{sql}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{sql}: {}", stderr(&out));
    }
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT max(CAST(age AS INT) * age * age) AS cubed, \
         max(CAST(age AS BIGINT) * 100000000000000) AS big, max(age - 1) AS before FROM images",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "cubed,big,before\n{},{},{}\n",
            oldest.pow(3),
            oldest * 100_000_000_000_000,
            oldest - 1
        )
    ); // A sum whose rows' values fit and whose total fits is the total; a window
    // frame's sum is its rows' even where an earlier frame's was out of range.
    let ages: i64 = nih_csv().iter().map(|i| i.age).filter(|&a| a <= 120).sum();
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT sum(CAST(age AS BIGINT) * 1000000000000) AS total, -min(age) AS negated FROM images",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let youngest = nih_csv().iter().map(|i| i.age).min().unwrap();
    assert_eq!(
        stdout(&out),
        format!(
            "total,negated\n{},{}\n",
            ages * 1_000_000_000_000,
            -youngest
        )
    );
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT o, sum(x) OVER (ORDER BY o ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS s \
         FROM (VALUES (1, 9223372036854775807), (2, -9), (3, 5)) t(o, x) ORDER BY o",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "o,s\n1,9223372036854775798\n2,-4\n3,5\n");
    // A distinct sum in a sliding frame counts a value once while any copy is in it.
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT o, sum(DISTINCT x) OVER (ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s \
         FROM (VALUES (1, 5), (2, 5), (3, 7), (4, -2), (5, NULL), (6, NULL)) t(o, x) ORDER BY o",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "o,s\n1,5\n2,5\n3,12\n4,5\n5,-2\n6,\n");
}

/// `^` is a power, as in PostgreSQL (and through `cxr serve`), not a bitwise XOR:
/// the ages whose square passes 3000 are those from 55 on (54² = 2916, 55² = 3025),
/// counted from the CSV.
#[test]
fn a_caret_is_a_power_as_in_postgresql() {
    let wh = wh2020();
    assert_eq!(rows(&wh, "SELECT 2 ^ 10 AS p"), [["1024.0"]]);
    // Ages over 120 are NULL in `images`.
    let from_55 = nih_csv()
        .iter()
        .filter(|i| (55..=120).contains(&i.age))
        .count() as i64;
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM images WHERE age ^ 2 > 3000"),
        from_55
    );
}

/// A CSV file named in a query is read whole, as pandas reads it: a column empty in
/// its first records (DataFusion typed it Null from the first 1,000 and read every
/// later value as NULL), quoted fields holding line breaks (read in byte ranges that
/// began inside a record), and a JSON array cxr wrote (refused past a few MB).
#[test]
fn files_named_in_a_query_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let w = wh_arg();
    let query = |sql: String| run_csv(&["sql", "-w", &w, &sql]);
    // b is empty on lines 2..=1501 and i on the 3,500 lines after; c always empty.
    let late = dir.path().join("late.csv");
    let mut text = String::from("a,b,c\n");
    let (mut count, mut sum) = (0, 0i64);
    for i in 1..=5000i64 {
        if i > 1500 {
            text.push_str(&format!("{i},{i},\n"));
            count += 1;
            sum += i;
        } else {
            text.push_str(&format!("{i},,\n"));
        }
    }
    std::fs::write(&late, text).unwrap();
    let rows = query(format!(
        "SELECT count(b), sum(b), count(c) FROM '{}'",
        late.display()
    ));
    assert_eq!(rows[1], [count.to_string(), sum.to_string(), "0".into()]);
    // 600 records whose second field holds a line break, as `--out x.csv` writes them.
    let broken = dir.path().join("lines.csv");
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT value AS id, concat('line one', chr(10), 'line two') AS txt FROM generate_series(1, 600)",
        "--out",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let rows = query(format!(
        "SELECT count(*), sum(id), max(length(txt)) FROM '{}'",
        broken.display()
    ));
    assert_eq!(rows[1], ["600", &(600 * 601 / 2).to_string(), "17"]);
    // 50,000 rows of a JSON array.
    let json = dir.path().join("rows.json");
    let out = run(&[
        "sql",
        "-w",
        &w,
        "SELECT image_index, patient_id FROM images ORDER BY image_index LIMIT 50000",
        "--out",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut first: Vec<_> = nih_csv()
        .into_iter()
        .map(|i| (i.index, i.patient))
        .collect();
    first.sort();
    let patients: i64 = first[..50000].iter().map(|(_, p)| p).sum();
    let rows = query(format!(
        "SELECT count(*), sum(patient_id) FROM '{}'",
        json.display()
    ));
    assert_eq!(rows[1], ["50000".to_string(), patients.to_string()]);
}

/// A CSV file named in a query whose records do not line up is refused at the line
/// where the damage starts, naming the file (DataFusion counted lines within byte
/// ranges, and an unclosed quote made the rest of the file one field).
#[test]
fn damaged_csv_files_in_a_query_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let w = wh_arg();
    let mut ragged = String::from("a,b,c\n");
    for i in 2..=200_000 {
        ragged.push_str(if i == 150_000 { "1,x\n" } else { "1,x,y\n" });
    }
    let cases = [
        ("ragged.csv", ragged, 150_000),
        // The header has a trailing comma: four fields, CRLF line ends.
        ("crlf.csv", "a,b,c,\r\n1,2,3\r\n".to_string(), 2),
        ("open.csv", "a,b\n1,\"14 inch\n2,y\n3,z\n".to_string(), 2),
        (
            "closed-late.csv",
            "a,b\n1,\"xy\n2,y\n3,\"z\"\n4,w\n".to_string(),
            4,
        ),
    ];
    for (name, text, line) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = run(&[
            "sql",
            "-w",
            &w,
            &format!("SELECT count(*) FROM '{}'", path.display()),
        ]);
        assert_eq!(code(&out), Some(2), "{name}: {}", stderr(&out));
        let expected = format!("{}, line {line}", path.display());
        assert!(stderr(&out).contains(&expected), "{name}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{name}");
    }
}

/// Text cast to an array, or beside `@>`, is read as PostgreSQL reads an array
/// literal (DataFusion made the whole text one element, or refused the operator).
#[test]
fn array_literals_read_as_in_postgresql() {
    let w = wh_arg();
    let rows = run_csv(&[
        "sql",
        "-w",
        &w,
        r#"SELECT cardinality(CAST('{a,"b,c",NULL}' AS TEXT[])) AS n, 'b,c' = ANY('{a,"b,c"}'::text[]) AS found, CAST(' { 1 , 2 } ' AS BIGINT[]) AS ints"#,
    ]);
    assert_eq!(rows[1], ["3", "true", "[1, 2]"]);
    // Unnamed, each keeps a column of its own (the list in place of the cast had
    // lost the column's name: "no column `)`").
    let rows = run_csv(&[
        "sql",
        "-w",
        &w,
        "SELECT '{true,f}'::bool[], '{{1,2},{3,4}}'::int[][]",
    ]);
    assert_eq!(rows[1], ["[true, false]", "[[1, 2], [3, 4]]"]);
    let expected = nih_csv()
        .iter()
        .filter(|i| i.labels.contains("Effusion") && i.labels.contains("Mass"))
        .count();
    let rows = run_csv(&[
        "sql",
        "-w",
        &w,
        "SELECT count(*) FROM images WHERE labels @> '{Effusion,Mass}'",
    ]);
    assert_eq!(rows[1], [expected.to_string()]);
    // An untyped text as the array of ANY or ALL, as PostgreSQL reads it.
    let pa = nih_csv().iter().filter(|i| i.view == "PA").count();
    let rows = run_csv(&[
        "sql",
        "-w",
        &w,
        "SELECT count(*) FILTER (WHERE view_position = ANY('{PA,\"X, Y\"}')), \
         count(*) FILTER (WHERE view_position <> ALL('{PA}')) FROM images",
    ]);
    assert_eq!(
        rows[1],
        [pa.to_string(), (nih_csv().len() - pa).to_string()]
    );
    let out = run(&["sql", "-w", &w, "SELECT CAST('a,b' AS TEXT[])"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("malformed array literal"),
        "{}",
        stderr(&out)
    );
}
