//! The session settings a client changes: `statement_timeout` checked as PostgreSQL
//! checks it (a value it would refuse is refused, not taken as "no limit"), and
//! `RESET` of the settings datafusion-postgres keeps per connection.

use std::collections::HashMap;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Reset, Set, Statement, Value};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::{Response, Tag};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Where datafusion-postgres keeps a connection's `statement_timeout`, in
/// milliseconds (absent: no limit).
pub const TIMEOUT_KEY: &str = "statement_timeout_ms";

/// The settings datafusion-postgres keeps in a connection's metadata under their
/// own names, which `RESET` returns to their defaults.
const KEPT: [&str; 6] = [
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// What a statement does to the session's settings, when it is one this module
/// answers: `SET statement_timeout`, `RESET name`, `RESET ALL`.
pub fn apply(
    statement: &Statement,
    metadata: &mut HashMap<String, String>,
) -> Option<PgWireResult<Tag>> {
    match statement {
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) if variable
            .to_string()
            .eq_ignore_ascii_case("statement_timeout") =>
        {
            Some(set_timeout(values, metadata).map(|()| Tag::new("SET")))
        }
        Statement::Reset(reset) => {
            Some(self::reset(&reset.reset, metadata).map(|()| Tag::new("RESET")))
        }
        _ => None,
    }
}

/// `SET statement_timeout = V`: milliseconds, or a number with a unit (`ms`, `s`,
/// `min`, `h`, `d`); `0` and `DEFAULT` mean no limit.
fn set_timeout(values: &[Expr], metadata: &mut HashMap<String, String>) -> PgWireResult<()> {
    let text = match values {
        [Expr::Value(v)] => match &v.value {
            Value::Number(n, _) => n.clone(),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        [Expr::Identifier(i)] => i.value.clone(),
        other => other
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    };
    if text.eq_ignore_ascii_case("default") {
        metadata.remove(TIMEOUT_KEY);
        return Ok(());
    }
    let ms = milliseconds(&text).ok_or_else(|| {
        invalid(format!(
            "invalid value for parameter \"statement_timeout\": \"{text}\"\nHINT:  Valid units for this parameter are \"ms\", \"s\", \"min\", \"h\", and \"d\"."
        ))
    })?;
    if ms == 0 {
        metadata.remove(TIMEOUT_KEY);
    } else {
        metadata.insert(TIMEOUT_KEY.to_string(), ms.to_string());
    }
    Ok(())
}

/// A duration as PostgreSQL writes it for a setting in milliseconds: a whole or
/// fractional number, optionally followed by a unit; rounded to whole milliseconds.
fn milliseconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * scale).round();
    // PostgreSQL's limit for this setting: INT_MAX milliseconds.
    (ms.is_finite() && ms <= i32::MAX as f64).then_some(ms as u64)
}

/// `RESET name` or `RESET ALL`.
fn reset(reset: &Reset, metadata: &mut HashMap<String, String>) -> PgWireResult<()> {
    match reset {
        Reset::ALL => {
            metadata.remove(TIMEOUT_KEY);
            for name in KEPT {
                metadata.remove(name);
            }
            Ok(())
        }
        Reset::ConfigurationParameter(name) => {
            let name = name.to_string().to_ascii_lowercase();
            if name == "statement_timeout" {
                metadata.remove(TIMEOUT_KEY);
                Ok(())
            } else if KEPT.contains(&name.as_str()) {
                metadata.remove(&name);
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

/// The hook that answers these statements before datafusion-postgres's own (whose
/// `SET statement_timeout` takes a value it cannot read as no limit).
pub struct Settings;

#[async_trait]
impl QueryHook for Settings {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        apply(statement, client.metadata_mut()).map(|r| r.map(Response::Execution))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _unused: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Checked when executed (`apply`); nothing to plan.
        matches!(statement, Statement::Reset(_)).then(|| Ok(super::queries::no_rows()))
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _prepared: &LogicalPlan,
        _params: &datafusion::common::ParamValues,
        _unused: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Executed by `queries::Handler`, which calls `apply` first.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::milliseconds;

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
        ] {
            assert_eq!(milliseconds(text), ms, "{text}");
        }
    }
}
