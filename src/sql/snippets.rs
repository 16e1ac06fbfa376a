//! The pieces of generated SQL that more than one command uses: the findings list,
//! finding column names, quoting, and user SQL embedded safely in generated SQL.

use datafusion::sql::parser::DFParser;

use crate::error::{Error, Result};
pub use crate::findings::column_name;

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One user statement (a `--sql` query, a saved cohort file) as the body of a
/// subquery: parsed and printed back, so comments and a final `;` cannot swallow or
/// break the SQL around it. `what` names the source in errors.
pub fn statement(sql: &str, what: &str) -> Result<String> {
    let mut statements = DFParser::parse_sql(sql)
        .map_err(|e| Error::Usage(format!("{what}: {}", Error::from(e))))?;
    use datafusion::sql::parser::Statement;
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(Statement::Statement(s)), true) if matches!(*s, Sql::Query(_)) => Ok(s.to_string()),
        (Some(s), true) => Err(Error::Usage(format!(
            "{what}: expected a query (SELECT or WITH ...), found `{}`",
            s.to_string().chars().take(60).collect::<String>()
        ))),
        (None, _) => Err(Error::Usage(format!("{what}: no SQL statement"))),
        (Some(_), false) => Err(Error::Usage(format!(
            "{what}: expected one SQL statement, found several"
        ))),
    }
}

/// A user predicate (`--where`) in parentheses: parsed as one expression and printed
/// back, so that neither a comment nor an unbalanced `) OR (1=1` can change the SQL
/// around it.
pub fn predicate(p: &str) -> Result<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;
    let bad = |e: String| Error::Usage(format!("--where `{}`: {e}", p.trim()));
    let parse_error = |e| bad(Error::from(datafusion::error::DataFusionError::from(e)).to_string());
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(p)
        .map_err(parse_error)?;
    let expr = parser.parse_expr().map_err(parse_error)?;
    match parser.next_token().token {
        Token::EOF => Ok(format!("({expr})")),
        rest => Err(bad(format!("not one condition: `{rest}` follows `{expr}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_comments_stay_inside() {
        let s = statement("SELECT image_index FROM images -- the lot\n;", "--sql").unwrap();
        assert!(!s.contains("--"));
        assert!(!s.contains(';'));
        let wrapped = format!("SELECT * FROM ({s}) AS q WHERE 1 = 1");
        assert!(DFParser::parse_sql(&wrapped).is_ok());
        let p = predicate("age > 40 -- adults").unwrap();
        assert_eq!(p, "(age > 40)");
        // Parentheses cannot be closed from inside: the whole text is one condition.
        assert!(predicate("age > 50) OR (1=1").is_err());
        assert!(predicate("age > 50; DROP TABLE images").is_err());
        assert!(predicate("").is_err());
    }

    #[test]
    fn refuses_several_statements() {
        assert!(statement("DROP TABLE images", "--cohort f.sql").is_err());
        assert!(statement("WITH a AS (SELECT 1 AS x) SELECT x FROM a", "--sql").is_ok());
        assert!(statement("SELECT 1; SELECT 2", "--sql").is_err());
        assert!(statement("-- nothing", "--sql").is_err());
    }
}
