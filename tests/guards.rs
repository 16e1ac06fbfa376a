//! Guards on outputs and flags, through the binary on tiny warehouses: `--overwrite`
//! replaces only what cxr exported, flags that would do nothing are refused, bad paths
//! are exit 2. Every check is an exit code plus the files' state afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const ONLY_EXPORTED: &str = "--overwrite replaces only a folder that cxr exported";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An empty folder `dir/<name>` (created).
fn empty_dir(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// No temporary file of an atomic write is left in `dir`.
fn assert_no_temp_files(dir: &Path) {
    for n in names(dir) {
        assert!(
            !n.ends_with(".tmp") && !n.contains(".tmp."),
            "{n} left in {}",
            dir.display()
        );
    }
}

/// The table names the warehouse manifest lists, read with serde_json.
fn manifest_tables(wh: &Path) -> serde_json::Map<String, serde_json::Value> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("manifest.json")).unwrap()).unwrap();
    m["tables"].as_object().unwrap().clone()
}

fn assert_refused(out: &Output, what: &str, needle: &str) {
    assert_eq!(code(out), Some(2), "{what}: {}", stderr(out));
    assert!(stderr(out).contains(needle), "{what}: {}", stderr(out));
}

/// The `--overwrite` rule for one kind of folder export: `export(dir, overwrite)`
/// runs it into `dir`. Checks a user's folder, an earlier export, a user's file in an
/// earlier export and a symbolic link, all below `root`.
fn overwrite_rule(root: &Path, export: &dyn Fn(&Path, bool) -> Output) {
    // A user's folder is never replaced.
    let user = empty_dir(root, "user");
    std::fs::write(user.join("notes.txt"), b"my notes").unwrap();
    let out = export(&user, true);
    assert_refused(&out, "user folder", ONLY_EXPORTED);
    assert_eq!(names(&user), ["notes.txt"]);
    assert_eq!(std::fs::read(user.join("notes.txt")).unwrap(), b"my notes");

    // A new export has the marker; it is not replaced without --overwrite.
    let ex = root.join("ex");
    let out = export(&ex, false);
    assert!(out.status.success(), "first export: {}", stderr(&out));
    assert!(ex.join(".cxr-export").is_file(), "{:?}", names(&ex));
    let before = snapshot(&ex);
    let out = export(&ex, false);
    assert_refused(&out, "export again without --overwrite", "--overwrite");
    assert_eq!(snapshot(&ex), before);

    // With --overwrite it is replaced whole.
    let out = export(&ex, true);
    assert!(out.status.success(), "overwrite: {}", stderr(&out));
    assert!(ex.join(".cxr-export").is_file(), "{:?}", names(&ex));

    // A user's file put into the export makes it theirs: refused, the file kept;
    // also a Parquet file or a folder of them, which cxr could have written.
    for (added, bytes) in [
        ("notes.txt", &b"added later"[..]),
        ("mine.parquet", b"my own parquet"),
        ("more/part-9.parquet", b"my own parquet"),
    ] {
        let path = ex.join(added);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let before = snapshot(&ex);
        let out = export(&ex, true);
        assert_refused(&out, added, ONLY_EXPORTED);
        assert_eq!(snapshot(&ex), before, "{added}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_file(&path).unwrap();
    }
    let _ = std::fs::remove_dir(ex.join("more"));

    // A symbolic link to an export is refused; the folder it points to is untouched.
    let target = root.join("target");
    let out = export(&target, false);
    assert!(out.status.success(), "target export: {}", stderr(&out));
    let link = root.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = snapshot(&target);
    let out = export(&link, true);
    assert_refused(&out, "symbolic link", "symbolic link");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(snapshot(&target), before);

    assert_no_temp_files(root);
}

fn export_tables(w: &str, dir: &Path, overwrite: bool) -> Output {
    let mut args = vec!["export", "-w", w, "--tables", s(dir)];
    if overwrite {
        args.push("--overwrite");
    }
    run(&args)
}

#[test]
fn tables_overwrite_replaces_only_a_cxr_export() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let root = empty_dir(dir.path(), "out");
    overwrite_rule(&root, &|d: &Path, o: bool| export_tables(w, d, o));

    // Another warehouse is not an export folder: refused as a warehouse, and it
    // still answers.
    let w2 = small_warehouse(dir.path(), 20, "w2");
    let before = snapshot(&w2);
    let out = export_tables(w, &w2, true);
    assert_refused(&out, "another warehouse", "is the warehouse");
    assert_eq!(snapshot(&w2), before);
    let n = run(&["sql", "-w", s(&w2), "SELECT COUNT(*) AS n FROM images"]);
    assert_eq!(code(&n), Some(0), "{}", stderr(&n));
    assert_eq!(stdout(&n), "n\n20\n");
}

#[test]
fn partitioned_export_overwrite_follows_the_same_rule() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let root = empty_dir(dir.path(), "out");
    let export = |d: &Path, overwrite: bool| {
        let mut args = vec!["export", "-w", w, "--partition-by", "sex", "--out", s(d)];
        if overwrite {
            args.push("--overwrite");
        }
        run(&args)
    };
    overwrite_rule(&root, &export);
    // What was exported is hive partitions by sex.
    assert!(
        names(&root.join("target"))
            .iter()
            .any(|n| n.starts_with("sex=")),
        "{:?}",
        names(&root.join("target"))
    );
}

/// `cxr inspect FILE`: (rows, codec) of every row group.
fn row_groups(file: &Path) -> Vec<(i64, String)> {
    let out = run(&["inspect", s(file)]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut groups = Vec::new();
    for line in stdout(&out).lines() {
        // "    0: 5 rows, 123 bytes compressed (SNAPPY)"
        let t = line.trim();
        let Some((idx, rest)) = t.split_once(": ") else {
            continue;
        };
        if idx.is_empty() || !idx.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Some((rows, _)) = rest.split_once(" rows, ") else {
            continue;
        };
        let codec = rest
            .rsplit_once('(')
            .map(|(_, c)| c.trim_end_matches(')').to_string())
            .unwrap_or_default();
        groups.push((rows.parse::<i64>().unwrap(), codec));
    }
    groups
}

#[test]
fn tables_export_honours_compression_and_row_group_size() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);

    // The default: ZSTD, and 20 rows in one row group.
    let plain = dir.path().join("plain");
    let out = export_tables(w, &plain, false);
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = row_groups(&plain.join("images.parquet"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0], (20, "ZSTD".to_string()));

    // snappy, and row groups of at most 5 rows.
    let small = dir.path().join("small");
    let out = run(&[
        "export",
        "-w",
        w,
        "--tables",
        s(&small),
        "--compression",
        "snappy",
        "--row-group-size",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = row_groups(&small.join("images.parquet"));
    assert!(groups.len() > 1, "{groups:?}");
    assert!(groups.iter().all(|(n, _)| *n <= 5), "{groups:?}");
    assert_eq!(groups.iter().map(|(n, _)| n).sum::<i64>(), 20, "{groups:?}");
    assert!(groups.iter().all(|(_, c)| c == "SNAPPY"), "{groups:?}");
}

#[test]
fn flags_that_would_do_nothing_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let cwd = empty_dir(dir.path(), "cwd");
    // (arguments, what the message names); all but `run` and `ingest` get `-w W`.
    let cases = [
        ("export --max-rows 5 --out x.parquet", "--max-rows"),
        ("plot labels --max-rows 5 --out p.svg", "--max-rows"),
        ("split --check --names a,b,c", "--check"),
        ("split --check --fractions 0.5,0.5", "--check"),
        ("split --official --names a,b,c", "--names"),
        ("followup --first-study", "--first-study"),
        ("run --list --max-rows 3", "--max-rows"),
        ("run --list -o x.csv", "--out"),
        ("cohort --show-sql --out x.csv", "--show-sql"),
        ("sql --format csv --max-rows 1 SELECT-1", "--max-rows"),
        ("cohort --max-rows 3 --out x.csv", "--max-rows"),
        ("plot labels --free-scales --out p.svg", "--free-scales"),
        (
            "agree --a nih_2020 --b nih_2017 --source nih_2020",
            "--source",
        ),
        ("ingest --label-map map.csv -w wh2", "--dataset"),
    ];
    let before = snapshot(&wh);
    for (line, needle) in cases {
        let mut args: Vec<&str> = line.split(' ').collect();
        if !matches!(args[0], "run" | "ingest") {
            args.extend(["-w", w]);
        }
        let out = cxr().current_dir(&cwd).args(&args).output().unwrap();
        assert_refused(&out, line, needle);
        assert!(names(&cwd).is_empty(), "{line} wrote {:?}", names(&cwd));
    }
    assert_eq!(snapshot(&wh), before);

    // A font that is named must be there.
    let out = cxr()
        .current_dir(&cwd)
        .env("CXR_FONT", "/nonexistent.ttf")
        .args(["plot", "labels", "-w", w, "--out", "p.svg"])
        .output()
        .unwrap();
    assert_refused(&out, "CXR_FONT", "CXR_FONT");
    assert!(!cwd.join("p.svg").exists());
    assert!(names(&cwd).is_empty(), "{:?}", names(&cwd));
    // A device named as the font is refused, not read until memory runs out; a file
    // that is no font is named.
    let not_a_font = dir.path().join("notes.txt");
    std::fs::write(&not_a_font, "plain text").unwrap();
    for (font, needle) in [
        ("/dev/zero", "CXR_FONT=/dev/zero: not a regular file"),
        (s(&not_a_font), "not a valid TrueType font"),
    ] {
        let out = cxr()
            .current_dir(&cwd)
            .env("CXR_FONT", font)
            .args(["plot", "labels", "-w", w, "--out", "p.png"])
            .output()
            .unwrap();
        assert_refused(&out, font, needle);
        assert!(stderr(&out).contains(font), "{}", stderr(&out));
        assert!(names(&cwd).is_empty(), "{:?}", names(&cwd));
    }
}

#[test]
fn export_show_sql_needs_no_out() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let cwd = empty_dir(dir.path(), "cwd");
    let out = cxr()
        .current_dir(&cwd)
        .args(["export", "-w", s(&wh), "--show-sql"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let sql = stdout(&out);
    let head = sql.trim_start();
    assert!(
        head.starts_with("WITH") || head.starts_with("SELECT"),
        "{sql}"
    );
    assert!(
        sql.contains("SELECT") && sql.contains("image_index"),
        "{sql}"
    );
    assert!(sql.trim_end().ends_with(';'), "{sql}");
    assert!(names(&cwd).is_empty(), "{:?}", names(&cwd));
}

/// An output no file can be made at (a name longer than the file system takes, a
/// folder of /proc) is refused before the work: `split` commits nothing, and every
/// command says so with exit 2, naming the path given.
#[test]
fn an_output_that_cannot_be_made_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let long = dir.path().join(format!("{}.parquet", "y".repeat(260)));
    for out in [s(&long), "/proc/self/x.parquet"] {
        let done = run(&[
            "split",
            "-w",
            w,
            "--seed",
            "1",
            "--fractions",
            "0.5,0.5",
            "--out",
            out,
        ]);
        assert_eq!(code(&done), Some(2), "{out}: {}", stderr(&done));
        assert!(stderr(&done).contains(out), "{}", stderr(&done));
        assert!(!manifest_tables(&wh).contains_key("splits"), "{out}");
    }
    for args in [
        &["plot", "labels", "--out", "/proc/self/x.png"][..],
        &["export", "--out", "/proc/self/xdir"][..],
        &["cohort", "--out", "/proc/self/x.csv"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["-w", w]);
        let done = run(&a);
        assert_eq!(code(&done), Some(2), "{args:?}: {}", stderr(&done));
        assert!(
            stderr(&done).contains(args[args.len() - 1]),
            "{args:?}: {}",
            stderr(&done)
        );
    }
}

#[test]
fn split_out_that_is_not_parquet_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let csv = dir.path().join("s.csv");
    let out = run(&["split", "-w", w, "--seed", "1", "--out", s(&csv)]);
    assert_refused(&out, "split --out s.csv", ".parquet");
    assert!(!csv.exists());
    assert!(!manifest_tables(&wh).contains_key("splits"));
    let q = run(&["sql", "-w", w, "SELECT COUNT(*) FROM splits"]);
    assert_eq!(code(&q), Some(2), "{}", stderr(&q));

    // The same split with a .parquet name is committed (10 patients).
    let pq = dir.path().join("s.parquet");
    let out = run(&[
        "split",
        "-w",
        w,
        "--seed",
        "1",
        "--fractions",
        "0.5,0.5",
        "--names",
        "a,b",
        "--out",
        s(&pq),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(pq.is_file());
    assert_eq!(manifest_tables(&wh)["splits"].as_i64(), Some(10));
}

#[test]
fn bad_paths_are_exit_2_and_leave_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let meta = dir.path().join("meta.csv");
    let m = s(&meta);
    let root = empty_dir(dir.path(), "root");

    // --out onto an existing directory: it stays, empty, with no temporary beside it.
    let d = empty_dir(&root, "d.csv");
    let out = run(&["cohort", "-w", s(&wh), "--out", s(&d)]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(d.is_dir() && names(&d).is_empty(), "{:?}", names(&d));
    assert_eq!(names(&root), ["d.csv"]);
    assert_no_temp_files(&root);

    // A regular file as the warehouse of a query.
    let file = root.join("file.txt");
    std::fs::write(&file, b"not a warehouse").unwrap();
    let out = run(&["sql", "-w", s(&file), "SELECT 1"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a warehouse");

    // A directory as the box CSV: named, nothing written.
    let bbox = empty_dir(&root, "bboxdir");
    let wh3 = root.join("wh3");
    let mut args = ingest_args(m, s(&wh3));
    args.retain(|a| *a != "--no-bbox");
    args.extend(["--bbox", s(&bbox)]);
    let out = run(&args);
    assert_refused(&out, "--bbox DIR", "bboxdir");
    assert!(!wh3.exists());
    assert!(bbox.is_dir() && names(&bbox).is_empty());

    // A missing folder of full-size PNGs.
    let tar = root.join("x.tar");
    let out = run(&[
        "synth",
        "sample",
        "--from",
        "/nonexistent",
        "--out",
        s(&tar),
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(!tar.exists());

    // A warehouse below a regular file.
    let notes = root.join("notes.txt");
    std::fs::write(&notes, b"keep me").unwrap();
    let below = notes.join("wh");
    let out = run(&ingest_args(m, s(&below)));
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(notes.is_file());
    assert_eq!(std::fs::read(&notes).unwrap(), b"keep me");

    assert_eq!(names(&root), ["bboxdir", "d.csv", "file.txt", "notes.txt"]);
    assert_no_temp_files(&root);
}

#[test]
fn copy_into_the_warehouse_by_other_spellings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let cwd = empty_dir(dir.path(), "cwd");
    let before = snapshot(&wh);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("manifest.json")).unwrap()).unwrap();
    let version = manifest["data"].as_str().unwrap();
    for sql in [
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{w}/{version}/images.parquet'"),
        format!("COPY (SELECT 1 AS a) TO 'file:{w}/x.parquet'"),
        format!("COPY (SELECT 1 AS a) TO '{w}/nosuch/../x.parquet'"),
        // Wrapped: EXPLAIN ANALYZE runs the COPY, over a table file or the manifest.
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{w}/x.parquet'"),
        format!("EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{w}/manifest.json' STORED AS CSV"),
        format!("EXPLAIN COPY (SELECT 1 AS a) TO '{w}/x.parquet'"),
    ] {
        let out = cxr()
            .current_dir(&cwd)
            .args(["sql", "-w", w, "--allow-write", sql.as_str()])
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(2), "{sql}: {}", stderr(&out));
        assert!(!wh.join("x.parquet").exists(), "{sql}");
        assert!(!wh.join("nosuch").exists(), "{sql}");
        assert_eq!(snapshot(&wh), before, "{sql}");
        assert!(names(&cwd).is_empty(), "{sql}: {:?}", names(&cwd));
    }
    // The same statement to a path outside the warehouse writes the file.
    let ok = dir.path().join("ok.parquet");
    let sql = format!("COPY (SELECT 1 AS a) TO '{}'", ok.display());
    let out = run(&["sql", "-w", w, "--allow-write", &sql]);
    assert_eq!(code(&out), Some(0), "{sql}: {}", stderr(&out));
    assert!(ok.is_file(), "{sql}");
    assert_eq!(snapshot(&wh), before);
}

/// Another warehouse's own folder, named or through a symbolic link, is no place for
/// `COPY ... TO` or an external table's `LOCATION`: both would write files into it.
#[test]
fn copy_into_another_warehouse_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let other = small_warehouse(dir.path(), 20, "other");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&other, &link).unwrap();
    let before = snapshot(&other);
    for target in [s(&other), s(&link)] {
        for sql in [
            format!("COPY (SELECT 1 AS a) TO '{target}' STORED AS PARQUET"),
            format!(
                "CREATE EXTERNAL TABLE t (a INT) STORED AS PARQUET LOCATION '{target}/'; INSERT INTO t VALUES (1)"
            ),
        ] {
            let out = run(&["sql", "-w", s(&wh), "--allow-write", &sql]);
            assert_refused(&out, &sql, "is the warehouse");
            assert_eq!(snapshot(&other), before, "{sql}");
        }
    }
}

/// A file output replaces only a regular file: a FIFO, a device node or a symbolic
/// link at the path is refused (exit 2) and left as it was, for every command that
/// writes a file; an export over an existing file needs --overwrite.
#[test]
fn outputs_replace_only_regular_files() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = s(&wh);
    let fifo = dir.path().join("fifo.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo_tar = dir.path().join("fifo.tar");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo_tar)
        .status()
        .unwrap();
    assert!(made.success());
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.path().join("link.svg");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let link_parquet = dir.path().join("link.parquet");
    std::os::unix::fs::symlink(&target, &link_parquet).unwrap();
    let link_csv = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link_csv).unwrap();
    let fifo_s = s(&fifo);
    let link_s = s(&link);
    let cases: Vec<Vec<&str>> = vec![
        vec!["sql", "-w", w, "--out", fifo_s, "SELECT 1 AS a"],
        vec!["sql", "-w", w, "--out", s(&link_csv), "SELECT 1 AS a"],
        vec!["plot", "age", "-w", w, "--out", link_s],
        vec!["synth", "images", "--count", "2", "--out", s(&fifo_tar)],
        vec!["export", "-w", w, "--out", s(&link_parquet), "--overwrite"],
        vec![
            "sql",
            "-w",
            w,
            "--allow-write",
            "COPY (SELECT 1 AS a) TO '/dev/null' STORED AS CSV",
        ],
    ];
    let copy_to_fifo = format!("COPY (SELECT 1 AS a) TO '{fifo_s}' STORED AS CSV");
    let mut cases = cases;
    cases.push(vec!["sql", "-w", w, "--allow-write", copy_to_fifo.as_str()]);
    for args in &cases {
        let out = run(args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a"), "{args:?}: {}", stderr(&out));
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(&link_parquet)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(&link_csv)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // An existing export file is replaced only with --overwrite.
    let pa = dir.path().join("pa.parquet");
    let first = run(&["export", "-w", w, "--out", s(&pa), "--view", "PA"]);
    assert_eq!(code(&first), Some(0), "{}", stderr(&first));
    let before = std::fs::read(&pa).unwrap();
    let again = run(&["export", "-w", w, "--out", s(&pa)]);
    assert_eq!(code(&again), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("--overwrite"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&pa).unwrap(), before);
    let replaced = run(&["export", "-w", w, "--out", s(&pa), "--overwrite"]);
    assert_eq!(code(&replaced), Some(0), "{}", stderr(&replaced));
    assert_ne!(std::fs::read(&pa).unwrap(), before);
}

/// A `COPY ... TO` that fails midway leaves the file that was there (it wrote part of
/// its rows over it), and writer options the Parquet writer would panic or loop on
/// are refused before anything is written. The division fails at the first image of
/// follow-up 150 (the CSV has some), after thousands of rows.
#[test]
fn a_failed_copy_leaves_the_file_there_and_bad_writer_options_are_refused() {
    assert!(nih_csv().iter().any(|i| i.follow_up == 150));
    let dir = tempfile::tempdir().unwrap();
    let wh = wh2020();
    let w = s(&wh);
    let out_dir = empty_dir(dir.path(), "out");
    let previous = out_dir.join("prev.csv");
    std::fs::write(&previous, "good\n1\n").unwrap();
    let sql = format!(
        "COPY (SELECT image_index, 100 / (CAST(follow_up AS INT) - 150) AS x FROM images) TO '{}'",
        previous.display()
    );
    let out = run(&["sql", "-w", w, "--allow-write", &sql]);
    assert_refused(&out, &sql, "ivide by zero");
    assert_eq!(std::fs::read_to_string(&previous).unwrap(), "good\n1\n");
    assert_eq!(names(&out_dir), ["prev.csv"]);
    // A COPY that succeeds replaces it whole.
    let sql = format!(
        "COPY (SELECT image_index FROM images WHERE follow_up = 150) TO '{}'",
        previous.display()
    );
    let out = run(&["sql", "-w", w, "--allow-write", &sql]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let rows = std::fs::read_to_string(&previous).unwrap().lines().count();
    let at_150 = nih_csv().iter().filter(|i| i.follow_up == 150).count();
    assert_eq!(rows, at_150 + 1, "a header and a row per image");
    assert_eq!(names(&out_dir), ["prev.csv"]);
    // What an interrupted COPY left (its process gone, unchanged for a minute) is
    // removed by the next write of the same file; a live process's is kept.
    let dead_pid = 4_194_304 + 1; // above Linux's largest pid
    let left = out_dir.join(format!(".prev.csv.{dead_pid}-0-1f.tmp.csv"));
    let live = out_dir.join(format!(".prev.csv.{}-0-1f.tmp.csv", std::process::id()));
    for file in [&left, &live] {
        let f = std::fs::File::create(file).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(120))
            .unwrap();
    }
    let out = run(&["sql", "-w", w, "--allow-write", &sql]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(!left.exists() && live.exists());
    std::fs::remove_file(&live).unwrap();
    assert_eq!(names(&out_dir), ["prev.csv"]);
    let target = out_dir.join("x.parquet");
    for (sql, says) in [
        (
            format!(
                "COPY (SELECT image_index FROM images) TO '{}' OPTIONS ('format.max_row_group_size' '0')",
                target.display()
            ),
            "at least 1",
        ),
        (
            format!(
                "COPY (SELECT image_index FROM images LIMIT 10) TO '{}' OPTIONS ('format.data_page_row_count_limit' '0')",
                target.display()
            ),
            "at least 1",
        ),
        (
            format!(
                "COPY (SELECT image_index, age FROM images) TO '{}' OPTIONS ('format.encoding' 'delta_binary_packed')",
                target.display()
            ),
            "not an encoding of column `image_index`",
        ),
        (
            "SET datafusion.execution.parquet.max_row_group_size = 0".to_string(),
            "at least 1",
        ),
    ] {
        let out = run(&["sql", "-w", w, "--allow-write", &sql]);
        assert_refused(&out, &sql, says);
        assert_eq!(names(&out_dir), ["prev.csv"], "{sql}");
    }
}

/// Paths holding a character DataFusion reads as a wildcard (`[`, `?`, `*`) are
/// names: a warehouse in such a folder reads back, a file of such a name is the
/// table a query names, and a COPY writes the file it names (DataFusion took
/// `[1]` for a pattern: the warehouse read nothing, the COPY wrote a file of a
/// random name into a folder it made).
#[test]
fn paths_with_wildcard_characters_are_names() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("a[1]?*");
    std::fs::create_dir(&folder).unwrap();
    let wh = small_warehouse(&folder, 4, "wh[2]");
    let w = s(&wh);
    let count = |table: &str| {
        run_csv(&[
            "sql",
            "-w",
            w,
            &format!("SELECT COUNT(*) AS n FROM {table}"),
        ])
    };
    assert_eq!(count("images"), [["n"], ["4"]]);
    let exported = folder.join("e[1].parquet");
    let out = run(&["export", "-w", w, "--out", s(&exported)]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(count(&format!("'{}'", exported.display())), [["n"], ["4"]]);
    let copied = folder.join("res[1].csv");
    let out = run(&[
        "sql",
        "-w",
        w,
        "--allow-write",
        &format!("COPY (SELECT 1 AS a) TO '{}'", copied.display()),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "a\n1\n");
    assert_eq!(
        names(&folder),
        ["e[1].parquet", "meta.csv", "res[1].csv", "wh[2]"]
    );
    assert_eq!(count(&format!("'{}'", copied.display())), [["n"], ["1"]]);
}
