//! Streaming the members of image inputs, in a fixed order: `.tar`, `.tar.gz`/`.tgz`
//! (read once, sequentially, never extracted) and directories (walked recursively,
//! sorted). Every member gets an ordinal, so an interrupted run can skip what a
//! previous run already committed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::warehouse::InputFile;
use crate::warehouse::files::HashingReader;

/// PNG members larger than this are refused without being read.
pub const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// One member of an input.
#[derive(Debug)]
pub struct Member {
    /// Position among all members of all inputs, from 0.
    pub ordinal: u64,
    /// The archive or folder, as given.
    pub source: String,
    /// The member path inside it.
    pub path: String,
    /// What the member is.
    pub kind: Kind,
}

/// What a member turned out to be.
#[derive(Debug)]
pub enum Kind {
    /// A `.png` file and its bytes.
    Png(Vec<u8>),
    /// A `.png` file that was already committed by an earlier run (not read).
    Done,
    /// Not a PNG file (directory, text file, ...).
    Skipped,
    /// A `.png` member that could not be read, or damage in the archive itself.
    Failed(String),
}

impl Member {
    /// The file name of the member, without folders (the image index).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// An input that cannot be opened at all.
#[derive(Debug)]
pub struct Unreadable {
    /// The input.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

fn is_png_name(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".png")
}

/// Counts bytes read from the underlying file, for progress and ETA.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Checks that every input exists and is a tar, tar.gz or directory.
pub fn check(inputs: &[PathBuf]) -> Result<(), Unreadable> {
    for p in inputs {
        let meta = std::fs::metadata(p).map_err(|e| Unreadable {
            path: p.clone(),
            reason: format!("cannot open image input: {e}"),
        })?;
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            // Checked here and read again later: a stream would be split.
            return Err(Unreadable {
                path: p.clone(),
                reason: "is a pipe or a device, not a regular file; give the archive itself".into(),
            });
        }
        let Some(kind) = kind_of(p) else {
            return Err(Unreadable {
                path: p.clone(),
                reason: "not a directory, .tar, .tar.gz or .tgz".into(),
            });
        };
        first_header(p, kind).map_err(|reason| Unreadable {
            path: p.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Reads the first 512-byte block of an archive (inflating a `.tar.gz` only that
/// far) and checks that it is a tar header with a valid checksum, so that random
/// bytes or a corrupt gzip are refused before any work starts.
fn first_header(p: &Path, kind: ArchiveKind) -> Result<(), String> {
    let file = std::fs::File::open(p).map_err(|e| format!("cannot open image input: {e}"))?;
    let mut block = [0u8; 512];
    let read = match kind {
        ArchiveKind::Tar => read_block(file, &mut block),
        ArchiveKind::TarGz => read_block(flate2::read::MultiGzDecoder::new(file), &mut block)
            .map_err(|e| std::io::Error::other(format!("not a gzip file or corrupt gzip ({e})"))),
    };
    let n = read.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("empty archive: no tar header".into());
    }
    if n < 512 {
        return Err(format!(
            "not a tar archive: {n} bytes, shorter than one tar header"
        ));
    }
    if block.iter().all(|&b| b == 0) {
        // An empty archive (two zero blocks) is a valid tar with no members.
        return Ok(());
    }
    let header = tar::Header::from_byte_slice(&block);
    let stored = header
        .cksum()
        .map_err(|_| "not a tar archive: no tar header at its start".to_string())?;
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                b as u32
            }
        })
        .sum();
    if stored != sum {
        return Err("not a tar archive: the first header's checksum does not match".into());
    }
    Ok(())
}

fn read_block(mut r: impl Read, block: &mut [u8; 512]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match r.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[derive(Clone, Copy)]
enum ArchiveKind {
    Tar,
    TarGz,
}

fn kind_of(p: &Path) -> Option<ArchiveKind> {
    let name = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else {
        None
    }
}

/// Total size in bytes of the inputs (archives' file sizes, folders' PNG sizes).
pub fn total_bytes(inputs: &[PathBuf]) -> u64 {
    inputs
        .iter()
        .map(|p| {
            if p.is_dir() {
                walk(p)
                    .iter()
                    .filter_map(|f| f.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            } else {
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// Streams every member of every input to `send`, in order. Members with an
/// ordinal below `resume_from` whose names are PNGs come as [`Kind::Done`] without
/// being sent for measuring. `send` returns false to stop early. Each input is
/// hashed as it streams (see [`InputFile`]); the descriptions come back when every
/// input was read to its end.
pub fn stream(
    inputs: &[PathBuf],
    resume_from: u64,
    bytes_read: Arc<AtomicU64>,
    send: &mut dyn FnMut(Member) -> bool,
) -> Result<Vec<InputFile>, Unreadable> {
    let mut ordinal = 0u64;
    let mut described = Vec::new();
    for input in inputs {
        let source = input.display().to_string();
        let step = if input.is_dir() {
            stream_dir(input, &source, resume_from, &mut ordinal, &bytes_read, send)
        } else {
            let file = std::fs::File::open(input).map_err(|e| Unreadable {
                path: input.clone(),
                reason: format!("cannot open: {e}"),
            })?;
            let hashed = HashingReader::new(Counting {
                inner: std::io::BufReader::with_capacity(1 << 20, file),
                count: bytes_read.clone(),
            });
            let mut at = Cursor {
                source: &source,
                resume_from,
                ordinal: &mut ordinal,
                send,
            };
            match kind_of(input) {
                Some(ArchiveKind::TarGz) => {
                    let gz = flate2::read::MultiGzDecoder::new(hashed);
                    at.tar(gz).map(|gz| drain(gz.into_inner()))
                }
                _ => at.tar(hashed).map(drain),
            }
        };
        let Some((size, sha256)) = step else {
            return Ok(described);
        };
        described.push(InputFile {
            role: "images".into(),
            path: source,
            size,
            sha256,
        });
    }
    Ok(described)
}

/// Reads what is left of an input after its last member (tar padding, a trailing
/// gzip member) so that the hash covers every byte.
fn drain<R: Read>(mut r: HashingReader<R>) -> (u64, String) {
    let _ = std::io::copy(&mut r, &mut std::io::sink());
    r.finish()
}

/// Where the stream is: the input, the next ordinal and the consumer.
struct Cursor<'a, 'b> {
    source: &'a str,
    resume_from: u64,
    ordinal: &'a mut u64,
    send: &'a mut (dyn FnMut(Member) -> bool + 'b),
}

impl Cursor<'_, '_> {
    /// Streams the members of one tar; returns its reader when the consumer wants
    /// more, None when it stopped the stream.
    fn tar<R: Read>(&mut self, reader: R) -> Option<R> {
        let mut archive = tar::Archive::new(reader);
        let go_on = self.members(&mut archive);
        go_on.then(|| archive.into_inner())
    }

    fn members<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> bool {
        let walked = crate::input::archive::walk(archive, |path, entry| {
            let kind = self.kind_of(&path, entry);
            self.emit(path, kind)
        });
        match walked {
            Ok(go_on) => go_on,
            Err(damage) => self.damage(&format!("{}; members before it were kept", damage.0)),
        }
    }

    /// What one archive member is, its bytes read when it is a PNG to measure.
    fn kind_of<R: Read>(&self, path: &str, entry: &mut tar::Entry<'_, R>) -> Kind {
        let kind = entry.header().entry_type();
        let is_link = kind.is_hard_link() || kind.is_symlink();
        if is_link && is_png_name(path) {
            if *self.ordinal < self.resume_from {
                return Kind::Done;
            }
            let what = if kind.is_hard_link() {
                "hard"
            } else {
                "symbolic"
            };
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Kind::Failed(format!(
                "{what} link to '{target}': links are not followed; not measured"
            ));
        }
        let size = entry.size();
        if !kind.is_file() || !is_png_name(path) {
            Kind::Skipped
        } else if *self.ordinal < self.resume_from {
            Kind::Done
        } else if size > MAX_MEMBER_BYTES {
            Kind::Failed(format!("member too large ({size} bytes)"))
        } else {
            let mut bytes = Vec::with_capacity(size as usize);
            match entry.read_to_end(&mut bytes) {
                Ok(_) => Kind::Png(bytes),
                Err(e) => Kind::Failed(format!("truncated member: {e}")),
            }
        }
    }

    fn emit(&mut self, path: String, kind: Kind) -> bool {
        let member = Member {
            ordinal: *self.ordinal,
            source: self.source.to_string(),
            path,
            kind,
        };
        *self.ordinal += 1;
        (self.send)(member)
    }

    /// A pixel error for damage in the archive itself (no member to blame).
    fn damage(&mut self, msg: &str) -> bool {
        self.emit(String::new(), Kind::Failed(msg.to_string()))
    }
}

/// Every file below `dir`, sorted; symbolic links are not followed.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    walk_all(dir)
        .into_iter()
        .filter_map(|(p, odd)| odd.is_none().then_some(p))
        .collect()
}

/// Every file below `dir`, sorted, with what is odd about the entries that are not
/// plain files: symbolic links (not followed) and folders that cannot be read.
fn walk_all(dir: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                if d.as_path() != dir {
                    out.push((
                        d,
                        Some(format!("cannot read folder: {e}; its files were not read")),
                    ));
                }
                continue;
            }
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push((p, None)),
                Ok(t) if t.is_symlink() => {
                    let target = std::fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    out.push((
                        p,
                        Some(format!(
                            "symbolic link to '{target}': links are not followed; not measured"
                        )),
                    ));
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Streams a folder's files in sorted order; returns (total size, digest over each
/// file's relative name, size and bytes), or None when the consumer stopped.
fn stream_dir(
    dir: &Path,
    source: &str,
    resume_from: u64,
    ordinal: &mut u64,
    bytes_read: &AtomicU64,
    send: &mut dyn FnMut(Member) -> bool,
) -> Option<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    let mut total = 0u64;
    for (file, odd) in walk_all(dir) {
        let rel = file
            .strip_prefix(dir)
            .unwrap_or(&file)
            .to_string_lossy()
            .into_owned();
        if let Some(why) = odd {
            // A symbolic link to a PNG, or a folder that cannot be read, is a pixel
            // error; any other link is skipped like other files that are not PNGs.
            let folder = !file.is_symlink();
            let kind = if *ordinal < resume_from && (folder || is_png_name(&rel)) {
                Kind::Done
            } else if folder || is_png_name(&rel) {
                Kind::Failed(why)
            } else {
                Kind::Skipped
            };
            let member = Member {
                ordinal: *ordinal,
                source: source.to_string(),
                path: rel,
                kind,
            };
            *ordinal += 1;
            if !send(member) {
                return None;
            }
            continue;
        }
        let png = is_png_name(&rel);
        let measure = png && *ordinal >= resume_from;
        // A member to measure is read whole (it is capped by the tar rule's twin:
        // MAX_MEMBER_BYTES); any other file is read only to hash it, in a stream.
        let too_large =
            measure && std::fs::metadata(&file).is_ok_and(|m| m.len() > MAX_MEMBER_BYTES);
        let read = if measure && !too_large {
            std::fs::read(&file).map(|b| {
                let sha = crate::warehouse::sha256_hex(&b);
                (b.len() as u64, sha, Some(b))
            })
        } else {
            crate::warehouse::hash_file(&file)
                .map(|(n, sha)| (n, sha, None))
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        let kind = match read {
            Ok((n, sha, bytes)) => {
                digest.update(rel.as_bytes());
                digest.update([0]);
                digest.update(n.to_le_bytes());
                digest.update(sha.as_bytes());
                total += n;
                match bytes {
                    Some(b) => {
                        bytes_read.fetch_add(n, Ordering::Relaxed);
                        Kind::Png(b)
                    }
                    None if too_large => Kind::Failed(format!("member too large ({n} bytes)")),
                    None if png => Kind::Done,
                    None => Kind::Skipped,
                }
            }
            Err(e) if png => Kind::Failed(format!("cannot read: {e}")),
            Err(_) => Kind::Skipped,
        };
        let member = Member {
            ordinal: *ordinal,
            source: source.to_string(),
            path: rel,
            kind,
        };
        *ordinal += 1;
        if !send(member) {
            return None;
        }
    }
    Some((total, crate::warehouse::hex(&digest.finalize())))
}
