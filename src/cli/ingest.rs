//! `cxr ingest`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::cli::WarehouseArg;
use crate::error::Result;
use crate::ingest::{IngestOptions, IngestSummary};

/// Arguments of `cxr ingest`.
#[derive(Debug, Args)]
#[command(
    after_help = "The defaults are the NIH files shipped with cxr: the data/ folder of its checkout, or $CXR_DATA.\n\nExamples:\n  cxr ingest\n  cxr ingest --metadata Data_Entry_2017.csv.gz --warehouse /tmp/wh-2017"
)]
pub struct IngestArgs {
    /// Metadata CSV (plain or gzip) [default: data/Data_Entry_2017_v2020.csv.gz]
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
    /// Bounding-box CSV [default: data/BBox_List_2017.csv]
    #[arg(long, value_name = "FILE")]
    pub bbox: Option<PathBuf>,
    /// Expert (Google 2019) labels CSV [default: data/google2019_nih-chest-xray-labels.csv.gz]
    #[arg(long, value_name = "FILE")]
    pub expert: Option<PathBuf>,
    /// Official split lists [default: data/train_val_list.txt data/test_list.txt]
    #[arg(long, num_args = 2, value_names = ["TRAIN_VAL_LIST", "TEST_LIST"])]
    pub splits: Option<Vec<PathBuf>>,
    /// Image inputs for pixel_stats: .tar, .tar.gz/.tgz, .zip or folders of PNG,
    /// JPEG and DICOM files; NIH's as PATH, another dataset's as NAME=PATH, e.g.
    /// chexpert=CheXpert-v1.0-small.zip (repeatable)
    /// [default: data/sample-images-224.tar]
    #[arg(long, value_name = "[NAME=]PATH", value_parser = parse_images)]
    pub images: Vec<crate::pixels::source::ImageInput>,
    /// Skip pixel statistics (pixel_stats and pixel_errors stay empty).
    #[arg(long, conflicts_with = "images")]
    pub no_images: bool,
    /// Leave the bboxes table empty.
    #[arg(long, conflicts_with = "bbox")]
    pub no_bbox: bool,
    /// Leave the expert_labels table empty.
    #[arg(long, conflicts_with = "expert")]
    pub no_expert: bool,
    /// Leave every split NULL.
    #[arg(long, conflicts_with = "splits")]
    pub no_splits: bool,
    /// Another dataset for the cross-dataset tables: chexpert=TRAIN[,VALID],
    /// padchest=CSV, mimic=METADATA,CHEXPERT,NEGBIO,SPLIT[,PATIENTS] (any order),
    /// vindr=CSV, rsna=LABELS,HEADERS, siim=CSV, openi=DICOM_CSV,REPORTS_TGZ (repeatable).
    #[arg(long = "dataset", value_name = "NAME=PATH[,PATH...]", value_parser = parse_dataset)]
    pub datasets: Vec<crate::datasets::DatasetSpec>,
    /// A label map CSV (dataset,raw_label,finding) replacing the shipped one (it maps
    /// the labels of the --dataset releases; NIH's are its own findings).
    #[arg(long, value_name = "FILE", requires = "datasets")]
    pub label_map: Option<PathBuf>,
    /// The other NIH label release, a second label source in dataset_labels
    /// [default: that release's published file (Data_Entry_2017.csv.gz,
    /// Data_Entry_2017_v2020.csv.gz) beside --metadata].
    #[arg(long, value_name = "FILE")]
    pub other_release: Option<PathBuf>,
    /// Do not read the other NIH label release.
    #[arg(long, conflicts_with = "other_release")]
    pub no_other_release: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
}

impl IngestArgs {
    /// Resolves defaults against the shipped data directory.
    pub fn options(&self) -> IngestOptions {
        let data = crate::data_dir();
        let pick = |given: &Option<PathBuf>, skip: bool, name: &str| -> Option<PathBuf> {
            if skip {
                None
            } else {
                Some(given.clone().unwrap_or_else(|| data.join(name)))
            }
        };
        let splits = if self.no_splits {
            None
        } else {
            Some(match &self.splits {
                Some(v) => [v[0].clone(), v[1].clone()],
                None => [data.join("train_val_list.txt"), data.join("test_list.txt")],
            })
        };
        IngestOptions {
            metadata: pick(&self.metadata, false, RELEASE_2020[0]).expect("always set"),
            bbox: pick(&self.bbox, self.no_bbox, "BBox_List_2017.csv"),
            expert: pick(
                &self.expert,
                self.no_expert,
                "google2019_nih-chest-xray-labels.csv.gz",
            ),
            splits,
            images: if self.no_images {
                Vec::new()
            } else if self.images.is_empty() {
                vec![crate::pixels::source::ImageInput::nih(
                    data.join("sample-images-224.tar"),
                )]
            } else {
                self.images.clone()
            },
            other_release: self.other_release(&data),
            datasets: self.datasets.clone(),
            label_map: self.label_map.clone(),
            warehouse: self.warehouse.path(),
        }
    }

    /// The other NIH release: the file `--other-release` names, else the other
    /// release's published file beside `--metadata` (a `Data_Entry_2017.csv.gz`
    /// beside a `Data_Entry_2017_v2020.csv.gz`, and the reverse; the shipped pair
    /// is such a pair).
    fn other_release(&self, data: &std::path::Path) -> Option<PathBuf> {
        if self.no_other_release {
            return None;
        }
        if let Some(p) = &self.other_release {
            return Some(p.clone());
        }
        let given = self
            .metadata
            .clone()
            .unwrap_or_else(|| data.join(RELEASE_2020[0]));
        let name = given.file_name()?.to_string_lossy().to_string();
        let others = if RELEASE_2020.contains(&name.as_str()) {
            RELEASE_2017
        } else if RELEASE_2017.contains(&name.as_str()) {
            RELEASE_2020
        } else {
            return None;
        };
        // The shipped other release only beside the shipped file itself: a file of
        // the same name elsewhere may be a user's subset of the images.
        let dir = given.parent()?;
        others
            .map(|other| dir.join(other))
            .into_iter()
            .find(|p| p.is_file())
    }
}

/// The published file names of NIH's 2020 label revision, gzipped and not.
const RELEASE_2020: [&str; 2] = ["Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017_v2020.csv"];
/// The published file names of NIH's original 2017 release.
const RELEASE_2017: [&str; 2] = ["Data_Entry_2017.csv.gz", "Data_Entry_2017.csv"];

/// `PATH` (NIH's images) or `NAME=PATH` (a dataset's). A path that holds `=` before
/// its first `/` and names no dataset is a path.
fn parse_images(s: &str) -> std::result::Result<crate::pixels::source::ImageInput, String> {
    use crate::pixels::source::ImageInput;
    let Some((name, path)) = s.split_once('=').filter(|(n, _)| !n.contains('/')) else {
        return Ok(ImageInput::nih(PathBuf::from(s)));
    };
    match crate::datasets::dataset(name) {
        Some(d) if !path.is_empty() => Ok(ImageInput {
            dataset: d.name,
            path: PathBuf::from(path),
        }),
        Some(_) => Err(format!("`{s}`: no path after `{name}=`")),
        None if std::path::Path::new(s).exists() => Ok(ImageInput::nih(PathBuf::from(s))),
        None => Err(format!(
            "`{s}`: unknown dataset '{name}'; known datasets: {}",
            crate::datasets::ALL.join(", ")
        )),
    }
}

/// `NAME=PATH[,PATH...]`.
fn parse_dataset(s: &str) -> std::result::Result<crate::datasets::DatasetSpec, String> {
    let (name, paths) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME=PATH[,PATH...]"))?;
    // A file whose own name holds a comma is one path, not two.
    let paths: Vec<PathBuf> = if paths.contains(',') && std::path::Path::new(paths).is_file() {
        vec![PathBuf::from(paths)]
    } else {
        paths
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    };
    if paths.is_empty() {
        return Err(format!("`{s}`: no file given for {name}"));
    }
    Ok(crate::datasets::DatasetSpec {
        name: crate::datasets::dataset_name(name),
        paths,
    })
}

/// Runs `cxr ingest` and prints its summary table.
pub fn run(args: IngestArgs) -> Result<()> {
    let opts = args.options();
    if std::io::stderr().is_terminal() {
        say!("ingesting {} ...", opts.metadata.display());
    }
    let summary = if std::io::stderr().is_terminal() && !opts.images.is_empty() {
        let bar = Bar::new(crate::pixels::source::total_bytes(&opts.images));
        crate::ingest::run_with_progress(&opts, &bar)?
    } else {
        crate::ingest::run(&opts)?
    };
    // The table is the result (stdout); what happened is a diagnostic (stderr), so
    // that `cxr ingest > counts.csv` holds only the table.
    crate::output::print_text(&summary_table(&summary).render())?;
    if let Some(p) = &summary.pixels {
        // The rate of this run: images an interrupted run measured are not counted.
        let new = p.measured.saturating_sub(p.resumed_images);
        let rate = if new > 0 {
            format!(" ({:.0} images/s)", new as f64 / p.seconds.max(1e-9))
        } else {
            String::new()
        };
        say!(
            "pixels: {} measured, {} errors, {} skipped (not an image){} in {:.2} s{}",
            crate::output::thousands(p.measured),
            crate::output::thousands(p.errors),
            crate::output::thousands(p.skipped),
            if p.resumed > 0 {
                format!(
                    ", {} members resumed from an interrupted run",
                    crate::output::thousands(p.resumed)
                )
            } else {
                String::new()
            },
            p.seconds,
            rate
        );
    }
    for note in &summary.notes {
        say!("cxr ingest: note: {note}");
    }
    if opts.other_release.is_none() && !args.no_other_release {
        say!(
            "cxr ingest: note: NIH's labels of one release only ({}): the other release was not found beside {}; --other-release FILE adds it (`agree --a nih_2017 --b nih_2020` and queries/nih_label_revision.sql compare the two)",
            summary.revision,
            opts.metadata.display()
        );
    }
    if let Some(replaced) = &summary.replaced {
        note_what_was_replaced(replaced, &opts, &summary.revision);
    }
    say!(
        "{} written from the {} metadata in {:.2} s",
        opts.warehouse.join("").display(),
        summary.revision,
        summary.seconds
    );
    Ok(())
}

/// An ingest writes the whole warehouse from the inputs it is given: says which
/// datasets the version it replaced held that this one does not, and a change of
/// NIH's metadata release, so that `--dataset x=...` into a full warehouse is not
/// taken for an addition.
fn note_what_was_replaced(
    before: &crate::warehouse::Manifest,
    opts: &crate::ingest::IngestOptions,
    revision: &str,
) {
    let given: Vec<&str> = opts.datasets.iter().map(|d| d.name.as_str()).collect();
    let dropped: Vec<&str> = crate::datasets::ALL
        .iter()
        .copied()
        .filter(|name| *name != "nih" && !given.contains(name))
        .filter(|name| before.inputs.iter().any(|i| i.role == *name))
        .collect();
    if !dropped.is_empty() {
        say!(
            "cxr ingest: note: the version this replaced also held {}, which this ingest was not given: an ingest writes the whole warehouse from its inputs; give their --dataset again to keep them",
            dropped.join(", ")
        );
    }
    if !before.metadata_revision.is_empty() && before.metadata_revision != revision {
        say!(
            "cxr ingest: note: NIH's metadata is now the {revision} release (the version this replaced read the {} release)",
            before.metadata_revision
        );
    }
}

fn summary_table(s: &IngestSummary) -> crate::output::Listing {
    let mut t = crate::output::Listing::new(&["table", "rows"]);
    for (name, rows) in &s.tables {
        t.add_row(vec![name.clone(), crate::output::thousands(*rows)]);
    }
    t
}

/// An indicatif bar over the bytes of the image inputs, on stderr.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(total: u64) -> Bar {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {percent:>3}% {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Bar(bar)
    }
}

impl crate::pixels::run::Progress for Bar {
    fn update(&self, images: u64, bytes: u64) {
        let secs = self.0.elapsed().as_secs_f64().max(1e-3);
        self.0.set_position(bytes);
        self.0.set_message(format!(
            "{} images, {:.0}/s",
            crate::output::thousands(images),
            images as f64 / secs
        ));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
