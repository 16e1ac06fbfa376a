//! A client's statement and parameters, given PostgreSQL's meaning where DataFusion's
//! differs, before the statement is planned: the login user for `current_user`,
//! float parameters compared with integer columns, and NULL parameters of no type.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    CastKind, ExactNumberInfo, Expr, Ident, SelectItem, SetExpr, Statement, Value,
    visit_expressions_mut,
};
use datafusion_postgres::pgwire::api::Type;

/// The functions PostgreSQL answers with the login user's name.
const USER_FUNCTIONS: [&str; 4] = ["current_user", "session_user", "user", "current_role"];

/// `statement` with `current_user`, `session_user`, `user` and `current_role` as the
/// login user's name (`user`); a bare one in the select list keeps its name as the
/// column's, as PostgreSQL names it. None when the statement names none of them.
pub fn with_login_user(statement: &Statement, user: &str) -> Option<Statement> {
    let mut out = statement.clone();
    let mut changed = false;
    // The select list first: `SELECT current_user` gives a column `current_user`
    // (once: a second column of the same name would be refused).
    if let Statement::Query(query) = &mut out
        && let SetExpr::Select(select) = query.body.as_mut()
    {
        let mut named = Vec::new();
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(expr) = item
                && let Some(name) = user_function(expr)
                && !named.contains(&name)
            {
                named.push(name);
                *item = SelectItem::ExprWithAlias {
                    expr: text(user),
                    alias: Ident::new(name),
                };
                changed = true;
            }
        }
    }
    let _ = visit_expressions_mut(&mut out, |expr| {
        if user_function(expr).is_some() {
            *expr = text(user);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(out)
}

/// The name of the user function `expr` calls, if it is one.
fn user_function(expr: &Expr) -> Option<&'static str> {
    let name = match expr {
        Expr::Function(f) if f.args == datafusion::sql::sqlparser::ast::FunctionArguments::None => {
            f.name.to_string().to_ascii_lowercase()
        }
        _ => return None,
    };
    USER_FUNCTIONS.iter().copied().find(|f| *f == name)
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

/// PostgreSQL compares an integer column with a float parameter as floats
/// (`age > $1` with 50.5 keeps ages above 50.5); DataFusion types the parameter as the
/// column and would cut 50.5 to 50 or refuse it. Each parameter the client sends as
/// a float (`client`) where the plan infers an integer (`inferred`) is cast to DOUBLE
/// in the statement, to be planned again. None when there is none.
pub fn with_float_parameters(
    statement: &Statement,
    inferred: &[Option<DataType>],
    client: &[Option<Type>],
) -> Option<Statement> {
    let floats: Vec<String> = (0..inferred.len().max(client.len()))
        .filter(|&i| {
            let sent_float = client
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|t| [Type::FLOAT4, Type::FLOAT8, Type::NUMERIC].contains(t));
            let typed_integer = inferred
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(DataType::is_integer);
            sent_float && typed_integer
        })
        .map(|i| format!("${}", i + 1))
        .collect();
    if floats.is_empty() {
        return None;
    }
    let mut out = statement.clone();
    let _ = visit_expressions_mut(&mut out, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
            && floats.contains(p)
        {
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(expr.clone()),
                data_type: datafusion::sql::sqlparser::ast::DataType::Double(ExactNumberInfo::None),
                array: false,
                format: None,
            };
        }
        ControlFlow::<()>::Continue(())
    });
    Some(out)
}

/// The decoded parameters with a NULL in the place of each parameter the decoder
/// left out: a NULL of no type from the client and none from the plan (psycopg's
/// `None` in `%s IS NULL`), which PostgreSQL takes as text.
pub fn with_untyped_nulls(
    decoded: ParamValues,
    sent: &[Option<&[u8]>],
    inferred: &[Option<DataType>],
    client: &[Option<Type>],
) -> ParamValues {
    let ParamValues::List(mut values) = decoded else {
        return decoded;
    };
    let untyped_nulls: Vec<usize> = (0..sent.len())
        .filter(|&i| {
            sent[i].is_none()
                && client
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_none_or(|t| *t == Type::UNKNOWN)
                && inferred.get(i).and_then(Option::as_ref).is_none()
        })
        .collect();
    // Only when exactly these are missing: anything else is the decoder's to report.
    if values.len() + untyped_nulls.len() != sent.len() {
        return ParamValues::List(values);
    }
    for i in untyped_nulls {
        values.insert(i, ScalarValue::Utf8(None).into());
    }
    ParamValues::List(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Statement {
        datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            sql,
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn user_functions_become_the_login_name() {
        let s = with_login_user(
            &parse("SELECT current_user, session_user WHERE user = 'x'"),
            "alice",
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "SELECT 'alice' AS current_user, 'alice' AS session_user WHERE 'alice' = 'x'"
        );
        assert!(with_login_user(&parse("SELECT 1"), "alice").is_none());
    }

    #[test]
    fn float_parameters_against_integers_are_cast() {
        let s = with_float_parameters(
            &parse("SELECT * FROM images WHERE age > $1 AND sex = $2"),
            &[Some(DataType::Int16), Some(DataType::Utf8)],
            &[Some(Type::FLOAT8), Some(Type::TEXT)],
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "SELECT * FROM images WHERE age > CAST($1 AS DOUBLE) AND sex = $2"
        );
        let none = with_float_parameters(
            &parse("SELECT * FROM images WHERE age > $1"),
            &[Some(DataType::Int16)],
            &[Some(Type::INT8)],
        );
        assert!(none.is_none());
    }
}
