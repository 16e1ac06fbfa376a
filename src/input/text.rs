//! SQL text from stdin and files, bounded: `cxr sql - < /dev/zero` or a shell fed
//! an endless line must stop with an error, not grow until the machine runs out of
//! memory.

use std::io::{BufRead, Read};

/// The most SQL cxr reads at once (all of stdin for `cxr sql -`, a file run with
/// `\i`, one statement or line of a shell script): far beyond any hand-written or
/// generated query.
pub const MAX_SQL_BYTES: u64 = 16 << 20;

/// The most operators (`AND`, `OR`, `+`, `||`, `UNION`, ...) one statement may chain,
/// and the deepest its parentheses may nest. Parsing, planning and dropping a
/// statement recurse once per level: 2,000 `OR`s overflowed a 2 MiB thread's stack
/// and took the whole process (a server with every client) down. Far beyond any
/// hand-written or generated query (cxr's own are a few hundred); every thread that
/// plans has [`STACK_BYTES`].
pub const MAX_OPERATORS: usize = 5_000;
/// See [`MAX_OPERATORS`].
pub const MAX_PARENTHESES: usize = 500;

/// The deepest one statement may nest function calls (`abs(abs(...))`): the
/// PostgreSQL dialect's parser, which `cxr serve` and its libraries parse with, reads
/// each argument twice (as the name of a named argument, then as a value), so the
/// time doubles with each level: 22 levels took 8 s, 30 minutes, on a thread no
/// time limit can stop. 16 take a tenth of a second.
pub const MAX_NESTED_CALLS: usize = 16;

/// The most tokens (names, values, operators, commas) one statement may have.
/// Parsing and planning take 1-2 KiB per token whatever the limits on a query's
/// memory (`SELECT 1,1,...` of 500,000 items took 2 GiB in `cxr serve`); this keeps
/// one statement under about 100 MiB. A list of values longer than that belongs in a
/// file or a table.
pub const MAX_TOKENS: usize = 50_000;

/// The most tokens a whole text (a script, a server's message) may have, its
/// statements together: [`MAX_TOKENS`] for each of a few statements.
pub const MAX_TEXT_TOKENS: usize = 4 * MAX_TOKENS;

/// The most tokens the SQL tokenizer may make of a whole text, blanks counted (it
/// makes one of each blank): about 100 MiB of them. 16 MiB of spaces or of `1+1+...`
/// took 1.4 GiB.
pub const MAX_TOKENIZED: usize = 1_000_000;

/// Whether `sql` has more tokens than a statement ([`MAX_TOKENS`]), the whole text
/// ([`MAX_TEXT_TOKENS`]) or the tokenizer ([`MAX_TOKENIZED`]) may have, counted
/// without the tokenizer and never fewer than it makes: a run of ASCII letters,
/// digits and `_` is one token, every other byte one (inside quotes and comments too,
/// as a scan can misread where they end: `E'\''`, `$$it's$$`). Only where one
/// statement ends is read with quotes and comments: at a `;` outside them.
pub fn too_many_tokens(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (mut statement, mut text, mut tokenized) = (0usize, 0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        tokenized += 1;
        if b.is_ascii_whitespace() {
            if b == b'\n' && quote == Some(b'\n') {
                quote = None; // the end of a `--` comment
            }
            if tokenized > MAX_TOKENIZED {
                return true;
            }
            continue;
        }
        if word(b) {
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
        }
        statement += 1;
        text += 1;
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b';') => statement = 0,
            (None, b'-') if bytes.get(i) == Some(&b'-') => quote = Some(b'\n'),
            _ => {}
        }
        if statement > MAX_TOKENS || text > MAX_TEXT_TOKENS || tokenized > MAX_TOKENIZED {
            return true;
        }
    }
    false
}

/// The stack of every thread that parses or plans SQL (the command's, the server's):
/// [`MAX_OPERATORS`] levels take about a tenth of it. Only the pages used are
/// touched.
pub const STACK_BYTES: usize = 64 << 20;

/// Why a statement of `sql` nests too deeply to be planned safely, if one does.
pub fn too_deep(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if too_many_tokens(sql) {
        return Some(format!(
            "a statement has more than {MAX_TOKENS} tokens (names, values, operators, commas), more than cxr parses and plans within bounded memory; put a long list of values in a table or a file, or split the statement"
        ));
    }
    // Text that does not tokenize is left to the parser, which says where.
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().ok()?;
    let (mut operators, mut depth) = (0usize, 0usize);
    // Per open parenthesis, whether it opens a call (follows a name); and how many
    // of those are open.
    let mut opened: Vec<bool> = Vec::new();
    let mut calls = 0usize;
    let mut after_word = false;
    for token in tokens {
        let word = matches!(token, Token::Word(_));
        let blank = matches!(token, Token::Whitespace(_));
        // `ARRAY[` constructs as a call does: 48 of them nested froze the planner.
        let call = after_word && matches!(token, Token::LParen | Token::LBracket);
        match token {
            Token::SemiColon => {
                (operators, depth, calls) = (0, 0, 0);
                opened.clear();
            }
            Token::LParen | Token::LBracket => {
                depth += 1;
                calls += usize::from(call);
                opened.push(call);
            }
            Token::RParen | Token::RBracket => {
                depth = depth.saturating_sub(1);
                calls -= usize::from(opened.pop() == Some(true));
            }
            Token::Word(w) => {
                if matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::UNION
                        | Keyword::INTERSECT
                        | Keyword::EXCEPT
                        | Keyword::IS
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::BETWEEN
                ) {
                    operators += 1;
                }
            }
            Token::Whitespace(_)
            | Token::Comma
            | Token::Period
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::EOF => {}
            t if is_literal(&t) => {}
            _ => operators += 1,
        }
        if operators > MAX_OPERATORS {
            return Some(format!(
                "a statement chains more than {MAX_OPERATORS} operators (AND, OR, +, ||, UNION, ...), more than cxr plans safely; use IN (...) for long lists of values, or split the statement"
            ));
        }
        if depth > MAX_PARENTHESES {
            return Some(format!(
                "a statement nests parentheses more than {MAX_PARENTHESES} deep, more than cxr plans safely"
            ));
        }
        if calls > MAX_NESTED_CALLS {
            return Some(format!(
                "a statement nests function calls (or ARRAY[...]) more than {MAX_NESTED_CALLS} deep, more than cxr parses safely; compute in steps (a subquery or a CTE per few levels)"
            ));
        }
        // Blanks between a name and its parenthesis keep it a call.
        after_word = word || (after_word && blank);
    }
    None
}

/// The statements of `sql`, each with its own `;`, as the text gives them, so that a
/// shell runs each on its own as psql does: one that fails does not keep the next
/// one on its line from running. Text that does not tokenize is one piece, which the
/// parser then reports.
pub fn split_statements(sql: &str) -> Vec<&str> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    // Not tokenized whole: its planning refuses it (`too_deep`).
    if too_many_tokens(sql) {
        return vec![sql];
    }
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        return vec![sql];
    };
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    // The tokenizer counts lines and characters from 1.
    let byte_after = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let (i, c) = sql[start..]
            .char_indices()
            .nth(usize::try_from(column).ok()?.checked_sub(1)?)?;
        Some(start + i + c.len_utf8())
    };
    let mut pieces = Vec::new();
    let mut from = 0;
    for token in tokens {
        if token.token != Token::SemiColon {
            continue;
        }
        let Some(end) = byte_after(token.span.start.line, token.span.start.column) else {
            return vec![sql];
        };
        pieces.push(&sql[from..end]);
        from = end;
    }
    if !sql[from..].trim().is_empty() {
        pieces.push(&sql[from..]);
    }
    pieces
}

/// Whether a token is a quoted literal (a string of any kind).
fn is_literal(token: &datafusion::sql::sqlparser::tokenizer::Token) -> bool {
    use datafusion::sql::sqlparser::tokenizer::Token as T;
    matches!(
        token,
        T::SingleQuotedString(_)
            | T::DoubleQuotedString(_)
            | T::TripleSingleQuotedString(_)
            | T::TripleDoubleQuotedString(_)
            | T::DollarQuotedString(_)
            | T::SingleQuotedByteStringLiteral(_)
            | T::DoubleQuotedByteStringLiteral(_)
            | T::TripleSingleQuotedByteStringLiteral(_)
            | T::TripleDoubleQuotedByteStringLiteral(_)
            | T::SingleQuotedRawStringLiteral(_)
            | T::DoubleQuotedRawStringLiteral(_)
            | T::TripleSingleQuotedRawStringLiteral(_)
            | T::TripleDoubleQuotedRawStringLiteral(_)
            | T::NationalStringLiteral(_)
            | T::EscapedStringLiteral(_)
            | T::UnicodeStringLiteral(_)
            | T::HexStringLiteral(_)
            | T::Char(_)
    )
}

/// Why text could not be read.
#[derive(Debug)]
pub enum TextError {
    /// More than the cap.
    TooLarge(u64),
    /// Not UTF-8; the 1-based line of the first bad byte.
    NotUtf8(u64),
    /// The read failed.
    Io(std::io::Error),
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::TooLarge(cap) if *cap >= 1 << 20 => {
                write!(f, "longer than {} MiB", cap >> 20)
            }
            TextError::TooLarge(cap) => write!(f, "longer than {cap} bytes"),
            TextError::NotUtf8(line) => write!(f, "not UTF-8 text (line {line})"),
            TextError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// Reads all of `reader`, at most `cap` bytes of UTF-8.
pub fn read_all(reader: impl Read, cap: u64) -> Result<String, TextError> {
    let mut bytes = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(TextError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(TextError::TooLarge(cap));
    }
    utf8(without_byte_order_mark(bytes), 1)
}

/// Text saved by some Windows editors starts with a UTF-8 byte-order mark, which is
/// no part of the SQL (CSV inputs drop it too).
fn without_byte_order_mark(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    bytes
}

/// Reads one line (its end of line left out) of at most `cap` bytes; None at the
/// end of the input. `line` is the line's number, for errors.
pub fn read_line(
    reader: &mut impl BufRead,
    cap: u64,
    line: u64,
) -> Result<Option<String>, TextError> {
    let mut bytes = Vec::new();
    let n = reader
        .take(cap + 1)
        .read_until(b'\n', &mut bytes)
        .map_err(TextError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.len() as u64 > cap {
        return Err(TextError::TooLarge(cap));
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if line == 1 {
        bytes = without_byte_order_mark(bytes);
    }
    utf8(bytes, line).map(Some)
}

fn utf8(bytes: Vec<u8>, first_line: u64) -> Result<String, TextError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        TextError::NotUtf8(first_line + valid.iter().filter(|&&b| b == b'\n').count() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_counted_never_fewer_than_the_tokenizer_makes() {
        let items = |n: usize| format!("SELECT {}1", "1,".repeat(n));
        // `SELECT`, then n `1` and n commas, then the last `1`.
        let at_limit = (MAX_TOKENS - 2) / 2;
        assert!(!too_many_tokens(&items(at_limit)));
        assert!(too_many_tokens(&items(at_limit + 1)));
        assert!(too_deep(&items(at_limit + 1)).is_some_and(|why| why.contains("tokens")));
        // Each statement of a text has the limit to itself, a few statements at most.
        let statements = |n: usize| vec![items(at_limit); n].join(";\n");
        assert!(!too_many_tokens(&statements(2)));
        assert!(too_many_tokens(&statements(5)));
        // A `;` inside quotes or a comment ends no statement; what is inside them is
        // counted, so that quoting the scan misreads (an escape, a dollar quote) can
        // hide nothing from it.
        // (Past the limit only when the `;` is not read as a statement's end.)
        let rest = format!("{}1", "1,".repeat(at_limit - 1));
        for text in [
            format!("SELECT ';', {rest}"),
            format!("SELECT 1 AS \";\", {rest}"),
            format!("SELECT 1 -- ;\n, {rest}"),
            format!("SELECT E'\\'' AS a; SELECT {rest}, {rest}"),
            format!("SELECT $$it's$$ AS a; SELECT {rest}, {rest}"),
            format!("SELECT '{}'", ",".repeat(MAX_TOKENS)),
        ] {
            assert!(too_many_tokens(&text), "{}", &text[..30]);
        }
        // Blanks count against the tokenizer's budget; a long word is one token.
        assert!(too_many_tokens(&format!(
            "SELECT 1{}",
            " ".repeat(MAX_TOKENIZED)
        )));
        assert!(!too_many_tokens(&format!(
            "SELECT 1 /* {} */",
            "x".repeat(10 << 20)
        )));
    }

    #[test]
    fn caps_and_lines() {
        assert_eq!(read_all(&b"SELECT 1"[..], 8).unwrap(), "SELECT 1");
        assert_eq!(
            read_all(&b"\xEF\xBB\xBFSELECT 1"[..], 16).unwrap(),
            "SELECT 1"
        );
        let mut bom = &b"\xEF\xBB\xBFSELECT 1;\n"[..];
        assert_eq!(read_line(&mut bom, 100, 1).unwrap().unwrap(), "SELECT 1;");
        assert!(matches!(
            read_all(&b"SELECT 12"[..], 8),
            Err(TextError::TooLarge(8))
        ));
        assert!(matches!(
            read_all(&b"a\nb\n\xff"[..], 100),
            Err(TextError::NotUtf8(3))
        ));
        let mut r = &b"one\r\ntwo\nthree"[..];
        let lines: Vec<String> = std::iter::from_fn(|| read_line(&mut r, 10, 1).unwrap()).collect();
        assert_eq!(lines, ["one", "two", "three"]);
        let mut endless = std::io::repeat(b'x');
        let mut endless = std::io::BufReader::new(&mut endless);
        assert!(matches!(
            read_line(&mut endless, 1000, 1),
            Err(TextError::TooLarge(1000))
        ));
    }

    #[test]
    fn function_calls_nest_at_most_sixteen_deep() {
        let nested =
            |depth: usize| format!("SELECT {}1{}", "abs (".repeat(depth), ")".repeat(depth));
        assert_eq!(too_deep(&nested(MAX_NESTED_CALLS)), None);
        assert!(
            too_deep(&nested(MAX_NESTED_CALLS + 1)).is_some_and(|w| w.contains("function calls"))
        );
        let arrays =
            |depth: usize| format!("SELECT {}1{}", "ARRAY[".repeat(depth), "]".repeat(depth));
        assert_eq!(too_deep(&arrays(MAX_NESTED_CALLS)), None);
        assert!(
            too_deep(&arrays(MAX_NESTED_CALLS + 1)).is_some_and(|w| w.contains("function calls"))
        );
        // Parentheses that open no call are not counted as calls.
        let grouped = format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(too_deep(&grouped), None);
        // Each statement is counted on its own.
        assert_eq!(too_deep(&format!("{};{}", nested(10), nested(10))), None);
    }

    #[test]
    fn statements_split_where_the_sql_ends_them() {
        assert_eq!(
            split_statements("SELECT 1/0; SELECT 'a;b';\nSELECT 'é'; -- done"),
            ["SELECT 1/0;", " SELECT 'a;b';", "\nSELECT 'é';", " -- done"]
        );
        assert_eq!(split_statements("SELECT 'open"), ["SELECT 'open"]);
    }
}
