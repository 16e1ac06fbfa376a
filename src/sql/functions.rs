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
    use datafusion::functions::{regex, string, unicode};
    use datafusion::functions_nested::{concat, range, repeat, resize};
    let capped = |inner: Arc<ScalarUDF>, growth: Growth| {
        ScalarUDF::new_from_impl(Capped::new(inner, growth))
    };
    vec![
        ScalarUDF::from(FindingLabels::new()),
        capped(string::repeat(), Growth::Times),
        capped(unicode::lpad(), Growth::Length),
        capped(unicode::rpad(), Growth::Length),
        capped(string::concat(), Growth::Sum { separated: false }),
        capped(string::concat_ws(), Growth::Sum { separated: true }),
        capped(string::replace(), Growth::Replace(2)),
        capped(regex::regexp_replace(), Growth::Replace(2)),
        capped(repeat::array_repeat_udf(), Growth::Copies),
        capped(concat::array_concat_udf(), Growth::Sum { separated: false }),
        capped(concat::array_append_udf(), Growth::Sum { separated: false }),
        capped(
            concat::array_prepend_udf(),
            Growth::Sum { separated: false },
        ),
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

/// How a growing function's arguments size its result.
#[derive(Debug, PartialEq, Eq, Hash)]
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
        let allowed =
            MAX_GROWN_BYTES.max(MAX_GROWN_BYTES_PER_ROW.saturating_mul(args.number_rows as u64));
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
            signature: one_mask(),
        }
    }
}

/// The signature of a function of one finding mask (a 32- or 64-bit integer).
fn one_mask() -> Signature {
    Signature::uniform(
        1,
        vec![DataType::Int32, DataType::Int64],
        Volatility::Immutable,
    )
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
/// (after DataFusion's type coercion), a chain of them to one call, keeping each
/// expression's name.
#[derive(Debug)]
pub struct CappedTextConcat {
    joined: Arc<ScalarUDF>,
}

impl Default for CappedTextConcat {
    fn default() -> CappedTextConcat {
        let concat = ScalarUDF::new_from_impl(Capped::new(
            datafusion::functions::string::concat(),
            Growth::Sum { separated: false },
        ));
        CappedTextConcat {
            joined: Arc::new(ScalarUDF::new_from_impl(JoinedText {
                concat,
                signature: Signature::variadic_any(Volatility::Immutable),
            })),
        }
    }
}

impl CappedTextConcat {
    fn rewrite(
        &self,
        expr: datafusion::logical_expr::Expr,
    ) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
        use datafusion::common::tree_node::Transformed;
        use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
        use datafusion::logical_expr::{Expr, Operator};
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

impl datafusion::optimizer::AnalyzerRule for CappedTextConcat {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        rewrite_expressions(plan, |expr, _| self.rewrite(expr))
    }

    fn name(&self) -> &str {
        "capped_text_concat"
    }
}

/// Rewrites every expression of `plan` and of its subqueries, bottom up, with
/// `rewrite` (given the schema of the node's inputs), each expression keeping its
/// name: a result column is named as the SQL wrote it.
pub(super) fn rewrite_expressions(
    plan: datafusion::logical_expr::LogicalPlan,
    rewrite: impl Fn(
        datafusion::logical_expr::Expr,
        &datafusion::common::DFSchema,
    ) -> Result<
        datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>,
    >,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    plan.transform_up_with_subqueries(|node| {
        let names = NamePreserver::new(&node);
        let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
        let rewritten = node.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_up(|e| rewrite(e, &schema))
                .map(|t| t.update_data(|e| name.restore(e)))
        })?;
        if rewritten.transformed {
            rewritten.map_data(|n| n.recompute_schema())
        } else {
            Ok(rewritten)
        }
    })
    .map(|t| t.data)
}

/// Every aggregate function of this module, to register.
pub fn aggregates() -> Vec<datafusion::logical_expr::AggregateUDF> {
    vec![datafusion::logical_expr::AggregateUDF::from(
        FindingPairCounts::new(),
    )]
}

/// `finding_pair_counts(mask)`: over a group's masks of the 18 findings (bit k is
/// `XR_FINDINGS[k]`), how many have both findings of each pair, as a list of 18 × 18
/// counts: element `a * 18 + b + 1` counts the masks with bits a and b, the diagonal
/// (`a * 19 + 1`) those with bit a. NULL masks are not counted. One pass over the
/// rows: co-occurrence within a cohort then needs no join of masks with pairs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FindingPairCounts {
    signature: Signature,
}

/// The cells of [`FindingPairCounts`]' list.
const PAIR_CELLS: usize = XR_FINDINGS.len() * XR_FINDINGS.len();

impl FindingPairCounts {
    fn new() -> FindingPairCounts {
        FindingPairCounts {
            signature: one_mask(),
        }
    }
}

impl datafusion::logical_expr::AggregateUDFImpl for FindingPairCounts {
    fn name(&self) -> &str {
        "finding_pair_counts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Int64,
            true,
        ))))
    }

    fn accumulator(
        &self,
        _args: datafusion::logical_expr::function::AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::Accumulator>> {
        Ok(Box::new(PairCounts(vec![0; PAIR_CELLS])))
    }
}

/// The counts of one group of [`FindingPairCounts`].
#[derive(Debug)]
struct PairCounts(Vec<i64>);

impl datafusion::logical_expr::Accumulator for PairCounts {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let masks = cast(&values[0], &DataType::Int64)?;
        let masks = masks
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        let width = XR_FINDINGS.len();
        let mut bits = Vec::with_capacity(width);
        for mask in masks.iter().flatten() {
            bits.clear();
            bits.extend((0..width).filter(|k| mask & (1 << k) != 0));
            for &a in &bits {
                for &b in &bits {
                    self.0[a * width + b] += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<datafusion::common::ScalarValue> {
        let list = datafusion::arrow::array::ListArray::from_iter_primitive::<
            datafusion::arrow::datatypes::Int64Type,
            _,
            _,
        >([Some(self.0.iter().map(|&n| Some(n)))]);
        Ok(datafusion::common::ScalarValue::List(Arc::new(list)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.capacity() * std::mem::size_of::<i64>()
    }

    fn state(&mut self) -> Result<Vec<datafusion::common::ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = datafusion::common::cast::as_list_array(&states[0])?;
        for counts in lists.iter().flatten() {
            let counts = counts
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("a list of Int64");
            for (cell, n) in self.0.iter_mut().zip(counts.iter()) {
                *cell += n.unwrap_or(0);
            }
        }
        Ok(())
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
