//! cxr's own SQL functions, registered in every context (so SQL that `--show-sql`
//! prints runs in `cxr sql` as printed).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, ListBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::datasets::XR_FINDINGS;

/// Every function of this module, to register (replacing DataFusion's functions
/// of the same names).
pub fn all() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    vec![
        ScalarUDF::from(FindingLabels::new()),
        ScalarUDF::new_from_impl(Capped::new(string::repeat(), Growth::Times)),
        ScalarUDF::new_from_impl(Capped::new(unicode::lpad(), Growth::Length)),
        ScalarUDF::new_from_impl(Capped::new(unicode::rpad(), Growth::Length)),
    ]
}

/// The most bytes one call of a string-growing function may produce for a batch
/// of rows: `repeat('x', 2000000000)` would otherwise allocate gigabytes outside
/// any memory limit.
pub const MAX_GROWN_BYTES: u64 = 256 << 20;

/// How a string-growing function's second argument sizes its result.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: n copies of s.
    Times,
    /// `lpad(s, n, fill)`, `rpad`: n characters (up to 4 bytes each).
    Length,
}

/// DataFusion's `repeat`, `lpad` or `rpad`, refusing a call whose result for the
/// batch would pass [`MAX_GROWN_BYTES`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl Capped {
    fn new(inner: Arc<ScalarUDF>, growth: Growth) -> Capped {
        Capped { inner, growth }
    }

    /// The most bytes the call can produce: rows × the largest count × (for
    /// repeat) the longest string.
    fn bound(&self, args: &ScalarFunctionArgs) -> Result<u64> {
        let rows = args.number_rows.max(1) as u64;
        let Some(count) = args.args.get(1) else {
            return Ok(0);
        };
        let counts = cast(&count.to_array(1)?, &DataType::Int64)?;
        let counts = counts
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        let largest = counts.iter().flatten().max().unwrap_or(0).max(0) as u64;
        let each = match self.growth {
            Growth::Length => largest.saturating_mul(4),
            Growth::Times => {
                let strings = cast(&args.args[0].to_array(1)?, &DataType::LargeUtf8)?;
                let strings = strings
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::LargeStringArray>()
                    .expect("cast to LargeUtf8");
                let longest = strings.iter().flatten().map(str::len).max().unwrap_or(0);
                largest.saturating_mul(longest as u64)
            }
        };
        Ok(each.saturating_mul(rows))
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bound = self.bound(&args)?;
        if bound > MAX_GROWN_BYTES {
            return datafusion::common::exec_err!(
                "{}(...) would build {} MiB of text for {} rows; cxr allows {} MiB per call",
                self.name(),
                bound >> 20,
                args.number_rows,
                MAX_GROWN_BYTES >> 20
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// `finding_labels(mask)`: the names of the findings whose bits are set in a mask of
/// the 18 findings (bit k is `XR_FINDINGS[k]`, as in `finding_states`), sorted by
/// name; an empty list for 0, NULL for NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FindingLabels {
    signature: Signature,
}

impl FindingLabels {
    fn new() -> FindingLabels {
        FindingLabels {
            signature: Signature::uniform(
                1,
                vec![DataType::Int32, DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

/// The findings by name, each with its bit.
fn sorted_bits() -> Vec<(&'static str, i64)> {
    let mut bits: Vec<(&str, i64)> = XR_FINDINGS
        .iter()
        .enumerate()
        .map(|(k, f)| (*f, 1i64 << k))
        .collect();
    bits.sort();
    bits
}

impl ScalarUDFImpl for FindingLabels {
    fn name(&self) -> &str {
        "finding_labels"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let masks = args.args[0].clone().into_array(rows)?;
        let masks = cast(&masks, &DataType::Int64)?;
        let masks = masks
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        let bits = sorted_bits();
        let mut out = ListBuilder::with_capacity(StringBuilder::new(), masks.len());
        for i in 0..masks.len() {
            if masks.is_null(i) {
                out.append_null();
                continue;
            }
            let mask = masks.value(i);
            for (name, bit) in &bits {
                if mask & bit != 0 {
                    out.values().append_value(name);
                }
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
