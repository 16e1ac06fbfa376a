//! The Parquet writer options a `COPY ... TO` (or a `SET` of the session's Parquet
//! settings) may give: the writer trusts them, and some values made it panic (a row
//! group of 0 rows, a truncation length of 0, a dictionary encoding asked for by
//! name, a bit-level encoding of a column of text) or loop forever (pages of 0
//! rows). They are refused before anything is written, naming the option.

use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};

use crate::error::{Error, Result};

/// Options that count something the writer divides into: 1 at least.
const AT_LEAST_ONE: [&str; 9] = [
    "max_row_group_size",
    "data_page_row_count_limit",
    "data_pagesize_limit",
    "write_batch_size",
    "column_index_truncate_length",
    "statistics_truncate_length",
    "maximum_parallel_row_group_writers",
    "maximum_buffered_record_batches_per_stream",
    "dictionary_page_size_limit",
];

/// Checks one option `key` = `value` (`format.encoding::age`, `datafusion.execution.
/// parquet.max_row_group_size`) against the columns it would apply to (`schema`; none
/// for a session setting).
pub fn check(key: &str, value: &str, schema: Option<&SchemaRef>) -> Result<()> {
    let key = key.to_ascii_lowercase();
    let (option, column) = match key.split_once("::") {
        Some((option, column)) => (option, Some(column)),
        None => (key.as_str(), None),
    };
    let name = option.rsplit('.').next().unwrap_or(option);
    let value = value.trim().to_ascii_lowercase();
    let refuse = |why: &str| Err(Error::Query(format!("refused: {key} '{value}': {why}")));
    if AT_LEAST_ONE.contains(&name) && value.parse::<u64>() == Ok(0) {
        return refuse("it must be at least 1");
    }
    if name == "bloom_filter_fpp" && !value.parse::<f64>().is_ok_and(|p| p > 0.0 && p < 1.0) {
        return refuse("a false-positive probability is above 0 and below 1");
    }
    if name != "encoding" {
        return Ok(());
    }
    let Some(schema) = schema else { return Ok(()) };
    let fields: Vec<&Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| column.is_none_or(|c| f.name().eq_ignore_ascii_case(c)))
        .collect();
    for field in fields {
        if !encodes(&value, leaf(field.data_type())) {
            return refuse(&format!(
                "not an encoding of column `{}` ({}): plain suits every column, delta_binary_packed integers, byte_stream_split numbers, delta_length_byte_array and delta_byte_array text; dictionaries are the writer's own (dictionary_enabled)",
                field.name(),
                field.data_type()
            ));
        }
    }
    Ok(())
}

/// The type of the values a column holds at its leaves (a list's items).
fn leaf(kind: &DataType) -> &DataType {
    match kind {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            leaf(item.data_type())
        }
        other => other,
    }
}

/// Whether the Parquet writer can write values of `kind` in `encoding`.
fn encodes(encoding: &str, kind: &DataType) -> bool {
    let integer = kind.is_integer() || kind.is_temporal();
    let text = matches!(
        kind,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
    );
    match encoding {
        "plain" => true,
        "delta_binary_packed" => integer,
        "byte_stream_split" => integer || kind.is_floating(),
        "delta_length_byte_array" | "delta_byte_array" => text,
        "rle" => *kind == DataType::Boolean,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Schema;
    use std::sync::Arc;

    #[test]
    fn values_the_writer_would_panic_on_are_refused() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("image_index", DataType::Utf8, false),
            Field::new("age", DataType::Int16, true),
        ]));
        let s = Some(&schema);
        assert!(check("format.max_row_group_size", "0", s).is_err());
        assert!(check("datafusion.execution.parquet.max_row_group_size", "0", None).is_err());
        assert!(check("format.max_row_group_size", "1000", s).is_ok());
        assert!(check("format.bloom_filter_fpp", "1.5", s).is_err());
        assert!(check("format.bloom_filter_fpp", "0.01", s).is_ok());
        assert!(check("format.encoding", "delta_binary_packed", s).is_err());
        assert!(check("format.encoding::age", "delta_binary_packed", s).is_ok());
        assert!(check("format.encoding::image_index", "rle", s).is_err());
        assert!(check("format.encoding", "rle_dictionary", s).is_err());
        assert!(check("format.encoding", "plain", s).is_ok());
        assert!(check("format.compression", "zstd(1)", s).is_ok());
    }
}
