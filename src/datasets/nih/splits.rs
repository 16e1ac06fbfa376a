//! The official split lists (`train_val_list.txt`, `test_list.txt`) → `images.split`.

use polars::prelude::PlHashMap;

use super::metadata::Image;
use crate::input::issues::Issues;

/// Split names, in the order of the `--splits` arguments.
pub const SPLIT_NAMES: [&str; 2] = ["train_val", "test"];

/// Sets `split` on every image from the two lists of (line, name), read from the
/// files named in `sources`. Names missing from the metadata, names in both lists
/// and images in neither list are recorded in `data_issues`.
pub fn assign(
    lists: &[Vec<(u64, String)>; 2],
    sources: &[String; 2],
    images: &mut [Image],
    issues: &mut Issues,
) {
    // What each image gets: None until listed, Some(None) when listed in both.
    let mut split_of: Vec<Option<Option<&'static str>>> = vec![None; images.len()];
    {
        let index: PlHashMap<&str, usize> = images
            .iter()
            .enumerate()
            .map(|(i, img)| (img.image_index.as_str(), i))
            .collect();
        for ((list, name), source) in lists.iter().zip(SPLIT_NAMES).zip(sources) {
            for (line, entry) in list {
                let file = entry.rsplit('/').next().unwrap_or(entry);
                let Some(&i) = index.get(file) else {
                    issues.push(
                        source,
                        Some(*line),
                        None,
                        Some(entry),
                        "image not in the metadata; ignored",
                    );
                    continue;
                };
                match split_of[i] {
                    Some(Some(prev)) if prev == name => issues.push(
                        source,
                        Some(*line),
                        None,
                        Some(entry),
                        "listed twice; kept once",
                    ),
                    Some(_) => {
                        issues.push(
                            source,
                            Some(*line),
                            None,
                            Some(entry),
                            "image is in more than one split list; split set to NULL",
                        );
                        split_of[i] = Some(None);
                    }
                    None => split_of[i] = Some(Some(name)),
                }
            }
        }
    }
    let both = sources.join(" + ");
    for (img, s) in images.iter_mut().zip(split_of) {
        img.split = s.flatten();
        if s.is_none() {
            issues.push(
                &both,
                None,
                None,
                Some(&img.image_index),
                "image in neither split list; split is NULL",
            );
        }
    }
    leak_check(images, &both, issues);
}

/// Records every patient whose images fall in more than one split.
fn leak_check(images: &[Image], source: &str, issues: &mut Issues) {
    // A bit per split name for each patient.
    let mut seen: PlHashMap<i32, u8> = PlHashMap::default();
    for i in images {
        if let Some(s) = i.split {
            let bit = if s == SPLIT_NAMES[0] { 1 } else { 2 };
            *seen.entry(i.patient_id).or_default() |= bit;
        }
    }
    let mut leaky: Vec<_> = seen.into_iter().filter(|(_, bits)| *bits == 3).collect();
    leaky.sort_by_key(|(p, _)| *p);
    for (p, _) in leaky {
        issues.push(
            source,
            None,
            None,
            Some(&p.to_string()),
            "patient has images in more than one split; patients.split is NULL",
        );
    }
}
