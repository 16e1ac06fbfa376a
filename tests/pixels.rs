//! Pixel statistics: definitions checked against independent computations, every
//! colour type, every edge case, truncated archives, resume after interruption.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use cxr::pixels::synth::{chest_image, encode_png, grey_png};
use png::{BitDepth, ColorType};

fn tar_of(path: &Path, members: &[(&str, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap();
}

fn ingest_images(
    dir: &Path,
    images: &[&Path],
    extra: &[(&str, &str)],
) -> (PathBuf, std::process::Output) {
    // cxr makes the warehouse's folder, not the folders on the way to it.
    std::fs::create_dir_all(dir).unwrap();
    let wh = dir.join("wh");
    let mut args = vec![
        "ingest".to_string(),
        "--no-bbox".into(),
        "--no-expert".into(),
        "--no-splits".into(),
    ];
    for i in images {
        args.push("--images".into());
        args.push(i.to_str().unwrap().into());
    }
    args.push("--warehouse".into());
    args.push(wh.to_str().unwrap().into());
    let mut c = cxr();
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.args(&args).output().unwrap();
    (wh, out)
}

/// Independent statistics: straight from the pixel list, no histogram.
fn independent(px: &[u8]) -> (f64, f64, [i64; 5], f64) {
    let n = px.len() as f64;
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let mut sorted = px.to_vec();
    sorted.sort();
    let pct = [1.0, 5.0, 50.0, 95.0, 99.0].map(|q: f64| {
        // inverted_cdf: the value at rank ceil(q/100 * n) (1-based).
        let rank = ((q / 100.0 * n).ceil() as usize).max(1);
        sorted[rank - 1] as i64
    });
    let mut counts = std::collections::HashMap::new();
    px.iter()
        .for_each(|v| *counts.entry(v).or_insert(0usize) += 1);
    let entropy = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum::<f64>();
    (mean, std, pct, entropy)
}

#[test]
fn statistics_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (224usize, 224usize);
    let constant = vec![77u8; w * h];
    let two_level: Vec<u8> = (0..w * h)
        .map(|i| if (i / w) < 56 { 10 } else { 200 })
        .collect();
    let gradient: Vec<u8> = (0..w * h)
        .map(|i| ((i % w) * 255 / (w - 1)) as u8)
        .collect();
    let chest = chest_image(224, 3);
    let images = [
        ("00000001_000.png", &constant),
        ("00000001_001.png", &two_level),
        ("00000001_002.png", &gradient),
        ("00000002_000.png", &chest),
    ];
    let members: Vec<(String, Vec<u8>)> = images
        .iter()
        .map(|(n, px)| (format!("images-224/{n}"), grey_png(px, w as u32, h as u32)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    let tar = dir.path().join("known.tar");
    tar_of(&tar, &refs);
    let (wh, out) = ingest_images(dir.path(), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, px) in images {
        let r = rows(
            &wh,
            &format!(
                "SELECT mean, std, p01, p05, p50, p95, p99, entropy, min, max, width, height, bit_depth, color_type, histogram FROM pixel_stats WHERE image_index = '{name}'"
            ),
        );
        let r = &r[0];
        let (mean, std, pct, entropy) = independent(px);
        assert!(
            (r[0].parse::<f64>().unwrap() - mean).abs() < 1e-9,
            "{name} mean"
        );
        assert!(
            (r[1].parse::<f64>().unwrap() - std).abs() < 1e-9,
            "{name} std"
        );
        for k in 0..5 {
            assert_eq!(
                r[2 + k].parse::<i64>().unwrap(),
                pct[k],
                "{name} percentile {k}"
            );
        }
        assert!(
            (r[7].parse::<f64>().unwrap() - entropy).abs() < 1e-9,
            "{name} entropy"
        );
        assert_eq!(
            r[8].parse::<i64>().unwrap(),
            *px.iter().min().unwrap() as i64
        );
        assert_eq!(
            r[9].parse::<i64>().unwrap(),
            *px.iter().max().unwrap() as i64
        );
        assert_eq!(&r[10..14], &["224", "224", "8", "grey"]);
        let mut hist = [0usize; 16];
        px.iter().for_each(|&v| hist[v as usize * 16 / 256] += 1);
        let expect = format!(
            "[{}]",
            hist.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert_eq!(r[14], expect, "{name} histogram");
    }
    // dhash compares horizontally adjacent cells: flat rows give 0 bits, a
    // left-to-right gradient all 1 bits.
    let hash = |n: &str| {
        rows(
            &wh,
            &format!("SELECT dhash FROM pixel_stats WHERE image_index = '{n}'"),
        )[0][0]
            .clone()
    };
    assert_eq!(hash("00000001_000.png"), "0000000000000000");
    assert_eq!(hash("00000001_001.png"), "0000000000000000");
    assert_eq!(hash("00000001_002.png"), "ffffffffffffffff");
    assert_ne!(hash("00000002_000.png"), "0000000000000000");
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM pixel_stats WHERE length(dhash) = 16"
        ),
        4
    );
}

#[test]
fn every_colour_type_reduces_to_the_same_grey() {
    let dir = tempfile::tempdir().unwrap();
    let px = chest_image(64, 11);
    let rgb: Vec<u8> = px.iter().flat_map(|&v| [v, v, v]).collect();
    let rgba: Vec<u8> = px.iter().flat_map(|&v| [v, v, v, 255]).collect();
    let ga: Vec<u8> = px.iter().flat_map(|&v| [v, 128]).collect();
    let wide: Vec<u8> = px
        .iter()
        .flat_map(|&v| (v as u16 * 256 + 77).to_be_bytes())
        .collect();
    let palette: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    let members = vec![
        ("a/00000001_000.png", grey_png(&px, 64, 64)),
        (
            "a/00000001_001.png",
            encode_png(&rgb, 64, 64, ColorType::Rgb, BitDepth::Eight, None),
        ),
        (
            "a/00000001_002.png",
            encode_png(&rgba, 64, 64, ColorType::Rgba, BitDepth::Eight, None),
        ),
        (
            "a/00000002_000.png",
            encode_png(
                &ga,
                64,
                64,
                ColorType::GrayscaleAlpha,
                BitDepth::Eight,
                None,
            ),
        ),
        (
            "a/00000003_000.png",
            encode_png(&wide, 64, 64, ColorType::Grayscale, BitDepth::Sixteen, None),
        ),
        (
            "a/00000003_001.png",
            encode_png(
                &px,
                64,
                64,
                ColorType::Indexed,
                BitDepth::Eight,
                Some(palette),
            ),
        ),
    ];
    let tar = dir.path().join("colours.tar");
    tar_of(&tar, &members);
    let (wh, out) = ingest_images(dir.path(), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = rows(
        &wh,
        "SELECT color_type, bit_depth, mean, std, p50, dhash FROM pixel_stats ORDER BY image_index",
    );
    let types: Vec<(&str, &str)> = r.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    assert_eq!(
        types,
        vec![
            ("grey", "8"),
            ("rgb", "8"),
            ("rgba", "8"),
            ("grey_alpha", "8"),
            ("grey", "16"),
            ("palette", "8")
        ]
    );
    for row in r[1..].iter().filter(|row| row[1] == "8") {
        assert_eq!(row[2..], r[0][2..], "{row:?}");
    }
    // 16 bits keep their values: v · 256 + 77 for every 8-bit v, so the mean and the
    // median move by that map, the std by 256, and the hash stays.
    let (eight, wide) = (&r[0], &r[4]);
    let f = |s: &str| s.parse::<f64>().unwrap();
    assert!(
        (f(&wide[2]) - (f(&eight[2]) * 256.0 + 77.0)).abs() < 1e-6,
        "{wide:?}"
    );
    assert!(
        (f(&wide[3]) - f(&eight[3]) * 256.0).abs() < 1e-6,
        "{wide:?}"
    );
    assert_eq!(f(&wide[4]), f(&eight[4]) * 256.0 + 77.0);
    assert_eq!(wide[5], eight[5]);
    // On the 0–1 scale and over the top 8 bits they agree with the 8-bit image.
    let shared = rows(
        &wh,
        "SELECT image_index, round(p50_norm, 2), entropy, histogram FROM pixel_stats \
         WHERE image_index IN ('00000001_000.png', '00000003_000.png') ORDER BY image_index",
    );
    assert_eq!(shared[0][1..], shared[1][1..], "{shared:?}");
    // Luminance of a coloured pixel follows the integer formula.
    let red = encode_png(
        &[255, 0, 0].repeat(16),
        4,
        4,
        ColorType::Rgb,
        BitDepth::Eight,
        None,
    );
    let tar2 = dir.path().join("red.tar");
    tar_of(&tar2, &[("00000004_000.png", red)]);
    let (wh2, out) = ingest_images(&dir.path().join("second"), &[&tar2], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(int(&wh2, "SELECT max FROM pixel_stats"), 76);
}

#[test]
fn edge_cases_land_where_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("edge.tar");
    let out = run(&[
        "synth",
        "images",
        "--count",
        "20",
        "--edge-cases",
        "--out",
        tar.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (wh, out) = ingest_images(dir.path(), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 20 regular + RGBA + 16-bit + palette + 1024-pixel are measured.
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 24);
    assert_eq!(
        int(&wh, "SELECT COUNT(*) FROM pixel_stats WHERE width = 1024"),
        1
    );
    let errors = rows(
        &wh,
        "SELECT member, error FROM pixel_errors ORDER BY member",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e[0].contains("/dup/") && e[1].contains("duplicate")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e[1].contains("truncated") || e[1].contains("corrupt")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e[1].contains("too large")),
        "{errors:?}"
    );
    assert!(stderr(&out).contains("2 skipped"), "{}", stderr(&out));
    // Every image is in the metadata (names are real image indices): no issues for them.
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE issue LIKE '%measured anyway%'"
        ),
        0
    );
}

#[test]
fn unknown_names_truncated_archives_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let px = chest_image(32, 5);
    let good = grey_png(&px, 32, 32);
    let tar = dir.path().join("full.tar");
    let members: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("x/{:08}_000.png", if i == 5 { 99_999_999 } else { i + 1 }),
                good.clone(),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    tar_of(&tar, &refs);
    let (wh, out) = ingest_images(dir.path(), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 6);
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE value = '99999999_000.png' AND field = 'x/99999999_000.png'"
        ),
        1
    );
    // Cut the archive inside the fourth member: the first three are kept.
    let bytes = std::fs::read(&tar).unwrap();
    let cut = dir.path().join("cut.tar");
    let member_len = 512 + good.len().div_ceil(512) * 512;
    std::fs::write(&cut, &bytes[..3 * member_len + 700]).unwrap();
    let (wh, out) = ingest_images(&dir.path().join("c"), &[&cut], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 3);
    assert!(
        int(
            &wh,
            "SELECT COUNT(*) FROM pixel_errors WHERE error LIKE '%truncated%'"
        ) >= 1
    );
    // The same archive gzipped, its gzip checksum (or its end) damaged, or a byte
    // after its stream: the members read are measured, and a row says that the stream
    // is damaged (gzip -t's "crc error", "trailing garbage"; the tar crate stops at
    // the tar's end, before the checksum).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    let gz = gz.finish().unwrap();
    let mut bad_crc = gz.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xFF;
    let garbage = [gz.as_slice(), b"x"].concat();
    for (name, damaged) in [
        ("crc.tar.gz", bad_crc),
        ("end.tar.gz", gz[..gz.len() - 6].to_vec()),
        ("garbage.tar.gz", garbage),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, damaged).unwrap();
        let (wh, out) = ingest_images(&dir.path().join(name).with_extension("wh"), &[&path], &[]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 6, "{name}");
        assert_eq!(
            int(
                &wh,
                "SELECT COUNT(*) FROM pixel_errors WHERE error LIKE 'the gzip stream is damaged or truncated%'"
            ),
            1,
            "{name}"
        );
    }
    // A folder, walked recursively, with a text file skipped.
    let folder = dir.path().join("folder/sub");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("00000001_000.png"), &good).unwrap();
    std::fs::write(dir.path().join("folder/00000002_000.png"), &good).unwrap();
    std::fs::write(dir.path().join("folder/notes.txt"), "x").unwrap();
    let (wh, out) = ingest_images(&dir.path().join("f"), &[&dir.path().join("folder")], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 2);
    assert!(stderr(&out).contains("1 skipped"), "{}", stderr(&out));
}

fn pixel_rows(wh: &Path) -> Vec<Vec<String>> {
    rows(wh, "SELECT * FROM pixel_stats ORDER BY image_index")
}

/// A synthetic tar of images (`synth_args` after `synth images`), the warehouse of
/// an uninterrupted ingest of it, and the warehouse folder of a run that died after
/// committing one chunk: no warehouse there (no manifest: nothing a reader would
/// open), but the chunk, in the warehouse's resume cache.
fn stopped_after_one_chunk(dir: &Path, synth_args: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let tar = dir.join("many.tar");
    let mut args = vec!["synth", "images"];
    args.extend_from_slice(synth_args);
    args.extend(["--out", tar.to_str().unwrap()]);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let (reference, out) = ingest_images(&dir.join("ref"), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (wh, out) = ingest_images(
        &dir.join("run"),
        &[&tar],
        &[("CXR_TEST_FAIL_AFTER_CHUNKS", "1")],
    );
    assert!(!out.status.success());
    assert!(!wh.join("manifest.json").exists());
    (tar, reference, wh)
}

#[test]
fn interrupted_run_resumes_to_identical_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, reference, _) = stopped_after_one_chunk(
        dir.path(),
        &["--count", "9000", "--size", "32", "--edge-cases"],
    );
    let (wh, out) = ingest_images(&dir.path().join("run"), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resumed"), "{}", stderr(&out));
    assert_eq!(pixel_rows(&wh).len(), 9004);
    let same = |sql: &str| assert_eq!(rows(&wh, sql), rows(&reference, sql), "{sql}");
    same(
        "SELECT image_index, file_bytes, width, height, bit_depth, color_type, mean, std, min, max, p01, p05, p50, p95, p99, entropy, histogram, dhash FROM pixel_stats ORDER BY image_index",
    );
    same("SELECT member, error FROM pixel_errors ORDER BY member");
    // The cache of committed chunks is gone after success.
    let leftovers = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("pixels-"))
        .count();
    assert_eq!(leftovers, 0);
}

/// An archive edited in place with its size and modification time restored must not
/// resume with the old bytes' statistics: the resume cache checks content.
#[test]
fn resume_after_an_edit_in_place_measures_the_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("edited.tar");
    // 5,000 constant 8×8 images (more than one 4,096-member chunk); member 10 is
    // grey 10 first and grey 250 after the edit (same PNG size: constant images).
    let members = |tenth: u8| -> Vec<(String, Vec<u8>)> {
        (0..5000u32)
            .map(|i| {
                let value = if i == 10 { tenth } else { (i % 200) as u8 };
                (format!("img_{i:05}.png"), grey_png(&[value; 64], 8, 8))
            })
            .collect()
    };
    let write = |tenth: u8| {
        let m = members(tenth);
        let refs: Vec<(&str, Vec<u8>)> = m.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        tar_of(&tar, &refs);
    };
    write(10);
    let (wh, out) = ingest_images(
        &dir.path().join("run"),
        &[&tar],
        &[("CXR_TEST_FAIL_AFTER_CHUNKS", "1")],
    );
    assert!(!out.status.success());
    assert!(!wh.join("manifest.json").exists());

    let before = std::fs::metadata(&tar).unwrap();
    write(250);
    let file = std::fs::File::options().write(true).open(&tar).unwrap();
    file.set_modified(before.modified().unwrap()).unwrap();
    drop(file);
    let after = std::fs::metadata(&tar).unwrap();
    assert_eq!(after.len(), before.len(), "the edit keeps the size");
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());

    let (wh, out) = ingest_images(&dir.path().join("run"), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("changed"), "{}", stderr(&out));
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 5000);
    assert_eq!(
        int(
            &wh,
            "SELECT CAST(mean AS BIGINT) FROM pixel_stats WHERE image_index = 'img_00010.png'"
        ),
        250
    );
    assert_eq!(
        int(
            &wh,
            "SELECT CAST(mean AS BIGINT) FROM pixel_stats WHERE image_index = 'img_04500.png'"
        ),
        100
    );
}

/// Member names as a tar holds them: two names that differ only in bytes that are
/// not UTF-8 (Latin-1 `é` and `è`) are two images, each measured; a name longer than
/// any path (5,000 bytes, in a GNU long-name header) is a pixel error with its first
/// 256 bytes, not held whole.
#[test]
fn member_names_not_utf8_or_too_long() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("names.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
    let long = format!("{}/x.png", "d".repeat(4994));
    // The fourth name is the ASCII text `img\xe9.png`, backslash and all.
    let names: [&[u8]; 4] = [
        b"img\xe9.png",
        b"img\xe8.png",
        long.as_bytes(),
        b"img\\xe9.png",
    ];
    for (value, name) in [10u8, 20, 30, 40].into_iter().zip(names) {
        let png = grey_png(&[value; 4], 2, 2);
        let mut h = tar::Header::new_gnu();
        h.set_size(png.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, std::ffi::OsStr::from_bytes(name), &png[..])
            .unwrap();
    }
    b.into_inner().unwrap();
    let (wh, out) = ingest_images(dir.path(), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        rows(
            &wh,
            "SELECT image_index, mean FROM pixel_stats ORDER BY mean"
        ),
        [
            ["img\\xe9.png", "10.0"],
            ["img\\xe8.png", "20.0"],
            ["img\\\\xe9.png", "40.0"]
        ]
    );
    let errors = rows(&wh, "SELECT member, error FROM pixel_errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0][0], format!("{}…", &long[..256]));
    assert!(
        errors[0][1].contains("a member name of 5000 bytes"),
        "{errors:?}"
    );
}

/// A run resumed from chunks keeps each image's archive and member apart when both
/// hold a `:`: the rows naming images the metadata lacks say the member as read.
#[test]
fn resumed_run_keeps_archive_and_member_with_colons() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("scan:2024");
    std::fs::create_dir_all(&folder).unwrap();
    let tar = folder.join("x.tar");
    // 4,100 constant images: more than one 4,096-member chunk.
    let members: Vec<(String, Vec<u8>)> = (0..4100u32)
        .map(|i| {
            (
                format!("a:b/img_{i:05}.png"),
                grey_png(&[(i % 200) as u8; 4], 2, 2),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    tar_of(&tar, &refs);
    let (_, out) = ingest_images(
        &dir.path().join("run"),
        &[&tar],
        &[("CXR_TEST_FAIL_AFTER_CHUNKS", "1")],
    );
    assert!(!out.status.success());
    let (wh, out) = ingest_images(&dir.path().join("run"), &[&tar], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resumed"), "{}", stderr(&out));
    let noted = rows(
        &wh,
        "SELECT source_file, field FROM data_issues WHERE issue LIKE 'image not in the metadata%' ORDER BY field",
    );
    assert_eq!(noted.len(), 4100);
    for (row, (name, _)) in noted.iter().zip(&members) {
        assert_eq!(row, &vec!["x.tar".to_string(), name.clone()]);
    }
}

#[test]
fn shipped_sample_of_real_images() {
    let wh = wh_default_with_images();
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_stats"), 24);
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM pixel_stats WHERE width = 224 AND height = 224 AND color_type = 'grey'"
        ),
        24
    );
    assert_eq!(int(&wh, "SELECT COUNT(*) FROM pixel_errors"), 0);
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM pixel_stats p JOIN images i ON i.image_index = p.image_index"
        ),
        24
    );
}

fn wh_default_with_images() -> PathBuf {
    static CELL: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = CELL.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let out = run(&[
            "ingest",
            "--warehouse",
            d.path().join("wh").to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        d
    });
    dir.path().join("wh")
}

/// Runs a Python `script` that writes the zip `zip` from the files of `dir` (its
/// arguments), and returns what it printed.
fn python_zip(python: &Path, script: &str, dir: &Path, zip: &Path) -> String {
    let args = ["-c", script, dir.to_str().unwrap(), zip.to_str().unwrap()];
    python_ok(python, &args).trim().to_string()
}

/// A zip that names a member twice (Python's zipfile writes such zips, with a
/// warning): the zip reader keeps the last copy, and the copy it drops gets a
/// `pixel_errors` row instead of vanishing.
#[test]
fn a_zip_naming_a_member_twice_says_so() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let png = |value: u8| grey_png(&[value; 100], 10, 10);
    for (name, value) in [("a.png", 10), ("b.png", 200), ("c.png", 50)] {
        std::fs::write(dir.path().join(name), png(value)).unwrap();
    }
    let zip = dir.path().join("dup.zip");
    let script = "import sys, warnings, zipfile\n\
        warnings.simplefilter('ignore')\n\
        d, out = sys.argv[1], sys.argv[2]\n\
        with zipfile.ZipFile(out, 'w') as z:\n\
        \x20   z.write(d + '/a.png', 'images/00000001_000.png')\n\
        \x20   z.write(d + '/b.png', 'images/00000001_000.png')\n\
        \x20   z.write(d + '/c.png', 'images/00000002_000.png')\n\
        print(len(zipfile.ZipFile(out).infolist()))\n";
    assert_eq!(python_zip(&python, script, dir.path(), &zip), "3");
    let (wh, out) = ingest_images(dir.path(), &[&zip], &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(
            &wh,
            "SELECT image_index, mean FROM pixel_stats ORDER BY image_index"
        ),
        [["00000001_000.png", "200.0"], ["00000002_000.png", "50.0"]]
    );
    let errors = rows(&wh, "SELECT error FROM pixel_errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0][0].contains("more than once"), "{errors:?}");
}

/// A zip whose central directory points a second entry at the first one's bytes
/// (an overlapping zip, whose one deflated stream would be inflated once per entry)
/// gets a row for that entry, and so does a symbolic link; the first is measured.
/// Python's zipfile writes the zip, and the second entry's local header offset is
/// set to the first's.
#[test]
fn a_zip_whose_members_share_bytes_says_so() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), grey_png(&[10; 100], 10, 10)).unwrap();
    let zip = dir.path().join("overlap.zip");
    let script = "import sys, zipfile\n\
        d, out = sys.argv[1], sys.argv[2]\n\
        with zipfile.ZipFile(out, 'w') as z:\n\
        \x20   z.write(d + '/a.png', 'images/00000001_000.png')\n\
        \x20   z.write(d + '/a.png', 'images/00000002_000.png')\n\
        \x20   link = zipfile.ZipInfo('images/00000003_000.png')\n\
        \x20   link.external_attr = 0o120777 << 16\n\
        \x20   z.writestr(link, '00000001_000.png')\n\
        b = bytearray(open(out, 'rb').read())\n\
        second = b.index(b'PK\\x01\\x02', b.index(b'PK\\x01\\x02') + 4)\n\
        b[second + 42:second + 46] = (0).to_bytes(4, 'little')\n\
        open(out, 'wb').write(bytes(b))\n\
        print([i.header_offset for i in zipfile.ZipFile(out).infolist()][:2])\n";
    assert_eq!(python_zip(&python, script, dir.path(), &zip), "[0, 0]");
    let (wh, out) = ingest_images(dir.path(), &[&zip], &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(&wh, "SELECT image_index, mean FROM pixel_stats"),
        [["00000001_000.png", "10.0"]]
    );
    assert_eq!(
        rows(
            &wh,
            "SELECT image_id, error FROM pixel_errors ORDER BY image_id"
        ),
        [
            [
                "00000002_000.png",
                "this zip member's bytes overlap another member's (an overlapping zip): not read"
            ],
            [
                "00000003_000.png",
                "a symbolic link in the zip: links are not followed; not measured"
            ]
        ]
    );
}

/// A folder nested past PATH_MAX cannot be read: a row says so, rather than its
/// image being counted as a file that is no image. The folders are made one inside
/// the other through descriptors (no path that long can be named).
#[test]
fn a_folder_too_deep_to_read_is_a_pixel_error() {
    use std::ffi::CString;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deep");
    std::fs::create_dir(&root).unwrap();
    let name = CString::new("folder").unwrap();
    let root_c = CString::new(root.to_str().unwrap()).unwrap();
    // SAFETY: plain POSIX calls on descriptors this test opens and closes.
    unsafe {
        let mut fd = libc::open(root_c.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
        assert!(fd >= 0);
        for _ in 0..600 {
            assert_eq!(libc::mkdirat(fd, name.as_ptr(), 0o755), 0);
            let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY);
            assert!(next >= 0);
            libc::close(fd);
            fd = next;
        }
        let png = grey_png(&[10; 100], 10, 10);
        let file = CString::new("00000001_000.png").unwrap();
        let out = libc::openat(fd, file.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
        assert!(out >= 0);
        assert_eq!(
            libc::write(out, png.as_ptr().cast(), png.len()),
            png.len() as isize
        );
        libc::close(out);
        libc::close(fd);
    }
    let (wh, out) = ingest_images(&dir.path().join("w"), &[&root], &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let errors = rows(&wh, "SELECT error FROM pixel_errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0][0].starts_with("cannot read folder"), "{errors:?}");
    assert!(!stderr(&out).contains("1 skipped"), "{}", stderr(&out));
}

/// Odd copies and entries each land in one place: the first copy of an image
/// decides (a damaged first copy is not replaced by a later one), a contiguous-file
/// member is a file, an upper-case extension names the same image, a named pipe in a
/// folder is an error row (never read: it would block), and a successful run removes
/// every interrupted run's cache, not only its own.
#[test]
fn odd_copies_entries_and_caches_land_where_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let good = grey_png(&chest_image(32, 7), 32, 32);
    let tar = dir.path().join("odd.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
    for (name, data, kind) in [
        (
            "a/00000001_000.png",
            good[..100].to_vec(),
            tar::EntryType::Regular,
        ),
        ("b/00000001_000.png", good.clone(), tar::EntryType::Regular),
        (
            "c/00000002_000.png",
            good.clone(),
            tar::EntryType::Continuous,
        ),
        ("d/00000003_000.PNG", good.clone(), tar::EntryType::Regular),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("00000004_000.png"), &good).unwrap();
    for pipe in ["00000005_000.png", "notes.txt"] {
        let made = std::process::Command::new("mkfifo")
            .arg(folder.join(pipe))
            .status()
            .unwrap();
        assert!(made.success());
    }
    let (wh, out) = ingest_images(dir.path(), &[&tar, &folder], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let measured = rows(&wh, "SELECT image_id FROM pixel_stats ORDER BY image_id");
    assert_eq!(
        measured,
        [
            ["00000002_000.png"],
            ["00000003_000.png"],
            ["00000004_000.png"]
        ],
        "{measured:?}"
    );
    let errors = rows(
        &wh,
        "SELECT member, error FROM pixel_errors ORDER BY member",
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert_eq!(errors[0][0], "00000005_000.png");
    assert!(errors[0][1].contains("named pipe"), "{errors:?}");
    assert_eq!(errors[1][0], "a/00000001_000.png");
    assert!(
        errors[1][1].contains("truncated") || errors[1][1].contains("corrupt"),
        "{errors:?}"
    );
    assert_eq!(errors[2][0], "b/00000001_000.png");
    assert!(
        errors[2][1].contains("read first from") && errors[2][1].contains("a/00000001_000.png"),
        "{errors:?}"
    );
    assert!(stderr(&out).contains("1 skipped"), "{}", stderr(&out));
    // The upper-case copy matched NIH's row: no "not in the metadata" issue, and
    // its image_index is NIH's, which README's join of `images` reads.
    assert_eq!(
        int(
            &wh,
            "SELECT COUNT(*) FROM data_issues WHERE value LIKE '00000003_000%'"
        ),
        0
    );
    assert_eq!(
        rows(
            &wh,
            "SELECT p.image_index FROM images i JOIN pixel_stats p USING (image_index) WHERE i.image_index = '00000003_000.png'"
        ),
        [["00000003_000.png"]]
    );
    // An interrupted run's cache of other inputs, left in the warehouse, is removed
    // by the next successful run.
    let stale = wh.join(".pixels-0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("chunk-0.json"), "{}").unwrap();
    let (_, out) = ingest_images(dir.path(), &[&folder], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stale.exists());
}

/// A resume chunk cut short (a disk that filled, a copy that failed) is measured
/// again: every later run failed on it with "not a readable Parquet file".
#[test]
fn a_damaged_resume_chunk_is_measured_again() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, reference, wh) =
        stopped_after_one_chunk(dir.path(), &["--count", "5000", "--size", "16"]);
    let chunk = std::fs::read_dir(&wh)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().contains("pixels-"))
        .map(|e| e.path().join("chunk-000000.parquet"))
        .expect("the resume cache");
    let bytes = std::fs::read(&chunk).unwrap();
    std::fs::write(&chunk, &bytes[..bytes.len() / 2]).unwrap();
    for _ in 0..2 {
        let (wh, out) = ingest_images(&dir.path().join("run"), &[&tar], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let sql = "SELECT image_index, mean, histogram FROM pixel_stats ORDER BY image_index";
        assert_eq!(rows(&wh, sql), rows(&reference, sql));
    }
}

/// A zip whose central directory lists more members than cxr reads from one zip (the
/// zip reader holds each listed member while it reads): refused before the
/// directory is read, naming the file and the count, nothing written. The test
/// writes 500,001 directory records (all at one image; ZIP64 end records), and
/// Python's zipfile counts them.
#[test]
fn a_zip_listing_too_many_members_is_refused() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), grey_png(&[10; 100], 10, 10)).unwrap();
    let zip = dir.path().join("many.zip");
    let script = "import struct, sys, zipfile, zlib\n\
        d, out = sys.argv[1], sys.argv[2]\n\
        png = open(d + '/a.png', 'rb').read()\n\
        crc, first = zlib.crc32(png), b'images/00000001_000.png'\n\
        local = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, crc, len(png), len(png), len(first), 0) + first + png\n\
        n = 500001\n\
        names = [b'images/%08d_000.png' % (i + 1) for i in range(n)]\n\
        cd = b''.join(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0, crc, len(png), len(png), len(m), 0, 0, 0, 0, 0, 0) + m for m in names)\n\
        record = struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, n, n, len(cd), len(local))\n\
        locator = struct.pack('<IIQI', 0x07064b50, 0, len(local) + len(cd), 1)\n\
        end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)\n\
        open(out, 'wb').write(local + cd + record + locator + end)\n\
        print(len(zipfile.ZipFile(out).infolist()))\n";
    assert_eq!(python_zip(&python, script, dir.path(), &zip), "500001");
    let (wh, out) = ingest_images(dir.path(), &[&zip], &[]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("many.zip") && err.contains("lists 500001 members"),
        "{err}"
    );
    assert!(!wh.exists(), "a warehouse was written");
}

/// Zip members as Windows tools write them: `\` between folders (the file name is
/// the last part, matched to the metadata), and compressed by a method cxr does not
/// read (bzip2), said as that, not as damage. Python's zipfile writes the zip.
#[test]
fn zip_members_with_backslashes_or_other_methods() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), grey_png(&[10; 100], 10, 10)).unwrap();
    let zip = dir.path().join("windows.zip");
    let script = "import sys, zipfile\n\
        d, out = sys.argv[1], sys.argv[2]\n\
        with zipfile.ZipFile(out, 'w') as z:\n\
        \x20   z.write(d + '/a.png', 'images\\\\00000001_000.png')\n\
        \x20   z.write(d + '/a.png', 'images/00000002_000.png', compress_type=zipfile.ZIP_BZIP2)\n\
        print(len(zipfile.ZipFile(out).infolist()))\n";
    assert_eq!(python_zip(&python, script, dir.path(), &zip), "2");
    let (wh, out) = ingest_images(dir.path(), &[&zip], &[]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        rows(&wh, "SELECT image_index, mean FROM pixel_stats"),
        [["00000001_000.png", "10.0"]]
    );
    let errors = rows(&wh, "SELECT member, error FROM pixel_errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0][0], "images/00000002_000.png");
    assert!(
        errors[0][1].contains("Bzip2") && errors[0][1].contains("does not read"),
        "{errors:?}"
    );
}
