//! `cxr serve`: the warehouse over the PostgreSQL wire protocol, and the cohort
//! builder's page over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::WarehouseArg;
use crate::error::{Error, Result};
use crate::serve::{Account, Limits, Options};

/// Arguments of `cxr serve`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cxr serve -w warehouse
  psql -h 127.0.0.1 -p 5433 -U cxr -c 'SELECT dataset, count(*) FROM dataset_images GROUP BY dataset'
  CXR_SERVE_PASSWORD=secret cxr serve --listen 0.0.0.0:5433 --tls-cert server.crt --tls-key server.key
  cxr serve -w warehouse --http 127.0.0.1:8080     # and the cohort builder at http://127.0.0.1:8080/

A password comes from CXR_SERVE_PASSWORD or --password-file, never from the command line.")]
pub struct ServeArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    /// Address (or host name) and port to listen on; an address other than loopback
    /// needs a password.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5433")]
    pub listen: String,
    /// Also serve the cohort builder, a page for the browser, on this loopback
    /// address and port (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// Serve the page only, no PostgreSQL port (needs --http).
    #[arg(long, requires = "http", conflicts_with_all = ["listen", "user", "password_file", "tls_cert", "tls_key"])]
    pub http_only: bool,
    /// The user name clients log in with, when a password is set.
    #[arg(long, value_name = "NAME", default_value = "cxr")]
    pub user: String,
    /// A file whose first line is the password (else CXR_SERVE_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once; more are refused (SQLSTATE 53300).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections: usize,
    /// Seconds a statement may run, rows sent included (SQLSTATE 57014 past it).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub query_time: f64,
    /// Memory one statement's sorts, joins and aggregations may hold [default:
    /// $CXR_MEMORY_LIMIT or 512MiB].
    #[arg(long, value_name = "SIZE")]
    pub query_memory: Option<String>,
    /// Memory all running statements together may hold.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub server_memory: String,
    /// Memory for the smallest tables, read once when a version is opened rather
    /// than from their files by every statement (0: none).
    #[arg(long, value_name = "SIZE", default_value = "256MiB")]
    pub in_memory: String,
}

/// Runs `cxr serve`.
pub async fn run(args: ServeArgs) -> Result<()> {
    let options = Options {
        warehouse: args.warehouse.path(),
        listen: if args.http_only {
            None
        } else {
            Some(address(&args.listen, "--listen")?)
        },
        http: args
            .http
            .as_deref()
            .map(|text| address(text, "--http"))
            .transpose()?,
        account: account(&args)?,
        user: args.user.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        max_connections: positive(args.max_connections, "--max-connections")?,
        limits: Limits {
            query_time: seconds(args.query_time)?,
            query_memory: match &args.query_memory {
                Some(text) => size(text, "--query-memory")?,
                None => crate::sql::memory_limit()?,
            },
        },
        server_memory: size(&args.server_memory, "--server-memory")?,
        in_memory: match args.in_memory.trim() {
            "0" => 0,
            text => size(text, "--in-memory")?,
        },
    };
    if options.server_memory < options.limits.query_memory {
        return Err(crate::Error::Usage(format!(
            "--server-memory {} is less than a statement's limit, {} (--query-memory or $CXR_MEMORY_LIMIT): every statement would be refused for memory the server does not have; give the server at least as much",
            args.server_memory,
            args.query_memory
                .clone()
                .unwrap_or_else(|| format!("{} MiB", options.limits.query_memory >> 20))
        )));
    }
    if let (Some(listen), Some(http)) = (options.listen, options.http)
        && listen.port() != 0
        && listen.port() == http.port()
        && (listen.ip() == http.ip() || listen.ip().is_unspecified() || http.ip().is_unspecified())
    {
        return Err(crate::Error::Usage(format!(
            "--listen {listen} and --http {http} name the same port: the PostgreSQL protocol and the page each need their own"
        )));
    }
    crate::serve::serve(options).await
}

/// The account from CXR_SERVE_PASSWORD or --password-file, if either is set.
fn account(args: &ServeArgs) -> Result<Option<Account>> {
    if args.user.trim().is_empty() || args.user.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "--user {:?}: a user name clients can type (not empty, no control characters)",
            args.user
        )));
    }
    let password = match (&args.password_file, std::env::var("CXR_SERVE_PASSWORD")) {
        (Some(_), Ok(_)) => {
            return Err(Error::Usage(
                "both CXR_SERVE_PASSWORD and --password-file are set; use one".into(),
            ));
        }
        (Some(file), Err(_)) => Some(read_password(file)?),
        (None, Ok(text)) if !text.is_empty() => Some(text),
        (None, _) => None,
    };
    let Some(password) = password else {
        if args.user != "cxr" {
            return Err(Error::Usage(
                "--user needs a password (CXR_SERVE_PASSWORD or --password-file)".into(),
            ));
        }
        return Ok(None);
    };
    Account::new(args.user.clone(), &password)
        .map(Some)
        .map_err(|e| Error::io("cannot read /dev/urandom for the password's salt", e))
}

/// The first line of a password file.
fn read_password(file: &std::path::Path) -> Result<String> {
    use crate::input::text::{TextError, read_all};
    use std::os::unix::fs::PermissionsExt;
    let handle = std::fs::File::open(file)
        .map_err(|e| Error::input(file, format!("cannot read the password file: {e}")))?;
    // As libpq says of a .pgpass others can read.
    if let Ok(meta) = handle.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        say!(
            "cxr serve: warning: the password file {} can be read by other users (mode {:o}); chmod 600 it",
            file.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let text = read_all(handle, 4096).map_err(|e| match e {
        TextError::Io(e) => Error::input(file, format!("cannot read the password file: {e}")),
        other => Error::input(file, format!("not a password file: {other}")),
    })?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        return Err(Error::input(
            file,
            "the password file's first line is empty",
        ));
    }
    Ok(line)
}

/// `ADDR:PORT` or `HOST:PORT` (`localhost:5433`), resolved to its first address.
fn address(text: &str, flag: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .ok()
        .and_then(|mut all| all.next())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{flag} {text}: not an address and port (e.g. 127.0.0.1:5433 or localhost:5433)"
            ))
        })
}

fn positive(n: usize, flag: &str) -> Result<usize> {
    if n == 0 {
        return Err(Error::Usage(format!("{flag} must be at least 1")));
    }
    Ok(n)
}

fn seconds(s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0 && s <= 86_400.0 * 7.0) {
        return Err(Error::Usage(format!(
            "--query-time {s}: expected seconds above 0 (at most a week)"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

fn size(text: &str, flag: &str) -> Result<usize> {
    crate::sql::size_setting(&format!("{flag} {text}"), text)
}
