//! Integer arithmetic and sums that fail on overflow, as PostgreSQL's do, where
//! DataFusion's wrap around silently: `age * age * age` (SMALLINT) of a 95-year-old
//! was 5407, `-x` of the smallest SMALLINT itself, and `sum()` of large bigints a
//! negative number.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, EmitTo, Expr, ExprSchemable, GroupsAccumulator,
    Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Integer `+`, `-`, `*` and unary `-` that fail on overflow. Up to 32 bits the
/// operation is done in a type twice as wide, where it cannot overflow, and cast
/// back to its type, which fails on a value out of range: a tenth more time on
/// arithmetic alone (a join on `a.age + b.age`), where arrow's checked kernels took
/// twice the time and 64 bits half as much again. 64-bit operations call a checked
/// function. `-x` is `0 - x`. Decimals, floats and dates keep DataFusion's operators.
#[derive(Debug)]
pub struct CheckedIntegerArithmetic {
    add: Arc<ScalarUDF>,
    subtract: Arc<ScalarUDF>,
    multiply: Arc<ScalarUDF>,
}

impl Default for CheckedIntegerArithmetic {
    fn default() -> CheckedIntegerArithmetic {
        let checked = |operator| Arc::new(ScalarUDF::new_from_impl(CheckedOperator::new(operator)));
        CheckedIntegerArithmetic {
            add: checked(Operator::Plus),
            subtract: checked(Operator::Minus),
            multiply: checked(Operator::Multiply),
        }
    }
}

impl CheckedIntegerArithmetic {
    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        match expr {
            Expr::Negative(value) => match value.get_type(schema) {
                Ok(kind) if kind.is_signed_integer() => {
                    let zero = ScalarValue::new_zero(&kind)?;
                    let difference = Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(Expr::Literal(zero, None)),
                        Operator::Minus,
                        value,
                    ));
                    self.rewrite(difference, schema)
                }
                _ => Ok(Transformed::no(Expr::Negative(value))),
            },
            Expr::BinaryExpr(binary) => self.rewrite_binary(binary, schema),
            other => Ok(Transformed::no(other)),
        }
    }

    fn rewrite_binary(&self, binary: BinaryExpr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let BinaryExpr { left, op, right } = &binary;
        let function = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.subtract,
            Operator::Multiply => &self.multiply,
            _ => return Ok(Transformed::no(Expr::BinaryExpr(binary))),
        };
        // Typed after coercion: both sides of one integer type. An expression whose
        // type cannot be told here (a column of an outer query) is left as it is.
        let (Ok(kind), Ok(right_kind)) = (left.get_type(schema), right.get_type(schema)) else {
            return Ok(Transformed::no(Expr::BinaryExpr(binary)));
        };
        let Some(width) = IntegerWidth::of(&kind) else {
            return Ok(Transformed::no(Expr::BinaryExpr(binary)));
        };
        if kind != right_kind
            || [left, right]
                .iter()
                .all(|side| widened(side, width, schema))
        {
            return Ok(Transformed::no(Expr::BinaryExpr(binary)));
        }
        let BinaryExpr { left, op, right } = binary;
        let Some(wide) = width.twice().map(|w| w.data_type()) else {
            return Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(function.clone(), vec![*left, *right]),
            )));
        };
        use datafusion::logical_expr::cast as cast_to;
        let widened = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(cast_to(*left, wide.clone())),
            op,
            Box::new(cast_to(*right, wide)),
        ));
        Ok(Transformed::yes(cast_to(widened, kind)))
    }
}

/// An integer type's bits and signedness.
#[derive(Clone, Copy, PartialEq, Eq)]
struct IntegerWidth {
    bits: u32,
    signed: bool,
}

impl IntegerWidth {
    fn of(kind: &DataType) -> Option<IntegerWidth> {
        let (bits, signed) = match kind {
            DataType::Int8 => (8, true),
            DataType::Int16 => (16, true),
            DataType::Int32 => (32, true),
            DataType::Int64 => (64, true),
            DataType::UInt8 => (8, false),
            DataType::UInt16 => (16, false),
            DataType::UInt32 => (32, false),
            DataType::UInt64 => (64, false),
            _ => return None,
        };
        Some(IntegerWidth { bits, signed })
    }

    /// The type twice as wide, which holds any sum, difference or product of two
    /// values of this one; none for 64 bits.
    fn twice(self) -> Option<IntegerWidth> {
        (self.bits <= 32).then_some(IntegerWidth {
            bits: self.bits * 2,
            signed: self.signed,
        })
    }

    fn data_type(self) -> DataType {
        match (self.bits, self.signed) {
            (8, true) => DataType::Int8,
            (16, true) => DataType::Int16,
            (32, true) => DataType::Int32,
            (64, true) => DataType::Int64,
            (8, false) => DataType::UInt8,
            (16, false) => DataType::UInt16,
            (32, false) => DataType::UInt32,
            _ => DataType::UInt64,
        }
    }
}

/// Whether `side` is a value cast to `wide` from an integer of the same signedness
/// and at most half its bits: `+`, `-` or `*` of two such values cannot overflow
/// (what this rule writes, so a second analysis of a plan leaves it as it is).
fn widened(side: &Expr, wide: IntegerWidth, schema: &DFSchema) -> bool {
    let Expr::Cast(datafusion::logical_expr::expr::Cast { expr, .. }) = side else {
        return false;
    };
    let narrow = expr.get_type(schema).ok();
    narrow
        .as_ref()
        .and_then(IntegerWidth::of)
        .is_some_and(|narrow| narrow.signed == wide.signed && narrow.bits * 2 <= wide.bits)
}

impl datafusion::optimizer::AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        super::functions::rewrite_expressions(plan, |expr, schema| self.rewrite(expr, schema))
    }

    fn name(&self) -> &str {
        "checked_integer_arithmetic"
    }
}

/// The error of a 64-bit result out of range ("bigint out of range", PostgreSQL says).
fn out_of_range(what: &str) -> ArrowError {
    ArrowError::ArithmeticOverflow(format!("{what} is out of range for bigint"))
}

/// `+`, `-` or `*` of two 64-bit integers, an error on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOperator {
    operator: Operator,
    signature: Signature,
}

impl CheckedOperator {
    fn new(operator: Operator) -> CheckedOperator {
        CheckedOperator {
            operator,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedOperator {
    fn name(&self) -> &str {
        match self.operator {
            Operator::Plus => "checked_add",
            Operator::Minus => "checked_subtract",
            _ => "checked_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::compute::kernels::numeric::{add, mul, sub};
        use datafusion::physical_expr_common::datum::apply;
        let [left, right] = args.args.as_slice() else {
            return datafusion::common::exec_err!("{} takes two arguments", self.name());
        };
        type Kernel = fn(
            &dyn datafusion::arrow::array::Datum,
            &dyn datafusion::arrow::array::Datum,
        ) -> std::result::Result<ArrayRef, ArrowError>;
        let kernel: Kernel = match self.operator {
            Operator::Plus => add,
            Operator::Minus => sub,
            _ => mul,
        };
        apply(left, right, |l, r| {
            kernel(l, r).map_err(|e| match e {
                ArrowError::ArithmeticOverflow(_) => out_of_range("a result"),
                other => other,
            })
        })
    }
}

/// `sum()` that fails when a sum of 64-bit integers leaves their range, where
/// DataFusion's wraps around (PostgreSQL's sum of bigints is a numeric, and never
/// overflows). It replaces DataFusion's `sum`, which does every other type and
/// all the work: a 64-bit sum is kept as a 128-bit decimal, which no count of rows
/// can overflow, so a sliding window frame may also take values out of it, and is
/// cast back to its type when read.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct CheckedSum {
    sum: datafusion::functions_aggregate::sum::Sum,
}

/// The type a 64-bit sum is kept in.
const WIDE_SUM: DataType = DataType::Decimal128(38, 0);

/// Whether a sum of `kind` is kept wide: the 64-bit integers (smaller ones are
/// summed as 64-bit ones).
fn kept_wide(kind: &DataType) -> bool {
    matches!(kind, DataType::Int64 | DataType::UInt64)
}

fn wide_field(field: &FieldRef) -> FieldRef {
    Arc::new(Field::new(field.name(), WIDE_SUM, true))
}

impl CheckedSum {
    /// `args` with the sum's type made [`WIDE_SUM`], for DataFusion's accumulators.
    fn wide<'a>(args: &AccumulatorArgs<'a>) -> AccumulatorArgs<'a> {
        AccumulatorArgs {
            return_field: wide_field(&args.return_field),
            ..*args
        }
    }
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.sum.name()
    }

    fn signature(&self) -> &Signature {
        self.sum.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.sum.return_type(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !kept_wide(args.return_type()) {
            return self.sum.accumulator(args);
        }
        Ok(Box::new(WideSum {
            inner: self.sum.accumulator(Self::wide(&args))?,
            kind: args.return_type().clone(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !kept_wide(args.return_type()) {
            return self.sum.state_fields(args);
        }
        self.sum.state_fields(StateFieldsArgs {
            return_field: wide_field(&args.return_field),
            ..args
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.sum.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if !kept_wide(args.return_type()) {
            return self.sum.create_groups_accumulator(args);
        }
        Ok(Box::new(WideGroupSums {
            inner: self.sum.create_groups_accumulator(Self::wide(&args))?,
            kind: args.return_type().clone(),
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if args.is_distinct && *args.return_type() == DataType::Int64 {
            return Ok(Box::new(DistinctWindowSum::default()));
        }
        // DataFusion's distinct sliding sum takes 64-bit integers only.
        if !kept_wide(args.return_type()) || args.is_distinct {
            return self.sum.create_sliding_accumulator(args);
        }
        Ok(Box::new(WideSum {
            inner: self.sum.create_sliding_accumulator(Self::wide(&args))?,
            kind: args.return_type().clone(),
        }))
    }

    fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
        self.sum.reverse_expr()
    }

    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        self.sum.order_sensitivity()
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.sum.documentation()
    }

    fn set_monotonicity(&self, kind: &DataType) -> datafusion::logical_expr::SetMonotonicity {
        self.sum.set_monotonicity(kind)
    }
}

/// Values to add to a wide sum: 64-bit integers as [`WIDE_SUM`] decimals.
fn widen(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    Ok(vec![cast(&values[0], &WIDE_SUM)?])
}

/// Wide sums back in their 64-bit type, an error for one out of its range.
fn narrowed(sums: &ArrayRef, kind: &DataType) -> Result<ArrayRef> {
    let sums = sums.as_primitive::<Decimal128Type>();
    let narrow = |sum: i128| -> std::result::Result<i128, ArrowError> {
        let fits = match kind {
            DataType::UInt64 => u64::try_from(sum).is_ok(),
            _ => i64::try_from(sum).is_ok(),
        };
        if fits {
            Ok(sum)
        } else {
            Err(out_of_range("a sum"))
        }
    };
    let checked: PrimitiveArray<Decimal128Type> = sums
        .try_unary(narrow)?
        .with_data_type(sums.data_type().clone());
    Ok(cast(&checked, kind)?)
}

/// One group's sum of 64-bit integers, kept wide by DataFusion's accumulator.
#[derive(Debug)]
struct WideSum {
    inner: Box<dyn Accumulator>,
    kind: DataType,
}

impl Accumulator for WideSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&widen(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&widen(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let sum = self.inner.evaluate()?.to_array()?;
        ScalarValue::try_from_array(&narrowed(&sum, &self.kind)?, 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.inner.size()
    }
}

/// `sum(DISTINCT x)` of bigints over a sliding window frame: the distinct values in
/// the frame, counted, and their sum kept in 128 bits (DataFusion's own wraps).
#[derive(Debug, Default)]
struct DistinctWindowSum {
    counts: HashMap<i64, usize>,
    sum: i128,
}

impl DistinctWindowSum {
    fn each_value(values: &[ArrayRef], mut apply: impl FnMut(i64)) {
        values[0]
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .for_each(&mut apply);
    }
}

impl Accumulator for DistinctWindowSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        Self::each_value(values, |value| {
            let count = self.counts.entry(value).or_insert(0);
            if *count == 0 {
                self.sum += i128::from(value);
            }
            *count += 1;
        });
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        Self::each_value(values, |value| {
            if let Some(count) = self.counts.get_mut(&value) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&value);
                    self.sum -= i128::from(value);
                }
            }
        });
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.counts.is_empty() {
            return Ok(ScalarValue::Int64(None));
        }
        let sum = i64::try_from(self.sum).map_err(|_| out_of_range("a sum"))?;
        Ok(ScalarValue::Int64(Some(sum)))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // A window frame's accumulator is never merged with another.
        datafusion::common::not_impl_err!("the state of a distinct window sum")
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        datafusion::common::not_impl_err!("merging distinct window sums")
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.capacity() * std::mem::size_of::<(i64, usize)>()
    }
}

/// Many groups' sums of 64-bit integers, kept wide by DataFusion's accumulator.
struct WideGroupSums {
    inner: Box<dyn GroupsAccumulator>,
    kind: DataType,
}

impl GroupsAccumulator for WideGroupSums {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .update_batch(&widen(values)?, group_indices, filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        narrowed(&self.inner.evaluate(emit_to)?, &self.kind)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        states: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(states, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(&widen(values)?, filter)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.inner.size()
    }
}
