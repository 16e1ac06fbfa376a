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

/// Calls `visit(path, entry)` for every member other than extended headers, with
/// the member's full path (from a long-name or PAX header when there is one), until
/// the archive ends (Ok(true)) or `visit` returns false (Ok(false)).
pub fn walk<R: Read>(
    archive: &mut tar::Archive<R>,
    mut visit: impl FnMut(String, &mut tar::Entry<'_, R>) -> bool,
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
                    long_name = Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
                }
                tar::EntryType::XHeader => {
                    if let Some(p) = pax_path(&bytes) {
                        long_name = Some(p);
                    }
                }
                _ => {}
            }
            continue;
        }
        let path = match long_name.take() {
            Some(p) => p,
            None => entry
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        last.clone_from(&path);
        if !visit(path, &mut entry) {
            return Ok(false);
        }
    }
    Ok(true)
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

/// The `path` record of a PAX extended header (`LEN path=VALUE\n` records).
fn pax_path(bytes: &[u8]) -> Option<String> {
    let mut rest = bytes;
    let mut path = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return path;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            path = Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    path
}
