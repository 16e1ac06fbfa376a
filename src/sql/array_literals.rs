//! Text cast to a list read as PostgreSQL reads an array literal: `'{a,b}'::text[]`
//! is two elements. DataFusion casts text to a list by wrapping it whole, so
//! `x = ANY('{a,b}'::text[])` matched nothing, and a list psycopg sends as an
//! untyped parameter (`ANY(%s::text[])`) was one element of its own text.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, LargeListArray, ListArray, StringArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::Transformed;
use datafusion::functions_nested::expr_fn::array_has_all;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, LogicalPlan, Operator, TryCast};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// `plan` with every text literal cast to a list replaced by the list it spells, and
/// text of the form `{...}` read as a list where a list is expected: in
/// `array_has` and its kin (`x = ANY(%s)` with psycopg's list, sent as text) and
/// in `@>` and `<@`, which also become `array_has_all` once a side is a list value
/// (a parameter bound after planning, which DataFusion plans only for list types).
/// Each expression keeps its name: a list in place of an unnamed cast had renamed
/// its column under the nodes above that read it by name, and `SELECT
/// '{a}'::text[]` was refused ("no column").
pub(crate) fn as_lists(plan: LogicalPlan) -> Result<LogicalPlan> {
    Ok(super::functions::rewrite_expressions(plan, |e, _| {
        rewrite(e).map_err(|e| DataFusionError::External(Box::new(e)))
    })?)
}

fn rewrite(expr: Expr) -> Result<Transformed<Expr>> {
    match expr {
        Expr::Cast(Cast { expr, field }) => cast_to_list(*expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => cast_to_list(*expr, field, true),
        Expr::ScalarFunction(call) if LIST_FIRST.contains(&call.name()) => {
            let mut args = call.args;
            let both = call.func.name() != "array_has";
            let mut changed = false;
            for (k, arg) in args.iter_mut().enumerate() {
                if (k == 0 || both)
                    && let Some(list) = text_list(arg)?
                {
                    *arg = list;
                    changed = true;
                }
            }
            let call = Expr::ScalarFunction(ScalarFunction::new_udf(call.func, args));
            Ok(if changed {
                Transformed::yes(call)
            } else {
                Transformed::no(call)
            })
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::AtArrow | Operator::ArrowAt) =>
        {
            let left = text_list(&left)?.unwrap_or(*left);
            let right = text_list(&right)?.unwrap_or(*right);
            let is_list = |e: &Expr| {
                matches!(
                    e,
                    Expr::Literal(ScalarValue::List(_) | ScalarValue::LargeList(_), _)
                )
            };
            if !is_list(&left) && !is_list(&right) {
                return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(left),
                    op,
                    Box::new(right),
                ))));
            }
            let (container, contained) = if op == Operator::AtArrow {
                (left, right)
            } else {
                (right, left)
            };
            Ok(Transformed::yes(array_has_all(container, contained)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// The functions whose first argument (all but `array_has`: both) is a list.
const LIST_FIRST: [&str; 3] = ["array_has", "array_has_all", "array_has_any"];

/// A text literal `{...}` as a list of text, None for anything else.
fn text_list(expr: &Expr) -> Result<Option<Expr>> {
    let Expr::Literal(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)),
        _,
    ) = expr
    else {
        return Ok(None);
    };
    if !text.trim_start().starts_with('{') {
        return Ok(None);
    }
    let list_type = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    Ok(Some(Expr::Literal(
        list_value(&parse(text)?, &list_type)?,
        None,
    )))
}

/// `expr` cast to `field`'s type: the list a text literal spells when the type is a
/// list, else the cast as it was.
fn cast_to_list(expr: Expr, field: FieldRef, try_cast: bool) -> Result<Transformed<Expr>> {
    let text = match &expr {
        Expr::Literal(
            ScalarValue::Utf8(text) | ScalarValue::LargeUtf8(text) | ScalarValue::Utf8View(text),
            _,
        ) if matches!(
            field.data_type(),
            DataType::List(_) | DataType::LargeList(_)
        ) =>
        {
            text.clone()
        }
        _ => {
            let expr = Box::new(expr);
            return Ok(Transformed::no(if try_cast {
                Expr::TryCast(TryCast { expr, field })
            } else {
                Expr::Cast(Cast { expr, field })
            }));
        }
    };
    let list = match text {
        None => ScalarValue::try_from(field.data_type())?,
        Some(text) => list_value(&parse(&text)?, field.data_type())?,
    };
    Ok(Transformed::yes(Expr::Literal(list, None)))
}

/// A text literal beside `@>` or `<@` (`labels @> '{Effusion,Mass}'`), or as the
/// array of `ANY` or `ALL` (`view_position = ANY('{PA,AP}')`), cast to a text array
/// in the statement, as PostgreSQL reads an untyped literal there: DataFusion's
/// planner refused a text and a list side by side.
pub(crate) fn text_beside_containment(statement: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{
        BinaryOperator, Expr as SqlExpr, Value, visit_expressions_mut,
    };
    let is_array_text = |e: &SqlExpr| {
        matches!(e, SqlExpr::Value(v) if matches!(&v.value,
            Value::SingleQuotedString(s) if s.trim_start().starts_with('{')))
    };
    let _ = visit_expressions_mut(statement, |expr| {
        match expr {
            SqlExpr::BinaryOp {
                left,
                op: BinaryOperator::AtArrow | BinaryOperator::ArrowAt,
                right,
            } => {
                for side in [left, right] {
                    if is_array_text(side) {
                        cast_to_text_array(side);
                    }
                }
            }
            // `view_position = ANY('{PA,AP}')`: the array of ANY and ALL.
            SqlExpr::AnyOp { right, .. } | SqlExpr::AllOp { right, .. } if is_array_text(right) => {
                cast_to_text_array(right);
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// `expr` (a text literal) made `expr::text[]`, which the planner reads as
/// PostgreSQL reads an array literal ([`text_as_lists`]).
pub(crate) fn cast_to_text_array(expr: &mut datafusion::sql::sqlparser::ast::Expr) {
    use datafusion::sql::sqlparser::ast::{
        ArrayElemTypeDef, CastKind, DataType as SqlType, Expr as SqlExpr, Value,
    };
    let text = std::mem::replace(expr, SqlExpr::value(Value::Null));
    *expr = SqlExpr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(text),
        data_type: SqlType::Array(ArrayElemTypeDef::SquareBracket(
            Box::new(SqlType::Text),
            None,
        )),
        array: false,
        format: None,
    };
}

/// One element of an array literal.
#[derive(Debug, PartialEq)]
enum Item {
    Null,
    Text(String),
    Nested(Vec<Item>),
}

/// The elements of `{...}`, as PostgreSQL's array input reads them: elements
/// separated by commas, double-quoted or bare (bare ones trimmed, `NULL` in any case
/// is a null), backslash escaping the next character, nested braces for more
/// dimensions.
fn parse(text: &str) -> Result<Vec<Item>> {
    let malformed = |why: &str| {
        Error::Query(format!(
            "malformed array literal: \"{}\" ({why}); an array is written '{{a,b}}'",
            super::truncate(text, 60)
        ))
    };
    let mut chars = text.trim().chars().peekable();
    if chars.next() != Some('{') {
        return Err(malformed("it does not start with {"));
    }
    let items = parse_items(&mut chars, 1).map_err(malformed)?;
    if chars.next().is_some() {
        return Err(malformed("text after its closing }"));
    }
    Ok(items)
}

/// Nested braces deeper than this are refused (PostgreSQL allows 6 dimensions).
const MAX_DEPTH: usize = 6;

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// The items after an opening brace, up to and including its closing brace.
fn parse_items(chars: &mut Chars, depth: usize) -> std::result::Result<Vec<Item>, &'static str> {
    if depth > MAX_DEPTH {
        return Err("more than 6 dimensions");
    }
    let mut items = Vec::new();
    skip_spaces(chars);
    if chars.peek() == Some(&'}') {
        chars.next();
        return Ok(items);
    }
    loop {
        skip_spaces(chars);
        let item = match chars.peek() {
            Some('{') => {
                chars.next();
                Item::Nested(parse_items(chars, depth + 1)?)
            }
            Some('"') => {
                chars.next();
                Item::Text(quoted(chars)?)
            }
            Some(_) => bare(chars)?,
            None => return Err("no closing }"),
        };
        items.push(item);
        skip_spaces(chars);
        match chars.next() {
            Some(',') => continue,
            Some('}') => return Ok(items),
            Some(_) => return Err("unexpected character after an element"),
            None => return Err("no closing }"),
        }
    }
}

fn skip_spaces(chars: &mut Chars) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// A double-quoted element after its opening quote.
fn quoted(chars: &mut Chars) -> std::result::Result<String, &'static str> {
    let mut text = String::new();
    loop {
        match chars.next() {
            Some('"') => return Ok(text),
            Some('\\') => text.push(chars.next().ok_or("no closing quote")?),
            Some(c) => text.push(c),
            None => return Err("no closing quote"),
        }
    }
}

/// A bare element: up to a comma or closing brace, trimmed; `NULL` is a null.
fn bare(chars: &mut Chars) -> std::result::Result<Item, &'static str> {
    let mut text = String::new();
    let mut escaped_end = 0;
    while let Some(&c) = chars.peek() {
        match c {
            ',' | '}' => break,
            '{' | '"' => return Err("unexpected { or \" inside an element"),
            '\\' => {
                chars.next();
                text.push(chars.next().ok_or("no character after \\")?);
                escaped_end = text.len();
            }
            _ => {
                chars.next();
                text.push(c);
            }
        }
    }
    // Trailing spaces are not the element's, unless escaped.
    let kept = text.trim_end().len().max(escaped_end);
    text.truncate(kept);
    if escaped_end == 0 && text.eq_ignore_ascii_case("null") {
        return Ok(Item::Null);
    }
    if text.is_empty() {
        return Err("an empty element");
    }
    Ok(Item::Text(text))
}

/// `items` as a scalar of `data_type`, a list type.
fn list_value(items: &[Item], data_type: &DataType) -> Result<ScalarValue> {
    let field = match data_type {
        DataType::List(field) | DataType::LargeList(field) => field,
        other => {
            return Err(Error::Query(format!(
                "malformed array literal: an array given where {other} is expected"
            )));
        }
    };
    let values = elements(items, field)?;
    let offsets = |n: usize| OffsetBuffer::from_lengths([n]);
    Ok(match data_type {
        DataType::LargeList(_) => ScalarValue::LargeList(Arc::new(LargeListArray::try_new(
            field.clone(),
            OffsetBuffer::<i64>::from_lengths([values.len()]),
            values,
            None,
        )?)),
        _ => ScalarValue::List(Arc::new(ListArray::try_new(
            field.clone(),
            offsets(values.len()),
            values,
            None,
        )?)),
    })
}

/// The elements of one list, each cast to the element type of `field`.
fn elements(items: &[Item], field: &FieldRef) -> Result<ArrayRef> {
    let element_type = field.data_type();
    if matches!(element_type, DataType::List(_) | DataType::LargeList(_)) {
        let lists = items
            .iter()
            .map(|item| match item {
                Item::Nested(inner) => list_value(inner, element_type),
                Item::Null => Ok(ScalarValue::try_from(element_type)?),
                Item::Text(_) => Err(Error::Query(
                    "malformed array literal: an element where a nested array is expected".into(),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        if lists.is_empty() {
            return Ok(datafusion::arrow::array::new_empty_array(element_type));
        }
        return Ok(ScalarValue::iter_to_array(lists)?);
    }
    let texts = items
        .iter()
        .map(|item| match item {
            Item::Text(text) => Ok(Some(text.as_str())),
            Item::Null => Ok(None),
            Item::Nested(_) => Err(Error::Query(
                "malformed array literal: a nested array where an element is expected".into(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let texts: ArrayRef = Arc::new(StringArray::from(texts));
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let values = cast_with_options(&texts, element_type, &strict)
        .map_err(|e| Error::Query(format!("invalid array element: {e}")))?;
    if !field.is_nullable() && values.null_count() > 0 {
        return Err(Error::Query(
            "invalid array element: NULL in an array of non-null elements".into(),
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(items: &[&str]) -> Vec<Item> {
        items.iter().map(|s| Item::Text(s.to_string())).collect()
    }

    #[test]
    fn parses_postgres_array_literals() {
        assert_eq!(parse("{a,b}").unwrap(), texts(&["a", "b"]));
        assert_eq!(parse(" { a , b c } ").unwrap(), texts(&["a", "b c"]));
        assert_eq!(parse("{}").unwrap(), vec![]);
        assert_eq!(
            parse(r#"{"a,b","c\"d",NULL,"NULL",null}"#).unwrap(),
            vec![
                Item::Text("a,b".into()),
                Item::Text("c\"d".into()),
                Item::Null,
                Item::Text("NULL".into()),
                Item::Null
            ]
        );
        assert_eq!(
            parse("{{1,2},{3}}").unwrap(),
            vec![
                Item::Nested(texts(&["1", "2"])),
                Item::Nested(texts(&["3"]))
            ]
        );
        assert_eq!(parse(r"{a\ ,\,}").unwrap(), texts(&["a ", ","]));
    }

    #[test]
    fn a_cast_read_as_a_list_keeps_its_name() {
        use datafusion::logical_expr::{LogicalPlanBuilder, cast, lit};
        let booleans = DataType::List(Arc::new(Field::new_list_field(DataType::Boolean, true)));
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![cast(lit("{true,f}"), booleans.clone())])
            .unwrap()
            .build()
            .unwrap();
        let name = plan.schema().field(0).name().clone();
        let LogicalPlan::Projection(read) = as_lists(plan).unwrap() else {
            panic!("not a projection");
        };
        // The nodes above read the column by this name.
        assert_eq!(read.expr[0].schema_name().to_string(), name);
        assert_eq!(read.schema.field(0).name(), &name);
        let expected = list_value(&texts(&["true", "f"]), &booleans).unwrap();
        assert!(
            matches!(read.expr[0].clone().unalias(), Expr::Literal(v, _) if v == expected),
            "{}",
            read.expr[0]
        );
    }

    #[test]
    fn refuses_malformed_literals() {
        for bad in [
            "a,b",
            "{a,b",
            "{a,,b}",
            "{a}x",
            "{\"a}",
            "{a\"b}",
            "{{{{{{{1}}}}}}}",
            "",
        ] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains("malformed array literal"), "{bad}: {error}");
        }
    }
}
