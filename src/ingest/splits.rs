//! The official split lists (`train_val_list.txt`, `test_list.txt`) → `images.split`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::Result;
use crate::ingest::csv::{read_list, source_name};
use crate::ingest::issues::Issues;
use crate::ingest::metadata::Image;

/// Split names, in the order of the `--splits` arguments.
pub const SPLIT_NAMES: [&str; 2] = ["train_val", "test"];

/// Sets `split` on every image from the two lists. Names missing from the metadata,
/// names in both lists and images in neither list are recorded in `data_issues`.
pub fn assign(lists: [&Path; 2], images: &mut [Image], issues: &mut Issues) -> Result<()> {
    let known: HashSet<String> = images.iter().map(|i| i.image_index.clone()).collect();
    let mut split_of: HashMap<String, Option<&'static str>> = HashMap::new();
    let mut first_source = String::new();
    for (path, name) in lists.iter().zip(SPLIT_NAMES) {
        let source = source_name(path);
        if first_source.is_empty() {
            first_source = source.clone();
        }
        for (line, entry) in read_list(path)? {
            let file = entry.rsplit('/').next().unwrap_or(&entry).to_string();
            if !known.contains(&file) {
                issues.push(
                    &source,
                    Some(line),
                    None,
                    Some(&entry),
                    "image not in the metadata; ignored",
                );
                continue;
            }
            match split_of.get(&file) {
                Some(Some(prev)) if *prev == name => issues.push(
                    &source,
                    Some(line),
                    None,
                    Some(&entry),
                    "listed twice; kept once",
                ),
                Some(_) => {
                    issues.push(
                        &source,
                        Some(line),
                        None,
                        Some(&entry),
                        "image is in more than one split list; split set to NULL",
                    );
                    split_of.insert(file, None);
                }
                None => {
                    split_of.insert(file, Some(name));
                }
            }
        }
    }
    let sources = lists.map(source_name).join(" + ");
    for img in images.iter_mut() {
        img.split = split_of.get(&img.image_index).copied().flatten();
        if !split_of.contains_key(&img.image_index) {
            issues.push(
                &sources,
                None,
                None,
                Some(&img.image_index),
                "image in neither split list; split is NULL",
            );
        }
    }
    leak_check(images, &sources, issues);
    Ok(())
}

/// Records every patient whose images fall in more than one split.
fn leak_check(images: &[Image], source: &str, issues: &mut Issues) {
    let mut seen: HashMap<i32, HashSet<&str>> = HashMap::new();
    for i in images {
        if let Some(s) = i.split {
            seen.entry(i.patient_id).or_default().insert(s);
        }
    }
    let mut leaky: Vec<_> = seen.into_iter().filter(|(_, s)| s.len() > 1).collect();
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
