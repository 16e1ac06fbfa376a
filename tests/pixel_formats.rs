//! Pixel statistics of every format and container the datasets ship: 16-bit PNG in a
//! tar.gz (NIH), JPEG in a zip (CheXpert), DICOM in folders (VinDr, RSNA) — written by
//! Pillow and pydicom, and by dcmtk and GDCM (pydicom's own test files) — each
//! measured independently in `tests/fixtures/pixel_fixtures.py` (Pillow, pydicom,
//! pylibjpeg, numpy) and compared here value by value.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;

/// The fixtures, their expected values and one ingest of all of them.
struct Fixtures {
    _dir: tempfile::TempDir,
    wh: PathBuf,
    code: Option<i32>,
    stderr: String,
    peak_rss_mib: f64,
    expected: serde_json::Map<String, serde_json::Value>,
}

fn fixtures() -> Option<&'static Fixtures> {
    static CELL: OnceLock<Option<Fixtures>> = OnceLock::new();
    CELL.get_or_init(|| {
        let python = python()?;
        let dir = tempfile::tempdir().unwrap();
        let fx = dir.path().join("fx");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixel_fixtures.py");
        python_ok(&python, &[script.to_str().unwrap(), fx.to_str().unwrap()]);
        let f = |name: &str| fx.join(name).to_str().unwrap().to_string();
        let wh = dir.path().join("wh");
        let args = [
            "ingest".to_string(),
            "--no-bbox".into(),
            "--no-expert".into(),
            "--no-splits".into(),
            "--no-other-release".into(),
            "--dataset".into(),
            format!("chexpert={}", f("chexpert.csv")),
            "--dataset".into(),
            format!("vindr={}", f("vindr.csv")),
            "--dataset".into(),
            format!("rsna={},{}", f("rsna_labels.csv"), f("rsna_headers.csv")),
            "--images".into(),
            f("nih.tar.gz"),
            "--images".into(),
            f("sparse_gnu.tar"),
            "--images".into(),
            f("sparse_pax.tar"),
            // A dataset named in any case, as --dataset names it.
            "--images".into(),
            format!("CheXpert={}", f("chexpert.zip")),
            "--images".into(),
            format!("vindr={}", f("vindr")),
            "--images".into(),
            format!("rsna={}", f("rsna")),
            "-w".into(),
            wh.to_str().unwrap().into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr, peak_rss_mib) = run_measured(&args);
        let text = std::fs::read_to_string(fx.join("expected.json")).unwrap();
        let serde_json::Value::Object(expected) = serde_json::from_str(&text).unwrap() else {
            panic!("expected.json is an object")
        };
        Some(Fixtures {
            _dir: dir,
            wh,
            code,
            stderr,
            peak_rss_mib,
            expected,
        })
    })
    .as_ref()
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

/// Asserts |got − want| ≤ tolerance (or a relative 1e-12: two summation orders),
/// naming the image and statistic.
fn close(key: &str, what: &str, got: f64, want: f64, tolerance: f64) {
    let tolerance = tolerance.max(want.abs() * 1e-12);
    assert!(
        (got - want).abs() <= tolerance,
        "{key} {what}: cxr {got}, independent {want} (tolerance {tolerance})"
    );
}

#[test]
fn the_ingest_succeeds_in_bounded_memory() {
    let Some(fx) = fixtures() else { return };
    assert_eq!(fx.code, Some(0), "{}", fx.stderr);
    // The 300 MB zip member and the 4 GiB DICOM length are refused before they are
    // read; the 60000 × 60000 JPEG before it is decoded.
    assert!(
        fx.peak_rss_mib < 300.0,
        "peak RSS {:.0} MiB",
        fx.peak_rss_mib
    );
}

#[test]
fn every_format_measures_as_pillow_and_pydicom_do() {
    let Some(fx) = fixtures() else { return };
    let mut compared = 0;
    for (key, want) in &fx.expected {
        if want.get("error").is_some() {
            continue;
        }
        let (dataset, image_id) = key.split_once('/').unwrap();
        let got = rows(
            &fx.wh,
            &format!(
                "SELECT width, height, bits_stored, format, mean, std, min, max, p01, p05, p50, p95, p99, \
                 entropy, histogram, mean_norm, p50_norm, color_type FROM pixel_stats \
                 WHERE dataset = '{dataset}' AND image_id = '{image_id}'"
            ),
        );
        assert_eq!(got.len(), 1, "{key}: {got:?}\n{}", fx.stderr);
        let g = &got[0];
        let int = |i: usize| g[i].parse::<f64>().unwrap();
        assert_eq!(int(0), num(&want["width"]), "{key} width");
        assert_eq!(int(1), num(&want["height"]), "{key} height");
        assert_eq!(int(2), num(&want["bits_stored"]), "{key} bits_stored");
        assert_eq!(g[3], want["format"].as_str().unwrap(), "{key} format");
        if let Some(colour) = want.get("color_type") {
            assert_eq!(g[17], colour.as_str().unwrap(), "{key} color_type");
        }
        // Lossy JPEGs: another decoder's inverse DCT may round a pixel one grey level
        // the other way; lossless data must agree exactly.
        let lossy = want["lossy"].as_bool().unwrap();
        let level = if lossy { 1.0 } else { 1e-9 };
        let rank = if lossy { 2.0 } else { 0.0 };
        close(key, "mean", int(4), num(&want["mean"]), level);
        close(key, "std", int(5), num(&want["std"]), level);
        close(key, "min", int(6), num(&want["min"]), rank * 2.0);
        close(key, "max", int(7), num(&want["max"]), rank * 2.0);
        let percentiles = want["percentiles"].as_array().unwrap();
        for (k, p) in percentiles.iter().enumerate() {
            close(key, &format!("percentile {k}"), int(8 + k), num(p), rank);
        }
        close(
            key,
            "entropy",
            int(13),
            num(&want["entropy"]),
            if lossy { 0.05 } else { 1e-9 },
        );
        let histogram: Vec<f64> = g[14]
            .trim_matches(['[', ']'])
            .split(", ")
            .map(|c| c.parse().unwrap())
            .collect();
        let pixels = num(&want["width"]) * num(&want["height"]);
        for (k, (a, b)) in histogram
            .iter()
            .zip(want["histogram"].as_array().unwrap())
            .enumerate()
        {
            let tolerance = if lossy { pixels * 0.02 } else { 0.0 };
            close(key, &format!("histogram bin {k}"), *a, num(b), tolerance);
        }
        let scale = 2f64.powf(num(&want["bits_stored"])) - 1.0;
        close(
            key,
            "mean_norm",
            int(15),
            num(&want["mean_norm"]),
            level / scale,
        );
        close(
            key,
            "p50_norm",
            int(16),
            num(&want["p50_norm"]),
            rank / scale,
        );
        compared += 1;
    }
    // 3 PNGs, 5 JPEGs, 24 VinDr DICOMs and the RSNA one.
    assert_eq!(compared, 33);
    assert_eq!(
        int(&fx.wh, "SELECT COUNT(*) FROM pixel_stats"),
        compared as i64
    );
}

#[test]
fn images_that_cannot_be_measured_are_pixel_errors() {
    let Some(fx) = fixtures() else { return };
    let mut failing = 0;
    for (key, want) in &fx.expected {
        let Some(error) = want.get("error").and_then(|e| e.as_str()) else {
            continue;
        };
        let (dataset, image_id) = key.split_once('/').unwrap();
        let got = rows(
            &fx.wh,
            &format!(
                "SELECT error FROM pixel_errors WHERE dataset = '{dataset}' AND image_id = '{image_id}'"
            ),
        );
        assert_eq!(got.len(), 1, "{key}: {got:?}");
        assert!(
            got[0][0].contains(error),
            "{key}: {:?} lacks {error:?}",
            got[0][0]
        );
        failing += 1;
    }
    assert_eq!(failing, 24);
    assert_eq!(int(&fx.wh, "SELECT COUNT(*) FROM pixel_errors"), failing);
    // The zip's README is the one member that is not an image.
    assert!(fx.stderr.contains("1 skipped"), "{}", fx.stderr);
}

#[test]
fn dicom_headers_match_pydicom() {
    let Some(fx) = fixtures() else { return };
    let mut compared = 0;
    for (key, want) in &fx.expected {
        let Some(header) = want.get("dicom") else {
            continue;
        };
        let (dataset, image_id) = key.split_once('/').unwrap();
        let got = rows(
            &fx.wh,
            &format!(
                "SELECT rows, columns, bits_stored, photometric, transfer_syntax, \
                 coalesce(modality, ''), coalesce(patient_sex, '') FROM dicom_headers \
                 WHERE dataset = '{dataset}' AND image_id = '{image_id}'"
            ),
        );
        assert_eq!(got.len(), 1, "{key}");
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let expected: Vec<String> = [
            "rows",
            "columns",
            "bits_stored",
            "photometric",
            "transfer_syntax",
            "modality",
            "patient_sex",
        ]
        .iter()
        .map(|k| text(&header[*k]))
        .collect();
        assert_eq!(got[0], expected, "{key}");
        compared += 1;
    }
    assert_eq!(compared, 25);
    assert_eq!(int(&fx.wh, "SELECT COUNT(*) FROM dicom_headers"), 25);
    // Every measured DICOM is in pixel_stats with its photometric interpretation.
    assert_eq!(
        int(
            &fx.wh,
            "SELECT COUNT(*) FROM pixel_stats p JOIN dicom_headers d USING (dataset, image_id) \
             WHERE p.photometric = d.photometric AND p.format = 'dicom'"
        ),
        25
    );
}

#[test]
fn unknown_images_and_disagreeing_headers_are_data_issues() {
    let Some(fx) = fixtures() else { return };
    let unknown = rows(
        &fx.wh,
        "SELECT source_file, field, value, action FROM data_issues WHERE issue LIKE 'image not in%'",
    );
    assert_eq!(
        unknown,
        [[
            "chexpert.zip",
            "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg",
            "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg",
            "kept"
        ]]
    );
    // The RSNA file says M; the headers CSV says F.
    let sex = rows(
        &fx.wh,
        "SELECT field, value, issue FROM data_issues WHERE issue LIKE 'DICOM PatientSex%'",
    );
    assert_eq!(sex.len(), 1, "{sex:?}");
    assert_eq!(sex[0][0], "rsna-patient-1.dcm");
    assert_eq!(sex[0][1], "M");
    assert!(sex[0][2].contains("rsna's sex 'F'"), "{sex:?}");
    assert_eq!(
        int(
            &fx.wh,
            "SELECT COUNT(*) FROM dataset_images WHERE dataset = 'rsna' AND sex = 'F'"
        ),
        1
    );
}

#[test]
fn vindr_boxes_are_scaled_and_plotted_by_their_images_measured_size() {
    let Some(fx) = fixtures() else { return };
    let manifest = fx.wh.parent().unwrap().join("vindr.parquet");
    let svg = fx.wh.parent().unwrap().join("vindr-boxes.svg");
    let wh = fx.wh.to_str().unwrap();
    let out = run(&[
        "export",
        "-w",
        wh,
        "--dataset",
        "vindr",
        "--box-size",
        "224",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The box (7, 9)–(35, 45) on a 70 × 90 image, scaled to 224 × 224.
    let scaled = rows(
        &fx.wh,
        &format!(
            "SELECT b['x_scaled'], b['y_scaled'], b['w_scaled'], b['h_scaled'] FROM \
             (SELECT unnest(boxes) AS b FROM '{}' WHERE image_id = 'mono2_12bit_explicit') \
             WHERE b['finding'] = 'Cardiomegaly'",
            manifest.display()
        ),
    );
    let want = [
        7.0 * 224.0 / 70.0,
        9.0 * 224.0 / 90.0,
        28.0 * 224.0 / 70.0,
        36.0 * 224.0 / 90.0,
    ];
    assert_eq!(scaled.len(), 1, "{scaled:?}");
    for (got, want) in scaled[0].iter().zip(want) {
        close(
            "mono2_12bit_explicit",
            "scaled box",
            got.parse().unwrap(),
            want,
            1e-9,
        );
    }
    let out = run(&[
        "plot",
        "boxes",
        "-w",
        wh,
        "--dataset",
        "vindr",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("Cardiomegaly"),
        "the panel is named by its finding"
    );
}

#[test]
fn cohorts_across_datasets_filter_on_pixel_statistics() {
    let Some(fx) = fixtures() else { return };
    let got: Vec<String> = run_csv(&[
        "cohort",
        "-w",
        fx.wh.to_str().unwrap(),
        "--dataset",
        "vindr",
        "--where",
        "mean_norm > 0.5",
    ])
    .into_iter()
    .skip(1)
    .map(|r| r[1].clone())
    .collect();
    let mut want: Vec<String> = fx
        .expected
        .iter()
        .filter(|(k, v)| {
            k.starts_with("vindr/") && v.get("mean_norm").is_some_and(|m| num(m) > 0.5)
        })
        .map(|(k, _)| k["vindr/".len()..].to_string())
        .collect();
    want.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[test]
fn images_of_a_dataset_not_read_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let out = run(&[
        "ingest",
        "--no-bbox",
        "--no-expert",
        "--no-splits",
        "--images",
        "chexpert=/nonexistent.zip",
        "-w",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs --dataset chexpert="),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "ingest",
        "--images",
        "nosuch=/x.zip",
        "-w",
        wh.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown dataset 'nosuch'"),
        "{}",
        stderr(&out)
    );
    assert!(!wh.exists());
}

#[test]
fn cross_dataset_manifests_carry_the_pixel_statistics() {
    let Some(fx) = fixtures() else { return };
    let manifest = fx.wh.parent().unwrap().join("with-pixels.parquet");
    let out = run(&[
        "export",
        "-w",
        fx.wh.to_str().unwrap(),
        "--dataset",
        "vindr,chexpert",
        "--with-pixels",
        "--out",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let got = rows(
        &fx.wh,
        &format!(
            "SELECT dataset, image_id, coalesce(CAST(mean AS VARCHAR), 'NULL') FROM '{}'",
            manifest.display()
        ),
    );
    let mut checked = 0;
    for (key, want) in &fx.expected {
        let (dataset, image_id) = key.split_once('/').unwrap();
        let Some(row) = got.iter().find(|r| r[0] == dataset && r[1] == image_id) else {
            // Only images of the datasets' CSVs are in the manifest (the unlisted
            // CheXpert image is not; NIH and RSNA were not asked for).
            continue;
        };
        match want.get("mean") {
            Some(mean) => {
                let lossy = want["lossy"].as_bool().unwrap();
                close(
                    key,
                    "mean",
                    row[2].parse().unwrap(),
                    num(mean),
                    if lossy { 1.0 } else { 0.0 },
                );
            }
            None => assert_eq!(row[2], "NULL", "{key}: not measured, no statistics"),
        }
        checked += 1;
    }
    // VinDr's 24 measured and 19 failing images, CheXpert's 4 listed ones.
    assert_eq!(checked, 47, "{got:?}");
    assert_eq!(got.len(), 47);
}

/// `plot pixels` across datasets: per dataset, images per bin of 8 on the 0–255
/// scale (8-bit means as stored, deeper ones as their 0–1 mean times 255), as
/// Pillow's and pydicom's values give them.
#[test]
fn plot_pixels_bins_every_depth_on_one_scale() {
    let Some(fx) = fixtures() else { return };
    let w = fx.wh.to_str().unwrap();
    let sql = stdout(&run(&[
        "plot",
        "pixels",
        "-w",
        w,
        "--dataset",
        "chexpert,vindr,rsna",
        "--show-sql",
    ]));
    let plotted = run_csv(&["sql", "-w", w, &sql]);
    let got: std::collections::BTreeMap<(String, i64), i64> = plotted[1..]
        .iter()
        .map(|r| ((r[0].clone(), r[1].parse().unwrap()), r[2].parse().unwrap()))
        .collect();
    // An image measured without a row of its dataset is in no cohort.
    let listed: std::collections::HashSet<String> = rows(
        &fx.wh,
        "SELECT dataset || '/' || image_id FROM dataset_images",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    let mut want: std::collections::BTreeMap<(String, i64), i64> = Default::default();
    for (key, v) in &fx.expected {
        let Some((dataset, _)) = key.split_once('/') else {
            continue;
        };
        if !["chexpert", "vindr", "rsna"].contains(&dataset)
            || v.get("mean").is_none()
            || !listed.contains(key)
        {
            continue;
        }
        let grey = if num(&v["bits_stored"]) == 8.0 {
            num(&v["mean"])
        } else {
            num(&v["mean_norm"]) * 255.0
        };
        let bin = ((grey / 8.0).floor() as i64).min(31) * 8;
        *want.entry((dataset.to_string(), bin)).or_default() += 1;
    }
    assert!(want.len() > 3, "{want:?}");
    assert_eq!(got, want);
}
