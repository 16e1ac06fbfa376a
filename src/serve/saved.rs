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
/// `held`: the datasets the warehouse holds, which a DATASET parameter must name
/// (as `cxr run` checks).
pub fn register(ctx: &SessionContext, held: &[String]) {
    let Ok((files, errors)) = crate::sql::params::list() else {
        return;
    };
    for error in errors {
        say!("cxr serve: a saved query is left out: {error}");
    }
    for file in files {
        let name = file.name.clone();
        ctx.register_udtf(
            &name,
            Arc::new(SavedQuery {
                file,
                held: held.to_vec(),
            }),
        );
    }
}

/// One saved query, and the datasets of the warehouse.
#[derive(Debug)]
struct SavedQuery {
    file: QueryFile,
    held: Vec<String>,
}

impl TableFunctionImpl for SavedQuery {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let file = &self.file;
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
        let values = file.bind(&given).map_err(|e| self.error(e))?;
        self.check_datasets(&values)?;
        let state = args
            .session()
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("a session without SQL".into()))?;
        // Planning resolves only tables already registered in memory: it completes
        // without waiting on anything, so it can run here, inside a synchronous call.
        let plan = futures::executor::block_on(state.create_logical_plan(&file.sql))?
            .with_param_values(values)?;
        Ok(Arc::new(InOrder(ViewTable::new(plan, None))))
    }
}

/// A saved query's rows in the order its `ORDER BY` gives, as `cxr run` prints
/// them. A view's plan is inlined into the statement that reads it, where the
/// optimiser may split its rows over partitions and lose the order (`SELECT * FROM
/// conditional('Hernia')` came back by name, not by probability); planned here as a
/// scan of its own, the query is sorted where its rows are made.
#[derive(Debug)]
struct InOrder(ViewTable);

#[async_trait::async_trait]
impl TableProvider for InOrder {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        datafusion::logical_expr::TableType::View
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }
}

impl SavedQuery {
    fn parameters(&self) -> String {
        let names: Vec<String> = self.file.params.iter().map(|p| p.to_string()).collect();
        names.join(", ")
    }

    /// A binding error as a SQL client reads it: the function, not the server's
    /// path to its file, and parameters, not command-line flags.
    fn error(&self, error: crate::Error) -> DataFusionError {
        let text = error
            .to_string()
            .replace(
                &self.file.path.display().to_string(),
                &format!("{}()", self.file.name),
            )
            .replace("--param ", "");
        plan_error(text)
    }

    /// A DATASET argument names a dataset the warehouse holds (or `any`): another
    /// would match nothing, and `cxr run` refuses it.
    fn check_datasets(&self, values: &[(String, ScalarValue)]) -> Result<()> {
        for param in &self.file.params {
            if param.ty != crate::sql::params::ParamType::Dataset || self.held.is_empty() {
                continue;
            }
            if let Some((_, ScalarValue::Utf8(Some(v)))) =
                values.iter().find(|(n, _)| n == &param.name)
                && v != "any"
                && !self.held.contains(v)
            {
                return Err(plan_error(format!(
                    "{}(): {} `{v}`: this warehouse holds no `{v}` (it holds {})",
                    self.file.name,
                    param.name,
                    self.held.join(", ")
                )));
            }
        }
        Ok(())
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
