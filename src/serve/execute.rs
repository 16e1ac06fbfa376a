//! The simple protocol's Query and the extended protocol's Execute, answered as
//! pgwire answers them except for two things. First, the rows of an Execute go to
//! the client as the statement yields them. pgwire collects
//! every row of an `Execute` with no row limit (what psycopg and JDBC send) into
//! memory before sending the first, so one client asking for a cross join, or
//! reading slowly, could grow the server to the size of the answer (23 GB before
//! the kernel stopped it). Streamed, a client that does not read holds the
//! statement at the socket's buffer, and one that leaves ends it. Second, a
//! `COPY ... TO STDOUT` that fails midway ends with the error alone, as
//! PostgreSQL's does: pgwire sent `CopyFail`, a message only clients send, and psql
//! answered "unexpected response" instead of the error.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion_postgres::pgwire;
use futures::future::{Either, select};
use futures::sink::{Sink, SinkExt};
use futures::stream::StreamExt;
use pgwire::api::portal::{Portal, PortalExecutionState};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response,
    send_ready_for_query,
};
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, DEFAULT_NAME, PgWireConnectionState, copy,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyDone, CopyOutResponse};
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::EmptyQueryResponse;
use pgwire::messages::simplequery::Query;

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
    let mut transaction = begin(client)?;
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
        let cancel = cancel_of(client).await;
        let response = until_cancelled(handler.do_query(client, &portal, max_rows), cancel).await?;
        match answer(client, response, &mut transaction).await? {
            Some(results) => {
                portal.start(results).await;
                true
            }
            None => false,
        }
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

/// Answers `query` for `handler` (its `on_query`): each statement's answer in turn,
/// then `ReadyForQuery`.
pub async fn query<H, C>(handler: &H, client: &mut C, query: Query) -> PgWireResult<()>
where
    H: SimpleQueryHandler + ?Sized,
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut transaction = begin(client)?;
    // Only semicolons and blanks: no statement, as PostgreSQL answers it.
    if blank(&query.query) {
        client
            .feed(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ))
            .await?;
    } else {
        // The limits of a statement, on the whole text before it is split (the
        // splitting tokenizes it: 16 MiB of `1+1+...` took 1.4 GiB).
        super::queries::check_text(&query.query)?;
        // One statement at a time, each answered before the next is planned: the
        // answers of a whole message held at once (each with its statement's threads)
        // grew with its statement count until the server ran out of files.
        for statement in crate::input::text::split_statements(&query.query) {
            if blank(statement) {
                continue;
            }
            let cancel = cancel_of(client).await;
            let responses = until_cancelled(handler.do_query(client, statement), cancel).await?;
            for response in responses {
                if let Some(results) = answer(client, response, &mut transaction).await? {
                    send_query_response(client, results, true).await?;
                }
            }
        }
    }
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction);
        send_ready_for_query(client, transaction).await?;
    }
    Ok(())
}

/// Text of semicolons and blanks only.
fn blank(text: &str) -> bool {
    text.chars().all(|c| c == ';' || c.is_whitespace())
}

/// A query's start, as pgwire starts one: refused unless the client is ready for
/// it; the transaction status it began in.
fn begin<C: ClientInfo>(
    client: &mut C,
) -> PgWireResult<pgwire::messages::response::TransactionStatus> {
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    let transaction = client.transaction_status();
    client.set_state(PgWireConnectionState::QueryInProgress);
    Ok(transaction)
}

/// What stops the statement when the client's cancel request arrives.
async fn cancel_of<C: ClientInfo>(client: &C) -> Option<futures::channel::oneshot::Receiver<()>> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    Some(handle.start_query().await)
}

/// `work`, or `QueryCanceled` if the cancel request comes first.
async fn until_cancelled<T>(
    work: impl std::future::Future<Output = PgWireResult<T>>,
    cancel: Option<futures::channel::oneshot::Receiver<()>>,
) -> PgWireResult<T> {
    let Some(cancel) = cancel else {
        return work.await;
    };
    match select(std::pin::pin!(work), cancel).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(PgWireError::QueryCanceled),
    }
}

/// Sends what a statement answered, as pgwire does, except rows, which it gives
/// back for the caller to send.
async fn answer<C>(
    client: &mut C,
    response: Response,
    transaction: &mut pgwire::messages::response::TransactionStatus,
) -> PgWireResult<Option<QueryResponse>>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match response {
        Response::Query(results) => return Ok(Some(results)),
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        Response::Execution(tag) => send_execution_response(client, tag).await?,
        Response::TransactionStart(tag) => {
            // `ROLLBACK TO SAVEPOINT` (tagged ROLLBACK) makes a failed transaction
            // usable again; pgwire's transition keeps it failed.
            let back_to_savepoint = tag == Tag::new("ROLLBACK");
            send_execution_response(client, tag).await?;
            *transaction = if back_to_savepoint {
                pgwire::messages::response::TransactionStatus::Transaction
            } else {
                transaction.to_in_transaction_state()
            };
        }
        Response::TransactionEnd(tag) => {
            // A ROLLBACK undoes the transaction's settings; a `SET LOCAL` ends
            // with it either way.
            let committed = tag == Tag::new("COMMIT");
            send_execution_response(client, tag).await?;
            *transaction = transaction.to_idle_state();
            client.portal_store().rm_portal(DEFAULT_NAME);
            super::settings::end_transaction(client.metadata_mut(), committed);
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
        Response::CopyOut(result) => send_copy_out(client, result).await?,
        Response::CopyBoth(result) => {
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            copy::send_copy_both_response(client, result).await?;
        }
    }
    Ok(None)
}

/// Sends a `COPY ... TO STDOUT`'s rows as pgwire does, but an error midway is
/// returned alone (the caller sends it as an `ErrorResponse`), without `CopyFail`.
async fn send_copy_out<C>(client: &mut C, copy: CopyResponse) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let formats = copy.column_formats();
    let CopyResponse {
        format,
        columns,
        mut data_stream,
        ..
    } = copy;
    let columns = i16::try_from(columns).unwrap_or(i16::MAX);
    client
        .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format, columns, formats,
        )))
        .await?;
    let mut rows = 0;
    while let Some(data) = data_stream.next().await {
        let data = data?;
        if !data.data.is_empty() {
            rows += 1;
            client.feed(PgWireBackendMessage::CopyData(data)).await?;
        }
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    let tag = Tag::new("COPY").with_rows(rows);
    Ok(client
        .send(PgWireBackendMessage::CommandComplete(tag.into()))
        .await?)
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
