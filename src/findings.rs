//! The 14 ChestX-ray14 findings and the normalisation of their source spellings.

/// The findings in SCHEMA.md order (alphabetical). `No Finding` is not one of them:
/// it is the empty label set.
pub const FINDINGS: [&str; 14] = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
];

/// The spelling used for "no findings" in the source files.
pub const NO_FINDING: &str = "No Finding";

/// How a source label maps onto the 14 findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// One of the 14 findings, spelled exactly as in the source.
    Exact(&'static str),
    /// One of the 14 findings, spelled differently in the source (e.g. `Infiltrate`).
    Normalised(&'static str),
    /// The `No Finding` marker.
    NoFinding,
    /// Anything else.
    Unknown,
}

/// Maps a source spelling to a finding: exact, case/spacing variants and the
/// box list's `Infiltrate` are accepted; everything else is `Unknown`.
pub fn classify(raw: &str) -> Label {
    let raw = raw.trim();
    if let Some(f) = FINDINGS.iter().find(|f| **f == raw) {
        return Label::Exact(f);
    }
    let key = squash(raw);
    if key == "nofinding" || key == "nofindings" {
        return Label::NoFinding;
    }
    let alias = match key.as_str() {
        "infiltrate" | "infiltrates" => Some("Infiltration"),
        "effusions" | "pleuraleffusion" => Some("Effusion"),
        "nodules" => Some("Nodule"),
        _ => None,
    };
    if let Some(f) = alias {
        return Label::Normalised(lookup(f).expect("alias targets are findings"));
    }
    match FINDINGS.iter().find(|f| squash(f) == key) {
        Some(f) => Label::Normalised(f),
        None => Label::Unknown,
    }
}

/// Finds a finding by name, case-insensitively and ignoring spaces/underscores.
pub fn lookup(name: &str) -> Option<&'static str> {
    lookup_in(name, &FINDINGS)
}

/// Finds a finding of `known` by a name a user wrote: in any case, words joined by
/// spaces, underscores or hyphens (`pleural thickening`, `Pleural-Thickening`).
/// Other characters name nothing: a line break or `;` in a link's finding would
/// otherwise reach the cohort's saved query and command line.
pub fn lookup_in(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let words = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-');
    if !name.trim().chars().all(words) {
        return None;
    }
    let key = squash(name);
    known.iter().copied().find(|f| squash(f) == key)
}

/// The error for a finding flag's name that is none of `known` (described as
/// `which`): a name meaning "normal" points to `--no-finding`, which is how a cohort
/// asks for images without findings.
pub fn unknown_finding(name: &str, which: &str, known: &[&str]) -> crate::Error {
    let normal = matches!(
        squash(name).as_str(),
        "nofinding" | "nofindings" | "normal" | "none" | "healthy"
    );
    crate::Error::Usage(format!(
        "unknown finding `{name}`; {}the {which} are: {}",
        if normal {
            "images without findings are asked for with --no-finding; "
        } else {
            ""
        },
        known.join(", ")
    ))
}

/// The lower-case column name of a finding in `images` (`pleural_thickening`).
pub fn column_name(finding: &str) -> String {
    finding.to_ascii_lowercase()
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_source_spellings() {
        assert_eq!(classify("Effusion"), Label::Exact("Effusion"));
        assert_eq!(classify("Infiltrate"), Label::Normalised("Infiltration"));
        assert_eq!(
            classify("pleural thickening"),
            Label::Normalised("Pleural_Thickening")
        );
        assert_eq!(classify("No Finding"), Label::NoFinding);
        assert_eq!(classify("Fracture"), Label::Unknown);
        assert_eq!(lookup("EFFUSION"), Some("Effusion"));
        assert_eq!(lookup("Covid"), None);
    }
}
