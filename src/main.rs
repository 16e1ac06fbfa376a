//! The `cxr` command line: parse arguments, dispatch, and turn an error into one
//! message and one exit code (0 ok, 1 failure inside cxr or the system, 2 bad input
//! or usage, 130 interrupted).

// polars, DataFusion and the ingest allocate many small strings; mimalloc is much
// faster at that than the system allocator on these machines.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Transparent huge pages ("always" on many Linux machines) make every first touch
    // of freshly mapped memory zero 2 MiB, and mimalloc returns freed memory to the
    // system soon after: the ingest of a large CSV spent ~40 % of its time zeroing
    // pages. Ordinary pages cost only what is touched. (Linux only; a no-op
    // elsewhere, and a failure here changes nothing but speed.)
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let cli = match cxr::cli::parse(cxr::cli::sql_comment_last(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and succeed (unless stdout fails); a bad
            // command line is 2.
            if e.use_stderr() {
                // Every error cxr prints starts "cxr: error:", clap's own too.
                let text = cxr::cli::plain_clap_error(&e.render().to_string());
                say(&format!("cxr: {text}"));
                std::process::exit(2);
            }
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match write!(out, "{}", e.render()).and_then(|_| out.flush()) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    say(&format!(
                        "cxr: error: writing to stdout: {}\n",
                        cxr::error::without_os_error_numbers(&err.to_string())
                    ));
                    std::process::exit(1);
                }
                _ => std::process::exit(0),
            }
        }
    };
    quiet_panics();
    // A panic is a bug in cxr or a library, never an answer to bad input: it becomes
    // one message and exit code 1, not a backtrace and 101.
    // The command runs on a thread with the stack every SQL-planning thread has
    // (the main thread's is the system's, often 8 MiB): deep statements plan alike
    // in `cxr sql` and in the server.
    let command = std::thread::Builder::new()
        .name("cxr".into())
        .stack_size(cxr::cli::STACK_BYTES)
        .spawn(move || std::panic::catch_unwind(|| cxr::cli::run(cli)));
    let result: Result<cxr::Result<()>, ()> = match command {
        Ok(thread) => match thread.join() {
            Ok(Ok(finished)) => Ok(finished),
            _ => Err(()),
        },
        Err(e) => Ok(Err(cxr::error::Error::io(
            "cannot start the command's thread",
            e,
        ))),
    };
    let result = result.unwrap_or_else(|_| {
        let what = PANIC
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .unwrap_or_default();
        Err(cxr::error::Error::Internal(format!(
            "{what} (a bug in cxr or a library it uses; please report the command)"
        )))
    });
    if let Err(e) = result {
        if e.is_broken_pipe() {
            // The reader of our output went away (`| head`): not a failure.
            std::process::exit(0);
        }
        say(&format!("cxr: error: {}\n", shortened(&e.to_string())));
        if let Some(hint) = e.hint() {
            say(&format!("cxr: {hint}\n"));
        }
        std::process::exit(e.exit_code());
    }
}

/// Writes to stderr, which may be closed or full (`2>/dev/full`): the exit code
/// still says what happened, where `eprintln!` would panic (101).
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// An error message of at most a few lines' worth: some echo a whole statement
/// (a 50 MB one would be printed whole).
fn shortened(message: &str) -> String {
    const MAX_CHARS: usize = 2000;
    let message = &cxr::error::without_os_error_numbers(message);
    match message.char_indices().nth(MAX_CHARS) {
        None => message.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} more bytes of this message left out)",
            &message[..cut],
            message.len() - cut
        ),
    }
}

/// The message of the last panic, for the error that replaces it.
static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Panics are recorded, not printed (some are caught on purpose: a PNG decoder that
/// panics on one image becomes a `pixel_errors` row). `CXR_TRACE=1` prints them too.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = cxr::error::panic_text(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut m) = PANIC.lock() {
            *m = Some(format!("internal error: {message}{at}"));
        }
        if std::env::var_os("CXR_TRACE").is_some() {
            default(info);
        }
    }));
}
