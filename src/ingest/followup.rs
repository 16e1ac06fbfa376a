//! The follow-up statistics of whole datasets, `followup_summary` and
//! `followup_transitions`: what `cxr followup` (summary and `--transitions`) answers
//! for every image of a dataset with the default sources, computed once per dataset
//! from its `studies` while ingest writes them. `cxr followup` over a cohort computes
//! the same rows in SQL (`cli/followup.rs`, `summary_sql` and `transitions_sql`); a
//! test compares the two on every dataset.

use datafusion::arrow::array::RecordBatch;

use crate::datasets::XR_FINDINGS;
use crate::error::Result;
use crate::input::table::{batch, f64s, i64s, text};

/// One study as the statistics read it: its patient, its rank among the patient's
/// studies (1 for the first), its positive and known findings as bit masks (bits in
/// `XR_FINDINGS` order) and the previous study's, if any.
pub struct StudyMasks<'a> {
    pub patient: &'a str,
    pub rank: i32,
    pub positive: i32,
    pub known: i32,
    pub previous: Option<(i32, i32)>,
}

impl StudyMasks<'_> {
    /// Findings positive here and negative (known, not positive) in the previous
    /// study; from or to unknown is neither. None on a patient's first study.
    pub fn new_mask(&self) -> Option<i32> {
        self.previous
            .map(|(mask, known)| self.positive & known & !mask)
    }

    /// Findings positive in the previous study and negative (known) here. None on a
    /// patient's first study.
    pub fn resolved_mask(&self) -> Option<i32> {
        self.previous
            .map(|(mask, _)| mask & self.known & !self.positive)
    }
}

/// Per finding of one dataset, the counts both tables are made of.
#[derive(Default)]
struct Counts {
    /// Transitions between consecutive studies (`followup_transitions`).
    appeared: i64,
    resolved: i64,
    /// Over patients with two or more studies (`followup_summary`).
    ever_positive: i64,
    positive_at_first: i64,
    incident: i64,
    /// Studies before the first positive one, per incident patient.
    studies_before_first: Vec<i64>,
    /// Positive studies followed by one where the finding is known (of which
    /// `resolved` resolved: persistence).
    followed: i64,
}

/// The two tables' rows of one dataset, from its studies in order (per patient, by
/// rank). A dataset's rows cover the findings its sources label (known in one of its
/// studies); the summary has none when no patient has two studies.
pub fn batches(dataset: &str, studies: &[StudyMasks]) -> Result<(RecordBatch, RecordBatch)> {
    let mut counts: Vec<Counts> = XR_FINDINGS.iter().map(|_| Counts::default()).collect();
    let labelled = studies.iter().fold(0, |m, s| m | s.known);
    let mut patients_followed: i64 = 0;
    for timeline in studies.chunk_by(|a, b| a.patient == b.patient) {
        count_transitions(timeline, &mut counts);
        if timeline.len() >= 2 {
            patients_followed += 1;
            count_patient(timeline, &mut counts);
        }
    }
    let labels: Vec<usize> = (0..XR_FINDINGS.len())
        .filter(|&k| labelled & (1 << k) != 0)
        .collect();
    let summary_labels: &[usize] = if patients_followed > 0 { &labels } else { &[] };
    Ok((
        summary_batch(dataset, summary_labels, &counts, patients_followed)?,
        transitions_batch(dataset, &labels, &counts)?,
    ))
}

/// Appearances and resolutions between one patient's consecutive studies, and the
/// positive studies followed by a known state (persistence).
fn count_transitions(timeline: &[StudyMasks], counts: &mut [Counts]) {
    for study in timeline.iter().filter(|s| s.rank > 1) {
        let (new, resolved) = (
            study.new_mask().unwrap_or(0),
            study.resolved_mask().unwrap_or(0),
        );
        let previous_positive = study.previous.map_or(0, |(mask, _)| mask);
        for (k, c) in counts.iter_mut().enumerate() {
            let bit = 1 << k;
            c.appeared += i64::from(new & bit != 0);
            c.resolved += i64::from(resolved & bit != 0);
            c.followed += i64::from(previous_positive & study.known & bit != 0);
        }
    }
}

/// One patient with two or more studies: per finding ever positive, whether at the
/// first study, and incident (negative, known, at the first study and positive later).
fn count_patient(timeline: &[StudyMasks], counts: &mut [Counts]) {
    let first_known = timeline[0].known;
    for (k, c) in counts.iter_mut().enumerate() {
        let bit = 1 << k;
        let Some(first) = timeline.iter().find(|s| s.positive & bit != 0) else {
            continue;
        };
        c.ever_positive += 1;
        if first.rank == 1 {
            c.positive_at_first += 1;
        } else if first_known & bit != 0 {
            c.incident += 1;
            c.studies_before_first.push(i64::from(first.rank) - 1);
        }
    }
}

/// The median as SQL's `median` gives it (on integers, as Float64): the middle
/// value, or the mean of the two middle ones.
fn median(values: &mut [i64]) -> Option<f64> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2] as f64),
        _ => Some((values[n / 2 - 1] + values[n / 2]) as f64 / 2.0),
    }
}

/// Rounded to 4 decimals as SQL's `round(x, 4)`.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn summary_batch(
    dataset: &str,
    labels: &[usize],
    counts: &[Counts],
    patients: i64,
) -> Result<RecordBatch> {
    let pick = |f: fn(&Counts) -> i64| i64s(labels.iter().map(|&k| Some(f(&counts[k]))));
    let medians: Vec<Option<f64>> = labels
        .iter()
        .map(|&k| median(&mut counts[k].studies_before_first.clone()))
        .collect();
    let persistence = labels.iter().map(|&k| {
        let c = &counts[k];
        (c.followed != 0).then(|| round4((c.followed - c.resolved) as f64 / c.followed as f64))
    });
    batch(vec![
        ("dataset", text(labels.iter().map(|_| dataset))),
        ("label", text(labels.iter().map(|&k| XR_FINDINGS[k]))),
        ("patients", i64s(labels.iter().map(|_| Some(patients)))),
        ("ever_positive", pick(|c| c.ever_positive)),
        ("positive_at_first", pick(|c| c.positive_at_first)),
        ("incident", pick(|c| c.incident)),
        ("median_studies_before_first", f64s(medians)),
        ("persistence", f64s(persistence)),
    ])
}

fn transitions_batch(dataset: &str, labels: &[usize], counts: &[Counts]) -> Result<RecordBatch> {
    batch(vec![
        ("dataset", text(labels.iter().map(|_| dataset))),
        ("label", text(labels.iter().map(|&k| XR_FINDINGS[k]))),
        (
            "appeared",
            i64s(labels.iter().map(|&k| Some(counts[k].appeared))),
        ),
        (
            "resolved",
            i64s(labels.iter().map(|&k| Some(counts[k].resolved))),
        ),
    ])
}

/// The two tables with no rows: their columns.
pub fn no_rows() -> Result<(RecordBatch, RecordBatch)> {
    batches("", &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3, 1, 2]), Some(2.0));
        assert_eq!(median(&mut [1, 2]), Some(1.5));
        assert_eq!(median(&mut [4, 1, 9, 2]), Some(3.0));
    }
}
