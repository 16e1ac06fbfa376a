//! `cxr split`: patient-level splits written as the warehouse table `splits`
//! (patient_id → split), from the official lists or reproducibly at random, with
//! optional iterative stratification over the findings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::cli::WarehouseArg;
use crate::error::{Error, IoContext, Result};
use crate::findings::FINDINGS;
use crate::ingest::warehouse::{MANIFEST, Manifest, Staging};
use crate::pixels::synth::Rng;
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr split`.
#[derive(Debug, Args)]
pub struct SplitCmd {
    /// Use the official NIH lists (images.split) per patient.
    #[arg(long, conflicts_with_all = ["seed", "fractions"])]
    pub official: bool,
    /// Seed of a random split by patient.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fractions of a random split, e.g. 0.7,0.1,0.2.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.1,0.2")]
    pub fractions: Vec<f64>,
    /// Names of the splits, in the order of the fractions.
    #[arg(long, value_delimiter = ',', default_value = "train,val,test")]
    pub names: Vec<String>,
    /// Keep every finding's prevalence per split close to the whole (iterative
    /// stratification over patients' images).
    #[arg(long)]
    pub stratify: bool,
    /// Report patients in more than one split and exit.
    #[arg(long)]
    pub check: bool,
    /// Also write the assignment as (patient_id, split) rows to FILE.parquet.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
}

/// A patient as the splitter sees it.
#[derive(Debug, Clone)]
pub struct Patient {
    /// Patient id.
    pub id: i32,
    /// Number of images.
    pub images: u64,
    /// Images with each finding, in FINDINGS order.
    pub label_images: [u64; 14],
}

fn splits_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int32, false),
        Field::new("split", DataType::Utf8, false),
    ]))
}

/// Assigns patients to splits at random (seeded), in proportion to `fractions` of
/// images when stratifying, of patients otherwise. Returns one split index per patient.
pub fn assign(patients: &[Patient], fractions: &[f64], seed: u64, stratify: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..patients.len()).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut out = vec![usize::MAX; patients.len()];
    if !stratify {
        let n = patients.len() as f64;
        let mut bounds = Vec::new();
        let mut acc = 0.0;
        for f in fractions {
            acc += f;
            bounds.push((acc * n).round() as usize);
        }
        for (rank, &p) in order.iter().enumerate() {
            out[p] = bounds
                .iter()
                .position(|&b| rank < b)
                .unwrap_or(fractions.len() - 1);
        }
        return out;
    }
    // Iterative stratification (Sechidis et al. 2011), weighted by images.
    let total: u64 = patients.iter().map(|p| p.images).sum();
    let mut desired: Vec<f64> = fractions.iter().map(|f| f * total as f64).collect();
    let mut desired_label: Vec<[f64; 14]> = fractions
        .iter()
        .map(|f| {
            let mut d = [0.0; 14];
            for (l, slot) in d.iter_mut().enumerate() {
                *slot = f * patients.iter().map(|p| p.label_images[l]).sum::<u64>() as f64;
            }
            d
        })
        .collect();
    let mut remaining: Vec<usize> = order;
    loop {
        let count = |l: usize, rem: &[usize]| {
            rem.iter()
                .filter(|&&p| patients[p].label_images[l] > 0)
                .count()
        };
        let label = (0..14)
            .map(|l| (count(l, &remaining), l))
            .filter(|(c, _)| *c > 0)
            .min()
            .map(|(_, l)| l);
        let (take, keep): (Vec<usize>, Vec<usize>) = match label {
            Some(l) => remaining
                .iter()
                .partition(|&&p| patients[p].label_images[l] > 0),
            None => (remaining.clone(), Vec::new()),
        };
        for p in take {
            let score = |s: usize| match label {
                Some(l) => (desired_label[s][l], desired[s]),
                None => (desired[s], 0.0),
            };
            let s = (0..fractions.len())
                .max_by(|&a, &b| {
                    score(a)
                        .partial_cmp(&score(b))
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(b.cmp(&a))
                })
                .expect("at least one split");
            out[p] = s;
            desired[s] -= patients[p].images as f64;
            for (slot, n) in desired_label[s].iter_mut().zip(patients[p].label_images) {
                *slot -= n as f64;
            }
        }
        remaining = keep;
        if label.is_none() || remaining.is_empty() {
            break;
        }
    }
    out
}

async fn load_patients(wh: &Warehouse) -> Result<Vec<Patient>> {
    let cols: Vec<String> = FINDINGS
        .iter()
        .map(|f| {
            format!(
                "CAST(SUM(CASE WHEN {} THEN 1 ELSE 0 END) AS BIGINT)",
                f.to_ascii_lowercase()
            )
        })
        .collect();
    let sql = format!(
        "SELECT patient_id, COUNT(*) AS n, {} FROM images GROUP BY patient_id ORDER BY patient_id",
        cols.join(", ")
    );
    let mut frames = wh.plan(&sql, false, &[]).await?;
    let (_, batches) = crate::sql::collect(frames.pop().expect("one statement")).await?;
    let mut out = Vec::new();
    for b in &batches {
        for row in crate::output::rows_as_text(b, "0")? {
            let nums: Vec<u64> = row[1..].iter().map(|v| v.parse().unwrap_or(0)).collect();
            let mut label_images = [0u64; 14];
            label_images.copy_from_slice(&nums[1..15]);
            out.push(Patient {
                id: row[0].parse().unwrap_or(0),
                images: nums[0],
                label_images,
            });
        }
    }
    Ok(out)
}

async fn official(wh: &Warehouse) -> Result<Vec<(i32, String)>> {
    let sql = "SELECT patient_id, MIN(split) FROM images WHERE split IS NOT NULL GROUP BY patient_id HAVING COUNT(DISTINCT split) = 1 ORDER BY patient_id";
    let mut frames = wh.plan(sql, false, &[]).await?;
    let (_, batches) = crate::sql::collect(frames.pop().expect("one statement")).await?;
    let mut out = Vec::new();
    for b in &batches {
        for row in crate::output::rows_as_text(b, "")? {
            out.push((row[0].parse().unwrap_or(0), row[1].clone()));
        }
    }
    Ok(out)
}

/// Writes `splits.parquet` into a copy of the warehouse and swaps it in.
fn commit_splits(dir: &std::path::Path, manifest: &Manifest, rows: &[(i32, String)]) -> Result<()> {
    let staging = Staging::new(dir)?;
    for e in std::fs::read_dir(dir)
        .ctx(|| format!("{}: cannot list", dir.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == MANIFEST || name == "splits.parquet" || name.starts_with('.') {
            continue;
        }
        if e.path().is_dir() {
            crate::cli::export::copy_dir(&e.path(), &staging.path(&name))?;
            continue;
        }
        let to = staging.path(&name);
        if std::fs::hard_link(e.path(), &to).is_err() {
            std::fs::copy(e.path(), &to).ctx(|| format!("{}: cannot copy", e.path().display()))?;
        }
    }
    crate::pixels::run::write_batches(
        &staging.path("splits.parquet"),
        splits_schema(),
        &[batch(rows)?],
    )?;
    let mut m = manifest.clone();
    m.tables.insert("splits".into(), rows.len() as u64);
    let json = serde_json::to_string_pretty(&m).expect("manifest serialises");
    std::fs::write(staging.path(MANIFEST), json + "\n").ctx(|| "writing manifest.json".into())?;
    staging.commit()
}

fn batch(rows: &[(i32, String)]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.1.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(splits_schema(), cols)?)
}

/// Runs `cxr split`.
pub async fn run(cmd: SplitCmd) -> Result<()> {
    let dir = cmd.warehouse.path();
    let wh = Warehouse::open(&dir, Register::All).await?;
    if cmd.check {
        return check(&wh).await;
    }
    let rows: Vec<(i32, String)> = if cmd.official {
        official(&wh).await?
    } else {
        let seed = cmd.seed.ok_or_else(|| {
            Error::Usage("give --official, or --seed S for a random split".into())
        })?;
        if cmd.fractions.len() != cmd.names.len()
            || cmd.fractions.iter().any(|f| !f.is_finite() || *f < 0.0)
        {
            return Err(Error::Usage(
                "--fractions and --names must have the same length, fractions >= 0".into(),
            ));
        }
        let sum: f64 = cmd.fractions.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(Error::Usage(format!("--fractions add up to {sum}, not 1")));
        }
        let patients = load_patients(&wh).await?;
        let a = assign(&patients, &cmd.fractions, seed, cmd.stratify);
        patients
            .iter()
            .zip(a)
            .map(|(p, s)| (p.id, cmd.names[s].clone()))
            .collect()
    };
    commit_splits(&dir, &wh.manifest, &rows)?;
    if let Some(out) = &cmd.out {
        crate::pixels::run::write_batches(out, splits_schema(), &[batch(&rows)?])?;
    }
    eprintln!(
        "wrote splits for {} patients",
        crate::output::thousands(rows.len() as u64)
    );
    let wh = Warehouse::open(&dir, Register::All).await?;
    println!("{}", prevalence_table(&wh).await?);
    Ok(())
}

/// Per-split images, patients and prevalence (%) of every finding, beside the whole.
pub async fn prevalence(wh: &Warehouse) -> Result<BTreeMap<String, Vec<f64>>> {
    let cols: Vec<String> = FINDINGS
        .iter()
        .map(|f| {
            format!(
                "100.0 * AVG(CASE WHEN i.{} THEN 1.0 ELSE 0.0 END)",
                f.to_ascii_lowercase()
            )
        })
        .collect();
    let sql = format!(
        "SELECT COALESCE(s.split, '(all)') AS split, CAST(COUNT(*) AS DOUBLE), CAST(COUNT(DISTINCT i.patient_id) AS DOUBLE), {c}
         FROM images i JOIN splits s ON s.patient_id = i.patient_id GROUP BY s.split
         UNION ALL
         SELECT '(all)', CAST(COUNT(*) AS DOUBLE), CAST(COUNT(DISTINCT i.patient_id) AS DOUBLE), {c} FROM images i",
        c = cols.join(", ")
    );
    let mut frames = wh.plan(&sql, false, &[]).await?;
    let (_, batches) = crate::sql::collect(frames.pop().expect("one statement")).await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        for row in crate::output::rows_as_text(b, "0")? {
            out.insert(
                row[0].clone(),
                row[1..].iter().map(|v| v.parse().unwrap_or(0.0)).collect(),
            );
        }
    }
    Ok(out)
}

async fn prevalence_table(wh: &Warehouse) -> Result<Table> {
    let p = prevalence(wh).await?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let names: Vec<&String> = p.keys().collect();
    let mut header = vec!["".to_string()];
    header.extend(names.iter().map(|n| n.to_string()));
    t.set_header(header);
    for (i, label) in ["images", "patients"].iter().enumerate() {
        let mut row = vec![label.to_string()];
        row.extend(
            names
                .iter()
                .map(|n| crate::output::thousands(p[*n][i] as u64)),
        );
        t.add_row(row);
    }
    for (k, f) in FINDINGS.iter().enumerate() {
        let mut row = vec![format!("{f} %")];
        row.extend(names.iter().map(|n| format!("{:.2}", p[*n][k + 2])));
        t.add_row(row);
    }
    Ok(t)
}

async fn check(wh: &Warehouse) -> Result<()> {
    let has_splits = wh.has_table("splits")?;
    let mut sql = String::from(
        "SELECT 'official (images.split)' AS assignment, COUNT(*) AS patients_in_more_than_one_split FROM (SELECT patient_id FROM images WHERE split IS NOT NULL GROUP BY patient_id HAVING COUNT(DISTINCT split) > 1) AS t",
    );
    if has_splits {
        sql.push_str(" UNION ALL SELECT 'splits table', COUNT(*) FROM (SELECT patient_id FROM splits GROUP BY patient_id HAVING COUNT(DISTINCT split) > 1) AS u");
    }
    let frames = wh.plan(&sql, false, &[]).await?;
    crate::cli::emit(
        frames,
        &crate::cli::OutputArgs {
            format: None,
            out: None,
            max_rows: 40,
        },
    )
    .await
}
