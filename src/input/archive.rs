//! Walking the members of a tar archive with every allocation bounded: GNU long-name
//! and PAX extended headers come to us as raw entries, so their declared sizes are
//! checked before anything is read (the tar crate would read them whole: a header
//! declaring gigabytes, inflated from a few megabytes of gzip, is a memory bomb).
//! Shared by the pixel pass (images in tars) and the OpenI reports archive.

use std::io::Read;

/// GNU long-name and PAX extended headers larger than this are damage: the archive
/// is not read past them.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Damage in the archive itself: what happened, after which member.
#[derive(Debug)]
pub struct Damage(pub String);

/// Calls `visit(path, sparse, entry)` for every member other than extended headers,
/// with the member's full path (from a long-name or PAX header when there is one),
/// until the archive ends (Ok(true)) or `visit` returns false (Ok(false)). `sparse`
/// says the member is a sparse file (`tar -S`, GNU or PAX form), whose bytes are a
/// map of its holes and its data, not the file: the caller says so rather than read
/// it as the file.
pub fn walk<R: Read>(
    archive: &mut tar::Archive<R>,
    mut visit: impl FnMut(String, bool, &mut tar::Entry<'_, R>) -> bool,
) -> Result<bool, Damage> {
    let entries = archive
        .entries()
        .map_err(|e| Damage(format!("unreadable archive: {e}")))?
        .raw(true);
    let mut last = String::from("(start of archive)");
    let truncated = |last: &str, e: std::io::Error| {
        Damage(format!(
            "archive damaged or truncated after member {last}: {e}"
        ))
    };
    let mut long_name: Option<String> = None;
    let mut pax_sparse = false;
    for entry in entries {
        let mut entry = entry.map_err(|e| truncated(&last, e))?;
        let kind = entry.header().entry_type();
        if is_extended_header(kind) {
            let size = entry.size();
            if size > MAX_HEADER_BYTES {
                return Err(Damage(format!(
                    "archive damaged after member {last}: an extended header declares {size} bytes \
                     (at most {MAX_HEADER_BYTES} are read)"
                )));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| truncated(&last, e))?;
            match kind {
                tar::EntryType::GNULongName => {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    long_name = Some(member_name(&bytes[..end]));
                }
                tar::EntryType::XHeader => {
                    let pax = pax_records(&bytes);
                    pax_sparse = pax.sparse;
                    if let Some(p) = pax.path {
                        long_name = Some(p);
                    }
                }
                _ => {}
            }
            continue;
        }
        let path = match long_name.take() {
            Some(p) => p,
            None => member_name(&entry.path_bytes()),
        };
        last.clone_from(&path);
        let sparse = std::mem::take(&mut pax_sparse) || kind.is_gnu_sparse();
        if !visit(path, sparse, &mut entry) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What a link member is (`symbolic link to 'a.png'`), or None for another member:
/// the pixel pass and OpenI's reports both follow no link and say so.
pub fn link_text<R: Read>(entry: &tar::Entry<'_, R>) -> Option<String> {
    let kind = entry.header().entry_type();
    let what = if kind.is_hard_link() {
        "hard"
    } else if kind.is_symlink() {
        "symbolic"
    } else {
        return None;
    };
    let target = entry
        .link_name()
        .ok()
        .flatten()
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default();
    Some(format!("{what} link to '{target}'"))
}

/// A member's name as text: UTF-8 as it is, any other byte as `\xNN`, and a
/// backslash of the name's own doubled (`\\`) so that no name reads as another.
/// Two names that differ in bytes that are not UTF-8 (`img\xe9`, `img\xe8` in
/// Latin-1) stay two names; read as U+FFFD they were one image and a duplicate.
pub fn member_name(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

fn is_extended_header(kind: tar::EntryType) -> bool {
    matches!(
        kind,
        tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
            | tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader
    )
}

/// What a PAX extended header says of its member.
#[derive(Default)]
struct Pax {
    /// The member's path: GNU tar's name of a sparse file (`GNU.sparse.name`; its
    /// `path` is a made-up `GNUSparseFile.N/...`), else the `path` record.
    path: Option<String>,
    /// Any `GNU.sparse.*` record: the member is a sparse file.
    sparse: bool,
}

/// The records of a PAX extended header (`LEN key=VALUE\n` records) cxr reads.
fn pax_records(bytes: &[u8]) -> Pax {
    let mut rest = bytes;
    let mut pax = Pax::default();
    let mut sparse_name = None;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            pax.path = Some(member_name(v));
        } else if let Some(v) = record.strip_prefix(b"GNU.sparse.name=") {
            sparse_name = Some(member_name(v));
        }
        pax.sparse |= record.starts_with(b"GNU.sparse.");
        rest = &rest[len..];
    }
    if sparse_name.is_some() {
        pax.path = sparse_name;
    }
    pax
}
