//! What a query may build beyond what it reads. DataFusion's memory pool counts
//! what sorts, joins and aggregations hold, not what a function makes:
//! `repeat('x', 2000000000)`, a separator joined between a million elements, an
//! `encode` of an `encode` of ..., or a constant copied into every row of a
//! batch would allocate gigabytes outside any limit and end the process. So:
//! - the functions whose result grows with their arguments' values are
//!   [`Capped`]: the call is refused before it runs when its result could pass
//!   [`allowance`];
//! - every other function is [`Checked`]: a result larger than its arguments by
//!   more than the allowance is refused, so no chain of calls multiplies;
//! - `||` between texts goes through the capped `concat`, and calls DataFusion's
//!   planner makes itself (`[a, b]`) through the capped functions ([`CappedCalls`]);
//! - a constant of more than [`MAX_CONSTANT_BYTES`] in a query that reads a table,
//!   a growing aggregate as a window function and a regular expression that differs
//!   per row are refused ([`BoundedPlans`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// DataFusion's functions whose result grows with their arguments' values, each
/// with its cap, to register in place of DataFusion's.
pub fn capped() -> Vec<ScalarUDF> {
    use datafusion::functions::{datetime, regex, string, unicode};
    use datafusion::functions_nested::{concat, range, repeat, replace, resize};
    let capped = |inner: Arc<ScalarUDF>, growth: Growth| {
        ScalarUDF::new_from_impl(Capped::new(inner, growth))
    };
    let sum = Growth::Sum { separated: false };
    vec![
        capped(string::repeat(), Growth::Times),
        capped(unicode::lpad(), Growth::Length),
        capped(unicode::rpad(), Growth::Length),
        capped(string::concat(), sum),
        capped(string::concat_ws(), Growth::Sum { separated: true }),
        capped(string::replace(), Growth::Replace(2)),
        capped(regex::regexp_replace(), Growth::Replace(2)),
        capped(regex::regexp_match(), Growth::Captures),
        capped(datetime::to_char(), Growth::Format),
        capped(
            datafusion::functions_nested::string::array_to_string_udf(),
            Growth::Joined,
        ),
        capped(replace::array_replace_udf(), Growth::Replace(2)),
        capped(replace::array_replace_n_udf(), Growth::Replace(2)),
        capped(replace::array_replace_all_udf(), Growth::Replace(2)),
        capped(repeat::array_repeat_udf(), Growth::Copies),
        capped(concat::array_concat_udf(), sum),
        capped(concat::array_append_udf(), sum),
        capped(concat::array_prepend_udf(), sum),
        capped(
            datafusion::functions_nested::make_array::make_array_udf(),
            sum,
        ),
        capped(datafusion::functions::core::r#struct(), sum),
        capped(datafusion::functions::core::named_struct(), sum),
        capped(resize::array_resize_udf(), Growth::Elements),
        capped(range::range_udf(), Growth::Range),
        capped(range::gen_series_udf(), Growth::Range),
    ]
}

/// The most bytes one call of a function whose result grows with its arguments'
/// values may produce for a batch of rows: `repeat('x', 2000000000)` or
/// `array_repeat(1, 2000000000)` would otherwise allocate gigabytes outside any
/// memory limit (constant folding runs them while planning, before a statement has a
/// memory pool).
pub const MAX_GROWN_BYTES: u64 = 8 << 20;

/// What a call may produce per row of its batch beyond [`MAX_GROWN_BYTES`]: a batch
/// of 65,000 paths joined to a folder (`export --image-root` of a cohort's first
/// studies) is not a bomb, one value of megabytes is.
pub const MAX_GROWN_BYTES_PER_ROW: u64 = 4 << 10;

/// The most bytes a call for a batch of `rows` rows may make beyond its arguments.
pub fn allowance(rows: usize) -> u64 {
    MAX_GROWN_BYTES.max(MAX_GROWN_BYTES_PER_ROW.saturating_mul(rows as u64))
}

/// How a growing function's arguments size its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: n copies of s.
    Times,
    /// `lpad(s, n, fill)`, `rpad`: n characters (up to 4 bytes each).
    Length,
    /// `concat(a, b, ...)`, `concat_ws(sep, a, ...)`: the sum of its arguments (with
    /// a separator, it once more per argument).
    Sum { separated: bool },
    /// `replace(s, from, to)`, `regexp_replace(s, pattern, to)`: each byte of s may
    /// become the argument at this position.
    Replace(usize),
    /// `array_repeat(element, n)`: n copies of the element.
    Copies,
    /// `array_resize(array, n, value)`: n elements (at least 8 bytes each).
    Elements,
    /// `range(start, stop, step)`, `generate_series`: (stop − start) / step integers.
    Range,
    /// `array_to_string(array, separator, null_text)`: each element as text (up to
    /// three times its bytes: a float as digits) with a separator and a null text
    /// per element.
    Joined,
    /// `to_char(value, format)`: up to 16 bytes per byte of format (`%+` is a
    /// 32-byte timestamp).
    Format,
    /// `regexp_match(s, pattern)`: a copy of s per group of the pattern, and one
    /// for the whole match.
    Captures,
}

/// DataFusion's function `inner`, refusing a call whose result for the batch would
/// pass [`MAX_GROWN_BYTES`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

/// The integers of `arg` (NULLs left out); none when it is not of an integer type
/// (a timestamp cast to Int64 would be nanoseconds, not a count).
fn integers(arg: &ColumnarValue) -> Result<Vec<i64>> {
    if !arg.data_type().is_integer() {
        return Ok(Vec::new());
    }
    let Ok(values) = cast(&arg.to_array(1)?, &DataType::Int64) else {
        return Ok(Vec::new());
    };
    let values = values
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64");
    Ok(values.iter().flatten().collect())
}

const MICROS_PER_DAY: u64 = 86_400_000_000;

/// A `range`/`generate_series` argument per row of the batch, as a point on one
/// line: an integer, a date or timestamp in microseconds, an interval in
/// microseconds (a month as 28 days); empty for any other type.
fn points(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit, TimeUnit};
    let values = arg.to_array(rows)?;
    let data_type = values.data_type().clone();
    let as_int64 = |values: &ArrayRef| -> Vec<Option<i64>> {
        cast(values, &DataType::Int64)
            .map(|v| {
                v.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .iter()
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(match data_type {
        t if t.is_integer() => as_int64(&values),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            match cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, None)) {
                Ok(micros) => as_int64(&micros),
                Err(_) => Vec::new(),
            }
        }
        DataType::Interval(_) => {
            let Ok(intervals) = cast(&values, &DataType::Interval(IntervalUnit::MonthDayNano))
            else {
                return Ok(Vec::new());
            };
            intervals
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|i| {
                    i.map(|i| {
                        let days = i128::from(i.months) * 28 + i128::from(i.days);
                        let micros =
                            days * MICROS_PER_DAY as i128 + i128::from(i.nanoseconds) / 1000;
                        micros.clamp(i64::MIN as i128, i64::MAX as i128) as i64
                    })
                })
                .collect()
        }
        _ => Vec::new(),
    })
}

/// The length in bytes of the longest text of `arg`.
fn longest_text(arg: &ColumnarValue) -> Result<u64> {
    let Ok(strings) = cast(&arg.to_array(1)?, &DataType::LargeUtf8) else {
        return Ok(0);
    };
    let strings = strings
        .as_any()
        .downcast_ref::<datafusion::arrow::array::LargeStringArray>()
        .expect("cast to LargeUtf8");
    Ok(strings.iter().flatten().map(str::len).max().unwrap_or(0) as u64)
}

/// The most groups (opening parentheses) in a pattern of `arg`.
fn most_groups(arg: &ColumnarValue) -> Result<u64> {
    let Ok(strings) = cast(&arg.to_array(1)?, &DataType::LargeUtf8) else {
        return Ok(0);
    };
    let strings = strings
        .as_any()
        .downcast_ref::<datafusion::arrow::array::LargeStringArray>()
        .expect("cast to LargeUtf8");
    Ok(strings
        .iter()
        .flatten()
        .map(|p| p.bytes().filter(|&b| b == b'(').count() as u64)
        .max()
        .unwrap_or(0))
}

/// The innermost values of the lists of `arg` for `rows` rows (a constant list
/// counts once per row): the elements `array_to_string` writes.
fn leaf_values(arg: &ColumnarValue, rows: u64) -> Result<u64> {
    let (array, copies) = match arg {
        ColumnarValue::Array(array) => (array.clone(), 1),
        ColumnarValue::Scalar(value) => (value.to_array()?, rows),
    };
    Ok(leaves(array.as_ref()).saturating_mul(copies))
}

/// The innermost values of an array (of its slice), through lists of lists.
fn leaves(array: &dyn Array) -> u64 {
    use datafusion::arrow::array::AsArray;
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            leaves(list.values().slice(first, last - first).as_ref())
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            let offsets = list.value_offsets();
            let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
            leaves(list.values().slice(first, last - first).as_ref())
        }
        DataType::FixedSizeList(_, size) => {
            let list = array.as_fixed_size_list();
            let first = list.offset() * *size as usize;
            leaves(
                list.values()
                    .slice(first, list.len() * *size as usize)
                    .as_ref(),
            )
        }
        _ => array.len() as u64,
    }
}

/// The bytes `arg` holds for `rows` rows (a constant counts once per row).
fn bytes_for(arg: &ColumnarValue, rows: u64) -> u64 {
    match arg {
        ColumnarValue::Array(array) => value_bytes(array.as_ref()),
        ColumnarValue::Scalar(value) => (value.size() as u64).saturating_mul(rows),
    }
}

/// The bytes of an array's own values: not the buffers it holds, which may be a
/// bigger batch's or a builder's spare capacity (a join's 64,540 paths of 4 MB
/// held 8 MiB of buffers, and a concatenation of them was refused).
fn value_bytes(array: &dyn Array) -> u64 {
    use datafusion::arrow::array::AsArray;
    // A view's low 32 bits are its value's length.
    let view_lengths = |views: &[u128]| views.iter().map(|&v| u64::from(v as u32)).sum();
    match array.data_type() {
        DataType::Utf8View => view_lengths(array.as_string_view().views()),
        DataType::BinaryView => view_lengths(array.as_binary_view().views()),
        _ => array
            .to_data()
            .get_slice_memory_size()
            .map_or(array.get_array_memory_size(), |n| n) as u64,
    }
}

impl Capped {
    fn new(inner: Arc<ScalarUDF>, growth: Growth) -> Capped {
        Capped { inner, growth }
    }

    /// The most bytes the call can produce for its batch.
    fn bound(&self, args: &ScalarFunctionArgs) -> Result<u64> {
        let rows = args.number_rows.max(1) as u64;
        let a = &args.args;
        let largest = |k: usize| -> Result<u64> {
            Ok(a.get(k)
                .map(integers)
                .transpose()?
                .map_or(0, |v| v.into_iter().max().unwrap_or(0).max(0) as u64))
        };
        Ok(match self.growth {
            Growth::Length => largest(1)?.saturating_mul(4).saturating_mul(rows),
            Growth::Times => largest(1)?
                .saturating_mul(a.first().map(longest_text).transpose()?.unwrap_or(0))
                .saturating_mul(rows),
            Growth::Sum { separated } => {
                let all: u64 = a.iter().map(|arg| bytes_for(arg, rows)).sum();
                let separator = if separated {
                    a.first().map_or(0, |arg| bytes_for(arg, rows))
                } else {
                    0
                };
                all.saturating_add(separator.saturating_mul(a.len() as u64))
            }
            Growth::Elements => largest(1)?.saturating_mul(8).saturating_mul(rows),
            Growth::Replace(by) => {
                let replacement = a.get(by).map(longest_text).transpose()?.unwrap_or(0);
                a.first()
                    .map_or(0, |s| bytes_for(s, rows))
                    .saturating_mul(1 + replacement)
            }
            Growth::Joined => {
                let elements = a.first().map_or(Ok(0), |list| leaf_values(list, rows))?;
                let per_element = [1, 2]
                    .iter()
                    .filter_map(|&k| a.get(k))
                    .map(longest_text)
                    .sum::<Result<u64>>()?;
                a.first()
                    .map_or(0, |list| bytes_for(list, rows))
                    .saturating_mul(3)
                    .saturating_add(elements.saturating_mul(per_element))
            }
            Growth::Format => a
                .get(1)
                .map_or(0, |f| bytes_for(f, rows))
                .saturating_mul(16),
            Growth::Captures => {
                let groups = a.get(1).map(most_groups).transpose()?.unwrap_or(0);
                a.first()
                    .map_or(0, |s| bytes_for(s, rows))
                    .saturating_mul(1 + groups)
            }
            Growth::Copies => {
                let element = a.first().map_or(0, |e| bytes_for(e, rows) / rows).max(8);
                largest(1)?.saturating_mul(element).saturating_mul(rows)
            }
            Growth::Range => {
                // Each row's own span (rising or falling) over its own step, summed:
                // integers, or dates and timestamps in microseconds over an
                // interval's (a month taken as 28 days, the most steps it can be).
                let batch = args.number_rows.max(1);
                let column = |k: usize| a.get(k).map(|arg| points(arg, batch)).transpose();
                let (starts, stops, steps) = match a.len() {
                    1 => (vec![Some(0); batch], column(0)?.unwrap_or_default(), None),
                    _ => (
                        column(0)?.unwrap_or_default(),
                        column(1)?.unwrap_or_default(),
                        column(2)?,
                    ),
                };
                let temporal = a.first().is_some_and(|arg| arg.data_type().is_temporal());
                let default_step = if temporal { MICROS_PER_DAY } else { 1 };
                let mut elements = 0u64;
                for (row, (start, stop)) in starts.iter().zip(&stops).enumerate() {
                    let (Some(start), Some(stop)) = (start, stop) else {
                        continue;
                    };
                    let step = steps
                        .as_ref()
                        .and_then(|s| s.get(row).copied().flatten())
                        .map(i64::unsigned_abs)
                        .filter(|&s| s > 0)
                        .unwrap_or(default_step);
                    let span = (*stop as i128 - *start as i128).unsigned_abs() as u64;
                    elements = elements.saturating_add(span / step + 1);
                }
                elements.saturating_mul(8)
            }
        })
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(args)
    }

    // No `simplify`: DataFusion's (concat's) would build the joined text itself, or
    // rewrite to the function without its cap.

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bound = self.bound(&args)?;
        let allowed = allowance(args.number_rows);
        if bound > allowed {
            return datafusion::common::exec_err!(
                "{}(...) could build up to {} MiB for {} rows; cxr allows {} MiB per call (or {} KiB per row)",
                self.name(),
                bound >> 20,
                args.number_rows,
                MAX_GROWN_BYTES >> 20,
                MAX_GROWN_BYTES_PER_ROW >> 10
            );
        }
        self.inner.invoke_with_args(args)
    }
}

/// The functions [`check_every_function`] leaves as they are: cxr's own and the
/// capped ones (registered before it), and those DataFusion recognises by their
/// type to plan or simplify (a struct's field access, `log` of `power`, the Parquet
/// reader's file name and row index).
const NOT_CHECKED: [&str; 5] = [
    "get_field",
    "power",
    "log",
    "input_file_name",
    "file_row_index",
];

/// Wraps every scalar function of `ctx` not in [`NOT_CHECKED`] and not already
/// cxr's in [`Checked`].
pub fn check_every_function(ctx: &datafusion::prelude::SessionContext) {
    let own: Vec<String> = super::functions::all()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let state = ctx.state();
    let functions: Vec<Arc<ScalarUDF>> = state.scalar_functions().values().cloned().collect();
    for function in functions {
        let name = function.name();
        if own.iter().any(|n| n == name) || NOT_CHECKED.contains(&name) {
            continue;
        }
        ctx.register_udf(ScalarUDF::new_from_impl(Checked { inner: function }));
    }
}

/// A function whose result may be larger than its arguments by at most
/// [`allowance`]: `upper` of a text, an `encode` to hex, a cast to text grow each
/// by a factor, and a chain of them would multiply.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    inner: Arc<ScalarUDF>,
}

/// The bytes of a function argument or result (a constant once).
fn held_bytes(value: &ColumnarValue) -> u64 {
    match value {
        ColumnarValue::Array(array) => value_bytes(array.as_ref()),
        ColumnarValue::Scalar(value) => value.size() as u64,
    }
}

// Every method is the inner function's (as DataFusion's own alias wrapper does).
impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn display_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        #[allow(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(
        &self,
        args: &[datafusion::logical_expr::Expr],
        schema: &dyn datafusion::common::ExprSchema,
    ) -> bool {
        #[allow(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn with_updated_config(
        &self,
        config: &datafusion::common::config::ConfigOptions,
    ) -> Option<ScalarUDF> {
        let inner = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Checked {
            inner: Arc::new(inner),
        }))
    }

    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[datafusion::logical_expr::Expr],
        literal: &datafusion::logical_expr::Expr,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::preimage::PreimageResult> {
        self.inner.inner().preimage(args, literal, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [datafusion::logical_expr::Expr],
    ) -> Option<(
        Vec<&'a datafusion::logical_expr::Expr>,
        Vec<&'a datafusion::logical_expr::Expr>,
    )> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(
        &self,
        input: &[&datafusion::logical_expr::interval_arithmetic::Interval],
    ) -> Result<datafusion::logical_expr::interval_arithmetic::Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &datafusion::logical_expr::interval_arithmetic::Interval,
        inputs: &[&datafusion::logical_expr::interval_arithmetic::Interval],
    ) -> Result<Option<Vec<datafusion::logical_expr::interval_arithmetic::Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<datafusion::common::ScalarValue>],
    ) -> Option<datafusion::logical_expr::StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn output_ordering(
        &self,
        inputs: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<datafusion::logical_expr::sort_properties::SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(
        &self,
        inputs: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(
        &self,
        inputs: &[datafusion::logical_expr::sort_properties::ExprProperties],
    ) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(args)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }

    fn placement(
        &self,
        args: &[datafusion::logical_expr::ExpressionPlacement],
    ) -> datafusion::logical_expr::ExpressionPlacement {
        self.inner.inner().placement(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let given: u64 = args.args.iter().map(held_bytes).sum();
        let result = self.inner.invoke_with_args(args)?;
        let made = held_bytes(&result);
        if made > given.saturating_add(allowance(rows)) {
            return datafusion::common::exec_err!(
                "{}(...) made {} MiB from {} MiB of arguments for {} rows; cxr allows a function to make {} MiB per call (or {} KiB per row) more than its arguments",
                self.name(),
                made >> 20,
                given >> 20,
                rows,
                MAX_GROWN_BYTES >> 20,
                MAX_GROWN_BYTES_PER_ROW >> 10
            );
        }
        Ok(result)
    }
}

/// The largest constant a query that reads a table may hold: where it meets the
/// table's rows (in a projection, a `CASE`, a join with `VALUES` or a one-row
/// subquery), each row of a batch gets a copy (8,192 copies of an 8 MiB text would
/// be 64 GiB), so it is held to what a function may make per row.
pub const MAX_CONSTANT_BYTES: u64 = MAX_GROWN_BYTES_PER_ROW;

/// The aggregates that build a list or a text of their rows: as window functions
/// DataFusion copies each row's frame into it (quadratic in the frame).
const GROWING_AGGREGATES: [&str; 2] = ["array_agg", "string_agg"];

/// The functions whose second argument is a regular expression.
const PATTERN_FUNCTIONS: [&str; 5] = [
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "regexp_count",
    "regexp_instr",
];

/// Refuses, once constants are folded (an optimizer rule after DataFusion's), the
/// shapes of plan whose memory nothing bounds: a constant larger than
/// [`MAX_CONSTANT_BYTES`] in a query that reads a table (of the warehouse or a file,
/// not of the catalog); `array_agg` or
/// `string_agg` as a window function; a regular expression that differs per row
/// (each row's is compiled and kept for its batch: `'\w{150}' || patient_id`
/// took gigabytes).
#[derive(Debug, Default)]
pub struct BoundedPlans;

impl datafusion::optimizer::OptimizerRule for BoundedPlans {
    fn name(&self) -> &str {
        "bounded_plans"
    }

    fn rewrite(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>>
    {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        use datafusion::logical_expr::LogicalPlan;
        let mut reads_a_table = false;
        let mut largest = 0u64;
        let mut refused: Option<String> = None;
        plan.apply_with_subqueries(|node| {
            // The catalog's tables (small, and read with long constants by the
            // queries of JDBC's and SQLAlchemy's metadata) do not count.
            reads_a_table |= matches!(node, LogicalPlan::TableScan(scan)
                if !matches!(scan.table_name.schema(), Some("pg_catalog" | "information_schema")));
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    if let Some(why) = unbounded(e) {
                        refused.get_or_insert(why);
                    }
                    if let datafusion::logical_expr::Expr::Literal(value, _) = e {
                        largest = largest.max(value.size() as u64);
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        if let Some(why) = refused {
            return datafusion::common::plan_err!("{why}");
        }
        if reads_a_table && largest > MAX_CONSTANT_BYTES {
            return datafusion::common::plan_err!(
                "a constant of {} KiB in a query that reads a table, where each row would get a copy of it; cxr allows constants of up to {} KiB there (a larger one in a query of no table, e.g. SELECT repeat('x', 100000))",
                largest.div_ceil(1024),
                MAX_CONSTANT_BYTES >> 10
            );
        }
        Ok(datafusion::common::tree_node::Transformed::no(plan))
    }

    fn supports_rewrite(&self) -> bool {
        true
    }
}

/// Why an expression is refused by [`BoundedPlans`], if it is: a growing aggregate
/// as a window function, or a pattern that is not a constant.
fn unbounded(expr: &datafusion::logical_expr::Expr) -> Option<String> {
    use datafusion::logical_expr::expr::{Like, WindowFunction, WindowFunctionDefinition};
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
    let constant = |e: &Expr| matches!(e.clone().unalias(), Expr::Literal(..));
    match expr {
        Expr::WindowFunction(window) => {
            let WindowFunction { fun, .. } = window.as_ref();
            let WindowFunctionDefinition::AggregateUDF(aggregate) = fun else {
                return None;
            };
            let named = |n: &str| aggregate.name() == n || aggregate.aliases().iter().any(|a| a == n);
            GROWING_AGGREGATES.iter().any(|n| named(n)).then(|| {
                format!(
                    "{}(...) OVER (...) copies its window's rows into every row; cxr does not run array_agg or string_agg as window functions (group the rows instead, e.g. GROUP BY and a join)",
                    aggregate.name()
                )
            })
        }
        Expr::ScalarFunction(call)
            if PATTERN_FUNCTIONS.contains(&call.func.name())
                && call.args.get(1).is_some_and(|p| !constant(p)) =>
        {
            Some(format!(
                "{}(...) with a pattern that differs per row; cxr takes regular expressions that are constants",
                call.func.name()
            ))
        }
        Expr::BinaryExpr(BinaryExpr { op, right, .. })
            if matches!(
                op,
                Operator::RegexMatch
                    | Operator::RegexIMatch
                    | Operator::RegexNotMatch
                    | Operator::RegexNotIMatch
            ) && !constant(right) =>
        {
            Some(format!(
                "`{op}` with a pattern that differs per row; cxr takes regular expressions that are constants"
            ))
        }
        Expr::SimilarTo(Like { pattern, .. }) if !constant(pattern) => Some(
            "SIMILAR TO a pattern that differs per row; cxr takes regular expressions that are constants".into(),
        ),
        _ => None,
    }
}

/// `a || b` on text, as DataFusion's operator answers it (NULL when either side is
/// NULL) but through the capped `concat`: a chain of `||` grows by at most
/// [`MAX_GROWN_BYTES`] a step, where the operator joined thousands of 8 MiB texts
/// (5,000 of them fit within the statement limits) outside any memory limit.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JoinedText {
    concat: ScalarUDF,
    signature: Signature,
}

impl ScalarUDFImpl for JoinedText {
    fn name(&self) -> &str {
        "text_concat_operator"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.concat.return_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::make_array;
        use datafusion::arrow::buffer::NullBuffer;
        let rows = args.number_rows;
        let scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // The NULLs of the arguments, without making arrays of their constants (an
        // 8 MiB text repeated for every row of a batch is what the cap refuses).
        let mut nulls: Option<NullBuffer> = None;
        let mut a_null_constant = false;
        for arg in &args.args {
            match arg {
                ColumnarValue::Array(array) => {
                    nulls = NullBuffer::union(nulls.as_ref(), array.logical_nulls().as_ref());
                }
                ColumnarValue::Scalar(value) => a_null_constant |= value.is_null(),
            }
        }
        let return_type = self
            .concat
            .return_type(&args.args.iter().map(|a| a.data_type()).collect::<Vec<_>>())?;
        if a_null_constant {
            let null = datafusion::scalar::ScalarValue::try_from(&return_type)?;
            return Ok(if scalars {
                ColumnarValue::Scalar(null)
            } else {
                ColumnarValue::Array(null.to_array_of_size(rows)?)
            });
        }
        let joined = self.concat.invoke_with_args(args)?.to_array(rows)?;
        let nulls = NullBuffer::union(nulls.as_ref(), joined.logical_nulls().as_ref());
        let joined = make_array(joined.to_data().into_builder().nulls(nulls).build()?);
        if scalars {
            let value = datafusion::scalar::ScalarValue::try_from_array(&joined, 0)?;
            return Ok(ColumnarValue::Scalar(value));
        }
        Ok(ColumnarValue::Array(joined))
    }
}

/// Rewrites every `||` between texts to [`JoinedText`] once types are resolved
/// (after DataFusion's type coercion), a chain of them to one call, and every call
/// of a capped function that DataFusion's planner made itself rather than by name
/// (`[a, b]` is `make_array(a, b)`) to the capped one, keeping each expression's
/// name.
#[derive(Debug)]
pub struct CappedCalls {
    joined: Arc<ScalarUDF>,
    capped: Vec<Arc<ScalarUDF>>,
}

impl Default for CappedCalls {
    fn default() -> CappedCalls {
        let concat = ScalarUDF::new_from_impl(Capped::new(
            datafusion::functions::string::concat(),
            Growth::Sum { separated: false },
        ));
        CappedCalls {
            joined: Arc::new(ScalarUDF::new_from_impl(JoinedText {
                concat,
                signature: Signature::variadic_any(Volatility::Immutable),
            })),
            capped: capped().into_iter().map(Arc::new).collect(),
        }
    }
}

impl CappedCalls {
    fn rewrite(
        &self,
        expr: datafusion::logical_expr::Expr,
    ) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
        use datafusion::logical_expr::{Expr, Operator};
        if let Expr::ScalarFunction(call) = &expr
            && !call.func.inner().is::<Capped>()
            && let Some(capped) = self.capped.iter().find(|c| c.name() == call.func.name())
        {
            return Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(capped.clone(), call.args.clone()),
            )));
        }
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::StringConcat,
            right,
        }) = expr
        else {
            return Ok(Transformed::no(expr));
        };
        // A chain (`a || b || c`, rewritten from its innermost `||` out) becomes one
        // call of all its parts: nested calls thousands deep took minutes to plan,
        // and one call checks the whole chain against the cap.
        let mut parts = Vec::new();
        for side in [*left, *right] {
            match side {
                Expr::ScalarFunction(call) if Arc::ptr_eq(&call.func, &self.joined) => {
                    parts.extend(call.args)
                }
                other => parts.push(other),
            }
        }
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.joined.clone(), parts),
        )))
    }
}

impl datafusion::optimizer::AnalyzerRule for CappedCalls {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        super::functions::rewrite_expressions(plan, |expr, _| self.rewrite(expr))
    }

    fn name(&self) -> &str {
        "capped_calls"
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, StringViewArray};

    #[test]
    fn a_slice_counts_its_own_values_not_its_buffers() {
        let strings: StringArray = (0..100_000).map(|i| Some(format!("{i:010}"))).collect();
        // 10 values of 10 bytes and their 11 offsets of 4 bytes.
        assert_eq!(value_bytes(&strings.slice(0, 10)), 10 * 10 + 11 * 4);
        let views = StringViewArray::from_iter_values((0..100_000).map(|i| format!("{i:020}")));
        assert_eq!(value_bytes(&views.slice(5, 10)), 10 * 20);
    }
}
