//! Who may connect to `cxr serve`: anyone on this machine when it listens on
//! loopback without a password; otherwise one user with a password, checked by
//! SCRAM-SHA-256 (the password never crosses the wire). Failed logins are logged
//! and each further attempt from that address waits longer.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;

/// The longest a login waits its turn after failed ones from its address: within
/// the time a connection has to log in (15 s).
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// How long failed logins count against an address.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// SCRAM's iteration count, as PostgreSQL's default.
const ITERATIONS: usize = 4096;

/// The one account of a server with a password.
pub struct Account {
    user: String,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
    logins: Mutex<HashMap<IpAddr, Logins>>,
}

/// The recent logins from one address.
#[derive(Clone, Copy)]
struct Logins {
    /// Failures in a row, and when the last one was.
    failures: u32,
    last_failure: Instant,
    /// When the next attempt from the address may be answered: attempts are
    /// answered one after another, each after the wait its failures set, so that
    /// guesses sent on many connections at once wait in turn.
    next_answer: Instant,
}

impl Account {
    /// The account `user` with `password` (salted and hashed once, here).
    pub fn new(user: String, password: &str) -> std::io::Result<Account> {
        let mut salt = vec![0u8; 16];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
        let salted_password = gen_salted_password(password, &salt, ITERATIONS);
        Ok(Account {
            user,
            salt,
            salted_password,
            logins: Mutex::new(HashMap::new()),
        })
    }

    /// The logins of `address`, the map kept bounded: a scan from many addresses
    /// cannot grow it without end.
    fn logins<R>(&self, address: IpAddr, f: impl FnOnce(&mut Logins) -> R) -> R {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        if logins.len() > 10_000 {
            logins.retain(|_, l| l.last_failure.elapsed() < FORGET_AFTER);
        }
        let now = Instant::now();
        let entry = logins.entry(address).or_insert(Logins {
            failures: 0,
            last_failure: now,
            next_answer: now,
        });
        if entry.failures > 0 && entry.last_failure.elapsed() >= FORGET_AFTER {
            entry.failures = 0;
        }
        f(entry)
    }

    /// Records a failed login from `address`, returning how many there were.
    pub fn failed(&self, address: IpAddr) -> u32 {
        self.logins(address, |l| {
            l.failures += 1;
            l.last_failure = Instant::now();
            l.failures
        })
    }

    /// The wait before answering a login from `address`: none at first, then
    /// doubling from 0.25 s with each failure up to 8 s, after the attempts from the
    /// address already waiting; failures older than a minute are forgotten.
    /// None when that wait would pass [`LONGEST_WAIT`]: the attempt is refused at
    /// once (a queued login would outlast the connection's time to log in).
    fn delay(&self, address: IpAddr) -> Option<Duration> {
        self.logins(address, |l| {
            if l.failures == 0 {
                return Some(Duration::ZERO);
            }
            let each = Duration::from_millis(250u64 << (l.failures - 1).min(5));
            let now = Instant::now();
            let answer = l.next_answer.max(now) + each;
            if answer - now > LONGEST_WAIT {
                return None;
            }
            l.next_answer = answer;
            Some(answer - now)
        })
    }
}

impl Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Account({})", self.user)
    }
}

/// The account, as pgwire's SCRAM asks for it.
#[derive(Debug)]
struct Passwords(Arc<Account>);

#[async_trait]
#[allow(elided_lifetimes_in_paths)]
impl AuthSource for Passwords {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let account = &self.0;
        if let Ok(address) = login.host().parse::<IpAddr>() {
            let Some(wait) = account.delay(address) else {
                return Err(PgWireError::UserError(Box::new(
                    datafusion_postgres::pgwire::error::ErrorInfo::new(
                        "FATAL".into(),
                        "28000".into(), // invalid_authorization_specification
                        "too many failed logins from this address; try again later".into(),
                    ),
                )));
            };
            tokio::time::sleep(wait).await;
        }
        if login.user() != Some(account.user.as_str()) {
            // The same answer as a wrong password: SCRAM against a password nobody
            // knows, with a salt of its own for each name (one salt for every
            // unknown name told the known one apart), so a client cannot tell which
            // user names exist.
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(&account.salt);
            hash.update(login.user().unwrap_or_default().as_bytes());
            let salt = hash.finalize()[..16].to_vec();
            return Ok(Password::new(Some(salt), vec![0; 32]));
        }
        Ok(Password::new(
            Some(account.salt.clone()),
            account.salted_password.clone(),
        ))
    }
}

/// How one connection starts: without authentication, or with SCRAM.
pub enum Startup {
    Open(Open),
    Password(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

/// A connection without authentication (loopback, no password set).
pub struct Open(Arc<ConnectionManager>);

#[async_trait]
impl NoopStartupHandler for Open {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
    }

    /// The version cxr answers as everywhere (pgwire's own startup says 16.6), and
    /// no superuser (pgwire's says on).
    async fn post_startup<C>(
        &self,
        client: &mut C,
        _message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        // Sent again after pgwire's defaults, which clients replace with the last
        // value given.
        for (name, value) in [
            ("server_version", super::settings::SERVER_VERSION),
            ("is_superuser", "off"),
            // Read-only, as `SHOW` says: libpq's target_session_attrs=read-only
            // reads it.
            ("default_transaction_read_only", "on"),
        ] {
            client
                .feed(PgWireBackendMessage::ParameterStatus(
                    datafusion_postgres::pgwire::messages::startup::ParameterStatus::new(
                        name.into(),
                        value.into(),
                    ),
                ))
                .await?;
        }
        Ok(())
    }
}

impl Startup {
    /// The startup of a new connection (SCRAM keeps per-connection state).
    pub fn new(account: Option<&Arc<Account>>, connections: Arc<ConnectionManager>) -> Startup {
        match account {
            None => Startup::Open(Open(connections)),
            Some(account) => {
                let mut scram = ScramAuth::new(Arc::new(Passwords(account.clone())));
                scram.set_iterations(ITERATIONS);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = super::settings::SERVER_VERSION.into();
                parameters.is_superuser = false;
                parameters.default_transaction_read_only = true;
                let parameters = Arc::new(parameters);
                Startup::Password(Box::new(
                    SASLAuthStartupHandler::new(parameters)
                        .with_scram(scram)
                        .with_connection_manager(connections),
                ))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `-c name=value` (libpq's PGOPTIONS), taken as `SET` takes them: checked
        // before the login (a setting refused refuses the connection, as
        // PostgreSQL's does), applied once the session exists.
        let options = match &message {
            PgWireFrontendMessage::Startup(startup) => {
                // As PostgreSQL: a login names its user.
                if startup.parameters.get("user").is_none_or(String::is_empty) {
                    return Err(PgWireError::UserError(Box::new(
                        datafusion_postgres::pgwire::error::ErrorInfo::new(
                            "FATAL".into(),
                            "28000".into(),
                            "no PostgreSQL user name specified in startup packet".into(),
                        ),
                    )));
                }
                Some((
                    startup.parameters.clone(),
                    startup.parameters.get("options").cloned(),
                ))
            }
            _ => None,
        };
        // The packet's own settings (`DateStyle=ISO`, `statement_timeout=1500`, as
        // pgjdbc and asyncpg send them) are taken as `SET` takes them too.
        let (parameters, options) = options.unwrap_or_default();
        super::settings::from_startup_parameters(&parameters, &mut HashMap::new())
            .map_err(fatal)?;
        if let Some(options) = &options {
            super::settings::from_startup_options(options, &mut HashMap::new()).map_err(fatal)?;
        }
        match self {
            Startup::Open(open) => open.on_startup(client, message).await?,
            Startup::Password(sasl) => sasl.on_startup(client, message).await?,
        }
        super::settings::from_startup_parameters(&parameters, client.metadata_mut())?;
        if let Some(options) = &options {
            super::settings::from_startup_options(options, client.metadata_mut())?;
        }
        super::settings::remember_startup(client.metadata_mut());
        Ok(())
    }
}

/// An error that ends the connection.
fn fatal(error: PgWireError) -> PgWireError {
    match error {
        PgWireError::UserError(info) => PgWireError::UserError(Box::new(
            datafusion_postgres::pgwire::error::ErrorInfo::new(
                "FATAL".into(),
                info.code,
                info.message,
            ),
        )),
        other => other,
    }
}

/// Whether a protocol error is a failed login.
pub fn is_failed_login(error: &PgWireError) -> bool {
    matches!(
        error,
        PgWireError::InvalidPassword(_) | PgWireError::InvalidScramMessage(_)
    )
}
