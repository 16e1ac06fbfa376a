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

/// Every function of this module, to register (with [`super::growth::capped`],
/// replacing DataFusion's functions of the same names).
pub fn all() -> Vec<ScalarUDF> {
    let mut all = vec![ScalarUDF::from(FindingLabels::new())];
    all.extend(super::growth::capped());
    all
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
