//! Query results for code that computes on them: columns by name, typed, with an
//! error (never a default) when a column is missing or of another type.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};

use crate::error::{Error, Result};

/// A whole, collected result.
#[derive(Debug, Clone)]
pub struct Rows {
    batch: RecordBatch,
}

impl Rows {
    /// Collects batches of one schema.
    pub fn new(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Rows> {
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or(schema.clone());
        Ok(Rows {
            batch: concat_batches(&schema, batches)?,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The result as one batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The rows at these positions, in this order.
    pub fn take(&self, positions: &[usize]) -> Result<Rows> {
        let idx = datafusion::arrow::array::UInt32Array::from_iter_values(
            positions.iter().map(|&p| p as u32),
        );
        Ok(Rows {
            batch: datafusion::arrow::compute::take_record_batch(&self.batch, &idx)?,
        })
    }

    fn column_as(&self, name: &str, to: &DataType) -> Result<std::sync::Arc<dyn Array>> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| Error::Query(format!("the result has no column `{name}`")))?;
        cast(col, to).map_err(|e| Error::Query(format!("column `{name}`: {e}")))
    }

    /// A column as integers (NULL stays None).
    pub fn i64s(&self, name: &str) -> Result<Vec<Option<i64>>> {
        let a = self.column_as(name, &DataType::Int64)?;
        Ok(a.as_primitive::<Int64Type>().iter().collect())
    }

    /// A column as floats (NULL stays None).
    pub fn f64s(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let a = self.column_as(name, &DataType::Float64)?;
        Ok(a.as_primitive::<Float64Type>().iter().collect())
    }

    /// A column as text (NULL stays None).
    pub fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        let a = self.column_as(name, &DataType::Utf8)?;
        Ok(a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }

    /// A column of integers without NULLs.
    pub fn required_i64s(&self, name: &str) -> Result<Vec<i64>> {
        required(name, self.i64s(name)?)
    }

    /// A column of floats without NULLs.
    pub fn required_f64s(&self, name: &str) -> Result<Vec<f64>> {
        required(name, self.f64s(name)?)
    }

    /// A column of text without NULLs.
    pub fn required_strings(&self, name: &str) -> Result<Vec<String>> {
        required(name, self.strings(name)?)
    }
}

fn required<T>(name: &str, values: Vec<Option<T>>) -> Result<Vec<T>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| Error::Query(format!("column `{name}` is NULL in row {}", i + 1)))
        })
        .collect()
}
