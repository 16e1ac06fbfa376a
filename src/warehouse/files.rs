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
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
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
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(Error::Usage(format!(
                "{}: the directory {} does not exist",
                target.display(),
                dir.display()
            )));
        }
        let tmp = temp_beside(target);
        let file = File::create(&tmp).ctx(|| format!("{}: cannot create", target.display()))?;
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

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
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
        std::fs::rename(&self.tmp, &target).ctx(|| format!("{}: cannot rename", target.display()))
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
    let f = File::open(path).ctx(|| format!("{}: cannot open", path.display()))?;
    let mut r = HashingReader::new(f);
    std::io::copy(&mut r, &mut std::io::sink())
        .ctx(|| format!("{}: cannot read", path.display()))?;
    Ok(r.finish())
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
