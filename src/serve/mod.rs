//! `cxr serve`: the warehouse over the PostgreSQL wire protocol.
//!
//! pgwire speaks the protocol, datafusion-postgres adds the `pg_catalog` that psql,
//! JDBC and SQLAlchemy ask for and answers session statements (`SET`, `BEGIN`);
//! cxr decides who connects ([`auth`]), what a statement may do and which version
//! of the warehouse it reads ([`queries`]), how much memory it takes ([`memory`]),
//! and offers the saved queries as table functions ([`saved`]).

mod auth;
mod cancel;
mod catalog;
mod cohorts;
mod connection;
mod copy;
mod cursors;
mod execute;
mod http;
mod memory;
mod prepared;
mod queries;
mod rewrite;
mod saved;
mod settings;
mod text;
mod threads;
mod transactions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::PgWireError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, IoContext, Result};
pub use auth::Account;
pub use queries::Limits;
use queries::{Answer, Handler, Served};

/// What `cxr serve` was asked for.
pub struct Options {
    /// The warehouse directory.
    pub warehouse: PathBuf,
    /// The address to listen on for PostgreSQL clients (none: the page only).
    pub listen: Option<SocketAddr>,
    /// The address to serve the cohort builder's page on.
    pub http: Option<SocketAddr>,
    /// The one account, when a password is set.
    pub account: Option<Account>,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Per-statement limits.
    pub limits: Limits,
    /// Memory all statements together may hold.
    pub server_memory: usize,
    /// Memory for the smallest tables, read once per version.
    pub in_memory: usize,
    /// The user name clients log in with.
    pub user: String,
}

/// Serves until SIGINT or SIGTERM, then lets running statements finish (within the
/// statement time limit) and returns.
pub async fn serve(options: Options) -> Result<()> {
    if let Some(listen) = options.listen
        && !listen.ip().is_loopback()
        && options.account.is_none()
    {
        return Err(Error::Usage(format!(
            "--listen {listen}: not a loopback address, so a password is required: set CXR_SERVE_PASSWORD or --password-file"
        )));
    }
    if let Some(http) = options.http
        && !http.ip().is_loopback()
    {
        return Err(Error::Usage(format!(
            "--http {http}: the page has no login, so it is served on loopback only (reach it from elsewhere through an SSH tunnel)"
        )));
    }
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| tls_acceptor(cert, key))
        .transpose()?;
    let served = Arc::new(
        Served::open(
            options.warehouse.clone(),
            options.limits.clone(),
            options.server_memory,
            options.in_memory,
            options.user.clone(),
        )
        .await?,
    );
    let postgres = options.listen.map(bind).transpose()?;
    let page = options.http.map(bind).transpose()?;
    if let Some((_, address)) = &postgres {
        say!(
            "cxr serve: listening on {address}{} for the warehouse {}; connect with: psql -h {} -p {} -U cxr",
            if tls.is_some() { " (TLS)" } else { "" },
            options.warehouse.display(),
            address.ip(),
            address.port()
        );
    }
    if let Some((_, address)) = &page {
        say!("cxr serve: the cohort builder is at http://{address}/");
    }
    // Connections, the protocol and timers run on a runtime of their own, so that a
    // cancel request, a new client or a time limit is handled while statements keep
    // every core busy.
    let protocol = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cxr-serve-protocol")
        .thread_stack_size(crate::input::text::STACK_BYTES)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the server's runtime", e))?;
    // An idle server lets go of a version a commit replaced: without a statement to
    // notice the commit, it held the old version's files on disk until its next one.
    let watching = served.clone();
    let watcher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(VERSION_CHECK).await;
            watching.follow_commits().await;
        }
    });
    let max = options.max_connections;
    settings::set_max_connections(max);
    let account = options.account.map(Arc::new);
    let answering = served.clone();
    let serving = protocol.spawn(async move {
        let stop = stop_signals()?;
        let page_served = page.map(|(listener, address)| {
            let mut stop = stop.clone();
            let page = Arc::new(answering.page(address));
            tokio::spawn(http::serve_page(listener, page, max, async move {
                let _ = stop.changed().await;
            }))
        });
        if let Some((listener, _)) = postgres {
            let listener =
                TcpListener::from_std(listener).map_err(|e| Error::io("cannot listen", e))?;
            let server = Arc::new(Server::new(answering, account));
            accept(listener, server, tls, max, stop).await;
        }
        if let Some(page_served) = page_served {
            page_served
                .await
                .map_err(|e| Error::Internal(format!("the page's server failed: {e}")))??;
        }
        Ok::<(), Error>(())
    });
    let served_result = serving
        .await
        .map_err(|e| Error::Internal(format!("the server's accept loop failed: {e}")));
    drain(&served.running, options.limits.query_time).await;
    watcher.abort();
    protocol.shutdown_background();
    served_result?
}

/// How often an idle server looks for a commit (a read of `manifest.json`).
const VERSION_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// A listener on `address`, and the address it got (the port, when 0 was asked).
fn bind(address: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr)> {
    // An address in use or not on this machine is the user's to change (exit 2).
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        crate::Error::Usage(format!(
            "cannot listen on {address}: {}{}",
            e,
            if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another program listens there: give another port)"
            } else {
                ""
            }
        ))
    })?;
    listener
        .set_nonblocking(true)
        .ctx(|| format!("cannot listen on {address}"))?;
    let bound = listener
        .local_addr()
        .ctx(|| "cannot read the listening address".to_string())?;
    Ok((listener, bound))
}

/// Accepts connections until a stop signal, each served in a task of its own.
async fn accept(
    listener: TcpListener,
    server: Arc<Server>,
    tls: Option<datafusion_postgres::pgwire::tokio::TlsAcceptor>,
    max: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let places = Arc::new(Places::new(max));
    let starting = Arc::new(connection::Starting::default());
    let logging_in = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let with_password = server.account.is_some();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                // Behind a password, one address holds only a few of the places
                // with connections that have not logged in yet.
                let login = if with_password {
                    connection::LoggingIn::open(&logging_in, peer.ip())
                } else {
                    Some(connection::LoggingIn::unlimited())
                };
                let server = server.clone();
                let tls = tls.clone();
                let places = places.clone();
                let starting = starting.clone();
                tokio::spawn(async move {
                    let connection = places.take_or_make_room(&starting).await;
                    match (connection, login) {
                        (Some(_connection), Some(login)) => {
                            let ticket = starting.enter();
                            let asked = if tls.is_some() {
                                tokio::select! {
                                    _ = ticket.closed.notified() => {
                                        say!("cxr serve: {peer}: {}", connection::MADE_ROOM);
                                        return;
                                    }
                                    asked = asks_for_tls(&socket) => asked,
                                }
                            } else {
                                true
                            };
                            if !asked {
                                // A password or a query in plain text could be read
                                // on the way.
                                let why = "the client did not ask for TLS";
                                let said = "this server requires TLS (sslmode=require)";
                                refuse(socket, peer, why, "28000", said).await;
                                return;
                            }
                            let _ = connection::serve(socket, tls, server, peer, login, ticket).await;
                        }
                        (None, _) => {
                            // A cancel request comes on a connection of its own and
                            // leaves at once: taken when every place is, as
                            // PostgreSQL takes it, or a full server could not stop
                            // the statements that fill it.
                            if let Some(request) = cancel_request(&socket).await {
                                use datafusion_postgres::pgwire::api::cancel::CancelHandler;
                                server.cancel_handler().on_cancel_request(request).await;
                                return;
                            }
                            let why = format!("too many connections (--max-connections {max})");
                            let said = format!("sorry, too many clients already ({max} connections)");
                            refuse(socket, peer, &why, "53300", &said).await;
                        }
                        (Some(_), None) => {
                            let n = connection::LOGGING_IN_PER_ADDRESS;
                            let why = format!("{n} connections from this address are logging in already");
                            let said = format!("too many connections from this address logging in at once ({n})");
                            refuse(socket, peer, &why, "53300", &said).await;
                        }
                    }
                });
            }
        }
    }
}

/// Waits for running statements to end, at most `limit`.
async fn drain(running: &AtomicUsize, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let n = running.load(Ordering::SeqCst);
    say!("cxr serve: stopping; {n} running statement(s) may finish");
    while running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGINT and SIGTERM, as one stop request every listener sees.
fn stop_signals() -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (send, receive) = tokio::sync::watch::channel(false);
    let send = Arc::new(send);
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut stream = signal(kind).map_err(|e| Error::io("cannot handle signals", e))?;
        let send = send.clone();
        tokio::spawn(async move {
            stream.recv().await;
            let _ = send.send(true);
        });
    }
    Ok(receive)
}

/// The places for connections served at once.
struct Places {
    taken: AtomicUsize,
    max: usize,
    freed: tokio::sync::Notify,
}

/// One of the connections served at once; its place is freed when dropped.
struct Connection(Arc<Places>);

impl Places {
    fn new(max: usize) -> Places {
        Places {
            taken: AtomicUsize::new(0),
            max,
            freed: tokio::sync::Notify::new(),
        }
    }

    /// A place, if one is free.
    fn take(self: &Arc<Self>) -> Option<Connection> {
        let taken = self.taken.fetch_add(1, Ordering::SeqCst);
        if taken >= self.max {
            self.taken.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Connection(self.clone()))
    }

    /// A place, if one is free or a connection that has not logged in for
    /// [`connection::STALE_STARTUP`] can be closed to free one.
    async fn take_or_make_room(
        self: &Arc<Self>,
        starting: &connection::Starting,
    ) -> Option<Connection> {
        if let Some(place) = self.take() {
            return Some(place);
        }
        if !starting.close_stalest() {
            return None;
        }
        // The closed connection's task ends at once; its place is this one's.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let freed = self.freed.notified();
            if let Some(place) = self.take() {
                return Some(place);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.take();
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::SeqCst);
        self.0.freed.notify_waiters();
    }
}

/// Tells a client why it is refused, as PostgreSQL does (`FATAL code` in answer to
/// its startup packet: 53300 too_many_connections, 28000 for a client without TLS),
/// logs `why`, and closes. At most 5 s and 10 kB are spent on it.
async fn refuse(mut socket: TcpStream, peer: SocketAddr, why: &str, code: &str, said: &str) {
    say!("cxr serve: {peer}: refused: {why}");
    let answer = async {
        skip_startup(&mut socket).await?;
        socket.write_all(&error_packet(code, said)).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
}

/// Whether a new connection starts with PostgreSQL's SSLRequest (or a direct TLS
/// handshake), looked at without reading it; at most 10 s are waited for it.
async fn asks_for_tls(socket: &TcpStream) -> bool {
    let mut head = [0u8; 8];
    let enough = |seen: &[u8]| seen.len() >= 8 || seen.first() == Some(&0x16);
    if peek_until(socket, &mut head, Duration::from_secs(10), enough)
        .await
        .is_none()
    {
        return false;
    }
    const SSL_REQUEST: u32 = 80877103;
    // 0x16: a TLS handshake record (direct TLS, PostgreSQL 17 clients).
    head[0] == 0x16 || u32::from_be_bytes([head[4], head[5], head[6], head[7]]) == SSL_REQUEST
}

/// The cancel request a new connection opens with, if it does (read within 5 s);
/// anything else is left unread.
async fn cancel_request(
    socket: &TcpStream,
) -> Option<datafusion_postgres::pgwire::messages::cancel::CancelRequest> {
    use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
    use datafusion_postgres::pgwire::messages::startup::SecretKey;
    const CANCEL_REQUEST: u32 = 80877102;
    // Length, code, process id and a key of 4 bytes (protocol 3.0; 3.2's longer
    // keys up to 256 bytes).
    let mut head = [0u8; 16 + 252];
    let most = head.len();
    // The declared length of a cancel request; None for any other packet.
    let length = |seen: &[u8]| -> Option<usize> {
        let length = u32::from_be_bytes(seen.get(..4)?.try_into().ok()?) as usize;
        let code = u32::from_be_bytes(seen.get(4..8)?.try_into().ok()?);
        (code == CANCEL_REQUEST && (16..=most).contains(&length)).then_some(length)
    };
    // Enough seen: the whole request, or a header that is not one.
    let enough =
        |seen: &[u8]| seen.len() >= 8 && length(seen).is_none_or(|length| seen.len() >= length);
    let seen = peek_until(socket, &mut head, Duration::from_secs(5), enough).await?;
    let length = length(&head[..seen])?;
    let pid = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    let key = &head[12..length];
    let secret_key = match <[u8; 4]>::try_from(key) {
        Ok(four) => SecretKey::I32(i32::from_be_bytes(four)),
        Err(_) => SecretKey::Bytes(key.to_vec().into()),
    };
    Some(CancelRequest::new(pid, secret_key))
}

/// Peeks at what a new connection has sent, without reading it, until `enough` of it
/// is in `buffer` (at most `wait`): how much, or None when the client closed first
/// or the time ran out.
async fn peek_until(
    socket: &TcpStream,
    buffer: &mut [u8],
    wait: Duration,
    enough: impl Fn(&[u8]) -> bool,
) -> Option<usize> {
    let peeked = tokio::time::timeout(wait, async {
        loop {
            match socket.peek(buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(n) if enough(&buffer[..n]) => return Some(n),
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    peeked.ok().flatten()
}

/// Reads a client's startup packet, answering "no" to a TLS or GSS request first.
async fn skip_startup(socket: &mut TcpStream) -> std::io::Result<()> {
    const SSL_REQUEST: u32 = 80877103;
    const GSS_REQUEST: u32 = 80877104;
    let mut head = [0u8; 8];
    socket.read_exact(&mut head).await?;
    let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if code == SSL_REQUEST || code == GSS_REQUEST {
        socket.write_all(b"N").await?;
        socket.read_exact(&mut head).await?;
    }
    let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut rest = vec![0u8; length.clamp(8, 10_000) - 8];
    socket.read_exact(&mut rest).await.map(|_| ())
}

/// A FATAL `ErrorResponse` message.
fn error_packet(code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut packet = vec![b'E'];
    packet.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
    packet.extend_from_slice(&fields);
    packet
}

/// TLS from a PEM certificate chain and key.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<datafusion_postgres::pgwire::tokio::TlsAcceptor> {
    use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (path, flag) in [(cert, "--tls-cert"), (key, "--tls-key")] {
        if !path.is_file() {
            return Err(Error::input(path, format!("{flag}: no such file")));
        }
    }
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::input(cert, format!("not a PEM certificate: {e}")))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::input(key, format!("not a PEM private key: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| Error::input(cert, format!("cannot be used with the key: {e}")))?;
    Ok(datafusion_postgres::pgwire::tokio::TlsAcceptor::from(
        Arc::new(config),
    ))
}

/// The protocol handlers of every connection.
struct Server {
    handler: Arc<Handler>,
    account: Option<Arc<Account>>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<cancel::Cancels>,
}

impl Server {
    fn new(served: Arc<Served>, account: Option<Arc<Account>>) -> Server {
        // datafusion-postgres's own hooks answer session statements; its context is
        // unused by them for anything a client reads (cxr's hook answers the rest).
        let hooks: Vec<Arc<dyn datafusion_postgres::QueryHook>> = vec![
            Arc::new(settings::Settings),
            Arc::new(SetShowHook),
            Arc::new(transactions::Transactions),
            Arc::new(cursors::Cursors(served.clone())),
            Arc::new(prepared::Prepared(served.clone())),
            Arc::new(Answer(served.clone())),
        ];
        let cancels = served.cancels.clone();
        let handler = Handler::new(Arc::new(SessionContext::new()), hooks, served);
        Server {
            handler: Arc::new(handler),
            account,
            connections: cancels.manager(),
            cancel: cancels,
        }
    }
}

impl PgWireServerHandlers for Server {
    fn simple_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::auth::StartupHandler> {
        Arc::new(auth::Startup::new(
            self.account.as_ref(),
            self.connections.clone(),
        ))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Log {
            account: self.account.clone(),
        })
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// A client's text as one line of the log: quoted, control characters escaped
/// (a user name holding a line break forged a second log line), at most 64
/// characters.
fn loggable(text: &str) -> String {
    let shown: String = text.chars().take(64).collect();
    let more = if shown.len() < text.len() { "…" } else { "" };
    format!("{:?}{more}", shown)
}

/// Logs every error sent to a client, and counts failed logins.
struct Log {
    account: Option<Arc<Account>>,
}

impl ErrorHandler for Log {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let peer = client.socket_addr();
        if auth::is_failed_login(error)
            && let Some(account) = &self.account
        {
            let n = account.failed(peer.ip());
            // PostgreSQL names the user of the startup message: SCRAM's own user
            // name is empty from libpq, and pgwire named that one.
            let user = client.metadata().get("user").cloned().unwrap_or_default();
            say!(
                "cxr serve: {peer}: failed login for user {} ({n} from this address)",
                loggable(&user)
            );
            *error = PgWireError::InvalidPassword(user);
            return;
        }
        // datafusion-postgres parses a simple query itself and sends a parse error as
        // an internal error (XX000); PostgreSQL's clients expect syntax_error.
        if let PgWireError::ApiError(e) = error
            && e.to_string().starts_with("sql parser error")
        {
            *error = PgWireError::UserError(Box::new(
                datafusion_postgres::pgwire::error::ErrorInfo::new(
                    "ERROR".into(),
                    "42601".into(),
                    e.to_string(),
                ),
            ));
        }
        let text = match error {
            PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
            other => other.to_string(),
        };
        let first_line = text.lines().next().unwrap_or_default();
        say!("cxr serve: {peer}: {first_line}");
    }
}
