//! The command line a careful user expects (issue 13): exit codes, closed pipes,
//! Ctrl-C, the shell driven through stdin, and messages that name what is wrong.
//! Every test runs the real binary.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn w() -> String {
    wh2020().to_str().unwrap().to_string()
}

// ---------- exit codes ----------

#[test]
fn what_the_user_can_fix_exits_2() {
    let w = w();
    let missing = tempfile::tempdir().unwrap();
    let nowh = missing.path().join("nowhere");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sql", "-w", &w, "SELEC 1"], "SELEC"),
        (vec!["sql", "-w", &w, "SELECT nosuch FROM images"], "nosuch"),
        (vec!["cohort", "-w", &w, "--where", "age >"], ""),
        (vec!["cohort", "-w", &w, "--where", "nosuch = 1"], "nosuch"),
        (
            vec!["sql", "-w", &w, "CREATE TABLE t AS SELECT 1"],
            "--allow-write",
        ),
        (
            vec!["sql", "-w", nowh.to_str().unwrap(), "SELECT 1"],
            "nowhere",
        ),
        (vec!["cohort", "-w", &w, "--age", "60..40"], "60..40"),
        (vec!["cohort", "-w", &w, "--age", ".."], "bounds nothing"),
        (vec!["cohort", "-w", &w, "--split", "tset"], "tset"),
        (vec!["cohort", "-w", &w, "--with", "Efusion"], "Effusion"),
        (vec!["sql", "-w", &w, "--bogus-flag", "SELECT 1"], "bogus"),
        (vec!["run", "-w", &w, "no_such_query"], "no_such_query"),
        (
            vec!["agree", "-w", &w, "--a", "nih_2020", "--b", "nih_2020"],
            "agrees with itself",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn plot_size_out_of_range_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("p.svg");
    let out = run(&[
        "plot",
        "labels",
        "-w",
        &w(),
        "--size",
        "10x10",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_refused(&out, "out of range");
    assert!(!out_file.exists());
}

#[test]
fn out_into_a_missing_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nodir").join("x.csv");
    let out = run(&[
        "sql",
        "-w",
        &w(),
        "--out",
        target.to_str().unwrap(),
        "SELECT 1 AS a",
    ]);
    assert_ne!(code(&out), Some(0));
    let err = stderr(&out);
    assert!(err.contains("nodir"), "{err}");
    assert!(
        !err.contains("/.x.csv"),
        "a hidden temporary name leaked: {err}"
    );
}

// ---------- closed pipes ----------

/// Starts cxr with stdout piped and no stderr capture.
fn spawn_piped(args: &[&str]) -> Child {
    cxr()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `lines` lines (0: none) of the child's stdout, closes the pipe, and returns
/// its exit code and stderr.
fn close_after(mut child: Child, lines: usize) -> (Option<i32>, String) {
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = 0;
    let mut byte = [0u8; 1];
    while seen < lines && stdout.read(&mut byte).unwrap() == 1 {
        if byte[0] == b'\n' {
            seen += 1;
        }
    }
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

#[test]
fn a_closed_pipe_is_not_a_failure() {
    let w = w();
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("f.parquet");
    let out = run(&[
        "sql",
        "-w",
        &w,
        "--out",
        parquet.to_str().unwrap(),
        "SELECT * FROM images LIMIT 100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cases: Vec<Vec<&str>> = vec![
        vec!["cohort", "-w", &w, "--with", "Effusion", "--show-sql"],
        vec!["cooccur", "-w", &w, "--format", "table"],
        vec!["inspect", parquet.to_str().unwrap()],
        vec!["run", "--list"],
        vec!["cohort", "-w", &w, "--format", "csv"],
        vec!["followup", "-w", &w, "--transitions"],
        vec![
            "sql",
            "-w",
            &w,
            "--format",
            "json",
            "SELECT * FROM findings",
        ],
    ];
    for args in &cases {
        for lines in [0, 1] {
            let (code, err) = close_after(spawn_piped(args), lines);
            assert_eq!(code, Some(0), "{args:?} after {lines} lines: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_huge_result_into_an_early_closing_reader_ends_quickly() {
    // 112,120² rows: only streaming and stopping at the closed pipe can end this.
    let start = Instant::now();
    let child = spawn_piped(&[
        "sql",
        "-w",
        &w(),
        "--format",
        "csv",
        "SELECT a.image_index, b.image_index AS other FROM images a CROSS JOIN images b LIMIT 100000000",
    ]);
    let (code, err) = close_after(child, 1);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60));

    // --max-rows stops the query too.
    let out = run(&[
        "sql",
        "-w",
        &w(),
        "--format",
        "table",
        "--max-rows",
        "3",
        "SELECT a.image_index FROM images a CROSS JOIN images b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(90));

    // A table is printed once it has more rows than it shows; the rest are counted
    // for its footer, and a reader that leaves stops the counting (112,120³ rows).
    let child = spawn_piped(&[
        "sql",
        "-w",
        &w(),
        "--format",
        "table",
        "SELECT a.image_index FROM images a, images b, images c",
    ]);
    let (code, err) = close_after(child, 1);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

// ---------- SIGINT ----------

#[test]
fn sigint_ends_a_query_with_130() {
    let child = cxr()
        .args([
            "sql",
            "-w",
            &w(),
            "SELECT COUNT(*) FROM images a JOIN images b ON a.age + b.age = 1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_busy(child.id(), 0.3);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(130), "{}", stderr(&out));
}

/// A parse error in a script names the line of the script (`sql -`) or of the
/// query file (`run`), not the line within its statement: `FROMM` is on line 7 of
/// the one and line 5 of the other, counted here by hand.
#[test]
fn a_script_error_names_the_line_of_the_script() {
    let script = "SELECT 1 AS a;\nSELECT 2 AS b;\nSELECT 3 AS c;\n\nSELECT 4 AS d,\n  5 AS e,\n  6 AS f FROMM images;\n";
    let out = spawn_with_stdin(cxr().args(["sql", "-w", &w(), "-"]), script)
        .wait_with_output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Line: 7, Column: 10"),
        "{}",
        stderr(&out)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "-- @description x\nSELECT 1 AS a;\nSELECT 2 AS b;\nSELECT 3 AS c,\n  4 AS d FROMM images;\n",
    )
    .unwrap();
    let out = run(&["run", "-w", &w(), file.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Line: 5, Column: 10"),
        "{}",
        stderr(&out)
    );
}

// ---------- the shell through stdin ----------

fn shell(script: &str) -> std::process::Output {
    let child = spawn_with_stdin(
        cxr().args(["shell", "-w", &w()]).env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("cxr-test-history"),
        ),
        script,
    );
    wait_with_timeout(child, Duration::from_secs(60))
}

fn wait_with_timeout(child: Child, limit: Duration) -> std::process::Output {
    let id = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            unsafe { libc::kill(id as i32, libc::SIGKILL) };
            true
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(!watchdog.join().unwrap(), "the shell hung and was killed");
    out
}

#[test]
fn a_shell_script_runs_every_statement_and_fails_when_one_fails() {
    let out = shell(
        "\\format csv\n\
         SELECT COUNT(*) AS n\n  FROM patients;\n\
         SELECT nosuch FROM images;\n\
         SELECT 40 + 2 AS answer; SELECT 'two' AS per_line;\n\
         SELECT 7 AS last_without_semicolon",
    );
    let text = stdout(&out);
    assert_eq!(
        text,
        "n\n30805\nanswer\n42\nper_line\ntwo\nlast_without_semicolon\n7\n",
        "stderr: {}",
        stderr(&out)
    );
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));

    // A failed statement is named by its first line of SQL, not the comments above.
    let commented = shell("\\format csv\n-- a comment\n\n-- another\nSELECT nosuch FROM images;\n");
    assert!(
        stderr(&commented).contains("statement at line 5"),
        "{}",
        stderr(&commented)
    );

    let ok = shell("\\format csv\nSELECT 1 AS one;\n\\q\nSELECT 2 AS never;\n");
    assert_eq!(code(&ok), Some(0), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "one\n1\n");
}

#[test]
fn shell_commands_are_checked() {
    let out = shell("\\d nosuch\n");
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("images"),
        "lists the tables: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // Named as SQL names a table: `PATIENTS` folded, `"patients"` quoted.
    for name in ["patients", "PATIENTS", "\"patients\""] {
        let out = shell(&format!("\\format csv\n\\d {name}\n"));
        assert_eq!(code(&out), Some(0), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("patient_id"), "{}", stdout(&out));
    }
    let out = shell("\\d \"PATIENTS\"\n");
    assert!(
        stderr(&out).contains("no table or view named `PATIENTS`"),
        "{}",
        stderr(&out)
    );

    // A backslash command inside an open statement is not SQL.
    let out = shell("\\format csv\nSELECT 1 AS a\n\\d\n;\n");
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("open statement"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\n1\n");
}

/// Reads what the terminal shows until `done` says it is enough or 30 s pass.
fn read_terminal(master: &std::fs::File, done: impl Fn(&str) -> bool) -> String {
    let mut shown = String::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !done(&shown) && start.elapsed() < Duration::from_secs(30) {
        match (&*master).read(&mut buf) {
            Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
            Ok(n) => shown.push_str(&String::from_utf8_lossy(&buf[..n]).replace('\r', "")),
        }
    }
    shown
}

// Lines typed ahead or pasted without bracketed paste arrive in one read from a real
// terminal; the line editor used to keep the first and drop the rest.
#[test]
fn lines_pasted_into_the_shell_on_a_terminal_each_run() {
    use std::os::fd::AsRawFd;
    let (master, slave) = open_terminal(80);
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let tty = || Stdio::from(slave.try_clone().unwrap());
    let child = cxr()
        .args(["shell", "-w", &w()])
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("cxr-test-history"),
        )
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .unwrap();
    drop(slave);
    read_terminal(&master, |s| s.contains("cxr> "));
    (&master)
        .write_all(
            b"\\format csv\nSELECT 20 + 1 AS a;\nSELECT 40 + 2 AS b;\nSELECT\n  60 + 3 AS c;\n",
        )
        .unwrap();
    let shown = read_terminal(&master, |s| s.contains("c\n63\n"));
    (&master).write_all(b"\\q\n").unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert_eq!(code(&out), Some(0));
    for answer in ["a\n21\n", "b\n42\n", "c\n63\n"] {
        assert!(shown.contains(answer), "{answer:?} not in {shown:?}");
    }
}

/// CPU seconds a process has used (utime + stime from /proc).

// On this query DataFusion runs a nested-loop join, which never yields while it joins a
// probe batch with every buffered row: dropping the query alone left a core busy.
#[test]
fn ctrl_c_in_the_shell_stops_the_query_and_the_shell_goes_on() {
    let mut child = cxr()
        .args(["shell", "-w", &w()])
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("cxr-test-history"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            format!(
                "\\format csv\nSELECT COUNT(*) FROM ({}) a JOIN images b ON a.age + b.age = 1000;\n",
                // Eight times the images on the probe side: about half a minute of
                // joining on a quiet machine, were it not stopped.
                ["SELECT age FROM images"; 8].join(" UNION ALL ")
            )
            .as_bytes(),
        )
        .unwrap();
    stdin.flush().unwrap();
    // Wait until the query is really running (the shell busy on a core), however
    // loaded the machine is, before interrupting it.
    let pid = child.id();
    let start = Instant::now();
    let mut last = cpu_seconds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_seconds(pid);
        if now - last > 0.2 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = now;
    }
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    // The cancelled query stops at its next check, after the probe batch it is
    // joining (a quarter of a second on a quiet machine, longer on a loaded one):
    // within 10 s, a second passes in which the shell uses no core. Without the
    // check, the join ran on for its half a minute.
    let interrupted = Instant::now();
    let idle = loop {
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_millis(1000));
        let used = cpu_seconds(pid) - before;
        if used < 0.3 || interrupted.elapsed() > Duration::from_secs(10) {
            break used;
        }
    };
    assert!(
        idle < 0.3,
        "{idle:.2} CPU seconds a second, 10 s after Ctrl-C"
    );
    stdin.write_all(b"SELECT 42 AS answer;\n").unwrap();
    drop(stdin);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
    assert!(stdout(&out).ends_with("answer\n42\n"), "{}", stdout(&out));
}

// ---------- other commands ----------

fn write_png(path: &Path, side: u32) {
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    let px: Vec<u8> = (0..side * side).map(|i| (i % 251) as u8).collect();
    wr.write_image_data(&px).unwrap();
}

#[test]
fn synth_sample_walks_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("pngs");
    std::fs::create_dir_all(from.join("a/b")).unwrap();
    std::fs::create_dir_all(from.join("c")).unwrap();
    write_png(&from.join("a/00000001_000.png"), 300);
    write_png(&from.join("a/b/00000002_000.png"), 300);
    write_png(&from.join("c/00000003_000.png"), 300);
    let tar = dir.path().join("s.tar");
    let out = run(&[
        "synth",
        "sample",
        "--from",
        from.to_str().unwrap(),
        "--out",
        tar.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&tar).unwrap())
        .entries()
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().unwrap().into_owned();
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["00000001_000.png", "00000002_000.png", "00000003_000.png"]
    );

    // A name that says another archive (read back as one, it would fail) is refused.
    let zip = dir.path().join("s.zip");
    let out = run(&[
        "synth",
        "images",
        "--count",
        "2",
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert_refused(&out, "ending in .tar");
    assert!(!zip.exists());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(&[
        "synth",
        "sample",
        "--from",
        empty.to_str().unwrap(),
        "--out",
        dir.path().join("e.tar").to_str().unwrap(),
    ]);
    assert_refused(&out, "no .png");
}

#[test]
fn cooccur_matrix_fits_80_columns_and_thresholds_filter_pairs() {
    let w = w();
    for metric in ["lift", "conditional", "jaccard", "count"] {
        let out = cxr()
            .args(["cooccur", "-w", &w, "--format", "table", "--metric", metric])
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{metric}: {line:?}");
        }
        // Every finding is spelled one way: a key or the long form.
        assert!(
            text.contains("Pleural_Thickening") && text.contains("Effusion"),
            "{metric}: {text}"
        );
    }
    let lift = cxr()
        .args(["cooccur", "-w", &w, "--format", "table", "--metric", "lift"])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    assert!(stdout(&lift).contains("Ef Effusion"), "{}", stdout(&lift));

    // Pairs with lift ≥ 2 seen together at least 100 times, counted from the CSV.
    let images = nih_csv();
    let total = images.len() as f64;
    let mut n = std::collections::BTreeMap::<(String, String), f64>::new();
    let mut single = std::collections::BTreeMap::<String, f64>::new();
    for i in &images {
        for a in &i.labels {
            *single.entry(a.clone()).or_default() += 1.0;
            for b in &i.labels {
                if a != b {
                    *n.entry((a.clone(), b.clone())).or_default() += 1.0;
                }
            }
        }
    }
    let mut expected: Vec<(String, String)> = n
        .iter()
        .filter(|((a, b), ab)| **ab >= 100.0 && **ab * total / (single[a] * single[b]) >= 2.0)
        .map(|(k, _)| k.clone())
        .collect();
    expected.sort();
    let out = run(&[
        "cooccur",
        "-w",
        &w,
        "--format",
        "csv",
        "--metric",
        "lift",
        "--min-lift",
        "2",
        "--min-count",
        "100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    let got: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
}

#[test]
fn plot_titles_name_the_cohort() {
    let dir = tempfile::tempdir().unwrap();
    let w = w();
    for (kind, title) in [
        ("age", "Age by sex — Effusion, PA"),
        ("labels", "Finding prevalence — Effusion, PA"),
        (
            "cooccurrence",
            "Finding co-occurrence (count) — Effusion, PA",
        ),
    ] {
        let out_file = dir.path().join(format!("{kind}.svg"));
        let out = run(&[
            "plot",
            kind,
            "-w",
            &w,
            "--with",
            "Effusion",
            "--view",
            "PA",
            "--out",
            out_file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{kind}: {}", stderr(&out));
        let svg = std::fs::read_to_string(&out_file).unwrap();
        assert!(svg.contains(title), "{kind}: no title {title:?}");
    }
    // The heatmap's colour scale: 50 shaded steps beside the 196 cells.
    let svg = std::fs::read_to_string(dir.path().join("cooccurrence.svg")).unwrap();
    assert!(svg.matches("<rect").count() >= 196 + 50, "no colour scale");
}

#[test]
fn latin1_and_stray_quotes_name_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let ingest = |p: &Path| {
        run(&[
            "ingest",
            "--metadata",
            p.to_str().unwrap(),
            "--no-bbox",
            "--no-expert",
            "--no-splits",
            "--no-images",
            "-w",
            wh.to_str().unwrap(),
        ])
    };
    let mut latin1 =
        format!("{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n").into_bytes();
    latin1.extend_from_slice(b"00000002_000.png,Effusion,0,2,40,F,PA,1,1,0.1,0.1\n");
    latin1.extend_from_slice(b"00000003_000.png,Ed\xe8me,0,3,40,F,PA,1,1,0.1,0.1\n");
    let p = dir.path().join("latin1.csv");
    std::fs::write(&p, latin1).unwrap();
    let out = ingest(&p);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("latin1.csv, line 4, column 'Finding Labels'") && err.contains("UTF-8"),
        "{err}"
    );

    let quote = format!(
        "{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n00000002_000.png,Ma\"ss,0,2,40,F,PA,1,1,0.1,0.1\n\"00000003_000.png\",\"Mass\",0,3,40,F,PA,1,1,0.1,0.1\n"
    );
    let p = dir.path().join("quote.csv");
    std::fs::write(&p, quote).unwrap();
    let out = ingest(&p);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("quote.csv, line 3, column 'Finding Labels'") && err.contains("quote"),
        "{err}"
    );
    assert!(!wh.exists(), "nothing may be written");

    // Text or a blank after a field's closing quote (the CSV parser refuses both).
    for (name, field) in [("after.csv", "\"Mass\"x"), ("blank.csv", "\"Mass\" ")] {
        let text = format!(
            "{HEADER}\n00000001_000.png,Mass,0,1,58,M,PA,1,1,0.1,0.1\n00000002_000.png,{field},0,2,40,F,PA,1,1,0.1,0.1\n"
        );
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = ingest(&p);
        assert_eq!(code(&out), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{name}, line 3, column 'Finding Labels'"))
                && err.contains("closing double quote"),
            "{err}"
        );
        assert!(!wh.exists(), "nothing may be written");
    }

    // Properly quoted fields, doubled quotes included, still read.
    let ok = format!(
        "{HEADER}\n\"00000001_000.png\",\"Mass\",0,1,58,M,PA,1,1,0.1,0.1\n00000002_000.png,Effusion,0,2,40,F,\"P\"\"A\",1,1,0.1,0.1\n"
    );
    let p = dir.path().join("ok.csv");
    std::fs::write(&p, ok).unwrap();
    let out = ingest(&p);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------- semantics that must not mislead ----------

#[test]
fn refusals_for_things_that_cannot_mean_anything() {
    let w = w();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (csv, multi, pa) = (p("h.csv"), p("multi.csv"), p("pa.parquet"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["followup", "-w", &w, "--patient", "99999999"],
            "99999999",
        ),
        (vec!["export", "-w", &w, "--out", &csv], "Parquet"),
        (
            vec!["export", "-w", &w, "--format", "json", "--out", &pa],
            "--format",
        ),
        (
            vec![
                "export",
                "-w",
                &w,
                "--sql",
                "SELECT image_index FROM images",
                "--with",
                "Effusion",
                "--out",
                &pa,
            ],
            "--sql",
        ),
        (
            vec!["export", "-w", &w, "--row-group-size", "0", "--out", &pa],
            "row-group-size",
        ),
        (
            vec!["sql", "-w", &w, "--out", &multi, "SELECT 1; SELECT 2"],
            "one result",
        ),
        (
            vec![
                "run",
                "-w",
                &w,
                "conditional",
                "-p",
                "finding=cardiomegalyy",
            ],
            "Cardiomegaly",
        ),
        (vec!["inspect", "nope.parquet"], "no such file"),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // Nothing was left behind by the refused exports and sql --out.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn saved_query_findings_match_case_insensitively() {
    // Images with Cardiomegaly, counted from the CSV here.
    let n = nih_csv()
        .iter()
        .filter(|i| i.labels.contains("Cardiomegaly"))
        .count();
    let w = w();
    let count = |v: &str| {
        let out = run(&[
            "run",
            "-w",
            &w,
            "conditional",
            "-p",
            &format!("finding={v}"),
            "--format",
            "csv",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows = parse_csv(&stdout(&out));
        let header = &rows[0];
        let col = header.iter().position(|h| h == "n_a").expect("n_a column");
        rows[1][col].parse::<usize>().unwrap()
    };
    assert_eq!(count("cardiomegaly"), n);
    assert_eq!(count("CARDIOMEGALY"), n);
}

#[test]
fn followup_flags_select_whole_patient_timelines() {
    // Patients who ever had Effusion (with at least two studies), from the CSV here.
    let images = nih_csv();
    let mut studies = std::collections::HashMap::<i64, usize>::new();
    for i in &images {
        *studies.entry(i.patient).or_default() += 1;
    }
    let ever: std::collections::HashSet<i64> = images
        .iter()
        .filter(|i| i.labels.contains("Effusion") && studies[&i.patient] >= 2)
        .map(|i| i.patient)
        .collect();
    let out = run(&[
        "followup",
        "-w",
        &w(),
        "--with",
        "Effusion",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = parse_csv(&stdout(&out));
    let eff = rows.iter().find(|r| r[0] == "Effusion").unwrap();
    assert_eq!(eff[2].parse::<usize>().unwrap(), ever.len());
}

#[test]
fn tables_cut_long_cells_and_inspect_says_what_was_asked() {
    let w = w();
    let out = run(&[
        "sql",
        "-w",
        &w,
        "--format",
        "table",
        "SELECT array_agg(image_index) AS names FROM images WHERE patient_id < 100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().count() < 10, "{text}");
    assert!(text.contains('…'), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pa.parquet");
    let out = run(&[
        "export",
        "-w",
        &w,
        "--view",
        "PA",
        "--first-study",
        "--compression",
        "zstd(9)",
        "--out",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = stdout(&run(&["inspect", f.to_str().unwrap()]));
    assert!(info.contains("(ZSTD)"), "{info}");
    assert!(info.contains("cxr.compression: zstd(9)"), "{info}");
    let help = stdout(&run(&["help", "run"]));
    assert!(help.contains("cxr run effusion_cohort"), "{help}");
}

/// An empty result of a cohort that narrows is said on stderr, not left to guess;
/// the output stays well-formed (a CSV header) and the exit code 0.
#[test]
fn an_empty_cohort_says_so() {
    for args in [
        &["cohort", "--age", "100..110", "-f", "csv"][..],
        &[
            "cooccur",
            "--dataset",
            "nih",
            "--sex",
            "F",
            "--age",
            "100..110",
            "-f",
            "csv",
        ][..],
    ] {
        let mut a = args.to_vec();
        let wh = w();
        a.extend(["-w", wh.as_str()]);
        let out = run(&a);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), 1, "{args:?}");
        assert!(
            stderr(&out).contains("no image matches the cohort"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Aggregates over an empty cohort have no dataset to count in: their header
    // only, and the note.
    for (args, rows) in [
        (&["cooccur", "--age", "100..110"][..], 0),
        (&["followup", "--transitions", "--age", "100..110"][..], 0),
    ] {
        let mut a = args.to_vec();
        let wh = w();
        a.extend(["-f", "csv", "-w", wh.as_str()]);
        let out = run(&a);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).lines().count(), rows + 1, "{args:?}");
        assert!(
            stderr(&out).contains("no image matches the cohort"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // A cohort that matches says nothing of the kind, even when every count is zero
    // (images without findings have no co-occurrences).
    for args in [
        &["cohort", "--age", "40..41"][..],
        &["cooccur", "--no-finding"][..],
    ] {
        let mut a = args.to_vec();
        let wh = w();
        a.extend(["-f", "csv", "-w", wh.as_str()]);
        let out = run(&a);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("no image matches"), "{args:?}");
    }
}

// ---------- the adversarial sweep of this round ----------

/// Files named in a query: a damaged or empty one is bad input (exit 2, the file
/// named, no panic); cxr's own NDJSON and JSON outputs read back.
#[test]
fn files_named_in_sql_are_checked_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, b"PAR1garbagePAR1").unwrap();
    let empty = dir.path().join("empty.parquet");
    std::fs::write(&empty, b"").unwrap();
    for f in [&fake, &empty] {
        let out = run(&[
            "sql",
            "-w",
            &w(),
            &format!("SELECT count(*) FROM '{}'", f.display()),
        ]);
        assert_eq!(code(&out), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&f.display().to_string()),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    for ext in ["ndjson", "json"] {
        let file = dir.path().join(format!("o.{ext}"));
        let wrote = run(&[
            "sql",
            "-w",
            &w(),
            "--out",
            file.to_str().unwrap(),
            "SELECT 7 AS a, 'x' AS b UNION ALL SELECT 8, 'y'",
        ]);
        assert_eq!(code(&wrote), Some(0), "{}", stderr(&wrote));
        let out = run(&[
            "sql",
            "-w",
            &w(),
            "-f",
            "csv",
            &format!("SELECT a, b FROM '{}' ORDER BY a", file.display()),
        ]);
        assert_eq!(code(&out), Some(0), "{ext}: {}", stderr(&out));
        assert_eq!(stdout(&out), "a,b\n7,x\n8,y\n", "{ext}");
    }
    // A query that fails on its values is the user's to fix, not cxr's failure.
    let out = run(&["sql", "-w", &w(), "SELECT CAST('x' AS INT)"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}

/// `--where` is one condition: it cannot close the parentheses around it and drop
/// the other cohort flags.
#[test]
fn a_where_clause_cannot_break_out() {
    let out = run(&[
        "cohort",
        "--with",
        "Hernia",
        "--where",
        "age > 50) OR (1=1",
        "-f",
        "csv",
        "-w",
        &w(),
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    // A trailing comment is still allowed, and the condition still applies: the
    // Hernia images over 50, counted from the CSV.
    let expected = nih_csv()
        .iter()
        .filter(|i| i.labels.iter().any(|l| l == "Hernia") && i.age > 50)
        .count();
    let out = run(&[
        "cohort",
        "--with",
        "Hernia",
        "--where",
        "age > 50 -- older",
        "-f",
        "csv",
        "-w",
        &w(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), expected + 1);
}

/// No command writes inside a warehouse: not `COPY TO` with --allow-write, not a
/// plot, not a synthetic archive.
#[test]
fn nothing_is_written_inside_a_warehouse() {
    let root = w();
    let target = Path::new(&root).join("evil.csv");
    let attempts: Vec<Vec<String>> = vec![
        vec![
            "sql".into(),
            "-w".into(),
            root.clone(),
            "--allow-write".into(),
            format!("COPY (SELECT 1 AS a) TO '{}'", target.display()),
        ],
        vec![
            "plot".into(),
            "age".into(),
            "-w".into(),
            root.clone(),
            "--out".into(),
            Path::new(&root).join("a.svg").display().to_string(),
        ],
        vec![
            "synth".into(),
            "images".into(),
            "--count".into(),
            "2".into(),
            "--out".into(),
            Path::new(&root).join("x.tar").display().to_string(),
        ],
    ];
    for a in attempts {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{a:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("warehouse"), "{}", stderr(&out));
    }
    // Nor through an external table located there, nor an INSERT into its tables.
    for sql in [
        format!(
            "CREATE EXTERNAL TABLE t (a INT) STORED AS CSV LOCATION '{}/ext/'; INSERT INTO t VALUES (1)",
            root
        ),
        "INSERT INTO images SELECT * FROM images LIMIT 1".to_string(),
    ] {
        let out = run(&["sql", "-w", &root, "--allow-write", &sql]);
        assert_eq!(code(&out), Some(2), "{sql}: {}", stderr(&out));
    }
    for name in ["evil.csv", "a.svg", "x.tar", "ext"] {
        assert!(!Path::new(&root).join(name).exists(), "{name} was written");
    }
    assert_eq!(
        int(Path::new(&root), "SELECT COUNT(*) FROM images"),
        112_120
    );
    // Nor a warehouse inside a warehouse (the outer one's next commit would remove it).
    let inner = Path::new(&root).join("inner");
    let out = run(&["ingest", "--no-images", "-w", inner.to_str().unwrap()]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(!inner.exists());
}

/// A script may end with a comment, and a file that includes itself stops.
#[test]
fn shell_scripts_end_with_comments_and_includes_stop() {
    let out = shell("\\format csv\nSELECT 1 AS a;\n-- end of report\n");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\n1\n");
    let dir = tempfile::tempdir().unwrap();
    let this = dir.path().join("self.sql");
    std::fs::write(&this, format!("\\i {}\n", this.display())).unwrap();
    let out = shell(&format!("\\i {}\n", this.display()));
    assert_refused(&out, "deep");
}

/// Inputs that would double data are refused before any work: a dataset given
/// twice, the same NIH release as both the metadata and the other release; split
/// names that repeat or are empty.
#[test]
fn doubled_inputs_and_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("w");
    let meta = data("Data_Entry_2017_v2020.csv.gz");
    let labels = dir.path().join("labels.csv");
    std::fs::write(&labels, "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding\n").unwrap();
    let twice = format!("chexpert={}", labels.display());
    let out = run(&[
        "ingest",
        "--no-images",
        "-w",
        wh.to_str().unwrap(),
        "--dataset",
        &twice,
        "--dataset",
        &twice,
    ]);
    assert_refused(&out, "twice");
    let out = run(&[
        "ingest",
        "--no-images",
        "-w",
        wh.to_str().unwrap(),
        "--metadata",
        meta.to_str().unwrap(),
        "--other-release",
        meta.to_str().unwrap(),
    ]);
    assert_refused(&out, "same NIH release");
    assert!(!wh.join("manifest.json").exists(), "nothing is written");

    for names in ["a,a", "a,"] {
        let out = run(&[
            "split",
            "-w",
            &w(),
            "--seed",
            "1",
            "--fractions",
            "0.7,0.3",
            "--names",
            names,
        ]);
        assert_eq!(code(&out), Some(2), "{names}: {}", stderr(&out));
    }
}

#[test]
fn sql_may_start_with_a_comment() {
    // Flags may follow the SQL.
    let out = run(&[
        "sql",
        "-w",
        &w(),
        "-- images of the shipped metadata\nSELECT COUNT(*) AS n FROM images",
        "-f",
        "csv",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("n\n{}\n", nih_csv().len()));
}

/// The words of a command line as a shell splits them (double and single quotes).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => (quote, started) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (_, c) => (word.push(c), started = true).0,
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The example command lines of `cxr help COMMAND`.
fn help_examples(command: &str) -> Vec<String> {
    let out = run(&["help", command]);
    assert_eq!(code(&out), Some(0), "cxr help {command}");
    let help = stdout(&out);
    let start = help
        .find("Example:\n")
        .or_else(|| help.find("Examples:\n"))
        .unwrap_or_else(|| panic!("cxr help {command} has no examples"));
    help[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .filter(|l| l.starts_with("cxr "))
        .map(str::to_string)
        .collect()
}

/// Every example that `cxr help COMMAND` shows runs as a user would type it, in a
/// folder of their own with the shipped data beside it, and exits 0 (examples
/// writing to /tmp write to the test's folder instead).
#[test]
fn every_help_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for shared in ["data", "queries"] {
        std::os::unix::fs::symlink(root.join(shared), dir.path().join(shared)).unwrap();
    }
    // A file the user downloaded, in the folder they work in.
    std::os::unix::fs::symlink(
        root.join("data/Data_Entry_2017.csv.gz"),
        dir.path().join("Data_Entry_2017.csv.gz"),
    )
    .unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let commands = [
        "ingest", "synth", "sql", "run", "cohort", "cooccur", "followup", "plot", "export",
        "inspect", "split", "agree", "shell",
    ];
    let mut ran = 0;
    for command in commands {
        for line in help_examples(command) {
            let line = line.replace("/tmp/", &format!("{}/", tmp.display()));
            let words = shell_words(&line);
            let out = cxr()
                .args(&words[1..])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(
                code(&out),
                Some(0),
                "`{line}` (from cxr help {command}) failed: {}",
                stderr(&out)
            );
            ran += 1;
        }
    }
    assert!(ran >= 25, "only {ran} examples found");
}

/// A pseudo-terminal `columns` wide and 50 rows high: its master side and the
/// terminal a child is given.
fn open_terminal(columns: u16) -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let size = libc::winsize {
        ws_row: 50,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (0, 0);
    let ok = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ok, 0, "openpty");
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Runs cxr with stdout and stderr on a pseudo-terminal `columns` wide; returns
/// what the terminal showed and the exit code.
fn run_on_terminal(args: &[&str], columns: u16) -> (String, Option<i32>) {
    let (mut master, slave) = open_terminal(columns);
    let child = cxr()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // Reads until the child has closed the terminal (EIO).
    let mut shown = Vec::new();
    let _ = master.read_to_end(&mut shown);
    let out = wait_with_timeout(child, Duration::from_secs(60));
    let shown = String::from_utf8_lossy(&shown).replace('\r', "");
    (shown, code(&out))
}

fn display_width(line: &str) -> usize {
    line.chars().count()
}

/// A wide result fits the terminal as DuckDB's does: the middle columns give way
/// to one `…` column, each row stays one line, the footer says what is hidden; a
/// long result shows its first 40 rows.
#[test]
fn wide_results_fit_the_terminal() {
    let wh = w();
    for columns in [80u16, 120] {
        let (shown, code) =
            run_on_terminal(&["sql", "-w", &wh, "SELECT * FROM images LIMIT 3"], columns);
        assert_eq!(code, Some(0), "{shown}");
        let lines: Vec<&str> = shown.lines().collect();
        for l in &lines {
            assert!(
                display_width(l) <= columns as usize,
                "{columns}: {l:?} in\n{shown}"
            );
        }
        // Header, its rule, 3 rows, 2 borders and the footer: one line per row.
        assert_eq!(lines.len(), 8, "{shown}");
        assert!(
            lines[1].contains("image_index") && lines[1].contains("…"),
            "{shown}"
        );
        for image in ["00000001_000.png", "00000001_001.png", "00000001_002.png"] {
            assert!(shown.contains(image), "{image} not whole in\n{shown}");
        }
        // The header of the same result as CSV, which prints every column.
        let total = run_csv(&["sql", "-w", &wh, "SELECT * FROM images LIMIT 3"])[0].len();
        assert!(
            lines[7].starts_with(&format!("3 rows, {total} columns (")),
            "{shown}"
        );
    }
    let (shown, code) = run_on_terminal(&["sql", "-w", &wh, "SELECT image_index FROM images"], 80);
    assert_eq!(code, Some(0));
    assert!(
        // Every row is counted though only 40 are shown: the release's 112,120 images.
        shown.contains("112,120 rows (40 shown; --max-rows 0 shows all)"),
        "{shown}"
    );
    assert_eq!(shown.matches(".png").count(), 40);
}

/// Tables are for terminals: into a pipe every command prints text a program
/// reads (CSV), never box drawing.
#[test]
fn no_box_drawing_into_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(&script, "SELECT 1 AS one;\n\\d\n").unwrap();
    let runs: Vec<(Vec<&str>, Option<&Path>)> = vec![
        (vec!["ingest", "--no-images", "-w", w], None),
        (vec!["run", "--list"], None),
        (
            vec![
                "split",
                "--seed",
                "7",
                "--fractions",
                "0.8,0.2",
                "--stratify",
                "-w",
                w,
            ],
            None,
        ),
        (
            vec!["agree", "--a", "nih_2020", "--b", "google_2019", "-w", w],
            None,
        ),
        (vec!["shell", "-w", w], Some(&script)),
    ];
    for (args, stdin) in runs {
        let stdin = match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        };
        let out = cxr().args(&args).stdin(stdin).output().unwrap();
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.is_empty(), "{args:?} printed nothing");
        assert!(
            !text.contains(['│', '─', '┆', '╞', '┌']),
            "{args:?} drew a table into a pipe:\n{text}"
        );
    }
    // The CSV reads back: the ingest's table counts match the CSV it read.
    let out = cxr()
        .args(["ingest", "--no-images", "-w", w])
        .output()
        .unwrap();
    let text = stdout(&out);
    let images_line = text.lines().find(|l| l.starts_with("images,")).unwrap();
    assert_eq!(images_line, "images,112120", "{text}");
}

/// README's images are what `docs/images.sh` draws with this cxr: drawn again here
/// and compared byte for byte (a plot changed without running the script fails).
#[test]
fn readme_images_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("sh")
        .arg(root.join("docs/images.sh"))
        .arg(dir.path())
        .current_dir(root)
        .env("CXR_BIN", env!("CARGO_BIN_EXE_cxr"))
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut compared = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let drawn = entry.unwrap().path();
        let name = drawn.file_name().unwrap().to_str().unwrap().to_string();
        let shipped = std::fs::read(root.join("docs").join(&name)).unwrap();
        assert!(
            std::fs::read(&drawn).unwrap() == shipped,
            "docs/{name} is stale: run docs/images.sh"
        );
        compared += 1;
    }
    assert!(compared >= 3, "docs/images.sh drew {compared} images");
}

/// CXR_TRACE=1 says where the time of every command goes, on stderr, and changes
/// nothing on stdout.
#[test]
fn trace_covers_every_command() {
    let w = w();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.parquet");
    let manifest = manifest.to_str().unwrap();
    // A command computing its answer itself (agree) has its run phase; one writing
    // a file as its rows stream (export) has the two as one.
    for (args, phases) in [
        (
            vec!["agree", "--a", "nih_2020", "--b", "google_2019"],
            &["open warehouse", "plan", "run", "the whole command"][..],
        ),
        (
            vec!["export", "--view", "PA", "--out", manifest],
            &[
                "open warehouse",
                "plan",
                "run and write",
                "the whole command",
            ][..],
        ),
    ] {
        let mut full = args.clone();
        full.extend_from_slice(&["-w", &w]);
        let traced = cxr().args(&full).env("CXR_TRACE", "1").output().unwrap();
        assert_eq!(code(&traced), Some(0), "{args:?}: {}", stderr(&traced));
        let err = stderr(&traced);
        for phase in phases {
            assert!(
                err.contains(&format!("[trace] {phase}: ")),
                "{args:?} has no {phase} line: {err}"
            );
        }
    }
    for args in [
        vec!["cohort", "--with", "Effusion", "--summary"],
        vec!["cooccur", "--sex", "F"],
        vec!["followup", "--transitions"],
        vec!["sql", "SELECT COUNT(*) AS n FROM images"],
        vec!["run", "top_pairs"],
    ] {
        let mut full = args.clone();
        full.extend_from_slice(&["-w", &w]);
        let plain = run(&full);
        let traced = cxr().args(&full).env("CXR_TRACE", "1").output().unwrap();
        assert_eq!(code(&traced), Some(0), "{args:?}: {}", stderr(&traced));
        assert_eq!(stdout(&traced), stdout(&plain), "{args:?}");
        let err = stderr(&traced);
        for phase in [
            "open warehouse",
            "plan",
            "run",
            "print",
            "the whole command",
        ] {
            assert!(
                err.contains(&format!("[trace] {phase}: ")),
                "{args:?} has no {phase} line: {err}"
            );
        }
    }
}

/// Messages a person reads: every error starts "cxr: error:" (clap's too), a COPY is
/// echoed as it can be run again, a ragged CSV names its line and counts, a file that
/// is not Parquet says why without the parquet crate's words, and no "(os error N)".
#[test]
fn errors_in_plain_words() {
    let wh = common::wh2020();
    let w = wh.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["sql", "-w", w, "--bogus"]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).starts_with("cxr: error: unexpected argument '--bogus'"),
        "{}",
        stderr(&out)
    );

    let target = wh.join("x.parquet");
    let sql = format!("COPY images TO '{}'", target.display());
    let out = run(&["sql", "-w", w, &sql]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains(&format!("`{sql}`")),
        "{}",
        stderr(&out)
    );

    // Numbers on the command line that are not numbers, in words (not Rust's
    // "invalid digit found in string").
    for (args, said) in [
        (
            vec!["cohort", "-w", w, "--min-studies", "-1"],
            "is not a whole number from 0 to 4,294,967,295",
        ),
        (
            vec!["cohort", "-w", w, "--min-studies", "99999999999"],
            "is not a whole number from 0 to 4,294,967,295",
        ),
        (vec!["split", "-w", w, "--seed", "x"], "not a whole number"),
        (
            vec!["split", "-w", w, "--seed", "1", "--fractions", "a,b"],
            "not a number",
        ),
    ] {
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(said)
                && !stderr(&out).contains("invalid digit")
                && !stderr(&out).contains("invalid float")
                && !stderr(&out).contains("0..="),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // `plot` writes a picture: its help offers neither --format nor --max-rows.
    let out = run(&["help", "plot"]);
    assert_eq!(code(&out), Some(0));
    let help = stdout(&out);
    assert!(
        !help.contains("--format") && !help.contains("--max-rows") && help.contains(".svg or .png"),
        "{help}"
    );

    // A query that fails as it runs writes nothing to stdout (not a header alone).
    for format in ["csv", "json", "markdown"] {
        let out = run(&["sql", "-w", w, "-f", format, "SELECT 1 / 0 AS x"]);
        assert_eq!(code(&out), Some(2), "{format}");
        assert!(stdout(&out).is_empty(), "{format}: {}", stdout(&out));
        assert!(stderr(&out).contains("by zero"), "{}", stderr(&out));
    }

    // A table that does not exist, without DataFusion's catalog and schema names.
    let out = run(&["sql", "-w", w, "SELECT * FROM nosuch_table"]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("table 'nosuch_table' not found")
            && !stderr(&out).contains("datafusion."),
        "{}",
        stderr(&out)
    );

    // A folder whose manifest.json is not cxr's: said in words, with the place.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    for (text, said) in [
        ("not json", "not valid JSON at line 1 column 2"),
        (
            "{\"foo\": 1}",
            "missing field `schema_version`, line 1 column 10",
        ),
    ] {
        std::fs::write(foreign.join("manifest.json"), text).unwrap();
        let out = run(&["sql", "-w", foreign.to_str().unwrap(), "SELECT 1"]);
        assert_eq!(code(&out), Some(2));
        assert!(
            stderr(&out).contains(&format!("not a cxr manifest ({said})")),
            "{}",
            stderr(&out)
        );
    }

    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3,4,5\n").unwrap();
    let sql = format!("SELECT * FROM '{}'", ragged.display());
    let out = run(&["sql", "-w", w, &sql]);
    assert_eq!(code(&out), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "cxr: error: {}, line 3: this record has 3 fields, the header (line 1) 2 fields; every record of a CSV file needs the same number of fields",
            ragged.display()
        )
    );

    let text = dir.path().join("notes.parquet");
    std::fs::write(&text, "these are notes, not a table\n").unwrap();
    let out = run(&["inspect", text.to_str().unwrap()]);
    assert_refused(
        &out,
        "not a Parquet file (it does not end with the PAR1 marker",
    );

    let out = run(&["sql", "-w", w, "-o", "/proc/no/such.csv", "SELECT 1"]);
    assert_ne!(code(&out), Some(0));
    assert!(!stderr(&out).contains("os error"), "{}", stderr(&out));
}

#[test]
fn unnamed_expressions_and_where_errors_are_named_as_sql_spells_them() {
    let rows = run_csv(&["sql", "-w", &w(), "SELECT 1 + 1, 'a', upper('x'), 2 * 3.5"]);
    assert_eq!(rows[0], ["1 + 1", "'a'", "upper('x')", "2 * 3.5"]);
    assert_eq!(rows[1], ["2", "a", "X", "7.0"]);
    // A mistyped --where column: the columns to type, not the cohort SQL's aliases.
    let out = run(&["cohort", "-w", &w(), "--where", "nodule_size > 3"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("no column `nodule_size` (did you mean `nodule`?)"),
        "{said}"
    );
    assert!(
        said.contains("the columns are: image_index, patient_id"),
        "{said}"
    );
    assert!(!said.contains("i.") && !said.contains("p."), "{said}");
    assert_eq!(said.matches("image_index").count(), 1, "{said}");
    assert!(
        said.starts_with("cxr: error: --where `nodule_size > 3`: no column"),
        "{said}"
    );
    // A value of the wrong type is said as an error of --where, on every command;
    // so is an error that only reading the rows meets (planning leaves `age / 0`
    // alone; NIH's age is an integer), on a command that prints, one that computes
    // its rows once, and export.
    let warehouse = w();
    let said_of_where = |predicate: &str, commands: &[&[&str]], says: &str| {
        for command in commands {
            let mut args = command.to_vec();
            args.extend(["--where", predicate, "-w", warehouse.as_str()]);
            let out = run(&args);
            assert_eq!(code(&out), Some(2), "{command:?}: {}", stderr(&out));
            let said = stderr(&out);
            let start = format!("cxr: error: --where `{predicate}`: ");
            assert!(
                said.starts_with(&start) && said.contains(says),
                "{command:?}: {said}"
            );
        }
    };
    let export: &[&str] = &["export", "--out", "/tmp/none.parquet"];
    said_of_where(
        "age = 'old'",
        &[
            &["cohort"],
            &["cooccur"],
            &["cohort", "--dataset", "nih"],
            export,
        ],
        "the text 'old' is not a value of type",
    );
    said_of_where(
        "age / 0 = 1",
        &[&["cohort"], &["cohort", "--summary"], &["cooccur"], export],
        "zero",
    );
    // DataFusion's planning errors, in words: no signatures, coercion rules, wildcard
    // expansion or "internal error".
    for (sql, expected) in [
        ("SELECT sum(label) FROM findings", "no function sum(Utf8)"),
        (
            "SELECT image_index FROM images GROUP BY sex",
            "column `image_index` must be in GROUP BY",
        ),
        (
            "SELECT image_index, image_index FROM images",
            "two result columns are named `image_index`",
        ),
        (
            "SELECT count(*) FROM images WHERE labels = 5",
            "cannot compare List(Utf8) with Int64",
        ),
        ("SELECT nope FROM images", "no column `nope`"),
    ] {
        let out = run(&["sql", "-w", &w(), sql]);
        assert_eq!(code(&out), Some(2), "{sql}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.contains(expected), "{sql}: {said}");
        for internal in [
            "Internal error",
            "DataFusion",
            "type_coercion",
            "wildcard",
            "Valid fields",
        ] {
            assert!(!said.contains(internal), "{sql}: {said}");
        }
    }
}

// ---------- what a new user's walk found ----------

/// `cxr CMD` on a terminal that reports no size (as under `script`), with `$COLUMNS`.
fn run_on_unsized_terminal(args: &[&str], columns: &str) -> (String, Option<i32>) {
    let (mut master, slave) = open_terminal(0);
    let child = cxr()
        .args(args)
        .env("COLUMNS", columns)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut shown = Vec::new();
    let _ = master.read_to_end(&mut shown);
    let out = wait_with_timeout(child, Duration::from_secs(60));
    (
        String::from_utf8_lossy(&shown).replace('\r', ""),
        code(&out),
    )
}

/// A command's own table (here `run --list`) is as wide as `$COLUMNS` says when the
/// terminal reports no size, not squeezed to one character a column.
#[test]
fn own_tables_follow_columns_on_an_unsized_terminal() {
    let (shown, code) = run_on_unsized_terminal(&["run", "--list"], "120");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains("top_pairs") && shown.contains("description"),
        "{shown}"
    );
    assert!(shown.lines().all(|l| display_width(l) <= 120), "{shown}");
}

/// A table's cells use the room the terminal has: a two-column result of long
/// label strings is not cut to 20 characters on 80 columns.
#[test]
fn long_cells_use_the_terminal() {
    let wh = w();
    // The longest label string of the release, found from the raw file.
    let longest = nih_csv()
        .iter()
        .map(|i| i.labels.iter().cloned().collect::<Vec<_>>().join("|"))
        .max_by_key(|s| s.len())
        .unwrap();
    assert!(longest.len() > 40, "{longest}");
    let sql = format!(
        "SELECT image_index, finding_labels FROM images WHERE finding_labels = '{longest}' LIMIT 1"
    );
    let (shown, code) = run_on_terminal(&["sql", "-w", &wh, &sql], 80);
    assert_eq!(code, Some(0), "{shown}");
    let row = shown.lines().nth(3).unwrap();
    assert!(
        display_width(row) > 60 && display_width(row) <= 80,
        "the row does not use the 80 columns:\n{shown}"
    );
}

/// The shell's footer names the shell's commands, not the command line's flags.
#[test]
fn shell_footer_names_shell_commands() {
    let out = shell("\\format table\n\\maxrows 2\nSELECT image_index FROM images LIMIT 5;\n");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5 rows (2 shown; \\maxrows 0 shows all)"),
        "{text}"
    );
    let out = shell("\\i /nonexistent/nosuch.sql\n");
    assert!(
        stderr(&out).contains("nosuch.sql") && !stderr(&out).contains("os error"),
        "{}",
        stderr(&out)
    );
}

/// `cxr help followup` does not offer --first-study, which followup refuses; the
/// cohort commands do.
#[test]
fn help_offers_only_accepted_flags() {
    let followup = stdout(&run(&["help", "followup"]));
    assert!(!followup.contains("--first-study"), "{followup}");
    assert!(followup.contains("--with"), "{followup}");
    let cohort = stdout(&run(&["help", "cohort"]));
    assert!(cohort.contains("--first-study"), "{cohort}");
}

/// Flag values a user gets wrong are named in words: a negative age (written as a
/// value, not taken for a flag), `--max-rows` into a pipe, a zero row group, an
/// export `--sql` without image_index, an unknown `--sort-by` column, an NIH cohort
/// file given to `agree`.
#[test]
fn wrong_values_are_named_in_words() {
    let wh = w();
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str], expected: &str, not: &[&str]| {
        let out = run(args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        for n in not {
            assert!(!err.contains(n), "{args:?}: {err}");
        }
    };
    check(
        &["cohort", "-w", &wh, "--age", "-5..10"],
        "--age `-5..10`: ages are whole years, 0 or more",
        &[],
    );
    check(
        &["cohort", "-w", &wh, "--dataset", ""],
        "--dataset needs dataset names",
        &[],
    );
    check(
        &["cohort", "-w", &wh, "--view", "lateral"],
        "--view `lateral`: expected PA or AP",
        &[],
    );
    check(
        &["sql", "-w", &wh, "SELECT 1", "--max-rows", "5"],
        "stdout is not a terminal",
        &[],
    );
    let out = dir.path().join("m.parquet");
    let out = out.to_str().unwrap();
    check(
        &["export", "-w", &wh, "--row-group-size", "0", "--out", out],
        "is not a whole number of 1 or more",
        &["18446744073709551615"],
    );
    check(
        &[
            "export",
            "-w",
            &wh,
            "--sql",
            "SELECT 1 AS one",
            "--out",
            out,
        ],
        "--sql must return image_index",
        &["Valid fields"],
    );
    check(
        &["export", "-w", &wh, "--sort-by", "nosuch", "--out", out],
        "--sort-by `nosuch`: no such column in the export; its columns are: image_index",
        &["Valid fields", "target."],
    );
    assert!(!Path::new(out).exists(), "a refused export wrote {out}");
    // An --sql that selects none of the warehouse's images is said, as an empty cohort.
    let empty = dir.path().join("empty.parquet");
    let said = cxr()
        .args([
            "export",
            "-w",
            &wh,
            "--sql",
            "SELECT 'nope.png' AS image_index",
            "--out",
        ])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(code(&said), Some(0), "{}", stderr(&said));
    assert!(
        stderr(&said).contains("note: --sql selects no image"),
        "{}",
        stderr(&said)
    );
    let file = dir.path().join("old.sql");
    std::fs::write(&file, "SELECT image_index FROM images WHERE age > 80").unwrap();
    check(
        &[
            "agree",
            "-w",
            &wh,
            "--a",
            "nih_2020",
            "--b",
            "google_2019",
            "--cohort",
            file.to_str().unwrap(),
        ],
        "a cohort query returns dataset and image_id",
        &["No field named"],
    );
    // No warehouse in the working folder: named as a path, not "at warehouse".
    let out = cxr()
        .args(["sql", "SELECT 1"])
        .env_remove("CXR_WAREHOUSE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_refused(&out, "no warehouse at ./warehouse");
}

/// `plot boxes` titles the datasets whose boxes it draws: on an NIH-only warehouse,
/// NIH alone.
#[test]
fn box_plot_names_the_datasets_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("boxes.svg");
    let out = run(&["plot", "boxes", "-w", &w(), "--out", svg.to_str().unwrap()]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Where boxes lie (nih)"), "{text:.2000}");
}

/// A split leaves one version of the warehouse, prints its splits in the order
/// named, and an export's folder of partitions reads back as one table (a glob of
/// its files too), with the partition column.
#[test]
fn split_and_partitioned_export_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let wh = small_warehouse(dir.path(), 200, "wh");
    let w = wh.to_str().unwrap();
    let out = run(&[
        "split",
        "-w",
        w,
        "--seed",
        "3",
        "--fractions",
        "0.6,0.3,0.1",
        "--names",
        "train,val,test",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("measure,train,val,test,(all)\n"),
        "{}",
        stdout(&out)
    );
    let versions: Vec<String> = std::fs::read_dir(&wh)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("v-"))
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");

    let parts = dir.path().join("parts");
    let out = run(&[
        "export",
        "-w",
        w,
        "--partition-by",
        "split",
        "--out",
        parts.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let count = |table: &str| {
        run_csv(&[
            "sql",
            "-w",
            w,
            &format!("SELECT COUNT(*) AS n FROM '{table}'"),
        ])[1][0]
            .clone()
    };
    // 200 images, every one in one of the three splits (100 patients of 2 images).
    let folder = format!("{}/", parts.display());
    assert_eq!(count(&folder), "200");
    // A glob over files in folders: two results of 3 and 4 rows.
    let runs = dir.path().join("runs");
    for (name, n) in [("a", 3), ("b", 4)] {
        std::fs::create_dir_all(runs.join(name)).unwrap();
        let file = runs.join(name).join("out.parquet");
        let sql = format!("SELECT * FROM images LIMIT {n}");
        let out = run(&["sql", "-w", w, &sql, "--out", file.to_str().unwrap()]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    }
    assert_eq!(count(&format!("{}/*/out.parquet", runs.display())), "7");
    let by_split = run_csv(&[
        "sql",
        "-w",
        w,
        &format!("SELECT split, COUNT(*) AS n FROM '{folder}' GROUP BY split ORDER BY split"),
    ]);
    let names: Vec<&str> = by_split[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["test", "train", "val"], "{by_split:?}");
    let images: i64 = by_split[1..]
        .iter()
        .map(|r| r[1].parse::<i64>().unwrap())
        .sum();
    assert_eq!(images, 200);
    // A glob through the `split=...` folders finds the same rows, the folders a column.
    let globbed = run_csv(&[
        "sql",
        "-w",
        w,
        &format!(
            "SELECT split, COUNT(*) AS n FROM '{}/*/*.parquet' GROUP BY split ORDER BY split",
            parts.display()
        ),
    ]);
    assert_eq!(globbed, by_split);
    let sql = format!("SELECT * FROM '{}/*/none*.parquet'", parts.display());
    let out = run(&["sql", "-w", w, &sql]);
    assert_refused(&out, "no Parquet file matches");
    // A damaged file in a folder is named; a folder without Parquet files says so.
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("a.parquet"), b"PAR1xyz").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (folder, said) in [(&damaged, "a.parquet"), (&empty, "has none")] {
        let sql = format!("SELECT * FROM '{}/'", folder.display());
        let out = run(&["sql", "-w", w, &sql]);
        assert_refused(&out, said);
    }
}

/// `inspect` says a file has no key-value metadata rather than print an empty heading.
#[test]
fn inspect_says_when_there_is_no_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.parquet");
    let out = run(&[
        "sql",
        "-w",
        &w(),
        "SELECT 1 AS one",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let out = run(&["inspect", file.to_str().unwrap()]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("metadata: none"), "{}", stdout(&out));
}

/// JSON and NDJSON that cxr wrote read back with their columns in the order written.
#[test]
fn json_reads_back_in_written_order() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["json", "ndjson"] {
        let file = dir.path().join(format!("rt.{ext}"));
        let file = file.to_str().unwrap();
        let sql = "SELECT image_index, labels, age, follow_up FROM images LIMIT 3";
        let out = run(&["sql", "-w", &w(), sql, "--out", file]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let back = run_csv(&["sql", "-w", &w(), &format!("SELECT * FROM '{file}'")]);
        assert_eq!(
            back[0],
            ["image_index", "labels", "age", "follow_up"],
            "{ext}"
        );
        assert_eq!(back.len(), 4, "{ext}");
    }
}

/// `plot --show-sql` prints the SQL of the plot's data without needing `--out`; run
/// with `cxr sql`, it counts each finding as the raw file does.
#[test]
fn plot_shows_the_sql_of_its_data() {
    let out = run(&["plot", "labels", "-w", &w(), "--show-sql"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let sql = stdout(&out);
    let rows = run_csv(&["sql", "-w", &w(), &sql]);
    let label = rows[0].iter().position(|c| c == "label").unwrap();
    let n = rows[0].iter().position(|c| c == "n").unwrap();
    let effusion = rows.iter().find(|r| r[label] == "Effusion").unwrap();
    let expected = nih_csv()
        .iter()
        .filter(|i| i.labels.contains("Effusion"))
        .count();
    assert_eq!(effusion[n], expected.to_string());
    // plot boxes prints the SQL of its boxes too (its rows are counted in
    // `meaningless_values_are_refused_and_outputs_read_back`).
    let out = run(&["plot", "boxes", "-w", &w(), "--show-sql"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("FROM dataset_boxes"),
        "{}",
        stdout(&out)
    );
}

/// A plot with nothing to draw says what is missing; `agree --cohort` describes the
/// file agree reads; an empty number is said in words.
#[test]
fn plots_and_flags_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("age.svg");
    let out = run(&[
        "plot",
        "age",
        "-w",
        &w(),
        "--with",
        "Hernia",
        "--without",
        "Hernia",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_refused(
        &out,
        "nothing to plot: no image matches the cohort (Hernia, no Hernia)",
    );
    assert!(!svg.exists());
    let help = stdout(&run(&["help", "agree"]));
    assert!(help.contains("returning dataset and image_id"), "{help}");
    let out = run(&["split", "-w", &w(), "--seed", "1", "--fractions", ""]);
    assert_refused(&out, "empty; a number is needed");
}

/// Each image's findings in a shipped NIH metadata CSV, read here without cxr.
fn findings_by_image(name: &str) -> BTreeMap<String, BTreeSet<String>> {
    nih_csv_records(name)
        .into_iter()
        .map(|f| (f[0].clone(), findings_of(&f[1])))
        .collect()
}

/// The rows (no header) of `cxr run nih_label_revision` on `wh`.
fn label_revision(wh: &Path) -> Vec<Vec<String>> {
    let rows = run_csv(&[
        "run",
        "nih_label_revision",
        "-w",
        wh.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    rows[1..].to_vec()
}

#[test]
fn nih_label_revision_counts_what_the_two_csvs_differ_in() {
    let (v2017, v2020) = (
        findings_by_image("Data_Entry_2017.csv.gz"),
        findings_by_image("Data_Entry_2017_v2020.csv.gz"),
    );
    let mut expected = BTreeSet::new();
    let (mut gained, mut lost) = (
        BTreeMap::<&str, usize>::new(),
        BTreeMap::<&str, usize>::new(),
    );
    let mut gaining = 0;
    for (image, now) in &v2020 {
        let Some(before) = v2017.get(image) else {
            continue;
        };
        for f in now.difference(before) {
            *gained.entry(f).or_default() += 1;
        }
        for f in before.difference(now) {
            *lost.entry(f).or_default() += 1;
        }
        gaining += usize::from(now.difference(before).next().is_some());
    }
    for (f, n) in gained {
        expected.insert(("gained".to_string(), f.to_string(), n.to_string()));
    }
    for (f, n) in lost {
        expected.insert(("lost".to_string(), f.to_string(), n.to_string()));
    }
    expected.insert((
        "images gaining a label".to_string(),
        "(any)".to_string(),
        gaining.to_string(),
    ));
    let got: BTreeSet<(String, String, String)> = label_revision(&wh2020())
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(got, expected);
}

/// `age_outliers` lists the ages converted or nulled in the metadata file the
/// images' ages come from, not the other release's: none for the 2020 file (every
/// age a plain number), and for the 2017 file its ages in months or days and those
/// over 120, counted here from the CSV.
#[test]
fn age_outliers_lists_the_issues_of_the_images_own_file() {
    let issues = |wh: &Path| -> usize {
        run_csv(&[
            "run",
            "age_outliers",
            "-w",
            wh.to_str().unwrap(),
            "--format",
            "csv",
        ])[1..]
            .iter()
            .filter(|r| r[0] != "images")
            .count()
    };
    assert_eq!(issues(&wh2020()), 0);
    let odd = nih_csv_records("Data_Entry_2017.csv.gz")
        .iter()
        .filter(|f| {
            let age = f[4].trim();
            match age.strip_suffix('Y') {
                Some(years) => years.parse::<u32>().map_or(true, |y| y > 120),
                None => true,
            }
        })
        .count();
    assert_eq!(issues(&wh2017()), odd);
}

#[test]
fn the_other_nih_release_is_found_beside_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (alone, beside, no_data) = (
        dir.path().join("alone"),
        dir.path().join("beside"),
        dir.path().join("no-data"),
    );
    for d in [&alone, &beside, &no_data] {
        std::fs::create_dir(d).unwrap();
    }
    for (d, name) in [
        (&alone, "Data_Entry_2017.csv.gz"),
        (&beside, "Data_Entry_2017.csv.gz"),
        (&beside, "Data_Entry_2017_v2020.csv.gz"),
    ] {
        std::fs::copy(data(name), d.join(name)).unwrap();
    }
    let ingest = |metadata: &Path, wh: &Path| {
        cxr()
            .env("CXR_DATA", &no_data)
            .args([
                "ingest",
                "--no-images",
                "--no-bbox",
                "--no-expert",
                "--no-splits",
            ])
            .arg("--metadata")
            .arg(metadata)
            .arg("-w")
            .arg(wh)
            .output()
            .unwrap()
    };
    let sources = |wh: &Path| {
        run_csv(&[
            "sql",
            "-w",
            wh.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT DISTINCT source FROM dataset_labels ORDER BY source",
        ])[1..]
            .concat()
    };
    let revision_rows = |wh: &Path| label_revision(wh).len();

    // No other release anywhere: one label source, said on stderr, and the
    // revision query has nothing to compare (not every label "lost").
    let wh_alone = dir.path().join("wh-alone");
    let out = ingest(&alone.join("Data_Entry_2017.csv.gz"), &wh_alone);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("--other-release"), "{}", stderr(&out));
    assert_eq!(sources(&wh_alone), ["nih_2017"]);
    assert_eq!(revision_rows(&wh_alone), 0);

    // The 2020 file beside the 2017 one is the other release.
    let wh_beside = dir.path().join("wh-beside");
    let out = ingest(&beside.join("Data_Entry_2017.csv.gz"), &wh_beside);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("--other-release"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sources(&wh_beside), ["nih_2017", "nih_2020"]);
    assert!(revision_rows(&wh_beside) > 1);
}

/// A metadata file of a few images gets the other release's labels of those images
/// only (the other release's other images are said in one `data_issues` row).
#[test]
fn the_other_release_labels_only_the_metadata_files_images() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = small_metadata(dir.path(), 10);
    let wh = dir.path().join("wh");
    let other = data("Data_Entry_2017.csv.gz");
    let mut args = ingest_args(metadata.to_str().unwrap(), wh.to_str().unwrap());
    args.extend(["--other-release", other.to_str().unwrap()]);
    let out = run(&args);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let ours: BTreeSet<String> = std::fs::read_to_string(&metadata)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let release = nih_csv_records("Data_Entry_2017.csv.gz");
    let in_both: BTreeSet<String> = release
        .iter()
        .map(|f| f[0].clone())
        .filter(|id| ours.contains(id))
        .collect();
    let w = wh.to_str().unwrap();
    let labelled: BTreeSet<String> = run_csv(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT DISTINCT image_id FROM dataset_labels WHERE source = 'nih_2017'",
    ])[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(labelled, in_both);
    let said = run_csv(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT issue FROM data_issues WHERE issue LIKE '%not in the metadata file%'",
    ]);
    assert_eq!(
        said[1..],
        [[format!(
            "{} images of this release are not in the metadata file; their labels are left out",
            release.len() - in_both.len()
        )]]
    );
    // Only its labels are taken: its ages (the 2017 file has ages that are not
    // plain numbers, rows of their own when it is `--metadata`), sexes and views make
    // no rows.
    let about_other_fields = run_csv(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        "SELECT COUNT(*) FROM data_issues WHERE source_file LIKE '%Data_Entry_2017.csv%' \
         AND field NOT IN ('Image Index', 'Finding Labels')",
    ]);
    assert_eq!(about_other_fields[1..], [["0"]]);
}

#[test]
fn saved_queries_take_any_and_none_only_where_they_mean_something() {
    let wh = w();
    // `any` where the query tests for it: every box of the BBox CSV.
    let boxes = std::fs::read_to_string(data("BBox_List_2017.csv")).unwrap();
    let box_rows = boxes
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count();
    let got = run_csv(&[
        "run",
        "boxes_224",
        "-w",
        &wh,
        "-p",
        "finding=any",
        "--format",
        "csv",
    ]);
    assert_eq!(got.len() - 1, box_rows);
    // `none` for the finding excluded: every Effusion image aged 0..120, from the CSV.
    let expected = nih_csv()
        .iter()
        .filter(|i| i.labels.contains("Effusion") && i.age <= 120)
        .count();
    let got = run_csv(&[
        "run",
        "effusion_cohort",
        "-w",
        &wh,
        "-p",
        "exclude=none",
        "--format",
        "csv",
    ]);
    assert_eq!(got.len() - 1, expected);
    // Where the query never tests for them they would match nothing: an error.
    for (query, param) in [
        ("effusion_cohort", "finding=any"),
        ("effusion_cohort", "finding=none"),
        ("conditional", "finding=any"),
        ("incident_after_clean", "finding=none"),
        ("boxes_224", "finding=none"),
    ] {
        let out = run(&["run", query, "-w", &wh, "-p", param]);
        assert_eq!(code(&out), Some(2), "{query} {param}: {}", stdout(&out));
        assert!(stdout(&out).is_empty(), "{query} {param}");
        assert!(
            stderr(&out).contains("never tests for"),
            "{query} {param}: {}",
            stderr(&out)
        );
    }
}

/// Saved queries say what a bare empty answer would hide: an empty age range and a
/// dataset the warehouse does not hold are refused (exit 2) as the cohort flags
/// refuse them; a query that finds no rows for the values given says so on stderr.
#[test]
fn saved_queries_refuse_values_that_match_nothing() {
    let wh = w();
    let out = run(&[
        "run",
        "effusion_cohort",
        "-w",
        &wh,
        "-p",
        "min_age=60",
        "-p",
        "max_age=40",
    ]);
    assert_refused(&out, "`min_age` (60) is above `max_age` (40)");
    assert!(stdout(&out).is_empty());
    let out = run(&[
        "run",
        "prevalence_by_dataset",
        "-w",
        &wh,
        "-p",
        "dataset=mimic",
    ]);
    assert_refused(&out, "holds no `mimic` (it holds nih)");
    // Patient 99999999 is in no row of the shipped CSV.
    assert!(!nih_csv().iter().any(|i| i.patient == 99_999_999));
    let out = run(&[
        "run",
        "patient_timeline",
        "-w",
        &wh,
        "-p",
        "patient=99999999",
        "-f",
        "csv",
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(parse_csv(&stdout(&out)).len(), 1);
    assert!(
        stderr(&out).contains("no rows for patient=99999999"),
        "{}",
        stderr(&out)
    );
}

/// Values that would make an answer meaningless are refused, and what is written
/// reads back whole: JSON keeps a NULL as `null` (a key left out changed the columns
/// pandas read back), `--box-size 0`, `--image-root ''` (paths at the filesystem's
/// root), an infinite FLOAT and a COPY into a folder that does not exist are
/// refused; saved query files that declare a parameter they never use, or use `$1`,
/// are named; `plot boxes --show-sql` prints SQL that `cxr sql` runs.
#[test]
fn meaningless_values_are_refused_and_outputs_read_back() {
    let wh = wh2020();
    let w = wh.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for format in ["json", "ndjson"] {
        let out = run(&[
            "sql",
            "-w",
            w,
            "--format",
            format,
            "SELECT 1 AS a, CAST(NULL AS INT) AS b, 'x' AS c",
        ]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(r#"{"a":1,"b":null,"c":"x"}"#),
            "{}",
            stdout(&out)
        );
    }
    let parquet = dir.path().join("b.parquet");
    let p = parquet.to_str().unwrap();
    assert_refused(
        &run(&["export", "-w", w, "--box-size", "0", "--out", p]),
        "--box-size",
    );
    assert_refused(
        &run(&["export", "-w", w, "--image-root", "", "--out", p]),
        "root",
    );
    assert!(!parquet.exists());
    let missing = dir.path().join("no/such/folder/x.csv");
    let copy = format!("COPY (SELECT 1 AS a) TO '{}'", missing.display());
    assert_refused(
        &run(&["sql", "-w", w, "--allow-write", &copy]),
        "does not exist",
    );
    assert!(!dir.path().join("no").exists());
    // Saved queries.
    let queries = dir.path().join("queries");
    std::fs::create_dir(&queries).unwrap();
    std::fs::write(
        queries.join("float.sql"),
        "-- @param f FLOAT = 1.5\nSELECT $f AS f\n",
    )
    .unwrap();
    std::fs::write(
        queries.join("unused.sql"),
        "-- @param x INT = 3\nSELECT 1 AS one\n",
    )
    .unwrap();
    std::fs::write(queries.join("numbered.sql"), "SELECT $1 AS one\n").unwrap();
    std::fs::write(
        queries.join("empty_range.sql"),
        "-- @param x INT 10..1 = 5\nSELECT $x AS x\n",
    )
    .unwrap();
    std::fs::write(
        queries.join("switch.sql"),
        "-- @param b BOOL = off\nSELECT $b AS b\n",
    )
    .unwrap();
    let saved = |args: &[&str]| {
        cxr()
            .args(["run", "-w", w])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    // As PostgreSQL's float8in: out of range either way (1e400, 1e-400), inf, nan.
    for value in ["1e400", "1e-400", "inf", "nan"] {
        assert_refused(&saved(&["float", "-p", &format!("f={value}")]), "FLOAT");
    }
    for (value, shown) in [("2.5", "2.5"), ("0e-400", "0.0"), ("-0.0", "-0.0")] {
        let out = saved(&["float", "-p", &format!("f={value}"), "--format", "csv"]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("f\n{shown}\n"));
    }
    assert_refused(
        &saved(&["unused"]),
        "unused.sql: declares $x but the query never uses it",
    );
    assert_refused(&saved(&["numbered"]), "numbered.sql: uses $1");
    assert_refused(
        &saved(&["empty_range"]),
        "@param range `10..1` holds no value",
    );
    // BOOL takes PostgreSQL's spellings.
    for (value, shown) in [("on", "true"), ("OFF", "false"), ("y", "true")] {
        let out = saved(&["switch", "-p", &format!("b={value}"), "--format", "csv"]);
        assert_eq!(code(&out), Some(0), "{value}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("b\n{shown}\n"), "{value}");
    }
    // plot boxes --show-sql: the boxes of the shipped file, counted from it.
    let out = run(&["plot", "boxes", "-w", w, "--show-sql"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let sql = stdout(&out);
    let boxes = std::fs::read_to_string(data("BBox_List_2017.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    let counted = run(&[
        "sql",
        "-w",
        w,
        "--format",
        "csv",
        &format!(
            "SELECT COUNT(*) AS n FROM ({})",
            sql.trim().trim_end_matches(';')
        ),
    ]);
    assert_eq!(code(&counted), Some(0), "{}", stderr(&counted));
    assert_eq!(stdout(&counted), format!("n\n{boxes}\n"));
}

/// `run --list --format json` lists every saved query of the folder, each with the
/// description and parameters its file declares (read here from the files' own
/// `-- @description` and `-- @param` lines).
#[test]
fn run_list_takes_a_format() {
    let out = cxr()
        .args(["run", "--list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut files: Vec<(String, String, usize)> = std::fs::read_dir(&queries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let description = text
                .lines()
                .find_map(|l| l.strip_prefix("-- @description "))
                .unwrap_or("")
                .trim()
                .to_string();
            let params = text.lines().filter(|l| l.starts_with("-- @param ")).count();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, description, params)
        })
        .collect();
    files.sort();
    let got: Vec<(String, String, usize)> = listed
        .iter()
        .map(|q| {
            let params = q["parameters"].as_str().unwrap();
            (
                q["query"].as_str().unwrap().to_string(),
                q["description"].as_str().unwrap().to_string(),
                params.lines().filter(|l| !l.is_empty()).count(),
            )
        })
        .collect();
    assert_eq!(got, files);
    // Only --format applies to the list.
    let out = cxr()
        .args(["run", "--list", "--max-rows", "3"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-rows"), "{}", stderr(&out));
}

/// An image whose `Finding Labels` says nothing has every finding unknown: its
/// `labels` is NULL in a cohort as in `images` (it was `[]`, as for No Finding, so
/// `cardinality(labels) = 0` took it for normal); `--where` reads `dataset_images`'
/// state columns. The expected rows are read off the fixture by hand.
#[test]
fn an_unlabelled_image_has_no_labels_in_a_cohort() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.csv");
    let rows = [
        "00000001_000.png,No Finding,0,1,40,M,PA,2048,2048,0.14,0.14",
        "00000002_000.png,Effusion,0,2,41,F,PA,2048,2048,0.14,0.14",
        "00000003_000.png,,0,3,42,M,PA,2048,2048,0.14,0.14",
        "00000004_000.png,|,0,4,43,F,PA,2048,2048,0.14,0.14",
    ];
    std::fs::write(&meta, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let wh = dir.path().join("wh");
    let w = wh.to_str().unwrap();
    let out = run(&ingest_args(meta.to_str().unwrap(), w));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let labels = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["cohort", "-w", w, "--format", "csv"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
        let rows = parse_csv(&stdout(&out));
        let id = rows[0]
            .iter()
            .position(|c| c == "image_index" || c == "image_id");
        let at = rows[0].iter().position(|c| c == "labels").unwrap();
        rows[1..]
            .iter()
            .map(|r| (r[id.unwrap()].clone(), r[at].clone()))
            .collect()
    };
    let every = [
        ("00000001_000.png", "[]"),
        ("00000002_000.png", "[Effusion]"),
        ("00000003_000.png", ""),
        ("00000004_000.png", ""),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(labels(&[]), every);
    assert_eq!(labels(&["--dataset", "nih"]), every);
    assert_eq!(labels(&["--where", "cardinality(labels) = 0"]), every[..1]);
    assert_eq!(labels(&["--where", "known_findings = 0"]), every[2..]);
    assert_eq!(
        labels(&["--dataset", "nih", "--where", "positive_findings <> 0"]),
        every[1..2]
    );
    assert_eq!(
        labels(&["--where", "known_mask <> 0 AND positive_mask = 0"]),
        every[..1]
    );
}
