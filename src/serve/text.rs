//! PostgreSQL's text forms of the values whose Rust or arrow forms differ: floats
//! (`Infinity`, `-0`, `1e+300`), timestamps and times (no trailing zeros in the
//! fraction), and, in `COPY`, arrays (`{a,b}`). Clients parse these forms: psql
//! shows them, pgjdbc's `getDouble` reads `Infinity` and not `inf`. Columns the
//! protocol's encoder cannot send (lists of lists, maps) go as their text.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::Result;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::results::{FieldFormat, FieldInfo};

/// `schema` as it is sent: a column the protocol's encoder cannot send (a list of
/// lists, a map, a half float) as the type it is sent as.
pub fn sent_schema(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match sent_as(f.data_type()) {
            Some(data_type) => Field::new(f.name(), data_type, true),
            None => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

/// The type a column of `data_type` is sent as, where the protocol's encoder
/// cannot send it as it is: lists of lists, maps and lists of half floats as
/// PostgreSQL's text of them (`{{1,2},{3,4}}`), half floats as `real`.
fn sent_as(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Float16 => Some(DataType::Float32),
        // The encoder has no half float inside a list or a record: its connection
        // ended without a word.
        other if holds_half_floats(other) => Some(DataType::Utf8),
        other if into_pg_type(other).is_err() => Some(DataType::Utf8),
        _ => None,
    }
}

fn holds_half_floats(data_type: &DataType) -> bool {
    match data_type {
        DataType::Float16 => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::Map(f, _) => holds_half_floats(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| holds_half_floats(f.data_type())),
        DataType::Dictionary(_, values) => holds_half_floats(values),
        _ => false,
    }
}

/// `batch` as it is sent under `fields` (of [`sent_schema`]): the columns the
/// encoder cannot send made sendable, and each column that goes out as text and
/// whose text PostgreSQL writes otherwise (floats, timestamps without a time zone,
/// times) made text already. Lists stay the encoder's: text under an array's type
/// is quoted by it as one element (psycopg then reads no list at all).
pub fn for_client(fields: &[FieldInfo], batch: RecordBatch) -> Result<RecordBatch> {
    let as_text = |i: usize| {
        fields
            .get(i)
            .is_some_and(|f| f.format() == FieldFormat::Text)
    };
    converted(batch, &|i, column| {
        let sendable = match sent_as(column.data_type()) {
            Some(DataType::Float32) => match cast(column, &DataType::Float32) {
                Ok(cast) => Some(cast),
                Err(e) => return Some(Err(e.into())),
            },
            Some(_) => return Some(any_text(column).map(|text| Arc::new(text) as ArrayRef)),
            None => None,
        };
        let sent = sendable.as_ref().unwrap_or(column);
        match column_text(sent, false).filter(|_| as_text(i)) {
            Some(text) => Some(text.map(|t| Arc::new(t) as ArrayRef)),
            None => sendable.map(Ok),
        }
    })
}

/// `batch` as `COPY ... TO` writes it: every column whose text PostgreSQL writes
/// otherwise than arrow made text, lists included.
pub fn for_copy(batch: RecordBatch) -> Result<RecordBatch> {
    converted(batch, &|_, column| {
        column_text(column, true).map(|text| text.map(|t| Arc::new(t) as ArrayRef))
    })
}

/// `batch` with each column `convert` gives a new one for replaced by it.
fn converted(
    batch: RecordBatch,
    convert: &dyn Fn(usize, &ArrayRef) -> Option<Result<ArrayRef>>,
) -> Result<RecordBatch> {
    let mut replaced = false;
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut fields = Vec::with_capacity(batch.num_columns());
    for (i, (column, field)) in batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .enumerate()
    {
        match convert(i, column) {
            Some(new) => {
                let new = new?;
                fields.push(Arc::new(Field::new(
                    field.name(),
                    new.data_type().clone(),
                    true,
                )));
                columns.push(new);
                replaced = true;
            }
            None => {
                columns.push(column.clone());
                fields.push(field.clone());
            }
        }
    }
    if !replaced {
        return Ok(batch);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A column of any type as text: PostgreSQL's forms where [`column_text`] has
/// them, arrow's otherwise (a map's `{a: 1}`).
fn any_text(column: &ArrayRef) -> Result<StringArray> {
    if let Some(text) = column_text(column, true) {
        return text;
    }
    let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
    Ok((0..column.len())
        .map(|row| (!column.is_null(row)).then(|| formatter.value(row).to_string()))
        .collect())
}

/// A column's values as PostgreSQL writes them, for the types it writes otherwise
/// than arrow (and lists, when `lists`); None for the rest.
fn column_text(column: &ArrayRef, lists: bool) -> Option<Result<StringArray>> {
    let each = |column: &ArrayRef, value: &dyn Fn(usize) -> String| -> StringArray {
        (0..column.len())
            .map(|row| (!column.is_null(row)).then(|| value(row)))
            .collect()
    };
    match column.data_type() {
        DataType::Float64 => {
            let values: &Float64Array = column.as_primitive();
            Some(Ok(each(column, &|row| float8(values.value(row)))))
        }
        DataType::Float32 => {
            let values: &Float32Array = column.as_primitive();
            Some(Ok(each(column, &|row| float4(values.value(row)))))
        }
        DataType::Timestamp(_, None) => Some(
            cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(Into::into)
                .map(|micros| {
                    let values = micros.as_primitive::<TimestampMicrosecondType>();
                    each(column, &|row| timestamp(values.value(row)))
                }),
        ),
        DataType::Date32 | DataType::Date64 => Some(
            cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(Into::into)
                .map(|micros| {
                    let values = micros.as_primitive::<TimestampMicrosecondType>();
                    each(column, &|row| date(values.value(row)))
                }),
        ),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView if lists => Some(
            cast(column, &DataType::LargeBinary)
                .map_err(Into::into)
                .map(|bytes| {
                    let values = bytes.as_binary::<i64>();
                    each(column, &|row| bytea(values.value(row)))
                }),
        ),
        DataType::Time64(_) | DataType::Time32(_) => Some(
            cast(column, &DataType::Time64(TimeUnit::Microsecond))
                .map_err(Into::into)
                .map(|micros| {
                    let values = micros.as_primitive::<Time64MicrosecondType>();
                    each(column, &|row| time(values.value(row)))
                }),
        ),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) if lists => {
            Some(list_text(column))
        }
        _ => None,
    }
}

/// Each list of `column` as PostgreSQL writes an array, its elements in their
/// PostgreSQL forms.
fn list_text(column: &ArrayRef) -> Result<StringArray> {
    let options = FormatOptions::default();
    let mut out = Vec::with_capacity(column.len());
    for row in 0..column.len() {
        if column.is_null(row) {
            out.push(None);
            continue;
        }
        let elements = match column.data_type() {
            DataType::List(_) => column.as_list::<i32>().value(row),
            DataType::LargeList(_) => column.as_list::<i64>().value(row),
            _ => column.as_fixed_size_list().value(row),
        };
        let nested = matches!(
            elements.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        );
        let texts: Vec<Option<String>> = match column_text(&elements, true).transpose()? {
            Some(made) => made.iter().map(|t| t.map(str::to_string)).collect(),
            None if elements.data_type() == &DataType::Utf8 => elements
                .as_string::<i32>()
                .iter()
                .map(|text| text.map(str::to_string))
                .collect(),
            None if elements.data_type() == &DataType::Utf8View => elements
                .as_string_view()
                .iter()
                .map(|text| text.map(str::to_string))
                .collect(),
            None if elements.data_type() == &DataType::Boolean => elements
                .as_boolean()
                .iter()
                .map(|b| b.map(|b| if b { "t" } else { "f" }.to_string()))
                .collect(),
            None => {
                let formatter = ArrayFormatter::try_new(elements.as_ref(), &options)?;
                (0..elements.len())
                    .map(|i| (!elements.is_null(i)).then(|| formatter.value(i).to_string()))
                    .collect()
            }
        };
        out.push(Some(array(&texts, nested)));
    }
    Ok(StringArray::from(out))
}

/// A `double precision` as PostgreSQL writes it (extra_float_digits 1, its
/// default): the shortest text that reads back the same, in exponent form below
/// 1e-4 and from 1e15.
pub fn float8(v: f64) -> String {
    special(v.is_nan(), v.is_infinite(), v.is_sign_negative())
        .unwrap_or_else(|| shortest(&format!("{v:e}"), &v.to_string(), 15))
}

/// A `real` as PostgreSQL writes it: as [`float8`], in exponent form from 1e6.
pub fn float4(v: f32) -> String {
    special(v.is_nan(), v.is_infinite(), v.is_sign_negative())
        .unwrap_or_else(|| shortest(&format!("{v:e}"), &v.to_string(), 6))
}

fn special(nan: bool, infinite: bool, negative: bool) -> Option<String> {
    let text = match (nan, infinite, negative) {
        (true, _, _) => "NaN",
        (_, true, false) => "Infinity",
        (_, true, true) => "-Infinity",
        _ => return None,
    };
    Some(text.to_string())
}

/// `fixed` (Rust's shortest digits without an exponent) where the exponent of
/// `exponent_form` (`1.5e20`) is from -4 to below `fixed_below`, else the exponent
/// form as C's printf writes it (`1.5e+20`, `1e-05`).
fn shortest(exponent_form: &str, fixed: &str, fixed_below: i32) -> String {
    let (digits, exponent) = exponent_form
        .split_once('e')
        .expect("the exponent form of a finite float has an e");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    if (-4..fixed_below).contains(&exponent) {
        return fixed.to_string();
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{digits}e{sign}{:02}", exponent.abs())
}

/// Microseconds since 1970 as PostgreSQL writes a `timestamp`:
/// `2020-01-01 10:00:00`, `2020-01-01 10:00:00.5`.
pub fn timestamp(micros: i64) -> String {
    use chrono::{Datelike, Timelike};
    let Some(t) = chrono::DateTime::from_timestamp_micros(micros) else {
        return micros.to_string();
    };
    // Years as PostgreSQL writes them: four digits or more, no sign; year 0 and
    // before are 1 BC and before.
    let (year, era) = match t.year() {
        year if year <= 0 => (1 - year, " BC"),
        year => (year, ""),
    };
    format!(
        "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}{}{era}",
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        fraction(micros.rem_euclid(1_000_000))
    )
}

/// A date (microseconds since 1970 at its midnight) as PostgreSQL writes it:
/// `2020-01-02`, `10000-01-01`, `0045-03-15 BC`.
pub fn date(micros: i64) -> String {
    let text = timestamp(micros.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY);
    match text.split_once(' ') {
        Some((day, rest)) => format!("{day}{}", rest.strip_prefix("00:00:00").unwrap_or(rest)),
        None => text,
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Bytes as PostgreSQL writes a `bytea` (`bytea_output = hex`): `\x616263`.
pub fn bytea(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Microseconds since midnight as PostgreSQL writes a `time`: `10:00:00.25`.
pub fn time(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    format!(
        "{:02}:{:02}:{:02}{}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        fraction(micros.rem_euclid(1_000_000))
    )
}

/// `.5` for 500,000 microseconds; nothing for none.
fn fraction(micros: i64) -> String {
    if micros == 0 {
        return String::new();
    }
    let digits = format!(".{micros:06}");
    digits.trim_end_matches('0').to_string()
}

/// A list as PostgreSQL writes an array: `{Effusion,"Pleural Thickening",NULL}`;
/// elements that are arrays (`nested`) as they are, `{{1,2},{3,4}}`.
pub fn array(elements: &[Option<String>], nested: bool) -> String {
    let mut out = String::from("{");
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let Some(text) = element else {
            out.push_str("NULL");
            continue;
        };
        let quoted = !nested
            && (text.is_empty()
                || text.eq_ignore_ascii_case("NULL")
                || text.chars().any(|c| {
                    matches!(c, '{' | '}' | ',' | '"' | '\\' | '\x0B') || c.is_ascii_whitespace()
                }));
        if quoted {
            out.push('"');
            for c in text.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(text);
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL 15's own output (`SELECT x::float8`, `x::real`), by hand.
    #[test]
    fn floats_as_postgresql_writes_them() {
        for (value, text) in [
            (0.1, "0.1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e300, "1e+300"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (2.0 / 3.0, "0.6666666666666666"),
        ] {
            assert_eq!(float8(value), text, "{value}");
        }
        for (value, text) in [
            (0.1f32, "0.1"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (1.5e-5, "1.5e-05"),
            (f32::INFINITY, "Infinity"),
        ] {
            assert_eq!(float4(value), text, "{value}");
        }
    }

    #[test]
    fn timestamps_and_times_without_trailing_zeros() {
        assert_eq!(timestamp(1_577_872_800_000_000), "2020-01-01 10:00:00");
        assert_eq!(timestamp(1_577_872_800_500_000), "2020-01-01 10:00:00.5");
        assert_eq!(timestamp(-1), "1969-12-31 23:59:59.999999");
        // PostgreSQL: `SELECT '10000-01-01'::timestamp`, `'0001-01-01 BC'::timestamp`.
        assert_eq!(timestamp(253_402_300_800_000_000), "10000-01-01 00:00:00");
        assert_eq!(timestamp(-62_167_219_200_000_000), "0001-01-01 00:00:00 BC");
        // `SELECT '0045-03-15 BC'::date, '10000-01-01'::date, '\\x616263'::bytea`.
        assert_eq!(date(-63_549_360_000_000_000), "0045-03-15 BC");
        assert_eq!(date(253_402_300_800_000_000), "10000-01-01");
        assert_eq!(date(1_577_923_200_000_000), "2020-01-02");
        assert_eq!(bytea(b"abc"), "\\x616263");
        assert_eq!(time(36_000_250_000), "10:00:00.25");
        assert_eq!(time(0), "00:00:00");
    }

    #[test]
    fn arrays_quote_what_postgresql_quotes() {
        let elements = [
            Some("Effusion"),
            Some("Pleural Thickening"),
            None,
            Some("null"),
            Some(""),
            Some("a\"b\\c"),
        ]
        .map(|e| e.map(str::to_string));
        let text = array(&elements, false);
        assert_eq!(
            text,
            r#"{Effusion,"Pleural Thickening",NULL,"null","","a\"b\\c"}"#
        );
    }
}
