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

/// How long failed logins count against an address.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// SCRAM's iteration count, as PostgreSQL's default.
const ITERATIONS: usize = 4096;

/// The one account of a server with a password.
pub struct Account {
    user: String,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
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
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Records a failed login from `address`, returning how many there were.
    pub fn failed(&self, address: IpAddr) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a scan from many addresses cannot grow the map without end.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
        }
        let entry = failures.entry(address).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FORGET_AFTER {
            entry.0 = 0;
        }
        *entry = (entry.0 + 1, Instant::now());
        entry.0
    }

    /// The wait before answering a login from `address`: none at first, then
    /// doubling from 0.25 s with each failure up to 8 s; failures older than a
    /// minute are forgotten.
    fn delay(&self, address: IpAddr) -> Duration {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&address) {
            Some(&(n, last)) if n > 0 && last.elapsed() < FORGET_AFTER => {
                Duration::from_millis(250u64 << (n - 1).min(5))
            }
            _ => Duration::ZERO,
        }
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
            tokio::time::sleep(account.delay(address)).await;
        }
        if login.user() != Some(account.user.as_str()) {
            // The same answer as a wrong password: SCRAM against a password nobody
            // knows, so a client cannot tell which user names exist.
            let mut salt = account.salt.clone();
            salt.reverse();
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

impl NoopStartupHandler for Open {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.0.clone())
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
                let parameters = Arc::new(DefaultServerParameterProvider::default());
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
        match self {
            Startup::Open(open) => open.on_startup(client, message).await,
            Startup::Password(sasl) => sasl.on_startup(client, message).await,
        }
    }
}

/// Whether a protocol error is a failed login.
pub fn is_failed_login(error: &PgWireError) -> bool {
    matches!(
        error,
        PgWireError::InvalidPassword(_) | PgWireError::InvalidScramMessage(_)
    )
}
