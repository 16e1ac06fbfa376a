//! `cxr run`: saved, parameterised queries from `queries/`.

use clap::Args;

use crate::cli::{OutputArgs, WarehouseArg};
use crate::error::{Error, Result};
use crate::sql::params::{self, QueryFile};
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr run --list\n  cxr run effusion_cohort --param sex=F --param min_age=40\n  cxr run conditional -p finding=Effusion"
)]
pub struct RunArgs {
    /// A query name (`effusion_cohort` finds queries/effusion_cohort.sql) or a file path.
    #[arg(value_name = "QUERY", required_unless_present = "list")]
    pub query: Option<String>,
    /// A parameter value, NAME=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = parse_kv)]
    pub params: Vec<(String, String)>,
    /// List the saved queries with their descriptions and parameters.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    Ok((k.trim().trim_start_matches('$').to_string(), v.to_string()))
}

/// Runs `cxr run`.
pub async fn run(args: RunArgs) -> Result<()> {
    if args.list {
        if args.query.is_some() || !args.params.is_empty() || args.warehouse.warehouse.is_some() {
            return Err(Error::Usage(
                "--list lists every saved query; it takes no query name, --param or --warehouse"
                    .into(),
            ));
        }
        // --format picks how the list is printed; nothing else of the output applies.
        crate::cli::OutputArgs {
            format: None,
            ..args.output.clone()
        }
        .refuse("--list (it prints the saved queries to stdout)")?;
        return list(args.output.format);
    }
    let name = args
        .query
        .as_deref()
        .ok_or_else(|| Error::Usage("no query given".into()))?;
    let path = params::resolve(name)?;
    let qf = QueryFile::load(&path)?;
    let values = qf.bind(&args.params)?;
    let wh = Warehouse::open(&args.warehouse.path(), Register::For(&qf.sql)).await?;
    check_datasets(&wh, &qf, &values).await?;
    let tally = crate::cli::emit_script(&wh, &qf.sql, false, &values, &args.output)
        .await
        .map_err(|e| match e {
            Error::Usage(_) | Error::Warehouse(_) | Error::Io { .. } | Error::Internal(_) => e,
            other => Error::Query(format!("{}: {other}", path.display())),
        })?;
    if tally.rows == 0 && !args.params.is_empty() {
        let given: Vec<String> = args
            .params
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        say!(
            "cxr: note: no rows for {} (check the values against the warehouse)",
            given.join(" ")
        );
    }
    Ok(())
}

/// A DATASET parameter names a dataset the warehouse holds (or `any`): another one
/// would match nothing.
async fn check_datasets(
    wh: &Warehouse,
    qf: &QueryFile,
    values: &[(String, datafusion::scalar::ScalarValue)],
) -> Result<()> {
    for p in qf
        .params
        .iter()
        .filter(|p| p.ty == params::ParamType::Dataset)
    {
        let Some((_, datafusion::scalar::ScalarValue::Utf8(Some(v)))) =
            values.iter().find(|(n, _)| n == &p.name)
        else {
            continue;
        };
        if v == "any" || !wh.has_table("datasets") {
            continue;
        }
        wh.register(Register::For("datasets")).await?;
        let held = wh
            .query("SELECT dataset FROM datasets ORDER BY dataset", &[])
            .await?
            .required_strings("dataset")?;
        if !held.contains(v) {
            return Err(Error::Usage(format!(
                "--param {}={v}: this warehouse holds no `{v}` (it holds {}); add it with `cxr ingest --dataset {v}=...`",
                p.name,
                held.join(", ")
            )));
        }
    }
    Ok(())
}

fn list(format: Option<crate::output::Format>) -> Result<()> {
    let mut t = crate::output::Listing::new(&["query", "description", "parameters"]);
    let (queries, unreadable) = params::list()?;
    for e in &unreadable {
        say!("cxr: skipped {e}");
    }
    for q in queries {
        let ps: Vec<String> = q.params.iter().map(ToString::to_string).collect();
        t.add_row(vec![q.name, q.description, ps.join("\n")]);
    }
    t.print(format)
}
