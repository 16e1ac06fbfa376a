//! `cxr shell`: an interactive SQL prompt (rustyline) over the warehouse.
//!
//! Statements end with `;` and may span lines. Backslash commands: `\d`, `\d TABLE`,
//! `\i FILE`, `\format FMT`, `\maxrows N`, `\timing`, `\q`. Ctrl-C cancels the running query.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::cli::WarehouseArg;
use crate::error::{Error, Result};
use crate::output::Format;
use crate::sql::{Interrupt, Register, Warehouse};

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
\\maxrows N    rows a table shows (0: all; default 40)
\\timing       toggle query timing
\\q            quit (or Ctrl-D)";

struct Session {
    wh: Warehouse,
    rt: tokio::runtime::Runtime,
    format: Format,
    /// Rows the table format shows (0: all).
    max_rows: usize,
    timing: bool,
    allow_write: bool,
    /// SIGINT, for cancelling the running query.
    interrupts: std::sync::Arc<tokio::sync::Notify>,
    /// Stops the running query's operators (see `sql::Interrupt`).
    interrupt: Interrupt,
    /// Statements and commands that failed.
    failures: usize,
    /// A failure of the shell's own output (stdout that cannot be written): a
    /// script stops at once and the shell exits with it (exit 1, not a query's 2).
    fatal: Option<Error>,
    /// Where input lines come from, for errors in scripts and `\i` files: the name
    /// (None on a terminal), the line last read, and the line the open statement
    /// began on.
    place: Place,
    /// How many `\\i` files deep the input is.
    depth: usize,
}

/// `\\i` inside `\\i` files: a file that includes itself stops here.
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Default, Clone)]
struct Place {
    name: Option<String>,
    line: u64,
    statement: u64,
}

/// Runs the shell until `\q` or end of input. On a terminal it is a line editor with
/// history; with input from a pipe or file it runs the script line by line (a last
/// statement without `;` runs at the end) and fails when any statement failed.
/// Set by the SIGINT handler; the only thing a signal handler may safely do.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ctrl-C is ours: the handler sets a flag, and a plain thread (not the runtime, whose
/// workers a running query keeps busy) stops the query's operators and wakes the
/// query's select.
fn watch_interrupts(interrupt: Interrupt) -> std::sync::Arc<tokio::sync::Notify> {
    extern "C" fn on_sigint(_: libc::c_int) {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let waker = notify.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if INTERRUPTED.swap(false, std::sync::atomic::Ordering::SeqCst) {
                interrupt.fire();
                waker.notify_waiters();
            }
        }
    });
    notify
}

pub fn run(args: ShellArgs) -> Result<()> {
    let rt = crate::cli::runtime()?;
    let interrupt = Interrupt::default();
    let wh = rt.block_on(Warehouse::open_with(
        &args.warehouse.path(),
        Register::All,
        Some(&interrupt),
    ))?;
    // Ctrl-C is ours from here on: it cancels the running query or clears the open
    // statement, never ends the shell.
    let interrupts = watch_interrupts(interrupt.clone());
    use std::io::IsTerminal;
    let on_terminal = std::io::stdin().is_terminal();
    let mut s = Session {
        wh,
        rt,
        // Tables on a terminal, CSV into a pipe or file, as `cxr sql` prints.
        format: Format::default_for_stdout(),
        max_rows: 40,
        timing: false,
        allow_write: args.allow_write,
        interrupts,
        interrupt,
        failures: 0,
        fatal: None,
        place: Place {
            name: (!on_terminal).then(|| "stdin".to_string()),
            ..Place::default()
        },
        depth: 0,
    };
    let result = if on_terminal {
        interactive(&mut s)
    } else {
        script(&mut s)
    };
    let failures = s.failures;
    let fatal = s.fatal.take();
    // Do not wait for a cancelled query's tasks to notice that they were dropped.
    s.rt.shutdown_background();
    result?;
    if let Some(e) = fatal {
        return Err(e);
    }
    if failures > 0 && !on_terminal {
        return Err(Error::Query(format!(
            "{failures} statement{} failed",
            if failures == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// What one line of input did.
enum Step {
    Continue,
    Quit,
}

/// Feeds one line to the session: a backslash command (only between statements), or
/// part of a statement that runs when a line ends with `;`.
fn feed(s: &mut Session, buffer: &mut String, line: &str) -> Step {
    let trimmed = line.trim();
    s.place.line += 1;
    // Comment lines before a statement are not part of it: its line is its first
    // line of SQL, from which the parser's own "Line: L" counts too.
    if only_comments(buffer) && !trimmed.is_empty() && !trimmed.starts_with("--") {
        buffer.clear();
    }
    if buffer.trim().is_empty() {
        s.place.statement = s.place.line;
    }
    if trimmed.starts_with('\\') {
        if !buffer.trim().is_empty() {
            if matches!(trimmed, "\\q" | "\\quit") {
                say!("the open statement was not run");
                return Step::Quit;
            }
            s.fail(&format!(
                "`{trimmed}` inside an open statement: end the statement with ';' first (Ctrl-C clears it)"
            ));
            return Step::Continue;
        }
        return if s.command(trimmed) {
            Step::Continue
        } else {
            Step::Quit
        };
    }
    buffer.push_str(line);
    buffer.push('\n');
    if trimmed.ends_with(';') {
        let sql = std::mem::take(buffer);
        s.execute(&sql);
    }
    Step::Continue
}

/// Whether `buffer` holds nothing but blank lines and `--` comments.
fn only_comments(buffer: &str) -> bool {
    buffer.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with("--")
    })
}

fn interactive(s: &mut Session) -> Result<()> {
    let mut editor = DefaultEditor::new()
        .map_err(|e| Error::io("cannot start the line editor", std::io::Error::other(e)))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    say!(
        "cxr shell on {} (\\? for help, \\q to quit)",
        s.wh.snapshot.root.display()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "cxr> " } else { "...> " };
        match editor.readline(prompt) {
            Ok(text) => {
                // A paste without bracketed paste may bring several lines at once.
                let mut quit = false;
                for line in text.split('\n') {
                    let line = line.trim_end_matches('\r');
                    // A backslash command is an entry of its own (inside an open
                    // statement it is refused, and Up + Enter must not repeat that);
                    // the history file is written at once, so a killed shell keeps it.
                    let entry = if line.trim().starts_with('\\') {
                        Some(line.to_string())
                    } else {
                        line.trim()
                            .ends_with(';')
                            .then(|| format!("{buffer}{line}"))
                    };
                    if let Some(entry) = entry {
                        let _ = editor.add_history_entry(entry.trim());
                        save_history(&mut editor, history.as_deref());
                    }
                    if let Step::Quit = feed(s, &mut buffer, line) {
                        quit = true;
                        break;
                    }
                }
                if quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => {
                if !buffer.trim().is_empty() {
                    s.execute(&std::mem::take(&mut buffer));
                }
                break;
            }
            Err(e) => return Err(Error::io("line editor", std::io::Error::other(e))),
        }
    }
    Ok(())
}

/// Writes the shell's history file (best effort: a shell without one still works).
fn save_history(editor: &mut DefaultEditor, history: Option<&std::path::Path>) {
    if let Some(h) = history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
}

fn script(s: &mut Session) -> Result<()> {
    use crate::input::text::{MAX_SQL_BYTES, TextError, read_line};
    let mut buffer = String::new();
    let mut stdin = std::io::stdin().lock();
    let mut number = 0;
    loop {
        number += 1;
        let line = match read_line(&mut stdin, MAX_SQL_BYTES, number) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(TextError::Io(e)) => return Err(Error::io("cannot read the shell's input", e)),
            Err(e) => return Err(Error::Usage(format!("the shell's input: {e}"))),
        };
        if buffer.len() as u64 > MAX_SQL_BYTES {
            return Err(Error::Usage(format!(
                "the shell's input, line {number}: a statement longer than {} MiB without ';'",
                MAX_SQL_BYTES >> 20
            )));
        }
        if let Step::Quit = feed(s, &mut buffer, &line) {
            return Ok(());
        }
        if s.fatal.is_some() {
            return Ok(());
        }
    }
    if !buffer.trim().is_empty() {
        s.execute(&buffer);
    }
    Ok(())
}

/// A file run with `\\i`: a regular file (a FIFO would block the shell) of at most
/// [`crate::input::text::MAX_SQL_BYTES`] of UTF-8.
fn read_script(path: &str) -> std::result::Result<String, String> {
    use crate::input::text::{MAX_SQL_BYTES, read_all};
    // In words, as every other error ("no such file", not "(os error 2)").
    let plain = |e: std::io::Error| crate::error::without_os_error_numbers(&e.to_string());
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err("not a regular file".into()),
        Err(e) => return Err(plain(e)),
        Ok(_) => {}
    }
    let file = std::fs::File::open(path).map_err(plain)?;
    read_all(file, MAX_SQL_BYTES).map_err(|e| e.to_string())
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
            "\\?" | "\\h" | "\\help" => say!("{HELP}"),
            "\\timing" => {
                self.timing = !self.timing;
                say!("timing {}", if self.timing { "on" } else { "off" });
            }
            "\\format" => match Format::from_str(&arg, true) {
                Ok(f) => self.format = f,
                Err(_) => self.fail(&format!(
                    "unknown format `{arg}`: table, csv, json, ndjson or markdown"
                )),
            },
            "\\maxrows" if arg.is_empty() => {
                say!(
                    "tables show {} rows (\\maxrows N to change, 0 for all)",
                    self.max_rows
                )
            }
            "\\maxrows" => match arg.parse::<usize>() {
                Ok(n) => self.max_rows = n,
                Err(_) => self.fail(&format!(
                    "\\maxrows takes a number of rows (0 for all), not `{arg}`"
                )),
            },
            "\\d" if arg.is_empty() => self.execute(
                "SELECT table_name, table_type FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY table_name;",
            ),
            "\\d" => {
                let names = self.table_names();
                // As SQL (and psql) names a table: folded to lower case unless
                // quoted (`\d IMAGES` and `\d "images"` are `images`).
                let arg = match arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None => arg.to_lowercase(),
                };
                if !names.iter().any(|n| n == &arg) {
                    self.fail(&format!(
                        "no table or view named `{arg}`; there are: {}",
                        names.join(", ")
                    ));
                    return true;
                }
                let table = arg.replace('\'', "''");
                self.execute(&format!(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position;"
                ))
            }
            // The file runs as if typed: statement by statement, its commands too.
            "\\i" if self.depth >= MAX_INCLUDE_DEPTH => self.fail(&format!(
                "\\i {arg}: files included {MAX_INCLUDE_DEPTH} deep; does a file include itself?"
            )),
            "\\i" => match read_script(&arg) {
                Ok(text) => {
                    let outer = std::mem::replace(
                        &mut self.place,
                        Place {
                            name: Some(arg.clone()),
                            ..Place::default()
                        },
                    );
                    let mut buffer = String::new();
                    let mut quit = false;
                    self.depth += 1;
                    for line in text.lines() {
                        if let Step::Quit = feed(self, &mut buffer, line) {
                            quit = true;
                            break;
                        }
                    }
                    if !quit && !buffer.trim().is_empty() {
                        self.execute(&buffer);
                    }
                    self.depth -= 1;
                    self.place = outer;
                    if quit {
                        return false;
                    }
                }
                Err(e) => self.fail(&format!("{arg}: {e}")),
            },
            _ => self.fail(&format!("unknown command `{cmd}`\n{HELP}")),
        }
        true
    }

    /// Reports a failed statement or command.
    fn fail(&mut self, msg: &str) {
        match &self.place.name {
            // The statement's own "Line: L" counts from its first line.
            Some(name) => say!(
                "cxr: error: {name}, statement at line {}: {msg}",
                self.place.statement
            ),
            None => say!("error: {msg}"),
        }
        self.failures += 1;
    }

    /// The tables and views of the session.
    fn table_names(&self) -> Vec<String> {
        let ctx = &self.wh.ctx;
        let mut names: Vec<String> = ctx
            .catalog_names()
            .into_iter()
            .filter_map(|c| ctx.catalog(&c))
            .filter_map(|c| c.schema("public"))
            .flat_map(|s| s.table_names())
            .collect();
        names.sort();
        names
    }

    /// Runs statements one by one, as psql does: one that fails does not keep the
    /// next from running.
    fn execute(&mut self, sql: &str) {
        for statement in crate::input::text::split_statements(sql) {
            if self.fatal.is_some() {
                return;
            }
            self.execute_one(statement);
        }
    }

    /// Runs a statement, printing its result or the error; Ctrl-C cancels.
    fn execute_one(&mut self, sql: &str) {
        // A script may end with a comment: nothing to run, nothing failed.
        if crate::sql::no_statement(sql) {
            return;
        }
        let start = Instant::now();
        // Forget interrupts that arrived while no query ran.
        INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
        self.interrupt.renew();
        let (wh, format, allow_write) = (&self.wh, self.format, self.allow_write);
        let max_rows = self.max_rows;
        let interrupts = self.interrupts.clone();
        let work = async {
            for df in wh.plan(sql, allow_write, &[]).await? {
                crate::output::print_stream(df, format, max_rows, crate::output::Asked::Shell)
                    .await?;
            }
            Ok::<(), Error>(())
        };
        // Dropping `work` drops the query's stream, which aborts its tasks.
        let result = self.rt.block_on(async {
            tokio::select! {
                r = work => Some(r),
                _ = interrupts.notified() => None,
            }
        });
        match result {
            None => {
                say!("cancelled");
                self.failures += 1;
            }
            Some(Err(e)) if e.is_broken_pipe() => {}
            Some(Err(e @ Error::Io { .. }))
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) =>
            {
                self.fatal = Some(e)
            }
            Some(Err(e)) => self.fail(&e.to_string()),
            Some(Ok(())) => {}
        }
        if self.timing {
            say!("time: {:.3} s", start.elapsed().as_secs_f64());
        }
    }
}
