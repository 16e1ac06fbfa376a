//! Everything cxr keeps on disk: the warehouse layout, its manifest, commits and
//! snapshot reads, and every Parquet file cxr reads or writes.
//!
//! A warehouse is a directory:
//!
//! ```text
//! W/manifest.json     the current version: which data directory, row counts, inputs
//! W/v-<id>/NAME.parquet  one immutable directory of tables per commit
//! W/.cxr.lock         held by the one process writing (a lock, not a marker)
//! ```
//!
//! A commit writes a new `v-<id>` directory, then replaces `manifest.json`
//! atomically; table files are never rewritten in place. A reader resolves every
//! table through the one manifest it read and holds a shared lock on that version,
//! so a query never sees half of two versions, and old versions are removed only
//! when no reader holds them. Files cxr did not write are never deleted.

mod commit;
pub mod files;
pub mod parquet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use commit::{Staging, WriteLock, collect_unread_versions};
pub use files::{AtomicFile, hash_file, hex, sha256_hex, write_atomic};

/// Version of the table layout in docs/SCHEMA.md; bumped on any breaking change.
/// Version 2: tables live in `v-<id>/` directories named by the manifest. Version 5:
/// `studies` counts a finding new or resolved only between known states.
pub const SCHEMA_VERSION: u32 = 6;

/// The manifest file name inside a warehouse.
pub const MANIFEST: &str = "manifest.json";

/// The `format` value that marks a manifest as cxr's.
pub const FORMAT: &str = "cxr-warehouse";

/// The file cxr writes into every folder it exports (`export --tables` copies the
/// warehouse's manifest there too): such a folder is not a warehouse.
pub const EXPORT_MARKER: &str = ".cxr-export";

/// `manifest.json`: what was ingested, from what, when, and where the tables are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `cxr-warehouse`: a directory is replaced only when it says so.
    #[serde(default)]
    pub format: String,
    /// Layout version of the tables.
    pub schema_version: u32,
    /// Version of cxr that wrote the warehouse.
    pub cxr_version: String,
    /// UTC time of the commit, RFC 3339.
    pub created: String,
    /// The data directory of this version (`v-<id>`), relative to the warehouse.
    #[serde(default)]
    pub data: String,
    /// Which release the NIH metadata file is: `2017` (original) or `2020` (revision).
    pub metadata_revision: String,
    /// Every input file.
    pub inputs: Vec<InputFile>,
    /// Row count of every table.
    pub tables: BTreeMap<String, u64>,
}

/// One input of an ingest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InputFile {
    /// What the input was used for (`metadata`, `bbox`, `expert`, `images`, ...).
    pub role: String,
    /// The path as given.
    pub path: String,
    /// Size in bytes (for a folder: the sum of its members' sizes).
    pub size: u64,
    /// SHA-256 of the file's bytes; for a folder, of its members' names, sizes and
    /// bytes (see [`crate::pixels::source`]). Lower-case hex.
    pub sha256: String,
}

impl InputFile {
    /// Describes a file, hashing its content.
    pub fn describe(role: &str, path: &Path) -> Result<InputFile> {
        let (size, sha256) = hash_file(path)?;
        Ok(InputFile {
            role: role.to_string(),
            path: path.display().to_string(),
            size,
            sha256,
        })
    }
}

impl Manifest {
    /// The tables this manifest names, with their files in the version folder
    /// `data`: `<name>.parquet`, or a `<name>/` folder of Parquet files. A named
    /// table whose file is missing, or is not a regular file or folder (a FIFO, a
    /// device, a link), is a damaged warehouse: an error, never an empty table.
    pub fn table_files(&self, data: &Path) -> Result<Vec<(String, PathBuf)>> {
        let kind = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| m.file_type());
        self.tables
            .keys()
            .map(|name| {
                let file = data.join(format!("{name}.parquet"));
                let dir = data.join(name);
                match (kind(&file), kind(&dir)) {
                    (Some(t), _) if t.is_file() => Ok((name.clone(), file)),
                    (_, Some(t)) if t.is_dir() => Ok((name.clone(), dir)),
                    _ => Err(Error::Warehouse(format!(
                        "{}: the table file of `{name}` is missing or not a regular file; the warehouse is damaged (run `cxr ingest` again)",
                        file.display()
                    ))),
                }
            })
            .collect()
    }

    /// A manifest for a new version, without tables or inputs yet.
    pub fn new(metadata_revision: &str) -> Manifest {
        Manifest {
            format: FORMAT.to_string(),
            schema_version: SCHEMA_VERSION,
            cxr_version: env!("CARGO_PKG_VERSION").to_string(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            data: String::new(),
            metadata_revision: metadata_revision.to_string(),
            inputs: Vec::new(),
            tables: BTreeMap::new(),
        }
    }

    /// Reads `<warehouse>/manifest.json`, or None when there is none.
    pub fn read(warehouse: &Path) -> Result<Option<(Manifest, String)>> {
        let path = warehouse.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("{}: cannot read", path.display()), e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            // What is wrong in words, not the JSON parser's ("expected ident").
            let why = match e.classify() {
                serde_json::error::Category::Data => {
                    let what = e.to_string();
                    let what = what.split(" at line ").next().unwrap_or(&what).to_string();
                    format!("{what}, line {} column {}", e.line(), e.column())
                }
                _ => format!("not valid JSON at line {} column {}", e.line(), e.column()),
            };
            Error::Warehouse(format!(
                "{}: not a cxr manifest ({why}); is {} a cxr warehouse?",
                path.display(),
                warehouse.display()
            ))
        })?;
        Ok(Some((m, sha256_hex(text.as_bytes()))))
    }

    /// Whether cxr wrote this manifest (this layout, or an older one: every cxr
    /// manifest names the cxr version that wrote it).
    fn is_cxr(&self) -> bool {
        self.format == FORMAT || !self.cxr_version.is_empty()
    }
}

/// One consistent version of a warehouse, open for reading. While it lives, its data
/// directory is not removed by later commits.
pub struct Snapshot {
    /// The warehouse directory.
    pub root: PathBuf,
    /// The data directory of this version.
    pub data: PathBuf,
    /// The manifest of this version.
    pub manifest: Manifest,
    /// SHA-256 of the manifest's bytes (the provenance of exports).
    pub manifest_sha256: String,
    _hold: commit::ReadHold,
}

impl Snapshot {
    /// Opens the current version of the warehouse at `root`.
    pub fn open(root: &Path) -> Result<Snapshot> {
        // A commit between reading the manifest and holding its version can remove
        // that version: read again (a few times) until the hold is on a live one.
        for _ in 0..20 {
            let Some((manifest, manifest_sha256)) = Manifest::read(root)? else {
                // `./warehouse`, not "no warehouse at warehouse".
                let shown = if root.is_relative() && root.components().count() == 1 {
                    Path::new(".").join(root)
                } else {
                    root.to_path_buf()
                };
                return Err(Error::Warehouse(no_warehouse_at(root, &shown)));
            };
            if !manifest.is_cxr() {
                return Err(Error::Warehouse(format!(
                    "{}: this manifest.json was not written by cxr",
                    root.display()
                )));
            }
            if manifest.schema_version != SCHEMA_VERSION {
                return Err(Error::Warehouse(format!(
                    "{} was written with schema_version {} but this cxr reads version {SCHEMA_VERSION}; run `cxr ingest -w {}` again",
                    root.display(),
                    manifest.schema_version,
                    root.display()
                )));
            }
            let data = root.join(&manifest.data);
            if let Some(hold) = commit::ReadHold::take(&data)? {
                return Ok(Snapshot {
                    root: root.to_path_buf(),
                    data,
                    manifest,
                    manifest_sha256,
                    _hold: hold,
                });
            }
            // Gone while the manifest still names it: a commit replaced both, or the
            // folder was removed by hand (then reading again will not help).
            if root.join(EXPORT_MARKER).exists() {
                return Err(Error::Usage(format!(
                    "{}: an export of a warehouse's tables (`cxr export --tables`), not a warehouse; read its Parquet files by name (`FROM '{}/images.parquet'`) or give the warehouse itself",
                    root.display(),
                    root.display()
                )));
            }
            if matches!(Manifest::read(root), Ok(Some((_, again))) if again == manifest_sha256) {
                return Err(Error::Warehouse(format!(
                    "{}: the version folder {} named by {MANIFEST} is missing or incomplete; the warehouse is damaged (run `cxr ingest` again)",
                    root.display(),
                    manifest.data
                )));
            }
        }
        Err(Error::Warehouse(format!(
            "{}: the warehouse keeps changing under this reader; try again",
            root.display()
        )))
    }

    /// The stored tables, as the manifest names them: `<name>.parquet` files and
    /// `<name>/` directories. Anything else in the version folder is not a table.
    pub fn tables(&self) -> Result<Vec<(String, PathBuf)>> {
        self.manifest.table_files(&self.data)
    }

    /// The path of a stored table.
    pub fn table(&self, name: &str) -> Option<PathBuf> {
        self.tables()
            .ok()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
    }
}

/// Why there is no warehouse at `root` (shown as `shown`), and what would make one:
/// advice that `cxr ingest` would then refuse (a folder of other files, a version
/// folder inside a warehouse) is not given.
fn no_warehouse_at(root: &Path, shown: &Path) -> String {
    let missing = format!("no warehouse at {} (missing {MANIFEST})", shown.display());
    if let Some(outer) = root.canonicalize().ok().and_then(|r| {
        r.ancestors()
            .skip(1)
            .find(|a| a.join(MANIFEST).is_file())
            .map(Path::to_path_buf)
    }) {
        return format!(
            "{missing}: it is inside the warehouse {}; give that one",
            outer.display()
        );
    }
    let others = std::fs::read_dir(root).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            !(name.starts_with(".cxr")
                || name.starts_with(".staging-")
                || name.starts_with(".pixels-"))
        })
    });
    if others {
        return format!(
            "{missing}: the folder holds other files; `cxr ingest -w` makes a warehouse in a new or empty folder"
        );
    }
    format!("{missing}; run `cxr ingest -w {}` first", root.display())
}

/// Refuses an output path inside the warehouse `root` (or equal to it): outputs are
/// never written over tables the manifest vouches for.
pub fn refuse_inside(root: &Path, output: &Path, what: &str) -> Result<()> {
    let (Some(root), Some(out)) = (resolve(root), resolve(output)) else {
        return Ok(());
    };
    if out.starts_with(&root) || root.starts_with(&out) {
        return Err(Error::Usage(format!(
            "{what} {}: inside (or containing) the warehouse {}; choose a path outside it",
            output.display(),
            root.display()
        )));
    }
    refuse_in_any_warehouse(output, what)
}

/// Refuses an output path inside any warehouse (a folder with a cxr manifest above
/// it, or the warehouse folder itself: `COPY ... TO 'W'` and a `LOCATION` write files
/// into a folder), for commands that open none (`synth`) or another one than the
/// output's.
pub fn refuse_in_any_warehouse(output: &Path, what: &str) -> Result<()> {
    refuse_below_a_warehouse(output, what, 0)
}

/// Refuses a warehouse made inside another one.
pub fn refuse_inside_another_warehouse(warehouse: &Path) -> Result<()> {
    refuse_below_a_warehouse(warehouse, "--warehouse", 1)
}

/// Refuses `output` when a warehouse is one of its folders, after the `skip` nearest.
fn refuse_below_a_warehouse(output: &Path, what: &str, skip: usize) -> Result<()> {
    let Some(out) = resolve(output) else {
        return Ok(());
    };
    for dir in out.ancestors().skip(skip) {
        // An export's folder (`export --tables`) has a manifest too, and is no
        // warehouse: writing it again is export's own `--overwrite` rule.
        let export = dir.join(EXPORT_MARKER).exists();
        if !export && dir.join(MANIFEST).is_file() && matches!(Manifest::read(dir), Ok(Some(_))) {
            let place = if dir == out { "is" } else { "is inside" };
            return Err(Error::Usage(format!(
                "{what} {}: {place} the warehouse {}; choose a path outside it",
                output.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The absolute, symlink-free form of a path whose last components may not exist yet.
pub fn resolve(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut missing = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for part in missing.iter().rev() {
                out.push(part);
            }
            return Some(lexical(&out));
        }
        // `..` after a folder that does not exist yet is kept, and applied below as
        // it will be once the folder is made (`W/x/../v-1` is `W/v-1`).
        missing.push(cur.components().next_back()?.as_os_str().to_os_string());
        cur = cur.parent()?;
    }
}

/// Removes `.` and `..` components without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
