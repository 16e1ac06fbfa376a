//! `cxr shell`: an interactive SQL prompt (rustyline) over the warehouse.
//!
//! Statements end with `;` and may span lines. Backslash commands: `\d`, `\d TABLE`,
//! `\i FILE`, `\format FMT`, `\timing`, `\q`. Ctrl-C cancels the running query.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::cli::WarehouseArg;
use crate::error::{Error, Result};
use crate::output::Format;
use crate::sql::{Register, Warehouse};

/// Arguments of `cxr shell`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cxr shell\n  cxr> \\d images\n  cxr> SELECT count(*) FROM patients;"
)]
pub struct ShellArgs {
    #[command(flatten)]
    pub warehouse: WarehouseArg,
    /// Allow statements that write (CREATE VIEW, ...) for this session.
    #[arg(long)]
    pub allow_write: bool,
}

const HELP: &str = "\
statements end with ';' and may span lines
\\d            list tables and views
\\d TABLE      columns of TABLE
\\i FILE       run the statements in FILE
\\format FMT   table, csv, json, ndjson or markdown
\\timing       toggle query timing
\\q            quit (or Ctrl-D)";

struct Session {
    wh: Warehouse,
    rt: tokio::runtime::Runtime,
    format: Format,
    timing: bool,
    allow_write: bool,
}

/// Runs the shell until `\q` or end of input.
pub fn run(args: ShellArgs) -> Result<()> {
    let rt = crate::cli::runtime()?;
    let wh = rt.block_on(Warehouse::open(&args.warehouse.path(), Register::All))?;
    let mut s = Session {
        wh,
        rt,
        format: Format::Table,
        timing: false,
        allow_write: args.allow_write,
    };
    let mut editor = DefaultEditor::new()
        .map_err(|e| Error::Usage(format!("cannot start the line editor: {e}")))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!(
        "cxr shell on {} (\\? for help, \\q to quit)",
        s.wh.snapshot.root.display()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "cxr> " } else { "...> " };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && trimmed.starts_with('\\') {
                    let _ = editor.add_history_entry(trimmed);
                    if !s.command(trimmed) {
                        break;
                    }
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let _ = editor.add_history_entry(buffer.trim());
                    s.execute(&std::mem::take(&mut buffer));
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Usage(format!("line editor: {e}"))),
        }
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    Ok(())
}

/// `$XDG_DATA_HOME/cxr/history`, else `~/.local/share/cxr/history`.
fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("cxr").join("history"))
}

impl Session {
    /// Handles a backslash command; false means quit.
    fn command(&mut self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.collect::<Vec<_>>().join(" ");
        match cmd {
            "\\q" | "\\quit" => return false,
            "\\?" | "\\h" | "\\help" => eprintln!("{HELP}"),
            "\\timing" => {
                self.timing = !self.timing;
                eprintln!("timing {}", if self.timing { "on" } else { "off" });
            }
            "\\format" => match Format::from_str(&arg, true) {
                Ok(f) => self.format = f,
                Err(_) => eprintln!("unknown format `{arg}`: table, csv, json, ndjson or markdown"),
            },
            "\\d" if arg.is_empty() => self.execute(
                "SELECT table_name, table_type FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY table_name;",
            ),
            "\\d" => {
                let table = arg.replace('\'', "''");
                self.execute(&format!(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position;"
                ))
            }
            "\\i" => match std::fs::read_to_string(&arg) {
                Ok(sql) => self.execute(&sql),
                Err(e) => eprintln!("{arg}: {e}"),
            },
            _ => eprintln!("unknown command `{cmd}`\n{HELP}"),
        }
        true
    }

    /// Runs statements, printing results or the error; Ctrl-C cancels.
    fn execute(&mut self, sql: &str) {
        let start = Instant::now();
        let (wh, format, allow_write) = (&self.wh, self.format, self.allow_write);
        let work = async {
            for df in wh.plan(sql, allow_write, &[]).await? {
                crate::output::print_stream(df, format, 0).await?;
            }
            Ok::<(), Error>(())
        };
        let result = self.rt.block_on(async {
            tokio::select! {
                r = work => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        match result {
            None => eprintln!("cancelled"),
            Some(Err(e)) => eprintln!("error: {e}"),
            Some(Ok(())) => {}
        }
        if self.timing {
            eprintln!("time: {:.3} s", start.elapsed().as_secs_f64());
        }
    }
}
