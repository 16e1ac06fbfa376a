//! OpenI (Indiana University chest X-ray collection): the DICOM header fields
//! (`nlmcxr_dicom_metadata.csv`, one row per image, `imageid` plus 175 DICOM
//! attributes by name) and the reports (`NLMCXR_reports.tgz`, one XML file per report
//! under `ecgen-radiology/`).
//!
//! - `dataset_images`: one row per `imageid`. `patient_id` = `Patient ID`, `study_id` =
//!   `Study Instance UID`, view from `View Position` (`PA`, `AP`; `LL`, `RL`,
//!   `LATERAL`, `LARGE LATERAL` → `LATERAL`; other values `OTHER` with a
//!   `data_issues` row; empty NULL), sex from `Patient's Sex` (empty in every row of
//!   the public file: one file-level `data_issues` row), age = completed years from
//!   `Patient's Birth Date` to `Study Date` (YYYYMMDD; bad dates or ages outside
//!   0–120 NULL with an issue). `path` is `<id>.png` with the id as the reports spell
//!   it (the PNG release's names). An image a report covers but the header file
//!   lacks is added with NULL metadata and an issue; a report id spelled
//!   `CXR<n>_<k>_IM-…` where the header file has `CXR<n>_IM-…` is matched to it,
//!   with an issue.
//! - `reports`: one per XML file: `report_id` from `<uId id=…>` (else the file name),
//!   FINDINGS and IMPRESSION `AbstractText`, `mesh_major` the `<major>` terms as
//!   written, `mesh_minor` the `<automatic>` terms (the files have no `<minor>`
//!   element; any is added too), `image_ids` the covered images (`<parentImage id=…>`,
//!   as image ids of `dataset_images`).
//! - `dataset_labels`: source `openi_mesh`, value 1, raw label = the heading of a major term
//!   (text before the first `/`, trimmed), one row per distinct (image, heading), for
//!   every image the report covers; `normal` maps to a NULL finding. A report whose
//!   only major term is `No Indexing` gives its images no row (not labelled, so every
//!   finding unknown, not normal) and a `data_issues` row.
//!
//! The XML is read by a small scanner for these leaf elements, not a general parser
//! (no entity of a document type declaration is expanded), but reading what XML allows
//! in them as XML readers do: CDATA sections, comments and processing instructions in
//! the text, character and the five named entity references, white space and
//! attributes in tags. It holds one element's text at a time.
//! Each member is capped at [`MAX_XML`] bytes, the archive at [`MAX_MEMBERS`] files,
//! [`MAX_REPORT_BYTES`] of XML and [`MAX_LABELS`] label rows; extended tar headers are
//! bounded (`input::archive`).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::csv::{CsvTable, source_name};
use crate::input::issues::Issues;

use crate::datasets::common::{
    ImageList, PATH_LEAVES_ROOT, bare_image, date_parts, frontal_of, leaves_root, require_all,
    sex_or_issue,
};
use crate::datasets::label_map::{LabelMap, Resolver, normalised, same_label};
use crate::datasets::{DatasetRows, Interner, LabelRow, Report};

/// The dataset name.
pub const NAME: &str = "openi";
/// The label source.
pub const SOURCE: &str = "openi_mesh";
/// The MeSH major term of a report nobody indexed.
const NOT_INDEXED: &str = "No Indexing";
/// Largest XML member read (bytes); larger ones are skipped with an issue.
pub const MAX_XML: u64 = 4 << 20;
/// Most archive members looked at.
pub const MAX_MEMBERS: usize = 1_000_000;
/// Most XML bytes read in all (the release's 3,955 reports are 21 MB): reports are
/// held in memory until their table is written.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;
/// Most label rows (image × heading; the release gives about 12,000): a report
/// covering many images with many headings multiplies.
pub const MAX_LABELS: usize = 1_000_000;

/// Whether the file at `path` is a tar archive, plain or gzip.
pub fn is_tar(path: &Path) -> Result<bool> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?;
    let mut head = Vec::with_capacity(512);
    let mut magic = [0u8; 2];
    let mut r = std::io::BufReader::new(f);
    let n = r.read(&mut magic).unwrap_or(0);
    let chained = std::io::Cursor::new(magic[..n].to_vec()).chain(r);
    if n == 2 && magic == [0x1f, 0x8b] {
        let _ = crate::input::gzip::decoder(chained)
            .take(512)
            .read_to_end(&mut head);
    } else {
        let _ = chained.take(512).read_to_end(&mut head);
    }
    let ustar = head.len() >= 262 && &head[257..262] == b"ustar";
    // An empty tar is its end: blocks of zeros, which no CSV starts with.
    let empty_tar = head.len() == 512 && head.iter().all(|&b| b == 0);
    if crate::datasets::zip::is_zip(&head) {
        return Err(Error::input(
            path,
            "a zip archive: OpenI's reports are read from the .tgz of the release (NLMCXR_reports.tgz), its metadata from a CSV",
        ));
    }
    Ok(ustar || empty_tar)
}

/// Reads the DICOM header CSV and the report archive, in either order (told apart by
/// content); either may be left out.
pub fn read(paths: &[PathBuf], map: &LabelMap, issues: &mut Issues) -> Result<DatasetRows> {
    if paths.is_empty() || paths.len() > 2 {
        return Err(Error::Usage(format!(
            "dataset 'openi' takes the DICOM metadata CSV and the reports .tgz, got {} files",
            paths.len()
        )));
    }
    let (mut csv, mut tgz) = (None, None);
    for p in paths {
        let slot = if is_tar(p)? { &mut tgz } else { &mut csv };
        if slot.replace(p.as_path()).is_some() {
            return Err(Error::Usage(format!(
                "dataset 'openi': two files of the same kind given ({})",
                p.display()
            )));
        }
    }
    read_files(csv, tgz, map, issues)
}

struct Meta {
    /// Report spelling of each image id → dataset_images id.
    alias: HashMap<String, String>,
}

/// Reads the DICOM metadata CSV and/or the reports archive.
pub fn read_files(
    dicom_metadata_csv: Option<&Path>,
    reports_tgz: Option<&Path>,
    map: &LabelMap,
    issues: &mut Issues,
) -> Result<DatasetRows> {
    let mut images = ImageList::default();
    let mut rows = DatasetRows::default();
    if let Some(p) = dicom_metadata_csv {
        read_metadata(p, &mut images, issues)?;
    }
    // One file of the two: what the other would give is unknown for every image.
    match (dicom_metadata_csv, reports_tgz) {
        (None, Some(tgz)) => issues.push(
            &source_name(tgz),
            None,
            None,
            None,
            "no DICOM metadata file given (nlmcxr_dicom_metadata.csv): patient, sex, age and view are NULL for every image",
        ),
        (Some(csv), None) => issues.push(
            &source_name(csv),
            None,
            None,
            None,
            "no reports archive given (NLMCXR_reports.tgz): no image has labels or a report",
        ),
        _ => {}
    }
    let n_meta = images.images.len();
    let mut meta = Meta {
        alias: HashMap::new(),
    };
    let mut covered: HashSet<String> = HashSet::new();
    if let Some(tgz) = reports_tgz {
        let src = source_name(tgz);
        let mut resolver = Resolver::new(map, NAME);
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut shared = Interner::default();
        let reports = read_reports(tgz, issues)?;
        for (member, mut rep) in reports {
            let mut ids = Vec::with_capacity(rep.image_ids.len());
            for raw in &rep.image_ids {
                let id = resolve(
                    raw,
                    &member,
                    &src,
                    &mut images,
                    &mut meta,
                    n_meta,
                    dicom_metadata_csv.is_some(),
                    issues,
                );
                covered.insert(id.clone());
                ids.push(id);
            }
            rep.image_ids = ids;
            from_report_images(&rep.image_ids, &mut images, n_meta);
            let mut headings: Vec<String> = Vec::new();
            let mut not_indexed = false;
            for term in &rep.mesh_major {
                let h = term.split('/').next().unwrap_or("").trim().to_string();
                // `No Indexing`: nobody indexed the report. Its images are not
                // labelled, which is not normal: no label row.
                if h.eq_ignore_ascii_case(NOT_INDEXED) {
                    not_indexed = true;
                } else if !h.is_empty() && !headings.iter().any(|k| same_label(k, &h)) {
                    // One heading in other spellings (`Lymph Nodes`, `Lymph nodes`) is one.
                    headings.push(h);
                }
            }
            if headings.is_empty() {
                let what = match rep.image_ids.len() {
                    0 => "it covers no image".to_string(),
                    n => format!("its {n} image(s) have no label, unknown rather than normal"),
                };
                // A report with no major heading at all is as unlabelled as one
                // nobody indexed.
                let (value, why) = match not_indexed {
                    true => (Some(NOT_INDEXED), format!("MeSH `{NOT_INDEXED}`")),
                    false => (None, "no MeSH major heading".to_string()),
                };
                issues.push(
                    &src,
                    None,
                    Some(&member),
                    value,
                    format!("report not indexed ({why}): {what}; skipped"),
                );
            }
            if rows.labels.len() + headings.len() * rep.image_ids.len() > MAX_LABELS {
                return Err(Error::input(
                    tgz,
                    format!(
                        "more than {MAX_LABELS} labels (images × MeSH headings of each report; \
                         {member} alone gives {}): not a reports archive cxr reads",
                        headings.len() * rep.image_ids.len()
                    ),
                ));
            }
            for h in &headings {
                let finding = resolver.finding(h, (&src, None, &member), issues)?;
                for id in &rep.image_ids {
                    if seen.insert((id.clone(), normalised(h))) {
                        rows.labels.push(LabelRow {
                            dataset: NAME,
                            image_id: shared.get(id),
                            source: shared.get(SOURCE),
                            raw_label: shared.get(h),
                            finding,
                            value: 1,
                        });
                    }
                }
            }
            rows.reports.push(rep);
        }
        if let Some(csv) = dicom_metadata_csv {
            let csrc = source_name(csv);
            for im in images.images.iter().take(n_meta) {
                if !covered.contains(&*im.image_id) {
                    issues.push(
                        &csrc,
                        None,
                        Some("imageid"),
                        Some(&*im.image_id),
                        "image covered by no report: no labels",
                    );
                }
            }
        }
    }
    rows.images = images.images;
    Ok(rows)
}

/// An image of a report that the header file lacks takes its patient, study, sex and
/// age from the report's first image the file has: a report is one study of one
/// patient (its view stays unknown).
fn from_report_images(ids: &[String], images: &mut ImageList, n_meta: usize) {
    let Some(known) = ids
        .iter()
        .filter_map(|id| images.get(id))
        .find(|&i| i < n_meta)
    else {
        return;
    };
    let k = &images.images[known];
    let (patient, study, sex, age) = (k.patient_id.clone(), k.study_id.clone(), k.sex, k.age);
    for id in ids {
        if let Some(i) = images.get(id).filter(|&i| i >= n_meta) {
            let image = images.at(i);
            image.patient_id.clone_from(&patient);
            image.study_id.clone_from(&study);
            (image.sex, image.age) = (sex, age);
        }
    }
}

/// The dataset_images id of an image id as a report writes it, adding the image when the
/// header file lacks it.
#[allow(clippy::too_many_arguments)]
fn resolve(
    raw: &str,
    member: &str,
    src: &str,
    images: &mut ImageList,
    meta: &mut Meta,
    n_meta: usize,
    have_csv: bool,
    issues: &mut Issues,
) -> String {
    if let Some(id) = meta.alias.get(raw) {
        return id.clone();
    }
    let png: Option<crate::datasets::Shared> = if leaves_root(raw) {
        issues.push(src, None, Some(member), Some(raw), PATH_LEAVES_ROOT);
        None
    } else {
        Some(format!("{raw}.png").into())
    };
    let id = if let Some(i) = images.get(raw) {
        if i < n_meta {
            images.at(i).path = png;
        }
        raw.to_string()
    } else if let Some(alt) = respelled(raw).filter(|a| images.get(a).is_some_and(|i| i < n_meta)) {
        issues.push(
            src,
            None,
            Some(member),
            Some(raw),
            format!("image id spelled differently in the DICOM header file: matched to '{alt}'"),
        );
        let i = images.get(&alt).unwrap_or(0);
        images.at(i).path = png;
        alt
    } else {
        if have_csv {
            issues.push(
                src,
                None,
                Some(member),
                Some(raw),
                "image in a report but not in the DICOM header file: kept, its patient, study, sex and age from the report's other images (NULL if none), view NULL",
            );
        }
        images.add(bare_image(NAME, raw, png));
        raw.to_string()
    };
    meta.alias.insert(raw.to_string(), id.clone());
    id
}

/// `CXR<n>_<k>_IM-…` → `CXR<n>_IM-…`.
fn respelled(id: &str) -> Option<String> {
    let mut parts = id.splitn(3, '_');
    let (a, b, c) = (parts.next()?, parts.next()?, parts.next()?);
    (a.starts_with("CXR") && !b.is_empty() && b.bytes().all(|x| x.is_ascii_digit()))
        .then(|| format!("{a}_{c}"))
}

/// An optional column: its position and values.
#[allow(clippy::type_complexity)]
fn optional<'t>(t: &'t CsvTable, names: &[&str]) -> Result<Option<(usize, Vec<Option<&'t str>>)>> {
    t.find(names).map(|i| Ok((i, t.values(i)?))).transpose()
}

fn read_metadata(path: &Path, images: &mut ImageList, issues: &mut Issues) -> Result<()> {
    // The DICOM dump has 176 columns; only these are parsed.
    const OPTIONAL: [&[&str]; 6] = [
        &["patientid"],
        &["studyinstanceuid"],
        &["viewposition"],
        &["patientssex", "patientsex"],
        &["patientsbirthdate"],
        &["studydate"],
    ];
    let (t, c) = CsvTable::read_picking(path, issues, |t| {
        // `View Position` is required too: other datasets' ids (`ImageId`, `image_id`)
        // squash to the same name as `imageid`.
        let c = require_all(
            t,
            "OpenI",
            &[
                ("imageid", &["imageid"]),
                ("View Position", &["viewposition"]),
            ],
        )?;
        let mut fields = c.clone();
        fields.extend(OPTIONAL.iter().filter_map(|names| t.find(names)));
        Ok((c, Some(fields)))
    })?;
    t.refuse_if_empty()?;
    let ids = t.values(c[0])?;
    let [pid, study, view, sex, birth, date] = OPTIONAL.map(|names| optional(&t, names));
    let (pid, study, view, sex, birth, date) = (pid?, study?, view?, sex?, birth?, date?);
    let src = t.source.clone();
    let sex_all_empty = sex
        .as_ref()
        .is_some_and(|(_, v)| v.iter().all(Option::is_none));
    if let Some((i, _)) = sex.as_ref().filter(|_| sex_all_empty) {
        issues.push(
            &src,
            None,
            Some(t.name(*i)),
            None,
            "sex empty in every row: NULL for every image",
        );
    }
    for (r, &line) in t.lines.iter().enumerate() {
        let Some(id) = ids[r] else {
            issues.push(
                &src,
                Some(line),
                Some(t.name(c[0])),
                None,
                "no imageid; row skipped",
            );
            continue;
        };
        if images.contains(id) {
            issues.push(
                &src,
                Some(line),
                Some(t.name(c[0])),
                Some(id),
                "image listed again: this row ignored",
            );
            continue;
        }
        let mut im = bare_image(NAME, id, Some(format!("{id}.png").into()));
        im.patient_id = pid.as_ref().and_then(|(_, v)| v[r]).map(str::to_string);
        im.study_id = study.as_ref().and_then(|(_, v)| v[r]).map(str::to_string);
        if let Some((i, v)) = &view {
            im.view = match v[r].map(|s| s.to_ascii_uppercase()).as_deref() {
                None => None,
                Some("PA") => Some("PA"),
                Some("AP") => Some("AP"),
                Some("LL" | "RL" | "LATERAL" | "LARGE LATERAL") => Some("LATERAL"),
                Some(_) => {
                    issues.push(
                        &src,
                        Some(line),
                        Some(t.name(*i)),
                        v[r],
                        "unknown view: set to OTHER",
                    );
                    Some("OTHER")
                }
            };
            im.frontal = frontal_of(im.view);
        }
        if let Some((i, v)) = &sex
            && !sex_all_empty
        {
            im.sex = sex_or_issue(v[r], &src, line, t.name(*i), issues);
        }
        if let (Some((bi, b)), Some((di, d))) = (&birth, &date) {
            im.age = match (b[r], d[r]) {
                (Some(bv), Some(dv)) => match (date_parts(bv), date_parts(dv)) {
                    (Some(bd), Some(sd)) => {
                        let mut a = sd.0 - bd.0;
                        if (sd.1, sd.2) < (bd.1, bd.2) {
                            a -= 1;
                        }
                        if (0..=120).contains(&a) {
                            Some(a as f32)
                        } else {
                            issues.push(
                                &src,
                                Some(line),
                                Some(t.name(*bi)),
                                Some(bv),
                                format!("age {a} from birth and study dates is outside 0–120; set to NULL"),
                            );
                            None
                        }
                    }
                    (None, _) => {
                        issues.push(
                            &src,
                            Some(line),
                            Some(t.name(*bi)),
                            Some(bv),
                            "not a YYYYMMDD date: age NULL",
                        );
                        None
                    }
                    (_, None) => {
                        issues.push(
                            &src,
                            Some(line),
                            Some(t.name(*di)),
                            Some(dv),
                            "not a YYYYMMDD date: age NULL",
                        );
                        None
                    }
                },
                _ => None,
            };
        }
        images.add(im);
    }
    Ok(())
}

/// Reads every `.xml` member of the archive: (member path, report).
fn read_reports(path: &Path, issues: &mut Issues) -> Result<Vec<(String, Report)>> {
    let src = source_name(path);
    let f = std::fs::File::open(path)
        .map_err(|e| Error::input(path, format!("cannot read the file: {e}")))?;
    let mut raw = std::io::BufReader::new(f);
    let mut magic = [0u8; 2];
    let n = raw.read(&mut magic).unwrap_or(0);
    let chained = std::io::Cursor::new(magic[..n].to_vec()).chain(raw);
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(crate::input::gzip::decoder(chained))
    } else {
        Box::new(chained)
    };
    let mut ar = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut members = 0usize;
    // Regular files named `.xml`, read or skipped with an issue.
    let mut xml_files = 0usize;
    let mut total = 0u64;
    let mut failure = None;
    // The member each report id was read from: a report given twice is read once.
    let mut report_members: std::collections::HashMap<String, String> = Default::default();
    let walked = crate::input::archive::walk(&mut ar, |member, sparse, entry| {
        members += 1;
        if members > MAX_MEMBERS {
            failure = Some(format!("more than {MAX_MEMBERS} archive members"));
            return false;
        }
        if sparse && is_xml_name(&member) {
            xml_files += 1;
            issues.push(
                &src,
                None,
                Some(member.as_str()),
                None,
                "a sparse file (archived with tar -S), which cxr does not expand: skipped",
            );
            return true;
        }
        if !is_xml_name(&member) {
            return true;
        }
        let kind = entry.header().entry_type();
        // GNU tar reads a contiguous file (type '7') as a regular one.
        if !(kind.is_file() || kind.is_contiguous()) {
            let why = not_a_file(kind, entry);
            issues.push(&src, None, Some(member.as_str()), None, why);
            return true;
        }
        xml_files += 1;
        let size = entry.size();
        if size > MAX_XML {
            issues.push(
                &src,
                None,
                Some(member.as_str()),
                Some(size.to_string().as_str()),
                format!("report larger than {MAX_XML} bytes: skipped"),
            );
            return true;
        }
        total += size;
        if total > MAX_REPORT_BYTES {
            failure = Some(format!(
                "reports of more than {} MiB in all (the OpenI release's are 21 MB): \
                 not a reports archive cxr reads",
                MAX_REPORT_BYTES >> 20
            ));
            return false;
        }
        let mut buf = Vec::with_capacity(size as usize);
        if let Err(e) = entry.take(MAX_XML).read_to_end(&mut buf) {
            failure = Some(format!("not a readable tar archive: {e}"));
            return false;
        }
        let Some(text) = report_text(buf) else {
            issues.push(
                &src,
                None,
                Some(member.as_str()),
                None,
                "report is not text in its declared encoding (UTF-8, UTF-16, ISO-8859-1 or windows-1252): skipped",
            );
            return true;
        };
        let stem = member
            .rsplit('/')
            .next()
            .unwrap_or(&member)
            .trim_end_matches(".xml")
            .trim_end_matches(".XML")
            .to_string();
        if let Some(root) = unclosed_root(&text) {
            issues.push(
                &src,
                None,
                Some(member.as_str()),
                None,
                format!("report cut short (no closing </{root}>): skipped"),
            );
            return true;
        }
        let rep = parse_report(&text, &stem, &src, &member, issues);
        if let Some(first) = report_members.get(&rep.report_id) {
            issues.push(
                &src,
                None,
                Some(member.as_str()),
                Some(rep.report_id.as_str()),
                format!("report id again (first in {first}): skipped"),
            );
            return true;
        }
        report_members.insert(rep.report_id.clone(), member.clone());
        out.push((member, rep));
        true
    });
    if let Some(why) = failure {
        return Err(Error::input(path, why));
    }
    walked.map_err(|d| Error::input(path, format!("not a readable tar archive: {}", d.0)))?;
    if members == 0 {
        return Err(Error::input(
            path,
            "the reports archive holds no member: no report to read (nothing was written)",
        ));
    }
    if xml_files == 0 {
        return Err(Error::input(
            path,
            format!(
                "the reports archive holds no .xml file ({members} member(s), none a regular \
                 file named *.xml): no report to read (nothing was written)"
            ),
        ));
    }
    Ok(out)
}

/// Whether an archive member is named as a report (a directory's name ends in `/`).
fn is_xml_name(member: &str) -> bool {
    member
        .trim_end_matches('/')
        .to_ascii_lowercase()
        .ends_with(".xml")
}

/// Why a member named as a report but not a regular file is skipped.
fn not_a_file<R: Read>(kind: tar::EntryType, entry: &tar::Entry<'_, R>) -> String {
    if let Some(link) = crate::input::archive::link_text(entry) {
        return format!("a {link}: links are not followed; skipped");
    }
    let what = if kind.is_dir() {
        "a directory".to_string()
    } else if kind.is_fifo() {
        "a named pipe".to_string()
    } else if kind.is_character_special() || kind.is_block_special() {
        "a device".to_string()
    } else {
        format!("tar member type '{}'", char::from(kind.as_byte()))
    };
    format!("{what}, not a regular file: skipped")
}

/// A report's text in the encoding it declares: UTF-8 (with or without a byte-order
/// mark), UTF-16 (by its mark), or ISO-8859-1 / windows-1252 as its XML declaration
/// says; None when the bytes are not text in that encoding.
fn report_text(bytes: Vec<u8>) -> Option<String> {
    match bytes.as_slice() {
        [0xEF, 0xBB, 0xBF, rest @ ..] => return String::from_utf8(rest.to_vec()).ok(),
        [0xFF, 0xFE, rest @ ..] => return utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => return utf16(rest, u16::from_be_bytes),
        _ => {}
    }
    let declaration = bytes.split(|&b| b == b'>').next().unwrap_or(&[]);
    let declaration = String::from_utf8_lossy(declaration).to_ascii_lowercase();
    let single_byte = declaration.starts_with("<?xml")
        && declared_encoding(&declaration).is_some_and(|name| {
            [
                "iso-8859-1",
                "iso8859-1",
                "latin1",
                "latin-1",
                "windows-1252",
                "cp1252",
            ]
            .contains(&name)
        });
    if !single_byte {
        return String::from_utf8(bytes).ok();
    }
    // windows-1252 is ISO-8859-1 with printable characters in 0x80-0x9F, which
    // ISO-8859-1 leaves to control codes no report holds: read both as 1252.
    Some(bytes.iter().map(|&b| windows_1252(b)).collect())
}

/// The `encoding` of an XML declaration (`encoding = 'latin1'`: XML allows spaces
/// around the `=` and either quote).
fn declared_encoding(declaration: &str) -> Option<&str> {
    let after = declaration.split_once("encoding")?.1.trim_start();
    let value = after.strip_prefix('=')?.trim_start();
    let quote = value.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    value[1..].split(quote).next()
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9F => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// The name of the document's root element where the text does not end by closing
/// it (a report cut short: its MeSH terms, the labels, may be lost); None for a
/// whole one. After the root's end tag XML allows only white space, comments and
/// processing instructions; an end tag may hold white space before its `>`.
fn unclosed_root(xml: &str) -> Option<String> {
    let mut root = None;
    // Open elements: a count, not a stack, so that nesting costs no memory.
    let mut depth = 0usize;
    let mut closed = false;
    for token in Tokens::new(xml) {
        match token {
            Token::Start(name, _, empty) => {
                let first = root.is_none();
                root.get_or_insert(name);
                closed = first && empty;
                if !empty {
                    depth += 1;
                }
            }
            Token::End(name) => {
                depth = depth.saturating_sub(1);
                closed = depth == 0 && root == Some(name);
            }
            Token::Text(t) if t.trim_matches(XML_SPACE).is_empty() => {}
            Token::Markup => {}
            Token::Text(_) | Token::CData(_) | Token::Cut => closed = false,
        }
    }
    let root = root?;
    (!closed).then(|| root.to_string())
}

/// The white space characters of XML.
const XML_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// One piece of an XML document as the scanner reads it.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A start tag: its name, the text after the name (its attributes), and whether
    /// it is an empty-element tag (`<a/>`).
    Start(&'a str, &'a str, bool),
    /// An end tag's name.
    End(&'a str),
    /// Character data as written (references not yet decoded).
    Text(&'a str),
    /// A CDATA section's content, which is text as it is.
    CData(&'a str),
    /// A comment, processing instruction or declaration: no content.
    Markup,
    /// A construct the document ends inside (a file cut short); nothing follows.
    Cut,
}

/// The tokens of a document, each found by one forward search: linear time, and no
/// memory beyond the token.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(xml: &'a str) -> Self {
        Tokens { rest: xml }
    }

    /// Consumes `len` bytes and gives `token`; the rest of the document when the
    /// construct has no end.
    fn take(&mut self, len: Option<usize>, token: impl FnOnce(&'a str) -> Token<'a>) -> Token<'a> {
        match len {
            Some(n) => {
                let (piece, rest) = self.rest.split_at(n);
                self.rest = rest;
                token(piece)
            }
            None => {
                self.rest = "";
                Token::Cut
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let s = self.rest;
        if s.is_empty() {
            return None;
        }
        let after = |open: &str, close: &str| {
            s[open.len()..]
                .find(close)
                .map(|i| open.len() + i + close.len())
        };
        let token = if !starts_markup(s) {
            let end = text_end(s);
            self.take(Some(end), Token::Text)
        } else if s.starts_with("<!--") {
            self.take(after("<!--", "-->"), |_| Token::Markup)
        } else if s.starts_with("<![CDATA[") {
            self.take(after("<![CDATA[", "]]>"), |p| {
                Token::CData(&p["<![CDATA[".len()..p.len() - "]]>".len()])
            })
        } else if s.starts_with("<?") {
            self.take(after("<?", "?>"), |_| Token::Markup)
        } else if s.starts_with("<!") {
            self.take(declaration_end(s), |_| Token::Markup)
        } else if s.starts_with("</") {
            self.take(s.find('>').map(|i| i + 1), |p| {
                let name = p[2..p.len() - 1].trim_matches(XML_SPACE);
                Token::End(name.split(XML_SPACE).next().unwrap_or(""))
            })
        } else {
            self.take(tag_end(s), |p| {
                let inner = &p[1..p.len() - 1];
                let empty = inner.ends_with('/');
                let inner = inner.strip_suffix('/').unwrap_or(inner);
                let name_end = inner.find(XML_SPACE).unwrap_or(inner.len());
                Token::Start(&inner[..name_end], &inner[name_end..], empty)
            })
        };
        Some(token)
    }
}

/// Whether `s` starts with markup: `<` then a name, `/`, `!` or `?`. Any other `<`
/// (not well-formed XML) is read as text rather than lose what follows.
fn starts_markup(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('<')
        && chars
            .next()
            .is_some_and(|c| matches!(c, '/' | '!' | '?' | '_' | ':') || c.is_alphabetic())
}

/// Where the text at the start of `s` ends: the next markup, else the end.
fn text_end(s: &str) -> usize {
    let mut from = 0;
    while let Some(i) = s[from..].find('<') {
        let at = from + i;
        if starts_markup(&s[at..]) {
            return at;
        }
        from = at + 1;
    }
    s.len()
}

/// The length of a start tag: up to the first `>` outside a quoted attribute value
/// (XML allows `>` in one).
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i + 1),
            (None, _) => {}
        }
    }
    None
}

/// The length of a declaration (`<!DOCTYPE …>`), whose internal subset in `[…]` holds
/// declarations with `>` of their own.
fn declaration_end(s: &str) -> Option<usize> {
    let gt = s.find('>')?;
    match s[..gt].find('[') {
        None => Some(gt + 1),
        Some(open) => {
            let mut from = open;
            loop {
                let close = from + s[from..].find(']')? + 1;
                let tail = s[close..].trim_start_matches(XML_SPACE);
                if tail.starts_with('>') {
                    return Some(s.len() - tail.len() + 1);
                }
                from = close;
            }
        }
    }
}

/// One XML start tag as the scanner sees it.
#[derive(Debug)]
struct Tag<'a> {
    name: &'a str,
    attrs: Vec<(&'a str, String)>,
    /// Its text, when the element holds only text (with any CDATA sections, comments
    /// and processing instructions among it, as an XML reader gives it).
    text: Option<String>,
}

impl Tag<'_> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Gives `visit` the start (and empty-element) tags of `xml` in order, each with its
/// text when the element holds only text. Only the element last opened gathers text,
/// so memory is one tag and its text, at most the document.
fn scan<'a>(xml: &'a str, mut visit: impl FnMut(Tag<'a>)) {
    let mut open: Option<(Tag<'a>, String)> = None;
    for token in Tokens::new(xml) {
        match token {
            Token::Start(name, attrs, empty) => {
                // The element open before holds this one: not a leaf, no text.
                if let Some((tag, _)) = open.take() {
                    visit(tag);
                }
                let tag = Tag {
                    name,
                    attrs: parse_attrs(attrs),
                    text: None,
                };
                if empty {
                    visit(tag);
                } else {
                    open = Some((tag, String::new()));
                }
            }
            Token::End(name) => {
                if let Some((mut tag, text)) = open.take() {
                    if tag.name == name {
                        tag.text = Some(text);
                    }
                    visit(tag);
                }
            }
            Token::Text(raw) => {
                if let Some((_, text)) = open.as_mut() {
                    text.push_str(&decode(&line_ends(raw)));
                }
            }
            Token::CData(raw) => {
                if let Some((_, text)) = open.as_mut() {
                    text.push_str(&line_ends(raw));
                }
            }
            Token::Markup | Token::Cut => {}
        }
    }
    if let Some((tag, _)) = open {
        visit(tag);
    }
}

/// The attributes of a start tag (the text after its name): `name = "value"` with
/// either quote and white space around `=`, the value with its line ends and tabs
/// as spaces and its references decoded, as XML readers give it.
fn parse_attrs(s: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim_matches(XML_SPACE);
        let after = rest[eq + 1..].trim_start_matches(XML_SPACE);
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(q) else {
            break;
        };
        let value = line_ends(&after[1..1 + close]).replace(['\n', '\t'], " ");
        out.push((name, decode(&value)));
        rest = &after[close + 2..];
    }
    out
}

/// Line ends as XML readers give them: `\r\n` and a lone `\r` are `\n`.
fn line_ends(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        s.into()
    }
}

/// Decodes the five named XML entities and character references (`&#NN;`,
/// `&#xNN;`) to characters XML allows; any other `&` is kept as written (an entity
/// of a document type declaration is not expanded).
fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // A reference is short: `;` looked for within a few characters only.
        let Some(semi) = rest
            .char_indices()
            .take(40)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i)
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        match reference(&rest[1..semi]) {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference (between `&` and `;`) stands for.
fn reference(name: &str) -> Option<char> {
    let code = match name {
        "amp" => return Some('&'),
        "lt" => return Some('<'),
        "gt" => return Some('>'),
        "quot" => return Some('"'),
        "apos" => return Some('\''),
        _ => {
            let number = name.strip_prefix('#')?;
            let (digits, radix) = match number.strip_prefix(['x', 'X']) {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            // Digits only: `u32` parsing would take a sign too.
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return None;
            }
            u32::from_str_radix(digits, radix).ok()?
        }
    };
    char::from_u32(code).filter(|&c| is_xml_char(c))
}

/// Whether XML allows the character in a document (`Char` of the XML 1.0 grammar).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn parse_report(xml: &str, stem: &str, src: &str, member: &str, issues: &mut Issues) -> Report {
    let mut rep = Report {
        dataset: NAME,
        report_id: String::new(),
        findings: None,
        impression: None,
        mesh_major: Vec::new(),
        mesh_minor: Vec::new(),
        image_ids: Vec::new(),
    };
    let nonempty = |t: &Tag| {
        t.text
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    scan(xml, |t| match t.name {
        "uId" if rep.report_id.is_empty() => {
            rep.report_id = t.attr("id").unwrap_or("").trim().to_string();
        }
        "AbstractText" => match t.attr("Label").map(str::to_ascii_uppercase).as_deref() {
            Some("FINDINGS") => rep.findings = nonempty(&t),
            Some("IMPRESSION") => rep.impression = nonempty(&t),
            _ => {}
        },
        "major" => rep.mesh_major.extend(nonempty(&t)),
        "automatic" | "minor" => rep.mesh_minor.extend(nonempty(&t)),
        "parentImage" => match t.attr("id").map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) if !rep.image_ids.iter().any(|x| x.as_str() == id) => {
                rep.image_ids.push(id.to_string())
            }
            Some(_) => {}
            None => issues.push(
                src,
                None,
                Some(member),
                None,
                "parentImage without an id; ignored",
            ),
        },
        _ => {}
    });
    if rep.report_id.is_empty() {
        issues.push(
            src,
            None,
            Some(member),
            None,
            format!("no <uId id=…>: report id taken from the file name, '{stem}'"),
        );
        rep.report_id = stem.to_string();
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_support::{gzip, shared_datasets, write_fixture};

    fn report_xml(
        uid: &str,
        findings: &str,
        majors: &[&str],
        autos: &[&str],
        images: &[&str],
    ) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<eCitation>\n   <meta type=\"rr\"/>\n   <uId id=\"{uid}\"/>\n<!-- a comment <major>not this</major> -->\n   <MedlineCitation Owner=\"x\">\n      <Abstract>\n         <AbstractText Label=\"COMPARISON\">None.</AbstractText>\n         <AbstractText Label=\"FINDINGS\">{findings}</AbstractText>\n         <AbstractText Label=\"IMPRESSION\"/>\n      </Abstract>\n   </MedlineCitation>\n   <MeSH>\n"
        );
        for m in majors {
            s += &format!("      <major>{m}</major>\n");
        }
        for a in autos {
            s += &format!("      <automatic>{a}</automatic>\n");
        }
        s += "   </MeSH>\n";
        for i in images {
            s += &format!(
                "   <parentImage id=\"{i}\">\n      <figureId>F1</figureId>\n      <caption>Chest</caption>\n   </parentImage>\n"
            );
        }
        s + "</eCitation>\n"
    }

    fn tgz<B: AsRef<[u8]>>(members: &[(&str, B)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in members {
            let body = body.as_ref();
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, body).unwrap();
        }
        gzip(&b.into_inner().unwrap())
    }

    const META: &str = "\
imageid,Accession Number,Image Type,Patient ID,Patient's Birth Date,Patient's Sex,Study Date,Study Instance UID,View Position
CXR7_IM-0071-3001,,\"['DERIVED', 'PRIMARY']\",1,19700615,,20120614,9.1,PA
CXR7_IM-0071-4001,,,1,19700615,,20120615,9.1,LL
CXR8_IM-0082-1001,,,2,18500101,,20120101,9.2,AP
CXR9_IM-0093-1001,,,3,1970,,20120101,9.3,WEIRD
CXR9_IM-0093-1001,,,3,,,,9.3,PA
";

    /// The rows and issues of the header fixture [`META`] and these reports.
    fn read_with_reports<B: AsRef<[u8]>>(members: &[(&str, B)]) -> (DatasetRows, Issues) {
        let dir = tempfile::tempdir().unwrap();
        let csv = write_fixture(dir.path(), "meta.csv.gz", &gzip(META.as_bytes()));
        let tgz_path = write_fixture(dir.path(), "reports.tgz", &tgz(members));
        let mut issues = Issues::default();
        let rows = read(
            &[tgz_path, csv],
            &crate::datasets::LabelMap::default(),
            &mut issues,
        )
        .unwrap();
        (rows, issues)
    }

    /// Reports in the encodings XML allows, and with a document type declaration,
    /// read as a UTF-8 one is: the same MeSH terms and text.
    #[test]
    fn reports_in_other_encodings_and_with_a_doctype_are_read() {
        let utf8 = report_xml(
            "CXR7",
            "Pleural effusión.",
            &["Effusion"],
            &[],
            &["CXR7_IM-0071-3001"],
        );
        let latin1: Vec<u8> = utf8
            .replace("encoding=\"utf-8\"", "encoding = 'ISO-8859-1'")
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(
            utf8.replace("CXR7", "CXR8")
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        let doctype = utf8.replace("CXR7", "CXR9").replace(
            "<eCitation>",
            "<!DOCTYPE eCitation [\n  <!ELEMENT eCitation ANY>\n  <!ENTITY x \"y\">\n]>\n<eCitation>",
        );
        let (rows, issues) = read_with_reports(&[
            ("ecgen-radiology/1.xml", latin1),
            ("ecgen-radiology/2.xml", utf16),
            ("ecgen-radiology/3.xml", doctype.into_bytes()),
        ]);
        // Rows about the fixture's images, none about a report skipped.
        assert!(
            issues.rows().iter().all(|i| !i.issue.contains("skipped")),
            "{:?}",
            issues.rows()
        );
        let reports: Vec<_> = rows
            .reports
            .iter()
            .map(|r| {
                (
                    r.report_id.as_str(),
                    r.findings.as_deref(),
                    r.mesh_major.clone(),
                )
            })
            .collect();
        let want = |id| (id, Some("Pleural effusión."), vec!["Effusion".to_string()]);
        assert_eq!(reports, [want("CXR7"), want("CXR8"), want("CXR9")]);
    }

    /// An image id of a report with `..` would make a path out of the release's
    /// folder: the image is kept with a NULL path and a `data_issues` row naming the
    /// report.
    #[test]
    fn a_path_out_of_the_release_is_noted_at_its_report() {
        let (rows, issues) = read_with_reports(&[(
            "ecgen-radiology/1.xml",
            report_xml(
                "CXR7",
                "",
                &["normal"],
                &[],
                &["CXR7_IM-0071-3001", "../../etc/passwd"],
            ),
        )]);
        let path = |id: &str| {
            let image = rows.images.iter().find(|i| &*i.image_id == id).unwrap();
            image.path.as_deref().map(str::to_string)
        };
        assert_eq!(
            path("CXR7_IM-0071-3001").as_deref(),
            Some("CXR7_IM-0071-3001.png")
        );
        assert_eq!(path("../../etc/passwd"), None);
        let noted: Vec<_> = issues
            .rows()
            .iter()
            .filter(|i| i.issue == crate::datasets::common::PATH_LEAVES_ROOT)
            .map(|i| (i.field.as_deref(), i.value.as_deref()))
            .collect();
        assert_eq!(
            noted,
            [(Some("ecgen-radiology/1.xml"), Some("../../etc/passwd"))]
        );
    }

    #[test]
    fn a_report_nobody_indexed_labels_nothing() {
        let (rows, issues) = read_with_reports(&[
            (
                "ecgen-radiology/1.xml",
                report_xml("CXR7", "", &["No Indexing"], &[], &["CXR7_IM-0071-3001"]),
            ),
            (
                "ecgen-radiology/2.xml",
                report_xml("CXR8", "", &["normal"], &[], &["CXR8_IM-0082-1001"]),
            ),
            (
                "ecgen-radiology/3.xml",
                report_xml("CXR9", "", &[], &[], &["CXR9_IM-0090-1001"]),
            ),
        ]);
        // A report without any major heading is said as one nobody indexed.
        assert!(
            issues
                .rows()
                .iter()
                .any(|i| i.field.as_deref() == Some("ecgen-radiology/3.xml")
                    && i.issue.contains("no MeSH major heading")),
            "{:?}",
            issues.rows()
        );
        // Only the normal report labels its image; the others' images have no label.
        let labelled: Vec<(&str, &str)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.raw_label))
            .collect();
        assert_eq!(labelled, [("CXR8_IM-0082-1001", "normal")]);
        let said = issues.rows().iter().find(|i| {
            i.field.as_deref() == Some("ecgen-radiology/1.xml")
                && i.value.as_deref() == Some("No Indexing")
        });
        assert!(
            said.is_some_and(|i| i.issue.contains("not indexed")),
            "{:?}",
            issues.rows()
        );
    }

    #[test]
    fn fixture() {
        let (rows, issues) = read_with_reports(&[
            (
                "ecgen-radiology/1.xml",
                report_xml(
                    "CXR7",
                    "Heart size &lt; normal &amp; clear.",
                    &[
                        "Opacity/lung/base/left",
                        "Opacity/lung/apex",
                        "Pulmonary Atelectasis/base",
                        "Thing ",
                    ],
                    &["atelectases"],
                    &["CXR7_1_IM-0071-3001", "CXR7_1_IM-0071-4001"],
                ),
            ),
            (
                "ecgen-radiology/2.xml",
                report_xml(
                    "CXR8",
                    "",
                    &["normal"],
                    &[],
                    &["CXR8_IM-0082-1001", "CXR6_IM-0066-1001"],
                ),
            ),
            ("ecgen-radiology/readme.txt", "not xml".to_string()),
        ]);

        let ids: Vec<&str> = rows.images.iter().map(|i| &*i.image_id).collect();
        assert_eq!(
            ids,
            [
                "CXR7_IM-0071-3001",
                "CXR7_IM-0071-4001",
                "CXR8_IM-0082-1001",
                "CXR9_IM-0093-1001",
                "CXR6_IM-0066-1001"
            ]
        );
        let i0 = &rows.images[0];
        assert_eq!(
            (i0.view, i0.frontal, i0.sex, i0.age),
            (Some("PA"), Some(true), None, Some(41.0))
        );
        assert_eq!(i0.patient_id.as_deref(), Some("1"));
        assert_eq!(i0.study_id.as_deref(), Some("9.1"));
        assert_eq!(i0.path.as_deref(), Some("CXR7_1_IM-0071-3001.png"));
        let i1 = &rows.images[1];
        assert_eq!(
            (i1.view, i1.frontal, i1.age),
            (Some("LATERAL"), Some(false), Some(42.0))
        );
        assert_eq!(rows.images[2].age, None);
        assert_eq!(rows.images[3].view, Some("OTHER"));
        assert_eq!(
            rows.images[3].path.as_deref(),
            Some("CXR9_IM-0093-1001.png")
        );
        assert_eq!(rows.images[4].view, None);

        assert_eq!(rows.reports.len(), 2);
        let r = &rows.reports[0];
        assert_eq!(r.report_id, "CXR7");
        assert_eq!(r.findings.as_deref(), Some("Heart size < normal & clear."));
        assert_eq!(r.impression, None);
        assert_eq!(r.mesh_major.len(), 4);
        assert_eq!(r.mesh_minor, ["atelectases"]);
        assert_eq!(r.image_ids, ["CXR7_IM-0071-3001", "CXR7_IM-0071-4001"]);
        assert_eq!(rows.reports[1].findings, None);

        let labels: Vec<(&str, &str, Option<&str>)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.raw_label, l.finding))
            .collect();
        assert_eq!(
            labels,
            [
                ("CXR7_IM-0071-3001", "Opacity", Some("Lung_Opacity")),
                ("CXR7_IM-0071-4001", "Opacity", Some("Lung_Opacity")),
                (
                    "CXR7_IM-0071-3001",
                    "Pulmonary Atelectasis",
                    Some("Atelectasis")
                ),
                (
                    "CXR7_IM-0071-4001",
                    "Pulmonary Atelectasis",
                    Some("Atelectasis")
                ),
                ("CXR7_IM-0071-3001", "Thing", None),
                ("CXR7_IM-0071-4001", "Thing", None),
                ("CXR8_IM-0082-1001", "normal", None),
                ("CXR6_IM-0066-1001", "normal", None),
            ]
        );
        assert!(
            rows.labels
                .iter()
                .all(|l| l.value == 1 && &*l.source == "openi_mesh")
        );

        #[allow(clippy::type_complexity)]
        let got: Vec<(&str, Option<i64>, Option<&str>, Option<&str>)> = issues
            .rows()
            .iter()
            .map(|i| {
                (
                    i.source_file.as_str(),
                    i.line,
                    i.field.as_deref(),
                    i.value.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("meta.csv.gz", None, Some("Patient's Sex"), None),
                (
                    "meta.csv.gz",
                    Some(4),
                    Some("Patient's Birth Date"),
                    Some("18500101")
                ),
                ("meta.csv.gz", Some(5), Some("View Position"), Some("WEIRD")),
                (
                    "meta.csv.gz",
                    Some(5),
                    Some("Patient's Birth Date"),
                    Some("1970")
                ),
                (
                    "meta.csv.gz",
                    Some(6),
                    Some("imageid"),
                    Some("CXR9_IM-0093-1001")
                ),
                (
                    "reports.tgz",
                    None,
                    Some("ecgen-radiology/1.xml"),
                    Some("CXR7_1_IM-0071-3001")
                ),
                (
                    "reports.tgz",
                    None,
                    Some("ecgen-radiology/1.xml"),
                    Some("CXR7_1_IM-0071-4001")
                ),
                (
                    "reports.tgz",
                    None,
                    Some("ecgen-radiology/1.xml"),
                    Some("Thing")
                ),
                (
                    "reports.tgz",
                    None,
                    Some("ecgen-radiology/2.xml"),
                    Some("CXR6_IM-0066-1001")
                ),
                (
                    "meta.csv.gz",
                    None,
                    Some("imageid"),
                    Some("CXR9_IM-0093-1001")
                ),
            ]
        );
    }

    #[test]
    fn scanner_edge_cases_never_panic() {
        let xml = report_xml("CXR5", "a", &["x/y"], &[], &["CXR5_IM-1"]);
        for cut in 0..xml.len() {
            if xml.is_char_boundary(cut) {
                let _ = parse_report(&xml[..cut], "5", "s", "m", &mut Issues::default());
            }
        }
        let mut issues = Issues::default();
        let r = parse_report(
            "<eCitation><major>a &#x41;&#66;&bogus; &</major>",
            "7",
            "s",
            "m",
            &mut issues,
        );
        assert_eq!(r.report_id, "7");
        assert_eq!(r.mesh_major, ["a AB&bogus; &"]);
        assert_eq!(issues.len(), 1);
        assert_eq!(decode("&#1114112;&#xZZ;"), "&#1114112;&#xZZ;");
    }

    /// Every element the reader takes, written in the forms XML allows: CDATA
    /// sections, comments and processing instructions inside the text, references,
    /// white space and attributes in start and end tags. Expected values by hand.
    #[test]
    fn leaf_elements_are_read_as_xml_readers_read_them() {
        let xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE eCitation>\n<eCitation >\n\
            <uId  id = 'CXR3' />\n\
            <MedlineCitation><Abstract>\
            <AbstractText Label=\"FINDINGS\" >Heart &lt;3 cm&gt; &amp; lungs \
            <![CDATA[a<b & c]]>&#x41;&#66;<!-- said -->.</AbstractText >\
            <AbstractText\nLabel='IMPRESSION'><?pi x?>Normal &quot;heart&quot; &apos;ok&apos;</AbstractText>\
            </Abstract></MedlineCitation>\n\
            <MeSH><major><![CDATA[Cardiomegaly]]></major><major>Effusion<!-- c --></major>\
            <major lang=\"en\" >Mass</major ><automatic><?x y?>Nodule</automatic>\
            <minor>Den<![CDATA[sity]]></minor></MeSH>\n\
            <parentImage id=\"CXR3_IM-1\" note=\"a>b\"><figureId>F1</figureId></parentImage>\n\
            <parentImage\tid=\"CXR3_IM-2\"/>\n</eCitation >\n";
        let mut issues = Issues::default();
        let r = parse_report(xml, "3", "s", "m", &mut issues);
        assert_eq!(r.report_id, "CXR3");
        assert_eq!(
            r.findings.as_deref(),
            Some("Heart <3 cm> & lungs a<b & cAB.")
        );
        assert_eq!(r.impression.as_deref(), Some("Normal \"heart\" 'ok'"));
        assert_eq!(r.mesh_major, ["Cardiomegaly", "Effusion", "Mass"]);
        assert_eq!(r.mesh_minor, ["Nodule", "Density"]);
        assert_eq!(r.image_ids, ["CXR3_IM-1", "CXR3_IM-2"]);
        assert_eq!(issues.len(), 0, "{:?}", issues.rows());
        assert_eq!(unclosed_root(xml), None);
    }

    /// Line ends in text are `\n` (a `&#13;` stays), attribute values have white space
    /// as spaces; a reference to a character XML forbids, a signed number or an
    /// unknown entity is kept as written.
    #[test]
    fn text_and_attributes_are_normalised_as_xml_says() {
        let mut issues = Issues::default();
        let r = parse_report(
            "<eCitation><AbstractText Label=\"FINDINGS\">a\r\nb&#13;c\rd</AbstractText></eCitation>",
            "1",
            "s",
            "m",
            &mut issues,
        );
        assert_eq!(r.findings.as_deref(), Some("a\nb\rc\nd"));
        assert_eq!(
            parse_attrs(" a = 'x\ty\r\nz&#10;' b=\"p>q\""),
            [("a", "x y z\n".to_string()), ("b", "p>q".to_string())]
        );
        assert_eq!(
            decode("&#0;&#+65;&#x;&#xD800;&#xFFFE;&nbsp;&#65;&#x1F600;&#X42;"),
            "&#0;&#+65;&#x;&#xD800;&#xFFFE;&nbsp;A\u{1F600}B"
        );
    }

    /// A report is whole when it ends by closing its root element, with white space
    /// before the end tag's `>` and comments or processing instructions after it.
    #[test]
    fn a_report_is_cut_short_only_when_its_root_is_left_open() {
        for whole in [
            "<eCitation><uId id=\"1\"/></eCitation >",
            "<eCitation>x</eCitation\n>\n<!-- end -->\n<?pi x?>\n",
            "<?xml version=\"1.0\"?><eCitation/>\n",
        ] {
            assert_eq!(unclosed_root(whole), None, "{whole}");
        }
        for cut in [
            "<eCitation><major>a</major>",
            "<eCitation><eCitation></eCitation>",
            "<eCitation></eCitation><x",
            "<eCitation><!-- </eCitation> -->",
            "<eCitation></eCitation>junk",
            "<eCitation><a b=\"</eCitation>",
        ] {
            assert_eq!(unclosed_root(cut).as_deref(), Some("eCitation"), "{cut}");
        }
    }

    /// The sweep's reports: a MeSH term in a CDATA section or before a comment, and an
    /// end tag `</eCitation >`, each labels its image; none is skipped.
    #[test]
    fn reports_in_valid_xml_forms_label_their_images() {
        let report = |uid: &str, major: &str, image: &str, end: &str| {
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<eCitation>\n<uId id=\"{uid}\"/>\n\
                 <MeSH>\n<major>{major}</major>\n</MeSH>\n<parentImage id=\"{image}\"/>\n{end}\n"
            )
        };
        let (rows, issues) = read_with_reports(&[
            (
                "ecgen-radiology/1.xml",
                report(
                    "CXR7",
                    "<![CDATA[Cardiomegaly]]>",
                    "CXR7_IM-0071-3001",
                    "</eCitation>",
                ),
            ),
            (
                "ecgen-radiology/2.xml",
                report(
                    "CXR8",
                    "Cardiomegaly<!-- checked -->",
                    "CXR8_IM-0082-1001",
                    "</eCitation>",
                ),
            ),
            (
                "ecgen-radiology/3.xml",
                report("CXR9", "Cardiomegaly", "CXR9_IM-0093-1001", "</eCitation >"),
            ),
            (
                // One heading in two spellings: one label, the first spelling's.
                "ecgen-radiology/4.xml",
                report(
                    "CXR10",
                    "Lymph Nodes</major><major>lymph  nodes/enlarged",
                    "CXR10_IM-0100-1001",
                    "</eCitation>",
                ),
            ),
        ]);
        assert!(
            issues.rows().iter().all(|i| !i.issue.contains("skipped")),
            "{:?}",
            issues.rows()
        );
        let labels: Vec<(&str, &str)> = rows
            .labels
            .iter()
            .map(|l| (&*l.image_id, &*l.raw_label))
            .collect();
        assert_eq!(
            labels,
            [
                ("CXR7_IM-0071-3001", "Cardiomegaly"),
                ("CXR8_IM-0082-1001", "Cardiomegaly"),
                ("CXR9_IM-0093-1001", "Cardiomegaly"),
                ("CXR10_IM-0100-1001", "Lymph Nodes"),
            ]
        );
    }

    /// A tgz of members of any tar type: (name, type, link target, body).
    fn tgz_typed(members: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, body) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, name, *body).unwrap();
        }
        gzip(&b.into_inner().unwrap())
    }

    /// Links and directories named `.xml` are said to be skipped; an archive with no
    /// regular `.xml` file is refused as an empty one is.
    #[test]
    fn members_not_read_are_said_and_an_archive_without_reports_refused() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let xml = report_xml("CXR7", "", &["normal"], &[], &["CXR7_IM-0071-3001"]);
        let dir = tempfile::tempdir().unwrap();
        let map = crate::datasets::LabelMap::default();
        let p = write_fixture(
            dir.path(),
            "reports.tgz",
            &tgz_typed(&[
                ("ecgen-radiology/1.xml", Regular, "", xml.as_bytes()),
                ("ecgen-radiology/3.xml", Symlink, "1.xml", b""),
                ("ecgen-radiology/4.xml", Link, "ecgen-radiology/1.xml", b""),
                ("ecgen-radiology/5.xml", Directory, "", b""),
                ("ecgen-radiology/readme.txt", Regular, "", b"hi"),
            ]),
        );
        let mut issues = Issues::default();
        let rows = read_files(None, Some(&p), &map, &mut issues).unwrap();
        assert_eq!(rows.reports.len(), 1);
        let skipped: Vec<(&str, &str)> = issues
            .rows()
            .iter()
            .filter(|i| i.issue.contains("skipped"))
            .map(|i| {
                let field = i.field.as_deref().unwrap_or("");
                (field.trim_end_matches('/'), i.issue.as_str())
            })
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "ecgen-radiology/3.xml",
                    "a symbolic link to '1.xml': links are not followed; skipped"
                ),
                (
                    "ecgen-radiology/4.xml",
                    "a hard link to 'ecgen-radiology/1.xml': links are not followed; skipped"
                ),
                (
                    "ecgen-radiology/5.xml",
                    "a directory, not a regular file: skipped"
                ),
            ]
        );

        let none = write_fixture(
            dir.path(),
            "none.tgz",
            &tgz_typed(&[
                ("ecgen-radiology/readme.txt", Regular, "", b"hi"),
                ("ecgen-radiology/3.xml", Symlink, "1.xml", b""),
            ]),
        );
        let m = read_files(None, Some(&none), &map, &mut Issues::default())
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("none.tgz")
                && m.contains("no .xml file (2 member(s)")
                && m.contains("nothing was written"),
            "{m}"
        );
    }

    #[test]
    fn wrong_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_fixture(
            dir.path(),
            "siim.csv",
            b"ImageId, EncodedPixels\n1.2.3,-1\n",
        );
        let m = read(
            &[p],
            &crate::datasets::LabelMap::default(),
            &mut Issues::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("siim.csv") && m.contains("'View Position'"),
            "{m}"
        );
        let bad = write_fixture(dir.path(), "bad.tgz", &gzip(&[b'x'; 1024]));
        assert!(
            read_files(
                None,
                Some(bad.as_path()),
                &crate::datasets::LabelMap::default(),
                &mut Issues::default()
            )
            .is_err()
        );
    }

    /// Real files: 7,469 header rows and 3,955 reports from SOURCES.md. The rest from
    /// one independent Python run (ElementTree over the extracted archive, csv over the
    /// header file): 7,470 distinct `parentImage` ids, of which 7,467 are header ids,
    /// 2 are `CXR1_1_IM-…` spellings of header ids and 1 (`CXR1000_IM-0003-1001`) is
    /// missing from the header file; 104 reports cover no image; 95 reports have only
    /// `No Indexing` as major heading, 3 of them covering no image; 8,298 `major` and
    /// 7,047 `automatic` elements; non-empty FINDINGS 3,425, IMPRESSION 3,921; distinct (image, heading) pairs 14,768 (of which
    /// `normal` 2,696, and 172 `No Indexing`, which give no label row: 14,596 rows); view PA 3,593, AP 423, lateral 717+119+29+2 = 867, empty 2,586;
    /// 3,851 distinct `Patient ID`; completed-year ages: none outside 0–120, sum 370,458.
    #[test]
    fn real_files() {
        let Some(dir) = shared_datasets() else { return };
        let mut issues = Issues::default();
        let rows = read(
            &[
                dir.join("nlmcxr_dicom_metadata.csv.gz"),
                dir.join("NLMCXR_reports.tgz"),
            ],
            &crate::datasets::LabelMap::default(),
            &mut issues,
        )
        .unwrap();
        assert_eq!(rows.images.len(), 7_470);
        assert_eq!(rows.reports.len(), 3_955);
        assert_eq!(
            rows.reports
                .iter()
                .filter(|r| r.image_ids.is_empty())
                .count(),
            104
        );
        assert_eq!(
            rows.reports
                .iter()
                .map(|r| r.mesh_major.len())
                .sum::<usize>(),
            8_298
        );
        assert_eq!(
            rows.reports
                .iter()
                .map(|r| r.mesh_minor.len())
                .sum::<usize>(),
            7_047
        );
        assert_eq!(
            rows.reports
                .iter()
                .map(|r| r.image_ids.len())
                .sum::<usize>(),
            7_470
        );
        assert_eq!(
            rows.reports.iter().filter(|r| r.findings.is_some()).count(),
            3_425
        );
        assert_eq!(
            rows.reports
                .iter()
                .filter(|r| r.impression.is_some())
                .count(),
            3_921
        );
        assert_eq!(rows.labels.len(), OPENI_LABELS);
        assert_eq!(
            rows.labels
                .iter()
                .filter(|l| &*l.raw_label == "normal")
                .count(),
            OPENI_NORMAL
        );
        let n = |v: &str| rows.images.iter().filter(|i| i.view == Some(v)).count();
        assert_eq!((n("PA"), n("AP"), n("LATERAL")), (3_593, 423, 867));
        assert_eq!(
            rows.images.iter().filter(|i| i.view.is_none()).count(),
            2_586 + 1
        );
        let patients: HashSet<&str> = rows
            .images
            .iter()
            .filter_map(|i| i.patient_id.as_deref())
            .collect();
        assert_eq!(patients.len(), 3_851);
        assert!(rows.images.iter().all(|i| i.sex.is_none()));
        let ages: f64 = rows
            .images
            .iter()
            .filter_map(|i| i.age)
            .map(f64::from)
            .sum();
        // Every image: the one the header file lacks takes the age of its report's
        // other images (CXR1000, born 1955-08-20, studied 2011-03-28: 55).
        assert_eq!(
            rows.images.iter().filter(|i| i.age.is_some()).count(),
            7_470
        );
        assert_eq!(ages, OPENI_AGE_SUM);
        let respelled = issues
            .rows()
            .iter()
            .filter(|i| i.issue.contains("spelled differently"))
            .count();
        assert_eq!(respelled, 2);
        let missing = issues
            .rows()
            .iter()
            .filter(|i| i.issue.contains("not in the DICOM header"))
            .count();
        assert_eq!(missing, 1);
        // 95 reports whose only major heading is `No Indexing`, 3 of them covering no
        // image (the same Python run).
        let not_indexed: Vec<&str> = issues
            .rows()
            .iter()
            .filter(|i| i.issue.starts_with("report not indexed"))
            .map(|i| i.issue.as_str())
            .collect();
        assert_eq!(not_indexed.len(), 95);
        assert_eq!(
            not_indexed
                .iter()
                .filter(|i| i.contains("covers no image"))
                .count(),
            3
        );
    }

    const OPENI_LABELS: usize = 14_768 - 172;
    const OPENI_NORMAL: usize = 2_696;
    const OPENI_AGE_SUM: f64 = 370_458.0 + 55.0;
}
