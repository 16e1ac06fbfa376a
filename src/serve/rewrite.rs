//! A client's statement and parameters, given PostgreSQL's meaning where DataFusion's
//! or datafusion-postgres's differs, before the statement is planned: subqueries in
//! a select list and array literals kept as written, the login user for
//! `current_user`, result columns named as PostgreSQL names them, float
//! parameters compared with integer columns, and NULL parameters of no type.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, CastKind, ExactNumberInfo, Expr, Ident, Select, SelectItem, SetExpr, Statement,
    Value, visit_expressions_mut,
};
use datafusion_postgres::pgwire::api::Type;

/// A client's SQL parsed without those of datafusion-postgres's rules that lose
/// what it says, when it says it:
/// - the rule that splits an array literal cast with `::` on every comma, keeping
///   its quotes and reading `NULL` as text (`'{"a,b",NULL}'::text[]` was three
///   elements), and `= ANY('{...}')`'s alike (see [`array_literals_typed`]): the
///   text is left to the planner, and read as PostgreSQL reads it once planned
///   (`crate::sql::text_as_lists`), as `cxr sql` reads it;
/// - the rule that replaces a correlated subquery in a select list by NULL and cuts
///   any other to one row: `SELECT (SELECT count(*) FROM images i WHERE i.patient_id
///   = p.patient_id) FROM patients p` answered NULL for every patient; and its rule
///   that turns `current_user` into `session_user` (see [`with_login_user`]). Not
///   when the SQL reads the catalog (`pg_...`, `information_schema`): the catalog
///   queries of psql and JDBC rely on them.
///
/// Its other rules still apply, in its order; the SQL it rewrites as text before
/// parsing (psql's and pgcli's queries it cannot plan) holds no array literal.
/// None when there is nothing to keep, or the SQL does not parse: datafusion-postgres's
/// parser takes it as it does.
pub fn parsed_as_written(sql: &str) -> Option<Vec<Statement>> {
    use datafusion_postgres::datafusion_pg_catalog::sql::rules::*;
    let lower = sql.to_ascii_lowercase();
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let mut statements =
        datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
    // A user function is kept as written too: `with_login_user` gives it the login
    // name and its column the function's name (the rule made `SELECT current_user,
    // session_user` two `session_user` columns).
    let names_a_user = USER_FUNCTIONS.iter().any(|f| lower.contains(f));
    let as_written = !reads_the_catalog(&statements)
        && (names_a_user || statements.iter().any(has_select_list_subquery));
    let mut literals = false;
    for statement in &mut statements {
        literals |= array_literals_typed(statement);
    }
    if !as_written && !literals {
        return None;
    }
    // datafusion-postgres's rules in its order, but for FixArrayLiteral, and for
    // RemoveSubqueryFromProjection and CurrentUserVariableToSessionUserFunctionCall
    // where the SQL is kept as written.
    let mut rules: Vec<Box<dyn SqlStatementRewriteRule>> = vec![
        Box::new(AliasDuplicatedProjectionRewrite),
        Box::new(ResolveUnqualifiedIdentifier),
        Box::new(RewriteArrayAnyAllOperation),
        Box::new(PrependUnqualifiedPgTableName),
        Box::new(StripCallableQualifier),
    ];
    if !as_written {
        rules.push(Box::new(CurrentUserVariableToSessionUserFunctionCall));
    }
    rules.push(Box::new(StripCollate));
    rules.push(Box::new(RewritePgCatalogOperator));
    rules.push(Box::new(RewriteRegCastToSubquery::new()));
    if !as_written {
        rules.push(Box::new(RemoveSubqueryFromProjection));
    }
    rules.push(Box::new(FixVersionColumnName));
    Some(
        statements
            .into_iter()
            .map(|s| rules.iter().fold(s, |s, rule| rule.rewrite(s)))
            .collect(),
    )
}

/// Whether `statement` holds an array literal that datafusion-postgres's rules split
/// on every comma: a quoted text cast to an array with `::` (its FixArrayLiteral),
/// or beside `= ANY` or `<> ALL` (its RewriteArrayAnyAllOperation), the latter now
/// cast to `text[]` (which that rule leaves to the planner, and which is the type of
/// the elements it made). Only the rules' own forms: `CAST('{a}' AS text[])` and
/// `E'{a}'::text[]` they already leave alone.
fn array_literals_typed(statement: &mut Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, DataType as SqlType};
    let quoted = |e: &Expr| -> Option<String> {
        match e {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(text) => Some(text.clone()),
                _ => None,
            },
            _ => None,
        }
    };
    let mut found = false;
    let _ = visit_expressions_mut(statement, |expr| {
        match expr {
            Expr::Cast {
                kind: CastKind::DoubleColon,
                expr,
                data_type: SqlType::Array(_),
                ..
            } if quoted(expr).is_some() => found = true,
            Expr::AnyOp {
                compare_op: BinaryOperator::Eq,
                right,
                ..
            }
            | Expr::AllOp {
                compare_op: BinaryOperator::NotEq,
                right,
                ..
            } if quoted(right).is_some_and(|text| text.trim_start().starts_with('{')) => {
                crate::sql::cast_to_text_array(right);
                found = true;
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Whether the statements name a table or function of the catalog (`pg_...`,
/// `information_schema`): a name, not any text (`'see pg_docs'`, an alias
/// `n_pg_images`, had given a correlated subquery the catalog's rule and NULLs).
fn reads_the_catalog(statements: &[Statement]) -> bool {
    use datafusion::sql::sqlparser::ast::{ObjectName, visit_expressions, visit_relations};
    let catalog = |name: &ObjectName| {
        name.0.iter().any(|part| {
            let part = part.to_string().trim_matches('"').to_ascii_lowercase();
            part.starts_with("pg_") || part == "information_schema"
        })
    };
    let found = |hit: bool| {
        if hit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    statements.iter().any(|statement| {
        visit_relations(statement, |name| found(catalog(name))).is_break()
            || visit_expressions(statement, |expr| {
                found(matches!(expr, Expr::Function(f) if catalog(&f.name)))
            })
            .is_break()
    })
}

/// Whether a select list of `statement` (at any depth) holds a subquery.
fn has_select_list_subquery(statement: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{Query, Visit, Visitor};
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let SetExpr::Select(select) = query.body.as_ref()
                && select.projection.iter().any(|item| {
                    matches!(
                        item,
                        SelectItem::UnnamedExpr(Expr::Subquery(_))
                            | SelectItem::ExprWithAlias {
                                expr: Expr::Subquery(_),
                                ..
                            }
                    )
                })
            {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    statement.visit(&mut Finder).is_break()
}

/// A statement that reads the catalog alone (psql's `\du`, `\d+`, `\dT`,
/// SQLAlchemy's reflection), made one DataFusion plans, with what PostgreSQL would
/// answer on cxr's catalog:
/// - `ARRAY(subquery)` (a role's memberships, a table's storage options), a table's
///   `reloptions` and an index's or constraint's columns are empty arrays, and
///   `generate_subscripts` gives no rows: cxr's tables have no options, indexes or
///   constraints, and DataFusion has no `ARRAY(subquery)`;
/// - a subquery over defaults, sequences or collations is NULL (see
///   [`reads_empty_catalog_table`]), and so is a parameter cast to `regclass`;
/// - a scalar subquery of one column that is not aggregated (`(SELECT c.relkind =
///   'c' FROM pg_class c WHERE c.oid = t.typrelid)`, a lookup by oid, so at most one
///   row) is taken as its `max`: DataFusion runs a correlated scalar subquery only
///   when it is aggregated.
///
/// None when the statement reads a warehouse table or needs none of these: it is
/// left as written, to be answered or refused.
pub fn for_catalog(statement: &Statement) -> Option<Statement> {
    use datafusion::sql::sqlparser::ast::FunctionArguments;
    // psql's `\d+ view` asks `pg_get_viewdef('16384'::oid, true)` of no relation.
    let asks_view_definition = || {
        statement
            .to_string()
            .to_ascii_lowercase()
            .contains("pg_get_viewdef(")
    };
    if !reads_catalog_only(statement) && !asks_view_definition() {
        return None;
    }
    let empty = parse_expression("CAST(NULL AS TEXT[])")?;
    let no_numbers = parse_expression("CAST(NULL AS INT[])")?;
    let no_subscripts = parse_expression("unnest(CAST(NULL AS INT[]))")?;
    let mut out = statement.clone();
    let mut changed = name_select_items(&mut out);
    let _ = visit_expressions_mut(&mut out, |expr| {
        match expr {
            Expr::Function(f)
                if f.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(f.args, FunctionArguments::Subquery(_)) =>
            {
                *expr = empty.clone();
                changed = true;
            }
            // Arrays datafusion-postgres's catalog lacks or types otherwise: a table's
            // options, an index's or constraint's columns (none in cxr).
            Expr::CompoundIdentifier(parts)
                if parts.last().is_some_and(|p| is_array_column(&p.value)) =>
            {
                let array = parts
                    .last()
                    .and_then(|p| empty_array_column(&p.value, &empty, &no_numbers));
                if let Some(array) = array {
                    *expr = array;
                    changed = true;
                }
            }
            Expr::Function(f)
                if f.name
                    .to_string()
                    .eq_ignore_ascii_case("generate_subscripts") =>
            {
                // A parameter among its arguments stays in the statement, outside the
                // unnest (its type is lost inside one): the client binds a value to
                // every placeholder it sent, typed as the statement's plan says.
                let dimension = match &f.args {
                    FunctionArguments::List(list) => list.args.get(1).map(ToString::to_string),
                    _ => None,
                };
                *expr = dimension
                    .and_then(|d| {
                        parse_expression(&format!(
                            "unnest(CAST(NULL AS INT[])) + CASE WHEN {d} IS NULL THEN 0 ELSE 0 END"
                        ))
                    })
                    .unwrap_or_else(|| no_subscripts.clone());
                changed = true;
            }
            // `LIKE $1 || '%' ESCAPE '/'` (SQLAlchemy's schema names): DataFusion takes
            // only a backslash as the escape, so the pattern's escape character becomes
            // one, and its own backslashes literal (`//`, an escaped escape, is then
            // read as a backslash: no catalog name holds one).
            Expr::Like {
                pattern,
                escape_char: escape @ Some(_),
                ..
            } => {
                let other = escape.as_ref().and_then(|e| match &e.value {
                    Value::SingleQuotedString(c) if c.chars().count() == 1 && c != "\\" => {
                        Some(c.replace('\'', "''"))
                    }
                    _ => None,
                });
                if let Some(c) = other
                    && let Some(escaped) = parse_expression(&format!(
                        "replace(replace({pattern}, '\\', '\\\\'), '{c}', '\\')"
                    ))
                {
                    **pattern = escaped;
                    *escape = None;
                    changed = true;
                }
            }
            // A parameter cast to regclass (SQLAlchemy's `CAST(%s AS REGCLASS)` of a
            // catalog table's name, compared with pg_description's classoid): the
            // parameter stays, as text, and the oid is NULL. cxr's catalog has no
            // descriptions, so no oid would match.
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } if data_type.to_string().eq_ignore_ascii_case("regclass")
                && matches!(
                    inner.as_ref(),
                    Expr::Value(v) if matches!(v.value, Value::Placeholder(_))
                ) =>
            {
                if let Some(oid) = parse_expression(&format!(
                    "CASE WHEN CAST({inner} AS TEXT) IS NULL THEN CAST(NULL AS INT) ELSE CAST(NULL AS INT) END"
                )) {
                    *expr = oid;
                    changed = true;
                }
            }
            // Its arguments cast to the types cxr's pg_get_indexdef takes: SQLAlchemy
            // sends its third as a parameter of no type.
            Expr::Function(f)
                if f.name
                    .to_string()
                    .to_ascii_lowercase()
                    .ends_with("pg_get_indexdef") =>
            {
                if let FunctionArguments::List(list) = &f.args
                    && let [index, column, pretty] = list.args.as_slice()
                    && let Some(typed) = parse_expression(&format!(
                        "pg_get_indexdef(CAST({index} AS INT), CAST({column} AS INT), CAST({pretty} AS BOOLEAN))"
                    ))
                {
                    *expr = typed;
                    changed = true;
                }
            }
            // `information_schema._pg_expandarray(i.indkey)`, which pgjdbc's primary
            // keys, index information and best row identifier read as `(...).x` and
            // `(...).n`: an index's key columns, as (value, position) rows. cxr's tables
            // have no indexes, so one row of NULLs.
            Expr::Function(f)
                if f.name
                    .to_string()
                    .to_ascii_lowercase()
                    .ends_with("_pg_expandarray") =>
            {
                if let Some(keys) =
                    parse_expression("named_struct('x', CAST(NULL AS INT), 'n', CAST(NULL AS INT))")
                {
                    *expr = keys;
                    changed = true;
                }
            }
            // A table's size by its pg_class oid (psql's `\dt+`): the size of its
            // file, asked by the table's name (a function cannot look an oid up in
            // the catalog).
            Expr::Function(f)
                if [
                    "pg_table_size",
                    "pg_relation_size",
                    "pg_total_relation_size",
                ]
                .iter()
                .any(|name| f.name.to_string().to_ascii_lowercase().ends_with(name)) =>
            {
                if let FunctionArguments::List(list) = &f.args
                    && let [argument] = list.args.as_slice()
                    && let Some(relname) = relname_of(&argument.to_string())
                    && let Some(size) = parse_expression(&format!("cxr_relation_size({relname})"))
                {
                    *expr = size;
                    changed = true;
                }
            }
            // A view's definition by its pg_class oid (psql's `\d+ view` gives the oid
            // as a literal, SQLAlchemy as `c.oid`): asked by the view's name. The
            // second argument (pretty-printing) changes nothing here.
            Expr::Function(f)
                if f.name
                    .to_string()
                    .to_ascii_lowercase()
                    .ends_with("pg_get_viewdef") =>
            {
                if let FunctionArguments::List(list) = &f.args
                    && let Some(argument) = list.args.first()
                {
                    let oid = argument.to_string();
                    let name = match relname_of(&oid) {
                        Some(relname) => relname,
                        None => format!(
                            "(SELECT viewed.relname FROM pg_catalog.pg_class viewed WHERE viewed.oid = {oid})"
                        ),
                    };
                    if let Some(definition) =
                        parse_expression(&format!("cxr_view_definition({name})"))
                    {
                        *expr = definition;
                        changed = true;
                    }
                }
            }
            // An element of an array column cxr has no values of
            // (`con.conkey[pos.n]`, pgjdbc's foreign keys): NULL.
            Expr::CompoundFieldAccess { access_chain, .. }
                if access_chain.iter().any(|access| {
                    matches!(access, AccessExpr::Dot(Expr::Identifier(column))
                        if is_array_column(&column.value))
                }) && matches!(access_chain.last(), Some(AccessExpr::Subscript(_))) =>
            {
                if let Some(null) = parse_expression("CAST(NULL AS INT)") {
                    *expr = null;
                    changed = true;
                }
            }
            // `(row).field`, which DataFusion reads as `get_field(row, 'field')`.
            Expr::CompoundFieldAccess { root, access_chain } => {
                let fields: Option<Vec<String>> = access_chain
                    .iter()
                    .map(|access| match access {
                        // Unquoted, a name is folded to lower case, as PostgreSQL does.
                        AccessExpr::Dot(Expr::Identifier(field)) => Some(match field.quote_style {
                            None => field.value.to_ascii_lowercase(),
                            Some(_) => field.value.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                let field_access = fields.and_then(|fields| {
                    let text = fields.iter().fold(root.to_string(), |row, field| {
                        format!("get_field({row}, '{}')", field.replace('\'', "''"))
                    });
                    parse_expression(&text)
                });
                if let Some(field_access) = field_access {
                    *expr = field_access;
                    changed = true;
                }
            }
            // `typinput = 'array_in'::regproc` (pgjdbc's type information), made
            // by datafusion-postgres into a comparison with pg_proc's oid of that
            // name: its pg_type records the function by name, so compared by name.
            Expr::BinaryOp { left, right, .. }
                if function_name_column(left)
                    && let Some(name) = function_by_name(right) =>
            {
                **right = text(&name);
                changed = true;
            }
            Expr::Subquery(query) if reads_empty_catalog_table(query) => {
                *expr = Expr::value(Value::Null);
                changed = true;
            }
            Expr::Subquery(query) => {
                if let SetExpr::Select(select) = query.body.as_mut()
                    && let [
                        SelectItem::UnnamedExpr(item)
                        | SelectItem::ExprWithAlias { expr: item, .. },
                    ] = select.projection.as_mut_slice()
                    && select.group_by
                        == datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(vec![], vec![])
                    && query.limit_clause.is_none()
                    && !aggregated(item)
                    && let Some(max) = parse_expression(&format!("max({item})"))
                {
                    *item = max;
                    changed = true;
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(out)
}

/// An SQL expression as PostgreSQL's dialect parses it.
fn parse_expression(sql: &str) -> Option<Expr> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The catalog functions [`for_catalog`] answers with cxr's own.
const REPLACED_FUNCTIONS: [&str; 5] = [
    "generate_subscripts",
    "pg_get_viewdef",
    "pg_table_size",
    "pg_relation_size",
    "pg_total_relation_size",
];

/// `relname` of the pg_class row whose `oid` an argument names (`oid`, `c.oid`,
/// `pg_catalog.pg_class.oid`): the same column path ending in `relname`.
fn relname_of(oid: &str) -> Option<String> {
    let parts: Vec<&str> = oid.split('.').collect();
    let (last, path) = parts.split_last()?;
    let plain = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_');
    (last.eq_ignore_ascii_case("oid") && path.iter().all(|p| plain(p))).then(|| {
        path.iter()
            .chain(std::iter::once(&"relname"))
            .copied()
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Names the select list items the rewrite would leave nameless or alike: each
/// unnamed `NULL` gets a name of its own (`?column?`, `?column?2`, …; PostgreSQL lets
/// result columns share the name `?column?`, DataFusion refuses two columns named
/// `NULL`, and pgjdbc's procedures query has three), and a column the rewrite
/// replaces keeps its own (`c.relacl`, read by name by pgjdbc).
fn name_select_items(statement: &mut Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{Query, VisitMut, VisitorMut};
    struct Namer(bool);
    impl VisitorMut for Namer {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let SetExpr::Select(select) = query.body.as_mut() {
                let mut k = 0;
                for item in &mut select.projection {
                    // A column cxr has no values of keeps its name once replaced.
                    if let SelectItem::UnnamedExpr(expr) = item
                        && let Some(column) = column_name(expr).filter(|c| is_array_column(c))
                    {
                        let alias = Ident::new(column);
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias,
                        };
                        self.0 = true;
                    }
                    // A catalog function cxr answers with one of its own keeps
                    // PostgreSQL's column name (the function's).
                    if let SelectItem::UnnamedExpr(Expr::Function(f)) = item
                        && let Some(name) = f
                            .name
                            .0
                            .last()
                            .map(|part| part.to_string().to_ascii_lowercase())
                        && REPLACED_FUNCTIONS.contains(&name.as_str())
                    {
                        let expr = Expr::Function(f.clone());
                        *item = SelectItem::ExprWithAlias {
                            expr,
                            alias: Ident::new(name),
                        };
                        self.0 = true;
                    }
                    if let SelectItem::UnnamedExpr(expr @ Expr::Value(_)) = item
                        && matches!(expr, Expr::Value(v) if v.value == Value::Null)
                    {
                        k += 1;
                        let name = if k == 1 {
                            "?column?".to_string()
                        } else {
                            format!("?column?{k}")
                        };
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::with_quote('"', name),
                        };
                        self.0 = true;
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut namer = Namer(false);
    let _ = statement.visit(&mut namer);
    namer.0
}

/// The function `expr` names as `'name'::regproc`, or as datafusion-postgres
/// rewrites that: `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'name')`.
fn function_by_name(expr: &Expr) -> Option<String> {
    let text = match expr {
        Expr::Cast {
            expr, data_type, ..
        } if data_type.to_string().eq_ignore_ascii_case("regproc") => expr.to_string(),
        // (As its `max`, once the subquery rule below has been through it.)
        Expr::Subquery(query) => {
            let query = query.to_string();
            ["SELECT oid ", "SELECT max(oid) "]
                .iter()
                .find_map(|select| query.strip_prefix(select))?
                .strip_prefix("FROM pg_catalog.pg_proc WHERE proname = ")?
                .to_string()
        }
        _ => return None,
    };
    let name = text.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(name.strip_prefix("pg_catalog.").unwrap_or(name).to_string())
}

/// Whether `expr` is a column of pg_type that names a function (`typinput`, …).
fn function_name_column(expr: &Expr) -> bool {
    column_name(expr).is_some_and(|name| {
        ["typinput", "typoutput", "typreceive", "typsend"]
            .iter()
            .any(|c| name.eq_ignore_ascii_case(c))
    })
}

/// The name of the column `expr` is (`relacl`, `c.relacl`), if it is one.
fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(ident) => Some(&ident.value),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.as_str()),
        _ => None,
    }
}

/// The catalog's text array columns cxr has no values of: a table's options and
/// access privileges (none recorded: clients then take the owner's).
const TEXT_ARRAY_COLUMNS: [&str; 2] = ["reloptions", "relacl"];

/// The catalog's number array columns cxr has no values of: an index's or a
/// constraint's columns.
const NUMBER_ARRAY_COLUMNS: [&str; 5] = ["indkey", "indclass", "indoption", "conkey", "confkey"];

/// Whether `name` is one of the catalog's array columns cxr has no values of.
fn is_array_column(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    TEXT_ARRAY_COLUMNS.contains(&name.as_str()) || NUMBER_ARRAY_COLUMNS.contains(&name.as_str())
}

/// The empty array that stands for a catalog column cxr has no values of.
fn empty_array_column(name: &str, text: &Expr, numbers: &Expr) -> Option<Expr> {
    let name = name.to_ascii_lowercase();
    if TEXT_ARRAY_COLUMNS.contains(&name.as_str()) {
        Some(text.clone())
    } else if NUMBER_ARRAY_COLUMNS.contains(&name.as_str()) {
        Some(numbers.clone())
    } else {
        None
    }
}

/// Whether a subquery reads a catalog table that has no row for any column of cxr's
/// tables: no defaults (`pg_attrdef`), sequences (`pg_sequence`) or collations of
/// their own (`pg_collation`). It is then NULL, as PostgreSQL answers there.
fn reads_empty_catalog_table(query: &datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast::visit_relations;
    let mut empty = false;
    let _ = visit_relations(query, |name| {
        let last = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default();
        empty |= ["pg_attrdef", "pg_sequence", "pg_collation"].contains(&last.as_str());
        ControlFlow::<()>::Continue(())
    });
    empty
}

/// Whether `statement` reads the catalog (`pg_catalog.x`, `pg_x`,
/// `information_schema.x`) and nothing else but table functions (`unnest`,
/// `generate_series`).
fn reads_catalog_only(statement: &Statement) -> bool {
    use datafusion::sql::sqlparser::ast::visit_relations;
    let mut only = true;
    let mut catalog = false;
    let _ = visit_relations(statement, |name| {
        let first = name
            .0
            .first()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default();
        let in_catalog =
            first == "pg_catalog" || first == "information_schema" || first.starts_with("pg_");
        catalog |= in_catalog;
        only &= in_catalog || first == "unnest" || first == "generate_series";
        ControlFlow::<()>::Continue(())
    });
    // A table function alone is a user's query, left as written.
    catalog && only
}

/// Whether `expr` calls an aggregate function PostgreSQL's catalog queries use.
fn aggregated(expr: &Expr) -> bool {
    let text = expr.to_string().to_ascii_lowercase();
    [
        "count(",
        "max(",
        "min(",
        "sum(",
        "bool_or(",
        "bool_and(",
        "array_agg(",
        "string_agg(",
    ]
    .iter()
    .any(|f| text.contains(f))
}

/// `FETCH name`, `FETCH FROM name` and `FETCH IN name` as `FETCH NEXT FROM name`,
/// which PostgreSQL takes them to mean and sqlparser parses (it wants a direction).
/// None for any other text.
pub fn fetch_with_direction(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim_end();
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = match words.as_slice() {
        [fetch, name] if fetch.eq_ignore_ascii_case("fetch") => name,
        [fetch, from, name]
            if fetch.eq_ignore_ascii_case("fetch")
                && (from.eq_ignore_ascii_case("from") || from.eq_ignore_ascii_case("in")) =>
        {
            name
        }
        _ => return None,
    };
    // A direction alone (`FETCH NEXT`, `FETCH ALL`) names no cursor: left to the parser.
    let keyword = [
        "next", "prior", "first", "last", "all", "forward", "backward",
    ]
    .iter()
    .any(|k| name.eq_ignore_ascii_case(k));
    (!keyword).then(|| format!("FETCH NEXT FROM {name}"))
}

/// Whether a statement of `sql` is `FETCH 0` (or `FORWARD 0`, `RELATIVE 0`,
/// `BACKWARD 0`), which in PostgreSQL fetches the cursor's current row again; the
/// cursors cxr serves through fetched every remaining row for it.
pub fn fetches_the_current_row(sql: &str) -> bool {
    crate::input::text::split_statements(sql)
        .iter()
        .any(|piece| {
            let words: Vec<String> = piece
                .trim()
                .trim_end_matches(';')
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect();
            if words.first().is_none_or(|w| w != "fetch") {
                return false;
            }
            let directed = words
                .get(1)
                .is_some_and(|d| ["forward", "relative", "backward"].contains(&d.as_str()));
            words
                .get(if directed { 2 } else { 1 })
                .is_some_and(|count| count == "0")
        })
}

/// A transaction statement without its `[NOT] DEFERRABLE` mode, which the SQL parser
/// does not know (psycopg's `conn.deferrable = True` sends `BEGIN ... DEFERRABLE`).
/// Every statement of a server that only reads one committed version is already what
/// a deferrable transaction waits for: a snapshot no writer can disturb.
pub fn without_deferrable(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim_end();
    let words: Vec<&str> = text.split_whitespace().collect();
    let lower = |k: usize| words.get(k).map(|w| w.to_ascii_lowercase());
    let transaction = match lower(0).as_deref() {
        Some("begin") => true,
        Some("start") | Some("set") => words.iter().any(|w| {
            w.eq_ignore_ascii_case("transaction") || w.eq_ignore_ascii_case("characteristics")
        }),
        _ => false,
    };
    if !transaction
        || !words
            .iter()
            .any(|w| w.trim_matches(',').eq_ignore_ascii_case("deferrable"))
    {
        return None;
    }
    let mut kept: Vec<&str> = Vec::new();
    for word in &words {
        if word.trim_matches(',').eq_ignore_ascii_case("deferrable") {
            if kept.last().is_some_and(|w| w.eq_ignore_ascii_case("not")) {
                kept.pop();
            }
            continue;
        }
        kept.push(word);
    }
    // A mode list may now end in a comma (`READ ONLY, DEFERRABLE`).
    let joined = kept.join(" ");
    Some(joined.trim_end_matches(',').to_string())
}

/// `statement` as datafusion-postgres's rules leave a user function, for the plans
/// [`with_login_user`] did not see (`COPY (SELECT current_user) TO STDOUT`).
pub fn user_functions_as_session_user(statement: Statement) -> Statement {
    use datafusion_postgres::datafusion_pg_catalog::sql::rules::{
        CurrentUserVariableToSessionUserFunctionCall, SqlStatementRewriteRule,
    };
    CurrentUserVariableToSessionUserFunctionCall.rewrite(statement)
}

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

/// `statement` with its result columns named as PostgreSQL names them where
/// DataFusion names them otherwise: a function call after the function
/// (`count(*)` gives `count`, `round(avg(age), 1)` gives `round`), also when cast
/// (`avg(age)::int` gives `avg`). A name another column of the result would
/// also have is left as DataFusion gives it (DataFusion refuses two columns of one
/// name, PostgreSQL does not), and so is every column of a select list with `*`.
/// None when nothing is renamed.
pub fn with_postgres_names(statement: &Statement) -> Option<Statement> {
    let mut out = statement.clone();
    let select = plain_select(&mut out)?;
    if has_wildcard(select) {
        return None;
    }
    let names: Vec<Option<String>> = select.projection.iter().map(result_name).collect();
    let unique = |name: &str| named_once(&names, name);
    let mut changed = false;
    for (item, name) in select.projection.iter_mut().zip(&names) {
        if let SelectItem::UnnamedExpr(expr) = item
            && called(expr).is_some()
            && let Some(name) = name.as_deref().filter(|n| unique(n))
        {
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias: Ident::with_quote('"', name),
            };
            changed = true;
        }
    }
    changed.then_some(out)
}

/// Whether exactly one of a select list's result `names` is `name` (as PostgreSQL
/// compares unquoted names: in any case).
fn named_once(names: &[Option<String>], name: &str) -> bool {
    names
        .iter()
        .flatten()
        .filter(|n| n.eq_ignore_ascii_case(name))
        .count()
        == 1
}

/// The SELECT of a statement that is one plain query (no UNION, no VALUES).
fn plain_select(statement: &mut Statement) -> Option<&mut Select> {
    let Statement::Query(query) = statement else {
        return None;
    };
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(select.as_mut()),
        _ => None,
    }
}

/// Whether a select list has `*` or `t.*`, whose columns' names are not known here.
fn has_wildcard(select: &Select) -> bool {
    select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    })
}

/// The function call `expr` is, or casts (`avg(age)::int`). A cast of a column
/// keeps DataFusion's name: named as the column, it would stand for the column in
/// `ORDER BY age + 1`, where PostgreSQL reads the table's.
fn called(expr: &Expr) -> Option<&Expr> {
    match expr {
        Expr::Function(_) => Some(expr),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => called(expr),
        _ => None,
    }
}

/// Names each item of the select list that is a call `folded` will replace by its
/// value (or a cast of one) after the function, as PostgreSQL names it and as
/// [`with_postgres_names`] names the calls it leaves: DataFusion names a constant
/// by its text (`current_setting('statement_timeout')` was a column `'0'`). Where
/// another column of the result has that name, or a `*` may, the call's own text
/// names it, as DataFusion names a call it computes. Whether any was named.
fn name_folded_calls(statement: &mut Statement, folded: &dyn Fn(&Expr) -> bool) -> bool {
    let Some(select) = plain_select(statement) else {
        return false;
    };
    let wildcard = has_wildcard(select);
    let names: Vec<Option<String>> = select.projection.iter().map(result_name).collect();
    let unique = |name: &str| !wildcard && named_once(&names, name);
    let mut changed = false;
    for (item, name) in select.projection.iter_mut().zip(&names) {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let Some(call) = called(expr).filter(|call| folded(call)) else {
            continue;
        };
        let alias = match name.as_deref().filter(|n| unique(n)) {
            Some(name) => name.to_string(),
            None => call.to_string(),
        };
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', alias),
        };
        changed = true;
    }
    changed
}

/// The name PostgreSQL gives the result column of `item`, where it is a name:
/// its alias, the column it is, the function it calls, or the name of what a cast
/// casts.
fn result_name(item: &SelectItem) -> Option<String> {
    fn of(expr: &Expr) -> Option<String> {
        match expr {
            Expr::Identifier(ident) => Some(ident.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()),
            Expr::Function(f) => f.name.0.last()?.as_ident().map(|i| {
                if i.quote_style.is_some() {
                    i.value.clone()
                } else {
                    i.value.to_ascii_lowercase()
                }
            }),
            Expr::Cast { expr, .. } | Expr::Nested(expr) => of(expr),
            _ => None,
        }
    }
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
        SelectItem::UnnamedExpr(expr) => of(expr),
        _ => None,
    }
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

/// `current_setting('name')` of a session setting (`statement_timeout`, the
/// formatting settings, custom ones) as its value in this session: the function
/// itself knows only the server's settings. Its column keeps the function's name
/// (see [`name_folded_calls`]). None when there is none.
pub fn with_session_settings(
    statement: &Statement,
    metadata: &std::collections::HashMap<String, String>,
) -> Option<Statement> {
    let value = |expr: &Expr| {
        setting_asked(expr).and_then(|n| super::settings::session_value(&n, metadata))
    };
    let mut out = statement.clone();
    let mut changed = name_folded_calls(&mut out, &|call| value(call).is_some());
    let _ = visit_expressions_mut(&mut out, |expr| {
        if let Some(value) = value(expr) {
            *expr = text(&value);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(out)
}

/// The setting a `current_setting('name')` call asks for.
fn setting_asked(expr: &Expr) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let Expr::Function(f) = expr else {
        return None;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if name != "current_setting" && name != "pg_catalog.current_setting" {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))] => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn text(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

/// PostgreSQL compares an integer column with a parameter in the client's type
/// (`age > $1` with 50.5 keeps ages above 50.5, with an int4 100000 keeps none);
/// DataFusion types the parameter as the column and would cut 50.5 to 50 or refuse
/// 100000 for a SMALLINT. Each parameter the client sends in a type wider than the
/// integer the plan infers (`inferred`) — a float, a numeric, an integer of more bits —
/// is cast to the client's type in the statement, to be planned again. None when
/// there is none.
pub fn with_wider_parameters(
    statement: &Statement,
    inferred: &[Option<DataType>],
    client: &[Option<Type>],
) -> Option<Statement> {
    use datafusion::sql::sqlparser::ast::DataType as SqlType;
    let wider = |i: usize| -> Option<SqlType> {
        let inferred = inferred.get(i)?.as_ref()?;
        let bits = |t: &DataType| t.primitive_width().map(|bytes| bytes * 8);
        if !inferred.is_integer() {
            return None;
        }
        match *client.get(i)?.as_ref()? {
            Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
                Some(SqlType::Double(ExactNumberInfo::None))
            }
            Type::INT4 if bits(inferred) < Some(32) => Some(SqlType::Integer(None)),
            Type::INT8 if bits(inferred) < Some(64) => Some(SqlType::BigInt(None)),
            _ => None,
        }
    };
    let casts: Vec<(String, SqlType)> = (0..inferred.len().max(client.len()))
        .filter_map(|i| Some((format!("${}", i + 1), wider(i)?)))
        .collect();
    if casts.is_empty() {
        return None;
    }
    let mut out = statement.clone();
    let _ = visit_expressions_mut(&mut out, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Placeholder(p) = &v.value
            && let Some((_, data_type)) = casts.iter().find(|(name, _)| name == p)
        {
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(expr.clone()),
                data_type: data_type.clone(),
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

/// pgjdbc sends `setDate` and `setTime` values untyped, with a zone: `2021-03-04 +00`,
/// `05:06:07+00`. PostgreSQL's casts to date and time drop the zone; DataFusion's
/// refuse the text, so `SELECT ?::date` failed. An untyped text value of exactly
/// that shape loses its zone (a timestamp's, `2021-03-04 05:06:07+00`, keeps it).
pub fn without_date_zones(decoded: ParamValues, client: &[Option<Type>]) -> ParamValues {
    let ParamValues::List(mut values) = decoded else {
        return decoded;
    };
    for (i, value) in values.iter_mut().enumerate() {
        let untyped = client
            .get(i)
            .and_then(Option::as_ref)
            .is_none_or(|t| *t == Type::UNKNOWN);
        if let (true, ScalarValue::Utf8(Some(text))) = (untyped, &mut value.value)
            && let Some(bare) = date_or_time_without_zone(text)
        {
            *text = bare;
        }
    }
    ParamValues::List(values)
}

/// `YYYY-MM-DD ±HH[:MM]` → `YYYY-MM-DD`, `HH:MM:SS[.f]±HH[:MM]` → `HH:MM:SS[.f]`.
fn date_or_time_without_zone(text: &str) -> Option<String> {
    static SHAPE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let shape = SHAPE.get_or_init(|| {
        regex::Regex::new(
            r"^(\d{4}-\d{2}-\d{2}) ?[+-]\d{2}(:?\d{2})?$|^(\d{2}:\d{2}:\d{2}(\.\d+)?)[+-]\d{2}(:?\d{2})?$",
        )
        .expect("a valid pattern")
    });
    let found = shape.captures(text)?;
    found
        .get(1)
        .or_else(|| found.get(3))
        .map(|m| m.as_str().to_string())
}

/// `to_char(value, 'YYYY-MM-DD')` with PostgreSQL's template translated to the
/// chrono format DataFusion's `to_char` reads (`%Y-%m-%d`): DataFusion passed the
/// template through, so `to_char(DATE '2020-01-02', 'YYYY')` answered `YYYY`. A
/// template already in chrono's form (with `%`) is left as written.
pub fn with_postgres_templates(statement: &Statement) -> Option<Statement> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let mut out = statement.clone();
    let mut changed = false;
    let _ = visit_expressions_mut(&mut out, |expr| {
        if let Expr::Function(f) = expr
            && f.name.to_string().eq_ignore_ascii_case("to_char")
            && let FunctionArguments::List(list) = &mut f.args
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(template)))) =
                list.args.get_mut(1)
            && let Value::SingleQuotedString(text) = &mut template.value
            && !text.contains('%')
        {
            *text = chrono_format(text);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(out)
}

/// `SELECT generate_series(1, 3)`: PostgreSQL's set-returning function gives a row
/// per value, where DataFusion's gives one row holding a list; in a select list it is
/// read as `unnest(generate_series(...))`, and named `generate_series`.
pub fn with_series_as_rows(statement: &Statement) -> Option<Statement> {
    let mut out = statement.clone();
    let Statement::Query(query) = &mut out else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let mut changed = false;
    for item in &mut select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => continue,
        };
        let Expr::Function(f) = expr else { continue };
        if !f.name.to_string().eq_ignore_ascii_case("generate_series") {
            continue;
        }
        let Some(unnested) = parse_expression(&format!("unnest({f})")) else {
            continue;
        };
        *item = SelectItem::ExprWithAlias {
            expr: unnested,
            alias: alias.unwrap_or_else(|| Ident::new("generate_series")),
        };
        changed = true;
    }
    changed.then_some(out)
}

/// PostgreSQL's date and time template patterns (the common ones) as chrono's; text
/// in double quotes is copied, anything else kept as it is.
fn chrono_format(template: &str) -> String {
    // Longest first: `HH24` before `HH`, `Month` before `Mon`, `YYYY` before `YY`.
    const PATTERNS: [(&str, &str); 21] = [
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("Month", "%B"),
        ("MONTH", "%B"),
        ("Day", "%A"),
        ("DAY", "%A"),
        ("DDD", "%j"),
        ("Mon", "%b"),
        ("MON", "%b"),
        ("Dy", "%a"),
        ("DY", "%a"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("AM", "%p"),
    ];
    let mut out = String::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let quoted = &rest[1..];
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push_str(&quoted[..end].replace('%', "%%"));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        if let Some((pattern, format)) = PATTERNS.iter().find(|(p, _)| rest.starts_with(p)) {
            out.push_str(format);
            rest = &rest[pattern.len()..];
            continue;
        }
        if rest.starts_with("PM") {
            out.push_str("%p");
            rest = &rest[2..];
            continue;
        }
        if c == '%' {
            out.push('%');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_dates_and_times_lose_their_zone() {
        assert_eq!(
            date_or_time_without_zone("2021-03-04 +00").as_deref(),
            Some("2021-03-04")
        );
        assert_eq!(
            date_or_time_without_zone("05:06:07+00").as_deref(),
            Some("05:06:07")
        );
        assert_eq!(
            date_or_time_without_zone("05:06:07.5-05:30").as_deref(),
            Some("05:06:07.5")
        );
        assert_eq!(date_or_time_without_zone("2021-03-04 05:06:07+00"), None);
        assert_eq!(date_or_time_without_zone("Effusion"), None);
    }

    fn parse(sql: &str) -> Statement {
        datafusion::sql::sqlparser::parser::Parser::parse_sql(
            &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
            sql,
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn result_columns_are_named_as_postgresql_names_them() {
        let named = |sql: &str| with_postgres_names(&parse(sql)).map(|s| s.to_string());
        assert_eq!(
            named("SELECT label, count(*) FROM findings GROUP BY label ORDER BY count(*) DESC")
                .as_deref(),
            Some(
                "SELECT label, count(*) AS \"count\" FROM findings GROUP BY label ORDER BY count(*) DESC"
            )
        );
        assert_eq!(
            named("SELECT round(avg(age), 1), avg(age)::int, age::text, CAST(sex AS TEXT) AS s FROM images")
                .as_deref(),
            Some(
                "SELECT round(avg(age), 1) AS \"round\", avg(age)::INT AS \"avg\", age::TEXT, CAST(sex AS TEXT) AS s FROM images"
            )
        );
        // Two columns would share a name: both keep DataFusion's.
        assert_eq!(named("SELECT count(*), count(age) FROM images"), None);
        assert_eq!(named("SELECT max(age) AS max, max(age) FROM images"), None);
        // A column of `*` could share it.
        assert_eq!(named("SELECT *, count(*) OVER () FROM images"), None);
        assert_eq!(named("SELECT 1 + 1, age FROM images"), None);
    }

    #[test]
    fn a_setting_given_as_its_value_keeps_the_functions_name() {
        let metadata =
            std::collections::HashMap::from([("application_name".to_string(), "psql".to_string())]);
        let set = |sql: &str| {
            with_session_settings(&parse(sql), &metadata)
                .unwrap()
                .to_string()
        };
        // No statement_timeout set: PostgreSQL shows 0.
        assert_eq!(
            set("SELECT current_setting('statement_timeout')"),
            "SELECT '0' AS \"current_setting\""
        );
        assert_eq!(
            set(
                "SELECT pg_catalog.current_setting('application_name')::text, upper(current_setting('application_name')) AS u"
            ),
            "SELECT 'psql'::TEXT AS \"current_setting\", upper('psql') AS u"
        );
        // Two columns would share the name: each is named by its call.
        assert_eq!(
            set("SELECT current_setting('statement_timeout'), current_setting('application_name')"),
            "SELECT '0' AS \"current_setting('statement_timeout')\", \
             'psql' AS \"current_setting('application_name')\""
        );
        // A setting the server answers is left to the function, named later.
        assert!(
            with_session_settings(
                &parse("SELECT current_setting('server_encoding')"),
                &metadata
            )
            .is_none()
        );
    }

    #[test]
    fn catalog_rewrites_leave_a_users_query_as_written() {
        // A table function alone is not the catalog: a subquery of several rows
        // stays an error, not its max.
        let user = parse("SELECT (SELECT g FROM generate_series(1, 3) AS t(g))");
        assert!(for_catalog(&user).is_none());
        assert!(for_catalog(&parse("SELECT * FROM images WHERE age > 3")).is_none());
        // pgjdbc's primary keys: the index keys of no index, read by field.
        let keys = for_catalog(&parse(
            "SELECT (information_schema._pg_expandarray(i.indkey)).N AS k, NULL, NULL \
             FROM pg_catalog.pg_index i",
        ))
        .unwrap()
        .to_string();
        assert_eq!(
            keys,
            "SELECT get_field((named_struct('x', CAST(NULL AS INT), 'n', CAST(NULL AS INT))), 'n') AS k, \
             NULL AS \"?column?\", NULL AS \"?column?2\" FROM pg_catalog.pg_index i"
        );
        // A size by oid is asked by name; a function compared by regproc, by name.
        let sizes = for_catalog(&parse(
            "SELECT pg_catalog.pg_table_size(c.oid) FROM pg_catalog.pg_class c \
             WHERE c.relacl IS NULL",
        ))
        .unwrap()
        .to_string();
        assert!(sizes.contains("cxr_relation_size(c.relname)"), "{sizes}");
        // Its column keeps the function's name, as PostgreSQL's.
        let sizes = for_catalog(&parse(
            "SELECT pg_table_size(c.oid) FROM pg_catalog.pg_class c",
        ))
        .unwrap()
        .to_string();
        assert!(
            sizes.starts_with("SELECT cxr_relation_size(c.relname) AS pg_table_size FROM"),
            "{sizes}"
        );
        let subscripts = for_catalog(&parse(
            "SELECT generate_subscripts(i.indkey, 1) FROM pg_catalog.pg_index i",
        ))
        .unwrap()
        .to_string();
        assert!(
            subscripts.starts_with("SELECT unnest(")
                && subscripts.ends_with(" AS generate_subscripts FROM pg_catalog.pg_index i"),
            "{subscripts}"
        );
        let types = for_catalog(&parse(
            "SELECT typinput = 'pg_catalog.array_in'::regproc AS is_array FROM pg_catalog.pg_type",
        ))
        .unwrap()
        .to_string();
        assert_eq!(
            types,
            "SELECT typinput = 'array_in' AS is_array FROM pg_catalog.pg_type"
        );
    }

    #[test]
    fn a_like_escape_other_than_backslash_is_rewritten() {
        let s = for_catalog(&parse(
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE $1 || '%' ESCAPE '/'",
        ))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE replace(replace($1 || '%', '\\', '\\\\'), '/', '\\')"
        );
    }

    #[test]
    fn a_fetch_without_direction_fetches_the_next_row() {
        assert_eq!(
            fetch_with_direction("FETCH c3;").unwrap(),
            "FETCH NEXT FROM c3"
        );
        assert_eq!(
            fetch_with_direction(" fetch in \"C\" ").unwrap(),
            "FETCH NEXT FROM \"C\""
        );
        assert_eq!(
            fetch_with_direction("FETCH FROM c").unwrap(),
            "FETCH NEXT FROM c"
        );
        assert!(fetch_with_direction("FETCH 5 FROM c").is_none());
        assert!(fetch_with_direction("FETCH ALL").is_none());
        assert!(fetch_with_direction("SELECT 1").is_none());
        for zero in [
            "FETCH 0 FROM c",
            "fetch forward 0 in c;",
            "BEGIN; FETCH RELATIVE 0 c",
        ] {
            assert!(fetches_the_current_row(zero), "{zero}");
        }
        for other in ["FETCH 10 FROM c", "FETCH NEXT FROM c", "SELECT 0"] {
            assert!(!fetches_the_current_row(other), "{other}");
        }
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
    fn only_names_of_the_catalog_leave_select_list_subqueries_to_its_rule() {
        let mine = "SELECT p.patient_id, (SELECT count(*) FROM images i WHERE i.patient_id = p.patient_id) AS n_pg_images, 'see pg_docs' FROM patients p";
        assert!(parsed_as_written(mine).is_some());
        for catalog in [
            "SELECT (SELECT relname FROM pg_catalog.pg_class c WHERE c.oid = a.attrelid) FROM pg_attribute a",
            "SELECT (SELECT 1), pg_get_userbyid(1)",
            "SELECT (SELECT 1) FROM information_schema.tables",
        ] {
            assert!(parsed_as_written(catalog).is_none(), "{catalog}");
        }
    }

    #[test]
    fn array_literals_are_left_whole_to_the_planner() {
        let parsed = |sql: &str| parsed_as_written(sql).map(|s| s[0].to_string());
        // Not split on its comma into ARRAY['"a', 'b"', 'NULL'].
        let cast = parsed(r#"SELECT cardinality('{"a,b",NULL}'::text[])"#).unwrap();
        assert!(cast.contains(r#"'{"a,b",NULL}'::TEXT[]"#), "{cast}");
        let numbers = parsed("SELECT '{{1,2},{3,4}}'::int[][], '{true,f}'::bool[]").unwrap();
        assert!(!numbers.contains("ARRAY"), "{numbers}");
        // Beside = ANY, typed as the rule types its elements.
        let any = parsed(r#"SELECT 'a,b' = ANY('{"a,b",c}')"#).unwrap();
        assert!(
            any.contains(r#"array_contains('{"a,b",c}'::TEXT[], 'a,b')"#),
            "{any}"
        );
        // Also in a query of the catalog, whose other rules still apply.
        let catalog = parsed(
            "SELECT (SELECT 1), '{a}'::varchar[] FROM pg_catalog.pg_class WHERE relname = ANY('{images}')",
        )
        .unwrap();
        assert!(catalog.contains("'{a}'::VARCHAR[]"), "{catalog}");
        assert!(!catalog.contains("(SELECT 1)"), "{catalog}");
        // Forms the rules leave alone are left to datafusion-postgres's parser.
        assert!(parsed("SELECT CAST('{a,b}' AS text[]), x = ANY($1) FROM t").is_none());
        assert!(parsed("SELECT ARRAY['a', 'b'], 'x' = ANY(ARRAY['a'])").is_none());
    }

    #[test]
    fn parameters_wider_than_their_integers_are_cast() {
        let s = with_wider_parameters(
            &parse("SELECT * FROM images WHERE age > $1 AND sex = $2 AND patient_id < $3"),
            &[
                Some(DataType::Int16),
                Some(DataType::Utf8),
                Some(DataType::Int32),
            ],
            &[Some(Type::FLOAT8), Some(Type::TEXT), Some(Type::INT8)],
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "SELECT * FROM images WHERE age > CAST($1 AS DOUBLE) AND sex = $2 AND patient_id < CAST($3 AS BIGINT)"
        );
        let s = with_wider_parameters(
            &parse("SELECT * FROM images WHERE age > $1"),
            &[Some(DataType::Int16)],
            &[Some(Type::INT4)],
        )
        .unwrap();
        assert_eq!(
            s.to_string(),
            "SELECT * FROM images WHERE age > CAST($1 AS INTEGER)"
        );
        // A type as wide as the column's, or narrower, or untyped, stays as it is.
        for (inferred, client) in [
            (DataType::Int64, Type::INT8),
            (DataType::Int32, Type::INT2),
            (DataType::Int16, Type::UNKNOWN),
            (DataType::Utf8, Type::FLOAT8),
        ] {
            let none = with_wider_parameters(
                &parse("SELECT * FROM images WHERE age > $1"),
                &[Some(inferred)],
                &[Some(client)],
            );
            assert!(none.is_none());
        }
    }

    #[test]
    fn postgresql_templates_become_chrono_formats() {
        assert_eq!(chrono_format("YYYY-MM-DD"), "%Y-%m-%d");
        assert_eq!(chrono_format("HH24:MI:SS.MS"), "%H:%M:%S.%3f");
        assert_eq!(chrono_format("Dy DD Mon YYYY HH12 AM"), "%a %d %b %Y %I %p");
        assert_eq!(chrono_format("\"day\" DDD, 100%"), "day %j, 100%%");
    }

    #[test]
    fn deferrable_modes_are_left_out_of_transaction_statements() {
        assert_eq!(
            without_deferrable("BEGIN READ ONLY DEFERRABLE").as_deref(),
            Some("BEGIN READ ONLY")
        );
        assert_eq!(
            without_deferrable("begin isolation level serializable, read only, not deferrable;")
                .as_deref(),
            Some("begin isolation level serializable, read only")
        );
        assert!(without_deferrable("SELECT 'DEFERRABLE'").is_none());
        assert!(without_deferrable("BEGIN").is_none());
    }
}
