//! Files written whole or not at all, and content hashes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of a byte string, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A temporary name beside `path`, unique to this process and call: two writers of
/// the same output never share one.
pub fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = temp_stem(path);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The clock's nanoseconds tell apart processes with one pid (containers sharing
    // a folder); create_temp_beside also never reuses an existing name.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    path.with_file_name(format!(".{name}.{}-{n}-{nanos:x}.tmp", std::process::id()))
}

/// The start of a temporary name for `path`: its file name, cut to 200 bytes so that
/// the temporary name (about 30 bytes longer) stays within the 255 a file system
/// allows where the target's own name fits.
fn temp_stem(path: &Path) -> String {
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    if name.len() > 200 {
        let mut cut = 200;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// Removes what an interrupted earlier write of `target` left beside it: temporary
/// names of [`temp_beside`] whose process is gone (Ctrl-C ends cxr at once) and that
/// have not changed for a minute. Names of live processes are never touched.
pub fn sweep_stale(target: &Path) {
    if target.file_name().is_none() {
        return;
    }
    let name = temp_stem(target);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let entry = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = entry.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if !rest.contains(".tmp") || pid.parse::<u32>().is_err() {
            continue;
        }
        let live = Path::new("/proc").join(pid).exists();
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= 60);
        if live || !old {
            continue;
        }
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Creates a new temporary file beside `target`, never opening one that exists
/// (another process's, or a link planted at the name).
fn create_temp_beside(target: &Path) -> Result<(PathBuf, File)> {
    sweep_stale(target);
    loop {
        let tmp = temp_beside(target);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("{}: cannot create", target.display()), e)),
        }
    }
}

/// Swaps two paths in one atomic rename (Linux `renameat2` with RENAME_EXCHANGE):
/// there is no moment at which `b` is missing. Falls back to two renames where the
/// file system cannot exchange.
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths; the call only renames.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(err);
    }
    let aside = temp_beside(b);
    std::fs::rename(b, &aside)?;
    if let Err(e) = std::fs::rename(a, b) {
        let _ = std::fs::rename(&aside, b);
        return Err(e);
    }
    std::fs::rename(&aside, a)
}

/// Makes a rename into `path`'s folder durable (best effort: some file systems
/// cannot sync a folder).
pub fn sync_parent(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Checks that the folder `target` would be written into exists: cxr creates no
/// folder on the way (DataFusion's `COPY` would create `/nonexistent/` at the root).
pub fn check_folder_exists(target: &Path) -> Result<()> {
    match target.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::Usage(format!(
            "{}: the directory {} does not exist",
            target.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Checks, before any work, that `target` can become a file: its folder exists, it
/// is not itself a folder, and a file of that name can be created there (a folder
/// cxr may not write, or a name too long, is refused now, not after the work, or a
/// commit, is done).
pub fn check_file_target(target: &Path) -> Result<()> {
    check_folder_exists(target)?;
    if target.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is a directory; name a file to write",
            target.display()
        )));
    }
    refuse_special(target)?;
    if target.exists() {
        // Replaced by renaming a new file over it: its folder must take one.
        return check_writable(target);
    }
    // The file itself, created and removed: a folder cxr may not write and a name
    // longer than the file system takes are both refused here.
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| {
            Error::io(
                format!("{}: cannot write into {}", target.display(), dir.display()),
                e,
            )
        })?;
    let _ = std::fs::remove_file(target);
    Ok(())
}

/// Refuses a target that cxr's process cannot create: a file must be creatable in
/// the nearest folder that exists on its way (DataFusion's COPY reports a refused
/// write as a bug of its own after the query ran, and loops for ever where a file
/// cannot be made at all, as in /proc). Checked by creating and removing a file there.
pub fn check_writable(target: &Path) -> Result<()> {
    let mut dir = if target.is_dir() {
        target
    } else {
        target.parent().unwrap_or(Path::new("."))
    };
    while !dir.as_os_str().is_empty() && !dir.exists() {
        dir = dir.parent().unwrap_or(Path::new(""));
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let probe = temp_beside(&dir.join("cxr-write-check"));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(Error::io(
            format!("{}: cannot write into {}", target.display(), dir.display()),
            e,
        )),
    }
}

/// Refuses an output path that exists and is neither a regular file nor a folder.
/// cxr replaces a file by renaming a new one over it: over a symbolic link that
/// replaces the link (not the file it points to), over a FIFO or a device node it
/// replaces the node itself (`--out /dev/stdout` as root would remove the system's).
pub fn refuse_special(target: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link; name the file it points to"
    } else if kind.is_fifo() || kind.is_socket() {
        "a pipe or socket, not a regular file; write to a file (results go to stdout without --out)"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device, not a regular file; write to a file (results go to stdout without --out)"
    } else {
        return Ok(());
    };
    Err(Error::Usage(format!("{}: is {what}", target.display())))
}

/// A file being written under a temporary name; [`AtomicFile::commit`] syncs it and
/// renames it into place. Dropped uncommitted, the temporary file is removed, so a
/// failed write leaves no trace and the previous file (if any) untouched.
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::io::BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `target`; its parent directory must exist.
    pub fn create(target: &Path) -> Result<AtomicFile> {
        check_file_target(target)?;
        let (tmp, file) = create_temp_beside(target)?;
        Ok(AtomicFile {
            tmp,
            target: target.to_path_buf(),
            file: Some(std::io::BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The file to write into.
    pub fn writer(&mut self) -> &mut std::io::BufWriter<File> {
        self.file.as_mut().expect("an uncommitted file")
    }

    /// Flushes, syncs and renames the file into place; on any failure the temporary
    /// file is removed and the previous file is left as it was.
    pub fn commit(mut self) -> Result<()> {
        let done = self.finish();
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done
    }

    fn finish(&mut self) -> Result<()> {
        let target = self.target.clone();
        let mut w = self.file.take().expect("an uncommitted file");
        w.flush()
            .ctx(|| format!("{}: cannot write", target.display()))?;
        let file = w.into_inner().map_err(|e| {
            Error::io(
                format!("{}: cannot write", target.display()),
                e.into_error(),
            )
        })?;
        file.sync_all()
            .ctx(|| format!("{}: cannot sync", target.display()))?;
        std::fs::rename(&self.tmp, &target)
            .ctx(|| format!("{}: cannot rename", target.display()))?;
        sync_parent(&target);
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.writer()
        .write_all(bytes)
        .ctx(|| format!("{}: cannot write", path.display()))?;
    f.commit()
}

/// A reader that hashes (SHA-256) and counts every byte read through it: an input is
/// hashed while it streams, never read twice.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// (bytes read, SHA-256 hex) so far.
    pub fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// (size, SHA-256 hex) of a file's bytes.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    use std::io::Read;
    let f = File::open(path).ctx(|| format!("{}: cannot open", path.display()))?;
    // As many bytes as the file says it has: a file of the kernel's (`/proc/self/
    // pagemap`, size 0) would otherwise be read for ever.
    let size = f
        .metadata()
        .ctx(|| format!("{}: cannot read", path.display()))?
        .len();
    let mut r = HashingReader::new(f.take(size));
    std::io::copy(&mut r, &mut std::io::sink())
        .ctx(|| format!("{}: cannot read", path.display()))?;
    Ok(r.finish())
}

/// The bytes of a file, or of every file below a folder (0 where unreadable).
pub fn size_on_disk(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size_on_disk(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_value() {
        // sha256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn atomic_file_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.csv");
        std::fs::write(&target, "old").unwrap();
        {
            let mut f = AtomicFile::create(&target).unwrap();
            f.writer().write_all(b"new").unwrap();
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic(&target, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }
}
