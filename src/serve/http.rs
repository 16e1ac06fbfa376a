//! `cxr serve --http`: the cohort builder — one page, its script and style, and the
//! read-only JSON API the page uses (documented in README). The answers come from
//! [`super::cohorts`]; this module is the HTTP around them: routes, limits, errors.
//!
//! Limits are the PostgreSQL side's: each request computes on a statement runtime
//! of its own when its turn comes ([`super::threads`]), within the statement time
//! limit and memory. The page has no login, so it is served on loopback only, and a
//! request whose `Host` is not the server's own is refused: a web site visited in
//! the same browser cannot read the warehouse by pointing a name at 127.0.0.1.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::cohorts::{Answers, PageCohort};
use super::threads::Runtimes;
use crate::error::{Error, Result};
use crate::sql::Interrupt;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// The page's server: where answers come from and the limits they are computed in.
pub struct Page {
    pub answers: Answers,
    pub runtimes: Arc<Runtimes>,
    pub query_time: Duration,
    /// The address the page is served on (for the `Host` check).
    pub address: SocketAddr,
}

/// How long a client has to send a request's headers, from the moment its
/// connection opens or its previous answer is sent; a connection that sends nothing
/// is closed then, so idle clients cannot hold the page's connection slots.
const HEADER_TIME: Duration = Duration::from_secs(10);

/// How long an answer may wait for a client that does not read it.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Serves the page on `listener` until `stop` completes, holding at most
/// `max_connections` connections (more wait in the kernel's queue), then lets the
/// requests being answered finish.
pub async fn serve_page(
    listener: std::net::TcpListener,
    page: Arc<Page>,
    max_connections: usize,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::io("cannot listen for the page", e))?;
    let slots = Arc::new(Semaphore::new(max_connections));
    let open = Arc::new(Open::default());
    // At a stop, the requests being answered get their statement's time and a
    // stalled client's grace; then the server stops without them.
    let drain_limit = page.query_time + WRITE_STALL;
    let app = router(page);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = accept(&listener, &slots, &open) => accepted,
        };
        let Some((stream, slot)) = accepted else {
            continue;
        };
        let activity = open.add();
        let service = Tracked {
            inner: hyper_util::service::TowerToHyperService::new(app.clone()),
            activity: activity.clone(),
        };
        let stream = Held::new(stream, activity.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIME)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                // Closed to make room for a new client (see `Open::close_idlest`).
                _ = activity.closed.notified() => {}
            }
            drop(slot);
        });
    }
    // New connections are refused at once rather than left in the kernel's queue.
    drop(listener);
    let _ = tokio::time::timeout(drain_limit, connections.shutdown()).await;
    Ok(())
}

/// The next connection once a slot is free, or None when accepting failed: a
/// connection reset before it was taken (tried again at once), or the process out
/// of file descriptors (said, and tried again after a second). While every slot is
/// taken, the connection idle longest is closed for the next client once it has
/// been idle for [`IDLE_BEFORE_CLOSED`].
async fn accept(
    listener: &tokio::net::TcpListener,
    slots: &Arc<Semaphore>,
    open: &Open,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let slot = loop {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            break slot;
        }
        open.close_idlest();
        let waited =
            tokio::time::timeout(Duration::from_millis(250), slots.clone().acquire_owned()).await;
        if let Ok(slot) = waited {
            break slot.ok()?;
        }
    };
    match listener.accept().await {
        Ok((stream, _)) => Some((stream, slot)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            say!("cxr serve: the page cannot take a connection: {e}; trying again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
        Err(_) => None,
    }
}

/// The routes: the page's three files and the API.
fn router(page: Arc<Page>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
        // Browsers ask for an icon; there is none.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/options", get(options))
        .route("/api/cohort", get(cohort))
        .route("/api/patient", get(patient))
        .route("/api/manifest.parquet", get(manifest_parquet))
        .route("/api/manifest.csv", get(manifest_csv))
        .route("/api/cohort.sql", get(saved_query))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page").into_response() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "the page's API is read-only: GET only",
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(page.clone(), checked))
        .with_state(page)
}

/// One of the page's files, never framed by another site and never run as another type.
fn file(text: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Refuses a request addressed to another host (DNS rebinding), and marks every
/// answer as the page's own.
async fn checked(State(page): State<Arc<Page>>, request: Request, next: Next) -> Response {
    // One Host, naming this server, and no other authority in an absolute target
    // (`GET http://evil.com/api/options`): as RFC 9112 asks, two Host headers are
    // refused, whatever the first says.
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = hosts
        .next()
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let target_elsewhere = request
        .uri()
        .authority()
        .is_some_and(|a| !is_own_host(a.as_str(), page.address));
    if hosts.next().is_some() || target_elsewhere || !is_own_host(host, page.address) {
        log_refusal(
            request.method(),
            request.uri().path(),
            StatusCode::MISDIRECTED_REQUEST,
        );
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server answers requests to {} or localhost only",
                page.address
            ),
        )
        .into_response();
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let mut response = next.run(request).await;
    log_refusal(&method, &path, response.status());
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An answer that refuses or fails, logged on stderr as every refusal is (the path
/// cut: a client chooses it).
fn log_refusal(method: &axum::http::Method, path: &str, status: StatusCode) {
    if status.is_client_error() || status.is_server_error() {
        let path: String = path.chars().take(120).collect();
        say!("cxr serve: page: {method} {path}: {status}");
    }
}

/// `Host` names this server: its address, or localhost, with its port.
fn is_own_host(host: &str, address: SocketAddr) -> bool {
    let host = host.to_ascii_lowercase();
    let Some((name, given_port)) = host.rsplit_once(':') else {
        return false;
    };
    given_port == address.port().to_string()
        && (name == "localhost"
            || name == address.ip().to_string()
            || name == format!("[{}]", address.ip()))
}

impl Page {
    /// Runs `work` on a statement runtime, within the time limit; its statements stop
    /// when the limit passes or the client goes away (the future is dropped).
    async fn compute<T, F, W>(&self, work: W) -> std::result::Result<T, ApiError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
        W: FnOnce(Interrupt) -> F,
    {
        let deadline = tokio::time::Instant::now() + self.query_time;
        let interrupt = Interrupt::at(deadline.into_std());
        let computing = work(interrupt.clone());
        let waited =
            tokio::time::timeout_at(deadline, async { self.runtimes.compute(computing).await? })
                .await;
        interrupt.fire();
        match waited {
            Err(_) => Err(self.timed_out()),
            // The plan's own check of the deadline stopped it (an error of the query).
            Ok(Err(_)) if tokio::time::Instant::now() >= deadline => Err(self.timed_out()),
            Ok(result) => result.map_err(ApiError::from),
        }
    }

    fn timed_out(&self) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request ran past the time limit of {} s",
                self.query_time.as_secs_f64()
            ),
        )
    }
}

/// The request's parameters as `name=value` pairs (repeatable names kept).
type Pairs = Query<Vec<(String, String)>>;

/// Answered without waiting for a turn: a few rows of the small `datasets` table,
/// which the page needs before anything else (it waited 53 s behind 30 cohorts).
async fn options(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    // As every endpoint: a parameter it does not take is said, not ignored.
    if let Some((name, _)) = pairs.first() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown parameter `{name}`; the options take no parameter"),
        )
        .into_response();
    }
    let interrupt = Interrupt::at(std::time::Instant::now() + page.query_time);
    let answer = tokio::time::timeout(page.query_time, page.answers.options(&interrupt)).await;
    match answer {
        Ok(answer) => json_answer(answer.map_err(ApiError::from)),
        Err(_) => page.timed_out().into_response(),
    }
}

async fn cohort(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    let cohort = match PageCohort::parse(&pairs) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let p = page.clone();
    json_answer(
        page.compute(move |i| async move { p.answers.cohort(cohort, &i).await })
            .await,
    )
}

async fn patient(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    let (dataset, patient) = match one_patient(&pairs) {
        Ok(found) => found,
        Err(message) => return ApiError::new(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let p = page.clone();
    let (asked_dataset, asked_patient) = (dataset.clone(), patient.clone());
    let answer = page
        .compute(move |i| async move { p.answers.patient(&dataset, &patient, &i).await })
        .await;
    // A patient with no image is not found, as `cxr followup --patient` says.
    let none = answer.as_ref().is_ok_and(|v| {
        v.get("images")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    });
    if none {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("patient {asked_patient} has no images in {asked_dataset}"),
        )
        .into_response();
    }
    json_answer(answer)
}

/// The `dataset` and `patient` of a timeline request: each once, one dataset, nothing else.
fn one_patient(pairs: &[(String, String)]) -> std::result::Result<(String, String), String> {
    if let Some((name, _)) = pairs.iter().find(|(n, _)| n != "dataset" && n != "patient") {
        return Err(format!(
            "unknown parameter `{name}`; a timeline takes `dataset` and `patient`"
        ));
    }
    let value = |name: &str| {
        let given: Vec<&String> = pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        match given.as_slice() {
            [one] if !one.is_empty() => Ok((*one).clone()),
            [] | [_] => Err("a patient's timeline needs `dataset` and `patient`".to_string()),
            _ => Err(format!("`{name}` is given more than once")),
        }
    };
    let (dataset, patient) = (
        crate::datasets::dataset_name(&value("dataset")?),
        value("patient")?,
    );
    if dataset.contains(',') {
        return Err(format!(
            "dataset `{dataset}`: a patient belongs to one dataset; name one"
        ));
    }
    Ok((dataset, patient))
}

async fn manifest_parquet(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    manifest(page, pairs, false).await
}

async fn manifest_csv(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    manifest(page, pairs, true).await
}

async fn manifest(page: Arc<Page>, pairs: Vec<(String, String)>, csv: bool) -> Response {
    let cohort = match PageCohort::parse(&pairs) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let p = page.clone();
    let file = page
        .compute(move |i| async move { p.answers.manifest(cohort, csv, &i).await })
        .await;
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "manifest.csv")
    } else {
        ("application/vnd.apache.parquet", "manifest.parquet")
    };
    match file {
        Ok(file) => {
            let length = file.metadata().ok().map(|m| m.len());
            let mut answer = download(file_body(file), content_type, name);
            if let Some(length) = length {
                answer
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            answer
        }
        Err(e) => e.into_response(),
    }
}

/// A file's bytes, read a piece at a time as the client takes them: a manifest of
/// any size is sent from disk, never held in memory whole.
fn file_body(file: std::fs::File) -> Body {
    const PIECE: usize = 256 * 1024;
    let pieces = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut piece = vec![0u8; PIECE];
            let n = io::Read::read(&mut file, &mut piece)?;
            piece.truncate(n);
            Ok::<_, io::Error>((piece, file))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match read {
            Ok((piece, _)) if piece.is_empty() => None,
            Ok((piece, file)) => Some((Ok(Bytes::from(piece)), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(pieces)
}

async fn saved_query(State(page): State<Arc<Page>>, Query(pairs): Pairs) -> Response {
    let cohort = match PageCohort::parse(&pairs) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let p = page.clone();
    let text = page
        .compute(move |i| async move { p.answers.saved_query(cohort, &i).await })
        .await;
    match text {
        Ok(text) => download(Body::from(text), "text/plain; charset=utf-8", "cohort.sql"),
        Err(e) => e.into_response(),
    }
}

fn json_answer(answer: std::result::Result<Value, ApiError>) -> Response {
    match answer {
        Ok(value) => axum::Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

/// An attachment named `name`.
fn download(body: Body, content_type: &'static str, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// An answer that is an error: its status and message, as `{"error": "..."}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    /// What the command line exits 2 for (a bad flag, a query the data refuses) is
    /// the request's fault; the rest is the server's.
    fn from(error: Error) -> ApiError {
        let busy = matches!(&error, Error::DataFusion(e) if crate::error::out_of_memory(e));
        let status = if busy {
            // Memory taken by this request or by others at once: the server's
            // limit, not a mistake in the request.
            StatusCode::SERVICE_UNAVAILABLE
        } else if error.exit_code() == 2 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let message = if busy {
            "not enough memory for this request now: it needs more than its share \
             (cxr serve --query-memory), or the requests running meanwhile hold the \
             server's (--server-memory); try again, or narrow the cohort"
                .to_string()
        } else {
            crate::error::without_os_error_numbers(&error.to_string())
        };
        ApiError::new(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// How long a connection must have been idle (no request being answered, nothing
/// sent or received) before it may be closed to make room for a new client.
const IDLE_BEFORE_CLOSED: Duration = Duration::from_secs(2);

/// What one connection is doing, for [`Open::close_idlest`].
struct Activity {
    /// Requests being answered (until the handler returns its response).
    busy: AtomicUsize,
    /// When bytes last moved either way, or a write last waited for the client.
    last_moved: Mutex<Instant>,
    /// When the request being received began to arrive (None between requests and
    /// while one is answered): a client sends a request's head at once, so one
    /// that trickles it byte by byte is as good as idle.
    receiving_since: Mutex<Option<Instant>>,
    /// Notified to close the connection.
    closed: Notify,
}

impl Activity {
    fn moved(&self) {
        *self.last_moved.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Bytes of a request arrived.
    fn received(&self) {
        self.moved();
        if self.busy.load(Ordering::SeqCst) == 0 {
            let mut since = self
                .receiving_since
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            since.get_or_insert_with(Instant::now);
        }
    }

    /// A request's head is in: it is being answered.
    fn answering(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        *self
            .receiving_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// How long the connection has done nothing useful: nothing moved, or a
    /// request's head has been arriving; None while a request is answered.
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let quiet = self
            .last_moved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        let receiving = self
            .receiving_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |since| since.elapsed());
        Some(quiet.max(receiving))
    }
}

/// The page's open connections.
#[derive(Default)]
struct Open(Mutex<Vec<Weak<Activity>>>);

impl Open {
    fn add(&self) -> Arc<Activity> {
        let activity = Arc::new(Activity {
            busy: AtomicUsize::new(0),
            last_moved: Mutex::new(Instant::now()),
            receiving_since: Mutex::new(None),
            closed: Notify::new(),
        });
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|a| a.strong_count() > 0);
        list.push(Arc::downgrade(&activity));
        activity
    }

    /// Closes the connection idle longest, if for [`IDLE_BEFORE_CLOSED`] or more:
    /// connections that open and send nothing, or sit between requests, cannot keep
    /// a new client out (a browser opens another when it needs one).
    fn close_idlest(&self) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|a| a.strong_count() > 0);
        let idlest = list
            .iter()
            .filter_map(|a| a.upgrade())
            .filter_map(|a| a.idle_for().map(|idle| (idle, a)))
            .filter(|(idle, _)| *idle >= IDLE_BEFORE_CLOSED)
            .max_by_key(|(idle, _)| *idle);
        if let Some((_, activity)) = idlest {
            // Once: the connection is gone from the list.
            list.retain(|a| !std::ptr::eq(a.as_ptr(), Arc::as_ptr(&activity)));
            activity.closed.notify_one();
        }
    }
}

/// The page's service, counting the requests a connection has in hand.
#[derive(Clone)]
struct Tracked {
    inner: hyper_util::service::TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = <hyper_util::service::TowerToHyperService<Router> as hyper::service::Service<
        hyper::Request<hyper::body::Incoming>,
    >>::Response;
    type Error = <hyper_util::service::TowerToHyperService<Router> as hyper::service::Service<
        hyper::Request<hyper::body::Incoming>,
    >>::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let activity = self.activity.clone();
        activity.answering();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            activity.moved();
            activity.busy.fetch_sub(1, Ordering::SeqCst);
            answered
        })
    }
}

/// A connection whose writes fail once they have waited [`WRITE_STALL`] for a
/// client that reads nothing (hyper has no such limit of its own).
struct Held {
    stream: TcpStream,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    activity: Arc<Activity>,
}

impl Held {
    fn new(stream: TcpStream, activity: Arc<Activity>) -> Held {
        Held {
            stream,
            stalled: None,
            activity,
        }
    }

    /// `poll` of a write, failed with `TimedOut` once it has been pending too long.
    fn limited<T>(
        &mut self,
        context: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let polled = poll(Pin::new(&mut self.stream), context);
        // A write that moves or waits for the client is not idleness.
        self.activity.moved();
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        match stalled.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client reads nothing",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Held {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let held = self.get_mut();
        let before = buffer.filled().len();
        let polled = Pin::new(&mut held.stream).poll_read(context, buffer);
        if buffer.filled().len() > before {
            held.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .limited(context, |stream, context| stream.poll_write(context, bytes))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .limited(context, |stream, context| stream.poll_flush(context))
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}
