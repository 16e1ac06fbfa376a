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

/// Every function of this module, to register.
pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(FindingLabels::new())]
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
