//! Transaction statements as PostgreSQL answers them: datafusion-postgres's hook
//! (cxr's transactions only group statements: clients only read), with
//! - the SQLSTATE of a statement refused in a failed transaction, 25P02, which
//!   clients map to their "in failed transaction" error (the hook sent 25P01, "no
//!   active transaction");
//! - the warning of a COMMIT or ROLLBACK outside a transaction;
//! - `START TRANSACTION` tagged as itself, not `BEGIN`, and the warning of a `BEGIN`
//!   inside a transaction;
//! - savepoints: `SAVEPOINT`, `RELEASE` and `ROLLBACK TO SAVEPOINT` (which the hook
//!   took for a whole `ROLLBACK`), each undoing the session's settings as
//!   PostgreSQL's do, with its errors for a name not set and outside a transaction.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Statement, TransactionMode};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::response::TransactionStatus;

pub struct Transactions;

#[async_trait]
impl QueryHook for Transactions {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let idle = !in_transaction_block(&*client);
        match statement {
            Statement::Commit { .. }
            | Statement::Rollback {
                savepoint: None, ..
            } => {
                super::cursors::close_transaction_cursors(client);
                client.metadata_mut().remove(BLOCK_KEY);
                client.metadata_mut().remove(ISOLATION_KEY);
                if let Some(kept) = client
                    .session_extensions()
                    .get::<super::queries::TransactionVersion>()
                {
                    kept.end();
                }
            }
            Statement::StartTransaction { modes, .. } => {
                client.metadata_mut().insert(BLOCK_KEY.into(), "1".into());
                // A BEGIN inside a transaction changes nothing (a warning below).
                if idle {
                    keep_isolation(client.metadata_mut(), modes);
                }
            }
            _ => {}
        }
        match statement {
            Statement::Savepoint { name } => return Some(savepoint(&name.value, client)),
            Statement::ReleaseSavepoint { name } => return Some(release(&name.value, client)),
            Statement::Rollback {
                savepoint: Some(name),
                ..
            } => return Some(rollback_to(&name.value, client)),
            Statement::StartTransaction { .. } if !idle => {
                let warning = super::settings::notice_coded(
                    "WARNING",
                    "25001", // active_sql_transaction
                    "there is already a transaction in progress".into(),
                );
                if let Err(e) = client.send_message(warning).await {
                    return Some(Err(e));
                }
            }
            Statement::Commit { .. } | Statement::Rollback { .. } if idle => {
                let warning = super::settings::notice(
                    "WARNING",
                    "there is no transaction in progress".into(),
                );
                if let Err(e) = client.send_message(warning).await {
                    return Some(Err(e));
                }
            }
            Statement::StartTransaction { begin: false, .. } if idle => {
                return Some(Ok(Response::TransactionStart(Tag::new(
                    "START TRANSACTION",
                ))));
            }
            _ => {}
        }
        let answer = TransactionStatementHook
            .handle_simple_query(statement, context, client)
            .await?;
        Some(answer.map_err(in_failed_transaction))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        TransactionStatementHook
            .handle_extended_parse_query(statement, context, client)
            .await
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.handle_simple_query(statement, context, client).await
    }
}

/// Marks, in a connection's metadata, a transaction block begun and not yet ended:
/// the transaction status pgwire keeps changes only after every statement of a
/// query text has been answered, so `BEGIN; DECLARE ...` in one text would find it
/// idle.
const BLOCK_KEY: &str = "cxr.in_transaction_block";

/// The isolation level the open transaction asked for (`BEGIN ISOLATION LEVEL ...`,
/// `SET TRANSACTION ISOLATION LEVEL ...`), as `SHOW transaction_isolation` gives it
/// until the transaction ends. Every level reads as cxr's transactions read: each
/// statement one committed version of the warehouse, which only ingest changes.
pub const ISOLATION_KEY: &str = "cxr.transaction_isolation";

/// Keeps the isolation level among `modes`, if one is given, for [`ISOLATION_KEY`]
/// (`BEGIN` here, `SET TRANSACTION` in the settings' hook, which sees it first).
pub fn keep_isolation(
    metadata: &mut std::collections::HashMap<String, String>,
    modes: &[TransactionMode],
) {
    let level = modes.iter().rev().find_map(|m| match m {
        TransactionMode::IsolationLevel(level) => Some(level.to_string().to_ascii_lowercase()),
        _ => None,
    });
    if let Some(level) = level {
        metadata.insert(ISOLATION_KEY.into(), level);
    }
}

/// Whether the client is inside a transaction block (see [`BLOCK_KEY`]).
pub fn in_transaction_block(client: &dyn HookClient) -> bool {
    client.transaction_status() != TransactionStatus::Idle || block_begun(client.metadata())
}

/// Whether a `BEGIN` earlier in this connection (in the same query text too) opened
/// a block not yet ended.
pub fn block_begun(metadata: &std::collections::HashMap<String, String>) -> bool {
    metadata.contains_key(BLOCK_KEY)
}

/// The hook's 25P01 for a statement in a failed transaction is PostgreSQL's 25P02.
fn in_failed_transaction(error: PgWireError) -> PgWireError {
    match error {
        PgWireError::UserError(mut info) if info.code == "25P01" => {
            info.code = "25P02".into();
            PgWireError::UserError(info)
        }
        other => other,
    }
}

/// Where a connection's savepoints are kept, in its metadata: a JSON list of (name,
/// the settings when it was set), oldest first. The end of the transaction drops it.
pub const SAVEPOINTS_KEY: &str = "cxr.savepoints";

type Savepoints = Vec<(String, String)>;

fn savepoints(client: &dyn HookClient) -> Savepoints {
    client
        .metadata()
        .get(SAVEPOINTS_KEY)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn keep_savepoints(client: &mut dyn HookClient, list: &Savepoints) {
    let text = serde_json::to_string(list).expect("strings serialise");
    client
        .metadata_mut()
        .insert(SAVEPOINTS_KEY.to_string(), text);
}

/// An error with PostgreSQL's SQLSTATE `code`.
pub(super) fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(
        datafusion_postgres::pgwire::error::ErrorInfo::new("ERROR".into(), code.into(), message),
    ))
}

/// PostgreSQL's errors for a savepoint statement outside a transaction, or in a
/// failed one (where only `ROLLBACK TO` is taken).
fn in_transaction(client: &dyn HookClient, statement: &str, failed_ok: bool) -> PgWireResult<()> {
    match client.transaction_status() {
        _ if !in_transaction_block(client) => Err(error(
            "25P01",
            format!("{statement} can only be used in transaction blocks"),
        )),
        TransactionStatus::Error if !failed_ok => Err(error(
            "25P02",
            "current transaction is aborted, commands ignored until end of transaction block"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// The position of the newest savepoint of this name (PostgreSQL's names are
/// case-folded by the parser; a name may be set again, and the newest counts).
fn find(list: &Savepoints, name: &str) -> PgWireResult<usize> {
    list.iter()
        .rposition(|(n, _)| n == name)
        .ok_or_else(|| error("3B001", format!("savepoint \"{name}\" does not exist")))
}

fn savepoint(name: &str, client: &mut dyn HookClient) -> PgWireResult<Response> {
    in_transaction(client, "SAVEPOINT", false)?;
    let mut list = savepoints(client);
    list.push((
        name.to_string(),
        super::settings::snapshot(client.metadata()),
    ));
    keep_savepoints(client, &list);
    Ok(Response::Execution(Tag::new("SAVEPOINT")))
}

/// `RELEASE`: forgets the savepoint and those set after it; the settings stay.
fn release(name: &str, client: &mut dyn HookClient) -> PgWireResult<Response> {
    in_transaction(client, "RELEASE SAVEPOINT", false)?;
    let mut list = savepoints(client);
    let at = find(&list, name)?;
    list.truncate(at);
    keep_savepoints(client, &list);
    Ok(Response::Execution(Tag::new("RELEASE")))
}

/// `ROLLBACK TO`: the settings as they were at the savepoint, which stays set, and
/// a failed transaction usable again.
fn rollback_to(name: &str, client: &mut dyn HookClient) -> PgWireResult<Response> {
    in_transaction(client, "ROLLBACK TO SAVEPOINT", true)?;
    let mut list = savepoints(client);
    let at = find(&list, name)?;
    list.truncate(at + 1);
    super::settings::restore(client.metadata_mut(), &list[at].1);
    keep_savepoints(client, &list);
    // Tagged ROLLBACK, and the transaction (failed or not) is open again.
    Ok(Response::TransactionStart(Tag::new("ROLLBACK")))
}
