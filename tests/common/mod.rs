//! Shared helpers: warehouses ingested once per test binary from the shipped data,
//! SQL through the library, and the `cxr` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod shared;
#[allow(unused_imports)] // not every test binary reads the real files
pub use shared::shared_datasets;

use cxr::ingest::IngestOptions;
use cxr::sql::{Register, Warehouse};

/// The shipped data directory.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Ingest options over the shipped files with the given metadata file.
pub fn options(metadata: &str, warehouse: &Path) -> IngestOptions {
    IngestOptions {
        metadata: data(metadata),
        bbox: Some(data("BBox_List_2017.csv")),
        expert: Some(data("google2019_nih-chest-xray-labels.csv.gz")),
        splits: Some([data("train_val_list.txt"), data("test_list.txt")]),
        images: vec![cxr::pixels::source::ImageInput::nih(data(
            "sample-images-224.tar",
        ))],
        other_release: Some(data(if metadata.contains("v2020") {
            "Data_Entry_2017.csv.gz"
        } else {
            "Data_Entry_2017_v2020.csv.gz"
        })),
        datasets: Vec::new(),
        label_map: None,
        warehouse: warehouse.to_path_buf(),
    }
}

fn ingest_once(cell: &'static OnceLock<tempfile::TempDir>, metadata: &str) -> PathBuf {
    let dir = cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        cxr::ingest::run(&options(metadata, &dir.path().join("wh"))).unwrap();
        dir
    });
    dir.path().join("wh")
}

/// A warehouse of the default (2020) metadata, built once per test binary.
pub fn wh2020() -> PathBuf {
    static CELL: OnceLock<tempfile::TempDir> = OnceLock::new();
    ingest_once(&CELL, "Data_Entry_2017_v2020.csv.gz")
}

/// A warehouse of the original 2017 metadata, built once per test binary.
pub fn wh2017() -> PathBuf {
    static CELL: OnceLock<tempfile::TempDir> = OnceLock::new();
    ingest_once(&CELL, "Data_Entry_2017.csv.gz")
}

/// Runs SQL through the library and returns every row as text cells.
pub fn rows(wh: &Path, sql: &str) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = Warehouse::open(wh, Register::All).await.unwrap();
        let df = w.plan(sql, false, &[]).await.unwrap().pop().unwrap();
        let (_, batches) = cxr::sql::collect(df).await.unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(cxr::output::rows_as_text(b, "").unwrap());
        }
        rows
    })
}

/// The single integer a query returns.
pub fn int(wh: &Path, sql: &str) -> i64 {
    let r = rows(wh, sql);
    assert_eq!(r.len(), 1, "{sql} returned {} rows", r.len());
    r[0][0]
        .parse()
        .unwrap_or_else(|_| panic!("{sql} returned {:?}", r[0][0]))
}

/// A tiny CSV parser for checking cxr's own output (quotes and doubled quotes).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => row.push(std::mem::take(&mut cur)),
            '\n' if !in_quotes => {
                row.push(std::mem::take(&mut cur));
                rows.push(std::mem::take(&mut row));
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() || !row.is_empty() {
        row.push(cur);
        rows.push(row);
    }
    rows
}

/// Runs cxr, checks it exited 0, and parses its standard output as CSV.
pub fn run_csv(args: &[&str]) -> Vec<Vec<String>> {
    let out = run(args);
    assert_eq!(code(&out), Some(0), "{args:?}: {}", stderr(&out));
    parse_csv(&stdout(&out))
}

/// The `cxr` binary with CXR_* variables cleared.
pub fn cxr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cxr"));
    c.env_remove("CXR_WAREHOUSE")
        .env_remove("CXR_DATA")
        .env_remove("CXR_QUERIES");
    c
}

/// Runs `cxr` with args and returns its output.
pub fn run(args: &[&str]) -> Output {
    cxr().args(args).output().unwrap()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One row of the shipped 2020 metadata CSV, read here without cxr.
#[derive(Debug, Clone)]
pub struct CsvImage {
    pub index: String,
    pub patient: i64,
    pub follow_up: i64,
    pub age: i64,
    /// `M` or `F`.
    pub sex: String,
    /// `PA` or `AP`.
    pub view: String,
    pub labels: std::collections::BTreeSet<String>,
}

/// The shipped 2020 metadata, parsed independently of cxr (gzip + split on commas:
/// its first four fields never hold a comma).
pub fn nih_csv() -> Vec<CsvImage> {
    nih_csv_records("Data_Entry_2017_v2020.csv.gz")
        .into_iter()
        .map(|f| CsvImage {
            index: f[0].clone(),
            labels: findings_of(&f[1]),
            follow_up: f[2].trim().parse().unwrap(),
            patient: f[3].trim().parse().unwrap(),
            age: f[4].trim().parse().unwrap(),
            sex: f[5].trim().to_string(),
            view: f[6].trim().to_string(),
        })
        .collect()
}

/// The records of a shipped NIH metadata CSV (gzip), split at commas (its fields
/// hold none), read here without cxr.
pub fn nih_csv_records(name: &str) -> Vec<Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(data(name)).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The findings of a `Finding Labels` field: its labels but `No Finding`.
pub fn findings_of(field: &str) -> std::collections::BTreeSet<String> {
    field
        .split('|')
        .filter(|x| *x != "No Finding")
        .map(str::to_string)
        .collect()
}

/// Every file below `dir` (but the lock file) and its bytes, by relative path: what
/// "left whole" is compared on.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name() != ".cxr.lock" {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The header of the NIH metadata CSV.
/// The 14 findings as NIH's release spells them, in SCHEMA.md's order.
pub const NIH_FINDINGS: [&str; 14] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
];

pub const HEADER: &str = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]";

/// A metadata CSV of `n` images of `n / 2` patients.
pub fn small_metadata(dir: &Path, n: usize) -> PathBuf {
    let mut s = format!("{HEADER}\n");
    for i in 0..n {
        let labels = if i % 3 == 0 { "Effusion" } else { "No Finding" };
        s.push_str(&format!(
            "{:08}_{:03}.png,{labels},{},{},{},{},PA,2048,2048,0.14,0.14\n",
            i / 2 + 1,
            i % 2,
            i % 2,
            i / 2 + 1,
            30 + i % 40,
            if i % 4 < 2 { "M" } else { "F" },
        ));
    }
    let p = dir.join("meta.csv");
    std::fs::write(&p, s).unwrap();
    p
}

pub fn ingest_args<'a>(metadata: &'a str, wh: &'a str) -> Vec<&'a str> {
    vec![
        "ingest",
        "--metadata",
        metadata,
        "--no-bbox",
        "--no-expert",
        "--no-splits",
        "--no-images",
        "--warehouse",
        wh,
    ]
}

/// Asserts that a command was refused as the user's to fix: exit 2, `needle` in its
/// message.
pub fn assert_refused(out: &Output, needle: &str) {
    assert_eq!(code(out), Some(2), "{}", stderr(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

/// The exit code of a finished process (None if a signal ended it).
pub fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Waits until a child process has used `cpu` seconds of CPU (it is past start-up
/// and working, however loaded the machine is), at most a minute: the readiness
/// check before a signal is sent.
pub fn wait_until_busy(pid: u32, cpu: f64) {
    let start = std::time::Instant::now();
    while cpu_seconds(pid) < cpu && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A warehouse at `dir/<name>` of `images` small images (metadata written to
/// dir/meta.csv by [`small_metadata`]), ingested by the binary.
pub fn small_warehouse(dir: &Path, images: usize, name: &str) -> PathBuf {
    let meta = small_metadata(dir, images);
    let wh = dir.join(name);
    let out = run(&ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap()));
    assert!(out.status.success(), "{}", stderr(&out));
    wh
}

/// Starts `command` with `input` on its stdin (then closed) and its output piped.
pub fn spawn_with_stdin(command: &mut Command, input: &str) -> std::process::Child {
    use std::io::Write;

    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child
}

/// The Python of the tests (psycopg, SQLAlchemy, pandas, pyarrow, Pillow, pydicom,
/// numpy): `CXR_TEST_PYTHON` (.ci/run makes that virtual environment). None, with a
/// SKIPPED line, where it is not set; a failure under CI.
pub fn python() -> Option<PathBuf> {
    let python = std::env::var_os("CXR_TEST_PYTHON").map(PathBuf::from);
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CXR_TEST_PYTHON is not set (CI is set: .ci/run sets it)"
        );
        eprintln!("SKIPPED: CXR_TEST_PYTHON (the tests' Python) is not set");
    }
    python
}

/// Runs `python` with `args`, checks that it succeeded, and returns what it printed.
#[allow(dead_code)] // not every test binary runs Python
pub fn python_ok(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs cxr and returns (exit code, stderr, peak RSS in MiB) of that one process
/// (wait4 gives the child's own rusage).
#[allow(clippy::zombie_processes)] // reaped by wait4, not Child::wait
pub fn run_measured(args: &[&str]) -> (Option<i32>, String, f64) {
    run_measured_with(args, Stdio::null(), &[])
}

/// [`run_measured`] with stdin and environment variables.
#[allow(clippy::zombie_processes)] // reaped by wait4, not Child::wait
pub fn run_measured_with(
    args: &[&str],
    stdin: Stdio,
    env: &[(&str, &str)],
) -> (Option<i32>, String, f64) {
    let mut cmd = cxr();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    // ru_maxrss is in KiB on Linux.
    (code, err, usage.ru_maxrss as f64 / 1024.0)
}

/// The peak resident memory of process `pid` so far, in MiB (VmHWM).
pub fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}
