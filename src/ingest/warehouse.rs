//! The warehouse on disk: Parquet writing, the manifest, and the atomic swap that
//! replaces a previous warehouse only once a new one is complete.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Version of the table layout in SCHEMA.md; bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// The manifest file name inside a warehouse.
pub const MANIFEST: &str = "manifest.json";

/// `manifest.json`: what was ingested, from what, when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version of the tables.
    pub schema_version: u32,
    /// Version of cxr that wrote the warehouse.
    pub cxr_version: String,
    /// UTC time of the ingest, RFC 3339.
    pub created: String,
    /// Which release the metadata file is: `2017` (original) or `2020` (revision).
    pub metadata_revision: String,
    /// Every input file.
    pub inputs: Vec<InputFile>,
    /// Row count of every table.
    pub tables: std::collections::BTreeMap<String, u64>,
}

/// One input file of an ingest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFile {
    /// What the file was used for (`metadata`, `bbox`, `expert`, `split_train_val`, ...).
    pub role: String,
    /// The path as given.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
}

impl InputFile {
    /// Describes `path`, hashing its content.
    pub fn describe(role: &str, path: &Path) -> Result<InputFile> {
        let mut f = File::open(path).ctx(|| format!("{}: cannot open", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .ctx(|| format!("{}: cannot read", path.display()))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok(InputFile {
            role: role.to_string(),
            path: path.display().to_string(),
            size,
            sha256: hex(&hasher.finalize()),
        })
    }
}

impl InputFile {
    /// Describes a large input (an image archive or folder) without hashing it:
    /// the hash is of its path, size and modification time, not its content.
    pub fn describe_quick(role: &str, path: &Path) -> Result<InputFile> {
        let meta = std::fs::metadata(path).ctx(|| format!("{}: cannot stat", path.display()))?;
        Ok(InputFile {
            role: role.to_string(),
            path: path.display().to_string(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            sha256: String::new(),
        })
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// Reads `<warehouse>/manifest.json`.
    pub fn load(warehouse: &Path) -> Result<Manifest> {
        let path = warehouse.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            Error::Warehouse(format!(
                "no warehouse at {} (missing {MANIFEST}); run `cxr ingest` first",
                warehouse.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Warehouse(format!("{}: unreadable manifest: {e}", path.display())))
    }
}

/// Writes a polars frame as one ZSTD-compressed Parquet file and syncs it to disk.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = File::create(path).ctx(|| format!("{}: cannot create", path.display()))?;
    ParquetWriter::new(&file)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)?;
    file.sync_all()
        .ctx(|| format!("{}: cannot sync", path.display()))
}

/// A new warehouse being built beside the target directory. Dropped without
/// [`Staging::commit`], it is removed and the target is untouched.
pub struct Staging {
    dir: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates an empty staging directory next to `target`.
    pub fn new(target: &Path) -> Result<Staging> {
        let parent = parent_of(target);
        std::fs::create_dir_all(&parent)
            .ctx(|| format!("{}: cannot create directory", parent.display()))?;
        recover(target)?;
        refuse_foreign(target)?;
        remove_stale(target);
        let dir = sibling(target, &format!("staging-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).ctx(|| format!("{}: cannot remove", dir.display()))?;
        }
        std::fs::create_dir(&dir).ctx(|| format!("{}: cannot create", dir.display()))?;
        Ok(Staging {
            dir,
            target: target.to_path_buf(),
            committed: false,
        })
    }

    /// Path of a file inside the staging directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Swaps the staging directory in for the target: the old warehouse is moved
    /// aside, the new one renamed into place, the old one removed.
    pub fn commit(mut self) -> Result<()> {
        let old = sibling(&self.target, &format!("old-{}", std::process::id()));
        let had_old = self.target.exists();
        if had_old {
            std::fs::rename(&self.target, &old).ctx(|| {
                format!(
                    "{}: cannot move the old warehouse aside",
                    self.target.display()
                )
            })?;
        }
        if let Err(e) = std::fs::rename(&self.dir, &self.target) {
            if had_old {
                let _ = std::fs::rename(&old, &self.target);
            }
            return Err(Error::io(
                format!(
                    "{}: cannot move the new warehouse into place",
                    self.target.display()
                ),
                e,
            ));
        }
        self.committed = true;
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A commit replaces the target directory: never do that to a directory that is
/// not a cxr warehouse (a user's data folder given as `--warehouse` by mistake).
fn refuse_foreign(target: &Path) -> Result<()> {
    if !target.exists() || target.join(MANIFEST).exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(target)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if empty {
        return Ok(());
    }
    Err(Error::Warehouse(format!(
        "refusing to replace {}: it is not a cxr warehouse (no {MANIFEST}) and not empty; choose another --warehouse",
        target.display()
    )))
}

fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `<parent>/.<name>.<suffix>`: hidden siblings of the warehouse.
pub fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "warehouse".into());
    parent_of(target).join(format!(".{name}.{suffix}"))
}

/// If a process died between the two renames of a commit, the previous warehouse
/// sits in an `.old-<pid>` sibling: put it back.
pub fn recover(target: &Path) -> Result<()> {
    if target.exists() {
        return Ok(());
    }
    for old in siblings_with(target, "old-") {
        // A live process is between its two renames: its commit is not ours to undo.
        if old.join(MANIFEST).exists() && !owner_alive(&old) {
            std::fs::rename(&old, target)
                .ctx(|| format!("{}: cannot restore the previous warehouse", old.display()))?;
            return Ok(());
        }
    }
    Ok(())
}

/// Removes staging and old directories left by processes that no longer run.
fn remove_stale(target: &Path) {
    for kind in ["staging-", "old-"] {
        for dir in siblings_with(target, kind) {
            if !owner_alive(&dir) || owner(&dir) == Some(std::process::id()) {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

/// The process id in a `.…-<pid>` sibling's name.
fn owner(dir: &Path) -> Option<u32> {
    dir.to_string_lossy()
        .rsplit('-')
        .next()
        .and_then(|p| p.parse().ok())
}

/// Whether the process that made a sibling directory still runs (Linux `/proc`).
fn owner_alive(dir: &Path) -> bool {
    owner(dir).is_some_and(|p| p != std::process::id() && Path::new(&format!("/proc/{p}")).exists())
}

fn siblings_with(target: &Path, kind: &str) -> Vec<PathBuf> {
    let prefix = sibling(target, kind);
    let prefix = prefix.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(prefix) = prefix else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(parent_of(target)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}
