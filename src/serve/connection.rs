//! One client's connection: pgwire's own message loop (`process_socket`), with the
//! length each message declares checked as soon as its header arrives. pgwire reads
//! a message of up to 1 GiB whole before any handler sees it, so without this a few
//! clients could hold gigabytes of the server's memory with statements the 16 MiB
//! limit then refuses.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use datafusion_postgres::pgwire;
use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The longest message a client may send: a statement of the 16 MiB limit
/// (`input::text::MAX_SQL_BYTES`) with room for its parameters.
pub const MAX_MESSAGE_BYTES: usize = crate::input::text::MAX_SQL_BYTES as usize + (1 << 20);

/// How long a client has to finish its startup (TLS, startup packet, password):
/// PostgreSQL gives 60 s, but a connection that has not logged in holds a place
/// among `--max-connections`, so idle ones must leave soon. Longer than the 10 s a
/// login waits its turn at most after failures (`auth::LONGEST_WAIT`).
const STARTUP: Duration = Duration::from_secs(15);

/// Said of a connection that has not logged in within [`STARTUP`].
fn not_started() -> String {
    format!(
        "did not log in within {} s: connection closed",
        STARTUP.as_secs()
    )
}

/// Said of a connection closed for a newcomer while every place was taken.
pub const MADE_ROOM: &str =
    "closed to make room for a new client (it had not logged in after 2 s, with every place taken)";

/// How long a connection may take to start before it can be closed to make room:
/// a client sends its startup packet as soon as it connects, so when every place
/// is taken, the connection that has been starting longest, if for longer than
/// this, is closed for the newcomer. Idle connections that never log in (500 of
/// them, or one client reconnecting) then cannot keep others out.
pub const STALE_STARTUP: Duration = Duration::from_secs(2);

/// The connections that have not logged in yet, oldest first, each with the signal
/// that closes it.
#[derive(Default)]
pub struct Starting {
    waiting: Mutex<VecDeque<(u64, Instant, Arc<Notify>)>>,
    next: AtomicU64,
}

/// A connection's entry among the [`Starting`] ones, left when dropped.
pub struct StartingTicket {
    starting: Arc<Starting>,
    id: u64,
    /// Notified when the connection is to be closed to make room.
    pub closed: Arc<Notify>,
}

impl Starting {
    /// Enters a new connection.
    pub fn enter(self: &Arc<Self>) -> StartingTicket {
        let id = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        let closed = Arc::new(Notify::new());
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.push_back((id, Instant::now(), closed.clone()));
        StartingTicket {
            starting: self.clone(),
            id,
            closed,
        }
    }

    /// Closes the connection that has been starting longest, if for longer than
    /// [`STALE_STARTUP`]; true if there was one.
    pub fn close_stalest(&self) -> bool {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match waiting.front() {
            Some((_, since, _)) if since.elapsed() >= STALE_STARTUP => {}
            _ => return false,
        }
        let Some((_, _, closed)) = waiting.pop_front() else {
            return false;
        };
        // A permit is kept if the connection is not waiting on it yet.
        closed.notify_one();
        true
    }
}

impl Drop for StartingTicket {
    fn drop(&mut self) {
        let mut waiting = self
            .starting
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        waiting.retain(|(id, _, _)| *id != self.id);
    }
}

/// The most connections one address may have logging in at once behind a password:
/// idle or guessing connections from one address cannot take every place.
pub const LOGGING_IN_PER_ADDRESS: usize = 8;

/// A connection that has not logged in yet, counted against its address until it
/// has (or leaves).
pub struct LoggingIn(Option<(Arc<LoginCounts>, IpAddr)>);

/// The connections logging in, by address.
pub type LoginCounts = Mutex<HashMap<IpAddr, usize>>;

impl LoggingIn {
    /// A place among the logins of `address`, if it has fewer than
    /// [`LOGGING_IN_PER_ADDRESS`].
    pub fn open(counts: &Arc<LoginCounts>, address: IpAddr) -> Option<LoggingIn> {
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(address).or_insert(0);
        if *n >= LOGGING_IN_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(LoggingIn(Some((counts.clone(), address))))
    }

    /// A login not counted (no password: nothing to guess).
    pub fn unlimited() -> LoggingIn {
        LoggingIn(None)
    }
}

impl Drop for LoggingIn {
    fn drop(&mut self) {
        if let Some((counts, address)) = self.0.take() {
            let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&address) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&address);
                }
            }
        }
    }
}

/// Serves one client until it leaves, breaks the protocol or sends a message over
/// [`MAX_MESSAGE_BYTES`] (answered with an error, logged, and the connection closed:
/// the rest of that message cannot be told from the next one).
pub async fn serve<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
    peer: SocketAddr,
    login: LoggingIn,
    ticket: StartingTicket,
) -> std::io::Result<()> {
    let closed = ticket.closed.clone();
    let hang_up = HangUp::watch(&socket);
    let mut starting_up = Some((login, ticket));
    let startup = tokio::time::sleep(STARTUP);
    tokio::pin!(startup);
    let negotiated = tokio::select! {
        _ = &mut startup => {
            say!("cxr serve: {peer}: {}", not_started());
            return Ok(());
        }
        _ = closed.notified() => {
            say!("cxr serve: {peer}: {MADE_ROOM}");
            return Ok(());
        }
        socket = negotiate_tls(socket, tls) => match socket {
            Ok(socket) => socket,
            Err(e) => {
                say!("cxr serve: {peer}: TLS handshake failed ({e}): connection closed");
                return Err(e);
            }
        },
    };
    let Some(mut socket) = negotiated else {
        return Ok(());
    };
    let startup_handler = handlers.startup_handler();
    let simple_query_handler = handlers.simple_query_handler();
    let extended_query_handler = handlers.extended_query_handler();
    let copy_handler = handlers.copy_handler();
    let cancel_handler = handlers.cancel_handler();
    let error_handler = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        if !starting {
            // Logged in: no longer counted against the address's logins, nor
            // closed to make room.
            starting_up.take();
        }
        let next = async {
            std::future::poll_fn(|cx| {
                let polled = socket.poll_next_unpin(cx);
                if polled.is_pending() {
                    // What has arrived of the next message: refuse it by its header.
                    let typed = !matches!(socket.state(), PgWireConnectionState::AwaitingStartup);
                    if let Some(length) = declared_length(socket.read_buffer(), typed)
                        && length > MAX_MESSAGE_BYTES
                    {
                        return Poll::Ready(Some(Err(PgWireError::MessageTooLarge(
                            MAX_MESSAGE_BYTES,
                            length,
                        ))));
                    }
                }
                polled
            })
            .await
        };
        let message = if starting {
            tokio::select! {
                _ = &mut startup => {
                    say!("cxr serve: {peer}: {}", not_started());
                    None
                }
                _ = closed.notified() => {
                    say!("cxr serve: {peer}: {MADE_ROOM}");
                    None
                }
                message = next => message,
            }
        } else {
            next.await
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(PgWireError::MessageTooLarge(limit, length))) => {
                let text = format!(
                    "a message of {length} bytes refused: the limit is {}; connection closed",
                    bytes(limit)
                );
                say!("cxr serve: {peer}: {text}");
                // 54000 program_limit_exceeded, as PostgreSQL says of a statement
                // too long.
                let info = ErrorInfo::new("FATAL".into(), "54000".into(), text);
                end_with(&mut socket, info).await;
                return Ok(());
            }
            Some(Err(error)) => {
                // A message pgwire could not read: the connection ends (the rest
                // of the stream cannot be told apart), said in the log.
                say!("cxr serve: {peer}: connection closed: {error}");
                return Ok(());
            }
            None => return Ok(()),
        };
        // A Terminate: the client leaves (some wait for the server to close first).
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let processed = process_message(
            message,
            &mut socket,
            startup_handler.clone(),
            simple_query_handler.clone(),
            extended_query_handler.clone(),
            copy_handler.clone(),
            cancel_handler.clone(),
        );
        // Watched once logged in: a cancel request's connection closes as soon as
        // it has sent it, and must still be heard.
        let processed = match hang_up.as_ref().filter(|_| !starting) {
            Some(hang_up) => tokio::select! {
                biased;
                processed = processed => processed,
                () = hang_up.heard() => {
                    say!("cxr serve: {peer}: the client left while its statement ran: stopped");
                    return Ok(());
                }
            },
            None => processed.await,
        };
        if let Err(mut error) = processed {
            error_handler.on_error(&socket, &mut error);
            let info = ErrorInfo::from(error);
            if info.is_fatal() {
                end_with(&mut socket, info).await;
                return Ok(());
            }
            process_error(
                &mut socket,
                PgWireError::UserError(Box::new(info)),
                extended,
            )
            .await?;
        }
    }
}

/// A second handle on a client's socket that tells when the client has closed its
/// end while the server works on a message: the message's statement is then dropped
/// (as a cancel request drops it) instead of computing to its time limit for nobody.
/// A client killed mid-statement, or one that sends a statement and leaves, would
/// otherwise keep a core busy after its place among `--max-connections` is free.
struct HangUp(TcpStream);

impl HangUp {
    /// A duplicate of `socket`'s descriptor, registered with the runtime on its own;
    /// None if the system refuses one (the connection is then served unwatched).
    fn watch(socket: &TcpStream) -> Option<HangUp> {
        use std::os::fd::AsFd;
        let duplicate = socket.as_fd().try_clone_to_owned().ok()?;
        let stream = std::net::TcpStream::from(duplicate);
        TcpStream::from_std(stream).ok().map(HangUp)
    }

    /// Resolves when the client has closed the connection (end of stream or reset).
    /// Bytes waiting to be read say nothing of that (a pipelined message): the
    /// watch then waits no longer for this message, and the statement runs on.
    async fn heard(&self) {
        let mut byte = [0u8; 1];
        loop {
            match self.0.peek(&mut byte).await {
                Ok(0) => return,
                Ok(_) => return std::future::pending().await,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }
}

/// Sends a fatal error and closes the connection: the error is the last message, as
/// PostgreSQL ends a connection (pgwire's `process_error` sends a ReadyForQuery
/// after it).
async fn end_with<S>(socket: &mut S, info: ErrorInfo)
where
    S: futures::Sink<PgWireBackendMessage> + Unpin,
{
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
    let _ = socket.close().await;
}

/// The length the next message in `buffer` declares, once its header is in: a
/// startup packet's four length bytes, or a `typed` message's type byte and four
/// length bytes.
fn declared_length(buffer: &[u8], typed: bool) -> Option<usize> {
    let at = usize::from(typed);
    let bytes: [u8; 4] = buffer.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) as usize)
}

/// A size in bytes as a person reads it (`17 MiB`, `10000 bytes`).
fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::declared_length;

    #[test]
    fn lengths_are_read_from_the_header_of_each_kind_of_message() {
        let query = [b'Q', 0x40, 0, 0, 0, b'S'];
        assert_eq!(declared_length(&query, true), Some(1 << 30));
        assert_eq!(declared_length(&query[..4], true), None);
        let startup = [0, 0, 0, 8, 0, 3, 0, 0];
        assert_eq!(declared_length(&startup, false), Some(8));
    }
}
