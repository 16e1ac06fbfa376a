//! `cxr serve --http`: the cohort builder's API over raw HTTP, and the page in a real
//! headless Chromium (Selenium), its counts checked against `cxr cohort --summary`
//! and its downloads against `cxr export` with the same flags.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{code, python_ok, run, run_csv, stderr, wh2020};

/// `cxr serve --http-only` on a free loopback port, once it says where the page is.
struct PageServer {
    child: Child,
    port: u16,
}

impl PageServer {
    fn start(wh: &Path, args: &[&str]) -> PageServer {
        let mut child = common::cxr()
            .args([
                "serve",
                "-w",
                wh.to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
                "--http-only",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (ready, port) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in lines.lines().map_while(|l| l.ok()) {
                eprintln!("server: {line}");
                if let Some(rest) = line.split("is at http://").nth(1) {
                    let port = rest.trim_end_matches('/').rsplit(':').next().unwrap();
                    let _ = ready.send(port.parse::<u16>().unwrap());
                }
            }
        });
        let port = port
            .recv_timeout(Duration::from_secs(120))
            .expect("cxr serve --http did not start");
        PageServer { child, port }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

/// A raw HTTP/1.1 request: the status and the body.
fn http(port: u16, method: &str, target: &str, host: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        socket,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, body.to_string())
}

fn get(port: u16, target: &str) -> (u16, String) {
    http(port, "GET", target, &format!("127.0.0.1:{port}"))
}

#[test]
fn the_api_answers_only_cohort_flags_on_its_own_host() {
    let wh = wh2020();
    let server = PageServer::start(&wh, &[]);
    let port = server.port;
    // The page and its files.
    let (status, body) = get(port, "/");
    assert_eq!(status, 200);
    assert!(body.contains("<title>cxr cohort builder</title>"), "{body}");
    assert_eq!(get(port, "/app.js").0, 200);
    assert_eq!(get(port, "/app.css").0, 200);
    // A cohort: the NIH counts equal the shipped CSV's (PA women, 40-60, Effusion).
    let (status, body) = get(port, "/api/cohort?with=Effusion&sex=F&age=40..60&view=PA");
    assert_eq!(status, 200, "{body}");
    let expected = common::nih_csv()
        .iter()
        .filter(|i| {
            i.labels.contains("Effusion")
                && i.sex == "F"
                && (40..=60).contains(&i.age)
                && i.view == "PA"
        })
        .count();
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["counts"][0]["dataset"], "nih");
    assert_eq!(answer["counts"][0]["images"], expected as u64);
    // A dataset named in another case is answered under the warehouse's name, so
    // that `datasets` and `counts` join.
    let (status, body) = get(
        port,
        "/api/cohort?dataset=NIH&with=Effusion&sex=F&age=40..60&view=PA",
    );
    assert_eq!(status, 200, "{body}");
    let named: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(named["datasets"], serde_json::json!(["nih"]));
    assert_eq!(named["counts"][0]["images"], expected as u64);
    // Spaces around any value are not part of it (` 5` is 5, as the page reads it).
    let count = |target: &str| -> serde_json::Value {
        let (status, body) = get(port, target);
        assert_eq!(status, 200, "{target}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["counts"][0]["images"].clone()
    };
    assert_eq!(
        count("/api/cohort?min-studies=%205%20"),
        count("/api/cohort?min-studies=5")
    );
    assert!(
        answer["command"]
            .as_str()
            .unwrap()
            .starts_with("cxr cohort --dataset nih --with Effusion --sex F --age 40..60 --view PA"),
        "{}",
        answer["command"]
    );
    // What is not a cohort flag is refused, naming the parameter; nothing reads a
    // file or takes SQL.
    for (target, said) in [
        (
            "/api/cohort?cohort=/etc/passwd",
            "unknown parameter `cohort`",
        ),
        ("/api/cohort?where=1%3D1", "unknown parameter `where`"),
        ("/api/cohort?out=/tmp/x.parquet", "unknown parameter `out`"),
        ("/api/cohort?w=/tmp", "unknown parameter `w`"),
        ("/api/cohort?age=60..40", "the range is empty"),
        ("/api/cohort?with=Nonsense", "Nonsense"),
        ("/api/cohort?first-study=maybe", "not true or false"),
        ("/api/cohort?age=40", "age"),
        ("/api/cohort?age=abc", "age"),
        ("/api/cohort?min-studies=abc", "min-studies"),
        // A one-value parameter given twice, even as a contradiction or empty.
        (
            "/api/cohort?first-study=true&first-study=false",
            "`first-study` given 2 times",
        ),
        ("/api/cohort?sex=F&sex=", "`sex` given 2 times"),
        ("/api/options?x=1", "unknown parameter `x`"),
        ("/api/patient?dataset=nih", "needs `dataset` and `patient`"),
        ("/api/patient?dataset=nih,nih&patient=1", "name one"),
        (
            "/api/patient?dataset=nih&patient=1&x=1",
            "unknown parameter `x`",
        ),
        (
            "/api/patient?dataset=nih&patient=1&patient=2",
            "more than once",
        ),
    ] {
        let (status, body) = get(port, target);
        assert_eq!(status, 400, "{target}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(said),
            "{target}: {body}"
        );
    }
    // Another host name pointed at this address (DNS rebinding) is refused.
    let (status, _) = http(port, "GET", "/api/options", "evil.example:80");
    assert_eq!(status, 421);
    for host in [format!("localhost:{port}"), format!("LocalHost:{port}")] {
        assert_eq!(http(port, "GET", "/api/options", &host).0, 200, "{host}");
    }
    // Two Host headers, the first this server's, and an absolute target naming
    // another host are refused too.
    let own = format!("127.0.0.1:{port}");
    let twice = format!("{own}\r\nHost: evil.example");
    assert_eq!(http(port, "GET", "/api/options", &twice).0, 421);
    assert_eq!(
        http(port, "GET", "http://evil.example/api/options", &own).0,
        421
    );
    // The label sources the page offers: the NIH release ingested (2020), the other
    // release and Google's expert labels, both shipped in data/ and ingested with it.
    let (status, body) = get(port, "/api/options");
    assert_eq!(status, 200, "{body}");
    let options: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        options["sources"],
        serde_json::json!(["google_2019", "nih_2017", "nih_2020"])
    );
    // Read-only: no other method, said in JSON.
    let (status, body) = http(port, "POST", "/api/cohort", &format!("127.0.0.1:{port}"));
    assert_eq!(status, 405);
    assert!(body.contains("read-only"), "{body}");
    assert_eq!(get(port, "/../../etc/passwd").0, 404);
    // A patient's timeline: the images of patient 11 in the shipped CSV.
    let (status, body) = get(port, "/api/patient?dataset=nih&patient=11");
    assert_eq!(status, 200, "{body}");
    let timeline: serde_json::Value = serde_json::from_str(&body).unwrap();
    let expected = common::nih_csv().iter().filter(|i| i.patient == 11).count();
    assert_eq!(timeline["images"].as_array().unwrap().len(), expected);
    // A patient the CSV does not have is not found, said in JSON.
    let absent = common::nih_csv().iter().map(|i| i.patient).max().unwrap() + 1;
    let (status, body) = get(port, &format!("/api/patient?dataset=nih&patient={absent}"));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("has no images"), "{body}");
    assert!(server.stop().success());
}

#[test]
fn the_page_is_served_on_loopback_only() {
    let wh = wh2020();
    let out = run(&["serve", "-w", wh.to_str().unwrap(), "--http", "0.0.0.0:0"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("loopback only"), "{}", stderr(&out));
    let out = run(&["serve", "-w", wh.to_str().unwrap(), "--http-only"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}

#[test]
fn a_request_past_the_time_limit_is_stopped() {
    let wh = wh2020();
    let server = PageServer::start(&wh, &["--query-time", "0.001"]);
    let (status, body) = get(server.port, "/api/cohort?with=Effusion");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("time limit"), "{body}");
    assert!(server.stop().success());
}

#[test]
fn idle_and_stalled_clients_do_not_hold_the_page() {
    let wh = wh2020();
    let server = PageServer::start(&wh, &["--max-connections", "3"]);
    let port = server.port;
    // Every slot taken: two clients that send nothing, one that stops mid-header.
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    idle.push(partial);
    // A request behind them is answered once the server has closed one to make
    // room (after 2 s idle), well before their 10 s to send a request would end.
    let started = std::time::Instant::now();
    let (status, body) = get(port, "/api/options");
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "answered after {:?}: no idle connection was closed for it",
        started.elapsed()
    );
    for mut socket in idle {
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut rest = Vec::new();
        // Closed by the server (end of stream or a reset), not left open.
        let read = socket.read_to_end(&mut rest);
        assert!(
            read.is_ok()
                || read.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
            "{read:?}"
        );
    }
    assert!(server.stop().success());
}

#[test]
fn a_client_that_reads_no_answer_is_let_go() {
    let wh = wh2020();
    let server = PageServer::start(&wh, &["--max-connections", "1"]);
    let port = server.port;
    // A download of every NIH image (megabytes) asked for and never read, through a
    // small receive buffer.
    let stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let small: libc::c_int = 4096;
    // SAFETY: a valid socket and an int option of the size given.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            stalled.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    write!(
        &stalled,
        "GET /api/manifest.csv?dataset=nih HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    // The one slot is the stalled client's until the server gives up on it; then
    // another client is answered.
    let (status, body) = get(port, "/api/options");
    assert_eq!(status, 200, "{body}");
    drop(stalled);
    assert!(server.stop().success());
}

/// A manifest is written to disk as its rows stream and sent from there, within the
/// server's limits: the CSV of every image of four datasets (over 100 MB) grows the
/// server by a fraction of the gigabyte it took when the CSV was built whole in
/// memory (82 MB to 1.17 GB for 119 MB). The rows are each image once: NIH's as its
/// metadata CSV lists them, with the Effusion target it gives, and the published
/// image counts of CheXpert (223,414), PadChest (160,861) and VinDr (15,000).
#[test]
fn a_manifest_download_is_not_held_in_memory() {
    let Some(shared) = common::shared_datasets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = four_datasets(dir.path(), &shared);
    let server = PageServer::start(&wh, &[]);
    // Warm: the tables read, the statement runtimes started.
    for target in [
        "/api/options",
        "/api/cohort?dataset=nih",
        "/api/manifest.csv?dataset=nih&age=40..41",
    ] {
        let (status, body) = get(server.port, target);
        assert_eq!(status, 200, "{target}: {body}");
    }
    let before = common::peak_mib(server.child.id());
    let (status, body) = get(server.port, "/api/manifest.csv");
    assert_eq!(status, 200, "{}", &body[..body.len().min(500)]);
    let grown = common::peak_mib(server.child.id()) - before;
    let file_mib = body.len() as u64 >> 20;
    assert!(file_mib > 80, "a manifest of {file_mib} MiB");
    assert!(
        grown < 400,
        "the server grew by {grown} MiB sending a manifest of {file_mib} MiB"
    );
    let records = common::parse_csv(&body);
    let column = |name: &str| records[0].iter().position(|c| c == name).unwrap();
    let (dataset, id, effusion) = (column("dataset"), column("image_id"), column("Effusion"));
    let mut per_dataset = BTreeMap::new();
    for r in &records[1..] {
        *per_dataset.entry(r[dataset].as_str()).or_insert(0usize) += 1;
    }
    // The warehouse's NIH metadata is the 2017 release.
    let expected = common::nih_csv_records("Data_Entry_2017.csv.gz");
    assert_eq!(
        per_dataset.into_iter().collect::<Vec<_>>(),
        [
            ("chexpert", 223_414),
            ("nih", expected.len()),
            ("padchest", 160_861),
            ("vindr", 15_000)
        ]
    );
    let nih: Vec<&Vec<String>> = records[1..]
        .iter()
        .filter(|r| r[dataset] == "nih")
        .collect();
    let mut ids: Vec<&str> = nih.iter().map(|r| r[id].as_str()).collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(|f| f[0].as_str()).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    let positive = nih.iter().filter(|r| r[effusion] == "1.0").count();
    let labelled = expected
        .iter()
        .filter(|f| common::findings_of(&f[1]).contains("Effusion"))
        .count();
    assert_eq!(positive, labelled);
    assert!(server.stop().success());
}

/// The Python with Selenium (CXR_TEST_PYTHON, made by .ci/run), and Chromium.
fn browser() -> Option<PathBuf> {
    let python = std::env::var_os("CXR_TEST_PYTHON").map(PathBuf::from);
    let chromium = Path::new("/usr/bin/chromedriver").exists();
    if python.is_none() || !chromium {
        assert!(
            std::env::var_os("CI").is_none(),
            "CXR_TEST_PYTHON or /usr/bin/chromedriver missing (CI is set: .ci/run installs them)"
        );
        eprintln!("SKIPPED: no CXR_TEST_PYTHON with selenium, or no chromium-driver");
        return None;
    }
    python
}

/// NIH from data/ and the real CheXpert, PadChest and VinDr files.
fn four_datasets(dir: &Path, shared: &Path) -> PathBuf {
    let wh = dir.join("wh");
    let chexpert = format!(
        "chexpert={}",
        shared.join("chexpert_train.csv.gz").display()
    );
    let padchest = format!(
        "padchest={}",
        shared
            .join("PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
            .display()
    );
    let vindr = format!("vindr={}", shared.join("vinbigdata-train.csv.gz").display());
    let mut args = common::ingest_args("data/Data_Entry_2017.csv.gz", wh.to_str().unwrap());
    args.extend([
        "--dataset",
        &chexpert,
        "--dataset",
        &padchest,
        "--dataset",
        &vindr,
    ]);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    wh
}

const FLAGS: &[&str] = &[
    "--dataset",
    "nih,chexpert,padchest",
    "--with",
    "Effusion",
    "--without",
    "Pneumothorax",
    "--age",
    "40..60",
    "--sex",
    "F",
    "--view",
    "PA",
];

#[test]
fn the_page_in_chromium_matches_the_command_line() {
    let Some(python) = browser() else { return };
    let Some(shared) = common::shared_datasets() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = four_datasets(dir.path(), &shared);
    let w = wh.to_str().unwrap();
    let server = PageServer::start(&wh, &[]);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/page_check.py");
    let out = python_ok(
        &python,
        &[
            script.to_str().unwrap(),
            &server.base(),
            dir.path().to_str().unwrap(),
            shots.to_str().unwrap(),
        ],
    );
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The downloads leave nothing behind in the temporary folder.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(&format!("cxr-page-{}-", server.child.id())))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Every count on the page equals `cxr cohort --summary` for the same flags.
    let mut args = vec!["cohort", "-w", w, "--summary", "--format", "csv"];
    args.extend_from_slice(FLAGS);
    let summary = run_csv(&args);
    let header = &summary[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (dataset, measure, item, n, base) = (
        col("dataset"),
        col("measure"),
        col("item"),
        col("n"),
        col("denominator"),
    );
    let mut checked = 0;
    for row in &summary[1..] {
        let shown = &page["counts"][&row[dataset]];
        match row[measure].as_str() {
            "images" | "patients" => {
                assert_eq!(shown[&row[measure]], row[n], "{row:?}");
                checked += 1;
            }
            "finding" => {
                let cell = page["prevalence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["dataset"] == row[dataset] && c["finding"] == row[item])
                    .unwrap_or_else(|| panic!("no cell for {row:?}"));
                assert_eq!(cell["n"], row[n], "{row:?}");
                assert_eq!(cell["denominator"], row[base], "{row:?}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked > 30, "only {checked} figures compared");
    // Studies: distinct study ids of the cohort's rows, per dataset.
    let mut args = vec!["cohort", "-w", w, "--format", "csv"];
    args.extend_from_slice(FLAGS);
    let rows = run_csv(&args);
    let (d, s) = (
        rows[0].iter().position(|h| h == "dataset").unwrap(),
        rows[0].iter().position(|h| h == "study_id").unwrap(),
    );
    let mut studies: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in &rows[1..] {
        studies.entry(&r[d]).or_default().insert(&r[s]);
    }
    for (name, ids) in &studies {
        assert_eq!(
            page["counts"][name]["studies"],
            ids.len().to_string(),
            "{name}"
        );
    }
    assert_eq!(studies.len(), 3, "{studies:?}");

    // The permalink restores the form and the same counts.
    assert_eq!(page["restored_counts"], page["counts"]);
    let form = &page["restored_form"];
    assert_eq!(
        form["datasets"],
        serde_json::json!(["chexpert", "nih", "padchest"])
    );
    assert_eq!(form["Effusion"], "with");
    assert_eq!(form["Pneumothorax"], "without");
    assert_eq!(
        (form["sex"].as_str(), form["view"].as_str()),
        (Some("F"), Some("PA"))
    );
    assert_eq!(
        (form["age_min"].as_str(), form["age_max"].as_str()),
        (Some("40"), Some("60"))
    );

    // The manifest downloaded from the page equals `cxr export` with the same flags
    // (pyarrow reads both; the Parquet metadata's creation time differs).
    let exported = dir.path().join("export.parquet");
    let mut args = vec!["export", "-w", w, "--out", exported.to_str().unwrap()];
    args.extend_from_slice(FLAGS);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let compare = format!(
        "import pyarrow.parquet as pq, pyarrow.csv as pc, sys\n\
         a = pq.read_table({:?}); b = pq.read_table({:?})\n\
         same = lambda x, y: (x is None or x != x) and (y is None or y != y) or x == y\n\
         assert a.schema.equals(b.schema), (a.schema, b.schema)\n\
         for name in a.schema.names:\n\
         \x20   x, y = a.column(name).to_pylist(), b.column(name).to_pylist()\n\
         \x20   flat = lambda v: v if isinstance(v, list) and name == 'targets' else [v]\n\
         \x20   assert len(x) == len(y) and all(all(same(p, q) for p, q in zip(flat(u), flat(w))) for u, w in zip(x, y)), name\n\
         c = pc.read_csv({:?})\n\
         assert c.num_rows == a.num_rows, (c.num_rows, a.num_rows)\n\
         assert c.column('image_id').to_pylist() == a.column('image_id').to_pylist()\n\
         names = [f.decode() if isinstance(f, bytes) else f for f in __import__('json').loads(a.schema.metadata[b'cxr.targets'])]\n\
         targets = a.column('targets').to_pylist()\n\
         for k, name in enumerate(names):\n\
         \x20   column = c.column(name).to_pylist()\n\
         \x20   bad = [i for i in range(a.num_rows) if not same(column[i], targets[i][k])]\n\
         \x20   assert not bad, (name, bad[:3])\n\
         print(a.num_rows)\n",
        page["manifest_parquet"].as_str().unwrap(),
        exported.to_str().unwrap(),
        page["manifest_csv"].as_str().unwrap(),
    );
    let manifest_rows: usize = python_ok(&python, &["-c", &compare])
        .trim()
        .parse()
        .unwrap();
    let images: usize = ["nih", "chexpert", "padchest"]
        .iter()
        .map(|d| {
            page["counts"][d]["images"]
                .as_str()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(manifest_rows, images);
    assert!(
        page["parquet_disposition"]
            .as_str()
            .unwrap()
            .contains("manifest.parquet")
    );

    // The saved query runs as `cxr sql` and gives the cohort's rows.
    let saved = std::fs::read_to_string(page["saved_query"].as_str().unwrap()).unwrap();
    assert!(saved.starts_with("-- @description"), "{saved}");
    let out = common::cxr()
        .args(["sql", "-w", w, "--format", "csv", "-"])
        .stdin(std::fs::File::open(page["saved_query"].as_str().unwrap()).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        common::parse_csv(&String::from_utf8_lossy(&out.stdout)),
        rows
    );

    // The heatmap's numbers (PadChest's, chosen on the page and kept by the
    // permalink) are `cxr cooccur`'s pairs with the same flags: every pair with images
    // of both findings, with its count.
    assert_eq!(page["restored_heatmap"], "padchest");
    assert_eq!(page["numbers_kept_open"], true);
    let mut args = vec![
        "cooccur",
        "-w",
        w,
        "--format",
        "csv",
        "--dataset",
        "padchest",
    ];
    args.extend_from_slice(&FLAGS[2..]);
    let pairs = run_csv(&args);
    let column = |name: &str| pairs[0].iter().position(|h| h == name).unwrap();
    let (a, b, both) = (column("label_a"), column("label_b"), column("n_ab"));
    let mut expected: Vec<[String; 3]> = pairs[1..]
        .iter()
        .filter(|r| r[a] < r[b] || !pairs[1..].iter().any(|s| s[a] == r[b] && s[b] == r[a]))
        .map(|r| {
            let (x, y) = if r[a] < r[b] {
                (&r[a], &r[b])
            } else {
                (&r[b], &r[a])
            };
            [x.clone(), y.clone(), r[both].clone()]
        })
        .collect();
    expected.sort();
    expected.dedup();
    let mut shown: Vec<[String; 3]> = page["heatmap_pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cell = |k: usize| r[k].as_str().unwrap().to_string();
            let (x, y) = if cell(0) < cell(1) {
                (cell(0), cell(1))
            } else {
                (cell(1), cell(0))
            };
            [x, y, cell(2)]
        })
        .collect();
    shown.sort();
    assert!(!shown.is_empty(), "{page}");
    assert_eq!(shown, expected);
    // The age chart's numbers add up to the cohort's images.
    let aged: u64 = page["age_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap()[1..].iter())
        .map(|c| c.as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(aged as usize, images);

    // The rest of the page: drawn, labelled, and its timeline the patient's rows.
    assert!(page["heatmap_cells"].as_u64().unwrap() > 50, "{page}");
    assert!(page["age_bars"].as_u64().unwrap() > 3, "{page}");
    assert_eq!(page["unlabelled_controls"], serde_json::json!([]));
    let (patient_dataset, patient) = (
        page["patient"][0].as_str().unwrap(),
        page["patient"][1].as_str().unwrap(),
    );
    let all = run_csv(&[
        "cohort",
        "-w",
        w,
        "--dataset",
        patient_dataset,
        "--format",
        "csv",
    ]);
    let p = all[0].iter().position(|h| h == "patient_id").unwrap();
    let expected = all[1..].iter().filter(|r| r[p] == patient).count();
    assert_eq!(page["timeline_rows"], expected as u64);
    assert!(
        page["error_text"]
            .as_str()
            .unwrap()
            .contains("the range is empty"),
        "{page}"
    );
    let form = &page["hand_written_form"];
    assert_eq!(form["datasets"], serde_json::json!(["chexpert", "nih"]));
    assert_eq!(
        (form["sex"].as_str(), form["view"].as_str()),
        (Some("F"), Some("PA"))
    );
    assert_eq!(form["Effusion"], "with");
    assert!(
        page["unknown_text"]
            .as_str()
            .unwrap()
            .contains("dataset nosuch"),
        "{page}"
    );
    assert_eq!(page["downloads_off"], "true");
    assert_eq!(
        page["downloads_off_href"],
        serde_json::Value::Null,
        "{page}"
    );
    assert_eq!(
        page["aliases"],
        serde_json::json!(["F", "", "FRONTAL"]),
        "{page}"
    );
    // The last refused link, as given: the page did not narrow its address.
    assert!(
        page["refused_address"]
            .as_str()
            .unwrap()
            .ends_with("/?dataset=nih&with=Effusion&without=Effusion"),
        "{page}"
    );
    // What the API refuses (400, above), the page says; and a link giving a finding
    // both with and without, which its one choice per finding cannot show.
    for (query, said) in [
        ("age=40", "age 40"),
        ("age=abc", "age abc"),
        ("min-studies=abc", "min-studies abc"),
        (
            "with=Effusion&without=Effusion",
            "Effusion both with and without",
        ),
        // One value the API takes once (400 for two), the page says so.
        ("sex=F&sex=M", "sex given 2 times"),
    ] {
        let text = page["refused_values"][query].as_str().unwrap_or_default();
        assert!(text.contains(said), "{query}: {page}");
    }
    assert_eq!(page["first_study_checked"], true, "{page}");
    assert_eq!(page["numbers_beside_error"], 0, "{page}");
    let summary = run_csv(&[
        "cohort",
        "-w",
        w,
        "--dataset",
        "nih",
        "--min-studies",
        "5",
        "--summary",
        "--format",
        "csv",
    ]);
    let images = summary
        .iter()
        .find(|row| row[..2] == ["nih", "images"])
        .unwrap_or_else(|| panic!("{summary:?}"));
    let n = summary[0].iter().position(|h| h == "n").unwrap();
    assert_eq!(
        page["plus_min_studies"]["nih"]["images"], images[n],
        "{page}"
    );
    assert!(
        page["misspelt_text"]
            .as_str()
            .unwrap()
            .contains("parameter widthout"),
        "{page}"
    );
    for shot in ["page-cohort.png", "page-timeline.png"] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{shot}");
    }
    assert!(server.stop().success());
}
