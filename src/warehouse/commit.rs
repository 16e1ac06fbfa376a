//! Writers: one at a time per warehouse (a lock file), each commit a new immutable
//! version directory named by an atomically replaced manifest; old versions go once
//! no reader holds them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::warehouse::{MANIFEST, Manifest, resolve, write_atomic};

const LOCK: &str = ".cxr.lock";
const READERS: &str = ".readers";

/// The right to write one warehouse, held until dropped. Taking it waits for any
/// other cxr process writing the same warehouse.
pub struct WriteLock {
    root: PathBuf,
    base: Option<Manifest>,
    /// Whether this lock created the directory: if nothing is committed, it goes again.
    created: bool,
    _file: File,
}

impl WriteLock {
    /// Takes the write lock of the warehouse at `root`, creating the directory if
    /// needed. Refuses a directory that holds files but no cxr manifest, or another
    /// program's `manifest.json`.
    pub fn acquire(root: &Path) -> Result<WriteLock> {
        let given = root;
        let root = resolve(root).unwrap_or_else(|| root.to_path_buf());
        refuse_foreign(&root, given)?;
        let created = !root.exists();
        let file = lock_file(&root)?;
        // Read the base only now: a writer that finished while we waited changed it.
        let base = Manifest::read(&root)?.map(|(m, _)| m);
        Ok(WriteLock {
            root,
            base,
            created,
            _file: file,
        })
    }

    /// Checks, without writing anything, that `root` may become or is a warehouse.
    pub fn check(root: &Path) -> Result<()> {
        refuse_foreign(&resolve(root).unwrap_or_else(|| root.to_path_buf()), root)
    }

    /// The current manifest, if the warehouse has one.
    pub fn base(&self) -> Option<&Manifest> {
        self.base.as_ref()
    }

    /// The data directory of the current version, for a commit that keeps tables.
    pub fn base_data(&self) -> Option<PathBuf> {
        self.base
            .as_ref()
            .filter(|m| !m.data.is_empty())
            .map(|m| self.root.join(&m.data))
    }

    /// A hidden working directory inside the warehouse (e.g. the pixel resume cache).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.join(format!(".{name}"))
    }

    /// Starts a new version.
    pub fn stage(&self) -> Result<Staging<'_>> {
        remove_stale_staging(&self.root);
        let id = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"),
            std::process::id()
        );
        let dir = self.root.join(format!(".staging-{id}"));
        std::fs::create_dir(&dir).ctx(|| format!("{}: cannot create", dir.display()))?;
        // The readers' lock file names its version: a copy of the folder under
        // another name (a user's backup) is then told apart from cxr's own.
        std::fs::write(dir.join(READERS), format!("v-{id}\n"))
            .ctx(|| format!("{}: cannot create", dir.display()))?;
        Ok(Staging {
            lock: self,
            dir,
            id,
            committed: false,
        })
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // A failed first ingest leaves no directory behind (a resume cache keeps it).
        if self.created && !self.root.join(MANIFEST).exists() {
            let _ = std::fs::remove_file(self.root.join(LOCK));
            let _ = std::fs::remove_dir(&self.root);
        }
    }
}

/// Opens and locks `root/.cxr.lock`, creating both if needed. A failed first ingest
/// removes the lock file and the empty folder when it lets go, so a writer that was
/// waiting on that file checks, once it holds it, that it is still the one at the
/// path, and starts over if not: two writers never hold different lock files.
fn lock_file(root: &Path) -> Result<File> {
    let path = root.join(LOCK);
    let mut said = false;
    // A new warehouse's folder is made, not the folders on the way to it.
    crate::warehouse::files::check_folder_exists(root)?;
    loop {
        std::fs::create_dir_all(root)
            .ctx(|| format!("{}: cannot create the warehouse directory", root.display()))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("{}: cannot write into the warehouse", root.display()))?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            if !said {
                say!(
                    "cxr: waiting for another cxr process writing {}",
                    root.display()
                );
                said = true;
            }
            file.lock()
                .ctx(|| format!("{}: cannot lock", path.display()))?;
        }
        if still_the_lock_file(&file, &path) {
            return Ok(file);
        }
    }
}

/// Whether the open lock file is the one at `path`: a failed first ingest removes the
/// file it held, and a lock on a removed file is no writer's lock.
fn still_the_lock_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
        _ => false,
    }
}

/// A new version being written. Dropped without [`Staging::commit`], it is removed
/// and the warehouse is untouched.
pub struct Staging<'a> {
    lock: &'a WriteLock,
    dir: PathBuf,
    id: String,
    committed: bool,
}

impl Staging<'_> {
    /// Path of a table file inside the new version.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Carries a table of the current version over unchanged (a hard link, or a copy
    /// where links are not possible).
    pub fn keep(&self, from: &Path) -> Result<()> {
        let name = from.file_name().expect("a table file name");
        link_tree(from, &self.dir.join(name))
    }

    /// Makes the new version current: its directory is renamed into place, then the
    /// manifest naming it replaces the old one in one rename. Old versions that no
    /// reader holds are removed afterwards.
    pub fn commit(mut self, mut manifest: Manifest) -> Result<()> {
        let root = self.lock.root.clone();
        let name = format!("v-{}", self.id);
        let data = root.join(&name);
        // The readers' file names the version, then its tables: collecting the version
        // later removes those and nothing a user put beside them.
        let listing: Vec<&str> = std::iter::once(name.as_str())
            .chain(manifest.tables.keys().map(String::as_str))
            .collect();
        let readers = self.dir.join(READERS);
        std::fs::write(&readers, listing.join("\n") + "\n")
            .ctx(|| format!("{}: cannot write", readers.display()))?;
        std::fs::rename(&self.dir, &data)
            .ctx(|| format!("{}: cannot move the new version into place", data.display()))?;
        self.committed = true;
        manifest.data = name.clone();
        let json = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        if let Err(e) = write_atomic(&root.join(MANIFEST), (json + "\n").as_bytes()) {
            let _ = std::fs::remove_dir_all(&data);
            return Err(e);
        }
        remove_legacy_tables(&root, self.lock.base.as_ref());
        collect_garbage(&root, &name);
        Ok(())
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A reader's shared hold on one version: while any exists, the version stays.
pub struct ReadHold {
    _file: File,
}

impl ReadHold {
    /// Holds the version in `data`; None if it is already gone.
    pub fn take(data: &Path) -> Result<Option<ReadHold>> {
        let path = data.join(READERS);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("{}: cannot open", path.display()), e)),
        };
        file.lock_shared()
            .ctx(|| format!("{}: cannot lock", path.display()))?;
        // The collector deletes while holding the lock exclusively: after our
        // shared lock, a version that still has its file is safe.
        Ok(path.exists().then_some(ReadHold { _file: file }))
    }
}

/// A directory is replaced or written into only if it is empty or cxr's. Messages
/// name the path as the user gave it (`given`), not its resolved form.
fn refuse_foreign(root: &Path, given: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    if !root.is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a directory; choose another --warehouse",
            given.display()
        )));
    }
    if root.join(super::EXPORT_MARKER).exists() {
        return Err(Error::Usage(format!(
            "refusing to write into {}: it is an export (`cxr export`), not a warehouse; choose another --warehouse",
            given.display()
        )));
    }
    match Manifest::read(root) {
        Ok(Some((m, _))) if m.is_cxr() => return Ok(()),
        Ok(Some(_)) | Err(_) => {
            return Err(Error::Usage(format!(
                "refusing to write into {}: its manifest.json was not written by cxr; choose another --warehouse",
                given.display()
            )));
        }
        Ok(None) => {}
    }
    // Only what cxr itself leaves in a warehouse folder before its first commit: a
    // user's folder of dotfiles (.git, .env) is not taken over.
    let only_ours = std::fs::read_dir(root)
        .ctx(|| format!("{}: cannot list", given.display()))?
        .flatten()
        .all(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name == LOCK || name.starts_with(".staging-") || name.starts_with(".pixels-")
        });
    if only_ours {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "refusing to write into {}: it is not a cxr warehouse (no {MANIFEST}) and not empty; choose another --warehouse",
        given.display()
    )))
}

/// The flat tables of a version-1 warehouse, named by its manifest, go once a
/// version-2 commit replaced them. Nothing else in the directory is touched.
fn remove_legacy_tables(root: &Path, base: Option<&Manifest>) {
    let Some(base) = base.filter(|m| m.data.is_empty()) else {
        return;
    };
    for name in base.tables.keys() {
        if !is_plain_table_name(name) {
            continue;
        }
        let file = root.join(format!("{name}.parquet"));
        if file.is_file() {
            let _ = std::fs::remove_file(&file);
        } else if root.join(name).is_dir() {
            let _ = std::fs::remove_dir_all(root.join(name));
        }
    }
}

/// Removes the old versions no reader holds, unless a writer is at work (it collects
/// them itself as it commits; between moving its new version into place and writing
/// the manifest, that version is no reader's and not yet the current one). True
/// while old versions remain (a reader holds them, or a writer was at work).
pub fn collect_unread_versions(root: &Path) -> bool {
    let path = root.join(LOCK);
    let Ok(file) = OpenOptions::new().write(true).open(&path) else {
        return false;
    };
    if file.try_lock().is_err() || !still_the_lock_file(&file, &path) {
        return true;
    }
    match Manifest::read(root) {
        Ok(Some((manifest, _))) if !manifest.data.is_empty() => {
            collect_garbage(root, &manifest.data)
        }
        _ => false,
    }
}

/// Removes old versions (`v-*` other than `keep`) that no reader holds. Only a
/// folder cxr wrote under that name goes: a copy a user made (`cp -a v-<id>
/// v-backup`) stays.
/// True when an old version is left because a reader holds it.
fn collect_garbage(root: &Path, keep: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    let mut held = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("v-") || name == keep || !written_as(&e.path(), &name) {
            continue;
        }
        let Ok(f) = File::open(e.path().join(READERS)) else {
            continue;
        };
        if f.try_lock().is_ok() {
            remove_what_cxr_wrote(&e.path());
        } else {
            held = true;
        }
    }
    held
}

/// Removes a version folder's tables and its readers' file, then the folder if
/// nothing is left: a file a user put in it stays, in the folder. The tables are
/// those its readers' file lists (every `.parquet` file, in folders too, of a version
/// written before it listed them).
fn remove_what_cxr_wrote(dir: &Path) {
    let listing = std::fs::read_to_string(dir.join(READERS)).unwrap_or_default();
    let tables: Vec<&str> = listing.lines().skip(1).map(str::trim).collect();
    if tables.is_empty() {
        remove_parquet_files(dir);
    }
    for table in tables.into_iter().filter(|t| is_plain_table_name(t)) {
        let _ = std::fs::remove_file(dir.join(format!("{table}.parquet")));
        if dir.join(table).is_dir() {
            remove_parquet_files(&dir.join(table));
        }
    }
    let _ = std::fs::remove_file(dir.join(READERS));
    // Fails, and leaves the folder, when anything else is in it.
    let _ = std::fs::remove_dir(dir);
}

/// Whether a table name from a manifest or a version's listing names a file or folder
/// of the version itself: not empty, hidden, or a path leading elsewhere.
fn is_plain_table_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.')
}

/// Removes the `.parquet` files of `dir` and of its folders, then each folder left
/// empty.
fn remove_parquet_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => remove_parquet_files(&path),
            Ok(t) if t.is_file() && e.file_name().to_string_lossy().ends_with(".parquet") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Whether the version folder `dir` is the one cxr wrote as `name`: its readers'
/// file names it, or (a version from before that file held its name) `name` is
/// exactly `v-<UTC time>-<process id>` as cxr makes it.
fn written_as(dir: &Path, name: &str) -> bool {
    match std::fs::read_to_string(dir.join(READERS)) {
        Ok(text) if !text.trim().is_empty() => text.lines().next().map(str::trim) == Some(name),
        Ok(_) => is_version_name(name),
        Err(_) => false,
    }
}

/// `v-YYYYMMDDTHHMMSS.ffffff-PID`, the name [`WriteLock::stage`] gives a version.
fn is_version_name(name: &str) -> bool {
    let Some((time, pid)) = name
        .strip_prefix("v-")
        .and_then(|rest| rest.rsplit_once('-'))
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let b = time.as_bytes();
    time.len() == 22
        && digits(&time[..8])
        && b[8] == b'T'
        && digits(&time[9..15])
        && b[15] == b'.'
        && digits(&time[16..])
        && digits(pid)
}

/// Staging directories of writers that died: we hold the lock, so none is live.
fn remove_stale_staging(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn link_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to).ctx(|| format!("{}: cannot create", to.display()))?;
        for e in std::fs::read_dir(from)
            .ctx(|| format!("{}: cannot list", from.display()))?
            .flatten()
        {
            link_tree(&e.path(), &to.join(e.file_name()))?;
        }
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).ctx(|| format!("{}: cannot copy", from.display()))?;
    }
    Ok(())
}
