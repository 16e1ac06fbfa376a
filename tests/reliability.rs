//! Never lose a byte, never run out of memory (issue 12): the real binary run as a
//! user would, against small warehouses built in temporary directories. Each test
//! asserts results known independently of cxr (row counts of the CSVs it wrote,
//! bytes of files it made) and exit codes.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Row count of a Parquet file or of every Parquet file below a folder, read with
/// the parquet crate (not through cxr's manifest).
fn parquet_rows(p: &Path) -> i64 {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    if p.is_dir() {
        return std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| parquet_rows(&e.path()))
            .sum();
    }
    if p.extension().is_none_or(|e| e != "parquet") {
        return 0;
    }
    let r = SerializedFileReader::new(std::fs::File::open(p).unwrap()).unwrap();
    r.metadata().file_metadata().num_rows()
}

/// Checks that every table the manifest names has the row count it records.
fn assert_manifest_agrees_with_files(wh: &Path) {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("manifest.json")).unwrap()).unwrap();
    let data = wh.join(m["data"].as_str().unwrap());
    for (table, n) in m["tables"].as_object().unwrap() {
        let file = data.join(format!("{table}.parquet"));
        let path = if file.exists() {
            file
        } else {
            data.join(table)
        };
        assert!(path.exists(), "{table}: {} missing", path.display());
        assert_eq!(
            parquet_rows(&path),
            n.as_i64().unwrap(),
            "{table} in {}",
            data.display()
        );
    }
}

// ---------- outputs kept out of the warehouse ----------

#[test]
fn outputs_inside_the_warehouse_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let w = wh.to_str().unwrap();
    let before = snapshot(&wh);
    let sub = wh.join("sub");
    let images = wh.join("images.parquet");
    let data_file = wh.join("x.csv");
    let cases: Vec<Vec<&str>> = vec![
        vec!["export", "-w", w, "--tables", w],
        vec!["export", "-w", w, "--tables", sub.to_str().unwrap()],
        vec!["export", "-w", w, "--out", images.to_str().unwrap()],
        vec![
            "sql",
            "-w",
            w,
            "--out",
            images.to_str().unwrap(),
            "SELECT 1 AS a",
        ],
        vec!["cohort", "-w", w, "--out", data_file.to_str().unwrap()],
    ];
    for args in cases {
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("warehouse"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(&wh), before, "{args:?} changed the warehouse");
    }
    // The warehouse still answers.
    let out = run(&["sql", "-w", w, "SELECT COUNT(*) AS n FROM images"]);
    assert_eq!(stdout(&out), "n\n20\n");
}

#[test]
fn a_foreign_manifest_directory_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    let foreign = dir.path().join("project");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(
        foreign.join("manifest.json"),
        br#"{"name": "webapp", "version": 3}"#,
    )
    .unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let before = snapshot(&foreign);
    let out = run(&ingest_args(
        meta.to_str().unwrap(),
        foreign.to_str().unwrap(),
    ));
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("not written by cxr"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&foreign), before);
}

#[test]
fn a_warehouse_path_through_dot_dot_works() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 6);
    std::fs::create_dir(dir.path().join("W")).unwrap();
    for _ in 0..2 {
        let out = cxr()
            .current_dir(dir.path())
            .args(ingest_args(meta.to_str().unwrap(), "./W/../W"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(&[
        "sql",
        "-w",
        dir.path().join("W").to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM images",
    ]);
    assert_eq!(stdout(&out), "n\n6\n");
    // Nothing but the warehouse and the input beside it.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["W", "meta.csv"]);
}

#[test]
fn a_read_only_warehouse_is_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 4, "wh");
    let before = snapshot(&wh);
    std::fs::set_permissions(&wh, std::fs::Permissions::from_mode(0o555)).unwrap();
    let meta = small_metadata(dir.path(), 8);
    let out = run(&ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap()));
    let root = unsafe { libc::geteuid() } == 0;
    std::fs::set_permissions(&wh, std::fs::Permissions::from_mode(0o755)).unwrap();
    if root {
        // Root ignores permission bits, so the ingest may succeed: what root can
        // observe is that the warehouse is whole either way.
        eprintln!("running as root: chmod 555 does not stop root; checking consistency only");
        assert_manifest_agrees_with_files(&wh);
    } else {
        assert_ne!(code(&out), Some(0), "{}", stderr(&out));
        assert_eq!(snapshot(&wh), before);
    }
}

// ---------- refused inputs ----------

/// A commit removes an old version's tables, not a file a user put in its folder.
#[test]
fn a_commit_keeps_the_files_a_user_put_in_a_version_folder() {
    let dir = tempfile::tempdir().unwrap();
    // 20 patients: the default split's 10 % is two of them (a split of none is
    // refused).
    let wh = small_warehouse(dir.path(), 40, "wh");
    let version = std::fs::read_dir(&wh)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("v-"))
        .unwrap()
        .path();
    std::fs::write(version.join("my-notes.txt"), "notes").unwrap();
    std::fs::create_dir(version.join("mine")).unwrap();
    std::fs::write(version.join("mine/r.csv"), "r").unwrap();
    // Parquet files of the user's, beside the tables and in a folder of theirs.
    std::fs::copy(
        version.join("images.parquet"),
        version.join("my_export.parquet"),
    )
    .unwrap();
    std::fs::copy(
        version.join("images.parquet"),
        version.join("mine/p.parquet"),
    )
    .unwrap();
    let out = run(&["split", "-w", wh.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(version.join("my-notes.txt")).unwrap(),
        "notes"
    );
    assert_eq!(
        std::fs::read_to_string(version.join("mine/r.csv")).unwrap(),
        "r"
    );
    for kept in ["my_export.parquet", "mine/p.parquet"] {
        assert!(version.join(kept).is_file(), "{kept} removed");
    }
    // The old version's tables are gone; the new version reads.
    assert!(!version.join("images.parquet").exists());
    let out = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM images",
    ]);
    assert_eq!(stdout(&out), "n\n40\n");
}

#[test]
fn cr_only_and_duplicate_header_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    // CR-only line endings (classic Mac): the rows are read, not lost.
    let rows = [
        "00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1",
        "00000001_001.png,No Finding,1,1,58,M,PA,1,1,0.1,0.1",
        "00000002_000.png,Effusion,0,2,40,F,AP,1,1,0.1,0.1",
    ];
    let cr = format!("{HEADER}\r{}\r", rows.join("\r"));
    let p = dir.path().join("cr.csv");
    std::fs::write(&p, cr).unwrap();
    let out = run(&ingest_args(p.to_str().unwrap(), wh.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n, COUNT(DISTINCT patient_id) AS p FROM images",
    ]);
    assert_eq!(stdout(&out), "n,p\n3,2\n");
    // One CR-only line among LF (and CRLF) ones ends its record too: every image
    // is read, as pandas reads the file.
    for (name, text) in [
        (
            "mixed.csv",
            format!("{HEADER}\n{}\n{}\r{}\n", rows[0], rows[1], rows[2]),
        ),
        (
            "mixed-crlf.csv",
            format!("{HEADER}\r\n{}\r\n{}\r{}\r\n", rows[0], rows[1], rows[2]),
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let mixed = dir.path().join(format!("wh-{name}"));
        let out = run(&ingest_args(p.to_str().unwrap(), mixed.to_str().unwrap()));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let out = run(&[
            "sql",
            "-w",
            mixed.to_str().unwrap(),
            "SELECT image_index FROM images ORDER BY image_index",
        ]);
        assert_eq!(
            stdout(&out),
            "image_index\n00000001_000.png\n00000001_001.png\n00000002_000.png\n",
            "{name}"
        );
    }
    let before = snapshot(&wh);

    // `Image Index` twice: refused, naming the column; nothing written.
    let dup =
        format!("Image Index,{HEADER}\nx.png,00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n");
    let p = dir.path().join("dup.csv");
    std::fs::write(&p, dup).unwrap();
    let out = run(&ingest_args(p.to_str().unwrap(), wh.to_str().unwrap()));
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dup.csv") && stderr(&out).contains("Image Index"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&wh), before);
}

#[test]
fn random_bytes_or_corrupt_archives_as_images_are_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let tar = dir.path().join("random.tar");
    std::fs::write(&tar, &random).unwrap();
    // A gzip header followed by garbage.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&random[..5000]);
    let tgz = dir.path().join("corrupt.tar.gz");
    std::fs::write(&tgz, &gz).unwrap();
    // A valid gzip of something that is not a tar.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&random[..4000]).unwrap();
    let notar = dir.path().join("notar.tgz");
    std::fs::write(&notar, enc.finish().unwrap()).unwrap();
    for bad in [&tar, &tgz, &notar] {
        let wh = dir.path().join("wh");
        let out = run(&[
            "ingest",
            "--metadata",
            meta.to_str().unwrap(),
            "--no-bbox",
            "--no-expert",
            "--no-splits",
            "--images",
            bad.to_str().unwrap(),
            "--warehouse",
            wh.to_str().unwrap(),
        ]);
        let err = stderr(&out);
        assert_eq!(code(&out), Some(2), "{}: {err}", bad.display());
        let name = bad.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{name} not named: {err}");
        assert!(err.lines().count() <= 3, "one short message: {err}");
        assert!(!wh.exists(), "nothing may be written");
    }
}

// ---------- boxes and odd image members ----------

#[test]
fn boxes_outside_the_image_become_data_issues() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 8);
    let bbox = dir.path().join("bbox.csv");
    std::fs::write(
        &bbox,
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n\
         00000001_000.png,Effusion,100,200,50,60\n\
         00000001_000.png,Effusion,-5,200,50,60\n\
         00000001_000.png,Effusion,100,200,0,60\n\
         00000001_000.png,Effusion,1000,200,50,60\n\
         00000001_000.png,Effusion,100,1e308,50,60\n\
         00000001_000.png,Effusion,100,200,inf,60\n\
         00000001_000.png,Effusion,100,200,50,NaN\n",
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let out = run(&[
        "ingest",
        "--metadata",
        meta.to_str().unwrap(),
        "--bbox",
        bbox.to_str().unwrap(),
        "--no-expert",
        "--no-splits",
        "--no-images",
        "--warehouse",
        wh.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = wh.to_str().unwrap();
    let n = run(&["sql", "-w", w, "SELECT COUNT(*) AS n FROM bboxes"]);
    assert_eq!(stdout(&n), "n\n1\n");
    let lines = run(&[
        "sql",
        "-w",
        w,
        "SELECT line FROM data_issues WHERE source_file LIKE '%bbox.csv' ORDER BY line",
    ]);
    assert_eq!(
        stdout(&lines),
        "line\n3\n4\n5\n6\n7\n8\n",
        "{}",
        stderr(&lines)
    );
}

/// A tar with the given raw members (name, entry type, bytes, link target).
fn raw_tar(path: &Path, members: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, kind, bytes, link) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn links_in_archives_and_folders_are_counted_as_pixel_errors() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    let synth = dir.path().join("one.tar");
    let out = run(&[
        "synth",
        "images",
        "--count",
        "1",
        "--out",
        synth.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut a = tar::Archive::new(std::fs::File::open(&synth).unwrap());
    let png: Vec<u8> = {
        let mut e = a
            .entries()
            .unwrap()
            .flatten()
            .find(|e| e.path().unwrap().to_string_lossy().ends_with(".png"))
            .unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut v).unwrap();
        v
    };
    let tar = dir.path().join("links.tar");
    raw_tar(
        &tar,
        &[
            (
                "images/00000001_000.png",
                tar::EntryType::Regular,
                &png,
                None,
            ),
            (
                "images/00000001_001.png",
                tar::EntryType::Link,
                b"",
                Some("images/00000001_000.png"),
            ),
            (
                "images/00000002_000.png",
                tar::EntryType::Symlink,
                b"",
                Some("00000001_000.png"),
            ),
        ],
    );
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("sub/00000002_001.png"), &png).unwrap();
    std::os::unix::fs::symlink(
        folder.join("sub/00000002_001.png"),
        folder.join("00000003_000.png"),
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let out = run(&[
        "ingest",
        "--metadata",
        meta.to_str().unwrap(),
        "--no-bbox",
        "--no-expert",
        "--no-splits",
        "--images",
        tar.to_str().unwrap(),
        "--images",
        folder.to_str().unwrap(),
        "--warehouse",
        wh.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = wh.to_str().unwrap();
    let stats = run(&[
        "sql",
        "-w",
        w,
        "SELECT image_index FROM pixel_stats ORDER BY 1",
    ]);
    assert_eq!(
        stdout(&stats),
        "image_index\n00000001_000.png\n00000002_001.png\n"
    );
    let errors = run(&[
        "sql",
        "-w",
        w,
        "SELECT COUNT(*) AS n FROM pixel_errors WHERE error LIKE '%link%'",
    ]);
    assert_eq!(stdout(&errors), "n\n3\n", "{}", stderr(&errors));
}

// ---------- concurrency with real processes ----------

fn full_warehouse(dir: &Path) -> PathBuf {
    let wh = dir.join("wh");
    let out = run(&["ingest", "--no-images", "-w", wh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    wh
}

#[test]
fn ingest_and_split_at_the_same_time_leave_a_consistent_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let wh = full_warehouse(dir.path());
    let w = wh.to_str().unwrap().to_string();
    for round in 0..4 {
        let ingest = cxr()
            .args(["ingest", "--no-images", "-w", &w])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seed = round.to_string();
        let split = cxr()
            .args([
                "split",
                "-w",
                &w,
                "--seed",
                &seed,
                "--fractions",
                "0.8,0.1,0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let i = ingest.wait_with_output().unwrap();
        let s = split.wait_with_output().unwrap();
        // Both succeed: a split that finds the warehouse changed under it (the ingest
        // committed while it computed or waited for the lock) computes it again.
        assert!(i.status.success(), "ingest: {}", stderr(&i));
        assert!(s.status.success(), "split: {}", stderr(&s));
        assert_manifest_agrees_with_files(&wh);
        // If the split committed last, its table covers every patient of the CSV.
        let manifest = std::fs::read_to_string(wh.join("manifest.json")).unwrap();
        if manifest.contains("\"splits\"") {
            assert!(manifest.contains("\"splits\": 30805"), "{manifest}");
        }
    }
}

#[test]
fn queries_never_fail_while_split_commits() {
    let dir = tempfile::tempdir().unwrap();
    let wh = full_warehouse(dir.path());
    let w = wh.to_str().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (w, stop) = (w.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut commits = 0;
            let mut seed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seed += 1;
                let out = cxr()
                    .args(["split", "-w", &w, "--seed", &seed.to_string()])
                    .args(["--fractions", "0.7,0.3", "--names", "a,b"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", stderr(&out));
                commits += 1;
            }
            commits
        })
    };
    let mut queries = 0;
    let start = std::time::Instant::now();
    while queries < 30 || start.elapsed().as_secs() < 6 {
        let out = run(&[
            "sql",
            "-w",
            &w,
            "SELECT COUNT(*) AS n, COUNT(DISTINCT i.patient_id) AS p FROM images i JOIN patients USING (patient_id)",
        ]);
        assert!(out.status.success(), "query {queries}: {}", stderr(&out));
        assert_eq!(stdout(&out), "n,p\n112120,30805\n");
        queries += 1;
        if queries > 200 {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = writer.join().unwrap();
    assert!(commits >= 2, "only {commits} split commits happened");
    assert_manifest_agrees_with_files(&wh);
}

// ---------- interruption and full disks ----------

#[test]
fn sigint_exits_130_and_the_warehouse_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 10, "wh");
    let w = wh.to_str().unwrap();
    let tar = dir.path().join("many.tar");
    let out = run(&[
        "synth",
        "images",
        "--count",
        "6000",
        "--out",
        tar.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = small_metadata(dir.path(), 30);
    let child = cxr()
        .args([
            "ingest",
            "--metadata",
            meta.to_str().unwrap(),
            "--no-bbox",
            "--no-expert",
            "--no-splits",
            "--images",
            tar.to_str().unwrap(),
            "-w",
            w,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_busy(child.id(), 0.2);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(130), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    // The committed version is whole and readable: the old one, or a new one.
    assert_manifest_agrees_with_files(&wh);
    let n = run(&["sql", "-w", w, "SELECT COUNT(*) AS n FROM images"]);
    assert!(
        stdout(&n) == "n\n10\n" || stdout(&n) == "n\n30\n",
        "{}",
        stdout(&n)
    );

    // A query interrupted the same way.
    let child = cxr()
        .args([
            "sql",
            "-w",
            w,
            "SELECT COUNT(*) FROM range(1, 20000000000) t WHERE t.value % 7 = 3",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_busy(child.id(), 0.3);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(130), "{}", stderr(&out));
}

#[test]
fn ingest_to_a_full_stdout_fails_but_commits() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 12);
    let wh = dir.path().join("wh");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = cxr()
        .args(ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap()))
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).contains("error"), "{}", stderr(&out));
    assert_manifest_agrees_with_files(&wh);
    let n = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM images",
    ]);
    assert_eq!(stdout(&n), "n\n12\n");
}

/// A full stderr (`2>/dev/full`) changes no exit code: an error is still exit 2, an
/// ingest still commits and ends with 0, never a panic's 101.
#[test]
fn a_full_stderr_keeps_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 12);
    let wh = dir.path().join("wh");
    let to_full = |args: &[&str]| {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        cxr().args(args).stderr(full).output().unwrap()
    };
    let ingest = to_full(&ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap()));
    assert_eq!(code(&ingest), Some(0), "{ingest:?}");
    assert_manifest_agrees_with_files(&wh);
    let w = wh.to_str().unwrap();
    for (args, expected) in [
        (vec!["sql", "-w", w, "SELEC 1"], 2),
        (vec!["cohort", "-w", w, "--with", "Nope"], 2),
        (vec!["--bogus"], 2),
        (vec!["sql", "-w", w, "SELECT 1 AS a"], 0),
    ] {
        assert_eq!(code(&to_full(&args)), Some(expected), "{args:?}");
    }
}

// ---------- bounded memory ----------

const RSS_LIMIT_MIB: f64 = 300.0;

/// Asserts that a run measured by [`run_measured_with`] was refused (exit 2) with a
/// message holding each of `says`, within [`RSS_LIMIT_MIB`].
fn assert_refused_in_bounded_memory((code, err, rss): (Option<i32>, String, f64), says: &[&str]) {
    assert_eq!(code, Some(2), "{err}");
    for needle in says {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
}

fn ingest_measured(dir: &Path, metadata: &Path, extra: &[&str]) -> (Option<i32>, String, f64) {
    let wh = dir.join("wh-measured");
    let mut args = vec![
        "ingest",
        "--metadata",
        metadata.to_str().unwrap(),
        "--no-expert",
        "--no-splits",
        "--warehouse",
        wh.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--bbox") {
        args.push("--no-bbox");
    }
    if !extra.contains(&"--images") {
        args.push("--no-images");
    }
    run_measured(&args)
}

#[test]
fn a_row_of_a_million_commas_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = format!("{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n");
    s.push_str("00000002_000.png,Mass,0,2,58,M,PA,1,1,0.1,0.1");
    s.push_str(&",".repeat(1 << 20));
    s.push('\n');
    // A record after it: the parser is handed the ragged record among others.
    s.push_str("00000003_000.png,Mass,0,3,58,M,PA,1,1,0.1,0.1\n");
    let p = dir.path().join("commas.csv");
    std::fs::write(&p, s).unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &p, &[]);
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
    // The fields past the header are counted, reported and dropped; the row is kept.
    assert_eq!(code, Some(0), "{err}");
    let wh = dir.path().join("wh-measured");
    let out = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT line FROM data_issues WHERE issue LIKE '%1048587 fields%'",
    ]);
    assert_eq!(stdout(&out), "line\n3\n", "{}", stderr(&out));
    let out = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM images",
    ]);
    assert_eq!(stdout(&out), "n\n3\n");
}

#[test]
fn a_field_of_many_unknown_labels_is_a_few_issues_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Half a million unknown labels in one field (1 MiB), then a field over 1 MiB.
    let labels = "A|".repeat(1 << 19);
    let s = format!("{HEADER}\n00000001_000.png,{labels},0,1,58,M,PA,1,1,0.1,0.1\n");
    let p = dir.path().join("labels.csv");
    std::fs::write(&p, s).unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &p, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
    let wh = dir.path().join("wh-measured");
    let out = run(&[
        "sql",
        "-w",
        wh.to_str().unwrap(),
        "SELECT COUNT(*) AS n, MAX(length(value)) < 400 AS short FROM data_issues WHERE line = 2",
    ]);
    // 20 listed, one saying the rest are not.
    assert_eq!(stdout(&out), "n,short\n21,true\n", "{}", stderr(&out));

    let long = format!(
        "{HEADER}\n00000001_000.png,{}A,0,1,58,M,PA,1,1,0.1,0.1\n",
        "A".repeat(1 << 20)
    );
    std::fs::write(&p, long).unwrap();
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &p, &[]),
        &[
            "labels.csv",
            "line 2",
            "Finding Labels",
            "longer than 1 MiB",
        ],
    );
}

#[test]
fn a_header_of_a_million_columns_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from(HEADER);
    for i in 0..1_000_000 {
        s.push_str(&format!(",x{i}"));
    }
    s.push_str("\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n");
    let p = dir.path().join("wide.csv");
    std::fs::write(&p, s).unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &p, &[]);
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
    assert!(code == Some(0) || code == Some(2), "{err}");
    if code == Some(2) {
        assert!(err.contains("wide.csv"), "{err}");
    }
}

/// `n` bytes of zeros as a gzip file: one gzip member of 1 MiB of zeros, written
/// `n >> 20` times (concatenated members are one gzip stream, as `zcat` reads it),
/// so that making the bomb takes milliseconds.
fn gzip_zeros(path: &Path, n: u64) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![0u8; 1 << 20]).unwrap();
    let member = enc.finish().unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for _ in 0..n >> 20 {
        f.write_all(&member).unwrap();
    }
    f.flush().unwrap();
}

#[test]
fn a_gzip_bomb_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.csv.gz");
    gzip_zeros(&bomb, 2 << 30);
    assert_refused_in_bounded_memory(ingest_measured(dir.path(), &bomb, &[]), &["bomb.csv.gz"]);

    // A bomb of text rather than zeros.
    let text_bomb = dir.path().join("text.csv.gz");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&text_bomb).unwrap());
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(format!("{HEADER}\n").as_bytes()).unwrap();
        let block = "a,b,c,d\n".repeat(1 << 17);
        for _ in 0..300 {
            enc.write_all(block.as_bytes()).unwrap();
        }
        enc.finish().unwrap().flush().unwrap();
    }
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &text_bomb, &[]),
        &["text.csv.gz"],
    );

    let meta = small_metadata(dir.path(), 4);
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &meta, &["--bbox", bomb.to_str().unwrap()]),
        &["bomb.csv.gz"],
    );
}

/// A CSV named in a query is refused at its first record over 16 MiB, before
/// DataFusion's reader (which holds a record whole) reads it: a gzip of one endless
/// line of zeros (2 GiB), and a quoted field of short lines (the line breaks inside
/// quotes belong to one record). Records of a normal file, quoted line breaks and
/// all, are read.
#[test]
fn a_query_over_a_csv_bomb_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let any = small_warehouse(dir.path(), 4, "any");
    let query = |file: &Path| {
        run_measured(&[
            "sql",
            "-w",
            any.to_str().unwrap(),
            &format!("SELECT COUNT(*) FROM '{}'", file.display()),
        ])
    };
    let bomb = dir.path().join("endless.csv.gz");
    {
        let mut header = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        header.write_all(b"a,b\n1,").unwrap();
        std::fs::write(&bomb, header.finish().unwrap()).unwrap();
        let zeros = dir.path().join("zeros.gz");
        gzip_zeros(&zeros, 2 << 30);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&bomb)
            .unwrap();
        f.write_all(&std::fs::read(&zeros).unwrap()).unwrap();
    }
    assert_refused_in_bounded_memory(query(&bomb), &["endless.csv.gz", "line 2", "16 MiB"]);

    let quoted = dir.path().join("quoted.csv");
    let mut text = String::from("a,b\n1,2\n3,\"");
    text.push_str(&"x\n".repeat(9 << 20));
    text.push_str("\"\n");
    std::fs::write(&quoted, text).unwrap();
    assert_refused_in_bounded_memory(query(&quoted), &["quoted.csv", "line 3"]);

    // A quote inside a field opens nothing (`14"` is text) and `""` inside quotes is
    // a quote: 20 MiB of short rows after them are read, every one.
    let inches = dir.path().join("inches.csv");
    let mut text = String::from("a,b\n1,14\" monitor\n2,\"say \"\"hi\"\"\nthere\"\n");
    text.push_str(&"3,x\n".repeat(5 << 20));
    std::fs::write(&inches, text).unwrap();
    let out = run(&[
        "sql",
        "-w",
        any.to_str().unwrap(),
        &format!("SELECT COUNT(*) AS n FROM '{}'", inches.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n\n{}\n", 2 + (5 << 20))
    );

    let fine = dir.path().join("fine.csv");
    std::fs::write(&fine, "a,b\n1,\"two\nlines\"\n3,4\n").unwrap();
    let out = run(&[
        "sql",
        "-w",
        any.to_str().unwrap(),
        &format!("SELECT COUNT(*) AS n FROM '{}'", fine.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\n");
}

/// A 512-byte GNU header of `kind` with a declared `size`, checksum filled in.
fn gnu_header(name: &str, kind: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[test]
fn a_huge_long_name_header_is_damage_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    let tar = dir.path().join("longname.tar");
    let mut bytes = gnu_header("././@LongLink", b'L', 6_000_000_000).to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 64 << 10));
    std::fs::write(&tar, &bytes).unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &meta, &["--images", tar.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
    let out = run(&[
        "sql",
        "-w",
        dir.path().join("wh-measured").to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM pixel_errors WHERE error LIKE '%6000000000 bytes%'",
    ]);
    assert_eq!(stdout(&out), "n\n1\n", "{}", stderr(&out));

    // A PAX header declaring as much.
    let mut bytes = gnu_header("pax", b'x', 6_000_000_000).to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 64 << 10));
    std::fs::write(&tar, &bytes).unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &meta, &["--images", tar.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
}

#[test]
fn a_tar_gz_of_large_members_stays_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 8);
    let tgz = dir.path().join("large.tar.gz");
    let f = std::fs::File::create(&tgz).unwrap();
    let enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(enc);
    let member = vec![0u8; 48 << 20];
    for i in 0..5 {
        let mut h = tar::Header::new_gnu();
        h.set_size(member.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("images/{:08}_000.png", i + 1), &member[..])
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    let (code, err, rss) = ingest_measured(dir.path(), &meta, &["--images", tgz.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
    let out = run(&[
        "sql",
        "-w",
        dir.path().join("wh-measured").to_str().unwrap(),
        "SELECT COUNT(*) AS n FROM pixel_errors",
    ]);
    assert_eq!(stdout(&out), "n\n5\n", "{}", stderr(&out));
}

#[test]
fn a_cohort_file_of_endless_zeros_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 4, "wh");
    let (code, err, rss) = run_measured(&[
        "cohort",
        "-w",
        wh.to_str().unwrap(),
        "--cohort",
        "/dev/zero",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(rss < RSS_LIMIT_MIB, "peak RSS {rss:.0} MiB");
}

/// A commit removes the versions it replaced, and nothing else: a copy of a version
/// folder a user made inside the warehouse (any name, even one shaped like cxr's)
/// stays, whole.
#[test]
fn a_users_copy_of_a_version_folder_survives_commits() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 30, "wh");
    let w = wh.to_str().unwrap();
    let data = |wh: &Path| -> String {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(wh.join("manifest.json")).unwrap()).unwrap();
        m["data"].as_str().unwrap().to_string()
    };
    let first = data(&wh);
    let copies = ["v-backup", "v-20200101T000000.000000-1"];
    for name in copies {
        let cp = std::process::Command::new("cp")
            .arg("-a")
            .arg(wh.join(&first))
            .arg(wh.join(name))
            .status()
            .unwrap();
        assert!(cp.success());
    }
    let before: Vec<_> = copies.iter().map(|c| snapshot(&wh.join(c))).collect();
    for seed in ["1", "2"] {
        let out = run(&["split", "-w", w, "--seed", seed, "--fractions", "0.8,0.2"]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    }
    let now = data(&wh);
    assert_ne!(now, first);
    assert!(
        !wh.join(&first).exists(),
        "the replaced version is collected"
    );
    for (name, before) in copies.iter().zip(&before) {
        assert_eq!(&snapshot(&wh.join(name)), before, "{name}");
    }
    let versions: Vec<String> = std::fs::read_dir(&wh)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v-"))
        .collect();
    // The two copies, the current version and at most the one the last command
    // read while it committed (its own reader held it).
    assert!(versions.contains(&now), "{versions:?}");
    assert!((3..=4).contains(&versions.len()), "{versions:?}");
}

/// Runs `cxr` with `args`, failing the test if it has not ended within 30 s (a
/// read of a FIFO would block it forever).
fn run_within(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = cxr();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 30 {
            child.kill().unwrap();
            panic!("{args:?} hangs");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn version_folder(wh: &Path) -> PathBuf {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wh.join("manifest.json")).unwrap()).unwrap();
    wh.join(m["data"].as_str().unwrap())
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// A damaged warehouse is an error naming what is damaged (exit 2), never an empty
/// table, a hang or a panic: a table file emptied, a footer whose embedded Arrow
/// schema is damaged, a FIFO among the tables, a version folder removed.
#[test]
fn damaged_table_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();

    // A 0-byte table file is not an empty table: the manifest's row count holds.
    let wh = small_warehouse(dir.path(), 20, "emptied");
    let images = version_folder(&wh).join("images.parquet");
    std::fs::remove_file(&images).unwrap();
    std::fs::write(&images, b"").unwrap();
    let out = run_within(
        &[
            "sql",
            "-w",
            wh.to_str().unwrap(),
            "SELECT COUNT(*) FROM images",
        ],
        &[],
    );
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("images.parquet"), "{}", stderr(&out));

    // A FIFO named like a table is not a table; listing tables does not block.
    let wh = small_warehouse(dir.path(), 20, "fifo");
    mkfifo(&version_folder(&wh).join("x.parquet"));
    let out = run_within(&["sql", "-w", wh.to_str().unwrap(), "SHOW TABLES"], &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("| x "), "{}", stdout(&out));
    let out = run_within(
        &[
            "sql",
            "-w",
            wh.to_str().unwrap(),
            "SELECT COUNT(*) FROM images",
        ],
        &[],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let fifo_table = version_folder(&wh).join("x.parquet");
    let sql = format!("SELECT * FROM '{}'", fifo_table.display());
    let out = run_within(&["sql", "-w", wh.to_str().unwrap(), &sql], &[]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));

    // A removed version folder is named as such.
    let wh = small_warehouse(dir.path(), 20, "removed");
    std::fs::remove_dir_all(version_folder(&wh)).unwrap();
    let out = run_within(&["sql", "-w", wh.to_str().unwrap(), "SELECT 1"], &[]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
}

/// Single-character changes to the embedded Arrow schema of a Parquet footer: some
/// make the Arrow decoder panic. `inspect` and queries must answer each with exit 0
/// or 2, naming the file, never "internal error" (exit 1).
#[test]
fn damaged_arrow_schemas_in_footers_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 20, "wh");
    let table = version_folder(&wh).join("datasets.parquet");
    let data = std::fs::read(&table).unwrap();
    let key = b"ARROW:schema";
    let at = data.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=';
    let start = at + data[at..].iter().position(|&b| b64(b)).unwrap();
    let end = start + data[start..].iter().position(|&b| !b64(b)).unwrap();
    let mutated = dir.path().join("m.parquet");
    let mut damaged = None;
    for pos in (start..end - 2).step_by(2) {
        let mut m = data.clone();
        m[pos] = if m[pos] == b'A' { b'B' } else { b'A' };
        std::fs::write(&mutated, &m).unwrap();
        let out = run_within(&["inspect", mutated.to_str().unwrap()], &[]);
        assert!(
            matches!(code(&out), Some(0) | Some(2)),
            "position {pos}: {}",
            stderr(&out)
        );
        if stderr(&out).contains("damaged Parquet footer") {
            assert!(stderr(&out).contains("m.parquet"), "{}", stderr(&out));
            damaged.get_or_insert(m);
        }
    }
    // At least one change reaches the decoder's panic; as a warehouse table it is
    // an error naming the file too.
    let m = damaged.expect("a change that breaks the Arrow schema");
    std::fs::remove_file(&table).unwrap();
    std::fs::write(&table, &m).unwrap();
    let out = run_within(
        &["sql", "-w", wh.to_str().unwrap(), "SELECT * FROM datasets"],
        &[],
    );
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("datasets.parquet"),
        "{}",
        stderr(&out)
    );
}

/// `run --list` lists the saved queries beside a foreign `.sql` file (named on
/// stderr) and a FIFO named `*.sql` (not opened: it would block).
#[test]
fn run_list_skips_foreign_files_and_fifos() {
    let dir = tempfile::tempdir().unwrap();
    let queries = dir.path().join("q");
    std::fs::create_dir(&queries).unwrap();
    std::fs::write(
        queries.join("mine.sql"),
        "-- @description my query\nSELECT 1",
    )
    .unwrap();
    std::fs::write(queries.join("foreign.sql"), [0xffu8, 0xfe, 0x00]).unwrap();
    mkfifo(&queries.join("pipe.sql"));
    let out = run_within(&["run", "--list"], &[("CXR_QUERIES", &queries)]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("mine"), "{}", stdout(&out));
    assert!(stdout(&out).contains("my query"), "{}", stdout(&out));
    assert!(stderr(&out).contains("foreign.sql"), "{}", stderr(&out));
    assert!(stderr(&out).contains("pipe.sql"), "{}", stderr(&out));
}

fn dev_zero() -> Stdio {
    Stdio::from(std::fs::File::open("/dev/zero").unwrap())
}

/// SQL from an endless stdin or `\i` of a device is refused in bounded memory.
#[test]
fn endless_sql_input_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 4, "wh");
    let w = wh.to_str().unwrap();
    let (code, err, rss) = run_measured_with(&["sql", "-w", w, "-"], dev_zero(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("MiB"), "{err}");
    assert!(
        rss < RSS_LIMIT_MIB,
        "sql - < /dev/zero: peak RSS {rss:.0} MiB"
    );
    let (code, err, rss) = run_measured_with(&["shell", "-w", w], dev_zero(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        rss < RSS_LIMIT_MIB,
        "shell < /dev/zero: peak RSS {rss:.0} MiB"
    );
    let script = dir.path().join("script.sql");
    std::fs::write(&script, "\\i /dev/zero\nSELECT 41 + 1 AS answer;\n").unwrap();
    let mut shell = cxr()
        .args(["shell", "-w", w])
        .stdin(Stdio::from(std::fs::File::open(&script).unwrap()))
        .output()
        .unwrap();
    assert!(
        stderr(&shell).contains("not a regular file"),
        "{}",
        stderr(&shell)
    );
    shell.stdout.retain(|&b| b != b' ');
    assert!(
        String::from_utf8_lossy(&shell.stdout).contains("42"),
        "{}",
        stdout(&shell)
    );
}

/// A query's operators share a memory limit: a string_agg over a cross join stops
/// with exit 2 and advice, instead of growing to gigabytes; text-growing functions
/// refuse results of gigabytes.
#[test]
fn queries_stop_at_their_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 3000, "wh");
    let w = wh.to_str().unwrap();
    let agg =
        "SELECT length(string_agg(a.image_index || b.image_index, ',')) FROM images a, images b";
    let (code, err, rss) = run_measured_with(
        &["sql", "-w", w, agg],
        Stdio::null(),
        &[("CXR_MEMORY_LIMIT", "64MiB")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("more memory than its limit of 64MiB") && err.contains("CXR_MEMORY_LIMIT"),
        "{err}"
    );
    assert!(
        !err.contains("consumed"),
        "DataFusion's reservations listed: {err}"
    );
    assert!(rss < RSS_LIMIT_MIB, "string_agg: peak RSS {rss:.0} MiB");
    for sql in [
        "SELECT length(repeat('x', 2000000000))",
        "SELECT length(lpad('x', 2000000000, 'y'))",
        "SELECT length(rpad(image_index, 100000)) FROM images",
        "SELECT cardinality(array_repeat(1, 2000000000))",
        "SELECT cardinality(range(1, 2000000000))",
        "SELECT cardinality(generate_series(1, 2000000000, 1))",
        "SELECT cardinality(range(s, e, -1)) FROM (VALUES (0, 10), (1000000000, -1000000000)) AS t(s, e)",
        // Dates and timestamps over an interval: 315 million seconds, 2.5 million days.
        "SELECT cardinality(generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2010-01-01', INTERVAL '1 second'))",
        "SELECT cardinality(range(DATE '2000-01-01', DATE '9000-01-01', INTERVAL '1 day'))",
        "SELECT cardinality(array_resize(make_array(1), 2000000000))",
        // Each part within the limit, the whole past it.
        "SELECT length(concat(repeat('x', 7000000), repeat('x', 7000000)))",
        "SELECT length(replace(repeat('x', 4000000), 'x', 'yyyy'))",
        "SELECT length(regexp_replace(repeat('x', 4000000), 'x', 'yyyy', 'g'))",
        // `||` joins through the same cap at each step of a chain.
        "SELECT length(repeat('x', 4000000) || repeat('x', 4000000) || repeat('x', 4000000))",
        "SELECT cardinality(array_repeat(1, 700000) || array_repeat(1, 700000))",
        // A separator between each of many elements, a format's expansion, a copy
        // of the text per group, a replacement per element.
        "SELECT length(array_to_string(range(100000), repeat('x', 2000000)))",
        "SELECT length(to_char(DATE '2020-01-01', repeat('%c', 1000000)))",
        "SELECT cardinality(regexp_match(repeat('a', 1000000), '((((((((((a+))))))))))'))",
        "SELECT cardinality(array_replace_all(array_repeat('a', 100000), 'a', repeat('b', 1000)))",
        // A function that grows its argument by a factor, nested: 3,000 rows of 3 KB
        // doubled three times.
        "SELECT max(length(upper(encode(encode(encode(image_index || repeat('x', 3000), 'hex'), 'hex'), 'hex')))) FROM images",
    ] {
        let (code, err, rss) = run_measured_with(&["sql", "-w", w, sql], Stdio::null(), &[]);
        assert_eq!(code, Some(2), "{sql}: {err}");
        assert!(err.contains("MiB per call"), "{sql}: {err}");
        assert!(rss < RSS_LIMIT_MIB, "{sql}: peak RSS {rss:.0} MiB");
    }
    // A large constant where it meets a table's rows: each row of a batch would get
    // a copy (64 GiB for 8 MiB in a batch of 8,192 rows).
    for sql in [
        "SELECT max(length(big)) FROM (SELECT arrow_cast(repeat('x', 8000000), 'LargeUtf8') AS big FROM images)",
        "SELECT max(length(c)) FROM (SELECT CASE WHEN patient_id > 0 THEN repeat('x', 5000) END AS c FROM images)",
        "SELECT count(*) FROM images WHERE strpos(image_index, repeat('y', 100000)) > 0",
        "SELECT max(length(repeat('x', 3000000) || image_index || repeat('x', 3000000))) FROM images",
    ] {
        let (code, err, rss) = run_measured_with(&["sql", "-w", w, sql], Stdio::null(), &[]);
        assert_eq!(code, Some(2), "{sql}: {err}");
        assert!(
            err.contains("a constant of") && err.contains("KiB"),
            "{sql}: {err}"
        );
        assert!(rss < RSS_LIMIT_MIB, "{sql}: peak RSS {rss:.0} MiB");
    }
    // Within the limits the functions answer as DataFusion's do: a constant of a few
    // KiB over rows, a large one in a query of one row, the capped and checked
    // functions, the Parquet reader's own function, `= ANY` of a list.
    let out = run(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT max(length(concat(repeat('x', 4000), image_index))) AS a, \
         (SELECT length(repeat('x', 1000000))) AS b, \
         array_to_string(make_array(1, 2, 3), '-') AS c, to_char(DATE '2020-01-02', '%Y/%m') AS d, \
         regexp_match('ab12', '([a-z]+)([0-9]+)') AS e, array_replace_all(make_array(1, 2, 1), 1, 9) AS f, \
         upper(encode('ab', 'hex')) AS g, count(*) FILTER (WHERE image_index = ANY(make_array('00000001_000.png'))) AS h, \
         max(input_file_name() LIKE '%images.parquet') AS i \
         FROM images",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "a,b,c,d,e,f,g,h,i\n4016,1000000,1-2-3,2020/01,\"[ab, 12]\",\"[9, 2, 9]\",6162,1,true\n"
    );
    // Within the limits the functions answer as DataFusion's do.
    let out = run(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS l, concat('a', 1, 'b') AS c, \
         replace('abca', 'a', 'xy') AS p, array_repeat(7, 3) AS a, range(1, 7, 2) AS g, \
         generate_series(3, 1, -1) AS s, length(concat(repeat('x', 5000000), 'y')) AS n, \
         cardinality(generate_series(TIMESTAMP '2020-01-01', TIMESTAMP '2020-01-02', INTERVAL '1 hour')) AS h, \
         'a' || 'b' || 1 AS o, 'a' || NULL AS z, make_array(1) || make_array(2) AS j",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "r,l,c,p,a,g,s,n,h,o,z,j\nababab,007,a1b,xybcxy,\"[7, 7, 7]\",\"[1, 3, 5]\",\"[3, 2, 1]\",5000001,25,ab1,,\"[1, 2]\"\n"
    );
    // One element per row over a batch of rows far apart: each row's own span is
    // counted, not the widest between any two rows (it was refused).
    let out = run(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT sum(cardinality(range(patient_id * 1000, patient_id * 1000 + 1))) AS n FROM images",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "n\n3000\n");
    // A column joined with `||` keeps the name DataFusion gives the operator.
    let out = run(&["sql", "-w", w, "--format", "csv", "SELECT 'a' || 'b'"]);
    assert_eq!(stdout(&out), "'a' || 'b'\nab\n", "{}", stderr(&out));
    let bad = run_measured_with(
        &["sql", "-w", w, "SELECT 1"],
        Stdio::null(),
        &[("CXR_MEMORY_LIMIT", "lots")],
    );
    assert_eq!(bad.0, Some(2), "{}", bad.1);
}

/// An input given as a pipe or device is refused before anything is read (an
/// ingest reads each input twice: a stream would be split between the readers).
#[test]
fn inputs_that_are_pipes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input.csv");
    mkfifo(&fifo);
    let tar_fifo = dir.path().join("images.tar");
    mkfifo(&tar_fifo);
    let f = fifo.to_str().unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let vindr = format!("vindr={f}");
    let metadata = data("Data_Entry_2017_v2020.csv.gz");
    let m = metadata.to_str().unwrap();
    for args in [
        vec!["ingest", "--metadata", f, "--no-images", "-w", w],
        vec![
            "ingest",
            "--metadata",
            m,
            "--bbox",
            f,
            "--no-images",
            "-w",
            w,
        ],
        vec![
            "ingest",
            "--metadata",
            m,
            "--splits",
            f,
            f,
            "--no-images",
            "-w",
            w,
        ],
        vec![
            "ingest",
            "--metadata",
            m,
            "--dataset",
            &vindr,
            "--no-images",
            "-w",
            w,
        ],
        vec![
            "ingest",
            "--metadata",
            m,
            "--images",
            tar_fifo.to_str().unwrap(),
            "-w",
            w,
        ],
    ] {
        let out = run_within(&args, &[]);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("pipe"), "{args:?}: {}", stderr(&out));
        assert!(!wh.exists(), "{args:?}");
    }
}

/// A `.tgz` of OpenI report members (name, XML) written with the tar crate.
fn openi_tgz(path: &Path, members: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(enc);
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

#[test]
fn openi_reports_that_multiply_or_hide_gigabytes_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    let tgz = dir.path().join("reports.tgz");
    let ingest = |tgz: &Path| {
        let openi = format!("openi={}", tgz.display());
        ingest_measured(dir.path(), &meta, &["--dataset", &openi])
    };
    // One report covering 2,000 images with 2,000 headings: 4 million label rows
    // from a 60 KB archive.
    let mut xml = String::from("<eCitation><uId id=\"CXR1\"/><MeSH>");
    for k in 0..2000 {
        xml.push_str(&format!("<major>Heading{k}/mild</major>"));
    }
    xml.push_str("</MeSH>");
    for k in 0..2000 {
        xml.push_str(&format!("<parentImage id=\"CXR1_IM-{k}\"/>"));
    }
    xml.push_str("</eCitation>");
    openi_tgz(&tgz, &[("ecgen-radiology/1.xml", xml.as_bytes())]);
    assert_refused_in_bounded_memory(ingest(&tgz), &["reports.tgz", "4000000"]);

    // A GNU long name declaring 6 GB, gzipped into a few kilobytes.
    let mut raw = gnu_header("././@LongLink", b'L', 6_000_000_000).to_vec();
    raw.extend(std::iter::repeat_n(b'a', 8 << 20));
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&raw).unwrap();
    std::fs::write(&tgz, enc.finish().unwrap()).unwrap();
    assert_refused_in_bounded_memory(ingest(&tgz), &["6000000000 bytes"]);
    assert!(!dir.path().join("wh-measured").exists());

    // An archive of no member, and a zip, said as what they are.
    openi_tgz(&tgz, &[]);
    assert_refused_in_bounded_memory(ingest(&tgz), &["reports.tgz", "holds no member"]);
    let zip = dir.path().join("reports.zip");
    zip_of_rows(&zip, "1.xml", "<eCitation/>", "", 1);
    assert_refused_in_bounded_memory(ingest(&zip), &["reports.zip", "a zip archive"]);
    assert!(!dir.path().join("wh-measured").exists());
}

/// A one-member zip archive (deflated, streamed) of `header` then `row` repeated
/// `times` times, built by hand: local header, data, central directory, end record.
fn zip_of_rows(path: &Path, name: &str, header: &str, row: &str, times: usize) {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let mut crc = flate2::Crc::new();
    let mut size = 0u64;
    for chunk in std::iter::once(header.to_string())
        .chain(std::iter::repeat_n(row.repeat(4096), times / 4096))
    {
        enc.write_all(chunk.as_bytes()).unwrap();
        crc.update(chunk.as_bytes());
        size += chunk.len() as u64;
    }
    let data = enc.finish().unwrap();
    let (crc, size) = (crc.sum(), u32::try_from(size).unwrap());
    let fixed = |z: &mut Vec<u8>| {
        z.extend_from_slice(&20u16.to_le_bytes()); // version needed
        z.extend_from_slice(&0u16.to_le_bytes()); // flags
        z.extend_from_slice(&8u16.to_le_bytes()); // deflate
        z.extend_from_slice(&[0; 4]); // time, date
        z.extend_from_slice(&crc.to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&size.to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    let mut z = b"PK\x03\x04".to_vec();
    fixed(&mut z);
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(&data);
    let directory = z.len() as u32;
    z.extend_from_slice(b"PK\x01\x02");
    z.extend_from_slice(&20u16.to_le_bytes()); // version made by
    fixed(&mut z);
    z.extend_from_slice(&[0; 12]); // comment length, disk, attributes
    z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    z.extend_from_slice(name.as_bytes());
    let directory_size = z.len() as u32 - directory;
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0; 4]);
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&directory_size.to_le_bytes());
    z.extend_from_slice(&directory.to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    std::fs::write(path, z).unwrap();
}

#[test]
fn metadata_bombs_sparse_files_and_endless_rows_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let meta = small_metadata(dir.path(), 4);
    // RSNA labels: 200 MB of valid negative rows deflated into a zip of ~0.2 MB.
    let zip = dir.path().join("labels.zip");
    let rows = 200 << 20 >> 5;
    zip_of_rows(
        &zip,
        "stage_2_train_labels.csv",
        "patientId,x,y,width,height,Target\n",
        "0004cfab-14fd-4e49-80ba-63a8,,,0\n",
        rows,
    );
    assert!(std::fs::metadata(&zip).unwrap().len() < 2 << 20);
    let rsna = format!("rsna={}", zip.display());
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &meta, &["--dataset", &rsna]),
        &["labels.zip", "40 times"],
    );

    // A 10 GB sparse file: a header line, then holes (zeros), no newline.
    let sparse = dir.path().join("sparse.csv");
    std::fs::write(&sparse, format!("{HEADER}\n00000001_000.png,Mass")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &sparse, &[]),
        &["sparse.csv", "NUL byte"],
    );

    // 1,000,001 records (2 MB): refused at the record past the cap, naming its line.
    let endless = dir.path().join("endless.csv");
    let mut text = format!("{HEADER}\n");
    text.push_str(&"x\n".repeat(1_000_001));
    std::fs::write(&endless, text).unwrap();
    assert_refused_in_bounded_memory(
        ingest_measured(dir.path(), &endless, &[]),
        &["endless.csv", "line 1000002", "1000000 records"],
    );
    assert!(!dir.path().join("wh-measured").exists());
}

/// `script` run by `sh` as root of a user and mount namespace of its own (where it
/// may mount a small tmpfs), with `$0` the cxr binary.
fn in_mount_namespace(script: &str) -> Output {
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, env!("CARGO_BIN_EXE_cxr")])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        !stderr(&out).contains("unshare:"),
        "this test needs user namespaces: {}",
        stderr(&out)
    );
    out
}

#[test]
fn a_full_disk_names_the_file_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 4, "wh");
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    // 200,000 random doubles (1.6 MB) into a 256 KiB file system.
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs {full} || exit 99; \
         \"$0\" sql -w {wh} --out {full}/random.parquet \
           'SELECT random() AS r FROM generate_series(1, 200000)'; \
         code=$?; ls -A {full}; exit $code",
        full = full.display(),
        wh = wh.display()
    );
    let out = in_mount_namespace(&script);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("random.parquet: cannot write") && err.contains("No space left"),
        "{err}"
    );
    // Nothing left behind: no file, no temporary file.
    assert_eq!(stdout(&out), "", "left in the full folder");
}

#[test]
fn unwritable_folders_devices_and_long_names_get_plain_answers() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 4, "wh");
    let w = wh.to_str().unwrap();
    // A COPY into a folder the user cannot write: refused before the query runs,
    // naming the target (not "likely a bug in DataFusion"). Root may write anywhere,
    // so the command runs as nobody there.
    let closed = dir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    mode(dir.path(), 0o755);
    mode(&closed, 0o555);
    let target = closed.join("x.parquet");
    let copy = format!("COPY (SELECT 1 AS a) TO '{}'", target.display());
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        // A copy of the binary nobody can reach (the build folder may be below a
        // folder only root may enter).
        let binary = dir.path().join("cxr");
        std::fs::copy(env!("CARGO_BIN_EXE_cxr"), &binary).unwrap();
        mode(&binary, 0o755);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_cxr"))
    };
    let out = cmd
        .args(["sql", "-w", w, "--allow-write", &copy])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("x.parquet: cannot write into") && err.contains("Permission denied"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
    assert!(!target.exists());

    // Where no file can be made at all (DataFusion's COPY looped for ever in /proc):
    // refused at once.
    let mut child = cxr()
        .args([
            "sql",
            "-w",
            w,
            "--allow-write",
            "COPY (SELECT 1 AS a) TO '/proc/x.csv'",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("COPY into /proc still running after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2));

    // inspect on a device names what it is.
    let out = run(&["inspect", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a regular file or a directory"),
        "{}",
        stderr(&out)
    );

    // A 249-character file name (the longest most file systems allow is 255) works.
    let long = dir.path().join(format!("{}.csv", "n".repeat(245)));
    let out = run(&[
        "sql",
        "-w",
        w,
        "--out",
        long.to_str().unwrap(),
        "SELECT 6 * 7 AS answer",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&long).unwrap(), "answer\n42\n");
}

// ---------- found by an outside sweep ----------

/// A header naming one column twice is refused where it is read: in `cxr sql` (the
/// file and the column named; DataFusion said "incorrect number of fields"), and
/// in ingest also when the two names differ only in case or spaces, as columns are
/// found without them.
#[test]
fn a_column_named_twice_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("dup2.csv");
    std::fs::write(&csv, "a,a\n1,2\n").unwrap();
    let any = small_warehouse(dir.path(), 4, "any");
    let out = run(&[
        "sql",
        "-w",
        any.to_str().unwrap(),
        &format!("SELECT * FROM '{}'", csv.display()),
    ]);
    assert_refused(&out, "dup2.csv");
    assert!(stderr(&out).contains("appears twice"), "{}", stderr(&out));

    let metadata = small_metadata(dir.path(), 6);
    let text = std::fs::read_to_string(&metadata).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let twice = header.replace("View Position", "patient age");
    std::fs::write(&metadata, format!("{twice}\n{rows}")).unwrap();
    let wh = dir.path().join("wh");
    let (m, w) = (metadata.to_str().unwrap(), wh.to_str().unwrap());
    let out = run(&ingest_args(m, w));
    assert_refused(&out, "patient age");
    assert!(stderr(&out).contains("Patient Age"), "{}", stderr(&out));
    assert!(!wh.exists());
}

/// Outputs make their own folder and no folder on the way to it (README): an export
/// of the tables, a partitioned export and a new warehouse under folders that do
/// not exist are refused, and nothing is made.
#[test]
fn no_output_makes_the_folders_on_its_way() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 8, "wh");
    let w = wh.to_str().unwrap();
    let missing = dir.path().join("x");
    let tables = missing.join("y/z");
    let out = run(&["export", "-w", w, "--tables", tables.to_str().unwrap()]);
    assert_refused(&out, "does not exist");
    let parts = missing.join("a/b/");
    let out = run(&[
        "export",
        "-w",
        w,
        "--partition-by",
        "sex",
        "--out",
        parts.to_str().unwrap(),
    ]);
    assert_refused(&out, "does not exist");
    let metadata = small_metadata(dir.path(), 4);
    let nested = missing.join("c/wh");
    let out = run(&ingest_args(
        metadata.to_str().unwrap(),
        nested.to_str().unwrap(),
    ));
    assert_refused(&out, "does not exist");
    assert!(!missing.exists());
}

/// A server whose memory for all statements is less than one statement's limit
/// could run no statement that needs memory: refused at start (exit 2).
#[test]
fn a_server_smaller_than_a_statement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 8, "wh");
    let out = run(&[
        "serve",
        "-w",
        wh.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--server-memory",
        "1KiB",
    ]);
    assert_refused(&out, "--server-memory 1KiB is less than");
}

/// An empty zip given as RSNA's labels is said to hold no file (it was "not a CSV
/// file (binary data)").
#[test]
fn an_empty_zip_is_said_to_hold_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("e.zip");
    // A zip's end record alone: what `zipfile.ZipFile('e.zip', 'w').close()` writes.
    let mut end = b"PK\x05\x06".to_vec();
    end.extend_from_slice(&[0; 18]);
    std::fs::write(&empty, end).unwrap();
    let headers = dir.path().join("hdr.csv");
    std::fs::write(&headers, "patientId,PatientSex\nabc,M\n").unwrap();
    let metadata = small_metadata(dir.path(), 4);
    let wh = dir.path().join("wh");
    let spec = format!("rsna={},{}", empty.display(), headers.display());
    let mut args = ingest_args(metadata.to_str().unwrap(), wh.to_str().unwrap());
    args.extend(["--dataset", &spec]);
    let out = run(&args);
    assert_refused(&out, "holds no file");
}
