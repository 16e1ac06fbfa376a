//! `cxr serve` with real clients: psql, psycopg + SQLAlchemy + pandas (Python), pgjdbc
//! (Java), and hostile ones written here. Answers are checked against the shipped
//! metadata CSV read without cxr, and Parquet read by pyarrow.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{code, cxr, nih_csv, parse_csv, python, run, stderr, stdout, wh2020};

/// A running `cxr serve` and what it has logged.
struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `cxr serve` on a free loopback port and waits for its readiness line.
    fn start(wh: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = cxr();
        command
            .args([
                "serve",
                "-w",
                wh.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .env_remove("CXR_SERVE_PASSWORD")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready, port) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(|l| l.ok()) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
                    let _ = ready.send(port);
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = port
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("cxr serve did not start: {}", log.lock().unwrap()));
        Server { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once `done` holds of it, or as it is after 10 s: a line the server
    /// wrote before its answer reaches the log through a pipe and a reader thread,
    /// possibly after the client has the answer.
    fn log_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// Peak resident memory so far, in MiB.
    fn peak_mib(&self) -> u64 {
        common::peak_mib(self.child.id())
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that the server's CPU goes quiet after a cancel, once the batches in hand
/// are done (a quarter of a second each): the statement stopped, not only its client.
/// A statement that computes for minutes: a hundred times every pair of images.
const MINUTES_OF_WORK: &str = "SELECT count(*) FROM images a, images b, \
     (SELECT age AS k FROM images LIMIT 100) c WHERE a.age + b.age + c.k = 300";

fn assert_quiet_after_cancel(server: &Server) {
    // The statement stops at its next check, after the batch it is joining (a second
    // or so, longer on a loaded machine): quiet within 10 s, where it would compute
    // for minutes.
    let start = Instant::now();
    let mut used = f64::MAX;
    while start.elapsed() < Duration::from_secs(10) && used >= 0.2 {
        let before = common::cpu_seconds(server.child.id());
        std::thread::sleep(Duration::from_millis(1500));
        used = common::cpu_seconds(server.child.id()) - before;
    }
    assert!(
        used < 0.2,
        "the server used {used} s of CPU in 1.5 s, 10 s after the cancel"
    );
}

/// A client program this test needs: present, or (under CI, which installs it) a
/// failure; elsewhere the test says it is skipped.
fn client(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} not found on PATH (CI is set: .ci/run installs it)"
        );
        eprintln!("SKIPPED: {program} not found on PATH");
    }
    found
}

/// psql connecting to the test server as `user` to the `cxr` database, reading no
/// ~/.psqlrc and no password from the environment (a test sets one where it needs it).
fn psql_as(port: u16, user: &str) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", user, "-d", "cxr"])
        .env("PGCONNECT_TIMEOUT", "20")
        .env_remove("PGPASSWORD");
    command
}

/// psql connecting as `cxr`.
fn psql_command(port: u16) -> Command {
    psql_as(port, "cxr")
}

/// psql running `script` from its standard input, with `args` before it.
fn psql_script(port: u16, args: &[&str], script: &str) -> Output {
    common::spawn_with_stdin(psql_command(port).args(args).args(["-f", "-"]), script)
        .wait_with_output()
        .unwrap()
}

/// psql's unaligned, comma-separated output of `sql`.
fn psql(port: u16, sql: &str, env: &[(&str, &str)]) -> Output {
    let mut command = psql_command(port);
    command.args(["-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1", "-c", sql]);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn psql_ok(port: u16, sql: &str) -> String {
    let out = psql(port, sql, &[]);
    assert_eq!(code(&out), Some(0), "{sql}: {}", stderr(&out));
    stdout(&out)
}

/// Commits a new version of `n` small images into `wh` (metadata written in `dir`).
fn commit_images(dir: &Path, wh: &Path, n: usize) {
    let meta = common::small_metadata(dir, n);
    let out = common::run(&common::ingest_args(
        meta.to_str().unwrap(),
        wh.to_str().unwrap(),
    ));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
}

/// The version folders a warehouse holds.
fn versions(wh: &Path) -> usize {
    std::fs::read_dir(wh)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("v-"))
        .count()
}

#[test]
fn psql_reads_tables_views_and_the_catalog() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let csv = nih_csv();

    let images = psql_ok(server.port, "SELECT count(*) FROM images");
    assert_eq!(images.trim(), csv.len().to_string());

    let patients = psql_ok(server.port, "SELECT count(DISTINCT patient_id) FROM images");
    let expected: std::collections::BTreeSet<i64> = csv.iter().map(|i| i.patient).collect();
    assert_eq!(patients.trim(), expected.len().to_string());

    // Per-finding image counts through the findings table, against the CSV.
    let counted = psql_ok(
        server.port,
        "SELECT label, count(*) FROM findings GROUP BY label ORDER BY label",
    );
    let mut expected = std::collections::BTreeMap::<String, usize>::new();
    for image in &csv {
        for label in &image.labels {
            *expected.entry(label.clone()).or_default() += 1;
        }
    }
    let expected: String = expected
        .iter()
        .map(|(label, n)| format!("{label},{n}\n"))
        .collect();
    assert_eq!(counted, expected);

    // A view's definition, asked as psql's \d+ asks it (by oid) and from pg_views.
    let oid = psql_ok(
        server.port,
        "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname = 'xr_images'",
    );
    let defined = psql_ok(
        server.port,
        &format!(
            "SELECT pg_catalog.pg_get_viewdef('{}'::pg_catalog.oid, true)",
            oid.trim()
        ),
    );
    assert_eq!(defined.trim(), "SELECT * FROM dataset_images");
    let views = psql_ok(
        server.port,
        "SELECT viewname, definition FROM pg_views WHERE viewname = 'xr_images'",
    );
    assert_eq!(views.trim(), "xr_images,SELECT * FROM dataset_images");
    // By the oid column however it is named (SQLAlchemy's full name, a bare `oid`),
    // in a column named after the function, as PostgreSQL names it.
    for asked in [
        "SELECT pg_catalog.pg_get_viewdef(pg_catalog.pg_class.oid) FROM pg_catalog.pg_class WHERE relname = 'xr_images'",
        "SELECT pg_get_viewdef(oid) FROM pg_class WHERE relname = 'xr_images'",
    ] {
        let out = psql_command(server.port)
            .args(["-A", "-F", ",", "-c", asked])
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(0), "{asked}: {}", stderr(&out));
        assert_eq!(
            stdout(&out).lines().take(2).collect::<Vec<_>>(),
            ["pg_get_viewdef", "SELECT * FROM dataset_images"],
            "{asked}"
        );
    }
    // psql's \dconfig reads pg_settings.boot_val.
    let boot = psql_ok(
        server.port,
        "SELECT boot_val FROM pg_settings WHERE name = 'server_version'",
    );
    assert_eq!(boot.trim(), "15.0");
    // to_char with PostgreSQL's template (DataFusion's own reads chrono's).
    let formatted = psql_ok(
        server.port,
        "SELECT to_char(DATE '2020-01-02', 'YYYY-MM-DD'), to_char(TIMESTAMP '2020-01-02 13:04:05', 'HH24:MI:SS')",
    );
    assert_eq!(formatted.trim(), "2020-01-02,13:04:05");
    // generate_series in a select list gives a row per value, as in PostgreSQL.
    let series = psql_ok(server.port, "SELECT generate_series(1, 3)");
    assert_eq!(series, "1\n2\n3\n");

    // \dt lists the warehouse's tables; \d describes one.
    let listed = psql_ok(server.port, "\\dt");
    for table in ["images", "findings", "patients", "data_issues"] {
        assert!(
            listed.lines().any(|l| l.split(',').nth(1) == Some(table)),
            "\\dt lacks {table}:\n{listed}"
        );
    }
    assert!(
        listed.lines().all(|l| l.split(',').nth(3) == Some("cxr")),
        "\\dt: every table's owner is the login role:\n{listed}"
    );
    let described = psql_ok(server.port, "\\d images");
    for column in ["image_index", "patient_id", "age", "sex", "view_position"] {
        assert!(
            described
                .lines()
                .any(|l| l.starts_with(&format!("{column},"))),
            "\\d images lacks {column}:\n{described}"
        );
    }

    // \d+ describes the columns too; \df and \dT run (cxr's catalog has no
    // functions or types of its own to list); \du lists the role clients log in as.
    let described = psql_ok(server.port, "\\d+ images");
    for column in ["image_index", "labels", "split"] {
        assert!(
            described
                .lines()
                .any(|l| l.starts_with(&format!("{column},"))),
            "\\d+ images lacks {column}:\n{described}"
        );
    }
    for command in ["\\df", "\\dT"] {
        psql_ok(server.port, command);
    }
    // \dt+ gives each table's size: its Parquet file's, as PostgreSQL writes a size
    // (kilobytes, rounded half up, from 10 kB to 10 MB); a view's is 0 bytes.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(wh.join("manifest.json")).unwrap()).unwrap();
    let file = wh
        .join(manifest["data"].as_str().unwrap())
        .join("images.parquet");
    let bytes = std::fs::metadata(file).unwrap().len();
    assert!((10 << 10..10 << 20).contains(&bytes), "{bytes}");
    let sizes = psql_ok(server.port, "\\dt+");
    // (Size is the column before Description, the last.)
    let size_of = |listing: &str, name: &str| {
        listing
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[1] == name)
            .map(|f| f[f.len() - 2].to_string())
    };
    assert_eq!(
        size_of(&sizes, "images"),
        Some(format!("{} kB", (bytes + 512) / 1024)),
        "{sizes}"
    );
    let views = psql_ok(server.port, "\\dv+");
    assert_eq!(
        size_of(&views, "xr_images").as_deref(),
        Some("0 bytes"),
        "{views}"
    );
    let roles = psql_ok(server.port, "\\du");
    assert!(
        roles.lines().any(|l| l.split(',').next() == Some("cxr")),
        "\\du lacks cxr:\n{roles}"
    );
    // One database, the one psql is connected to.
    let databases = psql_ok(server.port, "\\l");
    let names: Vec<&str> = databases
        .lines()
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(names, ["cxr"], "\\l:\n{databases}");
    // Result columns named as PostgreSQL names them: after the function, after
    // what a cast casts; two alike keep names of their own.
    let header = psql_ok(
        server.port,
        "COPY (SELECT label, count(*), round(avg(length(image_index)), 1), max(image_index)::text \
         FROM findings GROUP BY label LIMIT 1) TO STDOUT WITH (FORMAT csv, HEADER)",
    );
    assert_eq!(header.lines().next(), Some("label,count,round,max"));
    let both = psql_ok(
        server.port,
        "COPY (SELECT count(*), count(label) FROM findings) TO STDOUT WITH (FORMAT csv, HEADER)",
    );
    let labelled: usize = csv.iter().map(|image| image.labels.len()).sum();
    let expected = format!("{0},{0}", labelled);
    assert_eq!(both.lines().next(), Some("count(*),count(findings.label)"));
    assert_eq!(both.lines().nth(1), Some(expected.as_str()), "{both}");
    // A NULL of no type is NULL in both forms (PostgreSQL: `,1` and `\N<tab>1`).
    let untyped = psql_ok(server.port, "COPY (SELECT NULL AS n, 1 AS c) TO STDOUT CSV");
    assert_eq!(untyped.trim_end(), ",1");
    let untyped = psql_ok(server.port, "COPY (SELECT NULL AS n, 1 AS c) TO STDOUT");
    assert_eq!(untyped.trim_end(), "\\N\t1");
    // A subquery in a select list, correlated (each patient's images, against the
    // CSV) and not; one of several rows is an error, as in PostgreSQL.
    let per_patient = psql_ok(
        server.port,
        "SELECT p.patient_id, (SELECT count(*) FROM images i WHERE i.patient_id = p.patient_id) AS n \
         FROM patients p ORDER BY p.patient_id LIMIT 3",
    );
    let mut counts = std::collections::BTreeMap::<i64, usize>::new();
    for image in &csv {
        *counts.entry(image.patient).or_default() += 1;
    }
    let expected: String = counts
        .iter()
        .take(3)
        .map(|(patient, n)| format!("{patient},{n}\n"))
        .collect();
    assert_eq!(per_patient, expected);
    let oldest = psql_ok(
        server.port,
        "SELECT (SELECT max(age) FROM images) AS oldest",
    );
    let max_age = csv
        .iter()
        .map(|i| i.age)
        .filter(|a| *a <= 120)
        .max()
        .unwrap();
    assert_eq!(oldest.trim(), max_age.to_string());
    let out = psql(
        server.port,
        "SELECT (SELECT image_index FROM images) AS x",
        &[],
    );
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("more than one row"),
        "{}",
        stderr(&out)
    );

    // Cursors: psql's FETCH_COUNT reads a result through one (DECLARE, FETCH FORWARD
    // 1000, ..., CLOSE), and one declared by hand is fetched in pieces, in order.
    let fetched = psql_command(server.port)
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-v", "FETCH_COUNT=1000"])
        .args(["-c", "SELECT image_index FROM images ORDER BY image_index"])
        .output()
        .unwrap();
    assert_eq!(code(&fetched), Some(0), "{}", stderr(&fetched));
    let mut indexes: Vec<&str> = csv.iter().map(|i| i.index.as_str()).collect();
    indexes.sort();
    assert_eq!(stdout(&fetched).lines().collect::<Vec<_>>(), indexes);
    let pieces = psql_ok(
        server.port,
        "BEGIN; DECLARE c CURSOR FOR SELECT image_index FROM images ORDER BY image_index; \
         FETCH 3 FROM c; FETCH 2 FROM c; CLOSE c; COMMIT",
    );
    let rows: Vec<&str> = pieces.lines().filter(|l| l.ends_with(".png")).collect();
    assert_eq!(rows, indexes[..5]);
    // A cursor used up still has its columns, as PostgreSQL's does: psql prints its
    // header and "(0 rows)" where it printed nothing.
    let used_up = psql_command(server.port)
        .args(["-A", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "BEGIN; DECLARE u CURSOR FOR SELECT image_index, age FROM images LIMIT 1; \
             FETCH 5 FROM u; FETCH 5 FROM u",
        )
        .output()
        .unwrap();
    assert_eq!(code(&used_up), Some(0), "{}", stderr(&used_up));
    let printed = stdout(&used_up);
    let tail: Vec<&str> = printed.lines().rev().take(2).collect();
    assert_eq!(tail, ["(0 rows)", "image_index|age"], "{printed}");

    // SQL-level prepared statements, kept for the connection; the values cast to the
    // declared type. Counted against the CSV.
    let executed = psql_ok(
        server.port,
        "PREPARE older (int) AS SELECT count(*) FROM images WHERE age > $1; \
         EXECUTE older(50); EXECUTE older('80'); DEALLOCATE older",
    );
    let above = |age: i64| csv.iter().filter(|i| i.age > age && i.age <= 120).count();
    let counts: Vec<String> = executed
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        counts,
        [above(50).to_string(), above(80).to_string()],
        "{executed}"
    );
    let out = psql(server.port, "EXECUTE older(50)", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // \copy to a file: the header and 3 rows, counted as 3 as PostgreSQL does.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.csv");
    let said = psql_ok(
        server.port,
        &format!(
            "\\copy (SELECT image_index, follow_up FROM images ORDER BY image_index LIMIT 3) to '{}' with csv header",
            file.display()
        ),
    );
    assert_eq!(said.trim(), "COPY 3");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 4, "{written}");
    assert_eq!(written.lines().next(), Some("image_index,follow_up"));

    // \copy to stdout: the rows, as CSV.
    let copied = psql_ok(
        server.port,
        "\\copy (SELECT image_index, follow_up FROM images ORDER BY image_index LIMIT 3) to stdout with csv",
    );
    let mut first: Vec<&common::CsvImage> = csv.iter().collect();
    first.sort_by(|a, b| a.index.cmp(&b.index));
    let expected: String = first[..3]
        .iter()
        .map(|i| format!("{},{}\n", i.index, i.follow_up))
        .collect();
    assert_eq!(copied, expected);

    assert!(server.stop().success());
}

/// Floats, timestamps, times and arrays in the text PostgreSQL 15 writes (its
/// documented output, by hand), in query results and in `COPY ... TO STDOUT`:
/// `Infinity`, not Rust's `inf`; no trailing zeros in a fraction of a second;
/// `{a,b}`, not arrow's `[a, b]`.
#[test]
fn values_in_postgresql_text_forms() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let values = "CAST('inf' AS double precision), CAST('-inf' AS double precision), \
                  CAST(-0.0 AS double precision), CAST(1e300 AS double precision), \
                  CAST(0.00001 AS double precision), CAST(0.1 AS real), \
                  TIMESTAMP '2020-01-01 10:00:00', TIMESTAMP '2020-01-01 10:00:00.5', \
                  TIME '10:00:00.25'";
    let written = "Infinity,-Infinity,-0,1e+300,1e-05,0.1,2020-01-01 10:00:00,2020-01-01 10:00:00.5,10:00:00.25";
    assert_eq!(
        psql_ok(server.port, &format!("SELECT {values}")).trim(),
        written
    );
    // A list of lists, which the protocol's encoder cannot send, as PostgreSQL's
    // two-dimensional array (`ARRAY[ARRAY[1,2],ARRAY[3,4]]`); a half float as real.
    assert_eq!(
        psql_ok(
            server.port,
            "SELECT make_array(make_array(1, 2), make_array(3, 4)), arrow_cast(1.5, 'Float16'), \
             make_array(arrow_cast(1.5, 'Float16')), DATE '0001-01-01' - INTERVAL '1 day'"
        )
        .trim(),
        "{{1,2},{3,4}},1.5,{1.5},0001-12-31 BC"
    );
    // A record holding a half float is answered (its connection had ended unsaid).
    let record = psql(
        server.port,
        "SELECT named_struct('a', arrow_cast(1.5, 'Float16')) AS r",
        &[],
    );
    assert_eq!(code(&record), Some(0), "{}", stderr(&record));

    let csv = nih_csv();
    let image = csv.iter().find(|i| i.labels.len() > 1).unwrap();
    let labels: Vec<&str> = image.labels.iter().map(String::as_str).collect();
    let copied = psql_ok(
        server.port,
        &format!(
            "\\copy (SELECT array_sort(labels), make_array('a b', NULL, 'x'), arrow_cast('abc', 'Binary'), {values} FROM images WHERE image_index = '{}') to stdout with csv",
            image.index
        ),
    );
    let array = format!("{{{}}}", labels.join(","));
    // Quoted as CSV where they hold a comma, as PostgreSQL quotes them.
    assert_eq!(
        copied,
        format!("\"{array}\",\"{{\"\"a b\"\",NULL,x}}\",\\x616263,{written}\n")
    );
    assert!(server.stop().success());
}

#[test]
fn clients_read_and_never_write_or_name_files() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let before = common::snapshot(&wh);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.csv");
    std::fs::write(&secret, "a\n1\n").unwrap();
    let target = dir.path().join("out.csv");
    let server = Server::start(&wh, &[], &[]);
    let refused = [
        format!("COPY images TO '{}'", target.display()),
        format!("COPY (SELECT 1) TO '{}' STORED AS CSV", target.display()),
        format!("SELECT * FROM '{}'", secret.display()),
        format!(
            "CREATE EXTERNAL TABLE s STORED AS CSV LOCATION '{}'",
            secret.display()
        ),
        "INSERT INTO findings VALUES ('x', 1, 1, 'y')".to_string(),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP TABLE images".to_string(),
        format!(
            "EXPLAIN ANALYZE COPY images TO '{}'",
            dir.path().join("x.parquet").display()
        ),
    ];
    for sql in &refused {
        let out = psql(server.port, sql, &[]);
        assert_ne!(code(&out), Some(0), "{sql} was not refused");
        assert!(
            !stderr(&out).is_empty(),
            "{sql}: no error message for the client"
        );
    }
    assert!(!target.exists(), "a client wrote a file");
    assert!(!dir.path().join("x.parquet").exists());
    // Still answering, and nothing of the warehouse changed.
    assert_eq!(psql_ok(server.port, "SELECT 1").trim(), "1");
    assert_eq!(common::snapshot(&wh), before);
    let log = server.log_when(|log| log.contains("refused"));
    assert!(log.contains("refused"), "refusals are logged:\n{log}");
    assert!(server.stop().success());
}

/// The resident memory of process `pid`, in MiB (/proc).
fn resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// A version is freed after its last statement: a server beside a warehouse that
/// commits again and again stays the size it was (each version of the NIH tables in
/// memory had stayed, about 96 MB a commit).
#[test]
fn versions_are_freed_as_commits_follow_each_other() {
    let Some(_) = client("psql") else { return };
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let out = common::run(&["ingest", "--no-images", "-w", wh.to_str().unwrap()]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let server = Server::start(&wh, &[], &[]);
    let commit_and_read = |seed: usize| {
        let seed = seed.to_string();
        let out = common::run(&["split", "-w", wh.to_str().unwrap(), "--seed", &seed]);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let n = psql_ok(server.port, "SELECT count(*) FROM images WHERE age > 40");
        assert!(n.trim().parse::<u64>().unwrap() > 0, "{n}");
    };
    commit_and_read(1);
    commit_and_read(2);
    let before = resident_mib(server.child.id());
    for seed in 3..9 {
        commit_and_read(seed);
    }
    // The last statement's stream, which holds the version it read, ends a moment
    // after psql has its answer: the size is read until it settles, for 10 s at most.
    let settled = Instant::now() + Duration::from_secs(10);
    let mut after = resident_mib(server.child.id());
    while after >= before + 60 && Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(100));
        after = resident_mib(server.child.id());
    }
    assert!(
        after < before + 60,
        "{before} MiB after two commits, {after} MiB after eight"
    );
    assert!(server.stop().success());
}

/// A REPEATABLE READ transaction reads one version from its first statement to its
/// end, as PostgreSQL's snapshot: a commit meanwhile (by psql's `\!`, inside the
/// session) is seen after it; READ COMMITTED sees it at the next statement.
#[test]
fn a_repeatable_read_transaction_keeps_its_version() {
    let Some(_) = client("psql") else { return };
    let dir = tempfile::tempdir().unwrap();
    let wh = common::small_warehouse(dir.path(), 40, "wh");
    let server = Server::start(&wh, &[], &[]);
    let commit = |n: usize| {
        let folder = dir.path().join(n.to_string());
        std::fs::create_dir_all(&folder).unwrap();
        let meta = common::small_metadata(&folder, n);
        let args = common::ingest_args(meta.to_str().unwrap(), wh.to_str().unwrap());
        format!(
            "\\! {} {} > /dev/null 2>&1\n",
            env!("CARGO_BIN_EXE_cxr"),
            args.join(" ")
        )
    };
    let script = format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n\
         SELECT count(*) FROM images;\n{}\
         SELECT count(*) FROM images;\n\
         COMMIT;\n\
         SELECT count(*) FROM images;\n\
         BEGIN;\n\
         SELECT count(*) FROM images;\n{}\
         SELECT count(*) FROM images;\n\
         COMMIT;\n",
        commit(60),
        commit(70)
    );
    let out = psql_script(server.port, &["-A", "-t", "-v", "ON_ERROR_STOP=1"], &script);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let counts: Vec<&str> = printed
        .lines()
        .filter(|l| l.parse::<u64>().is_ok())
        .collect();
    assert_eq!(counts, ["40", "40", "60", "60", "70"]);
    assert!(server.stop().success());
}

#[test]
fn a_commit_is_seen_by_the_next_statement_without_a_restart() {
    let Some(_) = client("psql") else { return };
    let dir = tempfile::tempdir().unwrap();
    let wh = common::small_warehouse(dir.path(), 40, "wh");
    let server = Server::start(&wh, &[], &[]);
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        "40"
    );
    // A new version of 60 images, committed while the server runs.
    commit_images(dir.path(), &wh, 60);
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        "60"
    );
    // Another commit (a split) and the old version's folder is collected: the
    // server holds only the version it reads.
    let out = common::run(&["split", "-w", wh.to_str().unwrap(), "--seed", "7"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let splits = psql_ok(server.port, "SELECT count(*) FROM splits");
    assert_eq!(splits.trim(), "30", "one row per patient");
    let kept = versions(&wh);
    assert!(kept <= 2, "{kept} version folders kept");
    assert!(server.stop().success());
}

#[test]
fn a_password_is_required_off_loopback_and_checked_by_scram() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    // Off loopback without a password: refused before listening.
    let out = cxr()
        .args(["serve", "-w", wh.to_str().unwrap(), "--listen", "0.0.0.0:0"])
        .env_remove("CXR_SERVE_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    // There is no --password flag: a password on the command line is visible to
    // every user of the machine.
    let out = cxr()
        .args(["serve", "-w", wh.to_str().unwrap(), "--password", "x"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "correct horse\n").unwrap();
    let server = Server::start(
        &wh,
        &[
            "--password-file",
            file.to_str().unwrap(),
            "--user",
            "reader",
        ],
        &[],
    );
    let login = |user: &str, password: &str| {
        psql_as(server.port, user)
            .args(["-At", "-c", "SELECT count(*) FROM images"])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    let out = login("reader", "correct horse");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "112120");
    let out = login("reader", "wrong");
    assert_ne!(code(&out), Some(0));
    // The client is told which user failed, as PostgreSQL tells it.
    assert!(
        stderr(&out).contains("authentication failed for user \"reader\""),
        "{}",
        stderr(&out)
    );
    let out = login("someone", "correct horse");
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("authentication failed for user \"someone\""),
        "{}",
        stderr(&out)
    );
    // Each failure is logged, and the next attempt from the address waits.
    let started = Instant::now();
    let out = login("reader", "wrong again");
    assert_ne!(code(&out), Some(0));
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "the third failure answered in {:?}",
        started.elapsed()
    );
    // Guesses sent on several connections at once wait in turn: after three
    // failures each waits 1 s more, so the last of four is answered after 4 s, not 1.
    let started = Instant::now();
    let guesses: Vec<_> = (0..4)
        .map(|i| {
            let port = server.port;
            std::thread::spawn(move || {
                psql_as(port, "reader")
                    .args(["-At", "-c", "SELECT 1"])
                    .env("PGPASSWORD", format!("guess {i}"))
                    .env("PGCONNECT_TIMEOUT", "30")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for guess in guesses {
        assert_ne!(code(&guess.join().unwrap()), Some(0));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(3500),
        "four parallel guesses answered in {:?}",
        started.elapsed()
    );
    let log = server.log_when(|log| log.matches("failed login for user").count() >= 7);
    assert!(
        log.matches("failed login for user").count() >= 7,
        "failed logins are logged:\n{log}"
    );
    assert!(!log.contains("correct horse"));
    assert!(server.stop().success());
}

#[test]
fn connections_that_never_log_in_hold_few_places() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "correct horse\n").unwrap();
    let server = Server::start(&wh, &["--password-file", file.to_str().unwrap()], &[]);
    let login = || {
        psql_command(server.port)
            .args(["-At", "-c", "SELECT count(*) FROM images"])
            .env("PGPASSWORD", "correct horse")
            .output()
            .unwrap()
    };
    // Eight connections from one address that send nothing: a ninth from it is
    // refused at once, saying why, while the server has places left.
    let idle: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    // The server accepts connections in order: the eight before the ninth.
    let out = login();
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("logging in at once"),
        "{}",
        stderr(&out)
    );
    drop(idle);
    // Their places are free once they leave.
    let started = Instant::now();
    let out = loop {
        let out = login();
        if code(&out) == Some(0) || started.elapsed() > Duration::from_secs(10) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "112120");
    assert!(
        server
            .log_when(|log| log.contains("logging in already"))
            .contains("logging in already"),
        "{}",
        server.log()
    );
    assert!(server.stop().success());
}

#[test]
fn limits_stop_a_long_or_large_statement_and_the_server_answers_others() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &["--query-time", "4", "--query-memory", "1MiB"], &[]);
    // Hours of work: every pair of images.
    let port = server.port;
    let long = std::thread::spawn(move || {
        let started = Instant::now();
        let out = psql(
            port,
            "SELECT count(*) FROM images a, images b WHERE a.age + b.age = 200",
            &[],
        );
        (out, started.elapsed())
    });
    // Meanwhile another client is answered.
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        "112120"
    );
    let (out, took) = long.join().unwrap();
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("time limit"), "{}", stderr(&out));
    // Stopped at its limit, not when the join would have ended (hours); the margin
    // is for a loaded machine.
    assert!(took < Duration::from_secs(12), "stopped after {took:?}");

    // A hash join over every image needs more than 1 MiB.
    let out = psql(
        server.port,
        "SELECT count(*) FROM images a JOIN images b ON a.image_index = b.image_index",
        &[],
    );
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("limit of 1 MiB"), "{}", stderr(&out));
    assert_eq!(psql_ok(server.port, "SELECT 2").trim(), "2");
    assert!(server.stop().success());
}

/// Statements that compute for minutes, as many as may start computing at once (two
/// per core), take their turns but give them up after a second: another client's
/// statement is answered while they still run (it waited until they ended).
#[test]
fn statements_computing_for_minutes_hold_up_no_other_client() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &["--query-time", "120"], &[]);
    let at_once = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut long: Vec<Child> = (0..at_once)
        .map(|_| {
            psql_command(server.port)
                // A hundred times every pair of images: many minutes of work.
                .args([
                    "-c",
                    "SELECT count(*) FROM images a, images b, (SELECT age AS k FROM images LIMIT 100) c \
                     WHERE a.age + b.age + c.k = 300",
                ])
                .env("PGCONNECT_TIMEOUT", "20")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Ready when the server has computed for a while (every long statement started).
    common::wait_until_busy(server.child.id(), 3.0 * at_once as f64);
    let started = Instant::now();
    let out = psql(
        server.port,
        "SET statement_timeout = '30s'; SELECT count(*) FROM images",
        &[],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("112120"), "{}", stdout(&out));
    // Answered while every long statement still computes.
    for child in &mut long {
        assert!(
            child.try_wait().unwrap().is_none(),
            "a long statement ended first"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    for mut child in long {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(server.stop().success());
}

/// Writes raw bytes to the server and returns whatever it answers before closing.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(70)))
        .unwrap();
    let _ = socket.write_all(bytes);
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    answer
}

/// A session started as `cxr` by hand, read up to its first ReadyForQuery.
fn logged_in(port: u16) -> TcpStream {
    let (answer, socket) = started_with(port, &[]);
    // Up to ReadyForQuery: 'Z', length 5, idle.
    assert!(
        answer.ends_with(b"Z\0\0\0\x05I"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    socket
}

/// A protocol message: its type byte, its length, its body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Starts a session as `cxr` by hand, then sends a simple query declaring 512 MiB and
/// streams bytes of it (up to 256 MiB) until the server stops taking them: the bytes
/// sent, and what the server answered after the startup.
fn declare_a_huge_query(port: u16) -> (usize, Vec<u8>) {
    let mut socket = logged_in(port);
    let mut reader = socket.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer);
        answer
    });
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(512u32 << 20).to_be_bytes());
    socket.write_all(&header).unwrap();
    let chunk = vec![b' '; 1 << 20];
    let mut sent = 0;
    while sent < 256 << 20 && socket.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    (sent, answer.join().unwrap())
}

#[test]
fn a_hostile_client_is_refused_and_the_server_stays_up() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let mut server = Server::start(&wh, &["--max-connections", "20"], &[]);
    let port = server.port;
    // The limit as PostgreSQL shows its own.
    assert_eq!(
        psql_ok(
            port,
            "SHOW max_connections; SELECT current_setting('max_connections');"
        )
        .split_whitespace()
        .collect::<Vec<_>>(),
        ["20", "20"]
    );
    // Garbage, and a startup packet declaring 1 GiB.
    raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut huge = (1u32 << 30).to_be_bytes().to_vec();
    huge.extend_from_slice(&196608u32.to_be_bytes());
    huge.extend_from_slice(&[b'x'; 1000]);
    raw(port, &huge);
    assert!(server.alive());
    // A startup naming no user is refused as PostgreSQL refuses it.
    let params = b"database\0cxr\0\0";
    let mut nobody = ((8 + params.len()) as u32).to_be_bytes().to_vec();
    nobody.extend_from_slice(&196608u32.to_be_bytes());
    nobody.extend_from_slice(params);
    let answer = String::from_utf8_lossy(&raw(port, &nobody)).into_owned();
    assert!(answer.starts_with('E'), "{answer:?}");
    assert!(answer.contains("28000"), "{answer:?}");
    // The error alone, as PostgreSQL ends a connection: no ReadyForQuery after it.
    assert!(answer.ends_with("startup packet\0\0"), "{answer:?}");
    // After a proper startup, a statement declaring 512 MiB (under pgwire's own 1 GiB
    // limit) is refused from its header: the server closes the connection long before
    // the bytes could arrive.
    let (sent, answer) = declare_a_huge_query(port);
    assert!(
        sent < 64 << 20,
        "the server read {sent} bytes of a refused message"
    );
    // One ErrorResponse and nothing after it: a fatal error ends the conversation
    // (no ReadyForQuery).
    assert_eq!(answer.first(), Some(&b'E'), "{answer:?}");
    let length = u32::from_be_bytes(answer[1..5].try_into().unwrap()) as usize;
    assert_eq!(
        answer.len(),
        1 + length,
        "bytes after the error: {answer:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("SFATAL")
            && answer.contains("54000")
            && answer.contains("a message of 536870912 bytes refused"),
        "{answer}"
    );
    assert!(server.alive());
    // 100 connections that never start (more than the 20 places): once they have
    // sat idle for longer than a client takes to send its startup packet (2 s),
    // each new client takes the place of the oldest, again and again.
    let idle: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    for n in 0..3 {
        assert_eq!(psql_ok(port, &format!("SELECT {n}")).trim(), n.to_string());
    }
    drop(idle);
    // Each connection closed to make room is logged, one line each.
    assert!(
        server
            .log()
            .contains("closed to make room for a new client"),
        "{}",
        server.log()
    );
    // A cancel request with a guessed key is ignored, and logged as PostgreSQL logs it.
    let mut cancel = 16u32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&80877102u32.to_be_bytes());
    cancel.extend_from_slice(&424242i32.to_be_bytes());
    cancel.extend_from_slice(&7u32.to_be_bytes());
    raw(port, &cancel);
    let started = Instant::now();
    while !server
        .log()
        .contains("cancel request for process 424242 with a wrong key")
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server
            .log()
            .contains("cancel request for process 424242 with a wrong key"),
        "{}",
        server.log()
    );
    // Clients that have logged in keep their places: past the limit, a new one is
    // refused with PostgreSQL's own error.
    let sessions: Vec<TcpStream> = (0..20).map(|_| logged_in(port)).collect();
    let out = psql(port, "SELECT 1", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("too many clients"),
        "{}",
        stderr(&out)
    );
    drop(sessions);
    // Once they are gone, clients are answered again; a 10 MB statement is
    // answered too (an error, not a crash).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = psql(port, "SELECT 3", &[]);
        if code(&out) == Some(0) {
            assert_eq!(stdout(&out).trim(), "3");
            break;
        }
        assert!(Instant::now() < deadline, "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    let big = format!("SELECT 1 /* {} */", "x".repeat(10 << 20));
    let out = psql_script(port, &["-At"], &big);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
    // Statements of more tokens than cxr plans within bounded memory are refused
    // before any parsing, in one message or several: a select list of 60,000 items
    // (2 GiB in the server before), 2,000,000 operators (tokenized whole, 1.4 GiB).
    for big in [
        format!("SELECT {}1", "1,".repeat(60_000)),
        format!("SELECT 1; SELECT {}1", "1+".repeat(2_000_000)),
    ] {
        let out = psql_script(port, &["-At", "-v", "ON_ERROR_STOP=1"], &big);
        assert_ne!(code(&out), Some(0));
        assert!(
            stderr(&out).contains("more than 50000 tokens"),
            "{}",
            stderr(&out)
        );
    }
    assert!(server.alive());
    let log = server.log_when(|log| log.contains("too many"));
    assert!(log.contains("too many"), "refusals are logged:\n{log}");
    let peak = server.peak_mib();
    assert!(peak < 1024, "peak RSS {peak} MiB");
    assert!(server.stop().success());
}

#[test]
fn sigterm_lets_a_running_statement_finish() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let port = server.port;
    let pid = server.child.id();
    // Seconds of work: pairs of images whose ages add up to 100.
    let running = std::thread::spawn(move || {
        psql(
            port,
            "SELECT count(*) FROM images a JOIN images b ON a.age + b.age = 100 WHERE b.patient_id <= 20000",
            &[],
        )
    });
    // Readiness: the server is working on the statement.
    common::wait_until_busy(pid, 1.0);
    let status = server.stop();
    let out = running.join().unwrap();
    assert!(status.success());
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // Independently, from the CSV: ages over 120 are not ages (NULL in cxr).
    let csv = nih_csv();
    let mut all = [0i64; 121];
    let mut chosen = [0i64; 121];
    for image in csv.iter().filter(|i| (0..=120).contains(&i.age)) {
        all[image.age as usize] += 1;
        if image.patient <= 20000 {
            chosen[image.age as usize] += 1;
        }
    }
    let pairs: i64 = (0..=100).map(|a| all[a] * chosen[100 - a]).sum();
    assert_eq!(stdout(&out).trim(), pairs.to_string());
}

#[test]
fn psycopg_sqlalchemy_and_pandas_read_every_table() {
    let Some(python) = python() else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pandas_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(server.port.to_string())
        .arg(&wh)
        .arg(common::data("Data_Entry_2017_v2020.csv.gz"))
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        Some(0),
        "{}\n{}\nserver log:\n{}",
        stdout(&out),
        stderr(&out),
        server.log()
    );
    assert!(stdout(&out).contains("tables checked:"), "{}", stdout(&out));
    assert!(server.stop().success());
}

#[test]
fn jdbc_lists_tables_and_runs_a_prepared_statement() {
    let Some(_) = client("javac") else { return };
    let jar = Path::new("/usr/share/java/postgresql.jar");
    if !jar.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} missing (CI is set: .ci/run installs libpostgresql-jdbc-java)",
            jar.display()
        );
        eprintln!("SKIPPED: {} missing", jar.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/JdbcCheck.java");
    let out = Command::new("javac")
        .args([
            "-cp",
            jar.to_str().unwrap(),
            "-d",
            dir.path().to_str().unwrap(),
        ])
        .arg(&source)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let classpath = format!("{}:{}", jar.display(), dir.path().display());
    let out = Command::new("java")
        .args(["-cp", &classpath, "JdbcCheck", &server.port.to_string()])
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        Some(0),
        "{}\n{}\nserver log:\n{}",
        stdout(&out),
        stderr(&out),
        server.log()
    );
    // Women over 60 in PA view, counted from the CSV (sex and view are the 6th and
    // 7th fields).
    let expected = women_over_60_pa();
    let text = stdout(&out);
    assert!(
        text.contains(&format!("prepared: {expected}")),
        "expected {expected}:\n{text}"
    );
    for table in ["images", "findings", "patients"] {
        assert!(text.contains(&format!("table: {table}")), "{text}");
    }
    assert!(text.contains("column: images.patient_id int4"), "{text}");
    // The rest of DatabaseMetaData a tool reads of a table answers, and says what
    // PostgreSQL says of a table without keys, indexes or privileges granted: no
    // rows, and the views listed as views.
    for empty in [
        "primaryKeys",
        "importedKeys",
        "exportedKeys",
        "indexInfo",
        "bestRowIdentifier",
        "procedures",
    ] {
        assert!(
            text.contains(&format!("{empty}: 0 rows")),
            "{empty}:\n{text}"
        );
    }
    for view in ["xr_images", "xr_labels", "xr_boxes"] {
        assert!(text.contains(&format!("view: {view}")), "{text}");
    }
    // Types, functions and the owner's privileges on the table and each column.
    for answered in [
        "typeInfo",
        "functions",
        "tablePrivileges",
        "columnPrivileges",
    ] {
        let rows: usize = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{answered}: "))?
                    .strip_suffix(" rows")
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{answered}:\n{text}"));
        assert!(rows > 0, "{answered}:\n{text}");
    }
    assert!(text.contains("user: cxr"), "{text}");
    // A 1-byte integer column read six times (binary results from the sixth).
    let labels = nih_csv()
        .into_iter()
        .find(|i| i.index == "00000001_001.png")
        .unwrap()
        .labels
        .len();
    assert!(text.contains(&format!("n_labels: {labels}")), "{text}");
    assert!(text.contains("date: 2021-03-04 time: 05:06:07"), "{text}");
    assert!(server.stop().success());
}

/// Images of women over 60 in PA view, from the shipped CSV read without cxr.
fn women_over_60_pa() -> usize {
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(common::data("Data_Entry_2017_v2020.csv.gz")).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f.len() > 6
                && f[5] == "F"
                && f[6] == "PA"
                && f[4].trim().parse::<i64>().is_ok_and(|a| a > 60 && a <= 120)
        })
        .count()
}

#[test]
fn listens_on_a_host_name() {
    let wh = wh2020();
    let mut command = cxr();
    let mut child = command
        .args([
            "serve",
            "-w",
            wh.to_str().unwrap(),
            "--listen",
            "localhost:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.contains("listening on 127.0.0.1:") || line.contains("listening on [::1]:"),
        "{line}"
    );
}

#[test]
fn usage_errors_exit_2_before_listening() {
    let wh = wh2020();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["--max-connections".into(), "0".into()],
        vec!["--query-time".into(), "-1".into()],
        vec!["--query-memory".into(), "lots".into()],
        vec!["--listen".into(), "no-such-host.invalid:5433".into()],
        vec!["--tls-cert".into(), "x.pem".into()],
        vec!["--user".into(), "someone".into()],
        vec![
            "--tls-cert".into(),
            dir.path().join("none.pem").display().to_string(),
            "--tls-key".into(),
            dir.path().join("none.key").display().to_string(),
        ],
    ];
    for case in cases {
        let out = cxr()
            .args([
                "serve",
                "-w",
                wh.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(&case)
            .env_remove("CXR_SERVE_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(2), "{case:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("listening"), "{case:?}");
    }
    // No warehouse: named, exit 2.
    let out = cxr()
        .args(["serve", "-w", dir.path().join("none").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no warehouse"), "{}", stderr(&out));
}

#[test]
fn saved_queries_are_table_functions() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    // The three most frequent pairs of findings, counted from the CSV.
    let mut pairs = std::collections::BTreeMap::<(String, String), usize>::new();
    for image in nih_csv() {
        let labels: Vec<&String> = image.labels.iter().collect();
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                *pairs.entry(((*a).clone(), (*b).clone())).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<((String, String), usize)> = pairs.into_iter().collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let expected: String = ranked[..3]
        .iter()
        .map(|((a, b), n)| format!("{a},{b},{n}\n"))
        .collect();
    let got = psql_ok(
        server.port,
        "SELECT label_a, label_b, n_ab FROM top_pairs(3)",
    );
    assert_eq!(got, expected);
    // Named as PostgreSQL reads names: in any case unquoted, quoted in lower case;
    // a quoted name in another case is another name.
    for name in ["Top_Pairs", "TOP_PAIRS", "\"top_pairs\""] {
        let sql = format!("SELECT label_a, label_b, n_ab FROM {name}(3)");
        assert_eq!(psql_ok(server.port, &sql), expected, "{sql}");
    }
    let out = psql(server.port, "SELECT * FROM \"Top_Pairs\"(3)", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("Top_Pairs"), "{}", stderr(&out));
    // Defaults: 20 rows; a second argument binds the second parameter.
    let n = psql_ok(server.port, "SELECT count(*) FROM top_pairs()");
    assert_eq!(n.trim(), "20");
    let rare = ranked.iter().filter(|(_, n)| *n >= 1000).count().min(50);
    let n = psql_ok(server.port, "SELECT count(*) FROM top_pairs(50, 1000)");
    assert_eq!(n.trim(), rare.to_string());
    // Too many arguments, or one of the wrong type: the parameters are named.
    let out = psql(server.port, "SELECT * FROM top_pairs(1, 2, 3)", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("min_n"), "{}", stderr(&out));
    let out = psql(server.port, "SELECT * FROM top_pairs('many')", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("top"), "{}", stderr(&out));
    // ... without the server's path to the file.
    assert!(!stderr(&out).contains("queries/"), "{}", stderr(&out));
    // A dataset the warehouse does not hold is refused, as `cxr run` refuses it.
    let out = psql(
        server.port,
        "SELECT * FROM prevalence_by_dataset('mimic')",
        &[],
    );
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("holds no `mimic`"),
        "{}",
        stderr(&out)
    );
    // Rows in the query's own order (most likely first), not as the plan split them:
    // the findings beside Hernia by count, then name, from the CSV.
    let mut beside = std::collections::BTreeMap::<String, usize>::new();
    for image in nih_csv().iter().filter(|i| i.labels.contains("Hernia")) {
        for label in image.labels.iter().filter(|l| l.as_str() != "Hernia") {
            *beside.entry(label.clone()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(String, usize)> = beside.into_iter().collect();
    ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let expected: Vec<String> = ranked.iter().map(|(label, _)| label.clone()).collect();
    for _ in 0..3 {
        let got = psql_ok(server.port, "SELECT label_b FROM conditional('Hernia')");
        let got: Vec<String> = got.lines().map(str::to_string).collect();
        assert_eq!(got[..expected.len()], expected[..], "{got:?}");
    }
    assert!(server.stop().success());
}

#[test]
fn a_cancel_request_stops_the_statement() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    cancel_stops(&server);
    assert!(server.stop().success());
    // With every place taken (the statement's connection and an idle one), the
    // cancel request, which comes on a connection of its own, is still taken.
    let server = Server::start(&wh, &["--max-connections", "2"], &[]);
    let _idle = logged_in(server.port);
    cancel_stops(&server);
    assert!(
        !server.log().contains("too many connections"),
        "{}",
        server.log()
    );
    assert!(server.stop().success());
}

/// psql's Ctrl-C stops its long statement on `server` within seconds.
fn cancel_stops(server: &Server) {
    let running = psql_command(server.port)
        .args(["-At", "-c"])
        .arg(MINUTES_OF_WORK)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: the server is working on it; then psql's Ctrl-C sends a cancel.
    common::wait_until_busy(server.child.id(), 1.0);
    let started = Instant::now();
    unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
    let out = running.wait_with_output().unwrap();
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("cancel"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_quiet_after_cancel(server);
}

/// The lines a Python `script` (read from stdin) prints; it must succeed.
fn python_lines(python: &Path, script: &str) -> Vec<String> {
    let out = common::spawn_with_stdin(Command::new(python).arg("-"), script)
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// A FETCH prepared over the extended protocol (psycopg prepares a statement it runs
/// often, and with `prepare=True` at once) is described with the cursor's columns:
/// the rows come after their description, in order, as the NIH CSV sorts them.
#[test]
fn a_prepared_fetch_is_described_with_its_cursor_columns() {
    let Some(python) = python() else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = format!(
        "import psycopg\n\
         with psycopg.connect('host=127.0.0.1 port={} user=cxr dbname=cxr') as c:\n\
         \x20   c.execute('DECLARE cc CURSOR FOR SELECT image_index, follow_up FROM images ORDER BY image_index')\n\
         \x20   for _ in range(4):\n\
         \x20       cur = c.execute('FETCH 2 FROM cc', prepare=True)\n\
         \x20       print([d.name for d in cur.description], cur.fetchall())\n",
        server.port
    );
    let lines = python_lines(&python, &script);
    let mut indexes: Vec<(String, i64)> = nih_csv()
        .iter()
        .map(|i| (i.index.clone(), i.follow_up))
        .collect();
    indexes.sort();
    let expected: Vec<String> = indexes[..8]
        .chunks(2)
        .map(|pair| {
            format!(
                "['image_index', 'follow_up'] [('{}', {}), ('{}', {})]",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            )
        })
        .collect();
    assert_eq!(lines, expected);
    assert!(server.stop().success());
}

/// A list of lists is described as it is sent: prepared (psycopg prepares a
/// statement run five times, or at once with `prepare=True`) and in binary, as
/// text; PostgreSQL's text of `ARRAY[ARRAY[1,2],ARRAY[3,4]]`.
#[test]
fn a_list_of_lists_prepared_and_in_binary() {
    let Some(python) = python() else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = format!(
        "import psycopg\n\
         q = 'SELECT make_array(make_array(1, 2), make_array(3, 4)) AS c'\n\
         with psycopg.connect('host=127.0.0.1 port={} user=cxr dbname=cxr') as c:\n\
         \x20   print(c.execute(q, prepare=True).fetchone()[0])\n\
         \x20   print(c.cursor(binary=True).execute(q).fetchone()[0])\n",
        server.port
    );
    assert_eq!(python_lines(&python, &script), ["{{1,2},{3,4}}"; 2]);
    assert!(server.stop().success());
}

/// A statement over 16 MiB is refused over the extended protocol (Parse) as over
/// the simple one, with PostgreSQL's 54000: a length psycopg reports.
#[test]
fn the_statement_limit_holds_over_both_protocols() {
    let Some(python) = python() else { return };
    let wh = wh2020();
    let mut server = Server::start(&wh, &[], &[]);
    let script = format!(
        "import psycopg\n\
         q = \"SELECT length('\" + 'x' * (16 * 1024 * 1024 + 1000) + \"') AS n\"\n\
         for how in ['simple', 'prepared', 'parameter']:\n\
         \x20   with psycopg.connect('host=127.0.0.1 port={} user=cxr dbname=cxr') as c:\n\
         \x20       try:\n\
         \x20           if how == 'simple': c.execute(q)\n\
         \x20           elif how == 'prepared': c.execute(q, prepare=True)\n\
         \x20           else: c.execute(q + ' WHERE %s', (True,))\n\
         \x20           print(how, 'answered')\n\
         \x20       except psycopg.Error as e:\n\
         \x20           print(how, e.sqlstate)\n",
        server.port
    );
    assert_eq!(
        python_lines(&python, &script),
        ["simple 54000", "prepared 54000", "parameter 54000"]
    );
    assert!(server.alive());
    assert!(server.stop().success());
}

/// A client killed while its statement computes sends no cancel request; the server
/// sees the connection close and stops the statement, rather than computing to the
/// time limit for nobody, and serves the next client. psql sends it as a simple
/// query, psycopg with a parameter over the extended protocol.
#[test]
fn a_client_that_leaves_stops_its_statement() {
    let Some(_) = client("psql") else { return };
    let Some(python) = python() else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let extended = format!(
        "import psycopg\n\
         with psycopg.connect('host=127.0.0.1 port={} user=cxr dbname=cxr') as c:\n\
         \x20   c.execute(\"{}\", (300,), prepare=True)\n",
        server.port,
        MINUTES_OF_WORK.replace("= 300", "= %s")
    );
    let simple = format!("{MINUTES_OF_WORK};\n");
    for left in 0..2 {
        // One client at a time: quiet means this one's statement stopped.
        let mut running = match left {
            0 => common::spawn_with_stdin(
                psql_command(server.port).args(["-At", "-f", "-"]),
                &simple,
            ),
            _ => common::spawn_with_stdin(Command::new(&python).arg("-"), &extended),
        };
        let busy_from = common::cpu_seconds(server.child.id());
        common::wait_until_busy(server.child.id(), busy_from + 1.0);
        running.kill().unwrap();
        let out = running.wait_with_output().unwrap();
        assert_quiet_after_cancel(&server);
        let log = server.log_when(|log| {
            log.matches("the client left while its statement ran")
                .count()
                > left
        });
        assert_eq!(
            log.matches("the client left while its statement ran")
                .count(),
            left + 1,
            "{}: {log}",
            stderr(&out)
        );
    }
    let images = nih_csv().len().to_string();
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        images
    );
    assert!(server.stop().success());
}

#[test]
fn a_running_statement_keeps_its_version_through_commits() {
    let Some(_) = client("psql") else { return };
    let dir = tempfile::tempdir().unwrap();
    let wh = common::small_warehouse(dir.path(), 150_000, "wh");
    let server = Server::start(&wh, &[], &[]);
    let port = server.port;
    let running = std::thread::spawn(move || {
        psql(
            port,
            "SELECT count(*) FROM images a JOIN images b ON a.age + b.age = 100",
            &[],
        )
    });
    common::wait_until_busy(server.child.id(), 0.5);
    // Two commits replace the version the statement reads; cxr collects old
    // versions at each commit.
    for n in [100, 200] {
        commit_images(dir.path(), &wh, n);
    }
    assert!(
        !running.is_finished(),
        "the statement ended before the commits: make it longer"
    );
    let out = running.join().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // small_metadata gives image i the age 30 + i % 40: count the pairs by hand.
    let mut ages = [0i64; 101];
    for i in 0..150_000 {
        ages[30 + i % 40] += 1;
    }
    let pairs: i64 = (0..=100).map(|a| ages[a] * ages[100 - a]).sum();
    assert_eq!(stdout(&out).trim(), pairs.to_string());
    assert_eq!(psql_ok(port, "SELECT count(*) FROM images").trim(), "200");
    // Once no statement reads the old versions, the server removes them.
    assert_eq!(versions(&wh), 1);
    assert!(server.stop().success());
    commit_images(dir.path(), &wh, 10);
    assert_eq!(versions(&wh), 1);
}

/// A server no statement comes to lets go of a version a commit replaced: its
/// folder is removed without a statement to notice the commit (it stayed until the
/// server's next statement).
#[test]
fn an_idle_server_lets_a_replaced_version_go() {
    let Some(_) = client("psql") else { return };
    let dir = tempfile::tempdir().unwrap();
    let wh = common::small_warehouse(dir.path(), 100, "wh");
    let server = Server::start(&wh, &[], &[]);
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        "100"
    );
    commit_images(dir.path(), &wh, 50);
    let deadline = Instant::now() + Duration::from_secs(15);
    while versions(&wh) > 1 {
        assert!(
            Instant::now() < deadline,
            "the old version is still on disk"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        psql_ok(server.port, "SELECT count(*) FROM images").trim(),
        "50"
    );
    assert!(server.stop().success());
}

#[test]
fn tls_when_a_certificate_is_given() {
    let Some(_) = client("psql") else { return };
    let Some(openssl) = client("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let wh = wh2020();
    let file = dir.path().join("password");
    std::fs::write(&file, "s3cret\n").unwrap();
    let server = Server::start(
        &wh,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--password-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let sql = "SELECT count(*) FROM images";
    let out = psql(
        server.port,
        sql,
        &[("PGSSLMODE", "require"), ("PGPASSWORD", "s3cret")],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), nih_csv().len().to_string());
    // psql reports the encryption of the connection.
    let out = psql(
        server.port,
        "\\conninfo",
        &[("PGSSLMODE", "require"), ("PGPASSWORD", "s3cret")],
    );
    assert!(stdout(&out).contains("SSL connection"), "{}", stdout(&out));
    // Without TLS: refused, before any password is sent.
    let out = psql(
        server.port,
        sql,
        &[("PGSSLMODE", "disable"), ("PGPASSWORD", "s3cret")],
    );
    assert_ne!(code(&out), Some(0));
    assert!(stderr(&out).contains("requires TLS"), "{}", stderr(&out));
    assert!(server.stop().success());
}

#[test]
fn the_help_and_readme_client_examples_work() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let help = stdout(&common::run(&["help", "serve"]));
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let examples: Vec<String> = help
        .lines()
        .chain(readme.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("psql -h 127.0.0.1 -p 5433"))
        .map(|l| l.split("    #").next().unwrap().trim().to_string())
        .collect();
    assert!(examples.len() >= 3, "{examples:?}");
    for example in examples {
        let line = example.replace("-p 5433", &format!("-p {}", server.port));
        let out = Command::new("sh")
            .args(["-c", &format!("{line} -X -v ON_ERROR_STOP=1")])
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(0), "{example}: {}", stderr(&out));
        assert!(stdout(&out).contains("row"), "{example}: {}", stdout(&out));
    }
    assert!(server.stop().success());
}

#[test]
fn errors_carry_the_sqlstate_postgresql_gives() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    // The codes of PostgreSQL's errcodes table for the same mistakes.
    for (sql, sqlstate) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_column FROM images", "42703"),
        ("SELECT no_such_function(1)", "42883"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT CAST('x' AS INT)", "22P02"),
        ("SELECT image_index FROM images a, images b", "42702"),
        ("DROP TABLE images", "25006"),
        ("SET statement_timeout = 'abc'", "22023"),
        ("SET statement_timeout = '5 weeks'", "22023"),
        ("RESET no_such_setting", "42704"),
        ("SELECT sex, count(*) FROM images", "42803"),
        ("SELECT count(*) FROM images WHERE count(*) > 1", "42803"),
        ("SELECT (SELECT age FROM images LIMIT 2)", "21000"),
        ("SELECT 1 FROM images WHERE age", "42804"),
        ("SELECT age FROM images ORDER BY 9", "42P10"),
        ("SELECT 1 LIMIT -1", "2201W"),
        ("SELECT 1 OFFSET -1", "2201X"),
        ("SELECT CAST(70000 AS SMALLINT)", "22003"),
        ("SELECT max(age * age * age) FROM images", "22003"),
        (
            "SELECT sum(CAST(age AS BIGINT) * 1000000000000000) FROM images",
            "22003",
        ),
        (
            "SELECT -x FROM (VALUES (CAST(-32768 AS SMALLINT))) t(x)",
            "22003",
        ),
        ("SELECT 1 UNION SELECT 'a', 2", "42601"),
        ("SELECT * FROM no_such_function(5)", "42883"),
        ("DECLARE c CURSOR FOR SELECT 1", "25P01"),
        // PostgreSQL's current row again; cxr's cursors would send every row left.
        (
            "BEGIN; DECLARE z CURSOR FOR SELECT 1; FETCH 0 FROM z",
            "0A000",
        ),
        ("CLOSE no_such_cursor", "34000"),
        (
            "BEGIN; DECLARE d CURSOR FOR SELECT 1; DECLARE d CURSOR FOR SELECT 2",
            "42P03",
        ),
        (
            "BEGIN; DECLARE e CURSOR FOR SELECT 1; COMMIT; FETCH NEXT FROM e",
            "34000",
        ),
        ("SAVEPOINT s", "25P01"),
        ("RELEASE SAVEPOINT s", "25P01"),
        ("DEALLOCATE never_prepared", "26000"),
        ("PREPARE p AS SELECT 1; PREPARE p AS SELECT 2", "42P05"),
        // Not preparable in PostgreSQL's grammar: refused at PREPARE.
        ("PREPARE c AS COPY images TO STDOUT", "42601"),
        (
            "PREPARE s AS SET datafusion.execution.batch_size = 1",
            "42601",
        ),
    ] {
        let out = psql(server.port, sql, &[("PGOPTIONS", "")]);
        assert_ne!(code(&out), Some(0), "{sql}");
        // VERBOSITY verbose prints the SQLSTATE after the severity.
        let verbose = psql_command(server.port)
            .args(["-v", "VERBOSITY=verbose", "-c", sql])
            .output()
            .unwrap();
        assert!(
            stderr(&verbose).contains(&format!("ERROR:  {sqlstate}:")),
            "{sql}: {}",
            stderr(&verbose)
        );
    }
    assert!(server.stop().success());
}

/// Transactions as PostgreSQL 15 answers them (checked against it): a statement in a
/// failed transaction is 25P02 (psycopg's InFailedSqlTransaction), a COMMIT outside
/// one a warning, and START TRANSACTION tagged as itself.
#[test]
fn transactions_answer_as_postgresql_does() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script =
        "BEGIN;\nSELECT 1/0;\nSELECT 1;\nROLLBACK;\nCOMMIT;\nSTART TRANSACTION;\nCOMMIT;\n";
    let out = psql_script(server.port, &["-v", "VERBOSITY=verbose"], script);
    let (said, tags) = (stderr(&out), stdout(&out));
    assert!(said.contains("ERROR:  22012:"), "{said}");
    assert!(said.contains("ERROR:  25P02:"), "{said}");
    assert!(
        said.contains("WARNING:  25P01: there is no transaction in progress"),
        "{said}"
    );
    let tags: Vec<&str> = tags.lines().collect();
    assert_eq!(
        tags,
        ["BEGIN", "ROLLBACK", "COMMIT", "START TRANSACTION", "COMMIT"],
        "{said}"
    );
    assert!(server.stop().success());
}

/// Savepoints as PostgreSQL 15 answers them (checked against it): `ROLLBACK TO` a
/// savepoint makes a failed transaction usable again and restores the settings of
/// the savepoint; a name never set is 3B001; `DISCARD ALL` resets the session.
#[test]
fn savepoints_and_discard_answer_as_postgresql_does() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = "BEGIN;\nSET LOCAL statement_timeout = '7s';\nSAVEPOINT a;\n\
        SET LOCAL statement_timeout = '3s';\nSELECT 1/0;\nROLLBACK TO SAVEPOINT a;\n\
        SHOW statement_timeout;\nSELECT count(*) FROM images;\nRELEASE a;\nRELEASE a;\n\
        ROLLBACK;\nBEGIN;\nBEGIN;\nCOMMIT;\nSET statement_timeout = '5s';\nDISCARD ALL;\n\
        SHOW statement_timeout;\n";
    let out = psql_script(
        server.port,
        &["-A", "-t", "-v", "VERBOSITY=verbose"],
        script,
    );
    let (said, answers) = (stderr(&out), stdout(&out));
    assert!(said.contains("ERROR:  22012:"), "{said}");
    assert!(said.contains("ERROR:  3B001:"), "{said}");
    assert!(
        said.contains("WARNING:  25001: there is already a transaction in progress"),
        "{said}"
    );
    let images = nih_csv().len().to_string();
    let answers: Vec<&str> = answers.lines().collect();
    assert_eq!(
        answers,
        [
            "BEGIN",
            "SET",
            "SAVEPOINT",
            "SET",
            "ROLLBACK",
            "7s",
            &images,
            "RELEASE",
            "ROLLBACK",
            "BEGIN",
            "BEGIN",
            "COMMIT",
            "SET",
            "DISCARD ALL",
            "0"
        ],
        "{said}"
    );
    assert!(server.stop().success());
}

/// A session's settings as PostgreSQL keeps them: `statement_timeout` in any unit
/// PostgreSQL reads, shown back in milliseconds; `RESET` one or all; a value
/// PostgreSQL refuses is refused and the limit in force stays (psql reading a script,
/// one session, as a user's `.psqlrc` would).
#[test]
fn session_settings_are_checked_and_reset() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = "SET statement_timeout = '1.5s';\nSHOW statement_timeout;\n\
                  SET statement_timeout = 'abc';\nSHOW statement_timeout;\n\
                  RESET statement_timeout;\nSHOW statement_timeout;\n\
                  SET statement_timeout TO 250;\nSHOW statement_timeout;\n\
                  SET statement_timeout = '2min';\nSHOW statement_timeout;\n\
                  RESET ALL;\nSHOW statement_timeout;\n\
                  SELECT current_database();\n\
                  SELECT current_user, session_user;\n\
                  SELECT count(*) FROM datasets WHERE user = 'cxr';\n";
    let out = psql_script(server.port, &["-A", "-t"], script);
    let shown: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| !l.is_empty() && *l != "SET" && *l != "RESET")
        .map(str::to_string)
        .collect();
    assert_eq!(
        shown,
        // current_user and session_user: the login name, as PostgreSQL answers
        // (the `datasets` table has one row: NIH).
        [
            "1500ms", "1500ms", "0", "250ms", "2min", "0", "cxr", "cxr|cxr", "1"
        ],
        "{}",
        stderr(&out)
    );
    // The refused value, said as PostgreSQL says it.
    assert!(
        stderr(&out).contains(r#"invalid value for parameter "statement_timeout": "abc""#),
        "{}",
        stderr(&out)
    );
    assert!(server.stop().success());
}

/// Every setting a client sends is honoured or refused, as PostgreSQL would, never
/// taken and ignored: `SET LOCAL` lasts a transaction (outside one it does nothing,
/// with PostgreSQL's warning), durations in microseconds and with exponents,
/// PostgreSQL's settings that mean nothing to cxr taken with a notice and shown at
/// their default, custom `prefix.name` settings kept, the engine's `datafusion.*`
/// and unknown names refused, `SHOW ALL` listing them; `PGOPTIONS` likewise.
#[test]
fn session_settings_are_honoured_or_refused() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = [
        "SET LOCAL statement_timeout = '5s';",
        "SHOW statement_timeout;",
        "BEGIN;",
        "SET LOCAL statement_timeout = '2000us';",
        "SHOW statement_timeout;",
        "COMMIT;",
        "SHOW statement_timeout;",
        "SET statement_timeout = 1e3;",
        "SHOW statement_timeout;",
        "SET work_mem = '1GB';",
        "SHOW work_mem;",
        "SET myapp.study = 'effusion';",
        "SHOW myapp.study;",
        "SET datafusion.execution.batch_size = 1;",
        "SET nosuch = 1;",
        "SHOW nosuch;",
        "SET client_encoding = 'LATIN1';",
        "BEGIN;",
        "SET statement_timeout = '8s';",
        "ROLLBACK;",
        "SHOW statement_timeout;",
        "SET TimeZone = 'Europe/Paris';",
        "SHOW timezone;",
        "SET extra_float_digits = 3;",
        "SHOW extra_float_digits;",
        "SET DateStyle = 'bogus';",
        "SELECT current_setting('statement_timeout'), current_setting('myapp.study');",
        "SHOW ALL;",
    ]
    .join("\n");
    let out = psql_script(server.port, &["-A", "-t"], &script);
    let (said, err) = (stdout(&out), stderr(&out));
    let lines: Vec<&str> = said
        .lines()
        .filter(|l| !["", "SET", "BEGIN", "COMMIT", "ROLLBACK"].contains(l))
        .collect();
    // As PostgreSQL 15 shows them: a timeout in its largest whole unit, a ROLLBACK
    // undoing the transaction's SET.
    assert_eq!(
        lines[..10],
        [
            "0",
            "2ms",
            "0",
            "1s",
            "4MB",
            "effusion",
            "1s",
            "Europe/Paris",
            "3",
            "1s|effusion"
        ],
        "{said}\n{err}"
    );
    // SHOW ALL: name|setting, the custom setting and the timeout among them.
    for row in [
        "myapp.study|effusion",
        "statement_timeout|1s",
        "work_mem|4MB",
    ] {
        assert!(lines[10..].contains(&row), "SHOW ALL lacks {row}: {said}");
    }
    for message in [
        "WARNING:  SET LOCAL can only be used in transaction blocks",
        "NOTICE:  work_mem has no effect in cxr serve",
        r#"parameter "datafusion.execution.batch_size" cannot be changed by a client"#,
        r#"unrecognized configuration parameter "nosuch""#,
        "client_encoding = LATIN1: cxr serve has only client_encoding = UTF8",
        r#"invalid value for parameter "DateStyle": "bogus""#,
    ] {
        assert!(err.contains(message), "no {message:?} in {err}");
    }
    // Two errors for nosuch (SET and SHOW).
    assert_eq!(err.matches(r#"parameter "nosuch""#).count(), 2, "{err}");
    // The startup packet's options, as libpq sends PGOPTIONS.
    for (option, shown) in [("1500", "1500ms"), ("3min", "3min")] {
        let option = format!("-c statement_timeout={option}");
        let out = psql(
            server.port,
            "SHOW statement_timeout",
            &[("PGOPTIONS", option.as_str())],
        );
        assert_eq!(stdout(&out).trim(), shown, "{}", stderr(&out));
    }
    let out = psql(server.port, "SELECT 1", &[("PGOPTIONS", "-c nosuch=1")]);
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains(r#"FATAL:  unrecognized configuration parameter "nosuch""#),
        "{}",
        stderr(&out)
    );
}

/// A statement that takes seconds to plan (4,999 `||`) is planned on a statement
/// thread: another client's statement is answered meanwhile (planning on the
/// protocol's thread held every client's statements up for its whole planning).
#[test]
fn a_statement_slow_to_plan_holds_up_no_other_client() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let port = server.port;
    let slow = format!("SELECT length({})", vec!["'a'"; 4_999].join(" || "));
    let idle = common::cpu_seconds(server.child.id());
    let planning = std::thread::spawn(move || psql(port, &slow, &[]));
    // Readiness: the server is computing (planning the long statement).
    common::wait_until_busy(server.child.id(), idle + 0.5);
    let other = psql(port, "SELECT COUNT(*) FROM images", &[]);
    assert_eq!(code(&other), Some(0), "{}", stderr(&other));
    assert_eq!(stdout(&other).trim(), nih_csv().len().to_string());
    assert!(
        !planning.is_finished(),
        "the long statement finished before the other was answered: nothing was shown"
    );
    let out = planning.join().unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "4999");
}

/// A statement chaining thousands of operators (what a tool generates for a long
/// list of values) is answered; one past cxr's limit is refused as a statement too
/// complex, and the server keeps answering (2,000 `OR`s overflowed a statement
/// thread's stack and ended the process with every client).
#[test]
fn deep_statements_are_answered_or_refused_and_the_server_stays_up() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let mut server = Server::start(&wh, &[], &[]);
    let port = server.port;
    let chain = |patients: i64| {
        let terms: Vec<String> = (1..=patients)
            .map(|p| format!("patient_id = {p}"))
            .collect();
        format!("SELECT COUNT(*) FROM images WHERE {}", terms.join(" OR "))
    };
    // 1,000 comparisons and 999 ORs: the images of patients 1 to 1,000 in the CSV.
    let expected = nih_csv().iter().filter(|i| i.patient <= 1_000).count();
    assert_eq!(psql_ok(port, &chain(1_000)).trim(), expected.to_string());
    let out = psql(port, &chain(3_000), &[]);
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("more than 5000 operators"),
        "{}",
        stderr(&out)
    );
    assert!(server.alive());
    assert_eq!(psql_ok(port, "SELECT 3").trim(), "3");
    // The command line plans the same statements alike.
    let w = wh.to_str().unwrap();
    let out = run(&["sql", "-w", w, "-f", "csv", &chain(1_000)]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(parse_csv(&stdout(&out))[1][0], expected.to_string());
    let out = run(&["sql", "-w", w, &chain(3_000)]);
    assert_eq!(code(&out), Some(2));
    assert!(server.stop().success());
}

/// A client asking over the extended protocol for every row of a 12.6-billion-row
/// cross join (Execute with no row limit, as psycopg and JDBC send it) and reading
/// none holds the statement at its socket's buffer: the server's memory stays put,
/// other clients are answered, and the work stops when the client leaves (pgwire
/// alone gathered every row before sending one: 23 GB, then the kernel's OOM killer).
#[test]
fn an_extended_query_nobody_reads_holds_little_memory() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let mut server = Server::start(&wh, &[], &[]);
    let port = server.port;
    let mut socket = logged_in(port);
    let sql = b"SELECT a.image_index, b.image_index AS other FROM images a CROSS JOIN images b\0";
    let mut parse = vec![0u8];
    parse.extend_from_slice(sql);
    parse.extend_from_slice(&[0, 0]);
    let mut exchange = message(b'P', &parse);
    exchange.extend(message(b'B', &[0, 0, 0, 0, 0, 0, 0, 0]));
    exchange.extend(message(b'E', &[0, 0, 0, 0, 0]));
    exchange.extend(message(b'S', &[]));
    socket.write_all(&exchange).unwrap();
    let images = nih_csv().len().to_string();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(psql_ok(port, "SELECT COUNT(*) FROM images").trim(), images);
    }
    let peak = server.peak_mib();
    assert!(
        peak < 1024,
        "peak RSS {peak} MiB with a client that reads nothing"
    );
    drop(socket);
    // The client is gone: within a few seconds the server stops computing.
    let pid = server.child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = common::cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(1));
        if common::cpu_seconds(pid) - before < 0.2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still computing for a client that left"
        );
    }
    assert!(server.alive());
    assert!(server.stop().success());
}

/// Clients that start a statement and never read its rows hold no turn to compute:
/// with more of them than the server computes at once (two per core), another
/// client's statements are still answered, well within the time limit (each stalled
/// statement held its turn, and the others waited out `--query-time` and failed).
#[test]
fn clients_that_never_read_hold_up_no_other_client() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &["--query-time", "60"], &[]);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut stalled = Vec::new();
    for _ in 0..2 * cores + 2 {
        let mut socket = logged_in(server.port);
        let sql =
            b"SELECT a.image_index, b.image_index AS other FROM images a CROSS JOIN images b\0";
        socket.write_all(&message(b'Q', sql)).unwrap();
        // Readiness: its rows have started to come; from here on it reads nothing.
        let mut first = [0u8; 4096];
        socket.read_exact(&mut first).unwrap();
        stalled.push(socket);
    }
    let out = psql(server.port, "SELECT COUNT(*) FROM images", &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), nih_csv().len().to_string());
    // A client's own statement_timeout applies while it waits, too.
    let out = psql(
        server.port,
        "SET statement_timeout = '20s'; SELECT COUNT(*) FROM findings",
        &[],
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    drop(stalled);
    assert!(server.stop().success());
}

/// A `COPY ... TO STDOUT` that fails once its rows flow (here at the time limit)
/// ends with its error, as PostgreSQL's does: psql prints it and exits 1. (pgwire
/// sent `CopyFail`, which psql answered with "unexpected response".)
#[test]
fn a_copy_failing_midway_ends_with_its_error() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &["--query-time", "1"], &[]);
    let out = psql_command(server.port)
        .arg("-c")
        .arg("COPY (SELECT a.image_index, b.image_index AS other FROM images a CROSS JOIN images b) TO STDOUT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), Some(1), "{err}");
    assert!(
        err.contains("time limit") && !err.contains("unexpected"),
        "{err}"
    );
    // The session and the server go on.
    let images = nih_csv().len().to_string();
    assert_eq!(
        psql_ok(server.port, "SELECT COUNT(*) FROM images").trim(),
        images
    );
}

/// A cancel request stops a statement whose rows are already streaming (psql's
/// Ctrl-C during a large `COPY ... TO STDOUT`), not only one still computing.
#[test]
fn a_cancel_request_stops_rows_being_sent() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let mut running = psql_command(server.port)
        .args(["-At", "-c"])
        .arg("COPY (SELECT a.image_index, b.image_index AS other FROM images a CROSS JOIN images b) TO STDOUT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Readiness: rows are arriving. The reader keeps them flowing.
    let (tx, rx) = mpsc::channel();
    let mut stdout = running.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut total, mut buffer, mut told) = (0usize, vec![0u8; 1 << 16], false);
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            total += n;
            if total > 4 << 20 && !told {
                told = tx.send(()).is_ok();
            }
        }
        total
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("no rows arrived");
    let started = Instant::now();
    unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
    let status = running.wait().unwrap();
    let mut err = String::new();
    running
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let received = reader.join().unwrap();
    // psql says it sent the cancel; the COPY ends in an error. (Its text is psql's
    // "unexpected response": pgwire ends a failed COPY with CopyFail, the client's
    // message, where PostgreSQL sends an ErrorResponse.)
    assert!(!status.success(), "{err}");
    assert!(err.contains("Cancel request sent"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    // Far fewer than the 12.6 billion rows (about 33 bytes each) the query has.
    assert!(received < 4 << 30, "{received} bytes");
    assert_quiet_after_cancel(&server);
    assert!(server.stop().success());
}

/// A client that keeps reading, slowly, does not keep its statement past
/// `--query-time`: the rows stop with 57014 (they had kept coming for 40 s with a
/// limit of 5 s, each batch waiting already sent as it was asked for).
#[test]
fn a_slow_reader_is_stopped_at_the_time_limit() {
    let wh = wh2020();
    let server = Server::start(&wh, &["--query-time", "3"], &[]);
    let mut socket = logged_in(server.port);
    socket
        .write_all(&message(
            b'Q',
            b"SELECT a.image_index, b.image_index FROM images a CROSS JOIN images b\0",
        ))
        .unwrap();
    let started = Instant::now();
    let (mut seen, mut buffer) = (Vec::<u8>::new(), vec![0u8; 16 << 10]);
    while started.elapsed() < Duration::from_secs(60) {
        let n = socket.read(&mut buffer).unwrap();
        assert!(n > 0, "the server closed the connection");
        // Only the last bytes are kept: enough to find the error's SQLSTATE.
        seen.extend_from_slice(&buffer[..n]);
        let keep = seen.len().saturating_sub(1 << 10);
        seen.drain(..keep);
        if seen.windows(6).any(|w| w == b"C57014") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    assert!(
        seen.windows(6).any(|w| w == b"C57014"),
        "no 57014 after {took:?}"
    );
    assert!(took < Duration::from_secs(20), "57014 after {took:?}");
    assert!(server.stop().success());
}

/// A transaction's isolation level, as PostgreSQL 15 shows it: the level `BEGIN` or
/// `SET TRANSACTION` asked for until the transaction ends, `read committed` outside.
#[test]
fn show_transaction_isolation_gives_the_level_asked_for() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let script = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nSHOW transaction_isolation;\n\
                  BEGIN ISOLATION LEVEL SERIALIZABLE;\nSHOW transaction_isolation;\nCOMMIT;\n\
                  SHOW transaction_isolation;\n\
                  BEGIN;\nSET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n\
                  SHOW transaction_isolation;\nSELECT current_setting('transaction_isolation');\n\
                  ROLLBACK;\nSHOW transaction_isolation;\n";
    let out = psql_script(server.port, &["-A", "-t", "-v", "ON_ERROR_STOP=1"], script);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let shown: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| !["", "BEGIN", "COMMIT", "ROLLBACK", "SET"].contains(l))
        .map(str::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "read committed",
            "serializable",
            "read committed",
            "repeatable read",
            "repeatable read",
            "read committed"
        ]
    );
    // In one query text, as PostgreSQL 15 answers it too.
    assert_eq!(
        psql_ok(
            server.port,
            "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SHOW transaction_isolation;"
        )
        .lines()
        .last(),
        Some("serializable")
    );
    // Outside a transaction block, PostgreSQL's warning (and no change, above).
    assert!(
        stderr(&out).contains("SET TRANSACTION can only be used in transaction blocks"),
        "{}",
        stderr(&out)
    );
}

/// What PostgreSQL refuses is refused, not taken and ignored: another role than the
/// login's (22023, as PostgreSQL 15 says of a role that does not exist), a sample of
/// a table (the whole table was counted), row locks. The server says it is read-only
/// as libpq's `target_session_attrs=read-only` asks.
#[test]
fn roles_samples_and_locks_are_refused_not_ignored() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    for (sql, sqlstate) in [
        ("SET ROLE nosuchrole", "22023"),
        ("SET SESSION AUTHORIZATION nosuchrole", "22023"),
        (
            "SELECT count(*) FROM images TABLESAMPLE SYSTEM (1)",
            "42000",
        ),
        ("SELECT count(*) FROM images FOR UPDATE", "42000"),
    ] {
        let out = psql_command(server.port)
            .args(["-v", "VERBOSITY=verbose", "-c", sql])
            .output()
            .unwrap();
        assert_ne!(code(&out), Some(0), "{sql}");
        assert!(
            stderr(&out).contains(&format!("ERROR:  {sqlstate}:")),
            "{sql}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        psql_ok(
            server.port,
            "SET ROLE cxr; SET SESSION AUTHORIZATION DEFAULT; SHOW default_transaction_read_only"
        )
        .lines()
        .collect::<Vec<_>>(),
        ["SET", "SET", "on"]
    );
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=cxr dbname=cxr target_session_attrs=read-only",
            server.port
        ))
        .args(["-X", "-At", "-c", "SELECT count(*) FROM images"])
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), nih_csv().len().to_string());
    assert!(server.stop().success());
}

/// `ORDER BY` over the server gives the rows in order when a column is widened for
/// the protocol (an Int8 `n_labels`, an unsigned `row_number()`): the widening sat
/// above the sort, and DataFusion sent blocks of 8,192 rows shuffled.
#[test]
fn ordered_rows_arrive_in_order() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let mut expected: Vec<(String, usize)> = nih_csv()
        .into_iter()
        .map(|i| (i.index, i.labels.len()))
        .collect();
    expected.sort();
    for sql in [
        "SELECT image_index, n_labels FROM images ORDER BY image_index",
        "SELECT image_index, n_labels, row_number() OVER () AS n FROM images ORDER BY image_index",
    ] {
        let text = psql_ok(server.port, sql);
        let got: Vec<(String, usize)> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[0].to_string(), f[1].parse().unwrap())
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "{sql}");
        assert!(got == expected, "{sql}: rows out of order or wrong");
    }
    assert!(server.stop().success());
}

/// Array literals written in the statement, read as PostgreSQL reads them over the
/// simple protocol (psql's): datafusion-postgres had split `'{"a,b",NULL}'::text[]`
/// on every comma, kept the quotes and read NULL as text (3 elements, not 2).
/// The expected values are PostgreSQL 15's answers.
#[test]
fn array_literals_are_read_as_postgresql_reads_them() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let both = nih_csv()
        .iter()
        .filter(|i| i.labels.contains("Effusion") && i.labels.contains("Mass"))
        .count();
    let cases = [
        (
            r#"SELECT cardinality('{"a,b",NULL}'::text[])"#,
            "2".to_string(),
        ),
        (
            r#"SELECT '{"x y",NULL}'::varchar[]"#,
            r#"{"x y",NULL}"#.into(),
        ),
        (
            r#"SELECT '{1,NULL,3}'::int[], '{true,f}'::bool[], '{1.5,"2.25"}'::float8[], '{{1,2},{3,4}}'::int[][]"#,
            "{1,NULL,3},{t,f},{1.5,2.25},{{1,2},{3,4}}".into(),
        ),
        (
            r#"SELECT 'a,b' = ANY('{"a,b",c}'::text[]) AS t1, 'a,b' = ANY('{"a,b",c}') AS t2, 'c' <> ALL('{"a,b",c}') AS t3"#,
            "t,t,f".into(),
        ),
        (
            r#"SELECT count(*) FROM images WHERE labels @> '{"Effusion","Mass"}'::text[]"#,
            both.to_string(),
        ),
        // With a subquery in the select list, and beside the catalog: parsed by
        // other rules, read alike.
        (
            r#"SELECT '{"a,b"}'::text[], (SELECT 1)"#,
            r#"{"a,b"},1"#.into(),
        ),
        (
            r#"SELECT cardinality('{"a,b",NULL}'::text[]) FROM pg_catalog.pg_namespace WHERE nspname = 'public'"#,
            "2".into(),
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(psql_ok(server.port, sql).trim(), expected, "{sql}");
    }
    let out = psql(server.port, "SELECT '{a,\"b}'::text[]", &[]);
    assert_ne!(code(&out), Some(0));
    assert!(
        stderr(&out).contains("malformed array literal"),
        "{}",
        stderr(&out)
    );
    assert!(server.stop().success());
}

/// A function the server answers with a constant names its column as any call
/// does, after the function (it had been named by its value: `'0'`, `'psql'`).
#[test]
fn a_setting_names_its_column_after_the_function() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let out = psql_command(server.port)
        .args(["-A", "-F", ","])
        .args(["-c", "SELECT current_setting('statement_timeout')"])
        .args(["-c", "SELECT current_setting('application_name')"])
        .env("PGAPPNAME", "psql")
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [
            "current_setting",
            "0",
            "(1 row)",
            "current_setting",
            "psql",
            "(1 row)"
        ]
    );
    assert!(server.stop().success());
}

/// Lists as psycopg and pgjdbc send them: `= ANY(%s)` with a Python list (sent as
/// untyped text `{a,b}`), a cast one, and `@>` with a typed array parameter; and
/// array literals in a prepared statement (the extended protocol).
#[test]
fn list_parameters_are_read_as_arrays() {
    let Some(python) = python() else { return };
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let images = nih_csv();
    let both = images
        .iter()
        .filter(|i| i.labels.contains("Effusion") && i.labels.contains("Mass"))
        .count();
    let script = r#"
import sys, psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="cxr", dbname="cxr") as c:
    names = ["00000001_000.png", "00000001_001.png", "nope.png"]
    print(c.execute("SELECT count(*) FROM images WHERE image_index = ANY(%s)", [names]).fetchone()[0])
    print(c.execute("SELECT count(*) FROM images WHERE image_index = ANY(%s::text[])", [names]).fetchone()[0])
    print(c.execute("SELECT count(*) FROM images WHERE labels @> %s", [["Effusion", "Mass"]]).fetchone()[0])
    for sql in [
        """SELECT cardinality('{"a,b",NULL}'::text[])""",
        """SELECT '{"x y",NULL}'::varchar[]""",
        """SELECT '{1,NULL,3}'::int[]""",
        """SELECT 'a,b' = ANY('{"a,b",c}')""",
        """SELECT count(*) FROM images WHERE labels @> '{"Effusion","Mass"}'::text[]""",
    ]:
        print(c.execute(sql, prepare=True).fetchone()[0])
"#;
    let out = common::python_ok(&python, &["-c", script, &server.port.to_string()]);
    let listed = ["00000001_000.png", "00000001_001.png"]
        .iter()
        .filter(|n| images.iter().any(|i| i.index == **n))
        .count();
    let (listed, both) = (listed.to_string(), both.to_string());
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            listed.as_str(),
            &listed,
            &both,
            "2",
            "['x y', None]",
            "[1, None, 3]",
            "True",
            &both
        ]
    );
    assert!(server.stop().success());
}

/// A session started with `params` in its startup packet (as pgjdbc and asyncpg
/// send settings): what the server answered up to its first ReadyForQuery or
/// error, and the session.
fn started_with(port: u16, params: &[(&str, &str)]) -> (Vec<u8>, TcpStream) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut body = b"user\0cxr\0database\0cxr\0".to_vec();
    for (name, value) in params {
        body.extend_from_slice(format!("{name}\0{value}\0").as_bytes());
    }
    body.push(0);
    let mut startup = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196608u32.to_be_bytes());
    startup.extend_from_slice(&body);
    socket.write_all(&startup).unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"Z\0\0\0\x05I") {
        match socket.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    (seen, socket)
}

/// Settings in the startup packet are taken as `SET` takes them: pgjdbc's are
/// honoured, a value PostgreSQL refuses ends the login with its error (they were
/// kept as given and ignored: `statement_timeout=1500` shown as 0).
#[test]
fn settings_in_the_startup_packet_are_honoured_or_refused() {
    let wh = wh2020();
    let server = Server::start(&wh, &[], &[]);
    let (answer, mut session) = started_with(
        server.port,
        &[
            ("statement_timeout", "1500"),
            ("DateStyle", "ISO"),
            ("extra_float_digits", "3"),
            ("client_encoding", "UTF8"),
            ("TimeZone", "Etc/UTC"),
        ],
    );
    assert!(
        answer.ends_with(b"Z\0\0\0\x05I"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    session
        .write_all(&message(b'Q', b"SHOW statement_timeout\0"))
        .unwrap();
    let mut shown = Vec::new();
    let mut byte = [0u8; 1];
    while !shown.ends_with(b"Z\0\0\0\x05I") {
        session.read_exact(&mut byte).unwrap();
        shown.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&shown);
    assert!(text.contains("1500ms"), "{text}");
    for (name, value, code) in [
        ("statement_timeout", "bogus", "22023"),
        ("extra_float_digits", "bogus", "22023"),
        ("DateStyle", "bogus", "22023"),
        ("client_encoding", "LATIN1", "0A000"),
    ] {
        let (answer, _) = started_with(server.port, &[(name, value)]);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains("FATAL") && text.contains(code) && !answer.ends_with(b"Z\0\0\0\x05I"),
            "{name}={value}: {text}"
        );
    }
    assert!(server.stop().success());
}

/// A statement whose client stops reading ends at --query-time and gives back the
/// memory its join holds: the same join from another client, after the limit, is
/// answered. It failed with 53200 while the first held its share of the server's
/// memory for as long as its client stayed connected. (The join needs between 8 and
/// 16 MiB here; the server has 16.)
#[test]
fn a_statement_nobody_reads_gives_back_its_memory_at_the_time_limit() {
    let Some(_) = client("psql") else { return };
    let wh = wh2020();
    let limits = [
        "--query-time",
        "3",
        "--query-memory",
        "16MiB",
        "--server-memory",
        "16MiB",
    ];
    let server = Server::start(&wh, &limits, &[]);
    let join = "SELECT a.*, b.finding_labels AS f2, b.labels AS l2, b.view_position AS v2, \
                b.sex AS s2, b.age AS a2, b.image_index AS i2 \
                FROM images a JOIN images b ON a.patient_id = b.patient_id";
    // The join alone fits.
    let out = psql(server.port, &format!("{join} LIMIT 1"), &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let mut stalled = logged_in(server.port);
    stalled
        .write_all(&message(b'Q', format!("{join}\0").as_bytes()))
        .unwrap();
    // Readiness: its rows have started to come; from here on it reads nothing.
    let mut first = [0u8; 4096];
    stalled.read_exact(&mut first).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let out = psql(server.port, &format!("{join} LIMIT 1"), &[]);
    assert_eq!(code(&out), Some(0), "{}\n{}", stderr(&out), server.log());
    // Every column of one row: the join held them all.
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    drop(stalled);
    assert!(server.stop().success());
}
