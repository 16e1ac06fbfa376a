//! What the cohort builder's page asks, answered as the command line answers it.
//!
//! A request's parameters are `cxr cohort`'s flags without their dashes
//! (`dataset=nih,chexpert&with=Effusion&sex=F&age=40..60`). They are parsed by the
//! same clap definitions as the command line, and every answer comes from the SQL
//! of the matching command (`cohort --summary`, `cooccur`, `export`), so the page
//! and `cxr` cannot disagree. Only the cohort's own flags are taken: nothing names a
//! file (`--cohort`, `--out`, `-w`) or carries SQL (`--where`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Args, Parser};
use datafusion::arrow::datatypes::DataType;
use datafusion::execution::memory_pool::MemoryPool;
use serde_json::{Value, json};

use crate::cli::cooccur::{Metric, Thresholds};
use crate::cohort::{Available, CohortArgs};
use crate::error::{Error, Result};
use crate::export::ManifestRows;
use crate::output::Format;
use crate::sql::snippets::quote;
use crate::sql::{Interrupt, Register, Warehouse};

/// The parameters a request may give: the cohort flags of `cxr cohort`.
const PARAMETERS: &[&str] = &[
    "dataset",
    "with",
    "any",
    "without",
    "no-finding",
    "age",
    "sex",
    "view",
    "split",
    "first-study",
    "min-studies",
    "source",
    "uncertain",
];

/// Parameters that are switches (`no-finding=true`).
const SWITCHES: &[&str] = &["no-finding", "first-study"];

/// Parameters that take several values, each given once or repeated; the others
/// take one value and are refused given twice (`first-study=true&first-study=false`).
const LISTS: &[&str] = &["dataset", "with", "any", "without", "source"];

/// One clap command around a set of flags, parsed from a request.
#[derive(Debug, Parser)]
#[command(name = "cxr", no_binary_name = true, disable_help_flag = true)]
struct Flags<T: Args> {
    #[command(flatten)]
    inner: T,
}

/// A cohort asked for by the page: its flags as `cxr` takes them, and parsed.
#[derive(Debug, Clone)]
pub struct PageCohort {
    /// `--name=value` arguments, in the order given.
    arguments: Vec<String>,
    pub cohort: CohortArgs,
}

impl PageCohort {
    /// The cohort of a request's `name=value` pairs; empty values are unset fields.
    pub fn parse(pairs: &[(String, String)]) -> Result<PageCohort> {
        let mut arguments = Vec::new();
        for (name, value) in pairs {
            if !PARAMETERS.contains(&name.as_str()) {
                return Err(Error::Usage(format!(
                    "unknown parameter `{name}`; a cohort takes: {}",
                    PARAMETERS.join(", ")
                )));
            }
            // Counted for one-value parameters only: the first repeat refuses the
            // request, so a long query string is read once, not once per pair.
            if !LISTS.contains(&name.as_str()) {
                let given = pairs.iter().filter(|(other, _)| other == name).count();
                if given > 1 {
                    return Err(Error::Usage(format!(
                        "parameter `{name}` given {given} times; it takes one value"
                    )));
                }
            }
            if SWITCHES.contains(&name.as_str()) {
                match value.trim().to_ascii_lowercase().as_str() {
                    "" | "true" | "1" | "on" => arguments.push(format!("--{name}")),
                    "false" | "0" | "off" => {}
                    _ => {
                        return Err(Error::Usage(format!(
                            "parameter `{name}`: `{value}` is not true or false"
                        )));
                    }
                }
            } else if !value.trim().is_empty() {
                // Spaces around a value are not part of it, for every parameter
                // (the page trims them too).
                arguments.push(format!("--{name}={}", value.trim()));
            }
        }
        let mut cohort = parse_flags::<CohortArgs>(&arguments)?;
        // Answered under the names the warehouse gives (`SIIM` is `siim`), so that
        // `datasets` and the rows of each answer join.
        for name in &mut cohort.datasets {
            *name = crate::datasets::dataset_name(name);
        }
        Ok(PageCohort { arguments, cohort })
    }

    /// The command line that gives the same images.
    pub fn command(&self, command: &str) -> String {
        let mut words = vec!["cxr".to_string(), command.to_string()];
        for argument in &self.arguments {
            match argument.split_once('=') {
                Some((flag, value)) => {
                    words.push(flag.to_string());
                    words.push(shell_word(value));
                }
                None => words.push(argument.clone()),
            }
        }
        words.join(" ")
    }

    /// The SQL of `cxr cohort`'s rows, whole (the cohort's rows as their query, no
    /// view): what the page shows to copy and the saved query file holds.
    fn listing_sql(&self, avail: Available) -> Result<String> {
        let avail = avail.inline();
        let images = self.cohort.images_sql(&avail)?;
        Ok(crate::cli::cohort::sql(&images, false, &avail.scope))
    }

    /// Every dataset of the warehouse when the request names none: the page is
    /// about all of them.
    async fn with_every_dataset(mut self, wh: &Warehouse) -> Result<PageCohort> {
        if self.cohort.datasets.is_empty() {
            wh.register(Register::For("datasets")).await?;
            let names = wh
                .query("SELECT dataset FROM datasets ORDER BY dataset", &[])
                .await?
                .required_strings("dataset")?;
            self.arguments
                .insert(0, format!("--dataset={}", names.join(",")));
            self.cohort.datasets = names;
        }
        Ok(self)
    }
}

/// Parses `--name=value` arguments into the flags `T` (a usage error as clap says it,
/// first line only, without its `error: ` prefix).
fn parse_flags<T: Args>(arguments: &[String]) -> Result<T> {
    Flags::<T>::try_parse_from(arguments)
        .map(|flags| flags.inner)
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            Error::Usage(first.trim_start_matches("error: ").to_string())
        })
}

/// A value as one shell word, on one line: control characters (a line break in a
/// link's value) are written as bash's `$'\n'` escapes, so the command stays one
/// line of the saved query's description.
fn shell_word(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ",._-/:".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_string()
    } else if value.chars().any(char::is_control) {
        let escaped: String = value
            .chars()
            .map(|c| match c {
                '\\' | '\'' => format!("\\{c}"),
                c if c.is_control() => format!("\\x{:02x}", c as u32 & 0xff),
                c => c.to_string(),
            })
            .collect();
        format!("$'{escaped}'")
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Where the page's answers are computed: the warehouse, opened for each request
/// (its current version), with the server's limits.
pub struct Answers {
    pub root: PathBuf,
    pub server_memory: Arc<dyn MemoryPool>,
    pub query_memory: usize,
}

/// The staged rows of a request's cohort, which several answers read.
const ROWS: &str = "page_cohort_rows";

impl Answers {
    /// The warehouse's current version, its statements under `interrupt` and drawing
    /// on the server's memory.
    async fn open(&self, interrupt: &Interrupt) -> Result<Warehouse> {
        Warehouse::open_for_request(&self.root, interrupt, |base| {
            super::memory::statement_runtime(base, &self.server_memory, self.query_memory)
        })
    }

    /// The datasets, findings and choices the page offers.
    pub async fn options(&self, interrupt: &Interrupt) -> Result<Value> {
        let wh = self.open(interrupt).await?;
        wh.register(Register::For("datasets")).await?;
        let datasets = json_rows(
            &wh,
            "SELECT dataset, n_images AS images, n_patients AS patients FROM datasets ORDER BY dataset",
        )
        .await?;
        let sources = wh
            .query(
                "SELECT DISTINCT source FROM (SELECT unnest(label_sources) AS source FROM datasets) ORDER BY source",
                &[],
            )
            .await?
            .required_strings("source")?;
        Ok(json!({
            "datasets": datasets,
            "sources": sources,
            "findings": crate::datasets::XR_FINDINGS,
            "warehouse_version": wh.snapshot.manifest_sha256,
        }))
    }

    /// Everything the page shows of a cohort.
    pub async fn cohort(&self, page: PageCohort, interrupt: &Interrupt) -> Result<Value> {
        let wh = self.open(interrupt).await?;
        let page = page.with_every_dataset(&wh).await?;
        let avail = Available::for_cohort(&wh, &page.cohort).await?;
        let images = page.cohort.images_sql(&avail)?;
        // Computed once: the summary, the pairs and the histogram each read it. A
        // study is a study id of a patient, as in `studies` (PadChest gives one id
        // to two patients: a study of each).
        wh.remember(ROWS, &crate::cli::cohort::summary_rows_sql(&images), &[])
            .await?;
        let all = format!("SELECT * FROM {ROWS}");
        let summary = json_rows(&wh, &crate::cli::cohort::sql(&all, true, &avail.scope)).await?;
        let studies = json_rows(
            &wh,
            &format!(
                "SELECT dataset, COUNT(*) AS images, \
                 NULLIF(COUNT(DISTINCT CASE WHEN study_id IS NOT NULL THEN concat(CAST(patient_id AS VARCHAR), chr(31), study_id) END), 0) AS studies, \
                 NULLIF(COUNT(DISTINCT patient_id), 0) AS patients FROM {ROWS} GROUP BY dataset ORDER BY dataset"
            ),
        )
        .await?;
        let pairs =
            crate::cli::cooccur::sql(&all, &avail.scope, Metric::Lift, Thresholds::default());
        let cooccurrence = json_rows(
            &wh,
            &format!("SELECT dataset, label_a, label_b, n_a, n_b, n_ab, round(value, 3) AS lift FROM (\n{pairs}\n) AS p ORDER BY dataset, label_a, label_b"),
        )
        .await?;
        let ages = json_rows(
            &wh,
            &format!(
                "SELECT COALESCE(sex, 'unknown') AS sex, CAST(floor(age / 5) * 5 AS BIGINT) AS age_from, COUNT(*) AS images \
                 FROM {ROWS} WHERE age IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        )
        .await?;
        let patients = json_rows(
            &wh,
            &format!(
                "SELECT dataset, patient_id, COUNT(*) AS images FROM {ROWS} WHERE patient_id IS NOT NULL \
                 GROUP BY dataset, patient_id ORDER BY images DESC, dataset, patient_id LIMIT 25"
            ),
        )
        .await?;
        let sql = page.listing_sql(avail)?;
        Ok(json!({
            "datasets": page.cohort.datasets,
            "command": page.command("cohort"),
            "summary_command": format!("{} --summary", page.command("cohort")),
            "sql": sql,
            "counts": studies,
            "summary": summary,
            "cooccurrence": cooccurrence,
            "ages": ages,
            "patients": patients,
        }))
    }

    /// One patient's images in the order of their studies, with their labels.
    pub async fn patient(
        &self,
        dataset: &str,
        patient: &str,
        interrupt: &Interrupt,
    ) -> Result<Value> {
        let wh = self.open(interrupt).await?;
        let page = PageCohort::parse(&[("dataset".into(), dataset.into())])?;
        let avail = Available::for_cohort(&wh, &page.cohort).await?;
        let images = page.cohort.images_sql(&avail)?;
        let rows = json_rows(
            &wh,
            &format!(
                "SELECT image_id, study_id, age, sex, \"view\", labels, split FROM (\n{images}\n) AS c \
                 WHERE patient_id = {} ORDER BY study_order, study_id, image_id",
                quote(patient)
            ),
        )
        .await?;
        Ok(json!({ "dataset": dataset, "patient_id": patient, "images": rows }))
    }

    /// The training manifest of `cxr export` with the same flags, as Parquet bytes,
    /// or as CSV (targets one column per finding; list columns as text).
    pub async fn manifest(
        &self,
        page: PageCohort,
        csv: bool,
        interrupt: &Interrupt,
    ) -> Result<std::fs::File> {
        let wh = self.open(interrupt).await?;
        let page = page.with_every_dataset(&wh).await?;
        let out = TempFile::new(if csv { "csv" } else { "parquet" })?;
        let mut arguments = page.arguments.clone();
        arguments.push(format!("--out={}", out.path.display()));
        if csv {
            arguments.push("--targets=wide".into());
        }
        let export = parse_flags::<crate::cli::export::ExportCmd>(&arguments)?;
        let spec = export.spec()?;
        let (sql, manifest) = crate::cli::export::manifest_sql(&export, &wh).await?;
        if csv {
            let rows = ManifestRows::start(&wh, &spec, &manifest, &sql, &[]).await?;
            write_csv(rows, &out.path).await?;
        } else {
            crate::export::run(&wh, &spec, &sql, &[], &out.path, &manifest).await?;
        }
        // The open file outlives its name, which TempFile removes.
        std::fs::File::open(&out.path).map_err(|e| Error::io("reading the manifest written", e))
    }

    /// The cohort as a saved query file for `queries/` (`cxr run NAME`).
    pub async fn saved_query(&self, page: PageCohort, interrupt: &Interrupt) -> Result<String> {
        let wh = self.open(interrupt).await?;
        let page = page.with_every_dataset(&wh).await?;
        let avail = Available::for_cohort(&wh, &page.cohort).await?;
        let sql = page.listing_sql(avail)?;
        Ok(format!(
            "-- @description The images of `{}` (from the cohort builder)\n{sql};\n",
            page.command("cohort")
        ))
    }
}

/// A query's rows as JSON objects.
async fn json_rows(wh: &Warehouse, sql: &str) -> Result<Value> {
    wh.register(Register::For(sql)).await?;
    let rows = wh.query(sql, &[]).await?;
    let batch = rows.batch();
    let mut text = Vec::new();
    crate::output::write_batches(
        &mut text,
        &batch.schema(),
        std::slice::from_ref(batch),
        Format::Json,
    )?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::Internal(format!("a result did not read back as JSON: {e}")))
}

/// A manifest as CSV, written as its rows stream: list and struct columns (the
/// `targets` list, `boxes`) are left out; the wide target columns carry the targets.
async fn write_csv(mut rows: ManifestRows, path: &std::path::Path) -> Result<()> {
    let keep: Vec<usize> = (0..rows.schema.fields().len())
        .filter(|&i| !is_nested(rows.schema.field(i).data_type()))
        .collect();
    let flat = Arc::new(rows.schema.project(&keep)?);
    let file = std::fs::File::create(path)
        .map_err(|e| Error::io(format!("{}: cannot create", path.display()), e))?;
    let mut out = std::io::BufWriter::new(file);
    crate::output::write_csv_header(&mut out, &flat)?;
    while let Some(batch) = rows.next().await {
        crate::output::write_csv_rows(&mut out, &batch?.project(&keep)?)?;
    }
    out.flush()
        .map_err(|e| Error::io(format!("{}: cannot write", path.display()), e))
}

fn is_nested(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
    )
}

/// A file in a folder of its own in the system's temporary folder, named by cxr
/// (never by a client), both removed when dropped. The folder is made new, private
/// to this user, under a name no one can foresee: a file made straight in the shared
/// temporary folder under a foreseeable name was written through a link another
/// user had put there.
struct TempFile {
    folder: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(extension: &str) -> Result<TempFile> {
        use std::hash::{BuildHasher, Hasher};
        use std::os::unix::fs::DirBuilderExt;
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let unforeseeable = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let folder = std::env::temp_dir().join(format!(
            "cxr-page-{}-{n}-{unforeseeable:016x}",
            std::process::id()
        ));
        // Fails where anything, a link too, has the name already.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&folder)
            .map_err(|e| Error::io(format!("{}: cannot create", folder.display()), e))?;
        let path = folder.join(format!("manifest.{extension}"));
        Ok(TempFile { folder, path })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
