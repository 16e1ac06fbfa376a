//! Cleaned rows → Arrow record batches, the form the warehouse writes.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    ListBuilder, RecordBatch, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{Field, Schema};

use crate::error::Result;

/// A batch from named columns; every field nullable, as the contract allows.
pub fn batch(cols: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = cols.into_iter().map(|(_, a)| a).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// A Utf8 column.
pub fn utf8<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

/// A Utf8 column without NULLs.
pub fn text<'a>(values: impl IntoIterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A `List(Utf8)` column.
pub fn list_utf8<'a, S: AsRef<str> + 'a>(rows: impl IntoIterator<Item = &'a [S]>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for v in r {
            b.values().append_value(v.as_ref());
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// A `List(Utf8)` column, NULL where a row has no list.
pub fn optional_list_utf8<'a, S: AsRef<str> + 'a>(
    rows: impl IntoIterator<Item = Option<&'a [S]>>,
) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for v in row.unwrap_or_default() {
            b.values().append_value(v.as_ref());
        }
        b.append(row.is_some());
    }
    Arc::new(b.finish())
}

/// An Int8 column.
pub fn i8s(values: impl IntoIterator<Item = Option<i8>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int8Array>())
}

/// An Int16 column.
pub fn i16s(values: impl IntoIterator<Item = Option<i16>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int16Array>())
}

/// An Int32 column.
pub fn i32s(values: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int32Array>())
}

/// An Int64 column.
pub fn i64s(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}

/// A Float64 column.
pub fn f64s(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Float64Array>())
}

/// A Boolean column.
pub fn bools(values: impl IntoIterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<BooleanArray>())
}
