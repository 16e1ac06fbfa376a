//! DICOM files → grey values and the header fields of `dicom_headers`, with
//! dicom-rs (`dicom-object` parses, `dicom-pixeldata` decodes the native, RLE and
//! JPEG transfer syntaxes).
//!
//! A hostile file is refused before dicom-rs sees it when a length it declares runs
//! past the end of the file (dicom-rs would allocate what the length says, up to
//! 4 GiB), when its image is larger than [`super::decode::MAX_SIDE`] on a side, or
//! when the JPEG inside claims a larger size than that.

use dicom_object::{OpenFileOptions, Tag, file::ReadPreamble};
use dicom_pixeldata::{PixelDecoder, PlanarConfiguration};

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::decode::{Format, Grey, Layout, Pixels, check_decoded, check_size};
use super::run::Measured;

/// The header fields cxr keeps of a DICOM image (`dicom_headers`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub sop_instance_uid: Option<String>,
    pub modality: Option<String>,
    pub manufacturer: Option<String>,
    pub body_part: Option<String>,
    pub view_position: Option<String>,
    pub patient_sex: Option<String>,
    pub patient_age: Option<String>,
    pub pixel_spacing_row: Option<f64>,
    pub pixel_spacing_column: Option<f64>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub photometric: String,
    pub rescale_slope: Option<f64>,
    pub rescale_intercept: Option<f64>,
    pub window_center: Option<f64>,
    pub window_width: Option<f64>,
    pub transfer_syntax: String,
}

const ROWS: Tag = Tag(0x0028, 0x0010);
const COLUMNS: Tag = Tag(0x0028, 0x0011);
const SAMPLES_PER_PIXEL: Tag = Tag(0x0028, 0x0002);
const PHOTOMETRIC: Tag = Tag(0x0028, 0x0004);
const FRAMES: Tag = Tag(0x0028, 0x0008);
const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
const BITS_STORED: Tag = Tag(0x0028, 0x0101);
const HIGH_BIT: Tag = Tag(0x0028, 0x0102);
const PIXEL_REPRESENTATION: Tag = Tag(0x0028, 0x0103);
const PIXEL_SPACING: Tag = Tag(0x0028, 0x0030);
const IMAGER_PIXEL_SPACING: Tag = Tag(0x0018, 0x1164);
const WINDOW_CENTER: Tag = Tag(0x0028, 0x1050);
const WINDOW_WIDTH: Tag = Tag(0x0028, 0x1051);
const RESCALE_INTERCEPT: Tag = Tag(0x0028, 0x1052);
const RESCALE_SLOPE: Tag = Tag(0x0028, 0x1053);
const SOP_INSTANCE_UID: Tag = Tag(0x0008, 0x0018);
const MODALITY: Tag = Tag(0x0008, 0x0060);
const MANUFACTURER: Tag = Tag(0x0008, 0x0070);
const BODY_PART: Tag = Tag(0x0018, 0x0015);
const VIEW_POSITION: Tag = Tag(0x0018, 0x5101);
const PATIENT_SEX: Tag = Tag(0x0010, 0x0040);
const PATIENT_AGE: Tag = Tag(0x0010, 0x1010);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// The schema of `dicom_headers`.
pub fn headers_schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let mut fields = vec![
        text("dataset", false),
        text("image_id", false),
        text("source", false),
    ];
    fields.extend(TEXT_COLUMNS.iter().map(|c| text(c, true)));
    fields.extend(
        ["pixel_spacing_row", "pixel_spacing_column"]
            .iter()
            .map(|c| Field::new(*c, DataType::Float64, true)),
    );
    fields.extend(
        INT_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Int32, false)),
    );
    fields.push(text("photometric", false));
    fields.extend(
        FLOAT_COLUMNS
            .iter()
            .map(|c| Field::new(*c, DataType::Float64, true)),
    );
    fields.push(text("transfer_syntax", false));
    Arc::new(Schema::new(fields))
}

const TEXT_COLUMNS: [&str; 7] = [
    "sop_instance_uid",
    "modality",
    "manufacturer",
    "body_part",
    "view_position",
    "patient_sex",
    "patient_age",
];
const INT_COLUMNS: [&str; 5] = ["rows", "columns", "frames", "bits_allocated", "bits_stored"];
const FLOAT_COLUMNS: [&str; 4] = [
    "rescale_slope",
    "rescale_intercept",
    "window_center",
    "window_width",
];

impl Header {
    fn texts(&self) -> [Option<&str>; 7] {
        [
            &self.sop_instance_uid,
            &self.modality,
            &self.manufacturer,
            &self.body_part,
            &self.view_position,
            &self.patient_sex,
            &self.patient_age,
        ]
        .map(|t| t.as_deref())
    }

    fn ints(&self) -> [i32; 5] {
        [
            self.rows as i32,
            self.columns as i32,
            self.frames as i32,
            self.bits_allocated as i32,
            self.bits_stored as i32,
        ]
    }

    fn floats(&self) -> [Option<f64>; 4] {
        [
            self.rescale_slope,
            self.rescale_intercept,
            self.window_center,
            self.window_width,
        ]
    }
}

/// The `dicom_headers` rows of the DICOM images among `rows`.
pub fn headers_batch(rows: &[Measured]) -> crate::error::Result<RecordBatch> {
    use crate::input::table::{f64s, i32s, text, utf8};
    let rows: Vec<(&Measured, &Header)> = rows
        .iter()
        .filter_map(|r| r.dicom.as_deref().map(|h| (r, h)))
        .collect();
    let headers = || rows.iter().map(|(_, h)| *h);
    let (texts, ints, floats): (Vec<_>, Vec<_>, Vec<_>) = headers()
        .map(|h| (h.texts(), h.ints(), h.floats()))
        .collect();
    let mut columns: Vec<ArrayRef> = vec![
        text(rows.iter().map(|(r, _)| r.dataset)),
        text(rows.iter().map(|(r, _)| &*r.image_id)),
        text(rows.iter().map(|(r, _)| r.source.as_str())),
    ];
    columns.extend((0..TEXT_COLUMNS.len()).map(|k| utf8(texts.iter().map(|t| t[k]))));
    columns.push(f64s(headers().map(|h| h.pixel_spacing_row)));
    columns.push(f64s(headers().map(|h| h.pixel_spacing_column)));
    columns.extend((0..INT_COLUMNS.len()).map(|k| i32s(ints.iter().map(|v| Some(v[k])))));
    columns.push(text(headers().map(|h| h.photometric.as_str())));
    columns.extend((0..FLOAT_COLUMNS.len()).map(|k| f64s(floats.iter().map(|v| v[k]))));
    columns.push(text(headers().map(|h| h.transfer_syntax.as_str())));
    Ok(RecordBatch::try_new(headers_schema(), columns)?)
}

type Object = dicom_object::FileDicomObject<dicom_object::InMemDicomObject>;

/// A stream that starts with its meta group, without preamble and `DICM`, as the
/// file it would be: `DICM` before it, and the group's length element when the
/// writer left it out (pydicom's `dcmwrite` writes both so by default; dicom-rs
/// reads neither).
fn as_part10(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let group_length = u16::from_le_bytes([bytes[2], bytes[3]]) == 0x0000;
    let mut out = Vec::with_capacity(bytes.len() + 16);
    out.extend_from_slice(b"DICM");
    if !group_length {
        let length = meta_group_length(bytes)?;
        out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 0x04, 0x00]);
        out.extend_from_slice(&length.to_le_bytes());
    }
    out.extend_from_slice(bytes);
    Ok(out)
}

/// The bytes of the (0002,xxxx) elements at the start of `bytes`, walked as
/// [`lengths_fit`] walks them.
fn meta_group_length(bytes: &[u8]) -> Result<u32, String> {
    let mut walk = Walk::starting(bytes, 0);
    walk.meta_group()?;
    Ok(walk.at as u32)
}

/// Decodes the first frame of a DICOM file into grey values.
pub fn decode(bytes: &[u8]) -> Result<Grey, String> {
    let with_magic: Vec<u8>;
    let bytes = if bytes.get(128..132) == Some(b"DICM") || bytes.starts_with(b"DICM") {
        bytes
    } else {
        with_magic = as_part10(bytes)?;
        &with_magic
    };
    let unreadable = lengths_fit(bytes)?;
    // dicom-rs reads the items of an undefined-length UN element in the file's own
    // syntax, not as the implicit VR they are: such elements (private sequences an
    // anonymiser left) are left out of what it reads; nothing measured is in them.
    let kept: Vec<u8>;
    let bytes = if unreadable.is_empty() {
        bytes
    } else {
        kept = without(bytes, &unreadable);
        &kept
    };
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(bytes)
        .map_err(|e| format!("not a readable DICOM file: {}", causes(&e)))?;
    let header = header(&object)?;
    check_size(header.columns, header.rows)?;
    let samples = int(&object, SAMPLES_PER_PIXEL).unwrap_or(1);
    let memory = check_decoded(
        header.columns,
        header.rows,
        samples as usize,
        header.bits_allocated.div_ceil(8) as usize,
    )?;
    if samples != 1 && samples != 3 {
        return Err(format!("{samples} samples per pixel: not measured"));
    }
    if int(&object, PIXEL_REPRESENTATION).unwrap_or(0) != 0 {
        return Err("signed pixel values (PixelRepresentation 1): not measured".into());
    }
    if !matches!(header.bits_allocated, 8 | 16) {
        return Err(format!(
            "BitsAllocated {}: only 8 and 16 are measured",
            header.bits_allocated
        ));
    }
    if header.bits_stored == 0 || header.bits_stored > header.bits_allocated {
        return Err(format!(
            "BitsStored {} does not fit BitsAllocated {}",
            header.bits_stored, header.bits_allocated
        ));
    }
    if let Some(high) = int(&object, HIGH_BIT)
        && high + 1 != header.bits_stored as u32
    {
        return Err(format!(
            "HighBit {high} with BitsStored {}: values not in the low bits are not measured",
            header.bits_stored
        ));
    }
    if header.photometric == "PALETTE COLOR" {
        return Err("palette colour images are not measured".into());
    }
    let encapsulated = check_embedded_jpeg(&object, &header, samples)?;
    // Lossless JPEG (dicom-rs's own decoder) has no colour transform to undo.
    let lossy_jpeg = matches!(
        header.transfer_syntax.as_str(),
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51"
    );
    if encapsulated && header.photometric == "RGB" && samples == 3 && lossy_jpeg {
        return stored_rgb_jpeg(&object, header);
    }
    let ybr_422 = !encapsulated && header.photometric == "YBR_FULL_422";
    if !encapsulated {
        check_native_frames(&object, &header, samples as usize)?;
    }
    if header.transfer_syntax == RLE_LOSSLESS {
        check_rle_frame(&object, &header, samples as usize)?;
    }
    if ybr_422 {
        return luminance_of_ybr_full_422(&object, header, memory);
    }
    let decoded = object
        .decode_pixel_data_frame(0)
        .map_err(|e| decode_error(&causes(&e)))?;
    let data = decoded
        .frame_data(0)
        .map_err(|e| format!("pixel data shorter than the image: {e}"))?;
    let sample_bytes = header.bits_allocated as usize / 8;
    let pixels = header.rows as usize * header.columns as usize;
    let mut channels = samples as usize;
    let mut data = std::borrow::Cow::Borrowed(data);
    if channels == 3 && decoded.planar_configuration() == PlanarConfiguration::PixelFirst {
        data = interleave(&data, pixels, sample_bytes).into();
    }
    // The JPEG decoder hands colour back as RGB; stored (or RLE) YCbCr keeps its
    // luminance in Y.
    let rgb_from_decoder = encapsulated && is_jpeg(&header.transfer_syntax);
    if channels == 3 && !rgb_from_decoder && header.photometric.starts_with("YBR") {
        if header.photometric != "YBR_FULL" {
            return Err(format!(
                "{} stored uncompressed: not measured",
                header.photometric
            ));
        }
        data = first_sample(&data, sample_bytes).into();
        channels = 1;
    }
    let layout = Layout {
        channels,
        line_size: header.columns as usize * channels * sample_bytes,
        width: header.columns as usize,
        height: header.rows as usize,
    };
    let bits = header.bits_stored as u8;
    let mut pixels = if header.bits_allocated == 8 {
        let mut data = data.into_owned();
        // Bits above BitsStored are not the value: masked before any luminance (as
        // grey16 does for 16 bits).
        if bits < 8 {
            let mask = (1u8 << bits) - 1;
            data.iter_mut().for_each(|b| *b &= mask);
        }
        Pixels::Eight(layout.grey8(data)?)
    } else {
        Pixels::Sixteen(layout.grey16_le(&data, bits)?)
    };
    if header.photometric == "MONOCHROME1" {
        invert(&mut pixels, bits);
    }
    Ok(Grey {
        width: header.columns,
        height: header.rows,
        bit_depth: header.bits_allocated as u8,
        bits_stored: bits,
        color_type: if samples == 1 { "grey" } else { "rgb" },
        format: Format::Dicom,
        pixels,
        dicom: Some(Box::new(header)),
        memory,
    })
}

/// An encapsulated JPEG of PhotometricInterpretation RGB, decoded without the
/// colour transform a JPEG decoder assumes for three components.
fn stored_rgb_jpeg(object: &Object, header: Header) -> Result<Grey, String> {
    let jpeg = first_frame_fragments(object, header.frames).ok_or("no pixel data")?;
    let mut grey = super::decode::decode_jpeg_stored_rgb(&jpeg)
        .map_err(|e| format!("the JPEG inside: {e}"))?;
    grey.format = Format::Dicom;
    grey.bits_stored = header.bits_stored as u8;
    grey.dicom = Some(Box::new(header));
    Ok(grey)
}

/// Native YBR_FULL_422 (8 bits: Y1 Y2 Cb Cr for each two pixels of a row): its
/// luminance is Y, as for stored YBR_FULL. dicom-rs reads the frame as three samples
/// a pixel, a third longer than it is.
fn luminance_of_ybr_full_422(
    object: &Object,
    header: Header,
    memory: super::decode::Reservation,
) -> Result<Grey, String> {
    if header.bits_allocated != 8 || !header.columns.is_multiple_of(2) {
        return Err(format!(
            "YBR_FULL_422 of {} bits and {} columns: only 8 bits and an even number of columns are measured",
            header.bits_allocated, header.columns
        ));
    }
    let bytes = object
        .element(PIXEL_DATA)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .ok_or("cannot read the pixel data")?;
    let frame = header.rows as usize * header.columns as usize * 2;
    let Some(frame) = bytes.get(..frame) else {
        return Err("pixel data shorter than the image".into());
    };
    let luminance: Vec<u8> = frame
        .chunks_exact(4)
        .flat_map(|pair| [pair[0], pair[1]])
        .collect();
    let layout = Layout {
        channels: 1,
        line_size: header.columns as usize,
        width: header.columns as usize,
        height: header.rows as usize,
    };
    Ok(Grey {
        width: header.columns,
        height: header.rows,
        bit_depth: 8,
        bits_stored: header.bits_stored as u8,
        color_type: "rgb",
        format: Format::Dicom,
        pixels: Pixels::Eight(layout.grey8(luminance)?),
        dicom: Some(Box::new(header)),
        memory,
    })
}

/// The transfer syntax of RLE Lossless.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The first frame of RLE pixel data is whole: a 64-byte header of one segment per
/// byte of each sample, offsets inside the fragment, each segment decoding to a
/// byte of every pixel. dicom-rs trusts all of it: a damaged frame made it panic
/// (a short segment indexed past its end) or allocate what the header's segment
/// count says.
fn check_rle_frame(object: &Object, header: &Header, samples: usize) -> Result<(), String> {
    let fragment = object
        .element_opt(PIXEL_DATA)
        .ok()
        .flatten()
        .and_then(|e| e.value().fragments().and_then(|f| f.first().cloned()))
        .ok_or("RLE pixel data without a fragment: not measured")?;
    let damaged = |what: String| format!("damaged RLE pixel data: {what}; not measured");
    if fragment.len() < 64 {
        return Err(damaged(format!(
            "a frame of {} bytes, shorter than its 64-byte header",
            fragment.len()
        )));
    }
    let word =
        |k: usize| u32::from_le_bytes(fragment[4 * k..4 * k + 4].try_into().expect("4 bytes"));
    let segments = word(0) as usize;
    let needed = samples * usize::from(header.bits_allocated / 8);
    if segments != needed {
        return Err(damaged(format!(
            "{segments} segments where {samples} samples of {} bits take {needed}",
            header.bits_allocated
        )));
    }
    let plane = header.rows as usize * header.columns as usize;
    for k in 0..segments {
        let start = word(k + 1) as usize;
        let end = if k + 1 < segments {
            word(k + 2) as usize
        } else {
            fragment.len()
        };
        if start < 64 || start > end || end > fragment.len() {
            return Err(damaged(format!(
                "segment {} at bytes {start}..{end} of a {}-byte frame",
                k + 1,
                fragment.len()
            )));
        }
        // A segment that decodes past its plane is damage too (dicom-rs would decode
        // it whole: 25 MB of runs make 1.5 GB); a row's worth of slack is allowed.
        let slack = header.columns as usize;
        let decoded = packbits_length(&fragment[start..end], plane + slack + 1);
        if decoded < plane {
            return Err(damaged(format!(
                "segment {} decodes to {decoded} of the {plane} bytes of its plane",
                k + 1
            )));
        }
        if decoded > plane + slack {
            return Err(damaged(format!(
                "segment {} decodes to more than the {plane} bytes of its plane",
                k + 1
            )));
        }
    }
    Ok(())
}

/// How many bytes PackBits `code` decodes to, counted up to `enough`.
fn packbits_length(code: &[u8], enough: usize) -> usize {
    let (mut at, mut decoded) = (0, 0);
    while at < code.len() && decoded < enough {
        let n = code[at] as i8;
        at += 1;
        match n {
            0..=127 => {
                let literal = n as usize + 1;
                if at + literal > code.len() {
                    break;
                }
                decoded += literal;
                at += literal;
            }
            -127..=-1 => {
                if at >= code.len() {
                    break;
                }
                decoded += 1 + n.unsigned_abs() as usize;
                at += 1;
            }
            -128 => {}
        }
    }
    decoded
}

/// Native pixel data holds every frame NumberOfFrames declares (only the first is
/// measured, but a file that says a million frames where it holds one lies), and
/// one frame at least: a file shorter than its Rows × Columns is not measured.
fn check_native_frames(object: &Object, header: &Header, samples: usize) -> Result<(), String> {
    let Ok(bytes) = object
        .element(PIXEL_DATA)
        .map_err(|_| ())
        .and_then(|e| e.to_bytes().map_err(|_| ()))
    else {
        return Ok(());
    };
    // YBR_FULL_422 stores two samples a pixel (Y for each, Cb and Cr for each pair).
    let samples = if header.photometric == "YBR_FULL_422" {
        2
    } else {
        samples
    };
    let frame = header.rows as usize
        * header.columns as usize
        * samples
        * (header.bits_allocated as usize).div_ceil(8);
    let declared = frame.saturating_mul(header.frames as usize);
    if header.frames <= 1 && bytes.len() < frame {
        return Err(format!(
            "the pixel data holds {} bytes where Rows × Columns ({} × {}) need {frame}: a lying or truncated length",
            bytes.len(),
            header.rows,
            header.columns
        ));
    }
    if bytes.len() < declared {
        return Err(format!(
            "NumberOfFrames {} needs {declared} bytes of pixel data where {} are stored: a lying or truncated length",
            header.frames,
            bytes.len()
        ));
    }
    Ok(())
}

/// Colour planes (R…R G…G B…B) → interleaved samples (RGB RGB …).
fn interleave(planes: &[u8], pixels: usize, sample_bytes: usize) -> Vec<u8> {
    let plane = pixels * sample_bytes;
    let mut out = Vec::with_capacity(plane * 3);
    for p in 0..pixels {
        for c in 0..3 {
            let at = c * plane + p * sample_bytes;
            out.extend_from_slice(&planes[at..at + sample_bytes]);
        }
    }
    out
}

/// The first of every three samples (Y of YCbCr).
fn first_sample(data: &[u8], sample_bytes: usize) -> Vec<u8> {
    data.chunks_exact(3 * sample_bytes)
        .flat_map(|p| &p[..sample_bytes])
        .copied()
        .collect()
}

/// MONOCHROME1 stores dense as dark: v → 2^bits − 1 − v (bits above `bits` dropped).
fn invert(pixels: &mut Pixels, bits: u8) {
    let top = ((1u32 << bits) - 1) as u16;
    match pixels {
        Pixels::Eight(v) => v
            .iter_mut()
            .for_each(|p| *p = (top as u8) - (*p & top as u8)),
        Pixels::Sixteen(v) => v.iter_mut().for_each(|p| *p = top - (*p & top)),
    }
}

/// An error and its causes, on one line (dicom-rs says what failed at each level).
/// Why the pixel data did not decode, in words: dicom-rs refuses, as a possible
/// decompression bomb, compressed data over 16 MiB decoded that would grow more than
/// 32 (RLE) or 64 (JPEG) times, and says only that it "could not allocate".
fn decode_error(cause: &str) -> String {
    if cause.contains("Could not allocate") {
        return "cannot decode the pixel data: it would grow more than 32 (RLE) or 64 (JPEG) times when decoded, which the DICOM decoder refuses as a possible decompression bomb".into();
    }
    format!("cannot decode the pixel data: {cause}")
}

fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text.lines().next().unwrap_or_default().to_string()
}

fn text(object: &Object, tag: Tag) -> Option<String> {
    let e = object.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

fn int(object: &Object, tag: Tag) -> Option<u32> {
    object.element_opt(tag).ok().flatten()?.to_int::<u32>().ok()
}

fn float(object: &Object, tag: Tag) -> Option<f64> {
    floats(object, tag)?.first().copied()
}

fn floats(object: &Object, tag: Tag) -> Option<Vec<f64>> {
    let v = object
        .element_opt(tag)
        .ok()
        .flatten()?
        .to_multi_float64()
        .ok()?;
    (!v.is_empty() && v.iter().all(|x| x.is_finite())).then_some(v)
}

/// The fields of `dicom_headers`; Rows, Columns and BitsAllocated must be there.
fn header(object: &Object) -> Result<Header, String> {
    let need = |tag: Tag, name: &str| {
        int(object, tag).ok_or_else(|| format!("no readable {name} in the header"))
    };
    let rows = need(ROWS, "Rows")?;
    let columns = need(COLUMNS, "Columns")?;
    let bits_allocated = need(BITS_ALLOCATED, "BitsAllocated")? as u16;
    let spacing = floats(object, PIXEL_SPACING).or_else(|| floats(object, IMAGER_PIXEL_SPACING));
    Ok(Header {
        sop_instance_uid: text(object, SOP_INSTANCE_UID),
        modality: text(object, MODALITY),
        manufacturer: text(object, MANUFACTURER),
        body_part: text(object, BODY_PART),
        view_position: text(object, VIEW_POSITION),
        patient_sex: text(object, PATIENT_SEX),
        patient_age: text(object, PATIENT_AGE),
        pixel_spacing_row: spacing.as_ref().and_then(|s| s.first().copied()),
        pixel_spacing_column: spacing.as_ref().and_then(|s| s.get(1).copied()),
        rows,
        columns,
        frames: int(object, FRAMES).unwrap_or(1).max(1),
        bits_allocated,
        bits_stored: int(object, BITS_STORED).unwrap_or(bits_allocated as u32) as u16,
        photometric: text(object, PHOTOMETRIC).unwrap_or_else(|| "MONOCHROME2".into()),
        rescale_slope: float(object, RESCALE_SLOPE),
        rescale_intercept: float(object, RESCALE_INTERCEPT),
        window_center: float(object, WINDOW_CENTER),
        window_width: float(object, WINDOW_WIDTH),
        transfer_syntax: object
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
    })
}

/// Whether the pixel data is encapsulated (compressed). A JPEG inside is decoded at
/// the size its own frame header states, into a buffer of Rows × Columns: refuse one
/// whose header is missing or disagrees with Rows, Columns or BitsAllocated (a
/// smaller JPEG would leave zeros measured as pixels; a larger one, gigabytes).
fn check_embedded_jpeg(object: &Object, header: &Header, samples: u32) -> Result<bool, String> {
    let Some(element) = object.element_opt(PIXEL_DATA).ok().flatten() else {
        return Err("no pixel data".into());
    };
    if element.value().fragments().is_none() {
        return Ok(false);
    }
    if !is_jpeg(&header.transfer_syntax) {
        return Ok(true);
    }
    // dicom-rs joins the fragments of a frame: read the header across them too.
    let joined: Vec<u8> = first_frame_fragments(object, header.frames).unwrap_or_default();
    let Some(frame) = jpeg_frame(&joined) else {
        return Err("the JPEG inside has no frame header".into());
    };
    check_size(frame.width, frame.height).map_err(|e| format!("the JPEG inside: {e}"))?;
    if (frame.width, frame.height) != (header.columns, header.rows) {
        return Err(format!(
            "the JPEG inside is {}×{} where Columns × Rows say {}×{}",
            frame.width, frame.height, header.columns, header.rows
        ));
    }
    // Three samples decoded from one component leave two thirds of the image zero.
    if u32::from(frame.components) != samples {
        return Err(format!(
            "the JPEG inside has {} component{} where SamplesPerPixel is {samples}",
            frame.components,
            if frame.components == 1 { "" } else { "s" }
        ));
    }
    if (frame.precision > 8) != (header.bits_allocated > 8) {
        return Err(format!(
            "the JPEG inside has {}-bit samples where BitsAllocated is {}",
            frame.precision, header.bits_allocated
        ));
    }
    Ok(true)
}

/// The fragments of the first frame of encapsulated pixel data, joined: every one
/// for a single frame; else those before the second frame's offset in the Basic
/// Offset Table; without one, the first fragment where there is one a frame, or the
/// fragments up to the first that ends a JPEG stream.
fn first_frame_fragments(object: &Object, frames: u32) -> Option<Vec<u8>> {
    let element = object.element_opt(PIXEL_DATA).ok().flatten()?;
    let fragments = element.value().fragments()?;
    if frames <= 1 {
        return Some(fragments.concat());
    }
    let offsets = element.value().offset_table().unwrap_or_default();
    let mut first = Vec::new();
    if let Some(&second) = offsets.get(1) {
        // An offset counts from the first fragment's item: 8 bytes of item header each.
        let mut at = 0u64;
        for fragment in fragments.iter().take_while(|f| {
            let starts = at;
            at += 8 + f.len() as u64;
            starts < u64::from(second)
        }) {
            first.extend_from_slice(fragment);
        }
        return Some(first);
    }
    if fragments.len() == frames as usize {
        return fragments.first().cloned();
    }
    for fragment in fragments {
        first.extend_from_slice(fragment);
        let unpadded = fragment.strip_suffix(&[0]).unwrap_or(fragment);
        if unpadded.ends_with(&[0xFF, 0xD9]) {
            break;
        }
    }
    Some(first)
}

/// Whether a transfer syntax is JPEG's (ITU T.81: baseline, extended, lossless); its
/// decoder hands colour back as RGB. JPEG-LS and JPEG 2000 are other codecs.
fn is_jpeg(transfer_syntax: &str) -> bool {
    transfer_syntax
        .strip_prefix("1.2.840.10008.1.2.4.")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (50..=70).contains(&n))
}

/// What a JPEG's start-of-frame segment says.
#[derive(Debug, PartialEq)]
pub struct JpegFrame {
    pub width: u32,
    pub height: u32,
    pub precision: u8,
    /// Components per pixel (1 grey, 3 colour).
    pub components: u8,
}

/// The first start-of-frame segment of a JPEG stream, skipping what a decoder skips
/// (fill bytes, stray bytes between segments, markers without a length).
pub fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut at = 0;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            at += 1;
            continue;
        }
        let marker = bytes[at + 1];
        match marker {
            // Fill byte, stuffed zero, TEM, RSTn, SOI, EOI: no length follows.
            0xFF => at += 1,
            0x00 | 0x01 | 0xD0..=0xD9 => at += 2,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let s = bytes.get(at + 4..at + 10)?;
                return Some(JpegFrame {
                    precision: s[0],
                    height: u16::from_be_bytes([s[1], s[2]]) as u32,
                    width: u16::from_be_bytes([s[3], s[4]]) as u32,
                    components: s[5],
                });
            }
            _ => {
                let len = bytes.get(at + 2..at + 4)?;
                at += 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
            }
        }
    }
    None
}

/// The transfer syntaxes whose data set is not explicit VR little endian.
const IMPLICIT_LITTLE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BIG: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// `bytes` without the byte ranges `cut` (in order, not overlapping).
fn without(bytes: &[u8], cut: &[std::ops::Range<usize>]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(bytes.len());
    let mut from = 0;
    for range in cut {
        kept.extend_from_slice(&bytes[from..range.start]);
        from = range.end;
    }
    kept.extend_from_slice(&bytes[from..]);
    kept
}

/// Walks every element header of the file (meta group, data set, sequence items,
/// pixel data fragments) and checks that each defined length fits in what is left
/// of the file. The walk reads no values: it costs microseconds. Returns the byte
/// ranges of the data set's undefined-length UN elements and of zeros padding the
/// file after its data set, which dicom-rs is not given (see [`decode`]).
pub fn lengths_fit(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, String> {
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        0
    };
    let mut walk = Walk::starting(bytes, start);
    let syntax = walk.meta_group()?;
    match syntax.as_str() {
        DEFLATED => return Err("deflated DICOM data sets are not measured".into()),
        IMPLICIT_LITTLE => walk.explicit = false,
        EXPLICIT_BIG => walk.big_endian = true,
        _ => {}
    }
    walk.elements(bytes.len(), 0)?;
    walk.image.check_padding()?;
    Ok(walk.left_out)
}

/// What the data set's own elements say of the image, read as the walk passes them:
/// enough to refuse, before dicom-rs copies it, native pixel data far longer than
/// the image (a 16 × 12 image padded with 90 MB of zeros).
#[derive(Default)]
struct ImageElements {
    rows: Option<u64>,
    columns: Option<u64>,
    samples: Option<u64>,
    bits_allocated: Option<u64>,
    frames: Option<u64>,
    ybr_422: bool,
    /// The defined length of native pixel data.
    pixel_bytes: Option<u64>,
}

impl ImageElements {
    /// Refuses native pixel data holding more than twice what Rows × Columns ×
    /// frames take and over 1 MiB more (pydicom drops such "excess padding").
    fn check_padding(&self) -> Result<(), String> {
        let (Some(rows), Some(columns), Some(bits), Some(stored)) = (
            self.rows,
            self.columns,
            self.bits_allocated,
            self.pixel_bytes,
        ) else {
            return Ok(());
        };
        let samples = if self.ybr_422 {
            2
        } else {
            self.samples.unwrap_or(1)
        };
        let needed = [
            columns,
            samples,
            bits.div_ceil(8),
            self.frames.unwrap_or(1).max(1),
        ]
        .into_iter()
        .fold(rows, u64::saturating_mul);
        if stored > needed.saturating_mul(2).max(needed + (1 << 20)) {
            return Err(format!(
                "the pixel data holds {stored} bytes where Rows × Columns ({rows} × {columns}) and its frames take {needed}: not measured (padding past the image)"
            ));
        }
        Ok(())
    }
}

const UNDEFINED: u32 = 0xFFFF_FFFF;

struct ElementHeader {
    tag: (u16, u16),
    vr: [u8; 2],
    length: u32,
}

/// The most element and item headers a file measured may have.
const MAX_ELEMENTS: usize = 100_000;

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Element and item headers read so far.
    headers: usize,
    explicit: bool,
    big_endian: bool,
    /// The byte ranges dicom-rs is not given: the data set's own undefined-length
    /// UN elements, and zeros padding the file after the data set.
    left_out: Vec<std::ops::Range<usize>>,
    /// Where the zeros that end the file start (its length when it ends otherwise).
    zeros_from: usize,
    image: ImageElements,
}

impl<'a> Walk<'a> {
    /// A walk of `bytes` from `at`, in explicit VR little endian (the meta group's).
    fn starting(bytes: &'a [u8], at: usize) -> Walk<'a> {
        Walk {
            bytes,
            at,
            headers: 0,
            explicit: true,
            big_endian: false,
            left_out: Vec::new(),
            zeros_from: bytes
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1),
            image: ImageElements::default(),
        }
    }

    /// Walks the meta group's (0002,xxxx) elements from here (explicit VR little
    /// endian, whatever follows) and returns the transfer syntax it names.
    fn meta_group(&mut self) -> Result<String, String> {
        let mut syntax = String::new();
        while self.at + 4 <= self.bytes.len() && self.u16_at(self.at) == 0x0002 {
            let element = self.next_header()?;
            if element.tag == (0x0002, 0x0010) && element.length != UNDEFINED {
                let end = self.at + element.length as usize;
                syntax = String::from_utf8_lossy(&self.bytes[self.at..end])
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            }
            self.skip(&element)?;
        }
        Ok(syntax)
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = [self.bytes[at], self.bytes[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn truncated(&self) -> String {
        format!(
            "truncated DICOM file: an element header at byte {} runs past its end",
            self.at
        )
    }

    /// Reads the element header at the cursor and moves past it.
    fn next_header(&mut self) -> Result<ElementHeader, String> {
        if self.at + 8 > self.bytes.len() {
            return Err(self.truncated());
        }
        // dicom-rs holds each element it reads (a few hundred bytes apiece): millions
        // of empty ones in a 60 MB file took 2 GB.
        self.headers += 1;
        if self.headers > MAX_ELEMENTS {
            return Err(format!(
                "more than {MAX_ELEMENTS} elements and items: not measured (a radiograph's header has a few hundred)"
            ));
        }
        let tag = (self.u16_at(self.at), self.u16_at(self.at + 2));
        // Items and delimiters have no VR, in every transfer syntax.
        if tag.0 == 0xFFFE || !self.explicit {
            let length = self.u32_at(self.at + 4);
            self.at += 8;
            return self.fits(tag, *b"  ", length);
        }
        let vr = [self.bytes[self.at + 4], self.bytes[self.at + 5]];
        // The VRs of a 2-byte length; any other, an unknown one too, has 2 reserved
        // bytes and a 4-byte length, as dicom-rs reads it (as UN, as the standard
        // says): read short here, a 4 GiB length passed unseen to an allocation there.
        let long = !matches!(
            &vr,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FL"
                | b"FD"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        );
        if long {
            if self.at + 12 > self.bytes.len() {
                return Err(self.truncated());
            }
            let length = self.u32_at(self.at + 8);
            self.at += 12;
            self.fits(tag, vr, length)
        } else {
            let length = self.u16_at(self.at + 6) as u32;
            self.at += 8;
            self.fits(tag, vr, length)
        }
    }

    fn fits(&self, tag: (u16, u16), vr: [u8; 2], length: u32) -> Result<ElementHeader, String> {
        if length != UNDEFINED && self.at + length as usize > self.bytes.len() {
            return Err(format!(
                "element ({:04X},{:04X}) declares {length} bytes where {} are left: a lying or truncated length",
                tag.0,
                tag.1,
                self.bytes.len() - self.at
            ));
        }
        Ok(ElementHeader { tag, vr, length })
    }

    /// Keeps what an element of the data set says of the image (its value is at the
    /// cursor and fits in the file: `next_header` checked its length).
    fn note(&mut self, element: &ElementHeader) {
        let length = element.length as usize;
        let number = || (length >= 2).then(|| u64::from(self.u16_at(self.at)));
        let text = || {
            String::from_utf8_lossy(&self.bytes[self.at..self.at + length])
                .trim_matches(['\0', ' '])
                .to_string()
        };
        match element.tag {
            (0x0028, 0x0010) => self.image.rows = number(),
            (0x0028, 0x0011) => self.image.columns = number(),
            (0x0028, 0x0002) => self.image.samples = number(),
            (0x0028, 0x0100) => self.image.bits_allocated = number(),
            (0x0028, 0x0008) => self.image.frames = text().parse().ok(),
            (0x0028, 0x0004) => self.image.ybr_422 = text() == "YBR_FULL_422",
            (0x7FE0, 0x0010) => self.image.pixel_bytes = Some(length as u64),
            _ => {}
        }
    }

    fn skip(&mut self, element: &ElementHeader) -> Result<(), String> {
        if element.length != UNDEFINED {
            self.at += element.length as usize;
        }
        Ok(())
    }

    /// Whether the value at the cursor starts with an item (so holds elements).
    fn starts_with_item(&self, end: usize) -> bool {
        self.at + 4 <= end && self.u16_at(self.at) == 0xFFFE && self.u16_at(self.at + 2) == 0xE000
    }

    /// Walks the elements up to `end` (or, undefined, to their delimiter).
    fn elements(&mut self, end: usize, depth: usize) -> Result<(), String> {
        if depth > 64 {
            return Err("sequences nested more than 64 deep".into());
        }
        while self.at < end {
            if self.at + 8 > end {
                // Trailing padding shorter than a header.
                return Ok(());
            }
            // Zeros to the end of the file after the data set: padding some media
            // and archives add (block-sized files), not an element; left out of
            // what dicom-rs parses, which would read it as one.
            if depth == 0 && self.at >= self.zeros_from {
                self.left_out.push(self.at..self.bytes.len());
                self.at = self.bytes.len();
                return Ok(());
            }
            let header_at = self.at;
            let element = self.next_header()?;
            match element.tag {
                // An item or sequence delimiter ends an undefined-length container.
                (0xFFFE, 0xE00D) | (0xFFFE, 0xE0DD) => return Ok(()),
                (0xFFFE, 0xE000) => self.container(&element, depth)?,
                _ if element.length == UNDEFINED => {
                    if element.tag == (0x7FE0, 0x0010) {
                        self.fragments()?;
                    } else if &element.vr == b"UN" {
                        // A sequence of unknown VR: its items are implicit VR little
                        // endian, whatever the file's syntax (PS3.5 6.2.2).
                        self.implicit_little(|walk| walk.elements(walk.bytes.len(), depth + 1))?;
                        if depth == 0 {
                            self.left_out.push(header_at..self.at);
                        }
                    } else {
                        self.elements(self.bytes.len(), depth + 1)?;
                    }
                }
                // A value of unknown VR whose length fits is skipped whole: what it
                // holds (a private sequence, implicit VR) is not read.
                _ if &element.vr == b"UN" => self.skip(&element)?,
                _ if &element.vr == b"SQ" => self.container(&element, depth)?,
                // Implicit VR names no sequence: a value that starts with an item
                // that fits in it is walked as one (and its errors are the file's);
                // pixels that happen to start with the bytes FE FF 00 E0 do not.
                _ if &element.vr == b"  "
                    && element.tag != (0x7FE0, 0x0010)
                    && self.first_item_fits(element.length as usize) =>
                {
                    self.container(&element, depth)?
                }
                _ => {
                    if depth == 0 {
                        self.note(&element);
                    }
                    self.skip(&element)?
                }
            }
        }
        Ok(())
    }

    /// Runs `walk` reading implicit VR little endian, then restores the syntax.
    fn implicit_little(
        &mut self,
        walk: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let syntax = (self.explicit, self.big_endian);
        (self.explicit, self.big_endian) = (false, false);
        let walked = walk(self);
        (self.explicit, self.big_endian) = syntax;
        walked
    }

    /// Whether the value at the cursor, of `length` bytes, starts with an item that
    /// fits in it (its length undefined or within the value): pixels that happen to
    /// start with an item's tag (FE FF 00 E0) are followed by a length that does not.
    fn first_item_fits(&self, length: usize) -> bool {
        let end = self.at + length;
        if !self.starts_with_item(end) || self.at + 8 > end {
            return false;
        }
        let item = self.u32_at(self.at + 4);
        item == UNDEFINED || (item as usize) <= end - (self.at + 8)
    }

    /// A sequence or item: its elements are walked, within its length if it has one.
    fn container(&mut self, element: &ElementHeader, depth: usize) -> Result<(), String> {
        if element.length == UNDEFINED {
            return self.elements(self.bytes.len(), depth + 1);
        }
        let end = self.at + element.length as usize;
        self.elements(end, depth + 1)?;
        self.at = end;
        Ok(())
    }

    /// Encapsulated pixel data: items of raw bytes up to the sequence delimiter.
    fn fragments(&mut self) -> Result<(), String> {
        while self.at < self.bytes.len() {
            let item = self.next_header()?;
            if item.tag == (0xFFFE, 0xE0DD) {
                return Ok(());
            }
            if item.length == UNDEFINED {
                return Err("a pixel data fragment of undefined length".into());
            }
            self.skip(&item)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit VR little endian file: preamble, meta group, one element.
    fn file(elements: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        let ts = b"1.2.840.10008.1.2.1\0";
        b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
        b.extend_from_slice(ts);
        b.extend_from_slice(elements);
        b
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        // (0010,0010) PN, 4 bytes: fits.
        let ok = file(&[
            0x10, 0x00, 0x10, 0x00, b'P', b'N', 4, 0, b'D', b'o', b'e', b' ',
        ]);
        assert!(lengths_fit(&ok).is_ok());
        // (0009,0010) OB claiming 4 GiB − 2.
        let mut lie = vec![0x09, 0x00, 0x10, 0x00, b'O', b'B', 0, 0];
        lie.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        lie.extend_from_slice(&[1, 2, 3, 4]);
        let err = lengths_fit(&file(&lie)).unwrap_err();
        assert!(
            err.contains("(0009,0010) declares 4294967294 bytes"),
            "{err}"
        );
        // (0018,0015) of an unknown VR `ZZ`: as dicom-rs reads it, 2 reserved bytes
        // and a 4-byte length (4 GiB − 16), not the 2-byte length 6 it would be as CS.
        let mut unknown = vec![0x18, 0x00, 0x15, 0x00, b'Z', b'Z', 6, 0];
        unknown.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        unknown.extend_from_slice(b"CHEST ");
        let err = lengths_fit(&file(&unknown)).unwrap_err();
        assert!(
            err.contains("(0018,0015) declares 4294967280 bytes"),
            "{err}"
        );
    }

    #[test]
    fn jpeg_sizes_are_read_from_the_frame_header() {
        // SOI, SOF0 with height 3, width 60000.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x03, 0xEA, 0x60, 0x01, 0x01, 0x11,
            0x00,
        ];
        let frame = JpegFrame {
            width: 60000,
            height: 3,
            precision: 8,
            components: 1,
        };
        assert_eq!(jpeg_frame(&jpeg), Some(frame));
        // A stray byte and a restart marker before the frame header do not hide it.
        let mut hidden = vec![0xFF, 0xD8, 0x00, 0xFF, 0xD0];
        hidden.extend_from_slice(&jpeg[2..]);
        assert_eq!(jpeg_frame(&hidden).map(|f| f.width), Some(60000));
    }
}
