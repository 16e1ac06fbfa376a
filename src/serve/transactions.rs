//! Transaction statements as PostgreSQL answers them: datafusion-postgres's hook
//! (cxr's transactions only group statements: clients only read), with
//! - the SQLSTATE of a statement refused in a failed transaction, 25P02, which
//!   clients map to their "in failed transaction" error (the hook sent 25P01, "no
//!   active transaction");
//! - the warning of a COMMIT or ROLLBACK outside a transaction;
//! - `START TRANSACTION` tagged as itself, not `BEGIN`.

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
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
        let idle = client.transaction_status() == TransactionStatus::Idle;
        match statement {
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
