//! The cross-dataset tables (docs/DATASETS.md) as record batches.

use datafusion::arrow::array::RecordBatch;

use polars::prelude::{InitHashMaps, PlHashMap};

use super::followup::StudyMasks;
use crate::datasets::label_map::same_label;
use crate::datasets::{BoxRow, DatasetInfo, ImageRow, LabelRow, Report, VOTE_RULES, XR_FINDINGS};
use crate::error::Result;
use crate::input::table::{batch, bools, f64s, i8s, i32s, i64s, list_utf8, text, utf8};

/// Each image's finding states over its dataset's default label sources (every
/// source of the dataset; for NIH only `nih_source`, the warehouse's own release),
/// from the part's [`SourceStates`].
pub fn default_states<'a>(
    sources: &SourceStates<'a>,
    nih_source: &str,
) -> PlHashMap<&'a str, State> {
    image_states(sources, |r| r.dataset != "nih" || r.source == nih_source)
}

/// Each image's place in its dataset's order of patients and studies, as
/// `(patient_rank, image_rank)` beside `rows`: `patient_rank` numbers the patients (an
/// image without a patient is one of its own), `image_rank` the images by patient,
/// study order (unknown last), study id (none last) and image id. Both start at the
/// dataset's base (its place in the registry times 2^40), so they are unique across
/// datasets. A cohort's first study per patient is then the smallest `image_rank` per
/// `patient_rank`: integers grouped, where a window would sort strings.
pub fn ranks(rows: &[ImageRow]) -> Vec<(i64, i64)> {
    let base = rows.first().map_or(0, |r| {
        crate::datasets::DATASETS
            .iter()
            .position(|d| d.name == r.dataset)
            .unwrap_or(crate::datasets::DATASETS.len()) as i64
            * (1 << 40)
    });
    fn patient(r: &ImageRow) -> (bool, &str) {
        match &r.patient_id {
            Some(p) => (false, p.as_str()),
            None => (true, &*r.image_id),
        }
    }
    /// Patient, then study order and study id (each unknown last), then image id.
    type Key<'r> = (
        (bool, &'r str),
        bool,
        Option<i64>,
        bool,
        Option<&'r str>,
        &'r str,
    );
    fn key(r: &ImageRow) -> Key<'_> {
        (
            patient(r),
            r.study_order.is_none(),
            r.study_order,
            r.study_id.is_none(),
            r.study_id.as_deref(),
            &*r.image_id,
        )
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // Stable sort: it merges the runs a release is already ordered in (CheXpert's rows
    // come by patient and study), where an unstable one compares them all again.
    order.sort_by(|&a, &b| key(&rows[a]).cmp(&key(&rows[b])));
    let mut ranks = vec![(0, 0); rows.len()];
    let mut patients = 0i64;
    for (place, &k) in order.iter().enumerate() {
        if place > 0 && patient(&rows[order[place - 1]]) != patient(&rows[k]) {
            patients += 1;
        }
        ranks[k] = (base + patients, base + place as i64);
    }
    ranks
}

/// `dataset_images`, with each image's states from [`default_states`] and its ranks
/// from [`ranks`].
pub fn images_batch(
    rows: &[ImageRow],
    states: &PlHashMap<&str, State>,
    ranks: &[(i64, i64)],
) -> Result<RecordBatch> {
    let state = |r: &ImageRow| states.get(&*r.image_id);
    let mask = |k: usize| {
        i32s(
            rows.iter()
                .map(|r| Some(state(r).map_or(0, |s| s.masks[k]))),
        )
    };
    let no_finding = rows.iter().map(|r| {
        let s = state(r)?;
        crate::datasets::states_normal(r.dataset)
            .then_some(s.normal && s.masks[0] == 0 && s.masks[1] == 0 && !s.other)
    });
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| &*r.image_id))),
        (
            "patient_id",
            utf8(rows.iter().map(|r| r.patient_id.as_deref())),
        ),
        ("study_id", utf8(rows.iter().map(|r| r.study_id.as_deref()))),
        ("study_order", i64s(rows.iter().map(|r| r.study_order))),
        ("view", utf8(rows.iter().map(|r| r.view))),
        ("frontal", bools(rows.iter().map(|r| r.frontal))),
        ("sex", utf8(rows.iter().map(|r| r.sex))),
        (
            "age",
            std::sync::Arc::new(
                rows.iter()
                    .map(|r| r.age)
                    .collect::<datafusion::arrow::array::Float32Array>(),
            ),
        ),
        ("split", utf8(rows.iter().map(|r| r.split.as_deref()))),
        ("path", utf8(rows.iter().map(|r| r.path.as_deref()))),
        ("positive_findings", mask(0)),
        ("uncertain_findings", mask(1)),
        ("known_findings", mask(2)),
        ("no_finding", bools(no_finding)),
        ("patient_rank", i64s(ranks.iter().map(|r| Some(r.0)))),
        ("image_rank", i64s(ranks.iter().map(|r| Some(r.1)))),
    ])
}

/// `dataset_labels`.
pub fn labels_batch(rows: &[LabelRow]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| &*r.image_id))),
        ("source", text(rows.iter().map(|r| &*r.source))),
        ("raw_label", text(rows.iter().map(|r| &*r.raw_label))),
        ("finding", utf8(rows.iter().map(|r| r.finding))),
        ("value", i8s(rows.iter().map(|r| Some(r.value)))),
    ])
}

/// `finding_states`: per image and label source, the findings the source states
/// positive, uncertain and negative, as bit masks over the 18 findings (bit k is
/// `XR_FINDINGS[k]`); whether it states the image normal; whether it states a label
/// outside the 18 positive or uncertain. A cohort over any sources then reads one
/// narrow row per image and source instead of resolving `dataset_labels` every time. One
/// row per (image, source) with any label, in the order the labels come (a reader's
/// labels come image by image).
pub fn states_batch(rows: &[StateRow]) -> Result<RecordBatch> {
    let mask = |k: usize| i32s(rows.iter().map(|r| Some(r.state.masks[k])));
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| r.image_id))),
        ("source", text(rows.iter().map(|r| r.source))),
        ("positive", mask(0)),
        ("uncertain", mask(1)),
        ("negative", mask(2)),
        (
            "states_normal",
            bools(rows.iter().map(|r| Some(r.state.normal))),
        ),
        (
            "other_positive",
            bools(rows.iter().map(|r| Some(r.state.other))),
        ),
    ])
}

/// One study of a patient, in `studies`.
struct Study<'r> {
    patient: &'r str,
    study: &'r str,
    order: i64,
    age: Option<f32>,
    images: i64,
    first_image: &'r str,
    first_view: Option<&'static str>,
    positive: i32,
    known: i32,
}

/// `studies`: every study of a part's patients whose release orders them (a study
/// is a study id; an image without one is its own), in order per patient, with its
/// positive and known findings over the default sources (U-Ignore: an uncertain
/// finding is neither) as bit masks, and those compared with the previous study's.
/// The follow-up of a whole dataset reads it; `cxr followup` computes the same rows
/// for a cohort (`with_followups`). `write` takes the rows in batches of at most
/// `slice` studies (one batch, with no rows, when there are none). Returns the
/// dataset's rows of `followup_summary` and `followup_transitions`, computed from
/// these studies.
pub fn write_studies(
    rows: &[ImageRow],
    states: &PlHashMap<&str, State>,
    slice: usize,
    mut write: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<(RecordBatch, RecordBatch)> {
    let mut index: PlHashMap<(&str, &str), usize> = PlHashMap::new();
    let mut studies: Vec<Study> = Vec::new();
    for r in rows {
        let (Some(patient), Some(order)) = (r.patient_id.as_deref(), r.study_order) else {
            continue;
        };
        let study = r.study_id.as_deref().unwrap_or(&r.image_id);
        let (positive, known) = states
            .get(&*r.image_id)
            .map_or((0, 0), |s| s.default_masks());
        let k = *index.entry((patient, study)).or_insert_with(|| {
            studies.push(Study {
                patient,
                study,
                order,
                age: None,
                images: 0,
                first_image: &r.image_id,
                first_view: None,
                positive: 0,
                known: 0,
            });
            studies.len() - 1
        });
        let s = &mut studies[k];
        s.order = s.order.min(order);
        s.age = smallest(s.age, r.age);
        s.images += 1;
        s.first_image = s.first_image.min(&r.image_id);
        s.first_view = smallest(s.first_view, r.view);
        s.positive |= positive;
        s.known |= known;
    }
    studies.sort_by(|a, b| (a.patient, a.order, a.study).cmp(&(b.patient, b.order, b.study)));
    // Each study's rank and the previous study's masks, which `studies` and the
    // follow-up statistics both read.
    let mut masks: Vec<StudyMasks> = Vec::with_capacity(studies.len());
    for (k, s) in studies.iter().enumerate() {
        let first = k == 0 || studies[k - 1].patient != s.patient;
        masks.push(StudyMasks {
            patient: s.patient,
            rank: if first { 1 } else { masks[k - 1].rank + 1 },
            positive: s.positive,
            known: s.known,
            previous: (!first).then(|| (studies[k - 1].positive, studies[k - 1].known)),
        });
    }
    let dataset = rows.first().map_or("", |r| r.dataset);
    let statistics = super::followup::batches(dataset, &masks)?;
    let mut start: usize = 0;
    loop {
        let end = start.saturating_add(slice).min(studies.len());
        write(&study_columns(
            dataset,
            &studies[start..end],
            &masks[start..end],
        )?)?;
        if end == studies.len() {
            return Ok(statistics);
        }
        start = end;
    }
}

/// `studies` with no rows: its columns.
pub fn no_studies() -> Result<RecordBatch> {
    study_columns("", &[], &[])
}

/// The columns of `studies` for these studies, each with its rank and the previous
/// study's positive and known findings (`masks`, one per study), and the findings new
/// and resolved since (see [`StudyMasks`]).
fn study_columns(dataset: &str, studies: &[Study], masks: &[StudyMasks]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(studies.iter().map(|_| dataset))),
        ("patient_id", text(studies.iter().map(|s| s.patient))),
        ("study_id", text(studies.iter().map(|s| s.study))),
        ("study_order", i64s(studies.iter().map(|s| Some(s.order)))),
        (
            "age",
            std::sync::Arc::new(
                studies
                    .iter()
                    .map(|s| s.age)
                    .collect::<datafusion::arrow::array::Float32Array>(),
            ),
        ),
        ("images", i64s(studies.iter().map(|s| Some(s.images)))),
        ("first_image", text(studies.iter().map(|s| s.first_image))),
        ("first_view", utf8(studies.iter().map(|s| s.first_view))),
        ("mask", i32s(studies.iter().map(|s| Some(s.positive)))),
        ("known", i32s(studies.iter().map(|s| Some(s.known)))),
        ("study_rank", i32s(masks.iter().map(|m| Some(m.rank)))),
        (
            "prev_mask",
            i32s(masks.iter().map(|m| m.previous.map(|(mask, _)| mask))),
        ),
        ("new_mask", i32s(masks.iter().map(StudyMasks::new_mask))),
        (
            "resolved_mask",
            i32s(masks.iter().map(StudyMasks::resolved_mask)),
        ),
    ])
}

/// The smaller of two optional values, a missing one ignored (SQL's MIN).
fn smallest<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// One row of `finding_states`.
pub struct StateRow<'a> {
    pub dataset: &'static str,
    pub image_id: &'a str,
    pub source: &'a str,
    pub state: State,
}

/// What one source states of one image (or, from [`image_states`], all the default
/// sources of an image together).
#[derive(Default, Clone, Copy)]
pub struct State {
    /// Positive, uncertain and negative findings; in [`image_states`], the third is
    /// the findings known: labelled by a source that labelled the image.
    masks: [i32; 3],
    /// It states the image normal.
    normal: bool,
    /// It states a label outside the 18 (and not beside a normal statement) positive
    /// or uncertain.
    other: bool,
}

/// One [`State`] per (image, source) of a part's labels, in first-seen order:
/// resolved once, read by both `finding_states` and `dataset_images`.
pub struct SourceStates<'a>(pub Vec<StateRow<'a>>);

/// The [`SourceStates`] of a part's labels.
pub fn source_states(labels: &[LabelRow]) -> SourceStates<'_> {
    let bits: PlHashMap<&str, i32> = XR_FINDINGS
        .iter()
        .enumerate()
        .map(|(k, f)| (*f, 1 << k))
        .collect();
    let mut index: PlHashMap<(&str, &str), usize> = PlHashMap::new();
    let mut rows: Vec<StateRow> = Vec::new();
    for label in labels {
        let key = (&*label.image_id, &*label.source);
        let row = *index.entry(key).or_insert_with(|| {
            rows.push(StateRow {
                dataset: label.dataset,
                image_id: &label.image_id,
                source: &label.source,
                state: State::default(),
            });
            rows.len() - 1
        });
        let state = &mut rows[row].state;
        let stated = label.value != 0;
        match label.finding.and_then(|f| bits.get(f)) {
            Some(bit) => match label.value {
                1 => state.masks[0] |= bit,
                -1 => state.masks[1] |= bit,
                _ => state.masks[2] |= bit,
            },
            None if stated => {
                let is = |name: Option<&str>| {
                    name.is_some_and(|name| same_label(&label.raw_label, name))
                };
                let entry = crate::datasets::dataset(label.dataset);
                if entry.is_some_and(|d| is(d.normal_label)) {
                    state.normal |= label.value == 1;
                } else if entry.is_none_or(|d| !is(d.beside_normal)) {
                    state.other = true;
                }
            }
            None => {}
        }
    }
    SourceStates(rows)
}

impl State {
    /// The positive and known findings under U-Ignore, as a cohort's
    /// `positive_mask` and `known_mask` (`cohort::across`): an uncertain finding not
    /// also stated positive is unknown.
    fn default_masks(&self) -> (i32, i32) {
        let [positive, uncertain, known] = self.masks;
        (known & positive, known & !(uncertain & !positive))
    }
}

/// Per image, the states of all its sources together: positive if any says so,
/// uncertain if any says that, known what any source that labelled the image labels
/// in any image (the `known_findings` of dataset_images).
fn image_states<'a>(
    sources: &SourceStates<'a>,
    chosen: impl Fn(&StateRow) -> bool,
) -> PlHashMap<&'a str, State> {
    let rows: Vec<&StateRow<'a>> = sources.0.iter().filter(|r| chosen(r)).collect();
    // What each vocabulary labels (a source's, or a dataset's readers' and votes'
    // together), from all its sources, chosen or not.
    let vocabulary = |r: &StateRow<'a>| crate::datasets::vocabulary(r.dataset, r.source);
    let mut labelled: PlHashMap<&str, i32> = PlHashMap::new();
    for r in &sources.0 {
        *labelled.entry(vocabulary(r)).or_default() |= r.state.masks[0]
            | r.state.masks[1]
            | r.state.masks[2]
            | crate::datasets::labels_every_image(r.dataset, r.source);
    }
    let mut images: PlHashMap<&str, State> = PlHashMap::new();
    for r in &rows {
        let image = images.entry(r.image_id).or_default();
        image.masks[0] |= r.state.masks[0];
        image.masks[1] |= r.state.masks[1];
        image.masks[2] |= labelled[vocabulary(r)];
        image.normal |= r.state.normal;
        image.other |= r.state.other;
    }
    images
}

/// The reader votes of a part whose dataset has readers (VinDr): per image, one row
/// per rule of [`VOTE_RULES`] (source `vindr_any`, `vindr_majority`, `vindr_all`),
/// from the states of the image's readers (the reader sources with a label for it).
pub fn reader_votes<'a>(sources: &SourceStates<'a>) -> Vec<StateRow<'a>> {
    // Images in first-seen order, each with its dataset's readers.
    let mut order: Vec<(&'static str, &'a str, crate::datasets::Readers)> = Vec::new();
    let mut by_image: PlHashMap<&'a str, Vec<State>> = PlHashMap::new();
    for r in &sources.0 {
        let readers = crate::datasets::dataset(r.dataset).and_then(|d| d.readers);
        let Some(readers) = readers.filter(|rd| r.source.starts_with(rd.source_prefix)) else {
            continue;
        };
        by_image
            .entry(r.image_id)
            .or_insert_with(|| {
                order.push((r.dataset, r.image_id, readers));
                Vec::new()
            })
            .push(r.state);
    }
    let mut out = Vec::with_capacity(order.len() * VOTE_RULES.len());
    for (dataset, image_id, readers) in order {
        let states = &by_image[image_id];
        for (rule, source) in VOTE_RULES.iter().zip(readers.votes) {
            out.push(StateRow {
                dataset,
                image_id,
                source,
                state: vote(states, rule),
            });
        }
    }
    out
}

/// The state the readers' `states` give under `rule` (see [`VOTE_RULES`]).
fn vote(states: &[State], rule: &str) -> State {
    let n = states.len();
    let counts = |stated: &dyn Fn(&State) -> bool| {
        let c = states.iter().filter(|s| stated(s)).count();
        match rule {
            "any" => c >= 1,
            "majority" => 2 * c > n,
            _ => c == n && n > 0,
        }
    };
    let mut out = State::default();
    for m in 0..3 {
        for k in 0..XR_FINDINGS.len() {
            let bit = 1 << k;
            if counts(&|s| s.masks[m] & bit != 0) {
                out.masks[m] |= bit;
            }
        }
    }
    out.normal = counts(&|s| s.normal);
    out.other = counts(&|s| s.other);
    out
}

/// `dataset_boxes`.
pub fn boxes_batch(rows: &[BoxRow]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("image_id", text(rows.iter().map(|r| &*r.image_id))),
        ("source", text(rows.iter().map(|r| r.source.as_str()))),
        ("raw_label", text(rows.iter().map(|r| r.raw_label.as_str()))),
        ("finding", utf8(rows.iter().map(|r| r.finding))),
        ("reader", utf8(rows.iter().map(|r| r.reader.as_deref()))),
        ("x", f64s(rows.iter().map(|r| Some(r.x)))),
        ("y", f64s(rows.iter().map(|r| Some(r.y)))),
        ("w", f64s(rows.iter().map(|r| Some(r.w)))),
        ("h", f64s(rows.iter().map(|r| Some(r.h)))),
        ("area", f64s(rows.iter().map(|r| r.area))),
        ("mask_rle", utf8(rows.iter().map(|r| r.mask_rle.as_deref()))),
    ])
}

/// `reports`.
pub fn reports_batch(rows: &[Report]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|r| r.dataset))),
        ("report_id", text(rows.iter().map(|r| r.report_id.as_str()))),
        ("findings", utf8(rows.iter().map(|r| r.findings.as_deref()))),
        (
            "impression",
            utf8(rows.iter().map(|r| r.impression.as_deref())),
        ),
        (
            "mesh_major",
            list_utf8(rows.iter().map(|r| r.mesh_major.as_slice())),
        ),
        (
            "mesh_minor",
            list_utf8(rows.iter().map(|r| r.mesh_minor.as_slice())),
        ),
        (
            "image_ids",
            list_utf8(rows.iter().map(|r| r.image_ids.as_slice())),
        ),
    ])
}

/// `datasets`: one row per dataset with its counts.
pub fn datasets_batch(rows: &[(DatasetInfo, [Option<i64>; 3])]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(rows.iter().map(|(d, _)| d.dataset))),
        ("title", text(rows.iter().map(|(d, _)| d.title.as_str()))),
        (
            "source_files",
            list_utf8(rows.iter().map(|(d, _)| d.source_files.as_slice())),
        ),
        ("n_images", i64s(rows.iter().map(|(_, n)| n[0]))),
        ("n_patients", i64s(rows.iter().map(|(_, n)| n[1]))),
        ("n_studies", i64s(rows.iter().map(|(_, n)| n[2]))),
        (
            "label_sources",
            list_utf8(rows.iter().map(|(d, _)| d.label_sources.as_slice())),
        ),
    ])
}
