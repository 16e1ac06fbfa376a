//! `cxr split`: patient-level splits written as the warehouse table `splits`
//! (patient_id → split), from the official lists or reproducibly at random, with
//! optional iterative stratification over the findings.

use std::path::PathBuf;

use clap::Args;

use crate::cli::WarehouseArg;
use crate::error::{Error, Result};
use crate::findings::FINDINGS;
use crate::output::Listing;
use crate::split;
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr split`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr split --seed 7 --fractions 0.7,0.1,0.2 --stratify\n  cxr split --official\n  cxr split --check\n  cxr split --dataset nih --seed 7 --fractions 0.8,0.2"
)]
pub struct SplitCmd {
    /// Use the official NIH lists (images.split) per patient.
    #[arg(long, conflicts_with_all = ["seed", "fractions", "names", "datasets"])]
    pub official: bool,
    /// One random split over the patients of these datasets (comma-separated; an
    /// image without a patient id is a patient of its own), written as the table
    /// `dataset_splits`: cohorts and exports across datasets then take each image's
    /// split from it, so one manifest has one split vocabulary and no patient in two.
    #[arg(
        long = "dataset",
        value_name = "NAMES",
        value_delimiter = ',',
        conflicts_with = "check"
    )]
    pub datasets: Vec<String>,
    /// Seed of a random split by patient.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fractions of a random split [default: 0.7,0.1,0.2].
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub fractions: Option<Vec<f64>>,
    /// Names of the splits, in the order of the fractions [default: train,test for
    /// two fractions, train,val,test for three, split1,split2,... otherwise].
    #[arg(long, value_delimiter = ',')]
    pub names: Option<Vec<String>>,
    /// Keep every finding's prevalence per split close to the whole (iterative
    /// stratification over patients' images).
    #[arg(long)]
    pub stratify: bool,
    /// Report patients in more than one split and exit.
    #[arg(long)]
    pub check: bool,
    /// Also write the assignment as (patient_id, split) rows to FILE.parquet
    /// ((dataset, patient, split) with --dataset).
    #[arg(long, value_name = "FILE.parquet")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
}

/// Runs `cxr split`.
pub async fn run(cmd: SplitCmd) -> Result<()> {
    let dir = cmd.warehouse.path();
    let wh = Warehouse::open(&dir, Register::All).await?;
    if cmd.check {
        if cmd.official
            || cmd.seed.is_some()
            || cmd.stratify
            || cmd.out.is_some()
            || cmd.fractions.is_some()
            || cmd.names.is_some()
        {
            return Err(Error::Usage(
                "--check only reports: it takes no --official, --seed, --fractions, --names, --stratify or --out".into(),
            ));
        }
        return check(&wh).await;
    }
    if let Some(out) = &cmd.out {
        check_out(&wh, out)?;
    }
    if !cmd.datasets.is_empty() {
        return run_across(&cmd, wh).await;
    }
    if cmd.official && cmd.stratify {
        return Err(Error::Usage(
            "--stratify shapes a random split (--seed); the official lists are fixed".into(),
        ));
    }
    let plan = if cmd.official {
        Plan::Official
    } else {
        random_plan(&cmd)?
    };
    let plan = &plan;
    let rows = commit_on_current(
        &dir,
        wh,
        |wh| async move {
            let rows = plan.rows(&wh).await?;
            Ok((wh, rows))
        },
        |dir, base, rows| split::commit(dir, base, rows),
    )
    .await?;
    if let Some(out) = &cmd.out {
        crate::warehouse::parquet::write(
            out,
            &split::schema(),
            &[split::batch(&rows)?],
            &crate::warehouse::parquet::WriteOptions::default(),
        )?;
    }
    say!(
        "wrote splits for {} patients",
        crate::output::thousands(rows.len() as u64)
    );
    let wh = Warehouse::open(&dir, Register::All).await?;
    let named = match plan {
        Plan::Official => crate::datasets::nih::splits::SPLIT_NAMES
            .map(String::from)
            .to_vec(),
        Plan::Random { names, .. } => names.clone(),
    };
    crate::output::print_text(&prevalence_table(&wh, &named).await?.render())?;
    Ok(())
}

/// What `cxr split` assigns: the official lists, or a random split.
enum Plan {
    Official,
    Random {
        seed: u64,
        fractions: Vec<f64>,
        names: Vec<String>,
        stratify: bool,
    },
}

impl Plan {
    /// Each patient's split on the warehouse `wh`.
    async fn rows(&self, wh: &Warehouse) -> Result<Vec<(i32, String)>> {
        let Plan::Random {
            seed,
            fractions,
            names,
            stratify,
        } = self
        else {
            return split::official(wh).await;
        };
        let patients = split::load_patients(wh).await?;
        let a = split::assign(&patients, fractions, *seed, *stratify);
        every_split_holds_a_patient(&a, names)?;
        Ok(patients
            .iter()
            .zip(a)
            .map(|(p, s)| (p.id, names[s].clone()))
            .collect())
    }
}

/// `cxr split --dataset ...`: one random split over the datasets' patients.
async fn run_across(cmd: &SplitCmd, wh: Warehouse) -> Result<()> {
    let dir = cmd.warehouse.path();
    let Plan::Random {
        seed,
        fractions,
        names,
        stratify,
    } = random_plan(cmd)?
    else {
        unreachable!("random_plan gives a random plan");
    };
    let datasets: Vec<String> = cmd
        .datasets
        .iter()
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    check_datasets(&wh, &datasets).await?;
    let assign = |wh: Warehouse| {
        let (datasets, fractions, names) = (&datasets, &fractions, &names);
        async move {
            let (keys, patients) = split::load_dataset_patients(&wh, datasets).await?;
            let chosen = split::assign(&patients, fractions, seed, stratify);
            every_split_holds_a_patient(&chosen, names)?;
            let rows: Vec<(split::DatasetPatient, String)> = keys
                .into_iter()
                .zip(chosen)
                .map(|(k, s)| (k, names[s].clone()))
                .collect();
            Ok::<_, Error>((wh, rows))
        }
    };
    let rows = commit_on_current(&dir, wh, assign, |dir, base, rows| {
        split::commit_datasets(dir, base, rows)
    })
    .await?;
    if let Some(out) = &cmd.out {
        let batch = split::dataset_batch(&rows)?;
        crate::warehouse::parquet::write(
            out,
            &batch.schema(),
            std::slice::from_ref(&batch),
            &crate::warehouse::parquet::WriteOptions::default(),
        )?;
    }
    say!(
        "wrote dataset_splits for {} patients of {}",
        crate::output::thousands(rows.len() as u64),
        datasets.join(", ")
    );
    let wh = Warehouse::open(&dir, Register::All).await?;
    let frames = wh
        .plan(
            "SELECT ds.split, ds.dataset, COUNT(DISTINCT ds.patient) AS patients, COUNT(*) AS images \
             FROM dataset_splits ds JOIN dataset_images x ON x.dataset = ds.dataset AND COALESCE(x.patient_id, x.image_id) = ds.patient \
             GROUP BY ds.split, ds.dataset ORDER BY ds.split, ds.dataset",
            false,
            &[],
        )
        .await?;
    crate::cli::emit(&wh, frames, &crate::cli::OutputArgs::default()).await?;
    Ok(())
}

/// Computes the rows of a split on `wh` and commits them. Another ingest or split may
/// commit while they are computed (or while this one waits for the lock): then they
/// are computed again on the new version, at most five times.
async fn commit_on_current<R, Computed>(
    dir: &std::path::Path,
    wh: Warehouse,
    compute: impl Fn(Warehouse) -> Computed,
    commit: impl Fn(&std::path::Path, &str, &R) -> Result<bool>,
) -> Result<R>
where
    Computed: std::future::Future<Output = Result<(Warehouse, R)>>,
{
    let t = std::time::Instant::now();
    let (wh, mut rows) = compute(wh).await?;
    crate::trace("compute the split", t);
    // The read hold goes before the commit, so that the commit can remove the
    // version it replaces (its check of `based_on` runs under the write lock).
    let mut based_on = wh.snapshot.manifest.data.clone();
    drop(wh);
    let mut tries = 1;
    let t = std::time::Instant::now();
    while !commit(dir, &based_on, &rows)? {
        if tries == 5 {
            return Err(Error::Warehouse(format!(
                "{} changed five times while the split was computed; try again when the other writers are done",
                dir.display()
            )));
        }
        say!("cxr: note: the warehouse changed while the split was computed; computing it again");
        let (wh, again) = compute(Warehouse::open(dir, Register::All).await?).await?;
        (based_on, rows) = (wh.snapshot.manifest.data.clone(), again);
        tries += 1;
    }
    crate::trace("write and commit", t);
    Ok(rows)
}

/// Every name of `datasets` is a dataset the warehouse holds.
async fn check_datasets(wh: &Warehouse, datasets: &[String]) -> Result<()> {
    if !wh.has_table("dataset_images") {
        return Err(Error::Usage(
            "this warehouse has no cross-dataset tables; run `cxr ingest` again with this cxr"
                .into(),
        ));
    }
    let present = wh
        .query("SELECT dataset FROM datasets ORDER BY dataset", &[])
        .await?
        .required_strings("dataset")?;
    match datasets.iter().find(|d| !present.contains(d)) {
        Some(d) => Err(Error::Usage(format!(
            "--dataset {d}: not in this warehouse; it holds {}",
            present.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Refuses a split that its fraction leaves without a patient (`--fractions
/// 0.00001,0.99999` of 30,805 patients): a name nothing would carry.
fn every_split_holds_a_patient(chosen: &[usize], names: &[String]) -> Result<()> {
    let mut held = vec![0usize; names.len()];
    for &k in chosen {
        held[k] += 1;
    }
    match held.iter().position(|&n| n == 0) {
        Some(k) => Err(Error::Usage(format!(
            "--fractions: split `{}` would hold no patient of the {} (its fraction is too small); nothing was written",
            names[k],
            chosen.len()
        ))),
        None => Ok(()),
    }
}

/// The random split the flags ask for, checked.
fn random_plan(cmd: &SplitCmd) -> Result<Plan> {
    let seed = cmd
        .seed
        .ok_or_else(|| Error::Usage("give --official, or --seed S for a random split".into()))?;
    let fractions = cmd.fractions.clone().unwrap_or_else(|| vec![0.7, 0.1, 0.2]);
    if let Some(f) = fractions.iter().find(|f| !f.is_finite() || **f < 0.0) {
        return Err(Error::Usage(format!(
            "--fractions: {f} is not a fraction (each is a number from 0 to 1)"
        )));
    }
    let names = cmd
        .names
        .clone()
        .unwrap_or_else(|| default_names(fractions.len()));
    // A split of no patient is a name nothing carries: refused, not written.
    if let Some(k) = fractions.iter().position(|f| *f == 0.0) {
        return Err(Error::Usage(format!(
            "--fractions: split {} has fraction 0 and would hold no patient; leave it out of --fractions and --names",
            names
                .get(k)
                .map_or_else(|| format!("{}", k + 1), |n| format!("`{n}`"))
        )));
    }
    if fractions.len() != names.len() {
        return Err(Error::Usage(format!(
            "{} fractions but {} --names ({}); give one name per fraction",
            fractions.len(),
            names.len(),
            names.join(",")
        )));
    }
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() || names[..i].contains(name) {
            return Err(Error::Usage(format!(
                "--names {}: each split needs a name of its own",
                names.join(",")
            )));
        }
        // A name is a folder of `export --partition-by split`: one that a folder
        // could not give back unchanged is refused here, before anything is written.
        if !crate::export::is_folder_value(name) {
            return Err(Error::Usage(format!(
                "--names: `{name}` is not a split name (letters, digits, `-`, `_` and `.` only, so that a partitioned export's folders give it back)"
            )));
        }
    }
    let sum: f64 = fractions.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(Error::Usage(format!("--fractions add up to {sum}, not 1")));
    }
    Ok(Plan::Random {
        seed,
        fractions,
        names,
        stratify: cmd.stratify,
    })
}

/// `--out` is checked before the split is committed: a bad path fails with nothing
/// written.
fn check_out(wh: &Warehouse, out: &std::path::Path) -> Result<()> {
    crate::warehouse::refuse_inside(&wh.snapshot.root, out, "--out")?;
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return Err(Error::Usage(format!(
            "--out {}: the assignment is written as Parquet; name a .parquet file",
            out.display()
        )));
    }
    crate::warehouse::files::check_file_target(out)
}

/// Per split, in the order they were named (then any other, then `(all)`): images,
/// patients and each finding's prevalence.
async fn prevalence_table(wh: &Warehouse, named: &[String]) -> Result<Listing> {
    let p = split::prevalence(wh).await?;
    let rank = |n: &String| {
        let at = named.iter().position(|x| x == n);
        (n == "(all)", at.unwrap_or(named.len()), n.clone())
    };
    let mut names: Vec<&String> = p.keys().collect();
    names.sort_by_key(|n| rank(n));
    let mut header = vec!["measure"];
    header.extend(names.iter().map(|n| n.as_str()));
    let mut t = Listing::new(&header);
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
    let has_splits = wh.has_table("splits");
    let mut sql = String::from(
        "SELECT 'official (images.split)' AS assignment, COUNT(*) AS patients_in_more_than_one_split FROM (SELECT patient_id FROM images WHERE split IS NOT NULL GROUP BY patient_id HAVING COUNT(DISTINCT split) > 1) AS t",
    );
    if has_splits {
        sql.push_str(" UNION ALL SELECT 'splits table', COUNT(*) FROM (SELECT patient_id FROM splits GROUP BY patient_id HAVING COUNT(DISTINCT split) > 1) AS u");
    }
    if wh.has_table("dataset_splits") {
        sql.push_str(" UNION ALL SELECT 'dataset_splits table', COUNT(*) FROM (SELECT dataset, patient FROM dataset_splits GROUP BY dataset, patient HAVING COUNT(DISTINCT split) > 1) AS d");
    }
    // The parts of a UNION ALL come in whichever order they finish.
    let sql = format!("SELECT * FROM ({sql}) AS checks ORDER BY assignment");
    let frames = wh.plan(&sql, false, &[]).await?;
    crate::cli::emit(wh, frames, &crate::cli::OutputArgs::default()).await?;
    Ok(())
}

/// The split names used when `--names` is not given, for `n` fractions.
fn default_names(n: usize) -> Vec<String> {
    match n {
        2 => vec!["train".into(), "test".into()],
        3 => vec!["train".into(), "val".into(), "test".into()],
        _ => (1..=n).map(|i| format!("split{i}")).collect(),
    }
}
