//! Streaming the members of image inputs, in a fixed order: `.tar`, `.tar.gz`/`.tgz`
//! (read once, sequentially, never extracted), `.zip` (ZIP64 too; members in the
//! order of its central directory, each inflated on its own) and directories (walked
//! recursively, sorted). Every member gets an ordinal, so an interrupted run can skip
//! what a previous run already committed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::warehouse::InputFile;
use crate::warehouse::files::HashingReader;

/// Image members larger than this are refused without being read.
pub const MAX_MEMBER_BYTES: u64 = 96 << 20;

/// A sparse member (`tar -S`) holds a map of its holes and its data, which cxr does
/// not expand: said, not read as the image.
const SPARSE: &str = "a sparse file (archived with tar -S), which cxr does not expand; not measured (archive it without -S)";

/// An image input and the dataset its images belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInput {
    /// The dataset of `dataset_images` the images are matched to.
    pub dataset: &'static str,
    /// A tar, tar.gz, zip or folder.
    pub path: PathBuf,
}

impl ImageInput {
    /// An input of NIH images.
    pub fn nih(path: PathBuf) -> ImageInput {
        ImageInput {
            dataset: "nih",
            path,
        }
    }
}

/// One member of an input.
#[derive(Debug)]
pub struct Member {
    /// Position among all members of all inputs, from 0.
    pub ordinal: u64,
    /// The dataset of its input.
    pub dataset: &'static str,
    /// The archive or folder, as given.
    pub source: String,
    /// The member path inside it.
    pub path: String,
    /// The name of the folder `source` is (its real name, `.` resolved), which
    /// prefixes `path` in the image id; None for an archive.
    pub folder_name: Option<String>,
    /// What the member is.
    pub kind: Kind,
}

/// What a member turned out to be.
#[derive(Debug)]
pub enum Kind {
    /// An image file (by its name: [`is_image_name`]) and its bytes.
    Image(Vec<u8>),
    /// An image file that was already committed by an earlier run (not read).
    Done,
    /// Not an image file (directory, text file, ...).
    Skipped,
    /// An image member that could not be read, or damage in the archive itself.
    Failed(String),
}

impl Member {
    /// The file name of the member, without folders (the image index).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The member's file name as its dataset spells it: where a dataset names images
    /// by file name (NIH's `image_index`, PadChest's `ImageID`), its image id
    /// (`00000001_000.PNG` is NIH's `00000001_000.png`, which `images` joins on);
    /// else the name as the member has it.
    pub fn image_index(&self) -> String {
        match crate::datasets::dataset(self.dataset).map(|d| d.image_naming) {
            Some(crate::datasets::ImageNaming::FileName) => self.image_id(),
            _ => self.name().to_string(),
        }
    }

    /// The image's id in its dataset, by the dataset's naming
    /// ([`crate::datasets::ImageNaming`]); a folder's own name counts as the first
    /// folder of its members' paths.
    pub fn image_id(&self) -> String {
        let naming = crate::datasets::dataset(self.dataset).map(|d| d.image_naming);
        let within = match &self.folder_name {
            Some(folder) => format!("{folder}/{}", self.path),
            None => self.path.clone(),
        };
        naming.map_or_else(|| self.name().to_string(), |n| n.image_id(&within))
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

/// The file names measured: PNG, JPEG and DICOM, by extension (the bytes then say
/// which format a file really is).
pub fn is_image_name(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".dcm", ".dicom"]
        .iter()
        .any(|e| lower.ends_with(e))
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

/// Checks that every input exists and is a tar, tar.gz, zip or directory.
pub fn check(inputs: &[ImageInput]) -> Result<(), Unreadable> {
    for input in inputs {
        let p = &input.path;
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
                reason: "not a directory, .tar, .tar.gz, .tgz or .zip".into(),
            });
        };
        if let ArchiveKind::Zip = kind {
            open_zip(p).map_err(|reason| Unreadable {
                path: p.clone(),
                reason,
            })?;
            continue;
        }
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
        ArchiveKind::Tar | ArchiveKind::Zip => read_block(file, &mut block),
        ArchiveKind::TarGz => read_block(crate::input::gzip::decoder(file), &mut block)
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
    Zip,
}

/// Opens a zip archive and reads its central directory, unless it lists more than
/// [`MAX_ZIP_MEMBERS`] members.
fn open_zip(p: &Path) -> Result<zip::ZipArchive<std::io::BufReader<std::fs::File>>, String> {
    let mut file = std::fs::File::open(p).map_err(|e| format!("cannot open image input: {e}"))?;
    let members =
        declared_zip_members(&mut file).map_err(|e| format!("cannot read image input: {e}"))?;
    if let Some(members) = members.filter(|&n| n > MAX_ZIP_MEMBERS) {
        return Err(format!(
            "this zip's central directory lists {members} members; cxr reads zips of up to {MAX_ZIP_MEMBERS} (their directory is held while the zip is read): extract it to a folder, or split it"
        ));
    }
    zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("not a readable zip archive: {e}"))
}

/// The most members a zip's central directory may list: the zip reader holds an
/// entry of about 250 bytes per member while the zip is read (3 million took 766
/// MB). MIMIC-CXR-JPG's 377,110 images fit.
pub const MAX_ZIP_MEMBERS: u64 = 500_000;

/// The number of members a zip's end of central directory declares (its ZIP64
/// record's where the classic one says 0xFFFF): read from the file's last 64 KiB
/// before the zip reader reads the directory itself. None when there is no end
/// record (the zip reader says what is wrong).
fn declared_zip_members(file: &mut std::fs::File) -> std::io::Result<Option<u64>> {
    use std::io::{Read, Seek, SeekFrom};
    let length = file.seek(SeekFrom::End(0))?;
    let tail_length = length.min(65_557 + 20);
    let start = length - tail_length;
    file.seek(SeekFrom::Start(start))?;
    let mut tail = vec![0u8; tail_length as usize];
    file.read_exact(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let Some(end) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&k| tail[k..k + 4] == [0x50, 0x4b, 0x05, 0x06])
    else {
        return Ok(None);
    };
    let classic = u64::from(u16_at(&tail, end + 10));
    if classic != 0xFFFF || end < 20 || tail[end - 20..end - 16] != [0x50, 0x4b, 0x06, 0x07] {
        return Ok(Some(classic));
    }
    // The ZIP64 locator before the end record gives where the ZIP64 end record is.
    let at = u64::from_le_bytes(tail[end - 12..end - 4].try_into().expect("8 bytes"));
    let mut record = [0u8; 40];
    if at.checked_add(40).is_none_or(|e| e > length) {
        return Ok(Some(classic));
    }
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut record)?;
    file.seek(SeekFrom::Start(0))?;
    if record[..4] != [0x50, 0x4b, 0x06, 0x06] {
        return Ok(Some(classic));
    }
    Ok(Some(u64::from_le_bytes(
        record[32..40].try_into().expect("8 bytes"),
    )))
}

fn kind_of(p: &Path) -> Option<ArchiveKind> {
    let name = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar") {
        Some(ArchiveKind::Tar)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(ArchiveKind::TarGz)
    } else if name.ends_with(".zip") {
        Some(ArchiveKind::Zip)
    } else {
        None
    }
}

/// Total size in bytes of the inputs (archives' file sizes, folders' file sizes).
pub fn total_bytes(inputs: &[ImageInput]) -> u64 {
    inputs
        .iter()
        .map(|i| &i.path)
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
    inputs: &[ImageInput],
    resume_from: u64,
    bytes_read: Arc<AtomicU64>,
    send: &mut dyn FnMut(Member) -> bool,
) -> Result<Vec<InputFile>, Unreadable> {
    let mut ordinal = 0u64;
    let mut described = Vec::new();
    for ImageInput { dataset, path } in inputs {
        let source = path.display().to_string();
        let mut at = Cursor {
            source: &source,
            dataset,
            folder_name: path
                .is_dir()
                .then(|| std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
            resume_from,
            ordinal: &mut ordinal,
            send,
        };
        let step = if path.is_dir() {
            at.folder(path, &bytes_read)
        } else if let Some(ArchiveKind::Zip) = kind_of(path) {
            at.zip(path, &bytes_read)?
        } else {
            let file = std::fs::File::open(path).map_err(|e| Unreadable {
                path: path.clone(),
                reason: format!("cannot open: {e}"),
            })?;
            let hashed = HashingReader::new(Counting {
                inner: std::io::BufReader::with_capacity(1 << 20, file),
                count: bytes_read.clone(),
            });
            match kind_of(path) {
                Some(ArchiveKind::TarGz) => {
                    let gz = crate::input::gzip::decoder(hashed);
                    at.tar(gz).and_then(|mut gz| {
                        // The tar ends before its gzip stream does: read that to its
                        // end, where its checksum and length are checked.
                        let checked = std::io::copy(&mut gz, &mut std::io::sink());
                        let go_on = match checked {
                            Ok(_) => true,
                            Err(e) => at.damage(&format!(
                                "the gzip stream is damaged or truncated ({e}): the statistics of its members may be wrong"
                            )),
                        };
                        go_on.then(|| drain(gz.into_inner()))
                    })
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

/// The longest member name read (Linux's PATH_MAX); a longer one is a pixel error
/// with its first 256 bytes.
const MAX_NAME_BYTES: usize = 4096;

/// Where the stream is: the input, the next ordinal and the consumer.
struct Cursor<'a, 'b> {
    source: &'a str,
    dataset: &'static str,
    folder_name: Option<String>,
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
        let walked = crate::input::archive::walk(archive, |path, sparse, entry| {
            let kind = if sparse && is_image_name(&path) {
                self.unread(SPARSE)
            } else {
                self.kind_of(&path, entry)
            };
            self.emit(path, kind)
        });
        match walked {
            Ok(go_on) => go_on,
            Err(damage) => self.damage(&format!("{}; members before it were kept", damage.0)),
        }
    }

    /// An image member not read, for `why`: done already when resuming past it.
    fn unread(&self, why: &str) -> Kind {
        if *self.ordinal < self.resume_from {
            Kind::Done
        } else {
            Kind::Failed(why.to_string())
        }
    }

    /// What one archive member is, its bytes read when it is a PNG to measure.
    fn kind_of<R: Read>(&self, path: &str, entry: &mut tar::Entry<'_, R>) -> Kind {
        let kind = entry.header().entry_type();
        if let Some(link) = crate::input::archive::link_text(entry).filter(|_| is_image_name(path))
        {
            return self.unread(&format!("{link}: links are not followed; not measured"));
        }
        // A pipe or device with an image's name holds no image: said, as in a folder.
        if (kind.is_fifo() || kind.is_character_special() || kind.is_block_special())
            && is_image_name(path)
        {
            let what = if kind.is_fifo() {
                "a named pipe"
            } else {
                "a device"
            };
            return self.unread(&format!("{what}: not a regular file; not read"));
        }
        let size = entry.size();
        // GNU tar reads a contiguous file (type '7') as a regular one.
        if !(kind.is_file() || kind.is_contiguous()) || !is_image_name(path) {
            Kind::Skipped
        } else if *self.ordinal < self.resume_from {
            Kind::Done
        } else if size > MAX_MEMBER_BYTES {
            Kind::Failed(format!("member too large ({size} bytes)"))
        } else {
            let mut bytes = Vec::with_capacity(size as usize);
            match entry.read_to_end(&mut bytes) {
                Ok(_) => Kind::Image(bytes),
                Err(e) => Kind::Failed(format!("truncated member: {e}")),
            }
        }
    }

    fn emit(&mut self, path: String, kind: Kind) -> bool {
        // A name longer than any file system's path is not kept whole: each name is
        // held to the end of the run (a 1 MB tar.gz of 200 names of 1 MB took 1 GB).
        let (path, kind) = if path.len() > MAX_NAME_BYTES {
            let mut cut = 256;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            let why = format!(
                "a member name of {} bytes (over {MAX_NAME_BYTES}): not read",
                path.len()
            );
            (format!("{}…", &path[..cut]), self.unread(&why))
        } else {
            (path, kind)
        };
        let member = Member {
            ordinal: *self.ordinal,
            dataset: self.dataset,
            source: self.source.to_string(),
            path,
            folder_name: self.folder_name.clone(),
            kind,
        };
        *self.ordinal += 1;
        (self.send)(member)
    }

    /// Streams the members of a zip in the order of its central directory, each
    /// inflated on its own (at most [`MAX_MEMBER_BYTES`], whatever its header says);
    /// returns the zip's size and SHA-256, read again whole once its members are
    /// done, or None when the consumer stopped.
    fn zip(
        &mut self,
        path: &Path,
        bytes_read: &AtomicU64,
    ) -> Result<Option<(u64, String)>, Unreadable> {
        let unreadable = |reason: String| Unreadable {
            path: path.to_path_buf(),
            reason,
        };
        let mut archive = open_zip(path).map_err(unreadable)?;
        let mut spans = Spans::default();
        for i in 0..archive.len() {
            let name = archive
                .name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.into_owned())
                .unwrap_or_default();
            // Some Windows tools write `\` between folders, which zip's format
            // does not allow: a folder all the same.
            let name = name.replace('\\', "/");
            let kind = match archive.by_index(i) {
                Ok(entry) if !spans.take(&entry) && is_image_name(&name) => Kind::Failed(
                    "this zip member's bytes overlap another member's (an overlapping zip): not read"
                        .into(),
                ),
                Ok(mut entry) => {
                    bytes_read.fetch_add(entry.compressed_size(), Ordering::Relaxed);
                    self.zip_kind(&name, &mut entry)
                }
                Err(e) if is_image_name(&name) && *self.ordinal >= self.resume_from => {
                    Kind::Failed(format!("cannot read this zip member: {e}"))
                }
                Err(_) if is_image_name(&name) => Kind::Done,
                Err(_) => Kind::Skipped,
            };
            if !self.emit(name, kind) {
                return Ok(None);
            }
        }
        // The zip reader keeps one entry per name, the last: the copies before it are
        // not read, which a row says (nothing leaves without one).
        if archive.has_duplicate_names() {
            let kind = if *self.ordinal < self.resume_from {
                Kind::Done
            } else {
                Kind::Failed("the zip's central directory names a member more than once; only the last copy of each name was read, the earlier copies were not measured".into())
            };
            if !self.emit(String::new(), kind) {
                return Ok(None);
            }
        }
        let described = crate::warehouse::hash_file(path)
            .map_err(|e| unreadable(format!("cannot read it again to hash it: {e}")))?;
        Ok(Some(described))
    }

    fn zip_kind<R: Read>(&self, name: &str, entry: &mut zip::read::ZipFile<'_, R>) -> Kind {
        if entry.is_dir() || !is_image_name(name) {
            return Kind::Skipped;
        }
        if *self.ordinal < self.resume_from {
            return Kind::Done;
        }
        if entry.is_symlink() {
            // Its bytes are the link's target, not an image (as a link in a tar).
            return Kind::Failed(
                "a symbolic link in the zip: links are not followed; not measured".into(),
            );
        }
        if entry.size() > MAX_MEMBER_BYTES {
            return Kind::Failed(format!("member too large ({} bytes)", entry.size()));
        }
        let method = entry.compression();
        if !matches!(
            method,
            zip::CompressionMethod::Stored | zip::CompressionMethod::Deflated
        ) {
            return Kind::Failed(format!(
                "compressed by a method cxr does not read ({method}; it reads stored and deflated zip members); not measured"
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        match entry.take(MAX_MEMBER_BYTES + 1).read_to_end(&mut bytes) {
            Ok(n) if n as u64 > MAX_MEMBER_BYTES => Kind::Failed(format!(
                "member inflates past {MAX_MEMBER_BYTES} bytes where its header says {}",
                entry.size()
            )),
            Ok(_) => Kind::Image(bytes),
            Err(e) => Kind::Failed(format!("corrupt or truncated zip member: {e}")),
        }
    }

    /// A pixel error for damage in the archive itself (no member to blame).
    fn damage(&mut self, msg: &str) -> bool {
        self.emit(String::new(), Kind::Failed(msg.to_string()))
    }
}

/// The byte ranges of a zip's members (local header to the end of the compressed
/// data), to refuse members that share bytes: a zip whose central directory points
/// many entries at one deflated stream inflates it once per entry (60 entries of
/// one 200 MB stream in a 208 KB zip took 8 s; 65,535 would take hours).
#[derive(Default)]
struct Spans(std::collections::BTreeMap<u64, u64>);

impl Spans {
    /// Records the member's range; false when it overlaps one recorded before.
    fn take<R: Read>(&mut self, entry: &zip::read::ZipFile<'_, R>) -> bool {
        let start = entry.header_start();
        let end = entry
            .data_start()
            .unwrap_or(start)
            .saturating_add(entry.compressed_size())
            .max(start + 1);
        let before = self.0.range(..=start).next_back();
        let after = self.0.range(start + 1..).next();
        if before.is_some_and(|(_, &e)| e > start) || after.is_some_and(|(&s, _)| s < end) {
            return false;
        }
        self.0.insert(start, end);
        true
    }
}

/// Every file below `dir`, sorted; symbolic links are not followed.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    walk_all(dir)
        .into_iter()
        .filter_map(|(p, odd)| odd.is_none().then_some(p))
        .collect()
}

/// What is odd about an entry that is not a plain file, and whether it is a folder
/// (one that cannot be read, even where its path is too long to look at again).
struct Odd {
    why: String,
    folder: bool,
}

impl Odd {
    fn entry(why: String) -> Option<Odd> {
        Some(Odd { why, folder: false })
    }
}

/// Every file below `dir`, sorted, with what is odd about the entries that are not
/// plain files: symbolic links (not followed) and folders that cannot be read.
fn walk_all(dir: &Path) -> Vec<(PathBuf, Option<Odd>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                if d.as_path() != dir {
                    let why = format!("cannot read folder: {e}; its files were not read");
                    out.push((d, Some(Odd { why, folder: true })));
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
                        Odd::entry(format!(
                            "symbolic link to '{target}': links are not followed; not measured"
                        )),
                    ));
                }
                // A named pipe would block the read; a socket or device is no image.
                Ok(t) => out.push((
                    p,
                    Odd::entry(format!("{}: not a regular file; not read", special_kind(t))),
                )),
                Err(e) => out.push((p, Odd::entry(format!("cannot tell what it is: {e}")))),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What a file that is neither a plain file, a folder nor a link is.
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "an unknown kind of file"
    }
}

impl Cursor<'_, '_> {
    /// Streams a folder's files in sorted order; returns (total size, digest over
    /// each file's relative name, size and bytes), or None when the consumer stopped.
    fn folder(&mut self, dir: &Path, bytes_read: &AtomicU64) -> Option<(u64, String)> {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let mut total = 0u64;
        for (file, odd) in walk_all(dir) {
            let rel = {
                use std::os::unix::ffi::OsStrExt;
                let rel = file.strip_prefix(dir).unwrap_or(&file);
                crate::input::archive::member_name(rel.as_os_str().as_bytes())
            };
            let image = is_image_name(&rel);
            let earlier = *self.ordinal < self.resume_from;
            if let Some(odd) = odd {
                // An image name that is not a plain file (a link, a pipe), a link to
                // a folder or a folder that cannot be read is a pixel error: files
                // are left unread. Any other odd entry is skipped like other files.
                let folder = odd.folder || std::fs::metadata(&file).is_ok_and(|m| m.is_dir());
                let kind = match (folder || image, earlier) {
                    (true, true) => Kind::Done,
                    (true, false) => Kind::Failed(odd.why),
                    (false, _) => Kind::Skipped,
                };
                if !self.emit(rel, kind) {
                    return None;
                }
                continue;
            }
            let measure = image && !earlier;
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
                            Kind::Image(b)
                        }
                        None if too_large => Kind::Failed(format!("member too large ({n} bytes)")),
                        None if image => Kind::Done,
                        None => Kind::Skipped,
                    }
                }
                Err(e) if image => Kind::Failed(format!("cannot read: {e}")),
                Err(_) => Kind::Skipped,
            };
            if !self.emit(rel, kind) {
                return None;
            }
        }
        Some((total, crate::warehouse::hex(&digest.finalize())))
    }
}
