//! The session settings a client changes, each honoured or refused, never taken
//! and ignored:
//! - `statement_timeout` checked as PostgreSQL checks it (a value it would refuse is
//!   refused, not taken as "no limit"), for the session or, with `SET LOCAL`, for
//!   the transaction;
//! - the formatting settings datafusion-postgres keeps per connection, which `RESET`
//!   returns to their defaults;
//! - custom `prefix.name` settings, kept for `SHOW` and `current_setting`;
//! - PostgreSQL's own settings that mean nothing to cxr (`work_mem`,
//!   `client_min_messages`, ...) taken with a notice that says so, or refused where
//!   the value asks for what cxr cannot do (`client_encoding` other than UTF8,
//!   `transaction_read_only = off`);
//! - the query engine's `datafusion.*` settings refused: they are the server's;
//! - any other name refused, as PostgreSQL refuses it (42704).
//!
//! `SHOW ALL` lists them; the same rules apply to `-c name=value` in the startup
//! packet's `options` (libpq's `PGOPTIONS`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    ContextModifier, Expr, Reset, Set, SetSessionAuthorizationParamKind, Statement, Value,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::results::{
    DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::response::{NoticeResponse, TransactionStatus};
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;

/// Where datafusion-postgres keeps a connection's `statement_timeout`, in
/// milliseconds (absent: no limit).
pub const TIMEOUT_KEY: &str = "statement_timeout_ms";

/// The session's `statement_timeout` before a `SET LOCAL` in the open transaction
/// (empty: none), restored when the transaction ends.
const SAVED_TIMEOUT_KEY: &str = "cxr.saved.statement_timeout_ms";

/// The session's settings before the open transaction changed them (JSON).
const BEFORE_TRANSACTION_KEY: &str = "cxr.saved.before_transaction";

/// Where a setting's value from the connection's startup is kept (`RESET` returns
/// to it, as PostgreSQL's does: psql's `application_name`).
const STARTUP_KEY: &str = "cxr.startup.";

/// Where a custom setting (`prefix.name`) is kept, under its lowercase name.
const CUSTOM_KEY: &str = "cxr.setting.";

/// The settings datafusion-postgres keeps in a connection's metadata under their
/// own names, which `RESET` returns to their defaults.
const KEPT: [&str; 7] = [
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
    "timezone",
];

/// PostgreSQL's settings that clients and tools set but that mean nothing to cxr
/// (it has no planner costs, locks or work memory of PostgreSQL's): taken with a
/// notice, and shown with PostgreSQL's default. `value_allowed`, when given, is the
/// only value accepted (what cxr does anyway); another is refused.
struct Inert {
    name: &'static str,
    shown: &'static str,
    value_allowed: Option<&'static [&'static str]>,
}

const fn inert(name: &'static str, shown: &'static str) -> Inert {
    Inert {
        name,
        shown,
        value_allowed: None,
    }
}

const fn only(name: &'static str, shown: &'static str, values: &'static [&'static str]) -> Inert {
    Inert {
        name,
        shown,
        value_allowed: Some(values),
    }
}

const INERT: &[Inert] = &[
    // SQL_ASCII asks for the bytes as stored (psql in the C locale sends it).
    only(
        "client_encoding",
        "UTF8",
        &["utf8", "utf-8", "unicode", "sql_ascii"],
    ),
    only("standard_conforming_strings", "on", &["on", "true", "1"]),
    only("transaction_read_only", "on", &["on", "true", "1"]),
    only("default_transaction_read_only", "on", &["on", "true", "1"]),
    inert("client_min_messages", "notice"),
    inert("lock_timeout", "0"),
    inert("idle_in_transaction_session_timeout", "0"),
    inert("idle_session_timeout", "0"),
    inert("work_mem", "4MB"),
    inert("maintenance_work_mem", "64MB"),
    inert("temp_buffers", "8MB"),
    inert("jit", "off"),
    inert("enable_seqscan", "on"),
    inert("enable_indexscan", "on"),
    inert("enable_bitmapscan", "on"),
    inert("enable_hashjoin", "on"),
    inert("enable_mergejoin", "on"),
    inert("enable_nestloop", "on"),
    inert("max_parallel_workers_per_gather", "2"),
    inert("random_page_cost", "4"),
    inert("effective_cache_size", "4GB"),
    inert("plan_cache_mode", "auto"),
    inert("join_collapse_limit", "8"),
    inert("from_collapse_limit", "8"),
    inert("geqo", "on"),
    inert("cursor_tuple_fraction", "0.1"),
    inert("default_transaction_isolation", "read committed"),
    inert("synchronous_commit", "on"),
    inert("escape_string_warning", "on"),
    inert("lc_messages", "C"),
    inert("lc_monetary", "C"),
    inert("lc_numeric", "C"),
    inert("lc_time", "C"),
    inert("row_security", "on"),
    inert("check_function_bodies", "on"),
    inert("array_nulls", "on"),
    inert("backslash_quote", "safe_encoding"),
    inert("xmloption", "content"),
    inert("default_text_search_config", "pg_catalog.english"),
];

/// PostgreSQL's settings a client reads but cannot set.
const READ_ONLY: &[(&str, &str)] = &[
    ("server_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("max_identifier_length", "63"),
    ("is_superuser", "off"),
    ("in_hot_standby", "off"),
];

/// The names datafusion-postgres's own `SHOW` answers (beside [`KEPT`]).
const SHOWN_BY_PROTOCOL: &[&str] = &[
    "time zone",
    "server_version",
    "transaction_isolation",
    "catalogs",
    "statement_timeout",
    "transaction isolation level",
];

/// What a statement did to the session's settings: its tag, and the messages for
/// the client before it (a warning or notice, a changed `ParameterStatus`).
pub struct Done {
    pub tag: Tag,
    pub messages: Vec<PgWireBackendMessage>,
}

impl Done {
    fn tag(tag: &str) -> Done {
        Done {
            tag: Tag::new(tag),
            messages: Vec::new(),
        }
    }

    fn with_notice(severity: &str, message: String) -> Done {
        Done {
            tag: Tag::new("SET"),
            messages: vec![notice(severity, message)],
        }
    }
}

/// What a statement does to the session's settings, when it is one this module
/// answers (`SET`, `RESET`); None leaves it to datafusion-postgres's hook (`SET` of
/// the formatting settings, with their `ParameterStatus`).
pub fn apply(
    statement: &Statement,
    metadata: &mut HashMap<String, String>,
    transaction: TransactionStatus,
) -> Option<PgWireResult<Done>> {
    let in_transaction = matches!(
        transaction,
        TransactionStatus::Transaction | TransactionStatus::Error
    );
    if in_transaction && matches!(statement, Statement::Set(_) | Statement::Reset(_)) {
        remember_for_rollback(metadata);
    }
    match statement {
        Statement::Set(Set::SingleAssignment {
            scope,
            variable,
            values,
            ..
        }) => set(
            &variable.to_string().to_ascii_lowercase(),
            &value_text(values),
            scope.as_ref(),
            metadata,
            transaction,
        ),
        Statement::Reset(reset) => {
            Some(self::reset(&reset.reset, metadata).map(|()| Done::tag("RESET")))
        }
        Statement::Set(Set::SetTransaction {
            modes,
            session: false,
            ..
        }) => Some(Ok(
            if in_transaction || super::transactions::block_begun(metadata) {
                super::transactions::keep_isolation(metadata, modes);
                Done::tag("SET")
            } else {
                // PostgreSQL's answer: a warning, and nothing changes.
                Done {
                    tag: Tag::new("SET"),
                    messages: vec![notice_coded(
                        "WARNING",
                        "25P01", // no_active_sql_transaction
                        "SET TRANSACTION can only be used in transaction blocks".into(),
                    )],
                }
            },
        )),
        // The login's own role is the one role a session has: another is refused,
        // as PostgreSQL refuses a role that does not exist.
        Statement::Set(Set::SetRole { role_name, .. }) => Some(match role_name {
            Some(role) => own_role(&role.value, metadata),
            None => Ok(Done::tag("SET")),
        }),
        Statement::Set(Set::SetSessionAuthorization(param)) => Some(match &param.kind {
            SetSessionAuthorizationParamKind::User(role) => own_role(&role.value, metadata),
            SetSessionAuthorizationParamKind::Default => Ok(Done::tag("SET")),
        }),
        _ => None,
    }
}

/// `SET ROLE name`: the login's own name is taken (nothing changes), any other is
/// 22023 as PostgreSQL says of a role it does not have.
fn own_role(role: &str, metadata: &HashMap<String, String>) -> PgWireResult<Done> {
    if metadata.get("user").is_some_and(|user| user == role) {
        return Ok(Done::tag("SET"));
    }
    Err(error(
        "22023", // invalid_parameter_value
        format!("role \"{role}\" does not exist"),
    ))
}

/// Whether a metadata key holds a session setting (what a transaction's end may
/// restore).
fn is_setting_key(key: &str) -> bool {
    key == TIMEOUT_KEY || KEPT.contains(&key) || key.starts_with(CUSTOM_KEY)
}

/// The session's settings before the open transaction changed any, kept until the
/// transaction ends: a ROLLBACK restores them, as PostgreSQL's does.
fn remember_for_rollback(metadata: &mut HashMap<String, String>) {
    if metadata.contains_key(BEFORE_TRANSACTION_KEY) {
        return;
    }
    let saved = snapshot(metadata);
    metadata.insert(BEFORE_TRANSACTION_KEY.to_string(), saved);
}

/// `RESET ALL`: every setting as the client logged in with.
pub fn reset_all(metadata: &mut HashMap<String, String>) {
    metadata.remove(TIMEOUT_KEY);
    for name in KEPT {
        reset_one(name, metadata);
    }
    metadata.retain(|key, _| !key.starts_with(CUSTOM_KEY));
}

/// The session's settings now, as text: what a `ROLLBACK TO SAVEPOINT` restores.
pub fn snapshot(metadata: &HashMap<String, String>) -> String {
    let settings: HashMap<&String, &String> = metadata
        .iter()
        .filter(|(key, _)| is_setting_key(key))
        .collect();
    serde_json::to_string(&settings).expect("strings serialise")
}

/// The settings of a [`snapshot`] back in place of the session's.
pub fn restore(metadata: &mut HashMap<String, String>, snapshot: &str) {
    let saved: HashMap<String, String> = serde_json::from_str(snapshot).unwrap_or_default();
    metadata.retain(|key, _| !is_setting_key(key));
    metadata.extend(saved);
}

/// A `SET name = value` (scope `SESSION`, `LOCAL` or none).
fn set(
    name: &str,
    value: &str,
    scope: Option<&ContextModifier>,
    metadata: &mut HashMap<String, String>,
    transaction: TransactionStatus,
) -> Option<PgWireResult<Done>> {
    if matches!(scope, Some(ContextModifier::Local)) {
        return Some(set_local(name, value, metadata, transaction));
    }
    if name == "statement_timeout" {
        return Some(set_timeout(value, metadata).map(|()| Done::tag("SET")));
    }
    let name = if name == "time zone" {
        "timezone"
    } else {
        name
    };
    if KEPT.contains(&name) {
        return Some(set_kept(name, value, metadata));
    }
    Some(set_other(name, value, metadata))
}

/// A formatting setting, checked as PostgreSQL checks it, kept, and told to the
/// client where PostgreSQL tells it (`ParameterStatus`).
fn set_kept(name: &str, value: &str, metadata: &mut HashMap<String, String>) -> PgWireResult<Done> {
    let value = value.trim();
    if !valid_value(name, value) {
        let shown = reported_name(name).unwrap_or(name);
        return Err(invalid(format!(
            "invalid value for parameter \"{shown}\": \"{value}\""
        )));
    }
    // PostgreSQL keeps at most 63 bytes of an application name.
    let mut value = value.to_string();
    if name == "application_name" {
        while value.len() > 63 {
            value.pop();
        }
    }
    metadata.insert(name.to_string(), value.clone());
    let mut done = Done::tag("SET");
    if let Some(reported) = reported_name(name) {
        done.messages
            .push(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                reported.to_string(),
                value,
            )));
    }
    Ok(done)
}

/// Whether `value` is one PostgreSQL takes for the formatting setting `name`.
fn valid_value(name: &str, value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    match name {
        "datestyle" => lower.split(',').all(|part| {
            [
                "iso",
                "sql",
                "postgres",
                "german",
                "dmy",
                "mdy",
                "ymd",
                "euro",
                "european",
                "us",
                "noneuro",
                "noneuropean",
            ]
            .contains(&part.trim())
        }),
        "intervalstyle" => {
            ["postgres", "postgres_verbose", "sql_standard", "iso_8601"].contains(&lower.as_str())
        }
        "bytea_output" => ["hex", "escape"].contains(&lower.as_str()),
        "extra_float_digits" => value.parse::<i32>().is_ok_and(|n| (-15..=3).contains(&n)),
        "timezone" => {
            !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_/+-:.".contains(c))
        }
        _ => true,
    }
}

/// The name PostgreSQL reports a setting's changes under, if it does.
fn reported_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "application_name" => "application_name",
        "datestyle" => "DateStyle",
        "intervalstyle" => "IntervalStyle",
        "timezone" => "TimeZone",
        _ => return None,
    })
}

/// Remembers the settings the connection started with, which `RESET` returns to.
pub fn remember_startup(metadata: &mut HashMap<String, String>) {
    for name in KEPT {
        if let Some(value) = metadata.get(name).cloned() {
            metadata.insert(format!("{STARTUP_KEY}{name}"), value);
        }
    }
}

/// The setting `name` back to its value at the connection's startup, or its default.
fn reset_one(name: &str, metadata: &mut HashMap<String, String>) {
    match metadata.get(&format!("{STARTUP_KEY}{name}")).cloned() {
        Some(value) => metadata.insert(name.to_string(), value),
        None => metadata.remove(name),
    };
}

/// `SET LOCAL`: outside a transaction it does nothing, with PostgreSQL's warning;
/// inside one, `statement_timeout` lasts until the transaction ends.
fn set_local(
    name: &str,
    value: &str,
    metadata: &mut HashMap<String, String>,
    transaction: TransactionStatus,
) -> PgWireResult<Done> {
    if !matches!(
        transaction,
        TransactionStatus::Transaction | TransactionStatus::Error
    ) {
        return Ok(Done::with_notice(
            "WARNING",
            "SET LOCAL can only be used in transaction blocks".into(),
        ));
    }
    if name != "statement_timeout" {
        return Err(error(
            "0A000", // feature_not_supported
            format!(
                "SET LOCAL {name}: cxr serve sets only statement_timeout for a transaction; use SET"
            ),
        ));
    }
    if !metadata.contains_key(SAVED_TIMEOUT_KEY) {
        let session = metadata.get(TIMEOUT_KEY).cloned().unwrap_or_default();
        metadata.insert(SAVED_TIMEOUT_KEY.to_string(), session);
    }
    set_timeout(value, metadata).map(|()| Done::tag("SET"))
}

/// The end of a transaction: a ROLLBACK undoes its settings, and a `SET LOCAL`
/// ends with it either way.
pub fn end_transaction(metadata: &mut HashMap<String, String>, committed: bool) {
    metadata.remove(super::transactions::SAVEPOINTS_KEY);
    let before = metadata.remove(BEFORE_TRANSACTION_KEY);
    if !committed && let Some(before) = before {
        metadata.remove(SAVED_TIMEOUT_KEY);
        restore(metadata, &before);
        return;
    }
    match metadata.remove(SAVED_TIMEOUT_KEY) {
        Some(saved) if saved.is_empty() => {
            metadata.remove(TIMEOUT_KEY);
        }
        Some(saved) => {
            metadata.insert(TIMEOUT_KEY.to_string(), saved);
        }
        None => {}
    }
}

/// A setting that is neither the timeout nor a formatting one.
fn set_other(
    name: &str,
    value: &str,
    metadata: &mut HashMap<String, String>,
) -> PgWireResult<Done> {
    if name.starts_with("datafusion.") {
        return Err(error(
            "55P02", // cant_change_runtime_param
            format!(
                "parameter \"{name}\" cannot be changed by a client: the query engine's settings are the server's"
            ),
        ));
    }
    if READ_ONLY.iter().any(|(n, _)| *n == name) {
        return Err(error(
            "55P02",
            format!("parameter \"{name}\" cannot be changed"),
        ));
    }
    if let Some(setting) = INERT.iter().find(|s| s.name == name) {
        let lower = value.to_ascii_lowercase();
        return match setting.value_allowed {
            Some(allowed) if allowed.contains(&lower.as_str()) => Ok(Done::tag("SET")),
            Some(_) => Err(error(
                "0A000",
                format!(
                    "{name} = {value}: cxr serve has only {name} = {}",
                    setting.shown
                ),
            )),
            None => Ok(Done::with_notice(
                "NOTICE",
                format!(
                    "{name} has no effect in cxr serve; it stays {}",
                    setting.shown
                ),
            )),
        };
    }
    if is_custom(name) {
        metadata.insert(format!("{CUSTOM_KEY}{name}"), value.to_string());
        return Ok(Done::tag("SET"));
    }
    Err(unrecognized(name))
}

/// A custom setting's name: `prefix.name`, as PostgreSQL takes for extensions and
/// applications.
fn is_custom(name: &str) -> bool {
    let mut parts = name.split('.');
    let valid = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if valid(a) && valid(b))
}

fn unrecognized(name: &str) -> PgWireError {
    error(
        "42704", // undefined_object
        format!("unrecognized configuration parameter \"{name}\""),
    )
}

/// A `SET`'s value as text: a quoted string without its quotes, a number or word as
/// written, a list joined by commas.
fn value_text(values: &[Expr]) -> String {
    values
        .iter()
        .map(|value| match value {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.clone(),
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SHOW name` of a setting datafusion-postgres does not know, and `SHOW ALL`: the
/// value, or PostgreSQL's error for a name it does not know. None leaves `SHOW` to
/// datafusion-postgres.
pub fn show(
    statement: &Statement,
    metadata: &HashMap<String, String>,
) -> Option<PgWireResult<Vec<(String, String)>>> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let words: Vec<String> = variable
        .iter()
        .map(|v| v.value.to_ascii_lowercase())
        .collect();
    // `time zone` comes as two words, and so does `myapp.study`.
    let name = words.join(" ");
    if name == "all" {
        return Some(Ok(every_setting(metadata)));
    }
    if let Some(value) = shown_here(&name, metadata) {
        let name = if name == "transaction isolation level" {
            "transaction_isolation".to_string()
        } else {
            name
        };
        return Some(Ok(vec![(name, value)]));
    }
    if KEPT.contains(&name.as_str()) || SHOWN_BY_PROTOCOL.contains(&name.as_str()) {
        return None;
    }
    let fixed = INERT
        .iter()
        .map(|s| (s.name, s.shown))
        .chain(READ_ONLY.iter().copied())
        .find(|(n, _)| *n == name)
        .map(|(_, shown)| shown.to_string());
    if let Some(value) = fixed {
        return Some(Ok(vec![(name, value)]));
    }
    let dotted = words.join(".");
    Some(match metadata.get(&format!("{CUSTOM_KEY}{dotted}")) {
        Some(value) => Ok(vec![(dotted, value.clone())]),
        None => Err(unrecognized(&dotted)),
    })
}

/// The settings whose `SHOW` this module answers as PostgreSQL words them.
fn shown_here(name: &str, metadata: &HashMap<String, String>) -> Option<String> {
    Some(match name {
        "statement_timeout" => timeout_shown(metadata),
        "transaction_isolation" | "transaction isolation level" => isolation(metadata),
        "server_version" => SERVER_VERSION.into(),
        "server_version_num" => SERVER_VERSION_NUM.into(),
        "max_connections" => max_connections(),
        "timezone" | "time zone" => metadata
            .get("timezone")
            .cloned()
            .unwrap_or_else(|| "UTC".into()),
        _ => return None,
    })
}

/// The open transaction's isolation level as asked for, else PostgreSQL's default.
fn isolation(metadata: &HashMap<String, String>) -> String {
    metadata
        .get(super::transactions::ISOLATION_KEY)
        .cloned()
        .unwrap_or_else(|| "read committed".into())
}

/// `--max-connections` of this process's server, which `SHOW max_connections` and
/// `current_setting('max_connections')` give (PostgreSQL's default, 100, before a
/// server starts).
static MAX_CONNECTIONS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Records the server's `--max-connections` (once: one server per process).
pub fn set_max_connections(connections: usize) {
    let _ = MAX_CONNECTIONS.set(connections);
}

fn max_connections() -> String {
    MAX_CONNECTIONS.get().copied().unwrap_or(100).to_string()
}

/// The PostgreSQL version cxr answers as, everywhere a client asks (`version()`,
/// `SHOW server_version`, the login's `ParameterStatus`).
pub const SERVER_VERSION: &str = "15.0";
const SERVER_VERSION_NUM: &str = "150000";

/// `statement_timeout` as PostgreSQL shows it: in the largest unit that divides it
/// (`1500ms`, `2s`, `2min`), `0` for none.
fn timeout_shown(metadata: &HashMap<String, String>) -> String {
    let Some(ms) = metadata
        .get(TIMEOUT_KEY)
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return "0".into();
    };
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A session setting's value as `current_setting(name)` gives it in this session;
/// None for a name that is not a session setting (the server's answer it).
pub fn session_value(name: &str, metadata: &HashMap<String, String>) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if let Some(value) = shown_here(&name, metadata) {
        return Some(value);
    }
    if KEPT.contains(&name.as_str()) {
        return Some(
            every_setting(metadata)
                .into_iter()
                .find(|(n, _)| *n == name)?
                .1,
        );
    }
    if let Some(setting) = INERT.iter().find(|s| s.name == name) {
        return Some(setting.shown.to_string());
    }
    metadata.get(&format!("{CUSTOM_KEY}{name}")).cloned()
}

/// Every setting and its value, by name.
fn every_setting(metadata: &HashMap<String, String>) -> Vec<(String, String)> {
    let timeout = timeout_shown(metadata);
    let defaults = datafusion_postgres::pgwire::types::format::FormatOptions::default();
    let kept_default = |name: &str| match name {
        "datestyle" => defaults.date_style.clone(),
        "bytea_output" => defaults.bytea_output.clone(),
        "intervalstyle" => defaults.interval_style.clone(),
        "extra_float_digits" => defaults.extra_float_digits.to_string(),
        "search_path" => "public".into(),
        "timezone" => "UTC".into(),
        _ => String::new(),
    };
    let mut all: Vec<(String, String)> = KEPT
        .iter()
        .map(|name| {
            let value = metadata
                .get(*name)
                .cloned()
                .unwrap_or_else(|| kept_default(name));
            (name.to_string(), value)
        })
        .chain([
            ("statement_timeout".to_string(), timeout),
            ("server_version".to_string(), SERVER_VERSION.to_string()),
            ("max_connections".to_string(), max_connections()),
            ("transaction_isolation".to_string(), isolation(metadata)),
        ])
        .chain(
            INERT
                .iter()
                .map(|s| (s.name.to_string(), s.shown.to_string())),
        )
        .chain(
            READ_ONLY
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string())),
        )
        .chain(metadata.iter().filter_map(|(key, value)| {
            key.strip_prefix(CUSTOM_KEY)
                .map(|name| (name.to_string(), value.clone()))
        }))
        .collect();
    all.sort();
    all
}

/// The settings of a startup packet's `options` (`-c name=value` or
/// `--name=value`, separated by blanks, a blank within a value escaped by a
/// backslash), applied as `SET name = value` is.
pub fn from_startup_options(
    options: &str,
    metadata: &mut HashMap<String, String>,
) -> PgWireResult<()> {
    let words = split_options(options);
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let pair = if word == "-c" {
            words.next().map(String::as_str)
        } else if let Some(rest) = word.strip_prefix("-c") {
            Some(rest)
        } else {
            word.strip_prefix("--")
        };
        let Some((name, value)) = pair.and_then(|p| p.split_once('=')) else {
            return Err(error(
                "22023",
                format!("invalid command-line argument in the startup options: {word}"),
            ));
        };
        let name = name.replace('-', "_").to_ascii_lowercase();
        set_at_startup(&name, value, metadata)?;
    }
    Ok(())
}

/// A setting given at login, applied as `SET name = value` is.
fn set_at_startup(
    name: &str,
    value: &str,
    metadata: &mut HashMap<String, String>,
) -> PgWireResult<()> {
    match set(name, value, None, metadata, TransactionStatus::Idle) {
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => Ok(()),
        None => {
            metadata.insert(name.to_string(), value.to_string());
            Ok(())
        }
    }
}

/// The startup packet's parameters that are the protocol's, not settings.
const PROTOCOL_PARAMETERS: [&str; 4] = ["user", "database", "options", "replication"];

/// The settings a startup packet gives as its own parameters (`DateStyle=ISO`,
/// `statement_timeout=1500`), applied as `SET name = value` is: pgwire kept them
/// as given, shown but not honoured nor checked.
pub fn from_startup_parameters(
    parameters: &std::collections::BTreeMap<String, String>,
    metadata: &mut HashMap<String, String>,
) -> PgWireResult<()> {
    for given in parameters.keys() {
        // `_pq_.` names ask for protocol extensions, which pgwire answers.
        if PROTOCOL_PARAMETERS.contains(&given.as_str()) || given.starts_with("_pq_.") {
            continue;
        }
        let name = given.to_ascii_lowercase();
        if name != *given {
            metadata.remove(given);
        }
        set_at_startup(&name, &parameters[given], metadata)?;
    }
    Ok(())
}

/// The words of an `options` string: blanks separate them, `\\ ` is a blank within.
fn split_options(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// A notice for the client, at `severity` (WARNING or NOTICE).
pub(super) fn notice(severity: &str, message: String) -> PgWireBackendMessage {
    let code = if severity == "WARNING" {
        "25P01"
    } else {
        "00000"
    };
    notice_coded(severity, code, message)
}

/// A notice with its own SQLSTATE (`BEGIN` in a transaction warns with 25001).
pub(super) fn notice_coded(severity: &str, code: &str, message: String) -> PgWireBackendMessage {
    PgWireBackendMessage::NoticeResponse(NoticeResponse::from(ErrorInfo::new(
        severity.into(),
        code.into(),
        message,
    )))
}

/// `SET statement_timeout = V`: milliseconds, or a number with a unit (`us`,
/// `ms`, `s`, `min`, `h`, `d`); `0` and `DEFAULT` mean no limit.
fn set_timeout(text: &str, metadata: &mut HashMap<String, String>) -> PgWireResult<()> {
    if text.eq_ignore_ascii_case("default") {
        metadata.remove(TIMEOUT_KEY);
        return Ok(());
    }
    if let Some(negative) = text.trim().strip_prefix('-')
        && milliseconds(negative).is_some()
    {
        return Err(invalid(format!(
            "-{} ms is outside the valid range for parameter \"statement_timeout\" (0 .. 2147483647)",
            milliseconds(negative).unwrap_or(0)
        )));
    }
    let ms = milliseconds(text).ok_or_else(|| {
        invalid(format!(
            "invalid value for parameter \"statement_timeout\": \"{text}\"\nHINT:  Valid units for this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\"."
        ))
    })?;
    if ms == 0 {
        metadata.remove(TIMEOUT_KEY);
    } else {
        metadata.insert(TIMEOUT_KEY.to_string(), ms.to_string());
    }
    Ok(())
}

/// A duration as PostgreSQL writes it for a setting in milliseconds: a number
/// (whole, fractional or with an exponent), optionally followed by a unit; rounded
/// to whole milliseconds.
fn milliseconds(text: &str) -> Option<u64> {
    let text = text.trim();
    // The longest start that is a number, then a unit (`1e3`, `1.5s`, `2000us`).
    let (number, unit) = (1..=text.len())
        .rev()
        .filter(|&end| text.is_char_boundary(end))
        .find_map(|end| {
            let number: f64 = text[..end].parse().ok()?;
            let unit = text[end..].trim();
            let scale = match unit {
                "" | "ms" => 1.0,
                "us" => 0.001,
                "s" => 1_000.0,
                "min" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return None,
            };
            Some((number, scale))
        })?;
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        // A sign, `inf` or `NaN`: no duration PostgreSQL takes.
        return None;
    }
    // PostgreSQL rounds to the nearest, ties to even (`0.5` is 0).
    let ms = (number * unit).round_ties_even();
    // PostgreSQL's limit for this setting: INT_MAX milliseconds.
    (ms.is_finite() && ms <= i32::MAX as f64).then_some(ms as u64)
}

/// `RESET name` or `RESET ALL`.
fn reset(reset: &Reset, metadata: &mut HashMap<String, String>) -> PgWireResult<()> {
    match reset {
        Reset::ALL => {
            reset_all(metadata);
            Ok(())
        }
        Reset::ConfigurationParameter(name) => {
            let name = name.to_string().to_ascii_lowercase();
            if name == "statement_timeout" {
                metadata.remove(TIMEOUT_KEY);
                Ok(())
            } else if KEPT.contains(&name.as_str()) {
                reset_one(&name, metadata);
                Ok(())
            } else if metadata.remove(&format!("{CUSTOM_KEY}{name}")).is_some()
                || INERT.iter().any(|s| s.name == name)
            {
                Ok(())
            } else {
                Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "42704".into(), // undefined_object
                    format!("unrecognized configuration parameter \"{name}\""),
                ))))
            }
        }
    }
}

fn invalid(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "22023".into(), // invalid_parameter_value
        message,
    )))
}

/// `SHOW`'s answer: one value, or for `SHOW ALL` every name and value.
fn show_response(rows: Vec<(String, String)>, all: bool) -> PgWireResult<QueryResponse> {
    let text = |name: &str| FieldInfo::new(name.into(), None, None, Type::TEXT, FieldFormat::Text);
    let fields = Arc::new(if all {
        vec![text("name"), text("setting")]
    } else {
        vec![text(
            rows.first().map(|(n, _)| n.as_str()).unwrap_or("setting"),
        )]
    });
    let mut encoded = Vec::with_capacity(rows.len());
    for (name, value) in rows {
        let mut encoder = DataRowEncoder::new(fields.clone());
        if all {
            encoder.encode_field(&Some(name))?;
        }
        encoder.encode_field(&Some(value))?;
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(QueryResponse::new(fields, futures::stream::iter(encoded)))
}

/// `SHOW ALL`'s two columns, for a client that describes it before running it.
fn show_all_plan() -> LogicalPlan {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
    ]);
    LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
        produce_one_row: false,
        schema: Arc::new(
            datafusion::common::DFSchema::try_from(schema).expect("a schema without duplicates"),
        ),
    })
}

fn is_show_all(statement: &Statement) -> bool {
    matches!(statement, Statement::ShowVariable { variable }
        if variable.len() == 1 && variable[0].value.eq_ignore_ascii_case("all"))
}

/// `SHOW` of what this module answers, as a response.
fn answer_show(
    statement: &Statement,
    metadata: &HashMap<String, String>,
) -> Option<PgWireResult<Response>> {
    let rows = show(statement, metadata)?;
    Some(rows.and_then(|rows| show_response(rows, is_show_all(statement)).map(Response::Query)))
}

/// The hook that answers these statements before datafusion-postgres's own (whose
/// `SET` takes any name and any value and changes nothing for most).
pub struct Settings;

#[async_trait]
impl QueryHook for Settings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(answer) = answer_show(statement, client.metadata()) {
            return Some(answer);
        }
        let transaction = client.transaction_status();
        let done = match apply(statement, client.metadata_mut(), transaction)? {
            Ok(done) => done,
            Err(e) => return Some(Err(e)),
        };
        for message in done.messages {
            if let Err(e) = client.send_message(message).await {
                return Some(Err(e));
            }
        }
        Some(Ok(Response::Execution(done.tag)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Checked when executed (`apply`); nothing to plan.
        if is_show_all(statement) {
            return Some(Ok(show_all_plan()));
        }
        matches!(statement, Statement::Reset(_)).then(|| Ok(super::queries::no_rows()))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _prepared: &LogicalPlan,
        _params: &datafusion::common::ParamValues,
        _unused: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // SET and RESET are executed by `queries::Handler`, which calls `apply`.
        answer_show(statement, client.metadata())
    }
}

#[cfg(test)]
mod tests {
    use super::{milliseconds, split_options};

    #[test]
    fn startup_options_split_as_libpq_writes_them() {
        assert_eq!(
            split_options("-c statement_timeout=5s  --application-name=a\\ b"),
            ["-c", "statement_timeout=5s", "--application-name=a b"]
        );
    }

    #[test]
    fn durations_as_postgresql_reads_them() {
        for (text, ms) in [
            ("0", Some(0)),
            ("250", Some(250)),
            ("5s", Some(5_000)),
            ("1.5s", Some(1_500)),
            ("2min", Some(120_000)),
            ("1 h", Some(3_600_000)),
            ("1d", Some(86_400_000)),
            ("abc", None),
            ("5 weeks", None),
            ("-5s", None),
            ("", None),
            ("30d", None),
            ("2000us", Some(2)),
            ("1e3", Some(1_000)),
            ("1.5e1s", Some(15_000)),
            ("inf", None),
            ("+5", None),
        ] {
            assert_eq!(milliseconds(text), ms, "{text}");
        }
    }
}
