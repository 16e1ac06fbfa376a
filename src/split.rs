//! Patient-level splits: the official NIH assignment, or a reproducible random one
//! (optionally with iterative stratification over the findings), stored as the
//! warehouse table `splits` (patient_id → split).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};
use crate::findings::FINDINGS;
use crate::sql::Warehouse;
use crate::sql::snippets::column_name;
use crate::warehouse::WriteLock;
use crate::warehouse::parquet::{self, WriteOptions};

/// SplitMix64: a small seeded generator, so a seed means the same split in every
/// version of cxr.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A patient as the splitter sees it.
#[derive(Debug, Clone)]
pub struct Patient {
    /// Patient id.
    pub id: i32,
    /// Number of images.
    pub images: u64,
    /// Images with each finding (the 14 NIH findings, or across datasets the 18).
    pub label_images: Vec<u64>,
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
    let findings = patients.first().map_or(0, |p| p.label_images.len());
    let mut desired_label: Vec<Vec<f64>> = fractions
        .iter()
        .map(|f| {
            (0..findings)
                .map(|l| f * patients.iter().map(|p| p.label_images[l]).sum::<u64>() as f64)
                .collect::<Vec<f64>>()
        })
        .collect();
    let mut remaining: Vec<usize> = order;
    loop {
        let count = |l: usize, rem: &[usize]| {
            rem.iter()
                .filter(|&&p| patients[p].label_images[l] > 0)
                .count()
        };
        let label = (0..findings)
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
            for (slot, n) in desired_label[s].iter_mut().zip(&patients[p].label_images) {
                *slot -= *n as f64;
            }
        }
        remaining = keep;
        if label.is_none() || remaining.is_empty() {
            break;
        }
    }
    out
}

/// Every patient with image and per-finding image counts.
pub async fn load_patients(wh: &Warehouse) -> Result<Vec<Patient>> {
    let cols: Vec<String> = FINDINGS
        .iter()
        .map(|f| {
            let c = column_name(f);
            format!("CAST(SUM(CASE WHEN {c} THEN 1 ELSE 0 END) AS BIGINT) AS {c}")
        })
        .collect();
    let sql = format!(
        "SELECT patient_id, COUNT(*) AS n, {} FROM images GROUP BY patient_id ORDER BY patient_id",
        cols.join(", ")
    );
    let rows = wh.query(&sql, &[]).await?;
    let ids = rows.required_i64s("patient_id")?;
    let n = rows.required_i64s("n")?;
    let per_finding: Vec<Vec<i64>> = FINDINGS
        .iter()
        .map(|f| rows.required_i64s(&column_name(f)))
        .collect::<Result<_>>()?;
    Ok((0..rows.len())
        .map(|r| Patient {
            id: ids[r] as i32,
            images: n[r] as u64,
            label_images: per_finding.iter().map(|f| f[r] as u64).collect(),
        })
        .collect())
}

/// The official assignment per patient (patients whose images sit in one list).
pub async fn official(wh: &Warehouse) -> Result<Vec<(i32, String)>> {
    let rows = wh
        .query(
            // Every image of the patient in one list: an image in neither (NULL)
            // leaves the patient out, as one in each does.
            "SELECT patient_id, MIN(split) AS split FROM images GROUP BY patient_id \
             HAVING COUNT(DISTINCT split) = 1 AND COUNT(split) = COUNT(*) ORDER BY patient_id",
            &[],
        )
        .await?;
    let assigned: Vec<(i32, String)> = rows
        .required_i64s("patient_id")?
        .into_iter()
        .map(|p| p as i32)
        .zip(rows.required_strings("split")?)
        .collect();
    if assigned.is_empty() {
        // An empty `splits` would be committed as if it were the lists.
        return Err(Error::Usage(
            "--official: no image of this warehouse is in an official list \
             (ingested with --no-splits, or without train_val_list.txt and test_list.txt); \
             nothing was written"
                .into(),
        ));
    }
    Ok(assigned)
}

/// The schema of the `splits` table.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("patient_id", DataType::Int32, false),
        Field::new("split", DataType::Utf8, false),
    ]))
}

/// The `splits` rows as a batch.
pub fn batch(rows: &[(i32, String)]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.1.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), cols)?)
}

/// Commits a new version of the warehouse with these `splits`, every other table
/// carried over unchanged. Commits nothing and returns false if the warehouse changed
/// since `based_on` was read (the split was computed on an old version).
pub fn commit(root: &Path, based_on: &str, rows: &[(i32, String)]) -> Result<bool> {
    commit_table(root, based_on, "splits", batch(rows)?)
}

/// Commits a new version with the table `name` (replaced or added), every other
/// table carried over unchanged; false, and nothing committed, if the warehouse
/// changed since `based_on` was read.
fn commit_table(root: &Path, based_on: &str, name: &str, table: RecordBatch) -> Result<bool> {
    let lock = WriteLock::acquire(root)?;
    let (Some(base), Some(data)) = (lock.base().cloned(), lock.base_data()) else {
        return Err(crate::Error::Warehouse(format!(
            "no warehouse at {}; run `cxr ingest` first",
            root.display()
        )));
    };
    if base.data != based_on {
        return Ok(false);
    }
    let staging = lock.stage()?;
    for (kept, path) in base.table_files(&data)? {
        if kept != name {
            staging.keep(&path)?;
        }
    }
    let rows = parquet::write(
        &staging.path(&format!("{name}.parquet")),
        &table.schema(),
        std::slice::from_ref(&table),
        &WriteOptions::default(),
    )?;
    let mut manifest = base;
    manifest.tables.insert(name.into(), rows);
    manifest.created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    staging.commit(manifest)?;
    Ok(true)
}

/// Per split (and `(all)`): images, patients and the prevalence (%) of each finding,
/// over the images whose labels are known (as `cohort --summary` gives it; NaN when
/// none is).
pub async fn prevalence(wh: &Warehouse) -> Result<BTreeMap<String, Vec<f64>>> {
    let cols: Vec<String> = FINDINGS
        .iter()
        .map(|f| {
            let c = column_name(f);
            format!(
                "COALESCE(100.0 * AVG(CASE WHEN i.{c} THEN 1.0 WHEN NOT i.{c} THEN 0.0 END), CAST('NaN' AS DOUBLE)) AS {c}"
            )
        })
        .collect();
    let sql = format!(
        "SELECT COALESCE(s.split, '(all)') AS split, CAST(COUNT(*) AS DOUBLE) AS images, CAST(COUNT(DISTINCT i.patient_id) AS DOUBLE) AS patients, {c}
         FROM images i JOIN splits s ON s.patient_id = i.patient_id GROUP BY s.split
         UNION ALL
         SELECT '(all)', CAST(COUNT(*) AS DOUBLE), CAST(COUNT(DISTINCT i.patient_id) AS DOUBLE), {c} FROM images i",
        c = cols.join(", ")
    );
    let rows = wh.query(&sql, &[]).await?;
    let mut columns = vec![
        rows.required_f64s("images")?,
        rows.required_f64s("patients")?,
    ];
    for f in FINDINGS {
        columns.push(rows.required_f64s(&column_name(f))?);
    }
    Ok(rows
        .required_strings("split")?
        .into_iter()
        .enumerate()
        .map(|(r, name)| (name, columns.iter().map(|c| c[r]).collect()))
        .collect())
}

/// A patient of a split across datasets: the dataset and the patient id, or the image
/// id where the release gives no patient (VinDr, RSNA, SIIM: each image its own).
pub type DatasetPatient = (String, String);

/// Every patient of `datasets` (all datasets when empty) with image and per-finding
/// image counts (the 18 findings of the cross-dataset states), in (dataset, patient)
/// order.
pub async fn load_dataset_patients(
    wh: &Warehouse,
    datasets: &[String],
) -> Result<(Vec<DatasetPatient>, Vec<Patient>)> {
    let cols: Vec<String> = (0..crate::datasets::XR_FINDINGS.len())
        .map(|k| format!("CAST(SUM((positive_findings >> {k}) & 1) AS BIGINT) AS f{k}"))
        .collect();
    let only = if datasets.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = datasets
            .iter()
            .map(|d| crate::sql::snippets::quote(d))
            .collect();
        format!(" WHERE dataset IN ({})", names.join(", "))
    };
    let sql = format!(
        "SELECT dataset, COALESCE(patient_id, image_id) AS patient, COUNT(*) AS n, {} \
         FROM dataset_images{only} GROUP BY dataset, COALESCE(patient_id, image_id) ORDER BY dataset, patient",
        cols.join(", ")
    );
    let rows = wh.query(&sql, &[]).await?;
    let keys: Vec<DatasetPatient> = rows
        .required_strings("dataset")?
        .into_iter()
        .zip(rows.required_strings("patient")?)
        .collect();
    let n = rows.required_i64s("n")?;
    let per_finding: Vec<Vec<i64>> = (0..crate::datasets::XR_FINDINGS.len())
        .map(|k| rows.required_i64s(&format!("f{k}")))
        .collect::<Result<_>>()?;
    let patients = (0..rows.len())
        .map(|r| Patient {
            id: 0,
            images: n[r] as u64,
            label_images: per_finding.iter().map(|f| f[r] as u64).collect(),
        })
        .collect();
    Ok((keys, patients))
}

/// The `dataset_splits` rows (dataset, patient, split) as a batch.
pub fn dataset_batch(rows: &[(DatasetPatient, String)]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dataset", DataType::Utf8, false),
        Field::new("patient", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
    ]));
    let column = |f: &dyn Fn(&(DatasetPatient, String)) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let cols = vec![
        column(&|r| r.0.0.as_str()),
        column(&|r| r.0.1.as_str()),
        column(&|r| r.1.as_str()),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// Commits a new version with `dataset_splits`; false if the warehouse changed since
/// `based_on` (see [`commit`]).
pub fn commit_datasets(
    root: &Path,
    based_on: &str,
    rows: &[(DatasetPatient, String)],
) -> Result<bool> {
    commit_table(root, based_on, "dataset_splits", dataset_batch(rows)?)
}
