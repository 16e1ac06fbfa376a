//! `cxr sql`: ad-hoc SQL over the warehouse.

use clap::Args;

use crate::cli::{OutputArgs, WarehouseArg};
use crate::error::{Error, Result};
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr sql`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr sql \"SELECT label, count(*) AS n FROM findings GROUP BY label ORDER BY n DESC\""
)]
pub struct SqlArgs {
    /// One or more `;`-separated statements; `-` reads them from stdin. SQL may start
    /// with a `-- comment`.
    #[arg(value_name = "SQL")]
    pub sql: String,
    /// Allow statements that write (CREATE, INSERT, COPY, ...).
    #[arg(long)]
    pub allow_write: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Runs `cxr sql`.
pub async fn run(args: SqlArgs) -> Result<()> {
    let sql = if args.sql == "-" {
        use crate::input::text::{MAX_SQL_BYTES, TextError, read_all};
        read_all(std::io::stdin().lock(), MAX_SQL_BYTES).map_err(|e| match e {
            TextError::Io(e) => Error::io("reading SQL from stdin", e),
            other => Error::Usage(format!("the SQL on stdin: {other}")),
        })?
    } else {
        args.sql.clone()
    };
    let wh = Warehouse::open(&args.warehouse.path(), Register::For(&sql)).await?;
    crate::cli::emit_script(&wh, &sql, args.allow_write, &[], &args.output)
        .await
        .map(|_| ())
}
