//! The extended protocol's Execute, answered as pgwire answers it except for one
//! thing: the rows go to the client as the statement yields them. pgwire collects
//! every row of an `Execute` with no row limit (what psycopg and JDBC send) into
//! memory before sending the first, so one client asking for a cross join, or
//! reading slowly, could grow the server to the size of the answer (23 GB before
//! the kernel stopped it). Streamed, a client that does not read holds the
//! statement at the socket's buffer, and one that leaves ends it.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion_postgres::pgwire;
use futures::future::{Either, select};
use futures::sink::{Sink, SinkExt};
use futures::stream::StreamExt;
use pgwire::api::portal::{Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, send_execution_response};
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, DEFAULT_NAME, PgWireConnectionState, copy,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;

/// Answers `message` for `handler` (its `on_execute`).
pub async fn execute<H, C>(handler: &H, client: &mut C, message: Execute) -> PgWireResult<()>
where
    H: ExtendedQueryHandler + ?Sized,
    H::Statement: Clone,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = H::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    let mut transaction = client.transaction_status();
    client.set_state(PgWireConnectionState::QueryInProgress);
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
    let portal = match client.portal_store().get_portal(name) {
        Some(Entry::Value(portal)) => portal,
        Some(Entry::Empty) => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Ok(());
        }
        None => return Err(PgWireError::PortalNotFound(name.to_owned())),
    };
    let started = matches!(*portal.state().lock().await, PortalExecutionState::Initial);
    let rows = if started {
        let cancel = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
            Some(handle) => Some(handle.start_query().await),
            None => None,
        };
        let response = match cancel {
            Some(cancel) => match select(handler.do_query(client, &portal, max_rows), cancel).await
            {
                Either::Left((result, _)) => result,
                Either::Right(_) => Err(PgWireError::QueryCanceled),
            },
            None => handler.do_query(client, &portal, max_rows).await,
        }?;
        answer(client, &portal, response, &mut transaction).await?
    } else {
        // A portal suspended by an earlier Execute: its next rows.
        true
    };
    if rows {
        send_rows(client, &portal, max_rows).await?;
    }
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction);
    }
    Ok(())
}

/// Sends what a statement answered, as pgwire does; true when it has rows, which the
/// portal then holds.
async fn answer<S, C>(
    client: &mut C,
    portal: &Portal<S>,
    response: Response,
    transaction: &mut pgwire::messages::response::TransactionStatus,
) -> PgWireResult<bool>
where
    S: Clone,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match response {
        Response::Query(results) => {
            portal.start(results).await;
            return Ok(true);
        }
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        Response::Execution(tag) => send_execution_response(client, tag).await?,
        Response::TransactionStart(tag) => {
            send_execution_response(client, tag).await?;
            *transaction = transaction.to_in_transaction_state();
        }
        Response::TransactionEnd(tag) => {
            send_execution_response(client, tag).await?;
            *transaction = transaction.to_idle_state();
            client.portal_store().rm_portal(DEFAULT_NAME);
        }
        Response::Error(error) => {
            client
                .send(PgWireBackendMessage::ErrorResponse((*error).into()))
                .await?;
            *transaction = transaction.to_error_state();
        }
        Response::CopyIn(result) => {
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            copy::send_copy_in_response(client, result).await?;
        }
        Response::CopyOut(result) => copy::send_copy_out_response(client, result).await?,
        Response::CopyBoth(result) => {
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            copy::send_copy_both_response(client, result).await?;
        }
    }
    Ok(false)
}

/// Sends the portal's next rows, at most `max_rows` (0: all), each as it comes
/// (`feed` waits while the socket's buffer is full), then `PortalSuspended` or
/// `CommandComplete`.
async fn send_rows<S, C>(client: &mut C, portal: &Portal<S>, max_rows: usize) -> PgWireResult<()>
where
    S: Clone,
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let state = portal.state();
    let mut state = state.lock().await;
    let PortalExecutionState::Suspended(response) = &mut *state else {
        // Finished (or never started): no rows left.
        let tag = Tag::new("SELECT").with_rows(0);
        return Ok(client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?);
    };
    let command = response.command_tag().to_owned();
    let mut sent = 0;
    while max_rows == 0 || sent < max_rows {
        let Some(row) = response.data_rows().next().await else {
            *state = PortalExecutionState::Finished;
            let tag = Tag::new(&command).with_rows(sent);
            return Ok(client
                .send(PgWireBackendMessage::CommandComplete(tag.into()))
                .await?);
        };
        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
        sent += 1;
    }
    Ok(client
        .send(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
        .await?)
}
