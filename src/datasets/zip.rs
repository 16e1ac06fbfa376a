//! A minimal zip reader for single-CSV archives (the RSNA labels come as
//! `stage_2_train_labels.csv` inside a `.zip`): the central directory finds the
//! member, the local header locates its data, flate2 inflates it, and the CRC-32 and
//! size are checked. Stored and deflated members only; no ZIP64, no encryption.
//! What a hostile archive can make us allocate is capped at [`MAX_MEMBER`].

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest member we inflate (bytes): the members are CSV files.
pub const MAX_MEMBER: u64 = crate::input::csv::MAX_CSV_BYTES;

/// Past 32 MiB, a member inflating more than this many times its compressed size is
/// a bomb (real metadata compresses 3–10 times), refused before it is inflated.
pub const MAX_INFLATION: u64 = 40;

/// Whether `bytes` start like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as u64)
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
}

struct Entry {
    name: String,
    flags: u64,
    method: u64,
    crc: u32,
    csize: u64,
    usize: u64,
    offset: u64,
}

fn entries(path: &Path, b: &[u8]) -> Result<Vec<Entry>> {
    let bad = |m: &str| Error::input(path, format!("not a readable zip archive: {m}"));
    // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
    let lo = b.len().saturating_sub(22 + 65535);
    let eocd = (lo..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let count = u16_at(b, eocd + 10).ok_or_else(|| bad("truncated"))?;
    let cd_off = u32_at(b, eocd + 16).ok_or_else(|| bad("truncated"))?;
    if count == 0xFFFF || cd_off == 0xFFFF_FFFF {
        return Err(bad("ZIP64 archives are not supported"));
    }
    let mut at = cd_off as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        if !b.get(at..).is_some_and(|s| s.starts_with(b"PK\x01\x02")) {
            return Err(bad("corrupt central directory"));
        }
        let field = |o: usize, four: bool| {
            let v = if four {
                u32_at(b, at + o)
            } else {
                u16_at(b, at + o)
            };
            v.ok_or_else(|| bad("truncated central directory"))
        };
        let flags = field(8, false)?;
        let method = field(10, false)?;
        let crc = field(16, true)? as u32;
        let mut csize = field(20, true)?;
        let mut usize = field(24, true)?;
        let name_len = field(28, false)? as usize;
        let extra_len = field(30, false)? as usize;
        let comment_len = field(32, false)? as usize;
        let mut offset = field(42, true)?;
        let name = b
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(|| bad("truncated central directory"))?;
        let extra = b
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(|| bad("truncated central directory"))?;
        // ZIP64 extended information (extra field 0x0001): the 64-bit values of the
        // fields saturated at 0xFFFFFFFF, in this order (as in the RSNA archive).
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let len = u16_at(extra, e + 2).unwrap_or(0) as usize;
            let body = extra.get(e + 4..e + 4 + len).unwrap_or(&[]);
            if id == 1 {
                let mut k = 0;
                for v in [&mut usize, &mut csize, &mut offset] {
                    if *v == 0xFFFF_FFFF {
                        let big = body
                            .get(k..k + 8)
                            .ok_or_else(|| bad("truncated ZIP64 extra field"))?;
                        *v = u64::from_le_bytes(big.try_into().unwrap_or([0xFF; 8]));
                        k += 8;
                    }
                }
            }
            e += 4 + len;
        }
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            flags,
            method,
            crc,
            csize,
            usize,
            offset,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// The member of the zip archive `bytes` (read from `path`) that `want` picks by
/// name, or the only file member when `want` picks none; returns its name and
/// contents.
pub fn read_member(
    path: &Path,
    bytes: &[u8],
    want: impl Fn(&str) -> bool,
) -> Result<(String, Vec<u8>)> {
    let bad = |m: String| Error::input(path, format!("not a readable zip archive: {m}"));
    let all = entries(path, bytes)?;
    let files: Vec<&Entry> = all.iter().filter(|e| !e.name.ends_with('/')).collect();
    let picked: Vec<&&Entry> = files.iter().filter(|e| want(&e.name)).collect();
    let e = match (picked.as_slice(), files.as_slice()) {
        ([e], _) => **e,
        ([], [e]) => *e,
        ([], []) => return Err(Error::input(path, "the zip archive holds no file")),
        _ => {
            return Err(Error::input(
                path,
                format!(
                    "the zip archive holds several candidate files ({}); give the one to read",
                    files
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    };
    if e.flags & 1 != 0 {
        return Err(bad(format!("member '{}' is encrypted", e.name)));
    }
    if e.usize > MAX_MEMBER || e.csize > MAX_MEMBER {
        return Err(bad(format!(
            "member '{}' is larger than {} bytes",
            e.name, MAX_MEMBER
        )));
    }
    if e.usize > 32 << 20 && e.usize > MAX_INFLATION * e.csize.max(1) {
        return Err(bad(format!(
            "member '{}' inflates from {} to {} bytes, more than {MAX_INFLATION} times: \
             not a metadata file cxr reads",
            e.name, e.csize, e.usize
        )));
    }
    let lh = usize::try_from(e.offset).unwrap_or(usize::MAX);
    if !bytes
        .get(lh..)
        .is_some_and(|s| s.starts_with(b"PK\x03\x04"))
    {
        return Err(bad(format!("no local header for member '{}'", e.name)));
    }
    let n = u16_at(bytes, lh + 26).ok_or_else(|| bad("truncated local header".into()))? as usize;
    let x = u16_at(bytes, lh + 28).ok_or_else(|| bad("truncated local header".into()))? as usize;
    let start = lh + 30 + n + x;
    let data = start
        .checked_add(e.csize as usize)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| bad(format!("member '{}' is truncated", e.name)))?;
    let mut out =
        Vec::with_capacity(e.usize.min(e.csize.saturating_mul(1032)).min(1 << 26) as usize);
    match e.method {
        0 => out.extend_from_slice(data),
        8 => {
            flate2::read::DeflateDecoder::new(data)
                .take(e.usize + 1)
                .read_to_end(&mut out)
                .map_err(|err| bad(format!("member '{}': corrupt deflate data: {err}", e.name)))?;
        }
        m => {
            return Err(bad(format!(
                "member '{}' uses compression method {m}; only stored and deflate are supported",
                e.name
            )));
        }
    }
    if out.len() as u64 != e.usize {
        return Err(bad(format!(
            "member '{}' inflates to {} bytes, the directory says {}",
            e.name,
            out.len(),
            e.usize
        )));
    }
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if crc.sum() != e.crc {
        return Err(bad(format!("member '{}' fails its CRC-32 check", e.name)));
    }
    Ok((e.name.clone(), out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a one-member zip archive (deflated) by hand, as test fixtures.
    pub(crate) fn make_zip(name: &str, content: &[u8]) -> Vec<u8> {
        build_zip(name, content, false)
    }

    /// Like [`make_zip`], with the sizes in a ZIP64 extra field (as `zip` tools write
    /// when streaming, e.g. the RSNA labels archive).
    pub(crate) fn build_zip(name: &str, content: &[u8], zip64: bool) -> Vec<u8> {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(content).unwrap();
        let data = enc.finish().unwrap();
        let mut crc = flate2::Crc::new();
        crc.update(content);
        let crc = crc.sum();
        let mut z = Vec::new();
        let local = |z: &mut Vec<u8>, sig: &[u8]| {
            z.extend_from_slice(sig);
        };
        local(&mut z, b"PK\x03\x04");
        z.extend_from_slice(&20u16.to_le_bytes()); // version
        z.extend_from_slice(&0u16.to_le_bytes()); // flags
        z.extend_from_slice(&8u16.to_le_bytes()); // deflate
        z.extend_from_slice(&[0; 4]); // time, date
        let sizes = |z: &mut Vec<u8>| {
            if zip64 {
                z.extend_from_slice(&[0xFF; 8]);
            } else {
                z.extend_from_slice(&(data.len() as u32).to_le_bytes());
                z.extend_from_slice(&(content.len() as u32).to_le_bytes());
            }
        };
        let mut extra = Vec::new();
        if zip64 {
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&16u16.to_le_bytes());
            extra.extend_from_slice(&(content.len() as u64).to_le_bytes());
            extra.extend_from_slice(&(data.len() as u64).to_le_bytes());
        }
        z.extend_from_slice(&crc.to_le_bytes());
        sizes(&mut z);
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&extra);
        z.extend_from_slice(&data);
        let cd = z.len();
        local(&mut z, b"PK\x01\x02");
        z.extend_from_slice(&20u16.to_le_bytes()); // made by
        z.extend_from_slice(&20u16.to_le_bytes()); // needed
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(&8u16.to_le_bytes());
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&crc.to_le_bytes());
        sizes(&mut z);
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        z.extend_from_slice(&[0; 10]); // comment, disk, internal attrs, external attrs
        z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&extra);
        let cd_size = z.len() - cd;
        local(&mut z, b"PK\x05\x06");
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&1u16.to_le_bytes());
        z.extend_from_slice(&1u16.to_le_bytes());
        z.extend_from_slice(&(cd_size as u32).to_le_bytes());
        z.extend_from_slice(&(cd as u32).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z
    }

    #[test]
    fn reads_a_member_and_refuses_damage() {
        let p = Path::new("x.zip");
        let z = make_zip("a.csv", b"patientId,Target\nabc,0\n");
        assert!(is_zip(&z));
        let (name, data) = read_member(p, &z, |n| n.ends_with(".csv")).unwrap();
        assert_eq!(name, "a.csv");
        assert_eq!(data, b"patientId,Target\nabc,0\n");
        // Only member taken even when the name does not match.
        assert!(read_member(p, &z, |_| false).is_ok());
        // Any truncation or corruption is an error, never a panic.
        for cut in 0..z.len() {
            let _ = read_member(p, &z[..cut], |_| true);
        }
        for i in 0..z.len() {
            let mut d = z.clone();
            d[i] ^= 0x5a;
            let _ = read_member(p, &d, |_| true);
        }
        let mut d = z.clone();
        let at = 30 + 5 + 2; // inside the deflate data
        d[at] ^= 0xff;
        assert!(read_member(p, &d, |_| true).is_err());
        // Sizes in a ZIP64 extra field.
        let z64 = build_zip("b.csv", b"x,y\n1,2\n", true);
        assert_eq!(read_member(p, &z64, |_| true).unwrap().1, b"x,y\n1,2\n");
        for cut in 0..z64.len() {
            let _ = read_member(p, &z64[..cut], |_| true);
        }
        for i in 0..z64.len() {
            let mut d = z64.clone();
            d[i] ^= 0x5a;
            let _ = read_member(p, &d, |_| true);
        }
    }
}
