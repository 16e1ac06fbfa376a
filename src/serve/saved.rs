//! The saved queries of `queries/` as table functions for clients of `cxr serve`:
//! `SELECT * FROM top_pairs()` runs `top_pairs.sql` with its defaults, and
//! `SELECT * FROM top_pairs(5)` binds the first declared parameter, as
//! `cxr run top_pairs -p top=5` does.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::sql::params::QueryFile;

/// Registers every saved query that loads as a table function of its name. A
/// query file that does not load is left out, and said on stderr once.
pub fn register(ctx: &SessionContext) {
    let Ok((files, errors)) = crate::sql::params::list() else {
        return;
    };
    for error in errors {
        say!("cxr serve: a saved query is left out: {error}");
    }
    for file in files {
        let name = file.name.clone();
        ctx.register_udtf(&name, Arc::new(SavedQuery(file)));
    }
}

/// One saved query.
#[derive(Debug)]
struct SavedQuery(QueryFile);

impl TableFunctionImpl for SavedQuery {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let file = &self.0;
        if args.exprs().len() > file.params.len() {
            return Err(plan_error(format!(
                "{}() takes at most {} argument(s), in this order: {}",
                file.name,
                file.params.len(),
                self.parameters()
            )));
        }
        let given = args
            .exprs()
            .iter()
            .zip(&file.params)
            .map(|(expr, param)| Ok((param.name.clone(), literal(expr, &file.name)?)))
            .collect::<Result<Vec<_>>>()?;
        let values = file.bind(&given).map_err(|e| plan_error(e.to_string()))?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("a session without SQL".into()))?;
        // Planning resolves only tables already registered in memory: it completes
        // without waiting on anything, so it can run here, inside a synchronous call.
        let plan = futures::executor::block_on(state.create_logical_plan(&file.sql))?
            .with_param_values(values)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

impl SavedQuery {
    fn parameters(&self) -> String {
        let names: Vec<String> = self.0.params.iter().map(|p| p.to_string()).collect();
        names.join(", ")
    }
}

/// An argument as the text `cxr run -p NAME=VALUE` would take: literals only.
fn literal(expr: &Expr, query: &str) -> Result<String> {
    match expr {
        Expr::Literal(value, _) => Ok(text(value)),
        Expr::Negative(inner) => match inner.as_ref() {
            Expr::Literal(value, _) => Ok(format!("-{}", text(value))),
            _ => Err(not_literal(query)),
        },
        _ => Err(not_literal(query)),
    }
}

fn text(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn not_literal(query: &str) -> DataFusionError {
    plan_error(format!(
        "the arguments of {query}() must be literal values written in the statement ({query}('Effusion', 40, true)), not parameters or expressions: a driver that sends parameters separately (psycopg 3's default cursor, JDBC's PreparedStatement) can write them into the text instead (psycopg.ClientCursor)"
    ))
}

fn plan_error(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}
