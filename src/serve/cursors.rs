//! SQL cursors: `DECLARE name CURSOR FOR query`, `FETCH` and `CLOSE` (psql's
//! `FETCH_COUNT`, and drivers that read a large result in pieces). The cursor's query
//! is answered as every statement is: on the current version, read-only, within the
//! server's limits. Fetching and closing are datafusion-postgres's, over the
//! connection's portals.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CloseCursor, Declare, DeclareType, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::StoredStatement;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::error::PgWireResult;

use super::queries::Served;
use super::transactions::error;

/// The hook of cursor statements.
pub struct Cursors(pub Arc<Served>);

/// Whether `statement` declares, fetches from or closes a cursor (the protocol's
/// hooks answer it in the extended protocol too).
pub fn is_cursor_statement(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. }
    )
}

impl Cursors {
    /// Runs each cursor's query and keeps its rows as a portal of the connection.
    async fn declare(
        &self,
        declares: &[Declare],
        params: &ParamValues,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        for declare in declares {
            let refused = |message: &str| error("42601", message.into());
            if declare.declare_type != Some(DeclareType::Cursor) {
                return Err(refused("only DECLARE name CURSOR FOR query is answered"));
            }
            let (Some(name), Some(query)) = (declare.names.first(), &declare.for_query) else {
                return Err(refused("DECLARE CURSOR needs a name and a FOR query"));
            };
            let hold = declare.hold == Some(true);
            if !hold && !super::transactions::in_transaction_block(&*client) {
                return Err(error(
                    "25P01", // no_active_sql_transaction
                    "DECLARE CURSOR can only be used in transaction blocks".into(),
                ));
            }
            if client.portal_store().get_portal(&name.value).is_some() {
                return Err(error(
                    "42P03", // duplicate_cursor
                    format!("cursor \"{}\" already exists", name.value),
                ));
            }
            let statement = Statement::Query(query.clone());
            let (response, plan) = self.0.answer_cursor(&statement, params, &*client).await?;
            let Response::Query(rows) = response else {
                return Err(refused("a cursor's query returns rows"));
            };
            keep_columns(client, &name.value, &plan);
            // With its plan, a Describe of the cursor's portal gives its columns.
            let stored = Arc::new(StoredStatement::new(
                name.value.clone(),
                (query.to_string(), Some((statement, plan))),
                vec![],
            ));
            let portal = Portal::new_cursor(name.value.clone(), stored);
            portal.start(rows).await;
            client.portal_store().put_portal(Arc::new(portal));
            if !hold {
                let mut open = transaction_cursors(&*client);
                open.push(name.value.clone());
                keep_transaction_cursors(client, &open);
            }
        }
        Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
    }
}

/// `CLOSE name` of no cursor is PostgreSQL's 34000, not a silent success.
fn check_close(statement: &Statement, client: &mut dyn HookClient) -> PgWireResult<()> {
    if let Statement::Close {
        cursor: CloseCursor::Specific { name },
    } = statement
        && client.portal_store().get_portal(&name.value).is_none()
    {
        return Err(error(
            "34000", // invalid_cursor_name
            format!("cursor \"{}\" does not exist", name.value),
        ));
    }
    let open = transaction_cursors(&*client);
    let still: Vec<String> = match statement {
        Statement::Close {
            cursor: CloseCursor::Specific { name },
        } => open.into_iter().filter(|n| *n != name.value).collect(),
        Statement::Close { .. } => Vec::new(),
        _ => open,
    };
    keep_transaction_cursors(client, &still);
    Ok(())
}

/// Where a connection keeps a cursor's columns (JSON of name, type, nullable), under
/// this prefix and the cursor's name: a `FETCH` parsed in the extended protocol is
/// described with them, where its parse sees only the connection's metadata.
const CURSOR_COLUMNS_KEY: &str = "cxr.cursor_columns.";

fn keep_columns(client: &mut dyn HookClient, cursor: &str, plan: &LogicalPlan) {
    let columns: Vec<(String, String, bool)> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable()))
        .collect();
    let text = serde_json::to_string(&columns).unwrap_or_default();
    client
        .metadata_mut()
        .insert(format!("{CURSOR_COLUMNS_KEY}{cursor}"), text);
}

/// A plan of no rows with the columns of cursor `cursor`, if the connection declared it.
fn fetched_columns(client: &(dyn ClientInfo + Send + Sync), cursor: &str) -> Option<LogicalPlan> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let text = client
        .metadata()
        .get(&format!("{CURSOR_COLUMNS_KEY}{cursor}"))?;
    let columns: Vec<(String, String, bool)> = serde_json::from_str(text).ok()?;
    let fields = columns
        .into_iter()
        .map(|(name, ty, nullable)| Some(Field::new(name, ty.parse::<DataType>().ok()?, nullable)))
        .collect::<Option<Vec<_>>>()?;
    let schema = datafusion::common::DFSchema::try_from(Schema::new(fields)).ok()?;
    Some(LogicalPlan::EmptyRelation(
        datafusion::logical_expr::EmptyRelation {
            produce_one_row: false,
            schema: Arc::new(schema),
        },
    ))
}

/// A `FETCH`'s rows as PostgreSQL answers them: tagged `FETCH n`, and with the
/// cursor's columns once it is used up (the protocol's portal then has none, and
/// psql printed nothing where PostgreSQL prints the header and `(0 rows)`).
fn as_fetched(
    statement: &Statement,
    response: Response,
    client: &(dyn ClientInfo + Send + Sync),
) -> Response {
    let Statement::Fetch { name, .. } = statement else {
        return response;
    };
    let Response::Query(mut rows) = response else {
        return response;
    };
    if rows.row_schema().is_empty()
        && let Some(plan) = fetched_columns(client, &name.value)
        && let Ok(fields) =
            arrow_schema_to_pg_fields(plan.schema().as_arrow(), &Format::UnifiedText, None)
    {
        rows = QueryResponse::new(Arc::new(fields), futures::stream::empty());
    }
    rows.set_command_tag("FETCH");
    Response::Query(rows)
}

/// Where a connection's cursors declared without `WITH HOLD` are listed, in its
/// metadata (a JSON list of names): they end with their transaction.
const TRANSACTION_CURSORS_KEY: &str = "cxr.transaction_cursors";

fn transaction_cursors(client: &dyn HookClient) -> Vec<String> {
    client
        .metadata()
        .get(TRANSACTION_CURSORS_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

fn keep_transaction_cursors(client: &mut dyn HookClient, names: &[String]) {
    let text = serde_json::to_string(names).unwrap_or_default();
    client
        .metadata_mut()
        .insert(TRANSACTION_CURSORS_KEY.to_string(), text);
}

/// Closes the cursors declared in the transaction that ends (`COMMIT`, `ROLLBACK`)
/// without `WITH HOLD`, as PostgreSQL does.
pub fn close_transaction_cursors(client: &mut dyn HookClient) {
    for name in transaction_cursors(&*client) {
        client.portal_store().rm_portal(&name);
    }
    keep_transaction_cursors(client, &[]);
}

#[async_trait]
impl QueryHook for Cursors {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Declare { stmts } => {
                let no_parameters = ParamValues::List(Vec::new());
                Some(self.declare(stmts, &no_parameters, client).await)
            }
            _ => {
                if let Err(e) = check_close(statement, client) {
                    return Some(Err(e));
                }
                let response = CursorStatementHook
                    .handle_simple_query(statement, context, client)
                    .await;
                Some(response?.map(|r| as_fetched(statement, r, &*client)))
            }
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if let Statement::Fetch { name, .. } = statement
            && let Some(plan) = fetched_columns(client, &name.value)
        {
            // A Describe of the FETCH's portal then gives the cursor's columns (psycopg
            // and pgjdbc read rows by them).
            return Some(Ok(plan));
        }
        is_cursor_statement(statement).then(|| Ok(super::queries::no_rows()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Declare { stmts } => Some(self.declare(stmts, params, client).await),
            _ => {
                if let Err(e) = check_close(statement, client) {
                    return Some(Err(e));
                }
                let response = CursorStatementHook
                    .handle_extended_query(statement, plan, params, context, client)
                    .await;
                Some(response?.map(|r| as_fetched(statement, r, &*client)))
            }
        }
    }
}
