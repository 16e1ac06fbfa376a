//! SQL-level prepared statements: `PREPARE name [(types)] AS statement`, `EXECUTE
//! name(values)` and `DEALLOCATE name | ALL`, kept per connection, as PostgreSQL keeps
//! them. `EXECUTE` answers the statement with its `$n` replaced by the values (cast
//! to the declared types), as any other statement: read-only, within the limits.

use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CastKind, DiscardObject, Expr, Statement, Value, visit_expressions_mut,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;

use super::queries::Served;

/// Where a connection's prepared statements are kept: its metadata, by name.
const KEY: &str = "cxr.prepared.";

/// The hook of `PREPARE`, `EXECUTE` and `DEALLOCATE` (simple protocol).
pub struct Prepared(pub Arc<Served>);

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

impl Prepared {
    async fn execute(
        &self,
        name: &str,
        values: &[Expr],
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let stored = client
            .metadata()
            .get(&format!("{KEY}{name}"))
            .cloned()
            .ok_or_else(|| {
                error(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                )
            })?;
        let (types, sql) = stored.split_once('\n').unwrap_or(("", &stored));
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let mut statement = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql)
            .ok()
            .and_then(|mut s| s.pop())
            .ok_or_else(|| error("XX000", format!("prepared statement \"{name}\" is damaged")))?;
        let types: Vec<&str> = types.split('\t').filter(|t| !t.is_empty()).collect();
        let mut missing = None;
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Value(v) = expr
                && let Value::Placeholder(p) = &v.value
                && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
            {
                match values.get(n.wrapping_sub(1)) {
                    Some(value) => *expr = typed(value, types.get(n - 1).copied()),
                    None => missing = Some(n),
                }
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(n) = missing {
            return Err(error(
                "08P01",
                format!("EXECUTE {name}: ${n} has no value ({} given)", values.len()),
            ));
        }
        self.0.answer_as_text(&statement, &*client).await
    }
}

/// `DEALLOCATE name | ALL`: a statement prepared with `PREPARE`, or one a driver
/// prepared through the protocol (psycopg deallocates its own by name).
fn deallocate(name: &str, client: &mut dyn HookClient) -> PgWireResult<Response> {
    if name.eq_ignore_ascii_case("all") {
        client.metadata_mut().retain(|k, _| !k.starts_with(KEY));
    } else if client
        .metadata_mut()
        .remove(&format!("{KEY}{name}"))
        .is_none()
    {
        let store = client.portal_store();
        if store.get_statement(name).is_none() {
            return Err(error(
                "26000",
                format!("prepared statement \"{name}\" does not exist"),
            ));
        }
        store.rm_statement(name);
    }
    Ok(Response::Execution(Tag::new("DEALLOCATE")))
}

/// `DISCARD`: `ALL` resets the session as a connection pool hands it on (the
/// settings as the client logged in with, no prepared statement, no cursor), outside
/// a transaction only, as PostgreSQL's. cxr keeps no plans, sequences or temporary
/// tables: the others have nothing to discard.
fn discard(object: DiscardObject, client: &mut dyn HookClient) -> PgWireResult<Response> {
    if object != DiscardObject::ALL {
        return Ok(Response::Execution(Tag::new(&format!("DISCARD {object}"))));
    }
    if client.transaction_status() != TransactionStatus::Idle {
        return Err(error(
            "25001",
            "DISCARD ALL cannot run inside a transaction block".into(),
        ));
    }
    let metadata = client.metadata_mut();
    metadata.retain(|k, _| !k.starts_with(KEY));
    super::settings::reset_all(metadata);
    client.portal_store().clear_portals();
    Ok(Response::Execution(Tag::new("DISCARD ALL")))
}

/// A value of `EXECUTE`, cast to the type `PREPARE` declared for it.
fn typed(value: &Expr, declared: Option<&str>) -> Expr {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    let data_type = declared.and_then(|t| {
        datafusion::sql::sqlparser::parser::Parser::new(&dialect)
            .try_with_sql(t)
            .and_then(|mut p| p.parse_data_type())
            .ok()
    });
    match data_type {
        Some(data_type) => Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(value.clone()),
            data_type,
            array: false,
            format: None,
        },
        None => Expr::Nested(Box::new(value.clone())),
    }
}

#[async_trait]
impl QueryHook for Prepared {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => {
                // As PostgreSQL's grammar: only these are preparable (a COPY or a
                // SET is a syntax error at PREPARE, not at its EXECUTE).
                if !matches!(
                    **statement,
                    Statement::Query(_)
                        | Statement::Insert(_)
                        | Statement::Update { .. }
                        | Statement::Delete(_)
                        | Statement::Merge { .. }
                ) {
                    return Some(Err(error(
                        "42601",
                        "syntax error: PREPARE takes a SELECT, VALUES, INSERT, UPDATE, DELETE or MERGE statement".into(),
                    )));
                }
                let key = format!("{KEY}{}", name.value);
                if client.metadata().contains_key(&key) {
                    return Some(Err(error(
                        "42P05",
                        format!("prepared statement \"{}\" already exists", name.value),
                    )));
                }
                let types: Vec<String> = data_types.iter().map(ToString::to_string).collect();
                client
                    .metadata_mut()
                    .insert(key, format!("{}\n{statement}", types.join("\t")));
                Some(Ok(Response::Execution(Tag::new("PREPARE"))))
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                ..
            } => Some(self.execute(&name.to_string(), parameters, client).await),
            Statement::Deallocate { name, .. } => Some(deallocate(&name.value, client)),
            Statement::Discard { object_type } => Some(discard(*object_type, client)),
            _ => None,
        }
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _context: &SessionContext,
        _client: &(dyn datafusion_postgres::pgwire::api::ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<datafusion::logical_expr::LogicalPlan>> {
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &datafusion::logical_expr::LogicalPlan,
        _params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Deallocate { .. } | Statement::Discard { .. } => {
                self.handle_simple_query(statement, context, client).await
            }
            _ => None,
        }
    }
}
